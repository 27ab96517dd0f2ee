/* Unit tests for the store (SQLite backend) against a real database in a
 * temporary data dir: directory rules, delivery, quota, deletion, reopen,
 * schema versions, group commit, flush failures, callbacks on loops,
 * mailbox changes (rename, delete, flags, expunge, copy/move) and the
 * notifier. */
#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/test.h"
#include "lib/xalloc.h"
#include "store/sqlite/sqlite_private.h"

static char *t_dir;
static struct store *t_s;
static struct store_reader *t_r;

/* One synchronous write at a time: T(store_x(t_s, ..., SYNC)) returns its
 * outcome and leaves the details in t_*. */
static struct store_sync ts;
static int64_t t_id;
static char t_error[512];
static struct store_delivered t_delivered[8];
static size_t t_n_delivered;

#define SYNC NULL, store_sync_cb, &ts
#define T(call) (store_sync_init(&ts), (call), t_finish())

static enum store_err t_finish(void)
{
	enum store_err err;

	store_sync_wait(&ts);
	err = ts.status == 0 ? STORE_OK : ts.err;
	if (ts.status == 0 && ts.err != STORE_OK)
		err = (enum store_err)-1; /* inconsistent reply: make the check fail */
	t_id = ts.id;
	snprintf(t_error, sizeof(t_error), "%s", ts.error);
	t_n_delivered = ts.n_delivered < 8 ? ts.n_delivered : 8;
	if (t_n_delivered > 0)
		memcpy(t_delivered, ts.delivered, t_n_delivered * sizeof(t_delivered[0]));
	store_sync_deinit(&ts);
	return err;
}

static void t_open(void)
{
	const char *error;

	if (store_open(t_dir, &t_s, &error) < 0 || store_reader_open(t_s, &t_r, &error) < 0) {
		fprintf(stderr, "open: %s\n", error);
		exit(2);
	}
}

static void t_close(void)
{
	store_reader_close(&t_r);
	store_close(&t_s);
}

static void t_setup(void)
{
	t_dir = test_tmpdir();
	t_open();
}

static void t_teardown(void)
{
	t_close();
	test_rmtree(t_dir);
	free(t_dir);
	t_dir = NULL;
}

/* An integer from the database, read behind the store's back to check what
 * the interface does not show (refcounts, row counts). */
static long long t_sql_int(const char *sql)
{
	char *path = xasprintf("%s/keel.db", t_dir);
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	} else {
		fprintf(stderr, "  sql: %s\n", sqlite3_errmsg(db));
	}
	sqlite3_close(db);
	free(path);
	return v;
}

static int64_t t_user_add(const char *address, uint64_t quota)
{
	CHECK_INT(T(store_user_add(t_s, address, "Some One", "$argon2id$x", quota, SYNC)),
		  STORE_OK);
	return t_id;
}

static enum store_err t_deliver(const char *body, const struct store_rcpt *rcpts, size_t n)
{
	struct store_delivery d = {
		.data = body, .size = strlen(body), .rcpts = rcpts, .n_rcpts = n,
	};

	return T(store_deliver(t_s, &d, SYNC));
}

static struct store_mailbox t_mailbox(int64_t user_id, const char *name)
{
	struct store_mailbox m;

	memset(&m, 0, sizeof(m));
	CHECK(store_mailbox_get(t_r, user_id, name, &m) == 0);
	return m;
}

/* ---- directory ---------------------------------------------------------- */

static void test_store_domains(void)
{
	struct store_domain d;
	struct store_domain *list;
	size_t n;
	int64_t uid;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "X.Test", NULL, SYNC)), STORE_OK);
	CHECK(t_id > 0);
	CHECK(store_domain_get(t_r, "x.TEST", &d) == 0);
	CHECK_STR(d.name, "x.test");
	CHECK_INT(d.alias_of, 0);
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_ERR_EXISTS);
	CHECK_STR(t_error, "domain x.test already exists");
	CHECK_INT(T(store_domain_add(t_s, "alias.test", "x.test", SYNC)), STORE_OK);
	CHECK(store_domain_get(t_r, "alias.test", &d) == 0);
	CHECK_STR(d.alias_of_name, "x.test");
	CHECK(d.alias_of > 0);
	/* No alias of an alias; the primary must exist. */
	CHECK_INT(T(store_domain_add(t_s, "a2.test", "alias.test", SYNC)), STORE_ERR_INVALID);
	CHECK_INT(T(store_domain_add(t_s, "a3.test", "nope.test", SYNC)), STORE_ERR_NOT_FOUND);
	CHECK_STR(t_error, "domain nope.test does not exist");
	/* Addresses only in independent, existing domains. */
	CHECK_INT(T(store_user_add(t_s, "bob@alias.test", "", "", 0, SYNC)), STORE_ERR_INVALID);
	CHECK_STR(t_error, "domain alias.test is an alias of x.test; add the address to x.test");
	CHECK_INT(T(store_user_add(t_s, "bob@nope.test", "", "", 0, SYNC)), STORE_ERR_NOT_FOUND);
	CHECK_STR(t_error, "domain nope.test does not exist");
	/* Deleting waits until the domain is empty. */
	CHECK_INT(T(store_domain_del(t_s, "x.test", SYNC)), STORE_ERR_INVALID);
	CHECK_STR(t_error, "domain x.test has 1 alias domain; delete them first");
	uid = t_user_add("bob@x.test", 0);
	CHECK_INT(T(store_domain_del(t_s, "alias.test", SYNC)), STORE_OK);
	CHECK_INT(T(store_domain_del(t_s, "x.test", SYNC)), STORE_ERR_INVALID);
	CHECK_STR(t_error, "domain x.test has 1 user; delete them first");
	CHECK_INT(T(store_user_del(t_s, uid, SYNC)), STORE_OK);
	CHECK_INT(T(store_domain_del(t_s, "x.test", SYNC)), STORE_OK);
	CHECK_INT(T(store_domain_del(t_s, "x.test", SYNC)), STORE_ERR_NOT_FOUND);
	CHECK(store_domain_list(t_r, &list, &n) == 0);
	CHECK_INT(n, 0);
	free(list);
	t_teardown();
}

static void test_store_users(void)
{
	static const char *const names[] = { "INBOX", "Drafts", "Sent", "Trash", "Junk",
					     "Archive" };
	struct store_mailbox *boxes;
	struct store_user u, *users;
	size_t n;
	int64_t id, kind_id;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	id = t_user_add("Bob@x.test", 1000);
	CHECK(store_mailbox_list(t_r, id, &boxes, &n) == 0);
	CHECK_INT(n, 6);
	for (size_t i = 0; i < n && i < 6; i++) {
		CHECK_STR(boxes[i].name, names[i]);
		CHECK_INT(boxes[i].special_use, STORE_SPECIAL_INBOX + (int)i);
		CHECK_INT(boxes[i].uidnext, 1);
		CHECK(boxes[i].uidvalidity != 0);
	}
	free(boxes);
	CHECK(store_user_get(t_r, "bob@X.TEST", &u) == 0);
	CHECK_INT(u.id, id);
	CHECK_STR(u.address, "Bob@x.test");
	CHECK_STR(u.name, "Some One");
	CHECK_STR(u.password_hash, "$argon2id$x");
	CHECK_INT(u.quota, 1000);
	CHECK(u.enabled);
	/* One namespace for users, aliases and groups. */
	CHECK_INT(store_address_kind(t_r, "BOB@x.test", &kind_id), STORE_ADDR_USER);
	CHECK_INT(kind_id, id);
	{
		const char *targets[] = { "bob@x.test" };
		CHECK_INT(T(store_alias_add(t_s, "bob@x.test", targets, 1, SYNC)),
			  STORE_ERR_EXISTS);
		CHECK_STR(t_error, "address bob@x.test already exists");
		CHECK_INT(T(store_alias_add(t_s, "team@x.test", targets, 1, SYNC)), STORE_OK);
	}
	CHECK_INT(T(store_group_add(t_s, "BOB@x.test", SYNC)), STORE_ERR_EXISTS);
	CHECK_INT(T(store_user_add(t_s, "team@x.test", "", "", 0, SYNC)), STORE_ERR_EXISTS);
	CHECK_INT(T(store_group_add(t_s, "staff@x.test", SYNC)), STORE_OK);
	CHECK_INT(store_address_kind(t_r, "team@x.test", &kind_id), STORE_ADDR_ALIAS);
	CHECK_INT(store_address_kind(t_r, "staff@x.test", &kind_id), STORE_ADDR_GROUP);
	CHECK_INT(store_address_kind(t_r, "nobody@x.test", &kind_id), STORE_ADDR_NONE);
	CHECK_INT(T(store_user_add(t_s, "no-at-sign", "", "", 0, SYNC)), STORE_ERR_INVALID);
	/* Field updates. */
	CHECK_INT(T(store_user_set_password(t_s, id, "$argon2id$y", SYNC)), STORE_OK);
	CHECK_INT(T(store_user_set_name(t_s, id, "Bob B.", SYNC)), STORE_OK);
	CHECK_INT(T(store_user_set_quota(t_s, id, 5000, SYNC)), STORE_OK);
	CHECK_INT(T(store_user_set_enabled(t_s, id, false, SYNC)), STORE_OK);
	CHECK_INT(T(store_user_set_enabled(t_s, 999999, true, SYNC)), STORE_ERR_NOT_FOUND);
	CHECK(store_user_get_by_id(t_r, id, &u) == 0);
	CHECK_STR(u.password_hash, "$argon2id$y");
	CHECK_STR(u.name, "Bob B.");
	CHECK_INT(u.quota, 5000);
	CHECK(!u.enabled);
	t_user_add("alice@x.test", 0);
	CHECK(store_user_list(t_r, "x.test", &users, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2)
		CHECK_STR(users[0].address, "alice@x.test");
	free(users);
	t_teardown();
}

static void test_store_rename(void)
{
	const char *targets[] = { "bob@x.test", "someone@remote.test" };
	struct store_mailbox before = { 0 }, after;
	struct store_alias a;
	struct store_user u;
	int64_t id, kind_id;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	CHECK_INT(T(store_domain_add(t_s, "y.test", NULL, SYNC)), STORE_OK);
	id = t_user_add("bob@x.test", 0);
	t_user_add("carol@x.test", 0);
	CHECK_INT(T(store_alias_add(t_s, "all@x.test", targets, 2, SYNC)), STORE_OK);
	before = t_mailbox(id, "INBOX");
	CHECK_INT(T(store_user_rename(t_s, id, "carol@x.test", true, SYNC)), STORE_ERR_EXISTS);
	CHECK_INT(T(store_user_rename(t_s, id, "robert@x.test", true, SYNC)), STORE_OK);
	CHECK(store_user_get(t_r, "robert@x.test", &u) == 0);
	CHECK_INT(u.id, id);
	after = t_mailbox(id, "INBOX");
	CHECK_INT(after.id, before.id);
	CHECK_INT(after.uidvalidity, before.uidvalidity);
	CHECK(store_user_get(t_r, "bob@x.test", &u) < 0);
	/* The old address is an alias whose one target is the user, by id. */
	CHECK_INT(store_address_kind(t_r, "bob@x.test", &kind_id), STORE_ADDR_ALIAS);
	CHECK(store_alias_get(t_r, "bob@x.test", &a) == 0);
	CHECK_INT(a.n_targets, 1);
	if (a.n_targets == 1) {
		CHECK_INT(a.targets[0].user_id, id);
		CHECK_STR(a.targets[0].address, "robert@x.test");
	}
	store_alias_free(&a);
	/* Aliases made before follow the rename; remote targets stay strings. */
	CHECK(store_alias_get(t_r, "all@x.test", &a) == 0);
	CHECK_INT(a.n_targets, 2);
	if (a.n_targets == 2) {
		CHECK_INT(a.targets[0].user_id, id);
		CHECK_STR(a.targets[0].address, "robert@x.test");
		CHECK_INT(a.targets[1].user_id, 0);
		CHECK_STR(a.targets[1].address, "someone@remote.test");
	}
	store_alias_free(&a);
	/* Without the alias the old address is free; across domains too. */
	CHECK_INT(T(store_user_rename(t_s, id, "rob@y.test", false, SYNC)), STORE_OK);
	CHECK_INT(store_address_kind(t_r, "robert@x.test", &kind_id), STORE_ADDR_NONE);
	CHECK_INT(store_address_kind(t_r, "rob@y.test", &kind_id), STORE_ADDR_USER);
	CHECK_INT(kind_id, id);
	CHECK_INT(T(store_user_rename(t_s, id, "Rob@y.test", true, SYNC)), STORE_OK);
	CHECK(store_user_get_by_id(t_r, id, &u) == 0);
	CHECK_STR(u.address, "Rob@y.test");
	CHECK_INT(T(store_user_rename(t_s, 424242, "z@y.test", false, SYNC)), STORE_ERR_NOT_FOUND);
	t_teardown();
}

static void test_store_groups_settings(void)
{
	struct store_group g, *groups;
	struct store_setting set, *sets;
	size_t n;
	int64_t bob;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	bob = t_user_add("bob@x.test", 0);
	t_user_add("amy@x.test", 0);
	CHECK_INT(T(store_group_add(t_s, "staff@x.test", SYNC)), STORE_OK);
	CHECK_INT(T(store_group_member_add(t_s, "staff@x.test", "bob@x.test", SYNC)), STORE_OK);
	CHECK_INT(T(store_group_member_add(t_s, "staff@x.test", "amy@x.test", SYNC)), STORE_OK);
	CHECK_INT(T(store_group_member_add(t_s, "staff@x.test", "bob@x.test", SYNC)),
		  STORE_ERR_EXISTS);
	CHECK_INT(T(store_group_member_add(t_s, "staff@x.test", "zed@x.test", SYNC)),
		  STORE_ERR_NOT_FOUND);
	CHECK_STR(t_error, "user zed@x.test does not exist");
	CHECK_INT(T(store_group_member_add(t_s, "none@x.test", "bob@x.test", SYNC)),
		  STORE_ERR_NOT_FOUND);
	CHECK(store_group_get(t_r, "staff@x.test", &g) == 0);
	CHECK_INT(g.n_members, 2);
	if (g.n_members == 2)
		CHECK_STR(g.member_addresses[0], "amy@x.test");
	store_group_free(&g);
	/* Deleting a user drops its memberships. */
	CHECK_INT(T(store_user_del(t_s, bob, SYNC)), STORE_OK);
	CHECK_INT(T(store_group_member_del(t_s, "staff@x.test", "amy@x.test", SYNC)), STORE_OK);
	CHECK_INT(T(store_group_member_del(t_s, "staff@x.test", "amy@x.test", SYNC)),
		  STORE_ERR_NOT_FOUND);
	CHECK(store_group_list(t_r, &groups, &n) == 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_INT(groups[0].n_members, 0);
	store_group_list_free(groups, n);
	CHECK_INT(T(store_group_del(t_s, "staff@x.test", SYNC)), STORE_OK);
	CHECK_INT(store_address_kind(t_r, "staff@x.test", &bob), STORE_ADDR_NONE);
	/* Settings. */
	CHECK_INT(T(store_setting_set(t_s, "smtp.max_size", "10M", SYNC)), STORE_OK);
	CHECK_INT(T(store_setting_set(t_s, "smtp.max_size", "20M", SYNC)), STORE_OK);
	CHECK_INT(T(store_setting_set(t_s, "a.b", "x", SYNC)), STORE_OK);
	CHECK(store_setting_get(t_r, "smtp.max_size", &set) == 0);
	CHECK_STR(set.value, "20M");
	CHECK(store_setting_list(t_r, &sets, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2)
		CHECK_STR(sets[0].key, "a.b");
	free(sets);
	CHECK_INT(T(store_setting_unset(t_s, "a.b", SYNC)), STORE_OK);
	CHECK_INT(T(store_setting_unset(t_s, "a.b", SYNC)), STORE_ERR_NOT_FOUND);
	CHECK(store_setting_get(t_r, "a.b", &set) < 0);
	t_teardown();
}

static void test_store_mailbox_create(void)
{
	struct store_mailbox m;
	int64_t id, box;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	id = t_user_add("bob@x.test", 0);
	CHECK_INT(T(store_mailbox_create(t_s, id, "Projects/Keel", STORE_SPECIAL_NONE, SYNC)),
		  STORE_OK);
	box = t_id;
	m = t_mailbox(id, "Projects/Keel");
	CHECK_INT(m.id, box);
	CHECK(m.uidvalidity != 0 && m.uidvalidity != t_mailbox(id, "INBOX").uidvalidity);
	CHECK_INT(T(store_mailbox_create(t_s, id, "Projects/Keel", 0, SYNC)), STORE_ERR_EXISTS);
	CHECK_INT(T(store_mailbox_create(t_s, id, "inbox", 0, SYNC)), STORE_ERR_EXISTS);
	CHECK_INT(T(store_mailbox_create(t_s, 31337, "X", 0, SYNC)), STORE_ERR_NOT_FOUND);
	CHECK_INT(T(store_mailbox_create(t_s, id, "", 0, SYNC)), STORE_ERR_INVALID);
	t_teardown();
}

/* ---- delivery ----------------------------------------------------------- */

static void test_store_deliver(void)
{
	static const char body[] = "From: a@remote.test\r\nSubject: hi\r\n\r\nHello.\r\n";
	struct store_rcpt rcpts[4] = { { 0 } };
	struct store_message *msgs;
	struct store_mailbox m;
	struct store_user u;
	struct store_stats st;
	size_t n, size;
	void *data;
	const char *error;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	for (int i = 0; i < 3; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "u%d@x.test", i);
		rcpts[i].user_id = t_user_add(addr, 0);
	}
	rcpts[3].user_id = 777777; /* no such user: fails alone */
	for (uint32_t round = 1; round <= 2; round++) {
		CHECK_INT(t_deliver(body, rcpts, 4), STORE_OK);
		CHECK_INT(t_n_delivered, 4);
		for (int i = 0; i < 3; i++) {
			CHECK_INT(t_delivered[i].status, 0);
			CHECK_INT(t_delivered[i].uid, round);
			CHECK_INT(t_delivered[i].modseq, round);
			CHECK_INT(t_delivered[i].mailbox_id,
				  t_mailbox(rcpts[i].user_id, "INBOX").id);
		}
		CHECK_INT(t_delivered[3].status, -1);
		CHECK_INT(t_delivered[3].err, STORE_ERR_NOT_FOUND);
	}
	/* Stored once, referenced by every message. */
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM blobs"), 1);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs"), 6);
	m = t_mailbox(rcpts[1].user_id, "INBOX");
	CHECK_INT(m.messages, 2);
	CHECK_INT(m.size, 2 * strlen(body));
	CHECK_INT(m.uidnext, 3);
	CHECK_INT(m.highestmodseq, 2);
	CHECK(store_user_get_by_id(t_r, rcpts[1].user_id, &u) == 0);
	CHECK_INT(u.used, 2 * strlen(body));
	CHECK(store_message_list(t_r, m.id, 2, 0, &msgs, &n) == 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(msgs[0].uid, 2);
		CHECK_INT(msgs[0].size, strlen(body));
		CHECK(store_blob_read(t_r, msgs[0].blob_id, &data, &size, &error) == 0);
		CHECK(size == strlen(body) && memcmp(data, body, size) == 0);
		free(data);
	}
	free(msgs);
	store_stats(t_r, &st);
	CHECK_INT(st.blobs, 1);
	CHECK_INT(st.messages, 6);
	t_teardown();
}

