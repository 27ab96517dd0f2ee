/* The notifier: who watches which mailbox, and telling them after a commit.
 *
 * Watchers live in a chained hash on mailbox id under s->watch_lock.  The
 * committer, after each commit, looks up the mailboxes its batch changed and
 * posts one task per watcher to the watcher's loop.
 *
 * Lifetime.  A watch record is shared by its owner (until store_unwatch)
 * and by at most one posted task: refs counts them and whoever drops the
 * last frees it.  store_unwatch and the task both run on the watcher's loop,
 * so the dead flag they share needs no lock: a task that runs after the
 * unwatch sees it and does not call back.
 *
 * Coalescing.  While a task is posted and has not yet run, further changes
 * only raise the highestmodseq it will report: a watcher on a busy mailbox
 * gets one call per turn of its loop, not one per commit.  The task clears
 * `posted` before it reads `modseq`, so a change landing in between either
 * is seen by this task or posts the next one (both are seq_cst atomics):
 * no change goes untold. */
#include "store/sqlite/sqlite_private.h"

#include <assert.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"

#define WATCH_CAP_MIN 64

struct store_watch {
	struct store_watch *next; /* in its bucket, under s->watch_lock */
	int64_t mailbox_id;
	struct loop *loop;
	store_watch_cb *cb;
	void *ctx;
	atomic_uint refs;
	atomic_bool posted;
	atomic_uint_fast64_t modseq; /* the highest value to report */
	bool dead;                   /* watcher's loop only */
};

void sqlite_watch_init(struct store *s)
{
	pthread_mutex_init(&s->watch_lock, NULL);
	s->watch_cap = WATCH_CAP_MIN;
	s->watch_buckets = xcalloc(s->watch_cap, sizeof(*s->watch_buckets));
	atomic_store(&s->n_watches, 0);
}

/* Watches still registered belong to their owners, who may yet call
 * store_unwatch on a closed store: a bug, logged, and the records left alone
 * rather than freed under them. */
void sqlite_watch_deinit(struct store *s)
{
	size_t n = atomic_load(&s->n_watches);

	if (n > 0)
		log_error("store", "event=close_with_watchers watchers=%zu", n);
	free(s->watch_buckets);
	s->watch_buckets = NULL;
	pthread_mutex_destroy(&s->watch_lock);
}

static size_t watch_slot(int64_t mailbox_id, size_t cap)
{
	uint64_t h = (uint64_t)mailbox_id * 0x9E3779B97F4A7C15ull;

	return (size_t)(h >> 32) & (cap - 1);
}

/* Doubles the table when chains grow past two on average; under the lock. */
static void watch_grow(struct store *s)
{
	size_t cap = s->watch_cap * 2;
	struct store_watch **buckets = xcalloc(cap, sizeof(*buckets));

	for (size_t i = 0; i < s->watch_cap; i++) {
		struct store_watch *w = s->watch_buckets[i], *next;
		for (; w != NULL; w = next) {
			size_t j = watch_slot(w->mailbox_id, cap);
			next = w->next;
			w->next = buckets[j];
			buckets[j] = w;
		}
	}
	free(s->watch_buckets);
	s->watch_buckets = buckets;
	s->watch_cap = cap;
}

struct store_watch *store_watch(struct store *s, int64_t mailbox_id, struct loop *loop,
				store_watch_cb *cb, void *ctx)
{
	struct store_watch *w = xcalloc(1, sizeof(*w));
	size_t slot;

	assert(loop != NULL && cb != NULL);
	w->mailbox_id = mailbox_id;
	w->loop = loop;
	w->cb = cb;
	w->ctx = ctx;
	atomic_init(&w->refs, 1);
	atomic_init(&w->posted, false);
	atomic_init(&w->modseq, 0);
	pthread_mutex_lock(&s->watch_lock);
	if (atomic_load(&s->n_watches) + 1 > s->watch_cap * 2)
		watch_grow(s);
	slot = watch_slot(mailbox_id, s->watch_cap);
	w->next = s->watch_buckets[slot];
	s->watch_buckets[slot] = w;
	atomic_fetch_add(&s->n_watches, 1);
	pthread_mutex_unlock(&s->watch_lock);
	return w;
}

static void watch_unref(struct store_watch *w)
{
	if (atomic_fetch_sub(&w->refs, 1) == 1)
		free(w);
}

void store_unwatch(struct store *s, struct store_watch **wp)
{
	struct store_watch *w = *wp, **pp;

	if (w == NULL)
		return;
	/* On the watcher's loop, or after that loop stopped (shutdown): never
	 * on another loop, where a posted task could run at the same time. */
	assert(loop_current() == NULL || loop_current() == w->loop);
	pthread_mutex_lock(&s->watch_lock);
	pp = &s->watch_buckets[watch_slot(w->mailbox_id, s->watch_cap)];
	while (*pp != NULL && *pp != w)
		pp = &(*pp)->next;
	assert(*pp == w);
	*pp = w->next;
	atomic_fetch_sub(&s->n_watches, 1);
	pthread_mutex_unlock(&s->watch_lock);
	w->dead = true;
	watch_unref(w);
	*wp = NULL;
}

/* Runs on the watcher's loop. */
static void watch_fire(void *arg)
{
	struct store_watch *w = arg;
	uint64_t modseq;

	atomic_store(&w->posted, false);
	modseq = atomic_load(&w->modseq);
	if (!w->dead)
		w->cb(w->mailbox_id, modseq, w->ctx);
	watch_unref(w);
}

/* Under the lock, on the committer. */
static void watch_post(struct store_watch *w, uint64_t modseq)
{
	uint64_t cur = atomic_load(&w->modseq);

	while (cur < modseq && !atomic_compare_exchange_weak(&w->modseq, &cur, modseq))
		;
	if (atomic_exchange(&w->posted, true))
		return; /* the task already queued will report it */
	atomic_fetch_add(&w->refs, 1);
	loop_post(w->loop, watch_fire, w);
}

void sqlite_notify_batch(struct store *s, struct store_req *batch)
{
	if (atomic_load(&s->n_watches) == 0)
		return;
	pthread_mutex_lock(&s->watch_lock);
	for (struct store_req *req = batch; req != NULL; req = req->next) {
		if (req->reply.status < 0)
			continue;
		for (size_t i = 0; i < req->n_changed; i++) {
			const struct sq_changed *c = &req->changed[i];
			struct store_watch *w =
				s->watch_buckets[watch_slot(c->mailbox_id, s->watch_cap)];
			for (; w != NULL; w = w->next)
				if (w->mailbox_id == c->mailbox_id)
					watch_post(w, c->modseq);
		}
	}
	pthread_mutex_unlock(&s->watch_lock);
}

void sqlite_req_changed(struct store_req *req, int64_t mailbox_id, uint64_t modseq)
{
	/* A delivery to many recipients of one mailbox, or a flag change after
	 * an expunge, notes the same mailbox again: keep one entry, the last. */
	for (size_t i = 0; i < req->n_changed; i++) {
		if (req->changed[i].mailbox_id == mailbox_id) {
			if (modseq > req->changed[i].modseq)
				req->changed[i].modseq = modseq;
			return;
		}
	}
	req->changed = sq_list_grow(req->changed, sizeof(*req->changed), req->n_changed,
				    &req->changed_alloc);
	req->changed[req->n_changed].mailbox_id = mailbox_id;
	req->changed[req->n_changed].modseq = modseq;
	req->n_changed++;
}
