/* keelctl domain add | alias | list | del */
#include <stdio.h>

#include "keelctl/keelctl.h"

int keelctl_cmd_domain_add(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "domain.add", json_pack("{s:s}", "name", pos[0]),
	                             "added domain {name}");
}

int keelctl_cmd_domain_alias(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[2];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "domain.add",
	                             json_pack("{s:s, s:s}", "name", pos[0], "alias_of", pos[1]),
	                             "added domain {name} as an alias of {alias_of}");
}

static json_t *keelctl_domain_row(json_t *d)
{
	char created[64];
	json_t *alias_of = json_object_get(d, "alias_of");

	keelctl_output_time(json_integer_value(json_object_get(d, "created")), created,
	                    sizeof(created));
	return json_pack("[s, s, s]", json_string_value(json_object_get(d, "name")),
	                 json_is_string(alias_of) ? json_string_value(alias_of) : "-", created);
}

int keelctl_cmd_domain_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"NAME", "ALIAS OF", "CREATED"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "domain.list", NULL, headers, 3, keelctl_domain_row);
}

int keelctl_cmd_domain_del(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "domain.del", json_pack("{s:s}", "name", pos[0]),
	                             "deleted domain {name}");
}
