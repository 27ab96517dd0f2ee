/* Directory writes: domains, users, aliases, groups, settings.
 *
 * The public functions copy their arguments into a request and queue it;
 * the *_apply functions run on the committer thread inside the request's
 * savepoint, check the rules and report a broken one through
 * store_req_fail() (which rolls the savepoint back). */
#include "store/sqlite/sqlite_private.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

static const char *dir_str(const char *s)
{
	return s != NULL ? s : "";
}

static char *dir_dup(const char *s)
{
	return xstrdup(dir_str(s));
}

/* ---- lookups shared by the ops ----------------------------------------- */

/* Domain name: 1 found (*id_r, *alias_of_r; alias_name_r the primary's name
 * or ""), 0 missing, -1 error. */
static int dir_domain_find(struct store *s, const char *name, int64_t *id_r,
			   int64_t *alias_of_r, char alias_name_r[STORE_DOMAIN_MAX + 1])
{
	static const char sql[] = "SELECT d.id, d.alias_of, a.name FROM domains d"
				  " LEFT JOIN domains a ON a.id = d.alias_of WHERE d.name = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if ((ret = sq_row(st)) == 1) {
		*id_r = sqlite3_column_int64(st, 0);
		*alias_of_r = sqlite3_column_int64(st, 1);
		sq_text(st, 2, alias_name_r, STORE_DOMAIN_MAX + 1);
	}
	sqlite3_reset(st);
	return ret;
}

/* The domain new addresses of domain go to: it must exist and not be an
 * alias domain.  0, or -1 with req failed. */
static int dir_domain_for_new(struct store *s, struct store_req *req, const char *domain,
			      int64_t *id_r)
{
	char primary[STORE_DOMAIN_MAX + 1];
	int64_t alias_of;

	switch (dir_domain_find(s, domain, id_r, &alias_of, primary)) {
	case -1:
		return store_req_fail_db(s, req);
	case 0:
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "domain %s does not exist", domain);
	}
	if (alias_of != 0)
		return store_req_fail(req, STORE_ERR_INVALID,
				      "domain %s is an alias of %s; add the address to %s", domain,
				      primary, primary);
	return 0;
}

/* localpart in domain_id: 1 taken (*kind_r, *id_r), 0 free, -1 error. */
static int dir_address_find(struct store *s, int64_t domain_id, const char *local,
			    int *kind_r, int64_t *id_r)
{
	static const char sql[] = "SELECT kind, target_id FROM addresses"
				  " WHERE domain_id = ? AND localpart = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, domain_id);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	if ((ret = sq_row(st)) == 1) {
		*kind_r = sqlite3_column_int(st, 0);
		*id_r = sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return ret;
}

/* Checks that address may be created: valid, in an independent domain,
 * free.  0 (*domain_id_r, local_r), or -1 with req failed. */
static int dir_address_new(struct store *s, struct store_req *req, const char *address,
			   int64_t *domain_id_r, char local_r[STORE_LOCAL_MAX + 1])
{
	char domain[STORE_DOMAIN_MAX + 1];
	int64_t id;
	int kind;

	if (sq_address_split(address, local_r, domain) < 0)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid address %s", address);
	if (dir_domain_for_new(s, req, domain, domain_id_r) < 0)
		return -1;
	switch (dir_address_find(s, *domain_id_r, local_r, &kind, &id)) {
	case -1:
		return store_req_fail_db(s, req);
	case 1:
		return store_req_fail(req, STORE_ERR_EXISTS, "address %s already exists", address);
	}
	return 0;
}

static int dir_address_insert(struct store *s, int64_t domain_id, const char *local, int kind,
			      int64_t target_id)
{
	static const char sql[] = "INSERT INTO addresses(domain_id, localpart, kind, target_id)"
				  " VALUES(?, ?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, domain_id);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, kind);
	sqlite3_bind_int64(st, 4, target_id);
	return sq_run(st);
}

static int dir_address_delete(struct store *s, int kind, int64_t target_id)
{
	static const char sql[] = "DELETE FROM addresses WHERE kind = ? AND target_id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int(st, 1, kind);
	sqlite3_bind_int64(st, 2, target_id);
	return sq_run(st);
}

/* The user, alias or group (kind) at address, exact domain: 1 (*id_r), 0
 * none (or not an address), -1 error. */