/* Remote recipients become queue entries of the same stored message. */
static void test_store_deliver_queue(void)
{
	static const char body[] = "From: u@x.test\r\nSubject: out\r\n\r\nBye.\r\n";
	struct store_rcpt local = { 0 };
	struct store_queue_rcpt remote[2] = { { .rcpt = "a@remote.test", .notify = 4 },
					      { .rcpt = "b@other.test",
						.orcpt = "rfc822;B@other.test" } };
	struct store_envelope env = { .queue_id = "Q1", .sender = "u@x.test",
				      .message_id = "<m1@x.test>", .envid = "E1", .ret = 2,
				      .auth_user = "u@x.test", .client_ip = "127.0.0.2" };
	struct store_delivery d = { .data = body, .size = strlen(body), .rcpts = &local,
				    .n_rcpts = 1, .remote = remote, .n_remote = 2,
				    .envelope = &env };
	struct store_queue_entry *q;
	struct store_stats st;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	local.user_id = t_user_add("u@x.test", 0);
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_OK);
	CHECK_INT(t_n_delivered, 1);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs"), 3);
	CHECK(store_queue_list(t_r, "Q1", -1, 0, &q, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(q[0].rcpt.rcpt, "a@remote.test");
		CHECK_INT(q[0].rcpt.notify, 4);
		CHECK_STR(q[1].rcpt.orcpt, "rfc822;B@other.test");
		CHECK_STR(q[1].env.sender, "u@x.test");
		CHECK_STR(q[1].env.message_id, "<m1@x.test>");
		CHECK_STR(q[1].env.envid, "E1");
		CHECK_INT(q[1].env.ret, 2);
		CHECK_STR(q[1].env.auth_user, "u@x.test");
		CHECK_STR(q[1].env.client_ip, "127.0.0.2");
		CHECK_INT(q[1].state, STORE_QUEUE_QUEUED);
		CHECK_INT(q[1].size, strlen(body));
		CHECK(q[1].next_attempt > 0 && q[1].next_attempt == q[1].created);
	}
	free(q);
	store_stats(t_r, &st);
	CHECK_INT(st.queued, 2);
	/* Queue-only mail (no local recipient) is stored too; without a queue
	 * id it is refused. */
	d.n_rcpts = 0;
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM queue"), 4);
	env.queue_id[0] = '\0';
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_ERR_INVALID);
	t_teardown();
}

/* ---- the outbound queue: scheduling and management ----------------------- */

/* Runs a statement behind the store's back (to age entries). */
static void t_sql_exec(const char *sql)
{
	char *path = xasprintf("%s/keel.db", t_dir);
	sqlite3 *db;

	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		fprintf(stderr, "  sql: %s\n", sqlite3_errmsg(db));
		CHECK(0);
	}
	sqlite3_close(db);
	free(path);
}

/* Queues body from sender to the remote rcpts (comma-separated). */
static void t_queue(const char *queue_id, const char *sender, const char *auth_user,
		    const char *client_ip, const char *rcpts, const char *body)
{
	struct store_queue_rcpt remote[8];
	struct store_envelope env;
	struct store_delivery d = { .data = body, .size = strlen(body), .remote = remote,
				    .envelope = &env };
	char *list = xstrdup(rcpts), *save, *w;

	memset(&env, 0, sizeof(env));
	memset(remote, 0, sizeof(remote));
	snprintf(env.queue_id, sizeof(env.queue_id), "%s", queue_id);
	snprintf(env.sender, sizeof(env.sender), "%s", sender);
	snprintf(env.auth_user, sizeof(env.auth_user), "%s", auth_user);
	snprintf(env.client_ip, sizeof(env.client_ip), "%s", client_ip);
	for (w = strtok_r(list, ",", &save); w != NULL && d.n_remote < 8;
	     w = strtok_r(NULL, ",", &save))
		snprintf(remote[d.n_remote++].rcpt, sizeof(remote[0].rcpt), "%s", w);
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_OK);
	free(list);
}

/* The ids of the entries matching f, as "1,2,3" (n_r: how many). */
static const char *t_query(const struct store_queue_filter *f, size_t limit, size_t *n_r)
{
	static char buf[512];
	struct store_queue_entry *q;
	size_t n = 0, len = 0;
	uint64_t count = 0;

	buf[0] = '\0';
	CHECK(store_queue_query(t_r, f, limit, &q, &n) == 0);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld", i ? "," : "",
					(long long)q[i].id);
	free(q);
	if (limit == 0) {
		CHECK(store_queue_count(t_r, f, &count) == 0);
		CHECK_INT(count, n);
	}
	if (n_r != NULL)
		*n_r = n;
	return buf;
}

/* A filter on entries not final, or on one state. */
#define T_FILTER(...) ((struct store_queue_filter){ .state = -1, __VA_ARGS__ })
#define T_STATE(s, ...) ((struct store_queue_filter){ .state = (s), __VA_ARGS__ })

/* Three messages, six entries: ids 1-6. */
static void t_queue_setup(void)
{
	t_setup();
	t_queue("QA", "Ann@X.test", "ann@x.test", "192.0.2.1", "r1@far.test,r2@far.test",
		"Subject: a\r\n\r\na\r\n");
	t_queue("QB", "bob@y.test", "", "192.0.2.2", "r1@far.test,x@near.test",
		"Subject: b\r\n\r\nb\r\n");
	t_queue("QC", "", "", "2001:db8::1", "R1@FAR.test,z@near.test", "Subject: c\r\n\r\nc\r\n");
}

