/* The selected mailbox as this session sees it: uids in sequence order with
 * the flags last told the client (8 bytes a message), read once at SELECT
 * from the store's covering index, in pages, and then kept up to date from
 * the store's notifier.  Changes made by anyone, this session included,
 * reach the client through imap_view_sync(), which reads only what changed
 * since the view's highestmodseq.  What else a command needs (size, date,
 * modseq, keywords, the blob) is read from the store a page at a time by
 * imap_rows. */
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/imap_recent.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define IMAP_VIEW_PAGE 5000
#define IMAP_ROWS_PAGE 128

static void imap_view_watch_cb(int64_t mailbox_id, uint64_t highestmodseq, void *ctx)
{
	struct imap_session *s = ctx;

	/* A rename or delete changes no modseq: look even when it repeats. */
	s->view.changed = true;
	if (s->input == IMAP_INPUT_IDLE && s->conn != NULL)
		imap_view_sync(s, true, NULL, 0);
}

static uint32_t imap_vmsg_flags(uint32_t old, uint32_t flags, bool keywords)
{
	return (old & IMAP_MSG_SESSION) | (flags & IMAP_MSG_SYSTEM_FLAGS) |
	       (keywords ? IMAP_MSG_KEYWORDS : 0);
}

/* Room for n messages.  An idle session holds its view for hours, so the
 * array grows by a quarter (amortised O(1) still) rather than doubling. */
static void imap_view_reserve(struct imap_view *v, size_t n)
{
	if (n <= v->alloc)
		return;
	if (n < v->alloc + v->alloc / 4 + 16)
		n = v->alloc + v->alloc / 4 + 16;
	v->alloc = n;
	v->msgs = xrealloc(v->msgs, v->alloc * sizeof(*v->msgs));
}

static void imap_view_append(struct imap_view *v, uint32_t uid, uint32_t flags, bool keywords)
{
	imap_view_reserve(v, v->n + 1);
	v->msgs[v->n].uid = uid;
	v->msgs[v->n++].flags = imap_vmsg_flags(0, flags, keywords);
}

/* Marks the messages from uid first_recent on as \Recent; returns how many. */
static uint32_t imap_view_mark_recent(struct imap_view *v, size_t from, uint32_t first_recent)
{
	uint32_t n = 0;

	for (size_t i = from; i < v->n; i++) {
		if (v->msgs[i].uid >= first_recent) {
			v->msgs[i].flags |= IMAP_MSG_RECENT;
			n++;
		}
	}
	return n;
}

