/* The trace log's policy and shaping (docs/trace.md): which events are
 * recorded at the current trace.level, the Message-ID of the message an
 * access event touched, how a timeline is grouped per message, and the
 * times keelctl accepts.  The events themselves are written by each protocol
 * (smtp_trace, imap_trace, pop3_trace) through the store's committer. */
#ifndef KEEL_TRACE_TRACE_H
#define KEEL_TRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct store_reader;
struct store_trace_event;

/* Whether an event of this protocol and kind is recorded at the current
 * trace.level: "delivery" leaves out the IMAP/POP3 access events (fetched,
 * flags, copied, moved, expunged, deleted, select); "off" every event (the
 * store also drops, at "off", events from writers that do not ask: schema
 * migration 9).  Thread-safe, cheap. */
bool trace_recorded(const char *protocol, const char *event);

/* Sets e->message_id to the Message-ID the message in blob_id was delivered
 * with, so that `keelctl trace --message-id` finds access events.  e may
 * be NULL (the event was not recorded): then it does nothing. */
void trace_event_message_id(struct store_reader *r, int64_t blob_id,
			    struct store_trace_event *e);

/* The same for the message uid in mailbox_id (IMAP, which names messages by
 * uid when it records flags, copies and expunges). */
void trace_event_message_uid(struct store_reader *r, int64_t mailbox_id, uint32_t uid,
			     struct store_trace_event *e);

/* Groups a timeline per message: group_r[i] is the index in events of the
 * first event of event i's group.  An event belongs to the message of its
 * queue id; one with only a Message-ID (an access event) to the group of
 * the queue id that carried that Message-ID, or to its own per Message-ID;
 * one with neither to its session's.  events in time order; group_r has n
 * entries. */
void trace_group(const struct store_trace_event *events, size_t n, size_t *group_r);

/* A time for --since/--until: "2024-05-01", "2024-05-01T10:00[:00]" (also
 * with a space; local time, or UTC with a final "Z"), a relative duration
 * meaning that long before now ("90m", "2h", "3d", "1w"), or "@EPOCH".
 * 0, or -1 on bad syntax. */
int trace_time_parse(const char *text, time_t now, time_t *time_r);

#endif
