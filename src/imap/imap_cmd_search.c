/* SEARCH and UID SEARCH (RFC 3501 6.4.4) with ESEARCH's RETURN (MIN MAX
 * ALL COUNT, RFC 4731) and CONDSTORE's MODSEQ key.  Keys on flags, sets,
 * sizes and internal dates are answered from the view.  HEADER, BODY, TEXT
 * and the address and SUBJECT keys ask the store's full-text index once per
 * key (store_message_search_text) and mark the view's messages; a needle the
 * index cannot serve (under three characters), a message stored before the
 * index, and SENT* dates read the message and walk its decoded text
 * (mail/mime.h). */
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "mail/header.h"
#include "mail/mime.h"

#define IMAP_SEARCH_MAX_DEPTH 64

enum imap_skey {
	SK_ALL, SK_FLAG_SET, SK_FLAG_UNSET, SK_NEW, SK_OLD, SK_RECENT, SK_KEYWORD, SK_UNKEYWORD,
	SK_LARGER, SK_SMALLER, SK_BEFORE, SK_ON, SK_SINCE, SK_SENTBEFORE, SK_SENTON, SK_SENTSINCE,
	SK_SET, SK_NOT, SK_OR, SK_AND, SK_HEADER, SK_BODY, SK_TEXT, SK_MODSEQ,
};

struct imap_snode {
	enum imap_skey key;
	uint32_t flag;
	uint64_t num;
	time_t date;
	char *str, *field;
	size_t str_len;
	/* SK_SET: the view's messages in it.  Text keys answered by the index:
	 * IMAP_MARK_* per view message. */
	unsigned char *mark;
	struct imap_snode **kids;
	size_t n_kids;
};

struct imap_search {
	struct imap_session *s;
	bool needs_content;
	bool modseq_key;
	/* the message being tested */
	char *msg;
	size_t msg_len;
	struct mime_tree *tree;
	bool loaded;
	/* Rows read only when a key needs more than the view's flags. */
	struct imap_rows rows;
};

static void imap_snode_free(struct imap_snode *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n_kids; i++)
		imap_snode_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n->field);
	free(n->mark);
	free(n);
}

static struct imap_snode *imap_snode_new(enum imap_skey key)
{
	struct imap_snode *n = xcalloc(1, sizeof(*n));

	n->key = key;
	return n;
}

static void imap_snode_add(struct imap_snode *parent, struct imap_snode *kid)
{
	parent->kids = xrealloc(parent->kids, (parent->n_kids + 1) * sizeof(*parent->kids));
	parent->kids[parent->n_kids++] = kid;
}

static const struct {
	const char *name;
	enum imap_skey key;
	uint32_t flag;
} imap_simple_keys[] = {
	{ "ALL", SK_ALL, 0 },
	{ "ANSWERED", SK_FLAG_SET, STORE_FLAG_ANSWERED },
	{ "DELETED", SK_FLAG_SET, STORE_FLAG_DELETED },
	{ "DRAFT", SK_FLAG_SET, STORE_FLAG_DRAFT },
	{ "FLAGGED", SK_FLAG_SET, STORE_FLAG_FLAGGED },
	{ "SEEN", SK_FLAG_SET, STORE_FLAG_SEEN },
	{ "UNANSWERED", SK_FLAG_UNSET, STORE_FLAG_ANSWERED },
	{ "UNDELETED", SK_FLAG_UNSET, STORE_FLAG_DELETED },
	{ "UNDRAFT", SK_FLAG_UNSET, STORE_FLAG_DRAFT },
	{ "UNFLAGGED", SK_FLAG_UNSET, STORE_FLAG_FLAGGED },
	{ "UNSEEN", SK_FLAG_UNSET, STORE_FLAG_SEEN },
	{ "NEW", SK_NEW, 0 },
	{ "OLD", SK_OLD, 0 },
	{ "RECENT", SK_RECENT, 0 },
};

static const struct {
	const char *name;
	enum imap_skey key;
} imap_date_keys[] = {
	{ "BEFORE", SK_BEFORE },         { "ON", SK_ON },         { "SINCE", SK_SINCE },
	{ "SENTBEFORE", SK_SENTBEFORE }, { "SENTON", SK_SENTON }, { "SENTSINCE", SK_SENTSINCE },
};

