/* Mail reads on a store_reader: mailboxes, messages, blob bytes, trace (the
 * queue's are in sqlite_queue_read.c). */
#include "store/sqlite/sqlite_private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"

/* ---- mailboxes and messages --------------------------------------------- */

#define MR_MAILBOX_SELECT                                                                  \
	"SELECT id, user_id, name, special_use, subscribed, uidvalidity, uidnext,"         \
	" highestmodseq, messages, size FROM mailboxes"

static void mr_mailbox_fill(sqlite3_stmt *st, void *item)
{
	struct store_mailbox *m = item;

	m->id = sqlite3_column_int64(st, 0);
	m->user_id = sqlite3_column_int64(st, 1);
	sq_text(st, 2, m->name, sizeof(m->name));
	m->special_use = (enum store_special_use)sqlite3_column_int(st, 3);
	m->subscribed = sqlite3_column_int(st, 4) != 0;
	m->uidvalidity = (uint32_t)sqlite3_column_int64(st, 5);
	m->uidnext = (uint32_t)sqlite3_column_int64(st, 6);
	m->highestmodseq = (uint64_t)sqlite3_column_int64(st, 7);
	m->messages = (uint32_t)sqlite3_column_int64(st, 8);
	m->size = (uint64_t)sqlite3_column_int64(st, 9);
}

int store_mailbox_list(struct store_reader *r, int64_t user_id,
		       struct store_mailbox **list_r, size_t *n_r)
{
	static const char sql[] = MR_MAILBOX_SELECT " WHERE user_id = ? ORDER BY id";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_int64(st, 1, user_id);
	return sq_read_list(r, st, sizeof(**list_r), mr_mailbox_fill, list_r, n_r,
			    "mailbox_list");
}

int store_mailbox_get(struct store_reader *r, int64_t user_id, const char *name,
		      struct store_mailbox *m_r)
{
	static const char sql[] = MR_MAILBOX_SELECT " WHERE user_id = ? AND name = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL) {
		sqlite3_bind_int64(st, 1, user_id);
		/* INBOX in any case is INBOX (RFC 3501); other names are exact. */
		sqlite3_bind_text(st, 2, strcasecmp(name, "INBOX") == 0 ? "INBOX" : name, -1,
				  SQLITE_STATIC);
	}
	return sq_read_one(r, st, mr_mailbox_fill, m_r, "mailbox_get");
}

void sq_message_fill(sqlite3_stmt *st, void *item)
{
	struct store_message *m = item;

	m->id = sqlite3_column_int64(st, 0);
	m->mailbox_id = sqlite3_column_int64(st, 1);
	m->uid = (uint32_t)sqlite3_column_int64(st, 2);
	m->modseq = (uint64_t)sqlite3_column_int64(st, 3);
	m->flags = (uint32_t)sqlite3_column_int64(st, 4);
	sq_text(st, 5, m->keywords, sizeof(m->keywords));
	m->internaldate = (time_t)sqlite3_column_int64(st, 6);
	m->size = (uint64_t)sqlite3_column_int64(st, 7);
	m->blob_id = sqlite3_column_int64(st, 8);
}

/* sql's statement with (mailbox_id, first uid, limit 0: none) bound. */
static sqlite3_stmt *mr_get_range(struct store_reader *r, const char *sql, int64_t mailbox_id,
				  uint32_t first_uid, size_t limit)
{
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_int64(st, 2, first_uid);
		sqlite3_bind_int64(st, 3, limit == 0 ? -1 : (int64_t)limit);
	}
	return st;
}

/* sql's statement with (mailbox_id, modseq since) bound. */
static sqlite3_stmt *mr_get_since(struct store_reader *r, const char *sql, int64_t mailbox_id,
				  uint64_t since)
{
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL) {
		sqlite3_bind_int64(st, 1, mailbox_id);
		sqlite3_bind_int64(st, 2, (int64_t)since);
	}
	return st;
}

