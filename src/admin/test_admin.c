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
	fixture_stop();
	return test_summary();
}
