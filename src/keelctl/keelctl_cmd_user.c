/* keelctl user add | list | show | passwd | rename | set | disable | enable | unsuspend |
 * del */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keelctl/keelctl.h"

static const char *keelctl_user_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* Adds the password argument: from standard input with --password-stdin,
 * else none (the server generates one).  Returns -1 after printing. */
static int keelctl_user_password(struct keelctl *ctl, bool from_stdin, json_t *args)
{
	char *password;

	if (!from_stdin)
		return 0;
	password = keelctl_args_read_password(ctl);
	if (password == NULL)
		return -1;
	json_object_set_new(args, "password", json_string(password));
	explicit_bzero(password, strlen(password));
	free(password);
	return 0;
}

/* Prints a change's outcome; a generated password is shown here, once. */
static int keelctl_user_done(struct keelctl *ctl, json_t *result, const char *what)
{
	json_t *password = json_object_get(result, "password");

	if (ctl->json) {
		keelctl_output_json(result);
	} else {
		printf("%s\n", what);
		if (json_is_string(password))
			printf("password: %s\n", json_string_value(password));
	}
	json_decref(result);
	return KEELCTL_EXIT_OK;
}

int keelctl_cmd_user_add(struct keelctl *ctl, int argc, char **argv)
{
	const char *name = NULL, *quota = NULL;
	bool from_stdin = false;
	const struct keelctl_option opts[] = {
	    {"--name", true, &name, NULL},
	    {"--quota", true, &quota, NULL},
	    {"--password-stdin", false, NULL, &from_stdin},
	    {NULL, false, NULL, NULL},
	};
	char *pos[1], what[512];
	json_t *args, *result;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	args = json_pack("{s:s}", "address", pos[0]);
	if (name != NULL)
		json_object_set_new(args, "name", json_string(name));
	if (quota != NULL)
		json_object_set_new(args, "quota", json_string(quota));
	if (keelctl_user_password(ctl, from_stdin, args) < 0) {
		json_decref(args);
		return KEELCTL_EXIT_FAIL;
	}
	if (keelctl_client_call(ctl, "user.add", args, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	snprintf(what, sizeof(what), "added user %s (id %" JSON_INTEGER_FORMAT ")",
	         keelctl_user_str(result, "address"),
	         json_integer_value(json_object_get(result, "id")));
	return keelctl_user_done(ctl, result, what);
}

int keelctl_cmd_user_passwd(struct keelctl *ctl, int argc, char **argv)
{
	bool from_stdin = false;
	const struct keelctl_option opts[] = {
	    {"--password-stdin", false, NULL, &from_stdin},
	    {NULL, false, NULL, NULL},
	};
	char *pos[1], what[512];
	json_t *args, *result;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	args = json_pack("{s:s}", "address", pos[0]);
	if (keelctl_user_password(ctl, from_stdin, args) < 0) {
		json_decref(args);
		return KEELCTL_EXIT_FAIL;
	}
	if (keelctl_client_call(ctl, "user.passwd", args, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	snprintf(what, sizeof(what), "changed the password of %s",
	         keelctl_user_str(result, "address"));
	return keelctl_user_done(ctl, result, what);
}

static json_t *keelctl_user_row(json_t *u)
{
	char id[32], quota[32], used[32];
	json_t *q = json_object_get(u, "quota");

	keelctl_output_cell(json_object_get(u, "id"), id, sizeof(id));
	if (json_integer_value(q) == 0)
		snprintf(quota, sizeof(quota), "none");
	else
		keelctl_output_size((uint64_t)json_integer_value(q), quota, sizeof(quota));
	keelctl_output_size((uint64_t)json_integer_value(json_object_get(u, "used")), used,
	                    sizeof(used));
	return json_pack("[s, s, s, s, s, s]", id, keelctl_user_str(u, "address"),
	                 *keelctl_user_str(u, "name") ? keelctl_user_str(u, "name") : "-", quota,
	                 used, json_is_true(json_object_get(u, "enabled")) ? "yes" : "no");
}

int keelctl_cmd_user_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"ID", "ADDRESS", "NAME", "QUOTA", "USED", "ENABLED"};
	char *pos[1];
	int n = keelctl_args_parse(ctl, argc, argv, NULL, pos);

	if (n < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "user.list",
	                           n > 0 ? json_pack("{s:s}", "domain", pos[0]) : NULL, headers, 6,
	                           keelctl_user_row);
}

static void keelctl_user_show_mailboxes(json_t *mailboxes)
{
	static const char *const headers[] = {"MAILBOX", "SPECIAL-USE", "MESSAGES", "SIZE"};
	json_t *rows = json_array(), *m;
	size_t i;

	for (i = 0; i < json_array_size(mailboxes) && (m = json_array_get(mailboxes, i)) != NULL;
	     i++) {
		char n[32], size[32];
		const char *use = keelctl_user_str(m, "special_use");

		keelctl_output_cell(json_object_get(m, "messages"), n, sizeof(n));
		keelctl_output_size((uint64_t)json_integer_value(json_object_get(m, "size")), size,
		                    sizeof(size));
		json_array_append_new(rows, json_pack("[s, s, s, s]", keelctl_user_str(m, "name"),
		                                      *use ? use : "-", n, size));
	}
	keelctl_output_table(headers, 4, rows);
	json_decref(rows);
}

/* A list of strings as "a, b, c", or "-". */
static void keelctl_user_show_list(const char *key, json_t *list)
{
	json_t *v;
	size_t i;

	printf("%-8s  ", key);
	if (json_array_size(list) == 0)
		printf("-");
	for (i = 0; i < json_array_size(list) && (v = json_array_get(list, i)) != NULL; i++)
		printf("%s%s", i ? ", " : "", json_string_value(v));
	putchar('\n');
}

static void keelctl_user_show_print(json_t *u)
{
	char buf[64];
	json_t *quota = json_object_get(u, "quota");

	keelctl_output_pair("id", 8, "%s",
	                    keelctl_output_cell(json_object_get(u, "id"), buf, sizeof(buf)));
	keelctl_output_pair("address", 8, "%s", keelctl_user_str(u, "address"));
	keelctl_output_pair("name", 8, "%s", keelctl_user_str(u, "name"));
	if (json_integer_value(quota) == 0)
		snprintf(buf, sizeof(buf), "none");
	else
		keelctl_output_size((uint64_t)json_integer_value(quota), buf, sizeof(buf));
	keelctl_output_pair("quota", 8, "%s", buf);
	keelctl_output_size((uint64_t)json_integer_value(json_object_get(u, "used")), buf,
	                    sizeof(buf));
	keelctl_output_pair("used", 8, "%s", buf);
	keelctl_output_pair("enabled", 8, "%s",
	                    json_is_true(json_object_get(u, "enabled")) ? "yes" : "no");
	keelctl_output_time(json_integer_value(json_object_get(u, "created")), buf, sizeof(buf));
	keelctl_output_pair("created", 8, "%s", buf);
	if (json_is_true(json_object_get(u, "send_suspended"))) {
		keelctl_output_time(json_integer_value(json_object_get(u, "suspended_at")), buf,
		                    sizeof(buf));
		keelctl_output_pair("sending", 8, "suspended since %s: %s (keelctl user unsuspend)",
		                    buf, keelctl_user_str(u, "suspended_reason"));
	} else {
		keelctl_output_pair("sending", 8, "allowed");
	}
	keelctl_user_show_list("aliases", json_object_get(u, "aliases"));
	keelctl_user_show_list("groups", json_object_get(u, "groups"));
	putchar('\n');
	keelctl_user_show_mailboxes(json_object_get(u, "mailboxes"));
}

int keelctl_cmd_user_show(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];
	json_t *u;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "user.show", json_pack("{s:s}", "address", pos[0]), &u) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(u);
	else
		keelctl_user_show_print(u);
	json_decref(u);
	return KEELCTL_EXIT_OK;
}

