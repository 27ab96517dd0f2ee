/* An outbound SMTP client session for one destination (RFC 5321): tries the
 * destination's hosts in order until one takes the session, then delivers
 * every message given over that one connection, and reports an outcome per
 * recipient.
 *
 *   connect (from the sender domain's own address when given) -> greeting
 *   -> EHLO (HELO if EHLO is refused) -> STARTTLS when offered (required by
 *   tls QUEUE_TLS_REQUIRE; never a certificate check: opportunistic, as
 *   Postfix's "may") -> EHLO again -> AUTH PLAIN or LOGIN when credentials
 *   are given (over TLS only) -> per message: [RSET] MAIL, RCPT... (one
 *   write with PIPELINING), DATA, the message streamed from its blob with
 *   dot-stuffing -> QUIT.
 *
 * A host that cannot be reached, closes, or answers the greeting, EHLO,
 * STARTTLS or AUTH with an error is given up for the next one.  Once a host
 * has taken the session, each reply decides for its recipients: 2xx
 * delivered, 4xx deferred, 5xx failed; a lost connection defers whatever
 * was not decided yet.  Checks made before sending (no bytes of the
 * message go out): a message larger than the server's SIZE fails with
 * "552 5.3.4"; an SMTPUTF8 message to a server without SMTPUTF8 fails with
 * "553 5.6.7" (RFC 6531 3.2); a BINARYMIME message, which only BDAT can
 * carry, fails with "554 5.6.3" (not sent in chunks here).  An 8BITMIME
 * message to a server that does not offer 8BITMIME is sent as it is, as
 * Postfix does by default (docs/queue.md).  DSN parameters (NOTIFY, ORCPT,
 * RET, ENVID) are passed on when the server offers DSN.
 *
 * Runs on one loop thread, whose loop data is its store reader (the blob
 * is read from it in pieces).  The callback runs once, on that loop, never
 * inside smtp_client_start(). */
#ifndef KEEL_QUEUE_SMTP_CLIENT_H
#define KEEL_QUEUE_SMTP_CLIENT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "queue/queue_policy.h"
#include "store/store.h"

struct loop;
struct smtp_client;

struct smtp_client_host {
	char name[256];               /* for logs, SNI and trace */
	struct sockaddr_storage addr; /* with the port to connect to */
	socklen_t addr_len;
};

enum smtp_client_status {
	SMTP_CLIENT_PENDING = 0, /* not decided (only before the callback) */
	SMTP_CLIENT_DELIVERED = 2,
	SMTP_CLIENT_DEFERRED = 4,
	SMTP_CLIENT_FAILED = 5,
};

struct smtp_client_rcpt {
	/* In. */
	const struct store_queue_rcpt *rcpt;
	/* Out. */
	enum smtp_client_status status;
	char reply[512];     /* "250 2.0.0 Ok: queued as X" or our own reason */
	char dsn_status[16]; /* "5.1.1": the enhanced code, or derived from the code */
	bool remote_mta;     /* reply came from the remote server (not our own check) */
	bool remote_dsn;     /* the server took our DSN parameters */
};

struct smtp_client_msg {
	const struct store_envelope *env;
	int64_t blob_id;
	uint64_t size;
	size_t n_rcpts;
	struct smtp_client_rcpt *rcpts;
};

struct smtp_client_params {
	struct loop *loop;
	SSL_CTX *tls;                /* client context; NULL: never STARTTLS */
	enum queue_tls tls_policy;
	const char *helo;            /* EHLO/HELO name */
	/* The source address per family (ss_family 0: the kernel chooses). */
	struct sockaddr_storage source4, source6;
	const char *auth_user;       /* NULL: no AUTH */
	const char *auth_pass;
	const char *session;         /* id for logs */
	const struct smtp_client_host *hosts;
	size_t n_hosts;
};

/* One host tried, for the trace and the logs. */
struct smtp_client_attempt {
	char host[256];
	char ip[64];
	char tls[16];        /* "TLSv1.3", or "" */
	char result[512];    /* what ended the attempt, or "ok" */
};

typedef void smtp_client_done_cb(struct smtp_client *client, void *ctx);

/* Starts.  params (its strings and hosts included) and msgs must stay valid
 * until the callback; outcomes are written into msgs[i].rcpts[j].  When the
 * callback runs every recipient is DELIVERED, DEFERRED or FAILED.  The
 * callback must free the client (smtp_client_free). */
struct smtp_client *smtp_client_start(const struct smtp_client_params *params,
				      struct smtp_client_msg *msgs, size_t n_msgs,
				      smtp_client_done_cb *cb, void *ctx);

/* Hosts tried, in order. */
const struct smtp_client_attempt *smtp_client_attempts(const struct smtp_client *client,
							size_t *n_r);
/* The host that took the session (last attempt), or NULL if none did. */
const struct smtp_client_attempt *smtp_client_served_by(const struct smtp_client *client);

/* Frees; on the loop.  Before the callback: aborts the session (the
 * connection is dropped) and the callback never runs. */
void smtp_client_free(struct smtp_client **client);

/* A client context for opportunistic TLS: TLS 1.2 and up, no certificate
 * verification.  NULL with error_r on failure. */
SSL_CTX *smtp_client_tls_ctx_new(const char **error_r);

/* xtext (RFC 3461 4): '+', '=' and octets outside 33..126 as "+HH".  Cut
 * to fit out. */
void smtp_client_xtext(const char *in, char *out, size_t size);

#endif
