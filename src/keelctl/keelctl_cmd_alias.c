/* keelctl alias add | list | del */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keelctl/keelctl.h"
#include "lib/xalloc.h"

/* A list of strings joined with ", " (malloc'd). */
static char *keelctl_alias_join(json_t *list)
{
	size_t len = 1, i;
	json_t *v;
	char *s;

	for (i = 0; i < json_array_size(list) && (v = json_array_get(list, i)) != NULL; i++)
		len += json_string_length(v) + 2;
	s = xcalloc(1, len);
	for (i = 0; i < json_array_size(list) && (v = json_array_get(list, i)) != NULL; i++) {
		if (i > 0)
			strcat(s, ", ");
		strcat(s, json_string_value(v));
	}
	return s;
}

int keelctl_cmd_alias_add(struct keelctl *ctl, int argc, char **argv)
{
	char **pos = xcalloc((size_t)argc + 1, sizeof(*pos));
	json_t *targets;
	int n = keelctl_args_parse(ctl, argc, argv, NULL, pos), ret;

	if (n < 0) {
		free(pos);
		return KEELCTL_EXIT_USAGE;
	}
	targets = json_array();
	for (int i = 1; i < n; i++)
		json_array_append_new(targets, json_string(pos[i]));
	ret = keelctl_client_change(ctl, "alias.add",
	                            json_pack("{s:s, s:o}", "address", pos[0], "targets", targets),
	                            "added alias {address}");
	free(pos);
	return ret;
}

static json_t *keelctl_alias_row(json_t *a)
{
	char *targets = keelctl_alias_join(json_object_get(a, "targets"));
	json_t *row =
	    json_pack("[s, s]", json_string_value(json_object_get(a, "address")), targets);

	free(targets);
	return row;
}

int keelctl_cmd_alias_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"ADDRESS", "TARGETS"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "alias.list", NULL, headers, 2, keelctl_alias_row);
}

int keelctl_cmd_alias_del(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "alias.del", json_pack("{s:s}", "address", pos[0]),
	                             "deleted alias {address}");
}

/* ---- groups: the same shape, members instead of targets ---------------- */

static json_t *keelctl_group_row(json_t *g)
{
	char *members = keelctl_alias_join(json_object_get(g, "members"));
	json_t *row = json_pack("[s, s]", json_string_value(json_object_get(g, "address")),
	                        *members ? members : "-");

	free(members);
	return row;
}

int keelctl_cmd_group_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"ADDRESS", "MEMBERS"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "group.list", NULL, headers, 2, keelctl_group_row);
}
