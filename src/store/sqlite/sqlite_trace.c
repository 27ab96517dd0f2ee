/* Accountability in the store: the Message-ID of a blob, the trace by
 * message, trace retention and the hash-chained audit log. */
#include "store/sqlite/sqlite_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "trace/trace_audit.h"

/* ---- Message-ID per blob --------------------------------------------------- */

int sqlite_blob_set_message_id(struct store *s, int64_t blob_id, const struct store_req *req)
{
	/* A blob delivered again keeps the Message-ID it first had: the same
	 * bytes carry the same header. */
	static const char sql[] =
		"UPDATE blobs SET message_id = ?2 WHERE id = ?1 AND message_id IS NULL";
	const char *message_id = req->delivery->envelope.message_id;
	sqlite3_stmt *st;

	/* A local delivery has no envelope: the session's events name it. */
	for (size_t i = 0; message_id[0] == '\0' && i < req->n_events; i++)
		message_id = req->events[i].message_id;
	if (message_id[0] == '\0')
		return 0;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, blob_id);
	sqlite3_bind_text(st, 2, message_id, -1, SQLITE_STATIC);
	return sq_run(st);
}

int store_blob_message_id(struct store_reader *r, int64_t blob_id, char *buf, size_t size)
{
	static const char sql[] = "SELECT message_id FROM blobs WHERE id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	int ret;

	buf[0] = '\0';
	if (st == NULL) {
		sqlite_read_failed(r, "blob_message_id");
		return -1;
	}
	sqlite3_bind_int64(st, 1, blob_id);
	if ((ret = sq_row(st)) == 1)
		sq_text(st, 0, buf, size);
	sqlite3_reset(st);
	if (ret < 0)
		sqlite_read_failed(r, "blob_message_id");
	return ret < 0 ? -1 : 0;
}

int store_message_message_id(struct store_reader *r, int64_t mailbox_id, uint32_t uid,
			     char *buf, size_t size)
{
	static const char sql[] = "SELECT b.message_id FROM messages m JOIN blobs b"
				  " ON b.id = m.blob_id WHERE m.mailbox_id = ? AND m.uid = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	int ret;

	buf[0] = '\0';
	if (st == NULL) {
		sqlite_read_failed(r, "message_message_id");
		return -1;
	}
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	if ((ret = sq_row(st)) == 1)
		sq_text(st, 0, buf, size);
	sqlite3_reset(st);
	if (ret < 0)
		sqlite_read_failed(r, "message_message_id");
	return ret < 0 ? -1 : 0;
}

/* ---- trace by message ------------------------------------------------------ */

#define ST_TRACE_COLS                                                                     \
	"SELECT id, time, queue_id, message_id, event, account, protocol, client_ip,"     \
	" session, sender, rcpt, detail FROM trace"

void sq_trace_event_fill(sqlite3_stmt *st, void *item)
{
	struct store_trace_event *e = item;

	e->time = (time_t)sqlite3_column_int64(st, 1);
	sq_text(st, 2, e->queue_id, sizeof(e->queue_id));
	sq_text(st, 3, e->message_id, sizeof(e->message_id));
	sq_text(st, 4, e->event, sizeof(e->event));
	sq_text(st, 5, e->account, sizeof(e->account));
	sq_text(st, 6, e->protocol, sizeof(e->protocol));
	sq_text(st, 7, e->client_ip, sizeof(e->client_ip));
	sq_text(st, 8, e->session, sizeof(e->session));
	sq_text(st, 9, e->sender, sizeof(e->sender));
	sq_text(st, 10, e->rcpt, sizeof(e->rcpt));
	sq_text(st, 11, e->detail, sizeof(e->detail));
}

/* Each half of the UNION is served by one partial index (trace_message_id,
 * trace_queue_id); an OR in one WHERE would make SQLite scan.  UNION drops
 * the events found by both halves (the id is selected for that). */
int store_trace_query_message(struct store_reader *r, const char *message_id, time_t since,
			      time_t until, struct store_trace_event **list_r, size_t *n_r)
{
	static const char sql[] =
		ST_TRACE_COLS " WHERE message_id = ?1 AND message_id IS NOT NULL"
		" AND time >= ?2 AND time <= ?3"
		" UNION " ST_TRACE_COLS " WHERE queue_id IS NOT NULL AND queue_id IN"
		" (SELECT DISTINCT queue_id FROM trace WHERE message_id = ?1"
		" AND message_id IS NOT NULL AND queue_id IS NOT NULL)"
		" AND time >= ?2 AND time <= ?3"
		" ORDER BY 2, 1";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL) {
		sqlite3_bind_text(st, 1, message_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)since);
		sqlite3_bind_int64(st, 3, until != 0 ? (int64_t)until : INT64_MAX);
	}
	return sq_read_list(r, st, sizeof(**list_r), sq_trace_event_fill, list_r, n_r,
			    "trace_query_message");
}

/* ---- retention --------------------------------------------------------------- */

static int st_trace_expire_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "DELETE FROM trace WHERE id IN (SELECT id FROM trace"
				  " WHERE time < ? ORDER BY time LIMIT ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, req->id);
	sqlite3_bind_int64(st, 2, (int64_t)req->num);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_changes(s->w.db);
	return 0;
}

