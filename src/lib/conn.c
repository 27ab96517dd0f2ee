#include "lib/conn.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"

struct conn {
	struct event_base *base;
	struct bufferevent *bev;   /* the top: socket, or TLS over the socket */
	struct bufferevent *under; /* after STARTTLS: the socket under the TLS filter */
	struct event *finish;      /* deferred close, outside any callback */
	struct conn_callbacks cb;
	void *ctx;
	SSL *ssl;                  /* owned by the TLS bufferevent */
	bool closing, finishing, paused, discarding, tls_done;
	bool connecting;           /* client side: connect() not finished yet */
	enum conn_close_reason reason;
	struct timeval timeout;
	char *line;
	size_t line_cap;
	/* A line begun and not finished within the idle timeout ends the
	 * connection, however steadily its bytes trickle in (like Postfix's
	 * smtpd_per_record_deadline): the idle timeout alone restarts at
	 * every byte. */
	struct event *line_deadline;
	bool line_armed;
};

static void conn_on_read(struct bufferevent *bev, void *arg);
static void conn_on_write(struct bufferevent *bev, void *arg);
static void conn_on_event(struct bufferevent *bev, short what, void *arg);

static void conn_finish(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;

	if (conn->cb.on_close != NULL)
		conn->cb.on_close(conn, conn->reason, conn->ctx);
	conn_free(&conn);
}

/* Ends the connection from outside the bufferevent's own callbacks, so the
 * owner's on_close may do anything, and freeing is safe. */
static void conn_schedule_finish(struct conn *conn, enum conn_close_reason reason)
{
	if (conn->finishing)
		return;
	conn->finishing = true;
	conn->reason = reason;
	conn->closing = true;
	bufferevent_disable(conn->bev, EV_READ);
	event_active(conn->finish, EV_TIMEOUT, 0);
}

static void conn_setup_bev(struct conn *conn)
{
	bufferevent_setcb(conn->bev, conn_on_read, conn_on_write, conn_on_event, conn);
	bufferevent_setwatermark(conn->bev, EV_WRITE, CONN_WRITE_LOW, 0);
	if (conn->timeout.tv_sec > 0)
		bufferevent_set_timeouts(conn->bev, &conn->timeout, NULL);
	bufferevent_enable(conn->bev, conn->paused ? EV_WRITE : EV_READ | EV_WRITE);
}