static const char *const imap_header_keys[] = { "FROM", "TO", "CC", "BCC", "SUBJECT" };

static struct imap_snode *imap_search_key(struct imap_search *q, const struct imap_arg **ap,
					  unsigned depth, const char **error_r);

static int imap_search_string(const struct imap_arg **ap, struct imap_snode *n, bool field)
{
	const char *str;
	size_t len;

	if ((str = imap_arg_string(*ap, &len)) == NULL)
		return -1;
	(*ap)++;
	if (field) {
		n->field = xstrndup(str, len);
		if ((str = imap_arg_string(*ap, &len)) == NULL)
			return -1;
		(*ap)++;
	}
	n->str = xmalloc(len + 1);
	memcpy(n->str, str, len);
	n->str[len] = '\0';
	n->str_len = len;
	return 0;
}

/* Keys that take no argument or one. */
static struct imap_snode *imap_search_atom(struct imap_search *q, const struct imap_arg **ap,
					   const char **error_r)
{
	const struct imap_arg *a = *ap;
	struct imap_snode *n;

	for (size_t i = 0; i < sizeof(imap_simple_keys) / sizeof(imap_simple_keys[0]); i++) {
		if (imap_arg_atom_equals(a, imap_simple_keys[i].name)) {
			n = imap_snode_new(imap_simple_keys[i].key);
			n->flag = imap_simple_keys[i].flag;
			(*ap)++;
			return n;
		}
	}
	for (size_t i = 0; i < sizeof(imap_date_keys) / sizeof(imap_date_keys[0]); i++) {
		if (!imap_arg_atom_equals(a, imap_date_keys[i].name))
			continue;
		n = imap_snode_new(imap_date_keys[i].key);
		const char *str;
		size_t len;
		if ((str = imap_arg_string(&a[1], &len)) == NULL || imap_date_parse(str, &n->date) < 0) {
			imap_snode_free(n);
			*error_r = "Invalid date";
			return NULL;
		}
		q->needs_content |= n->key >= SK_SENTBEFORE;
		*ap += 2;
		return n;
	}
	for (size_t i = 0; i < sizeof(imap_header_keys) / sizeof(imap_header_keys[0]); i++) {
		if (!imap_arg_atom_equals(a, imap_header_keys[i]))
			continue;
		n = imap_snode_new(SK_HEADER);
		n->field = xstrdup(imap_header_keys[i]);
		(*ap)++;
		if (imap_search_string(ap, n, false) < 0) {
			imap_snode_free(n);
			*error_r = "Missing search string";
			return NULL;
		}
		q->needs_content = true;
		return n;
	}
	return NULL;
}