static const struct store_op st_trace_expire_op = { "trace.expire", st_trace_expire_apply };

void store_trace_expire(struct store *s, time_t before, size_t limit, struct loop *loop,
			store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&st_trace_expire_op, loop, cb, ctx);

	req->id = (int64_t)before;
	req->num = limit;
	store_req_submit(s, req);
}

/* ---- audit ------------------------------------------------------------------ */

static void st_audit_fields(const struct store_audit *a, struct trace_audit_fields *f)
{
	f->id = a->id;
	f->time = (int64_t)a->time;
	f->actor = a->actor;
	f->command = a->command;
	f->args = a->args;
	f->before = a->before;
	f->after = a->after;
}

/* The link: the hash of the record with the highest id, and the next id
 * (AUTOINCREMENT's counter, so a removed last record is not reused). */
static int st_audit_tail(struct store *s, char prev[TRACE_AUDIT_HASH_HEX], int64_t *next_r)
{
	static const char sql_prev[] = "SELECT hash FROM audit ORDER BY id DESC LIMIT 1";
	static const char sql_seq[] = "SELECT seq FROM sqlite_sequence WHERE name = 'audit'";
	sqlite3_stmt *st = sq_get(&s->w, sql_prev);
	int ret;

	prev[0] = '\0';
	if (st == NULL || (ret = sq_row(st)) < 0)
		return -1;
	if (ret == 1)
		sq_text(st, 0, prev, TRACE_AUDIT_HASH_HEX);
	sqlite3_reset(st);
	*next_r = 1;
	if ((st = sq_get(&s->w, sql_seq)) == NULL || (ret = sq_row(st)) < 0)
		return -1;
	if (ret == 1)
		*next_r = sqlite3_column_int64(st, 0) + 1;
	sqlite3_reset(st);
	return 0;
}

static int st_audit_append_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "INSERT INTO audit(id, time, actor, command, args, before,"
				  " after, hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?)";
	struct store_audit *a = (struct store_audit *)req->str1;
	char prev[TRACE_AUDIT_HASH_HEX];
	struct trace_audit_fields f;
	sqlite3_stmt *st;

	if (st_audit_tail(s, prev, &a->id) < 0)
		return store_req_fail_db(s, req);
	a->time = s->batch_time;
	st_audit_fields(a, &f);
	if (trace_audit_hash(prev, &f, a->hash) < 0)
		return store_req_fail(req, STORE_ERR_IO, "audit: SHA-256 failed");
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, a->id);
	sqlite3_bind_int64(st, 2, (int64_t)a->time);
	sqlite3_bind_text(st, 3, a->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->command, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, a->args, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, a->before, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, a->after, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, a->hash, -1, SQLITE_STATIC);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = a->id;
	return 0;
}

static const struct store_op st_audit_append_op = { "audit.append", st_audit_append_apply };

void store_audit_append(struct store *s, const struct store_audit *a, struct loop *loop,
			store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&st_audit_append_op, loop, cb, ctx);
	struct store_audit *copy = xmalloc(sizeof(*copy));

	/* Cut every field inside its array now, so that the hash covers
	 * exactly what is stored and read back. */
	*copy = *a;
	copy->actor[sizeof(copy->actor) - 1] = '\0';
	copy->command[sizeof(copy->command) - 1] = '\0';
	copy->args[sizeof(copy->args) - 1] = '\0';
	copy->before[sizeof(copy->before) - 1] = '\0';
	copy->after[sizeof(copy->after) - 1] = '\0';
	req->str1 = (char *)copy;
	store_req_submit(s, req);
}

static void st_audit_fill(sqlite3_stmt *st, void *item)
{
	struct store_audit *a = item;

	a->id = sqlite3_column_int64(st, 0);
	a->time = (time_t)sqlite3_column_int64(st, 1);
	sq_text(st, 2, a->actor, sizeof(a->actor));
	sq_text(st, 3, a->command, sizeof(a->command));
	sq_text(st, 4, a->args, sizeof(a->args));
	sq_text(st, 5, a->before, sizeof(a->before));
	sq_text(st, 6, a->after, sizeof(a->after));
	sq_text(st, 7, a->hash, sizeof(a->hash));
}

int store_audit_list(struct store_reader *r, time_t since, int64_t after_id, size_t limit,
		     struct store_audit **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT id, time, actor, command, args, before, after, hash"
				  " FROM audit WHERE id > ? AND time >= ? ORDER BY id LIMIT ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL) {
		sqlite3_bind_int64(st, 1, after_id);
		sqlite3_bind_int64(st, 2, (int64_t)since);
		sqlite3_bind_int64(st, 3, limit > 0 ? (int64_t)limit : -1);
	}
	return sq_read_list(r, st, sizeof(**list_r), st_audit_fill, list_r, n_r, "audit_list");
}

int store_audit_last_id(struct store_reader *r, int64_t *id_r)
{
	static const char sql[] =
		"SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),"
		" COALESCE((SELECT MAX(id) FROM audit), 0))";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	int ret = st != NULL ? sq_row(st) : -1;

	if (ret == 1)
		*id_r = sqlite3_column_int64(st, 0);
	if (st != NULL)
		sqlite3_reset(st);
	if (ret != 1)
		sqlite_read_failed(r, "audit_last_id");
	return ret == 1 ? 0 : -1;
}
