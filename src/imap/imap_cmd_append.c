/* APPEND (RFC 3501 6.3.11, UIDPLUS APPENDUID).  The message literal is not
 * kept by the parser: it streams into one buffer of the announced size,
 * which the parser has already bounded by smtp.max_message_size (a bigger
 * one gets NO [TOOBIG] before any octet is sent).  The message goes to the
 * store like a local delivery to one recipient: the user's quota applies. */
#include "imap/imap_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"

struct imap_append {
	char *data;
	size_t size, len;
	uint32_t uidvalidity;
	char keywords[512];
	uint32_t uid;
};

void imap_append_free(struct imap_append **ap)
{
	struct imap_append *a = *ap;

	if (a == NULL)
		return;
	*ap = NULL;
	free(a->data);
	free(a);
}

/* APPEND's last argument is the message: stream it.  A literal at index 0
 * is the mailbox name, and a short one may be the date-time: those stay
 * buffered (a short message is buffered too, which works the same). */
enum imap_literal_mode imap_append_literal_begin(const struct imap_command *cmd,
						 const struct imap_literal_info *info, void *ctx)
{
	struct imap_session *s = ctx;

	/* Before login nothing is streamed: the literal is buffered and so
	 * bounded by the parser's command size, and APPEND is refused anyway. */
	if (cmd->name == NULL || strcmp(cmd->name, "APPEND") != 0 || info->depth != 0 ||
	    info->index == 0 || info->size < 64 || s->state == IMAP_STATE_NOT_AUTH ||
	    s->state == IMAP_STATE_LOGOUT)
		return IMAP_LITERAL_BUFFER;
	imap_append_free(&s->append);
	s->append = xcalloc(1, sizeof(*s->append));
	s->append->size = (size_t)info->size;
	s->append->data = xmalloc(s->append->size + 1);
	return IMAP_LITERAL_STREAM;
}

int imap_append_literal_data(const unsigned char *data, size_t size, void *ctx)
{
	struct imap_session *s = ctx;
	struct imap_append *a = s->append;

	if (a == NULL || size > a->size - a->len)
		return -1;
	memcpy(a->data + a->len, data, size);
	a->len += size;
	return 0;
}

static void imap_append_answer(struct imap_session *s)
{
	struct imap_append *a = s->append;

	imap_ok(s, "[APPENDUID %u %u] APPEND completed", a->uidvalidity, a->uid);
	imap_append_free(&s->append);
}

static void imap_append_keywords_done(struct imap_session *s, const struct store_reply *reply)
{
	if (reply->status < 0)
		log_error("imap", "s=%s event=append_keywords_failed error=\"%s\"", s->id,
			  reply->error);
	imap_append_answer(s);
}

static void imap_append_done(struct imap_session *s, const struct store_reply *reply)
{
	struct imap_append *a = s->append;
	const struct store_delivered *d = reply->n_delivered > 0 ? &reply->delivered[0] : NULL;

	if (reply->status < 0 || d == NULL || d->status < 0) {
		struct store_reply r = *reply;
		if (d != NULL && reply->status == 0) {
			r.status = -1;
			r.err = d->err;
			r.error = "delivery refused";
		}
		imap_append_free(&s->append);
		imap_no_store(s, &r, "APPEND");
		return;
	}
	a->uid = d->uid;
	s->view.changed = true;
	if (a->keywords[0] == '\0') {
		imap_append_answer(s);
		return;
	}
	struct store_flags_change c = { .mailbox_id = d->mailbox_id, .uids = &a->uid, .n_uids = 1,
					.mode = STORE_FLAGS_ADD, .keywords = a->keywords };
	store_flags_set(s->env->store, &c, s->loop, imap_call_done,
			imap_call(s, imap_append_keywords_done));
}

static void imap_append_fail(struct imap_session *s, bool bad, const char *text)
{
	imap_append_free(&s->append);
	if (bad)
		imap_bad(s, "%s", text);
	else
		imap_no(s, "%s", text);
}

/* The message is parsed here, on the session's loop, so that FETCH never
 * has to and the committer never does. */
static void imap_append_submit(struct imap_session *s, const struct store_mailbox *m,
			       uint32_t flags, time_t date)
{
	struct store_rcpt rcpt = { .user_id = s->user_id, .mailbox_id = m->id, .flags = flags };
	struct store_structure structure;

	/* The event goes with the delivery: add it before taking s->events. */
	imap_trace(s, "appended", "mailbox=%s size=%zu", m->name, s->append->len);
	store_structure_compute(&structure, s->append->data, s->append->len);
	struct store_delivery d = { .data = s->append->data, .size = s->append->len,
				    .internaldate = date, .rcpts = &rcpt, .n_rcpts = 1,
				    .events = s->events, .n_events = s->n_events,
				    .structure = &structure };
	store_deliver(s->env->store, &d, s->loop, imap_call_done, imap_call(s, imap_append_done));
	store_structure_deinit(&structure);
	imap_trace_taken(s);
}

void imap_cmd_append(struct imap_session *s, const struct imap_arg *args)
{
	char name[STORE_MAILBOX_MAX + 1];
	struct store_mailbox m;
	const struct imap_arg *a = &args[1], *msg;
	uint32_t flags = 0;
	time_t date = 0;
	const char *error;
	char kw[512] = "";

	if (imap_mailbox_name(&args[0], name, sizeof(name)) < 0) {
		imap_append_fail(s, true, "APPEND needs a valid mailbox name");
		return;
	}
	if (a->type == IMAP_ARG_LIST) {
		if (imap_flags_parse(a, &flags, kw, sizeof(kw), &error) < 0) {
			imap_append_fail(s, true, error);
			return;
		}
		a++;
	}
	if (a->type == IMAP_ARG_STRING || (a->type == IMAP_ARG_LITERAL && a[1].type != IMAP_ARG_EOL)) {
		if (a->str == NULL || imap_date_time_parse(a->str, &date) < 0) {
			imap_append_fail(s, true, "Invalid date-time");
			return;
		}
		a++;
	}
	msg = a;
	if (msg->type != IMAP_ARG_LITERAL || msg[1].type != IMAP_ARG_EOL) {
		imap_append_fail(s, true, "APPEND needs a message literal (MULTIAPPEND is not supported)");
		return;
	}
	if (msg->flags & IMAP_ARG_FLAG_BINARY) {
		imap_append_fail(s, true, "literal8 needs BINARY, which is not supported");
		return;
	}
	if (msg->flags & IMAP_ARG_FLAG_STREAM_ERR) {
		imap_append_fail(s, false, "[TOOBIG] Message too big");
		return;
	}
	if (store_mailbox_get(s->reader, s->user_id, name, &m) < 0) {
		imap_append_fail(s, false, "[TRYCREATE] Mailbox does not exist");
		return;
	}
	if (msg->str != NULL) { /* buffered: a short message */
		imap_append_free(&s->append);
		s->append = xcalloc(1, sizeof(*s->append));
		s->append->data = xmalloc(msg->len + 1);
		s->append->len = s->append->size = msg->len;
		memcpy(s->append->data, msg->str, msg->len);
	}
	if (s->append == NULL || s->append->len != s->append->size || s->append->len == 0) {
		imap_append_fail(s, false, "[CANNOT] Empty or incomplete message");
		return;
	}
	s->append->uidvalidity = m.uidvalidity;
	snprintf(s->append->keywords, sizeof(s->append->keywords), "%s", kw);
	imap_append_submit(s, &m, flags, date);
}
