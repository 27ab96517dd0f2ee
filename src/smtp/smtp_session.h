/* SMTP server sessions: the MX service (25) and submission (587 with
 * STARTTLS, 465 with implicit TLS), RFC 5321 with PIPELINING, SIZE,
 * 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, STARTTLS, AUTH PLAIN/LOGIN, DSN,
 * CHUNKING and BINARYMIME.
 *
 * A session lives on the loop that accepted it.  It never writes to a
 * mailbox itself: a message goes to the pipeline, and the 250 after DATA or
 * the last BDAT is sent only once the pipeline says it is durable. */
#ifndef KEEL_SMTP_SMTP_SESSION_H
#define KEEL_SMTP_SMTP_SESSION_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/socket.h>

struct auth_throttle;
struct iplimit;
struct relay_window;
struct loop;
struct pipeline;
struct store;
struct workpool;
struct smtp_session;

enum smtp_service {
	SMTP_SERVICE_MX,          /* 25: mail for local domains, AUTH optional */
	SMTP_SERVICE_SUBMISSION,  /* 587: STARTTLS, then AUTH before MAIL */
	SMTP_SERVICE_SUBMISSIONS, /* 465: implicit TLS, AUTH before MAIL */
};

/* What every SMTP session shares; owned by the worker, alive longer than
 * every session. */
struct smtp_env {
	SSL_CTX *(*tls_get)(void *tls_arg); /* new reference, or NULL */
	void *tls_arg;
	struct store *store;
	struct pipeline *pipeline;
	struct workpool *workpool;
	struct auth_throttle *throttle;
	struct iplimit *iplimit;
	struct relay_window *relay_window; /* POP-before-SMTP */
};

/* Called once when the session has ended (its connection is closed). */
typedef void smtp_session_end_cb(void *owner);

/* Starts a session on fd (taken over), on loop, whose data is the loop's
 * store reader.  peer_ip is the client's address as text; hostname the
 * server's name for this session (copied). */
struct smtp_session *smtp_session_new(const struct smtp_env *env, enum smtp_service service,
				      int fd, const char *peer_ip, const char *hostname,
				      unsigned long id, struct loop *loop,
				      smtp_session_end_cb *end, void *owner);
/* Ends the session at once, without its end callback (shutdown); on its
 * loop.  A write still pending in the store answers into nothing. */
void smtp_session_free(struct smtp_session **session);

#endif
