/* Mail writes: mailboxes, delivery, trace events.  Same pattern as
 * sqlite_directory.c: public functions copy and queue; *_apply functions run
 * on the committer inside the request's savepoint. */
#include "store/sqlite/sqlite_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define MAIL_FLAGS_ALL                                                                     \
	(STORE_FLAG_SEEN | STORE_FLAG_ANSWERED | STORE_FLAG_FLAGGED | STORE_FLAG_DELETED |  \
	 STORE_FLAG_DRAFT)

/* UIDVALIDITY is the creation time plus the mailbox id: ids are never
 * reused and grow, so a mailbox deleted and created again under the same
 * name gets a larger value even within the same second. */
int sqlite_mailbox_insert(struct store *s, int64_t user_id, const char *name,
			  enum store_special_use special_use, int64_t *id_r)
{
	static const char sql[] = "INSERT INTO mailboxes(user_id, name, special_use, uidvalidity)"
				  " VALUES(?, ?, ?, 0)";
	static const char sql_uv[] = "UPDATE mailboxes SET uidvalidity = ? WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	uint32_t uidvalidity;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, user_id);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)special_use);
	if (sq_run(st) < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(s->w.db);
	uidvalidity = (uint32_t)((uint64_t)s->batch_time + (uint64_t)*id_r);
	if ((st = sq_get(&s->w, sql_uv)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, uidvalidity != 0 ? uidvalidity : 1);
	sqlite3_bind_int64(st, 2, *id_r);
	return sq_run(st);
}

/* 1 when sql (parameters: id, then optionally a name) finds a row, 0 when
 * not, -1 on error. */
static int mail_row_exists(struct store *s, const char *sql, int64_t id, const char *name)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if (name != NULL)
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	ret = sq_row(st);
	sqlite3_reset(st);
	return ret;
}

static int mail_mailbox_create_check(struct store_req *req)
{
	if (*req->str1 == '\0' || strlen(req->str1) > STORE_MAILBOX_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid mailbox name");
	if (req->num > STORE_SPECIAL_ARCHIVE || req->num == STORE_SPECIAL_INBOX)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid special use for %s",
				      req->str1);
	/* INBOX is case-insensitive (RFC 3501) and every user has one. */
	if (strcasecmp(req->str1, "INBOX") == 0)
		return store_req_fail(req, STORE_ERR_EXISTS, "mailbox INBOX already exists");
	return 0;
}

static int mail_mailbox_create_apply(struct store *s, struct store_req *req)
{
	static const char sql_user[] = "SELECT 1 FROM users WHERE id = ?";
	static const char sql_box[] = "SELECT 1 FROM mailboxes WHERE user_id = ? AND name = ?";
	int64_t id;
	int ret;

	if (mail_mailbox_create_check(req) < 0)
		return -1;
	if ((ret = mail_row_exists(s, sql_user, req->id, NULL)) < 0)
		return store_req_fail_db(s, req);
	if (ret == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "user %lld does not exist",
				      (long long)req->id);
	if ((ret = mail_row_exists(s, sql_box, req->id, req->str1)) < 0)
		return store_req_fail_db(s, req);
	if (ret == 1)
		return store_req_fail(req, STORE_ERR_EXISTS, "mailbox %s already exists",
				      req->str1);
	if (sqlite_mailbox_insert(s, req->id, req->str1, (enum store_special_use)req->num,
				  &id) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = id;
	return 0;
}

int sqlite_trace_insert(struct store *s, const struct store_trace_event *events, size_t n)
{
	static const char sql[] =
		"INSERT INTO trace(time, queue_id, message_id, event, account, protocol,"
		" client_ip, session, sender, rcpt, detail) VALUES(?,?,?,?,?,?,?,?,?,?,?)";

	for (size_t i = 0; i < n; i++) {
		const struct store_trace_event *e = &events[i];
		const char *const texts[] = { e->queue_id, e->message_id, e->event,
					      e->account,  e->protocol,   e->client_ip,
					      e->session,  e->sender,     e->rcpt,
					      e->detail };
		sqlite3_stmt *st = sq_get(&s->w, sql);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, (int64_t)(e->time != 0 ? e->time : s->batch_time));
		for (int j = 0; j < 10; j++)
			sq_bind_text_or_null(st, j + 2, texts[j]);
		if (sq_run(st) < 0)
			return -1;
	}
	return 0;
}

static int mail_trace_append_apply(struct store *s, struct store_req *req)
{
	return sqlite_trace_insert(s, req->events, req->n_events) < 0 ? store_req_fail_db(s, req)
								       : 0;
}

/* ---- delivery ----------------------------------------------------------- */

/* The blob row for d: the stored copy, or a new row for the bytes appended
 * in this batch.  *id_r is the row; its refcount is the caller's. */
static int mail_blob_row(struct store *s, struct store_req *req, int64_t *id_r)
{
	static const char sql_find[] = "SELECT id, refcount FROM blobs WHERE sha256 = ?";
	static const char sql_move[] = "UPDATE blobs SET segment = ?, offset = ? WHERE id = ?";
	static const char sql_new[] = "INSERT INTO blobs(sha256, size, segment, offset, refcount,"
				      " created) VALUES(?, ?, ?, ?, 0, ?)";
	struct sq_delivery *d = req->delivery;
	sqlite3_stmt *st = sq_get(&s->w, sql_find);
	int64_t refcount = 0;
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_blob(st, 1, d->sha256, BLOB_SHA256_LEN, SQLITE_STATIC);
	if ((ret = sq_row(st)) == 1) {
		*id_r = sqlite3_column_int64(st, 0);
		refcount = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (ret < 0)
		return -1;
	/* A dead row with no fresh copy lost its last reference earlier in this
	 * batch: its bytes are still whole in their segment, so it is reused. */
	if (ret == 1 && (refcount > 0 || !d->have_bytes))
		return 0;
	if (!d->have_bytes)
		return store_req_fail(req, STORE_ERR_IO, "message content vanished; try again");
	/* A dead row (refcount 0) is moved to the fresh copy, so that compaction
	 * may reclaim the old one. */
	if ((st = sq_get(&s->w, ret == 1 ? sql_move : sql_new)) == NULL)
		return -1;
	if (ret == 1) {
		sqlite3_bind_int64(st, 1, d->segment);
		sqlite3_bind_int64(st, 2, (int64_t)d->offset);
		sqlite3_bind_int64(st, 3, *id_r);
		return sq_run(st);
	}
	sqlite3_bind_blob(st, 1, d->sha256, BLOB_SHA256_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)d->size);
	sqlite3_bind_int64(st, 3, d->segment);
	sqlite3_bind_int64(st, 4, (int64_t)d->offset);
	sqlite3_bind_int64(st, 5, (int64_t)s->batch_time);
	if (sq_run(st) < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(s->w.db);
	return 0;
}

/* The recipient's mailbox id (0: its INBOX), quota and usage: 1, 0 no such
 * user or mailbox, -1 error. */
static int mail_rcpt_find(struct store *s, const struct store_rcpt *rcpt, int64_t *mailbox_r,
			  uint64_t *quota_r, uint64_t *used_r)
{
	static const char sql_inbox[] =
		"SELECT m.id, u.quota, u.used FROM users u JOIN mailboxes m ON m.user_id = u.id"
		" WHERE u.id = ?1 AND m.name = 'INBOX'";
	static const char sql_box[] =
		"SELECT m.id, u.quota, u.used FROM users u JOIN mailboxes m ON m.user_id = u.id"
		" WHERE u.id = ?1 AND m.id = ?2";
	sqlite3_stmt *st = sq_get(&s->w, rcpt->mailbox_id == 0 ? sql_inbox : sql_box);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, rcpt->user_id);
	if (rcpt->mailbox_id != 0)
		sqlite3_bind_int64(st, 2, rcpt->mailbox_id);
	if ((ret = sq_row(st)) == 1) {
		*mailbox_r = sqlite3_column_int64(st, 0);
		*quota_r = (uint64_t)sqlite3_column_int64(st, 1);
		*used_r = (uint64_t)sqlite3_column_int64(st, 2);
	}
	sqlite3_reset(st);
	return ret;
}

/* Takes the next uid and modseq of the mailbox and counts the message in
 * the mailbox and the user's usage. */
static int mail_rcpt_count(struct store *s, const struct store_rcpt *rcpt, uint64_t size,
			   struct store_delivered *out)
{
	static const char sql_box[] =
		"UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1,"
		" messages = messages + 1, size = size + ?2 WHERE id = ?1"
		" RETURNING uidnext - 1, highestmodseq";
	static const char sql_user[] = "UPDATE users SET used = used + ? WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql_box);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, out->mailbox_id);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	if ((ret = sq_row(st)) == 1) {
		out->uid = (uint32_t)sqlite3_column_int64(st, 0);
		out->modseq = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	if (ret != 1 || (st = sq_get(&s->w, sql_user)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)size);
	sqlite3_bind_int64(st, 2, rcpt->user_id);
	return sq_run(st);
}

/* The message's row in the full-text index, in the delivery's transaction,
 * so that a message is never searchable by the index without being stored
 * or stored without being searchable. */
static int mail_text_insert(struct store *s, const struct store_structure *t, int64_t id)
{
	static const char sql[] = "INSERT INTO message_text(rowid, header, nested, body)"
				  " VALUES(?, ?, ?, ?)";
	sqlite3_stmt *st;

	if (t->text_header == NULL)
		return 0;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, t->text_header, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, t->text_inner, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, t->text_body, -1, SQLITE_STATIC);
	return sq_run(st);
}

