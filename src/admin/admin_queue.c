/* queue.list, queue.show, queue.hold, queue.release, queue.retry,
 * queue.delete, queue.bounce, queue.stats, jobs
 *
 * A change names its entries by ids (entry ids, or queue ids standing for
 * all their entries) or by a filter.  With ids it is one store write,
 * answered when durable, with a trace event per entry changed.  With a
 * filter it is a job (admin_job.h): chunks of ADMIN_QUEUE_CHUNK entries,
 * each one write whose callback starts the next, so that a hold of 100,000
 * entries never holds the committer for more than one chunk at a time; one
 * trace event sums the job up.  Delete and bounce refuse an empty filter
 * unless "all" is true: a safety net against a typo emptying the queue.
 * A bounce also sends the senders their DSNs (admin_queue_bounce_dsns). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_job.h"
#include "admin/admin_request.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/address.h"
#include "mail/dsn.h"
#include "mail/header.h"
#include "pipeline/pipeline.h"
#include "settings/settings.h"
#include "store/store.h"

#define ADMIN_QUEUE_CHUNK        1000
#define ADMIN_QUEUE_LIST_DEFAULT 1000
/* What queue.show reads of a message to find its header section. */
#define ADMIN_QUEUE_HEAD_MAX (64 * 1024)
/* A bounce returns the original in full up to this size, else its header
 * section (the first ADMIN_QUEUE_HEAD_MAX bytes): as the queue runner's. */
#define ADMIN_QUEUE_DSN_FULL_MAX (1024 * 1024)

/* A filter as given: owned strings, and "about", the same as JSON. */
struct admin_qf {
	struct store_queue_filter f;
	char *strings[7];
	int64_t *ids;
	json_t *about;
	bool given; /* anything at all narrows the selection */
};

static void admin_qf_free(struct admin_qf *q)
{
	if (q == NULL)
		return;
	for (int i = 0; i < 7; i++)
		free(q->strings[i]);
	free(q->ids);
	json_decref(q->about);
	free(q);
}

static const char *const admin_qf_names[7] = {
    "queue_id", "sender", "sender_domain", "rcpt", "rcpt_domain", "auth_user", "client_ip",
};

/* Checks one string field and keeps its canonical form in q->strings[i]. */
static int admin_qf_string(struct admin_request *req, struct admin_qf *q, int i, const char *value)
{
	char buf[INET6_ADDRSTRLEN];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *error;
	size_t len = strlen(value);

	if (i == 1 && (len == 0 || strcmp(value, "<>") == 0)) {
		q->f.sender_null = true;
		json_object_set_new(q->about, "sender", json_string(""));
		return 0;
	}
	if (len == 0 || len > STORE_ADDR_MAX) {
		admin_request_fail(req, "invalid", "invalid %s '%s'", admin_qf_names[i], value);
		return -1;
	}
	if ((i == 2 || i == 4) && address_domain_check(value, true, &error) < 0) {
		admin_request_fail(req, "invalid", "invalid %s '%s': %s", admin_qf_names[i], value,
		                   error);
		return -1;
	}
	if (i == 6) {
		int family = strchr(value, ':') != NULL ? AF_INET6 : AF_INET;
		if (inet_pton(family, value, bin) != 1) {
			admin_request_fail(req, "invalid",
			                   "invalid client_ip '%s': not an IP address", value);
			return -1;
		}
		value = inet_ntop(family, bin, buf, sizeof(buf));
	}
	q->strings[i] = xstrdup(value);
	json_object_set_new(q->about, admin_qf_names[i], json_string(value));
	return 0;
}

static int admin_qf_state(struct admin_request *req, struct admin_qf *q)
{
	const char *state = NULL;

	q->f.state = -1;
	if (admin_arg_string(req, "state", false, &state) < 0)
		return -1;
	if (state == NULL)
		return 0;
	for (int s = 0; s <= STORE_QUEUE_FAILED; s++) {
		if (strcmp(state, store_queue_state_name(s)) == 0) {
			q->f.state = s;
			json_object_set_new(q->about, "state", json_string(state));
			return 0;
		}
	}
	admin_request_fail(req, "invalid",
	                   "invalid state '%s': expected queued, deferred, held, failed or "
	                   "delivered",
	                   state);
	return -1;
}

