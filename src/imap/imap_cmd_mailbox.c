/* Mailboxes: SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST
 * (with LIST-EXTENDED selection and RETURN options, SPECIAL-USE, CHILDREN,
 * LIST-STATUS) LSUB STATUS CLOSE UNSELECT CHECK.  Names are "/"-separated
 * and passed through as they are stored (no modified UTF-7 conversion). */
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/imap_recent.h"
#include "lib/log.h"
#include "lib/xalloc.h"

int imap_mailbox_name(struct imap_session *s, const struct imap_arg *arg, char *buf,
		      size_t size)
{
	const char *str;
	size_t len;

	if ((str = imap_arg_string(arg, &len)) == NULL || len == 0 || len >= size ||
	    memchr(str, '\0', len) != NULL || (arg->flags & IMAP_ARG_FLAG_BAD_UTF8))
		return -1;
	while (len > 1 && str[len - 1] == '/')
		len--;
	if (str[0] == '/' || memmem(str, len, "//", 2) != NULL)
		return -1;
	/* IMAP4rev1 names are modified UTF-7; 8-bit ones (UTF-8, which some
	 * rev1 clients send) are taken as they are. */
	if (!s->rev2 && !(arg->flags & IMAP_ARG_FLAG_8BIT) && memchr(str, '&', len) != NULL) {
		if (imap_mutf7_decode(str, len, buf, size) < 0)
			return -1;
	} else {
		memcpy(buf, str, len);
		buf[len] = '\0';
	}
	if (strcasecmp(buf, "INBOX") == 0)
		memcpy(buf, "INBOX", 6);
	return 0;
}

/* The mailbox an argument names, or -1 with the NO sent. */
static int imap_mailbox_lookup(struct imap_session *s, const struct imap_arg *arg,
			       struct store_mailbox *m)
{
	char name[STORE_MAILBOX_MAX + 1];

	if (imap_mailbox_name(s, arg, name, sizeof(name)) < 0) {
		imap_bad(s, "Invalid mailbox name");
		return -1;
	}
	if (store_mailbox_get(s->reader, s->user_id, name, m) < 0) {
		imap_no(s, "[NONEXISTENT] Mailbox does not exist");
		return -1;
	}
	return 0;
}

/* ---- SELECT / EXAMINE ------------------------------------------------------- */

/* (uidvalidity modseq [known-uids [(seq-set uid-set)]]) */
static bool imap_qresync_valid(const struct imap_arg *q)
{
	if (q->type != IMAP_ARG_LIST || q->n < 2 || q->n > 4 ||
	    q->list[0].type != IMAP_ARG_NUMBER || q->list[0].num == 0 ||
	    q->list[0].num > UINT32_MAX || q->list[1].type != IMAP_ARG_NUMBER ||
	    q->list[1].num == 0)
		return false;
	if (q->n >= 3 && q->list[2].type != IMAP_ARG_ATOM && q->list[2].type != IMAP_ARG_NUMBER)
		return false;
	return q->n < 4 || (q->list[3].type == IMAP_ARG_LIST && q->list[3].n == 2);
}

/* SELECT's parameters: (CONDSTORE) and (QRESYNC (uidvalidity modseq
 * [known-uids [seq-match]])) (RFC 7162 3.2.5). */
static int imap_select_params(struct imap_session *s, const struct imap_arg *arg,
			      const struct imap_arg **qresync_r)
{
	*qresync_r = NULL;
	if (arg->type == IMAP_ARG_EOL)
		return 0;
	if (arg->type != IMAP_ARG_LIST || arg[1].type != IMAP_ARG_EOL)
		return -1;
	for (size_t i = 0; i < arg->n; i++) {
		const struct imap_arg *a = &arg->list[i];
		if (imap_arg_atom_equals(a, "CONDSTORE")) {
			s->condstore = true;
		} else if (imap_arg_atom_equals(a, "QRESYNC") && s->qresync && i + 1 < arg->n &&
			   imap_qresync_valid(&a[1])) {
			*qresync_r = &a[1];
			i++;
		} else {
			return -1;
		}
	}
	return 0;
}

/* QRESYNC at SELECT: what vanished and what changed since the client's
 * modseq, when its uidvalidity still holds. */
