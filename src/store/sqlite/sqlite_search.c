/* Full-text search on the message_text index (schema 5): the trigram index
 * names the candidate messages, keel_text_has() checks each candidate's
 * stored text with IMAP's own rule, so the answer is exact.
 *
 * Why both: the trigram tokenizer folds case beyond ASCII and cannot tell a
 * field's name from its value or one field from another; IMAP compares
 * ASCII case-insensitively and HEADER names one field.  Every message that
 * matches by IMAP's rule also matches the index's looser phrase query, so
 * the check only removes candidates and never misses one. */
#include "store/sqlite/sqlite_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

static bool sr_memcasemem(const char *hay, size_t hay_len, const char *needle, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i + len <= hay_len; i++)
		if (strncasecmp(hay + i, needle, len) == 0)
			return true;
	return false;
}

/* Whether one entry of text[0, len) (see store.h) matches. */
static bool sr_entry_has(const char *e, size_t len, const char *needle, size_t nlen,
			 bool header, const char *field)
{
	const char *colon;

	if (!header)
		return sr_memcasemem(e, len, needle, nlen);
	if ((colon = memchr(e, ':', len)) == NULL)
		return false;
	if (field != NULL &&
	    ((size_t)(colon - e) != strlen(field) || strncasecmp(e, field, strlen(field)) != 0))
		return false;
	return sr_memcasemem(colon + 1, len - (size_t)(colon - e) - 1, needle, nlen);
}

/* keel_text_has(text, needle, header, field) */
static void sr_text_has(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *text = (const char *)sqlite3_value_text(argv[0]);
	size_t len = (size_t)sqlite3_value_bytes(argv[0]);
	const char *needle = (const char *)sqlite3_value_text(argv[1]);
	size_t nlen = (size_t)sqlite3_value_bytes(argv[1]);
	bool header = sqlite3_value_int(argv[2]) != 0;
	const char *field = (const char *)sqlite3_value_text(argv[3]);
	int found = 0;

	for (size_t pos = 0; text != NULL && needle != NULL && pos < len && !found;) {
		const char *end = memchr(text + pos, STORE_TEXT_SEP, len - pos);
		size_t stop = end != NULL ? (size_t)(end - text) : len;
		found = sr_entry_has(text + pos, stop - pos, needle, nlen, header, field);
		pos = stop + 1;
	}
	sqlite3_result_int(ctx, found);
}

int sqlite_text_functions(sqlite3 *db)
{
	return sqlite3_create_function(db, "keel_text_has", 4,
				       SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
				       NULL, sr_text_has, NULL, NULL) == SQLITE_OK
		       ? 0
		       : -1;
}

/* The index names the candidates once, then each is looked up by id.  The
 * unary + keeps SQLite from the other plan, which walks the mailbox by
 * (mailbox_id, uid) and runs the whole MATCH once per message: 27 ms for a
 * 200-message folder and 570 ms for 2,000 (against 0.5 ms this way), growing
 * with the folder.  test_store_search_plan (src/store/test_store.c) holds it. */
#define SR_SELECT                                                                          \
	"SELECT m.uid FROM message_text t JOIN messages m ON m.id = t.rowid"               \
	" WHERE t.message_text MATCH ?1 AND +m.mailbox_id = ?2 AND "

static const char *const sr_sql[] = {
	[STORE_SEARCH_HEADER] = SR_SELECT "keel_text_has(t.header, ?3, 1, ?4) ORDER BY m.uid",
	[STORE_SEARCH_BODY] = SR_SELECT "keel_text_has(t.body, ?3, 0, NULL) ORDER BY m.uid",
	[STORE_SEARCH_TEXT] = SR_SELECT "(keel_text_has(t.header, ?3, 1, NULL)"
					" OR keel_text_has(t.nested, ?3, 1, NULL)"
					" OR keel_text_has(t.body, ?3, 0, NULL)) ORDER BY m.uid",
};

static const char *const sr_columns[] = {
	[STORE_SEARCH_HEADER] = "header",
	[STORE_SEARCH_BODY] = "body",
	[STORE_SEARCH_TEXT] = "{header nested body}",
};

/* An FTS5 phrase on the columns: the needle quoted, its quotes doubled. */
static char *sr_query(enum store_search_where where, const char *needle, size_t len)
{
	size_t cl = strlen(sr_columns[where]), n = 0;
	char *q = xmalloc(cl + 2 * len + 8);

	memcpy(q, sr_columns[where], cl);
	n = cl;
	memcpy(q + n, " : \"", 4);
	n += 4;
	for (size_t i = 0; i < len; i++) {
		if (needle[i] == '"')
			q[n++] = '"';
		q[n++] = needle[i];
	}
	q[n++] = '"';
	q[n] = '\0';
	return q;
}

static void sr_uid_fill(sqlite3_stmt *st, void *item)
{
	*(uint32_t *)item = (uint32_t)sqlite3_column_int64(st, 0);
}

/* Messages without an index row were stored before schema 5.  FTS5 keeps
 * one row per document in its shadow table message_text_docsize (id = the
 * rowid); a primary-key lookup there costs a fraction of asking the virtual
 * table for the rowid (0.5 ms against 8.9 ms for 2,000 messages). */
static int sr_unindexed(struct store_reader *r, int64_t mailbox_id, uint32_t **uids_r,
			size_t *n_r)
{
	static const char sql[] = "SELECT uid FROM messages m WHERE mailbox_id = ? AND NOT EXISTS"
				  " (SELECT 1 FROM message_text_docsize WHERE id = m.id) ORDER BY uid";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_int64(st, 1, mailbox_id);
	return sq_read_list(r, st, sizeof(**uids_r), sr_uid_fill, uids_r, n_r, "search_unindexed");
}

int store_message_search_text(struct store_reader *r, int64_t mailbox_id,
			      enum store_search_where where, const char *field,
			      const char *needle, size_t len, uint32_t **hits_r, size_t *n_hits_r,
			      uint32_t **unindexed_r, size_t *n_unindexed_r)
{
	sqlite3_stmt *st;
	char *query;

	*hits_r = *unindexed_r = NULL;
	*n_hits_r = *n_unindexed_r = 0;
	if (where > STORE_SEARCH_TEXT || !store_search_indexable(needle, len))
		return -1;
	query = sr_query(where, needle, len);
	if ((st = sq_get(&r->c, sr_sql[where])) != NULL) {
		sqlite3_bind_text(st, 1, query, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, mailbox_id);
		sqlite3_bind_text(st, 3, needle, (int)len, SQLITE_STATIC);
		if (where == STORE_SEARCH_HEADER && field != NULL)
			sqlite3_bind_text(st, 4, field, -1, SQLITE_STATIC);
	}
	if (sq_read_list(r, st, sizeof(**hits_r), sr_uid_fill, hits_r, n_hits_r, "search_text") <
	    0) {
		free(query);
		return -1;
	}
	free(query);
	if (sr_unindexed(r, mailbox_id, unindexed_r, n_unindexed_r) < 0) {
		free(*hits_r);
		*hits_r = NULL;
		*n_hits_r = 0;
		return -1;
	}
	return 0;
}