/* older_than: a duration ("2h") or seconds: entries created before then. */
static int admin_qf_older(struct admin_request *req, struct admin_qf *q)
{
	json_t *v = json_object_get(req->args, "older_than");
	int64_t secs;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		secs = json_integer_value(v);
	} else if (!json_is_string(v) || settings_parse_duration(json_string_value(v), &secs) < 0) {
		admin_request_fail(req, "invalid",
		                   "invalid older_than: expected a duration like 30m, 2h or 3d");
		return -1;
	}
	q->f.older_than = time(NULL) - (time_t)secs;
	json_object_set(q->about, "older_than", v);
	return 0;
}

/* Adds the entries of queue id qid (every one, final ones too: the store
 * skips what an action does not apply to). */
static int admin_qf_queue_id(struct admin_request *req, struct admin_qf *q, const char *qid,
                             size_t *alloc)
{
	struct store_queue_entry *list;
	size_t n;

	if (store_queue_list(req->host->reader, qid, -1, 0, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the queue");
		return -1;
	}
	if (n == 0) {
		free(list);
		admin_request_fail(req, "not_found", "no queued message %s", qid);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (q->f.n_ids == *alloc) {
			*alloc = *alloc * 2 + 16;
			q->ids = xrealloc(q->ids, *alloc * sizeof(*q->ids));
		}
		q->ids[q->f.n_ids++] = list[i].id;
	}
	free(list);
	return 0;
}

/* ids: entry ids (integers) and queue ids (strings). */
static int admin_qf_ids(struct admin_request *req, struct admin_qf *q)
{
	json_t *v = json_object_get(req->args, "ids"), *item;
	size_t alloc = 0, i;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) == 0) {
		admin_request_fail(req, "usage", "argument ids must be a list of ids");
		return -1;
	}
	json_array_foreach(v, i, item)
	{
		if (json_is_string(item)) {
			if (admin_qf_queue_id(req, q, json_string_value(item), &alloc) < 0)
				return -1;
			continue;
		}
		if (!json_is_integer(item) || json_integer_value(item) <= 0) {
			admin_request_fail(req, "usage",
			                   "argument ids: entry ids are positive integers, "
			                   "queue ids strings");
			return -1;
		}
		if (q->f.n_ids == alloc) {
			alloc = alloc * 2 + 16;
			q->ids = xrealloc(q->ids, alloc * sizeof(*q->ids));
		}
		q->ids[q->f.n_ids++] = json_integer_value(item);
	}
	json_object_set(q->about, "ids", v);
	return 0;
}

/* Reads the filter arguments; NULL after answering the problem. */
static struct admin_qf *admin_qf_parse(struct admin_request *req)
{
	struct admin_qf *q = xcalloc(1, sizeof(*q));

	q->about = json_object();
	for (int i = 0; i < 7; i++) {
		const char *value = NULL;
		if (admin_arg_string(req, admin_qf_names[i], false, &value) < 0 ||
		    (value != NULL && admin_qf_string(req, q, i, value) < 0)) {
			admin_qf_free(q);
			return NULL;
		}
	}
	if (admin_qf_state(req, q) < 0 || admin_qf_older(req, q) < 0 || admin_qf_ids(req, q) < 0) {
		admin_qf_free(q);
		return NULL;
	}
	q->f.queue_id = q->strings[0];
	q->f.sender = q->strings[1];
	q->f.sender_domain = q->strings[2];
	q->f.rcpt = q->strings[3];
	q->f.rcpt_domain = q->strings[4];
	q->f.auth_user = q->strings[5];
	q->f.client_ip = q->strings[6];
	q->f.ids = q->ids;
	q->given = json_object_size(q->about) > 0;
	return q;
}

/* ---- list, show ----------------------------------------------------------- */

static json_t *admin_queue_entry_json(const struct store_queue_entry *e)
{
	json_t *o = json_pack(
	    "{s:I, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "id", (json_int_t)e->id,
	    "queue_id", e->env.queue_id, "sender", e->env.sender, "rcpt", e->rcpt.rcpt, "state",
	    store_queue_state_name((int)e->state), "attempts", (json_int_t)e->attempts, "created",
	    (json_int_t)e->created, "next_attempt", (json_int_t)e->next_attempt, "size",
	    (json_int_t)e->size, "last_reply", e->last_reply);

	json_object_set_new(o, "auth_user", json_string(e->env.auth_user));
	json_object_set_new(o, "client_ip", json_string(e->env.client_ip));
	json_object_set_new(o, "message_id", json_string(e->env.message_id));
	return o;
}

static int admin_queue_limit(struct admin_request *req, size_t *limit_r)
{
	json_t *v = json_object_get(req->args, "limit");

	*limit_r = ADMIN_QUEUE_LIST_DEFAULT;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		admin_request_fail(req, "usage", "argument limit must be a count (0: no limit)");
		return -1;
	}
	*limit_r = (size_t)json_integer_value(v);
	return 0;
}

