#include "keeld/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "access/access_policy.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "store/store.h"
#include "trace/trace.h"

struct session {
	struct session *prev, *next;
	struct session_env *env;
	struct loop *loop;
	enum service service;
	struct smtp_session *smtp; /* an SMTP session */
	struct pop3_session *pop3; /* a POP3 session */
	struct imap_session *imap; /* an IMAP session */
	struct conn *refused;      /* a client refused by an access rule */
	unsigned long id;
	char peer[INET6_ADDRSTRLEN + 8];
};

void session_env_init(struct session_env *env, const char *hostname,
		      SSL_CTX *(*tls_get)(void *), void *tls_arg, struct store *store)
{
	memset(env, 0, sizeof(*env));
	snprintf(env->hostname, sizeof(env->hostname), "%s", hostname);
	env->tls_get = tls_get;
	env->tls_arg = tls_arg;
	env->store = store;
	env->smtp.tls_get = tls_get;
	env->smtp.tls_arg = tls_arg;
	env->smtp.store = store;
	env->pop3.tls_get = tls_get;
	env->pop3.tls_arg = tls_arg;
	env->pop3.store = store;
	env->imap.tls_get = tls_get;
	env->imap.tls_arg = tls_arg;
	env->imap.store = store;
	pthread_mutex_init(&env->lock, NULL);
	/* Session ids stay unique across worker restarts: the trace keys on
	 * them. */
	env->next_id = (unsigned long)time(NULL) << 20;
}

void session_env_set_hostname(struct session_env *env, const char *hostname)
{
	pthread_mutex_lock(&env->lock);
	snprintf(env->hostname, sizeof(env->hostname), "%s", hostname);
	pthread_mutex_unlock(&env->lock);
}

void session_env_deinit(struct session_env *env)
{
	pthread_mutex_destroy(&env->lock);
}

static void session_peer_string(const struct sockaddr *sa, char *buf, size_t size)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf, size);
	else
		snprintf(buf, size, "unknown");
}

static void session_unlink(struct session *s)
{
	struct session_env *env = s->env;

	pthread_mutex_lock(&env->lock);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		env->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	pthread_mutex_unlock(&env->lock);
}

static void session_on_end(void *arg)
{
	struct session *s = arg;

	session_unlink(s);
	free(s);
}

static bool session_smtp_start(struct session_env *env, struct session *s, int fd,
			       const char *hostname)
{
	enum smtp_service kind;

	switch (s->service) {
	case SERVICE_SMTP: kind = SMTP_SERVICE_MX; break;
	case SERVICE_SUBMISSION: kind = SMTP_SERVICE_SUBMISSION; break;
	case SERVICE_SUBMISSIONS: kind = SMTP_SERVICE_SUBMISSIONS; break;
	default: return false;
	}
	s->smtp = smtp_session_new(&env->smtp, kind, fd, s->peer, hostname, s->id, s->loop,
				   session_on_end, s);
	return true;
}

static bool session_pop3_start(struct session_env *env, struct session *s, int fd,
			       const char *hostname)
{
	if (s->service != SERVICE_POP3 && s->service != SERVICE_POP3S)
		return false;
	s->pop3 = pop3_session_new(&env->pop3, s->service == SERVICE_POP3S, fd, s->peer, hostname,
				   s->id, s->loop, session_on_end, s);
	return true;
}

static bool session_imap_start(struct session_env *env, struct session *s, int fd,
			       const char *hostname)
{
	if (s->service != SERVICE_IMAP && s->service != SERVICE_IMAPS)
		return false;
	s->imap = imap_session_new(&env->imap, s->service == SERVICE_IMAPS, fd, s->peer, hostname,
				   s->id, s->loop, session_on_end, s);
	return true;
}

/* ---- refusal by an access rule (docs/access.md) ---------------------------- */

static void session_refused_read(struct conn *conn, void *ctx)
{
	/* Whatever the client says, the answer was given: wait for the close. */
}

static void session_refused_close(struct conn *conn, enum conn_close_reason reason, void *ctx)
{
	struct session *s = ctx;

	s->refused = NULL;
	session_unlink(s);
	free(s);
}

static const struct conn_callbacks session_refused_callbacks = {
	.on_read = session_refused_read,
	.on_close = session_refused_close,
};

/* Each protocol's own refusal: a 554 greeting, an untagged BYE, an -ERR
 * greeting.  The client hears the rule; the log hears the detail too. */
static void session_refusal_text(enum service service, const char *hostname, const char *rule,
				 char *buf, size_t size)
{
	switch (service) {
	case SERVICE_IMAP:
	case SERVICE_IMAPS:
		snprintf(buf, size, "* BYE Access denied (%s)\r\n", rule);
		break;
	case SERVICE_POP3:
	case SERVICE_POP3S:
		snprintf(buf, size, "-ERR Access denied (%s)\r\n", rule);
		break;
	default:
		snprintf(buf, size, "554 5.7.1 %s Access denied (%s)\r\n", hostname, rule);
		break;
	}
}

/* event "refused" (detail "rule=RULE: WHY") or "access" (a client a group
 * let in: "allowed by RULE: WHY"). */
