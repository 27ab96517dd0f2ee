/* AUTH (RFC 4954): PLAIN (RFC 4616) and LOGIN, over TLS only.  The
 * password is checked on the work pool (argon2id is slow by design); a
 * failure is answered after a delay that grows per IP and per account. */
#include "smtp/smtp_private.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/password.h"
#include "auth/throttle.h"
#include "lib/base64.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

/* A hash of a random password nobody knows, checked when the user does
 * not exist, so that an unknown user costs as much time as a wrong
 * password (no user enumeration by timing).  Made once, on a pool thread. */
static char smtp_auth_dummy_hash[STORE_HASH_MAX + 1];
static pthread_once_t smtp_auth_dummy_once = PTHREAD_ONCE_INIT;

static void smtp_auth_dummy_init(void)
{
	char password[PASSWORD_GENERATE_SIZE];
	const char *error;

	if (password_generate(password, sizeof(password)) < 0 ||
	    password_hash(password, smtp_auth_dummy_hash, sizeof(smtp_auth_dummy_hash),
			  &error) < 0)
		smtp_auth_dummy_hash[0] = '\0';
	explicit_bzero(password, sizeof(password));
}

struct smtp_auth_job {
	struct smtp_session *s;
	char hash[STORE_HASH_MAX + 1];
	char password[512];
	char username[STORE_ADDR_MAX + 1];
	int64_t user_id;
	bool known; /* the user exists and is enabled */
	int result;
};

bool smtp_auth_offered(const struct smtp_session *s)
{
	return conn_is_tls(s->conn) || s->service == SMTP_SERVICE_SUBMISSIONS;
}

static void smtp_auth_end(struct smtp_session *s)
{
	explicit_bzero(&s->auth, sizeof(s->auth));
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
	unsigned ms = auth_throttle_failure(
		s->env->throttle, s->peer_ip, username,
		(unsigned)settings_get_int("auth.failure_delay") * 1000,
		(unsigned)settings_get_int("auth.failure_delay_max") * 1000, time(NULL));
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	log_info("smtp", "s=%s event=auth_failed ip=%s user=%s delay_ms=%u", s->id, s->peer_ip,
		 username, ms);
	smtp_trace(s, "auth", NULL, "failed for %s (reply delayed %u ms)", username, ms);
	smtp_enter_state(s, SMTP_STATE_WAIT);
	smtp_ref(s);
	s->delay = evtimer_new(loop_base(s->loop), smtp_auth_delayed_failure, s);
	evtimer_add(s->delay, &tv);
}

static void smtp_auth_work(void *arg)
{
	struct smtp_auth_job *job = arg;

	pthread_once(&smtp_auth_dummy_once, smtp_auth_dummy_init);
	job->result = password_verify(job->known ? job->hash : smtp_auth_dummy_hash,
				      job->password);
	if (!job->known)
		job->result = -1;
	explicit_bzero(job->password, sizeof(job->password));
}

static void smtp_auth_done(void *arg)
{
	struct smtp_auth_job *job = arg;
	struct smtp_session *s = job->s;

	if (smtp_unref(s)) {
		if (job->result == 0) {
			s->authenticated = true;
			s->auth_user_id = job->user_id;
			snprintf(s->auth_user, sizeof(s->auth_user), "%s", job->username);
			auth_throttle_success(s->env->throttle, job->username);
			log_info("smtp", "s=%s event=auth user=%s mechanism=%s", s->id,
				 s->auth_user, s->auth.mechanism);
			smtp_trace(s, "auth", NULL, "success mechanism=%s", s->auth.mechanism);
			smtp_auth_end(s);
			smtp_reply(s, 235, "2.7.0", "Authentication successful");
			smtp_resume(s);
		} else {
			smtp_auth_failed(s, job->username);
		}
	}
	explicit_bzero(job, sizeof(*job));
	free(job);
}

/* Checks username/password off the loop; the reply comes from
 * smtp_auth_done(). */
static void smtp_auth_check(struct smtp_session *s, const char *username, const char *password)
{
	struct smtp_auth_job *job = xcalloc(1, sizeof(*job));
	struct store_user u;

	job->s = s;
	snprintf(job->username, sizeof(job->username), "%s", username);
	snprintf(job->password, sizeof(job->password), "%s", password);
	if (store_user_get(s->reader, username, &u) == 0 && u.enabled) {
		job->known = true;
		job->user_id = u.id;
		snprintf(job->username, sizeof(job->username), "%s", u.address);
		snprintf(job->hash, sizeof(job->hash), "%s", u.password_hash);
	}
	explicit_bzero(&u, sizeof(u));
	smtp_enter_state(s, SMTP_STATE_WAIT);
	smtp_ref(s);
	workpool_run(s->env->workpool, smtp_auth_work, s->loop, smtp_auth_done, job);
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
