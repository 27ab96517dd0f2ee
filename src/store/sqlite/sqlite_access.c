/* IP address groups (docs/access.md): writes on the committer, reads on a
 * store_reader.  Entries are stored as the caller gives them (normalised by
 * src/access/ipgroup.c); this file keeps the rules the database can see:
 * names exist, entries are unique, group:NAME references make no loop and
 * keep the referenced group from being deleted. */
#include "store/sqlite/sqlite_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define AC_GROUP_PREFIX "group:"

/* The group's id: 1 found, 0 missing, -1 error. */
static int ac_group_find(struct store *s, const char *name, int64_t *id_r)
{
	sqlite3_stmt *st = sq_get(&s->w, "SELECT id FROM ipgroups WHERE name = ?");
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((ret = sq_row(st)) == 1)
		*id_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return ret;
}

/* ac_group_find failing req when the group is missing. */
static int ac_group_require(struct store *s, struct store_req *req, const char *name, int64_t *id_r)
{
	int ret = ac_group_find(s, name, id_r);

	if (ret < 0)
		return store_req_fail_db(s, req);
	if (ret == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "no IP group %s", name);
	return 0;
}

static int ac_ipgroup_add_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "INSERT INTO ipgroups(name, created) VALUES(?, ?)";
	int64_t id;
	sqlite3_stmt *st;
	int ret;

	if (*req->str1 == '\0' || strlen(req->str1) > STORE_IPGROUP_NAME_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid IP group name");
	if ((ret = ac_group_find(s, req->str1, &id)) < 0)
		return store_req_fail_db(s, req);
	if (ret == 1)
		return store_req_fail(req, STORE_ERR_EXISTS, "IP group %s exists", req->str1);
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_text(st, 1, req->str1, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)s->batch_time);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_last_insert_rowid(s->w.db);
	return 0;
}

/* The name of a group with an entry group:name, into user_r: 1, 0 none, -1. */
static int ac_group_user(struct store *s, const char *name, char user_r[STORE_IPGROUP_NAME_MAX + 1])
{
	static const char sql[] = "SELECT g.name FROM ipgroup_entries e"
	                          " JOIN ipgroups g ON g.id = e.group_id"
	                          " WHERE e.entry = 'group:' || ? COLLATE NOCASE"
	                          " ORDER BY g.name LIMIT 1";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((ret = sq_row(st)) == 1)
		sq_text(st, 0, user_r, STORE_IPGROUP_NAME_MAX + 1);
	sqlite3_reset(st);
	return ret;
}

static int ac_run_id(struct store *s, const char *sql, int64_t id)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return sq_run(st);
}

static int ac_ipgroup_del_apply(struct store *s, struct store_req *req)
{
	char user[STORE_IPGROUP_NAME_MAX + 1];
	int64_t id;
	int ret;

	if (ac_group_require(s, req, req->str1, &id) < 0)
		return -1;
	if ((ret = ac_group_user(s, req->str1, user)) < 0)
		return store_req_fail_db(s, req);
	if (ret == 1)
		return store_req_fail(req, STORE_ERR_INVALID,
		                      "IP group %s is used by IP group %s (entry group:%s)",
		                      req->str1, user, req->str1);
	if (ac_run_id(s, "DELETE FROM ipgroup_entries WHERE group_id = ?", id) < 0 ||
	    ac_run_id(s, "DELETE FROM ipgroups WHERE id = ?", id) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

/* Whether group other reaches group name through group: entries (or is
 * it): 1 yes, 0 no, -1 error. */
static int ac_reaches(struct store *s, const char *other, const char *name)
{
	static const char sql[] = "WITH RECURSIVE reach(n) AS ("
	                          " SELECT ?1 COLLATE NOCASE"
	                          " UNION"
	                          " SELECT substr(e.entry, 7) COLLATE NOCASE FROM ipgroup_entries e"
	                          " JOIN ipgroups g ON g.id = e.group_id"
	                          " JOIN reach r ON g.name = r.n"
	                          " WHERE e.entry LIKE 'group:%')"
	                          " SELECT 1 FROM reach WHERE n = ?2 COLLATE NOCASE LIMIT 1";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, other, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	ret = sq_row(st);
	sqlite3_reset(st);
	return ret;
}

/* A group:OTHER entry of group name: OTHER exists and makes no loop. */
static int ac_check_ref(struct store *s, struct store_req *req)
{
	const char *other = req->str2 + strlen(AC_GROUP_PREFIX);
	int64_t other_id;
	int ret;

	if (ac_group_require(s, req, other, &other_id) < 0)
		return -1;
	if ((ret = ac_reaches(s, other, req->str1)) < 0)
		return store_req_fail_db(s, req);
	if (ret == 1)
		return store_req_fail(req, STORE_ERR_INVALID,
		                      "entry group:%s would make a loop: %s is in %s", other,
		                      req->str1, other);
	return 0;
}

static int ac_entry_add_apply(struct store *s, struct store_req *req)
{
	static const char exists_sql[] = "SELECT 1 FROM ipgroup_entries"
	                                 " WHERE group_id = ? AND entry = ? AND exclude = ?";
	static const char sql[] = "INSERT INTO ipgroup_entries(group_id, entry, exclude, comment)"
	                          " VALUES(?, ?, ?, ?)";
	int64_t id;
	sqlite3_stmt *st;
	int ret;

	if (*req->str2 == '\0' || strlen(req->str2) > STORE_IPGROUP_ENTRY_MAX ||
	    strlen(req->str3) > STORE_IPGROUP_COMMENT_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "entry or comment too long");
	if (ac_group_require(s, req, req->str1, &id) < 0)
		return -1;
	if (strncasecmp(req->str2, AC_GROUP_PREFIX, strlen(AC_GROUP_PREFIX)) == 0 &&
	    ac_check_ref(s, req) < 0)
		return -1;
	if ((st = sq_get(&s->w, exists_sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, req->str2, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, req->flag ? 1 : 0);
	ret = sq_row(st);
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	if (ret == 1)
		return store_req_fail(req, STORE_ERR_EXISTS, "IP group %s already has %s%s",
		                      req->str1, req->flag ? "exclusion " : "entry ", req->str2);
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, req->str2, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, req->flag ? 1 : 0);
	sqlite3_bind_text(st, 4, req->str3, -1, SQLITE_STATIC);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_last_insert_rowid(s->w.db);
	return 0;
}

static int ac_entry_del_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "DELETE FROM ipgroup_entries WHERE group_id = ? AND entry = ?";
	int64_t id;
	sqlite3_stmt *st;

	if (ac_group_require(s, req, req->str1, &id) < 0)
		return -1;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, req->str2, -1, SQLITE_STATIC);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	if (sqlite3_changes(s->w.db) == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "IP group %s has no entry %s",
		                      req->str1, req->str2);
	return 0;
}

static const struct store_op ac_ipgroup_add_op = {"ipgroup.add", ac_ipgroup_add_apply};
static const struct store_op ac_ipgroup_del_op = {"ipgroup.del", ac_ipgroup_del_apply};
static const struct store_op ac_entry_add_op = {"ipgroup.entry_add", ac_entry_add_apply};
static const struct store_op ac_entry_del_op = {"ipgroup.entry_del", ac_entry_del_apply};

static char *ac_dup(const char *s)
{
	return xstrdup(s != NULL ? s : "");
}

void store_ipgroup_add(struct store *s, const char *name, struct loop *loop, store_done_cb *cb,
                       void *ctx)
{
	struct store_req *req = store_req_new(&ac_ipgroup_add_op, loop, cb, ctx);

	req->str1 = ac_dup(name);
	store_req_submit(s, req);
}

void store_ipgroup_del(struct store *s, const char *name, struct loop *loop, store_done_cb *cb,
                       void *ctx)
{
	struct store_req *req = store_req_new(&ac_ipgroup_del_op, loop, cb, ctx);

	req->str1 = ac_dup(name);
	store_req_submit(s, req);
}

void store_ipgroup_entry_add(struct store *s, const char *name, const char *entry, bool exclude,
                             const char *comment, struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&ac_entry_add_op, loop, cb, ctx);

	req->str1 = ac_dup(name);
	req->str2 = ac_dup(entry);
	req->str3 = ac_dup(comment);
	req->flag = exclude;
	store_req_submit(s, req);
}