/* args: the filter, limit (default 1000, 0: all), after_id (paging). */
void admin_queue_list(struct admin_request *req)
{
	json_t *after = json_object_get(req->args, "after_id"), *result;
	struct store_queue_entry *list;
	struct admin_qf *q;
	size_t limit, n;

	if (admin_queue_limit(req, &limit) < 0 || (q = admin_qf_parse(req)) == NULL)
		return;
	if (json_is_integer(after))
		q->f.after_id = json_integer_value(after);
	if (store_queue_query(req->host->reader, &q->f, limit, &list, &n) < 0) {
		admin_qf_free(q);
		admin_request_fail(req, "io", "cannot read the queue");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_queue_entry_json(&list[i]));
	free(list);
	admin_qf_free(q);
	admin_request_ok(req, result);
}

/* From, To, Subject, Date, Message-ID of the message's header section (its
 * first ADMIN_QUEUE_HEAD_MAX bytes: a header section is never longer in
 * practice); null when the bytes cannot be read. */
static json_t *admin_queue_headers(struct store_reader *r, int64_t blob_id)
{
	static const char *const fields[] = {"From", "To", "Subject", "Date", "Message-ID"};
	struct store_blob_stream *stream;
	uint64_t size;
	char *buf, value[1024];
	const char *error;
	size_t len = 0;
	long got = 1;
	json_t *o;

	if (store_blob_stream_open(r, blob_id, &stream, &size, &error) < 0)
		return json_null();
	buf = xmalloc(ADMIN_QUEUE_HEAD_MAX);
	while (len < ADMIN_QUEUE_HEAD_MAX && got > 0) {
		got = store_blob_stream_read(stream, buf + len, ADMIN_QUEUE_HEAD_MAX - len, &error);
		if (got > 0)
			len += (size_t)got;
	}
	store_blob_stream_close(&stream);
	o = json_object();
	for (size_t i = 0; got >= 0 && i < sizeof(fields) / sizeof(fields[0]); i++)
		json_object_set_new(o, fields[i],
		                    header_get(buf, len, fields[i], value, sizeof(value)) == 0
		                        ? json_string(value)
		                        : json_null());
	free(buf);
	if (got < 0) {
		json_decref(o);
		return json_null();
	}
	return o;
}

static json_t *admin_queue_rcpt_json(const struct store_queue_entry *e)
{
	return json_pack("{s:I, s:s, s:s, s:I, s:s, s:I, s:I, s:s}", "id", (json_int_t)e->id,
	                 "rcpt", e->rcpt.rcpt, "orcpt", e->rcpt.orcpt, "notify",
	                 (json_int_t)e->rcpt.notify, "state", store_queue_state_name((int)e->state),
	                 "attempts", (json_int_t)e->attempts, "next_attempt",
	                 (json_int_t)e->next_attempt, "last_reply", e->last_reply);
}

static json_t *admin_queue_show_json(struct store_reader *r, const struct store_queue_entry *list,
                                     size_t n)
{
	const struct store_envelope *env = &list[0].env;
	static const char *const rets[] = {"", "FULL", "HDRS"};
	static const char *const bodies[] = {"", "7BIT", "8BITMIME", "BINARYMIME"};
	json_t *rcpts = json_array();
	json_t *o = json_pack(
	    "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I}", "queue_id", env->queue_id,
	    "sender", env->sender, "message_id", env->message_id, "envid", env->envid, "ret",
	    env->ret < 3 ? rets[env->ret] : "", "body", env->body < 4 ? bodies[env->body] : "",
	    "auth_user", env->auth_user, "smtputf8", env->smtputf8, "client_ip", env->client_ip,
	    "size", (json_int_t)list[0].size, "created", (json_int_t)list[0].created);

	for (size_t i = 0; i < n; i++)
		json_array_append_new(rcpts, admin_queue_rcpt_json(&list[i]));
	json_object_set_new(o, "recipients", rcpts);
	json_object_set_new(o, "headers", admin_queue_headers(r, list[0].blob_id));
	return o;
}

/* The queue id of entry id, whatever its state: 0, or -1 when none. */
static int admin_queue_entry_qid(struct store_reader *r, int64_t id, char qid[64])
{
	struct store_queue_filter f = {.ids = &id, .n_ids = 1};
	struct store_queue_entry *list;
	size_t n = 0;

	for (int s = 0; s <= STORE_QUEUE_FAILED && n == 0; s++) {
		f.state = s;
		if (store_queue_query(r, &f, 1, &list, &n) < 0)
			return -1;
		if (n > 0)
			snprintf(qid, 64, "%s", list[0].env.queue_id);
		free(list);
	}
	return n > 0 ? 0 : -1;
}

