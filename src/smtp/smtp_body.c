/* DATA and BDAT (RFC 3030): the message is read into memory (within
 * smtp.max_message_size: past it nothing more is kept), checked (bare
 * CR/LF, line length, hop count), given our Received header and handed to
 * the pipeline.  The 250 goes out only when the pipeline says the message
 * is durable. */
#include "smtp/smtp_private.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/header.h"
#include "mail/maildate.h"
#include "proto/smtp_data.h"
#include "settings/settings.h"

void smtp_body_free(struct smtp_session *s)
{
	smtp_data_free(&s->reader_data);
	free(s->body);
	s->body = NULL;
	s->body_len = s->body_alloc = 0;
	s->bdat_used = s->bdat_last = s->bdat_refused = s->bdat_too_big = false;
	s->bdat_left = 0;
}

static int smtp_body_append(struct smtp_session *s, const void *data, size_t size)
{
	if (s->body_len + size > s->body_alloc) {
		size_t want = s->body_alloc ? s->body_alloc : 16384;
		while (want < s->body_len + size)
			want *= 2;
		s->body = xrealloc(s->body, want);
		s->body_alloc = want;
	}
	memcpy(s->body + s->body_len, data, size);
	s->body_len += size;
	return 0;
}

static int smtp_body_sink(const unsigned char *data, size_t size, void *ctx)
{
	return smtp_body_append(ctx, data, size);
}

/* RFC 3848 protocol names for the Received header. */
static const char *smtp_with(const struct smtp_session *s)
{
	static const char *const names[2][2][2] = {
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!s->esmtp)
		return conn_is_tls(s->conn) ? "SMTPS" : "SMTP";
	return names[s->mail.smtputf8][conn_is_tls(s->conn)][s->authenticated];
}

/* Our trace header (RFC 5321 4.4), on top of the message. */
static char *smtp_received(struct smtp_session *s, size_t *len_r)
{
	char date[64], tls[256] = "", forpart[STORE_ADDR_MAX + 16] = "";

	mail_date_format(time(NULL), date, sizeof(date));
	if (conn_is_tls(s->conn))
		snprintf(tls, sizeof(tls), "\r\n\t(using %s with cipher %s)",
			 conn_tls_version(s->conn), conn_tls_cipher(s->conn));
	if (s->n_rcpts == 1)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor <%s>", s->rcpts[0].address);
	char *h = xasprintf("Received: from %s ([%s])\r\n\tby %s (Keel) with %s id %s%s%s;"
			    "\r\n\t%s\r\n",
			    s->helo[0] != '\0' ? s->helo : "unknown", s->peer_ip, s->hostname,
			    smtp_with(s), s->queue_id, tls, forpart, date);
	*len_r = strlen(h);
	return h;
}

static void smtp_delivered(const struct pipeline_result *result, void *ctx)
{
	struct smtp_session *s = ctx;

	if (!smtp_unref(s))
		return;
	if (result->status == 0) {
		log_info("smtp", "s=%s event=accepted queue=%s size=%zu delivered=%zu queued=%zu "
				 "failed=%zu",
			 s->id, s->queue_id, s->body_len, result->delivered, result->queued,
			 result->failed);
		smtp_access_accepted(s);
		smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", s->queue_id);
	} else {
		log_error("smtp", "s=%s event=store_failed queue=%s error=\"%s\"", s->id,
			  s->queue_id, result->error);
		smtp_trace(s, "rejected", NULL, "451 4.3.0 not stored: %s", result->error);
		smtp_error(s, 451, "4.3.0", "Error: message not stored; try again later");
	}
	smtp_transaction_reset(s);
	smtp_enter_state(s, SMTP_STATE_READY);
	smtp_resume(s);
}

