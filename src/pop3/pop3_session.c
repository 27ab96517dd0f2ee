#include "pop3/pop3_private.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/login.h"
#include "auth/relay_window.h"
#include "auth/throttle.h"
#include "lib/base64.h"
#include "lib/conn.h"
#include "lib/iplimit.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "pop3/pop3_lock.h"
#include "settings/settings.h"

static const char *const pop3_state_names[] = {
	"authorization", "sasl", "transaction", "stream", "wait", "quit",
};

__attribute__((format(printf, 3, 0))) static void pop3_vreply(struct pop3_session *s,
							     const char *status, const char *fmt,
							     va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	conn_printf(s->conn, "%s %s\r\n", status, text);
	log_debug("pop3", "s=%s reply=\"%s %s\"", s->id, status, text);
}

void pop3_ok(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pop3_vreply(s, "+OK", fmt, ap);
	va_end(ap);
}

void pop3_err(struct pop3_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pop3_vreply(s, "-ERR", fmt, ap);
	va_end(ap);
	if (++s->errors >= (unsigned)settings_get_int("pop3.max_errors")) {
		log_info("pop3", "s=%s event=too_many_errors ip=%s", s->id, s->peer_ip);
		pop3_trace(s, "disconnect", "too many errors (%u)", s->errors);
		conn_printf(s->conn, "-ERR [SYS/PERM] Too many errors, closing\r\n");
		pop3_close(s);
	}
}

void pop3_enter_state(struct pop3_session *s, enum pop3_state state)
{
	if (s->state == state)
		return;
	log_debug("pop3", "s=%s state=%s->%s", s->id, pop3_state_names[s->state],
		  pop3_state_names[state]);
	s->state = state;
	/* pop3.timeout_login passed during a password check: it ends the
	 * session now that the check is over (on the next loop turn, so that
	 * the caller finishes its reply first). */
	if (state == POP3_STATE_AUTHORIZATION && s->login_expired && s->login_timer != NULL)
		event_active(s->login_timer, EV_TIMEOUT, 0);
}

/* Returns the event, for the caller to add the message's Message-ID (the
 * batch is flushed before, not after, so it stays valid until the next
 * event); NULL when trace.level leaves this kind out. */
struct store_trace_event *pop3_trace(struct pop3_session *s, const char *event,
				     const char *fmt, ...)
{
	struct store_trace_event *e;
	va_list ap;

	if (!trace_recorded("pop3", event))
		return NULL;
	if (s->n_events >= 64)
		pop3_trace_flush(s);
	if (s->n_events == s->events_alloc) {
		s->events_alloc = s->events_alloc ? s->events_alloc * 2 : 8;
		s->events = xrealloc(s->events, s->events_alloc * sizeof(*s->events));
	}
	e = &s->events[s->n_events++];
	memset(e, 0, sizeof(*e));
	e->time = time(NULL);
	snprintf(e->event, sizeof(e->event), "%s", event);
	snprintf(e->protocol, sizeof(e->protocol), "pop3");
	snprintf(e->client_ip, sizeof(e->client_ip), "%s", s->peer_ip);
	snprintf(e->session, sizeof(e->session), "%s", s->id);
	snprintf(e->account, sizeof(e->account), "%s", s->account);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
	return e;
}

void pop3_trace_flush(struct pop3_session *s)
{
	if (s->n_events == 0)
		return;
	/* Nothing waits on these: they ride along with the next write. */
	store_trace_defer(s->env->store, s->events, s->n_events);
	s->n_events = 0;
}

void pop3_ref(struct pop3_session *s)
{
	s->refs++;
}

/* pop3.max_connections_per_ip: counted as "pop3:IP" in the worker's
 * iplimit table (shared with SMTP, which counts the bare IP, and IMAP). */
static void pop3_session_limit_key(const struct pop3_session *s, char *key, size_t size)
{
	snprintf(key, size, "pop3:%s", s->peer_ip);
}