int store_message_list(struct store_reader *r, int64_t mailbox_id, uint32_t first_uid,
		       size_t limit, struct store_message **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT id, mailbox_id, uid, modseq, flags, keywords,"
				  " internaldate, size, blob_id FROM messages"
				  " WHERE mailbox_id = ? AND uid >= ? ORDER BY uid LIMIT ?";

	return sq_read_list(r, mr_get_range(r, sql, mailbox_id, first_uid, limit),
			    sizeof(**list_r), sq_message_fill, list_r, n_r, "message_list");
}

static void mr_brief_fill(sqlite3_stmt *st, void *item)
{
	struct store_message_brief *b = item;

	b->uid = (uint32_t)sqlite3_column_int64(st, 0);
	b->flags = (uint32_t)sqlite3_column_int64(st, 1);
	b->keywords = sqlite3_column_int(st, 2) != 0;
}

/* Answered from messages_view alone (test_store_brief_list_pages holds it). */
int store_message_brief_list(struct store_reader *r, int64_t mailbox_id, uint32_t first_uid,
			     size_t limit, struct store_message_brief **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT uid, flags, keywords <> '' FROM messages"
				  " INDEXED BY messages_view"
				  " WHERE mailbox_id = ? AND uid >= ? ORDER BY uid LIMIT ?";

	return sq_read_list(r, mr_get_range(r, sql, mailbox_id, first_uid, limit),
			    sizeof(**list_r), mr_brief_fill, list_r, n_r, "message_brief_list");
}

int store_mailbox_get_by_id(struct store_reader *r, int64_t mailbox_id,
			    struct store_mailbox *m_r)
{
	static const char sql[] = MR_MAILBOX_SELECT " WHERE id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_int64(st, 1, mailbox_id);
	return sq_read_one(r, st, mr_mailbox_fill, m_r, "mailbox_get_by_id");
}

/* The (mailbox_id, modseq) index finds them; few rows change between two
 * looks, so the sort by uid is cheap. */
int store_message_changed(struct store_reader *r, int64_t mailbox_id, uint64_t since,
			  struct store_message **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT id, mailbox_id, uid, modseq, flags, keywords,"
				  " internaldate, size, blob_id FROM messages"
				  " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid";

	return sq_read_list(r, mr_get_since(r, sql, mailbox_id, since), sizeof(**list_r),
			    sq_message_fill, list_r, n_r, "message_changed");
}

static void mr_uid_fill(sqlite3_stmt *st, void *item)
{
	*(uint32_t *)item = (uint32_t)sqlite3_column_int64(st, 0);
}

int store_expunged_since(struct store_reader *r, int64_t mailbox_id, uint64_t since,
			 uint32_t **uids_r, size_t *n_r)
{
	static const char sql[] = "SELECT uid FROM expunged"
				  " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid";

	return sq_read_list(r, mr_get_since(r, sql, mailbox_id, since), sizeof(**uids_r),
			    mr_uid_fill, uids_r, n_r, "expunged_since");
}

int store_message_changed_uids(struct store_reader *r, int64_t mailbox_id, uint64_t since,
			       uint32_t **uids_r, size_t *n_r)
{
	static const char sql[] = "SELECT uid FROM messages"
				  " WHERE mailbox_id = ? AND modseq > ? ORDER BY uid";

	return sq_read_list(r, mr_get_since(r, sql, mailbox_id, since), sizeof(**uids_r),
			    mr_uid_fill, uids_r, n_r, "message_changed_uids");
}

/* ---- blobs -------------------------------------------------------------- */

