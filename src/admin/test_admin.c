/* The admin API over its socket, with a real store, loop and work pool but
 * no keeld: framing, handlers, error codes, settings taking effect. */
#include "admin/admin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/test.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "settings/settings.h"
#include "store/store.h"

struct fixture {
	char *dir;
	char *sock;
	struct store *store;
	struct store_reader *reader;
	struct workpool *pool;
	struct loop_pool *loops;
	struct admin_server *server;
	int fd;
};

static struct fixture fx;

static json_t *test_listeners(void *ctx)
{
	return json_pack("[{s:s, s:s}]", "service", "smtp", "address", "127.0.0.1:25");
}

static void test_reload(void *ctx, void (*done)(int, const char *, void *), void *done_ctx)
{
	done(-1, "keel.conf:3: key 'x': unknown key", done_ctx);
}

/* On the loop thread (the pool's init). */
static void fixture_loop_init(void *arg)
{
	const char *error;
	struct admin_host host = {
	    .store = fx.store,
	    .workpool = fx.pool,
	    .loop = loop_current(),
	    .started = time(NULL) - 5,
	    .listeners = test_listeners,
	    .reload = test_reload,
	};

	if (store_reader_open(fx.store, &fx.reader, &error) < 0)
		fatal("store_reader_open: %s", error);
	host.reader = fx.reader;
	if (settings_load(fx.reader) < 0)
		fatal("settings_load failed");
	if (admin_server_start(&host, fx.sock, &fx.server, &error) < 0)
		fatal("admin_server_start: %s", error);
}

static void fixture_loop_stop(void *arg)
{
	admin_server_stop(&fx.server);
	store_reader_close(&fx.reader);
}

static int fixture_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx.sock);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		fatal("connect %s: %s", fx.sock, strerror(errno));
	return fd;
}

static void fixture_start(void)
{
	const char *error;

	fx.dir = test_tmpdir();
	fx.sock = xasprintf("%s/keel.sock", fx.dir);
	if (store_open(fx.dir, &fx.store, &error) < 0)
		fatal("store_open: %s", error);
	fx.pool = workpool_start(2);
	fx.loops = loop_pool_start(1, fixture_loop_init, NULL);
	fx.fd = fixture_connect();
}

static void fixture_stop(void)
{
	close(fx.fd);
	loop_post(loop_pool_get(fx.loops, 0), fixture_loop_stop, NULL);
	loop_pool_stop(&fx.loops);
	workpool_stop(&fx.pool);
	store_close(&fx.store);
	test_rmtree(fx.dir);
	free(fx.sock);
	free(fx.dir);
}

/* Sends raw bytes and reads one reply line. */
static json_t *raw(int fd, const char *text)
{
	char buf[65536];
	size_t len = 0;
	json_error_t jerr;

	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		fatal("write: %s", strerror(errno));
	while (len == 0 || buf[len - 1] != '\n') {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len - 1);
		if (n <= 0)
			fatal("read: %s", n == 0 ? "EOF" : strerror(errno));
		len += (size_t)n;
	}
	buf[len] = '\0';
	return json_loads(buf, 0, &jerr);
}

/* One request; returns the whole reply (the caller decrefs). */
static json_t *call(const char *cmd, json_t *args)
{
	json_t *req = json_pack("{s:s, s:o}", "cmd", cmd, "args", args ? args : json_object());
	char *text = json_dumps(req, JSON_COMPACT);
	char *line = xasprintf("%s\n", text);
	json_t *reply = raw(fx.fd, line);

	free(line);
	free(text);
	json_decref(req);
	return reply;
}

static bool reply_ok(json_t *r)
{
	return json_is_true(json_object_get(r, "ok"));
}

static const char *reply_error(json_t *r)
{
	const char *e = json_string_value(json_object_get(r, "error"));
	return e != NULL ? e : "(none)";
}

static const char *reply_code(json_t *r)
{
	const char *e = json_string_value(json_object_get(r, "code"));
	return e != NULL ? e : "(none)";
}

/* Calls and checks success; returns the result (borrowed from *r_r). */
static json_t *call_ok(json_t **r_r, const char *cmd, json_t *args)
{
	*r_r = call(cmd, args);
	if (!reply_ok(*r_r)) {
		fprintf(stderr, "  %s failed: %s\n", cmd, reply_error(*r_r));
		test_failed_checks++;
	}
	return json_object_get(*r_r, "result");
}

