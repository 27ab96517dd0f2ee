#include "directory/directory.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mail/address.h"

/* An alias or group met during one expansion.  done is false while its own
 * targets are being expanded: meeting it then means a loop. */
struct directory_node {
	enum store_addr_kind kind;
	int64_t id;
	bool done;
};

struct directory_resolver {
	struct store_reader *r;
	struct directory_result *res;
	struct directory_node *nodes;
	size_t n_nodes, nodes_alloc;
	size_t users_alloc, remote_alloc;
	unsigned steps;
	bool failed; /* the first rejection wins; everything after it unwinds */
};

static void directory_expand_node(struct directory_resolver *dr, enum store_addr_kind kind,
                                  int64_t id, const char *key, unsigned depth);

const char *directory_reject_str(enum directory_reject reason)
{
	switch (reason) {
	case DIRECTORY_REJECT_NONE:
		return "accepted";
	case DIRECTORY_REJECT_INVALID:
		return "invalid address";
	case DIRECTORY_REJECT_UNKNOWN_USER:
		return "unknown user";
	case DIRECTORY_REJECT_DISABLED:
		return "disabled";
	case DIRECTORY_REJECT_LOOP:
		return "alias loop";
	case DIRECTORY_REJECT_TOO_MANY:
		return "too many recipients";
	case DIRECTORY_REJECT_EMPTY:
		return "no recipients";
	case DIRECTORY_REJECT_TEMPORARY:
		return "temporary directory failure";
	}
	return "unknown reason";
}