/* args: id: a queue id, or an entry id (an integer, or its digits) standing
 * for the message it belongs to. */
void admin_queue_show(struct admin_request *req)
{
	json_t *v = json_object_get(req->args, "id"), *result;
	struct store_queue_entry *list = NULL;
	const char *given = json_is_string(v) ? json_string_value(v) : "";
	char qid[64] = "";
	size_t n = 0;

	if (!json_is_string(v) && !(json_is_integer(v) && json_integer_value(v) > 0)) {
		admin_request_fail(req, "usage", "missing argument id (a queue id or an entry id)");
		return;
	}
	if (json_is_string(v) && strlen(given) < sizeof(qid) &&
	    store_queue_list(req->host->reader, given, -1, 0, &list, &n) < 0)
		n = 0;
	if (n == 0) {
		int64_t id = json_is_integer(v) ? json_integer_value(v) : 0;
		if (*given != '\0' && strspn(given, "0123456789") == strlen(given))
			id = strtoll(given, NULL, 10);
		free(list);
		list = NULL;
		if (id > 0 && admin_queue_entry_qid(req->host->reader, id, qid) == 0 &&
		    store_queue_list(req->host->reader, qid, -1, 0, &list, &n) < 0)
			n = 0;
	}
	if (n == 0) {
		free(list);
		admin_request_fail(req, "not_found", "no queued message %s",
		                   *given != '\0' ? given : "with that entry id");
		return;
	}
	result = admin_queue_show_json(req->host->reader, list, n);
	free(list);
	admin_request_ok(req, result);
}

/* ---- changes ---------------------------------------------------------------- */

static const char *const admin_queue_actions[] = {
    [STORE_QUEUE_HOLD] = "hold",     [STORE_QUEUE_RELEASE] = "release",
    [STORE_QUEUE_RETRY] = "retry",   [STORE_QUEUE_DELETE] = "delete",
    [STORE_QUEUE_BOUNCE] = "bounce",
};

/* The states each action applies to, as in store.h. */
static unsigned admin_queue_action_states(enum store_queue_action action)
{
	switch (action) {
	case STORE_QUEUE_HOLD:
	case STORE_QUEUE_RETRY:
		return 1u << STORE_QUEUE_QUEUED | 1u << STORE_QUEUE_DEFERRED;
	case STORE_QUEUE_RELEASE:
		return 1u << STORE_QUEUE_HELD;
	case STORE_QUEUE_DELETE:
	case STORE_QUEUE_BOUNCE:
		break;
	}
	return 1u << STORE_QUEUE_QUEUED | 1u << STORE_QUEUE_DEFERRED | 1u << STORE_QUEUE_HELD;
}

/* How many entries the action will change (the job's progress total). */
static uint64_t admin_queue_total(struct store_reader *r, const struct store_queue_filter *f,
                                  enum store_queue_action action)
{
	unsigned states = admin_queue_action_states(action);
	struct store_queue_filter one = *f;
	uint64_t total = 0, n;

	if (f->state >= 0)
		states &= 1u << f->state;
	for (int s = 0; s <= STORE_QUEUE_FAILED; s++) {
		one.state = s;
		if ((states & 1u << s) && store_queue_count(r, &one, &n) == 0)
			total += n;
	}
	return total;
}

static void admin_queue_event(struct store_trace_event *e, const char *actor,
                              enum store_queue_action action)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->event, sizeof(e->event), "queue.%s", admin_queue_actions[action]);
	snprintf(e->protocol, sizeof(e->protocol), "admin");
	snprintf(e->session, sizeof(e->session), "%s", actor);
}

/* ---- bounce DSNs -------------------------------------------------------------- */

/* The original for a bounce (malloc'd, NULL when unreadable): whole up to
 * ADMIN_QUEUE_DSN_FULL_MAX, else its beginning, marked headers only.  A
 * bounced entry no longer holds its blob, but the bytes stay until
 * compaction (store.h), and the DSN is built right after the bounce. */