struct conn *conn_new(struct event_base *base, int fd, SSL_CTX *tls,
		      const struct conn_callbacks *cb, void *ctx)
{
	struct conn *conn = xcalloc(1, sizeof(*conn));

	conn->base = base;
	conn->cb = *cb;
	conn->ctx = ctx;
	conn->finish = event_new(base, -1, 0, conn_finish, conn);
	if (tls != NULL) {
		conn->ssl = SSL_new(tls);
		conn->bev = bufferevent_openssl_socket_new(base, fd, conn->ssl,
							   BUFFEREVENT_SSL_ACCEPTING,
							   BEV_OPT_CLOSE_ON_FREE);
	} else {
		conn->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	conn_setup_bev(conn);
	return conn;
}

struct conn *conn_connect(struct event_base *base, const struct sockaddr *addr,
			  socklen_t addr_len, const struct sockaddr *source, socklen_t source_len,
			  const struct conn_callbacks *cb, void *ctx, const char **error_r)
{
	struct conn *conn;
	evutil_socket_t fd = socket(addr->sa_family, SOCK_STREAM, 0);

	if (fd < 0) {
		*error_r = strerror(errno);
		return NULL;
	}
	/* Bound before connecting, so that the peer sees this address (a
	 * domain's own outbound IP); refused at once if it is not ours. */
	if ((source != NULL && bind(fd, source, source_len) < 0) ||
	    evutil_make_socket_nonblocking(fd) < 0 || evutil_make_socket_closeonexec(fd) < 0) {
		*error_r = strerror(errno);
		close(fd);
		return NULL;
	}
	conn = conn_new(base, fd, NULL, cb, ctx);
	conn->connecting = true;
	if (bufferevent_socket_connect(conn->bev, addr, (int)addr_len) < 0) {
		*error_r = "connect failed";
		conn_free(&conn);
		return NULL;
	}
	return conn;
}

static void conn_line_expired(evutil_socket_t fd, short what, void *arg)
{
	struct conn *conn = arg;

	conn->line_armed = false;
	/* Paused: the owner is busy with earlier input, not the peer slow;
	 * the line gets a new deadline when reading resumes. */
	if (conn->closing || conn->paused)
		return;
	conn_schedule_finish(conn, CONN_CLOSED_TIMEOUT);
}

/* A partial line is buffered: its deadline runs from now unless running. */
static void conn_line_arm(struct conn *conn)
{
	if (conn->line_armed || conn->timeout.tv_sec == 0)
		return;
	if (conn->line_deadline == NULL)
		conn->line_deadline = evtimer_new(conn->base, conn_line_expired, conn);
	conn->line_armed = true;
	evtimer_add(conn->line_deadline, &conn->timeout);
}

static void conn_line_disarm(struct conn *conn)
{
	if (!conn->line_armed)
		return;
	conn->line_armed = false;
	evtimer_del(conn->line_deadline);
}

void conn_set_timeout(struct conn *conn, unsigned seconds)
{
	conn->timeout.tv_sec = seconds;
	conn->timeout.tv_usec = 0;
	bufferevent_set_timeouts(conn->bev, seconds > 0 ? &conn->timeout : NULL, NULL);
}

static void conn_on_read(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;

	if (conn->closing) {
		evbuffer_drain(bufferevent_get_input(bev), (size_t)-1);
		return;
	}
	if (!conn->paused && conn->cb.on_read != NULL)
		conn->cb.on_read(conn, conn->ctx);
}

/* Everything we wrote has reached the socket: after STARTTLS that means
 * the socket's own buffer too, under the TLS filter's. */
static bool conn_output_flushed(struct conn *conn)
{
	return evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0 &&
	       (conn->under == NULL ||
		evbuffer_get_length(bufferevent_get_output(conn->under)) == 0);
}

static void conn_on_write(struct bufferevent *bev, void *arg)
{
	struct conn *conn = arg;

	if (conn->closing && conn_output_flushed(conn))
		conn_schedule_finish(conn, CONN_CLOSED_BY_US);
	else if (!conn->closing && conn->cb.on_written != NULL)
		conn->cb.on_written(conn, conn->ctx);
}

static void conn_on_under_output(struct evbuffer *buf, const struct evbuffer_cb_info *info,
				 void *arg)
{
	struct conn *conn = arg;

	if (conn->closing && info->n_deleted > 0 && conn_output_flushed(conn))
		conn_schedule_finish(conn, CONN_CLOSED_BY_US);
}

static void conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *conn = arg;

	if ((what & BEV_EVENT_CONNECTED) && conn->connecting) {
		conn->connecting = false;
		if (conn->cb.on_connect != NULL)
			conn->cb.on_connect(conn, conn->ctx);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		conn->tls_done = true;
		if (conn->cb.on_tls != NULL)
			conn->cb.on_tls(conn, conn->ctx);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		conn_schedule_finish(conn, CONN_CLOSED_TIMEOUT);
	else if (what & BEV_EVENT_EOF)
		conn_schedule_finish(conn, CONN_CLOSED_BY_PEER);
	else if (what & BEV_EVENT_ERROR)
		conn_schedule_finish(conn, CONN_CLOSED_ERROR);
}

static const char *conn_copy_line(struct conn *conn, struct evbuffer *in, size_t len,
				  size_t eol_len, size_t *len_r, bool *crlf_r)
{
	if (len + 1 > conn->line_cap) {
		conn->line_cap = len + 1 > 256 ? len + 1 : 256;
		conn->line = xrealloc(conn->line, conn->line_cap);
	}
	evbuffer_remove(in, conn->line, len);
	evbuffer_drain(in, eol_len);
	*crlf_r = len > 0 && conn->line[len - 1] == '\r';
	if (*crlf_r)
		len--;
	conn->line[len] = '\0';
	*len_r = len;
	return conn->line;
}

static bool conn_byte_is_cr(struct evbuffer *in, ssize_t pos)
{
	struct evbuffer_ptr p;
	char c = 0;

	if (pos < 0 || evbuffer_ptr_set(in, &p, (size_t)pos, EVBUFFER_PTR_SET) < 0)
		return false;
	return evbuffer_copyout_from(in, &p, &c, 1) == 1 && c == '\r';
}

int conn_read_line(struct conn *conn, size_t max, const char **line_r, size_t *len_r,
		   bool *crlf_r)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);

	for (;;) {
		size_t eol_len = 0, content;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);

		if (conn->discarding) {
			if (p.pos < 0) {
				evbuffer_drain(in, evbuffer_get_length(in));
				conn_line_arm(conn);
				return 0;
			}
			evbuffer_drain(in, (size_t)p.pos + eol_len);
			conn->discarding = false;
			continue;
		}
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > 0)
				conn_line_arm(conn);
			else
				conn_line_disarm(conn);
			/* max octets of text, and room for the CR of a CRLF. */
			if (evbuffer_get_length(in) <= max + 1)
				return 0;
			conn->discarding = true;
			evbuffer_drain(in, evbuffer_get_length(in));
			return -1;
		}
		conn_line_disarm(conn);
		content = (size_t)p.pos - (conn_byte_is_cr(in, p.pos - 1) ? 1 : 0);
		if (content > max) {
			evbuffer_drain(in, (size_t)p.pos + eol_len);
			return -1;
		}
		*line_r = conn_copy_line(conn, in, (size_t)p.pos, eol_len, len_r, crlf_r);
		return 1;
	}
}