/* Calls and checks success, dropping the reply. */
static void call_done(const char *cmd, json_t *args)
{
	json_t *r;

	call_ok(&r, cmd, args);
	json_decref(r);
}

static void test_socket_and_framing(void)
{
	struct stat st;
	json_t *r;

	CHECK_INT(stat(fx.sock, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
	r = raw(fx.fd, "not json\n");
	CHECK(!reply_ok(r));
	CHECK_STR(reply_code(r), "usage");
	json_decref(r);
	r = raw(fx.fd, "{\"cmd\": \"nope\"}\n");
	CHECK_STR(reply_error(r), "unknown command nope");
	json_decref(r);
	r = raw(fx.fd, "[1, 2]\n");
	CHECK_STR(reply_code(r), "usage");
	json_decref(r);
	/* Blank lines are ignored; the next request is answered. */
	r = raw(fx.fd, "\n\n{\"cmd\": \"status\"}\n");
	CHECK(reply_ok(r));
	json_decref(r);
}

static void test_status(void)
{
	json_t *r, *st = call_ok(&r, "status", NULL);

	CHECK_STR(json_string_value(json_object_get(st, "version")), KEEL_VERSION);
	CHECK(json_integer_value(json_object_get(st, "uptime")) >= 5);
	CHECK_INT(json_array_size(json_object_get(st, "listeners")), 1);
	CHECK(json_is_integer(json_object_get(st, "commits")));
	json_decref(r);
	r = call("reload", NULL);
	CHECK(!reply_ok(r));
	CHECK_STR(reply_error(r), "keel.conf:3: key 'x': unknown key");
	json_decref(r);
}

static void test_domains_users(void)
{
	json_t *r, *res;

	call_done("domain.add", json_pack("{s:s}", "name", "Example.TEST"));
	r = call("domain.add", json_pack("{s:s}", "name", "example.test"));
	CHECK_STR(reply_code(r), "exists");
	json_decref(r);
	r = call("user.add", json_pack("{s:s}", "address", "a@nowhere.test"));
	CHECK_STR(reply_error(r), "domain nowhere.test does not exist");
	CHECK_STR(reply_code(r), "not_found");
	json_decref(r);
	r = call("user.add",
	         json_pack("{s:s, s:s}", "address", "ann@example.test", "password", "short"));
	CHECK_STR(reply_code(r), "invalid");
	CHECK(strstr(reply_error(r), "at least 10") != NULL);
	json_decref(r);

	res = call_ok(&r, "user.add",
	              json_pack("{s:s, s:s, s:s}", "address", "ann@example.test", "name", "Ann",
	                        "quota", "50M"));
	CHECK(json_integer_value(json_object_get(res, "id")) > 0);
	CHECK_INT(json_string_length(json_object_get(res, "password")), 16);
	CHECK_INT(json_integer_value(json_object_get(res, "quota")), 52428800);
	json_decref(r);

	res = call_ok(&r, "user.show", json_pack("{s:s}", "address", "ANN@example.test"));
	CHECK_STR(json_string_value(json_object_get(res, "name")), "Ann");
	CHECK(json_array_size(json_object_get(res, "mailboxes")) >= 6);
	CHECK(json_object_get(res, "password_hash") == NULL);
	json_decref(r);
}

static void test_settings_apply(void)
{
	json_t *r, *res;

	r = call("config.set", json_pack("{s:s, s:s}", "key", "user.default_quota", "value", "x"));
	CHECK_STR(reply_code(r), "invalid");
	CHECK(strstr(reply_error(r), "user.default_quota") != NULL);
	json_decref(r);
	r = call("config.set", json_pack("{s:s, s:s}", "key", "no.key", "value", "1"));
	CHECK_STR(reply_error(r), "unknown setting no.key");
	json_decref(r);

	res = call_ok(&r, "config.set",
	              json_pack("{s:s, s:s}", "key", "user.default_quota", "value", "1K"));
	CHECK_STR(json_string_value(json_object_get(res, "value")), "1024");
	json_decref(r);
	/* The handler updated the live table once committed. */
	CHECK_INT(settings_get_int("user.default_quota"), 1024);
	res = call_ok(&r, "user.add",
	              json_pack("{s:s, s:s}", "address", "bob@example.test", "password",
	                        "a long enough one"));
	CHECK_INT(json_integer_value(json_object_get(res, "quota")), 1024);
	CHECK(json_object_get(res, "password") == NULL);
	json_decref(r);
	call_done("config.unset", json_pack("{s:s}", "key", "user.default_quota"));
	CHECK_INT(settings_get_int("user.default_quota"), 0);
	CHECK(!settings_is_set("user.default_quota"));
}

static void test_rename_alias_group(void)
{
	json_t *r, *res;
	int64_t id;

	res = call_ok(&r, "user.show", json_pack("{s:s}", "address", "bob@example.test"));
	id = json_integer_value(json_object_get(res, "id"));
	json_decref(r);
	res = call_ok(&r, "user.rename",
	              json_pack("{s:s, s:s}", "address", "bob@example.test", "new_address",
	                        "rob@example.test"));
	CHECK_INT(json_integer_value(json_object_get(res, "id")), id);
	json_decref(r);
	res = call_ok(&r, "user.show", json_pack("{s:s}", "address", "rob@example.test"));
	CHECK_INT(json_integer_value(json_object_get(res, "id")), id);
	CHECK_STR(json_string_value(json_array_get(json_object_get(res, "aliases"), 0)),
	          "bob@example.test");
	json_decref(r);

	call_done("group.add", json_pack("{s:s}", "address", "team@example.test"));
	call_done("group.member.add", json_pack("{s:s, s:s}", "group", "team@example.test",
	                                        "member", "rob@example.test"));
	res = call_ok(&r, "group.list", NULL);
	CHECK_STR(json_string_value(
	              json_array_get(json_object_get(json_array_get(res, 0), "members"), 0)),
	          "rob@example.test");
	json_decref(r);
	r = call("domain.del", json_pack("{s:s}", "name", "example.test"));
	CHECK_STR(reply_error(r), "domain example.test still has 2 users");
	json_decref(r);
}

/* ---- the queue and its jobs ----------------------------------------------- */

#define T_MESSAGES 1000
#define T_RCPTS    100
#define T_BATCH    100

static double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Queues messages m..m+n-1, each to T_RCPTS remote recipients, straight
 * through the store (as the pipeline would), all in flight at once. */
static void t_queue_batch(unsigned m, unsigned n, struct store_queue_rcpt *remote)
{
	struct store_sync syncs[T_BATCH];

	for (unsigned i = 0; i < n; i++) {
		char body[128];
		struct store_envelope env = {.sender = "bulk@sender.test",
		                             .client_ip = "192.0.2.9"};
		struct store_delivery d = {
		    .data = body, .remote = remote, .n_remote = T_RCPTS, .envelope = &env};
		d.size = (size_t)snprintf(body, sizeof(body), "Subject: bulk %u\r\n\r\nbody %u\r\n",
		                          m + i, m + i);
		snprintf(env.queue_id, sizeof(env.queue_id), "BULK%08u", m + i);
		store_sync_init(&syncs[i]);
		store_deliver(fx.store, &d, NULL, store_sync_cb, &syncs[i]);
	}
	for (unsigned i = 0; i < n; i++) {
		store_sync_wait(&syncs[i]);
		CHECK_INT(syncs[i].status, 0);
		store_sync_deinit(&syncs[i]);
	}
}

static int64_t t_job_int(json_t *job, const char *key)
{
	return json_integer_value(json_object_get(job, key));
}

/* 100,000 entries held, then deleted, each by one job of 100 chunks; other
 * requests are answered while a job runs. */
static void test_queue_jobs_100k(void)
{
	struct store_queue_rcpt *remote = xcalloc(T_RCPTS, sizeof(*remote));
	json_t *r, *res, *r2;
	double t0;
	int fd2 = fixture_connect();

	for (unsigned i = 0; i < T_RCPTS; i++)
		snprintf(remote[i].rcpt, sizeof(remote[i].rcpt), "r%u@d%u.far.test", i, i % 10);
	t0 = t_now();
	for (unsigned m = 0; m < T_MESSAGES; m += T_BATCH)
		t_queue_batch(m, T_BATCH, remote);
	printf("  queued %d entries in %.2fs\n", T_MESSAGES * T_RCPTS, t_now() - t0);
	free(remote);

	/* In the background: the answer is the job's id at once... */
	res = call_ok(&r, "queue.hold", json_pack("{s:s}", "sender", "bulk@sender.test"));
	CHECK_INT(t_job_int(res, "total"), T_MESSAGES * T_RCPTS);
	CHECK(t_job_int(res, "job") > 0);
	/* ...and the admin loop goes on answering while it runs. */
	r2 = raw(fd2, "{\"cmd\": \"jobs\"}\n");
	CHECK(reply_ok(r2));
	CHECK(json_array_size(json_object_get(r2, "result")) >= 1);
	json_decref(r2);
	json_decref(r);
	/* Waiting on the same filter's release after it: the hold job must have
	 * ended first for this to see everything held.  Poll the first job. */
	t0 = t_now();
	for (;;) {
		json_t *list = call_ok(&r, "jobs", json_pack("{s:i}", "id", 1));
		json_t *job = json_array_get(list, 0);
		bool running =
		    strcmp(json_string_value(json_object_get(job, "state")), "running") == 0;
		if (!running) {
			CHECK_STR(json_string_value(json_object_get(job, "state")), "done");
			CHECK_INT(t_job_int(job, "changed"), T_MESSAGES * T_RCPTS);
			CHECK_INT(t_job_int(job, "steps"), T_MESSAGES * T_RCPTS / 1000 + 1);
			printf("  held %d entries in %.2fs (job: %lld ms, %lld steps)\n",
			       T_MESSAGES * T_RCPTS, t_now() - t0,
			       (long long)t_job_int(job, "elapsed_ms"),
			       (long long)t_job_int(job, "steps"));
		}
		json_decref(r);
		if (!running)
			break;
		usleep(10000);
	}
	res = call_ok(&r, "queue.stats", NULL);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(res, "by_state"), "held")),
	          T_MESSAGES * T_RCPTS);
	CHECK_INT(json_array_size(json_object_get(res, "by_domain")), 10);
	json_decref(r);

	/* Waiting: the answer is the finished job. */
	t0 = t_now();
	res = call_ok(&r, "queue.delete", json_pack("{s:s, s:b}", "state", "held", "wait", 1));
	CHECK_STR(json_string_value(json_object_get(res, "state")), "done");
	CHECK_INT(t_job_int(res, "changed"), T_MESSAGES * T_RCPTS);
	printf("  deleted %d entries in %.2fs\n", T_MESSAGES * T_RCPTS, t_now() - t0);
	json_decref(r);
	res = call_ok(&r, "queue.stats", NULL);
	CHECK_INT(json_integer_value(json_object_get(json_object_get(res, "by_state"), "held")), 0);
	json_decref(r);
	close(fd2);
}

