/* Any state: CAPABILITY NOOP LOGOUT ID; not authenticated: STARTTLS LOGIN
 * AUTHENTICATE (PLAIN, with SASL-IR); authenticated: ENABLE NAMESPACE. */
#include "imap/imap_private.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/login.h"
#include "auth/relay_window.h"
#include "auth/throttle.h"
#include "lib/base64.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "settings/settings.h"

static bool imap_auth_allowed(const struct imap_session *s)
{
	return imap_tls(s) || settings_get_bool("imap.allow_plaintext_auth");
}

void imap_capabilities(struct imap_session *s, char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE");

	if (s->state == IMAP_STATE_NOT_AUTH) {
		if (!imap_tls(s))
			n += (size_t)snprintf(buf + n, size - n, " STARTTLS");
		if (imap_auth_allowed(s))
			snprintf(buf + n, size - n, " AUTH=PLAIN");
		else
			snprintf(buf + n, size - n, " LOGINDISABLED");
		return;
	}
	snprintf(buf + n, size - n,
		 " NAMESPACE UNSELECT UIDPLUS MOVE CHILDREN SPECIAL-USE LIST-EXTENDED"
		 " LIST-STATUS CREATE-SPECIAL-USE CONDSTORE QRESYNC ESEARCH SORT QUOTA QUOTA=RES-STORAGE"
		 " MULTIAPPEND BINARY APPENDLIMIT=%lld",
		 (long long)settings_get_int("smtp.max_message_size"));
}

void imap_cmd_capability(struct imap_session *s, const struct imap_arg *args)
{
	char caps[512];

	imap_capabilities(s, caps, sizeof(caps));
	imap_untagged(s, "CAPABILITY %s", caps);
	imap_ok(s, "Capability completed");
}

void imap_cmd_noop(struct imap_session *s, const struct imap_arg *args)
{
	imap_ok(s, "NOOP completed");
}

void imap_cmd_logout(struct imap_session *s, const struct imap_arg *args)
{
	imap_untagged(s, "BYE Keel logging out");
	imap_ok(s, "LOGOUT completed");
	imap_close(s);
}

