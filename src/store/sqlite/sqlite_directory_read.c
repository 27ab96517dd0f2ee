/* Directory reads on a store_reader: domains, users, addresses, aliases,
 * groups, settings.  Reads made of several statements run in one read
 * transaction so that they see one snapshot. */
#include "store/sqlite/sqlite_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

static void rd_begin(struct store_reader *r)
{
	if (sq_exec(&r->c, "BEGIN") < 0)
		sqlite_read_failed(r, "begin");
}

static void rd_end(struct store_reader *r)
{
	if (!sqlite3_get_autocommit(r->c.db) && sq_exec(&r->c, "COMMIT") < 0)
		sqlite_read_failed(r, "commit");
}

/* ---- domains ------------------------------------------------------------ */

#define RD_DOMAIN_SELECT                                                                   \
	"SELECT d.id, d.name, d.alias_of, a.name, d.created, d.source_ip4, d.source_ip6,"  \
	" d.ehlo_name FROM domains d LEFT JOIN domains a ON a.id = d.alias_of"

static void rd_domain_fill(sqlite3_stmt *st, void *item)
{
	struct store_domain *d = item;

	d->id = sqlite3_column_int64(st, 0);
	sq_text(st, 1, d->name, sizeof(d->name));
	d->alias_of = sqlite3_column_int64(st, 2);
	sq_text(st, 3, d->alias_of_name, sizeof(d->alias_of_name));
	d->created = (time_t)sqlite3_column_int64(st, 4);
	sq_text(st, 5, d->source_ip4, sizeof(d->source_ip4));
	sq_text(st, 6, d->source_ip6, sizeof(d->source_ip6));
	sq_text(st, 7, d->ehlo_name, sizeof(d->ehlo_name));
}

int store_domain_get(struct store_reader *r, const char *name, struct store_domain *d_r)
{
	static const char sql[] = RD_DOMAIN_SELECT " WHERE d.name = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return sq_read_one(r, st, rd_domain_fill, d_r, "domain_get");
}

int store_domain_list(struct store_reader *r, struct store_domain **list_r, size_t *n_r)
{
	static const char sql[] = RD_DOMAIN_SELECT " ORDER BY d.name";

	return sq_read_list(r, sq_get(&r->c, sql), sizeof(**list_r), rd_domain_fill,
			    list_r, n_r, "domain_list");
}

/* ---- users -------------------------------------------------------------- */

#define RD_USER_SELECT                                                                     \
	"SELECT u.id, u.domain_id, u.localpart, d.name, u.name, u.password_hash, u.quota,"  \
	" u.used, u.enabled, u.created FROM users u JOIN domains d ON d.id = u.domain_id"

static void rd_user_fill(sqlite3_stmt *st, void *item)
{
	struct store_user *u = item;
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];

	u->id = sqlite3_column_int64(st, 0);
	u->domain_id = sqlite3_column_int64(st, 1);
	sq_text(st, 2, local, sizeof(local));
	sq_text(st, 3, domain, sizeof(domain));
	memcpy(u->localpart, local, sizeof(local));
	snprintf(u->address, sizeof(u->address), "%s@%s", local, domain);
	sq_text(st, 4, u->name, sizeof(u->name));
	sq_text(st, 5, u->password_hash, sizeof(u->password_hash));
	u->quota = (uint64_t)sqlite3_column_int64(st, 6);
	u->used = (uint64_t)sqlite3_column_int64(st, 7);
	u->enabled = sqlite3_column_int(st, 8) != 0;
	u->created = (time_t)sqlite3_column_int64(st, 9);
}

int store_user_get(struct store_reader *r, const char *address, struct store_user *u_r)
{
	static const char sql[] = RD_USER_SELECT
		" JOIN addresses x ON x.kind = 1 AND x.target_id = u.id"
		" WHERE x.domain_id = (SELECT id FROM domains WHERE name = ?1)"
		" AND x.localpart = ?2";
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *st;

	if (sq_address_split(address, local, domain) < 0)
		return -1;
	if ((st = sq_get(&r->c, sql)) != NULL) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	}
	return sq_read_one(r, st, rd_user_fill, u_r, "user_get");
}

int store_user_get_by_id(struct store_reader *r, int64_t id, struct store_user *u_r)
{
	static const char sql[] = RD_USER_SELECT " WHERE u.id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_int64(st, 1, id);
	return sq_read_one(r, st, rd_user_fill, u_r, "user_get_by_id");
}

int store_user_list(struct store_reader *r, const char *domain, struct store_user **list_r,
		    size_t *n_r)
{
	static const char sql_all[] = RD_USER_SELECT " ORDER BY d.name, u.localpart COLLATE NOCASE";
	static const char sql_domain[] =
		RD_USER_SELECT " WHERE d.name = ? ORDER BY u.localpart COLLATE NOCASE";
	sqlite3_stmt *st = sq_get(&r->c, domain != NULL ? sql_domain : sql_all);

	if (st != NULL && domain != NULL)
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	return sq_read_list(r, st, sizeof(**list_r), rd_user_fill, list_r, n_r,
			    "user_list");
}

