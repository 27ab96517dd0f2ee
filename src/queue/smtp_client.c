#include "queue/smtp_client.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "proto/smtp_reply.h"

/* RFC 5321 4.5.3.2: greeting 5 min, MAIL/RCPT 5 min, DATA end 10 min.  The
 * connect itself gets less: a silent host should not hold the queue. */
#define CLIENT_TIMEOUT_CONNECT 30
#define CLIENT_TIMEOUT_COMMAND 300
#define CLIENT_TIMEOUT_DOT 600
#define CLIENT_CHUNK 16384

enum client_state {
	CS_CONNECTING,
	CS_GREETING,
	CS_EHLO,
	CS_HELO,
	CS_STARTTLS,
	CS_HANDSHAKE,
	CS_AUTH,
	CS_AUTH_LOGIN_USER,
	CS_AUTH_LOGIN_PASS,
	CS_RSET,
	CS_TXN,    /* replies to MAIL and RCPTs */
	CS_DATA,   /* waiting for 354 */
	CS_BODY,   /* streaming the message */
	CS_DOT,    /* waiting for the reply to the final dot */
	CS_QUIT,   /* QUIT sent: the session is over */
	CS_NEXT,   /* this host is given up: the next one on close */
};

static const char *const client_state_names[] = {
	"connect", "greeting", "EHLO", "HELO", "STARTTLS", "TLS handshake", "AUTH", "AUTH",
	"AUTH", "RSET", "MAIL/RCPT", "DATA", "sending the message", "end of data", "QUIT",
	"QUIT",
};

struct smtp_client {
	struct smtp_client_params p;
	struct smtp_client_msg *msgs;
	size_t n_msgs;
	smtp_client_done_cb *cb;
	void *ctx;
	struct event *finish;
	struct conn *conn;
	enum client_state state;
	struct smtp_reply_parser parser;
	struct smtp_ehlo ehlo;
	size_t host;          /* index of the host being tried */
	bool host_notls;      /* retrying this host in plaintext after a failed handshake */
	bool established;     /* this host took the session: errors now defer */
	size_t msg;           /* current message */
	size_t txn_sent;      /* MAIL + RCPTs written */
	size_t txn_replies;   /* their replies read */
	bool mail_ok;
	size_t accepted;      /* RCPTs of the current message accepted */
	struct store_blob_stream *stream;
	bool at_line_start;
	bool body_ended_lf;
	struct smtp_client_attempt *attempts;
	size_t n_attempts;
	char last_error[512];
};

static void client_next_message(struct smtp_client *c);
static void client_try_host(struct smtp_client *c);

static struct smtp_client_attempt *client_attempt(struct smtp_client *c)
{
	return c->n_attempts > 0 ? &c->attempts[c->n_attempts - 1] : NULL;
}

static const char *client_host_name(const struct smtp_client *c)
{
	return c->p.hosts[c->host].name;
}

static void client_enter(struct smtp_client *c, enum client_state state)
{
	log_debug("queue", "s=%s host=%s state=%s->%s", c->p.session, client_host_name(c),
		  client_state_names[c->state], client_state_names[state]);
	c->state = state;
}