void store_ipgroup_entry_del(struct store *s, const char *name, const char *entry,
                             struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&ac_entry_del_op, loop, cb, ctx);

	req->str1 = ac_dup(name);
	req->str2 = ac_dup(entry);
	store_req_submit(s, req);
}

/* ---- reads -------------------------------------------------------------- */

static void ac_group_fill(sqlite3_stmt *st, void *item)
{
	struct store_ipgroup *g = item;

	g->id = sqlite3_column_int64(st, 0);
	sq_text(st, 1, g->name, sizeof(g->name));
	g->created = (time_t)sqlite3_column_int64(st, 2);
	g->n_entries = (size_t)sqlite3_column_int64(st, 3);
}

static void ac_entry_fill(sqlite3_stmt *st, void *item)
{
	struct store_ipgroup_entry *e = item;

	e->id = sqlite3_column_int64(st, 0);
	sq_text(st, 1, e->group, sizeof(e->group));
	sq_text(st, 2, e->entry, sizeof(e->entry));
	e->exclude = sqlite3_column_int(st, 3) != 0;
	sq_text(st, 4, e->comment, sizeof(e->comment));
}

int store_ipgroup_list(struct store_reader *r, struct store_ipgroup **list_r, size_t *n_r)
{
	static const char sql[] =
	    "SELECT g.id, g.name, g.created,"
	    " (SELECT COUNT(*) FROM ipgroup_entries e WHERE e.group_id = g.id)"
	    " FROM ipgroups g ORDER BY g.name";

	return sq_read_list(r, sq_get(&r->c, sql), sizeof(**list_r), ac_group_fill, list_r, n_r,
	                    "ipgroup_list");
}

int store_ipgroup_entries(struct store_reader *r, struct store_ipgroup_entry **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT e.id, g.name, e.entry, e.exclude, e.comment"
	                          " FROM ipgroup_entries e JOIN ipgroups g ON g.id = e.group_id"
	                          " ORDER BY g.name, e.id";

	return sq_read_list(r, sq_get(&r->c, sql), sizeof(**list_r), ac_entry_fill, list_r, n_r,
	                    "ipgroup_entries");
}

int store_ipgroup_read_all(struct store_reader *r, struct store_ipgroup **groups_r,
                           size_t *n_groups_r, struct store_ipgroup_entry **entries_r,
                           size_t *n_entries_r)
{
	int ret;

	if (sq_exec(&r->c, "BEGIN") < 0) {
		sqlite_read_failed(r, "begin");
		return -1;
	}
	ret = store_ipgroup_list(r, groups_r, n_groups_r);
	if (ret == 0 && store_ipgroup_entries(r, entries_r, n_entries_r) < 0) {
		free(*groups_r);
		*groups_r = NULL;
		*n_groups_r = 0;
		ret = -1;
	}
	if (!sqlite3_get_autocommit(r->c.db) && sq_exec(&r->c, "COMMIT") < 0)
		sqlite_read_failed(r, "commit");
	return ret;
}