enum store_addr_kind store_address_kind(struct store_reader *r, const char *address,
					int64_t *id_r)
{
	static const char sql[] = "SELECT a.kind, a.target_id FROM addresses a"
				  " JOIN domains d ON d.id = a.domain_id"
				  " WHERE d.name = ? AND a.localpart = ?";
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];
	enum store_addr_kind kind = STORE_ADDR_NONE;
	sqlite3_stmt *st;
	int ret;

	*id_r = 0;
	if (sq_address_split(address, local, domain) < 0)
		return STORE_ADDR_NONE;
	if ((st = sq_get(&r->c, sql)) == NULL) {
		sqlite_read_failed(r, "address_kind");
		return STORE_ADDR_NONE;
	}
	sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
	if ((ret = sq_row(st)) == 1) {
		kind = (enum store_addr_kind)sqlite3_column_int(st, 0);
		*id_r = sqlite3_column_int64(st, 1);
	} else if (ret < 0) {
		sqlite_read_failed(r, "address_kind");
	}
	sqlite3_reset(st);
	return kind;
}

/* ---- aliases ------------------------------------------------------------ */

/* id and address of an alias or group: the row is (id, localpart, domain). */
struct rd_named {
	int64_t id;
	char address[STORE_ADDR_MAX + 1];
};

static void rd_named_fill(sqlite3_stmt *st, void *item)
{
	struct rd_named *n = item;
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];

	n->id = sqlite3_column_int64(st, 0);
	sq_text(st, 1, local, sizeof(local));
	sq_text(st, 2, domain, sizeof(domain));
	snprintf(n->address, sizeof(n->address), "%s@%s", local, domain);
}

static void rd_target_fill(sqlite3_stmt *st, void *item)
{
	struct store_alias_target *t = item;
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];

	t->user_id = sqlite3_column_int64(st, 0);
	if (t->user_id == 0) {
		sq_text(st, 1, t->address, sizeof(t->address));
		return;
	}
	sq_text(st, 2, local, sizeof(local));
	sq_text(st, 3, domain, sizeof(domain));
	snprintf(t->address, sizeof(t->address), "%s@%s", local, domain);
}

/* Loads the targets of alias a (id set), user targets at their current address. */
static int rd_alias_targets(struct store_reader *r, struct store_alias *a)
{
	static const char sql[] = "SELECT t.user_id, t.address, u.localpart, d.name"
				  " FROM alias_targets t LEFT JOIN users u ON u.id = t.user_id"
				  " LEFT JOIN domains d ON d.id = u.domain_id"
				  " WHERE t.alias_id = ? ORDER BY t.position";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL)
		sqlite3_bind_int64(st, 1, a->id);
	return sq_read_list(r, st, sizeof(*a->targets), rd_target_fill, &a->targets,
			    &a->n_targets, "alias_targets");
}

/* The alias or group (kind) at address: 0 with *n_r filled, -1 none. */
static int rd_named_get(struct store_reader *r, const char *address, int kind,
			struct rd_named *n_r)
{
	static const char sql[] = "SELECT a.target_id, a.localpart, d.name FROM addresses a"
				  " JOIN domains d ON d.id = a.domain_id"
				  " WHERE d.name = ? AND a.localpart = ? AND a.kind = ?";
	char local[STORE_LOCAL_MAX + 1], domain[STORE_DOMAIN_MAX + 1];
	sqlite3_stmt *st;

	if (sq_address_split(address, local, domain) < 0)
		return -1;
	if ((st = sq_get(&r->c, sql)) != NULL) {
		sqlite3_bind_text(st, 1, domain, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, local, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, kind);
	}
	return sq_read_one(r, st, rd_named_fill, n_r, "named_get");
}

int store_alias_get(struct store_reader *r, const char *address, struct store_alias *a_r)
{
	struct rd_named n;
	int ret = -1;

	memset(a_r, 0, sizeof(*a_r));
	rd_begin(r);
	if (rd_named_get(r, address, SQ_KIND_ALIAS, &n) == 0) {
		a_r->id = n.id;
		memcpy(a_r->address, n.address, sizeof(a_r->address));
		ret = rd_alias_targets(r, a_r);
	}
	rd_end(r);
	return ret;
}

void store_alias_free(struct store_alias *a)
{
	free(a->targets);
	a->targets = NULL;
	a->n_targets = 0;
}