int store_blob_read(struct store_reader *r, int64_t blob_id, void **data_r, size_t *size_r,
		    const char **error_r)
{
	static const char sql[] = "SELECT sha256, size, segment, offset FROM blobs WHERE id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	uint8_t sha[BLOB_SHA256_LEN];
	uint64_t size = 0, offset = 0;
	uint32_t segment = 0;
	const char *error;
	int ret;

	if (error_r == NULL)
		error_r = &error;
	*error_r = NULL;
	if (st == NULL) {
		*error_r = sqlite3_errmsg(r->c.db);
		return -1;
	}
	sqlite3_bind_int64(st, 1, blob_id);
	if ((ret = sq_row(st)) == 1 && sqlite3_column_bytes(st, 0) == BLOB_SHA256_LEN) {
		memcpy(sha, sqlite3_column_blob(st, 0), BLOB_SHA256_LEN);
		size = (uint64_t)sqlite3_column_int64(st, 1);
		segment = (uint32_t)sqlite3_column_int64(st, 2);
		offset = (uint64_t)sqlite3_column_int64(st, 3);
	} else if (ret == 1) {
		ret = -1;
	}
	sqlite3_reset(st);
	if (ret != 1) {
		if (ret < 0)
			*error_r = "reading the blob index failed";
		return -1;
	}
	if (blob_read(r->blobs, segment, offset, size, sha, data_r, error_r) < 0) {
		log_error("store", "event=blob_read_failed blob=%lld error=\"%s\"",
			  (long long)blob_id, *error_r);
		return -1;
	}
	*size_r = (size_t)size;
	return 0;
}

/* ---- trace -------------------------------------------------------------- */

/* One statement per combination of filter fields, so that each can use the
 * (field, time) index; built once, cached per reader by address. */
#define MR_TRACE_FIELDS 6
static const char *const mr_trace_fields[MR_TRACE_FIELDS] = {
	"queue_id", "message_id", "account", "client_ip", "sender", "rcpt",
};
static char mr_trace_sql[1 << MR_TRACE_FIELDS][512];
static pthread_once_t mr_trace_once = PTHREAD_ONCE_INIT;

static void mr_trace_build(void)
{
	for (unsigned mask = 0; mask < (1u << MR_TRACE_FIELDS); mask++) {
		char *p = mr_trace_sql[mask];
		size_t left = sizeof(mr_trace_sql[mask]);
		int n = snprintf(p, left, "SELECT time, queue_id, message_id, event, account,"
					  " protocol, client_ip, session, sender, rcpt, detail"
					  " FROM trace WHERE time >= ?1 AND time <= ?2");
		for (unsigned i = 0; i < MR_TRACE_FIELDS; i++) {
			if (mask & (1u << i))
				n += snprintf(p + n, left - (size_t)n, " AND %s = ?%u",
					      mr_trace_fields[i], i + 3);
		}
		snprintf(p + n, left - (size_t)n, " ORDER BY time, id");
	}
}

static void mr_trace_fill(sqlite3_stmt *st, void *item)
{
	struct store_trace_event *e = item;

	e->time = (time_t)sqlite3_column_int64(st, 0);
	sq_text(st, 1, e->queue_id, sizeof(e->queue_id));
	sq_text(st, 2, e->message_id, sizeof(e->message_id));
	sq_text(st, 3, e->event, sizeof(e->event));
	sq_text(st, 4, e->account, sizeof(e->account));
	sq_text(st, 5, e->protocol, sizeof(e->protocol));
	sq_text(st, 6, e->client_ip, sizeof(e->client_ip));
	sq_text(st, 7, e->session, sizeof(e->session));
	sq_text(st, 8, e->sender, sizeof(e->sender));
	sq_text(st, 9, e->rcpt, sizeof(e->rcpt));
	sq_text(st, 10, e->detail, sizeof(e->detail));
}

