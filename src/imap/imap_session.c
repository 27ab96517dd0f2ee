#include "imap/imap_private.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/conn.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

#define IMAP_IN_NOT_AUTH (1u << IMAP_STATE_NOT_AUTH)
#define IMAP_IN_SELECTED (1u << IMAP_STATE_SELECTED)
#define IMAP_IN_AUTH     ((1u << IMAP_STATE_AUTH) | IMAP_IN_SELECTED)
#define IMAP_IN_ANY      (IMAP_IN_NOT_AUTH | IMAP_IN_AUTH)

static const struct imap_cmd_def imap_commands[] = {
	{ "CAPABILITY", IMAP_IN_ANY, imap_cmd_capability, 0 },
	{ "NOOP", IMAP_IN_ANY, imap_cmd_noop, 0 },
	{ "LOGOUT", IMAP_IN_ANY, imap_cmd_logout, 0 },
	{ "ID", IMAP_IN_ANY, imap_cmd_id, 0 },
	{ "STARTTLS", IMAP_IN_NOT_AUTH, imap_cmd_starttls, 0 },
	{ "LOGIN", IMAP_IN_NOT_AUTH, imap_cmd_login, 0 },
	{ "AUTHENTICATE", IMAP_IN_NOT_AUTH, imap_cmd_authenticate, 0 },
	{ "ENABLE", IMAP_IN_AUTH, imap_cmd_enable, 0 },
	{ "NAMESPACE", IMAP_IN_AUTH, imap_cmd_namespace, 0 },
	{ "SELECT", IMAP_IN_AUTH, imap_cmd_select, 0 },
	{ "EXAMINE", IMAP_IN_AUTH, imap_cmd_examine, 0 },
	{ "CREATE", IMAP_IN_AUTH, imap_cmd_create, 0 },
	{ "DELETE", IMAP_IN_AUTH, imap_cmd_delete, 0 },
	{ "RENAME", IMAP_IN_AUTH, imap_cmd_rename, 0 },
	{ "SUBSCRIBE", IMAP_IN_AUTH, imap_cmd_subscribe, 0 },
	{ "UNSUBSCRIBE", IMAP_IN_AUTH, imap_cmd_unsubscribe, 0 },
	{ "LIST", IMAP_IN_AUTH, imap_cmd_list, 0 },
	{ "LSUB", IMAP_IN_AUTH, imap_cmd_lsub, 0 },
	{ "STATUS", IMAP_IN_AUTH, imap_cmd_status, 0 },
	{ "APPEND", IMAP_IN_AUTH, imap_cmd_append, 0 },
	{ "IDLE", IMAP_IN_AUTH, imap_cmd_idle, 0 },
	{ "GETQUOTAROOT", IMAP_IN_AUTH, imap_cmd_getquotaroot, 0 },
	{ "GETQUOTA", IMAP_IN_AUTH, imap_cmd_getquota, 0 },
	{ "SETQUOTA", IMAP_IN_AUTH, imap_cmd_setquota, 0 },
	{ "CHECK", IMAP_IN_SELECTED, imap_cmd_check, 0 },
	{ "CLOSE", IMAP_IN_SELECTED, imap_cmd_close, 0 },
	{ "UNSELECT", IMAP_IN_SELECTED, imap_cmd_unselect, 0 },
	{ "EXPUNGE", IMAP_IN_SELECTED, imap_cmd_expunge, IMAP_CMD_UID },
	{ "FETCH", IMAP_IN_SELECTED, imap_cmd_fetch, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE },
	{ "STORE", IMAP_IN_SELECTED, imap_cmd_store, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE },
	{ "SEARCH", IMAP_IN_SELECTED, imap_cmd_search, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE },
	{ "SORT", IMAP_IN_SELECTED, imap_cmd_sort, IMAP_CMD_UID | IMAP_CMD_NO_EXPUNGE },
	{ "COPY", IMAP_IN_SELECTED, imap_cmd_copy, IMAP_CMD_UID },
	{ "MOVE", IMAP_IN_SELECTED, imap_cmd_move, IMAP_CMD_UID },
};

static const char *const imap_state_names[] = { "not_authenticated", "authenticated",
						 "selected", "logout" };

static void imap_process(struct imap_session *s);

/* ---- output ------------------------------------------------------------- */

void imap_write(struct imap_session *s, const void *data, size_t len)
{
	if (s->conn != NULL)
		conn_write(s->conn, data, len);
}

