#include "lib/loop.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/xalloc.h"

struct loop_task {
	struct loop_task *next;
	loop_fn *fn;
	void *arg;
};

struct loop {
	unsigned index;
	struct event_base *base;
	pthread_t thread;
	pthread_mutex_t lock;
	struct loop_task *head, *tail;
	struct event *wake;
	bool stopping;
	loop_fn *init;
	void *init_arg;
	void *data;
	pthread_mutex_t ready_lock;
	pthread_cond_t ready_cond;
	bool ready;
};

struct loop_pool {
	unsigned n;
	struct loop *loops;
};

static __thread struct loop *loop_self;

void loop_global_init(void)
{
	if (evthread_use_pthreads() < 0)
		fatal("libevent: evthread_use_pthreads failed");
}

static void loop_run_tasks(evutil_socket_t fd, short what, void *arg)
{
	struct loop *loop = arg;
	struct loop_task *t;
	bool stop;

	pthread_mutex_lock(&loop->lock);
	t = loop->head;
	loop->head = loop->tail = NULL;
	stop = loop->stopping;
	pthread_mutex_unlock(&loop->lock);
	while (t != NULL) {
		struct loop_task *next = t->next;
		t->fn(t->arg);
		free(t);
		t = next;
	}
	if (stop)
		event_base_loopexit(loop->base, NULL);
}

static void *loop_thread(void *arg)
{
	struct loop *loop = arg;

	loop_self = loop;
	if (loop->init != NULL)
		loop->init(loop->init_arg);
	pthread_mutex_lock(&loop->ready_lock);
	loop->ready = true;
	pthread_cond_signal(&loop->ready_cond);
	pthread_mutex_unlock(&loop->ready_lock);
	/* EVLOOP_NO_EXIT_ON_EMPTY: a loop with no connections yet must wait. */
	event_base_loop(loop->base, EVLOOP_NO_EXIT_ON_EMPTY);
	loop_self = NULL;
	return NULL;
}

struct loop_pool *loop_pool_start(unsigned n, loop_fn *init, void *init_arg)
{
	struct loop_pool *pool = xcalloc(1, sizeof(*pool));

	pool->n = n;
	pool->loops = xcalloc(n, sizeof(struct loop));
	for (unsigned i = 0; i < n; i++) {
		struct loop *loop = &pool->loops[i];
		loop->index = i;
		loop->base = event_base_new();
		if (loop->base == NULL)
			fatal("libevent: event_base_new failed");
		pthread_mutex_init(&loop->lock, NULL);
		pthread_mutex_init(&loop->ready_lock, NULL);
		pthread_cond_init(&loop->ready_cond, NULL);
		loop->wake = event_new(loop->base, -1, 0, loop_run_tasks, loop);
		loop->init = init;
		loop->init_arg = init_arg;
		if (pthread_create(&loop->thread, NULL, loop_thread, loop) != 0)
			fatal("pthread_create failed");
		/* Wait for init so callers may use the loop's data at once. */
		pthread_mutex_lock(&loop->ready_lock);
		while (!loop->ready)
			pthread_cond_wait(&loop->ready_cond, &loop->ready_lock);
		pthread_mutex_unlock(&loop->ready_lock);
	}
	return pool;
}

void loop_post(struct loop *loop, loop_fn *fn, void *arg)
{
	struct loop_task *t = xmalloc(sizeof(*t));

	t->next = NULL;
	t->fn = fn;
	t->arg = arg;
	pthread_mutex_lock(&loop->lock);
	if (loop->tail != NULL)
		loop->tail->next = t;
	else
		loop->head = t;
	loop->tail = t;
	pthread_mutex_unlock(&loop->lock);
	event_active(loop->wake, EV_READ, 0);
}

void loop_pool_stop(struct loop_pool **poolp)
{
	struct loop_pool *pool = *poolp;

	if (pool == NULL)
		return;
	for (unsigned i = 0; i < pool->n; i++) {
		struct loop *loop = &pool->loops[i];
		pthread_mutex_lock(&loop->lock);
		loop->stopping = true;
		pthread_mutex_unlock(&loop->lock);
		event_active(loop->wake, EV_READ, 0);
	}
	for (unsigned i = 0; i < pool->n; i++) {
		struct loop *loop = &pool->loops[i];
		pthread_join(loop->thread, NULL);
		/* Tasks posted after the stop request still run, so that nothing
		 * waiting on a callback is left hanging. */
		loop_run_tasks(-1, 0, loop);
		event_free(loop->wake);
		event_base_free(loop->base);
		pthread_mutex_destroy(&loop->lock);
		pthread_mutex_destroy(&loop->ready_lock);
		pthread_cond_destroy(&loop->ready_cond);
	}
	free(pool->loops);
	free(pool);
	*poolp = NULL;
}

unsigned loop_pool_count(const struct loop_pool *pool)
{
	return pool->n;
}

struct loop *loop_pool_get(struct loop_pool *pool, unsigned i)
{
	return &pool->loops[i % pool->n];
}

struct event_base *loop_base(struct loop *loop)
{
	return loop->base;
}

unsigned loop_index(const struct loop *loop)
{
	return loop->index;
}

void loop_set_data(struct loop *loop, void *data)
{
	loop->data = data;
}

void *loop_data(struct loop *loop)
{
	return loop->data;
}

struct loop *loop_current(void)
{
	return loop_self;
}
