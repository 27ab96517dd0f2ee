#include "smtp/smtp_private.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/exempt.h"
#include "lib/conn.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "settings/settings.h"
#include "trace/trace.h"

static const char *const smtp_state_names[] = {
	"helo", "ready", "mail", "rcpt", "data", "bdat", "auth", "wait", "quit",
};

/* The command table: which states a command is allowed in, and its
 * handler.  A command in another state gets 503 5.5.1. */
struct smtp_cmd_def {
	enum smtp_verb verb;
	unsigned states;
	void (*run)(struct smtp_session *s, const struct smtp_command *cmd);
};

#define SMTP_ANY                                                                          \
	(SMTP_S(SMTP_STATE_HELO) | SMTP_S(SMTP_STATE_READY) | SMTP_S(SMTP_STATE_MAIL) |   \
	 SMTP_S(SMTP_STATE_RCPT))
#define SMTP_GREETED (SMTP_ANY & ~SMTP_S(SMTP_STATE_HELO))

static const struct smtp_cmd_def smtp_commands[] = {
	{ SMTP_VERB_EHLO, SMTP_ANY, smtp_cmd_ehlo },
	{ SMTP_VERB_HELO, SMTP_ANY, smtp_cmd_helo },
	{ SMTP_VERB_MAIL, SMTP_S(SMTP_STATE_READY), smtp_cmd_mail },
	{ SMTP_VERB_RCPT, SMTP_S(SMTP_STATE_MAIL) | SMTP_S(SMTP_STATE_RCPT), smtp_cmd_rcpt },
	{ SMTP_VERB_DATA, SMTP_S(SMTP_STATE_RCPT), smtp_cmd_data },
	{ SMTP_VERB_BDAT, SMTP_ANY, smtp_cmd_bdat }, /* checks its own state: it must eat
							the chunk in any case */
	{ SMTP_VERB_RSET, SMTP_ANY, smtp_cmd_rset },
	{ SMTP_VERB_NOOP, SMTP_ANY, smtp_cmd_noop },
	{ SMTP_VERB_QUIT, SMTP_ANY, smtp_cmd_quit },
	{ SMTP_VERB_VRFY, SMTP_ANY, smtp_cmd_vrfy },
	{ SMTP_VERB_EXPN, SMTP_ANY, smtp_cmd_expn },
	{ SMTP_VERB_HELP, SMTP_ANY, smtp_cmd_help },
	{ SMTP_VERB_STARTTLS, SMTP_GREETED, smtp_cmd_starttls },
	{ SMTP_VERB_AUTH, SMTP_S(SMTP_STATE_READY), smtp_cmd_auth },
};

__attribute__((format(printf, 4, 0))) static void smtp_vreply(struct smtp_session *s,
							     unsigned code, const char *enhanced,
							     const char *fmt, va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	/* Every reply carries an RFC 3463 code, but for the greeting, which
	 * precedes EHLO and must start with the domain (RFC 5321 4.2). */
	if (enhanced[0] != '\0')
		conn_printf(s->conn, "%u %s %s\r\n", code, enhanced, text);
	else
		conn_printf(s->conn, "%u %s\r\n", code, text);
	log_debug("smtp", "s=%s reply=\"%u %s %s\"", s->id, code, enhanced, text);
}

void smtp_reply(struct smtp_session *s, unsigned code, const char *enhanced, const char *fmt,
		...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, code, enhanced, fmt, ap);
	va_end(ap);
}

void smtp_error(struct smtp_session *s, unsigned code, const char *enhanced, const char *fmt,
		...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, code, enhanced, fmt, ap);
	va_end(ap);
	if (++s->errors >= (unsigned)settings_get_int("smtp.max_errors")) {
		log_info("smtp", "s=%s event=too_many_errors ip=%s errors=%u limit=smtp.max_errors",
			 s->id, s->peer_ip, s->errors);
		smtp_trace(s, "disconnect", NULL, "too many errors (%u)", s->errors);
		smtp_reply(s, 421, "4.7.0", "%s Error: too many errors (smtp.max_errors=%lld)",
			   s->hostname, (long long)settings_get_int("smtp.max_errors"));
		smtp_close(s);
	}
}

