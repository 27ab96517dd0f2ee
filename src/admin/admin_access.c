/* ipgroup.add, ipgroup.del, ipgroup.list, ipgroup.entry.add,
 * ipgroup.entry.del, ipgroup.test, service.set, service.list
 * (docs/access.md).
 *
 * A change to the groups is answered once it is durable and the worker's
 * compiled snapshot has been rebuilt and installed, so that the next
 * connection already sees it.  Services are settings: service.set writes
 * them through the store like config.set and updates the live values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/access_policy.h"
#include "access/ipgroup.h"
#include "admin/admin_access.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"
#include "store/store.h"

/* ---- IP groups ------------------------------------------------------------ */

/* After a durable change: recompile, install, answer req->result. */
static void admin_ipgroup_done(const struct store_reply *reply, void *ctx)
{
	struct admin_request *req = ctx;
	const char *error;
	json_t *result;

	if (reply->status < 0) {
		admin_request_fail_store(req, reply);
		return;
	}
	if (access_reload(req->host->reader, &error) < 0)
		log_error("admin", "%s cmd=%s event=ipgroups_failed error=\"%s\"", req->actor,
		          req->cmd, error);
	admin_request_log(req);
	result = req->result;
	req->result = NULL;
	admin_request_ok(req, result);
}

/* The "name" argument, a valid group name. */
static int admin_ipgroup_name(struct admin_request *req, const char **name_r)
{
	if (admin_arg_string(req, "name", true, name_r) < 0)
		return -1;
	if (!ipgroup_name_valid(*name_r)) {
		admin_request_fail(
		    req, "invalid",
		    "invalid IP group name '%s': 1-64 letters, digits, '.', '_' or '-'", *name_r);
		return -1;
	}
	return 0;
}

/* args: name. */
void admin_ipgroup_add(struct admin_request *req)
{
	const char *name;

	if (admin_ipgroup_name(req, &name) < 0)
		return;
	req->result = json_pack("{s:s}", "name", name);
	admin_request_audit(req, "name=%s", name);
	store_ipgroup_add(req->host->store, name, req->host->loop, admin_ipgroup_done, req);
}

/* args: name.  Refused while a setting names the group (the store refuses
 * while another group holds it). */
void admin_ipgroup_del(struct admin_request *req)
{
	char key[STORE_KEY_MAX + 1];
	const char *name;

	if (admin_ipgroup_name(req, &name) < 0)
		return;
	if (access_group_user(name, key, sizeof(key)) == 1) {
		admin_request_fail(req, "invalid", "IP group %s is used by the rule %s", name, key);
		return;
	}
	req->result = json_pack("{s:s}", "name", name);
	admin_request_audit(req, "name=%s", name);
	store_ipgroup_del(req->host->store, name, req->host->loop, admin_ipgroup_done, req);
}

static json_t *admin_ipgroup_json(const struct store_ipgroup *g,
                                  const struct store_ipgroup_entry *entries, size_t n)
{
	json_t *list = json_array();

	for (size_t i = 0; i < n; i++)
		if (strcasecmp(entries[i].group, g->name) == 0)
			json_array_append_new(
			    list, json_pack("{s:s, s:b, s:s}", "entry", entries[i].entry, "exclude",
			                    entries[i].exclude, "comment", entries[i].comment));
	return json_pack("{s:s, s:I, s:o}", "name", g->name, "created", (json_int_t)g->created,
	                 "entries", list);
}

void admin_ipgroup_list(struct admin_request *req)
{
	struct store_ipgroup *groups;
	struct store_ipgroup_entry *entries;
	size_t n_groups, n_entries;
	json_t *result;

	if (store_ipgroup_read_all(req->host->reader, &groups, &n_groups, &entries, &n_entries) <
	    0) {
		admin_request_fail(req, "io", "cannot read the IP groups");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n_groups; i++)
		json_array_append_new(result, admin_ipgroup_json(&groups[i], entries, n_entries));
	free(groups);
	free(entries);
	admin_request_ok(req, result);
}

/* The "entry" argument in its normal form. */
static int admin_ipgroup_entry(struct admin_request *req, char norm[IPGROUP_ENTRY_SIZE])
{
	const char *entry, *error;

	if (admin_arg_string(req, "entry", true, &entry) < 0)
		return -1;
	if (ipgroup_entry_parse(entry, norm, &error) < 0) {
		admin_request_fail(req, "invalid", "invalid entry '%s': %s", entry, error);
		return -1;
	}
	return 0;
}

/* args: name, entry, exclude (bool), comment. */
void admin_ipgroup_entry_add(struct admin_request *req)
{
	char norm[IPGROUP_ENTRY_SIZE];
	const char *name, *comment = "";
	bool exclude = false;

	if (admin_ipgroup_name(req, &name) < 0 || admin_ipgroup_entry(req, norm) < 0 ||
	    admin_arg_bool(req, "exclude", &exclude) < 0 ||
	    admin_arg_string(req, "comment", false, &comment) < 0)
		return;
	if (strlen(comment) > STORE_IPGROUP_COMMENT_MAX) {
		admin_request_fail(req, "invalid", "comment longer than %d bytes",
		                   STORE_IPGROUP_COMMENT_MAX);
		return;
	}
	req->result = json_pack("{s:s, s:s, s:b, s:s}", "name", name, "entry", norm, "exclude",
	                        exclude, "comment", comment);
	admin_request_audit(req, "name=%s entry=%s exclude=%s", name, norm, exclude ? "yes" : "no");
	store_ipgroup_entry_add(req->host->store, name, norm, exclude, comment, req->host->loop,
	                        admin_ipgroup_done, req);
}

