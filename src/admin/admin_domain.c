/* domain.add, domain.del, domain.list */
#include <stdlib.h>
#include <string.h>

#include "admin/admin_request.h"
#include "mail/address.h"
#include "store/store.h"

/* A domain we host: a host name (no address literal), stored lower case. */
static int admin_domain_check(struct admin_request *req, const char *name, char *buf, size_t size)
{
	const char *error;

	if (address_domain_check(name, false, &error) < 0) {
		admin_request_fail(req, "invalid", "invalid domain name '%s': %s", name, error);
		return -1;
	}
	if (name[0] == '[') {
		admin_request_fail(req, "invalid",
		                   "invalid domain name '%s': an address literal cannot be hosted",
		                   name);
		return -1;
	}
	if (strlen(name) >= size || strlen(name) > STORE_DOMAIN_MAX) {
		admin_request_fail(req, "invalid", "invalid domain name '%s': too long", name);
		return -1;
	}
	strcpy(buf, name);
	address_fold_case(buf);
	return 0;
}

static json_t *admin_domain_json(const struct store_domain *d)
{
	return json_pack("{s:I, s:s, s:o, s:I}", "id", (json_int_t)d->id, "name", d->name,
	                 "alias_of", d->alias_of != 0 ? json_string(d->alias_of_name) : json_null(),
	                 "created", (json_int_t)d->created);
}

/* args: name, alias_of (optional: the new domain is an alias of that one). */
void admin_domain_add(struct admin_request *req)
{
	const char *name, *alias_of = NULL;
	char canon[STORE_DOMAIN_MAX + 1], target[STORE_DOMAIN_MAX + 1];
	struct store_domain d;

	if (admin_arg_string(req, "name", true, &name) < 0 ||
	    admin_arg_string(req, "alias_of", false, &alias_of) < 0 ||
	    admin_domain_check(req, name, canon, sizeof(canon)) < 0)
		return;
	if (store_domain_get(req->host->reader, canon, &d) == 0) {
		admin_request_fail(req, "exists", "domain %s already exists", canon);
		return;
	}
	if (alias_of != NULL) {
		if (admin_domain_check(req, alias_of, target, sizeof(target)) < 0)
			return;
		if (store_domain_get(req->host->reader, target, &d) < 0) {
			admin_request_fail(req, "not_found", "domain %s does not exist", target);
			return;
		}
		if (d.alias_of != 0) {
			admin_request_fail(req, "invalid", "domain %s is itself an alias of %s",
			                   target, d.alias_of_name);
			return;
		}
		if (strcmp(target, canon) == 0) {
			admin_request_fail(req, "invalid", "a domain cannot be an alias of itself");
			return;
		}
	}
	req->result = json_pack("{s:s, s:o}", "name", canon, "alias_of",
	                        alias_of != NULL ? json_string(target) : json_null());
	if (alias_of != NULL)
		admin_request_audit(req, "domain=%s alias_of=%s", canon, target);
	else
		admin_request_audit(req, "domain=%s", canon);
	req->want_id = true;
	store_domain_add(req->host->store, canon, alias_of != NULL ? target : NULL, req->host->loop,
	                 admin_request_store_done, req);
}

/* args: name.  Refused while the domain has users (the store also refuses
 * while it has aliases, groups or alias domains). */
void admin_domain_del(struct admin_request *req)
{
	const char *name;
	char canon[STORE_DOMAIN_MAX + 1];
	struct store_domain d;
	struct store_user *users;
	size_t n_users = 0;

	if (admin_arg_string(req, "name", true, &name) < 0 ||
	    admin_domain_check(req, name, canon, sizeof(canon)) < 0)
		return;
	if (store_domain_get(req->host->reader, canon, &d) < 0) {
		admin_request_fail(req, "not_found", "domain %s does not exist", canon);
		return;
	}
	if (store_user_list(req->host->reader, canon, &users, &n_users) == 0)
		free(users);
	if (n_users > 0) {
		admin_request_fail(req, "invalid", "domain %s still has %zu user%s", canon, n_users,
		                   n_users == 1 ? "" : "s");
		return;
	}
	req->result = json_pack("{s:s}", "name", canon);
	admin_request_audit(req, "domain=%s", canon);
	store_domain_del(req->host->store, canon, req->host->loop, admin_request_store_done, req);
}

void admin_domain_list(struct admin_request *req)
{
	struct store_domain *list;
	size_t n;
	json_t *result;

	if (store_domain_list(req->host->reader, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the domain list");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_domain_json(&list[i]));
	free(list);
	admin_request_ok(req, result);
}