static struct imap_snode *imap_search_other(struct imap_search *q, const struct imap_arg **ap,
					    unsigned depth, const char **error_r)
{
	const struct imap_arg *a = *ap;
	struct imap_snode *n = NULL;
	enum imap_skey key;

	if (imap_arg_atom_equals(a, "NOT") || imap_arg_atom_equals(a, "OR")) {
		key = imap_arg_atom_equals(a, "NOT") ? SK_NOT : SK_OR;
		n = imap_snode_new(key);
		(*ap)++;
		for (int i = 0; i < (key == SK_NOT ? 1 : 2); i++) {
			struct imap_snode *k = imap_search_key(q, ap, depth + 1, error_r);
			if (k == NULL) {
				imap_snode_free(n);
				return NULL;
			}
			imap_snode_add(n, k);
		}
		return n;
	}
	if (imap_arg_atom_equals(a, "KEYWORD") || imap_arg_atom_equals(a, "UNKEYWORD")) {
		n = imap_snode_new(imap_arg_atom_equals(a, "KEYWORD") ? SK_KEYWORD : SK_UNKEYWORD);
		(*ap)++;
	} else if (imap_arg_atom_equals(a, "HEADER")) {
		n = imap_snode_new(SK_HEADER);
		(*ap)++;
		q->needs_content = true;
		if (imap_search_string(ap, n, true) == 0)
			return n;
		imap_snode_free(n);
		*error_r = "HEADER needs a field name and a string";
		return NULL;
	} else if (imap_arg_atom_equals(a, "BODY") || imap_arg_atom_equals(a, "TEXT")) {
		n = imap_snode_new(imap_arg_atom_equals(a, "BODY") ? SK_BODY : SK_TEXT);
		(*ap)++;
		q->needs_content = true;
	} else if (imap_arg_atom_equals(a, "LARGER") || imap_arg_atom_equals(a, "SMALLER") ||
		   imap_arg_atom_equals(a, "MODSEQ")) {
		key = imap_arg_atom_equals(a, "LARGER")	   ? SK_LARGER
		      : imap_arg_atom_equals(a, "SMALLER") ? SK_SMALLER
							   : SK_MODSEQ;
		/* MODSEQ may carry an entry name and type first (RFC 7162 3.1.5). */
		if (key == SK_MODSEQ && a[1].type == IMAP_ARG_STRING && a[2].type == IMAP_ARG_ATOM)
			a += 2;
		if (a[1].type != IMAP_ARG_NUMBER) {
			*error_r = "Expected a number";
			return NULL;
		}
		n = imap_snode_new(key);
		n->num = a[1].num;
		q->modseq_key |= key == SK_MODSEQ;
		*ap = a + 2;
		return n;
	} else {
		*error_r = "Unknown search key";
		return NULL;
	}
	if (imap_search_string(ap, n, false) < 0) {
		imap_snode_free(n);
		*error_r = "Missing search string";
		return NULL;
	}
	return n;
}

static struct imap_snode *imap_search_set(struct imap_search *q, const struct imap_arg **ap,
					  bool uid, const char **error_r)
{
	struct imap_snode *n = imap_snode_new(SK_SET);
	const struct imap_view *v = &q->s->view;
	size_t *idx, count;
	const struct imap_arg *a = uid ? &(*ap)[1] : *ap;

	/* A sequence set past the end matches nothing rather than failing. */
	if (imap_view_resolve(v, a, uid, &idx, &count, error_r) < 0) {
		if (uid || v->n > 0) {
			struct imap_seqset set;
			if (imap_seqset_parse(a->str, a->len, &set, error_r) < 0) {
				imap_snode_free(n);
				return NULL;
			}
			imap_seqset_free(&set);
		}
		idx = NULL;
		count = 0;
	}
	n->mark = xcalloc(v->n + 1, 1);
	for (size_t i = 0; i < count; i++)
		n->mark[idx[i]] = 1;
	free(idx);
	*ap = a + 1;
	return n;
}

static struct imap_snode *imap_search_key(struct imap_search *q, const struct imap_arg **ap,
					  unsigned depth, const char **error_r)
{
	const struct imap_arg *a = *ap;
	struct imap_snode *n;

	if (depth > IMAP_SEARCH_MAX_DEPTH) {
		*error_r = "Search too deeply nested";
		return NULL;
	}
	if (a->type == IMAP_ARG_EOL) {
		*error_r = "Missing search key";
		return NULL;
	}
	if (a->type == IMAP_ARG_LIST) {
		const struct imap_arg *k = a->list;
		n = imap_snode_new(SK_AND);
		while (k->type != IMAP_ARG_EOL) {
			struct imap_snode *kid = imap_search_key(q, &k, depth + 1, error_r);
			if (kid == NULL) {
				imap_snode_free(n);
				return NULL;
			}
			imap_snode_add(n, kid);
		}
		if (n->n_kids == 0) {
			imap_snode_free(n);
			*error_r = "Empty search list";
			return NULL;
		}
		(*ap)++;
		return n;
	}
	if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_NUMBER) {
		*error_r = "Invalid search key";
		return NULL;
	}
	if (imap_arg_atom_equals(a, "UID"))
		return imap_search_set(q, ap, true, error_r);
	if (a->type == IMAP_ARG_NUMBER || a->str[0] == '*' || a->str[0] == '$' ||
	    (a->str[0] >= '0' && a->str[0] <= '9'))
		return imap_search_set(q, ap, false, error_r);
	*error_r = NULL;
	if ((n = imap_search_atom(q, ap, error_r)) != NULL || *error_r != NULL)
		return n;
	return imap_search_other(q, ap, depth, error_r);
}