static int dir_address_lookup(struct store *s, const char *address, int kind, int64_t *id_r)
{
	static const char sql[] = "SELECT a.target_id FROM addresses a"
				  " JOIN domains d ON d.id = a.domain_id"
				  " WHERE d.name = ? AND a.localpart = ? AND a.kind = ?";
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *st;
	int ret;

	if (sq_address_split(address, local, domain) < 0)
		return 0;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, kind);
	if ((ret = sq_row(st)) == 1)
		*id_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return ret;
}

/* Like dir_address_lookup(), failing req when there is nothing there. */
static int dir_address_require(struct store *s, struct store_req *req, const char *address,
			       int kind, int64_t *id_r)
{
	static const char *const kinds[] = { "", "user", "alias", "group" };

	switch (dir_address_lookup(s, address, kind, id_r)) {
	case -1:
		return store_req_fail_db(s, req);
	case 0:
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "%s %s does not exist",
				      kinds[kind], address);
	}
	return 0;
}

/* Runs a statement whose parameter 1 is an id; 0 or -1. */
static int dir_run_id(struct store *s, const char *sql, int64_t id)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	return sq_run(st);
}

/* ---- domains ------------------------------------------------------------ */

static int dir_domain_add_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "INSERT INTO domains(name, alias_of, created) VALUES(?, ?, ?)";
	const char *name = req->str1, *alias_of = req->str2;
	char grand[STORE_DOMAIN_MAX + 1];
	int64_t id, primary = 0, primary_alias_of;
	sqlite3_stmt *st;

	if (*name == '\0' || strlen(name) > STORE_DOMAIN_MAX || strchr(name, '@') != NULL)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid domain name %s", name);
	switch (dir_domain_find(s, name, &id, &primary_alias_of, grand)) {
	case -1:
		return store_req_fail_db(s, req);
	case 1:
		return store_req_fail(req, STORE_ERR_EXISTS, "domain %s already exists", name);
	}
	if (alias_of != NULL) {
		switch (dir_domain_find(s, alias_of, &primary, &primary_alias_of, grand)) {
		case -1:
			return store_req_fail_db(s, req);
		case 0:
			return store_req_fail(req, STORE_ERR_NOT_FOUND,
					      "domain %s does not exist", alias_of);
		}
		if (primary_alias_of != 0)
			return store_req_fail(req, STORE_ERR_INVALID,
					      "domain %s is itself an alias of %s; make %s an "
					      "alias of %s", alias_of, grand, name, grand);
	}
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (primary != 0)
		sqlite3_bind_int64(st, 2, primary);
	sqlite3_bind_int64(st, 3, (int64_t)s->batch_time);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_last_insert_rowid(s->w.db);
	return 0;
}

/* Refuses while anything lives in the domain; -1 with req failed. */
static int dir_domain_check_empty(struct store *s, struct store_req *req, int64_t id)
{
	static const char sql[] =
		"SELECT (SELECT COUNT(*) FROM users WHERE domain_id = ?1),"
		" (SELECT COUNT(*) FROM aliases WHERE domain_id = ?1),"
		" (SELECT COUNT(*) FROM groups WHERE domain_id = ?1),"
		" (SELECT COUNT(*) FROM domains WHERE alias_of = ?1)";
	static const char *const what[][2] = { { "user", "users" },
					       { "alias", "aliases" },
					       { "group", "groups" },
					       { "alias domain", "alias domains" } };
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int64_t counts[4];

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, id);
	if (sq_row(st) != 1) {
		sqlite3_reset(st);
		return store_req_fail_db(s, req);
	}
	for (int i = 0; i < 4; i++)
		counts[i] = sqlite3_column_int64(st, i);
	sqlite3_reset(st);
	for (int i = 0; i < 4; i++)
		if (counts[i] > 0)
			return store_req_fail(req, STORE_ERR_INVALID,
					      "domain %s has %lld %s; delete them first",
					      req->str1, (long long)counts[i],
					      what[i][counts[i] == 1 ? 0 : 1]);
	return 0;
}

