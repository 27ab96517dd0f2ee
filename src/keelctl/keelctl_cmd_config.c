/* keelctl config list | get | set | unset */
#include <stdio.h>

#include "keelctl/keelctl.h"

static const char *keelctl_config_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

static json_t *keelctl_config_row(json_t *s)
{
	return json_pack("[s, s, s, s]", keelctl_config_str(s, "key"),
	                 keelctl_config_str(s, "value"), keelctl_config_str(s, "default"),
	                 json_is_true(json_object_get(s, "set")) ? "yes" : "no");
}

int keelctl_cmd_config_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"KEY", "VALUE", "DEFAULT", "SET"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "config.list", NULL, headers, 4, keelctl_config_row);
}

/* get prints the bare value, for scripts; --json gives the whole record. */
int keelctl_cmd_config_get(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];
	json_t *s;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "config.get", json_pack("{s:s}", "key", pos[0]), &s) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(s);
	else
		printf("%s\n", keelctl_config_str(s, "value"));
	json_decref(s);
	return KEELCTL_EXIT_OK;
}

static int keelctl_config_change(struct keelctl *ctl, const char *cmd, json_t *args)
{
	json_t *s;

	if (keelctl_client_call(ctl, cmd, args, &s) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(s);
	else
		printf("%s = %s%s\n", keelctl_config_str(s, "key"), keelctl_config_str(s, "value"),
		       json_is_true(json_object_get(s, "set")) ? "" : " (default)");
	json_decref(s);
	return KEELCTL_EXIT_OK;
}

int keelctl_cmd_config_set(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[2];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_config_change(ctl, "config.set",
	                             json_pack("{s:s, s:s}", "key", pos[0], "value", pos[1]));
}

int keelctl_cmd_config_unset(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_config_change(ctl, "config.unset", json_pack("{s:s}", "key", pos[0]));
}