void imap_printf(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->conn == NULL)
		return;
	va_start(ap, fmt);
	conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
}

size_t imap_output_pending(struct imap_session *s)
{
	return s->conn != NULL ? conn_output_pending(s->conn) : 0;
}

bool imap_tls(const struct imap_session *s)
{
	return s->conn != NULL && conn_is_tls(s->conn);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	if (s->conn == NULL)
		return;
	conn_printf(s->conn, "* ");
	va_start(ap, fmt);
	conn_vprintf(s->conn, fmt, ap);
	va_end(ap);
	conn_printf(s->conn, "\r\n");
}

/* Ends the command in progress.  A suspended one resumes through
 * imap_resume, called by whoever answered. */
__attribute__((format(printf, 3, 0))) static void imap_vtagged(struct imap_session *s,
							      const char *status,
							      const char *fmt, va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	if (s->state == IMAP_STATE_SELECTED && strcmp(status, "BAD") != 0)
		imap_view_sync(s, s->cmd == NULL || !(s->cmd->flags & IMAP_CMD_NO_EXPUNGE) || s->uid,
			       NULL, 0);
	if (s->conn != NULL)
		conn_printf(s->conn, "%s %s %s\r\n", s->tag[0] ? s->tag : "*", status, text);
	log_debug("imap", "s=%s reply=\"%s %s %.200s\"", s->id, s->tag, status, text);
	s->cmd = NULL;
	s->pump = NULL;
	s->busy = false;
	free(s->scratch);
	s->scratch = NULL;
	s->pending = 0;
}

void imap_ok(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_vtagged(s, "OK", fmt, ap);
	va_end(ap);
}

void imap_no(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_vtagged(s, "NO", fmt, ap);
	va_end(ap);
}

void imap_bad(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	imap_vtagged(s, "BAD", fmt, ap);
	va_end(ap);
	if (++s->errors >= (unsigned)settings_get_int("imap.max_errors") &&
	    s->state != IMAP_STATE_LOGOUT) {
		log_info("imap", "s=%s event=too_many_errors ip=%s", s->id, s->peer_ip);
		imap_trace(s, "disconnect", "too many errors (%u)", s->errors);
		imap_untagged(s, "BYE Too many errors, closing");
		imap_close(s);
	}
}

void imap_no_store(struct imap_session *s, const struct store_reply *reply, const char *what)
{
	log_info("imap", "s=%s event=store_refused what=%s err=%d error=\"%s\"", s->id, what,
		 (int)reply->err, reply->error != NULL ? reply->error : "");
	switch (reply->err) {
	case STORE_ERR_NOT_FOUND: imap_no(s, "[NONEXISTENT] %s: no such mailbox", what); break;
	case STORE_ERR_EXISTS: imap_no(s, "[ALREADYEXISTS] %s: mailbox already exists", what); break;
	case STORE_ERR_QUOTA: imap_no(s, "[OVERQUOTA] %s: quota exceeded", what); break;
	case STORE_ERR_INVALID: imap_no(s, "[CANNOT] %s: %s", what, reply->error); break;
	default: imap_no(s, "[UNAVAILABLE] %s failed, try again later", what); break;
	}
}

void imap_enter_state(struct imap_session *s, enum imap_state state)
{
	if (s->state == state)
		return;
	log_debug("imap", "s=%s state=%s->%s", s->id, imap_state_names[s->state],
		  imap_state_names[state]);
	s->state = state;
}

/* ---- store writes ---------------------------------------------------------- */

struct imap_call {
	struct imap_session *s;
	imap_reply_fn *fn;
};

void *imap_call(struct imap_session *s, imap_reply_fn *fn)
{
	struct imap_call *c = xmalloc(sizeof(*c));

	c->s = s;
	c->fn = fn;
	imap_ref(s);
	imap_suspend(s);
	return c;
}

void imap_call_done(const struct store_reply *reply, void *ctx)
{
	struct imap_call *c = ctx;
	struct imap_session *s = c->s;
	imap_reply_fn *fn = c->fn;

	free(c);
	if (!imap_unref(s))
		return;
	imap_ref(s);
	fn(s, reply);
	if (imap_unref(s) && !s->busy)
		imap_resume(s);
}

void imap_final_set(struct imap_session *s, const struct store_reply *reply)
{
	s->final = *reply;
	snprintf(s->final_error, sizeof(s->final_error), "%s",
		 reply->error != NULL ? reply->error : "");
	s->final.error = s->final_error;
	s->final.delivered = NULL;
}