int keelctl_cmd_user_rename(struct keelctl *ctl, int argc, char **argv)
{
	bool no_alias = false;
	const struct keelctl_option opts[] = {
	    {"--no-alias", false, NULL, &no_alias},
	    {NULL, false, NULL, NULL},
	};
	char *pos[2];
	json_t *result;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "user.rename",
	                        json_pack("{s:s, s:s, s:b}", "address", pos[0], "new_address",
	                                  pos[1], "keep_alias", !no_alias),
	                        &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(result);
	else
		printf("renamed %s to %s (id %" JSON_INTEGER_FORMAT ")%s%s%s\n",
		       keelctl_user_str(result, "old_address"), keelctl_user_str(result, "address"),
		       json_integer_value(json_object_get(result, "id")),
		       json_is_true(json_object_get(result, "alias")) ? "; " : "",
		       json_is_true(json_object_get(result, "alias"))
		           ? keelctl_user_str(result, "old_address")
		           : "",
		       json_is_true(json_object_get(result, "alias")) ? " is now an alias" : "");
	json_decref(result);
	return KEELCTL_EXIT_OK;
}

int keelctl_cmd_user_set(struct keelctl *ctl, int argc, char **argv)
{
	const char *name = NULL, *quota = NULL;
	const struct keelctl_option opts[] = {
	    {"--name", true, &name, NULL},
	    {"--quota", true, &quota, NULL},
	    {NULL, false, NULL, NULL},
	};
	char *pos[1];
	json_t *args;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (name == NULL && quota == NULL)
		return keelctl_usage_error(ctl, "give --name or --quota");
	args = json_pack("{s:s}", "address", pos[0]);
	if (name != NULL)
		json_object_set_new(args, "name", json_string(name));
	if (quota != NULL)
		json_object_set_new(args, "quota", json_string(quota));
	return keelctl_client_change(ctl, "user.set", args, "updated user {address}");
}

static int keelctl_user_simple(struct keelctl *ctl, int argc, char **argv, const char *cmd,
                               const char *tmpl)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, cmd, json_pack("{s:s}", "address", pos[0]), tmpl);
}

int keelctl_cmd_user_disable(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_user_simple(ctl, argc, argv, "user.disable", "disabled user {address}");
}

int keelctl_cmd_user_enable(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_user_simple(ctl, argc, argv, "user.enable", "enabled user {address}");
}

int keelctl_cmd_user_unsuspend(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_user_simple(ctl, argc, argv, "user.unsuspend",
	                           "user {address} may send again; its counters restart now");
}

int keelctl_cmd_user_del(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_user_simple(ctl, argc, argv, "user.del", "deleted user {address}");
}