static void test_store_queue_query(void)
{
	struct store_queue_entry *q;
	int64_t ids[] = { 5, 2, 99 };
	size_t n;

	t_queue_setup();
	CHECK_STR(t_query(&T_FILTER(), 0, NULL), "1,2,3,4,5,6");
	CHECK_STR(t_query(&T_FILTER(.queue_id = "QB"), 0, NULL), "3,4");
	CHECK_STR(t_query(&T_FILTER(.sender = "ann@x.TEST"), 0, NULL), "1,2");
	CHECK_STR(t_query(&T_FILTER(.sender_null = true), 0, NULL), "5,6");
	CHECK_STR(t_query(&T_FILTER(.sender_domain = "Y.test"), 0, NULL), "3,4");
	CHECK_STR(t_query(&T_FILTER(.rcpt = "r1@far.test"), 0, NULL), "1,3,5");
	CHECK_STR(t_query(&T_FILTER(.rcpt_domain = "NEAR.test"), 0, NULL), "4,6");
	CHECK_STR(t_query(&T_FILTER(.auth_user = "ANN@x.test"), 0, NULL), "1,2");
	CHECK_STR(t_query(&T_FILTER(.client_ip = "2001:db8::1"), 0, NULL), "5,6");
	CHECK_STR(t_query(&T_FILTER(.rcpt_domain = "far.test", .client_ip = "192.0.2.2"), 0,
			  NULL), "3");
	CHECK_STR(t_query(&T_FILTER(.ids = ids, .n_ids = 3), 0, NULL), "2,5");
	CHECK_STR(t_query(&T_FILTER(.ids = ids, .n_ids = 3, .rcpt_domain = "far.test"), 0, NULL),
		  "2,5");
	CHECK_STR(t_query(&T_FILTER(.ids = ids, .n_ids = 3, .sender_null = true), 0, NULL), "5");
	/* Paging: after_id and limit, in id order. */
	CHECK_STR(t_query(&T_FILTER(.after_id = 2), 2, NULL), "3,4");
	CHECK_STR(t_query(&T_FILTER(.rcpt = "r1@far.test", .after_id = 1), 1, NULL), "3");
	CHECK_STR(t_query(&T_FILTER(.after_id = 6), 0, NULL), "");
	/* older_than: created strictly before. */
	t_sql_exec("UPDATE queue SET created = created - 7200 WHERE queue_id = 'QA'");
	CHECK_STR(t_query(&T_FILTER(.older_than = time(NULL) - 3600), 0, NULL), "1,2");
	CHECK_STR(t_query(&T_FILTER(.older_than = 1), 0, NULL), "");
	/* States: -1 is every entry not final; one state alone. */
	CHECK_STR(t_query(&T_STATE(STORE_QUEUE_QUEUED), 0, NULL), "1,2,3,4,5,6");
	CHECK_STR(t_query(&T_STATE(STORE_QUEUE_HELD), 0, NULL), "");
	/* Entries come back whole. */
	CHECK(store_queue_query(t_r, &T_FILTER(.queue_id = "QA"), 1, &q, &n) == 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(q[0].env.sender, "Ann@X.test");
		CHECK_STR(q[0].env.auth_user, "ann@x.test");
		CHECK_STR(q[0].rcpt.rcpt, "r1@far.test");
		CHECK_INT(q[0].state, STORE_QUEUE_QUEUED);
	}
	free(q);
	t_teardown();
}

/* The filters use their indexes: no full scan of the queue. */
static void test_store_queue_query_plan(void)
{
	static const char *const fields[] = {
		"sender = 'a' COLLATE NOCASE",        "rcpt = 'a' COLLATE NOCASE",
		"auth_user = 'a' COLLATE NOCASE",     "client_ip = 'a'",
		"sender_domain = 'a' COLLATE NOCASE", "rcpt_domain = 'a' COLLATE NOCASE",
		"state = 2",
	};
	char *path;
	sqlite3 *db;

	t_setup();
	path = xasprintf("%s/keel.db", t_dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char *sql = xasprintf("EXPLAIN QUERY PLAN SELECT id FROM queue WHERE id > 0 AND"
				      " created < 9 AND %s ORDER BY id LIMIT 10", fields[i]);
		sqlite3_stmt *st;
		char detail[256] = "";
		CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(detail, sizeof(detail), "%s", sqlite3_column_text(st, 3));
		sqlite3_finalize(st);
		if (strstr(detail, "USING INDEX") == NULL)
			fprintf(stderr, "  %s: %s\n", fields[i], detail);
		CHECK(strstr(detail, "USING INDEX") != NULL);
		free(sql);
	}
	sqlite3_close(db);
	free(path);
	t_teardown();
}

static void t_outcome(struct store_queue_outcome *o, int64_t id, enum store_queue_state state,
		      time_t next, const char *reply)
{
	memset(o, 0, sizeof(*o));
	o->id = id;
	o->state = state;
	o->next_attempt = next;
	snprintf(o->last_reply, sizeof(o->last_reply), "%s", reply);
}

static void test_store_queue_record(void)
{
	struct store_queue_outcome o[4];
	struct store_trace_event ev = { .event = "delivered", .queue_id = "QA" };
	struct store_queue_entry *q;
	time_t later = time(NULL) + 600;
	size_t n;

	t_queue_setup();
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 1"), 2);
	t_outcome(&o[0], 1, STORE_QUEUE_DELIVERED, 0, "250 2.0.0 ok");
	t_outcome(&o[1], 2, STORE_QUEUE_DEFERRED, later, "451 4.3.0 later");
	t_outcome(&o[2], 99, STORE_QUEUE_FAILED, 0, "550 no");
	t_outcome(&o[3], 3, STORE_QUEUE_DEFERRED, 0, "deferred without a time");
	CHECK_INT(T(store_queue_record(t_s, o, 4, &ev, 1, SYNC)), STORE_OK);
	CHECK_INT(t_id, 2);
	CHECK_INT(t_n_delivered, 4);
	CHECK_INT(t_delivered[0].status, 0);
	CHECK_INT(t_delivered[1].status, 0);
	CHECK_INT(t_delivered[2].err, STORE_ERR_NOT_FOUND);
	CHECK_INT(t_delivered[3].err, STORE_ERR_INVALID);
	CHECK_INT(t_delivered[3].mailbox_id, 3);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM trace WHERE event = 'delivered'"), 1);
	/* Final: the reference went, the row stayed; a second final outcome
	 * changes nothing and drops nothing. */
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 1"), 1);
	t_outcome(&o[0], 1, STORE_QUEUE_FAILED, 0, "again");
	CHECK_INT(T(store_queue_record(t_s, o, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_delivered[0].err, STORE_ERR_INVALID);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 1"), 1);
	CHECK(store_queue_list(t_r, "QA", -1, 0, &q, &n) == 0 && n == 2);
	if (n == 2) {
		CHECK_INT(q[0].state, STORE_QUEUE_DELIVERED);
		CHECK_INT(q[0].attempts, 1);
		CHECK_STR(q[0].last_reply, "250 2.0.0 ok");
		CHECK_INT(q[0].blob_id, 1);
		CHECK_INT(q[1].state, STORE_QUEUE_DEFERRED);
		CHECK_INT(q[1].next_attempt, later);
	}
	free(q);
	/* Held during an attempt: a deferral keeps it held, a failure is a
	 * fact and releases the reference once. */
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.queue_id = "QA"), STORE_QUEUE_HOLD, 0,
				       SYNC)), STORE_OK);
	CHECK_INT(t_id, 1);
	t_outcome(&o[0], 2, STORE_QUEUE_DEFERRED, later + 60, "451 again");
	CHECK_INT(T(store_queue_record(t_s, o, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT state * 1000 + attempts FROM queue WHERE id = 2"), 2002);
	t_outcome(&o[0], 2, STORE_QUEUE_FAILED, 0, "550 5.1.1 no such user");
	CHECK_INT(T(store_queue_record(t_s, o, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_delivered[0].status, 0);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 1"), 0);
	CHECK_INT(T(store_queue_record(t_s, o, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 1"), 0);
	t_teardown();
}

static void test_store_queue_due(void)
{
	struct store_queue_outcome o[3];
	struct store_queue_entry *q;
	time_t now = time(NULL);
	size_t n;

	t_queue_setup();
	t_sql_exec("UPDATE queue SET next_attempt = next_attempt - 100 WHERE id = 4");
	t_outcome(&o[0], 1, STORE_QUEUE_DEFERRED, now + 500, "451");
	t_outcome(&o[1], 2, STORE_QUEUE_DEFERRED, now - 500, "451");
	t_outcome(&o[2], 3, STORE_QUEUE_DEFERRED, now + 100, "451");
	CHECK_INT(T(store_queue_record(t_s, o, 3, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.queue_id = "QC"), STORE_QUEUE_HOLD, 1,
				       SYNC)), STORE_OK);
	/* Due: 2 (-500), 4 (-100), then 6 (now); 5 is held; 1 and 3 later. */
	CHECK(store_queue_due(t_r, now + 1, 0, &q, &n) == 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_INT(q[0].id, 2);
		CHECK_INT(q[1].id, 4);
		CHECK_INT(q[2].id, 6);
	}
	free(q);
	CHECK(store_queue_due(t_r, now + 1, 1, &q, &n) == 0 && n == 1 && q[0].id == 2);
	free(q);
	CHECK(store_queue_due(t_r, now + 200, 0, &q, &n) == 0 && n == 4 && q[3].id == 3);
	free(q);
	CHECK_INT(store_queue_next_due(t_r), now - 500);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(), STORE_QUEUE_HOLD, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 5);
	CHECK_INT(store_queue_next_due(t_r), 0);
	CHECK(store_queue_due(t_r, now + 1000, 0, &q, &n) == 0 && n == 0);
	free(q);
	t_teardown();
}

static void test_store_queue_change(void)
{
	struct store_queue_entry *q;
	int64_t ids[] = { 6 };
	size_t n;

	t_queue_setup();
	/* In chunks: each names what it changed, in id order; the next starts
	 * after the last. */
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(), STORE_QUEUE_HOLD, 4, SYNC)), STORE_OK);
	CHECK_INT(t_id, 4);
	CHECK_INT(t_n_delivered, 4);
	CHECK_INT(t_delivered[3].mailbox_id, 4);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.after_id = 4), STORE_QUEUE_HOLD, 4, SYNC)),
		  STORE_OK);
	CHECK_INT(t_id, 2);
	CHECK_INT(t_delivered[0].mailbox_id, 5);
	/* Only the states an action applies to match: nothing left to hold. */
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(), STORE_QUEUE_HOLD, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 0);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM queue WHERE state = 2"), 6);
	t_sql_exec("UPDATE queue SET next_attempt = 5");
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.rcpt_domain = "near.test"),
				       STORE_QUEUE_RELEASE, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 2);
	CHECK(store_queue_query(t_r, &T_STATE(STORE_QUEUE_QUEUED), 0, &q, &n) == 0);
	CHECK(n == 2 && q[0].id == 4 && q[1].id == 6 && q[0].next_attempt >= time(NULL) - 5);
	free(q);
	t_sql_exec("UPDATE queue SET next_attempt = 5, state = 1 WHERE id = 4");
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(), STORE_QUEUE_RETRY, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 2);
	CHECK_INT(t_sql_int("SELECT state FROM queue WHERE id = 4"), STORE_QUEUE_DEFERRED);
	CHECK(t_sql_int("SELECT next_attempt FROM queue WHERE id = 4") > 5);
	/* Bounce: final, reference dropped once; delete: gone, reference
	 * dropped; neither touches final entries. */
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 3"), 2);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.ids = ids, .n_ids = 1), STORE_QUEUE_BOUNCE,
				       0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 1);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 3"), 1);
	CHECK_INT(t_sql_int("SELECT state FROM queue WHERE id = 6"), STORE_QUEUE_FAILED);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM queue WHERE id = 6 AND last_reply = '"
			    STORE_QUEUE_BOUNCED "'"), 1);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.queue_id = "QC"), STORE_QUEUE_DELETE, 0,
				       SYNC)), STORE_OK);
	CHECK_INT(t_id, 1);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE id = 3"), 0);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM queue WHERE queue_id = 'QC'"), 1);
	CHECK_INT(T(store_queue_change(t_s, &T_STATE(STORE_QUEUE_FAILED),
				       STORE_QUEUE_DELETE, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 0);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(), STORE_QUEUE_DELETE, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 4);
	CHECK_INT(t_sql_int("SELECT SUM(refcount) FROM blobs"), 0);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM queue"), 1);
	t_teardown();
}

static void test_store_queue_stats(void)
{
	struct store_queue_count *states, *domains;
	size_t n_states, n_domains;
	int64_t ids[] = { 1 };

	t_queue_setup();
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.ids = ids, .n_ids = 1), STORE_QUEUE_BOUNCE,
				       0, SYNC)), STORE_OK);
	CHECK_INT(T(store_queue_change(t_s, &T_FILTER(.queue_id = "QC"), STORE_QUEUE_HOLD, 0,
				       SYNC)), STORE_OK);
	CHECK(store_queue_stats(t_r, &states, &n_states, &domains, &n_domains) == 0);
	CHECK_INT(n_states, 5);
	if (n_states == 5) {
		CHECK_STR(states[0].key, "queued");
		CHECK_INT(states[0].count, 3);
		CHECK_STR(states[2].key, "held");
		CHECK_INT(states[2].count, 2);
		CHECK_STR(states[3].key, "delivered");
		CHECK_INT(states[3].count, 0);
		CHECK_INT(states[4].count, 1);
	}
	/* far.test: 2, 3, 5 (R1@FAR.test counts with them); near.test: 4, 6. */
	CHECK_INT(n_domains, 2);
	if (n_domains == 2) {
		CHECK(strcasecmp(domains[0].key, "far.test") == 0);
		CHECK_INT(domains[0].count, 3);
		CHECK_STR(domains[1].key, "near.test");
		CHECK_INT(domains[1].count, 2);
	}
	free(states);
	free(domains);
	CHECK_STR(store_queue_state_name(STORE_QUEUE_DEFERRED), "deferred");
	CHECK(store_queue_state_name(7) == NULL);
	t_teardown();
}

