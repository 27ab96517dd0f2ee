/* Mailbox changes for IMAP and POP3: rename, delete, subscribe, flags,
 * expunge, copy and move.  Same pattern as sqlite_mail.c: the public
 * functions copy and queue; *_apply functions run on the committer inside
 * the request's savepoint.  Each apply notes the mailboxes it changed
 * (sqlite_req_changed) for the notifier.
 *
 * Modseqs (RFC 7162): one request that changes messages of a mailbox takes
 * one new value, highestmodseq + 1, for every message it changes there; a
 * request that changes nothing takes none. */
#include "store/sqlite/sqlite_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define MB_FLAGS_ALL                                                                       \
	(STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |  \
	 STORE_FLAG_DRAFT)
/* What struct store_message can carry. */
#define MB_KEYWORDS_MAX (sizeof(((struct store_message *)0)->keywords) - 1)

struct mb_box {
	int64_t id, user_id;
	char name[STORE_MAILBOX_MAX + 1];
	uint32_t uidvalidity, uidnext;
	uint64_t highestmodseq;
};

static int mb_run_id(struct store *s, const char *sql, int64_t id)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return sq_run(st);
}

static int mb_run_ids(struct store *s, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	return sq_run(st);
}

/* The mailbox row, or the request failed (NOT_FOUND or the db error). */
static int mb_box_require(struct store *s, struct store_req *req, int64_t id, struct mb_box *b)
{
	static const char sql[] = "SELECT user_id, name, uidvalidity, uidnext, highestmodseq"
				  " FROM mailboxes WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	memset(b, 0, sizeof(*b));
	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, id);
	if ((ret = sq_row(st)) == 1) {
		b->id = id;
		b->user_id = sqlite3_column_int64(st, 0);
		sq_text(st, 1, b->name, sizeof(b->name));
		b->uidvalidity = (uint32_t)sqlite3_column_int64(st, 2);
		b->uidnext = (uint32_t)sqlite3_column_int64(st, 3);
		b->highestmodseq = (uint64_t)sqlite3_column_int64(st, 4);
	}
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	if (ret == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "mailbox %lld does not exist",
				      (long long)id);
	return 0;
}

/* ---- rename ------------------------------------------------------------- */

/* Is name old or below it in the hierarchy? */
static bool mb_in_tree(const char *name, const char *old)
{
	size_t n = strlen(old);

	return strncmp(name, old, n) == 0 && (name[n] == '\0' || name[n] == '/');
}

static int mb_rename_check(struct store_req *req, const struct mb_box *b)
{
	const char *to = req->str1;

	if (*to == '\0' || strlen(to) > STORE_MAILBOX_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid mailbox name");
	/* RFC 3501's INBOX rename (move the messages, keep an empty INBOX) is
	 * the IMAP layer's, with store_copy. */
	if (strcmp(b->name, "INBOX") == 0)
		return store_req_fail(req, STORE_ERR_INVALID, "INBOX cannot be renamed");
	if (strcasecmp(to, "INBOX") == 0 || strcmp(to, b->name) == 0)
		return store_req_fail(req, STORE_ERR_EXISTS, "mailbox %s already exists", to);
	if (mb_in_tree(to, b->name))
		return store_req_fail(req, STORE_ERR_INVALID, "cannot rename %s into itself",
				      b->name);
	return 0;
}

struct mb_renamed {
	int64_t id;
	uint64_t modseq;
	char *to;
};

/* 1 when to is taken by a mailbox outside the renamed tree, 0 when free. */
static int mb_rename_taken(struct store *s, int64_t user_id, const char *to, const char *old)
{
	static const char sql[] =
		"SELECT 1 FROM mailboxes WHERE user_id = ?1 AND name = ?2"
		" AND name <> ?3 AND substr(name, 1, length(?3) + 1) <> ?3 || '/'";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_text(st, 2, to, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, old, -1, SQLITE_STATIC);
	ret = sq_row(st);
	sqlite3_reset(st);
	return ret;
}

/* The mailbox and its children with their new names, shallowest first:
 * renamed in that order, a mailbox moving up the tree ("a/b" to "a") frees
 * each name before a deeper one takes it, so UNIQUE(user_id, name) holds
 * after every row.  Fails req when a new name is taken or too long. */
static int mb_rename_plan(struct store *s, struct store_req *req, const struct mb_box *b,
			  struct mb_renamed **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT id, name, highestmodseq FROM mailboxes"
				  " WHERE user_id = ?1 AND (name = ?2 OR"
				  " substr(name, 1, length(?2) + 1) = ?2 || '/')"
				  " ORDER BY length(name), name";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	size_t old_len = strlen(b->name), alloc = 0;
	int ret;

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, b->user_id);
	sqlite3_bind_text(st, 2, b->name, -1, SQLITE_STATIC);
	while ((ret = sq_row(st)) == 1) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		struct mb_renamed *r;
		*list_r = sq_list_grow(*list_r, sizeof(**list_r), *n_r, &alloc);
		r = &(*list_r)[(*n_r)++];
		r->id = sqlite3_column_int64(st, 0);
		r->modseq = (uint64_t)sqlite3_column_int64(st, 2);
		r->to = xasprintf("%s%s", req->str1, name + old_len);
	}
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	for (size_t i = 0; i < *n_r; i++) {
		const char *to = (*list_r)[i].to;
		if (strlen(to) > STORE_MAILBOX_MAX)
			return store_req_fail(req, STORE_ERR_INVALID, "mailbox name too long: %s",
					      to);
		if ((ret = mb_rename_taken(s, b->user_id, to, b->name)) < 0)
			return store_req_fail_db(s, req);
		if (ret == 1)
			return store_req_fail(req, STORE_ERR_EXISTS, "mailbox %s already exists",
					      to);
	}
	return 0;
}