int imap_view_open(struct imap_session *s, const struct store_mailbox *m, bool readonly,
		   uint32_t *recent_r)
{
	struct imap_view *v = &s->view;
	struct store_mailbox now;
	uint32_t next = 1, first_recent;
	size_t n;

	imap_view_close(s);
	v->watch = store_watch(s->env->store, m->id, s->loop, imap_view_watch_cb, s);
	if (store_mailbox_get_by_id(s->reader, m->id, &now) < 0) {
		imap_view_close(s);
		return -1;
	}
	v->mailbox_id = now.id;
	snprintf(v->name, sizeof(v->name), "%s", now.name);
	v->readonly = readonly;
	v->uidvalidity = now.uidvalidity;
	v->highestmodseq = now.highestmodseq;
	/* The count read with the mailbox row: new arrivals meanwhile grow it. */
	imap_view_reserve(v, now.messages);
	do {
		struct store_message_brief *list;
		if (store_message_brief_list(s->reader, now.id, next, IMAP_VIEW_PAGE, &list, &n) < 0) {
			imap_view_close(s);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			imap_view_append(v, list[i].uid, list[i].flags, list[i].keywords);
		if (n > 0)
			next = list[n - 1].uid + 1;
		free(list);
	} while (n == IMAP_VIEW_PAGE);
	/* Messages committed after the mailbox row was read are in the list
	 * but newer than highestmodseq: the first sync sees them again, finds
	 * them known and tells only a CONDSTORE client their (newer) MODSEQ. */
	next = v->n > 0 ? v->msgs[v->n - 1].uid + 1 : 1;
	/* An IMAP4rev2 session has no \Recent: it claims none, so that a
	 * rev1 session opening the mailbox later still sees them. */
	first_recent = s->rev2	  ? UINT32_MAX
		       : readonly ? imap_recent_peek(s->env->recent, now.id)
				  : imap_recent_claim(s->env->recent, now.id, next);
	*recent_r = imap_view_mark_recent(v, 0, first_recent);
	return 0;
}

void imap_view_close(struct imap_session *s)
{
	struct imap_view *v = &s->view;

	if (v->watch != NULL)
		store_unwatch(s->env->store, &v->watch);
	free(v->msgs);
	free(v->expunged);
	memset(v, 0, sizeof(*v));
}

long imap_view_find(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->n && v->msgs[lo].uid == uid ? (long)lo : -1;
}

/* First index whose uid >= uid. */
static size_t imap_view_lower(const struct imap_view *v, uint32_t uid)
{
	size_t lo = 0, hi = v->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (v->msgs[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int imap_view_resolve(const struct imap_view *v, const struct imap_arg *arg, bool uid,
		      size_t **idx_r, size_t *n_r, const char **error_r)
{
	struct imap_seqset set;
	unsigned char *mark;
	size_t *idx, n = 0;

	*idx_r = NULL;
	*n_r = 0;
	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NUMBER) {
		*error_r = "Expected a sequence set";
		return -1;
	}
	if (imap_seqset_parse(arg->str, arg->len, &set, error_r) < 0)
		return -1;
	if (set.saved) {
		imap_seqset_free(&set);
		*error_r = "No saved search result";
		return -1;
	}
	mark = xcalloc(v->n + 1, 1);
	for (size_t r = 0; r < set.count; r++) {
		uint32_t first = set.ranges[r].first, last = set.ranges[r].last;
		if (uid) {
			uint32_t max = v->n > 0 ? v->msgs[v->n - 1].uid : 0;
			/* "*" is the highest uid in use; n:* with n past it is that one. */
			if (last == UINT32_MAX)
				last = max;
			if (first == UINT32_MAX)
				first = max;
			if (first > last) {
				uint32_t t = first;
				first = last;
				last = t;
			}
			for (size_t i = imap_view_lower(v, first); i < v->n && v->msgs[i].uid <= last; i++)
				mark[i] = 1;
		} else {
			/* "1:*" of an empty mailbox names nothing (what clients
			 * expect); any other number past the end is an error. */
			if (v->n == 0 && last == UINT32_MAX)
				continue;
			if (v->n == 0 || (first > v->n && first != UINT32_MAX)) {
				free(mark);
				imap_seqset_free(&set);
				*error_r = "Invalid message sequence number";
				return -1;
			}
			if (last == UINT32_MAX)
				last = (uint32_t)v->n;
			if (first == UINT32_MAX)
				first = (uint32_t)v->n;
			if (first > last) {
				uint32_t t = first;
				first = last;
				last = t;
			}
			if (last > v->n) {
				free(mark);
				imap_seqset_free(&set);
				*error_r = "Invalid message sequence number";
				return -1;
			}
			memset(mark + first - 1, 1, last - first + 1);
		}
	}
	imap_seqset_free(&set);
	idx = xmalloc((v->n + 1) * sizeof(*idx));
	for (size_t i = 0; i < v->n; i++)
		if (mark[i])
			idx[n++] = i;
	free(mark);
	*idx_r = idx;
	*n_r = n;
	return 0;
}

void imap_write_flags(struct imap_session *s, const struct imap_msg *m)
{
	static const char *const names[] = { "\\Seen", "\\Answered", "\\Flagged", "\\Deleted",
					     "\\Draft" };
	bool first = true;

	imap_write(s, "FLAGS (", 7);
	for (unsigned i = 0; i < 5; i++) {
		if (m->flags & (1u << i)) {
			imap_printf(s, "%s%s", first ? "" : " ", names[i]);
			first = false;
		}
	}
	if ((m->flags & IMAP_MSG_RECENT) && !s->rev2) {
		imap_printf(s, "%s\\Recent", first ? "" : " ");
		first = false;
	}
	if (m->keywords[0] != '\0')
		imap_printf(s, "%s%s", first ? "" : " ", m->keywords);
	imap_write(s, ")", 1);
}

static bool imap_uid_in(const uint32_t *uids, size_t n, uint32_t uid)
{
	return n > 0 && bsearch(&uid, uids, n, sizeof(*uids), imap_uid_cmp) != NULL;
}

static void imap_view_add_expunged(struct imap_view *v, const uint32_t *uids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (imap_view_find(v, uids[i]) < 0 || imap_uid_in(v->expunged, v->n_expunged, uids[i]))
			continue;
		v->expunged = xrealloc(v->expunged, (v->n_expunged + 1) * sizeof(*v->expunged));
		v->expunged[v->n_expunged++] = uids[i];
		qsort(v->expunged, v->n_expunged, sizeof(*v->expunged), imap_uid_cmp);
	}
}

/* EXPUNGE responses, highest sequence number first so that each number is
 * still right when the client reads it; then the view is compacted once. */
static void imap_view_expunge_now(struct imap_session *s)
{
	struct imap_view *v = &s->view;
	size_t out = 0;

	if (s->qresync) {
		/* RFC 7162 3.2.10: one VANISHED instead of the EXPUNGEs. */
		char *set = imap_uidset_format(v->expunged, v->n_expunged);
		imap_untagged(s, "VANISHED %s", set);
		free(set);
	}
	for (size_t k = v->n_expunged; k-- > 0 && !s->qresync;) {
		long i = imap_view_find(v, v->expunged[k]);
		if (i >= 0)
			imap_untagged(s, "%ld EXPUNGE", i + 1);
	}
	for (size_t i = 0; i < v->n; i++) {
		if (imap_uid_in(v->expunged, v->n_expunged, v->msgs[i].uid))
			continue;
		v->msgs[out++] = v->msgs[i];
	}
	v->n = out;
	free(v->expunged);
	v->expunged = NULL;
	v->n_expunged = 0;
}

/* Whether the client must be told of the row's flags: the view keeps
 * whether a message had keywords, not which, so a change to a message
 * with keywords is always told (an extra FETCH is harmless; a missed one
 * is not). */
static bool imap_msg_differs(const struct imap_vmsg *m, const struct store_message *sm)
{
	return (m->flags & IMAP_MSG_SYSTEM_FLAGS) != (sm->flags & IMAP_MSG_SYSTEM_FLAGS) ||
	       (m->flags & IMAP_MSG_KEYWORDS) || sm->keywords[0] != '\0';
}

/* The row as a command sees it, with the view's session bits. */
static void imap_msg_of(struct imap_msg *m, const struct store_message *sm, uint32_t session)
{
	m->uid = sm->uid;
	m->flags = (sm->flags & IMAP_MSG_SYSTEM_FLAGS) | (session & IMAP_MSG_SESSION);
	m->modseq = sm->modseq;
	m->size = sm->size;
	m->blob_id = sm->blob_id;
	m->internaldate = sm->internaldate;
	m->keywords = sm->keywords;
}

/* Applies changed (and new) messages; returns how many are new.  Every
 * row here changed after the view's highestmodseq, so a CONDSTORE client
 * hears of each (its MODSEQ is new to it) unless the caller reports it. */
static size_t imap_view_apply(struct imap_session *s, const struct store_message *list, size_t n,
			      const uint32_t *skip, size_t n_skip)
{
	struct imap_view *v = &s->view;
	size_t old_n = v->n;
	uint32_t last = v->n > 0 ? v->msgs[v->n - 1].uid : 0;

	for (size_t i = 0; i < n; i++) {
		const struct store_message *sm = &list[i];
		struct imap_msg m;
		if (sm->uid > last) {
			imap_view_append(v, sm->uid, sm->flags, sm->keywords[0] != '\0');
			last = sm->uid;
			continue;
		}
		long k = imap_view_find(v, sm->uid);
		if (k < 0 || imap_uid_in(v->expunged, v->n_expunged, sm->uid))
			continue;
		bool differs = imap_msg_differs(&v->msgs[k], sm);
		v->msgs[k].flags = imap_vmsg_flags(v->msgs[k].flags, sm->flags, sm->keywords[0] != '\0');
		if (imap_uid_in(skip, n_skip, sm->uid) || !(differs || s->condstore))
			continue;
		imap_msg_of(&m, sm, v->msgs[k].flags);
		imap_printf(s, "* %ld FETCH (", k + 1);
		if (s->uid)
			imap_printf(s, "UID %u ", sm->uid);
		imap_write_flags(s, &m);
		if (s->condstore)
			imap_printf(s, " MODSEQ (%llu)", (unsigned long long)sm->modseq);
		imap_write(s, ")\r\n", 3);
	}
	return v->n - old_n;
}

void imap_view_vanished_earlier(struct imap_session *s, uint64_t modseq,
				const struct imap_arg *known)
{
	struct imap_seqset set = { 0 };
	const char *error;
	uint32_t *uids = NULL;
	size_t n = 0, out = 0;

	if (known != NULL && imap_seqset_parse(known->str, known->len, &set, &error) < 0)
		return;
	if (store_expunged_since(s->reader, s->view.mailbox_id, modseq, &uids, &n) < 0) {
		imap_seqset_free(&set);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool in = known == NULL;
		for (size_t r = 0; r < set.count && !in; r++)
			in = uids[i] >= set.ranges[r].first && uids[i] <= set.ranges[r].last;
		if (in)
			uids[out++] = uids[i];
	}
	if (out > 0) {
		char *str = imap_uidset_format(uids, out);
		imap_untagged(s, "VANISHED (EARLIER) %s", str);
		free(str);
	}
	free(uids);
	imap_seqset_free(&set);
}

void imap_view_sync(struct imap_session *s, bool allow_expunge, const uint32_t *skip,
		    size_t n_skip)
{
	struct imap_view *v = &s->view;
	struct store_mailbox m;
	struct store_message *list = NULL;
	uint32_t *gone = NULL;
	size_t n = 0, n_gone = 0, added;

	if (s->state != IMAP_STATE_SELECTED || v->gone)
		return;
	if (v->changed) {
		v->changed = false;
		if (store_mailbox_get_by_id(s->reader, v->mailbox_id, &m) < 0) {
			v->gone = true;
			log_info("imap", "s=%s event=mailbox_gone mailbox=%s", s->id, v->name);
			imap_untagged(s, "BYE [CLOSED] The selected mailbox was deleted");
			imap_close(s);
			return;
		}
		if (store_message_changed(s->reader, v->mailbox_id, v->highestmodseq, &list, &n) < 0 ||
		    store_expunged_since(s->reader, v->mailbox_id, v->highestmodseq, &gone,
					 &n_gone) < 0) {
			log_error("imap", "s=%s event=sync_failed mailbox=%s", s->id, v->name);
			free(list);
			free(gone);
			v->changed = true;
			return;
		}
		if (m.highestmodseq > v->highestmodseq)
			v->highestmodseq = m.highestmodseq;
		imap_view_add_expunged(v, gone, n_gone);
		free(gone);
	}
	size_t before = v->n;
	added = imap_view_apply(s, list, n, skip, n_skip);
	free(list);
	if (allow_expunge && v->n_expunged > 0)
		imap_view_expunge_now(s);
	if (added > 0 && !s->rev2) {
		uint32_t first_recent = v->readonly
			? imap_recent_peek(s->env->recent, v->mailbox_id)
			: imap_recent_claim(s->env->recent, v->mailbox_id, v->msgs[v->n - 1].uid + 1);
		imap_view_mark_recent(v, v->n - added, first_recent);
	}
	if (added > 0 || v->n != before) {
		uint32_t recent = 0;
		for (size_t i = 0; i < v->n; i++)
			recent += (v->msgs[i].flags & IMAP_MSG_RECENT) != 0;
		if (added > 0) {
			imap_untagged(s, "%zu EXISTS", v->n);
			if (!s->rev2)
				imap_untagged(s, "%u RECENT", recent);
		}
	}
}

/* ---- reading what a command needs ------------------------------------------ */

void imap_rows_init(struct imap_rows *c, const size_t *idx, size_t n)
{
	memset(c, 0, sizeof(*c));
	c->idx = idx;
	c->n = n;
}

void imap_rows_free(struct imap_rows *c)
{
	free(c->rows);
	c->rows = NULL;
	c->count = 0;
	c->alloc = 0;
}

static size_t imap_rows_index(const struct imap_rows *c, size_t pos)
{
	return c->idx != NULL ? c->idx[pos] : pos;
}

/* Reads the page of positions from pos on.  A dense page (its messages
 * close together in the view) is one range read; a sparse one (1,5000,...)
 * a read per message, so that neither reads far more rows than it needs. */
static void imap_rows_load(struct imap_session *s, struct imap_rows *c, size_t pos)
{
	const struct imap_view *v = &s->view;
	size_t count = c->n - pos < IMAP_ROWS_PAGE ? c->n - pos : IMAP_ROWS_PAGE;
	size_t lo = imap_rows_index(c, pos), hi = imap_rows_index(c, pos + count - 1);
	struct store_message *list;
	size_t n, j = 0;

	if (count > c->alloc) {
		c->rows = xrealloc(c->rows, count * sizeof(*c->rows));
		c->alloc = count;
	}
	c->first = pos;
	c->count = count;
	for (size_t p = 0; p < count; p++)
		c->rows[p].uid = 0;
	if (hi - lo + 1 <= 4 * count) {
		/* Rows in [uid(lo), uid(hi)] are view messages between lo and hi
		 * (new ones have greater uids): hi - lo + 1 rows at most. */
		if (store_message_list(s->reader, v->mailbox_id, v->msgs[lo].uid, hi - lo + 1, &list,
				       &n) < 0) {
			c->failed = true;
			return;
		}
		for (size_t p = 0; p < count; p++) {
			uint32_t uid = v->msgs[imap_rows_index(c, pos + p)].uid;
			while (j < n && list[j].uid < uid)
				j++;
			if (j < n && list[j].uid == uid)
				c->rows[p] = list[j];
		}
		free(list);
		return;
	}
	for (size_t p = 0; p < count; p++) {
		uint32_t uid = v->msgs[imap_rows_index(c, pos + p)].uid;
		if (store_message_list(s->reader, v->mailbox_id, uid, 1, &list, &n) < 0) {
			c->failed = true;
			continue;
		}
		if (n == 1 && list[0].uid == uid)
			c->rows[p] = list[0];
		free(list);
	}
}

const struct imap_msg *imap_rows_get(struct imap_session *s, struct imap_rows *c, size_t pos)
{
	const struct store_message *sm;

	if (pos >= c->n)
		return NULL;
	if (c->count == 0 || pos < c->first || pos >= c->first + c->count)
		imap_rows_load(s, c, pos);
	sm = &c->rows[pos - c->first];
	if (sm->uid == 0)
		return NULL;
	imap_msg_of(&c->m, sm, s->view.msgs[imap_rows_index(c, pos)].flags);
	return &c->m;
}
