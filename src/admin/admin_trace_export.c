/* trace.export: an account's or a message's trace events, or the messages
 * themselves, for handing over (docs/trace.md, "Export").  Answers come in
 * pages: each answer's "next" is the cursor to ask for the following page
 * ("after"), null on the last, so that neither the server nor a client
 * holds a whole mailbox at once. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_intercept.h"
#include "lib/base64.h"
#include "mail/address.h"
#include "mail/header.h"
#include "store/store.h"
#include "trace/trace_json.h"

struct admin_export {
	const char *account, *message_id;
	time_t since, until;
	json_t *items;
	size_t bytes;
};

static void admin_export_answer(struct admin_request *req, struct admin_export *x, json_t *next)
{
	admin_request_ok(req, json_pack("{s:o, s:o}", "items", x->items, "next",
					next != NULL ? next : json_null()));
}

/* ---- events ----------------------------------------------------------------- */

static void admin_export_events(struct admin_request *req, struct admin_export *x,
				int64_t after)
{
	struct store_trace_event *events;
	int64_t *ids = NULL;
	size_t n;
	int ret;

	if (x->account != NULL)
		ret = store_trace_account_after(req->host->reader, x->account, after, x->since,
						x->until, ADMIN_EXPORT_PAGE_EVENTS, &events, &ids, &n);
	else
		ret = store_trace_query_message(req->host->reader, x->message_id, x->since,
						x->until, &events, &n);
	if (ret < 0) {
		json_decref(x->items);
		admin_request_fail(req, "io", "reading the trace failed");
		return;
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(x->items, trace_event_json(&events[i]));
	admin_export_answer(req, x,
			    x->account != NULL && n == ADMIN_EXPORT_PAGE_EVENTS
				    ? json_integer(ids[n - 1])
				    : NULL);
	free(events);
	free(ids);
}

/* ---- messages ------------------------------------------------------------------ */

/* The envelope sender from the Return-Path delivery added; "" for <>. */
static void admin_export_sender(const char *data, size_t size, char *buf, size_t bufsize)
{
	char rp[STORE_ADDR_MAX + 3], *p = rp;
	size_t len;

	buf[0] = '\0';
	if (header_get(data, size, "Return-Path", rp, sizeof(rp)) < 0)
		return;
	while (*p == ' ' || *p == '<')
		p++;
	len = strcspn(p, "> \t");
	snprintf(buf, bufsize, "%.*s", (int)len, p);
}

/* Adds message m to the page; -1 after answering an error. */
static int admin_export_message(struct admin_request *req, struct admin_export *x,
				const struct store_message *m, const char *account,
				const char *mailbox)
{
	void *data;
	size_t size;
	const char *error;
	char sender[STORE_ADDR_MAX + 1], *b64;
	json_t *o;

	if (store_blob_read(req->host->reader, m->blob_id, &data, &size, &error) < 0) {
		json_decref(x->items);
		admin_request_fail(req, "io", "reading message %s uid %u failed: %s", mailbox,
				   m->uid, error != NULL ? error : "store error");
		return -1;
	}
	admin_export_sender(data, size, sender, sizeof(sender));
	b64 = malloc(4 * ((size + 2) / 3) + 1);
	if (b64 == NULL) {
		free(data);
		json_decref(x->items);
		admin_request_fail(req, "internal", "out of memory");
		return -1;
	}
	base64_encode(data, size, b64);
	o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "account", account, "mailbox",
		      mailbox, "uid", (json_int_t)m->uid, "internaldate",
		      (json_int_t)m->internaldate, "size", (json_int_t)size, "sender", sender,
		      "data_base64", b64);
	json_array_append_new(x->items, o);
	x->bytes += size;
	free(b64);
	free(data);
	return 0;
}

static bool admin_export_in_time(const struct admin_export *x, const struct store_message *m)
{
	return m->internaldate >= x->since && (x->until == 0 || m->internaldate <= x->until);
}

static bool admin_export_full(const struct admin_export *x)
{
	return json_array_size(x->items) >= ADMIN_EXPORT_PAGE_MESSAGES ||
	       x->bytes >= ADMIN_EXPORT_PAGE_BYTES;
}

/* One mailbox from uid first_uid on; *next_r set when the page filled. */
static int admin_export_mailbox(struct admin_request *req, struct admin_export *x,
				const struct store_user *u, const struct store_mailbox *mb,
				uint32_t first_uid, json_t **next_r)
{
	struct store_message *list;
	size_t n;

	if (store_message_list(req->host->reader, mb->id, first_uid, 0, &list, &n) < 0) {
		json_decref(x->items);
		admin_request_fail(req, "io", "reading mailbox %s failed", mb->name);
		return -1;
	}
	for (size_t i = 0; i < n && *next_r == NULL; i++) {
		if (!admin_export_in_time(x, &list[i]))
			continue;
		if (admin_export_message(req, x, &list[i], u->address, mb->name) < 0) {
			free(list);
			return -1;
		}
		if (admin_export_full(x))
			*next_r = json_sprintf("%" PRId64 ":%u", mb->id, list[i].uid);
	}
	free(list);
	return 0;
}

