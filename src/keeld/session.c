#include "keeld/session.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"

struct session {
	struct session *prev, *next;
	struct session_env *env;
	struct loop *loop;
	enum service service;
	struct smtp_session *smtp; /* an SMTP session */
	struct pop3_session *pop3; /* a POP3 session */
	struct imap_session *imap; /* an IMAP session */
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
