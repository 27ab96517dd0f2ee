/* IMAP server sessions (RFC 3501 IMAP4rev1 with LITERAL+, SASL-IR, IDLE,
 * UIDPLUS, MOVE, UNSELECT, ENABLE, ID, NAMESPACE, CHILDREN, SPECIAL-USE,
 * CONDSTORE, ESEARCH, QUOTA): imap (143, STARTTLS) and imaps (993, implicit TLS).
 * docs/imap.md lists what is supported.  A session lives on the loop that
 * accepted it; a selected mailbox is watched through the store's notifier
 * and its changes are announced at each command's end (at once in IDLE). */
#ifndef KEEL_IMAP_IMAP_SESSION_H
#define KEEL_IMAP_IMAP_SESSION_H

#include <openssl/ssl.h>
#include <stdbool.h>

struct auth_throttle;
struct imap_recent;
struct loop;
struct relay_window;
struct store;
struct workpool;
struct imap_session;

struct iplimit;

struct imap_env {
	SSL_CTX *(*tls_get)(void *tls_arg); /* new reference, or NULL */
	void *tls_arg;
	struct store *store;
	struct workpool *workpool;
	struct auth_throttle *throttle;
	struct relay_window *relay_window;
	struct imap_recent *recent; /* who has seen which messages as \Recent */
	struct iplimit *iplimit;    /* connections per IP, shared with SMTP and POP3 */
};

typedef void imap_session_end_cb(void *owner);

/* Starts a session on fd (taken over); implicit_tls for imaps.  The loop's
 * data is its store reader.  end runs once, when the connection is gone. */
struct imap_session *imap_session_new(const struct imap_env *env, bool implicit_tls, int fd,
				      const char *peer_ip, const char *hostname,
				      unsigned long id, struct loop *loop,
				      imap_session_end_cb *end, void *owner);
/* Ends the session at once without its end callback (shutdown). */
void imap_session_free(struct imap_session **session);

#endif