static void test_store_domain_outbound(void)
{
	struct store_domain d;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	CHECK(store_domain_get(t_r, "x.test", &d) == 0);
	CHECK_STR(d.source_ip4, "");
	CHECK_STR(d.ehlo_name, "");
	CHECK_INT(T(store_domain_set_outbound(t_s, "X.test", "192.0.2.1", "2001:db8::1",
					      "out.x.test", SYNC)), STORE_OK);
	CHECK(store_domain_get(t_r, "x.test", &d) == 0);
	CHECK_STR(d.source_ip4, "192.0.2.1");
	CHECK_STR(d.source_ip6, "2001:db8::1");
	CHECK_STR(d.ehlo_name, "out.x.test");
	/* NULL leaves a field, "" clears it. */
	CHECK_INT(T(store_domain_set_outbound(t_s, "x.test", "", NULL, NULL, SYNC)), STORE_OK);
	CHECK(store_domain_get(t_r, "x.test", &d) == 0);
	CHECK_STR(d.source_ip4, "");
	CHECK_STR(d.source_ip6, "2001:db8::1");
	CHECK_STR(d.ehlo_name, "out.x.test");
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM domains WHERE source_ip4 IS NULL"), 1);
	CHECK_INT(T(store_domain_set_outbound(t_s, "none.test", "", NULL, NULL, SYNC)),
		  STORE_ERR_NOT_FOUND);
	t_teardown();
}

/* A given mailbox, initial flags, and trace events in the same transaction. */
static void test_store_deliver_mailbox(void)
{
	struct store_trace_event ev = { 0 }, *events;
	struct store_rcpt rcpt = { 0 };
	struct store_delivery d;
	struct store_message *msgs;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	rcpt.user_id = t_user_add("u1@x.test", 0);
	rcpt.mailbox_id = t_mailbox(rcpt.user_id, "Sent").id;
	rcpt.flags = STORE_FLAG_SEEN;
	snprintf(ev.message_id, sizeof(ev.message_id), "<m1@remote.test>");
	snprintf(ev.event, sizeof(ev.event), "delivered");
	snprintf(ev.account, sizeof(ev.account), "u1@x.test");
	d = (struct store_delivery){ .data = "other", .size = 5, .rcpts = &rcpt, .n_rcpts = 1,
				     .events = &ev, .n_events = 1 };
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_OK);
	CHECK_INT(t_delivered[0].status, 0);
	CHECK_INT(t_delivered[0].uid, 1);
	CHECK_INT(t_delivered[0].mailbox_id, rcpt.mailbox_id);
	CHECK_INT(t_mailbox(rcpt.user_id, "INBOX").messages, 0);
	CHECK(store_message_list(t_r, rcpt.mailbox_id, 1, 0, &msgs, &n) == 0);
	CHECK(n == 1 && msgs[0].flags == STORE_FLAG_SEEN);
	free(msgs);
	/* Another user's mailbox id is not this user's. */
	rcpt.user_id = t_user_add("u2@x.test", 0);
	CHECK_INT(t_deliver("x", &rcpt, 1), STORE_OK);
	CHECK_INT(t_delivered[0].err, STORE_ERR_NOT_FOUND);
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.message_id, sizeof(ev.message_id), "<m1@remote.test>");
	CHECK(store_trace_query(t_r, &ev, 0, 0, &events, &n) == 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(events[0].event, "delivered");
		CHECK_STR(events[0].account, "u1@x.test");
		CHECK(events[0].time > 0);
	}
	free(events);
	t_teardown();
}

static void test_store_quota(void)
{
	char small[81], big[31];
	struct store_rcpt rcpts[2] = { { 0 } };
	struct store_user u;

	t_setup();
	memset(small, 's', 80);
	small[80] = '\0';
	memset(big, 'b', 30);
	big[30] = '\0';
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	rcpts[0].user_id = t_user_add("tight@x.test", 100);
	rcpts[1].user_id = t_user_add("free@x.test", 0);
	CHECK_INT(t_deliver(small, rcpts, 2), STORE_OK);
	CHECK(t_delivered[0].status == 0 && t_delivered[1].status == 0);
	CHECK_INT(t_deliver(big, rcpts, 2), STORE_OK);
	CHECK_INT(t_delivered[0].status, -1);
	CHECK_INT(t_delivered[0].err, STORE_ERR_QUOTA);
	CHECK_INT(t_delivered[1].status, 0);
	CHECK_INT(t_mailbox(rcpts[0].user_id, "INBOX").messages, 1);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 30"), 1);
	rcpts[0].ignore_quota = true;
	CHECK_INT(t_deliver(big, rcpts, 1), STORE_OK);
	CHECK_INT(t_delivered[0].status, 0);
	CHECK(store_user_get_by_id(t_r, rcpts[0].user_id, &u) == 0);
	CHECK_INT(u.used, 110);
	t_teardown();
}

static void test_store_user_del(void)
{
	struct store_rcpt rcpts[2] = { { 0 } };
	struct store_alias a;
	struct store_stats st;
	int64_t a_id, b_id;
	void *data;
	size_t size;
	const char *error;
	const char *targets[] = { "a@x.test", "b@x.test" };

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	rcpts[0].user_id = a_id = t_user_add("a@x.test", 0);
	rcpts[1].user_id = b_id = t_user_add("b@x.test", 0);
	CHECK_INT(T(store_alias_add(t_s, "both@x.test", targets, 2, SYNC)), STORE_OK);
	CHECK_INT(t_deliver("shared body", rcpts, 2), STORE_OK);
	CHECK_INT(t_deliver("shared body", rcpts, 1), STORE_OK);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs"), 3);
	CHECK_INT(T(store_user_del(t_s, a_id, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs"), 1);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM mailboxes"), 6);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM messages"), 1);
	CHECK_INT(T(store_user_del(t_s, a_id, SYNC)), STORE_ERR_NOT_FOUND);
	CHECK(store_alias_get(t_r, "both@x.test", &a) == 0);
	CHECK(a.n_targets == 1 && a.targets[0].user_id == b_id);
	store_alias_free(&a);
	/* Refcount 0: the row and the bytes stay for compaction. */
	CHECK_INT(T(store_user_del(t_s, b_id, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs"), 0);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM blobs"), 1);
	store_stats(t_r, &st);
	CHECK_INT(st.blobs, 0);
	CHECK_INT(st.users, 0);
	/* The same content again is stored afresh and the row revived. */
	rcpts[0].user_id = t_user_add("c@x.test", 0);
	CHECK_INT(t_deliver("shared body", rcpts, 1), STORE_OK);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs"), 1);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM blobs"), 1);
	CHECK_INT(t_sql_int("SELECT offset FROM blobs") > 0, 1);
	CHECK(store_blob_read(t_r, t_sql_int("SELECT id FROM blobs"), &data, &size, &error) == 0);
	CHECK(size == 11 && memcmp(data, "shared body", 11) == 0);
	free(data);
	t_teardown();
}

static void test_store_reopen(void)
{
	struct store_rcpt rcpt = { 0 };
	struct store_message *msgs;
	struct store_setting set;
	struct store_user u;
	struct store_mailbox m;
	size_t n, size;
	void *data;
	const char *error;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	rcpt.user_id = t_user_add("bob@x.test", 0);
	CHECK_INT(t_deliver("persistent", &rcpt, 1), STORE_OK);
	CHECK_INT(T(store_setting_set(t_s, "k", "v", SYNC)), STORE_OK);
	t_close();
	t_open();
	CHECK(store_user_get(t_r, "bob@x.test", &u) == 0);
	CHECK_INT(u.id, rcpt.user_id);
	CHECK_INT(u.used, 10);
	m = t_mailbox(u.id, "INBOX");
	CHECK_INT(m.messages, 1);
	CHECK(store_message_list(t_r, m.id, 1, 0, &msgs, &n) == 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK(store_blob_read(t_r, msgs[0].blob_id, &data, &size, &error) == 0);
		CHECK(size == 10 && memcmp(data, "persistent", 10) == 0);
		free(data);
	}
	free(msgs);
	CHECK(store_setting_get(t_r, "k", &set) == 0);
	/* After the reopen new mail goes on where it left off. */
	CHECK_INT(t_deliver("second", &rcpt, 1), STORE_OK);
	CHECK_INT(t_delivered[0].uid, 2);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM blobs"), 2);
	t_teardown();
}

static void test_store_schema_newer(void)
{
	char *path, *want, *sql;
	const char *error;
	sqlite3 *db;

	t_setup();
	t_close();
	path = xasprintf("%s/keel.db", t_dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	sql = xasprintf("INSERT INTO schema_migrations(version, applied) VALUES(%d, 0)",
			STORE_SCHEMA_VERSION + 1);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	free(sql);
	sqlite3_close(db);
	want = xasprintf("data dir %s has schema version %d; this keeld supports up to %d: use a "
			 "newer keeld", t_dir, STORE_SCHEMA_VERSION + 1, STORE_SCHEMA_VERSION);
	CHECK(store_open(t_dir, &t_s, &error) < 0);
	CHECK_STR(error, want);
	t_s = NULL;
	free(want);
	free(path);
	test_rmtree(t_dir);
	free(t_dir);
}

/* ---- the committer ------------------------------------------------------ */

#define T_THREADS 4
#define T_PER_THREAD 25

struct t_sender {
	pthread_barrier_t *start;
	unsigned index;
	struct store_rcpt rcpt;
	struct store_sync syncs[T_PER_THREAD];
	unsigned ok;
};

/* Queues its deliveries back to back, then waits for all of them. */
static void *t_sender_run(void *arg)
{
	struct t_sender *ts_ = arg;

	pthread_barrier_wait(ts_->start);
	for (unsigned i = 0; i < T_PER_THREAD; i++) {
		char body[128];
		struct store_delivery d = { .data = body, .rcpts = &ts_->rcpt, .n_rcpts = 1 };
		d.size = (size_t)snprintf(body, sizeof(body),
					  "Subject: %u/%u\r\n\r\nmessage %u of thread %u\r\n",
					  ts_->index, i, i, ts_->index);
		store_sync_init(&ts_->syncs[i]);
		store_deliver(t_s, &d, NULL, store_sync_cb, &ts_->syncs[i]);
	}
	for (unsigned i = 0; i < T_PER_THREAD; i++) {
		store_sync_wait(&ts_->syncs[i]);
		if (ts_->syncs[i].status == 0 && ts_->syncs[i].n_delivered == 1 &&
		    ts_->syncs[i].delivered[0].status == 0)
			ts_->ok++;
		store_sync_deinit(&ts_->syncs[i]);
	}
	return NULL;
}

static void test_store_group_commit(void)
{
	static struct t_sender senders[T_THREADS];
	pthread_t threads[T_THREADS];
	pthread_barrier_t start;
	struct store_mailbox m;
	struct store_stats st;
	uint64_t before, flushes;
	unsigned ok = 0;
	int64_t user;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("busy@x.test", 0);
	before = store_flush_count(t_s);
	pthread_barrier_init(&start, NULL, T_THREADS);
	for (unsigned i = 0; i < T_THREADS; i++) {
		senders[i] = (struct t_sender){ .start = &start, .index = i };
		senders[i].rcpt.user_id = user;
		pthread_create(&threads[i], NULL, t_sender_run, &senders[i]);
	}
	for (unsigned i = 0; i < T_THREADS; i++) {
		pthread_join(threads[i], NULL);
		ok += senders[i].ok;
	}
	pthread_barrier_destroy(&start);
	flushes = store_flush_count(t_s) - before;
	store_stats(t_r, &st);
	printf("  group commit: %u deliveries, %llu flushes, %llu batches in all\n", ok,
	       (unsigned long long)flushes, (unsigned long long)st.commits);
	CHECK_INT(ok, T_THREADS * T_PER_THREAD);
	CHECK(flushes < 40);
	m = t_mailbox(user, "INBOX");
	CHECK_INT(m.messages, T_THREADS * T_PER_THREAD);
	CHECK_INT(m.uidnext, T_THREADS * T_PER_THREAD + 1);
	CHECK_INT(t_sql_int("SELECT COUNT(DISTINCT uid) FROM messages"), T_THREADS * T_PER_THREAD);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM blobs"), T_THREADS * T_PER_THREAD);
	t_teardown();
}

static void test_store_flush_error(void)
{
	struct store_rcpt rcpt = { 0 };
	struct store_mailbox m;
	struct store_user u;
	struct store_domain d;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	rcpt.user_id = t_user_add("bob@x.test", 0);
	/* The blob flush fails: nothing of the delivery is kept. */
	store_inject_flush_failures(t_s, 1);
	CHECK_INT(t_deliver("doomed", &rcpt, 1), STORE_ERR_IO);
	CHECK(strstr(t_error, "Input/output error") != NULL);
	CHECK_INT(t_n_delivered, 1);
	CHECK_INT(t_delivered[0].err, STORE_ERR_IO);
	m = t_mailbox(rcpt.user_id, "INBOX");
	CHECK_INT(m.messages, 0);
	CHECK_INT(m.uidnext, 1);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM messages"), 0);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM blobs"), 0);
	CHECK(store_user_get_by_id(t_r, rcpt.user_id, &u) == 0);
	CHECK_INT(u.used, 0);
	/* The next one goes through, same content and all. */
	CHECK_INT(t_deliver("doomed", &rcpt, 1), STORE_OK);
	CHECK_INT(t_delivered[0].uid, 1);
	/* The commit fails: the domain is not there. */
	store_inject_flush_failures(t_s, 1);
	CHECK_INT(T(store_domain_add(t_s, "y.test", NULL, SYNC)), STORE_ERR_IO);
	CHECK(store_domain_get(t_r, "y.test", &d) < 0);
	CHECK_INT(T(store_domain_add(t_s, "y.test", NULL, SYNC)), STORE_OK);
	t_teardown();
}

