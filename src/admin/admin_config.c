/* config.list, config.get, config.set, config.unset: the live settings.
 *
 * A value is validated and made canonical before it is written; the current
 * values table (src/settings) changes only once the store has committed, so
 * what sessions read is always what the store holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access_policy.h"
#include "admin/admin_request.h"
#include "lib/xalloc.h"
#include "pipeline/pipeline.h"
#include "settings/settings.h"
#include "store/store.h"

static const char *const admin_setting_types[] = {
    [SETTING_BOOL] = "bool",         [SETTING_INT] = "int",   [SETTING_SIZE] = "size",
    [SETTING_DURATION] = "duration", [SETTING_ENUM] = "enum", [SETTING_STRING] = "string",
};

static json_t *admin_setting_json(const struct setting_def *def)
{
	char value[STORE_VALUE_MAX + 1], def_canon[STORE_VALUE_MAX + 1];
	const char *error;
	json_t *o;

	settings_get(def->key, value, sizeof(value));
	if (settings_validate(def, def->def, def_canon, sizeof(def_canon), &error) < 0)
		snprintf(def_canon, sizeof(def_canon), "%s", def->def);
	o = json_pack("{s:s, s:s, s:s, s:b, s:s, s:s}", "key", def->key, "value", value, "default",
	              def_canon, "set", settings_is_set(def->key), "type",
	              admin_setting_types[def->type], "doc", def->doc);
	if (def->type == SETTING_INT || def->type == SETTING_SIZE ||
	    def->type == SETTING_DURATION) {
		json_object_set_new(o, "min", json_integer(def->min));
		json_object_set_new(o, "max", json_integer(def->max));
	}
	if (def->type == SETTING_ENUM) {
		json_t *choices = json_array();
		for (const char *const *c = def->choices; *c != NULL; c++)
			json_array_append_new(choices, json_string(*c));
		json_object_set_new(o, "choices", choices);
	}
	return o;
}

static const struct setting_def *admin_config_key(struct admin_request *req)
{
	const struct setting_def *def;
	const char *key;

	if (admin_arg_string(req, "key", true, &key) < 0)
		return NULL;
	def = settings_find(key);
	if (def == NULL)
		admin_request_fail(req, "not_found", "unknown setting %s", key);
	return def;
}

void admin_config_list(struct admin_request *req)
{
	size_t n;
	const struct setting_def *all = settings_all(&n);
	json_t *result = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_setting_json(&all[i]));
	admin_request_ok(req, result);
}

/* args: key. */
void admin_config_get(struct admin_request *req)
{
	const struct setting_def *def = admin_config_key(req);

	if (def != NULL)
		admin_request_ok(req, admin_setting_json(def));
}

struct admin_config_write {
	struct admin_request *req;
	const struct setting_def *def;
	char *value; /* canonical; NULL: unset */
};

static void admin_config_written(const struct store_reply *reply, void *ctx)
{
	struct admin_config_write *w = ctx;
	struct admin_request *req = w->req;

	/* Unsetting what was never set is no error: the default applies. */
	if (reply->status < 0 && !(w->value == NULL && reply->err == STORE_ERR_NOT_FOUND)) {
		admin_request_fail_store(req, reply);
	} else {
		settings_update(w->def->key, w->value);
		/* A route, a relay host or a connection limit: the queue
		 * looks again now, not at its next poll. */
		if (strncmp(w->def->key, "delivery.", 9) == 0)
			pipeline_queue_changed(req->host->pipeline);
		if (strcmp(w->def->key, "relay.open") == 0 && settings_get_bool("relay.open"))
			access_warn_open_relay();
		admin_request_log(req);
		admin_request_ok(req, admin_setting_json(w->def));
	}
	free(w->value);
	free(w);
}

/* args: key, value (a string; numbers and booleans are taken as written). */
void admin_config_set(struct admin_request *req)
{
	const struct setting_def *def = admin_config_key(req);
	char canon[STORE_VALUE_MAX + 1], num[32];
	const char *value, *error;
	json_t *v;
	struct admin_config_write *w;

	if (def == NULL)
		return;
	v = json_object_get(req->args, "value");
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		value = num;
	} else if (json_is_boolean(v)) {
		value = json_is_true(v) ? "yes" : "no";
	} else if (admin_arg_string(req, "value", true, &value) < 0) {
		return;
	}
	if (settings_validate(def, value, canon, sizeof(canon), &error) < 0) {
		admin_request_fail(req, "invalid", "invalid value '%s' for %s: %s", value, def->key,
		                   error);
		return;
	}
	if (access_setting_names_group(def->key) && canon[0] != '\0' &&
	    !access_group_exists(canon)) {
		admin_request_fail(req, "not_found", "%s names no IP group %s (keelctl ipgroup add)",
		                   def->key, canon);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->req = req;
	w->def = def;
	w->value = xstrdup(canon);
	/* Never a password in the log (STYLE.md): relay credentials are
	 * settings too. */
	admin_request_audit(req, "key=%s value=%s", def->key,
	                    strstr(def->key, "password") != NULL ? "********" : canon);
	store_setting_set(req->host->store, def->key, canon, req->host->loop, admin_config_written,
	                  w);
}

/* args: key. */
void admin_config_unset(struct admin_request *req)
{
	const struct setting_def *def = admin_config_key(req);
	struct admin_config_write *w;

	if (def == NULL)
		return;
	w = xcalloc(1, sizeof(*w));
	w->req = req;
	w->def = def;
	admin_request_audit(req, "key=%s", def->key);
	store_setting_unset(req->host->store, def->key, req->host->loop, admin_config_written, w);
}