static void imap_select_qresync(struct imap_session *s, const struct imap_arg *q)
{
	const struct imap_view *v = &s->view;
	uint64_t modseq = q->list[1].num;
	const struct imap_msg *m;
	struct imap_rows rows;
	uint32_t *uids;
	size_t *idx, n, n_idx = 0;

	if (q->list[0].num != v->uidvalidity)
		return;
	imap_view_vanished_earlier(s, modseq, q->n >= 3 ? &q->list[2] : NULL);
	/* The uids first, then their rows a page at a time: an old modseq
	 * may name most of a big mailbox. */
	if (store_message_changed_uids(s->reader, v->mailbox_id, modseq, &uids, &n) < 0)
		return;
	idx = xmalloc((n + 1) * sizeof(*idx));
	for (size_t j = 0; j < n; j++) {
		long i = imap_view_find(v, uids[j]);
		if (i >= 0)
			idx[n_idx++] = (size_t)i;
	}
	free(uids);
	imap_rows_init(&rows, idx, n_idx);
	for (size_t j = 0; j < n_idx; j++) {
		if ((m = imap_rows_get(s, &rows, j)) == NULL)
			continue;
		imap_printf(s, "* %zu FETCH (UID %u ", idx[j] + 1, m->uid);
		imap_write_flags(s, m);
		imap_printf(s, " MODSEQ (%llu))\r\n", (unsigned long long)m->modseq);
	}
	imap_rows_free(&rows);
	free(idx);
}

static void imap_select(struct imap_session *s, const struct imap_arg *args, bool readonly)
{
	struct store_mailbox m, now;
	uint32_t recent, uidnext;
	const struct imap_view *v = &s->view;
	const struct imap_arg *qresync;

	if (imap_select_params(s, &args[1], &qresync) < 0) {
		imap_bad(s, "Invalid SELECT parameters");
		return;
	}
	if (s->state == IMAP_STATE_SELECTED) {
		imap_view_close(s);
		imap_enter_state(s, IMAP_STATE_AUTH);
		imap_untagged(s, "OK [CLOSED] Previous mailbox closed");
	}
	if (imap_mailbox_lookup(s, &args[0], &m) < 0)
		return;
	if (imap_view_open(s, &m, readonly, &recent) < 0 ||
	    store_mailbox_get_by_id(s->reader, m.id, &now) < 0) {
		imap_view_close(s);
		imap_no(s, "[NONEXISTENT] Mailbox does not exist");
		return;
	}
	uidnext = now.uidnext;
	if (v->n > 0 && v->msgs[v->n - 1].uid >= uidnext)
		uidnext = v->msgs[v->n - 1].uid + 1;
	imap_untagged(s, "FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)");
	imap_untagged(s, "OK [PERMANENTFLAGS (%s)] Flags permitted",
		      readonly ? "" : "\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*");
	imap_untagged(s, "%zu EXISTS", v->n);
	/* RFC 9051 6.3.2: no RECENT and no [UNSEEN], but the mailbox's name
	 * as the server spells it, in a LIST response. */
	if (s->rev2) {
		imap_printf(s, "* LIST () \"/\" ");
		imap_write_mailbox(s, m.name);
		imap_printf(s, "\r\n");
	} else {
		imap_untagged(s, "%u RECENT", recent);
	}
	for (size_t i = 0; !s->rev2 && i < v->n; i++) {
		if (!(v->msgs[i].flags & STORE_FLAG_SEEN)) {
			imap_untagged(s, "OK [UNSEEN %zu] First unseen", i + 1);
			break;
		}
	}
	imap_untagged(s, "OK [UIDVALIDITY %u] UIDs valid", v->uidvalidity);
	imap_untagged(s, "OK [UIDNEXT %u] Predicted next UID", uidnext);
	imap_untagged(s, "OK [HIGHESTMODSEQ %llu] Highest", (unsigned long long)v->highestmodseq);
	if (qresync != NULL)
		imap_select_qresync(s, qresync);
	imap_enter_state(s, IMAP_STATE_SELECTED);
	imap_trace(s, "select", "mailbox=%s messages=%zu%s", v->name, v->n,
		   readonly ? " read-only" : "");
	imap_ok(s, "[%s] %s completed", readonly ? "READ-ONLY" : "READ-WRITE",
		readonly ? "EXAMINE" : "SELECT");
}

void imap_cmd_select(struct imap_session *s, const struct imap_arg *args)
{
	imap_select(s, args, false);
}

void imap_cmd_examine(struct imap_session *s, const struct imap_arg *args)
{
	imap_select(s, args, true);
}