static char *admin_queue_original(struct store_reader *r, const struct store_queue_entry *e,
                                  size_t *len_r, bool *headers_only_r)
{
	struct store_blob_stream *stream;
	uint64_t total;
	const char *error;
	void *data;
	size_t size;
	char *buf;
	long got;

	*len_r = 0;
	*headers_only_r = e->size > ADMIN_QUEUE_DSN_FULL_MAX;
	if (!*headers_only_r) {
		if (store_blob_read(r, e->blob_id, &data, &size, &error) < 0)
			return NULL;
		*len_r = size;
		return data;
	}
	if (store_blob_stream_open(r, e->blob_id, &stream, &total, &error) < 0)
		return NULL;
	buf = xmalloc(ADMIN_QUEUE_HEAD_MAX);
	while (*len_r < ADMIN_QUEUE_HEAD_MAX &&
	       (got = store_blob_stream_read(stream, buf + *len_r, ADMIN_QUEUE_HEAD_MAX - *len_r,
	                                     &error)) > 0)
		*len_r += (size_t)got;
	store_blob_stream_close(&stream);
	return buf;
}

/* By queue id, then entry id: a message's recipients side by side, so that
 * each message gets one DSN for all of them. */
static int admin_queue_entry_cmp(const void *a, const void *b)
{
	const struct store_queue_entry *x = *(const struct store_queue_entry *const *)a;
	const struct store_queue_entry *y = *(const struct store_queue_entry *const *)b;
	int c = strcmp(x->env.queue_id, y->env.queue_id);

	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* One message's DSN for its bounced entries e[0..n) (NOTIFY permitting). */
static void admin_queue_bounce_dsn(struct pipeline *p, struct store_reader *r, struct loop *loop,
                                   const struct store_queue_entry *const *e, size_t n)
{
	struct dsn_rcpt *dr = xcalloc(n, sizeof(*dr));
	char (*orcpt_type)[600] = xcalloc(n, sizeof(*orcpt_type));
	struct pipeline_report rep = {.env = &e[0]->env, .arrival = e[0]->created, .rcpts = dr};
	const char *error;
	char *orig;

	for (size_t i = 0; i < n; i++) {
		const char *semi = strchr(e[i]->rcpt.orcpt, ';');
		struct dsn_rcpt *d = &dr[rep.n_rcpts];

		if (!dsn_should_send(e[i]->env.sender, e[i]->rcpt.notify, DSN_ACTION_FAILED))
			continue;
		d->final_rcpt = e[i]->rcpt.rcpt;
		if (semi != NULL) {
			snprintf(orcpt_type[rep.n_rcpts], sizeof(orcpt_type[0]), "%.*s",
			         (int)(semi - e[i]->rcpt.orcpt), e[i]->rcpt.orcpt);
			d->orcpt_type = orcpt_type[rep.n_rcpts];
			d->orcpt = semi + 1;
		}
		d->action = DSN_ACTION_FAILED;
		/* 5.0.0: no status code says "an administrator stopped it"; the
		 * diagnostic does. */
		d->status = "5.0.0";
		d->diagnostic = STORE_QUEUE_BOUNCED;
		rep.n_rcpts++;
	}
	if (rep.n_rcpts > 0) {
		orig = admin_queue_original(r, e[0], &rep.msg_len, &rep.headers_only);
		rep.msg = orig;
		if (pipeline_submit_report(p, &rep, loop, &error) < 0)
			log_error("admin", "queue=%s event=dsn_not_sent error=\"%s\"",
			          e[0]->env.queue_id, error);
		free(orig);
	}
	free(orcpt_type);
	free(dr);
}

/* The DSNs for entries just bounced (n of them, in any order): one per
 * message of each change.  A filter's job changes a message's entries in
 * the same chunk unless a chunk boundary falls between them; then the
 * sender gets two DSNs for that message, each naming its own recipients. */
static void admin_queue_bounce_dsns(struct pipeline *p, struct store_reader *r, struct loop *loop,
                                    const struct store_queue_entry *list, size_t n)
{
	const struct store_queue_entry **sorted;

	if (p == NULL || n == 0)
		return;
	sorted = xcalloc(n, sizeof(*sorted));
	for (size_t i = 0; i < n; i++)
		sorted[i] = &list[i];
	qsort(sorted, n, sizeof(*sorted), admin_queue_entry_cmp);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(sorted[j]->env.queue_id, sorted[i]->env.queue_id) == 0;
		     j++)
			;
		admin_queue_bounce_dsn(p, r, loop, sorted + i, j - i);
	}
	free(sorted);
}

/* A chunk's bounced entries, read back by the ids its reply lists (now
 * FAILED), for their DSNs. */