static int dir_domain_del_apply(struct store *s, struct store_req *req)
{
	char primary[STORE_DOMAIN_MAX + 1];
	int64_t id, alias_of;

	switch (dir_domain_find(s, req->str1, &id, &alias_of, primary)) {
	case -1:
		return store_req_fail_db(s, req);
	case 0:
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "domain %s does not exist",
				      req->str1);
	}
	if (dir_domain_check_empty(s, req, id) < 0)
		return -1;
	if (dir_run_id(s, "DELETE FROM domains WHERE id = ?", id) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

/* Each field: str1 the name; str2, str3, strv[0] the new values, NULL to
 * leave one as it is ("" clears: stored as NULL). */
static int dir_domain_set_outbound_apply(struct store *s, struct store_req *req)
{
	static const char sql[] =
		"UPDATE domains SET source_ip4 = CASE WHEN ?2 THEN NULLIF(?3, '') ELSE source_ip4 END,"
		" source_ip6 = CASE WHEN ?4 THEN NULLIF(?5, '') ELSE source_ip6 END,"
		" ehlo_name = CASE WHEN ?6 THEN NULLIF(?7, '') ELSE ehlo_name END WHERE name = ?1";
	const char *values[3] = { req->str2, req->str3, req->strv[0] };
	const size_t max[3] = { sizeof(((struct store_domain *)0)->source_ip4) - 1,
				sizeof(((struct store_domain *)0)->source_ip6) - 1,
				STORE_DOMAIN_MAX };
	sqlite3_stmt *st;

	for (int i = 0; i < 3; i++)
		if (values[i] != NULL && strlen(values[i]) > max[i])
			return store_req_fail(req, STORE_ERR_INVALID, "value too long: %s",
					      values[i]);
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_text(st, 1, req->str1, -1, SQLITE_STATIC);
	for (int i = 0; i < 3; i++) {
		sqlite3_bind_int(st, 2 + 2 * i, values[i] != NULL);
		sqlite3_bind_text(st, 3 + 2 * i, values[i] != NULL ? values[i] : "", -1,
				  SQLITE_STATIC);
	}
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	if (sqlite3_changes(s->w.db) == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "domain %s does not exist",
				      req->str1);
	return 0;
}

/* ---- users -------------------------------------------------------------- */

static int dir_user_insert(struct store *s, struct store_req *req, int64_t domain_id,
			   const char *local, int64_t *id_r)
{
	static const char sql[] = "INSERT INTO users(domain_id, localpart, name, password_hash,"
				  " quota, created) VALUES(?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, domain_id);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, req->str2, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, req->str3, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)req->num);
	sqlite3_bind_int64(st, 6, (int64_t)s->batch_time);
	if (sq_run(st) < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(s->w.db);
	return 0;
}

static int dir_user_add_apply(struct store *s, struct store_req *req)
{
	static const struct {
		const char *name;
		enum store_special_use use;
	} boxes[] = { { "INBOX", STORE_SPECIAL_INBOX }, { "Drafts", STORE_SPECIAL_DRAFTS },
		      { "Sent", STORE_SPECIAL_SENT },   { "Trash", STORE_SPECIAL_TRASH },
		      { "Junk", STORE_SPECIAL_JUNK },   { "Archive", STORE_SPECIAL_ARCHIVE } };
	char local[STORE_LOCAL_MAX + 1];
	int64_t domain_id, id, mailbox_id;

	if (strlen(req->str2) > STORE_NAME_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "name is too long");
	if (strlen(req->str3) > STORE_HASH_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "password hash is too long");
	if (dir_address_new(s, req, req->str1, &domain_id, local) < 0)
		return -1;
	if (dir_user_insert(s, req, domain_id, local, &id) < 0 ||
	    dir_address_insert(s, domain_id, local, SQ_KIND_USER, id) < 0)
		return store_req_fail_db(s, req);
	for (size_t i = 0; i < sizeof(boxes) / sizeof(boxes[0]); i++)
		if (sqlite_mailbox_insert(s, id, boxes[i].name, boxes[i].use, &mailbox_id) < 0)
			return store_req_fail_db(s, req);
	req->reply.id = id;
	return 0;
}

/* One column of one user: parameter 1 the value (str1, or num when str1 is
 * NULL), parameter 2 the id. */
static int dir_user_update(struct store *s, struct store_req *req, const char *sql)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return store_req_fail_db(s, req);
	if (req->str1 != NULL)
		sqlite3_bind_text(st, 1, req->str1, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 1, (int64_t)req->num);
	sqlite3_bind_int64(st, 2, req->id);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	if (sqlite3_changes(s->w.db) == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "user %lld does not exist",
				      (long long)req->id);
	return 0;
}

static int dir_user_set_password_apply(struct store *s, struct store_req *req)
{
	if (strlen(req->str1) > STORE_HASH_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "password hash is too long");
	return dir_user_update(s, req, "UPDATE users SET password_hash = ? WHERE id = ?");
}

static int dir_user_set_enabled_apply(struct store *s, struct store_req *req)
{
	return dir_user_update(s, req, "UPDATE users SET enabled = ? WHERE id = ?");
}

static int dir_user_set_name_apply(struct store *s, struct store_req *req)
{
	if (strlen(req->str1) > STORE_NAME_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "name is too long");
	return dir_user_update(s, req, "UPDATE users SET name = ? WHERE id = ?");
}

static int dir_user_set_quota_apply(struct store *s, struct store_req *req)
{
	return dir_user_update(s, req, "UPDATE users SET quota = ? WHERE id = ?");
}

/* The user's current address: 1 (*domain_id_r, local_r), 0 no such user, -1. */
static int dir_user_find(struct store *s, int64_t id, int64_t *domain_id_r,
			 char local_r[STORE_LOCAL_MAX + 1])
{
	static const char sql[] = "SELECT domain_id, localpart FROM users WHERE id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	if ((ret = sq_row(st)) == 1) {
		*domain_id_r = sqlite3_column_int64(st, 0);
		sq_text(st, 1, local_r, STORE_LOCAL_MAX + 1);
	}
	sqlite3_reset(st);
	return ret;
}

