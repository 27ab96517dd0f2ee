/* Unit tests for the store (SQLite backend) against a real database in a
 * temporary data dir: directory rules, delivery, quota, deletion, reopen,
 * schema versions, group commit, flush failures, callbacks on loops. */
#include "store/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/test.h"
#include "lib/xalloc.h"

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
	return test_summary();
}
