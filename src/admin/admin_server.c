/* The admin API on a UNIX socket: newline-delimited JSON, one request at a
 * time per connection (later lines wait in the input buffer), many per
 * connection.
 *
 * Lifetimes: a request in flight may outlive its connection (the client
 * hung up while the committer works) and the connection may outlive the
 * server (admin_server_stop() before the store drains).  So both are
 * reference-counted: the server holds one ref for itself and one per open
 * connection; a connection holds one for itself and one while a request is
 * in flight. */
#include "admin/admin.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "admin/admin_job.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "pipeline/pipeline_intercept.h"
#include "trace/trace_retention.h"

/* A request line longer than this is answered with an error and skipped up
 * to its newline: no admin request comes near it, and the input buffer must
 * stay bounded. */
#define ADMIN_LINE_MAX (1024 * 1024)

struct admin_conn;

struct admin_server {
	struct admin_host host;
	char *path;
	dev_t dev;
	ino_t ino;
	struct evconnlistener *listener;
	struct admin_conn *conns;
	unsigned refs;
	unsigned next_id;
	struct trace_retention *retention; /* the trace.retention job */
	struct pipeline_intercept_timer *intercepts; /* interception event logs */
};

struct admin_conn {
	struct admin_server *server;
	struct admin_conn *prev, *next;
	struct bufferevent *bev; /* NULL once closed */
	char actor[32];
	unsigned id;
	unsigned refs;
	bool busy;       /* a request is in flight */
	bool processing; /* inside admin_conn_process(): no re-entry */
	bool eof;        /* the client sent everything it will send */
	bool skipping;   /* dropping the rest of a line that was too long */
};

static void admin_conn_process(struct admin_conn *conn);

static void admin_server_unref(struct admin_server *server)
{
	if (--server->refs > 0)
		return;
	free(server->path);
	free(server);
}

static void admin_conn_unref(struct admin_conn *conn)
{
	if (--conn->refs > 0)
		return;
	admin_server_unref(conn->server);
	free(conn);
}

static void admin_conn_close(struct admin_conn *conn)
{
	struct admin_server *server = conn->server;

	if (conn->bev == NULL)
		return;
	bufferevent_free(conn->bev);
	conn->bev = NULL;
	if (conn->prev != NULL)
		conn->prev->next = conn->next;
	else
		server->conns = conn->next;
	if (conn->next != NULL)
		conn->next->prev = conn->prev;
	log_debug("admin", "c=%u %s event=closed", conn->id, conn->actor);
	admin_conn_unref(conn);
}

/* Closes when nothing is left to do: the client is done (or we gave up on
 * it), no request is in flight and every reply is written. */
static void admin_conn_maybe_close(struct admin_conn *conn)
{
	if (conn->bev == NULL || conn->busy || !conn->eof)
		return;
	if (evbuffer_get_length(bufferevent_get_output(conn->bev)) == 0)
		admin_conn_close(conn);
}

static void admin_conn_send(struct admin_conn *conn, json_t *reply)
{
	char *text;

	if (conn->bev == NULL)
		return;
	/* JSON_COMPACT escapes every control character inside strings, so the
	 * reply is one line. */
	text = json_dumps(reply, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text == NULL)
		fatal("admin: json_dumps failed");
	evbuffer_add_printf(bufferevent_get_output(conn->bev), "%s\n", text);
	free(text);
}

static void admin_conn_send_error(struct admin_conn *conn, const char *code, const char *msg)
{
	json_t *reply = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", msg, "code", code);

	admin_conn_send(conn, reply);
	json_decref(reply);
}

static void admin_conn_reply(json_t *reply, void *ctx)
{
	struct admin_conn *conn = ctx;

	admin_conn_send(conn, reply);
	conn->busy = false;
	if (conn->bev != NULL && !conn->processing) {
		admin_conn_process(conn);
		admin_conn_maybe_close(conn);
	}
	admin_conn_unref(conn);
}

static void admin_conn_request(struct admin_conn *conn, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *request = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	char msg[256];

	if (request == NULL) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s", jerr.text);
		admin_conn_send_error(conn, "usage", msg);
		return;
	}
	conn->busy = true;
	conn->refs++;
	admin_handle(&conn->server->host, conn->actor, request, admin_conn_reply, conn);
	json_decref(request);
}

/* Drops input up to and including the next newline; returns whether it was
 * found (else everything buffered is gone and skipping goes on). */
static bool admin_conn_skip(struct evbuffer *in)
{
	struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);

	if (p.pos < 0) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return false;
	}
	evbuffer_drain(in, (size_t)p.pos + 1);
	return true;
}

/* Takes complete lines while no request is in flight.  At EOF a last line
 * without its newline still counts. */