/* args: name, entry. */
void admin_ipgroup_entry_del(struct admin_request *req)
{
	char norm[IPGROUP_ENTRY_SIZE];
	const char *name;

	if (admin_ipgroup_name(req, &name) < 0 || admin_ipgroup_entry(req, norm) < 0)
		return;
	req->result = json_pack("{s:s, s:s}", "name", name, "entry", norm);
	admin_request_audit(req, "name=%s entry=%s", name, norm);
	store_ipgroup_entry_del(req->host->store, name, norm, req->host->loop, admin_ipgroup_done,
	                        req);
}

/* args: name, ip.  Asks the live snapshot, as a connection would. */
void admin_ipgroup_test(struct admin_request *req)
{
	struct sockaddr_storage ss;
	struct ipgroups *set;
	const char *name, *ip, *entry;
	int ret;

	if (admin_ipgroup_name(req, &name) < 0 || admin_arg_string(req, "ip", true, &ip) < 0)
		return;
	if (ipgroup_addr_parse(ip, &ss) < 0) {
		admin_request_fail(req, "invalid", "invalid IP address '%s'", ip);
		return;
	}
	set = ipgroups_current();
	ret = ipgroups_match(set, name, (const struct sockaddr *)&ss, &entry);
	if (ret < 0) {
		ipgroups_unref(&set);
		admin_request_fail(req, "not_found", "no IP group %s", name);
		return;
	}
	admin_request_ok(req, json_pack("{s:s, s:s, s:b, s:s?}", "name", name, "ip", ip, "match",
	                                ret == 1, "entry", entry));
	ipgroups_unref(&set);
}

/* ---- services --------------------------------------------------------------- */

static json_t *admin_service_json(const char *service)
{
	char key[STORE_KEY_MAX + 1], group[STORE_VALUE_MAX + 1];

	snprintf(key, sizeof(key), "service.%s.allow_group", service);
	settings_get(key, group, sizeof(group));
	snprintf(key, sizeof(key), "service.%s.enabled", service);
	return json_pack("{s:s, s:b, s:s}", "service", service, "enabled", settings_get_bool(key),
	                 "allow_group", group);
}

void admin_service_list(struct admin_request *req)
{
	json_t *result = json_array();

	for (size_t i = 0; access_services[i] != NULL; i++)
		json_array_append_new(result, admin_service_json(access_services[i]));
	admin_request_ok(req, result);
}

/* service.set writes up to two settings, one after the other. */
struct admin_service_write {
	struct admin_request *req;
	char service[32];
	char keys[2][STORE_KEY_MAX + 1];
	char values[2][STORE_VALUE_MAX + 1];
	size_t n, done;
};

static void admin_service_next(struct admin_service_write *w);

static void admin_service_written(const struct store_reply *reply, void *ctx)
{
	struct admin_service_write *w = ctx;

	if (reply->status < 0) {
		admin_request_fail_store(w->req, reply);
		free(w);
		return;
	}
	settings_update(w->keys[w->done], w->values[w->done]);
	w->done++;
	admin_service_next(w);
}

static void admin_service_next(struct admin_service_write *w)
{
	struct admin_request *req = w->req;

	if (w->done < w->n) {
		store_setting_set(req->host->store, w->keys[w->done], w->values[w->done],
		                  req->host->loop, admin_service_written, w);
		return;
	}
	admin_request_log(req);
	admin_request_ok(req, admin_service_json(w->service));
	free(w);
}

/* The allow_group argument ("" = everyone): an existing group. */
static int admin_service_group(struct admin_request *req, const char *group)
{
	if (*group == '\0')
		return 0;
	if (!access_group_exists(group)) {
		admin_request_fail(req, "not_found", "no IP group %s", group);
		return -1;
	}
	return 0;
}

/* args: service, enabled (bool), allow_group (a group name, "" = everyone). */
void admin_service_set(struct admin_request *req)
{
	const char *service, *group = NULL;
	bool enabled = true, has_enabled = json_is_boolean(json_object_get(req->args, "enabled"));
	struct admin_service_write *w;

	if (admin_arg_string(req, "service", true, &service) < 0 ||
	    admin_arg_bool(req, "enabled", &enabled) < 0 ||
	    admin_arg_string(req, "allow_group", false, &group) < 0)
		return;
	if (!access_service_known(service)) {
		admin_request_fail(
		    req, "not_found",
		    "unknown service %s (smtp, submission, submissions, imap, imaps, "
		    "pop3, pop3s)",
		    service);
		return;
	}
	if (!has_enabled && group == NULL) {
		admin_request_fail(req, "usage", "nothing to set: give enabled or allow_group");
		return;
	}
	if (group != NULL && admin_service_group(req, group) < 0)
		return;
	w = xcalloc(1, sizeof(*w));
	w->req = req;
	snprintf(w->service, sizeof(w->service), "%s", service);
	if (has_enabled) {
		snprintf(w->keys[w->n], sizeof(w->keys[0]), "service.%s.enabled", service);
		snprintf(w->values[w->n++], sizeof(w->values[0]), "%s", enabled ? "yes" : "no");
	}
	if (group != NULL) {
		snprintf(w->keys[w->n], sizeof(w->keys[0]), "service.%s.allow_group", service);
		snprintf(w->values[w->n++], sizeof(w->values[0]), "%s", group);
	}
	if (req->audit_before == NULL)
		req->audit_before = admin_service_json(service);
	admin_request_audit(req, "service=%s enabled=%s allow_group=%s", service,
	                    has_enabled ? (enabled ? "yes" : "no") : "-",
	                    group != NULL ? (*group != '\0' ? group : "(all)") : "-");
	admin_service_next(w);
}
