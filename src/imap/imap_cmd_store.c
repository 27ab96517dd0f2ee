/* STORE, EXPUNGE, COPY and MOVE, with their UID variants (UIDPLUS: UID
 * EXPUNGE and COPYUID; CONDSTORE: UNCHANGEDSINCE and [MODIFIED]). */
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"

/* The uids of the view's messages at idx, ascending (idx is sorted). */
static uint32_t *imap_uids_of(const struct imap_view *v, const size_t *idx, size_t n)
{
	uint32_t *uids = xmalloc((n + 1) * sizeof(*uids));

	for (size_t i = 0; i < n; i++)
		uids[i] = v->msgs[idx[i]].uid;
	return uids;
}

/* ---- STORE ------------------------------------------------------------------------ */

struct imap_store_req {
	uint32_t *uids;
	size_t n;
	bool silent;
};

/* The new flags (and MODSEQ) of the messages a STORE changed, as the store
 * now has them; a message expunged meanwhile is left out. */
static void imap_store_answer(struct imap_session *s, const uint32_t *uids, size_t n)
{
	size_t *idx = xmalloc((n + 1) * sizeof(*idx)), n_idx = 0;
	const struct imap_msg *m;
	struct imap_rows rows;

	for (size_t i = 0; i < n; i++) {
		long k = imap_view_find(&s->view, uids[i]);
		if (k >= 0)
			idx[n_idx++] = (size_t)k;
	}
	imap_rows_init(&rows, idx, n_idx);
	for (size_t i = 0; i < n_idx; i++) {
		if ((m = imap_rows_get(s, &rows, i)) == NULL)
			continue;
		imap_printf(s, "* %zu FETCH (", idx[i] + 1);
		imap_write_flags(s, m);
		if (s->uid)
			imap_printf(s, " UID %u", m->uid);
		if (s->condstore)
			imap_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
		imap_write(s, ")\r\n", 3);
	}
	imap_rows_free(&rows);
	free(idx);
}

static void imap_store_done(struct imap_session *s, const struct store_reply *reply)
{
	struct imap_store_req *r = (struct imap_store_req *)s->scratch;
	uint32_t *modified = NULL;
	size_t n_modified = 0;
	char *set;

	if (reply->status < 0) {
		free(r->uids);
		imap_no_store(s, reply, "STORE");
		return;
	}
	modified = xmalloc((reply->n_delivered + 1) * sizeof(*modified));
	for (size_t i = 0; i < reply->n_delivered; i++)
		if (reply->delivered[i].status < 0)
			modified[n_modified++] = reply->delivered[i].uid;
	s->view.changed = true;
	imap_view_sync(s, s->uid, r->uids, r->n);
	if (!r->silent)
		imap_store_answer(s, r->uids, r->n);
	free(r->uids);
	if (n_modified == 0) {
		free(modified);
		imap_ok(s, "%sSTORE completed", s->uid ? "UID " : "");
		return;
	}
	if (!s->uid) {
		/* [MODIFIED] holds sequence numbers for STORE. */
		size_t out = 0;
		for (size_t i = 0; i < n_modified; i++) {
			long k = imap_view_find(&s->view, modified[i]);
			if (k >= 0)
				modified[out++] = (uint32_t)k + 1;
		}
		n_modified = out;
	}
	set = imap_uidset_format(modified, n_modified);
	free(modified);
	imap_ok(s, "[MODIFIED %s] Conditional STORE failed for some messages", set);
	free(set);
}

static int imap_store_flags(const struct imap_arg *a, uint32_t *flags, char *kw, size_t size,
			    const char **error_r)
{
	uint32_t f;
	char one[512];

	*flags = 0;
	kw[0] = '\0';
	if (a->type == IMAP_ARG_EOL) {
		*error_r = "STORE needs flags";
		return -1;
	}
	for (; a->type != IMAP_ARG_EOL; a++) {
		if (imap_flags_parse(a, &f, one, sizeof(one), error_r) < 0)
			return -1;
		*flags |= f;
		if (one[0] != '\0') {
			size_t used = strlen(kw), len = strlen(one);
			if (used + len + 2 > size) {
				*error_r = "Too many keywords";
				return -1;
			}
			if (used > 0)
				kw[used++] = ' ';
			memcpy(kw + used, one, len + 1);
		}
	}
	return 0;
}

