/* Connections, the statement cache and small helpers for the SQLite backend. */
#include "store/sqlite/sqlite_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define SQ_BUSY_TIMEOUT_MS 10000

static __thread char sq_open_error[512];

static int sq_pragmas(struct sq_conn *c, bool writer)
{
	static const char *const writer_pragmas =
		"PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;";
	static const char *const reader_pragmas = "PRAGMA query_only=ON;";
	sqlite3_stmt *st;
	int ok;

	if (sqlite3_exec(c->db, writer ? writer_pragmas : reader_pragmas, NULL, NULL, NULL) !=
	    SQLITE_OK)
		return -1;
	if (!writer)
		return 0;
	/* journal_mode answers with the mode it ended up in: anything but wal
	 * (e.g. a file system without shared memory) breaks the reader model. */
	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
		return -1;
	ok = sqlite3_step(st) == SQLITE_ROW &&
	     strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	sqlite3_finalize(st);
	if (!ok)
		snprintf(sq_open_error, sizeof(sq_open_error), "cannot use WAL journal mode");
	return ok ? 0 : 1;
}

int sq_conn_open(struct sq_conn *c, const char *path, bool create, const char **error_r)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
		    (create ? SQLITE_OPEN_CREATE : 0);
	int ret;

	memset(c, 0, sizeof(*c));
	*error_r = sq_open_error;
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
		snprintf(sq_open_error, sizeof(sq_open_error), "opening %s: %s", path,
			 c->db != NULL ? sqlite3_errmsg(c->db) : "out of memory");
		sq_conn_close(c);
		return -1;
	}
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(c->db, 1);
	if ((ret = sq_pragmas(c, create)) == 0 && sqlite_text_functions(c->db) < 0)
		ret = -1;
	if (ret != 0) {
		if (ret < 0)
			snprintf(sq_open_error, sizeof(sq_open_error), "setting up %s: %s", path,
				 sqlite3_errmsg(c->db));
		sq_conn_close(c);
		return -1;
	}
	return 0;
}

void sq_conn_close(struct sq_conn *c)
{
	for (size_t i = 0; i < c->cache_cap; i++)
		if (c->cache[i].stmt != NULL)
			sqlite3_finalize(c->cache[i].stmt);
	free(c->cache);
	c->cache = NULL;
	c->cache_cap = c->cache_n = 0;
	if (c->db != NULL && sqlite3_close(c->db) != SQLITE_OK)
		log_error("store", "event=close_failed error=\"%s\"", sqlite3_errmsg(c->db));
	c->db = NULL;
}

static size_t sq_slot(const struct sq_conn *c, const char *sql)
{
	size_t h = (size_t)(uintptr_t)sql;

	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	return (h >> 7) & (c->cache_cap - 1);
}

static void sq_cache_grow(struct sq_conn *c)
{
	struct sq_cached *old = c->cache;
	size_t old_cap = c->cache_cap;

	c->cache_cap = old_cap == 0 ? 64 : old_cap * 2;
	c->cache = xcalloc(c->cache_cap, sizeof(*c->cache));
	for (size_t i = 0; i < old_cap; i++) {
		size_t j;
		if (old[i].sql == NULL)
			continue;
		for (j = sq_slot(c, old[i].sql); c->cache[j].sql != NULL;
		     j = (j + 1) & (c->cache_cap - 1))
			;
		c->cache[j] = old[i];
	}
	free(old);
}

sqlite3_stmt *sq_get(struct sq_conn *c, const char *sql)
{
	size_t i;

	if ((c->cache_n + 1) * 2 > c->cache_cap)
		sq_cache_grow(c);
	for (i = sq_slot(c, sql); c->cache[i].sql != NULL; i = (i + 1) & (c->cache_cap - 1)) {
		if (c->cache[i].sql == sql) {
			sqlite3_reset(c->cache[i].stmt);
			sqlite3_clear_bindings(c->cache[i].stmt);
			return c->cache[i].stmt;
		}
	}
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->cache[i].stmt,
			       NULL) != SQLITE_OK) {
		log_error("store", "event=prepare_failed error=\"%s\" sql=\"%.60s\"",
			  sqlite3_errmsg(c->db), sql);
		c->cache[i].stmt = NULL;
		return NULL;
	}
	c->cache[i].sql = sql;
	c->cache_n++;
	return c->cache[i].stmt;
}

int sq_exec(struct sq_conn *c, const char *sql)
{
	sqlite3_stmt *st = sq_get(c, sql);

	return st == NULL ? -1 : sq_run(st);
}

int sq_run(sqlite3_stmt *st)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

int sq_row(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

void sq_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL || *s == '\0')
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

void sq_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", t != NULL ? (const char *)t : "");
}

int sq_address_split(const char *address, char local_r[STORE_LOCAL_MAX + 1],
		     char domain_r[STORE_DOMAIN_MAX + 1])
{
	const char *at = address != NULL ? strrchr(address, '@') : NULL;
	size_t local_len, domain_len;

	if (at == NULL)
		return -1;
	local_len = (size_t)(at - address);
	domain_len = strlen(at + 1);
	if (local_len == 0 || local_len > STORE_LOCAL_MAX || domain_len == 0 ||
	    domain_len > STORE_DOMAIN_MAX)
		return -1;
	memcpy(local_r, address, local_len);
	local_r[local_len] = '\0';
	memcpy(domain_r, at + 1, domain_len + 1);
	return 0;
}

char *sq_lower(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

void *sq_list_grow(void *list, size_t elem, size_t n, size_t *alloc)
{
	if (n < *alloc)
		return list;
	*alloc = *alloc == 0 ? 16 : *alloc * 2;
	return xrealloc(list, elem * *alloc);
}

int sq_read_list(struct store_reader *r, sqlite3_stmt *st, size_t elem, sq_fill_fn *fill,
		 void *list_r, size_t *n_r, const char *what)
{
	size_t n = 0, alloc = 0;
	char *list = NULL;
	int ret;

	/* list_r is the address of the caller's typed pointer: memcpy stores
	 * into it without pretending it is a void *. */
	memcpy(list_r, &list, sizeof(list));
	*n_r = 0;
	if (st == NULL) {
		sqlite_read_failed(r, what);
		return -1;
	}
	while ((ret = sq_row(st)) == 1) {
		list = sq_list_grow(list, elem, n, &alloc);
		memset(list + n * elem, 0, elem);
		fill(st, list + n * elem);
		n++;
	}
	sqlite3_reset(st);
	if (ret < 0) {
		sqlite_read_failed(r, what);
		free(list);
		return -1;
	}
	memcpy(list_r, &list, sizeof(list));
	*n_r = n;
	return 0;
}

int sq_read_one(struct store_reader *r, sqlite3_stmt *st, sq_fill_fn *fill, void *item,
		const char *what)
{
	int ret;

	if (st == NULL) {
		sqlite_read_failed(r, what);
		return -1;
	}
	if ((ret = sq_row(st)) == 1)
		fill(st, item);
	sqlite3_reset(st);
	if (ret < 0)
		sqlite_read_failed(r, what);
	return ret == 1 ? 0 : -1;
}