/* ---- the full-text index ------------------------------------------------------ */

enum imap_mark {
	IMAP_MARK_NO = 0,
	IMAP_MARK_YES = 1,
	IMAP_MARK_READ = 2, /* not in the index: read the message */
};

static void imap_mark_uids(const struct imap_view *v, unsigned char *mark, const uint32_t *uids,
			   size_t n, unsigned char value)
{
	for (size_t i = 0; i < n; i++) {
		long k = imap_view_find(v, uids[i]);
		if (k >= 0)
			mark[k] = value;
	}
}

/* Answers one text key from the index for every message of the view at
 * once.  A message the store no longer has (expunged, not yet announced)
 * stays IMAP_MARK_NO.  Without an answer (short needle, error) the key is
 * left to read the messages.  Returns whether some message must be read. */
static bool imap_search_index_key(struct imap_search *q, struct imap_snode *n)
{
	const struct imap_view *v = &q->s->view;
	enum store_search_where where = n->key == SK_HEADER ? STORE_SEARCH_HEADER
					: n->key == SK_BODY  ? STORE_SEARCH_BODY
							     : STORE_SEARCH_TEXT;
	uint32_t *hits, *unindexed;
	size_t n_hits, n_unindexed;

	if (!store_search_indexable(n->str, n->str_len))
		return true;
	if (store_message_search_text(q->s->reader, v->mailbox_id, where, n->field, n->str,
				      n->str_len, &hits, &n_hits, &unindexed, &n_unindexed) < 0)
		return true;
	n->mark = xcalloc(v->n + 1, 1);
	imap_mark_uids(v, n->mark, hits, n_hits, IMAP_MARK_YES);
	imap_mark_uids(v, n->mark, unindexed, n_unindexed, IMAP_MARK_READ);
	free(hits);
	free(unindexed);
	return n_unindexed > 0;
}

/* Resolves every text key of the tree through the index; true when some
 * key still needs the messages' content. */
static bool imap_search_index(struct imap_search *q, struct imap_snode *n)
{
	bool content = false;

	switch (n->key) {
	case SK_HEADER:
	case SK_BODY:
	case SK_TEXT:
		return imap_search_index_key(q, n);
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE: return true;
	default: break;
	}
	for (size_t i = 0; i < n->n_kids; i++)
		content |= imap_search_index(q, n->kids[i]);
	return content;
}

/* ---- matching ------------------------------------------------------------- */

struct imap_text_match {
	const struct imap_snode *n;
	bool headers, bodies;
};

static int imap_text_cb(enum mime_text_kind kind, const struct mime_part *part, const char *name,
			const char *text, size_t len, void *ctx)
{
	const struct imap_text_match *t = ctx;

	if (kind == MIME_TEXT_HEADER && !t->headers)
		return 0;
	if (kind == MIME_TEXT_BODY && !t->bodies)
		return 0;
	if (kind == MIME_TEXT_HEADER && t->n->field != NULL &&
	    (part->depth != 0 || strcasecmp(name, t->n->field) != 0))
		return 0;
	return imap_memcasemem(text, len, t->n->str, t->n->str_len) ? 1 : 0;
}

static int imap_search_load(struct imap_search *q, const struct imap_msg *m)
{
	const char *error;
	void *data;

	if (q->loaded)
		return q->msg != NULL ? 0 : -1;
	q->loaded = true;
	if (store_blob_read(q->s->reader, m->blob_id, &data, &q->msg_len, &error) < 0)
		return -1;
	q->msg = data;
	q->tree = mime_parse(q->msg, q->msg_len);
	return 0;
}

/* The day (UTC midnight) of the message's Date field, or -1. */
static time_t imap_sent_day(const struct imap_search *q)
{
	static const char *const months[] = { "jan", "feb", "mar", "apr", "may", "jun",
					      "jul", "aug", "sep", "oct", "nov", "dec" };
	char date[128], mon[4];
	const char *p;
	struct tm tm = { 0 };

	if (header_get(q->msg, q->msg_len, "Date", date, sizeof(date)) < 0)
		return -1;
	p = strchr(date, ',') != NULL ? strchr(date, ',') + 1 : date;
	if (sscanf(p, "%d %3s %d", &tm.tm_mday, mon, &tm.tm_year) != 3)
		return -1;
	for (tm.tm_mon = 0; tm.tm_mon < 12 && strcasecmp(mon, months[tm.tm_mon]) != 0; tm.tm_mon++)
		;
	if (tm.tm_mon == 12)
		return -1;
	if (tm.tm_year < 100)
		tm.tm_year += tm.tm_year < 50 ? 2000 : 1900;
	tm.tm_year -= 1900;
	return timegm(&tm);
}