static void imap_unselect(struct imap_session *s)
{
	imap_view_close(s);
	imap_enter_state(s, IMAP_STATE_AUTH);
}

void imap_cmd_unselect(struct imap_session *s, const struct imap_arg *args)
{
	imap_unselect(s);
	imap_ok(s, "UNSELECT completed");
}

void imap_cmd_check(struct imap_session *s, const struct imap_arg *args)
{
	imap_ok(s, "CHECK completed");
}

static void imap_close_done(struct imap_session *s, const struct store_reply *reply)
{
	if (reply->status < 0)
		log_error("imap", "s=%s event=close_expunge_failed error=\"%s\"", s->id,
			  reply->error);
	imap_unselect(s);
	if (reply->status < 0)
		imap_no_store(s, reply, "CLOSE");
	else
		imap_ok(s, "CLOSE completed");
}

/* CLOSE expunges the \Deleted messages without EXPUNGE responses. */
void imap_cmd_close(struct imap_session *s, const struct imap_arg *args)
{
	struct imap_view *v = &s->view;
	uint32_t *uids;
	size_t n = 0;

	if (v->readonly) {
		imap_unselect(s);
		imap_ok(s, "CLOSE completed");
		return;
	}
	uids = xmalloc((v->n + 1) * sizeof(*uids));
	for (size_t i = 0; i < v->n; i++) {
		if (v->msgs[i].flags & STORE_FLAG_DELETED) {
			uids[n++] = v->msgs[i].uid;
			trace_event_message_uid(s->reader, v->mailbox_id, v->msgs[i].uid,
						imap_trace(s, "expunged", "CLOSE mailbox=%s uid=%u",
							   v->name, v->msgs[i].uid));
		}
	}
	if (n == 0) {
		free(uids);
		imap_unselect(s);
		imap_ok(s, "CLOSE completed");
		return;
	}
	store_expunge(s->env->store, v->mailbox_id, uids, n, s->events, s->n_events, s->loop,
		      imap_call_done, imap_call(s, imap_close_done));
	imap_trace_taken(s);
	free(uids);
}

/* ---- CREATE / DELETE / RENAME / SUBSCRIBE ----------------------------------- */

static const char *imap_special_name(enum store_special_use u);

static bool imap_name_creatable(const char *name)
{
	return strpbrk(name, "*%") == NULL && strcmp(name, "INBOX") != 0;
}

static void imap_write_answer(struct imap_session *s)
{
	if (s->final.status < 0)
		imap_no_store(s, &s->final, s->scratch != NULL ? s->scratch : "Request");
	else
		imap_ok(s, "%s completed", s->scratch != NULL ? s->scratch : "Request");
}

static void imap_parent_done(struct imap_session *s, const struct store_reply *reply)
{
	if (--s->pending == 0)
		imap_write_answer(s);
}

static void imap_final_done(struct imap_session *s, const struct store_reply *reply)
{
	imap_final_set(s, reply);
	if (--s->pending == 0)
		imap_write_answer(s);
}

/* Creates the missing parents of name (results ignored: a parent created
 * meanwhile by another session is fine); returns how many were asked for. */
static int imap_create_parents(struct imap_session *s, const char *name)
{
	char prefix[STORE_MAILBOX_MAX + 1];
	struct store_mailbox m;
	int n = 0;

	for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/')) {
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(p - name), name);
		if (strcasecmp(prefix, "INBOX") == 0 ||
		    store_mailbox_get(s->reader, s->user_id, prefix, &m) == 0)
			continue;
		s->pending++;
		n++;
		store_mailbox_create(s->env->store, s->user_id, prefix, STORE_SPECIAL_NONE, s->loop,
				     imap_call_done, imap_call(s, imap_parent_done));
	}
	return n;
}

/* CREATE-SPECIAL-USE (RFC 6154 3): CREATE name (USE (\Drafts)). */
static int imap_create_use(const struct imap_arg *arg, enum store_special_use *use_r)
{
	static const enum store_special_use uses[] = { STORE_SPECIAL_DRAFTS, STORE_SPECIAL_SENT,
						       STORE_SPECIAL_TRASH, STORE_SPECIAL_JUNK,
						       STORE_SPECIAL_ARCHIVE };
	const struct imap_arg *l;

	*use_r = STORE_SPECIAL_NONE;
	if (arg->type == IMAP_ARG_EOL)
		return 0;
	if (arg->type != IMAP_ARG_LIST || arg[1].type != IMAP_ARG_EOL || arg->n != 2 ||
	    !imap_arg_atom_equals(&arg->list[0], "USE") || arg->list[1].type != IMAP_ARG_LIST ||
	    arg->list[1].n != 1)
		return -1;
	l = &arg->list[1].list[0];
	for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++) {
		if (imap_arg_atom_equals(l, imap_special_name(uses[i]))) {
			*use_r = uses[i];
			return 0;
		}
	}
	return -2;
}

