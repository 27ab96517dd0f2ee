/* The TRANSACTION state: STAT LIST UIDL RETR TOP DELE RSET NOOP QUIT. */
#include "pop3/pop3_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

#define POP3_STREAM_CHUNK 16384

/* The message a number names, or NULL (with the -ERR sent). */
static struct pop3_msg *pop3_msg(struct pop3_session *s, unsigned long n)
{
	if (n == 0 || n > s->n_msgs) {
		pop3_err(s, "No such message");
		return NULL;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_err(s, "Message %lu already deleted", n);
		return NULL;
	}
	return &s->msgs[n - 1];
}

static void pop3_cmd_stat(struct pop3_session *s)
{
	uint64_t size = 0;
	size_t n = 0;

	for (size_t i = 0; i < s->n_msgs; i++) {
		if (!s->msgs[i].deleted) {
			n++;
			size += s->msgs[i].size;
		}
	}
	pop3_ok(s, "%zu %llu", n, (unsigned long long)size);
}

/* UIDL values: stable across sessions (the INBOX's uidvalidity and the
 * message's uid), untouched by flag changes or moves of other messages. */
static void pop3_uidl_value(const struct pop3_session *s, const struct pop3_msg *m, char *buf,
			    size_t size)
{
	snprintf(buf, size, "%08x%08x", s->uidvalidity, m->uid);
}

static void pop3_cmd_list(struct pop3_session *s, const struct pop3_command *cmd, bool uidl)
{
	char uid[24];
	struct pop3_msg *m;

	if (cmd->argc == 1) {
		if ((m = pop3_msg(s, cmd->num[0])) == NULL)
			return;
		pop3_uidl_value(s, m, uid, sizeof(uid));
		if (uidl)
			pop3_ok(s, "%lu %s", cmd->num[0], uid);
		else
			pop3_ok(s, "%lu %llu", cmd->num[0], (unsigned long long)m->size);
		return;
	}
	conn_printf(s->conn, "+OK %s\r\n", uidl ? "Unique-ID listing follows" : "Scan listing follows");
	for (size_t i = 0; i < s->n_msgs; i++) {
		if (s->msgs[i].deleted)
			continue;
		pop3_uidl_value(s, &s->msgs[i], uid, sizeof(uid));
		if (uidl)
			conn_printf(s->conn, "%zu %s\r\n", i + 1, uid);
		else
			conn_printf(s->conn, "%zu %llu\r\n", i + 1,
				    (unsigned long long)s->msgs[i].size);
	}
	conn_printf(s->conn, ".\r\n");
}

static void pop3_flags_done(const struct store_reply *reply, void *ctx)
{
	if (reply->status < 0)
		log_error("pop3", "event=seen_failed error=\"%s\"", reply->error);
}

/* RETR marks the message \Seen (pop3.retr_marks_seen), as read by any
 * client; the answer does not wait for it. */
static void pop3_mark_seen(struct pop3_session *s, const struct pop3_msg *m)
{
	struct store_flags_change c = { .mailbox_id = s->mailbox_id, .uids = &m->uid,
					.n_uids = 1, .mode = STORE_FLAGS_ADD,
					.flags = STORE_FLAG_SEEN };

	if (settings_get_bool("pop3.retr_marks_seen"))
		store_flags_set(s->env->store, &c, s->loop, pop3_flags_done, NULL);
}

static void pop3_cmd_retr(struct pop3_session *s, const struct pop3_command *cmd, bool top)
{
	struct pop3_msg *m = pop3_msg(s, cmd->num[0]);
	const char *error;
	uint64_t size;

	if (m == NULL)
		return;
	if (store_blob_stream_open(s->reader, m->blob_id, &s->stream.blob, &size, &error) < 0) {
		log_error("pop3", "s=%s event=read_failed uid=%u error=\"%s\"", s->id, m->uid, error);
		pop3_err(s, "[SYS/TEMP] Cannot read message %lu", cmd->num[0]);
		return;
	}
	s->stream.at_line_start = true;
	s->stream.pending_cr = false;
	s->stream.in_body = false;
	s->stream.line_len = 0;
	s->stream.body_lines_left = top ? (long)cmd->num[1] : -1;
	trace_event_message_id(s->reader, m->blob_id,
			       pop3_trace(s, "fetched", "%s %lu uid=%u size=%llu",
					  top ? "TOP" : "RETR", cmd->num[0], m->uid,
					  (unsigned long long)m->size));
	if (!top)
		pop3_mark_seen(s, m);
	pop3_ok(s, "%llu octets", (unsigned long long)m->size);
	pop3_enter_state(s, POP3_STATE_STREAM);
	pop3_stream_pump(s);
}

static void pop3_cmd_dele(struct pop3_session *s, const struct pop3_command *cmd)
{
	struct pop3_msg *m = pop3_msg(s, cmd->num[0]);

	if (m == NULL)
		return;
	m->deleted = true;
	pop3_ok(s, "Message %lu marked for deletion", cmd->num[0]);
}

static void pop3_cmd_rset(struct pop3_session *s)
{
	for (size_t i = 0; i < s->n_msgs; i++)
		s->msgs[i].deleted = false;
	pop3_ok(s, "Maildrop has %zu messages", s->n_msgs);
}

