#include "trace/trace.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "settings/settings.h"
#include "store/store.h"

bool trace_recorded(const char *protocol, const char *event)
{
	static const char *const access[] = { "fetched", "flags",   "copied", "moved",
					      "expunged", "deleted", "select" };
	char level[16];

	settings_get("trace.level", level, sizeof(level));
	if (strcmp(level, "off") == 0)
		return false;
	if (strcmp(protocol, "imap") != 0 && strcmp(protocol, "pop3") != 0)
		return true;
	for (size_t i = 0; i < sizeof(access) / sizeof(access[0]); i++)
		if (strcmp(event, access[i]) == 0)
			return strcmp(level, "delivery") != 0;
	return true;
}

void trace_event_message_id(struct store_reader *r, int64_t blob_id,
			    struct store_trace_event *e)
{
	if (e == NULL || blob_id == 0)
		return;
	if (store_blob_message_id(r, blob_id, e->message_id, sizeof(e->message_id)) < 0)
		e->message_id[0] = '\0';
}

void trace_event_message_uid(struct store_reader *r, int64_t mailbox_id, uint32_t uid,
			     struct store_trace_event *e)
{
	if (e == NULL)
		return;
	if (store_message_message_id(r, mailbox_id, uid, e->message_id, sizeof(e->message_id)) < 0)
		e->message_id[0] = '\0';
}

/* ---- grouping ------------------------------------------------------------- */

/* What an event is grouped by, before access events are joined to the
 * queue id that carried their Message-ID. */
static const char *trace_group_key(const struct store_trace_event *e, char *kind_r)
{
	if (e->queue_id[0] != '\0') {
		*kind_r = 'q';
		return e->queue_id;
	}
	if (e->message_id[0] != '\0') {
		*kind_r = 'm';
		return e->message_id;
	}
	*kind_r = 's';
	return e->session;
}

struct trace_group_item {
	char kind;
	const char *key;
	size_t index;
};

static int trace_group_cmp(const void *a, const void *b)
{
	const struct trace_group_item *x = a, *y = b;
	int c = x->kind - y->kind;

	if (c == 0)
		c = strcmp(x->key, y->key);
	if (c == 0)
		c = x->index < y->index ? -1 : x->index > y->index;
	return c;
}

/* The Message-IDs that queue-id events carry, sorted by Message-ID then
 * position: the first entry of a Message-ID is the earliest queue event
 * that carried it, found by binary search.  An answer of a whole day holds
 * thousands of messages: one scan per Message-ID would be quadratic. */
struct trace_group_carrier {
	const char *message_id;
	size_t index;
};

static int trace_group_carrier_cmp(const void *a, const void *b)
{
	const struct trace_group_carrier *x = a, *y = b;
	int c = strcmp(x->message_id, y->message_id);

	if (c == 0)
		c = x->index < y->index ? -1 : x->index > y->index;
	return c;
}

/* The queue group a Message-ID belongs to: the head of the first queue id
 * whose events carry it; n when none does. */
static size_t trace_group_queue_of(const struct trace_group_carrier *carriers, size_t n_carriers,
				   const size_t *group, const char *message_id, size_t n)
{
	size_t lo = 0, hi = n_carriers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(carriers[mid].message_id, message_id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < n_carriers && strcmp(carriers[lo].message_id, message_id) == 0)
		return group[carriers[lo].index];
	return n;
}

void trace_group(const struct store_trace_event *events, size_t n, size_t *group_r)
{
	struct trace_group_item *items = xcalloc(n > 0 ? n : 1, sizeof(*items));
	struct trace_group_carrier *carriers = xcalloc(n > 0 ? n : 1, sizeof(*carriers));
	size_t head = 0, q, n_carriers = 0;

	for (size_t i = 0; i < n; i++) {
		items[i].key = trace_group_key(&events[i], &items[i].kind);
		items[i].index = i;
		if (events[i].queue_id[0] != '\0' && events[i].message_id[0] != '\0')
			carriers[n_carriers++] =
				(struct trace_group_carrier){ events[i].message_id, i };
	}
	/* Sorted by key then position, the first of each run is its group's
	 * earliest event. */
	qsort(items, n, sizeof(*items), trace_group_cmp);
	qsort(carriers, n_carriers, sizeof(*carriers), trace_group_carrier_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i == 0 || items[i].kind != items[i - 1].kind ||
		    strcmp(items[i].key, items[i - 1].key) != 0 || items[i].key[0] == '\0')
			head = items[i].index;
		group_r[items[i].index] = head;
	}
	/* Events with a Message-ID and no queue id (IMAP and POP3 access) join
	 * the group of the queue id that carried it. */
	for (size_t i = 0; i < n; i++) {
		if (items[i].kind != 'm' || (i > 0 && items[i - 1].kind == 'm' &&
					     strcmp(items[i].key, items[i - 1].key) == 0))
			continue;
		q = trace_group_queue_of(carriers, n_carriers, group_r, items[i].key, n);
		for (size_t j = i; q < n && j < n && items[j].kind == 'm' &&
				   strcmp(items[j].key, items[i].key) == 0;
		     j++)
			group_r[items[j].index] = q;
	}
	/* A group's head is its earliest event, also when an access event came
	 * before the queue event that carried its message (callers walk each
	 * group from its head on). */
	for (size_t i = 0; i < n; i++)
		items[i].index = n;
	for (size_t i = 0; i < n; i++)
		if (items[group_r[i]].index == n)
			items[group_r[i]].index = i;
	for (size_t i = 0; i < n; i++)
		group_r[i] = items[group_r[i]].index;
	free(carriers);
	free(items);
}

/* ---- times ---------------------------------------------------------------- */

static int trace_time_relative(const char *text, time_t now, time_t *time_r)
{
	static const struct {
		char unit;
		long seconds;
	} units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 } };
	char *end;
	long n = strtol(text, &end, 10);

	if (end == text || !isdigit((unsigned char)text[0]) || n < 0 || end[0] == '\0' ||
	    end[1] != '\0' || n > 100L * 366 * 86400)
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (units[i].unit == end[0]) {
			*time_r = now - (time_t)(n * units[i].seconds);
			return 0;
		}
	}
	return -1;
}

int trace_time_parse(const char *text, time_t now, time_t *time_r)
{
	static const char *const formats[] = { "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
					       "%Y-%m-%dT%H:%M",    "%Y-%m-%d %H:%M",
					       "%Y-%m-%d" };
	struct tm tm;
	const char *end;
	char *num_end;

	if (text[0] == '@') {
		long long t = strtoll(text + 1, &num_end, 10);
		if (num_end == text + 1 || *num_end != '\0' || t < 0)
			return -1;
		*time_r = (time_t)t;
		return 0;
	}
	if (trace_time_relative(text, now, time_r) == 0)
		return 0;
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(text, formats[i], &tm);
		if (end == NULL || (end[0] != '\0' && strcmp(end, "Z") != 0))
			continue;
		tm.tm_isdst = -1;
		*time_r = end[0] == 'Z' ? timegm(&tm) : mktime(&tm);
		return *time_r == (time_t)-1 ? -1 : 0;
	}
	return -1;
}