static int mb_rename_rows(struct store *s, struct store_req *req,
			  const struct mb_renamed *list, size_t n)
{
	static const char sql[] = "UPDATE mailboxes SET name = ? WHERE id = ?";

	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *st = sq_get(&s->w, sql);
		if (st == NULL)
			return store_req_fail_db(s, req);
		sqlite3_bind_text(st, 1, list[i].to, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, list[i].id);
		if (sq_run(st) < 0)
			return store_req_fail_db(s, req);
		sqlite_req_changed(req, list[i].id, list[i].modseq);
	}
	return 0;
}

static int mb_rename_apply(struct store *s, struct store_req *req)
{
	struct mb_renamed *list = NULL;
	struct mb_box b;
	size_t n = 0;
	int ret;

	if (mb_box_require(s, req, req->id, &b) < 0 || mb_rename_check(req, &b) < 0)
		return -1;
	ret = mb_rename_plan(s, req, &b, &list, &n);
	if (ret == 0)
		ret = mb_rename_rows(s, req, list, n);
	for (size_t i = 0; i < n; i++)
		free(list[i].to);
	free(list);
	req->reply.id = (int64_t)b.highestmodseq;
	return ret;
}

/* ---- delete, subscribe -------------------------------------------------- */

/* Children stay: the hierarchy is only in the names, and IMAP lets a parent
 * go while its children live on (RFC 3501 DELETE). */
static int mb_delete_apply(struct store *s, struct store_req *req)
{
	static const char sql_refs[] =
		"UPDATE blobs SET refcount = refcount - (SELECT COUNT(*) FROM messages m"
		"  WHERE m.blob_id = blobs.id AND m.mailbox_id = ?1)"
		" WHERE id IN (SELECT blob_id FROM messages WHERE mailbox_id = ?1)";
	static const char sql_used[] =
		"UPDATE users SET used = used - (SELECT size FROM mailboxes WHERE id = ?2)"
		" WHERE id = ?1";
	static const char *const sql_drop[] = {
		"DELETE FROM messages WHERE mailbox_id = ?",
		"DELETE FROM expunged WHERE mailbox_id = ?",
		"DELETE FROM mailboxes WHERE id = ?",
	};
	struct mb_box b;

	if (mb_box_require(s, req, req->id, &b) < 0)
		return -1;
	if (strcmp(b.name, "INBOX") == 0)
		return store_req_fail(req, STORE_ERR_INVALID, "INBOX cannot be deleted");
	if (mb_run_id(s, sql_refs, b.id) < 0 || mb_run_ids(s, sql_used, b.user_id, b.id) < 0)
		return store_req_fail_db(s, req);
	for (size_t i = 0; i < sizeof(sql_drop) / sizeof(sql_drop[0]); i++)
		if (mb_run_id(s, sql_drop[i], b.id) < 0)
			return store_req_fail_db(s, req);
	/* Watchers hear it with the last highestmodseq and find it gone. */
	sqlite_req_changed(req, b.id, b.highestmodseq);
	req->reply.id = (int64_t)b.highestmodseq;
	return 0;
}