static int dir_require_user(struct store *s, struct store_req *req, int64_t id,
			    int64_t *domain_id_r, char local_r[STORE_LOCAL_MAX + 1])
{
	switch (dir_user_find(s, id, domain_id_r, local_r)) {
	case -1:
		return store_req_fail_db(s, req);
	case 0:
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "user %lld does not exist",
				      (long long)id);
	}
	return 0;
}

/* An alias at (domain_id, local) with its address row; *id_r. */
static int dir_alias_insert(struct store *s, int64_t domain_id, const char *local,
			    int64_t *id_r)
{
	static const char sql[] = "INSERT INTO aliases(domain_id, localpart, created)"
				  " VALUES(?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, domain_id);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)s->batch_time);
	if (sq_run(st) < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(s->w.db);
	return dir_address_insert(s, domain_id, local, SQ_KIND_ALIAS, *id_r);
}

static int dir_alias_target_insert(struct store *s, int64_t alias_id, int position,
				   int64_t user_id, const char *address)
{
	static const char sql[] = "INSERT INTO alias_targets(alias_id, position, user_id, address)"
				  " VALUES(?, ?, ?, ?)";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, alias_id);
	sqlite3_bind_int(st, 2, position);
	if (user_id != 0)
		sqlite3_bind_int64(st, 3, user_id);
	else
		sqlite3_bind_text(st, 4, address, -1, SQLITE_STATIC);
	return sq_run(st);
}

/* Moves the user's address row and users row to (domain_id, local). */
static int dir_user_move(struct store *s, int64_t id, int64_t domain_id, const char *local)
{
	static const char sql[] = "UPDATE users SET domain_id = ?, localpart = ? WHERE id = ?";
	static const char sql_addr[] = "UPDATE addresses SET domain_id = ?, localpart = ?"
				       " WHERE kind = 1 AND target_id = ?";
	const char *const sqls[] = { sql, sql_addr };

	for (int i = 0; i < 2; i++) {
		sqlite3_stmt *st = sq_get(&s->w, sqls[i]);
		if (st == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, domain_id);
		sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, id);
		if (sq_run(st) < 0)
			return -1;
	}
	return 0;
}