/* ---- trace ---------------------------------------------------------------- */

/* Returns the event, for the caller to add the message's Message-ID (the
 * batch is flushed before, not after, so it stays valid until the next
 * event); NULL when trace.level leaves this kind out. */
struct store_trace_event *imap_trace(struct imap_session *s, const char *event,
				     const char *fmt, ...)
{
	struct store_trace_event *e;
	va_list ap;

	if (!trace_recorded("imap", event))
		return NULL;
	if (s->n_events >= 64)
		imap_trace_flush(s);
	if (s->n_events == s->events_alloc) {
		s->events_alloc = s->events_alloc ? s->events_alloc * 2 : 8;
		s->events = xrealloc(s->events, s->events_alloc * sizeof(*s->events));
	}
	e = &s->events[s->n_events++];
	memset(e, 0, sizeof(*e));
	e->time = time(NULL);
	snprintf(e->event, sizeof(e->event), "%s", event);
	snprintf(e->protocol, sizeof(e->protocol), "imap");
	snprintf(e->client_ip, sizeof(e->client_ip), "%s", s->peer_ip);
	snprintf(e->session, sizeof(e->session), "%s", s->id);
	snprintf(e->account, sizeof(e->account), "%s", s->account);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	return e;
}

void imap_trace_flush(struct imap_session *s)
{
	if (s->n_events == 0)
		return;
	/* Access events need not be durable before any reply (docs/store.md):
	 * they ride with the next batch of writes, at no flush of their own. */
	store_trace_defer(s->env->store, s->events, s->n_events);
	s->n_events = 0;
}

void imap_trace_taken(struct imap_session *s)
{
	s->n_events = 0;
}

/* ---- life cycle ------------------------------------------------------------ */

void imap_ref(struct imap_session *s)
{
	s->refs++;
}

/* imap.max_connections_per_ip: counted as "imap:IP" in the worker's
 * iplimit table (shared with SMTP, which counts the bare IP, and POP3). */
static void imap_session_limit_key(const struct imap_session *s, char *key, size_t size)
{
	snprintf(key, size, "imap:%s", s->peer_ip);
}

static void imap_session_uncount(struct imap_session *s)
{
	char key[80];

	imap_session_limit_key(s, key, sizeof(key));
	iplimit_release(s->env->iplimit, key);
	s->ip_counted = false;
}

/* Counts the connection; false when the IP already has the most. */
static bool imap_session_count(struct imap_session *s)
{
	unsigned max = (unsigned)settings_get_int("imap.max_connections_per_ip");
	struct iplimit *l = s->env->iplimit;
	char key[80];

	if (l == NULL)
		return true;
	imap_session_limit_key(s, key, sizeof(key));
	if (iplimit_acquire(l, key, max) < 0)
		return false;
	s->ip_counted = true;
	return true;
}

static void imap_destroy(struct imap_session *s)
{
	if (s->delay != NULL)
		event_free(s->delay);
	if (s->login_timer != NULL)
		event_free(s->login_timer);
	if (s->ip_counted)
		imap_session_uncount(s);
	imap_view_close(s);
	imap_fetch_free(&s->fetch);
	imap_append_free(&s->append);
	imap_search_free(&s->search);
	imap_parser_free(&s->parser);
	free(s->scratch);
	free(s->events);
	free(s);
}

bool imap_unref(struct imap_session *s)
{
	if (--s->refs > 0)
		return !s->closed;
	imap_destroy(s);
	return false;
}

void imap_close(struct imap_session *s)
{
	imap_enter_state(s, IMAP_STATE_LOGOUT);
	if (s->conn != NULL)
		conn_close(s->conn);
}

void imap_suspend(struct imap_session *s)
{
	s->busy = true;
}

void imap_resume(struct imap_session *s)
{
	if (!s->closed && !s->processing)
		imap_process(s);
}

/* ---- input ----------------------------------------------------------------- */

static const struct imap_cmd_def *imap_cmd_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(imap_commands) / sizeof(imap_commands[0]); i++)
		if (strlen(imap_commands[i].name) == len &&
		    strncasecmp(imap_commands[i].name, name, len) == 0)
			return &imap_commands[i];
	return NULL;
}