/* Counts the connection; false when the IP already has the most. */
static bool pop3_session_count(struct pop3_session *s)
{
	unsigned max = (unsigned)settings_get_int("pop3.max_connections_per_ip");
	struct iplimit *l = s->env->iplimit;
	char key[80];

	if (l == NULL)
		return true;
	pop3_session_limit_key(s, key, sizeof(key));
	if (iplimit_acquire(l, key, max) < 0)
		return false;
	s->ip_counted = true;
	return true;
}

static void pop3_destroy(struct pop3_session *s)
{
	char key[80];

	if (s->ip_counted) {
		pop3_session_limit_key(s, key, sizeof(key));
		iplimit_release(s->env->iplimit, key);
	}
	if (s->login_timer != NULL)
		event_free(s->login_timer);
	if (s->locked)
		pop3_lock_release(s->env->locks, s->user_id);
	if (s->delay != NULL)
		event_free(s->delay);
	store_blob_stream_close(&s->stream.blob);
	free(s->msgs);
	free(s->events);
	free(s);
}

bool pop3_unref(struct pop3_session *s)
{
	if (--s->refs > 0)
		return !s->closed;
	pop3_destroy(s);
	return false;
}

void pop3_close(struct pop3_session *s)
{
	pop3_enter_state(s, POP3_STATE_QUIT);
	conn_close(s->conn);
}

/* ---- AUTHORIZATION ------------------------------------------------------ */

static bool pop3_auth_allowed(struct pop3_session *s)
{
	return conn_is_tls(s->conn) || settings_get_bool("pop3.allow_plaintext_auth");
}

static void pop3_capa(struct pop3_session *s)
{
	bool auth = s->state == POP3_STATE_AUTHORIZATION && pop3_auth_allowed(s);

	conn_printf(s->conn, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			     "AUTH-RESP-CODE\r\nPIPELINING\r\n");
	if (auth)
		conn_printf(s->conn, "USER\r\nSASL PLAIN\r\n");
	if (s->state == POP3_STATE_AUTHORIZATION && !conn_is_tls(s->conn))
		conn_printf(s->conn, "STLS\r\n");
	conn_printf(s->conn, "IMPLEMENTATION Keel\r\n.\r\n");
}

/* The maildrop as it is now: INBOX's messages in uid order. */
static int pop3_load_maildrop(struct pop3_session *s)
{
	struct store_mailbox m;
	struct store_message *list;
	size_t n;

	if (store_mailbox_get(s->reader, s->user_id, "INBOX", &m) < 0 ||
	    store_message_list(s->reader, m.id, 1, 0, &list, &n) < 0)
		return -1;
	s->mailbox_id = m.id;
	s->uidvalidity = m.uidvalidity;
	s->msgs = xcalloc(n, sizeof(*s->msgs));
	s->n_msgs = n;
	for (size_t i = 0; i < n; i++) {
		s->msgs[i].uid = list[i].uid;
		s->msgs[i].size = list[i].size;
		s->msgs[i].blob_id = list[i].blob_id;
	}
	free(list);
	return 0;
}

static void pop3_delayed_failure(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;

	event_free(s->delay);
	s->delay = NULL;
	if (!pop3_unref(s))
		return;
	pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
	pop3_err(s, "[AUTH] Authentication failed");
	pop3_resume(s);
}

static void pop3_login_failed(struct pop3_session *s, const char *username)
{
	unsigned ms = auth_throttle_login_failed(s->env->throttle, "pop3", s->peer_ip, username,
						 time(NULL));
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	log_info("pop3", "s=%s event=auth_failed ip=%s user=%s delay_ms=%u", s->id, s->peer_ip,
		 username, ms);
	pop3_trace(s, "auth", "failed for %s (reply delayed %u ms)", username, ms);
	pop3_ref(s);
	s->delay = evtimer_new(loop_base(s->loop), pop3_delayed_failure, s);
	evtimer_add(s->delay, &tv);
}