/* The message is complete and clean: on to the pipeline. */
static void smtp_submit(struct smtp_session *s)
{
	struct pipeline_message m = { 0 };
	size_t rlen;
	char *received, *msg;

	mail_queue_id_generate(s->queue_id, sizeof(s->queue_id));
	received = smtp_access_headers(s, smtp_received(s, &rlen), &rlen);
	msg = xmalloc(rlen + s->body_len);
	memcpy(msg, received, rlen);
	memcpy(msg + rlen, s->body, s->body_len);
	free(received);
	snprintf(m.env.queue_id, sizeof(m.env.queue_id), "%s", s->queue_id);
	snprintf(m.env.sender, sizeof(m.env.sender), "%s", s->sender);
	header_message_id(s->body, s->body_len, m.env.message_id, sizeof(m.env.message_id));
	snprintf(m.env.envid, sizeof(m.env.envid), "%s", s->mail.envid);
	m.env.ret = s->mail.ret;
	m.env.body = s->mail.body;
	m.env.smtputf8 = s->mail.smtputf8;
	snprintf(m.env.auth_user, sizeof(m.env.auth_user), "%s", s->auth_user);
	snprintf(m.env.client_ip, sizeof(m.env.client_ip), "%s", s->peer_ip);
	smtp_trace(s, "accepted", NULL, "size=%zu rcpts=%zu message-id=%s", rlen + s->body_len,
		   s->n_rcpts, m.env.message_id);
	for (size_t i = 0; i < s->n_events; i++) {
		/* The whole session's events so far belong to this message. */
		snprintf(s->events[i].queue_id, sizeof(s->events[i].queue_id), "%s", s->queue_id);
		snprintf(s->events[i].message_id, sizeof(s->events[i].message_id), "%s",
			 m.env.message_id);
	}
	m.protocol = smtp_protocol_name(s);
	m.session = s->id;
	m.helo = s->helo;
	m.data = msg;
	m.size = rlen + s->body_len;
	m.rcpts = s->rcpts;
	m.n_rcpts = s->n_rcpts;
	m.targets = s->targets;
	m.n_targets = s->n_targets;
	m.events = s->events;
	m.n_events = s->n_events;
	smtp_enter_state(s, SMTP_STATE_WAIT);
	smtp_ref(s);
	pipeline_submit(s->env->pipeline, &m, s->loop, smtp_delivered, s);
	s->n_events = 0;
	free(msg);
}

/* One verdict after the end of the data: an error, or on to the pipeline. */
static void smtp_body_done(struct smtp_session *s, unsigned errors, unsigned received)
{
	const struct smtp_reply_code *r = smtp_data_error_reply(errors);
	unsigned max_hops = (unsigned)settings_get_int("smtp.max_hops");

	if (r != NULL && r->code == 552) {
		/* The size limit names itself (docs/abuse.md). */
		log_info("smtp", "s=%s event=rejected ip=%s limit=smtp.max_message_size max=%llu",
			 s->id, s->peer_ip, (unsigned long long)s->max_size);
		smtp_trace(s, "rejected", NULL, "%u %s %s (smtp.max_message_size=%llu)", r->code,
			   r->enhanced, r->text, (unsigned long long)s->max_size);
		smtp_error(s, r->code, r->enhanced, "%s (smtp.max_message_size=%llu)", r->text,
			   (unsigned long long)s->max_size);
	} else if (r != NULL) {
		smtp_trace(s, "rejected", NULL, "%u %s %s", r->code, r->enhanced, r->text);
		smtp_error(s, r->code, r->enhanced, "%s", r->text);
	} else if (received > max_hops) {
		log_info("smtp", "s=%s event=rejected ip=%s limit=smtp.max_hops max=%u received=%u",
			 s->id, s->peer_ip, max_hops, received);
		smtp_trace(s, "rejected", NULL, "554 5.4.6 %u Received headers (mail loop, "
						"smtp.max_hops=%u)", received, max_hops);
		smtp_error(s, 554, "5.4.6",
			   "Too many hops (%u Received headers, smtp.max_hops=%u): mail loop?",
			   received, max_hops);
	} else {
		smtp_submit(s);
		return;
	}
	smtp_transaction_reset(s);
	smtp_enter_state(s, SMTP_STATE_READY);
}