int store_trace_query(struct store_reader *r, const struct store_trace_event *filter,
		      time_t since, time_t until, struct store_trace_event **list_r,
		      size_t *n_r)
{
	const char *const values[MR_TRACE_FIELDS] = {
		filter->queue_id,  filter->message_id, filter->account,
		filter->client_ip, filter->sender,     filter->rcpt,
	};
	/* The caller's fields need not be terminated at their very end. */
	const size_t sizes[MR_TRACE_FIELDS] = {
		sizeof(filter->queue_id),  sizeof(filter->message_id), sizeof(filter->account),
		sizeof(filter->client_ip), sizeof(filter->sender),     sizeof(filter->rcpt),
	};
	unsigned mask = 0;
	sqlite3_stmt *st;

	pthread_once(&mr_trace_once, mr_trace_build);
	for (unsigned i = 0; i < MR_TRACE_FIELDS; i++)
		if (values[i][0] != '\0')
			mask |= 1u << i;
	if ((st = sq_get(&r->c, mr_trace_sql[mask])) != NULL) {
		sqlite3_bind_int64(st, 1, (int64_t)since);
		sqlite3_bind_int64(st, 2, until != 0 ? (int64_t)until : INT64_MAX);
		for (unsigned i = 0; i < MR_TRACE_FIELDS; i++)
			if (mask & (1u << i))
				sqlite3_bind_text(st, (int)i + 3, values[i],
						  (int)strnlen(values[i], sizes[i]),
						  SQLITE_STATIC);
	}
	return sq_read_list(r, st, sizeof(**list_r), mr_trace_fill, list_r, n_r,
			    "trace_query");
}

/* ---- stored structure, partial reads --------------------------------------- */

static char *mr_text_dup(sqlite3_stmt *st, int col)
{
	const unsigned char *p = sqlite3_column_text(st, col);

	return p != NULL ? xstrdup((const char *)p) : NULL;
}

int store_message_structure(struct store_reader *r, int64_t mailbox_id, uint32_t uid,
			    struct store_structure *out)
{
	static const char sql[] = "SELECT envelope, bodystructure, body, structure FROM messages"
				  " WHERE mailbox_id = ? AND uid = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	int ret;

	memset(out, 0, sizeof(*out));
	if (st == NULL) {
		sqlite_read_failed(r, "message_structure");
		return -1;
	}
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	if ((ret = sq_row(st)) == 1) {
		out->envelope = mr_text_dup(st, 0);
		out->bodystructure = mr_text_dup(st, 1);
		out->body = mr_text_dup(st, 2);
		if (sqlite3_column_bytes(st, 3) > 0) {
			out->tree_size = (size_t)sqlite3_column_bytes(st, 3);
			out->tree = xmalloc(out->tree_size);
			memcpy(out->tree, sqlite3_column_blob(st, 3), out->tree_size);
		}
	}
	sqlite3_reset(st);
	if (ret < 0)
		sqlite_read_failed(r, "message_structure");
	return ret == 1 ? 0 : -1;
}

int store_blob_read_range(struct store_reader *r, int64_t blob_id, uint64_t offset, size_t len,
			  void **data_r, size_t *size_r, const char **error_r)
{
	static const char sql[] = "SELECT size, segment, offset FROM blobs WHERE id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	uint64_t size = 0, at = 0;
	uint32_t segment = 0;
	void *buf;
	int ret;

	*error_r = NULL;
	if (st == NULL) {
		*error_r = sqlite3_errmsg(r->c.db);
		return -1;
	}
	sqlite3_bind_int64(st, 1, blob_id);
	if ((ret = sq_row(st)) == 1) {
		size = (uint64_t)sqlite3_column_int64(st, 0);
		segment = (uint32_t)sqlite3_column_int64(st, 1);
		at = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	if (ret != 1) {
		*error_r = ret < 0 ? "reading the blob index failed" : "no such message content";
		return -1;
	}
	if (offset > size)
		offset = size;
	if (len > size - offset)
		len = (size_t)(size - offset);
	buf = xmalloc(len + 1);
	if (len > 0 && blob_read_range(r->blobs, segment, at, offset, buf, len, error_r) < 0) {
		free(buf);
		return -1;
	}
	*data_r = buf;
	*size_r = len;
	return 0;
}