void imap_cmd_create(struct imap_session *s, const struct imap_arg *args)
{
	char name[STORE_MAILBOX_MAX + 1];
	enum store_special_use use;
	struct store_mailbox m;
	int rc;

	if (imap_mailbox_name(s, &args[0], name, sizeof(name)) < 0 ||
	    (rc = imap_create_use(&args[1], &use)) == -1) {
		imap_bad(s, "CREATE needs a valid mailbox name");
		return;
	}
	if (rc == -2) {
		imap_no(s, "[USEATTR] Unsupported special-use attribute");
		return;
	}
	if (!imap_name_creatable(name)) {
		imap_no(s, "[CANNOT] Invalid mailbox name");
		return;
	}
	if (store_mailbox_get(s->reader, s->user_id, name, &m) == 0) {
		imap_no(s, "[ALREADYEXISTS] Mailbox already exists");
		return;
	}
	s->scratch = xstrdup("CREATE");
	s->pending = 0;
	imap_create_parents(s, name);
	s->pending++;
	imap_trace(s, "mailbox", "CREATE %s", name);
	store_mailbox_create(s->env->store, s->user_id, name, use, s->loop, imap_call_done,
			     imap_call(s, imap_final_done));
}

void imap_cmd_delete(struct imap_session *s, const struct imap_arg *args)
{
	struct store_mailbox m;

	if (imap_mailbox_lookup(s, &args[0], &m) < 0)
		return;
	if (strcmp(m.name, "INBOX") == 0) {
		imap_no(s, "[CANNOT] INBOX cannot be deleted");
		return;
	}
	if (s->state == IMAP_STATE_SELECTED && s->view.mailbox_id == m.id) {
		imap_unselect(s);
		imap_untagged(s, "OK [CLOSED] The selected mailbox is being deleted");
	}
	imap_recent_forget(s->env->recent, m.id);
	imap_trace(s, "mailbox", "DELETE %s", m.name);
	s->scratch = xstrdup("DELETE");
	s->pending = 1;
	store_mailbox_delete(s->env->store, m.id, s->loop, imap_call_done,
			     imap_call(s, imap_final_done));
}

/* RFC 3501 6.3.5: renaming INBOX moves its messages to the new mailbox and
 * leaves INBOX empty. */
static void imap_rename_inbox_created(struct imap_session *s, const struct store_reply *reply)
{
	struct store_mailbox inbox, target;
	struct store_message *list = NULL;
	uint32_t *uids;
	size_t n = 0;

	if (reply->status < 0) {
		imap_no_store(s, reply, "RENAME");
		return;
	}
	if (store_mailbox_get(s->reader, s->user_id, "INBOX", &inbox) < 0 ||
	    store_mailbox_get(s->reader, s->user_id, s->scratch, &target) < 0 ||
	    store_message_list(s->reader, inbox.id, 1, 0, &list, &n) < 0) {
		imap_no(s, "[UNAVAILABLE] RENAME failed, try again later");
		return;
	}
	if (n == 0) {
		free(list);
		imap_ok(s, "RENAME completed");
		return;
	}
	uids = xmalloc(n * sizeof(*uids));
	for (size_t i = 0; i < n; i++)
		uids[i] = list[i].uid;
	free(list);
	free(s->scratch);
	s->scratch = xstrdup("RENAME");
	s->pending = 1;
	store_copy(s->env->store, inbox.id, uids, n, target.id, true, s->events, s->n_events,
		   s->loop, imap_call_done, imap_call(s, imap_final_done));
	imap_trace_taken(s);
	free(uids);
}