void smtp_enter_state(struct smtp_session *s, enum smtp_state state)
{
	if (s->state == state)
		return;
	log_debug("smtp", "s=%s state=%s->%s", s->id, smtp_state_names[s->state],
		  smtp_state_names[state]);
	s->state = state;
	conn_set_timeout(s->conn, (unsigned)settings_get_int(
					  state == SMTP_STATE_DATA || state == SMTP_STATE_BDAT
						  ? "smtp.timeout_data"
						  : "smtp.timeout_command"));
}

void smtp_transaction_reset(struct smtp_session *s)
{
	s->sender[0] = '\0';
	memset(&s->mail, 0, sizeof(s->mail));
	s->n_rcpts = 0;
	s->n_targets = 0;
	s->queue_id[0] = '\0';
	smtp_body_free(s);
}

const char *smtp_protocol_name(const struct smtp_session *s)
{
	switch (s->service) {
	case SMTP_SERVICE_MX: return "smtp";
	case SMTP_SERVICE_SUBMISSION: return "submission";
	default: return "submissions";
	}
}

void smtp_trace(struct smtp_session *s, const char *event, const char *rcpt, const char *fmt,
		...)
{
	struct store_trace_event *e;
	va_list ap;

	if (!trace_recorded(smtp_protocol_name(s), event))
		return;
	if (s->n_events == s->events_alloc) {
		s->events_alloc = s->events_alloc ? s->events_alloc * 2 : 8;
		s->events = xrealloc(s->events, s->events_alloc * sizeof(*s->events));
	}
	e = &s->events[s->n_events++];
	memset(e, 0, sizeof(*e));
	e->time = time(NULL);
	snprintf(e->event, sizeof(e->event), "%s", event);
	snprintf(e->protocol, sizeof(e->protocol), "%s", smtp_protocol_name(s));
	snprintf(e->client_ip, sizeof(e->client_ip), "%s", s->peer_ip);
	snprintf(e->session, sizeof(e->session), "%s", s->id);
	snprintf(e->account, sizeof(e->account), "%s", s->auth_user);
	snprintf(e->sender, sizeof(e->sender), "%s", s->sender);
	snprintf(e->queue_id, sizeof(e->queue_id), "%s", s->queue_id);
	if (rcpt != NULL)
		snprintf(e->rcpt, sizeof(e->rcpt), "%s", rcpt);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	/* A session that never sends a message must not pile events up. */
	if (s->n_events >= 64 && s->state != SMTP_STATE_DATA && s->state != SMTP_STATE_BDAT)
		smtp_trace_flush(s);
}

void smtp_trace_flush(struct smtp_session *s)
{
	if (s->n_events == 0)
		return;
	/* Nothing waits on these: they ride along with the next write. */
	store_trace_defer(s->env->store, s->events, s->n_events);
	s->n_events = 0;
}

void smtp_auth_wipe(struct smtp_session *s)
{
	/* Addressed from the session, not as &s->auth: GCC 12 with FORTIFY
	 * takes that for the struct's first member and refuses the size. */
	explicit_bzero((char *)s + offsetof(struct smtp_session, auth), sizeof(s->auth));
}

void smtp_ref(struct smtp_session *s)
{
	s->refs++;
}

static void smtp_destroy(struct smtp_session *s)
{
	if (s->counted)
		iplimit_release(s->env->iplimit, s->peer_ip);
	if (s->delay != NULL)
		event_free(s->delay);
	smtp_body_free(s);
	free(s->rcpts);
	free(s->targets);
	free(s->events);
	smtp_auth_wipe(s);
	free(s);
}

bool smtp_unref(struct smtp_session *s)
{
	if (--s->refs > 0)
		return !s->closed;
	smtp_destroy(s);
	return false;
}