static void admin_queue_bounce_reply_dsns(struct pipeline *p, struct store_reader *r,
                                          struct loop *loop, const struct store_reply *reply)
{
	struct store_queue_filter f = {.state = STORE_QUEUE_FAILED};
	struct store_queue_entry *list;
	int64_t *ids;
	size_t n;

	if (p == NULL || reply->n_delivered == 0)
		return;
	ids = xcalloc(reply->n_delivered, sizeof(*ids));
	for (size_t i = 0; i < reply->n_delivered; i++)
		ids[i] = reply->delivered[i].mailbox_id;
	f.ids = ids;
	f.n_ids = reply->n_delivered;
	if (store_queue_query(r, &f, 0, &list, &n) < 0) {
		log_error("admin", "event=dsn_not_sent count=%zu error=\"cannot read the queue\"",
		          reply->n_delivered);
		free(ids);
		return;
	}
	admin_queue_bounce_dsns(p, r, loop, list, n);
	free(list);
	free(ids);
}

/* A change by ids: one write; the entries are read first for their trace
 * events. */
struct admin_queue_change {
	struct admin_request *req;
	struct admin_qf *q;
	enum store_queue_action action;
	struct store_queue_entry *before;
	size_t n_before;
};

static const struct store_queue_entry *admin_queue_before(const struct admin_queue_change *c,
                                                          int64_t id)
{
	for (size_t i = 0; i < c->n_before; i++)
		if (c->before[i].id == id)
			return &c->before[i];
	return NULL;
}

/* One trace event per entry changed, committed with the next batch. */
static void admin_queue_change_trace(const struct admin_queue_change *c,
                                     const struct store_reply *reply)
{
	struct store_trace_event *ev = xcalloc(reply->n_delivered + 1, sizeof(*ev));
	size_t n = 0;

	for (size_t i = 0; i < reply->n_delivered; i++) {
		const struct store_queue_entry *e =
		    admin_queue_before(c, reply->delivered[i].mailbox_id);
		if (e == NULL)
			continue;
		admin_queue_event(&ev[n], c->req->actor, c->action);
		snprintf(ev[n].queue_id, sizeof(ev[n].queue_id), "%s", e->env.queue_id);
		snprintf(ev[n].message_id, sizeof(ev[n].message_id), "%s", e->env.message_id);
		snprintf(ev[n].sender, sizeof(ev[n].sender), "%s", e->env.sender);
		snprintf(ev[n].rcpt, sizeof(ev[n].rcpt), "%s", e->rcpt.rcpt);
		snprintf(ev[n].detail, sizeof(ev[n].detail), "entry %lld by the administrator",
		         (long long)e->id);
		n++;
	}
	store_trace_defer(c->req->host->store, ev, n);
	free(ev);
}

/* The entries read before the change stand for the bounced ones: only
 * their state and last reply changed. */
static void admin_queue_change_bounce_dsns(const struct admin_queue_change *c,
                                           const struct store_reply *reply)
{
	struct store_queue_entry *bounced = xcalloc(reply->n_delivered + 1, sizeof(*bounced));
	size_t n = 0;

	for (size_t i = 0; i < reply->n_delivered; i++) {
		const struct store_queue_entry *e =
		    admin_queue_before(c, reply->delivered[i].mailbox_id);
		if (e != NULL)
			bounced[n++] = *e;
	}
	admin_queue_bounce_dsns(c->req->host->pipeline, c->req->host->reader, c->req->host->loop,
	                        bounced, n);
	free(bounced);
}

static void admin_queue_change_done(const struct store_reply *reply, void *ctx)
{
	struct admin_queue_change *c = ctx;
	struct admin_request *req = c->req;

	if (reply->status < 0) {
		admin_request_fail_store(req, reply);
	} else {
		json_t *ids = json_array();
		for (size_t i = 0; i < reply->n_delivered; i++)
			json_array_append_new(ids, json_integer(reply->delivered[i].mailbox_id));
		admin_queue_change_trace(c, reply);
		pipeline_queue_changed(req->host->pipeline);
		if (c->action == STORE_QUEUE_BOUNCE)
			admin_queue_change_bounce_dsns(c, reply);
		admin_request_audit(req, "action=%s changed=%lld", admin_queue_actions[c->action],
		                    (long long)reply->id);
		admin_request_log(req);
		admin_request_ok(req, json_pack("{s:s, s:I, s:o}", "action",
		                                admin_queue_actions[c->action], "changed",
		                                (json_int_t)reply->id, "ids", ids));
	}
	admin_qf_free(c->q);
	free(c->before);
	free(c);
}

