/* directory_resolve() against a real store in a temporary data dir: every
 * write goes through the committer (store_sync), every read through a
 * store_reader, as in the server. */
#include "directory/directory.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "lib/xalloc.h"
#include "store/store.h"

static struct store *store;
static struct store_reader *reader;
static int64_t bob, ann, carol, eve, zed;

/* Waits for the write just queued with sync and returns its id; a failed
 * write is a failed check (setup must work for the tests to mean anything). */
static int64_t sync_finish(struct store_sync *sync, const char *what)
{
	int64_t id;

	store_sync_wait(sync);
	id = sync->id;
	if (sync->status != 0) {
		fprintf(stderr, "  %s failed: %s\n", what, sync->error);
		test_failed_checks++;
	}
	store_sync_deinit(sync);
	return id;
}

static void domain_add(const char *name, const char *alias_of)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_domain_add(store, name, alias_of, NULL, store_sync_cb, &sync);
	sync_finish(&sync, name);
}

static int64_t user_add(const char *address)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_user_add(store, address, "", "", 0, NULL, store_sync_cb, &sync);
	return sync_finish(&sync, address);
}

static void user_set_enabled(int64_t id, bool enabled)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_user_set_enabled(store, id, enabled, NULL, store_sync_cb, &sync);
	sync_finish(&sync, "set enabled");
}

static void user_rename(int64_t id, const char *address, bool keep_alias)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_user_rename(store, id, address, keep_alias, NULL, store_sync_cb, &sync);
	sync_finish(&sync, address);
}

static void alias_add(const char *address, const char *const *targets, size_t n)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_alias_add(store, address, targets, n, NULL, store_sync_cb, &sync);
	sync_finish(&sync, address);
}

#define ALIAS(address, ...)                                                                        \
	alias_add(address, (const char *const[]){__VA_ARGS__},                                     \
	          sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void group_add(const char *address, const char *const *members, size_t n)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_group_add(store, address, NULL, store_sync_cb, &sync);
	sync_finish(&sync, address);
	for (size_t i = 0; i < n; i++) {
		store_sync_init(&sync);
		store_group_member_add(store, address, members[i], NULL, store_sync_cb, &sync);
		sync_finish(&sync, members[i]);
	}
}

