/* intercept.add, intercept.list, intercept.del (docs/trace.md,
 * "Interception").  Each change reloads the pipeline's orders once it is
 * durable, so the next message follows it. */
#include "admin/admin_intercept.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/directory.h"
#include "lib/log.h"
#include "mail/address.h"
#include "pipeline/pipeline_intercept.h"
#include "store/store.h"

static json_t *admin_intercept_json(const struct store_intercept *i)
{
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:I}", "id", (json_int_t)i->id,
			 "account", i->address, "to", i->to_address, "dir", i->dir, "case",
			 i->case_id, "created", (json_int_t)i->created, "events_sent",
			 (json_int_t)i->events_sent);
}

/* 0 with the order, -1 when there is none (or the store fails). */
static int admin_intercept_get(struct admin_request *req, int64_t id, struct store_intercept *i_r)
{
	struct store_intercept *list;
	size_t n;
	int ret = -1;

	if (store_intercept_list(req->host->reader, &list, &n) < 0)
		return -1;
	for (size_t k = 0; k < n && ret < 0; k++) {
		if (list[k].id == id) {
			*i_r = list[k];
			ret = 0;
		}
	}
	free(list);
	return ret;
}

json_t *admin_intercept_snapshot(struct admin_request *req, bool after)
{
	json_t *v = after ? json_object_get(req->result, "id") : json_object_get(req->args, "id");
	struct store_intercept i;

	if (strcmp(req->cmd, "intercept.list") == 0 || !json_is_integer(v) ||
	    admin_intercept_get(req, json_integer_value(v), &i) < 0)
		return NULL;
	return admin_intercept_json(&i);
}

/* A case id goes into a header field and a file: printable ASCII, no ';'. */
static int admin_intercept_check_case(struct admin_request *req, const char *case_id)
{
	if (strlen(case_id) >= sizeof(((struct store_intercept *)0)->case_id)) {
		admin_request_fail(req, "invalid", "case id is too long (at most 127 characters)");
		return -1;
	}
	for (const char *c = case_id; *c != '\0'; c++) {
		if (!isprint((unsigned char)*c) || *c == ';') {
			admin_request_fail(req, "invalid", "case id may hold printable ASCII"
					   " characters other than ';' only");
			return -1;
		}
	}
	return 0;
}

/* A --to address must take mail now: a local one that resolves (not
 * unknown, not disabled), or a remote one; else every copy would be lost.
 * Nor may it reach the intercepted account itself, who would see it. */
static int admin_intercept_check_to(struct admin_request *req, const struct store_intercept *i)
{
	struct directory_result res;
	int ret = directory_resolve(req->host->reader, i->to_address, &res);

	if (ret < 0)
		admin_request_fail(req, "invalid", "address %s cannot receive mail: %s",
				   i->to_address, directory_reject_str(res.reason));
	for (size_t k = 0; ret == 0 && k < res.n_users; k++) {
		if (res.users[k].id == i->user_id) {
			admin_request_fail(req, "invalid", "address %s reaches %s itself, who would"
					   " see the copies", i->to_address, i->address);
			ret = -1;
		}
	}
	directory_result_free(&res);
	return ret < 0 ? -1 : 0;
}

/* Exactly one destination: a valid address, or an absolute directory the
 * worker can write (created 0700 if missing). */
static int admin_intercept_destination(struct admin_request *req, struct store_intercept *i)
{
	const char *to = NULL, *dir = NULL, *error;
	struct address a;
	char err[1200];
	size_t len;

	if (admin_arg_string(req, "to", false, &to) < 0 ||
	    admin_arg_string(req, "dir", false, &dir) < 0)
		return -1;
	if ((to == NULL || to[0] == '\0') == (dir == NULL || dir[0] == '\0')) {
		admin_request_fail(req, "usage", "give exactly one of to (an address) and dir"
				   " (a directory)");
		return -1;
	}
	if (to != NULL && to[0] != '\0') {
		if (address_parse(to, true, &a, &error) < 0) {
			admin_request_fail(req, "invalid", "invalid address '%s': %s", to, error);
			return -1;
		}
		address_format(&a, i->to_address, sizeof(i->to_address));
		return admin_intercept_check_to(req, i);
	}
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (len >= sizeof(i->dir)) {
		admin_request_fail(req, "invalid", "directory name is too long");
		return -1;
	}
	memcpy(i->dir, dir, len);
	i->dir[len] = '\0';
	if (pipeline_intercept_dir_prepare(i->dir, err, sizeof(err)) < 0) {
		admin_request_fail(req, "invalid", "%s", err);
		return -1;
	}
	return 0;
}

static void admin_intercept_reload(struct admin_request *req)
{
	if (req->host->pipeline != NULL &&
	    pipeline_intercept_reload(req->host->pipeline, req->host->reader) < 0)
		log_error("admin", "%s cmd=%s event=intercept_reload_failed", req->actor, req->cmd);
}

static void admin_intercept_done(const struct store_reply *reply, void *ctx)
{
	struct admin_request *req = ctx;

	if (reply->status == 0)
		admin_intercept_reload(req);
	admin_request_store_done(reply, req);
}

/* args: account, to or dir, case (optional). */
void admin_intercept_add(struct admin_request *req)
{
	struct store_intercept i = { 0 };
	const char *account, *case_id = "";
	char canon[ADDRESS_MAX + 1];
	struct store_user u;

	if (admin_arg_string(req, "account", true, &account) < 0 ||
	    admin_arg_string(req, "case", false, &case_id) < 0 ||
	    admin_check_local_address(req, account, canon, sizeof(canon)) < 0)
		return;
	if (store_user_get(req->host->reader, canon, &u) < 0) {
		admin_request_fail(req, "not_found", "account %s does not exist", canon);
		return;
	}
	i.user_id = u.id;
	snprintf(i.address, sizeof(i.address), "%s", u.address);
	if (admin_intercept_check_case(req, case_id) < 0 || admin_intercept_destination(req, &i) < 0)
		return;
	snprintf(i.case_id, sizeof(i.case_id), "%s", case_id);
	req->result = json_pack("{s:s, s:s, s:s, s:s}", "account", i.address, "to", i.to_address,
				"dir", i.dir, "case", i.case_id);
	req->want_id = true;
	admin_request_audit(req, "account=%s case=%s", i.address, i.case_id);
	store_intercept_add(req->host->store, &i, req->host->loop, admin_intercept_done, req);
}

void admin_intercept_list(struct admin_request *req)
{
	struct store_intercept *list;
	size_t n;
	json_t *result;

	if (store_intercept_list(req->host->reader, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the interception orders");
		return;
	}
	result = json_array();
	for (size_t k = 0; k < n; k++)
		json_array_append_new(result, admin_intercept_json(&list[k]));
	free(list);
	admin_request_ok(req, result);
}

/* args: id. */
void admin_intercept_del(struct admin_request *req)
{
	json_t *id = json_object_get(req->args, "id");
	struct store_intercept i;

	if (!json_is_integer(id) || json_integer_value(id) <= 0) {
		admin_request_fail(req, "usage", "argument id must be an order's number");
		return;
	}
	if (admin_intercept_get(req, json_integer_value(id), &i) < 0) {
		admin_request_fail(req, "not_found", "interception %lld does not exist",
				   (long long)json_integer_value(id));
		return;
	}
	req->result = admin_intercept_json(&i);
	admin_request_audit(req, "id=%lld account=%s", (long long)i.id, i.address);
	store_intercept_del(req->host->store, i.id, req->host->loop, admin_intercept_done, req);
}