static void pop3_logged_in(struct pop3_session *s, const struct auth_login_result *r)
{
	unsigned minutes = (unsigned)settings_get_int("relay.pop_before_smtp_minutes");

	s->user_id = r->user_id;
	snprintf(s->account, sizeof(s->account), "%s", r->address);
	auth_throttle_success(s->env->throttle, r->address);
	if (pop3_lock_take(s->env->locks, s->user_id) < 0) {
		pop3_trace(s, "login", "refused: maildrop in use");
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		s->account[0] = '\0';
		pop3_err(s, "[IN-USE] Mailbox is locked by another POP3 session");
		return;
	}
	s->locked = true;
	if (pop3_load_maildrop(s) < 0) {
		pop3_err(s, "[SYS/TEMP] Cannot open the mailbox, try again later");
		pop3_close(s);
		return;
	}
	if (minutes > 0) {
		relay_window_open(s->env->relay_window, s->peer_ip, time(NULL), minutes * 60);
		log_info("pop3", "s=%s event=relay_window ip=%s minutes=%u", s->id, s->peer_ip,
			 minutes);
	}
	log_info("pop3", "s=%s event=login user=%s ip=%s messages=%zu", s->id, s->account,
		 s->peer_ip, s->n_msgs);
	pop3_trace(s, "login", "messages=%zu%s", s->n_msgs,
		   minutes > 0 ? " pop-before-smtp window opened" : "");
	pop3_enter_state(s, POP3_STATE_TRANSACTION);
	pop3_ok(s, "Logged in, %zu messages", s->n_msgs);
}

static void pop3_login_done(const struct auth_login_result *r, void *ctx)
{
	struct pop3_session *s = ctx;

	if (!pop3_unref(s))
		return;
	if (r->status == 0)
		pop3_logged_in(s, r);
	else
		pop3_login_failed(s, r->address);
	pop3_resume(s);
}

static void pop3_login(struct pop3_session *s, const char *username, const char *password)
{
	if (auth_throttle_login_refused(s->env->throttle, "pop3", s->peer_ip, username,
					time(NULL))) {
		pop3_trace(s, "auth", "refused for %s: blocked (auth.block_after)", username);
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		pop3_err(s, "[SYS/TEMP] Too many failed logins; try again later");
		return;
	}
	pop3_enter_state(s, POP3_STATE_WAIT);
	pop3_ref(s);
	auth_login_check(s->env->workpool, s->reader, s->loop, username, password,
			 pop3_login_done, s);
}

/* AUTH PLAIN's response: [authzid] NUL authcid NUL passwd, base64. */
static void pop3_sasl_plain(struct pop3_session *s, const char *resp, size_t len)
{
	char buf[1024];
	long n = -1;
	const char *authcid = NULL, *password = NULL;

	if (len == 1 && resp[0] == '=')
		len = 0;
	if (len / 4 * 3 + 1 <= sizeof(buf) &&
	    (n = base64_decode(resp, len, (unsigned char *)buf)) >= 0) {
		buf[n] = '\0';
		authcid = memchr(buf, '\0', (size_t)n);
		if (authcid != NULL && ++authcid < buf + n)
			password = memchr(authcid, '\0', (size_t)(buf + n - authcid));
	}
	if (password == NULL || (buf[0] != '\0' && strcmp(buf, authcid) != 0)) {
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		pop3_err(s, "[AUTH] Invalid SASL PLAIN response");
	} else {
		pop3_login(s, authcid, password + 1);
	}
	explicit_bzero(buf, sizeof(buf));
}

static void pop3_cmd_auth(struct pop3_session *s, const struct pop3_command *cmd)
{
	if (cmd->argc == 0) {
		conn_printf(s->conn, "+OK\r\nPLAIN\r\n.\r\n");
		return;
	}
	if (cmd->arglen[0] != 5 || strncasecmp(cmd->argv[0], "PLAIN", 5) != 0) {
		pop3_err(s, "Unsupported authentication mechanism");
		return;
	}
	if (cmd->argc == 2) {
		pop3_sasl_plain(s, cmd->argv[1], cmd->arglen[1]);
		return;
	}
	pop3_enter_state(s, POP3_STATE_SASL);
	conn_printf(s->conn, "+ \r\n");
}