static void session_access_trace(struct session_env *env, struct session *s, bool refused,
				 const char *rule, const char *why)
{
	struct store_trace_event e;

	if (!trace_recorded(service_name(s->service), refused ? "refused" : "access"))
		return;
	memset(&e, 0, sizeof(e));
	e.time = time(NULL);
	snprintf(e.event, sizeof(e.event), "%s", refused ? "refused" : "access");
	snprintf(e.protocol, sizeof(e.protocol), "%s", service_name(s->service));
	snprintf(e.client_ip, sizeof(e.client_ip), "%s", s->peer);
	snprintf(e.session, sizeof(e.session), "%lx", s->id);
	if (refused)
		snprintf(e.detail, sizeof(e.detail), "rule=%s: %s", rule, why);
	else
		snprintf(e.detail, sizeof(e.detail), "allowed by %s: %s", rule, why);
	store_trace_defer(env->store, &e, 1);
}

/* Answers and closes a connection the service's access rules refuse (over
 * TLS on an implicit-TLS port): true when it did. */
static bool session_refused(struct session_env *env, struct session *s, int fd,
			    const struct sockaddr *sa, SSL_CTX *tls, const char *hostname)
{
	char rule[256], why[256], text[1024];

	if (access_service_check(service_name(s->service), sa, rule, why, sizeof(why)) == 0) {
		if (why[0] != '\0') /* a group let it in */
			session_access_trace(env, s, false, rule, why);
		return false;
	}
	log_info("session", "s=%lx event=refused service=%s ip=%s rule=%s reason=\"%s\"", s->id,
		 service_name(s->service), s->peer, rule, why);
	session_access_trace(env, s, true, rule, why);
	session_refusal_text(s->service, hostname, rule, text, sizeof(text));
	s->refused = conn_new(loop_base(s->loop), fd, tls, &session_refused_callbacks, s);
	conn_set_timeout(s->refused, 30);
	conn_printf(s->refused, "%s", text);
	conn_close(s->refused);
	return true;
}

void session_accept(struct session_env *env, enum service service, int fd,
		    const struct sockaddr *sa, socklen_t sa_len, struct loop *loop)
{
	struct session *s = xcalloc(1, sizeof(*s));
	SSL_CTX *tls = NULL;
	char hostname[256];

	s->env = env;
	s->loop = loop;
	s->service = service;
	session_peer_string(sa, s->peer, sizeof(s->peer));
	if (service_implicit_tls(service) && (tls = env->tls_get(env->tls_arg)) == NULL) {
		log_error("session", "event=tls_unavailable service=%s peer=%s",
			  service_name(service), s->peer);
		close(fd);
		free(s);
		return;
	}
	pthread_mutex_lock(&env->lock);
	s->id = ++env->next_id;
	s->next = env->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	env->sessions = s;
	snprintf(hostname, sizeof(hostname), "%s", env->hostname);
	pthread_mutex_unlock(&env->lock);
	if (session_refused(env, s, fd, sa, tls, hostname)) {
		SSL_CTX_free(tls);
		return;
	}
	SSL_CTX_free(tls); /* only checked here: each session takes its own reference */
	if (session_smtp_start(env, s, fd, hostname) || session_pop3_start(env, s, fd, hostname) ||
	    session_imap_start(env, s, fd, hostname))
		return;
	/* Every service has a session: this is a broken invariant. */
	log_error("session", "s=%lx event=no_session service=%s", s->id, service_name(service));
	close(fd);
	session_unlink(s);
	free(s);
}

struct session_close_task {
	struct session_env *env;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned pending;
};

static void session_close_on_loop(void *arg)
{
	struct session_close_task *t = arg;
	struct loop *self = loop_current();
	struct session **mine = NULL;
	size_t n = 0;

	/* Only this loop frees its own sessions, so collecting them under the
	 * lock and freeing them after is safe against the other loops. */
	pthread_mutex_lock(&t->env->lock);
	for (struct session *s = t->env->sessions; s != NULL; s = s->next) {
		if (s->loop != self)
			continue;
		mine = xrealloc(mine, (n + 1) * sizeof(*mine));
		mine[n++] = s;
	}
	pthread_mutex_unlock(&t->env->lock);
	for (size_t i = 0; i < n; i++) {
		smtp_session_free(&mine[i]->smtp);
		pop3_session_free(&mine[i]->pop3);
		imap_session_free(&mine[i]->imap);
		conn_free(&mine[i]->refused);
		session_unlink(mine[i]);
		free(mine[i]);
	}
	free(mine);
	pthread_mutex_lock(&t->lock);
	t->pending--;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void session_close_all(struct session_env *env, struct loop_pool *loops)
{
	struct session_close_task t = { .env = env, .pending = loop_pool_count(loops) };

	pthread_mutex_init(&t.lock, NULL);
	pthread_cond_init(&t.cond, NULL);
	for (unsigned i = 0; i < loop_pool_count(loops); i++)
		loop_post(loop_pool_get(loops, i), session_close_on_loop, &t);
	pthread_mutex_lock(&t.lock);
	while (t.pending > 0)
		pthread_cond_wait(&t.cond, &t.lock);
	pthread_mutex_unlock(&t.lock);
	pthread_mutex_destroy(&t.lock);
	pthread_cond_destroy(&t.cond);
}
