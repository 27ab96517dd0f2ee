/* APPEND (RFC 3501 6.3.11, RFC 9051 6.3.12) with MULTIAPPEND (RFC 3502),
 * UIDPLUS APPENDUID and BINARY's literal8 (RFC 3516 4.4).  A message
 * literal is not kept by the parser: it streams into one buffer of the
 * announced size, which the parser has already bounded by
 * smtp.max_message_size (a bigger one gets NO [TOOBIG] before any octet is
 * sent).  The messages of one APPEND together are bounded by
 * IMAP_APPEND_MAX_MESSAGES and IMAP_APPEND_MAX_FACTOR times that size.
 * They go to the store like local deliveries to one recipient, all in one
 * store_deliver_all(): all or none are stored, and the user's quota counts
 * them together. */
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

#define IMAP_APPEND_MAX_MESSAGES 1000
#define IMAP_APPEND_MAX_FACTOR 4
#define IMAP_APPEND_KEYWORDS 512

/* A streamed message literal. */
struct imap_append_part {
	char *data; /* NULL: refused (over the APPEND's total) */
	size_t size, len;
};

/* One message of the command, once parsed. */
struct imap_append_msg {
	const char *data; /* valid while the command is read */
	size_t len;
	uint32_t flags;
	time_t date;
	char keywords[IMAP_APPEND_KEYWORDS];
};

struct imap_append {
	struct imap_append_part *parts;
	size_t n_parts;
	uint64_t total;
	struct imap_append_msg *msgs;
	size_t n_msgs;
	uint32_t uidvalidity;
	int64_t mailbox_id;
	uint32_t *uids;
	size_t n_uids;
};

void imap_append_free(struct imap_append **ap)
{
	struct imap_append *a = *ap;

	if (a == NULL)
		return;
	*ap = NULL;
	for (size_t i = 0; i < a->n_parts; i++)
		free(a->parts[i].data);
	free(a->parts);
	free(a->msgs);
	free(a->uids);
	free(a);
}

/* Streamed literals of APPEND before index: those of earlier messages. */
static size_t imap_append_streamed_before(const struct imap_command *cmd, size_t index)
{
	size_t n = 0;

	for (size_t i = 0; i < index && i < cmd->n_args; i++)
		n += (cmd->args[i].flags & IMAP_ARG_FLAG_STREAMED) != 0;
	return n;
}

/* APPEND's message literals are streamed.  A literal at index 0 is the
 * mailbox name, and a short one may be the date-time: those stay buffered
 * (a short message is buffered too, which works the same). */
enum imap_literal_mode imap_append_literal_begin(const struct imap_command *cmd,
						 const struct imap_literal_info *info, void *ctx)
{
	struct imap_session *s = ctx;
	struct imap_append *a;
	uint64_t max_total;

	/* Before login nothing is streamed: the literal is buffered and so
	 * bounded by the parser's command size, and APPEND is refused anyway. */
	if (cmd->name == NULL || strcmp(cmd->name, "APPEND") != 0 || info->depth != 0 ||
	    info->index == 0 || info->size < 64 || s->state == IMAP_STATE_NOT_AUTH ||
	    s->state == IMAP_STATE_LOGOUT)
		return IMAP_LITERAL_BUFFER;
	if (imap_append_streamed_before(cmd, info->index) == 0 || s->append == NULL) {
		imap_append_free(&s->append);
		s->append = xcalloc(1, sizeof(*s->append));
	}
	a = s->append;
	a->parts = xrealloc(a->parts, (a->n_parts + 1) * sizeof(*a->parts));
	memset(&a->parts[a->n_parts], 0, sizeof(*a->parts));
	max_total = (uint64_t)settings_get_int("smtp.max_message_size") * IMAP_APPEND_MAX_FACTOR;
	a->parts[a->n_parts].size = (size_t)info->size;
	/* Over the total, the literal is still read (the client sends it) but
	 * not kept: literal_data refuses it and the command gets [TOOBIG]. */
	if (a->total + info->size <= max_total && a->n_parts < IMAP_APPEND_MAX_MESSAGES) {
		a->parts[a->n_parts].data = xmalloc((size_t)info->size + 1);
		a->total += info->size;
	}
	a->n_parts++;
	return IMAP_LITERAL_STREAM;
}

