/* keelctl domain add | alias | list | del | set | check */
#include <stdio.h>
#include <string.h>

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

static const char *keelctl_domain_opt(json_t *d, const char *key)
{
	json_t *v = json_object_get(d, key);

	return json_is_string(v) ? json_string_value(v) : "-";
}

static json_t *keelctl_domain_row(json_t *d)
{
	char created[64];

	keelctl_output_time(json_integer_value(json_object_get(d, "created")), created,
	                    sizeof(created));
	return json_pack("[s, s, s, s, s, s]", json_string_value(json_object_get(d, "name")),
	                 keelctl_domain_opt(d, "alias_of"), keelctl_domain_opt(d, "source_ip4"),
	                 keelctl_domain_opt(d, "source_ip6"), keelctl_domain_opt(d, "ehlo_name"),
	                 created);
}

int keelctl_cmd_domain_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"NAME",        "ALIAS OF",  "SOURCE IPV4",
	                                      "SOURCE IPV6", "EHLO NAME", "CREATED"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "domain.list", NULL, headers, 6, keelctl_domain_row);
}

/* keelctl domain set DOMAIN source_ip=IP[,IP] ehlo_name=NAME (empty: clear) */
int keelctl_cmd_domain_set(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[3];
	json_t *args;
	int n;

	if ((n = keelctl_args_parse(ctl, argc, argv, NULL, pos)) < 0)
		return KEELCTL_EXIT_USAGE;
	args = json_pack("{s:s}", "name", pos[0]);
	for (int i = 1; i < n; i++) {
		const char *eq = strchr(pos[i], '=');
		size_t klen = eq != NULL ? (size_t)(eq - pos[i]) : 0;
		if (eq == NULL || !((klen == 9 && strncmp(pos[i], "source_ip", 9) == 0) ||
		                    (klen == 9 && strncmp(pos[i], "ehlo_name", 9) == 0))) {
			json_decref(args);
			return keelctl_usage_error(ctl,
			                           "expected source_ip=... or ehlo_name=..., not "
			                           "'%s'",
			                           pos[i]);
		}
		json_object_set_new(args, klen == 9 && pos[i][0] == 's' ? "source_ip" : "ehlo_name",
		                    json_string(eq + 1));
	}
	return keelctl_client_change(ctl, "domain.set", args,
	                             "domain {name}: source_ip4={source_ip4} "
	                             "source_ip6={source_ip6} ehlo_name={ehlo_name}");
}

int keelctl_cmd_domain_check(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];
	json_t *res, *a;
	size_t i;
	bool ok;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "domain.check", json_pack("{s:s}", "name", pos[0]), &res) < 0)
		return KEELCTL_EXIT_FAIL;
	ok = json_is_true(json_object_get(res, "ok"));
	if (ctl->json) {
		keelctl_output_json(res);
	} else {
		json_array_foreach(json_object_get(res, "addresses"), i, a) printf(
		    "%s  %s\n", json_is_true(json_object_get(a, "present")) ? "ok     " : "MISSING",
		    json_string_value(json_object_get(a, "message")));
		printf("%s\n", json_string_value(json_object_get(res, "message")));
	}
	json_decref(res);
	/* A missing address is a problem to act on: scripts see it too. */
	return ok ? KEELCTL_EXIT_OK : KEELCTL_EXIT_FAIL;
}

int keelctl_cmd_domain_del(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "domain.del", json_pack("{s:s}", "name", pos[0]),
	                             "deleted domain {name}");
}
