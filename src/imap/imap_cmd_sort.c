/* SORT and UID SORT (RFC 5256): ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT,
 * TO, each optionally REVERSE; ties go by sequence number.  The messages
 * are the ones SEARCH would find; header keys read each message's header
 * (not yet from a cache).  Comparison is i;ascii-casemap. */
#include "imap/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/header.h"

#define IMAP_SORT_MAX_KEYS 16

enum imap_sort_key {
	IMAP_SORT_ARRIVAL,
	IMAP_SORT_CC,
	IMAP_SORT_DATE,
	IMAP_SORT_FROM,
	IMAP_SORT_SIZE,
	IMAP_SORT_SUBJECT,
	IMAP_SORT_TO,
};

static const char *const imap_sort_names[] = { "ARRIVAL", "CC", "DATE", "FROM",
					       "SIZE", "SUBJECT", "TO" };

struct imap_sort_spec {
	enum imap_sort_key key;
	bool reverse;
};

struct imap_sort_entry {
	size_t idx;
	time_t arrival, date;
	uint64_t size;
	char *text[3]; /* CC, FROM, TO addr-mailbox; */
	char *subject;
};

struct imap_sort_ctx {
	struct imap_sort_spec specs[IMAP_SORT_MAX_KEYS];
	size_t n_specs;
	bool needs_header;
};

/* RFC 5256 2.1 base subject, simplified: white space folded, "(fwd)"
 * trailers, "Re:", "Fw:", "Fwd:" and "[blob]" prefixes and "[Fwd: ...]"
 * wrappers removed; upper-cased for i;ascii-casemap. */
static char *imap_base_subject(const char *subject)
{
	char *s = xmalloc(strlen(subject) + 1), *p;
	size_t n = 0;
	bool changed = true;

	for (const char *q = subject; *q != '\0'; q++) {
		char c = *q == '\t' ? ' ' : *q;
		if (c == ' ' && (n == 0 || s[n - 1] == ' '))
			continue;
		s[n++] = (char)toupper((unsigned char)c);
	}
	s[n] = '\0';
	while (changed) {
		changed = false;
		size_t len = strlen(s);
		while (len > 0 && s[len - 1] == ' ')
			s[--len] = '\0';
		if (len >= 5 && strcmp(s + len - 5, "(FWD)") == 0) {
			s[len - 5] = '\0';
			changed = true;
			continue;
		}
		p = s;
		while (*p == ' ')
			p++;
		const char *after = NULL;
		if (strncmp(p, "RE", 2) == 0)
			after = p + 2;
		else if (strncmp(p, "FWD", 3) == 0)
			after = p + 3;
		else if (strncmp(p, "FW", 2) == 0)
			after = p + 2;
		if (after != NULL) {
			while (*after == ' ')
				after++;
			if (*after == '[' && strchr(after, ']') != NULL)
				after = strchr(after, ']') + 1;
			while (*after == ' ')
				after++;
			if (*after == ':') {
				memmove(s, after + 1, strlen(after + 1) + 1);
				changed = true;
				continue;
			}
		}
		if (*p == '[' && strchr(p, ']') != NULL && strchr(p, ']')[1] != '\0') {
			const char *rest = strchr(p, ']') + 1;
			if (strncmp(p, "[FWD:", 5) == 0 && s[strlen(s) - 1] == ']') {
				s[strlen(s) - 1] = '\0';
				memmove(s, p + 5, strlen(p + 5) + 1);
			} else {
				memmove(s, rest, strlen(rest) + 1);
			}
			changed = true;
			continue;
		}
		if (p != s) {
			memmove(s, p, strlen(p) + 1);
			changed = true;
		}
	}
	return s;
}

/* The local part of the first address of a field value, upper-cased. */
static char *imap_addr_mailbox(const char *value)
{
	const char *start = strchr(value, '<'), *end;
	char *out;

	start = start != NULL ? start + 1 : value;
	while (*start == ' ')
		start++;
	end = start;
	while (*end != '\0' && *end != '@' && *end != '>' && *end != ',' && *end != ' ')
		end++;
	out = xstrndup(start, (size_t)(end - start));
	for (char *p = out; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	return out;
}

/* An RFC 5322 date with its zone, or -1. */
static time_t imap_header_date(const char *value)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
					      "jul", "aug", "sep", "oct", "nov", "dec" };
	const char *p = strchr(value, ',') != NULL ? strchr(value, ',') + 1 : value;
	struct tm tm = { 0 };
	char mon[4], zone[8] = "+0000";
	int n;

	n = sscanf(p, "%d %3s %d %d:%d:%d %7s", &tm.tm_mday, mon, &tm.tm_year, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, zone);
	if (n < 5)
		return -1;
	for (tm.tm_mon = 0; tm.tm_mon < 12 && strcasecmp(mon, months[tm.tm_mon]) != 0; tm.tm_mon++)
		;
	if (tm.tm_mon == 12)
		return -1;
	if (tm.tm_year < 100)
		tm.tm_year += tm.tm_year < 50 ? 2000 : 1900;
	tm.tm_year -= 1900;
	time_t t = timegm(&tm);
	if ((zone[0] == '+' || zone[0] == '-') && isdigit((unsigned char)zone[1])) {
		long z = strtol(zone + 1, NULL, 10);
		long off = (z / 100) * 3600 + (z % 100) * 60;
		t -= zone[0] == '+' ? off : -off;
	}
	return t;
}