static void pop3_expunged(const struct store_reply *reply, void *ctx)
{
	struct pop3_session *s = ctx;

	if (!pop3_unref(s))
		return;
	if (reply->status < 0) {
		log_error("pop3", "s=%s event=expunge_failed error=\"%s\"", s->id, reply->error);
		pop3_err(s, "[SYS/TEMP] Messages not deleted, try again later");
	} else {
		log_info("pop3", "s=%s event=expunged user=%s count=%zu", s->id, s->account,
			 reply->n_delivered);
		pop3_ok(s, "Bye, %zu messages deleted", reply->n_delivered);
	}
	pop3_close(s);
}

/* QUIT in TRANSACTION: the UPDATE state.  Marked messages are expunged in
 * one write; a dropped connection never gets here, so it deletes nothing. */
static void pop3_cmd_quit(struct pop3_session *s)
{
	uint32_t *uids = xcalloc(s->n_msgs, sizeof(*uids));
	struct store_trace_event *events;
	size_t n = 0;

	for (size_t i = 0; i < s->n_msgs; i++) {
		if (!s->msgs[i].deleted)
			continue;
		uids[n++] = s->msgs[i].uid;
		trace_event_message_id(s->reader, s->msgs[i].blob_id,
				       pop3_trace(s, "deleted", "DELE %zu uid=%u", i + 1,
						  s->msgs[i].uid));
	}
	if (n == 0) {
		free(uids);
		pop3_ok(s, "Bye");
		pop3_close(s);
		return;
	}
	events = s->events;
	pop3_enter_state(s, POP3_STATE_WAIT);
	pop3_ref(s);
	store_expunge(s->env->store, s->mailbox_id, uids, n, events, s->n_events, s->loop,
		      pop3_expunged, s);
	s->n_events = 0;
	free(uids);
}

void pop3_transaction(struct pop3_session *s, const struct pop3_command *cmd)
{
	switch (cmd->verb) {
	case POP3_VERB_STAT: pop3_cmd_stat(s); break;
	case POP3_VERB_LIST: pop3_cmd_list(s, cmd, false); break;
	case POP3_VERB_UIDL: pop3_cmd_list(s, cmd, true); break;
	case POP3_VERB_RETR: pop3_cmd_retr(s, cmd, false); break;
	case POP3_VERB_TOP: pop3_cmd_retr(s, cmd, true); break;
	case POP3_VERB_DELE: pop3_cmd_dele(s, cmd); break;
	case POP3_VERB_RSET: pop3_cmd_rset(s); break;
	case POP3_VERB_NOOP: pop3_ok(s, "Ok"); break;
	case POP3_VERB_QUIT: pop3_cmd_quit(s); break;
	case POP3_VERB_CAPA:
		conn_printf(s->conn, "+OK Capability list follows\r\nTOP\r\nUIDL\r\n"
				     "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
				     "IMPLEMENTATION Keel\r\n.\r\n");
		break;
	default: pop3_err(s, "Already logged in"); break;
	}
}

/* ---- RETR and TOP, piece by piece ---------------------------------------- */

/* A line ended: what comes next may be the body, or the end of TOP. */
static bool pop3_stream_line_end(struct pop3_stream *st)
{
	if (!st->in_body) {
		if (st->line_len == 0)
			st->in_body = true;
	} else if (st->body_lines_left > 0) {
		st->body_lines_left--;
	}
	st->at_line_start = true;
	st->line_len = 0;
	return st->in_body && st->body_lines_left == 0;
}

/* Dot-stuffs in into out (room for 2 * len + 2) and gives every line a
 * CRLF; returns false when TOP has sent all it should. */
static bool pop3_stream_transform(struct pop3_stream *st, const char *in, size_t len, char *out,
				  size_t *out_len)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (st->pending_cr) {
			st->pending_cr = false;
			out[o++] = '\r';
			out[o++] = '\n';
			if (pop3_stream_line_end(st)) {
				*out_len = o;
				return false;
			}
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			st->pending_cr = true;
			continue;
		}
		if (c == '\n') { /* a bare LF: still a line end on the wire */
			out[o++] = '\r';
			out[o++] = '\n';
			if (pop3_stream_line_end(st)) {
				*out_len = o;
				return false;
			}
			continue;
		}
		if (st->at_line_start && c == '.')
			out[o++] = '.';
		st->at_line_start = false;
		st->line_len++;
		out[o++] = c;
	}
	*out_len = o;
	return true;
}

void pop3_stream_end(struct pop3_session *s)
{
	struct pop3_stream *st = &s->stream;

	if (st->pending_cr || !st->at_line_start)
		conn_printf(s->conn, "\r\n");
	conn_printf(s->conn, ".\r\n");
	store_blob_stream_close(&st->blob);
	pop3_enter_state(s, POP3_STATE_TRANSACTION);
}

void pop3_stream_pump(struct pop3_session *s)
{
	struct pop3_stream *st = &s->stream;
	char in[POP3_STREAM_CHUNK], out[2 * POP3_STREAM_CHUNK + 2];
	const char *error;
	size_t out_len;
	long n;

	while (conn_output_pending(s->conn) < CONN_WRITE_LOW) {
		n = store_blob_stream_read(st->blob, in, sizeof(in), &error);
		if (n < 0) {
			/* Half an answer was sent: the only honest end is to close. */
			log_error("pop3", "s=%s event=read_failed error=\"%s\"", s->id, error);
			store_blob_stream_close(&st->blob);
			pop3_close(s);
			return;
		}
		if (n == 0 || !pop3_stream_transform(st, in, (size_t)n, out, &out_len)) {
			if (n > 0)
				conn_write(s->conn, out, out_len);
			pop3_stream_end(s);
			pop3_resume(s);
			return;
		}
		conn_write(s->conn, out, out_len);
	}
}
