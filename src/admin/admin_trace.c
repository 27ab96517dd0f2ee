/* trace.query: the timeline of what happened to messages (docs/trace.md).
 *
 * Answers come from the trace table's indexes: a --message-id query is
 * store_trace_query_message (the message's own events and those of the
 * queue ids that carried it); any other is store_trace_query on the
 * (field, time) index of its fields.  Other given fields then narrow the
 * message's events here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_request.h"
#include "lib/xalloc.h"
#include "store/store.h"
#include "trace/trace.h"
#include "trace/trace_json.h"

/* More than this is cut, and the answer says so: narrow the query. */
#define ADMIN_TRACE_MAX 20000

static const char *const admin_trace_args[] = {
	"queue_id", "message_id", "account", "ip", "sender", "rcpt",
};

static int admin_trace_filter(struct admin_request *req, struct store_trace_event *f,
			      bool *any_r)
{
	char *const fields[] = { f->queue_id, f->message_id, f->account,
				 f->client_ip, f->sender,     f->rcpt };
	const size_t sizes[] = { sizeof(f->queue_id),  sizeof(f->message_id), sizeof(f->account),
				 sizeof(f->client_ip), sizeof(f->sender),     sizeof(f->rcpt) };
	const char *value;

	*any_r = false;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		value = NULL;
		if (admin_arg_string(req, admin_trace_args[i], false, &value) < 0)
			return -1;
		if (value == NULL || value[0] == '\0')
			continue;
		if (strlen(value) >= sizes[i]) {
			admin_request_fail(req, "invalid", "%s is too long", admin_trace_args[i]);
			return -1;
		}
		snprintf(fields[i], sizes[i], "%s", value);
		*any_r = true;
	}
	return 0;
}

int admin_trace_time(struct admin_request *req, const char *name, time_t *t_r)
{
	json_t *v = json_object_get(req->args, name);

	*t_r = 0;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		admin_request_fail(req, "usage", "argument %s must be epoch seconds", name);
		return -1;
	}
	*t_r = (time_t)json_integer_value(v);
	return 0;
}

/* The fields a message's events must also match (addresses in any case). */
static bool admin_trace_match(const struct store_trace_event *e,
			      const struct store_trace_event *f)
{
	return (f->queue_id[0] == '\0' || strcmp(e->queue_id, f->queue_id) == 0) &&
	       (f->account[0] == '\0' || strcasecmp(e->account, f->account) == 0) &&
	       (f->client_ip[0] == '\0' || strcmp(e->client_ip, f->client_ip) == 0) &&
	       (f->sender[0] == '\0' || strcasecmp(e->sender, f->sender) == 0) &&
	       (f->rcpt[0] == '\0' || strcasecmp(e->rcpt, f->rcpt) == 0);
}

/* One object per message, in the order of each one's first event. */
static json_t *admin_trace_groups(const struct store_trace_event *events, size_t n)
{
	size_t *group = xcalloc(n > 0 ? n : 1, sizeof(*group));
	json_t *messages = json_array(), *m, *list;

	trace_group(events, n, group);
	for (size_t head = 0; head < n; head++) {
		if (group[head] != head)
			continue;
		list = json_array();
		m = json_pack("{s:s, s:s, s:s}", "queue_id", "", "message_id", "", "session",
			      events[head].session);
		for (size_t i = head; i < n; i++) {
			if (group[i] != head)
				continue;
			if (events[i].queue_id[0] != '\0')
				json_object_set_new(m, "queue_id", json_string(events[i].queue_id));
			if (events[i].message_id[0] != '\0')
				json_object_set_new(m, "message_id",
						    json_string(events[i].message_id));
			json_array_append_new(list, trace_event_json(&events[i]));
		}
		json_object_set_new(m, "events", list);
		json_array_append_new(messages, m);
	}
	free(group);
	return messages;
}

static size_t admin_trace_narrow(struct store_trace_event *events, size_t n,
				 const struct store_trace_event *f)
{
	size_t kept = 0;

	for (size_t i = 0; i < n; i++)
		if (admin_trace_match(&events[i], f))
			events[kept++] = events[i];
	return kept;
}

/* args: any of queue_id, message_id, account, ip, sender, rcpt; since,
 * until (epoch seconds).  At least one of them. */
void admin_trace_query(struct admin_request *req)
{
	struct store_trace_event filter = { 0 }, *events;
	time_t since, until;
	size_t n;
	bool any;
	int ret;
	json_t *result;

	if (admin_trace_filter(req, &filter, &any) < 0 ||
	    admin_trace_time(req, "since", &since) < 0 || admin_trace_time(req, "until", &until) < 0)
		return;
	if (!any && since == 0) {
		admin_request_fail(req, "usage", "give at least one of message_id, queue_id, sender,"
				   " rcpt, account, ip, since");
		return;
	}
	if (filter.message_id[0] != '\0')
		ret = store_trace_query_message(req->host->reader, filter.message_id, since, until,
						&events, &n);
	else
		ret = store_trace_query(req->host->reader, &filter, since, until, &events, &n);
	if (ret < 0) {
		admin_request_fail(req, "io", "reading the trace failed");
		return;
	}
	if (filter.message_id[0] != '\0')
		n = admin_trace_narrow(events, n, &filter);
	result = json_pack("{s:I, s:b}", "events", (json_int_t)n, "truncated", n > ADMIN_TRACE_MAX);
	json_object_set_new(result, "messages",
			    admin_trace_groups(events, n > ADMIN_TRACE_MAX ? ADMIN_TRACE_MAX : n));
	free(events);
	admin_request_ok(req, result);
}