static void imap_dispatch(struct imap_session *s, const struct imap_command *c)
{
	const struct imap_arg *args = c->args;
	const struct imap_cmd_def *def;

	snprintf(s->tag, sizeof(s->tag), "%s", c->tag);
	s->uid = false;
	s->cmd = NULL;
	if (strcmp(c->name, "UID") == 0) {
		if (args[0].type != IMAP_ARG_ATOM ||
		    (def = imap_cmd_find(args[0].str, args[0].len)) == NULL ||
		    !(def->flags & IMAP_CMD_UID)) {
			imap_bad(s, "Unknown UID command");
			return;
		}
		s->uid = true;
		args++;
	} else if ((def = imap_cmd_find(c->name, strlen(c->name))) == NULL) {
		imap_bad(s, "Unknown command");
		return;
	}
	if (!(def->states & (1u << s->state))) {
		if (s->state == IMAP_STATE_NOT_AUTH)
			imap_bad(s, "Log in first");
		else if (s->state == IMAP_STATE_SELECTED || !(def->states & IMAP_IN_SELECTED))
			imap_bad(s, "Command not valid in this state");
		else
			imap_bad(s, "No mailbox selected");
		return;
	}
	log_debug("imap", "s=%s command=%s%s", s->id, s->uid ? "UID " : "", def->name);
	s->cmd = def;
	def->fn(s, args);
}

static void imap_parse_error(struct imap_session *s)
{
	const struct imap_parse_error *e = imap_parser_error(s->parser);

	snprintf(s->tag, sizeof(s->tag), "%s", e->tag != NULL ? e->tag : "*");
	s->cmd = NULL;
	s->uid = false;
	if (e->kind == IMAP_PARSE_ERROR_LITERAL_TOO_BIG && e->name != NULL &&
	    strcmp(e->name, "APPEND") == 0)
		imap_no(s, "[TOOBIG] %s", e->text);
	else if (e->kind == IMAP_PARSE_ERROR_LITERAL_TOO_BIG)
		imap_bad(s, "[TOOBIG] %s", e->text);
	else
		imap_bad(s, "%s", e->text);
	imap_append_free(&s->append);
	if (e->fatal && !s->closed) {
		imap_untagged(s, "BYE Lost track of the input, closing");
		imap_close(s);
	}
}

/* Feeds the parser one chunk; the event it returns is handled by
 * imap_event once the consumed input is drained (STARTTLS replaces the
 * input buffer, so nothing may touch it after a command ran). */
static enum imap_parse_result imap_feed(struct imap_session *s, const char *data, size_t len,
					size_t *used_r, const char **line_r, size_t *line_len_r)
{
	if (s->input != IMAP_INPUT_COMMAND)
		return imap_parser_read_line(s->parser, data, len, used_r, line_r, line_len_r);
	return imap_parser_feed(s->parser, data, len, used_r);
}

static void imap_event(struct imap_session *s, enum imap_parse_result r, const char *line,
		       size_t line_len)
{
	switch (r) {
	case IMAP_PARSE_NEED_MORE: break;
	case IMAP_PARSE_CONTINUATION_NEEDED: imap_printf(s, "+ Ready for literal data\r\n"); break;
	case IMAP_PARSE_COMMAND: imap_dispatch(s, imap_parser_command(s->parser)); break;
	case IMAP_PARSE_LINE:
		if (s->input == IMAP_INPUT_SASL)
			imap_sasl_line(s, line, line_len);
		else
			imap_idle_line(s, line, line_len);
		break;
	case IMAP_PARSE_ERROR:
		if (s->input != IMAP_INPUT_COMMAND) {
			s->input = IMAP_INPUT_COMMAND;
			imap_bad(s, "Line too long");
		} else {
			imap_parse_error(s);
		}
		break;
	}
}

static void imap_process(struct imap_session *s)
{
	struct evbuffer_iovec v;
	const char *line = NULL;
	size_t used, line_len = 0;

	imap_ref(s);
	s->processing = true;
	while (!s->closed && s->conn != NULL && !s->busy && s->state != IMAP_STATE_LOGOUT) {
		struct evbuffer *in = conn_input(s->conn);
		if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		used = 0;
		enum imap_parse_result r = imap_feed(s, v.iov_base, v.iov_len, &used, &line, &line_len);
		evbuffer_drain(in, used);
		imap_event(s, r, line, line_len);
	}
	s->processing = false;
	if (!s->closed && s->conn != NULL) {
		if (s->busy)
			conn_pause(s->conn);
		else
			conn_resume(s->conn);
		if (s->n_events > 0 && !s->busy)
			imap_trace_flush(s);
	}
	imap_unref(s);
}

static void imap_on_read(struct conn *conn, void *ctx)
{
	imap_resume(ctx);
}

