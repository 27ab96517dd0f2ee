#include "trace/trace_json.h"

#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "store/store.h"

json_t *trace_event_json(const struct store_trace_event *e)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time",
			 (json_int_t)e->time, "protocol", e->protocol, "client_ip", e->client_ip,
			 "session", e->session, "event", e->event, "account", e->account,
			 "sender", e->sender, "rcpt", e->rcpt, "queue_id", e->queue_id,
			 "message_id", e->message_id, "detail", e->detail);
}

char *trace_event_json_line(json_t *event)
{
	/* JSON_COMPACT escapes control characters: one event, one line. */
	char *text = json_dumps(event, JSON_COMPACT | JSON_SORT_KEYS);
	char *line = xasprintf("%s\n", text != NULL ? text : "{}");

	free(text);
	return line;
}
