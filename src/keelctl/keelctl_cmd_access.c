/* keelctl ipgroup add | del | list | test | entry add | entry del, keelctl
 * service set | list (docs/access.md) */
#include <stdio.h>
#include <string.h>

#include "keelctl/keelctl.h"

/* ---- IP groups ---------------------------------------------------------------- */

static int keelctl_ipgroup_one(struct keelctl *ctl, int argc, char **argv, const char *cmd,
                               const char *tmpl)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, cmd, json_pack("{s:s}", "name", pos[0]), tmpl);
}

int keelctl_cmd_ipgroup_add(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_ipgroup_one(ctl, argc, argv, "ipgroup.add", "added IP group {name}");
}

int keelctl_cmd_ipgroup_del(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_ipgroup_one(ctl, argc, argv, "ipgroup.del", "deleted IP group {name}");
}

int keelctl_cmd_ipgroup_entry_add(struct keelctl *ctl, int argc, char **argv)
{
	const char *comment = NULL;
	bool exclude = false;
	const struct keelctl_option opts[] = {
	    {"--exclude", false, NULL, &exclude},
	    {"--comment", true, &comment, NULL},
	    {NULL, false, NULL, NULL},
	};
	json_t *args;
	char *pos[2];

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	args = json_pack("{s:s, s:s, s:b}", "name", pos[0], "entry", pos[1], "exclude", exclude);
	if (comment != NULL)
		json_object_set_new(args, "comment", json_string(comment));
	return keelctl_client_change(ctl, "ipgroup.entry.add", args,
	                             exclude ? "added exclusion {entry} to IP group {name}"
	                                     : "added {entry} to IP group {name}");
}

int keelctl_cmd_ipgroup_entry_del(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[2];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "ipgroup.entry.del",
	                             json_pack("{s:s, s:s}", "name", pos[0], "entry", pos[1]),
	                             "removed {entry} from IP group {name}");
}

/* One row per entry (a group without entries: one row with "-"). */
static void keelctl_ipgroup_rows(json_t *group, json_t *rows)
{
	const char *name = json_string_value(json_object_get(group, "name"));
	json_t *entries = json_object_get(group, "entries"), *e;
	char entry[160];
	size_t i;

	if (json_array_size(entries) == 0) {
		json_array_append_new(rows, json_pack("[s, s, s]", name, "-", ""));
		return;
	}
	json_array_foreach(entries, i, e)
	{
		snprintf(entry, sizeof(entry), "%s%s",
		         json_is_true(json_object_get(e, "exclude")) ? "!" : "",
		         json_string_value(json_object_get(e, "entry")));
		json_array_append_new(rows,
		                      json_pack("[s, s, s]", name, entry,
		                                json_string_value(json_object_get(e, "comment"))));
	}
}

int keelctl_cmd_ipgroup_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"GROUP", "ENTRY", "COMMENT"};
	json_t *result, *rows, *g;
	char *pos[1];
	size_t i;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "ipgroup.list", NULL, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json) {
		keelctl_output_json(result);
		json_decref(result);
		return KEELCTL_EXIT_OK;
	}
	rows = json_array();
	json_array_foreach(result, i, g) keelctl_ipgroup_rows(g, rows);
	keelctl_output_table(headers, 3, rows);
	json_decref(rows);
	json_decref(result);
	return KEELCTL_EXIT_OK;
}

/* Exit 0 when IP is in the group, 1 when it is not (saying which exclusion
 * kept it out, if one did). */
int keelctl_cmd_ipgroup_test(struct keelctl *ctl, int argc, char **argv)
{
	json_t *result;
	const char *entry;
	char *pos[2];
	bool match;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "ipgroup.test",
	                        json_pack("{s:s, s:s}", "name", pos[0], "ip", pos[1]), &result) < 0)
		return KEELCTL_EXIT_FAIL;
	match = json_is_true(json_object_get(result, "match"));
	entry = json_string_value(json_object_get(result, "entry"));
	if (ctl->json)
		keelctl_output_json(result);
	else if (match)
		printf("%s is in IP group %s by entry %s\n", pos[1], pos[0], entry);
	else if (entry != NULL)
		printf("%s is not in IP group %s: excluded by entry %s\n", pos[1], pos[0], entry);
	else
		printf("%s is not in IP group %s\n", pos[1], pos[0]);
	json_decref(result);
	return match ? KEELCTL_EXIT_OK : KEELCTL_EXIT_FAIL;
}

/* ---- services ------------------------------------------------------------------ */

static json_t *keelctl_service_row(json_t *o)
{
	const char *group = json_string_value(json_object_get(o, "allow_group"));

	return json_pack("[s, s, s]", json_string_value(json_object_get(o, "service")),
	                 json_is_true(json_object_get(o, "enabled")) ? "yes" : "no",
	                 group != NULL && group[0] != '\0' ? group : "(all)");
}

int keelctl_cmd_service_set(struct keelctl *ctl, int argc, char **argv)
{
	const char *enabled = NULL, *group = NULL;
	bool all = false;
	const struct keelctl_option opts[] = {
	    {"--enabled", true, &enabled, NULL},
	    {"--allow-group", true, &group, NULL},
	    {"--allow-all", false, NULL, &all},
	    {NULL, false, NULL, NULL},
	};
	json_t *args, *result, *row;
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (group != NULL && all)
		return keelctl_usage_error(ctl, "give --allow-group NAME or --allow-all, not both");
	if (group != NULL && group[0] == '\0')
		return keelctl_usage_error(ctl,
		                           "--allow-group needs a group name (or --allow-all)");
	if (enabled == NULL && group == NULL && !all)
		return keelctl_usage_error(ctl, "nothing to set");
	if (enabled != NULL && strcmp(enabled, "yes") != 0 && strcmp(enabled, "no") != 0)
		return keelctl_usage_error(ctl, "--enabled takes yes or no, not '%s'", enabled);
	args = json_pack("{s:s}", "service", pos[0]);
	if (enabled != NULL)
		json_object_set_new(args, "enabled", json_boolean(strcmp(enabled, "yes") == 0));
	if (group != NULL || all)
		json_object_set_new(args, "allow_group", json_string(all ? "" : group));
	if (keelctl_client_call(ctl, "service.set", args, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json) {
		keelctl_output_json(result);
	} else {
		row = keelctl_service_row(result);
		printf("service %s: enabled %s, allow group %s\n",
		       json_string_value(json_array_get(row, 0)),
		       json_string_value(json_array_get(row, 1)),
		       json_string_value(json_array_get(row, 2)));
		json_decref(row);
	}
	json_decref(result);
	return KEELCTL_EXIT_OK;
}

int keelctl_cmd_service_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"SERVICE", "ENABLED", "ALLOW GROUP"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "service.list", NULL, headers, 3, keelctl_service_row);
}
