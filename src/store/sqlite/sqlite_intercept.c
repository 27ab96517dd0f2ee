/* Interception in the store (docs/trace.md, "Interception"): the orders
 * (migration 7), the account's trace events past what was handed over, and
 * messages by Message-ID for export. */
#include "store/sqlite/sqlite_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

/* ---- orders: writes ---------------------------------------------------------- */

static int ic_add_apply(struct store *s, struct store_req *req)
{
	static const char sql_user[] = "SELECT 1 FROM users WHERE id = ?";
	static const char sql_max[] = "SELECT COALESCE(MAX(id), 0) FROM trace";
	static const char sql[] = "INSERT INTO intercepts(user_id, to_address, dir, case_id,"
				  " created, events_sent) VALUES(?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql_user);
	int64_t max_id = 0;
	int ret;

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, req->id);
	ret = sq_row(st);
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	if (ret == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "no user with id %lld",
				      (long long)req->id);
	if ((st = sq_get(&s->w, sql_max)) == NULL || sq_row(st) != 1)
		return store_req_fail_db(s, req);
	max_id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, req->id);
	sq_bind_text_or_null(st, 2, req->str1);
	sq_bind_text_or_null(st, 3, req->str2);
	sqlite3_bind_text(st, 4, req->str3, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)s->batch_time);
	sqlite3_bind_int64(st, 6, max_id);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_last_insert_rowid(s->w.db);
	return 0;
}

static int ic_del_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "DELETE FROM intercepts WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, req->id);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	if (sqlite3_changes(s->w.db) == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "interception %lld does not exist",
				      (long long)req->id);
	req->reply.id = req->id;
	return 0;
}

static int ic_set_sent_apply(struct store *s, struct store_req *req)
{
	static const char sql[] =
		"UPDATE intercepts SET events_sent = ?2 WHERE id = ?1 AND events_sent < ?2";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, req->id);
	sqlite3_bind_int64(st, 2, req->id2);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_changes(s->w.db);
	return 0;
}

static const struct store_op ic_add_op = { "intercept.add", ic_add_apply };
static const struct store_op ic_del_op = { "intercept.del", ic_del_apply };
static const struct store_op ic_set_sent_op = { "intercept.set_sent", ic_set_sent_apply };

void store_intercept_add(struct store *s, const struct store_intercept *i, struct loop *loop,
			 store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&ic_add_op, loop, cb, ctx);

	req->id = i->user_id;
	req->str1 = xstrndup(i->to_address, sizeof(i->to_address) - 1);
	req->str2 = xstrndup(i->dir, sizeof(i->dir) - 1);
	req->str3 = xstrndup(i->case_id, sizeof(i->case_id) - 1);
	store_req_submit(s, req);
}

void store_intercept_del(struct store *s, int64_t id, struct loop *loop, store_done_cb *cb,
			 void *ctx)
{
	struct store_req *req = store_req_new(&ic_del_op, loop, cb, ctx);

	req->id = id;
	store_req_submit(s, req);
}

void store_intercept_set_sent(struct store *s, int64_t id, int64_t events_sent,
			      struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&ic_set_sent_op, loop, cb, ctx);

	req->id = id;
	req->id2 = events_sent;
	store_req_submit(s, req);
}

/* ---- orders: reads ----------------------------------------------------------- */

static void ic_fill(sqlite3_stmt *st, void *item)
{
	struct store_intercept *i = item;
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];

	i->id = sqlite3_column_int64(st, 0);
	i->user_id = sqlite3_column_int64(st, 1);
	sq_text(st, 2, local, sizeof(local));
	sq_text(st, 3, domain, sizeof(domain));
	snprintf(i->address, sizeof(i->address), "%s@%s", local, domain);
	sq_text(st, 4, i->to_address, sizeof(i->to_address));
	sq_text(st, 5, i->dir, sizeof(i->dir));
	sq_text(st, 6, i->case_id, sizeof(i->case_id));
	i->created = (time_t)sqlite3_column_int64(st, 7);
	i->events_sent = sqlite3_column_int64(st, 8);
}

int store_intercept_list(struct store_reader *r, struct store_intercept **list_r, size_t *n_r)
{
	static const char sql[] =
		"SELECT i.id, i.user_id, u.localpart, d.name, i.to_address, i.dir, i.case_id,"
		" i.created, i.events_sent FROM intercepts i JOIN users u ON u.id = i.user_id"
		" JOIN domains d ON d.id = u.domain_id ORDER BY i.id";

	return sq_read_list(r, sq_get(&r->c, sql), sizeof(**list_r), ic_fill, list_r, n_r,
			    "intercept_list");
}

/* ---- events and messages ------------------------------------------------------ */

struct ic_event {
	int64_t id;
	struct store_trace_event e;
};

static void ic_event_fill(sqlite3_stmt *st, void *item)
{
	struct ic_event *x = item;

	x->id = sqlite3_column_int64(st, 0);
	sq_trace_event_fill(st, &x->e);
}

int store_trace_account_after(struct store_reader *r, const char *account, int64_t after_id,
			      time_t since, time_t until, size_t limit,
			      struct store_trace_event **list_r, int64_t **ids_r, size_t *n_r)
{
	/* account = ? makes the partial index trace_account usable; the
	 * column's NOCASE collation applies. */
	static const char sql[] =
		"SELECT id, time, queue_id, message_id, event, account, protocol, client_ip,"
		" session, sender, rcpt, detail FROM trace WHERE account = ?1"
		" AND time >= ?2 AND time <= ?3 AND id > ?4 ORDER BY id LIMIT ?5";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	struct ic_event *rows;
	size_t n;

	if (st != NULL) {
		sqlite3_bind_text(st, 1, account, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)since);
		sqlite3_bind_int64(st, 3, until != 0 ? (int64_t)until : INT64_MAX);
		sqlite3_bind_int64(st, 4, after_id);
		sqlite3_bind_int64(st, 5, limit > 0 ? (int64_t)limit : -1);
	}
	if (sq_read_list(r, st, sizeof(*rows), ic_event_fill, &rows, &n, "trace_account_after") < 0)
		return -1;
	*list_r = xcalloc(n > 0 ? n : 1, sizeof(**list_r));
	*ids_r = xcalloc(n > 0 ? n : 1, sizeof(**ids_r));
	for (size_t i = 0; i < n; i++) {
		(*list_r)[i] = rows[i].e;
		(*ids_r)[i] = rows[i].id;
	}
	*n_r = n;
	free(rows);
	return 0;
}

int store_message_find_by_message_id(struct store_reader *r, const char *message_id,
				     struct store_message **list_r, size_t *n_r)
{
	static const char sql[] =
		"SELECT m.id, m.mailbox_id, m.uid, m.modseq, m.flags, m.keywords,"
		" m.internaldate, m.size, m.blob_id FROM blobs b JOIN messages m"
		" ON m.blob_id = b.id WHERE b.message_id = ? ORDER BY m.id";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_text(st, 1, message_id, -1, SQLITE_STATIC);
	return sq_read_list(r, st, sizeof(**list_r), sq_message_fill, list_r, n_r,
			    "message_find_by_message_id");
}