/* A request failing its own rule does not fail its batch neighbours. */
static void test_store_savepoints(void)
{
	struct store_sync syncs[3];
	const char *names[3] = { "a.test", "a.test", "b.test" };
	struct store_domain d;

	t_setup();
	for (int i = 0; i < 3; i++) {
		store_sync_init(&syncs[i]);
		store_domain_add(t_s, names[i], NULL, NULL, store_sync_cb, &syncs[i]);
	}
	for (int i = 0; i < 3; i++)
		store_sync_wait(&syncs[i]);
	CHECK_INT(syncs[0].status, 0);
	CHECK_INT(syncs[1].err, STORE_ERR_EXISTS);
	CHECK_INT(syncs[2].status, 0);
	CHECK(store_domain_get(t_r, "b.test", &d) == 0);
	for (int i = 0; i < 3; i++)
		store_sync_deinit(&syncs[i]);
	t_teardown();
}

struct t_loop_ctx {
	struct loop *seen;
	struct store_sync sync;
};

static void t_loop_cb(const struct store_reply *reply, void *ctx)
{
	struct t_loop_ctx *c = ctx;

	c->seen = loop_current();
	store_sync_cb(reply, &c->sync);
}

static void test_store_loop_callback(void)
{
	struct loop_pool *pool;
	struct t_loop_ctx c = { 0 };

	t_setup();
	loop_global_init();
	pool = loop_pool_start(1, NULL, NULL);
	store_sync_init(&c.sync);
	store_domain_add(t_s, "loop.test", NULL, loop_pool_get(pool, 0), t_loop_cb, &c);
	store_sync_wait(&c.sync);
	CHECK_INT(c.sync.status, 0);
	CHECK(c.seen != NULL && c.seen == loop_pool_get(pool, 0));
	store_sync_deinit(&c.sync);
	loop_pool_stop(&pool);
	t_teardown();
}

static unsigned t_drained;

static void t_count_cb(const struct store_reply *reply, void *ctx)
{
	if (reply->status == 0)
		t_drained++;
}

/* store_close answers everything queued before it. */
static void test_store_close_drains(void)
{
	t_setup();
	store_reader_close(&t_r);
	for (int i = 0; i < 50; i++) {
		struct store_trace_event ev = { 0 };
		snprintf(ev.event, sizeof(ev.event), "connect");
		snprintf(ev.session, sizeof(ev.session), "s%d", i);
		store_trace_append(t_s, &ev, 1, NULL, t_count_cb, NULL);
	}
	store_close(&t_s);
	CHECK_INT(t_drained, 50);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM trace"), 50);
	t_open();
	t_teardown();
}

/* Deferred events cost no flush of their own: they ride with the next
 * write, or go alone within STORE_DEFER_MS. */
static void test_store_trace_defer(void)
{
	struct store_trace_event e = { .event = "disconnect", .protocol = "smtp" };
	uint64_t before;

	t_setup();
	store_trace_defer(t_s, &e, 1);
	store_trace_defer(t_s, &e, 1);
	before = store_flush_count(t_s);
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	CHECK_INT(store_flush_count(t_s) - before, 1);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM trace WHERE event = 'disconnect'"), 2);
	/* Alone: committed after the delay, by itself. */
	store_trace_defer(t_s, &e, 1);
	for (int i = 0; i < 40 && t_sql_int("SELECT COUNT(*) FROM trace") < 3; i++)
		usleep(100 * 1000);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM trace WHERE event = 'disconnect'"), 3);
	/* Closing commits what is still deferred. */
	store_trace_defer(t_s, &e, 1);
	t_close();
	t_open();
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM trace WHERE event = 'disconnect'"), 4);
	t_teardown();
}

static void test_store_trace(void)
{
	struct store_trace_event ev[3], filter, *list;
	size_t n;

	t_setup();
	memset(ev, 0, sizeof(ev));
	for (int i = 0; i < 3; i++) {
		ev[i].time = 1000 + i * 10;
		snprintf(ev[i].event, sizeof(ev[i].event), "e%d", i);
		snprintf(ev[i].client_ip, sizeof(ev[i].client_ip), "192.0.2.%d", i % 2);
		snprintf(ev[i].sender, sizeof(ev[i].sender), "Sender@Remote.test");
		snprintf(ev[i].queue_id, sizeof(ev[i].queue_id), "Q%d", i);
	}
	CHECK_INT(T(store_trace_append(t_s, ev, 3, SYNC)), STORE_OK);
	memset(&filter, 0, sizeof(filter));
	snprintf(filter.sender, sizeof(filter.sender), "sender@remote.test");
	CHECK(store_trace_query(t_r, &filter, 0, 0, &list, &n) == 0);
	CHECK_INT(n, 3);
	if (n == 3)
		CHECK_STR(list[2].event, "e2");
	free(list);
	snprintf(filter.client_ip, sizeof(filter.client_ip), "192.0.2.0");
	CHECK(store_trace_query(t_r, &filter, 0, 0, &list, &n) == 0);
	CHECK_INT(n, 2);
	free(list);
	CHECK(store_trace_query(t_r, &filter, 1005, 0, &list, &n) == 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(list[0].queue_id, "Q2");
	free(list);
	memset(&filter, 0, sizeof(filter));
	CHECK(store_trace_query(t_r, &filter, 0, 1010, &list, &n) == 0);
	CHECK_INT(n, 2);
	free(list);
	t_teardown();
}

/* ---- mailbox changes ---------------------------------------------------- */

/* One message with the given body into a user's mailbox (0: INBOX). */
static uint32_t t_put(int64_t user_id, int64_t mailbox_id, const char *body)
{
	struct store_rcpt rcpt = { .user_id = user_id, .mailbox_id = mailbox_id };

	CHECK_INT(t_deliver(body, &rcpt, 1), STORE_OK);
	CHECK_INT(t_delivered[0].status, 0);
	return t_delivered[0].uid;
}

static struct store_message t_message(int64_t mailbox_id, uint32_t uid)
{
	struct store_message m, *list;
	size_t n;

	memset(&m, 0, sizeof(m));
	CHECK(store_message_list(t_r, mailbox_id, uid, 1, &list, &n) == 0);
	if (n == 1 && list[0].uid == uid)
		m = list[0];
	free(list);
	return m;
}

static struct store_mailbox t_mailbox_id(int64_t id)
{
	struct store_mailbox m;

	memset(&m, 0, sizeof(m));
	CHECK(store_mailbox_get_by_id(t_r, id, &m) == 0);
	return m;
}

static uint64_t t_used(int64_t user_id)
{
	struct store_user u;

	memset(&u, 0, sizeof(u));
	CHECK(store_user_get_by_id(t_r, user_id, &u) == 0);
	return u.used;
}

static enum store_err t_flags(int64_t mailbox_id, const uint32_t *uids, size_t n,
			      enum store_flags_mode mode, uint32_t flags, const char *keywords,
			      uint64_t unchangedsince)
{
	struct store_flags_change c = { .mailbox_id = mailbox_id, .uids = uids, .n_uids = n,
					.mode = mode, .flags = flags, .keywords = keywords,
					.unchangedsince = unchangedsince };

	return T(store_flags_set(t_s, &c, SYNC));
}

static int64_t t_create(int64_t user_id, const char *name)
{
	CHECK_INT(T(store_mailbox_create(t_s, user_id, name, STORE_SPECIAL_NONE, SYNC)),
		  STORE_OK);
	return t_id;
}

static void test_store_mailbox_rename(void)
{
	struct store_mailbox m;
	int64_t user, a, ab, abc, other, pq, pqq;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	a = t_create(user, "a");
	ab = t_create(user, "a/b");
	abc = t_create(user, "a/b/c");
	other = t_create(user, "ab");
	t_put(user, ab, "kept across the rename");
	CHECK_INT(T(store_mailbox_rename(t_s, a, "x", SYNC)), STORE_OK);
	CHECK_INT(t_mailbox(user, "x").id, a);
	CHECK_INT(t_mailbox(user, "x/b").id, ab);
	CHECK_INT(t_mailbox(user, "x/b/c").id, abc);
	CHECK_INT(t_mailbox(user, "ab").id, other); /* "ab" is no child of "a" */
	CHECK(store_mailbox_get(t_r, user, "a/b", &m) < 0);
	m = t_mailbox_id(ab);
	CHECK_INT(m.messages, 1);
	CHECK_INT(t_message(ab, 1).uid, 1);
	/* Taken names, for the mailbox or a child; nothing moves then. */
	CHECK_INT(T(store_mailbox_rename(t_s, a, "Sent", SYNC)), STORE_ERR_EXISTS);
	CHECK_INT(T(store_mailbox_rename(t_s, a, "inbox", SYNC)), STORE_ERR_EXISTS);
	t_create(user, "y/b/c");
	CHECK_INT(T(store_mailbox_rename(t_s, a, "y", SYNC)), STORE_ERR_EXISTS);
	CHECK_STR(t_error, "mailbox y/b/c already exists");
	CHECK_INT(t_mailbox(user, "x/b").id, ab);
	CHECK(store_mailbox_get(t_r, user, "y", &m) < 0);
	/* INBOX stays; nothing goes into its own subtree. */
	CHECK_INT(T(store_mailbox_rename(t_s, t_mailbox(user, "INBOX").id, "Old", SYNC)),
		  STORE_ERR_INVALID);
	CHECK_INT(T(store_mailbox_rename(t_s, a, "x/z", SYNC)), STORE_ERR_INVALID);
	CHECK_INT(T(store_mailbox_rename(t_s, a, "", SYNC)), STORE_ERR_INVALID);
	CHECK_INT(T(store_mailbox_rename(t_s, 987654, "z", SYNC)), STORE_ERR_NOT_FOUND);
	/* Up the tree: "p/q" to "p" while its child "p/q/q" becomes "p/q". */
	pq = t_create(user, "p/q");
	pqq = t_create(user, "p/q/q");
	CHECK_INT(T(store_mailbox_rename(t_s, pq, "p", SYNC)), STORE_OK);
	CHECK_INT(t_mailbox(user, "p").id, pq);
	CHECK_INT(t_mailbox(user, "p/q").id, pqq);
	t_teardown();
}

/* ---- stored structure and the full-text index ------------------------------ */

#define T_MIME_MSG                                                                         \
	"From: Alice <alice@x.test>\r\nSubject: =?utf-8?q?Caf=C3=A9?= Plans\r\n"            \
	"X-Tag: alpha\r\nMIME-Version: 1.0\r\n"                                               \
	"Content-Type: multipart/mixed; boundary=B\r\n\r\n"                                   \
	"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"  \
	"\r\nsee the Agen=\r\nda\r\n"                                                         \
	"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"         \
	"U2VjcmV0IEJVREdFVCBudW1iZXJz\r\n--B--\r\n"

static uint32_t t_put_parsed(int64_t user_id, int64_t mailbox_id, const char *body)
{
	struct store_rcpt rcpt = { .user_id = user_id, .mailbox_id = mailbox_id };
	struct store_structure st;
	struct store_delivery d = { .data = body, .size = strlen(body), .rcpts = &rcpt,
				    .n_rcpts = 1, .structure = &st };

	store_structure_compute(&st, body, strlen(body));
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_OK);
	store_structure_deinit(&st);
	CHECK_INT(t_delivered[0].status, 0);
	return t_delivered[0].uid;
}

/* The uids search finds, as "1 2" (or "-" on failure, "?" for unindexed). */
static const char *t_search(int64_t mailbox_id, enum store_search_where where,
			    const char *field, const char *needle)
{
	static char out[128];
	uint32_t *hits, *unindexed;
	size_t n, n_un, len = 0;

	if (store_message_search_text(t_r, mailbox_id, where, field, needle, strlen(needle),
				      &hits, &n, &unindexed, &n_un) < 0)
		return "-";
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%u", i ? " " : "", hits[i]);
	if (n_un > 0)
		snprintf(out + len, sizeof(out) - len, "?");
	free(hits);
	free(unindexed);
	return out;
}

