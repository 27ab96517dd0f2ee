/* The outbreak brake in the store (docs/abuse.md): an account's right to
 * send (users.send_suspended, suspended_reason, suspended_at, migration 8)
 * and what it sent lately, counted from the trace.
 *
 * suspended_at is the time of the last change: of the suspension while
 * send_suspended is 1, of the unsuspension (the counters' new start)
 * otherwise. */
#include "store/sqlite/sqlite_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/xalloc.h"

static void sq_send_state_fill(sqlite3_stmt *st, void *item)
{
	struct store_send_state *s = item;
	time_t at = (time_t)sqlite3_column_int64(st, 2);

	s->suspended = sqlite3_column_int(st, 0) != 0;
	sq_text(st, 1, s->reason, sizeof(s->reason));
	s->suspended_at = s->suspended ? at : 0;
	s->since = s->suspended ? 0 : at;
}

int store_user_send_state(struct store_reader *r, int64_t user_id, struct store_send_state *st_r)
{
	static const char sql[] =
		"SELECT send_suspended, suspended_reason, suspended_at FROM users WHERE id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	memset(st_r, 0, sizeof(*st_r));
	if (st != NULL)
		sqlite3_bind_int64(st, 1, user_id);
	return sq_read_one(r, st, sq_send_state_fill, st_r, "user_send_state");
}

static int sq_user_suspend_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "UPDATE users SET send_suspended = ?, suspended_reason = ?,"
				  " suspended_at = ? WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int(st, 1, req->flag ? 1 : 0);
	sqlite3_bind_text(st, 2, req->str1 != NULL ? req->str1 : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	sqlite3_bind_int64(st, 4, req->id);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	if (sqlite3_changes(s->w.db) == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "user %lld does not exist",
				      (long long)req->id);
	if (req->n_events > 0 && sqlite_trace_insert(s, req->events, req->n_events) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

static const struct store_op sq_user_suspend_op = { "user.set_send_suspended",
						    sq_user_suspend_apply };

void store_user_set_send_suspended(struct store *s, int64_t user_id, bool suspended,
				   const char *reason, const struct store_trace_event *events,
				   size_t n_events, struct loop *loop, store_done_cb *cb,
				   void *ctx)
{
	struct store_req *req = store_req_new(&sq_user_suspend_op, loop, cb, ctx);
	char buf[256];

	/* The record keeps what fits in struct store_send_state. */
	snprintf(buf, sizeof(buf), "%s", reason != NULL && suspended ? reason : "");
	req->str1 = xstrdup(buf);
	req->flag = suspended;
	req->id = user_id;
	if (n_events > 0) {
		req->events = sqlite_events_copy(events, n_events);
		req->n_events = n_events;
	}
	store_req_submit(s, req);
}

int store_account_activity(struct store_reader *r, const char *account, time_t hour_since,
			   time_t day_since, struct store_account_activity *a_r)
{
	/* Both walk trace_account (account, time) over the window only. */
	static const char sql_msgs[] =
		"SELECT COUNT(*), COALESCE(SUM(time >= ?3), 0) FROM trace"
		" WHERE account = ?1 AND time >= ?2 AND event = 'accepted'";
	static const char sql_rcpts[] =
		"SELECT COUNT(DISTINCT rcpt) FROM trace WHERE account = ?1 AND time >= ?2"
		" AND event = 'rcpt' AND detail LIKE 'accepted%'";
	sqlite3_stmt *st;
	int ret;

	memset(a_r, 0, sizeof(*a_r));
	if ((st = sq_get(&r->c, sql_msgs)) == NULL)
		goto fail;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)day_since);
	sqlite3_bind_int64(st, 3, (int64_t)hour_since);
	if ((ret = sq_row(st)) == 1) {
		a_r->messages_day = (uint64_t)sqlite3_column_int64(st, 0);
		a_r->messages_hour = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (ret < 0 || (st = sq_get(&r->c, sql_rcpts)) == NULL)
		goto fail;
	sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)hour_since);
	if ((ret = sq_row(st)) == 1)
		a_r->rcpts_hour = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	sqlite_read_failed(r, "account_activity");
	return -1;
}