static int dir_user_rename_apply(struct store *s, struct store_req *req)
{
	char old_local[STORE_LOCAL_MAX + 1], local[STORE_LOCAL_MAX + 1];
	char domain[STORE_DOMAIN_MAX + 1];
	int64_t old_domain_id, domain_id, target, alias_id;
	int kind;

	if (dir_require_user(s, req, req->id, &old_domain_id, old_local) < 0)
		return -1;
	if (sq_address_split(req->str1, local, domain) < 0)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid address %s", req->str1);
	if (dir_domain_for_new(s, req, domain, &domain_id) < 0)
		return -1;
	switch (dir_address_find(s, domain_id, local, &kind, &target)) {
	case -1:
		return store_req_fail_db(s, req);
	case 1:
		/* The user's own address in other letters: only the spelling changes. */
		if (kind != SQ_KIND_USER || target != req->id)
			return store_req_fail(req, STORE_ERR_EXISTS, "address %s already exists",
					      req->str1);
		return dir_user_move(s, req->id, domain_id, local) < 0 ? store_req_fail_db(s, req)
									: 0;
	}
	if (dir_user_move(s, req->id, domain_id, local) < 0)
		return store_req_fail_db(s, req);
	if (req->flag && (dir_alias_insert(s, old_domain_id, old_local, &alias_id) < 0 ||
			  dir_alias_target_insert(s, alias_id, 0, req->id, NULL) < 0))
		return store_req_fail_db(s, req);
	return 0;
}

/* Notes each of the user's mailboxes as changed, so that their watchers
 * (a selected folder, a POP3 session) learn that they are gone. */
static int dir_user_mailboxes_changed(struct store *s, struct store_req *req)
{
	static const char sql[] = "SELECT id, highestmodseq FROM mailboxes WHERE user_id = ?";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	int ret;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, req->id);
	while ((ret = sq_row(st)) == 1)
		sqlite_req_changed(req, sqlite3_column_int64(st, 0),
				   (uint64_t)sqlite3_column_int64(st, 1));
	sqlite3_reset(st);
	return ret;
}

/* Drops the user's messages, taking their blob references with them.  A blob
 * left at refcount 0 stays in its segment until compaction. */
static int dir_user_drop_mail(struct store *s, struct store_req *req)
{
	static const char sql_refs[] =
		"UPDATE blobs SET refcount = refcount - (SELECT COUNT(*) FROM messages m"
		"  JOIN mailboxes b ON b.id = m.mailbox_id"
		"  WHERE m.blob_id = blobs.id AND b.user_id = ?1)"
		" WHERE id IN (SELECT m.blob_id FROM messages m"
		"  JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.user_id = ?1)";
	static const char sql_msgs[] =
		"DELETE FROM messages WHERE mailbox_id IN"
		" (SELECT id FROM mailboxes WHERE user_id = ?)";
	static const char sql_expunged[] =
		"DELETE FROM expunged WHERE mailbox_id IN"
		" (SELECT id FROM mailboxes WHERE user_id = ?)";
	int64_t id = req->id;

	if (dir_user_mailboxes_changed(s, req) < 0 || dir_run_id(s, sql_refs, id) < 0 ||
	    dir_run_id(s, sql_msgs, id) < 0 || dir_run_id(s, sql_expunged, id) < 0)
		return -1;
	return dir_run_id(s, "DELETE FROM mailboxes WHERE user_id = ?", id);
}

static int dir_user_del_apply(struct store *s, struct store_req *req)
{
	static const char *const sqls[] = {
		"DELETE FROM alias_targets WHERE user_id = ?",
		"DELETE FROM group_members WHERE user_id = ?",
		"DELETE FROM users WHERE id = ?",
	};
	char local[STORE_LOCAL_MAX + 1];
	int64_t domain_id;

	if (dir_require_user(s, req, req->id, &domain_id, local) < 0)
		return -1;
	if (dir_user_drop_mail(s, req) < 0 ||
	    dir_address_delete(s, SQ_KIND_USER, req->id) < 0)
		return store_req_fail_db(s, req);
	for (size_t i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++)
		if (dir_run_id(s, sqls[i], req->id) < 0)
			return store_req_fail_db(s, req);
	return 0;
}

/* ---- aliases and groups ------------------------------------------------- */

/* Has target i already been stored as the same user or the same string? */
static bool dir_target_dup(const int64_t *user_ids, char *const *targets, size_t i)
{
	for (size_t j = 0; j < i; j++) {
		if (user_ids[i] != 0 ? user_ids[j] == user_ids[i]
				     : user_ids[j] == 0 && strcasecmp(targets[j], targets[i]) == 0)
			return true;
	}
	return false;
}

