/* Queue writes: the outcomes of delivery attempts (the queue runner) and
 * bulk changes (the administrator).  Same pattern as sqlite_mail.c: the
 * public functions copy and queue; *_apply functions run on the committer
 * inside the request's savepoint.
 *
 * Blob references (store.h): an entry holds one while its state is not
 * final.  Every statement that makes an entry final or deletes it is
 * guarded by a check that the entry is not final yet, in the same
 * transaction, and drops the reference there: so a reference is dropped
 * exactly once, whoever gets there first (the runner's record or the
 * administrator's bounce or delete). */
#include "store/sqlite/sqlite_private.h"

#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define QW_FINAL(state) ((state) == STORE_QUEUE_DELIVERED || (state) == STORE_QUEUE_FAILED)

static int qw_blob_release(struct store *s, int64_t blob_id, int64_t n)
{
	static const char sql[] = "UPDATE blobs SET refcount = refcount - ? WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, n);
	sqlite3_bind_int64(st, 2, blob_id);
	return sq_run(st);
}

/* ---- outcomes of attempts ------------------------------------------------- */

/* The entry's state and blob: 1 found, 0 gone, -1 error. */
static int qw_entry_find(struct store *s, int64_t id, int *state_r, int64_t *blob_r)
{
	static const char sql[] = "SELECT state, blob_id FROM queue WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if ((ret = sq_row(st)) == 1) {
		*state_r = sqlite3_column_int(st, 0);
		*blob_r = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return ret;
}

static bool qw_outcome_valid(const struct store_queue_outcome *o)
{
	return QW_FINAL(o->state) || (o->state == STORE_QUEUE_DEFERRED && o->next_attempt > 0);
}

/* Records one outcome; its own result in *out.  -1 only for a database
 * error. */
static int qw_record_one(struct store *s, const struct store_queue_outcome *o,
                         struct store_delivered *out)
{
	static const char sql[] = "UPDATE queue SET state = ?2, attempts = attempts + 1,"
	                          " next_attempt = CASE WHEN ?3 > 0 THEN ?3 ELSE next_attempt END,"
	                          " last_reply = ?4 WHERE id = ?1";
	int state = 0, ret;
	int64_t blob_id = 0;
	sqlite3_stmt *st;

