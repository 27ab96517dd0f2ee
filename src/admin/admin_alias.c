/* alias.add, alias.del, alias.list */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_request.h"
#include "lib/xalloc.h"
#include "mail/address.h"
#include "store/store.h"

static json_t *admin_alias_json(const struct store_alias *a)
{
	json_t *targets = json_array();

	for (size_t i = 0; i < a->n_targets; i++)
		json_array_append_new(targets, json_string(a->targets[i].address));
	return json_pack("{s:I, s:s, s:o}", "id", (json_int_t)a->id, "address", a->address,
	                 "targets", targets);
}

/* Targets may be remote: any valid address, in canonical form.  Fills
 * canon (an array of strings) or answers the error. */
static int admin_alias_targets(struct admin_request *req, const char *address, json_t *in,
                               json_t *canon)
{
	char buf[ADDRESS_MAX + 1];
	struct address a;
	const char *error;
	json_t *item;
	size_t i;

	for (i = 0; i < json_array_size(in) && (item = json_array_get(in, i)) != NULL; i++) {
		const char *t = json_string_value(item);

		if (address_parse(t, true, &a, &error) < 0) {
			admin_request_fail(req, "invalid", "invalid target '%s': %s", t, error);
			return -1;
		}
		address_format(&a, buf, sizeof(buf));
		if (strcasecmp(buf, address) == 0) {
			admin_request_fail(req, "invalid", "alias %s cannot point to itself",
			                   address);
			return -1;
		}
		json_array_append_new(canon, json_string(buf));
	}
	return 0;
}

/* args: address, targets (a list of addresses). */
void admin_alias_add(struct admin_request *req)
{
	const char *address;
	char canon[ADDRESS_MAX + 1];
	json_t *in, *targets, *item;
	const char **list;
	size_t i, n;

	if (admin_arg_string(req, "address", true, &address) < 0 ||
	    admin_arg_strings(req, "targets", &in) < 0 ||
	    admin_check_local_address(req, address, canon, sizeof(canon)) < 0 ||
	    admin_check_domain_exists(req, canon) < 0 || admin_check_address_free(req, canon) < 0)
		return;
	targets = json_array();
	if (admin_alias_targets(req, canon, in, targets) < 0) {
		json_decref(targets);
		return;
	}
	n = json_array_size(targets);
	list = xcalloc(n, sizeof(*list));
	for (i = 0; i < json_array_size(targets) && (item = json_array_get(targets, i)) != NULL;
	     i++)
		list[i] = json_string_value(item);
	req->result = json_pack("{s:s, s:o}", "address", canon, "targets", targets);
	admin_request_audit(req, "address=%s targets=%zu", canon, n);
	/* The store copies its arguments before returning. */
	req->want_id = true;
	store_alias_add(req->host->store, canon, list, n, req->host->loop, admin_request_store_done,
	                req);
	free(list);
}

/* args: address. */
void admin_alias_del(struct admin_request *req)
{
	const char *address;
	char canon[ADDRESS_MAX + 1];
	struct store_alias a;

	if (admin_arg_string(req, "address", true, &address) < 0 ||
	    admin_check_local_address(req, address, canon, sizeof(canon)) < 0)
		return;
	if (store_alias_get(req->host->reader, canon, &a) < 0) {
		admin_request_fail(req, "not_found", "alias %s does not exist", canon);
		return;
	}
	req->result = json_pack("{s:s}", "address", a.address);
	admin_request_audit(req, "address=%s", a.address);
	store_alias_free(&a);
	store_alias_del(req->host->store, canon, req->host->loop, admin_request_store_done, req);
}

void admin_alias_list(struct admin_request *req)
{
	struct store_alias *list;
	size_t n;
	json_t *result;

	if (store_alias_list(req->host->reader, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the alias list");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_alias_json(&list[i]));
	store_alias_list_free(list, n);
	admin_request_ok(req, result);
}