static void client_send(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void client_send(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vprintf(c->conn, fmt, ap);
	va_end(ap);
}

/* The outcome of one recipient; the first decision stands. */
static void client_rcpt_set(struct smtp_client_rcpt *r, enum smtp_client_status status,
			    const char *reply, const char *dsn_status, bool remote)
{
	if (r->status != SMTP_CLIENT_PENDING)
		return;
	r->status = status;
	snprintf(r->reply, sizeof(r->reply), "%s", reply);
	snprintf(r->dsn_status, sizeof(r->dsn_status), "%s", dsn_status);
	r->remote_mta = remote;
}

/* From a server's reply: its enhanced code, else one derived from the
 * class (RFC 3463: X.0.0). */
static void client_rcpt_reply(struct smtp_client_rcpt *r, const struct smtp_reply *reply)
{
	char text[512], st[16];
	int cls = reply->code / 100;

	smtp_reply_format(reply, text, sizeof(text));
	if (reply->enhanced[0] != '\0')
		snprintf(st, sizeof(st), "%s", reply->enhanced);
	else
		snprintf(st, sizeof(st), "%d.0.0", cls == 2 ? 2 : cls == 4 ? 4 : 5);
	client_rcpt_set(r,
			cls == 2   ? SMTP_CLIENT_DELIVERED
			: cls == 4 ? SMTP_CLIENT_DEFERRED
				   : SMTP_CLIENT_FAILED,
			text, st, true);
}

static void client_msg_fail(struct smtp_client_msg *m, enum smtp_client_status status,
			    const char *reply, const char *dsn_status, bool remote)
{
	for (size_t i = 0; i < m->n_rcpts; i++)
		client_rcpt_set(&m->rcpts[i], status, reply, dsn_status, remote);
}

static void client_on_finish(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;

	/* Whatever is not decided now is deferred with the last error. */
	for (size_t i = 0; i < c->n_msgs; i++)
		client_msg_fail(&c->msgs[i], SMTP_CLIENT_DEFERRED,
				c->last_error[0] != '\0' ? c->last_error : "451 4.4.0 not attempted",
				"4.4.0", false);
	c->cb(c, c->ctx);
}

static void client_finish(struct smtp_client *c)
{
	if (c->stream != NULL)
		store_blob_stream_close(&c->stream);
	event_active(c->finish, EV_TIMEOUT, 0);
}

static void client_set_error(struct smtp_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void client_set_error(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	struct smtp_client_attempt *a = client_attempt(c);

	va_start(ap, fmt);
	vsnprintf(c->last_error, sizeof(c->last_error), fmt, ap);
	va_end(ap);
	if (a != NULL)
		snprintf(a->result, sizeof(a->result), "%s", c->last_error);
}

/* Gives up the current host: politely when connected (QUIT), then the next
 * host once the connection is closed. */
static void client_host_fail(struct smtp_client *c)
{
	log_info("queue", "s=%s event=host_failed host=%s reason=\"%s\"", c->p.session,
		 client_host_name(c), c->last_error);
	if (c->conn != NULL) {
		client_send(c, "QUIT\r\n");
		client_enter(c, CS_NEXT);
		conn_close(c->conn);
		return;
	}
	c->host++;
	c->host_notls = false;
	client_try_host(c);
}

/* The session is over: QUIT and close, then the callback. */
static void client_quit(struct smtp_client *c)
{
	struct smtp_client_attempt *a = client_attempt(c);

	if (a != NULL && a->result[0] == '\0')
		snprintf(a->result, sizeof(a->result), "ok");
	client_send(c, "QUIT\r\n");
	client_enter(c, CS_QUIT);
	conn_close(c->conn);
}

/* ---- connection ------------------------------------------------------------ */

static void client_on_read(struct conn *conn, void *ctx);
static void client_on_close(struct conn *conn, enum conn_close_reason reason, void *ctx);
static void client_on_connect(struct conn *conn, void *ctx);
static void client_on_tls(struct conn *conn, void *ctx);
static void client_on_written(struct conn *conn, void *ctx);

static const struct conn_callbacks client_conn_callbacks = {
	.on_read = client_on_read,
	.on_close = client_on_close,
	.on_tls = client_on_tls,
	.on_written = client_on_written,
	.on_connect = client_on_connect,
};

static void client_addr_text(const struct sockaddr_storage *ss, char *buf, size_t size)
{
	const void *a = ss->ss_family == AF_INET6
				? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
				: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (inet_ntop(ss->ss_family, a, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
}

static void client_try_host(struct smtp_client *c)
{
	const struct smtp_client_host *h;
	const struct sockaddr_storage *src;
	struct smtp_client_attempt *a;
	const char *err;

	if (c->host >= c->p.n_hosts) {
		client_finish(c);
		return;
	}
	h = &c->p.hosts[c->host];
	src = h->addr.ss_family == AF_INET6 ? &c->p.source6 : &c->p.source4;
	c->attempts = xrealloc(c->attempts, (c->n_attempts + 1) * sizeof(*c->attempts));
	a = &c->attempts[c->n_attempts++];
	memset(a, 0, sizeof(*a));
	snprintf(a->host, sizeof(a->host), "%s", h->name);
	client_addr_text(&h->addr, a->ip, sizeof(a->ip));
	c->established = false;
	memset(&c->ehlo, 0, sizeof(c->ehlo));
	smtp_reply_parser_init(&c->parser);
	c->state = CS_CONNECTING;
	c->conn = conn_connect(loop_base(c->p.loop), (const struct sockaddr *)&h->addr,
			       h->addr_len, src->ss_family != 0 ? (const struct sockaddr *)src : NULL,
			       src->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							  : sizeof(struct sockaddr_in),
			       &client_conn_callbacks, c, &err);
	if (c->conn == NULL) {
		client_set_error(c, "451 4.4.1 cannot connect to %s[%s]: %s", h->name, a->ip, err);
		client_host_fail(c);
		return;
	}
	conn_set_timeout(c->conn, CLIENT_TIMEOUT_CONNECT);
}

static void client_on_connect(struct conn *conn, void *ctx)
{
	struct smtp_client *c = ctx;

	conn_set_timeout(conn, CLIENT_TIMEOUT_COMMAND);
	client_enter(c, CS_GREETING);
}

static void client_on_close(struct conn *conn, enum conn_close_reason reason, void *ctx)
{
	struct smtp_client *c = ctx;
	struct smtp_client_attempt *a = client_attempt(c);
	enum client_state state = c->state;

	c->conn = NULL;
	if (c->stream != NULL)
		store_blob_stream_close(&c->stream);
	if (state == CS_QUIT) {
		client_finish(c);
		return;
	}
	if (state == CS_NEXT) {
		c->host++;
		c->host_notls = false;
		client_try_host(c);
		return;
	}
	if (state == CS_CONNECTING)
		client_set_error(c, "451 4.4.1 %s to %s[%s]",
				 reason == CONN_CLOSED_TIMEOUT ? "connection timed out"
							       : "connection refused",
				 a->host, a->ip);
	else if (state == CS_HANDSHAKE)
		client_set_error(c, "451 4.7.5 TLS handshake with %s[%s] failed", a->host, a->ip);
	else
		client_set_error(c, "451 4.4.2 %s with %s[%s] while waiting for the %s reply",
				 reason == CONN_CLOSED_TIMEOUT ? "timeout" : "lost connection",
				 a->host, a->ip, client_state_names[state]);
	log_info("queue", "s=%s event=host_failed host=%s reason=\"%s\"", c->p.session, a->host,
		 c->last_error);
	if (c->established) {
		/* Messages already decided keep their outcome; the rest wait
		 * for the next run. */
		client_finish(c);
		return;
	}
	if (state == CS_HANDSHAKE && c->p.tls_policy == QUEUE_TLS_MAY && !c->host_notls) {
		/* Opportunistic TLS that fails falls back to plaintext with the
		 * same host, once. */
		c->host_notls = true;
		client_try_host(c);
		return;
	}
	c->host++;
	c->host_notls = false;
	client_try_host(c);
}

/* ---- session set-up ------------------------------------------------------------ */

static void client_start_messages(struct smtp_client *c)
{
	c->established = true;
	c->msg = 0;
	if (c->msgs == NULL || c->n_msgs == 0) {
		client_quit(c);
		return;
	}
	client_next_message(c);
}

static void client_auth(struct smtp_client *c)
{
	struct smtp_client_attempt *a = client_attempt(c);

	if (!conn_is_tls(c->conn)) {
		client_set_error(c, "451 4.7.10 %s[%s] offers no STARTTLS: credentials are never "
				    "sent in clear",
				 a->host, a->ip);
		client_host_fail(c);
	} else if (c->ehlo.auth & SMTP_AUTH_PLAIN) {
		size_t ul = strlen(c->p.auth_user), pl = strlen(c->p.auth_pass);
		unsigned char *raw = xmalloc(ul + pl + 2);
		char *b64 = xmalloc(4 * ((ul + pl + 4) / 3) + 4);

		raw[0] = '\0';
		memcpy(raw + 1, c->p.auth_user, ul);
		raw[ul + 1] = '\0';
		memcpy(raw + ul + 2, c->p.auth_pass, pl);
		base64_encode(raw, ul + pl + 2, b64);
		client_send(c, "AUTH PLAIN %s\r\n", b64);
		explicit_bzero(raw, ul + pl + 2);
		explicit_bzero(b64, strlen(b64));
		free(raw);
		free(b64);
		client_enter(c, CS_AUTH);
	} else if (c->ehlo.auth & SMTP_AUTH_LOGIN) {
		client_send(c, "AUTH LOGIN\r\n");
		client_enter(c, CS_AUTH_LOGIN_USER);
	} else {
		client_set_error(c, "451 4.7.12 %s[%s] offers neither AUTH PLAIN nor LOGIN",
				 a->host, a->ip);
		client_host_fail(c);
	}
}

static void client_send_b64(struct smtp_client *c, const char *s)
{
	size_t len = strlen(s);
	char *b64 = xmalloc(4 * ((len + 2) / 3) + 4);

	base64_encode((const unsigned char *)s, len, b64);
	client_send(c, "%s\r\n", b64);
	explicit_bzero(b64, strlen(b64));
	free(b64);
}

/* EHLO (or HELO) done: STARTTLS, AUTH, or the messages. */
static void client_after_ehlo(struct smtp_client *c)
{
	struct smtp_client_attempt *a = client_attempt(c);
	bool tls = conn_is_tls(c->conn);

	if (!tls && c->ehlo.starttls && c->p.tls != NULL && !c->host_notls) {
		client_send(c, "STARTTLS\r\n");
		client_enter(c, CS_STARTTLS);
		return;
	}
	if (!tls && c->p.tls_policy == QUEUE_TLS_REQUIRE) {
		client_set_error(c, "451 4.7.10 TLS is required, but %s[%s] offers no STARTTLS",
				 a->host, a->ip);
		client_host_fail(c);
		return;
	}
	if (c->p.auth_user != NULL && c->p.auth_user[0] != '\0') {
		client_auth(c);
		return;
	}
	client_start_messages(c);
}

static void client_on_tls(struct conn *conn, void *ctx)
{
	struct smtp_client *c = ctx;
	struct smtp_client_attempt *a = client_attempt(c);
	const char *v = conn_tls_version(conn);

	snprintf(a->tls, sizeof(a->tls), "%s", v != NULL ? v : "");
	log_info("queue", "s=%s event=tls host=%s version=%s cipher=%s", c->p.session, a->host,
		 a->tls, conn_tls_cipher(conn) != NULL ? conn_tls_cipher(conn) : "");
	/* RFC 3207 4.2: forget what the server said before; ask again. */
	client_send(c, "EHLO %s\r\n", c->p.helo);
	client_enter(c, CS_EHLO);
}

static void client_on_setup_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_client_attempt *a = client_attempt(c);
	char text[512];

	smtp_reply_format(r, text, sizeof(text));
	switch (c->state) {
	case CS_GREETING:
		if (r->code / 100 != 2) {
			client_set_error(c, "%s (greeting of %s[%s])", text, a->host, a->ip);
			client_host_fail(c);
			return;
		}
		client_send(c, "EHLO %s\r\n", c->p.helo);
		client_enter(c, CS_EHLO);
		return;
	case CS_EHLO:
		if (r->code == 250) {
			smtp_ehlo_parse(r, &c->ehlo);
			client_after_ehlo(c);
		} else if (r->code / 100 == 5 && !conn_is_tls(c->conn)) {
			client_send(c, "HELO %s\r\n", c->p.helo);
			client_enter(c, CS_HELO);
		} else {
			client_set_error(c, "%s (EHLO to %s[%s])", text, a->host, a->ip);
			client_host_fail(c);
		}
		return;
	case CS_HELO:
		if (r->code != 250) {
			client_set_error(c, "%s (HELO to %s[%s])", text, a->host, a->ip);
			client_host_fail(c);
			return;
		}
		memset(&c->ehlo, 0, sizeof(c->ehlo));
		client_after_ehlo(c);
		return;
	case CS_STARTTLS:
		if (r->code == 220) {
			client_enter(c, CS_HANDSHAKE);
			conn_starttls_client(c->conn, c->p.tls, a->host);
		} else if (c->p.tls_policy == QUEUE_TLS_REQUIRE) {
			client_set_error(c, "%s (STARTTLS to %s[%s], TLS required)", text, a->host,
					 a->ip);
			client_host_fail(c);
		} else {
			c->host_notls = true;
			client_after_ehlo(c);
		}
		return;
	case CS_AUTH_LOGIN_USER:
	case CS_AUTH_LOGIN_PASS:
		if (r->code == 334) {
			client_send_b64(c, c->state == CS_AUTH_LOGIN_USER ? c->p.auth_user
									  : c->p.auth_pass);
			client_enter(c, c->state == CS_AUTH_LOGIN_USER ? CS_AUTH_LOGIN_PASS
								       : CS_AUTH);
			return;
		}
		/* Anything else ends AUTH, as a refusal. */
		__attribute__((fallthrough));
	case CS_AUTH:
		if (r->code == 235) {
			log_info("queue", "s=%s event=auth host=%s user=%s", c->p.session, a->host,
				 c->p.auth_user);
			client_start_messages(c);
			return;
		}
		/* Refused credentials are ours to fix: the mail waits (deferred)
		 * rather than bounce. */
		client_set_error(c, "%s (AUTH at %s[%s])", text, a->host, a->ip);
		client_host_fail(c);
		return;
	default:
		return;
	}
}

/* ---- one message ----------------------------------------------------------------- */

static void client_mail_params(struct smtp_client *c, const struct smtp_client_msg *m,
			       char *buf, size_t size)
{
	size_t len = 0;
	char envid[320];

	buf[0] = '\0';
	if (c->ehlo.size)
		len += (size_t)snprintf(buf + len, size - len, " SIZE=%llu",
					(unsigned long long)m->size);
	if (m->env->body == 2 && c->ehlo.eightbitmime && len < size)
		len += (size_t)snprintf(buf + len, size - len, " BODY=8BITMIME");
	if (m->env->smtputf8 && len < size)
		len += (size_t)snprintf(buf + len, size - len, " SMTPUTF8");
	if (c->ehlo.dsn && m->env->ret != 0 && len < size)
		len += (size_t)snprintf(buf + len, size - len, " RET=%s",
					m->env->ret == 2 ? "HDRS" : "FULL");
	if (c->ehlo.dsn && m->env->envid[0] != '\0' && len < size) {
		smtp_client_xtext(m->env->envid, envid, sizeof(envid));
		snprintf(buf + len, size - len, " ENVID=%s", envid);
	}
}

static void client_rcpt_params(struct smtp_client *c, const struct store_queue_rcpt *r,
			       char *buf, size_t size)
{
	static const char *const names[] = { "NEVER", "SUCCESS", "FAILURE", "DELAY" };
	size_t len = 0;

	buf[0] = '\0';
	if (!c->ehlo.dsn)
		return;
	if (r->notify != 0) {
		len += (size_t)snprintf(buf, size, " NOTIFY=");
		for (unsigned i = 0, first = 1; i < 4 && len < size; i++) {
			if (!(r->notify & (1u << i)))
				continue;
			len += (size_t)snprintf(buf + len, size - len, "%s%s", first ? "" : ",",
						names[i]);
			first = 0;
		}
	}
	if (r->orcpt[0] != '\0' && strchr(r->orcpt, ';') != NULL && len < size) {
		const char *semi = strchr(r->orcpt, ';');
		char x[700];
		smtp_client_xtext(semi + 1, x, sizeof(x));
		snprintf(buf + len, size - len, " ORCPT=%.*s;%s", (int)(semi - r->orcpt), r->orcpt,
			 x);
	}
}

/* Checks that need no round trip: a message this server cannot take
 * fails here, before any of it is sent.  Returns -1 when it failed. */
static int client_msg_precheck(struct smtp_client *c, struct smtp_client_msg *m)
{
	struct smtp_client_attempt *a = client_attempt(c);
	char text[512];

	if (c->ehlo.size && c->ehlo.size_max > 0 && m->size > c->ehlo.size_max) {
		snprintf(text, sizeof(text),
			 "552 5.3.4 message size %llu exceeds the limit of %s[%s] (SIZE %llu)",
			 (unsigned long long)m->size, a->host, a->ip,
			 (unsigned long long)c->ehlo.size_max);
		client_msg_fail(m, SMTP_CLIENT_FAILED, text, "5.3.4", false);
		return -1;
	}
	if (m->env->smtputf8 && !c->ehlo.smtputf8) {
		snprintf(text, sizeof(text),
			 "553 5.6.7 the message needs SMTPUTF8, which %s[%s] does not support",
			 a->host, a->ip);
		client_msg_fail(m, SMTP_CLIENT_FAILED, text, "5.6.7", false);
		return -1;
	}
	if (m->env->body == 3) {
		snprintf(text, sizeof(text),
			 "554 5.6.3 a BINARYMIME message cannot be relayed to %s[%s] "
			 "(Keel does not send BDAT)",
			 a->host, a->ip);
		client_msg_fail(m, SMTP_CLIENT_FAILED, text, "5.6.3", false);
		return -1;
	}
	return 0;
}

static void client_send_rcpt(struct smtp_client *c, size_t i)
{
	const struct smtp_client_msg *m = &c->msgs[c->msg];
	char params[800];

	client_rcpt_params(c, m->rcpts[i].rcpt, params, sizeof(params));
	client_send(c, "RCPT TO:<%s>%s\r\n", m->rcpts[i].rcpt->rcpt, params);
}

static void client_begin_txn(struct smtp_client *c)
{
	struct smtp_client_msg *m = &c->msgs[c->msg];
	char params[512];

	client_mail_params(c, m, params, sizeof(params));
	c->mail_ok = false;
	c->accepted = 0;
	c->txn_replies = 0;
	client_send(c, "MAIL FROM:<%s>%s\r\n", m->env->sender, params);
	c->txn_sent = 1;
	if (c->ehlo.pipelining) {
		/* RFC 2920: MAIL and every RCPT in one write. */
		for (size_t i = 0; i < m->n_rcpts; i++)
			client_send_rcpt(c, i);
		c->txn_sent += m->n_rcpts;
	}
	client_enter(c, CS_TXN);
}

/* Starts message c->msg, or skips those that fail their checks; QUIT after
 * the last. */
static void client_next_message(struct smtp_client *c)
{
	while (c->msg < c->n_msgs && client_msg_precheck(c, &c->msgs[c->msg]) < 0)
		c->msg++;
	if (c->msg >= c->n_msgs) {
		client_quit(c);
		return;
	}
	client_begin_txn(c);
}

static void client_message_done(struct smtp_client *c)
{
	c->msg++;
	while (c->msg < c->n_msgs && client_msg_precheck(c, &c->msgs[c->msg]) < 0)
		c->msg++;
	if (c->msg >= c->n_msgs) {
		client_quit(c);
		return;
	}
	/* Another message on the same connection, from a clean state. */
	client_send(c, "RSET\r\n");
	client_enter(c, CS_RSET);
}

static void client_on_txn_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_client_msg *m = &c->msgs[c->msg];
	size_t idx = c->txn_replies++;

	if (idx == 0) {
		c->mail_ok = r->code / 100 == 2;
		if (!c->mail_ok)
			for (size_t i = 0; i < m->n_rcpts; i++)
				client_rcpt_reply(&m->rcpts[i], r);
	} else if (c->mail_ok) {
		struct smtp_client_rcpt *rc = &m->rcpts[idx - 1];
		if (r->code / 100 == 2) {
			c->accepted++;
			rc->remote_dsn = c->ehlo.dsn;
		} else {
			client_rcpt_reply(rc, r);
		}
	}
	if (!c->ehlo.pipelining && c->mail_ok && c->txn_sent < 1 + m->n_rcpts) {
		client_send_rcpt(c, c->txn_sent - 1);
		c->txn_sent++;
		return;
	}
	if (c->txn_replies < c->txn_sent)
		return;
	if (c->accepted == 0) {
		client_message_done(c);
		return;
	}
	client_send(c, "DATA\r\n");
	client_enter(c, CS_DATA);
}

/* Applies the reply to DATA or to the final dot to every accepted RCPT. */
static void client_data_outcome(struct smtp_client *c, const struct smtp_reply *r)
{
	struct smtp_client_msg *m = &c->msgs[c->msg];

	for (size_t i = 0; i < m->n_rcpts; i++)
		if (m->rcpts[i].status == SMTP_CLIENT_PENDING)
			client_rcpt_reply(&m->rcpts[i], r);
}

/* Writes the message while the output is below the low-water mark, then
 * the final dot.  Dot-stuffing (RFC 5321 4.5.2): a line that starts with
 * '.' gets one more. */
static void client_pump_body(struct smtp_client *c)
{
	char in[CLIENT_CHUNK], out[2 * CLIENT_CHUNK + 4];
	const char *err;

	while (c->state == CS_BODY && conn_output_pending(c->conn) < CONN_WRITE_LOW) {
		long n = store_blob_stream_read(c->stream, in, sizeof(in), &err);
		size_t o = 0;

		if (n < 0) {
			struct smtp_client_attempt *a = client_attempt(c);
			/* Never end a message that was not read whole with a
			 * dot: drop the connection instead. */
			log_error("queue", "s=%s event=blob_read_failed error=\"%s\"", c->p.session,
				  err);
			store_blob_stream_close(&c->stream);
			client_msg_fail(&c->msgs[c->msg], SMTP_CLIENT_DEFERRED,
					"451 4.3.0 local error reading the queued message", "4.3.0",
					false);
			snprintf(a->result, sizeof(a->result), "local error reading the message");
			/* Closed without the final dot: the server discards it. */
			client_enter(c, CS_QUIT);
			conn_close(c->conn);
			return;
		}
		if (n == 0) {
			store_blob_stream_close(&c->stream);
			conn_write(c->conn, c->body_ended_lf ? ".\r\n" : "\r\n.\r\n",
				   c->body_ended_lf ? 3 : 5);
			conn_set_timeout(c->conn, CLIENT_TIMEOUT_DOT);
			client_enter(c, CS_DOT);
			return;
		}
		for (long i = 0; i < n; i++) {
			if (c->at_line_start && in[i] == '.')
				out[o++] = '.';
			out[o++] = in[i];
			c->at_line_start = in[i] == '\n';
		}
		c->body_ended_lf = in[n - 1] == '\n';
		conn_write(c->conn, out, o);
	}
}

static void client_on_written(struct conn *conn, void *ctx)
{
	struct smtp_client *c = ctx;

	if (c->state == CS_BODY)
		client_pump_body(c);
}

static void client_start_body(struct smtp_client *c)
{
	struct smtp_client_msg *m = &c->msgs[c->msg];
	uint64_t size;
	const char *err;

	if (store_blob_stream_open(loop_data(c->p.loop), m->blob_id, &c->stream, &size, &err) < 0) {
		log_error("queue", "s=%s event=blob_open_failed blob=%lld error=\"%s\"", c->p.session,
			  (long long)m->blob_id, err);
		client_msg_fail(m, SMTP_CLIENT_DEFERRED,
				"451 4.3.0 local error reading the queued message", "4.3.0", false);
		/* The server waits for data: close without the final dot
		 * rather than send an empty message. */
		client_enter(c, CS_QUIT);
		conn_close(c->conn);
		return;
	}
	c->at_line_start = true;
	c->body_ended_lf = true;
	client_enter(c, CS_BODY);
	client_pump_body(c);
}

static void client_on_message_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	switch (c->state) {
	case CS_RSET:
		if (r->code / 100 != 2) {
			client_set_error(c, "451 4.4.2 RSET refused");
			client_quit(c);
			return;
		}
		client_begin_txn(c);
		return;
	case CS_TXN:
		client_on_txn_reply(c, r);
		return;
	case CS_DATA:
		if (r->code != 354) {
			client_data_outcome(c, r);
			client_message_done(c);
			return;
		}
		client_start_body(c);
		return;
	case CS_DOT:
		conn_set_timeout(c->conn, CLIENT_TIMEOUT_COMMAND);
		client_data_outcome(c, r);
		log_info("queue", "s=%s event=sent host=%s queue=%s reply=%d", c->p.session,
			 client_host_name(c), c->msgs[c->msg].env->queue_id, r->code);
		client_message_done(c);
		return;
	default:
		return;
	}
}

static void client_on_read(struct conn *conn, void *ctx)
{
	struct smtp_client *c = ctx;
	const char *line, *err;
	size_t len;
	bool crlf;
	int r;

	while (c->conn != NULL && c->state != CS_QUIT && c->state != CS_NEXT &&
	       c->state != CS_HANDSHAKE &&
	       (r = conn_read_line(conn, SMTP_REPLY_LINE_MAX, &line, &len, &crlf)) != 0) {
		err = "line too long";
		if (r < 0 || (r = smtp_reply_parser_line(&c->parser, line, len, &err)) < 0) {
			struct smtp_client_attempt *a = client_attempt(c);
			client_set_error(c, "451 4.5.0 bad reply from %s[%s]: %s", a->host, a->ip, err);
			if (c->established)
				client_quit(c);
			else
				client_host_fail(c);
			return;
		}
		if (r == 0)
			continue;
		if (c->state == CS_BODY) {
			/* A reply while we are still sending: the server gave up. */
			client_data_outcome(c, &c->parser.reply);
			client_quit(c);
			return;
		}
		if (c->state >= CS_RSET)
			client_on_message_reply(c, &c->parser.reply);
		else
			client_on_setup_reply(c, &c->parser.reply);
	}
}

/* ---- public ------------------------------------------------------------------------ */

struct smtp_client *smtp_client_start(const struct smtp_client_params *params,
				      struct smtp_client_msg *msgs, size_t n_msgs,
				      smtp_client_done_cb *cb, void *ctx)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));

	c->p = *params;
	c->msgs = msgs;
	c->n_msgs = n_msgs;
	c->cb = cb;
	c->ctx = ctx;
	c->finish = event_new(loop_base(params->loop), -1, 0, client_on_finish, c);
	snprintf(c->last_error, sizeof(c->last_error), "451 4.4.4 no host to deliver to");
	client_try_host(c);
	return c;
}

