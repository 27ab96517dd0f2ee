/* store_check(): is the data dir consistent?  Read-only, on its own
 * connection, in one read transaction (one snapshot of the database), so it
 * runs beside a live committer or on a stopped data dir after a crash.
 *
 * What it checks, in order:
 *   1. SQLite's integrity_check and foreign_key_check;
 *   2. every blob a message or a live queue entry names exists;
 *   3. every blob's refcount equals its references (one per message row,
 *      one per queue entry not yet final: docs/store.md);
 *   4. users.used and each mailbox's messages/size equal the sums of their
 *      messages (quota and STATUS are kept by the writes, never recounted);
 *   5. every segment's records, from offset 0: both magics, both lengths and
 *      the SHA-256 of the data (the format is in store/blob.h), and every
 *      blob row's (segment, offset, size, sha256) is one of those records.
 *
 * Bytes after the last record the database references in a segment that do
 * not form a whole record are a torn tail (a crash during an append that was
 * never committed): nothing references them and the next store_open cuts the
 * last segment's, so they are a note, not a problem.  On a live server the
 * tail of the segment being appended to may look the same for a moment. */
#include "store/sqlite/sqlite_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"

#define CHECK_BUSY_MS 10000

static __thread char check_error[768];

/* One blob row, as the segment walk needs it. */
struct check_blob {
	int64_t id;
	uint32_t segment;
	uint64_t offset, size;
	uint8_t sha256[BLOB_SHA256_LEN];
};

struct sq_check {
	sqlite3 *db;
	const char *blob_dir;
	struct store_check_result *res;
	struct check_blob *blobs; /* by (segment, offset) */
	size_t n_blobs;
};

static void check_add(char ***list, size_t *n, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void check_add(char ***list, size_t *n, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = xstrdup(line);
}

static void check_problem(struct sq_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void check_problem(struct sq_check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->res->n_problems >= STORE_CHECK_MAX_LINES) {
		c->res->more_problems++;
		return;
	}
	va_start(ap, fmt);
	check_add(&c->res->problems, &c->res->n_problems, fmt, ap);
	va_end(ap);
}

static void check_note(struct sq_check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void check_note(struct sq_check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->res->n_notes >= STORE_CHECK_MAX_LINES)
		return;
	va_start(ap, fmt);
	check_add(&c->res->notes, &c->res->n_notes, fmt, ap);
	va_end(ap);
}

static int check_db_fail(struct sq_check *c, const char *what)
{
	snprintf(check_error, sizeof(check_error), "%s: %s", what, sqlite3_errmsg(c->db));
	return -1;
}

/* Runs sql, whose rows are one text column each: a problem found. */
static int check_sql_problems(struct sq_check *c, const char *sql, const char *what)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return check_db_fail(c, what);
	while ((ret = sqlite3_step(st)) == SQLITE_ROW)
		check_problem(c, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return ret == SQLITE_DONE ? 0 : check_db_fail(c, what);
}

/* Steps 1-4: each query selects the problem lines themselves. */
static int check_database(struct sq_check *c)
{
	static const struct {
		const char *what, *sql;
	} queries[] = {
		{ "integrity_check",
		  "SELECT 'database: ' || integrity_check FROM pragma_integrity_check"
		  " WHERE integrity_check <> 'ok'" },
		{ "foreign_key_check",
		  "SELECT printf('database: %s row %d references a missing %s row', \"table\","
		  " rowid, parent) FROM pragma_foreign_key_check" },
		{ "blob references",
		  "SELECT printf('message %d (mailbox %d, uid %d) references blob %d, which does"
		  " not exist', m.id, m.mailbox_id, m.uid, m.blob_id) FROM messages m"
		  " WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = m.blob_id)"
		  " UNION ALL SELECT printf('queue entry %d (%s) references blob %d, which does"
		  " not exist', q.id, q.queue_id, q.blob_id) FROM queue q WHERE q.state < 3"
		  " AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.id = q.blob_id)" },
		{ "refcounts",
		  "SELECT printf('blob %d: refcount %d but %d references (%d messages, %d queue"
		  " entries)', id, refcount, nm + nq, nm, nq) FROM (SELECT b.id, b.refcount,"
		  " (SELECT COUNT(*) FROM messages m WHERE m.blob_id = b.id) AS nm,"
		  " (SELECT COUNT(*) FROM queue q WHERE q.blob_id = b.id AND q.state < 3) AS nq"
		  " FROM blobs b) WHERE refcount <> nm + nq" },
		{ "user usage",
		  "SELECT printf('user %d (%s@%s): used %d but its messages take %d bytes', u.id,"
		  " u.localpart, d.name, u.used, t.total) FROM users u JOIN domains d ON"
		  " d.id = u.domain_id JOIN (SELECT u2.id AS uid, (SELECT COALESCE(SUM(m.size), 0)"
		  " FROM mailboxes mb JOIN messages m ON m.mailbox_id = mb.id WHERE mb.user_id ="
		  " u2.id) AS total FROM users u2) t ON t.uid = u.id WHERE u.used <> t.total" },
		{ "mailbox counts",
		  "SELECT printf('mailbox %d (%s of user %d): messages %d, size %d but it holds %d"
		  " messages of %d bytes', mb.id, mb.name, mb.user_id, mb.messages, mb.size,"
		  " t.n, t.total) FROM mailboxes mb JOIN (SELECT mailbox_id, COUNT(*) AS n,"
		  " SUM(size) AS total FROM messages GROUP BY mailbox_id) t ON t.mailbox_id = mb.id"
		  " WHERE mb.messages <> t.n OR mb.size <> t.total"
		  " UNION ALL SELECT printf('mailbox %d (%s of user %d): messages %d, size %d but"
		  " it holds none', mb.id, mb.name, mb.user_id, mb.messages, mb.size) FROM"
		  " mailboxes mb WHERE (mb.messages <> 0 OR mb.size <> 0) AND NOT EXISTS"
		  " (SELECT 1 FROM messages m WHERE m.mailbox_id = mb.id)" },
	};

	for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++)
		if (check_sql_problems(c, queries[i].sql, queries[i].what) < 0)
			return -1;
	return 0;
}