static void admin_queue_change_ids(struct admin_request *req, struct admin_qf *q,
                                   enum store_queue_action action)
{
	struct admin_queue_change *c = xcalloc(1, sizeof(*c));
	struct store_queue_filter every = q->f;

	c->req = req;
	c->q = q;
	c->action = action;
	/* Final entries too: the event names what was asked of them only if
	 * the store changed them. */
	for (int s = 0; s <= STORE_QUEUE_FAILED; s++) {
		struct store_queue_entry *list;
		size_t n;
		every.state = s;
		if (store_queue_query(req->host->reader, &every, 0, &list, &n) < 0 || n == 0) {
			free(list);
			continue;
		}
		c->before = xrealloc(c->before, (c->n_before + n + 1) * sizeof(*c->before));
		memcpy(c->before + c->n_before, list, n * sizeof(*list));
		c->n_before += n;
		free(list);
	}
	store_queue_change(req->host->store, &q->f, action, 0, req->host->loop,
	                   admin_queue_change_done, c);
}

/* A change by filter: a job of chunks.  What it needs is copied here: the
 * job may outlive the request and the admin server's host. */
struct admin_queue_job {
	struct store *store;
	struct store_reader *reader; /* the loop's */
	struct pipeline *pipeline;   /* for bounces; NULL: no DSNs */
	struct loop *loop;
	struct admin_qf *q;
	enum store_queue_action action;
	struct admin_job *job;
};

static void admin_queue_job_chunk_done(const struct store_reply *reply, void *ctx)
{
	struct admin_queue_job *qj = ctx;
	uint64_t changed = reply->status == 0 ? (uint64_t)reply->id : 0;

	if (reply->status < 0) {
		admin_job_step_done(qj->job, 0, 0, false, reply->error);
		return;
	}
	/* Every entry the chunk matched changed (store.h): the next chunk
	 * starts after the last, and a short chunk was the last. */
	if (reply->n_delivered > 0)
		qj->q->f.after_id = reply->delivered[reply->n_delivered - 1].mailbox_id;
	if (qj->action == STORE_QUEUE_BOUNCE)
		admin_queue_bounce_reply_dsns(qj->pipeline, qj->reader, qj->loop, reply);
	admin_job_step_done(qj->job, changed, changed, changed == ADMIN_QUEUE_CHUNK, NULL);
}

static void admin_queue_job_step(struct admin_job *job, void *data)
{
	struct admin_queue_job *qj = data;

	qj->job = job;
	store_queue_change(qj->store, &qj->q->f, qj->action, ADMIN_QUEUE_CHUNK, qj->loop,
	                   admin_queue_job_chunk_done, qj);
}

/* One trace event for the whole job: 100,000 events for one command would
 * drown the trace. */
static void admin_queue_job_finish(struct admin_job *job, void *data)
{
	struct admin_queue_job *qj = data;
	struct store_trace_event ev;
	char *about = json_dumps(qj->q->about, JSON_COMPACT | JSON_SORT_KEYS);

	pipeline_queue_changed(qj->pipeline);
	admin_queue_event(&ev, "", qj->action);
	snprintf(ev.session, sizeof(ev.session), "job=%u", admin_job_id(job));
	snprintf(ev.detail, sizeof(ev.detail), "%s filter=%s changed=%llu",
	         admin_job_state(job) == ADMIN_JOB_DONE ? "done" : "failed",
	         about != NULL ? about : "{}", (unsigned long long)admin_job_changed(job));
	free(about);
	store_trace_append(qj->store, &ev, 1, NULL, NULL, NULL);
}

static void admin_queue_job_free(void *data)
{
	struct admin_queue_job *qj = data;

	admin_qf_free(qj->q);
	free(qj);
}

static const struct admin_job_ops admin_queue_job_ops = {
    .step = admin_queue_job_step,
    .finish = admin_queue_job_finish,
    .free = admin_queue_job_free,
};

static void admin_queue_change_job(struct admin_request *req, struct admin_qf *q,
                                   enum store_queue_action action, bool wait)
{
	struct admin_queue_job *qj = xcalloc(1, sizeof(*qj));
	uint64_t total = admin_queue_total(req->host->reader, &q->f, action);
	struct admin_job *job;
	char kind[32], *about = json_dumps(q->about, JSON_COMPACT | JSON_SORT_KEYS);