/* Subscription is the client's view, not the mailbox's content: no modseq,
 * no notice. */
static int mb_subscribe_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "UPDATE mailboxes SET subscribed = ? WHERE id = ?"
				  " RETURNING highestmodseq";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int(st, 1, req->flag);
	sqlite3_bind_int64(st, 2, req->id);
	if ((ret = sq_row(st)) == 1)
		req->reply.id = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	if (ret == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "mailbox %lld does not exist",
				      (long long)req->id);
	return 0;
}

/* ---- keywords ------------------------------------------------------------ */

/* The next space-separated word at or after p (NULL at the end). */
static const char *kw_next(const char *p, size_t *len_r)
{
	p += strspn(p, " ");
	if (*p == '\0')
		return NULL;
	*len_r = strcspn(p, " ");
	return p;
}

static bool kw_has(const char *set, const char *word, size_t len)
{
	size_t n;

	for (const char *p = kw_next(set, &n); p != NULL; p = kw_next(p + n, &n))
		if (n == len && strncasecmp(p, word, len) == 0)
			return true;
	return false;
}

/* Appends word to set (of size bytes) unless it holds it in any case: the
 * first spelling stays.  -1 when it does not fit. */
static int kw_add(char *set, size_t size, const char *word, size_t len)
{
	size_t used = strlen(set);

	if (kw_has(set, word, len))
		return 0;
	if (used + (used > 0) + len + 1 > size)
		return -1;
	if (used > 0)
		set[used++] = ' ';
	memcpy(set + used, word, len);
	set[used + len] = '\0';
	return 0;
}

/* The same words, in any case and order? */
static bool kw_equal(const char *a, const char *b)
{
	size_t n;

	for (const char *p = kw_next(a, &n); p != NULL; p = kw_next(p + n, &n))
		if (!kw_has(b, p, n))
			return false;
	for (const char *p = kw_next(b, &n); p != NULL; p = kw_next(p + n, &n))
		if (!kw_has(a, p, n))
			return false;
	return true;
}

/* cur changed by arg under mode into out (MB_KEYWORDS_MAX + 1 bytes):
 * words in the order first seen, cur's first. */
static int kw_apply(enum store_flags_mode mode, const char *cur, const char *arg, char *out)
{
	const size_t size = MB_KEYWORDS_MAX + 1;
	size_t n;

	*out = '\0';
	for (const char *p = kw_next(cur, &n); p != NULL && mode != STORE_FLAGS_REPLACE;
	     p = kw_next(p + n, &n))
		if ((mode == STORE_FLAGS_ADD || !kw_has(arg, p, n)) && kw_add(out, size, p, n) < 0)
			return -1;
	if (mode == STORE_FLAGS_REMOVE)
		return 0;
	for (const char *p = kw_next(arg, &n); p != NULL; p = kw_next(p + n, &n))
		if (kw_add(out, size, p, n) < 0)
			return -1;
	return 0;
}

/* ---- flags -------------------------------------------------------------- */

/* One message: 1 with *out filled (changed, or refused by UNCHANGEDSINCE),
 * 0 when absent or unchanged, -1 on error (req failed). */