static int check_count(struct sq_check *c, const char *sql, uint64_t *n_r)
{
	sqlite3_stmt *st;
	int ret;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return check_db_fail(c, "counting");
	ret = sqlite3_step(st);
	if (ret == SQLITE_ROW)
		*n_r = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return ret == SQLITE_ROW ? 0 : check_db_fail(c, "counting");
}

static int check_load_blobs(struct sq_check *c)
{
	static const char sql[] =
		"SELECT id, segment, offset, size, sha256 FROM blobs ORDER BY segment, offset";
	sqlite3_stmt *st;
	size_t alloc = 0;
	int ret;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return check_db_fail(c, "reading blobs");
	while ((ret = sqlite3_step(st)) == SQLITE_ROW) {
		struct check_blob *b;
		c->blobs = sq_list_grow(c->blobs, sizeof(*c->blobs), c->n_blobs, &alloc);
		b = &c->blobs[c->n_blobs++];
		memset(b, 0, sizeof(*b));
		b->id = sqlite3_column_int64(st, 0);
		b->segment = (uint32_t)sqlite3_column_int64(st, 1);
		b->offset = (uint64_t)sqlite3_column_int64(st, 2);
		b->size = (uint64_t)sqlite3_column_int64(st, 3);
		if (sqlite3_column_bytes(st, 4) == BLOB_SHA256_LEN)
			memcpy(b->sha256, sqlite3_column_blob(st, 4), BLOB_SHA256_LEN);
	}
	sqlite3_finalize(st);
	c->res->blobs = c->n_blobs;
	return ret == SQLITE_DONE ? 0 : check_db_fail(c, "reading blobs");
}

/* ---- segments ------------------------------------------------------------- */

/* The record at off, as blob_record_verify() finds it; a read error is a
 * problem of its own (the disk, not the data), named with the error. */