static void directory_fail(struct directory_resolver *dr, enum directory_reject reason,
                           const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void directory_fail(struct directory_resolver *dr, enum directory_reject reason,
                           const char *fmt, ...)
{
	va_list ap;

	if (dr->failed)
		return;
	dr->failed = true;
	dr->res->status = DIRECTORY_REJECT;
	dr->res->reason = reason;
	va_start(ap, fmt);
	vsnprintf(dr->res->error, sizeof(dr->res->error), fmt, ap);
	va_end(ap);
}

/* Counts one target or member looked at, so that a huge or pathological
 * directory costs a bounded number of lookups. */
static bool directory_step(struct directory_resolver *dr, const char *key)
{
	if (++dr->steps <= DIRECTORY_STEPS_MAX)
		return true;
	directory_fail(dr, DIRECTORY_REJECT_TOO_MANY,
	               "expansion of %s looks at more than %d targets", key, DIRECTORY_STEPS_MAX);
	return false;
}

static bool directory_room(struct directory_resolver *dr)
{
	if (dr->res->n_users + dr->res->n_remote < DIRECTORY_RECIPIENTS_MAX)
		return true;
	directory_fail(dr, DIRECTORY_REJECT_TOO_MANY, "%s expands to more than %d recipients",
	               dr->res->address, DIRECTORY_RECIPIENTS_MAX);
	return false;
}

static void directory_add_user(struct directory_resolver *dr, const struct store_user *u)
{
	struct directory_result *res = dr->res;

	for (size_t i = 0; i < res->n_users; i++)
		if (res->users[i].id == u->id)
			return;
	if (!directory_room(dr))
		return;
	if (res->n_users == dr->users_alloc) {
		dr->users_alloc = dr->users_alloc == 0 ? 4 : dr->users_alloc * 2;
		res->users = xrealloc(res->users, dr->users_alloc * sizeof(*res->users));
	}
	res->users[res->n_users].id = u->id;
	snprintf(res->users[res->n_users].address, sizeof(res->users[0].address), "%s", u->address);
	res->n_users++;
}

/* address is canonical (domain lower-cased), so equal strings are equal
 * addresses. */
static void directory_add_remote(struct directory_resolver *dr, const char *address)
{
	struct directory_result *res = dr->res;

	for (size_t i = 0; i < res->n_remote; i++)
		if (strcmp(res->remote[i], address) == 0)
			return;
	if (!directory_room(dr))
		return;
	if (res->n_remote == dr->remote_alloc) {
		dr->remote_alloc = dr->remote_alloc == 0 ? 4 : dr->remote_alloc * 2;
		res->remote = xrealloc(res->remote, dr->remote_alloc * sizeof(*res->remote));
	}
	snprintf(res->remote[res->n_remote], sizeof(res->remote[0]), "%s", address);
	res->n_remote++;
}

/* A user met inside an expansion: disabled or vanished ones are skipped. */
static void directory_add_user_indirect(struct directory_resolver *dr, int64_t id)
{
	struct store_user u;

	if (store_user_get_by_id(dr->r, id, &u) < 0 || !u.enabled) {
		dr->res->n_skipped++;
		return;
	}
	directory_add_user(dr, &u);
}

/* Whether a's domain is ours; if so, replaces it by its primary domain. */
static bool directory_map_domain(struct store_reader *r, struct address *a)
{
	struct store_domain d;

	if (a->literal || store_domain_get(r, a->domain, &d) < 0)
		return false;
	if (d.alias_of != 0 && d.alias_of_name[0] != '\0')
		snprintf(a->domain, sizeof(a->domain), "%s", d.alias_of_name);
	else
		snprintf(a->domain, sizeof(a->domain), "%s", d.name);
	return true;
}

/* What a (in a primary domain) names: itself, or failing that its address
 * without the subaddress.  key_r (STORE_ADDR_MAX + 1) gets the address that
 * matched. */
static enum store_addr_kind directory_lookup(struct store_reader *r, const struct address *a,
                                             char *key_r, int64_t *id_r)
{
	struct address base = *a;
	enum store_addr_kind kind;

	/* The store holds Dot-string local parts only (admin validation): a
	 * quoted one such as "u@remote"@d can match nothing, and must not be
	 * handed to lookups that split at an '@'. */
	if (a->quoted)
		return STORE_ADDR_NONE;
	snprintf(key_r, STORE_ADDR_MAX + 1, "%s@%s", a->localpart, a->domain);
	kind = store_address_kind(r, key_r, id_r);
	if (kind != STORE_ADDR_NONE ||
	    !address_subaddress_strip(base.localpart, DIRECTORY_SUBADDRESS_DELIMITER))
		return kind;
	snprintf(key_r, STORE_ADDR_MAX + 1, "%s@%s", base.localpart, base.domain);
	return store_address_kind(r, key_r, id_r);
}

/* An alias target given as an address: remote, or anything local. */
static void directory_expand_address(struct directory_resolver *dr, const char *target,
                                     unsigned depth)
{
	struct address a;
	const char *error;
	char key[STORE_ADDR_MAX + 1];
	enum store_addr_kind kind;
	int64_t id;

	if (address_parse(target, true, &a, &error) < 0) {
		dr->res->n_skipped++;
		return;
	}
	if (!directory_map_domain(dr->r, &a)) {
		if (address_format(&a, key, sizeof(key)) == 0)
			directory_add_remote(dr, key);
		else
			dr->res->n_skipped++;
		return;
	}
	kind = directory_lookup(dr->r, &a, key, &id);
	if (kind == STORE_ADDR_USER)
		directory_add_user_indirect(dr, id);
	else if (kind == STORE_ADDR_ALIAS || kind == STORE_ADDR_GROUP)
		directory_expand_node(dr, kind, id, key, depth + 1);
	else
		dr->res->n_skipped++; /* dangling target */
}

static void directory_expand_alias(struct directory_resolver *dr, const char *key, unsigned depth)
{
	struct store_alias alias;

	if (store_alias_get(dr->r, key, &alias) < 0) {
		directory_fail(dr, DIRECTORY_REJECT_TEMPORARY, "alias %s vanished during lookup",
		               key);
		return;
	}
	for (size_t i = 0; i < alias.n_targets && !dr->failed; i++) {
		const struct store_alias_target *t = &alias.targets[i];

		if (!directory_step(dr, key))
			break;
		if (t->user_id != 0)
			directory_add_user_indirect(dr, t->user_id);
		else
			directory_expand_address(dr, t->address, depth);
	}
	store_alias_free(&alias);
}

static void directory_expand_group(struct directory_resolver *dr, const char *key)
{
	struct store_group group;

	if (store_group_get(dr->r, key, &group) < 0) {
		directory_fail(dr, DIRECTORY_REJECT_TEMPORARY, "group %s vanished during lookup",
		               key);
		return;
	}
	for (size_t i = 0; i < group.n_members && !dr->failed; i++) {
		if (!directory_step(dr, key))
			break;
		directory_add_user_indirect(dr, group.member_ids[i]);
	}
	store_group_free(&group);
}

/* Returns the node's index, adding it when new; *found_r says whether it
 * was there before. */
static size_t directory_node_get(struct directory_resolver *dr, enum store_addr_kind kind,
                                 int64_t id, bool *found_r)
{
	for (size_t i = 0; i < dr->n_nodes; i++) {
		if (dr->nodes[i].kind == kind && dr->nodes[i].id == id) {
			*found_r = true;
			return i;
		}
	}
	if (dr->n_nodes == dr->nodes_alloc) {
		dr->nodes_alloc = dr->nodes_alloc == 0 ? 8 : dr->nodes_alloc * 2;
		dr->nodes = xrealloc(dr->nodes, dr->nodes_alloc * sizeof(*dr->nodes));
	}
	dr->nodes[dr->n_nodes] = (struct directory_node){.kind = kind, .id = id, .done = false};
	*found_r = false;
	return dr->n_nodes++;
}

static void directory_expand_node(struct directory_resolver *dr, enum store_addr_kind kind,
                                  int64_t id, const char *key, unsigned depth)
{
	size_t i;
	bool found;

	if (dr->failed)
		return;
	if (depth > DIRECTORY_DEPTH_MAX) {
		directory_fail(dr, DIRECTORY_REJECT_LOOP,
		               "alias nesting deeper than %d levels at %s", DIRECTORY_DEPTH_MAX,
		               key);
		return;
	}
	i = directory_node_get(dr, kind, id, &found);
	if (found) {
		/* Still open: we came back to it through its own targets. */
		if (!dr->nodes[i].done)
			directory_fail(dr, DIRECTORY_REJECT_LOOP, "alias loop at %s", key);
		return;
	}
	if (kind == STORE_ADDR_ALIAS)
		directory_expand_alias(dr, key, depth);
	else
		directory_expand_group(dr, key);
	dr->nodes[i].done = true; /* by index: the array may have moved */
}

/* The address itself in a local domain. */
static void directory_resolve_local(struct directory_resolver *dr, const struct address *a)
{
	char key[STORE_ADDR_MAX + 1];
	struct store_user u;
	int64_t id;
	enum store_addr_kind kind = directory_lookup(dr->r, a, key, &id);

	switch (kind) {
	case STORE_ADDR_NONE:
		directory_fail(dr, DIRECTORY_REJECT_UNKNOWN_USER, "no such user %s",
		               dr->res->address);
		return;
	case STORE_ADDR_USER:
		if (store_user_get_by_id(dr->r, id, &u) < 0)
			directory_fail(dr, DIRECTORY_REJECT_TEMPORARY,
			               "user %s vanished during lookup", key);
		else if (!u.enabled)
			directory_fail(dr, DIRECTORY_REJECT_DISABLED, "user %s is disabled",
			               u.address);
		else
			directory_add_user(dr, &u);
		return;
	case STORE_ADDR_ALIAS:
	case STORE_ADDR_GROUP:
		directory_expand_node(dr, kind, id, key, 1);
		if (!dr->failed && dr->res->n_users + dr->res->n_remote == 0)
			directory_fail(dr, DIRECTORY_REJECT_EMPTY, "%s expands to no recipients",
			               key);
		return;
	}
}

static void directory_result_clear_lists(struct directory_result *res)
{
	free(res->users);
	free(res->remote);
	res->users = NULL;
	res->remote = NULL;
	res->n_users = 0;
	res->n_remote = 0;
}

int directory_resolve(struct store_reader *r, const char *address, struct directory_result *res_r)
{
	struct directory_resolver dr = {.r = r, .res = res_r};
	struct address a;
	const char *error;

	memset(res_r, 0, sizeof(*res_r));
	if (address_parse(address, true, &a, &error) < 0) {
		directory_fail(&dr, DIRECTORY_REJECT_INVALID, "invalid address: %s", error);
		return -1;
	}
	if (!directory_map_domain(r, &a)) {
		address_format(&a, res_r->address, sizeof(res_r->address));
		res_r->status = DIRECTORY_REMOTE;
		directory_add_remote(&dr, res_r->address);
		return 0;
	}
	address_format(&a, res_r->address, sizeof(res_r->address));
	res_r->status = DIRECTORY_LOCAL;
	directory_resolve_local(&dr, &a);
	free(dr.nodes);
	if (dr.failed) {
		directory_result_clear_lists(res_r);
		return -1;
	}
	return 0;
}

void directory_result_free(struct directory_result *res)
{
	directory_result_clear_lists(res);
	res->n_skipped = 0;
}

bool directory_is_local_domain(struct store_reader *r, const char *domain)
{
	struct store_domain d;
	char lower[STORE_DOMAIN_MAX + 1];

	if (strlen(domain) > STORE_DOMAIN_MAX)
		return false;
	memcpy(lower, domain, strlen(domain) + 1);
	address_fold_case(lower);
	return store_domain_get(r, lower, &d) == 0;
}