static void test_queue_commands(void)
{
	static const char body[] = "From: Ann <ann@example.test>\r\nTo: x@far.test\r\n"
	                           "Subject: hello there\r\nMessage-ID: <m1@example.test>\r\n"
	                           "\r\nbody\r\n";
	struct store_queue_rcpt remote[2] = {{.rcpt = "x@far.test"}, {.rcpt = "y@near.test"}};
	struct store_envelope env = {.queue_id = "0123456789ABCDEF",
	                             .sender = "ann@example.test",
	                             .auth_user = "ann@example.test",
	                             .client_ip = "127.0.0.1"};
	struct store_delivery d = {
	    .data = body, .size = strlen(body), .remote = remote, .n_remote = 2, .envelope = &env};
	struct store_sync sync;
	json_t *r, *res;
	int64_t id;

	store_sync_init(&sync);
	store_deliver(fx.store, &d, NULL, store_sync_cb, &sync);
	store_sync_wait(&sync);
	CHECK_INT(sync.status, 0);
	store_sync_deinit(&sync);

	res = call_ok(&r, "queue.list", json_pack("{s:s}", "auth_user", "ANN@example.test"));
	CHECK_INT(json_array_size(res), 2);
	id = json_integer_value(json_object_get(json_array_get(res, 1), "id"));
	CHECK_STR(json_string_value(json_object_get(json_array_get(res, 1), "rcpt")),
	          "y@near.test");
	json_decref(r);
	res = call_ok(&r, "queue.show", json_pack("{s:s}", "id", "0123456789ABCDEF"));
	CHECK_STR(json_string_value(json_object_get(json_object_get(res, "headers"), "Subject")),
	          "hello there");
	CHECK_INT(json_array_size(json_object_get(res, "recipients")), 2);
	json_decref(r);
	/* An entry id stands for its message. */
	res = call_ok(&r, "queue.show", json_pack("{s:I}", "id", (json_int_t)id));
	CHECK_STR(json_string_value(json_object_get(res, "queue_id")), "0123456789ABCDEF");
	json_decref(r);
	r = call("queue.show", json_pack("{s:s}", "id", "NOPE"));
	CHECK_STR(reply_code(r), "not_found");
	json_decref(r);

	/* By ids: answered at once with what changed. */
	res = call_ok(&r, "queue.hold", json_pack("{s:[I]}", "ids", (json_int_t)id));
	CHECK_INT(json_integer_value(json_object_get(res, "changed")), 1);
	json_decref(r);
	res = call_ok(&r, "queue.list", json_pack("{s:s}", "state", "held"));
	CHECK_INT(json_array_size(res), 1);
	json_decref(r);
	res = call_ok(&r, "queue.bounce", json_pack("{s:[s]}", "ids", "0123456789ABCDEF"));
	CHECK_INT(json_integer_value(json_object_get(res, "changed")), 2);
	json_decref(r);
	res = call_ok(&r, "queue.list", json_pack("{s:s}", "state", "failed"));
	CHECK_INT(json_array_size(res), 2);
	CHECK_STR(json_string_value(json_object_get(json_array_get(res, 0), "last_reply")),
	          STORE_QUEUE_BOUNCED);
	json_decref(r);

	/* The safety net, and bad filters. */
	r = call("queue.delete", NULL);
	CHECK_STR(reply_code(r), "usage");
	CHECK(strstr(reply_error(r), "all: true") != NULL);
	json_decref(r);
	r = call("queue.list", json_pack("{s:s}", "state", "lost"));
	CHECK_STR(reply_code(r), "invalid");
	json_decref(r);
	r = call("queue.list", json_pack("{s:s}", "older_than", "soon"));
	CHECK_STR(reply_code(r), "invalid");
	json_decref(r);
	r = call("queue.list", json_pack("{s:s}", "client_ip", "300.1.1.1"));
	CHECK_STR(reply_code(r), "invalid");
	json_decref(r);
	res = call_ok(&r, "queue.list", json_pack("{s:s}", "older_than", "1h"));
	CHECK_INT(json_array_size(res), 0);
	json_decref(r);
}