static bool imap_keyword_has(const char *list, const char *kw)
{
	size_t len = strlen(kw);

	for (const char *p = list; p != NULL && *p != '\0';) {
		const char *end = strchr(p, ' ');
		size_t l = end != NULL ? (size_t)(end - p) : strlen(p);
		if (l == len && strncasecmp(p, kw, len) == 0)
			return true;
		p = end != NULL ? end + 1 : NULL;
	}
	return false;
}

/* The message at view index i as the store has it; NULL when it was
 * expunged meanwhile (it matches nothing then). */
static const struct imap_msg *imap_search_msg(struct imap_search *q, size_t i)
{
	q->rows.n = q->s->view.n;
	return imap_rows_get(q->s, &q->rows, i);
}

static bool imap_search_match(struct imap_search *q, const struct imap_snode *n, size_t i)
{
	uint32_t flags = q->s->view.msgs[i].flags;
	const struct imap_msg *m;
	time_t day;

	switch (n->key) {
	case SK_ALL: return true;
	case SK_FLAG_SET: return (flags & n->flag) != 0;
	case SK_FLAG_UNSET: return (flags & n->flag) == 0;
	case SK_NEW: return (flags & IMAP_MSG_RECENT) && !(flags & STORE_FLAG_SEEN);
	case SK_OLD: return !(flags & IMAP_MSG_RECENT);
	case SK_RECENT: return (flags & IMAP_MSG_RECENT) != 0;
	case SK_SET: return n->mark[i] != 0;
	case SK_NOT: return !imap_search_match(q, n->kids[0], i);
	case SK_OR: return imap_search_match(q, n->kids[0], i) || imap_search_match(q, n->kids[1], i);
	case SK_AND:
		for (size_t k = 0; k < n->n_kids; k++)
			if (!imap_search_match(q, n->kids[k], i))
				return false;
		return true;
	default: break;
	}
	if (n->mark != NULL && n->mark[i] != IMAP_MARK_READ)
		return n->mark[i] == IMAP_MARK_YES;
	if ((m = imap_search_msg(q, i)) == NULL)
		return false;
	day = m->internaldate - m->internaldate % 86400;
	switch (n->key) {
	case SK_KEYWORD: return imap_keyword_has(m->keywords, n->str);
	case SK_UNKEYWORD: return !imap_keyword_has(m->keywords, n->str);
	case SK_LARGER: return m->size > n->num;
	case SK_SMALLER: return m->size < n->num;
	case SK_MODSEQ: return m->modseq >= n->num;
	case SK_BEFORE: return day < n->date;
	case SK_ON: return day == n->date;
	case SK_SINCE: return day >= n->date;
	default: break;
	}
	if (imap_search_load(q, m) < 0)
		return false;
	if (n->key == SK_SENTBEFORE || n->key == SK_SENTON || n->key == SK_SENTSINCE) {
		time_t sent = imap_sent_day(q);
		if (sent < 0)
			return false;
		return n->key == SK_SENTBEFORE ? sent < n->date
		       : n->key == SK_SENTON   ? sent == n->date
					       : sent >= n->date;
	}
	if (n->key == SK_HEADER && n->str_len == 0) {
		char buf[2];
		return header_get(q->msg, q->msg_len, n->field, buf, sizeof(buf)) == 0;
	}
	struct imap_text_match t = { .n = n, .headers = n->key != SK_BODY,
				     .bodies = n->key != SK_HEADER };
	return mime_text_walk(q->msg, q->msg_len, q->tree, imap_text_cb, &t) == 1;
}

/* ---- the command ---------------------------------------------------------------- */

