/* A trace event as JSON: the fields of `keelctl trace --json`, shared by
 * the admin API (trace.export) and interception's event logs. */
#ifndef KEEL_TRACE_TRACE_JSON_H
#define KEEL_TRACE_TRACE_JSON_H

#include <jansson.h>

struct store_trace_event;

/* {"time", "protocol", "client_ip", "session", "event", "account", "sender",
 * "rcpt", "queue_id", "message_id", "detail"}: a new reference. */
json_t *trace_event_json(const struct store_trace_event *e);

/* One JSON line (compact, keys sorted, no newline inside), malloc'd,
 * ending in "\n". */
char *trace_event_json_line(json_t *event);

#endif
