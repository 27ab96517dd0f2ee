#include "lib/workpool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/xalloc.h"

struct work_item {
	struct work_item *next;
	loop_fn *work, *done;
	struct loop *loop;
	void *arg;
};

struct workpool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct work_item *head, *tail;
	bool stopping;
	unsigned n;
	pthread_t *threads;
};

static void *workpool_thread(void *arg)
{
	struct workpool *pool = arg;

	for (;;) {
		struct work_item *w;

		pthread_mutex_lock(&pool->lock);
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->cond, &pool->lock);
		w = pool->head;
		if (w == NULL) {
			pthread_mutex_unlock(&pool->lock);
			return NULL;
		}
		pool->head = w->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		w->work(w->arg);
		if (w->done != NULL) {
			if (w->loop != NULL)
				loop_post(w->loop, w->done, w->arg);
			else
				w->done(w->arg);
		}
		free(w);
	}
}

struct workpool *workpool_start(unsigned threads)
{
	struct workpool *pool = xcalloc(1, sizeof(*pool));

	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->cond, NULL);
	pool->n = threads;
	pool->threads = xcalloc(threads, sizeof(pthread_t));
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&pool->threads[i], NULL, workpool_thread, pool) != 0)
			fatal("pthread_create failed");
	return pool;
}

void workpool_stop(struct workpool **poolp)
{
	struct workpool *pool = *poolp;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
	for (unsigned i = 0; i < pool->n; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_destroy(&pool->lock);
	pthread_cond_destroy(&pool->cond);
	free(pool->threads);
	free(pool);
	*poolp = NULL;
}

void workpool_run(struct workpool *pool, loop_fn *work, struct loop *loop, loop_fn *done,
		  void *arg)
{
	struct work_item *w = xmalloc(sizeof(*w));

	w->next = NULL;
	w->work = work;
	w->done = done;
	w->loop = loop;
	w->arg = arg;
	pthread_mutex_lock(&pool->lock);
	if (pool->tail != NULL)
		pool->tail->next = w;
	else
		pool->head = w;
	pool->tail = w;
	pthread_cond_signal(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}