int store_alias_list(struct store_reader *r, struct store_alias **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT a.id, a.localpart, d.name FROM aliases a"
				  " JOIN domains d ON d.id = a.domain_id"
				  " ORDER BY d.name, a.localpart";
	struct rd_named *names;
	size_t n;
	int ret;

	*list_r = NULL;
	*n_r = 0;
	rd_begin(r);
	ret = sq_read_list(r, sq_get(&r->c, sql), sizeof(*names), rd_named_fill,
			   &names, &n, "alias_list");
	if (ret == 0) {
		*list_r = xcalloc(n, sizeof(**list_r));
		*n_r = n;
		for (size_t i = 0; i < n && ret == 0; i++) {
			(*list_r)[i].id = names[i].id;
			memcpy((*list_r)[i].address, names[i].address, sizeof(names[i].address));
			ret = rd_alias_targets(r, &(*list_r)[i]);
		}
		free(names);
	}
	rd_end(r);
	if (ret < 0) {
		store_alias_list_free(*list_r, *n_r);
		*list_r = NULL;
		*n_r = 0;
	}
	return ret;
}

void store_alias_list_free(struct store_alias *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_alias_free(&list[i]);
	free(list);
}

/* ---- groups ------------------------------------------------------------- */

static int rd_group_members(struct store_reader *r, struct store_group *g)
{
	static const char sql[] = "SELECT u.id, u.localpart, d.name FROM group_members m"
				  " JOIN users u ON u.id = m.user_id"
				  " JOIN domains d ON d.id = u.domain_id"
				  " WHERE m.group_id = ? ORDER BY d.name, u.localpart";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	struct rd_named *members;
	size_t n;

	if (st != NULL)
		sqlite3_bind_int64(st, 1, g->id);
	if (sq_read_list(r, st, sizeof(*members), rd_named_fill, &members, &n,
			 "group_members") < 0)
		return -1;
	g->n_members = n;
	g->member_ids = xcalloc(n, sizeof(*g->member_ids));
	g->member_addresses = xcalloc(n, sizeof(*g->member_addresses));
	for (size_t i = 0; i < n; i++) {
		g->member_ids[i] = members[i].id;
		memcpy(g->member_addresses[i], members[i].address, sizeof(members[i].address));
	}
	free(members);
	return 0;
}

int store_group_get(struct store_reader *r, const char *address, struct store_group *g_r)
{
	struct rd_named n;
	int ret = -1;

	memset(g_r, 0, sizeof(*g_r));
	rd_begin(r);
	if (rd_named_get(r, address, SQ_KIND_GROUP, &n) == 0) {
		g_r->id = n.id;
		memcpy(g_r->address, n.address, sizeof(g_r->address));
		ret = rd_group_members(r, g_r);
	}
	rd_end(r);
	return ret;
}

void store_group_free(struct store_group *g)
{
	free(g->member_ids);
	free(g->member_addresses);
	g->member_ids = NULL;
	g->member_addresses = NULL;
	g->n_members = 0;
}

int store_group_list(struct store_reader *r, struct store_group **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT g.id, g.localpart, d.name FROM groups g"
				  " JOIN domains d ON d.id = g.domain_id"
				  " ORDER BY d.name, g.localpart";
	struct rd_named *names;
	size_t n;
	int ret;

	*list_r = NULL;
	*n_r = 0;
	rd_begin(r);
	ret = sq_read_list(r, sq_get(&r->c, sql), sizeof(*names), rd_named_fill,
			   &names, &n, "group_list");
	if (ret == 0) {
		*list_r = xcalloc(n, sizeof(**list_r));
		*n_r = n;
		for (size_t i = 0; i < n && ret == 0; i++) {
			(*list_r)[i].id = names[i].id;
			memcpy((*list_r)[i].address, names[i].address, sizeof(names[i].address));
			ret = rd_group_members(r, &(*list_r)[i]);
		}
		free(names);
	}
	rd_end(r);
	if (ret < 0) {
		store_group_list_free(*list_r, *n_r);
		*list_r = NULL;
		*n_r = 0;
	}
	return ret;
}

void store_group_list_free(struct store_group *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		store_group_free(&list[i]);
	free(list);
}

/* ---- settings ----------------------------------------------------------- */

static void rd_setting_fill(sqlite3_stmt *st, void *item)
{
	struct store_setting *s = item;

	sq_text(st, 0, s->key, sizeof(s->key));
	sq_text(st, 1, s->value, sizeof(s->value));
}

int store_setting_get(struct store_reader *r, const char *key, struct store_setting *s_r)
{
	sqlite3_stmt *st = sq_get(&r->c, "SELECT key, value FROM settings WHERE key = ?");

	if (st != NULL)
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	return sq_read_one(r, st, rd_setting_fill, s_r, "setting_get");
}

int store_setting_list(struct store_reader *r, struct store_setting **list_r, size_t *n_r)
{
	sqlite3_stmt *st = sq_get(&r->c, "SELECT key, value FROM settings ORDER BY key");

	return sq_read_list(r, st, sizeof(**list_r), rd_setting_fill, list_r, n_r,
			    "setting_list");
}
