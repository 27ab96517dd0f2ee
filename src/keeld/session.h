/* Accepted connections: the hand-off from a listener to a protocol session.
 *
 * session_accept() runs on the loop that accepted the connection, and the
 * session lives on that loop: SMTP (smtp, submission, submissions), IMAP
 * (imap, imaps) or POP3 (pop3, pop3s). */
#ifndef KEEL_KEELD_SESSION_H
#define KEEL_KEELD_SESSION_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/socket.h>

#include "imap/imap_session.h"
#include "keeld/config.h"
#include "pop3/pop3_session.h"
#include "smtp/smtp_session.h"

struct loop;
struct loop_pool;
struct store;
struct session;

/* What every session may use: immutable after init except hostname, which
 * the admin loop updates on reload (sessions copy it when they start). */
struct session_env {
	char hostname[256];
	/* Returns the current server TLS context with a reference the caller
	 * drops with SSL_CTX_free(), or NULL when there is none. */
	SSL_CTX *(*tls_get)(void *tls_arg);
	void *tls_arg;
	struct store *store;
	/* What SMTP sessions share; the worker fills in the services. */
	struct smtp_env smtp;
	struct pop3_env pop3;
	struct imap_env imap;
	pthread_mutex_t lock;
	struct session *sessions; /* every open session, for shutdown */
	unsigned long next_id;
};

void session_env_init(struct session_env *env, const char *hostname,
		      SSL_CTX *(*tls_get)(void *), void *tls_arg, struct store *store);
void session_env_deinit(struct session_env *env);
/* On reload: new sessions use the new name. */
void session_env_set_hostname(struct session_env *env, const char *hostname);

/* Takes ownership of fd. */
void session_accept(struct session_env *env, enum service service, int fd,
		    const struct sockaddr *sa, socklen_t sa_len, struct loop *loop);

/* Closes every session, each on its own loop; returns when all are gone. */
void session_close_all(struct session_env *env, struct loop_pool *loops);

#endif
