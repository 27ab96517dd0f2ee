/* The committer: one thread owns the write connection and the blob segments
 * and turns everything queued into one flush of blob bytes and one
 * transaction (group commit).
 *
 * A batch, in order:
 *   1. blobs: each delivery's content is looked up by SHA-256; content not
 *      already stored (or stored twice in the batch) is appended once;
 *   2. one blob flush (fdatasync) if anything was appended;
 *   3. BEGIN IMMEDIATE; each request in its own SAVEPOINT, so that a
 *      request breaking a rule (EXISTS, NOT_FOUND, ...) fails alone;
 *   4. COMMIT: with synchronous=FULL, the second and last flush;
 *   5. only now the watchers (sqlite_notify.c) and then the callbacks.
 * The order is the durability rule: metadata never points at blob bytes
 * that are not on disk, and nobody hears "done" before the commit is.  If
 * the blob flush or the commit fails, the whole batch fails with
 * STORE_ERR_IO and nothing of it is kept; it is never retried, because a
 * second fsync succeeding after a failed one proves nothing. */
#include "store/sqlite/sqlite_private.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"

struct store_req *store_req_new(const struct store_op *op, struct loop *loop,
				store_done_cb *cb, void *ctx)
{
	struct store_req *req = xcalloc(1, sizeof(*req));

	req->op = op;
	req->loop = loop;
	req->cb = cb;
	req->ctx = ctx;
	return req;
}

static void store_req_free(struct store_req *req)
{
	free(req->str1);
	free(req->str2);
	free(req->str3);
	for (size_t i = 0; i < req->n_strv; i++)
		free(req->strv[i]);
	free(req->strv);
	free(req->events);
	free(req->uids);
	free(req->ids);
	free(req->outcomes);
	free(req->out);
	free(req->changed);
	if (req->delivery != NULL) {
		free(req->delivery->data);
		free(req->delivery->rcpts);
		free(req->delivery->delivered);
		free(req->delivery->remote);
		store_structure_deinit(&req->delivery->structure);
		free(req->delivery->keywords);
		free(req->delivery);
	}
	free(req);
}

void store_req_submit(struct store *s, struct store_req *req)
{
	pthread_mutex_lock(&s->lock);
	if (s->tail != NULL)
		s->tail->next = req;
	else
		s->head = req;
	s->tail = req;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void store_req_submit_chain(struct store *s, struct store_req *first, struct store_req *last)
{
	pthread_mutex_lock(&s->lock);
	last->next = NULL;
	if (s->tail != NULL)
		s->tail->next = first;
	else
		s->head = first;
	s->tail = last;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void store_req_defer(struct store *s, struct store_req *req)
{
	pthread_mutex_lock(&s->lock);
	if (s->dtail != NULL) {
		s->dtail->next = req;
	} else {
		s->dhead = req;
		clock_gettime(CLOCK_REALTIME, &s->ddue);
		s->ddue.tv_nsec += (long)STORE_DEFER_MS * 1000000L;
		s->ddue.tv_sec += s->ddue.tv_nsec / 1000000000L;
		s->ddue.tv_nsec %= 1000000000L;
		/* A committer asleep without a deadline must learn of this one;
		 * it only sets its timer, it does not commit yet. */
		pthread_cond_signal(&s->cond);
	}
	s->dtail = req;
	pthread_mutex_unlock(&s->lock);
}

/* Sets req's outcome; a delivery's recipients share a request-wide failure. */
static void store_req_set_failed(struct store_req *req, enum store_err err)
{
	req->reply.status = -1;
	req->reply.err = err;
	req->reply.id = 0;
	/* Rolled back: nothing was changed, so nothing is reported or told. */
	req->n_out = 0;
	req->n_changed = 0;
	if (req->delivery == NULL)
		return;
	for (size_t i = 0; i < req->delivery->n_rcpts; i++) {
		req->delivery->delivered[i].status = -1;
		req->delivery->delivered[i].err = err;
		req->delivery->delivered[i].uid = 0;
		req->delivery->delivered[i].modseq = 0;
	}
}

int store_req_fail(struct store_req *req, enum store_err err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->error, sizeof(req->error), fmt, ap);
	va_end(ap);
	store_req_set_failed(req, err);
	return -1;
}

int store_req_fail_db(struct store *s, struct store_req *req)
{
	int code = sqlite3_extended_errcode(s->w.db);
	enum store_err err = STORE_ERR_IO;

	/* The ops check names first; a constraint still failing means a race
	 * with nothing (one writer) or a rule they missed: report it as such. */
	if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY)
		err = STORE_ERR_EXISTS;
	else if ((code & 0xff) == SQLITE_CONSTRAINT)
		err = STORE_ERR_INVALID;
	return store_req_fail(req, err, "%s: %s", req->op->name, sqlite3_errmsg(s->w.db));
}