static int mb_flags_one(struct store *s, struct store_req *req, uint32_t uid, uint64_t modseq,
			struct store_delivered *out)
{
	static const char sql_get[] = "SELECT id, modseq, flags, keywords FROM messages"
				      " WHERE mailbox_id = ? AND uid = ?";
	static const char sql_set[] = "UPDATE messages SET flags = ?, keywords = ?, modseq = ?"
				      " WHERE id = ?";
	char cur[MB_KEYWORDS_MAX + 1], kw[MB_KEYWORDS_MAX + 1];
	sqlite3_stmt *st = sq_get(&s->w, sql_get);
	uint32_t flags = 0, new_flags;
	uint64_t old_modseq = 0;
	int64_t id = 0;
	int ret;

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, req->id);
	sqlite3_bind_int64(st, 2, uid);
	if ((ret = sq_row(st)) == 1) {
		id = sqlite3_column_int64(st, 0);
		old_modseq = (uint64_t)sqlite3_column_int64(st, 1);
		flags = (uint32_t)sqlite3_column_int64(st, 2);
		sq_text(st, 3, cur, sizeof(cur));
	}
	sqlite3_reset(st);
	if (ret <= 0)
		return ret < 0 ? store_req_fail_db(s, req) : 0;
	*out = (struct store_delivered){ .status = -1, .err = STORE_ERR_INVALID,
					 .mailbox_id = req->id, .uid = uid, .modseq = old_modseq };
	if (req->num > 0 && old_modseq > req->num)
		return 1; /* RFC 7162 3.1.3: the "modified" set */
	new_flags = req->mode == STORE_FLAGS_ADD      ? flags | req->bits
		    : req->mode == STORE_FLAGS_REMOVE ? flags & ~req->bits
						      : req->bits;
	new_flags &= MB_FLAGS_ALL;
	if (kw_apply((enum store_flags_mode)req->mode, cur, req->str1, kw) < 0)
		return store_req_fail(req, STORE_ERR_INVALID, "too many keywords on uid %u", uid);
	if (new_flags == flags && kw_equal(kw, cur))
		return 0;
	if ((st = sq_get(&s->w, sql_set)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, new_flags);
	sqlite3_bind_text(st, 2, kw, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)modseq);
	sqlite3_bind_int64(st, 4, id);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	*out = (struct store_delivered){ .mailbox_id = req->id, .uid = uid, .modseq = modseq };
	return 1;
}

static int mb_flags_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "UPDATE mailboxes SET highestmodseq = ? WHERE id = ?";
	size_t changed = 0;
	struct mb_box b;
	int ret;

	if (req->mode < STORE_FLAGS_ADD || req->mode > STORE_FLAGS_REPLACE)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid flags mode");
	if (mb_box_require(s, req, req->id, &b) < 0)
		return -1;
	for (size_t i = 0; i < req->n_uids; i++) {
		struct store_delivered *out = &req->out[req->n_out];
		if ((ret = mb_flags_one(s, req, req->uids[i], b.highestmodseq + 1, out)) < 0)
			return -1;
		req->n_out += (size_t)ret;
		changed += ret == 1 && out->status == 0;
	}
	if (changed > 0) {
		if (mb_run_ids(s, sql, (int64_t)++b.highestmodseq, b.id) < 0)
			return store_req_fail_db(s, req);
		sqlite_req_changed(req, b.id, b.highestmodseq);
	}
	if (sqlite_trace_insert(s, req->events, req->n_events) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = (int64_t)b.highestmodseq;
	return 0;
}

/* ---- expunge ------------------------------------------------------------ */

/* Removes one message: its blob reference and its QRESYNC record.  1 with
 * *size_r, 0 when absent, -1 on error. */
