/* group.add, group.del, group.list, group.member.add, group.member.del */
#include <stdlib.h>
#include <string.h>

#include "admin/admin_request.h"
#include "mail/address.h"
#include "store/store.h"

static json_t *admin_group_json(const struct store_group *g)
{
	json_t *members = json_array();

	for (size_t i = 0; i < g->n_members; i++)
		json_array_append_new(members, json_string(g->member_addresses[i]));
	return json_pack("{s:I, s:s, s:o}", "id", (json_int_t)g->id, "address", g->address,
	                 "members", members);
}

/* Reads the argument naming an existing group, canonical into buf. */
static int admin_group_lookup(struct admin_request *req, const char *arg, char *buf, size_t size)
{
	const char *address;
	struct store_group g;

	if (admin_arg_string(req, arg, true, &address) < 0 ||
	    admin_check_local_address(req, address, buf, size) < 0)
		return -1;
	if (store_group_get(req->host->reader, buf, &g) < 0) {
		admin_request_fail(req, "not_found", "group %s does not exist", buf);
		return -1;
	}
	store_group_free(&g);
	return 0;
}

/* args: address. */
void admin_group_add(struct admin_request *req)
{
	const char *address;
	char canon[ADDRESS_MAX + 1];

	if (admin_arg_string(req, "address", true, &address) < 0 ||
	    admin_check_local_address(req, address, canon, sizeof(canon)) < 0 ||
	    admin_check_domain_exists(req, canon) < 0 || admin_check_address_free(req, canon) < 0)
		return;
	req->result = json_pack("{s:s}", "address", canon);
	admin_request_audit(req, "address=%s", canon);
	req->want_id = true;
	store_group_add(req->host->store, canon, req->host->loop, admin_request_store_done, req);
}

/* args: address. */
void admin_group_del(struct admin_request *req)
{
	char canon[ADDRESS_MAX + 1];

	if (admin_group_lookup(req, "address", canon, sizeof(canon)) < 0)
		return;
	req->result = json_pack("{s:s}", "address", canon);
	admin_request_audit(req, "address=%s", canon);
	store_group_del(req->host->store, canon, req->host->loop, admin_request_store_done, req);
}

void admin_group_list(struct admin_request *req)
{
	struct store_group *list;
	size_t n;
	json_t *result;

	if (store_group_list(req->host->reader, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the group list");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_group_json(&list[i]));
	store_group_list_free(list, n);
	admin_request_ok(req, result);
}

/* The group and the member, both existing; *is_member_r tells whether the
 * user is already in the group. */
static int admin_group_member_args(struct admin_request *req, char *group, char *member,
                                   bool *is_member_r)
{
	const char *address;
	struct store_user u;
	struct store_group g;

	if (admin_group_lookup(req, "group", group, ADDRESS_MAX + 1) < 0 ||
	    admin_arg_string(req, "member", true, &address) < 0 ||
	    admin_check_local_address(req, address, member, ADDRESS_MAX + 1) < 0)
		return -1;
	if (store_user_get(req->host->reader, member, &u) < 0) {
		admin_request_fail(req, "not_found", "user %s does not exist", member);
		return -1;
	}
	*is_member_r = false;
	if (store_group_get(req->host->reader, group, &g) == 0) {
		for (size_t i = 0; i < g.n_members; i++)
			if (g.member_ids[i] == u.id)
				*is_member_r = true;
		store_group_free(&g);
	}
	return 0;
}

/* args: group, member (a local user). */
void admin_group_member_add(struct admin_request *req)
{
	char group[ADDRESS_MAX + 1], member[ADDRESS_MAX + 1];
	bool is_member;

	if (admin_group_member_args(req, group, member, &is_member) < 0)
		return;
	if (is_member) {
		admin_request_fail(req, "exists", "%s is already a member of %s", member, group);
		return;
	}
	req->result = json_pack("{s:s, s:s}", "group", group, "member", member);
	admin_request_audit(req, "group=%s member=%s", group, member);
	store_group_member_add(req->host->store, group, member, req->host->loop,
	                       admin_request_store_done, req);
}

/* args: group, member. */
void admin_group_member_del(struct admin_request *req)
{
	char group[ADDRESS_MAX + 1], member[ADDRESS_MAX + 1];
	bool is_member;

	if (admin_group_member_args(req, group, member, &is_member) < 0)
		return;
	if (!is_member) {
		admin_request_fail(req, "not_found", "%s is not a member of %s", member, group);
		return;
	}
	req->result = json_pack("{s:s, s:s}", "group", group, "member", member);
	admin_request_audit(req, "group=%s member=%s", group, member);
	store_group_member_del(req->host->store, group, member, req->host->loop,
	                       admin_request_store_done, req);
}