void imap_cmd_rename(struct imap_session *s, const struct imap_arg *args)
{
	char to[STORE_MAILBOX_MAX + 1];
	struct store_mailbox m, exists;

	if (imap_mailbox_name(s, &args[1], to, sizeof(to)) < 0 || args[2].type != IMAP_ARG_EOL) {
		imap_bad(s, "RENAME needs two valid mailbox names");
		return;
	}
	if (imap_mailbox_lookup(s, &args[0], &m) < 0)
		return;
	if (!imap_name_creatable(to)) {
		imap_no(s, "[CANNOT] Invalid mailbox name");
		return;
	}
	if (store_mailbox_get(s->reader, s->user_id, to, &exists) == 0) {
		imap_no(s, "[ALREADYEXISTS] Mailbox already exists");
		return;
	}
	imap_trace(s, "mailbox", "RENAME %s %s", m.name, to);
	s->pending = 0;
	if (strcmp(m.name, "INBOX") == 0) {
		s->scratch = xstrdup(to);
		store_mailbox_create(s->env->store, s->user_id, to, STORE_SPECIAL_NONE, s->loop,
				     imap_call_done, imap_call(s, imap_rename_inbox_created));
		return;
	}
	s->scratch = xstrdup("RENAME");
	imap_create_parents(s, to);
	s->pending++;
	store_mailbox_rename(s->env->store, m.id, to, s->loop, imap_call_done,
			     imap_call(s, imap_final_done));
}

static void imap_subscribe(struct imap_session *s, const struct imap_arg *args, bool on)
{
	struct store_mailbox m;

	if (imap_mailbox_lookup(s, &args[0], &m) < 0)
		return;
	s->scratch = xstrdup(on ? "SUBSCRIBE" : "UNSUBSCRIBE");
	s->pending = 1;
	store_mailbox_subscribe(s->env->store, m.id, on, s->loop, imap_call_done,
				imap_call(s, imap_final_done));
}

void imap_cmd_subscribe(struct imap_session *s, const struct imap_arg *args)
{
	imap_subscribe(s, args, true);
}

void imap_cmd_unsubscribe(struct imap_session *s, const struct imap_arg *args)
{
	imap_subscribe(s, args, false);
}

/* ---- STATUS ----------------------------------------------------------------- */

enum imap_status_item {
	IMAP_STATUS_MESSAGES = 1 << 0,
	IMAP_STATUS_UIDNEXT = 1 << 1,
	IMAP_STATUS_UIDVALIDITY = 1 << 2,
	IMAP_STATUS_UNSEEN = 1 << 3,
	IMAP_STATUS_RECENT = 1 << 4,
	IMAP_STATUS_SIZE = 1 << 5,
	IMAP_STATUS_HIGHESTMODSEQ = 1 << 6,
	IMAP_STATUS_DELETED = 1 << 7, /* RFC 9051 */
};

#define IMAP_STATUS_N 8
static const char *const imap_status_names[IMAP_STATUS_N] = {
	"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT", "SIZE", "HIGHESTMODSEQ", "DELETED"
};

static int imap_status_items(const struct imap_arg *list, unsigned *items_r)
{
	*items_r = 0;
	if (list->type != IMAP_ARG_LIST || list->n == 0)
		return -1;
	for (size_t i = 0; i < list->n; i++) {
		unsigned k;
		for (k = 0; k < IMAP_STATUS_N; k++)
			if (imap_arg_atom_equals(&list->list[i], imap_status_names[k]))
				break;
		if (k == IMAP_STATUS_N)
			return -1;
		*items_r |= 1u << k;
	}
	return 0;
}

/* Writes "* STATUS name (...)"; -1 if the counts cannot be read. */
static int imap_status_write(struct imap_session *s, const struct store_mailbox *m, unsigned items)
{
	uint64_t values[IMAP_STATUS_N] = { m->messages, m->uidnext, m->uidvalidity, 0, 0, m->size,
					   m->highestmodseq, 0 };
	bool first = true;

	if (items & (IMAP_STATUS_UNSEEN | IMAP_STATUS_RECENT | IMAP_STATUS_DELETED)) {
		uint32_t first_recent = imap_recent_peek(s->env->recent, m->id), next = 1;
		struct store_message *list;
		size_t n;
		do {
			if (store_message_list(s->reader, m->id, next, 5000, &list, &n) < 0)
				return -1;
			for (size_t i = 0; i < n; i++) {
				values[3] += !(list[i].flags & STORE_FLAG_SEEN);
				values[4] += list[i].uid >= first_recent;
				values[7] += (list[i].flags & STORE_FLAG_DELETED) != 0;
			}
			if (n > 0)
				next = list[n - 1].uid + 1;
			free(list);
		} while (n == 5000);
	}
	imap_printf(s, "* STATUS ");
	imap_write_mailbox(s, m->name);
	imap_printf(s, " (");
	for (unsigned k = 0; k < IMAP_STATUS_N; k++) {
		if (!(items & (1u << k)))
			continue;
		imap_printf(s, "%s%s %llu", first ? "" : " ", imap_status_names[k],
			    (unsigned long long)values[k]);
		first = false;
	}
	imap_printf(s, ")\r\n");
	return 0;
}