static int check_record(struct sq_check *c, uint32_t segment, int fd, uint64_t off,
			uint64_t file_size, uint64_t *len_r, uint8_t sha_r[BLOB_SHA256_LEN])
{
	int ret = blob_record_verify(fd, off, file_size, len_r, sha_r);

	if (ret < 0)
		check_problem(c, "segment %u: cannot read the record at offset %" PRIu64 ": %s",
			      segment, off, strerror(errno));
	return ret;
}

static void check_blob_matches(struct sq_check *c, const struct check_blob *b, uint64_t len,
			       const uint8_t sha[BLOB_SHA256_LEN])
{
	if (b->size != len || memcmp(b->sha256, sha, BLOB_SHA256_LEN) != 0)
		check_problem(c,
			      "blob %" PRId64 ": the record at segment %u offset %" PRIu64
			      " holds other content (%" PRIu64 " bytes, expected %" PRIu64 ")",
			      b->id, b->segment, b->offset, len, b->size);
}

/* After the walk stopped at a damaged spot: each blob row behind it is
 * checked alone, so that one bad record does not hide the others. */
static void check_blobs_alone(struct sq_check *c, int fd, uint64_t size,
			      const struct check_blob *rows, size_t n)
{
	uint8_t sha[BLOB_SHA256_LEN];
	uint64_t len;

	for (size_t i = 0; i < n; i++) {
		int ret = check_record(c, rows[i].segment, fd, rows[i].offset, size, &len, sha);
		if (ret == 1)
			check_blob_matches(c, &rows[i], len, sha);
		else if (ret == 0)
			check_problem(c,
				      "blob %" PRId64 ": no whole record at segment %u offset %" PRIu64
				      " (torn, corrupt or beyond the end of the segment)",
				      rows[i].id, rows[i].segment, rows[i].offset);
	}
}

/* Walks one segment's records from 0, matching the blob rows of that
 * segment (rows[0, n), by offset) against them. */
static void check_segment_walk(struct sq_check *c, uint32_t segment, int fd, uint64_t size,
			       const struct check_blob *rows, size_t n)
{
	uint64_t off = 0, len, end = 0;
	uint8_t sha[BLOB_SHA256_LEN];
	size_t i = 0;
	int ret = 1;

	if (n > 0)
		end = rows[n - 1].offset + blob_record_size(rows[n - 1].size);
	while (off < size && (ret = check_record(c, segment, fd, off, size, &len, sha)) == 1) {
		for (; i < n && rows[i].offset < off; i++)
			check_problem(c,
				      "blob %" PRId64 ": segment %u offset %" PRIu64
				      " is not the start of a record",
				      rows[i].id, segment, rows[i].offset);
		if (i < n && rows[i].offset == off)
			check_blob_matches(c, &rows[i++], len, sha);
		c->res->records++;
		off += blob_record_size(len);
	}
	/* A read error was named by check_record. */
	if (ret >= 0 && off < size && off < end)
		check_problem(c,
			      "segment %u: no whole record at offset %" PRIu64
			      " (torn or corrupt), before committed data that ends at %" PRIu64,
			      segment, off, end);
	else if (ret >= 0 && off < size)
		check_note(c,
			   "segment %u: %" PRIu64 " bytes after offset %" PRIu64
			   " are not a whole record: a torn tail that nothing references",
			   segment, size - off, off);
	check_blobs_alone(c, fd, size, rows + i, n - i);
}

static void check_segment(struct sq_check *c, uint32_t segment, const struct check_blob *rows,
			  size_t n)
{
	char *path = xasprintf("%s/seg-%08u", c->blob_dir, segment);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		if (n > 0)
			check_problem(c, "segment %u: cannot open %s (%s); %zu blobs are in it",
				      segment, path, strerror(errno), n);
	} else {
		c->res->segments++;
		check_segment_walk(c, segment, fd, (uint64_t)st.st_size, rows, n);
	}
	if (fd >= 0)
		close(fd);
	free(path);
}