void smtp_cmd_data(struct smtp_session *s, const struct smtp_command *cmd)
{
	struct smtp_data_settings set = { 0 };
	char mode[32];

	if (s->bdat_used) {
		smtp_error(s, 503, "5.5.1", "Error: DATA after BDAT in one transaction");
		return;
	}
	if (s->mail.body == SMTP_BODY_BINARYMIME) {
		smtp_error(s, 503, "5.5.1", "Error: BODY=BINARYMIME needs BDAT, not DATA");
		return;
	}
	settings_get("smtp.bare_newline", mode, sizeof(mode));
	set.max_size = s->max_size;
	set.bare_mode = strcmp(mode, "normalize") == 0 ? SMTP_DATA_BARE_NORMALIZE
						       : SMTP_DATA_BARE_REJECT;
	set.sink = smtp_body_sink;
	set.context = s;
	s->reader_data = smtp_data_new(&set);
	smtp_enter_state(s, SMTP_STATE_DATA);
	smtp_reply(s, 354, "2.0.0", "End data with <CR><LF>.<CR><LF>");
}

/* DATA: feeds what is buffered to the reader; true when the message ended. */
static bool smtp_data_input(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	struct evbuffer_iovec v[8];
	int n = evbuffer_peek(in, -1, NULL, v, 8);
	size_t consumed, total = 0;

	for (int i = 0; i < n && i < 8; i++) {
		enum smtp_data_result r =
			smtp_data_feed(s->reader_data, v[i].iov_base, v[i].iov_len, &consumed);
		total += consumed;
		if (r == SMTP_DATA_DONE) {
			unsigned errors = smtp_data_errors(s->reader_data);
			unsigned received = smtp_data_received_count(s->reader_data);
			evbuffer_drain(in, total);
			smtp_data_free(&s->reader_data);
			smtp_body_done(s, errors, received);
			return true;
		}
	}
	evbuffer_drain(in, total);
	return evbuffer_get_length(in) > 0;
}

void smtp_cmd_bdat(struct smtp_session *s, const struct smtp_command *cmd)
{
	/* The chunk follows whatever the reply will be: read it in any case,
	 * keep it only in a good transaction (RFC 3030 2). */
	s->bdat_left = cmd->bdat_size;
	s->bdat_last = cmd->bdat_last;
	s->bdat_refused = s->state != SMTP_STATE_RCPT;
	s->bdat_prev = s->state;
	if (!s->bdat_refused)
		s->bdat_used = true;
	smtp_enter_state(s, SMTP_STATE_BDAT);
}

static void smtp_bdat_chunk_done(struct smtp_session *s)
{
	if (s->bdat_refused) {
		s->bdat_refused = false;
		smtp_enter_state(s, s->bdat_prev);
		smtp_error(s, 503, "5.5.1", "Error: need MAIL and RCPT before BDAT");
		return;
	}
	if (!s->bdat_last) {
		smtp_enter_state(s, SMTP_STATE_RCPT);
		smtp_reply(s, 250, "2.0.0", "%zu octets received", s->body_len);
		return;
	}
	smtp_body_done(s, s->bdat_too_big ? SMTP_DATA_ERROR_TOO_BIG : 0,
		       header_count(s->body, s->body_len, "Received"));
}

/* BDAT: takes up to bdat_left octets; true when the chunk is complete. */
static bool smtp_bdat_input(struct smtp_session *s)
{
	struct evbuffer *in = conn_input(s->conn);
	size_t avail = evbuffer_get_length(in);
	size_t take = s->bdat_left < avail ? (size_t)s->bdat_left : avail;

	if (take > 0) {
		if (!s->bdat_refused && !s->bdat_too_big &&
		    s->body_len + take <= s->max_size) {
			smtp_body_append(s, evbuffer_pullup(in, (ssize_t)take), take);
		} else if (!s->bdat_refused) {
			/* Past the limit: keep reading, keep nothing. */
			s->bdat_too_big = true;
		}
		evbuffer_drain(in, take);
		s->bdat_left -= take;
	}
	if (s->bdat_left > 0)
		return false;
	smtp_bdat_chunk_done(s);
	return true;
}

bool smtp_body_input(struct smtp_session *s)
{
	if (s->state == SMTP_STATE_DATA)
		return smtp_data_input(s);
	return smtp_bdat_input(s);
}