#define GROUP(address, ...)                                                                        \
	group_add(address, (const char *const[]){__VA_ARGS__},                                     \
	          sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* A chain of n aliases prefix0 -> prefix1 -> ... -> prefix(n-1) -> last. */
static void alias_chain(const char *prefix, unsigned n, const char *last)
{
	for (unsigned i = 0; i < n; i++) {
		char address[64], target[64];

		snprintf(address, sizeof(address), "%s%u@example.test", prefix, i);
		if (i + 1 < n)
			snprintf(target, sizeof(target), "%s%u@example.test", prefix, i + 1);
		else
			snprintf(target, sizeof(target), "%s", last);
		ALIAS(address, target);
	}
}

/* An alias to n distinct remote addresses. */
static void alias_wide(const char *address, unsigned n)
{
	char **targets = xcalloc(n, sizeof(*targets));

	for (unsigned i = 0; i < n; i++)
		targets[i] = xasprintf("r%04u@remote.test", i);
	alias_add(address, (const char *const *)targets, n);
	for (unsigned i = 0; i < n; i++)
		free(targets[i]);
	free(targets);
}

static void fixture_create(void)
{
	domain_add("example.test", NULL);
	domain_add("alias.test", "example.test");
	domain_add("other.test", NULL);

	bob = user_add("bob@example.test");
	ann = user_add("ann@example.test");
	carol = user_add("carol@example.test");
	eve = user_add("Eve.Smith@example.test");
	zed = user_add("zed@other.test");
	user_set_enabled(ann, false);

	ALIAS("bob+vip@example.test", "carol@example.test");
	ALIAS("a1@example.test", "a2@example.test");
	ALIAS("a2@example.test", "a3@example.test");
	ALIAS("a3@example.test", "bob@example.test");
	ALIAS("loop1@example.test", "loop2@example.test");
	ALIAS("loop2@example.test", "loop1@example.test");
	ALIAS("self@example.test", "bob@example.test", "SELF@alias.test");
	ALIAS("viadomain1@example.test", "viadomain2@alias.test");
	ALIAS("viadomain2@example.test", "viadomain1@example.test");
	GROUP("team@example.test", "bob@example.test", "carol@example.test", "ann@example.test");
	GROUP("empty@example.test", "ann@example.test");
	ALIAS("staff@example.test", "team@alias.test");
	ALIAS("fwd@example.test", "friend@remote.test");
	ALIAS("mixed@example.test", "carol@example.test", "friend@Remote.TEST",
	      "other@elsewhere.test", "zed@other.test");
	ALIAS("dup@example.test", "bob@example.test", "team@example.test", "BOB@alias.test",
	      "friend@remote.test", "friend@REMOTE.test", "bob+x@example.test");
	ALIAS("dl@example.test", "team@example.test");
	ALIAS("dr@example.test", "team@example.test", "dl@example.test");
	ALIAS("diamond@example.test", "dl@example.test", "dr@example.test");
	ALIAS("void@example.test", "ann@example.test");
	ALIAS("dangling@example.test", "nobody@example.test", "carol@example.test");
	ALIAS("viaalias@example.test", "carol@alias.test");
	alias_chain("ok", DIRECTORY_DEPTH_MAX, "bob@example.test");
	alias_chain("deep", DIRECTORY_DEPTH_MAX + 1, "bob@example.test");
	alias_wide("wide1000@example.test", DIRECTORY_RECIPIENTS_MAX);
	alias_wide("wide1001@example.test", DIRECTORY_RECIPIENTS_MAX + 1);
}

/* Resolves address and checks status and the users' ids (0-terminated). */
static void check_local(const char *address, const int64_t *ids, size_t n_remote,
                        const char *remote0)
{
	struct directory_result res;
	size_t n_ids = 0;

	while (ids[n_ids] != 0)
		n_ids++;
	if (directory_resolve(reader, address, &res) < 0) {
		fprintf(stderr, "  %s rejected: %s\n", address, res.error);
		test_failed_checks++;
		directory_result_free(&res);
		return;
	}
	CHECK_INT(res.status, DIRECTORY_LOCAL);
	CHECK_INT(res.reason, DIRECTORY_REJECT_NONE);
	CHECK_INT(res.n_users, n_ids);
	for (size_t i = 0; i < n_ids && i < res.n_users; i++)
		CHECK_INT(res.users[i].id, ids[i]);
	CHECK_INT(res.n_remote, n_remote);
	if (remote0 != NULL && res.n_remote > 0)
		CHECK_STR(res.remote[0], remote0);
	directory_result_free(&res);
}

static void check_reject(const char *address, enum directory_reject reason)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, address, &res), -1);
	CHECK_INT(res.status, DIRECTORY_REJECT);
	if (res.reason != reason)
		fprintf(stderr, "  %s: %s (%s)\n", address, directory_reject_str(res.reason),
		        res.error);
	CHECK_INT(res.reason, reason);
	CHECK(res.error[0] != '\0');
	CHECK_INT(res.n_users, 0);
	CHECK_INT(res.n_remote, 0);
	directory_result_free(&res);
}

static void test_user(void)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, "bob@example.test", &res), 0);
	CHECK_INT(res.status, DIRECTORY_LOCAL);
	CHECK_INT(res.n_users, 1);
	CHECK_INT(res.users[0].id, bob);
	CHECK_STR(res.users[0].address, "bob@example.test");
	CHECK_INT(res.n_remote, 0);
	CHECK_STR(res.address, "bob@example.test");
	directory_result_free(&res);
	CHECK(res.users == NULL);
	directory_result_free(&res);
}

static void test_domain_case(void)
{
	check_local("bob@EXAMPLE.TEST", (int64_t[]){bob, 0}, 0, NULL);
	check_local("bob@Example.Test", (int64_t[]){bob, 0}, 0, NULL);
	check_local("zed@OTHER.test", (int64_t[]){zed, 0}, 0, NULL);
}

static void test_localpart_case(void)
{
	struct directory_result res;

	check_local("BOB@example.test", (int64_t[]){bob, 0}, 0, NULL);
	check_local("Bob@example.test", (int64_t[]){bob, 0}, 0, NULL);
	/* Created mixed case, reached in any case, reported as created. */
	CHECK_INT(directory_resolve(reader, "eve.smith@example.test", &res), 0);
	CHECK_INT(res.n_users, 1);
	if (res.n_users == 1) {
		CHECK_INT(res.users[0].id, eve);
		CHECK_STR(res.users[0].address, "Eve.Smith@example.test");
	}
	directory_result_free(&res);
	check_local("EVE.SMITH@example.test", (int64_t[]){eve, 0}, 0, NULL);
}