static int mb_expunge_one(struct store *s, int64_t mailbox_id, uint32_t uid, uint64_t modseq,
			  uint64_t *size_r)
{
	static const char sql_del[] = "DELETE FROM messages WHERE mailbox_id = ? AND uid = ?"
				      " RETURNING size, blob_id";
	static const char sql_ref[] = "UPDATE blobs SET refcount = refcount - 1 WHERE id = ?";
	static const char sql_gone[] = "INSERT INTO expunged(mailbox_id, uid, modseq)"
				       " VALUES(?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql_del);
	int64_t blob_id = 0;
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	if ((ret = sq_row(st)) == 1) {
		*size_r = (uint64_t)sqlite3_column_int64(st, 0);
		blob_id = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (ret <= 0)
		return ret;
	if (mb_run_id(s, sql_ref, blob_id) < 0 || (st = sq_get(&s->w, sql_gone)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, mailbox_id);
	sqlite3_bind_int64(st, 2, uid);
	sqlite3_bind_int64(st, 3, (int64_t)modseq);
	return sq_run(st) < 0 ? -1 : 1;
}

/* Expunges uids from mailbox_id; out (NULL: not wanted) gets one entry per
 * expunged uid, *n_r their count.  Shared by expunge and move. */
static int mb_expunge_uids(struct store *s, struct store_req *req, int64_t mailbox_id,
			   const uint32_t *uids, size_t n, struct store_delivered *out,
			   size_t *n_r)
{
	static const char sql_box[] = "UPDATE mailboxes SET messages = messages - ?,"
				      " size = size - ?, highestmodseq = ? WHERE id = ?";
	static const char sql_user[] = "UPDATE users SET used = used - ? WHERE id = ?";
	uint64_t size = 0, total = 0;
	sqlite3_stmt *st;
	struct mb_box b;
	int ret;

	*n_r = 0;
	if (mb_box_require(s, req, mailbox_id, &b) < 0)
		return -1;
	req->reply.id = (int64_t)b.highestmodseq;
	for (size_t i = 0; i < n; i++) {
		if ((ret = mb_expunge_one(s, b.id, uids[i], b.highestmodseq + 1, &size)) < 0)
			return store_req_fail_db(s, req);
		if (ret == 0)
			continue;
		if (out != NULL)
			out[*n_r] = (struct store_delivered){ .mailbox_id = b.id, .uid = uids[i],
							      .modseq = b.highestmodseq + 1 };
		(*n_r)++;
		total += size;
	}
	if (*n_r == 0)
		return 0;
	if ((st = sq_get(&s->w, sql_box)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, (int64_t)*n_r);
	sqlite3_bind_int64(st, 2, (int64_t)total);
	sqlite3_bind_int64(st, 3, (int64_t)++b.highestmodseq);
	sqlite3_bind_int64(st, 4, b.id);
	if (sq_run(st) < 0 || mb_run_ids(s, sql_user, (int64_t)total, b.user_id) < 0)
		return store_req_fail_db(s, req);
	sqlite_req_changed(req, b.id, b.highestmodseq);
	req->reply.id = (int64_t)b.highestmodseq;
	return 0;
}

static int mb_expunge_apply(struct store *s, struct store_req *req)
{
	if (mb_expunge_uids(s, req, req->id, req->uids, req->n_uids, req->out, &req->n_out) < 0)
		return -1;
	return sqlite_trace_insert(s, req->events, req->n_events) < 0 ? store_req_fail_db(s, req)
								       : 0;
}

/* ---- copy and move ------------------------------------------------------- */

/* The copy's full-text row is the source's: same text, new rowid.  A
 * source stored before the index existed has none, and neither has its
 * copy (search reads such messages). */
static int mb_copy_text(struct store *s, int64_t from, uint32_t uid, int64_t new_id)
{
	static const char sql[] =
		"INSERT INTO message_text(rowid, header, nested, body)"
		" SELECT ?1, header, nested, body FROM message_text WHERE rowid ="
		" (SELECT id FROM messages WHERE mailbox_id = ?2 AND uid = ?3)";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, new_id);
	sqlite3_bind_int64(st, 2, from);
	sqlite3_bind_int64(st, 3, uid);
	return sq_run(st);
}

/* One message into to as uid, with its cache columns and index row: 1 with
 * *size_r, 0 when absent from the source, -1 on error. */
static int mb_copy_one(struct store *s, int64_t from, const struct mb_box *to, uint32_t uid,
		       uint32_t new_uid, uint64_t *size_r)
{
	static const char sql[] =
		"INSERT INTO messages(mailbox_id, uid, modseq, flags, keywords, internaldate,"
		" size, blob_id, envelope, bodystructure, body, structure)"
		" SELECT ?1, ?2, ?3, flags, keywords, internaldate, size, blob_id, envelope,"
		" bodystructure, body, structure FROM messages WHERE mailbox_id = ?4 AND uid = ?5"
		" RETURNING size, blob_id, id";
	static const char sql_ref[] = "UPDATE blobs SET refcount = refcount + 1 WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int64_t blob_id = 0, new_id = 0;
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, to->id);
	sqlite3_bind_int64(st, 2, new_uid);
	sqlite3_bind_int64(st, 3, (int64_t)to->highestmodseq + 1);
	sqlite3_bind_int64(st, 4, from);
	sqlite3_bind_int64(st, 5, uid);
	if ((ret = sq_row(st)) == 1) {
		*size_r = (uint64_t)sqlite3_column_int64(st, 0);
		blob_id = sqlite3_column_int64(st, 1);
		new_id = sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	if (ret <= 0)
		return ret;
	if (mb_run_id(s, sql_ref, blob_id) < 0 || mb_copy_text(s, from, uid, new_id) < 0)
		return -1;
	return 1;
}

/* The target user's quota against what the copy adds; a move within one
 * user adds nothing. */
static int mb_copy_quota(struct store *s, struct store_req *req, const struct mb_box *from,
			 const struct mb_box *to, uint64_t total)
{
	static const char sql[] = "SELECT quota, used FROM users WHERE id = ?";
	sqlite3_stmt *st;
	uint64_t quota = 0, used = 0;
	int ret;

	if (req->flag && from->user_id == to->user_id)
		return 0;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, to->user_id);
	if ((ret = sq_row(st)) == 1) {
		quota = (uint64_t)sqlite3_column_int64(st, 0);
		used = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	if (quota > 0 && used + total > quota)
		return store_req_fail(req, STORE_ERR_QUOTA, "over quota: %llu of %llu bytes used",
				      (unsigned long long)used, (unsigned long long)quota);
	return 0;
}

/* Takes the copies' uids and modseq on the target and counts them. */
static int mb_copy_count(struct store *s, struct store_req *req, struct mb_box *to,
			 size_t copied, uint64_t total)
{
	static const char sql_box[] = "UPDATE mailboxes SET uidnext = uidnext + ?,"
				      " messages = messages + ?, size = size + ?,"
				      " highestmodseq = ? WHERE id = ?";
	static const char sql_user[] = "UPDATE users SET used = used + ? WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql_box);

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, (int64_t)copied);
	sqlite3_bind_int64(st, 2, (int64_t)copied);
	sqlite3_bind_int64(st, 3, (int64_t)total);
	sqlite3_bind_int64(st, 4, (int64_t)++to->highestmodseq);
	sqlite3_bind_int64(st, 5, to->id);
	if (sq_run(st) < 0 || mb_run_ids(s, sql_user, (int64_t)total, to->user_id) < 0)
		return store_req_fail_db(s, req);
	sqlite_req_changed(req, to->id, to->highestmodseq);
	return 0;
}

/* Moves: the copied uids leave the source (compacted into uids). */
static int mb_move_expunge(struct store *s, struct store_req *req, int64_t from)
{
	size_t n = 0, expunged;

	for (size_t i = 0; i < req->n_out; i++)
		if (req->out[i].status == 0)
			req->uids[n++] = req->uids[i];
	return mb_expunge_uids(s, req, from, req->uids, n, NULL, &expunged);
}

static int mb_copy_apply(struct store *s, struct store_req *req)
{
	struct mb_box from, to;
	uint64_t size = 0, total = 0;
	size_t copied = 0;
	int ret;

	if (mb_box_require(s, req, req->id, &from) < 0 ||
	    mb_box_require(s, req, req->id2, &to) < 0)
		return -1;
	for (size_t i = 0; i < req->n_uids; i++) {
		struct store_delivered *out = &req->out[i];
		*out = (struct store_delivered){ .status = -1, .err = STORE_ERR_NOT_FOUND,
						 .mailbox_id = to.id };
		ret = mb_copy_one(s, from.id, &to, req->uids[i], to.uidnext + (uint32_t)copied,
				  &size);
		if (ret < 0)
			return store_req_fail_db(s, req);
		if (ret == 0)
			continue;
		*out = (struct store_delivered){ .mailbox_id = to.id,
						 .uid = to.uidnext + (uint32_t)copied,
						 .modseq = to.highestmodseq + 1 };
		copied++;
		total += size;
	}
	req->n_out = req->n_uids;
	if (copied > 0 && (mb_copy_quota(s, req, &from, &to, total) < 0 ||
			   mb_copy_count(s, req, &to, copied, total) < 0))
		return -1;
	if (copied > 0 && req->flag && mb_move_expunge(s, req, from.id) < 0)
		return -1;
	if (sqlite_trace_insert(s, req->events, req->n_events) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = (int64_t)to.uidvalidity;
	return 0;
}

/* ---- the public functions ----------------------------------------------- */

static const struct store_op mb_rename_op = { "mailbox.rename", mb_rename_apply };
static const struct store_op mb_delete_op = { "mailbox.delete", mb_delete_apply };
static const struct store_op mb_subscribe_op = { "mailbox.subscribe", mb_subscribe_apply };
static const struct store_op mb_flags_op = { "flags.set", mb_flags_apply };
static const struct store_op mb_expunge_op = { "expunge", mb_expunge_apply };
static const struct store_op mb_copy_op = { "copy", mb_copy_apply };

void store_mailbox_rename(struct store *s, int64_t mailbox_id, const char *new_name,
			  struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mb_rename_op, loop, cb, ctx);

	req->id = mailbox_id;
	req->str1 = xstrdup(new_name != NULL ? new_name : "");
	store_req_submit(s, req);
}

void store_mailbox_delete(struct store *s, int64_t mailbox_id, struct loop *loop,
			  store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mb_delete_op, loop, cb, ctx);

	req->id = mailbox_id;
	store_req_submit(s, req);
}