enum imap_search_return {
	IMAP_RET_MIN = 1 << 0,
	IMAP_RET_MAX = 1 << 1,
	IMAP_RET_ALL = 1 << 2,
	IMAP_RET_COUNT = 1 << 3,
};

static int imap_search_return(const struct imap_arg **ap, unsigned *ret_r)
{
	const struct imap_arg *a = *ap;

	*ret_r = 0;
	if (!imap_arg_atom_equals(a, "RETURN"))
		return 0;
	if (a[1].type != IMAP_ARG_LIST)
		return -1;
	for (size_t i = 0; i < a[1].n; i++) {
		const struct imap_arg *k = &a[1].list[i];
		if (imap_arg_atom_equals(k, "MIN"))
			*ret_r |= IMAP_RET_MIN;
		else if (imap_arg_atom_equals(k, "MAX"))
			*ret_r |= IMAP_RET_MAX;
		else if (imap_arg_atom_equals(k, "ALL"))
			*ret_r |= IMAP_RET_ALL;
		else if (imap_arg_atom_equals(k, "COUNT"))
			*ret_r |= IMAP_RET_COUNT;
		else
			return -1;
	}
	if (*ret_r == 0)
		*ret_r = IMAP_RET_ALL;
	*ap = a + 2;
	return 1;
}

static void imap_search_answer(struct imap_session *s, const uint32_t *hits, size_t n,
			       bool esearch, unsigned ret, uint64_t max_modseq, bool modseq_key)
{
	if (!esearch) {
		imap_printf(s, "* SEARCH");
		for (size_t i = 0; i < n; i++)
			imap_printf(s, " %u", hits[i]);
		if (modseq_key && n > 0)
			imap_printf(s, " (MODSEQ %llu)", (unsigned long long)max_modseq);
		imap_printf(s, "\r\n");
		return;
	}
	imap_printf(s, "* ESEARCH (TAG ");
	imap_write_astring(s, s->tag, strlen(s->tag));
	imap_printf(s, ")%s", s->uid ? " UID" : "");
	if ((ret & IMAP_RET_MIN) && n > 0)
		imap_printf(s, " MIN %u", hits[0]);
	if ((ret & IMAP_RET_MAX) && n > 0)
		imap_printf(s, " MAX %u", hits[n - 1]);
	if (ret & IMAP_RET_COUNT)
		imap_printf(s, " COUNT %zu", n);
	if ((ret & IMAP_RET_ALL) && n > 0) {
		char *set = imap_uidset_format(hits, n);
		imap_printf(s, " ALL %s", set);
		free(set);
	}
	if (modseq_key && n > 0)
		imap_printf(s, " MODSEQ %llu", (unsigned long long)max_modseq);
	imap_printf(s, "\r\n");
}

/* A search that reads messages runs in slices of IMAP_SEARCH_SLICE
 * messages, one per loop turn, so that a TEXT search of a large mailbox
 * never holds the loop for long: the command suspends itself and goes on
 * from an event (the DESIGN.md continuation rule). */
#define IMAP_SEARCH_SLICE 200

struct imap_search_job {
	struct imap_search q;
	struct imap_snode *root;
	size_t next;
	struct imap_search_result r;
	imap_search_done_fn *done;
	struct event *ev;
};

void imap_search_free(struct imap_search_job **jp)
{
	struct imap_search_job *j = *jp;

	if (j == NULL)
		return;
	*jp = NULL;
	if (j->ev != NULL)
		event_free(j->ev);
	imap_snode_free(j->root);
	imap_rows_free(&j->q.rows);
	free(j->q.msg);
	mime_tree_free(&j->q.tree);
	free(j->r.idx);
	free(j);
}

/* Tests the next slice; true when every message has been tested. */
static bool imap_search_slice(struct imap_session *s, struct imap_search_job *j)
{
	size_t end = j->q.needs_content ? j->next + IMAP_SEARCH_SLICE : s->view.n;

	for (; j->next < s->view.n && j->next < end; j->next++) {
		size_t i = j->next;
		j->q.loaded = false;
		if (imap_search_match(&j->q, j->root, i)) {
			const struct imap_msg *m = j->q.modseq_key ? imap_search_msg(&j->q, i) : NULL;
			j->r.idx[j->r.n++] = i;
			if (m != NULL && m->modseq > j->r.max_modseq)
				j->r.max_modseq = m->modseq;
		}
		free(j->q.msg);
		j->q.msg = NULL;
		mime_tree_free(&j->q.tree);
	}
	return j->next >= s->view.n;
}