/* after: "MAILBOX_ID:UID" of the last message sent, or NULL. */
static void admin_export_account_messages(struct admin_request *req, struct admin_export *x,
					  const char *after)
{
	int64_t after_box = 0;
	unsigned after_uid = 0;
	struct store_mailbox *boxes;
	struct store_user u;
	json_t *next = NULL;
	size_t n;

	if (after != NULL && sscanf(after, "%" SCNd64 ":%u", &after_box, &after_uid) != 2) {
		json_decref(x->items);
		admin_request_fail(req, "usage", "argument after is not a cursor of this export");
		return;
	}
	if (store_user_get(req->host->reader, x->account, &u) < 0) {
		json_decref(x->items);
		admin_request_fail(req, "not_found", "account %s does not exist", x->account);
		return;
	}
	if (store_mailbox_list(req->host->reader, u.id, &boxes, &n) < 0) {
		json_decref(x->items);
		admin_request_fail(req, "io", "reading the mailboxes failed");
		return;
	}
	/* Mailboxes come by id: the cursor's order. */
	for (size_t i = 0; i < n && next == NULL; i++) {
		if (boxes[i].id < after_box)
			continue;
		if (admin_export_mailbox(req, x, &u, &boxes[i],
					 boxes[i].id == after_box ? after_uid + 1 : 1, &next) < 0) {
			free(boxes);
			return;
		}
	}
	free(boxes);
	admin_export_answer(req, x, next);
}

/* Every message delivered with the Message-ID, in any mailbox; after: the
 * last message row id sent. */
static void admin_export_id_messages(struct admin_request *req, struct admin_export *x,
				     int64_t after)
{
	struct store_message *list;
	struct store_mailbox mb;
	struct store_user u;
	json_t *next = NULL;
	size_t n;

	if (store_message_find_by_message_id(req->host->reader, x->message_id, &list, &n) < 0) {
		json_decref(x->items);
		admin_request_fail(req, "io", "reading the messages failed");
		return;
	}
	for (size_t i = 0; i < n && next == NULL; i++) {
		if (list[i].id <= after || !admin_export_in_time(x, &list[i]) ||
		    store_mailbox_get_by_id(req->host->reader, list[i].mailbox_id, &mb) < 0 ||
		    store_user_get_by_id(req->host->reader, mb.user_id, &u) < 0)
			continue;
		if (admin_export_message(req, x, &list[i], u.address, mb.name) < 0) {
			free(list);
			return;
		}
		if (admin_export_full(x) && i + 1 < n)
			next = json_integer(list[i].id);
	}
	free(list);
	admin_export_answer(req, x, next);
}

/* args: account or message_id (exactly one), what ("events" or
 * "messages"), since, until (epoch seconds), after (the previous page's
 * next). */
void admin_trace_export(struct admin_request *req)
{
	struct admin_export x = { 0 };
	const char *what = NULL, *after_text = NULL;
	json_t *after = json_object_get(req->args, "after");
	char canon[ADDRESS_MAX + 1];
	bool events;

	if (admin_arg_string(req, "account", false, &x.account) < 0 ||
	    admin_arg_string(req, "message_id", false, &x.message_id) < 0 ||
	    admin_arg_string(req, "what", true, &what) < 0 ||
	    admin_trace_time(req, "since", &x.since) < 0 ||
	    admin_trace_time(req, "until", &x.until) < 0)
		return;
	if ((x.account == NULL) == (x.message_id == NULL)) {
		admin_request_fail(req, "usage", "give exactly one of account and message_id");
		return;
	}
	if (strcmp(what, "events") != 0 && strcmp(what, "messages") != 0) {
		admin_request_fail(req, "usage", "argument what must be events or messages");
		return;
	}
	events = strcmp(what, "events") == 0;
	if (x.account != NULL) {
		if (admin_check_local_address(req, x.account, canon, sizeof(canon)) < 0)
			return;
		x.account = canon;
	}
	if (after != NULL && !json_is_null(after) &&
	    !(json_is_integer(after) && (x.message_id != NULL || events)) &&
	    !(json_is_string(after) && x.account != NULL && !events)) {
		admin_request_fail(req, "usage", "argument after is not a cursor of this export");
		return;
	}
	after_text = json_string_value(after);
	x.items = json_array();
	if (events)
		admin_export_events(req, &x, json_integer_value(after));
	else if (x.account != NULL)
		admin_export_account_messages(req, &x, after_text);
	else
		admin_export_id_messages(req, &x, json_integer_value(after));
}
