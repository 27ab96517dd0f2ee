/* The admin API: JSON requests and replies, shared by the UNIX socket
 * (keelctl) and, later, the HTTP admin.
 *
 * Wire format on the socket: one request per line, one reply per line, both
 * a JSON object in UTF-8 with no raw newline inside.
 *
 *   request: {"cmd": "user.add", "args": {"address": "a@b.test", ...}}
 *   reply:   {"ok": true, "result": <any JSON>}
 *            {"ok": false, "error": "domain example.org does not exist",
 *             "code": "not_found"}
 *
 * code is one of: "usage" (bad or missing argument), "not_found", "exists",
 * "invalid", "quota", "io", "internal".  Commands are listed in
 * docs/admin-api.md.  Handlers run on the admin loop; writes go through the
 * committer and the reply is sent when the write is durable.
 *
 * The socket is created mode 0600: whoever can connect is an administrator.
 * The peer's uid (SO_PEERCRED) is kept for the audit log. */
#ifndef KEEL_ADMIN_ADMIN_H
#define KEEL_ADMIN_ADMIN_H

#include <jansson.h>
#include <time.h>

struct loop;
struct pipeline;
struct store;
struct store_reader;
struct workpool;
struct admin_server;
struct admin_jobs;

/* What the server the admin API runs in provides.  Every callback runs on
 * the admin loop. */
struct admin_host {
	struct store *store;
	struct store_reader *reader; /* the admin loop's reader */
	struct workpool *workpool;   /* for password hashing */
	struct loop *loop;           /* the admin loop */
	/* For the DSNs of queue.bounce (the sender must hear why the mail did
	 * not go); NULL where there is no pipeline (unit tests): no DSN. */
	struct pipeline *pipeline;
	time_t started;
	/* The listeners, as a JSON array of {"service", "address"}: new ref. */
	json_t *(*listeners)(void *host_ctx);
	/* Re-read keel.conf (asks the master); done runs on the admin loop with
	 * status 0, or -1 and an error naming the problem. */
	void (*reload)(void *host_ctx, void (*done)(int status, const char *error, void *ctx),
	               void *ctx);
	void *host_ctx;
	/* Bulk jobs (admin_job.h): admin_server_start makes the registry and
	 * admin_server_stop frees it; whoever fills in the rest leaves it NULL. */
	struct admin_jobs *jobs;
};

/* Called once with the reply object to a request (borrowed: valid during
 * the call only), on the admin loop; possibly before admin_handle() returns. */
typedef void admin_reply_cb(json_t *reply, void *ctx);

/* Handles one request object ({"cmd", "args"}) for any transport (the
 * socket here; the HTTP admin later).  actor names the administrator for the
 * audit log ("uid=0").  host must stay valid until cb has run.  On the admin
 * loop only. */
void admin_handle(const struct admin_host *host, const char *actor, json_t *request,
                  admin_reply_cb *cb, void *ctx);

/* Listens on socket_path, mode 0600.  An existing socket file there is
 * replaced atomically (rename), so a restarted worker takes the path over;
 * admin_server_stop() unlinks it only while it is still this server's.
 * Must be called on host->loop's thread; host is copied. */
int admin_server_start(const struct admin_host *host, const char *socket_path,
                       struct admin_server **server_r, const char **error_r);
/* Closes the listener and every admin connection and stops the jobs (a job
 * ends after the step in flight, whose write the caller lets drain); on the
 * admin loop. */
void admin_server_stop(struct admin_server **server);

#endif