static int dir_alias_targets_insert(struct store *s, struct store_req *req, int64_t alias_id)
{
	int64_t *user_ids = xcalloc(req->n_strv, sizeof(int64_t));
	int position = 0, ret = 0;

	for (size_t i = 0; i < req->n_strv && ret == 0; i++) {
		/* A local user is kept by id, so the alias follows renames. */
		if (dir_address_lookup(s, req->strv[i], SQ_KIND_USER, &user_ids[i]) < 0)
			ret = -1;
		else if (!dir_target_dup(user_ids, req->strv, i))
			ret = dir_alias_target_insert(s, alias_id, position++, user_ids[i],
						      req->strv[i]);
	}
	free(user_ids);
	return ret;
}

static int dir_alias_add_apply(struct store *s, struct store_req *req)
{
	char local[STORE_LOCAL_MAX + 1];
	int64_t domain_id, id;

	if (req->n_strv == 0)
		return store_req_fail(req, STORE_ERR_INVALID, "alias %s needs at least one target",
				      req->str1);
	for (size_t i = 0; i < req->n_strv; i++)
		if (*req->strv[i] == '\0' || strlen(req->strv[i]) > STORE_ADDR_MAX)
			return store_req_fail(req, STORE_ERR_INVALID,
					      "alias target %zu is empty or too long", i + 1);
	if (dir_address_new(s, req, req->str1, &domain_id, local) < 0)
		return -1;
	if (dir_alias_insert(s, domain_id, local, &id) < 0 ||
	    dir_alias_targets_insert(s, req, id) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = id;
	return 0;
}

static int dir_alias_del_apply(struct store *s, struct store_req *req)
{
	int64_t id;

	if (dir_address_require(s, req, req->str1, SQ_KIND_ALIAS, &id) < 0)
		return -1;
	if (dir_address_delete(s, SQ_KIND_ALIAS, id) < 0 ||
	    dir_run_id(s, "DELETE FROM aliases WHERE id = ?", id) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

static int dir_group_add_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "INSERT INTO groups(domain_id, localpart, created)"
				  " VALUES(?, ?, ?)";
	char local[STORE_LOCAL_MAX + 1];
	int64_t domain_id;
	sqlite3_stmt *st;

	if (dir_address_new(s, req, req->str1, &domain_id, local) < 0)
		return -1;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, domain_id);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)s->batch_time);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	req->reply.id = sqlite3_last_insert_rowid(s->w.db);
	if (dir_address_insert(s, domain_id, local, SQ_KIND_GROUP, req->reply.id) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

static int dir_group_del_apply(struct store *s, struct store_req *req)
{
	int64_t id;

	if (dir_address_require(s, req, req->str1, SQ_KIND_GROUP, &id) < 0)
		return -1;
	if (dir_address_delete(s, SQ_KIND_GROUP, id) < 0 ||
	    dir_run_id(s, "DELETE FROM groups WHERE id = ?", id) < 0)
		return store_req_fail_db(s, req);
	return 0;
}

/* Group (str1) and member (str2) ids, and whether the member is in: 0, or
 * -1 with req failed. */
static int dir_member_find(struct store *s, struct store_req *req, int64_t *group_r,
			   int64_t *user_r, bool *member_r)
{
	static const char sql[] = "SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?";
	sqlite3_stmt *st;
	int ret;

	if (dir_address_require(s, req, req->str1, SQ_KIND_GROUP, group_r) < 0 ||
	    dir_address_require(s, req, req->str2, SQ_KIND_USER, user_r) < 0)
		return -1;
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, *group_r);
	sqlite3_bind_int64(st, 2, *user_r);
	ret = sq_row(st);
	sqlite3_reset(st);
	if (ret < 0)
		return store_req_fail_db(s, req);
	*member_r = ret == 1;
	return 0;
}

static int dir_member_change(struct store *s, struct store_req *req, const char *sql,
			     int64_t group, int64_t user)
{
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_int64(st, 1, group);
	sqlite3_bind_int64(st, 2, user);
	return sq_run(st) < 0 ? store_req_fail_db(s, req) : 0;
}