int imap_append_literal_data(const unsigned char *data, size_t size, void *ctx)
{
	struct imap_session *s = ctx;
	struct imap_append_part *p;

	if (s->append == NULL || s->append->n_parts == 0)
		return -1;
	p = &s->append->parts[s->append->n_parts - 1];
	if (p->data == NULL || size > p->size - p->len)
		return -1;
	memcpy(p->data + p->len, data, size);
	p->len += size;
	return 0;
}

/* ---- after the store ------------------------------------------------------ */

static void imap_append_answer(struct imap_session *s)
{
	struct imap_append *a = s->append;
	char *set = imap_uidset_format(a->uids, a->n_uids);

	imap_ok(s, "[APPENDUID %u %s] APPEND completed", a->uidvalidity, set);
	free(set);
	imap_append_free(&s->append);
}

static void imap_append_done(struct imap_session *s, const struct store_reply *reply)
{
	struct imap_append *a = s->append;

	if (reply->status < 0 || reply->n_delivered != a->n_msgs) {
		struct store_reply r = *reply;
		if (reply->status == 0) {
			/* The message's own refusal (over quota, ...) when one says. */
			r.status = -1;
			r.err = STORE_ERR_IO;
			r.error = "delivery refused";
			for (size_t i = 0; i < reply->n_delivered; i++) {
				if (reply->delivered[i].status < 0) {
					r.err = reply->delivered[i].err;
					break;
				}
			}
		}
		imap_append_free(&s->append);
		imap_no_store(s, &r, "APPEND");
		return;
	}
	a->uids = xcalloc(a->n_msgs, sizeof(*a->uids));
	for (size_t i = 0; i < a->n_msgs; i++)
		a->uids[i] = reply->delivered[i].uid;
	a->n_uids = a->n_msgs;
	a->mailbox_id = reply->delivered[0].mailbox_id;
	s->view.changed = true;
	imap_append_answer(s);
}

static void imap_append_fail(struct imap_session *s, bool bad, const char *text)
{
	imap_append_free(&s->append);
	if (bad)
		imap_bad(s, "%s", text);
	else
		imap_no(s, "%s", text);
}

/* The messages are parsed here, on the session's loop, so that FETCH never
 * has to and the committer never does. */
static void imap_append_submit(struct imap_session *s, const struct store_mailbox *m)
{
	struct imap_append *a = s->append;
	struct store_rcpt *rcpts = xcalloc(a->n_msgs, sizeof(*rcpts));
	struct store_structure *st = xcalloc(a->n_msgs, sizeof(*st));
	struct store_delivery *d = xcalloc(a->n_msgs, sizeof(*d));

	for (size_t i = 0; i < a->n_msgs; i++) {
		const struct imap_append_msg *msg = &a->msgs[i];

		rcpts[i] = (struct store_rcpt){ .user_id = s->user_id, .mailbox_id = m->id,
						.flags = msg->flags };
		imap_trace(s, "appended", "mailbox=%s size=%zu", m->name, msg->len);
		store_structure_compute(&st[i], msg->data, msg->len);
		d[i] = (struct store_delivery){ .data = msg->data, .size = msg->len,
						.internaldate = msg->date, .rcpts = &rcpts[i],
						.n_rcpts = 1, .structure = &st[i],
						.keywords = msg->keywords };
	}
	/* The events go with the first message, in the same transaction. */
	d[0].events = s->events;
	d[0].n_events = s->n_events;
	store_deliver_all(s->env->store, d, a->n_msgs, s->loop, imap_call_done,
			  imap_call(s, imap_append_done));
	imap_trace_taken(s);
	for (size_t i = 0; i < a->n_msgs; i++)
		store_structure_deinit(&st[i]);
	free(st);
	free(rcpts);
	free(d);
}

/* ---- reading the command ---------------------------------------------------- */