static void committer_answer(void *arg)
{
	struct store_req *req = arg;

	req->reply.error = req->reply.status < 0 ? req->error : NULL;
	if (req->group_n > 0) {
		req->reply.n_delivered = req->n_out;
		req->reply.delivered = req->out;
	} else if (req->delivery != NULL) {
		req->reply.n_delivered = req->delivery->n_rcpts;
		req->reply.delivered = req->delivery->delivered;
	} else if (req->out != NULL) {
		req->reply.n_delivered = req->n_out;
		req->reply.delivered = req->out;
	}
	if (req->cb != NULL)
		req->cb(&req->reply, req->ctx);
	else if (req->reply.status < 0)
		log_error("store", "event=deferred_write_failed op=%s error=\"%s\"", req->op->name,
			  req->error);
	store_req_free(req);
}

static void committer_answer_all(struct store_req *batch)
{
	while (batch != NULL) {
		struct store_req *next = batch->next;
		if (batch->group_member)
			store_req_free(batch); /* its group's first request answers */
		else if (batch->loop != NULL)
			loop_post(batch->loop, committer_answer, batch);
		else
			committer_answer(batch);
		batch = next;
	}
}

static void committer_fail_all(struct store_req *batch, size_t n, const char *error)
{
	log_error("store", "event=batch_failed requests=%zu error=\"%s\"", n, error);
	for (struct store_req *req = batch; req != NULL; req = req->next) {
		snprintf(req->error, sizeof(req->error), "%s", error);
		store_req_set_failed(req, STORE_ERR_IO);
	}
}

/* Is d's content already stored and referenced?  Then the delivery points
 * at that row.  A row at refcount 0 is left to compaction: fresh bytes are
 * appended and the row is moved to them when the delivery is applied. */
static int committer_blob_known(struct store *s, const struct sq_delivery *d, bool *known_r)
{
	static const char sql[] = "SELECT refcount FROM blobs WHERE sha256 = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_blob(st, 1, d->sha256, BLOB_SHA256_LEN, SQLITE_STATIC);
	ret = sq_row(st);
	*known_r = ret == 1 && sqlite3_column_int64(st, 0) > 0;
	sqlite3_reset(st);
	return ret < 0 ? -1 : 0;
}

/* Content already appended by an earlier delivery of this batch? */
static bool committer_blob_shared(struct store_req *batch, struct store_req *upto,
				  struct sq_delivery *d)
{
	for (struct store_req *req = batch; req != upto; req = req->next) {
		struct sq_delivery *o = req->delivery;
		if (o != NULL && o->have_bytes &&
		    memcmp(o->sha256, d->sha256, BLOB_SHA256_LEN) == 0) {
			d->have_bytes = true;
			d->segment = o->segment;
			d->offset = o->offset;
			return true;
		}
	}
	return false;
}

/* Steps 1 and 2.  A delivery whose bytes cannot be written fails alone; a
 * failed flush or lookup fails the batch (-1, error set). */