static int mail_message_insert(struct store *s, const struct sq_delivery *d,
			       const struct store_rcpt *rcpt, const struct store_delivered *out,
			       int64_t blob_id)
{
	static const char sql[] = "INSERT INTO messages(mailbox_id, uid, modseq, flags,"
				  " internaldate, size, blob_id, envelope, bodystructure, body,"
				  " structure, keywords) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	const struct store_structure *t = &d->structure;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, out->mailbox_id);
	sqlite3_bind_int64(st, 2, out->uid);
	sqlite3_bind_int64(st, 3, (int64_t)out->modseq);
	sqlite3_bind_int(st, 4, (int)(rcpt->flags & MAIL_FLAGS_ALL));
	sqlite3_bind_int64(st, 5,
			   (int64_t)(d->internaldate != 0 ? d->internaldate : s->batch_time));
	sqlite3_bind_int64(st, 6, (int64_t)d->size);
	sqlite3_bind_int64(st, 7, blob_id);
	sq_bind_text_or_null(st, 8, t->envelope);
	sq_bind_text_or_null(st, 9, t->bodystructure);
	sq_bind_text_or_null(st, 10, t->body);
	if (t->tree != NULL)
		sqlite3_bind_blob(st, 11, t->tree, (int)t->tree_size, SQLITE_STATIC);
	sqlite3_bind_text(st, 12, d->keywords != NULL ? d->keywords : "", -1, SQLITE_STATIC);
	if (sq_run(st) < 0)
		return -1;
	return mail_text_insert(s, t, sqlite3_last_insert_rowid(s->w.db));
}