void store_mailbox_subscribe(struct store *s, int64_t mailbox_id, bool subscribed,
			     struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mb_subscribe_op, loop, cb, ctx);

	req->id = mailbox_id;
	req->flag = subscribed;
	store_req_submit(s, req);
}

static int mb_uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Sorted and distinct, so that a uid named twice is changed, expunged or
 * copied once; uid 0 is never a message.  Also sizes req->out. */
static void mb_req_uids(struct store_req *req, const uint32_t *uids, size_t n)
{
	size_t k = 0;

	req->uids = xcalloc(n > 0 ? n : 1, sizeof(*req->uids));
	if (n > 0)
		memcpy(req->uids, uids, n * sizeof(*uids));
	qsort(req->uids, n, sizeof(*req->uids), mb_uid_cmp);
	for (size_t i = 0; i < n; i++)
		if (req->uids[i] != 0 && (k == 0 || req->uids[k - 1] != req->uids[i]))
			req->uids[k++] = req->uids[i];
	req->n_uids = k;
	req->out = xcalloc(k > 0 ? k : 1, sizeof(*req->out));
}

/* The keywords as a set: single spaces, each word once (first spelling),
 * in the order given.  Done here so the committer does not pay for it. */
char *sq_keywords_normalise(const char *keywords)
{
	size_t size = keywords != NULL ? strlen(keywords) + 1 : 1, n;
	char *set = xcalloc(1, size);

	if (keywords == NULL)
		return set;
	for (const char *p = kw_next(keywords, &n); p != NULL; p = kw_next(p + n, &n))
		kw_add(set, size, p, n); /* never longer than the input */
	return set;
}