static int committer_store_blobs(struct store *s, struct store_req *batch, char *error,
				 size_t error_size)
{
	bool appended = false, known;
	const char *why;
	int ret;

	for (struct store_req *req = batch; req != NULL; req = req->next) {
		struct sq_delivery *d = req->delivery;
		if (d == NULL || d->n_rcpts + d->n_remote == 0 ||
		    committer_blob_shared(batch, req, d))
			continue;
		if (committer_blob_known(s, d, &known) < 0) {
			snprintf(error, error_size, "looking up blob: %s", sqlite3_errmsg(s->w.db));
			return -1;
		}
		if (known)
			continue;
		if (blob_append(s->blobs, d->data, d->size, d->sha256, &d->segment, &d->offset,
				&why) < 0) {
			store_req_fail(req, STORE_ERR_IO, "storing message: %s", why);
			continue;
		}
		d->have_bytes = true;
		appended = true;
	}
	if (!appended)
		return 0;
	atomic_fetch_add(&s->flushes, 1);
	if (store_flush_injected(s)) {
		ret = -1;
		why = "injected failure: Input/output error";
	} else {
		ret = blob_flush(s->blobs, &why);
	}
	if (ret < 0)
		snprintf(error, error_size, "flushing blobs: %s", why);
	return ret;
}

/* Applies req in its own savepoint.  -1 only when the transaction itself is
 * broken (then the batch fails); a request's own failure returns 0. */
static int committer_apply_one(struct store *s, struct store_req *req)
{
	if (sq_exec(&s->w, "SAVEPOINT req") < 0)
		return -1;
	req->reply.status = 0;
	req->reply.err = STORE_OK;
	if (req->op->apply(s, req) == 0)
		return sq_exec(&s->w, "RELEASE req");
	log_debug("store", "event=request_failed op=%s error=\"%s\"", req->op->name, req->error);
	/* Some errors (disk full, I/O) roll back the whole transaction. */
	if (sqlite3_get_autocommit(s->w.db))
		return -1;
	if (sq_exec(&s->w, "ROLLBACK TO req") < 0 || sq_exec(&s->w, "RELEASE req") < 0)
		return -1;
	return 0;
}

/* A failed member of first's group, or NULL: a request that failed, or a
 * delivery with a recipient refused. */
static struct store_req *committer_group_failed(struct store_req *first)
{
	struct store_req *req = first;

	for (size_t i = 0; i < first->group_n; i++, req = req->next) {
		if (req->reply.status < 0)
			return req;
		for (size_t k = 0; req->delivery != NULL && k < req->delivery->n_rcpts; k++)
			if (req->delivery->delivered[k].status < 0)
				return req;
	}
	return NULL;
}

/* Fails every request of first's group like bad, then gathers the
 * recipients' outcomes into first->out for its answer. */
static void committer_group_finish(struct store_req *first, struct store_req *bad)
{
	struct store_req *req;
	size_t n = 0;

	if (bad != NULL) {
		enum store_err err = bad->reply.err;
		char why[sizeof(bad->error)];

		for (size_t k = 0; err == STORE_OK && bad->delivery != NULL &&
				   k < bad->delivery->n_rcpts; k++)
			err = bad->delivery->delivered[k].err;
		snprintf(why, sizeof(why), "%s",
			 bad->reply.status < 0 ? bad->error : "a recipient was refused");
		req = first;
		for (size_t i = 0; i < first->group_n; i++, req = req->next)
			store_req_fail(req, err != STORE_OK ? err : STORE_ERR_INVALID, "%s", why);
	}
	req = first;
	for (size_t i = 0; i < first->group_n; i++, req = req->next)
		n += req->delivery != NULL ? req->delivery->n_rcpts : 0;
	first->out = xcalloc(n + 1, sizeof(*first->out));
	first->n_out = 0;
	req = first;
	for (size_t i = 0; i < first->group_n; i++, req = req->next)
		for (size_t k = 0; req->delivery != NULL && k < req->delivery->n_rcpts; k++)
			first->out[first->n_out++] = req->delivery->delivered[k];
}

/* A store_deliver_all() group in one savepoint of its own: all or none.
 * -1 only when the transaction itself is broken. */