void imap_cmd_store(struct imap_session *s, const struct imap_arg *args)
{
	struct store_flags_change c = { .mailbox_id = s->view.mailbox_id };
	struct imap_store_req *r;
	const char *item, *error;
	char kw[512];
	size_t *idx, n;

	if (args[0].type == IMAP_ARG_EOL || args[1].type == IMAP_ARG_EOL) {
		imap_bad(s, "STORE needs a sequence set, an item and flags");
		return;
	}
	const struct imap_arg *a = &args[1];
	if (a->type == IMAP_ARG_LIST) {
		if (a->n != 2 || !imap_arg_atom_equals(&a->list[0], "UNCHANGEDSINCE") ||
		    a->list[1].type != IMAP_ARG_NUMBER) {
			imap_bad(s, "Invalid STORE modifier");
			return;
		}
		c.unchangedsince = a->list[1].num;
		s->condstore = true;
		a++;
	}
	if (a->type != IMAP_ARG_ATOM) {
		imap_bad(s, "STORE needs a data item");
		return;
	}
	item = a->str;
	if (strncasecmp(item, "+FLAGS", 6) == 0) {
		c.mode = STORE_FLAGS_ADD;
		item += 6;
	} else if (strncasecmp(item, "-FLAGS", 6) == 0) {
		c.mode = STORE_FLAGS_REMOVE;
		item += 6;
	} else if (strncasecmp(item, "FLAGS", 5) == 0) {
		c.mode = STORE_FLAGS_REPLACE;
		item += 5;
	} else {
		imap_bad(s, "Invalid STORE data item");
		return;
	}
	if (*item != '\0' && strcasecmp(item, ".SILENT") != 0) {
		imap_bad(s, "Invalid STORE data item");
		return;
	}
	if (imap_store_flags(a + 1, &c.flags, kw, sizeof(kw), &error) < 0) {
		imap_bad(s, "%s", error);
		return;
	}
	if (imap_view_resolve(&s->view, &args[0], s->uid, &idx, &n, &error) < 0) {
		imap_bad(s, "%s", error);
		return;
	}
	if (s->view.readonly) {
		free(idx);
		imap_no(s, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->uids = imap_uids_of(&s->view, idx, n);
	r->n = n;
	r->silent = *item != '\0';
	free(idx);
	if (n == 0) {
		free(r->uids);
		free(r);
		imap_ok(s, "%sSTORE completed", s->uid ? "UID " : "");
		return;
	}
	for (size_t i = 0; i < n; i++)
		trace_event_message_uid(s->reader, s->view.mailbox_id, r->uids[i],
					imap_trace(s, "flags",
						   "mailbox=%s uid=%u %s flags=0x%x keywords=%s",
						   s->view.name, r->uids[i], a->str, c.flags, kw));
	c.uids = r->uids;
	c.n_uids = n;
	c.keywords = kw;
	c.events = s->events;
	c.n_events = s->n_events;
	s->scratch = (char *)r;
	store_flags_set(s->env->store, &c, s->loop, imap_call_done, imap_call(s, imap_store_done));
	imap_trace_taken(s);
}

/* ---- EXPUNGE ---------------------------------------------------------------------- */

static void imap_expunge_done(struct imap_session *s, const struct store_reply *reply)
{
	if (reply->status < 0) {
		imap_no_store(s, reply, "EXPUNGE");
		return;
	}
	s->view.changed = true;
	imap_ok(s, "%sEXPUNGE completed", s->uid ? "UID " : "");
}

void imap_cmd_expunge(struct imap_session *s, const struct imap_arg *args)
{
	struct imap_view *v = &s->view;
	size_t *idx = NULL, n_idx = 0, n = 0;
	const char *error;
	uint32_t *uids;

	if (s->uid && imap_view_resolve(v, &args[0], true, &idx, &n_idx, &error) < 0) {
		imap_bad(s, "%s", error);
		return;
	}
	if (v->readonly) {
		free(idx);
		imap_no(s, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	free(idx);
	/* Catch up first: \Deleted set by another session counts too. */
	imap_view_sync(s, true, NULL, 0);
	if (s->uid && imap_view_resolve(v, &args[0], true, &idx, &n_idx, &error) < 0)
		n_idx = 0;
	uids = xmalloc((v->n + 1) * sizeof(*uids));
	for (size_t i = 0; i < (s->uid ? n_idx : v->n); i++) {
		const struct imap_vmsg *m = &v->msgs[s->uid ? idx[i] : i];
		if (m->flags & STORE_FLAG_DELETED) {
			uids[n++] = m->uid;
			trace_event_message_uid(s->reader, v->mailbox_id, m->uid,
						imap_trace(s, "expunged", "mailbox=%s uid=%u",
							   v->name, m->uid));
		}
	}
	free(idx);
	if (n == 0) {
		free(uids);
		imap_ok(s, "%sEXPUNGE completed", s->uid ? "UID " : "");
		return;
	}
	store_expunge(s->env->store, v->mailbox_id, uids, n, s->events, s->n_events, s->loop,
		      imap_call_done, imap_call(s, imap_expunge_done));
	imap_trace_taken(s);
	free(uids);
}

/* ---- COPY / MOVE ------------------------------------------------------------------ */

static void imap_copy_done(struct imap_session *s, const struct store_reply *reply)
{
	bool move = s->cmd != NULL && strcmp(s->cmd->name, "MOVE") == 0;
	uint32_t *src, *dst;
	size_t n = 0;
	char *a, *b;

	if (reply->status < 0) {
		imap_no_store(s, reply, move ? "MOVE" : "COPY");
		return;
	}
	src = xmalloc((reply->n_delivered + 1) * sizeof(*src));
	dst = xmalloc((reply->n_delivered + 1) * sizeof(*dst));
	for (size_t i = 0; i < reply->n_delivered; i++) {
		if (reply->delivered[i].status < 0)
			continue;
		src[n] = ((uint32_t *)s->scratch)[i];
		dst[n++] = reply->delivered[i].uid;
	}
	a = imap_uidset_format(src, n);
	b = imap_uidset_format(dst, n);
	free(src);
	free(dst);
	s->view.changed = true;
	if (n == 0) {
		imap_ok(s, "%s completed", move ? "MOVE" : "COPY");
	} else if (move) {
		imap_untagged(s, "OK [COPYUID %u %s %s] Moved", (unsigned)reply->id, a, b);
		imap_ok(s, "MOVE completed");
	} else {
		imap_ok(s, "[COPYUID %u %s %s] COPY completed", (unsigned)reply->id, a, b);
	}
	free(a);
	free(b);
}

static void imap_copy(struct imap_session *s, const struct imap_arg *args, bool move)
{
	char name[STORE_MAILBOX_MAX + 1];
	struct store_mailbox target;
	size_t *idx, n;
	const char *error;
	uint32_t *uids;

	if (args[0].type == IMAP_ARG_EOL || imap_mailbox_name(s, &args[1], name, sizeof(name)) < 0 ||
	    args[2].type != IMAP_ARG_EOL) {
		imap_bad(s, "%s needs a sequence set and a mailbox", move ? "MOVE" : "COPY");
		return;
	}
	if (imap_view_resolve(&s->view, &args[0], s->uid, &idx, &n, &error) < 0) {
		imap_bad(s, "%s", error);
		return;
	}
	if (store_mailbox_get(s->reader, s->user_id, name, &target) < 0) {
		free(idx);
		imap_no(s, "[TRYCREATE] Mailbox does not exist");
		return;
	}
	if (move && s->view.readonly) {
		free(idx);
		imap_no(s, "[READ-ONLY] The mailbox is read-only");
		return;
	}
	uids = imap_uids_of(&s->view, idx, n);
	free(idx);
	if (n == 0) {
		free(uids);
		imap_ok(s, "%s completed", move ? "MOVE" : "COPY");
		return;
	}
	for (size_t i = 0; i < n; i++)
		trace_event_message_uid(s->reader, s->view.mailbox_id, uids[i],
					imap_trace(s, move ? "moved" : "copied",
						   "mailbox=%s uid=%u to=%s", s->view.name,
						   uids[i], target.name));
	s->scratch = (char *)uids;
	store_copy(s->env->store, s->view.mailbox_id, uids, n, target.id, move, s->events,
		   s->n_events, s->loop, imap_call_done, imap_call(s, imap_copy_done));
	imap_trace_taken(s);
}

void imap_cmd_copy(struct imap_session *s, const struct imap_arg *args)
{
	imap_copy(s, args, false);
}

void imap_cmd_move(struct imap_session *s, const struct imap_arg *args)
{
	imap_copy(s, args, true);
}