static void pop3_cmd_stls(struct pop3_session *s)
{
	SSL_CTX *tls;

	if (conn_is_tls(s->conn)) {
		pop3_err(s, "TLS already active");
		return;
	}
	if ((tls = s->env->tls_get(s->env->tls_arg)) == NULL) {
		pop3_err(s, "[SYS/TEMP] TLS not available");
		return;
	}
	/* RFC 2595 4 / RFC 3207 4.2: pipelined plaintext after STLS is
	 * dropped by conn_starttls; the USER given before is forgotten. */
	pop3_ok(s, "Begin TLS negotiation");
	conn_starttls(s->conn, tls);
	SSL_CTX_free(tls);
	s->user[0] = '\0';
}

static void pop3_authorization(struct pop3_session *s, const struct pop3_command *cmd)
{
	switch (cmd->verb) {
	case POP3_VERB_CAPA: pop3_capa(s); return;
	case POP3_VERB_QUIT:
		pop3_ok(s, "Bye");
		pop3_close(s);
		return;
	case POP3_VERB_STLS: pop3_cmd_stls(s); return;
	case POP3_VERB_APOP: pop3_err(s, "APOP not supported"); return;
	case POP3_VERB_USER:
	case POP3_VERB_PASS:
	case POP3_VERB_AUTH:
		break;
	default: pop3_err(s, "Not logged in"); return;
	}
	if (!pop3_auth_allowed(s)) {
		pop3_err(s, "[AUTH] Plaintext authentication disallowed on non-secure connection: "
			    "use STLS");
		return;
	}
	if (cmd->verb == POP3_VERB_AUTH) {
		pop3_cmd_auth(s, cmd);
	} else if (cmd->verb == POP3_VERB_USER) {
		snprintf(s->user, sizeof(s->user), "%.*s", (int)cmd->arglen[0], cmd->argv[0]);
		pop3_ok(s, "Send your password");
	} else if (s->user[0] == '\0') {
		pop3_err(s, "USER first");
	} else {
		char password[POP3_USERPASS_MAX + 1];
		snprintf(password, sizeof(password), "%.*s", (int)cmd->arglen[0], cmd->argv[0]);
		pop3_login(s, s->user, password);
		explicit_bzero(password, sizeof(password));
	}
}

/* ---- input -------------------------------------------------------------- */

static void pop3_line(struct pop3_session *s, const char *line, size_t len)
{
	struct pop3_command cmd;
	const char *error;

	if (s->state == POP3_STATE_SASL) {
		pop3_enter_state(s, POP3_STATE_AUTHORIZATION);
		if (len == 1 && line[0] == '*')
			pop3_err(s, "Authentication cancelled");
		else
			pop3_sasl_plain(s, line, len);
		return;
	}
	if (len > POP3_LINE_MAX) {
		pop3_err(s, "Line too long");
		return;
	}
	if (pop3_parse(line, len, &cmd, &error) < 0) {
		pop3_err(s, "%s", error);
		return;
	}
	if (s->state == POP3_STATE_AUTHORIZATION)
		pop3_authorization(s, &cmd);
	else
		pop3_transaction(s, &cmd);
}

static void pop3_process(struct pop3_session *s)
{
	const char *line;
	size_t len;
	bool crlf;
	int r;

	while (!s->closed && (s->state == POP3_STATE_AUTHORIZATION ||
			      s->state == POP3_STATE_SASL || s->state == POP3_STATE_TRANSACTION)) {
		r = conn_read_line(s->conn, POP3_AUTH_LINE_MAX, &line, &len, &crlf);
		if (r == 0)
			return;
		if (r < 0)
			pop3_err(s, "Line too long");
		else
			pop3_line(s, line, len);
	}
}

void pop3_resume(struct pop3_session *s)
{
	if (!s->closed)
		pop3_process(s);
}

static void pop3_on_read(struct conn *conn, void *ctx)
{
	pop3_process(ctx);
}

static void pop3_on_written(struct conn *conn, void *ctx)
{
	struct pop3_session *s = ctx;

	if (s->state == POP3_STATE_STREAM)
		pop3_stream_pump(s);
}