static int check_u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The segment numbers of the files in the blob dir, ascending. */
static int check_segment_files(struct sq_check *c, uint32_t **list_r, size_t *n_r)
{
	DIR *d = opendir(c->blob_dir);
	struct dirent *de;
	size_t alloc = 0;

	*list_r = NULL;
	*n_r = 0;
	if (d == NULL) {
		if (errno == ENOENT)
			return 0; /* no mail stored yet */
		snprintf(check_error, sizeof(check_error), "reading %s: %s", c->blob_dir,
			 strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned num;
		char tail;
		if (strlen(de->d_name) != 12 || sscanf(de->d_name, "seg-%8u%c", &num, &tail) != 1)
			continue;
		*list_r = sq_list_grow(*list_r, sizeof(**list_r), *n_r, &alloc);
		(*list_r)[(*n_r)++] = num;
	}
	closedir(d);
	if (*n_r > 0)
		qsort(*list_r, *n_r, sizeof(**list_r), check_u32_cmp);
	return 0;
}

/* Step 5: every segment on disk and every segment a blob row names. */
static int check_segments(struct sq_check *c)
{
	uint32_t *files;
	size_t n_files, f = 0, b = 0;

	if (check_segment_files(c, &files, &n_files) < 0)
		return -1;
	while (f < n_files || b < c->n_blobs) {
		uint32_t seg = f < n_files ? files[f] : UINT32_MAX;
		size_t first = b;
		if (b < c->n_blobs && c->blobs[b].segment < seg)
			seg = c->blobs[b].segment;
		while (b < c->n_blobs && c->blobs[b].segment == seg)
			b++;
		if (f < n_files && files[f] == seg)
			f++;
		check_segment(c, seg, c->blobs + first, b - first);
	}
	free(files);
	return 0;
}

/* ---- entry points --------------------------------------------------------- */

static int check_run(struct sq_check *c)
{
	int ret = -1;

	if (sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return check_db_fail(c, "starting a read transaction");
	if (check_count(c, "SELECT COUNT(*) FROM messages", &c->res->messages) == 0 &&
	    check_database(c) == 0 && check_load_blobs(c) == 0 && check_segments(c) == 0)
		ret = 0;
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int check_open_run(const char *data_dir, struct store_check_result *res_r)
{
	char *db_path = xasprintf("%s/keel.db", data_dir);
	char *blob_dir = xasprintf("%s/blobs", data_dir);
	struct sq_check c = { .res = res_r, .blob_dir = blob_dir };
	struct stat st;
	int ret = -1;

	/* SQLITE_OPEN_READONLY would create nothing, but say "unable to open"
	 * for a missing file: name the problem ourselves. */
	if (stat(db_path, &st) < 0)
		snprintf(check_error, sizeof(check_error), "%s: %s", db_path, strerror(errno));
	else if (sqlite3_open_v2(db_path, &c.db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				 NULL) != SQLITE_OK)
		snprintf(check_error, sizeof(check_error), "opening %s: %s", db_path,
			 c.db != NULL ? sqlite3_errmsg(c.db) : "out of memory");
	else if (sqlite3_busy_timeout(c.db, CHECK_BUSY_MS) == SQLITE_OK)
		ret = check_run(&c);
	sqlite3_close(c.db);
	free(c.blobs);
	free(db_path);
	free(blob_dir);
	return ret;
}

int store_check_dir(const char *data_dir, struct store_check_result *res_r,
		    const char **error_r)
{
	memset(res_r, 0, sizeof(*res_r));
	*error_r = check_error;
	if (check_open_run(data_dir, res_r) < 0) {
		store_check_result_deinit(res_r);
		return -1;
	}
	return 0;
}

int store_check(struct store *store, struct store_check_result *res_r, const char **error_r)
{
	return store_check_dir(store->data_dir, res_r, error_r);
}

void store_check_result_deinit(struct store_check_result *res)
{
	for (size_t i = 0; i < res->n_problems; i++)
		free(res->problems[i]);
	for (size_t i = 0; i < res->n_notes; i++)
		free(res->notes[i]);
	free(res->problems);
	free(res->notes);
	memset(res, 0, sizeof(*res));
}