const struct smtp_client_attempt *smtp_client_attempts(const struct smtp_client *c, size_t *n_r)
{
	*n_r = c->n_attempts;
	return c->attempts;
}

const struct smtp_client_attempt *smtp_client_served_by(const struct smtp_client *c)
{
	const struct smtp_client_attempt *a =
		c->n_attempts > 0 ? &c->attempts[c->n_attempts - 1] : NULL;

	return a != NULL && strcmp(a->result, "ok") == 0 ? a : NULL;
}

void smtp_client_free(struct smtp_client **cp)
{
	struct smtp_client *c = *cp;

	if (c == NULL)
		return;
	if (c->stream != NULL)
		store_blob_stream_close(&c->stream);
	conn_free(&c->conn);
	event_free(c->finish);
	free(c->attempts);
	free(c);
	*cp = NULL;
}

SSL_CTX *smtp_client_tls_ctx_new(const char **error_r)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		*error_r = "SSL_CTX_new failed";
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Opportunistic TLS (RFC 7435): encryption against passive
	 * eavesdroppers; an MX's certificate is not checked, as most do not
	 * match, and refusing them would only push mail to plaintext. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

void smtp_client_xtext(const char *in, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (size == 0)
		return;
	for (const unsigned char *p = (const unsigned char *)in; *p != '\0'; p++) {
		if (*p >= 33 && *p <= 126 && *p != '+' && *p != '=') {
			if (o + 1 >= size)
				break;
			out[o++] = (char)*p;
		} else {
			if (o + 3 >= size)
				break;
			out[o++] = '+';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
}
