/* A client connection on a loop: TCP, implicit TLS or STARTTLS, a line
 * reader with a length limit, buffered output, timeouts.
 *
 * Every function must be called on the connection's loop thread.  The owner
 * gets two callbacks: on_read when new input is buffered, and on_close once,
 * when the peer closed, an error or the idle timeout happened, or after
 * conn_close() once the output is flushed.  After on_close returns the
 * connection is freed: the owner must drop its pointer there. */
#ifndef KEEL_LIB_CONN_H
#define KEEL_LIB_CONN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

/* A long answer is produced while less than this is waiting to be sent. */
#define CONN_WRITE_LOW (64 * 1024)

struct event_base;
struct evbuffer;
struct conn;

enum conn_close_reason {
	CONN_CLOSED_BY_PEER,
	CONN_CLOSED_ERROR,
	CONN_CLOSED_TIMEOUT,
	CONN_CLOSED_BY_US,
};

struct conn_callbacks {
	void (*on_read)(struct conn *conn, void *ctx);
	void (*on_close)(struct conn *conn, enum conn_close_reason reason, void *ctx);
	/* Optional: the TLS handshake finished (implicit TLS or STARTTLS). */
	void (*on_tls)(struct conn *conn, void *ctx);
	/* Optional: the output buffer has drained (below CONN_WRITE_LOW): time
	 * to produce more of a long answer that is written piece by piece. */
	void (*on_written)(struct conn *conn, void *ctx);
	/* Optional, client side: the TCP connection started by conn_connect()
	 * is established.  A connection that fails ends in on_close with
	 * CONN_CLOSED_ERROR (refused, unreachable) or CONN_CLOSED_TIMEOUT,
	 * without on_connect. */
	void (*on_connect)(struct conn *conn, void *ctx);
};

/* Takes ownership of fd.  tls not NULL: the connection starts with a TLS
 * handshake (implicit TLS); the context is referenced, not taken. */
struct conn *conn_new(struct event_base *base, int fd, SSL_CTX *tls,
		      const struct conn_callbacks *cb, void *ctx);

/* Client side: starts a non-blocking TCP connection to addr, from source
 * when not NULL (the socket is bound to it first: multihoming; port 0 lets
 * the kernel choose).  on_connect follows once connected; the idle timeout
 * (conn_set_timeout) also bounds the connect.  Returns NULL with error_r
 * set when the socket cannot be made or bound (e.g. source is not an
 * address of this host); an unreachable peer is reported later, through
 * on_close. */
struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr,
			  socklen_t addr_len, const struct sockaddr *source, socklen_t source_len,
			  const struct conn_callbacks *cb, void *ctx, const char **error_r);

/* Sets the idle timeout (no input for that long closes the connection). */
void conn_set_timeout(struct conn *conn, unsigned seconds);

/* Reads one line ending in LF from the input, without the line end (a CR
 * before the LF is removed too, and *crlf_r says whether it was there).
 * Returns 1 with the line in a buffer owned by conn (valid until the next
 * call), 0 when no complete line is buffered yet, -1 when the line is longer
 * than max octets (the rest of that line is discarded as it arrives and the
 * next call returns the following line). */
int conn_read_line(struct conn *conn, size_t max, const char **line_r, size_t *len_r,
		   bool *crlf_r);
struct evbuffer *conn_input(struct conn *conn);

void conn_write(struct conn *conn, const void *data, size_t len);
void conn_printf(struct conn *conn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
size_t conn_output_pending(struct conn *conn);

/* Stops / resumes delivering on_read (e.g. while waiting for a commit). */
void conn_pause(struct conn *conn);
void conn_resume(struct conn *conn);

/* Starts TLS on a plain connection.  Anything the client sent before (in
 * plaintext, after the STARTTLS command) is discarded, as RFC 3207 section
 * 4.2 requires: pipelined plaintext must never be taken as coming through
 * TLS.  Returns -1 if there is no context or the connection is already TLS. */
int conn_starttls(struct conn *conn, SSL_CTX *tls);
/* Client side of STARTTLS, after the server's 220 to it: starts the TLS
 * handshake as the client, with SNI servername (may be NULL).  The context
 * decides about certificate checks; on_tls follows when the handshake is
 * done, on_close (CONN_CLOSED_ERROR) when it fails.  Input buffered before
 * is discarded (RFC 3207 4.2).  Returns -1 if there is no context or the
 * connection is already TLS. */
int conn_starttls_client(struct conn *conn, SSL_CTX *tls, const char *servername);
bool conn_is_tls(const struct conn *conn);
/* "TLSv1.3" and the cipher name, or NULL without TLS. */
const char *conn_tls_version(struct conn *conn);
const char *conn_tls_cipher(struct conn *conn);

/* Closes once the pending output is written; on_close follows with
 * CONN_CLOSED_BY_US.  Further input is ignored. */
void conn_close(struct conn *conn);
/* Frees at once, without on_close (shutdown). */
void conn_free(struct conn **conn);

#endif
