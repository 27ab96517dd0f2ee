/* POP3 server sessions (RFC 1939, RFC 2449 CAPA and response codes,
 * RFC 2595 STLS, RFC 5034 AUTH PLAIN): pop3 (110, STLS) and pop3s (995,
 * implicit TLS).  The maildrop is the user's INBOX, seen as it was at
 * login; DELE only marks, and QUIT expunges the marked messages through
 * the committer.  A session lives on the loop that accepted it. */
#ifndef KEEL_POP3_POP3_SESSION_H
#define KEEL_POP3_POP3_SESSION_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct auth_throttle;
struct loop;
struct pop3_locks;
struct relay_window;
struct store;
struct workpool;
struct pop3_session;

struct iplimit;

struct pop3_env {
	SSL_CTX *(*tls_get)(void *tls_arg); /* new reference, or NULL */
	void *tls_arg;
	struct store *store;
	struct workpool *workpool;
	struct auth_throttle *throttle;
	struct relay_window *relay_window;
	struct pop3_locks *locks;
	struct iplimit *iplimit; /* connections per IP, shared with SMTP and IMAP */
};

typedef void pop3_session_end_cb(void *owner);

/* Starts a session on fd (taken over); implicit_tls for pop3s.  The loop's
 * data is its store reader. */
struct pop3_session *pop3_session_new(const struct pop3_env *env, bool implicit_tls, int fd,
				      const char *peer_ip, const char *hostname,
				      unsigned long id, struct loop *loop,
				      pop3_session_end_cb *end, void *owner);
/* Ends the session at once without its end callback (shutdown): nothing
 * marked for deletion is expunged. */
void pop3_session_free(struct pop3_session **session);

#endif