static void test_store_structure(void)
{
	struct store_structure st;
	int64_t user, other;
	uint32_t uid;
	void *part;
	size_t n;
	const char *error;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	other = t_create(user, "Other");
	uid = t_put_parsed(user, 0, T_MIME_MSG);
	t_put(user, 0, "Subject: plain\r\n\r\nno structure given\r\n");
	CHECK_INT(store_message_structure(t_r, t_mailbox(user, "INBOX").id, uid, &st), 0);
	CHECK(st.envelope != NULL && strstr(st.envelope, "\"alice\" \"x.test\"") != NULL);
	CHECK(st.bodystructure != NULL && strstr(st.bodystructure, "\"mixed\"") != NULL);
	CHECK(st.body != NULL && st.tree != NULL && st.tree_size > 0);
	store_structure_deinit(&st);
	CHECK_INT(store_message_structure(t_r, t_mailbox(user, "INBOX").id, 2, &st), 0);
	CHECK(st.envelope == NULL && st.tree == NULL);
	CHECK_INT(store_message_structure(t_r, t_mailbox(user, "INBOX").id, 9, &st), -1);
	/* A range read returns those octets, clipped at the end. */
	CHECK_INT(store_blob_read_range(t_r, t_message(t_mailbox(user, "INBOX").id, uid).blob_id,
					6, 5, &part, &n, &error), 0);
	CHECK_INT(n, 5);
	CHECK(memcmp(part, "Alice", 5) == 0);
	free(part);
	CHECK_INT(store_blob_read_range(t_r, t_message(t_mailbox(user, "INBOX").id, uid).blob_id,
					strlen(T_MIME_MSG) - 2, 100, &part, &n, &error), 0);
	CHECK_INT(n, 2);
	free(part);
	/* COPY keeps the structure and the index row. */
	CHECK_INT(T(store_copy(t_s, t_mailbox(user, "INBOX").id, (uint32_t[]){ 1, 2 }, 2, other,
			       false, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(store_message_structure(t_r, other, 1, &st), 0);
	CHECK(st.bodystructure != NULL && strstr(st.bodystructure, "\"mixed\"") != NULL);
	store_structure_deinit(&st);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM message_text"), 2);
	t_teardown();
}

static void test_store_search_text(void)
{
	int64_t user, inbox, other;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	inbox = t_mailbox(user, "INBOX").id;
	other = t_create(user, "Other");
	t_put_parsed(user, 0, T_MIME_MSG);
	t_put_parsed(user, 0, "Subject: lunch\r\nX-Tag: beta\r\n\r\nSee you at noon\r\n");
	/* Decoded base64 and quoted-printable (a soft break joins "Agenda"),
	 * ASCII case ignored, substrings. */
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "budget"), "1");
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "AGENDA"), "1");
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "oon"), "2");
	CHECK_STR(t_search(inbox, STORE_SEARCH_TEXT, NULL, "café"), "1");
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "café"), "");
	/* HEADER names one field of the message header. */
	CHECK_STR(t_search(inbox, STORE_SEARCH_HEADER, "subject", "lunch"), "2");
	CHECK_STR(t_search(inbox, STORE_SEARCH_HEADER, "x-tag", "lunch"), "");
	CHECK_STR(t_search(inbox, STORE_SEARCH_HEADER, NULL, "eta"), "2");
	CHECK_STR(t_search(inbox, STORE_SEARCH_TEXT, NULL, "x-tag"), "");
	/* Too short for the trigram index: the caller reads the messages. */
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "no"), "-");
	CHECK(!store_search_indexable("a\x01" "bc", 4));
	CHECK(store_search_indexable("abc", 3));
	/* Rows follow copy, expunge, mailbox and user deletion. */
	CHECK_INT(T(store_copy(t_s, inbox, (uint32_t[]){ 1, 2 }, 2, other, true, NULL, 0, SYNC)),
		  STORE_OK);
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "budget"), "");
	CHECK_STR(t_search(other, STORE_SEARCH_BODY, NULL, "budget"), "1");
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM message_text"), 2);
	CHECK_INT(T(store_expunge(t_s, other, &(uint32_t){ 2 }, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM message_text"), 1);
	t_put(user, other, "Subject: old\r\n\r\nstored without an index row\r\n");
	CHECK_STR(t_search(other, STORE_SEARCH_BODY, NULL, "budget"), "1?");
	CHECK_INT(T(store_copy(t_s, other, (uint32_t[]){ 1 }, 1, inbox, false, NULL, 0, SYNC)),
		  STORE_OK);
	CHECK_INT(T(store_mailbox_delete(t_s, other, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM message_text"), 1);
	CHECK_INT(T(store_user_del(t_s, user, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM message_text"), 0);
	t_teardown();
}

/* The text search's SQL, taken from SQLite as the store runs it. */
static char t_search_sql[2][1024];

static int t_capture_search_sql(unsigned type, void *ctx, void *p, void *x)
{
	const char *sql = sqlite3_sql(p);

	if (type != SQLITE_TRACE_STMT || sql == NULL)
		return 0;
	if (strstr(sql, "MATCH") != NULL)
		snprintf(t_search_sql[0], sizeof(t_search_sql[0]), "%s", sql);
	else if (strstr(sql, "NOT EXISTS") != NULL && strstr(sql, "message_text") != NULL)
		snprintf(t_search_sql[1], sizeof(t_search_sql[1]), "%s", sql);
	return 0;
}

/* EXPLAIN QUERY PLAN of sql, one line per step, into plan. */
static void t_plan(sqlite3 *db, const char *sql, char *plan, size_t size)
{
	char *eqp = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
	sqlite3_stmt *st = NULL;
	size_t len = 0;

	plan[0] = '\0';
	if (sqlite3_prepare_v2(db, eqp, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW && len < size)
			len += (size_t)snprintf(plan + len, size - len, "%s\n",
						(const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_finalize(st);
	sqlite3_free(eqp);
}

/* A text search runs the index query once, not once per message of the
 * mailbox (SQLite's other plan walks the mailbox and gives the virtual
 * table a rowid constraint, "=M", each time: 570 ms for 2,000 messages). */
static void test_store_search_plan(void)
{
	char plan[2048];
	int64_t user, inbox;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	inbox = t_mailbox(user, "INBOX").id;
	for (int i = 0; i < 20; i++)
		t_put_parsed(user, 0, "Subject: plan\r\n\r\nthe quarterly budget\r\n");
	sqlite3_exec(t_r->c.db, "ANALYZE", NULL, NULL, NULL);
	sqlite3_trace_v2(t_r->c.db, SQLITE_TRACE_STMT, t_capture_search_sql, NULL);
	CHECK_STR(t_search(inbox, STORE_SEARCH_BODY, NULL, "budget"),
		  "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20");
	sqlite3_trace_v2(t_r->c.db, 0, NULL, NULL);
	CHECK(t_search_sql[0][0] != '\0' && t_search_sql[1][0] != '\0');
	t_plan(t_r->c.db, t_search_sql[0], plan, sizeof(plan));
	if (strstr(plan, "VIRTUAL TABLE INDEX 0:M") == NULL || strstr(plan, ":=M") != NULL)
		fprintf(stderr, "  search plan:\n%s", plan);
	CHECK(strstr(plan, "VIRTUAL TABLE INDEX 0:M") != NULL);
	CHECK(strstr(plan, ":=M") == NULL);
	t_plan(t_r->c.db, t_search_sql[1], plan, sizeof(plan));
	if (strstr(plan, "SEARCH message_text_docsize USING INTEGER PRIMARY KEY") == NULL)
		fprintf(stderr, "  unindexed plan:\n%s", plan);
	CHECK(strstr(plan, "SEARCH message_text_docsize USING INTEGER PRIMARY KEY") != NULL);
	t_teardown();
}

/* Fills mailbox_id up to n messages with copies of the row of message
 * (mailbox from_box, uid 1), uids 2..n, behind the store's back (one statement:
 * delivering 20,000 messages one by one would take the test a minute). */
static void t_clone_rows(int64_t from_box, int64_t mailbox_id, int n)
{
	char *path = xasprintf("%s/keel.db", t_dir);
	char *sql = xasprintf(
	    "WITH RECURSIVE k(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM k WHERE i < %d)"
	    " INSERT INTO messages (mailbox_id, uid, modseq, flags, keywords, internaldate, size,"
	    " blob_id, envelope, bodystructure, body, structure)"
	    " SELECT %lld, i, i, flags, keywords, internaldate, size, blob_id, envelope,"
	    " bodystructure, body, structure FROM k,"
	    " (SELECT * FROM messages WHERE mailbox_id = %lld AND uid = 1);"
	    "UPDATE mailboxes SET uidnext = %d, highestmodseq = %d, messages = %d WHERE id = %lld;",
	    n, (long long)mailbox_id, (long long)from_box, n + 1, n, n, (long long)mailbox_id);
	sqlite3 *db;
	char *err = NULL;

	t_close();
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fprintf(stderr, "  clone: %s\n", err);
	CHECK(err == NULL);
	sqlite3_free(err);
	sqlite3_close(db);
	t_open();
	free(sql);
	free(path);
}

/* Pages one flag change writes to the WAL (the writer's page cache writes). */
static int t_flag_change_pages(int64_t mailbox_id, uint32_t uid)
{
	int cur = 0, hi = 0;

	sqlite3_db_status(t_s->w.db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 1);
	CHECK_INT(t_flags(mailbox_id, &uid, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, "urgent", 0),
		  STORE_OK);
	sqlite3_db_status(t_s->w.db, SQLITE_DBSTATUS_CACHE_WRITE, &cur, &hi, 1);
	return cur;
}

/* "A flag change writes a few pages, whatever the folder's size" (no
 * per-folder index rewritten): the same change in a 100-message and a
 * 20,000-message folder writes the same handful of pages. */
static void test_store_flag_change_pages(void)
{
	int64_t user, small, big;
	int p_small, p_big;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	small = t_create(user, "Small");
	big = t_create(user, "Big");
	t_put_parsed(user, small, T_MIME_MSG);
	t_put_parsed(user, big, T_MIME_MSG);
	t_clone_rows(small, small, 100);
	t_clone_rows(big, big, 20000);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM messages"), 20100);
	/* Warm: the first write after opening also writes the schema's pages. */
	t_flag_change_pages(small, 2);
	p_small = t_flag_change_pages(small, 50);
	p_big = t_flag_change_pages(big, 10000);
	fprintf(stderr, "  flag change: %d pages in a 100-message folder, %d in 20,000\n",
		p_small, p_big);
	CHECK(p_small > 0 && p_small <= 8);
	CHECK(p_big <= p_small + 2);
	t_teardown();
}

/* Pages the reader fetched from the file (not its cache) for fn, its cache
 * emptied first. */
static int t_reader_misses(void (*fn)(int64_t), int64_t mailbox_id)
{
	int cur = 0, hi = 0;

	sqlite3_db_release_memory(t_r->c.db);
	sqlite3_db_status(t_r->c.db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 1);
	fn(mailbox_id);
	sqlite3_db_status(t_r->c.db, SQLITE_DBSTATUS_CACHE_MISS, &cur, &hi, 1);
	return cur;
}

static void t_list_brief(int64_t mailbox_id)
{
	struct store_message_brief *list;
	size_t n;

	CHECK_INT(store_message_brief_list(t_r, mailbox_id, 1, 0, &list, &n), 0);
	CHECK_INT(n, 20000);
	CHECK(n == 20000 && list[0].uid == 1 && list[19999].uid == 20000 && list[9].keywords &&
	      (list[9].flags & STORE_FLAG_SEEN));
	free(list);
}

static void t_list_rows(int64_t mailbox_id)
{
	struct store_message *list;
	size_t n;

	CHECK_INT(store_message_list(t_r, mailbox_id, 1, 0, &list, &n), 0);
	CHECK_INT(n, 20000);
	free(list);
}

/* "SELECT of a 100,000-message folder does not read every message": what
 * an IMAP view lists of each message comes from the covering index
 * messages_view, a small fraction of the pages the messages' rows fill. */
static void test_store_brief_list_pages(void)
{
	int64_t user, big;
	int brief, rows;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	big = t_create(user, "Big");
	t_put_parsed(user, big, T_MIME_MSG);
	CHECK_INT(t_flags(big, &(uint32_t){ 1 }, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "$label1", 0),
		  STORE_OK);
	t_clone_rows(big, big, 20000);
	brief = t_reader_misses(t_list_brief, big);
	rows = t_reader_misses(t_list_rows, big);
	fprintf(stderr, "  listing 20,000 messages: %d pages (uid, flags), %d (whole rows)\n",
		brief, rows);
	CHECK(brief > 0 && brief < 400);
	CHECK(rows > 5 * brief);
	t_teardown();
}

static void test_store_mailbox_delete(void)
{
	struct store_mailbox m;
	int64_t user, work, child;
	uint32_t uid;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	work = t_create(user, "Work");
	child = t_create(user, "Work/Old");
	t_put(user, 0, "shared body");     /* 11 bytes */
	t_put(user, work, "shared body");  /* same blob */
	uid = t_put(user, work, "work only"); /* 9 bytes */
	t_put(user, work, "gone before");  /* 11 bytes, expunged */
	CHECK_INT(T(store_expunge(t_s, work, &(uint32_t){ 3 }, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(uid, 2);
	CHECK_INT(t_used(user), 31);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 11 AND refcount > 0"), 2);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM expunged"), 1);
	CHECK_INT(T(store_mailbox_delete(t_s, work, SYNC)), STORE_OK);
	CHECK(store_mailbox_get_by_id(t_r, work, &m) < 0);
	CHECK_INT(t_mailbox_id(child).id, child);
	CHECK_INT(t_used(user), 11);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM messages"), 1);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM expunged"), 0);
	CHECK_INT(t_sql_int("SELECT SUM(refcount) FROM blobs"), 1);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 9"), 0);
	CHECK_INT(T(store_mailbox_delete(t_s, work, SYNC)), STORE_ERR_NOT_FOUND);
	CHECK_INT(T(store_mailbox_delete(t_s, t_mailbox(user, "INBOX").id, SYNC)),
		  STORE_ERR_INVALID);
	CHECK_INT(t_mailbox(user, "INBOX").messages, 1);
	/* Subscriptions. */
	CHECK(t_mailbox_id(child).subscribed);
	CHECK_INT(T(store_mailbox_subscribe(t_s, child, false, SYNC)), STORE_OK);
	CHECK(!t_mailbox_id(child).subscribed);
	CHECK_INT(T(store_mailbox_subscribe(t_s, work, true, SYNC)), STORE_ERR_NOT_FOUND);
	/* A user with expunge records can still be deleted. */
	CHECK_INT(T(store_expunge(t_s, t_mailbox(user, "INBOX").id, &(uint32_t){ 1 }, 1, NULL, 0,
				  SYNC)),
		  STORE_OK);
	CHECK_INT(T(store_user_del(t_s, user, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM expunged"), 0);
	t_teardown();
}

static void test_store_flags(void)
{
	const uint32_t both[] = { 2, 1, 99, 1 };
	struct store_trace_event ev = { 0 };
	struct store_flags_change c = { 0 };
	struct store_message m;
	int64_t user, box;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	t_put(user, 0, "one");
	t_put(user, 0, "two"); /* highestmodseq 2 */
	/* ADD: repeated and unknown uids count once or not at all; keywords
	 * are a set, the first spelling kept. */
	CHECK_INT(t_flags(box, both, 4, STORE_FLAGS_ADD, STORE_FLAG_SEEN, " $Junk  foo $junk ", 0),
		  STORE_OK);
	CHECK_INT(t_id, 3);
	CHECK_INT(t_n_delivered, 2);
	CHECK(t_delivered[0].status == 0 && t_delivered[0].uid == 1 && t_delivered[0].modseq == 3);
	CHECK(t_delivered[1].status == 0 && t_delivered[1].uid == 2 && t_delivered[1].modseq == 3);
	m = t_message(box, 1);
	CHECK_INT(m.flags, STORE_FLAG_SEEN);
	CHECK_STR(m.keywords, "$Junk foo");
	CHECK_INT(m.modseq, 3);
	CHECK_INT(t_flags(box, both, 1, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, "FOO bar", 0),
		  STORE_OK);
	m = t_message(box, 2);
	CHECK_INT(m.flags, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED);
	CHECK_STR(m.keywords, "$Junk foo bar");
	CHECK_INT(m.modseq, 4);
	/* REMOVE, case-insensitively. */
	CHECK_INT(t_flags(box, both, 1, STORE_FLAGS_REMOVE, STORE_FLAG_SEEN, "$JUNK nothere", 0),
		  STORE_OK);
	m = t_message(box, 2);
	CHECK_INT(m.flags, STORE_FLAG_FLAGGED);
	CHECK_STR(m.keywords, "foo bar");
	CHECK_INT(m.modseq, 5);
	/* REPLACE; bits outside the system flags are dropped. */
	CHECK_INT(t_flags(box, &both[1], 1, STORE_FLAGS_REPLACE,
			  STORE_FLAG_DRAFT | STORE_FLAG_ANSWERED | 0x100, "x", 0),
		  STORE_OK);
	m = t_message(box, 1);
	CHECK_INT(m.flags, STORE_FLAG_DRAFT | STORE_FLAG_ANSWERED);
	CHECK_STR(m.keywords, "x");
	CHECK_INT(m.modseq, 6);
	CHECK_INT(t_message(box, 2).modseq, 5);
	CHECK_INT(t_mailbox_id(box).highestmodseq, 6);
	/* Events go with the change. */
	snprintf(ev.event, sizeof(ev.event), "flags");
	snprintf(ev.account, sizeof(ev.account), "bob@x.test");
	c = (struct store_flags_change){ .mailbox_id = box, .uids = both, .n_uids = 1,
					 .mode = STORE_FLAGS_ADD, .flags = STORE_FLAG_DELETED,
					 .events = &ev, .n_events = 1 };
	CHECK_INT(T(store_flags_set(t_s, &c, SYNC)), STORE_OK);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM trace WHERE event = 'flags'"), 1);
	c.mailbox_id = 424242;
	CHECK_INT(T(store_flags_set(t_s, &c, SYNC)), STORE_ERR_NOT_FOUND);
	t_teardown();
}

/* No real change, no new modseq; store_message_changed sees real ones. */
static void test_store_flags_modseq(void)
{
	const uint32_t uids[] = { 1, 2, 3 };
	struct store_message *list;
	int64_t user, box;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	for (int i = 0; i < 3; i++)
		t_put(user, 0, i == 0 ? "a" : i == 1 ? "b" : "c");
	CHECK_INT(t_flags(box, uids, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "Work todo", 0),
		  STORE_OK);
	CHECK_INT(t_id, 4);
	/* The same again, a REMOVE of what is not there, a REPLACE with the
	 * same set in other letters and order: nothing changes. */
	CHECK_INT(t_flags(box, uids, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "work", 0), STORE_OK);
	CHECK_INT(t_n_delivered, 0);
	CHECK_INT(t_id, 4);
	CHECK_INT(t_flags(box, uids, 1, STORE_FLAGS_REMOVE, STORE_FLAG_DRAFT, "other", 0),
		  STORE_OK);
	CHECK_INT(t_flags(box, uids, 1, STORE_FLAGS_REPLACE, STORE_FLAG_SEEN, "TODO work", 0),
		  STORE_OK);
	CHECK_INT(t_n_delivered, 0);
	CHECK_INT(t_mailbox_id(box).highestmodseq, 4);
	CHECK_INT(t_message(box, 1).modseq, 4);
	CHECK_STR(t_message(box, 1).keywords, "Work todo");
	/* Of three, only the one that changes takes the new modseq. */
	CHECK_INT(t_flags(box, uids, 3, STORE_FLAGS_REMOVE, STORE_FLAG_SEEN, NULL, 0), STORE_OK);
	CHECK_INT(t_n_delivered, 1);
	CHECK(t_delivered[0].uid == 1 && t_delivered[0].modseq == 5);
	CHECK_INT(t_message(box, 2).modseq, 2);
	CHECK(store_message_changed(t_r, box, 2, &list, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(list[0].uid, 1);
		CHECK_INT(list[0].modseq, 5);
		CHECK_INT(list[1].uid, 3);
	}
	free(list);
	CHECK(store_message_changed(t_r, box, 5, &list, &n) == 0);
	CHECK_INT(n, 0);
	free(list);
	t_teardown();
}

/* RFC 7162 3.1.3: messages changed since UNCHANGEDSINCE are left alone. */
static void test_store_flags_unchangedsince(void)
{
	const uint32_t uids[] = { 3, 2, 1 };
	int64_t user, box;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	for (int i = 0; i < 3; i++)
		t_put(user, 0, i == 0 ? "a" : i == 1 ? "b" : "c"); /* modseqs 1, 2, 3 */
	CHECK_INT(t_flags(box, uids, 3, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 2), STORE_OK);
	CHECK_INT(t_id, 4);
	CHECK_INT(t_n_delivered, 3);
	CHECK(t_delivered[0].status == 0 && t_delivered[0].uid == 1 && t_delivered[0].modseq == 4);
	CHECK(t_delivered[1].status == 0 && t_delivered[1].uid == 2);
	CHECK_INT(t_delivered[2].status, -1);
	CHECK_INT(t_delivered[2].uid, 3);
	CHECK_INT(t_delivered[2].modseq, 3);
	CHECK_INT(t_message(box, 3).flags, 0);
	CHECK_INT(t_message(box, 3).modseq, 3);
	CHECK_INT(t_message(box, 1).flags, STORE_FLAG_FLAGGED);
	/* Everything refused: no new modseq. */
	CHECK_INT(t_flags(box, uids, 3, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 1), STORE_OK);
	CHECK_INT(t_n_delivered, 3);
	for (size_t i = 0; i < 3; i++)
		CHECK_INT(t_delivered[i].status, -1);
	CHECK_INT(t_id, 4);
	CHECK_INT(t_mailbox_id(box).highestmodseq, 4);
	t_teardown();
}

static void test_store_expunge(void)
{
	const uint32_t uids[] = { 3, 1, 99, 1 };
	struct store_mailbox m;
	uint32_t *gone;
	int64_t user, box;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	t_put(user, 0, "first");  /* 5 bytes */
	t_put(user, 0, "second"); /* 6 */
	t_put(user, 0, "first");  /* the same blob */
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 5"), 2);
	CHECK_INT(T(store_expunge(t_s, box, uids, 4, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 4);
	CHECK_INT(t_n_delivered, 2);
	CHECK(t_delivered[0].uid == 1 && t_delivered[0].modseq == 4 && t_delivered[0].status == 0);
	CHECK(t_delivered[1].uid == 3 && t_delivered[1].modseq == 4);
	m = t_mailbox_id(box);
	CHECK_INT(m.messages, 1);
	CHECK_INT(m.size, 6);
	CHECK_INT(m.highestmodseq, 4);
	CHECK_INT(m.uidnext, 4);
	CHECK_INT(t_used(user), 6);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 5"), 0);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 6"), 1);
	CHECK(store_expunged_since(t_r, box, 0, &gone, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2)
		CHECK(gone[0] == 1 && gone[1] == 3);
	free(gone);
	CHECK(store_expunged_since(t_r, box, 4, &gone, &n) == 0);
	CHECK_INT(n, 0);
	free(gone);
	/* Nothing to expunge: no modseq; then the last one. */
	CHECK_INT(T(store_expunge(t_s, box, uids, 2, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_n_delivered, 0);
	CHECK_INT(t_id, 4);
	CHECK_INT(T(store_expunge(t_s, box, &(uint32_t){ 2 }, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, 5);
	CHECK(store_expunged_since(t_r, box, 4, &gone, &n) == 0);
	CHECK(n == 1 && gone[0] == 2);
	free(gone);
	m = t_mailbox_id(box);
	CHECK(m.messages == 0 && m.size == 0);
	CHECK_INT(t_used(user), 0);
	CHECK_INT(T(store_expunge(t_s, 424242, uids, 1, NULL, 0, SYNC)), STORE_ERR_NOT_FOUND);
	t_teardown();
}

static void test_store_copy_move(void)
{
	const uint32_t uids[] = { 2, 7, 1 };
	struct store_message m;
	struct store_mailbox src, dst;
	uint32_t *gone;
	int64_t user, inbox, dest;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	inbox = t_mailbox(user, "INBOX").id;
	dest = t_create(user, "Dest");
	t_put(user, dest, "already there"); /* Dest uid 1 */
	t_put(user, 0, "one");              /* 3 bytes */
	t_put(user, 0, "three");            /* 5 bytes */
	CHECK_INT(t_flags(inbox, uids, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, "kw", 0), STORE_OK);
	CHECK_INT(t_used(user), 21);
	/* COPY: one entry per distinct uid, ascending; 7 is not there. */
	CHECK_INT(T(store_copy(t_s, inbox, uids, 3, dest, false, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_id, t_mailbox_id(dest).uidvalidity);
	CHECK_INT(t_n_delivered, 3);
	CHECK(t_delivered[0].status == 0 && t_delivered[0].uid == 2 &&
	      t_delivered[0].mailbox_id == dest && t_delivered[0].modseq == 2);
	CHECK(t_delivered[1].status == 0 && t_delivered[1].uid == 3);
	CHECK_INT(t_delivered[2].status, -1);
	CHECK_INT(t_delivered[2].err, STORE_ERR_NOT_FOUND);
	m = t_message(dest, 3);
	CHECK_INT(m.flags, STORE_FLAG_SEEN);
	CHECK_STR(m.keywords, "kw");
	CHECK_INT(m.size, 5);
	CHECK_INT(m.blob_id, t_message(inbox, 2).blob_id);
	CHECK_INT(m.internaldate, t_message(inbox, 2).internaldate);
	dst = t_mailbox_id(dest);
	CHECK(dst.messages == 3 && dst.size == 21 && dst.uidnext == 4 && dst.highestmodseq == 2);
	CHECK_INT(t_used(user), 29);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 5"), 2);
	src = t_mailbox_id(inbox);
	CHECK(src.messages == 2 && src.highestmodseq == 3);
	/* MOVE: the source loses them (VANISHED), the blob count nets zero. */
	CHECK_INT(T(store_copy(t_s, inbox, uids, 3, dest, true, NULL, 0, SYNC)), STORE_OK);
	CHECK(t_delivered[0].uid == 4 && t_delivered[1].uid == 5 && t_delivered[1].modseq == 3);
	CHECK_INT(t_sql_int("SELECT refcount FROM blobs WHERE size = 5"), 2);
	CHECK_INT(t_used(user), 29);
	src = t_mailbox_id(inbox);
	CHECK(src.messages == 0 && src.size == 0 && src.highestmodseq == 4);
	CHECK(store_expunged_since(t_r, inbox, 3, &gone, &n) == 0);
	CHECK(n == 2 && gone[0] == 1 && gone[1] == 2);
	free(gone);
	CHECK_INT(t_mailbox_id(dest).messages, 5);
	CHECK_INT(T(store_copy(t_s, inbox, uids, 3, 424242, false, NULL, 0, SYNC)),
		  STORE_ERR_NOT_FOUND);
	t_teardown();
}

/* Over the target's quota the whole request fails and changes nothing. */
static void test_store_copy_quota(void)
{
	const uint32_t uids[] = { 1, 2 };
	struct store_mailbox a_box, b_box;
	int64_t a, b, a_inbox, b_inbox;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	a = t_user_add("a@x.test", 0);
	b = t_user_add("b@x.test", 12);
	a_inbox = t_mailbox(a, "INBOX").id;
	b_inbox = t_mailbox(b, "INBOX").id;
	t_put(a, 0, "0123456789");
	t_put(a, 0, "abcde");
	/* 15 bytes into a 12-byte quota: neither message goes. */
	CHECK_INT(T(store_copy(t_s, a_inbox, uids, 2, b_inbox, true, NULL, 0, SYNC)),
		  STORE_ERR_QUOTA);
	CHECK_INT(t_n_delivered, 0);
	b_box = t_mailbox_id(b_inbox);
	CHECK(b_box.messages == 0 && b_box.uidnext == 1 && b_box.highestmodseq == 0);
	a_box = t_mailbox_id(a_inbox);
	CHECK(a_box.messages == 2 && a_box.highestmodseq == 2);
	CHECK_INT(t_used(a), 15);
	CHECK_INT(t_used(b), 0);
	CHECK_INT(t_sql_int("SELECT SUM(refcount) FROM blobs"), 2);
	CHECK_INT(t_sql_int("SELECT COUNT(*) FROM expunged"), 0);
	/* One fits; a move between users carries the usage along. */
	CHECK_INT(T(store_copy(t_s, a_inbox, uids, 1, b_inbox, true, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_used(a), 5);
	CHECK_INT(t_used(b), 10);
	/* A move within one user adds nothing, so a full quota does not stop it. */
	CHECK_INT(T(store_user_set_quota(t_s, a, 5, SYNC)), STORE_OK);
	CHECK_INT(T(store_copy(t_s, a_inbox, &uids[1], 1, t_mailbox(a, "Trash").id, false, NULL,
			       0, SYNC)),
		  STORE_ERR_QUOTA);
	CHECK_INT(T(store_copy(t_s, a_inbox, &uids[1], 1, t_mailbox(a, "Trash").id, true, NULL, 0,
			       SYNC)),
		  STORE_OK);
	CHECK_INT(t_used(a), 5);
	t_teardown();
}

/* ---- the notifier ------------------------------------------------------- */

struct t_watcher {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct loop *loop;
	struct store_watch *w;
	unsigned calls, off_loop;
	int64_t mailbox_id;
	uint64_t modseq;
};

static void t_watcher_init(struct t_watcher *tw, struct loop *loop)
{
	memset(tw, 0, sizeof(*tw));
	pthread_mutex_init(&tw->lock, NULL);
	pthread_cond_init(&tw->cond, NULL);
	tw->loop = loop;
}

static void t_watcher_deinit(struct t_watcher *tw)
{
	pthread_mutex_destroy(&tw->lock);
	pthread_cond_destroy(&tw->cond);
}

static void t_watch_cb(int64_t mailbox_id, uint64_t highestmodseq, void *ctx)
{
	struct t_watcher *tw = ctx;

	pthread_mutex_lock(&tw->lock);
	tw->calls++;
	tw->off_loop += loop_current() != tw->loop;
	tw->mailbox_id = mailbox_id;
	tw->modseq = highestmodseq;
	pthread_cond_broadcast(&tw->cond);
	pthread_mutex_unlock(&tw->lock);
}

/* Waits (5 s at most) for a call reporting at least modseq; the value last
 * reported. */
static uint64_t t_watch_wait(struct t_watcher *tw, unsigned calls, uint64_t modseq)
{
	struct timespec until;
	uint64_t got;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&tw->lock);
	while ((tw->calls < calls || tw->modseq < modseq) &&
	       pthread_cond_timedwait(&tw->cond, &tw->lock, &until) == 0)
		;
	got = tw->modseq;
	pthread_mutex_unlock(&tw->lock);
	return got;
}

/* Runs fn(arg) on loop and waits for it: also a barrier behind everything
 * posted to loop before. */
struct t_on_loop {
	loop_fn *fn;
	void *arg;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state; /* 0 posted, 1 running (fn waits for 2 when blocking), 3 done */
};

static void t_on_loop_run(void *arg)
{
	struct t_on_loop *o = arg;

	if (o->fn != NULL)
		o->fn(o->arg);
	pthread_mutex_lock(&o->lock);
	o->state = 3;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

static void t_on_loop(struct loop *loop, loop_fn *fn, void *arg)
{
	struct t_on_loop o = { .fn = fn, .arg = arg };

	pthread_mutex_init(&o.lock, NULL);
	pthread_cond_init(&o.cond, NULL);
	loop_post(loop, t_on_loop_run, &o);
	pthread_mutex_lock(&o.lock);
	while (o.state != 3)
		pthread_cond_wait(&o.cond, &o.lock);
	pthread_mutex_unlock(&o.lock);
	pthread_mutex_destroy(&o.lock);
	pthread_cond_destroy(&o.cond);
}

static void t_unwatch(void *arg)
{
	struct t_watcher *tw = arg;

	store_unwatch(t_s, &tw->w);
}

static void test_store_watch(void)
{
	struct t_watcher tw, other;
	struct loop_pool *pool;
	struct loop *loop;
	int64_t user, box;
	uint32_t uid = 1;

	t_setup();
	loop_global_init();
	pool = loop_pool_start(1, NULL, NULL);
	loop = loop_pool_get(pool, 0);
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	t_watcher_init(&tw, loop);
	t_watcher_init(&other, loop);
	tw.w = store_watch(t_s, box, loop, t_watch_cb, &tw);
	other.w = store_watch(t_s, t_mailbox(user, "Sent").id, loop, t_watch_cb, &other);
	t_put(user, 0, "hello");
	CHECK_INT(t_watch_wait(&tw, 1, 1), 1);
	CHECK_INT(t_flags(box, &uid, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0), STORE_OK);
	CHECK_INT(t_watch_wait(&tw, 2, 2), 2);
	CHECK_INT(T(store_expunge(t_s, box, &uid, 1, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_watch_wait(&tw, 3, 3), 3);
	CHECK_INT(tw.mailbox_id, box);
	CHECK_INT(tw.off_loop, 0);
	/* A change that is no change tells nobody. */
	CHECK_INT(t_flags(box, &uid, 1, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0), STORE_OK);
	t_on_loop(loop, NULL, NULL);
	CHECK_INT(tw.calls, 3);
	CHECK_INT(other.calls, 0);
	/* After store_unwatch, never again. */
	t_on_loop(loop, t_unwatch, &tw);
	CHECK(tw.w == NULL);
	t_put(user, 0, "unheard");
	t_on_loop(loop, NULL, NULL);
	CHECK_INT(tw.calls, 3);
	CHECK_INT(other.calls, 0);
	t_on_loop(loop, t_unwatch, &other);
	loop_pool_stop(&pool);
	t_watcher_deinit(&tw);
	t_watcher_deinit(&other);
	t_teardown();
}

/* The race: a change is committed and its callback posted to the loop, and
 * the watcher unwatches before the loop gets to it.  A task holding the
 * loop keeps the posted callback waiting behind the unwatch. */
struct t_blocker {
	struct t_watcher *tw;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state; /* 0 posted, 1 holding the loop, 2 released */
};

static void t_blocker_run(void *arg)
{
	struct t_blocker *b = arg;

	pthread_mutex_lock(&b->lock);
	b->state = 1;
	pthread_cond_broadcast(&b->cond);
	while (b->state != 2)
		pthread_cond_wait(&b->cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	store_unwatch(t_s, &b->tw->w);
}

static void test_store_watch_race(void)
{
	struct t_blocker b = { 0 };
	struct t_watcher gone, stays;
	struct loop_pool *pool;
	struct loop *loop;
	int64_t user, box;

	t_setup();
	loop_global_init();
	pool = loop_pool_start(1, NULL, NULL);
	loop = loop_pool_get(pool, 0);
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	t_watcher_init(&gone, loop);
	t_watcher_init(&stays, loop);
	gone.w = store_watch(t_s, box, loop, t_watch_cb, &gone);
	stays.w = store_watch(t_s, box, loop, t_watch_cb, &stays);
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	b.tw = &gone;
	loop_post(loop, t_blocker_run, &b);
	pthread_mutex_lock(&b.lock);
	while (b.state != 1)
		pthread_cond_wait(&b.cond, &b.lock);
	pthread_mutex_unlock(&b.lock);
	/* Committed: both callbacks are queued behind the blocker before the
	 * writer hears "done". */
	t_put(user, 0, "racing");
	pthread_mutex_lock(&b.lock);
	b.state = 2;
	pthread_cond_broadcast(&b.cond);
	pthread_mutex_unlock(&b.lock);
	t_on_loop(loop, NULL, NULL);
	CHECK(gone.w == NULL);
	CHECK_INT(gone.calls, 0);
	CHECK_INT(stays.calls, 1);
	CHECK_INT(stays.modseq, 1);
	t_on_loop(loop, t_unwatch, &stays);
	loop_pool_stop(&pool);
	pthread_mutex_destroy(&b.lock);
	pthread_cond_destroy(&b.cond);
	t_watcher_deinit(&gone);
	t_watcher_deinit(&stays);
	t_teardown();
}

/* Renames, copies into and deletes tell the mailboxes' watchers too. */
static void test_store_watch_more(void)
{
	const uint32_t uid = 1;
	struct t_watcher src, dst;
	struct loop_pool *pool;
	struct loop *loop;
	int64_t user, box, work;

	t_setup();
	loop_global_init();
	pool = loop_pool_start(1, NULL, NULL);
	loop = loop_pool_get(pool, 0);
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	user = t_user_add("bob@x.test", 0);
	box = t_mailbox(user, "INBOX").id;
	work = t_create(user, "Work");
	t_put(user, 0, "to move");
	t_watcher_init(&src, loop);
	t_watcher_init(&dst, loop);
	src.w = store_watch(t_s, box, loop, t_watch_cb, &src);
	dst.w = store_watch(t_s, work, loop, t_watch_cb, &dst);
	CHECK_INT(T(store_copy(t_s, box, &uid, 1, work, true, NULL, 0, SYNC)), STORE_OK);
	CHECK_INT(t_watch_wait(&src, 1, 2), 2);
	CHECK_INT(t_watch_wait(&dst, 1, 1), 1);
	CHECK_INT(T(store_mailbox_rename(t_s, work, "Play", SYNC)), STORE_OK);
	t_watch_wait(&dst, 2, 1);
	CHECK_INT(dst.calls, 2);
	CHECK_INT(T(store_mailbox_delete(t_s, work, SYNC)), STORE_OK);
	t_watch_wait(&dst, 3, 1);
	CHECK_INT(dst.calls, 3);
	CHECK_INT(dst.modseq, 1);
	t_on_loop(loop, t_unwatch, &src);
	t_on_loop(loop, t_unwatch, &dst);
	loop_pool_stop(&pool);
	t_watcher_deinit(&src);
	t_watcher_deinit(&dst);
	t_teardown();
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARN);
	TEST_RUN(test_store_domains);
	TEST_RUN(test_store_users);
	TEST_RUN(test_store_rename);
	TEST_RUN(test_store_groups_settings);
	TEST_RUN(test_store_mailbox_create);
	TEST_RUN(test_store_deliver);
	TEST_RUN(test_store_deliver_queue);
	TEST_RUN(test_store_queue_query);
	TEST_RUN(test_store_queue_query_plan);
	TEST_RUN(test_store_queue_record);
	TEST_RUN(test_store_queue_due);
	TEST_RUN(test_store_queue_change);
	TEST_RUN(test_store_queue_stats);
	TEST_RUN(test_store_domain_outbound);
	TEST_RUN(test_store_deliver_mailbox);
	TEST_RUN(test_store_quota);
	TEST_RUN(test_store_user_del);
	TEST_RUN(test_store_reopen);
	TEST_RUN(test_store_schema_newer);
	TEST_RUN(test_store_group_commit);
	TEST_RUN(test_store_flush_error);
	TEST_RUN(test_store_savepoints);
	TEST_RUN(test_store_loop_callback);
	TEST_RUN(test_store_close_drains);
	TEST_RUN(test_store_trace);
	TEST_RUN(test_store_trace_defer);
	TEST_RUN(test_store_mailbox_rename);
	TEST_RUN(test_store_mailbox_delete);
	TEST_RUN(test_store_structure);
	TEST_RUN(test_store_search_text);
	TEST_RUN(test_store_search_plan);
	TEST_RUN(test_store_flag_change_pages);
	TEST_RUN(test_store_brief_list_pages);
	TEST_RUN(test_store_flags);
	TEST_RUN(test_store_flags_modseq);
	TEST_RUN(test_store_flags_unchangedsince);
	TEST_RUN(test_store_expunge);
	TEST_RUN(test_store_copy_move);
	TEST_RUN(test_store_copy_quota);
	TEST_RUN(test_store_watch);
	TEST_RUN(test_store_watch_race);
	TEST_RUN(test_store_watch_more);
	return test_summary();
}