void store_flags_set(struct store *s, const struct store_flags_change *c, struct loop *loop,
		     store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mb_flags_op, loop, cb, ctx);

	req->id = c->mailbox_id;
	mb_req_uids(req, c->uids, c->n_uids);
	req->mode = (int)c->mode;
	req->bits = c->flags;
	req->str1 = sq_keywords_normalise(c->keywords);
	req->num = c->unchangedsince;
	req->events = sqlite_events_copy(c->events, c->n_events);
	req->n_events = c->n_events;
	store_req_submit(s, req);
}

void store_expunge(struct store *s, int64_t mailbox_id, const uint32_t *uids, size_t n_uids,
		   const struct store_trace_event *events, size_t n_events, struct loop *loop,
		   store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mb_expunge_op, loop, cb, ctx);

	req->id = mailbox_id;
	mb_req_uids(req, uids, n_uids);
	req->events = sqlite_events_copy(events, n_events);
	req->n_events = n_events;
	store_req_submit(s, req);
}

void store_copy(struct store *s, int64_t from_mailbox, const uint32_t *uids, size_t n_uids,
		int64_t to_mailbox, bool move, const struct store_trace_event *events,
		size_t n_events, struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mb_copy_op, loop, cb, ctx);

	req->id = from_mailbox;
	req->id2 = to_mailbox;
	req->flag = move;
	mb_req_uids(req, uids, n_uids);
	req->events = sqlite_events_copy(events, n_events);
	req->n_events = n_events;
	store_req_submit(s, req);
}