static int dir_group_member_add_apply(struct store *s, struct store_req *req)
{
	int64_t group, user;
	bool member;

	if (dir_member_find(s, req, &group, &user, &member) < 0)
		return -1;
	if (member)
		return store_req_fail(req, STORE_ERR_EXISTS, "%s is already a member of %s",
				      req->str2, req->str1);
	return dir_member_change(s, req,
				 "INSERT INTO group_members(group_id, user_id) VALUES(?, ?)",
				 group, user);
}

static int dir_group_member_del_apply(struct store *s, struct store_req *req)
{
	int64_t group, user;
	bool member;

	if (dir_member_find(s, req, &group, &user, &member) < 0)
		return -1;
	if (!member)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "%s is not a member of %s",
				      req->str2, req->str1);
	return dir_member_change(s, req,
				 "DELETE FROM group_members WHERE group_id = ? AND user_id = ?",
				 group, user);
}

/* ---- settings ----------------------------------------------------------- */

static int dir_setting_set_apply(struct store *s, struct store_req *req)
{
	static const char sql[] = "INSERT INTO settings(key, value) VALUES(?, ?)"
				  " ON CONFLICT(key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *st;

	if (*req->str1 == '\0' || strlen(req->str1) > STORE_KEY_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "invalid setting name");
	if (strlen(req->str2) > STORE_VALUE_MAX)
		return store_req_fail(req, STORE_ERR_INVALID, "value of %s is too long",
				      req->str1);
	if ((st = sq_get(&s->w, sql)) == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_text(st, 1, req->str1, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, req->str2, -1, SQLITE_STATIC);
	return sq_run(st) < 0 ? store_req_fail_db(s, req) : 0;
}

static int dir_setting_unset_apply(struct store *s, struct store_req *req)
{
	sqlite3_stmt *st = sq_get(&s->w, "DELETE FROM settings WHERE key = ?");

	if (st == NULL)
		return store_req_fail_db(s, req);
	sqlite3_bind_text(st, 1, req->str1, -1, SQLITE_STATIC);
	if (sq_run(st) < 0)
		return store_req_fail_db(s, req);
	if (sqlite3_changes(s->w.db) == 0)
		return store_req_fail(req, STORE_ERR_NOT_FOUND, "setting %s is not set",
				      req->str1);
	return 0;
}

/* ---- the public functions: copy, queue ---------------------------------- */

#define DIR_OP(op_name, fn) static const struct store_op fn##_op = { op_name, fn##_apply }
DIR_OP("domain.add", dir_domain_add);
DIR_OP("domain.del", dir_domain_del);
DIR_OP("domain.set_outbound", dir_domain_set_outbound);
DIR_OP("user.add", dir_user_add);
DIR_OP("user.set_password", dir_user_set_password);
DIR_OP("user.set_enabled", dir_user_set_enabled);
DIR_OP("user.set_name", dir_user_set_name);
DIR_OP("user.set_quota", dir_user_set_quota);
DIR_OP("user.rename", dir_user_rename);
DIR_OP("user.del", dir_user_del);
DIR_OP("alias.add", dir_alias_add);
DIR_OP("alias.del", dir_alias_del);
DIR_OP("group.add", dir_group_add);
DIR_OP("group.del", dir_group_del);
DIR_OP("group.member_add", dir_group_member_add);
DIR_OP("group.member_del", dir_group_member_del);
DIR_OP("setting.set", dir_setting_set);
DIR_OP("setting.unset", dir_setting_unset);

/* Queues op with up to two string arguments and an id or number. */
static void dir_submit(struct store *s, const struct store_op *op, const char *str1,
		       const char *str2, int64_t id, uint64_t num, struct loop *loop,
		       store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(op, loop, cb, ctx);

	req->str1 = str1 != NULL ? xstrdup(str1) : NULL;
	req->str2 = str2 != NULL ? xstrdup(str2) : NULL;
	req->id = id;
	req->num = num;
	store_req_submit(s, req);
}

void store_domain_add(struct store *s, const char *name, const char *alias_of,
		      struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&dir_domain_add_op, loop, cb, ctx);

	req->str1 = sq_lower(dir_dup(name));
	if (alias_of != NULL && *alias_of != '\0')
		req->str2 = sq_lower(xstrdup(alias_of));
	store_req_submit(s, req);
}

void store_domain_del(struct store *s, const char *name, struct loop *loop,
		      store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_domain_del_op, dir_str(name), NULL, 0, 0, loop, cb, ctx);
}