void imap_cmd_status(struct imap_session *s, const struct imap_arg *args)
{
	struct store_mailbox m;
	unsigned items;

	/* IMAP4rev2 has no RECENT (RFC 9051 6.3.11). */
	if (args[0].type == IMAP_ARG_EOL || imap_status_items(&args[1], &items) < 0 ||
	    args[2].type != IMAP_ARG_EOL || (s->rev2 && (items & IMAP_STATUS_RECENT))) {
		imap_bad(s, "STATUS needs a mailbox and a list of items");
		return;
	}
	if (imap_mailbox_lookup(s, &args[0], &m) < 0)
		return;
	if (items & IMAP_STATUS_HIGHESTMODSEQ)
		s->condstore = true;
	if (imap_status_write(s, &m, items) < 0)
		imap_no(s, "[UNAVAILABLE] STATUS failed, try again later");
	else
		imap_ok(s, "STATUS completed");
}

/* ---- LIST / LSUB ------------------------------------------------------------ */

/* RFC 3501 6.3.8: "*" matches anything, "%" anything but the delimiter. */
static bool imap_match(const char *pat, const char *name)
{
	for (; *pat != '\0'; pat++, name++) {
		if (*pat == '*' || *pat == '%') {
			for (const char *n = name;; n++) {
				if (imap_match(pat + 1, n))
					return true;
				if (*n == '\0' || (*pat == '%' && *n == '/'))
					return false;
			}
		}
		if (*pat != *name)
			return false;
	}
	return *name == '\0';
}

/* INBOX matches in any case. */
static bool imap_list_match(const char *pat, const char *name)
{
	if (strncasecmp(pat, "INBOX", 5) == 0 && strncmp(name, "INBOX", 5) == 0) {
		char upper[2 * STORE_MAILBOX_MAX + 8];
		snprintf(upper, sizeof(upper), "INBOX%s", pat + 5);
		return imap_match(upper, name);
	}
	return imap_match(pat, name);
}

enum imap_list_opts {
	IMAP_LIST_SEL_SUBSCRIBED = 1 << 0,
	IMAP_LIST_SEL_SPECIAL_USE = 1 << 1,
	IMAP_LIST_RET_SUBSCRIBED = 1 << 2,
	IMAP_LIST_RET_CHILDREN = 1 << 3,
	IMAP_LIST_RET_SPECIAL_USE = 1 << 4,
	IMAP_LIST_RET_STATUS = 1 << 5,
	IMAP_LIST_LSUB = 1 << 6,
	IMAP_LIST_EXTENDED = 1 << 7,
};

struct imap_list_ctx {
	struct store_mailbox *boxes;
	size_t n;
	unsigned opts;
	unsigned status_items;
	const struct imap_arg *patterns; /* n_patterns strings */
	size_t n_patterns;
	char reference[STORE_MAILBOX_MAX + 1];
	bool mutf7; /* an IMAP4rev1 session: patterns are modified UTF-7 */
	bool rev2;  /* an IMAP4rev2 session: \NonExistent (RFC 9051 7.3.1) */
};

static bool imap_list_has_children(const struct imap_list_ctx *c, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < c->n; i++)
		if (strncmp(c->boxes[i].name, name, len) == 0 && c->boxes[i].name[len] == '/')
			return true;
	return false;
}

static bool imap_list_matches(const struct imap_list_ctx *c, const char *name)
{
	char pat[2 * STORE_MAILBOX_MAX + 4];
	size_t len;

	for (size_t i = 0; i < c->n_patterns; i++) {
		const char *p = imap_arg_string(&c->patterns[i], &len);
		if (p == NULL)
			continue;
		size_t n = (size_t)snprintf(pat, sizeof(pat), "%s", c->reference);
		/* A pattern that is not valid modified UTF-7 is matched as sent. */
		if (!c->mutf7 || memchr(p, '&', len) == NULL ||
		    imap_mutf7_decode(p, len, pat + n, sizeof(pat) - n) < 0)
			snprintf(pat + n, sizeof(pat) - n, "%.*s", (int)len, p);
		if (imap_list_match(pat, name))
			return true;
	}
	return false;
}

