#include "pop3/pop3_lock.h"

#include <pthread.h>
#include <stdlib.h>

#include "lib/xalloc.h"

/* A small set of user ids: few POP3 sessions are open at once. */
struct pop3_locks {
	pthread_mutex_t lock;
	int64_t *held;
	size_t n, alloc;
};

struct pop3_locks *pop3_locks_new(void)
{
	struct pop3_locks *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->lock, NULL);
	return l;
}

void pop3_locks_free(struct pop3_locks **lp)
{
	if (*lp == NULL)
		return;
	pthread_mutex_destroy(&(*lp)->lock);
	free((*lp)->held);
	free(*lp);
	*lp = NULL;
}

int pop3_lock_take(struct pop3_locks *l, int64_t user_id)
{
	int ret = 0;

	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n && ret == 0; i++)
		if (l->held[i] == user_id)
			ret = -1;
	if (ret == 0) {
		if (l->n == l->alloc) {
			l->alloc = l->alloc ? l->alloc * 2 : 16;
			l->held = xrealloc(l->held, l->alloc * sizeof(*l->held));
		}
		l->held[l->n++] = user_id;
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

void pop3_lock_release(struct pop3_locks *l, int64_t user_id)
{
	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->n; i++) {
		if (l->held[i] == user_id) {
			l->held[i] = l->held[--l->n];
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
}