void smtp_close(struct smtp_session *s)
{
	smtp_enter_state(s, SMTP_STATE_QUIT);
	conn_close(s->conn);
}

static const struct smtp_cmd_def *smtp_cmd_find(enum smtp_verb verb)
{
	for (size_t i = 0; i < sizeof(smtp_commands) / sizeof(smtp_commands[0]); i++)
		if (smtp_commands[i].verb == verb)
			return &smtp_commands[i];
	return NULL;
}

static size_t smtp_line_max(enum smtp_verb verb)
{
	switch (verb) {
	case SMTP_VERB_MAIL: return SMTP_LINE_MAX_MAIL;
	case SMTP_VERB_RCPT: return SMTP_LINE_MAX_RCPT;
	case SMTP_VERB_AUTH: return SMTP_LINE_MAX_AUTH;
	default: return SMTP_LINE_MAX;
	}
}

static void smtp_bad_sequence(struct smtp_session *s, enum smtp_verb verb)
{
	if (s->state == SMTP_STATE_HELO)
		smtp_error(s, 503, "5.5.1", "Error: send HELO/EHLO first");
	else if (verb == SMTP_VERB_MAIL)
		smtp_error(s, 503, "5.5.1", "Error: nested MAIL command");
	else if (verb == SMTP_VERB_RCPT)
		smtp_error(s, 503, "5.5.1", "Error: need MAIL command");
	else if (verb == SMTP_VERB_DATA)
		smtp_error(s, 503, "5.5.1", "Error: need RCPT command");
	else
		smtp_error(s, 503, "5.5.1", "Error: bad sequence of commands");
}

static void smtp_command_line(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	const struct smtp_cmd_def *def;
	const char *error = NULL;
	unsigned flags = s->mail.smtputf8 ? SMTP_PARSER_FLAG_UTF8 : 0;

	if (smtp_parser_parse(line, len, flags, &cmd, &error) < 0) {
		const struct smtp_reply_code *r = smtp_parser_error_reply(cmd.error);
		if (cmd.verb == SMTP_VERB_BDAT) {
			/* The chunk's octets follow and nobody knows how many. */
			smtp_reply(s, r->code, r->enhanced, "%s", error);
			smtp_close(s);
			return;
		}
		smtp_error(s, r->code, r->enhanced, "%s", error != NULL ? error : r->text);
		return;
	}
	/* The limits count the CRLF, which len does not (RFC 5321 4.5.3.1.4:
	 * 512 octets "including the command word and the <CRLF>"). */
	if (len + 2 > smtp_line_max(cmd.verb)) {
		smtp_error(s, 500, "5.5.2", "Error: line too long");
		return;
	}
	def = smtp_cmd_find(cmd.verb);
	if (def == NULL || (def->states & SMTP_S(s->state)) == 0) {
		smtp_bad_sequence(s, cmd.verb);
		return;
	}
	def->run(s, &cmd);
}

/* Handles everything buffered, one command at a time (PIPELINING), until
 * a command has to wait or input runs out. */
static void smtp_process(struct smtp_session *s)
{
	const char *line;
	size_t len;
	bool crlf;
	int r;

	while (!s->closed) {
		if (s->state == SMTP_STATE_WAIT || s->state == SMTP_STATE_QUIT)
			return;
		if (s->state == SMTP_STATE_DATA || s->state == SMTP_STATE_BDAT) {
			if (!smtp_body_input(s))
				return;
			continue;
		}
		r = conn_read_line(s->conn, SMTP_LINE_MAX_AUTH, &line, &len, &crlf);
		if (r == 0)
			return;
		if (r < 0) {
			smtp_error(s, 500, "5.5.2", "Error: line too long");
			continue;
		}
		if (s->state == SMTP_STATE_AUTH)
			smtp_auth_line(s, line, len);
		else
			smtp_command_line(s, line, len);
	}
}

