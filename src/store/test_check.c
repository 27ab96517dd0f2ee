/* Unit tests for store_check(): a clean store is clean, and each kind of
 * damage, made behind the store's back (a corrupt blob record, a wrong
 * refcount, a dangling reference, a wrong usage counter), is reported; a
 * torn tail that nothing references is a note, not a problem. */
#include "store/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/test.h"
#include "lib/xalloc.h"

static char *t_dir;

static void t_write(struct store *s, void (*fn)(struct store *, struct store_sync *))
{
	struct store_sync sync;

	store_sync_init(&sync);
	fn(s, &sync);
	store_sync_wait(&sync);
	CHECK_INT(sync.status, 0);
	store_sync_deinit(&sync);
}

static void t_domain(struct store *s, struct store_sync *sync)
{
	store_domain_add(s, "x.test", NULL, NULL, store_sync_cb, sync);
}

static void t_user_a(struct store *s, struct store_sync *sync)
{
	store_user_add(s, "a@x.test", "A", "", 0, NULL, store_sync_cb, sync);
}

static void t_user_b(struct store *s, struct store_sync *sync)
{
	store_user_add(s, "b@x.test", "B", "", 0, NULL, store_sync_cb, sync);
}

static const char *t_body;
static size_t t_n_rcpts;

static void t_deliver(struct store *s, struct store_sync *sync)
{
	/* Users 1 and 2: a@ and b@, added first. */
	static const struct store_rcpt rcpts[2] = { { .user_id = 1 }, { .user_id = 2 } };
	struct store_delivery d = {
		.data = t_body, .size = strlen(t_body), .rcpts = rcpts, .n_rcpts = t_n_rcpts,
	};

	store_deliver(s, &d, NULL, store_sync_cb, sync);
}

/* A data dir with two users and three messages: blob 1 to both users,
 * blobs 2 and 3 to a@ only. */
static struct store *t_setup(bool keep_open)
{
	static const char *const bodies[] = { "Subject: one\r\n\r\nfirst\r\n",
					      "Subject: two\r\n\r\nsecond body\r\n",
					      "Subject: three\r\n\r\nthird\r\n" };
	struct store *s;
	const char *error;

	t_dir = test_tmpdir();
	if (store_open(t_dir, &s, &error) < 0) {
		fprintf(stderr, "open: %s\n", error);
		exit(2);
	}
	t_write(s, t_domain);
	t_write(s, t_user_a);
	t_write(s, t_user_b);
	for (size_t i = 0; i < 3; i++) {
		t_body = bodies[i];
		t_n_rcpts = i == 0 ? 2 : 1;
		t_write(s, t_deliver);
	}
	if (keep_open)
		return s;
	store_close(&s);
	return NULL;
}

static void t_teardown(void)
{
	test_rmtree(t_dir);
	free(t_dir);
	t_dir = NULL;
}

/* Runs sql on the database behind the store's back (foreign keys off). */
static void t_sql(const char *sql)
{
	char *path = xasprintf("%s/keel.db", t_dir);
	sqlite3 *db;

	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fprintf(stderr, "  sql: %s\n", sqlite3_errmsg(db));
	sqlite3_close(db);
	free(path);
}

static long long t_sql_int(const char *sql)
{
	char *path = xasprintf("%s/keel.db", t_dir);
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v = -1;

	if (sqlite3_open(path, &db) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	free(path);
	return v;
}

/* Writes len bytes at off of segment 1 (or appends when off is -1). */
static void t_segment_write(long long off, const void *data, size_t len)
{
	char *path = xasprintf("%s/blobs/seg-00000001", t_dir);
	int fd = open(path, O_WRONLY | (off < 0 ? O_APPEND : 0));

	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(off < 0 ? write(fd, data, len) == (ssize_t)len
			      : pwrite(fd, data, len, (off_t)off) == (ssize_t)len);
		close(fd);
	}
	free(path);
}

static bool t_has(char **lines, size_t n, const char *needle)
{
	for (size_t i = 0; i < n; i++)
		if (strstr(lines[i], needle) != NULL)
			return true;
	return false;
}

static void t_check(struct store_check_result *res)
{
	const char *error;

	if (store_check_dir(t_dir, res, &error) < 0) {
		fprintf(stderr, "  check: %s\n", error);
		CHECK(!"store_check_dir failed");
		memset(res, 0, sizeof(*res));
	}
	for (size_t i = 0; i < res->n_problems; i++)
		printf("  problem: %s\n", res->problems[i]);
}