static void pop3_on_close(struct conn *conn, enum conn_close_reason reason, void *ctx)
{
	static const char *const reasons[] = { "peer", "error", "timeout", "server" };
	struct pop3_session *s = ctx;

	log_info("pop3", "s=%s event=disconnect ip=%s reason=%s", s->id, s->peer_ip,
		 reasons[reason]);
	pop3_trace(s, "disconnect", "reason=%s", reasons[reason]);
	pop3_trace_flush(s);
	s->closed = true;
	s->conn = NULL;
	if (s->end != NULL)
		s->end(s->owner);
	pop3_unref(s);
}

static void pop3_on_tls(struct conn *conn, void *ctx)
{
	struct pop3_session *s = ctx;

	pop3_trace(s, "tls", "version=%s cipher=%s", conn_tls_version(conn),
		   conn_tls_cipher(conn));
}

static const struct conn_callbacks pop3_conn_callbacks = {
	.on_read = pop3_on_read,
	.on_close = pop3_on_close,
	.on_tls = pop3_on_tls,
	.on_written = pop3_on_written,
};

/* pop3.timeout_login: the time from connecting to logging in, however
 * busy the client keeps the line (the idle timeout does not end a client
 * that sends a byte now and then). */
static void pop3_login_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;

	if (s->closed || s->conn == NULL)
		return;
	if (s->state == POP3_STATE_WAIT) {
		/* A password check or a failure delay: pop3_enter_state() calls
		 * again when it is over, if it does not end in a login. */
		s->login_expired = true;
		return;
	}
	if (s->state != POP3_STATE_AUTHORIZATION)
		return;
	log_info("pop3", "s=%s event=login_timeout ip=%s", s->id, s->peer_ip);
	pop3_trace(s, "disconnect", "login timed out (pop3.timeout_login)");
	conn_printf(s->conn, "-ERR [SYS/TEMP] Login timed out\r\n");
	pop3_close(s);
}

struct pop3_session *pop3_session_new(const struct pop3_env *env, bool implicit_tls, int fd,
				      const char *peer_ip, const char *hostname,
				      unsigned long id, struct loop *loop,
				      pop3_session_end_cb *end, void *owner)
{
	struct pop3_session *s = xcalloc(1, sizeof(*s));
	SSL_CTX *tls = implicit_tls ? env->tls_get(env->tls_arg) : NULL;
	struct timeval login_tv = { (time_t)settings_get_int("pop3.timeout_login"), 0 };

	s->env = env;
	s->loop = loop;
	s->reader = loop_data(loop);
	s->end = end;
	s->owner = owner;
	s->refs = 1;
	snprintf(s->id, sizeof(s->id), "%lx", id);
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer_ip);
	snprintf(s->hostname, sizeof(s->hostname), "%s", hostname);
	s->conn = conn_new(loop_base(loop), fd, tls, &pop3_conn_callbacks, s);
	SSL_CTX_free(tls);
	conn_set_timeout(s->conn, (unsigned)settings_get_int("pop3.timeout"));
	log_info("pop3", "s=%s event=connect service=%s ip=%s", s->id,
		 implicit_tls ? "pop3s" : "pop3", s->peer_ip);
	pop3_trace(s, "connect", "service=%s", implicit_tls ? "pop3s" : "pop3");
	if (!pop3_session_count(s)) {
		log_info("pop3", "s=%s event=refused ip=%s reason=max_connections_per_ip", s->id,
			 s->peer_ip);
		pop3_trace(s, "refused", "too many connections from this IP "
					 "(pop3.max_connections_per_ip)");
		conn_printf(s->conn,
			    "-ERR [SYS/TEMP] Too many connections from your address "
			    "(pop3.max_connections_per_ip=%lld)\r\n",
			    (long long)settings_get_int("pop3.max_connections_per_ip"));
		pop3_close(s);
		return s;
	}
	s->login_timer = evtimer_new(loop_base(loop), pop3_login_timeout, s);
	evtimer_add(s->login_timer, &login_tv);
	pop3_ok(s, "%s Keel POP3 server ready", s->hostname);
	return s;
}

void pop3_session_free(struct pop3_session **sp)
{
	struct pop3_session *s = *sp;

	if (s == NULL)
		return;
	*sp = NULL;
	pop3_trace_flush(s);
	conn_free(&s->conn);
	s->closed = true;
	pop3_unref(s);
}