/* A date-time given as a literal is one that is followed by the message's
 * literal and reads as a date-time; anything else is a message.  1: a
 * date-time in *date_r, 0: none here, -1: a quoted string that is not one. */
static int imap_append_date(const struct imap_arg *a, time_t *date_r)
{
	if (a->type == IMAP_ARG_STRING)
		return imap_date_time_parse(a->str, date_r) == 0 ? 1 : -1;
	if (a->type == IMAP_ARG_LITERAL && a[1].type == IMAP_ARG_LITERAL && a->str != NULL &&
	    a->len == strlen(a->str) && imap_date_time_parse(a->str, date_r) == 0)
		return 1;
	return 0;
}

/* One message: [flags] [date-time] literal.  Returns the argument after
 * it, or NULL with *error_r (*bad_r: BAD rather than NO). */
static const struct imap_arg *imap_append_msg_parse(struct imap_session *s,
						    const struct imap_arg *a,
						    struct imap_append_msg *msg, size_t *part,
						    const char **error_r, bool *bad_r)
{
	struct imap_append *ap = s->append;

	*bad_r = true;
	memset(msg, 0, sizeof(*msg));
	if (a->type == IMAP_ARG_LIST) {
		if (imap_flags_parse(a, &msg->flags, msg->keywords, sizeof(msg->keywords),
				     error_r) < 0)
			return NULL;
		a++;
	}
	switch (imap_append_date(a, &msg->date)) {
	case -1: *error_r = "Invalid date-time"; return NULL;
	case 1: a++; break;
	default: break;
	}
	if (a->type != IMAP_ARG_LITERAL) {
		*error_r = "APPEND needs a message literal";
		return NULL;
	}
	*bad_r = false;
	if (a->flags & IMAP_ARG_FLAG_STREAM_ERR) {
		*error_r = "[TOOBIG] Message too big";
		return NULL;
	}
	if (a->flags & IMAP_ARG_FLAG_STREAMED) {
		if (ap == NULL || *part >= ap->n_parts || ap->parts[*part].len != a->len) {
			*error_r = "[CANNOT] Incomplete message";
			return NULL;
		}
		msg->data = ap->parts[(*part)++].data;
	} else {
		msg->data = a->str; /* the store copies it before the parser moves on */
	}
	msg->len = a->len;
	if (msg->len == 0) {
		*error_r = "[CANNOT] Empty message";
		return NULL;
	}
	return a + 1;
}

void imap_cmd_append(struct imap_session *s, const struct imap_arg *args)
{
	char name[STORE_MAILBOX_MAX + 1];
	struct store_mailbox m;
	const struct imap_arg *a = &args[1];
	struct imap_append_msg *msgs = NULL;
	size_t n = 0, part = 0;
	const char *error;
	bool bad;

	if (imap_mailbox_name(s, &args[0], name, sizeof(name)) < 0) {
		imap_append_fail(s, true, "APPEND needs a valid mailbox name");
		return;
	}
	/* Streamed parts left by a command the parser refused are stale. */
	if (imap_append_streamed_before(imap_parser_command(s->parser), SIZE_MAX) == 0)
		imap_append_free(&s->append);
	if (s->append == NULL)
		s->append = xcalloc(1, sizeof(*s->append));
	do {
		msgs = xrealloc(msgs, (n + 1) * sizeof(*msgs));
		if (n == IMAP_APPEND_MAX_MESSAGES) {
			error = "[LIMIT] Too many messages in one APPEND";
			bad = false;
			a = NULL;
		} else {
			a = imap_append_msg_parse(s, a, &msgs[n], &part, &error, &bad);
		}
		if (a == NULL) {
			free(msgs);
			imap_append_fail(s, bad, error);
			return;
		}
		n++;
	} while (a->type != IMAP_ARG_EOL);
	s->append->msgs = msgs;
	s->append->n_msgs = n;
	if (store_mailbox_get(s->reader, s->user_id, name, &m) < 0) {
		imap_append_fail(s, false, "[TRYCREATE] Mailbox does not exist");
		return;
	}
	s->append->uidvalidity = m.uidvalidity;
	imap_append_submit(s, &m);
}