/* One recipient: its own outcome in *out; -1 only for a database error. */
static int mail_deliver_rcpt(struct store *s, const struct sq_delivery *d,
			     const struct store_rcpt *rcpt, int64_t blob_id,
			     struct store_delivered *out)
{
	uint64_t quota = 0, used = 0;
	int64_t mailbox_id = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	out->status = -1;
	out->mailbox_id = rcpt->mailbox_id;
	if ((ret = mail_rcpt_find(s, rcpt, &mailbox_id, &quota, &used)) <= 0) {
		out->err = STORE_ERR_NOT_FOUND;
		return ret;
	}
	out->mailbox_id = mailbox_id;
	if (!rcpt->ignore_quota && quota > 0 && used + d->size > quota) {
		out->err = STORE_ERR_QUOTA;
		return 0;
	}
	if (mail_rcpt_count(s, rcpt, d->size, out) < 0 ||
	    mail_message_insert(s, d, rcpt, out, blob_id) < 0)
		return -1;
	out->status = 0;
	out->err = STORE_OK;
	return 0;
}

static const char *mail_domain_of(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

/* One queue row per remote recipient, due at once. */
static int mail_queue_insert(struct store *s, const struct sq_delivery *d, int64_t blob_id)
{
	static const char sql[] =
		"INSERT INTO queue(queue_id, blob_id, size, sender, sender_domain, rcpt,"
		" rcpt_domain, orcpt, notify, envid, ret, body, smtputf8, message_id, auth_user,"
		" client_ip, state, created, next_attempt)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
		" 0, ?17, ?17)";
	const struct store_envelope *e = &d->envelope;

	for (size_t i = 0; i < d->n_remote; i++) {
		const struct store_queue_rcpt *q = &d->remote[i];
		sqlite3_stmt *st = sq_get(&s->w, sql);
		if (st == NULL)
			return -1;
		sqlite3_bind_text(st, 1, e->queue_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, blob_id);
		sqlite3_bind_int64(st, 3, (int64_t)d->size);
		sqlite3_bind_text(st, 4, e->sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, mail_domain_of(e->sender), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, q->rcpt, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, mail_domain_of(q->rcpt), -1, SQLITE_STATIC);
		sq_bind_text_or_null(st, 8, q->orcpt);
		sqlite3_bind_int(st, 9, (int)q->notify);
		sq_bind_text_or_null(st, 10, e->envid);
		sqlite3_bind_int(st, 11, (int)e->ret);
		sqlite3_bind_int(st, 12, (int)e->body);
		sqlite3_bind_int(st, 13, e->smtputf8);
		sq_bind_text_or_null(st, 14, e->message_id);
		sq_bind_text_or_null(st, 15, e->auth_user);
		sq_bind_text_or_null(st, 16, e->client_ip);
		sqlite3_bind_int64(st, 17, (int64_t)s->batch_time);
		if (sq_run(st) < 0)
			return -1;
	}
	return 0;
}

static int mail_deliver_apply(struct store *s, struct store_req *req)
{
	static const char sql_ref[] = "UPDATE blobs SET refcount = refcount + ? WHERE id = ?";
	struct sq_delivery *d = req->delivery;
	int64_t blob_id = 0, delivered = 0;
	sqlite3_stmt *st;

	if (d->n_rcpts + d->n_remote == 0)
		return store_req_fail(req, STORE_ERR_INVALID, "a delivery needs a recipient");
	if (d->n_remote > 0 && d->envelope.queue_id[0] == '\0')
		return store_req_fail(req, STORE_ERR_INVALID, "queued mail needs a queue id");
	if (mail_blob_row(s, req, &blob_id) < 0)
		return req->reply.status < 0 ? -1 : store_req_fail_db(s, req);
	if (sqlite_blob_set_message_id(s, blob_id, req) < 0)
		return store_req_fail_db(s, req);
	for (size_t i = 0; i < d->n_rcpts; i++) {
		if (mail_deliver_rcpt(s, d, &d->rcpts[i], blob_id, &d->delivered[i]) < 0)
			return store_req_fail_db(s, req);
		if (d->delivered[i].status != 0)
			continue;
		delivered++;
		sqlite_req_changed(req, d->delivered[i].mailbox_id, d->delivered[i].modseq);
	}
	if (mail_queue_insert(s, d, blob_id) < 0 || (st = sq_get(&s->w, sql_ref)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, delivered + (int64_t)d->n_remote);
	sqlite3_bind_int64(st, 2, blob_id);
	if (sq_run(st) < 0 || sqlite_trace_insert(s, req->events, req->n_events) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

/* ---- the public functions ----------------------------------------------- */

static const struct store_op mail_mailbox_create_op = { "mailbox.create",
							mail_mailbox_create_apply };
static const struct store_op mail_deliver_op = { "deliver", mail_deliver_apply };
static const struct store_op mail_trace_append_op = { "trace.append",
						      mail_trace_append_apply };

void store_mailbox_create(struct store *s, int64_t user_id, const char *name,
			  enum store_special_use special_use, struct loop *loop,
			  store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mail_mailbox_create_op, loop, cb, ctx);

	req->id = user_id;
	req->str1 = xstrdup(name != NULL ? name : "");
	req->num = (uint64_t)special_use;
	store_req_submit(s, req);
}

struct store_trace_event *sqlite_events_copy(const struct store_trace_event *events, size_t n)
{
	struct store_trace_event *copy = xcalloc(n, sizeof(*copy));

	for (size_t i = 0; i < n; i++) {
		struct store_trace_event *e = &copy[i];
		*e = events[i];
		e->queue_id[sizeof(e->queue_id) - 1] = '\0';
		e->message_id[sizeof(e->message_id) - 1] = '\0';
		e->event[sizeof(e->event) - 1] = '\0';
		e->account[sizeof(e->account) - 1] = '\0';
		e->protocol[sizeof(e->protocol) - 1] = '\0';
		e->client_ip[sizeof(e->client_ip) - 1] = '\0';
		e->session[sizeof(e->session) - 1] = '\0';
		e->sender[sizeof(e->sender) - 1] = '\0';
		e->rcpt[sizeof(e->rcpt) - 1] = '\0';
		e->detail[sizeof(e->detail) - 1] = '\0';
	}
	return copy;
}

static void mail_envelope_copy(struct store_envelope *dst, const struct store_envelope *src)
{
	*dst = *src;
	dst->queue_id[sizeof(dst->queue_id) - 1] = '\0';
	dst->sender[sizeof(dst->sender) - 1] = '\0';
	dst->message_id[sizeof(dst->message_id) - 1] = '\0';
	dst->envid[sizeof(dst->envid) - 1] = '\0';
	dst->auth_user[sizeof(dst->auth_user) - 1] = '\0';
	dst->client_ip[sizeof(dst->client_ip) - 1] = '\0';
}

static void mail_structure_copy(struct store_structure *dst, const struct store_structure *src)
{
	if (src == NULL || src->envelope == NULL || src->bodystructure == NULL ||
	    src->body == NULL)
		return;
	dst->envelope = xstrdup(src->envelope);
	dst->bodystructure = xstrdup(src->bodystructure);
	dst->body = xstrdup(src->body);
	if (src->tree != NULL && src->tree_size > 0 && src->tree_size <= INT32_MAX) {
		dst->tree = xmalloc(src->tree_size);
		memcpy(dst->tree, src->tree, src->tree_size);
		dst->tree_size = src->tree_size;
	}
	/* The index row needs all three texts, or none is kept. */
	if (src->text_header != NULL && src->text_inner != NULL && src->text_body != NULL) {
		dst->text_header = xstrdup(src->text_header);
		dst->text_inner = xstrdup(src->text_inner);
		dst->text_body = xstrdup(src->text_body);
	}
}

/* The content hash is taken here, on the caller's thread, so that the
 * committer (which serialises every write) does not pay for it. */
static struct store_req *mail_deliver_req(const struct store_delivery *dl, struct loop *loop,
					  store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mail_deliver_op, loop, cb, ctx);
	struct sq_delivery *d = xcalloc(1, sizeof(*d));

	d->data = xmalloc(dl->size);
	if (dl->size > 0)
		memcpy(d->data, dl->data, dl->size);
	d->size = dl->size;
	d->internaldate = dl->internaldate;
	blob_sha256(d->data, d->size, d->sha256);
	d->n_rcpts = dl->n_rcpts;
	d->rcpts = xcalloc(dl->n_rcpts, sizeof(*d->rcpts));
	if (dl->n_rcpts > 0)
		memcpy(d->rcpts, dl->rcpts, dl->n_rcpts * sizeof(*d->rcpts));
	d->delivered = xcalloc(dl->n_rcpts, sizeof(*d->delivered));
	d->n_remote = dl->n_remote;
	d->remote = xcalloc(dl->n_remote, sizeof(*d->remote));
	for (size_t i = 0; i < dl->n_remote; i++) {
		d->remote[i] = dl->remote[i];
		d->remote[i].rcpt[sizeof(d->remote[i].rcpt) - 1] = '\0';
		d->remote[i].orcpt[sizeof(d->remote[i].orcpt) - 1] = '\0';
	}
	if (dl->envelope != NULL)
		mail_envelope_copy(&d->envelope, dl->envelope);
	/* Only mailbox entries use the structure: a queue-only copy skips it. */
	if (dl->n_rcpts > 0)
		mail_structure_copy(&d->structure, dl->structure);
	if (dl->keywords != NULL && dl->n_rcpts > 0)
		d->keywords = sq_keywords_normalise(dl->keywords);
	req->delivery = d;
	req->events = sqlite_events_copy(dl->events, dl->n_events);
	req->n_events = dl->n_events;
	return req;
}

void store_deliver(struct store *s, const struct store_delivery *dl, struct loop *loop,
		   store_done_cb *cb, void *ctx)
{
	store_req_submit(s, mail_deliver_req(dl, loop, cb, ctx));
}

void store_deliver_all(struct store *s, const struct store_delivery *dl, size_t n,
		       struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *first = mail_deliver_req(&dl[0], loop, cb, ctx), *last = first;

	first->group_n = n;
	for (size_t i = 1; i < n; i++) {
		last->next = mail_deliver_req(&dl[i], NULL, NULL, NULL);
		last = last->next;
		last->group_member = true;
	}
	store_req_submit_chain(s, first, last);
}

void store_trace_defer(struct store *s, const struct store_trace_event *events, size_t n)
{
	struct store_req *req;

	if (n == 0)
		return;
	req = store_req_new(&mail_trace_append_op, NULL, NULL, NULL);
	req->events = sqlite_events_copy(events, n);
	req->n_events = n;
	store_req_defer(s, req);
}

void store_trace_append(struct store *s, const struct store_trace_event *events, size_t n,
			struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&mail_trace_append_op, loop, cb, ctx);

	req->events = sqlite_events_copy(events, n);
	req->n_events = n;
	store_req_submit(s, req);
}