static void admin_conn_process(struct admin_conn *conn)
{
	struct evbuffer *in;

	conn->processing = true;
	while (conn->bev != NULL && !conn->busy) {
		size_t len;
		char *line;

		in = bufferevent_get_input(conn->bev);
		if (conn->skipping) {
			if (!admin_conn_skip(in))
				break;
			conn->skipping = false;
			continue;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (line == NULL && conn->eof && evbuffer_get_length(in) > 0) {
			len = evbuffer_get_length(in);
			line = xmalloc(len + 1);
			evbuffer_remove(in, line, len);
			line[len] = '\0';
		}
		if (line == NULL) {
			if (evbuffer_get_length(in) <= ADMIN_LINE_MAX)
				break;
			admin_conn_send_error(conn, "usage", "request line too long");
			conn->skipping = true;
			continue;
		}
		if (len > ADMIN_LINE_MAX)
			admin_conn_send_error(conn, "usage", "request line too long");
		else if (len > 0 && strspn(line, " \t\r") != len)
			admin_conn_request(conn, line, len);
		free(line);
	}
	conn->processing = false;
}

static void admin_conn_read_cb(struct bufferevent *bev, void *ctx)
{
	struct admin_conn *conn = ctx;

	conn->refs++;
	admin_conn_process(conn);
	admin_conn_maybe_close(conn);
	admin_conn_unref(conn);
}

static void admin_conn_write_cb(struct bufferevent *bev, void *ctx)
{
	admin_conn_maybe_close(ctx);
}

static void admin_conn_event_cb(struct bufferevent *bev, short what, void *ctx)
{
	struct admin_conn *conn = ctx;

	conn->refs++;
	if (what & BEV_EVENT_EOF) {
		/* The client may half-close after its last request: answer it. */
		conn->eof = true;
		admin_conn_process(conn);
		admin_conn_maybe_close(conn);
	} else if (what & BEV_EVENT_ERROR) {
		admin_conn_close(conn);
	}
	admin_conn_unref(conn);
}

static void admin_conn_peer(struct admin_conn *conn, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(conn->actor, sizeof(conn->actor), "uid=%u", (unsigned)cred.uid);
	else
		snprintf(conn->actor, sizeof(conn->actor), "uid=unknown");
}

static void admin_server_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
                                   struct sockaddr *sa, int socklen, void *ctx)
{
	struct admin_server *server = ctx;
	struct admin_conn *conn = xcalloc(1, sizeof(*conn));

	conn->server = server;
	conn->id = ++server->next_id;
	conn->refs = 1;
	server->refs++;
	admin_conn_peer(conn, fd);
	conn->bev =
	    bufferevent_socket_new(evconnlistener_get_base(listener), fd, BEV_OPT_CLOSE_ON_FREE);
	if (conn->bev == NULL) {
		log_error("admin", "event=accept-failed error=\"bufferevent_socket_new failed\"");
		evutil_closesocket(fd);
		admin_conn_unref(conn);
		return;
	}
	conn->next = server->conns;
	if (server->conns != NULL)
		server->conns->prev = conn;
	server->conns = conn;
	bufferevent_setcb(conn->bev, admin_conn_read_cb, admin_conn_write_cb, admin_conn_event_cb,
	                  conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	log_debug("admin", "c=%u %s event=connected", conn->id, conn->actor);
}

/* Binds a listening socket at a temporary name beside path, makes it 0600
 * and renames it over path: the socket is never reachable by its real name
 * with looser permissions (umask is process-wide, so it cannot be used
 * safely here), and a stale or a previous worker's socket is replaced in
 * one step. */
static int admin_server_bind(struct admin_server *server, const char *path, const char **error_r)
{
	static __thread char errbuf[PATH_MAX + 128];
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char tmp[sizeof(sun.sun_path)];
	struct stat st;
	int fd;

	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp)) {
		snprintf(errbuf, sizeof(errbuf), "admin socket path %s is too long", path);
		*error_r = errbuf;
		return -1;
	}
	memcpy(sun.sun_path, tmp, strlen(tmp) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	unlink(tmp);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	if (chmod(tmp, 0600) < 0 || listen(fd, 64) < 0 || stat(tmp, &st) < 0 ||
	    rename(tmp, path) < 0) {
		unlink(tmp);
		goto fail;
	}
	server->dev = st.st_dev;
	server->ino = st.st_ino;
	return fd;
fail:
	snprintf(errbuf, sizeof(errbuf), "admin socket %s: %s", path, strerror(errno));
	*error_r = errbuf;
	if (fd >= 0)
		close(fd);
	return -1;
}

int admin_server_start(const struct admin_host *host, const char *socket_path,
                       struct admin_server **server_r, const char **error_r)
{
	struct admin_server *server = xcalloc(1, sizeof(*server));
	int fd;

	server->host = *host;
	server->host.jobs = admin_jobs_new();
	server->refs = 1;
	fd = admin_server_bind(server, socket_path, error_r);
	if (fd < 0) {
		admin_jobs_free(&server->host.jobs);
		free(server);
		return -1;
	}
	server->path = xstrdup(socket_path);
	server->listener =
	    evconnlistener_new(loop_base(host->loop), admin_server_accept_cb, server,
	                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (server->listener == NULL) {
		close(fd);
		unlink(socket_path);
		admin_jobs_free(&server->host.jobs);
		admin_server_unref(server);
		*error_r = "admin socket: evconnlistener_new failed";
		return -1;
	}
	log_info("admin", "event=listening socket=%s", socket_path);
	/* The admin loop runs the store's housekeeping jobs. */
	server->retention = trace_retention_start(host->store, host->loop);
	if (host->pipeline != NULL)
		server->intercepts = pipeline_intercept_start(host->pipeline, host->store,
							      host->loop, host->reader);
	*server_r = server;
	return 0;
}

void admin_server_stop(struct admin_server **serverp)
{
	struct admin_server *server = *serverp;
	struct stat st;

	if (server == NULL)
		return;
	*serverp = NULL;
	evconnlistener_free(server->listener);
	server->listener = NULL;
	/* A newer worker may have taken the path over: leave its socket. */
	if (stat(server->path, &st) == 0 && st.st_dev == server->dev && st.st_ino == server->ino)
		unlink(server->path);
	while (server->conns != NULL)
		admin_conn_close(server->conns);
	admin_jobs_free(&server->host.jobs);
	trace_retention_stop(&server->retention);
	pipeline_intercept_stop(&server->intercepts);
	admin_server_unref(server);
}