static void test_check_clean(void)
{
	struct store_check_result res;

	t_setup(false);
	t_check(&res);
	CHECK_INT(res.n_problems, 0);
	CHECK_INT(res.n_notes, 0);
	CHECK_INT(res.messages, 4);
	CHECK_INT(res.blobs, 3);
	CHECK_INT(res.segments, 1);
	CHECK_INT(res.records, 3);
	store_check_result_deinit(&res);
	t_teardown();
}

/* Beside a running committer: the same answer, nothing changed. */
static void test_check_live(void)
{
	struct store *s = t_setup(true);
	struct store_check_result res;
	const char *error;

	CHECK_INT(store_check(s, &res, &error), 0);
	CHECK_INT(res.n_problems, 0);
	CHECK_INT(res.messages, 4);
	store_check_result_deinit(&res);
	/* The store still writes after the check. */
	t_body = "Subject: four\r\n\r\nafter the check\r\n";
	t_n_rcpts = 1;
	t_write(s, t_deliver);
	store_close(&s);
	t_check(&res);
	CHECK_INT(res.n_problems, 0);
	CHECK_INT(res.messages, 5);
	store_check_result_deinit(&res);
	t_teardown();
}

static void test_check_corrupt_record(void)
{
	struct store_check_result res;
	long long off;

	t_setup(false);
	/* One byte of blob 2's data. */
	off = t_sql_int("SELECT offset FROM blobs WHERE id = 2");
	CHECK(off > 0);
	t_segment_write(off + 48 + 3, "#", 1);
	t_check(&res);
	CHECK(res.n_problems >= 1);
	CHECK(t_has(res.problems, res.n_problems, "segment 1: no whole record at offset"));
	CHECK(t_has(res.problems, res.n_problems, "blob 2: no whole record"));
	/* Blob 3, behind the damage, is still checked and found whole. */
	CHECK(!t_has(res.problems, res.n_problems, "blob 3"));
	store_check_result_deinit(&res);
	t_teardown();
}

static void test_check_refcount(void)
{
	struct store_check_result res;

	t_setup(false);
	t_sql("UPDATE blobs SET refcount = refcount + 1 WHERE id = 1");
	t_check(&res);
	CHECK_INT(res.n_problems, 1);
	CHECK(t_has(res.problems, res.n_problems, "blob 1: refcount 3 but 2 references"));
	store_check_result_deinit(&res);
	t_teardown();
}

static void test_check_reference(void)
{
	struct store_check_result res;

	t_setup(false);
	t_sql("UPDATE messages SET blob_id = 99 WHERE id = 3");
	t_check(&res);
	CHECK(t_has(res.problems, res.n_problems, "references blob 99, which does not exist"));
	CHECK(t_has(res.problems, res.n_problems, "database: messages row 3 references a missing"));
	/* The blob it pointed at now has one reference too many. */
	CHECK(t_has(res.problems, res.n_problems, "refcount 1 but 0 references"));
	store_check_result_deinit(&res);
	t_teardown();
}

static void test_check_usage(void)
{
	struct store_check_result res;

	t_setup(false);
	t_sql("UPDATE users SET used = used + 7 WHERE id = 2");
	t_sql("UPDATE mailboxes SET messages = messages + 1 WHERE user_id = 1 AND name = 'INBOX'");
	t_check(&res);
	CHECK_INT(res.n_problems, 2);
	CHECK(t_has(res.problems, res.n_problems, "user 2 (b@x.test): used"));
	CHECK(t_has(res.problems, res.n_problems, "(INBOX of user 1): messages 4"));
	store_check_result_deinit(&res);
	t_teardown();
}

/* A crash in the middle of an append that was never committed. */
static void test_check_torn_tail(void)
{
	struct store_check_result res;

	t_setup(false);
	t_segment_write(-1, "KEELBLB1\x40\0\0\0\0\0\0\0half", 20);
	t_check(&res);
	CHECK_INT(res.n_problems, 0);
	CHECK_INT(res.n_notes, 1);
	CHECK(t_has(res.notes, res.n_notes, "20 bytes after offset"));
	store_check_result_deinit(&res);
	t_teardown();
}

static void test_check_no_data_dir(void)
{
	struct store_check_result res;
	const char *error;

	CHECK_INT(store_check_dir("/nonexistent/keel-data", &res, &error), -1);
	CHECK(strstr(error, "/nonexistent/keel-data/keel.db") != NULL);
}

int main(void)
{
	TEST_RUN(test_check_clean);
	TEST_RUN(test_check_live);
	TEST_RUN(test_check_corrupt_record);
	TEST_RUN(test_check_refcount);
	TEST_RUN(test_check_reference);
	TEST_RUN(test_check_usage);
	TEST_RUN(test_check_torn_tail);
	TEST_RUN(test_check_no_data_dir);
	return test_summary();
}