void store_domain_set_outbound(struct store *s, const char *name, const char *source_ip4,
			       const char *source_ip6, const char *ehlo_name, struct loop *loop,
			       store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&dir_domain_set_outbound_op, loop, cb, ctx);

	req->str1 = sq_lower(dir_dup(name));
	req->str2 = source_ip4 != NULL ? xstrdup(source_ip4) : NULL;
	req->str3 = source_ip6 != NULL ? xstrdup(source_ip6) : NULL;
	req->strv = xcalloc(1, sizeof(*req->strv));
	req->n_strv = 1;
	req->strv[0] = ehlo_name != NULL ? xstrdup(ehlo_name) : NULL;
	store_req_submit(s, req);
}

void store_user_add(struct store *s, const char *address, const char *name,
		    const char *password_hash, uint64_t quota, struct loop *loop,
		    store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&dir_user_add_op, loop, cb, ctx);

	req->str1 = dir_dup(address);
	req->str2 = dir_dup(name);
	req->str3 = dir_dup(password_hash);
	req->num = quota;
	store_req_submit(s, req);
}

void store_user_set_password(struct store *s, int64_t user_id, const char *password_hash,
			     struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_user_set_password_op, dir_str(password_hash),
		   NULL, user_id, 0, loop, cb, ctx);
}

void store_user_set_enabled(struct store *s, int64_t user_id, bool enabled,
			    struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_user_set_enabled_op, NULL, NULL, user_id, enabled ? 1 : 0, loop, cb,
		   ctx);
}

void store_user_set_name(struct store *s, int64_t user_id, const char *name,
			 struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_user_set_name_op, dir_str(name), NULL, user_id, 0, loop,
		   cb, ctx);
}

void store_user_set_quota(struct store *s, int64_t user_id, uint64_t quota,
			  struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_user_set_quota_op, NULL, NULL, user_id, quota, loop, cb, ctx);
}

void store_user_rename(struct store *s, int64_t user_id, const char *new_address,
		       bool keep_alias, struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&dir_user_rename_op, loop, cb, ctx);

	req->str1 = dir_dup(new_address);
	req->id = user_id;
	req->flag = keep_alias;
	store_req_submit(s, req);
}

void store_user_del(struct store *s, int64_t user_id, struct loop *loop,
		    store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_user_del_op, NULL, NULL, user_id, 0, loop, cb, ctx);
}

void store_alias_add(struct store *s, const char *address, const char *const *targets,
		     size_t n_targets, struct loop *loop, store_done_cb *cb, void *ctx)
{
	struct store_req *req = store_req_new(&dir_alias_add_op, loop, cb, ctx);

	req->str1 = dir_dup(address);
	req->strv = xcalloc(n_targets, sizeof(char *));
	req->n_strv = n_targets;
	for (size_t i = 0; i < n_targets; i++)
		req->strv[i] = dir_dup(targets[i]);
	store_req_submit(s, req);
}

void store_alias_del(struct store *s, const char *address, struct loop *loop,
		     store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_alias_del_op, dir_str(address), NULL, 0, 0, loop, cb, ctx);
}

void store_group_add(struct store *s, const char *address, struct loop *loop,
		     store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_group_add_op, dir_str(address), NULL, 0, 0, loop, cb, ctx);
}

void store_group_del(struct store *s, const char *address, struct loop *loop,
		     store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_group_del_op, dir_str(address), NULL, 0, 0, loop, cb, ctx);
}

void store_group_member_add(struct store *s, const char *group, const char *member,
			    struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_group_member_add_op, dir_str(group),
		   dir_str(member), 0, 0, loop, cb, ctx);
}

void store_group_member_del(struct store *s, const char *group, const char *member,
			    struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_group_member_del_op, dir_str(group),
		   dir_str(member), 0, 0, loop, cb, ctx);
}

void store_setting_set(struct store *s, const char *key, const char *value,
		       struct loop *loop, store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_setting_set_op, dir_str(key), dir_str(value),
		   0, 0, loop, cb, ctx);
}

void store_setting_unset(struct store *s, const char *key, struct loop *loop,
			 store_done_cb *cb, void *ctx)
{
	dir_submit(s, &dir_setting_unset_op, dir_str(key), NULL, 0, 0, loop, cb, ctx);
}
