/* Waiting for a write from a thread that is not a loop: any backend. */
#include "store/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

struct store_sync_impl {
	pthread_mutex_t lock;
	pthread_cond_t cond;
};

void store_sync_init(struct store_sync *sync)
{
	struct store_sync_impl *impl = xmalloc(sizeof(*impl));

	memset(sync, 0, sizeof(*sync));
	pthread_mutex_init(&impl->lock, NULL);
	pthread_cond_init(&impl->cond, NULL);
	sync->impl = impl;
}

/* Runs on the committer thread or a loop: copies everything out of the
 * reply, which dies when this returns. */
void store_sync_cb(const struct store_reply *reply, void *ctx)
{
	struct store_sync *sync = ctx;
	struct store_sync_impl *impl = sync->impl;

	sync->status = reply->status;
	sync->err = reply->err;
	snprintf(sync->error, sizeof(sync->error), "%s", reply->error != NULL ? reply->error : "");
	sync->id = reply->id;
	sync->n_delivered = reply->n_delivered;
	if (reply->n_delivered > 0) {
		sync->delivered = xcalloc(reply->n_delivered, sizeof(*sync->delivered));
		memcpy(sync->delivered, reply->delivered,
		       reply->n_delivered * sizeof(*sync->delivered));
	}
	pthread_mutex_lock(&impl->lock);
	sync->done = 1;
	pthread_cond_broadcast(&impl->cond);
	pthread_mutex_unlock(&impl->lock);
}

void store_sync_wait(struct store_sync *sync)
{
	struct store_sync_impl *impl = sync->impl;

	pthread_mutex_lock(&impl->lock);
	while (!sync->done)
		pthread_cond_wait(&impl->cond, &impl->lock);
	pthread_mutex_unlock(&impl->lock);
}

void store_sync_deinit(struct store_sync *sync)
{
	struct store_sync_impl *impl = sync->impl;

	if (impl != NULL) {
		pthread_mutex_destroy(&impl->lock);
		pthread_cond_destroy(&impl->cond);
		free(impl);
	}
	free(sync->delivered);
	sync->delivered = NULL;
	sync->n_delivered = 0;
	sync->impl = NULL;
}