static void test_subaddress(void)
{
	check_local("bob+tag@example.test", (int64_t[]){bob, 0}, 0, NULL);
	check_local("bob+@example.test", (int64_t[]){bob, 0}, 0, NULL);
	check_local("BOB+Tag+More@alias.test", (int64_t[]){bob, 0}, 0, NULL);
	/* bob+vip exists (an alias to carol): it wins over the subaddress rule. */
	check_local("bob+vip@example.test", (int64_t[]){carol, 0}, 0, NULL);
	check_local("BOB+VIP@example.test", (int64_t[]){carol, 0}, 0, NULL);
	/* Subaddresses of aliases and groups. */
	check_local("fwd+x@example.test", (int64_t[]){0}, 1, "friend@remote.test");
	check_local("team+x@example.test", (int64_t[]){bob, carol, 0}, 0, NULL);
	check_reject("nobody+tag@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_reject("+tag@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
}

static void test_alias_domain(void)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, "bob@alias.test", &res), 0);
	CHECK_INT(res.status, DIRECTORY_LOCAL);
	CHECK_STR(res.address, "bob@example.test");
	CHECK_INT(res.n_users, 1);
	if (res.n_users == 1) {
		CHECK_INT(res.users[0].id, bob);
		CHECK_STR(res.users[0].address, "bob@example.test");
	}
	directory_result_free(&res);
	check_local("CAROL@ALIAS.TEST", (int64_t[]){carol, 0}, 0, NULL);
	check_local("team@alias.test", (int64_t[]){bob, carol, 0}, 0, NULL);
	/* Alias targets in the alias domain. */
	check_local("staff@example.test", (int64_t[]){bob, carol, 0}, 0, NULL);
	check_local("viaalias@example.test", (int64_t[]){carol, 0}, 0, NULL);
	check_reject("nobody@alias.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_reject("ann@alias.test", DIRECTORY_REJECT_DISABLED);
}

static void test_alias_chain(void)
{
	check_local("a1@example.test", (int64_t[]){bob, 0}, 0, NULL);
	check_local("a2@example.test", (int64_t[]){bob, 0}, 0, NULL);
	check_local("A1@alias.test", (int64_t[]){bob, 0}, 0, NULL);
	/* DIRECTORY_DEPTH_MAX nested aliases resolve; one more is refused. */
	check_local("ok0@example.test", (int64_t[]){bob, 0}, 0, NULL);
	check_reject("deep0@example.test", DIRECTORY_REJECT_LOOP);
	check_local("deep1@example.test", (int64_t[]){bob, 0}, 0, NULL);
}

static void test_alias_loop(void)
{
	struct directory_result res;

	check_reject("loop1@example.test", DIRECTORY_REJECT_LOOP);
	check_reject("loop2@example.test", DIRECTORY_REJECT_LOOP);
	check_reject("LOOP1@alias.test", DIRECTORY_REJECT_LOOP);
	/* Back to itself through the alias domain. */
	check_reject("self@example.test", DIRECTORY_REJECT_LOOP);
	check_reject("viadomain1@example.test", DIRECTORY_REJECT_LOOP);
	CHECK_INT(directory_resolve(reader, "loop1@example.test", &res), -1);
	CHECK_STR(directory_reject_str(res.reason), "alias loop");
	CHECK(strstr(res.error, "loop1@example.test") != NULL);
	directory_result_free(&res);
}

static void test_group(void)
{
	struct directory_result res;

	/* ann is disabled: skipped inside a group, not a reason to refuse. */
	CHECK_INT(directory_resolve(reader, "team@example.test", &res), 0);
	CHECK_INT(res.status, DIRECTORY_LOCAL);
	CHECK_INT(res.n_users, 2);
	if (res.n_users == 2) {
		CHECK_INT(res.users[0].id, bob);
		CHECK_STR(res.users[0].address, "bob@example.test");
		CHECK_INT(res.users[1].id, carol);
		CHECK_STR(res.users[1].address, "carol@example.test");
	}
	CHECK_INT(res.n_skipped, 1);
	directory_result_free(&res);
	check_reject("empty@example.test", DIRECTORY_REJECT_EMPTY);
}

