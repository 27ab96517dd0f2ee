/* keelctl auth blocks | unblock (docs/reliability.md, "AUTH brute force") */
#include <stdio.h>

#include "keelctl/keelctl.h"

static json_t *keelctl_auth_row(json_t *o)
{
	char failures[32], until[32];

	snprintf(failures, sizeof(failures), "%lld",
		 (long long)json_integer_value(json_object_get(o, "failures")));
	keelctl_output_time(json_integer_value(json_object_get(o, "until")), until,
			    sizeof(until));
	return json_pack("[s, s, s, s]", json_string_value(json_object_get(o, "kind")),
			 json_string_value(json_object_get(o, "key")), failures, until);
}

int keelctl_cmd_auth_blocks(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = { "KIND", "IP OR ACCOUNT", "FAILURES", "UNTIL" };
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "auth.blocks", NULL, headers, 4, keelctl_auth_row);
}

int keelctl_cmd_auth_unblock(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "auth.unblock", json_pack("{s:s}", "key", pos[0]),
				     "unblocked {key}");
}
