/* AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN, over TLS only.  The
 * password is checked on the work pool (argon2id is slow by design); a
 * failure is answered after a delay that grows per IP and per account
 * (src/auth/login.h checks the password). */
#include "smtp/smtp_private.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/login.h"
#include "auth/throttle.h"
#include "lib/base64.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

bool smtp_auth_offered(const struct smtp_session *s)
{
	return conn_is_tls(s->conn) || s->service == SMTP_SERVICE_SUBMISSIONS;
}

static void smtp_auth_end(struct smtp_session *s)
{
	smtp_auth_wipe(s);
	if (s->state == SMTP_STATE_AUTH || s->state == SMTP_STATE_WAIT)
		smtp_enter_state(s, SMTP_STATE_READY);
}

static void smtp_auth_delayed_failure(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	event_free(s->delay);
	s->delay = NULL;
	if (!smtp_unref(s))
		return;
	smtp_auth_end(s);
	smtp_error(s, 535, "5.7.8", "Error: authentication failed");
	smtp_resume(s);
}

static void smtp_auth_failed(struct smtp_session *s, const char *username)
{
	unsigned ms = auth_throttle_login_failed(s->env->throttle, "smtp", s->peer_ip, username,
						 time(NULL));
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	log_info("smtp", "s=%s event=auth_failed ip=%s user=%s delay_ms=%u", s->id, s->peer_ip,
		 username, ms);
	smtp_trace(s, "auth", NULL, "failed for %s (reply delayed %u ms)", username, ms);
	smtp_enter_state(s, SMTP_STATE_WAIT);
	smtp_ref(s);
	s->delay = evtimer_new(loop_base(s->loop), smtp_auth_delayed_failure, s);
	evtimer_add(s->delay, &tv);
}

static void smtp_auth_done(const struct auth_login_result *result, void *ctx)
{
	struct smtp_session *s = ctx;

	if (!smtp_unref(s))
		return;
	if (result->status == 0) {
		s->authenticated = true;
		s->auth_user_id = result->user_id;
		snprintf(s->auth_user, sizeof(s->auth_user), "%s", result->address);
		auth_throttle_success(s->env->throttle, result->address);
		log_info("smtp", "s=%s event=auth user=%s mechanism=%s", s->id, s->auth_user,
			 s->auth.mechanism);
		smtp_trace(s, "auth", NULL, "success mechanism=%s", s->auth.mechanism);
		smtp_auth_end(s);
		smtp_reply(s, 235, "2.7.0", "Authentication successful");
		smtp_resume(s);
	} else {
		smtp_auth_failed(s, result->address);
	}
}

/* Checks username/password off the loop; the reply comes from
 * smtp_auth_done(). */
static void smtp_auth_check(struct smtp_session *s, const char *username, const char *password)
{
	if (auth_throttle_login_refused(s->env->throttle, "smtp", s->peer_ip, username,
					time(NULL))) {
		smtp_trace(s, "auth", NULL, "refused for %s: blocked (auth.block_after)", username);
		smtp_auth_end(s);
		smtp_error(s, 454, "4.7.0", "Too many failed logins; try again later");
		return;
	}
	smtp_enter_state(s, SMTP_STATE_WAIT);
	smtp_ref(s);
	auth_login_check(s->env->workpool, s->reader, s->loop, username, password,
			 smtp_auth_done, s);
}

/* Decodes a SASL response into buf (NUL-terminated); -1 if not base64. */
static long smtp_auth_decode(const char *line, size_t len, char *buf, size_t size)
{
	long n;

	if (len == 1 && line[0] == '=')
		len = 0;
	if (len / 4 * 3 + 1 > size)
		return -1;
	n = base64_decode(line, len, (unsigned char *)buf);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* PLAIN: [authzid] NUL authcid NUL passwd. */
static void smtp_auth_plain(struct smtp_session *s, const char *resp, size_t len)
{
	char buf[1024];
	long n = smtp_auth_decode(resp, len, buf, sizeof(buf));
	const char *authzid = buf, *authcid, *password;

	if (n < 0 || (authcid = memchr(buf, '\0', (size_t)n)) == NULL) {
		smtp_auth_end(s);
		smtp_error(s, 501, "5.5.2", "Error: invalid SASL PLAIN response");
		return;
	}
	authcid++;
	password = memchr(authcid, '\0', (size_t)(buf + n - authcid));
	if (password == NULL || (authzid[0] != '\0' && strcasecmp(authzid, authcid) != 0)) {
		smtp_auth_end(s);
		smtp_error(s, 501, "5.5.2", "Error: invalid SASL PLAIN response");
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	smtp_auth_check(s, authcid, password + 1);
	explicit_bzero(buf, sizeof(buf));
}

static void smtp_auth_login(struct smtp_session *s, const char *resp, size_t len)
{
	char buf[1024];

	if (smtp_auth_decode(resp, len, buf, sizeof(buf)) < 0) {
		smtp_auth_end(s);
		smtp_error(s, 501, "5.5.2", "Error: invalid SASL LOGIN response");
		return;
	}
	if (s->auth.step == 0) {
		snprintf(s->auth.username, sizeof(s->auth.username), "%.*s", STORE_ADDR_MAX, buf);
		s->auth.step = 1;
		smtp_enter_state(s, SMTP_STATE_AUTH);
		smtp_reply(s, 334, "", "UGFzc3dvcmQ6"); /* "Password:" */
	} else {
		smtp_auth_check(s, s->auth.username, buf);
	}
	explicit_bzero(buf, sizeof(buf));
}

void smtp_auth_line(struct smtp_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		smtp_auth_end(s);
		smtp_error(s, 501, "5.7.0", "Authentication cancelled");
		return;
	}
	if (strcmp(s->auth.mechanism, "PLAIN") == 0)
		smtp_auth_plain(s, line, len);
	else
		smtp_auth_login(s, line, len);
}

void smtp_cmd_auth(struct smtp_session *s, const struct smtp_command *cmd)
{
	if (s->authenticated) {
		smtp_error(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (!smtp_auth_offered(s)) {
		smtp_error(s, 538, "5.7.11", "Encryption required for requested authentication "
					     "mechanism");
		return;
	}
	if (strcmp(cmd->auth_mechanism, "PLAIN") != 0 && strcmp(cmd->auth_mechanism, "LOGIN") != 0) {
		smtp_error(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	memset(&s->auth, 0, sizeof(s->auth));
	snprintf(s->auth.mechanism, sizeof(s->auth.mechanism), "%s", cmd->auth_mechanism);
	if (cmd->arg != NULL) {
		smtp_auth_line(s, cmd->arg, cmd->arg_len);
		return;
	}
	smtp_enter_state(s, SMTP_STATE_AUTH);
	if (strcmp(cmd->auth_mechanism, "PLAIN") == 0)
		smtp_reply(s, 334, "", "%s", "");
	else
		smtp_reply(s, 334, "", "VXNlcm5hbWU6"); /* "Username:" */
}