static void test_domain_outbound(void)
{
	json_t *r, *res;

	res = call_ok(&r, "domain.set",
	              json_pack("{s:s, s:s, s:s}", "name", "example.test", "source_ip",
	                        "2001:DB8::1, 192.0.2.1", "ehlo_name", "Out.Example.TEST"));
	CHECK_STR(json_string_value(json_object_get(res, "source_ip4")), "192.0.2.1");
	CHECK_STR(json_string_value(json_object_get(res, "source_ip6")), "2001:db8::1");
	CHECK_STR(json_string_value(json_object_get(res, "ehlo_name")), "out.example.test");
	json_decref(r);
	res = call_ok(&r, "domain.check", json_pack("{s:s}", "name", "example.test"));
	CHECK(json_is_false(json_object_get(res, "ok")));
	CHECK(json_is_false(
	    json_object_get(json_array_get(json_object_get(res, "addresses"), 0), "present")));
	json_decref(r);
	call_done("domain.set",
	          json_pack("{s:s, s:s}", "name", "example.test", "source_ip", "127.0.0.1"));
	res = call_ok(&r, "domain.check", json_pack("{s:s}", "name", "example.test"));
	CHECK(json_is_true(json_object_get(res, "ok")));
	CHECK_INT(json_array_size(json_object_get(res, "addresses")), 1);
	json_decref(r);
	r = call("domain.set", json_pack("{s:s, s:s}", "name", "example.test", "source_ip",
	                                 "192.0.2.1,192.0.2.2"));
	CHECK_STR(reply_code(r), "invalid");
	json_decref(r);
	r = call("domain.set",
	         json_pack("{s:s, s:s}", "name", "example.test", "ehlo_name", "not a name"));
	CHECK_STR(reply_code(r), "invalid");
	json_decref(r);
	r = call("domain.set", json_pack("{s:s, s:s}", "name", "none.test", "ehlo_name", ""));
	CHECK_STR(reply_code(r), "not_found");
	json_decref(r);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	loop_global_init();
	fixture_start();
	TEST_RUN(test_socket_and_framing);
	TEST_RUN(test_status);
	TEST_RUN(test_domains_users);
	TEST_RUN(test_settings_apply);
	TEST_RUN(test_rename_alias_group);
	TEST_RUN(test_queue_commands);
	TEST_RUN(test_domain_outbound);
	TEST_RUN(test_queue_jobs_100k);
	fixture_stop();
	return test_summary();
}