static const char *imap_special_name(enum store_special_use u)
{
	switch (u) {
	case STORE_SPECIAL_DRAFTS: return "\\Drafts";
	case STORE_SPECIAL_SENT: return "\\Sent";
	case STORE_SPECIAL_TRASH: return "\\Trash";
	case STORE_SPECIAL_JUNK: return "\\Junk";
	case STORE_SPECIAL_ARCHIVE: return "\\Archive";
	default: return NULL;
	}
}

static void imap_list_line(struct imap_session *s, const struct imap_list_ctx *c,
			   const struct store_mailbox *m, const char *name)
{
	bool lsub = c->opts & IMAP_LIST_LSUB;
	const char *special = m != NULL ? imap_special_name(m->special_use) : NULL;
	bool children = imap_list_has_children(c, name);
	char attrs[128];
	size_t n = 0;

	attrs[0] = '\0';
	if (m == NULL)
		n += (size_t)snprintf(attrs + n, sizeof(attrs) - n, "%s",
				      c->rev2 ? " \\NonExistent \\Noselect" : " \\Noselect");
	if (!lsub || m == NULL)
		n += (size_t)snprintf(attrs + n, sizeof(attrs) - n, " %s",
				      children ? "\\HasChildren" : "\\HasNoChildren");
	if (special != NULL && !lsub)
		n += (size_t)snprintf(attrs + n, sizeof(attrs) - n, " %s", special);
	if (m != NULL && m->subscribed && (c->opts & IMAP_LIST_RET_SUBSCRIBED))
		snprintf(attrs + n, sizeof(attrs) - n, " \\Subscribed");
	imap_printf(s, "* %s (%s) \"/\" ", lsub ? "LSUB" : "LIST", attrs[0] ? attrs + 1 : "");
	imap_write_mailbox(s, name);
	imap_printf(s, "\r\n");
	if (m != NULL && (c->opts & IMAP_LIST_RET_STATUS))
		imap_status_write(s, m, c->status_items);
}

static bool imap_list_selected(const struct imap_list_ctx *c, const struct store_mailbox *m)
{
	if ((c->opts & IMAP_LIST_SEL_SUBSCRIBED) && !m->subscribed)
		return false;
	if ((c->opts & IMAP_LIST_SEL_SPECIAL_USE) && imap_special_name(m->special_use) == NULL)
		return false;
	return imap_list_matches(c, m->name);
}

/* Parents that do not exist themselves but have children: \Noselect. */
static void imap_list_missing_parents(struct imap_session *s, struct imap_list_ctx *c)
{
	char prefix[STORE_MAILBOX_MAX + 1];
	char **seen = NULL;
	size_t n_seen = 0;

	for (size_t i = 0; i < c->n; i++) {
		const char *name = c->boxes[i].name;
		for (const char *p = strchr(name, '/'); p != NULL; p = strchr(p + 1, '/')) {
			bool known = false;
			snprintf(prefix, sizeof(prefix), "%.*s", (int)(p - name), name);
			for (size_t k = 0; k < c->n && !known; k++)
				known = strcmp(c->boxes[k].name, prefix) == 0;
			for (size_t k = 0; k < n_seen && !known; k++)
				known = strcmp(seen[k], prefix) == 0;
			if (known || !imap_list_matches(c, prefix))
				continue;
			seen = xrealloc(seen, (n_seen + 1) * sizeof(*seen));
			seen[n_seen++] = xstrdup(prefix);
			imap_list_line(s, c, NULL, prefix);
		}
	}
	for (size_t k = 0; k < n_seen; k++)
		free(seen[k]);
	free(seen);
}

static int imap_list_return(struct imap_list_ctx *c, const struct imap_arg *ret)
{
	if (ret->type != IMAP_ARG_LIST)
		return -1;
	c->opts |= IMAP_LIST_EXTENDED;
	for (size_t i = 0; i < ret->n; i++) {
		const struct imap_arg *a = &ret->list[i];
		if (imap_arg_atom_equals(a, "SUBSCRIBED"))
			c->opts |= IMAP_LIST_RET_SUBSCRIBED;
		else if (imap_arg_atom_equals(a, "CHILDREN"))
			c->opts |= IMAP_LIST_RET_CHILDREN;
		else if (imap_arg_atom_equals(a, "SPECIAL-USE"))
			c->opts |= IMAP_LIST_RET_SPECIAL_USE;
		else if (imap_arg_atom_equals(a, "STATUS") && i + 1 < ret->n &&
			 imap_status_items(&ret->list[i + 1], &c->status_items) == 0) {
			c->opts |= IMAP_LIST_RET_STATUS;
			i++;
		} else
			return -1;
	}
	return 0;
}