static void imap_on_written(struct conn *conn, void *ctx)
{
	struct imap_session *s = ctx;

	if (s->pump != NULL) {
		imap_ref(s);
		s->pump(s);
		if (imap_unref(s) && !s->busy)
			imap_resume(s);
	}
}

static void imap_on_close(struct conn *conn, enum conn_close_reason reason, void *ctx)
{
	static const char *const reasons[] = { "peer", "error", "timeout", "server" };
	struct imap_session *s = ctx;

	log_info("imap", "s=%s event=disconnect ip=%s reason=%s", s->id, s->peer_ip,
		 reasons[reason]);
	imap_trace(s, "disconnect", "reason=%s", reasons[reason]);
	s->busy = false;
	imap_trace_flush(s);
	s->closed = true;
	s->conn = NULL;
	imap_view_close(s);
	if (s->end != NULL)
		s->end(s->owner);
	imap_unref(s);
}

static void imap_on_tls(struct conn *conn, void *ctx)
{
	struct imap_session *s = ctx;

	imap_trace(s, "tls", "version=%s cipher=%s", conn_tls_version(conn),
		   conn_tls_cipher(conn));
}

static const struct conn_callbacks imap_conn_callbacks = {
	.on_read = imap_on_read,
	.on_close = imap_on_close,
	.on_tls = imap_on_tls,
	.on_written = imap_on_written,
};

static void imap_login_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	if (s->state != IMAP_STATE_NOT_AUTH || s->conn == NULL)
		return;
	log_info("imap", "s=%s event=login_timeout ip=%s", s->id, s->peer_ip);
	imap_untagged(s, "BYE Login timed out");
	imap_close(s);
}

static struct imap_parser *imap_parser_make(struct imap_session *s)
{
	struct imap_parser_settings set = {
		.max_literal_size = (size_t)settings_get_int("smtp.max_message_size"),
		.literal_begin = imap_append_literal_begin,
		.literal_data = imap_append_literal_data,
		.context = s,
	};

	return imap_parser_new(&set);
}

struct imap_session *imap_session_new(const struct imap_env *env, bool implicit_tls, int fd,
				      const char *peer_ip, const char *hostname,
				      unsigned long id, struct loop *loop,
				      imap_session_end_cb *end, void *owner)
{
	struct imap_session *s = xcalloc(1, sizeof(*s));
	SSL_CTX *tls = implicit_tls ? env->tls_get(env->tls_arg) : NULL;
	unsigned login_secs = (unsigned)settings_get_int("imap.timeout_login");
	struct timeval tv = { login_secs, 0 };
	char caps[512];

	s->env = env;
	s->loop = loop;
	s->reader = loop_data(loop);
	s->end = end;
	s->owner = owner;
	s->refs = 1;
	snprintf(s->id, sizeof(s->id), "%lx", id);
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer_ip);
	snprintf(s->hostname, sizeof(s->hostname), "%s", hostname);
	s->parser = imap_parser_make(s);
	s->conn = conn_new(loop_base(loop), fd, tls, &imap_conn_callbacks, s);
	SSL_CTX_free(tls);
	conn_set_timeout(s->conn, login_secs);
	s->login_timer = evtimer_new(loop_base(loop), imap_login_timeout, s);
	evtimer_add(s->login_timer, &tv);
	log_info("imap", "s=%s event=connect service=%s ip=%s", s->id,
		 implicit_tls ? "imaps" : "imap", s->peer_ip);
	imap_trace(s, "connect", "service=%s", implicit_tls ? "imaps" : "imap");
	if (!imap_session_count(s)) {
		log_info("imap", "s=%s event=refused ip=%s reason=max_connections_per_ip", s->id,
			 s->peer_ip);
		imap_trace(s, "refused", "too many connections from this IP "
					 "(imap.max_connections_per_ip)");
		imap_untagged(s, "BYE [UNAVAILABLE] Too many connections from your address "
				 "(imap.max_connections_per_ip=%lld)",
			      (long long)settings_get_int("imap.max_connections_per_ip"));
		imap_close(s);
		return s;
	}
	imap_capabilities(s, caps, sizeof(caps));
	imap_untagged(s, "OK [CAPABILITY %s] %s Keel IMAP4rev1 server ready", caps, s->hostname);
	return s;
}

void imap_session_free(struct imap_session **sp)
{
	struct imap_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	imap_trace_flush(s);
	imap_view_close(s);
	conn_free(&s->conn);
	s->closed = true;
	imap_unref(s);
}