struct evbuffer *conn_input(struct conn *conn)
{
	return bufferevent_get_input(conn->bev);
}

void conn_write(struct conn *conn, const void *data, size_t len)
{
	if (!conn->closing)
		bufferevent_write(conn->bev, data, len);
}

void conn_vprintf(struct conn *conn, const char *fmt, va_list ap)
{
	if (!conn->closing)
		evbuffer_add_vprintf(bufferevent_get_output(conn->bev), fmt, ap);
}

void conn_printf(struct conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conn_vprintf(conn, fmt, ap);
	va_end(ap);
}

size_t conn_output_pending(struct conn *conn)
{
	return evbuffer_get_length(bufferevent_get_output(conn->bev));
}

void conn_pause(struct conn *conn)
{
	conn->paused = true;
	conn_line_disarm(conn);
	bufferevent_disable(conn->bev, EV_READ);
}

void conn_resume(struct conn *conn)
{
	if (!conn->paused || conn->closing)
		return;
	conn->paused = false;
	bufferevent_enable(conn->bev, EV_READ);
	/* Input that arrived while paused is already buffered: no new read
	 * event will announce it. */
	if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
		bufferevent_trigger(conn->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
							BEV_TRIG_DEFER_CALLBACKS);
}

int conn_starttls(struct conn *conn, SSL_CTX *tls)
{
	struct bufferevent *under = conn->bev;

	if (tls == NULL || conn->ssl != NULL)
		return -1;
	/* RFC 3207 4.2: whatever the client pipelined after STARTTLS was
	 * sent in plaintext; it must not be read as part of the TLS session. */
	evbuffer_drain(bufferevent_get_input(under), (size_t)-1);
	conn->ssl = SSL_new(tls);
	conn->under = under;
	evbuffer_add_cb(bufferevent_get_output(under), conn_on_under_output, conn);
	bufferevent_setcb(under, NULL, NULL, NULL, NULL);
	conn->bev = bufferevent_openssl_filter_new(conn->base, under, conn->ssl,
						   BUFFEREVENT_SSL_ACCEPTING,
						   BEV_OPT_CLOSE_ON_FREE);
	conn->discarding = false;
	conn_setup_bev(conn);
	return 0;
}

int conn_starttls_client(struct conn *conn, SSL_CTX *tls, const char *servername)
{
	struct bufferevent *under = conn->bev;

	if (tls == NULL || conn->ssl != NULL)
		return -1;
	evbuffer_drain(bufferevent_get_input(under), (size_t)-1);
	conn->ssl = SSL_new(tls);
	if (servername != NULL && servername[0] != '\0' && servername[0] != '[')
		SSL_set_tlsext_host_name(conn->ssl, servername);
	conn->under = under;
	evbuffer_add_cb(bufferevent_get_output(under), conn_on_under_output, conn);
	bufferevent_setcb(under, NULL, NULL, NULL, NULL);
	conn->bev = bufferevent_openssl_filter_new(conn->base, under, conn->ssl,
						   BUFFEREVENT_SSL_CONNECTING,
						   BEV_OPT_CLOSE_ON_FREE);
	conn->discarding = false;
	conn_setup_bev(conn);
	return 0;
}

/* Asked of the SSL itself, not of the CONNECTED event: libevent hands over
 * data that came with the client's Finished before it reports the event,
 * and a command in that data must already count as sent under TLS. */
bool conn_is_tls(const struct conn *conn)
{
	return conn->ssl != NULL && SSL_is_init_finished(conn->ssl);
}

const char *conn_tls_version(struct conn *conn)
{
	return conn_is_tls(conn) ? SSL_get_version(conn->ssl) : NULL;
}

const char *conn_tls_cipher(struct conn *conn)
{
	return conn_is_tls(conn) ? SSL_get_cipher_name(conn->ssl) : NULL;
}

void conn_close(struct conn *conn)
{
	if (conn->closing)
		return;
	conn->closing = true;
	bufferevent_disable(conn->bev, EV_READ);
	if (conn_output_flushed(conn))
		conn_schedule_finish(conn, CONN_CLOSED_BY_US);
}

void conn_free(struct conn **connp)
{
	struct conn *conn = *connp;

	if (conn == NULL)
		return;
	if (conn->ssl != NULL)
		SSL_set_shutdown(conn->ssl, SSL_RECEIVED_SHUTDOWN);
	bufferevent_free(conn->bev);
	event_free(conn->finish);
	if (conn->line_deadline != NULL)
		event_free(conn->line_deadline);
	free(conn->line);
	free(conn);
	*connp = NULL;
}