/* m: the message, NULL when it was expunged meanwhile (sorted as empty). */
static void imap_sort_fill(struct imap_session *s, const struct imap_sort_ctx *c,
			   const struct imap_msg *m, struct imap_sort_entry *e)
{
	static const char *const fields[3] = { "Cc", "From", "To" };
	char value[1024];
	const char *error;
	void *data = NULL;
	size_t len = 0;

	if (m == NULL) {
		for (int i = 0; i < 3; i++)
			e->text[i] = xstrdup("");
		e->subject = xstrdup("");
		return;
	}
	e->arrival = m->internaldate;
	e->date = m->internaldate;
	e->size = m->size;
	if (!c->needs_header)
		return;
	if (store_blob_read(s->reader, m->blob_id, &data, &len, &error) < 0)
		data = NULL, len = 0;
	len = header_section_end(data != NULL ? data : "", len);
	for (int i = 0; i < 3; i++) {
		header_get(data != NULL ? data : "", len, fields[i], value, sizeof(value));
		e->text[i] = imap_addr_mailbox(value);
	}
	header_get(data != NULL ? data : "", len, "Subject", value, sizeof(value));
	e->subject = imap_base_subject(value);
	if (header_get(data != NULL ? data : "", len, "Date", value, sizeof(value)) == 0) {
		time_t t = imap_header_date(value);
		if (t >= 0)
			e->date = t;
	}
	free(data);
}

static int imap_sort_one(const struct imap_sort_entry *a, const struct imap_sort_entry *b,
			 enum imap_sort_key key)
{
	switch (key) {
	case IMAP_SORT_ARRIVAL: return (a->arrival > b->arrival) - (a->arrival < b->arrival);
	case IMAP_SORT_DATE: return (a->date > b->date) - (a->date < b->date);
	case IMAP_SORT_SIZE: return (a->size > b->size) - (a->size < b->size);
	case IMAP_SORT_CC: return strcmp(a->text[0], b->text[0]);
	case IMAP_SORT_FROM: return strcmp(a->text[1], b->text[1]);
	case IMAP_SORT_TO: return strcmp(a->text[2], b->text[2]);
	case IMAP_SORT_SUBJECT: return strcmp(a->subject, b->subject);
	}
	return 0;
}

static int imap_sort_cmp(const void *x, const void *y, void *arg)
{
	const struct imap_sort_entry *a = x, *b = y;
	const struct imap_sort_ctx *c = arg;

	for (size_t i = 0; i < c->n_specs; i++) {
		int r = imap_sort_one(a, b, c->specs[i].key);
		if (r != 0)
			return c->specs[i].reverse ? -r : r;
	}
	return (a->idx > b->idx) - (a->idx < b->idx);
}

static int imap_sort_parse(struct imap_sort_ctx *c, const struct imap_arg *list)
{
	bool reverse = false;

	if (list->type != IMAP_ARG_LIST || list->n == 0)
		return -1;
	for (size_t i = 0; i < list->n; i++) {
		const struct imap_arg *a = &list->list[i];
		size_t k;
		if (imap_arg_atom_equals(a, "REVERSE")) {
			if (reverse)
				return -1;
			reverse = true;
			continue;
		}
		for (k = 0; k < 7; k++)
			if (imap_arg_atom_equals(a, imap_sort_names[k]))
				break;
		if (k == 7 || c->n_specs == IMAP_SORT_MAX_KEYS)
			return -1;
		c->specs[c->n_specs].key = (enum imap_sort_key)k;
		c->specs[c->n_specs++].reverse = reverse;
		c->needs_header |= k != IMAP_SORT_ARRIVAL && k != IMAP_SORT_SIZE;
		reverse = false;
	}
	return reverse ? -1 : 0;
}

/* The search is done: sort its messages (the keys wait in s->scratch). */
static void imap_sort_done(struct imap_session *s, struct imap_search_result *r)
{
	const struct imap_sort_ctx *c = (const struct imap_sort_ctx *)s->scratch;
	struct imap_sort_entry *e = xcalloc(r->n + 1, sizeof(*e));
	struct imap_rows rows;

	imap_rows_init(&rows, r->idx, r->n);
	for (size_t i = 0; i < r->n; i++) {
		e[i].idx = r->idx[i];
		imap_sort_fill(s, c, imap_rows_get(s, &rows, i), &e[i]);
	}
	imap_rows_free(&rows);
	qsort_r(e, r->n, sizeof(*e), imap_sort_cmp, (void *)c);
	imap_printf(s, "* SORT");
	for (size_t i = 0; i < r->n; i++) {
		imap_printf(s, " %u", s->uid ? s->view.msgs[e[i].idx].uid : (uint32_t)e[i].idx + 1);
		for (int k = 0; k < 3; k++)
			free(e[i].text[k]);
		free(e[i].subject);
	}
	imap_printf(s, "\r\n");
	free(e);
	imap_ok(s, "%sSORT completed", s->uid ? "UID " : "");
}

void imap_cmd_sort(struct imap_session *s, const struct imap_arg *args)
{
	struct imap_sort_ctx *c = xcalloc(1, sizeof(*c));
	const char *error = NULL;
	int rc;

	if (imap_sort_parse(c, &args[0]) < 0 || args[1].type == IMAP_ARG_EOL) {
		free(c);
		imap_bad(s, "SORT needs sort keys, a charset and search criteria");
		return;
	}
	if (!imap_arg_atom_equals(&args[1], "UTF-8") && !imap_arg_atom_equals(&args[1], "US-ASCII")) {
		free(c);
		imap_no(s, "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
		return;
	}
	s->scratch = (char *)c;
	if ((rc = imap_search_start(s, &args[2], false, imap_sort_done, &error)) < 0) {
		if (rc == -2)
			imap_no(s, "%s", error);
		else
			imap_bad(s, "%s", error);
	}
}