static void test_alias_remote(void)
{
	struct directory_result res;

	check_local("fwd@example.test", (int64_t[]){0}, 1, "friend@remote.test");
	CHECK_INT(directory_resolve(reader, "mixed@example.test", &res), 0);
	CHECK_INT(res.status, DIRECTORY_LOCAL);
	CHECK_INT(res.n_remote, 2);
	if (res.n_remote == 2) {
		CHECK_STR(res.remote[0], "friend@remote.test");
		CHECK_STR(res.remote[1], "other@elsewhere.test");
	}
	/* zed@other.test is in another local domain: a local user. */
	CHECK_INT(res.n_users, 2);
	if (res.n_users == 2) {
		CHECK_INT(res.users[0].id, carol);
		CHECK_INT(res.users[1].id, zed);
	}
	directory_result_free(&res);
}

static void test_duplicates(void)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, "dup@example.test", &res), 0);
	CHECK_INT(res.n_users, 2);
	if (res.n_users == 2) {
		CHECK_INT(res.users[0].id, bob);
		CHECK_INT(res.users[1].id, carol);
	}
	CHECK_INT(res.n_remote, 1);
	if (res.n_remote == 1)
		CHECK_STR(res.remote[0], "friend@remote.test");
	directory_result_free(&res);
	/* A diamond is not a loop. */
	check_local("diamond@example.test", (int64_t[]){bob, carol, 0}, 0, NULL);
}

static void test_unknown_user(void)
{
	struct directory_result res;

	check_reject("nobody@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_reject("nobody@other.test", DIRECTORY_REJECT_UNKNOWN_USER);
	/* Open-relay forms never leave: local parts that name nothing. */
	check_reject("bob%remote.test@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_reject("remote.test!bob@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_reject("\"bob@remote.test\"@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_reject("\"bob smith\"@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	/* A quoted Dot-string is the plain address. */
	check_local("\"bob\"@example.test", (int64_t[]){bob, 0}, 0, NULL);
	CHECK_INT(directory_resolve(reader, "nobody@example.test", &res), -1);
	CHECK_STR(directory_reject_str(res.reason), "unknown user");
	CHECK(strstr(res.error, "nobody@example.test") != NULL);
	directory_result_free(&res);
}

static void test_remote(void)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, "X.Y@Elsewhere.TEST", &res), 0);
	CHECK_INT(res.status, DIRECTORY_REMOTE);
	CHECK_INT(res.n_users, 0);
	CHECK_INT(res.n_remote, 1);
	if (res.n_remote == 1)
		CHECK_STR(res.remote[0], "X.Y@elsewhere.test");
	directory_result_free(&res);

	/* A subdomain of a local domain is another domain. */
	CHECK_INT(directory_resolve(reader, "bob@sub.example.test", &res), 0);
	CHECK_INT(res.status, DIRECTORY_REMOTE);
	directory_result_free(&res);

	CHECK_INT(directory_resolve(reader, "bob@[192.0.2.1]", &res), 0);
	CHECK_INT(res.status, DIRECTORY_REMOTE);
	if (res.n_remote == 1)
		CHECK_STR(res.remote[0], "bob@[192.0.2.1]");
	directory_result_free(&res);
}

static void test_invalid(void)
{
	check_reject("bob", DIRECTORY_REJECT_INVALID);
	check_reject("bob@", DIRECTORY_REJECT_INVALID);
	check_reject("", DIRECTORY_REJECT_INVALID);
	check_reject("u@remote.test@example.test", DIRECTORY_REJECT_INVALID);
	check_reject("<bob@example.test>", DIRECTORY_REJECT_INVALID);
}

static void test_disabled(void)
{
	int64_t id = user_add("temp@example.test");

	check_reject("ann@example.test", DIRECTORY_REJECT_DISABLED);
	check_reject("ANN+tag@example.test", DIRECTORY_REJECT_DISABLED);
	/* Through an alias: skipped, and an alias left with nobody refuses. */
	check_reject("void@example.test", DIRECTORY_REJECT_EMPTY);

	check_local("temp@example.test", (int64_t[]){id, 0}, 0, NULL);
	user_set_enabled(id, false);
	check_reject("temp@example.test", DIRECTORY_REJECT_DISABLED);
	user_set_enabled(id, true);
	check_local("temp@example.test", (int64_t[]){id, 0}, 0, NULL);
}