	qj->store = req->host->store;
	qj->reader = req->host->reader;
	qj->pipeline = req->host->pipeline;
	qj->loop = req->host->loop;
	qj->q = q;
	qj->action = action;
	snprintf(kind, sizeof(kind), "queue.%s", admin_queue_actions[action]);
	job = admin_job_start(req->host->jobs, kind, req->actor, json_incref(q->about), total,
	                      &admin_queue_job_ops, qj);
	admin_request_audit(req, "job=%u filter=%s total=%llu", admin_job_id(job),
	                    about != NULL ? about : "{}", (unsigned long long)total);
	free(about);
	admin_request_log(req);
	if (wait)
		admin_job_wait(job, req);
	else
		admin_request_ok(req, json_pack("{s:I, s:I}", "job", (json_int_t)admin_job_id(job),
		                                "total", (json_int_t)total));
}

/* args: ids and/or the filter of queue.list; all (required true for delete
 * and bounce without any); wait (a filter's job answers when done). */
static void admin_queue_change(struct admin_request *req, enum store_queue_action action)
{
	struct admin_qf *q = admin_qf_parse(req);
	bool all = false, wait = false;

	if (q == NULL)
		return;
	if (admin_arg_bool(req, "all", &all) < 0 || admin_arg_bool(req, "wait", &wait) < 0) {
		admin_qf_free(q);
		return;
	}
	if (!q->given && !all && (action == STORE_QUEUE_DELETE || action == STORE_QUEUE_BOUNCE)) {
		admin_qf_free(q);
		admin_request_fail(
		    req, "usage",
		    "refusing to %s every queued message without a filter: give ids, "
		    "a filter, or all: true",
		    admin_queue_actions[action]);
		return;
	}
	if (req->host->jobs == NULL && q->f.n_ids == 0) {
		admin_qf_free(q);
		admin_request_fail(req, "internal", "jobs are not available in this process");
		return;
	}
	if (q->f.n_ids > 0)
		admin_queue_change_ids(req, q, action);
	else
		admin_queue_change_job(req, q, action, wait);
}

void admin_queue_hold(struct admin_request *req)
{
	admin_queue_change(req, STORE_QUEUE_HOLD);
}

void admin_queue_release(struct admin_request *req)
{
	admin_queue_change(req, STORE_QUEUE_RELEASE);
}

void admin_queue_retry(struct admin_request *req)
{
	admin_queue_change(req, STORE_QUEUE_RETRY);
}

void admin_queue_delete(struct admin_request *req)
{
	admin_queue_change(req, STORE_QUEUE_DELETE);
}

void admin_queue_bounce(struct admin_request *req)
{
	admin_queue_change(req, STORE_QUEUE_BOUNCE);
}

/* ---- stats, jobs ------------------------------------------------------------- */

static json_t *admin_queue_counts_json(const struct store_queue_count *list, size_t n)
{
	json_t *o = json_object();

	for (size_t i = 0; i < n; i++)
		json_object_set_new(o, list[i].key, json_integer((json_int_t)list[i].count));
	return o;
}

void admin_queue_stats(struct admin_request *req)
{
	struct store_queue_count *states, *domains;
	size_t n_states, n_domains;
	json_t *by_domain;

	if (store_queue_stats(req->host->reader, &states, &n_states, &domains, &n_domains) < 0) {
		admin_request_fail(req, "io", "cannot read the queue");
		return;
	}
	/* Domains as a list: its order (most first) is the point. */
	by_domain = json_array();
	for (size_t i = 0; i < n_domains; i++)
		json_array_append_new(by_domain, json_pack("{s:s, s:I}", "domain", domains[i].key,
		                                           "count", (json_int_t)domains[i].count));
	admin_request_ok(req, json_pack("{s:o, s:o}", "by_state",
	                                admin_queue_counts_json(states, n_states), "by_domain",
	                                by_domain));
	free(states);
	free(domains);
}

/* args: id (optional): that job alone, else every job kept. */
void admin_jobs_list(struct admin_request *req)
{
	json_t *id = json_object_get(req->args, "id");
	struct admin_job *job;

	if (req->host->jobs == NULL) {
		admin_request_ok(req, json_array());
		return;
	}
	if (id == NULL || json_is_null(id)) {
		admin_request_ok(req, admin_jobs_json(req->host->jobs));
		return;
	}
	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		admin_request_fail(req, "usage", "argument id must be a job id");
		return;
	}
	job = admin_jobs_find(req->host->jobs, (unsigned)json_integer_value(id));
	if (job == NULL) {
		admin_request_fail(req, "not_found", "no job %lld",
		                   (long long)json_integer_value(id));
		return;
	}
	admin_request_ok(req, json_pack("[o]", admin_job_json(job)));
}