	out->mailbox_id = o->id;
	out->status = -1;
	if ((ret = qw_entry_find(s, o->id, &state, &blob_id)) < 0)
		return -1;
	out->err = ret == 0 ? STORE_ERR_NOT_FOUND : STORE_ERR_INVALID;
	if (ret == 0 || QW_FINAL(state) || !qw_outcome_valid(o))
		return 0;
	/* Held by the administrator during the attempt: a deferral keeps it
	 * held; delivery or failure happened and is recorded as such. */
	if ((st = sq_get(&s->w, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, o->id);
	sqlite3_bind_int(st, 2,
	                 o->state == STORE_QUEUE_DEFERRED && state == STORE_QUEUE_HELD
	                     ? STORE_QUEUE_HELD
	                     : (int)o->state);
	sqlite3_bind_int64(st, 3, (int64_t)o->next_attempt);
	sq_bind_text_or_null(st, 4, o->last_reply);
	if (sq_run(st) < 0 || (QW_FINAL(o->state) && qw_blob_release(s, blob_id, 1) < 0))
		return -1;
	out->status = 0;
	out->err = STORE_OK;
	return 0;
}

static int qw_record_apply(struct store *s, struct store_req *req)
{
	int64_t recorded = 0;

	req->out = xcalloc(req->n_outcomes, sizeof(*req->out));
	req->n_out = req->n_outcomes;
	for (size_t i = 0; i < req->n_outcomes; i++) {
		if (qw_record_one(s, &req->outcomes[i], &req->out[i]) < 0)
			return store_req_fail_db(s, req);
		recorded += req->out[i].status == 0;
	}
	if (sqlite_trace_insert(s, req->events, req->n_events) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = recorded;
	return 0;
}

/* ---- bulk changes ----------------------------------------------------------- */

/* The states each action applies to (bits 1 << state). */
static unsigned qw_action_states(enum store_queue_action action)
{
	switch (action) {
	case STORE_QUEUE_HOLD:
	case STORE_QUEUE_RETRY:
		return 1u << STORE_QUEUE_QUEUED | 1u << STORE_QUEUE_DEFERRED;
	case STORE_QUEUE_RELEASE:
		return 1u << STORE_QUEUE_HELD;
	case STORE_QUEUE_DELETE:
	case STORE_QUEUE_BOUNCE:
		return 1u << STORE_QUEUE_QUEUED | 1u << STORE_QUEUE_DEFERRED |
		       1u << STORE_QUEUE_HELD;
	}
	return 0;
}

/* The filter as the request carries it: strv holds the seven strings (NULL
 * when not given), in the order of struct store_queue_filter. */
static void qw_filter_of(const struct store_req *req, struct store_queue_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->queue_id = req->strv[0];
	f->sender = req->strv[1];
	f->sender_null = req->flag;
	f->sender_domain = req->strv[2];
	f->rcpt = req->strv[3];
	f->rcpt_domain = req->strv[4];
	f->auth_user = req->strv[5];
	f->client_ip = req->strv[6];
	f->state = req->mode;
	f->older_than = (time_t)req->num;
	f->ids = req->ids;
	f->n_ids = req->n_ids;
	f->after_id = req->id;
}

/* The matching entries (id into out[].mailbox_id) and their blobs, read
 * whole before anything changes. */
static int qw_change_select(struct store *s, struct store_req *req, int64_t **blobs_r)
{
	struct store_queue_filter f;
	size_t alloc = 0, blob_alloc = 0;
	sqlite3_stmt *st;
	int ret;

	qw_filter_of(req, &f);
	st = sqlite_queue_select(&s->w, SQ_QUEUE_REFS, &f,
	                         sqlite_queue_filter_states(&f) & qw_action_states(req->bits),
	                         (size_t)req->id2);
	if (st == NULL)
		return -1;
	while ((ret = sq_row(st)) == 1) {
		req->out = sq_list_grow(req->out, sizeof(*req->out), req->n_out, &alloc);
		*blobs_r = sq_list_grow(*blobs_r, sizeof(**blobs_r), req->n_out, &blob_alloc);
		memset(&req->out[req->n_out], 0, sizeof(req->out[0]));
		req->out[req->n_out].mailbox_id = sqlite3_column_int64(st, 0);
		(*blobs_r)[req->n_out] = sqlite3_column_int64(st, 1);
		req->n_out++;
	}
	sqlite3_reset(st);
	return ret < 0 ? -1 : 0;
}

static int qw_change_row(struct store *s, enum store_queue_action action, int64_t id)
{
	static const char *const sqls[] = {
	    [STORE_QUEUE_HOLD] = "UPDATE queue SET state = 2 WHERE id = ?1",
	    [STORE_QUEUE_RELEASE] = "UPDATE queue SET state = 0, next_attempt = ?2"
	                            " WHERE id = ?1",
	    [STORE_QUEUE_RETRY] = "UPDATE queue SET next_attempt = ?2 WHERE id = ?1",
	    [STORE_QUEUE_DELETE] = "DELETE FROM queue WHERE id = ?1",
	    [STORE_QUEUE_BOUNCE] =
	        "UPDATE queue SET state = 4, last_reply = '" STORE_QUEUE_BOUNCED "' WHERE id = ?1",
	};
	sqlite3_stmt *st = sq_get(&s->w, sqls[action]);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (action == STORE_QUEUE_RELEASE || action == STORE_QUEUE_RETRY)
		sqlite3_bind_int64(st, 2, (int64_t)s->batch_time);
	return sq_run(st);
}

/* One blob update per run of entries of the same message: recipients of
 * one message have neighbouring ids. */
static int qw_change_release(struct store *s, const int64_t *blobs, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && blobs[j] == blobs[i])
			j++;
		if (qw_blob_release(s, blobs[i], (int64_t)(j - i)) < 0)
			return -1;
		i = j;
	}
	return 0;
}

static int qw_change_apply(struct store *s, struct store_req *req)
{
	enum store_queue_action action = (enum store_queue_action)req->bits;
	int64_t *blobs = NULL;
	int ret = qw_change_select(s, req, &blobs);

	for (size_t i = 0; ret == 0 && i < req->n_out; i++)
		ret = qw_change_row(s, action, req->out[i].mailbox_id);
	if (ret == 0 && (action == STORE_QUEUE_DELETE || action == STORE_QUEUE_BOUNCE))
		ret = qw_change_release(s, blobs, req->n_out);
	free(blobs);
	if (ret < 0)
		return store_req_fail_db(s, req);
	req->reply.id = (int64_t)req->n_out;
	return 0;
}

/* ---- the public functions --------------------------------------------------- */

static const struct store_op qw_record_op = {"queue.record", qw_record_apply};
static const struct store_op qw_change_op = {"queue.change", qw_change_apply};

void store_queue_record(struct store *s, const struct store_queue_outcome *outcomes, size_t n,
                        const struct store_trace_event *events, size_t n_events, struct loop *loop,
                        store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&qw_record_op, loop, cb, ctx);

	req->outcomes = xcalloc(n > 0 ? n : 1, sizeof(*req->outcomes));
	for (size_t i = 0; i < n; i++) {
		req->outcomes[i] = outcomes[i];
		req->outcomes[i].last_reply[sizeof(req->outcomes[i].last_reply) - 1] = '\0';
	}
	req->n_outcomes = n;
	req->events = sqlite_events_copy(events, n_events);
	req->n_events = n_events;
	store_req_submit(s, req);
}

static char *qw_dup(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

void store_queue_change(struct store *s, const struct store_queue_filter *filter,
                        enum store_queue_action action, size_t limit, struct loop *loop,
                        store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&qw_change_op, loop, cb, ctx);
	const char *strings[7] = {filter->queue_id, filter->sender,      filter->sender_domain,
	                          filter->rcpt,     filter->rcpt_domain, filter->auth_user,
	                          filter->client_ip};

	req->strv = xcalloc(7, sizeof(*req->strv));
	req->n_strv = 7;
	for (int i = 0; i < 7; i++)
		req->strv[i] = qw_dup(strings[i]);
	req->flag = filter->sender_null;
	req->mode = filter->state;
	req->num = filter->older_than > 0 ? (uint64_t)filter->older_than : 0;
	req->id = filter->after_id;
	req->id2 = (int64_t)limit;
	req->bits = (uint32_t)action;
	if (filter->n_ids > 0) {
		req->ids = xcalloc(filter->n_ids, sizeof(*req->ids));
		memcpy(req->ids, filter->ids, filter->n_ids * sizeof(*req->ids));
		req->n_ids = filter->n_ids;
	}
	store_req_submit(s, req);
}