static int committer_apply_group(struct store *s, struct store_req *first)
{
	struct store_req *req = first, *bad = committer_group_failed(first);

	if (bad != NULL) { /* failed before the transaction (its blob) */
		committer_group_finish(first, bad);
		return 0;
	}
	if (sq_exec(&s->w, "SAVEPOINT grp") < 0)
		return -1;
	for (size_t i = 0; i < first->group_n; i++, req = req->next)
		if (committer_apply_one(s, req) < 0)
			return -1;
	if ((bad = committer_group_failed(first)) != NULL &&
	    sq_exec(&s->w, "ROLLBACK TO grp") < 0)
		return -1;
	if (sq_exec(&s->w, "RELEASE grp") < 0)
		return -1;
	committer_group_finish(first, bad);
	return 0;
}

/* Steps 3 and 4; -1 with error set when the batch must fail. */
static int committer_apply_all(struct store *s, struct store_req *batch, char *error,
			       size_t error_size)
{
	if (sq_exec(&s->w, "BEGIN IMMEDIATE") < 0) {
		snprintf(error, error_size, "starting transaction: %s", sqlite3_errmsg(s->w.db));
		return -1;
	}
	for (struct store_req *req = batch; req != NULL; req = req->next) {
		if (req->group_n > 0) {
			if (committer_apply_group(s, req) < 0) {
				snprintf(error, error_size, "applying a group: %s",
					 sqlite3_errmsg(s->w.db));
				goto rollback;
			}
			for (size_t i = 1; i < req->group_n; i++)
				req = req->next;
			continue;
		}
		if (req->reply.status < 0)
			continue; /* failed before the transaction */
		if (committer_apply_one(s, req) < 0) {
			snprintf(error, error_size, "applying %s: %s", req->op->name,
				 sqlite3_errmsg(s->w.db));
			goto rollback;
		}
	}
	atomic_fetch_add(&s->flushes, 1);
	if (store_flush_injected(s)) {
		snprintf(error, error_size, "committing: injected failure: Input/output error");
		goto rollback;
	}
	if (sq_exec(&s->w, "COMMIT") == 0)
		return 0;
	snprintf(error, error_size, "committing: %s", sqlite3_errmsg(s->w.db));
rollback:
	if (!sqlite3_get_autocommit(s->w.db) && sq_exec(&s->w, "ROLLBACK") < 0)
		log_error("store", "event=rollback_failed error=\"%s\"", sqlite3_errmsg(s->w.db));
	return -1;
}

static void committer_run_batch(struct store *s, struct store_req *batch)
{
	char error[512];
	size_t n = 0;

	for (struct store_req *req = batch; req != NULL; req = req->next)
		n++;
	s->batch_time = time(NULL);
	if (committer_store_blobs(s, batch, error, sizeof(error)) < 0 ||
	    committer_apply_all(s, batch, error, sizeof(error)) < 0)
		committer_fail_all(batch, n, error);
	atomic_fetch_add(&s->commits, 1);
	atomic_fetch_add(&s->requests, n);
	/* Watchers first: once a writer hears "done", the watchers of what it
	 * changed have their callbacks queued, so a session that writes and then
	 * stops watching (on the same loop) never sees a stale notice. */
	sqlite_notify_batch(s, batch);
	committer_answer_all(batch);
}

static void *committer_thread(void *arg)
{
	struct store *s = arg;

	for (;;) {
		struct store_req *batch;
		bool due = false;

		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->stopping && !due) {
			if (s->dhead == NULL)
				pthread_cond_wait(&s->cond, &s->lock);
			else
				due = pthread_cond_timedwait(&s->cond, &s->lock, &s->ddue) != 0;
		}
		/* Everything pending: the batch grows with the load.  Deferred
		 * trace events join it at no extra flush. */
		batch = s->head;
		if (s->dhead != NULL) {
			s->dtail->next = batch;
			batch = s->dhead;
			s->dhead = s->dtail = NULL;
		}
		s->head = s->tail = NULL;
		pthread_mutex_unlock(&s->lock);
		if (batch == NULL)
			return NULL; /* stopping, and the queue is drained */
		committer_run_batch(s, batch);
	}
}

int store_committer_start(struct store *s, const char **error_r)
{
	sigset_t all, old;
	int ret;

	/* Signals belong to the loops, not to the thread holding the disk. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->thread, NULL, committer_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		*error_r = "cannot start the committer thread";
		return -1;
	}
	return 0;
}

void store_committer_stop(struct store *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
}