static void imap_search_finish(struct imap_session *s)
{
	struct imap_search_job *j = s->search;
	struct imap_search_result r = j->r;
	imap_search_done_fn *done = j->done;

	j->r.idx = NULL;
	imap_search_free(&s->search);
	done(s, &r);
	free(r.idx);
}

static void imap_search_continue(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	if (s->search == NULL || s->conn == NULL)
		return;
	if (!imap_search_slice(s, s->search)) {
		event_active(s->search->ev, EV_TIMEOUT, 0);
		return;
	}
	imap_ref(s);
	imap_search_finish(s);
	if (imap_unref(s) && !s->busy)
		imap_resume(s);
}

int imap_search_start(struct imap_session *s, const struct imap_arg *a, bool charset_allowed,
		      imap_search_done_fn *done, const char **error_r)
{
	struct imap_search_job *j = xcalloc(1, sizeof(*j));

	j->q.s = s;
	j->root = imap_snode_new(SK_AND);
	j->done = done;
	if (charset_allowed && imap_arg_atom_equals(a, "CHARSET")) {
		if (!imap_arg_atom_equals(&a[1], "UTF-8") && !imap_arg_atom_equals(&a[1], "US-ASCII")) {
			imap_search_free(&j);
			*error_r = "[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset";
			return -2;
		}
		a += 2;
	}
	*error_r = NULL;
	while (a->type != IMAP_ARG_EOL) {
		struct imap_snode *k = imap_search_key(&j->q, &a, 0, error_r);
		if (k == NULL) {
			imap_search_free(&j);
			if (*error_r == NULL)
				*error_r = "Invalid search";
			return -1;
		}
		imap_snode_add(j->root, k);
	}
	if (j->root->n_kids == 0) {
		imap_search_free(&j);
		*error_r = "Missing search key";
		return -1;
	}
	if (j->q.needs_content)
		j->q.needs_content = imap_search_index(&j->q, j->root);
	j->r.modseq_key = j->q.modseq_key;
	if (j->q.modseq_key)
		s->condstore = true;
	j->r.idx = xmalloc((s->view.n + 1) * sizeof(*j->r.idx));
	s->search = j;
	if (imap_search_slice(s, j)) {
		imap_search_finish(s);
		return 0;
	}
	imap_suspend(s);
	j->ev = event_new(loop_base(s->loop), -1, 0, imap_search_continue, s);
	event_active(j->ev, EV_TIMEOUT, 0);
	return 0;
}

static void imap_search_done(struct imap_session *s, struct imap_search_result *r)
{
	uint32_t *hits = xmalloc((r->n + 1) * sizeof(*hits));

	for (size_t i = 0; i < r->n; i++)
		hits[i] = s->uid ? s->view.msgs[r->idx[i]].uid : (uint32_t)(r->idx[i] + 1);
	imap_search_answer(s, hits, r->n, s->search_esearch, s->search_return, r->max_modseq,
			   r->modseq_key);
	free(hits);
	imap_ok(s, "%sSEARCH completed", s->uid ? "UID " : "");
}

void imap_cmd_search(struct imap_session *s, const struct imap_arg *args)
{
	const struct imap_arg *a = args;
	const char *error = NULL;
	unsigned ret = 0;
	int esearch, rc;

	if ((esearch = imap_search_return(&a, &ret)) < 0) {
		imap_bad(s, "Invalid RETURN options");
		return;
	}
	/* IMAP4rev2 answers every SEARCH with ESEARCH, RETURN (ALL) by
	 * default (RFC 9051 6.4.4). */
	s->search_esearch = esearch > 0 || s->rev2;
	s->search_return = ret != 0 ? ret : IMAP_RET_ALL;
	if ((rc = imap_search_start(s, a, true, imap_search_done, &error)) < 0) {
		if (rc == -2)
			imap_no(s, "%s", error);
		else
			imap_bad(s, "%s", error);
	}
}