void smtp_resume(struct smtp_session *s)
{
	if (!s->closed)
		smtp_process(s);
}

static void smtp_on_read(struct conn *conn, void *ctx)
{
	smtp_process(ctx);
}

static void smtp_on_close(struct conn *conn, enum conn_close_reason reason, void *ctx)
{
	static const char *const reasons[] = { "peer", "error", "timeout", "server" };
	struct smtp_session *s = ctx;

	log_info("smtp", "s=%s event=disconnect ip=%s reason=%s", s->id, s->peer_ip,
		 reasons[reason]);
	smtp_trace(s, "disconnect", NULL, "reason=%s", reasons[reason]);
	smtp_trace_flush(s);
	s->closed = true;
	s->conn = NULL;
	if (s->end != NULL)
		s->end(s->owner);
	smtp_unref(s);
}

static void smtp_on_tls(struct conn *conn, void *ctx)
{
	struct smtp_session *s = ctx;

	log_info("smtp", "s=%s event=tls version=%s cipher=%s", s->id, conn_tls_version(conn),
		 conn_tls_cipher(conn));
	smtp_trace(s, "tls", NULL, "version=%s cipher=%s", conn_tls_version(conn),
		   conn_tls_cipher(conn));
}

static const struct conn_callbacks smtp_conn_callbacks = {
	.on_read = smtp_on_read,
	.on_close = smtp_on_close,
	.on_tls = smtp_on_tls,
};

struct smtp_session *smtp_session_new(const struct smtp_env *env, enum smtp_service service,
				      int fd, const char *peer_ip, const char *hostname,
				      unsigned long id, struct loop *loop,
				      smtp_session_end_cb *end, void *owner)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	SSL_CTX *tls = NULL;

	s->env = env;
	s->service = service;
	s->loop = loop;
	s->reader = loop_data(loop);
	s->end = end;
	s->owner = owner;
	s->refs = 1;
	snprintf(s->id, sizeof(s->id), "%lx", id);
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer_ip);
	snprintf(s->hostname, sizeof(s->hostname), "%s", hostname);
	if (service == SMTP_SERVICE_SUBMISSIONS)
		tls = env->tls_get(env->tls_arg);
	s->conn = conn_new(loop_base(loop), fd, tls, &smtp_conn_callbacks, s);
	SSL_CTX_free(tls);
	s->state = SMTP_STATE_HELO;
	conn_set_timeout(s->conn, (unsigned)settings_get_int("smtp.timeout_command"));
	log_info("smtp", "s=%s event=connect service=%s ip=%s", s->id, smtp_protocol_name(s),
		 s->peer_ip);
	smtp_trace(s, "connect", NULL, "service=%s", smtp_protocol_name(s));
	s->limits_exempt = exempt_ip("limits.exempt_group", peer_ip);
	if (iplimit_acquire(env->iplimit, peer_ip,
			    s->limits_exempt ? 0
					     : (unsigned)settings_get_int(
						       "smtp.max_connections_per_ip")) < 0) {
		log_info("smtp", "s=%s event=refused ip=%s reason=max_connections_per_ip",
			 s->id, s->peer_ip);
		smtp_trace(s, "refused", NULL, "too many connections from this IP "
					       "(smtp.max_connections_per_ip)");
		smtp_reply(s, 421, "4.7.0",
			   "%s Error: too many connections from your address "
			   "(smtp.max_connections_per_ip=%lld)",
			   s->hostname, (long long)settings_get_int("smtp.max_connections_per_ip"));
		smtp_close(s);
		return s;
	}
	s->counted = true;
	if (smtp_access_connect(s))
		return s;
	smtp_reply(s, 220, "", "%s ESMTP Keel", s->hostname);
	return s;
}

void smtp_session_free(struct smtp_session **sp)
{
	struct smtp_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	smtp_trace_flush(s);
	conn_free(&s->conn);
	s->closed = true;
	smtp_access_cancel(s);
	smtp_unref(s);
}