void imap_cmd_id(struct imap_session *s, const struct imap_arg *args)
{
	const struct imap_arg *l = &args[0];
	char client[256] = "";
	size_t n = 0;

	/* The client's own ID (RFC 2971) goes to the log and the trace. */
	for (size_t i = 0; l->type == IMAP_ARG_LIST && i + 1 < l->n && n < sizeof(client); i += 2) {
		size_t klen, vlen;
		const char *k = imap_arg_string(&l->list[i], &klen);
		const char *v = imap_arg_string(&l->list[i + 1], &vlen);
		if (k == NULL || v == NULL || memchr(v, '"', vlen) != NULL ||
		    (strcasecmp(k, "name") != 0 && strcasecmp(k, "version") != 0))
			continue;
		n += (size_t)snprintf(client + n, sizeof(client) - n, "%s%s=\"%.*s\"",
				      n ? " " : "", strcasecmp(k, "name") == 0 ? "name" : "version",
				      (int)(vlen > 64 ? 64 : vlen), v);
	}
	if (client[0] != '\0') {
		for (char *p = client; *p != '\0'; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		log_info("imap", "s=%s event=client_id %s", s->id, client);
		imap_trace(s, "client_id", "%s", client);
	}
	imap_untagged(s, "ID (\"name\" \"Keel\" \"version\" \"%s\")", KEEL_VERSION);
	imap_ok(s, "ID completed");
}

void imap_cmd_namespace(struct imap_session *s, const struct imap_arg *args)
{
	imap_untagged(s, "NAMESPACE ((\"\" \"/\")) NIL NIL");
	imap_ok(s, "NAMESPACE completed");
}

void imap_cmd_enable(struct imap_session *s, const struct imap_arg *args)
{
	bool condstore = false, qresync = false, rev2 = false;

	if (args[0].type == IMAP_ARG_EOL) {
		imap_bad(s, "ENABLE needs capabilities");
		return;
	}
	for (const struct imap_arg *a = args; a->type != IMAP_ARG_EOL; a++) {
		if (imap_arg_atom_equals(a, "CONDSTORE"))
			condstore = true;
		else if (imap_arg_atom_equals(a, "QRESYNC"))
			qresync = true;
		else if (imap_arg_atom_equals(a, "IMAP4rev2"))
			rev2 = true;
		else if (a->type != IMAP_ARG_ATOM) {
			imap_bad(s, "ENABLE takes atoms");
			return;
		}
	}
	/* Only what is implemented is enabled; the rest is ignored (RFC 5161 3.1). */
	condstore = condstore && !s->condstore;
	qresync = qresync && !s->qresync;
	s->condstore |= condstore || qresync;
	s->qresync |= qresync;
	/* From here on the session follows RFC 9051 (docs/imap.md lists what
	 * changes): no \Recent, SEARCH answered by ESEARCH, UTF-8 names. */
	rev2 = rev2 && !s->rev2;
	s->rev2 |= rev2;
	imap_untagged(s, "ENABLED%s%s%s", condstore ? " CONDSTORE" : "", qresync ? " QRESYNC" : "",
		      rev2 ? " IMAP4rev2" : "");
	imap_ok(s, "ENABLE completed");
}

void imap_cmd_starttls(struct imap_session *s, const struct imap_arg *args)
{
	SSL_CTX *tls;

	if (imap_tls(s)) {
		imap_bad(s, "TLS already active");
		return;
	}
	if ((tls = s->env->tls_get(s->env->tls_arg)) == NULL) {
		imap_no(s, "[UNAVAILABLE] TLS not available");
		return;
	}
	/* RFC 3501 6.2.1: pipelined plaintext after STARTTLS is dropped by
	 * conn_starttls. */
	imap_ok(s, "Begin TLS negotiation now");
	conn_starttls(s->conn, tls);
	SSL_CTX_free(tls);
}

/* ---- LOGIN and AUTHENTICATE ------------------------------------------------ */

static void imap_delayed_failure(evutil_socket_t fd, short what, void *arg)
{
	struct imap_session *s = arg;

	event_free(s->delay);
	s->delay = NULL;
	if (!imap_unref(s))
		return;
	imap_no(s, "[AUTHENTICATIONFAILED] Authentication failed");
	imap_resume(s);
}

static void imap_login_failed(struct imap_session *s, const char *username)
{
	unsigned ms = auth_throttle_login_failed(s->env->throttle, "imap", s->peer_ip, username,
						 time(NULL));
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	log_info("imap", "s=%s event=auth_failed ip=%s user=%s delay_ms=%u", s->id, s->peer_ip,
		 username, ms);
	imap_trace(s, "auth", "failed for %s (reply delayed %u ms)", username, ms);
	imap_ref(s);
	s->delay = evtimer_new(loop_base(s->loop), imap_delayed_failure, s);
	evtimer_add(s->delay, &tv);
}

static void imap_logged_in(struct imap_session *s, const struct auth_login_result *r)
{
	unsigned minutes = (unsigned)settings_get_int("relay.pop_before_smtp_minutes");
	char caps[512];

	s->user_id = r->user_id;
	snprintf(s->account, sizeof(s->account), "%s", r->address);
	auth_throttle_success(s->env->throttle, r->address);
	if (minutes > 0) {
		relay_window_open(s->env->relay_window, s->peer_ip, time(NULL), minutes * 60);
		log_info("imap", "s=%s event=relay_window ip=%s minutes=%u", s->id, s->peer_ip,
			 minutes);
	}
	log_info("imap", "s=%s event=login user=%s ip=%s", s->id, s->account, s->peer_ip);
	imap_trace(s, "login", "%s", minutes > 0 ? "pop-before-smtp window opened" : "");
	imap_enter_state(s, IMAP_STATE_AUTH);
	if (s->conn != NULL)
		conn_set_timeout(s->conn, (unsigned)settings_get_int("imap.timeout_idle"));
	imap_capabilities(s, caps, sizeof(caps));
	imap_ok(s, "[CAPABILITY %s] Logged in", caps);
}

static void imap_login_done(const struct auth_login_result *r, void *ctx)
{
	struct imap_session *s = ctx;

	if (!imap_unref(s))
		return;
	if (r->status == 0) {
		imap_logged_in(s, r);
		imap_resume(s);
	} else {
		imap_login_failed(s, r->address);
	}
}

static void imap_login(struct imap_session *s, const char *username, const char *password)
{
	if (auth_throttle_login_refused(s->env->throttle, "imap", s->peer_ip, username,
					time(NULL))) {
		imap_trace(s, "auth", "refused for %s: blocked (auth.block_after)", username);
		imap_no(s, "[UNAVAILABLE] Too many failed logins; try again later");
		return;
	}
	imap_suspend(s);
	imap_ref(s);
	auth_login_check(s->env->workpool, s->reader, s->loop, username, password,
			 imap_login_done, s);
}

void imap_cmd_login(struct imap_session *s, const struct imap_arg *args)
{
	char user[STORE_ADDR_MAX + 1], password[1024];
	const char *u, *p;
	size_t ulen, plen;

	if ((u = imap_arg_string(&args[0], &ulen)) == NULL ||
	    (p = imap_arg_string(&args[1], &plen)) == NULL || args[2].type != IMAP_ARG_EOL) {
		imap_bad(s, "LOGIN needs a user name and a password");
		return;
	}
	if (!imap_auth_allowed(s)) {
		imap_no(s, "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
			   "connection: use STARTTLS");
		return;
	}
	if (ulen >= sizeof(user) || plen >= sizeof(password) || memchr(u, '\0', ulen) != NULL ||
	    memchr(p, '\0', plen) != NULL) {
		imap_no(s, "[AUTHENTICATIONFAILED] Authentication failed");
		return;
	}
	memcpy(user, u, ulen + 1);
	memcpy(password, p, plen + 1);
	imap_login(s, user, password);
	explicit_bzero(password, sizeof(password));
}

/* SASL PLAIN: [authzid] NUL authcid NUL passwd, base64. */
static void imap_sasl_plain(struct imap_session *s, const char *resp, size_t len)
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
	if (password == NULL || (buf[0] != '\0' && strcmp(buf, authcid) != 0))
		imap_bad(s, "Invalid SASL PLAIN response");
	else
		imap_login(s, authcid, password + 1);
	explicit_bzero(buf, sizeof(buf));
}

void imap_sasl_line(struct imap_session *s, const char *line, size_t len)
{
	s->input = IMAP_INPUT_COMMAND;
	s->busy = false;
	if (len == 1 && line[0] == '*')
		imap_bad(s, "Authentication cancelled");
	else
		imap_sasl_plain(s, line, len);
}

void imap_cmd_authenticate(struct imap_session *s, const struct imap_arg *args)
{
	size_t len;

	if (!imap_arg_atom_equals(&args[0], "PLAIN")) {
		imap_no(s, "Unsupported authentication mechanism");
		return;
	}
	if (!imap_auth_allowed(s)) {
		imap_no(s, "[PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
			   "connection: use STARTTLS");
		return;
	}
	if (args[1].type != IMAP_ARG_EOL) {
		const char *ir = imap_arg_string(&args[1], &len);
		if (ir == NULL) {
			imap_bad(s, "Invalid initial response");
			return;
		}
		imap_sasl_plain(s, ir, len);
		return;
	}
	s->input = IMAP_INPUT_SASL;
	imap_printf(s, "+ \r\n");
}