static int imap_list_selection(struct imap_list_ctx *c, const struct imap_arg *sel)
{
	c->opts |= IMAP_LIST_EXTENDED;
	for (size_t i = 0; i < sel->n; i++) {
		const struct imap_arg *a = &sel->list[i];
		if (imap_arg_atom_equals(a, "SUBSCRIBED"))
			c->opts |= IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_RET_SUBSCRIBED;
		else if (imap_arg_atom_equals(a, "SPECIAL-USE"))
			c->opts |= IMAP_LIST_SEL_SPECIAL_USE;
		else if (!imap_arg_atom_equals(a, "RECURSIVEMATCH") &&
			 !imap_arg_atom_equals(a, "REMOTE"))
			return -1;
	}
	return 0;
}

static int imap_list_args(struct imap_list_ctx *c, const struct imap_arg *args)
{
	const char *ref;
	size_t len;

	if (args[0].type == IMAP_ARG_LIST) {
		if (imap_list_selection(c, &args[0]) < 0)
			return -1;
		args++;
	}
	if ((ref = imap_arg_string(&args[0], &len)) == NULL || len >= sizeof(c->reference))
		return -1;
	if (!c->mutf7 || memchr(ref, '&', len) == NULL ||
	    imap_mutf7_decode(ref, len, c->reference, sizeof(c->reference)) < 0)
		snprintf(c->reference, sizeof(c->reference), "%.*s", (int)len, ref);
	if (args[1].type == IMAP_ARG_LIST) {
		c->patterns = args[1].list;
		c->n_patterns = args[1].n;
	} else if (imap_arg_string(&args[1], &len) != NULL) {
		c->patterns = &args[1];
		c->n_patterns = 1;
	} else {
		return -1;
	}
	if (args[2].type == IMAP_ARG_EOL)
		return 0;
	if (!imap_arg_atom_equals(&args[2], "RETURN") || imap_list_return(c, &args[3]) < 0 ||
	    args[4].type != IMAP_ARG_EOL)
		return -1;
	return 0;
}

static void imap_list(struct imap_session *s, const struct imap_arg *args, bool lsub)
{
	struct imap_list_ctx c = { .opts = lsub ? IMAP_LIST_LSUB : 0, .mutf7 = !s->rev2,
				    .rev2 = s->rev2 };
	size_t len;

	if (imap_list_args(&c, args) < 0 || (lsub && (c.opts & IMAP_LIST_EXTENDED))) {
		imap_bad(s, "Invalid %s arguments", lsub ? "LSUB" : "LIST");
		return;
	}
	if (lsub)
		c.opts |= IMAP_LIST_SEL_SUBSCRIBED;
	if (c.n_patterns == 1 && imap_arg_string(&c.patterns[0], &len) != NULL && len == 0 &&
	    !(c.opts & IMAP_LIST_EXTENDED)) {
		/* LIST "" "": the hierarchy delimiter and root. */
		imap_printf(s, "* %s (\\Noselect) \"/\" \"\"\r\n", lsub ? "LSUB" : "LIST");
		imap_ok(s, "%s completed", lsub ? "LSUB" : "LIST");
		return;
	}
	if (store_mailbox_list(s->reader, s->user_id, &c.boxes, &c.n) < 0) {
		imap_no(s, "[UNAVAILABLE] LIST failed, try again later");
		return;
	}
	for (size_t i = 0; i < c.n; i++)
		if (imap_list_selected(&c, &c.boxes[i]))
			imap_list_line(s, &c, &c.boxes[i], c.boxes[i].name);
	if (!(c.opts & (IMAP_LIST_SEL_SUBSCRIBED | IMAP_LIST_SEL_SPECIAL_USE)))
		imap_list_missing_parents(s, &c);
	free(c.boxes);
	imap_ok(s, "%s completed", lsub ? "LSUB" : "LIST");
}

void imap_cmd_list(struct imap_session *s, const struct imap_arg *args)
{
	imap_list(s, args, false);
}

void imap_cmd_lsub(struct imap_session *s, const struct imap_arg *args)
{
	imap_list(s, args, true);
}
