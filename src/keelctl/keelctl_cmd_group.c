/* keelctl group add | del | member add | member del (group list is beside
 * alias list, which it mirrors) */
#include <stdio.h>

#include "keelctl/keelctl.h"

static int keelctl_group_one(struct keelctl *ctl, int argc, char **argv, const char *cmd,
                             const char *tmpl)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, cmd, json_pack("{s:s}", "address", pos[0]), tmpl);
}

int keelctl_cmd_group_add(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_group_one(ctl, argc, argv, "group.add", "added group {address}");
}

int keelctl_cmd_group_del(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_group_one(ctl, argc, argv, "group.del", "deleted group {address}");
}

static int keelctl_group_member(struct keelctl *ctl, int argc, char **argv, const char *cmd,
                                const char *tmpl)
{
	char *pos[2];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(
	    ctl, cmd, json_pack("{s:s, s:s}", "group", pos[0], "member", pos[1]), tmpl);
}

int keelctl_cmd_group_member_add(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_group_member(ctl, argc, argv, "group.member.add",
	                            "added {member} to {group}");
}

int keelctl_cmd_group_member_del(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_group_member(ctl, argc, argv, "group.member.del",
	                            "removed {member} from {group}");
}