static void test_dangling_target(void)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, "dangling@example.test", &res), 0);
	CHECK_INT(res.n_users, 1);
	if (res.n_users == 1)
		CHECK_INT(res.users[0].id, carol);
	CHECK_INT(res.n_skipped, 1);
	directory_result_free(&res);
}

static void test_rename(void)
{
	struct directory_result res;
	int64_t id = user_add("old.name@example.test");

	GROUP("renamers@example.test", "old.name@example.test");
	ALIAS("toold@example.test", "old.name@example.test");
	user_rename(id, "new.name@example.test", true);

	/* The old address is now an alias to the same id. */
	CHECK_INT(directory_resolve(reader, "old.name@example.test", &res), 0);
	CHECK_INT(res.n_users, 1);
	if (res.n_users == 1) {
		CHECK_INT(res.users[0].id, id);
		CHECK_STR(res.users[0].address, "new.name@example.test");
	}
	directory_result_free(&res);
	check_local("new.name@example.test", (int64_t[]){id, 0}, 0, NULL);
	check_local("OLD.NAME@alias.test", (int64_t[]){id, 0}, 0, NULL);
	check_local("old.name+tag@example.test", (int64_t[]){id, 0}, 0, NULL);
	/* Aliases and groups that named the user follow the rename. */
	check_local("toold@example.test", (int64_t[]){id, 0}, 0, NULL);
	CHECK_INT(directory_resolve(reader, "renamers@example.test", &res), 0);
	if (res.n_users == 1)
		CHECK_STR(res.users[0].address, "new.name@example.test");
	directory_result_free(&res);

	/* Without keep_alias the old address is gone. */
	id = user_add("gone@example.test");
	user_rename(id, "moved@example.test", false);
	check_reject("gone@example.test", DIRECTORY_REJECT_UNKNOWN_USER);
	check_local("moved@example.test", (int64_t[]){id, 0}, 0, NULL);
}

static void test_too_many(void)
{
	struct directory_result res;

	CHECK_INT(directory_resolve(reader, "wide1000@example.test", &res), 0);
	CHECK_INT(res.n_remote, DIRECTORY_RECIPIENTS_MAX);
	if (res.n_remote == DIRECTORY_RECIPIENTS_MAX) {
		CHECK_STR(res.remote[0], "r0000@remote.test");
		CHECK_STR(res.remote[DIRECTORY_RECIPIENTS_MAX - 1], "r0999@remote.test");
	}
	directory_result_free(&res);
	check_reject("wide1001@example.test", DIRECTORY_REJECT_TOO_MANY);
}

static void test_is_local_domain(void)
{
	CHECK(directory_is_local_domain(reader, "example.test"));
	CHECK(directory_is_local_domain(reader, "EXAMPLE.Test"));
	CHECK(directory_is_local_domain(reader, "alias.test"));
	CHECK(directory_is_local_domain(reader, "other.test"));
	CHECK(!directory_is_local_domain(reader, "elsewhere.test"));
	CHECK(!directory_is_local_domain(reader, "sub.example.test"));
	CHECK(!directory_is_local_domain(reader, ""));
}

int main(void)
{
	char *dir = test_tmpdir();
	const char *error = NULL;

	if (store_open(dir, &store, &error) < 0 || store_reader_open(store, &reader, &error) < 0) {
		fprintf(stderr, "store: %s\n", error);
		return 2;
	}
	fixture_create();
	if (test_failed_checks != 0) {
		fprintf(stderr, "fixture failed\n");
		return 2;
	}
	TEST_RUN(test_user);
	TEST_RUN(test_domain_case);
	TEST_RUN(test_localpart_case);
	TEST_RUN(test_subaddress);
	TEST_RUN(test_alias_domain);
	TEST_RUN(test_alias_chain);
	TEST_RUN(test_alias_loop);
	TEST_RUN(test_group);
	TEST_RUN(test_alias_remote);
	TEST_RUN(test_duplicates);
	TEST_RUN(test_unknown_user);
	TEST_RUN(test_remote);
	TEST_RUN(test_invalid);
	TEST_RUN(test_disabled);
	TEST_RUN(test_dangling_target);
	TEST_RUN(test_rename);
	TEST_RUN(test_too_many);
	TEST_RUN(test_is_local_domain);
	store_reader_close(&reader);
	store_close(&store);
	test_rmtree(dir);
	free(dir);
	return test_summary();
}
