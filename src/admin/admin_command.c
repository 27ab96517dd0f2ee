/* The command table and admin_handle(): from a request object to a handler. */
#include "admin/admin.h"

#include <stdio.h>
#include <string.h>

#include "admin/admin_request.h"
#include "admin/admin_abuse.h"
#include "admin/admin_access.h"
#include "admin/admin_auth.h"
#include "admin/admin_intercept.h"
#include "lib/xalloc.h"

struct admin_command {
	const char *name;
	admin_handler *handler;
};

/* Listed in docs/admin-api.md; keep the two in step. */
static const struct admin_command admin_commands[] = {
    {"status", admin_status},
    {"reload", admin_reload},
    {"domain.add", admin_domain_add},
    {"domain.del", admin_domain_del},
    {"domain.list", admin_domain_list},
    {"domain.set", admin_domain_set},
    {"domain.check", admin_domain_check_outbound},
    {"user.add", admin_user_add},
    {"user.list", admin_user_list},
    {"user.show", admin_user_show},
    {"user.passwd", admin_user_passwd},
    {"user.rename", admin_user_rename},
    {"user.enable", admin_user_enable},
    {"user.disable", admin_user_disable},
    {"user.set", admin_user_set},
    {"user.del", admin_user_del},
    {"user.unsuspend", admin_abuse_unsuspend},
    {"alias.add", admin_alias_add},
    {"alias.del", admin_alias_del},
    {"alias.list", admin_alias_list},
    {"group.add", admin_group_add},
    {"group.del", admin_group_del},
    {"group.list", admin_group_list},
    {"group.member.add", admin_group_member_add},
    {"group.member.del", admin_group_member_del},
    {"config.list", admin_config_list},
    {"config.get", admin_config_get},
    {"config.set", admin_config_set},
    {"config.unset", admin_config_unset},
    {"queue.list", admin_queue_list},
    {"queue.show", admin_queue_show},
    {"queue.hold", admin_queue_hold},
    {"queue.release", admin_queue_release},
    {"queue.retry", admin_queue_retry},
    {"queue.delete", admin_queue_delete},
    {"queue.bounce", admin_queue_bounce},
    {"queue.stats", admin_queue_stats},
    {"jobs", admin_jobs_list},
    {"trace.query", admin_trace_query},
    {"audit.list", admin_audit_list},
    {"audit.verify", admin_audit_verify},
    {"ipgroup.add", admin_ipgroup_add},
    {"ipgroup.del", admin_ipgroup_del},
    {"ipgroup.list", admin_ipgroup_list},
    {"ipgroup.entry.add", admin_ipgroup_entry_add},
    {"ipgroup.entry.del", admin_ipgroup_entry_del},
    {"ipgroup.test", admin_ipgroup_test},
    {"service.set", admin_service_set},
    {"service.list", admin_service_list},
    {"intercept.add", admin_intercept_add},
    {"intercept.list", admin_intercept_list},
    {"intercept.del", admin_intercept_del},
    {"trace.export", admin_trace_export},
    {"check", admin_check},
    {"auth.blocks", admin_auth_blocks},
    {"auth.unblock", admin_auth_unblock},
    {"test.fail_flush", admin_testhook_fail_flush},
};

static const struct admin_command *admin_command_find(const char *name)
{
	for (size_t i = 0; i < sizeof(admin_commands) / sizeof(admin_commands[0]); i++)
		if (strcmp(admin_commands[i].name, name) == 0)
			return &admin_commands[i];
	return NULL;
}

bool admin_command_known(const char *name)
{
	return admin_command_find(name) != NULL;
}

static struct admin_request *admin_request_new(const struct admin_host *host, const char *actor,
                                               admin_reply_cb *cb, void *ctx)
{
	struct admin_request *req = xcalloc(1, sizeof(*req));

	req->host = host;
	req->cmd = "?";
	snprintf(req->actor, sizeof(req->actor), "%s", actor);
	req->cb = cb;
	req->ctx = ctx;
	return req;
}

void admin_handle(const struct admin_host *host, const char *actor, json_t *request,
                  admin_reply_cb *cb, void *ctx)
{
	struct admin_request *req = admin_request_new(host, actor, cb, ctx);
	json_t *cmd = json_object_get(request, "cmd");
	json_t *args = json_object_get(request, "args");
	const struct admin_command *c;

	if (!json_is_object(request) || !json_is_string(cmd)) {
		admin_request_fail(req, "usage", "a request is an object with a string \"cmd\"");
		return;
	}
	c = admin_command_find(json_string_value(cmd));
	if (c == NULL) {
		admin_request_fail(req, "usage", "unknown command %s", json_string_value(cmd));
		return;
	}
	req->cmd = c->name;
	if (args != NULL && !json_is_null(args) && !json_is_object(args)) {
		admin_request_fail(req, "usage", "\"args\" must be an object");
		return;
	}
	req->args = json_is_object(args) ? json_incref(args) : json_object();
	admin_audit_begin(req);
	c->handler(req);
}
