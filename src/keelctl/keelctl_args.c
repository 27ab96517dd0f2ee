/* A command's own options and arguments; passwords from standard input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keelctl/keelctl.h"
#include "lib/xalloc.h"

static const struct keelctl_option *keelctl_args_option(const struct keelctl_option *opts,
                                                        const char *arg, size_t len)
{
	for (; opts != NULL && opts->name != NULL; opts++)
		if (strlen(opts->name) == len && strncmp(opts->name, arg, len) == 0)
			return opts;
	return NULL;
}

int keelctl_args_parse(struct keelctl *ctl, int argc, char **argv,
                       const struct keelctl_option *opts, char **pos)
{
	const struct keelctl_command *c = ctl->cmd;
	bool options = true;
	int n = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq;
		const struct keelctl_option *o;

		if (options && strcmp(a, "--") == 0) {
			options = false;
			continue;
		}
		/* "-5" is a value (config set KEY -5), not an option. */
		if (!options || a[0] != '-' || a[1] == '\0' || (a[1] >= '0' && a[1] <= '9')) {
			if (c->max_args >= 0 && n >= c->max_args)
				return keelctl_usage_error(ctl, "unexpected argument '%s'", a), -1;
			pos[n++] = argv[i];
			continue;
		}
		eq = strchr(a, '=');
		o = keelctl_args_option(opts, a, eq != NULL ? (size_t)(eq - a) : strlen(a));
		if (o == NULL)
			return keelctl_usage_error(ctl, "unknown option %s", a), -1;
		if (!o->has_value) {
			if (eq != NULL)
				return keelctl_usage_error(ctl, "%s takes no value", o->name), -1;
			*o->flag_r = true;
		} else if (eq != NULL) {
			*o->value_r = eq + 1;
		} else if (i + 1 < argc) {
			*o->value_r = argv[++i];
		} else {
			return keelctl_usage_error(ctl, "%s needs a value", o->name), -1;
		}
	}
	if (n < c->min_args)
		return keelctl_usage_error(ctl, "missing argument"), -1;
	return n;
}

char *keelctl_args_read_password(struct keelctl *ctl)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len = getline(&line, &cap, stdin);

	if (len < 0) {
		free(line);
		keelctl_fail(ctl, "no password on standard input");
		return NULL;
	}
	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	if (len == 0) {
		free(line);
		keelctl_fail(ctl, "empty password on standard input");
		return NULL;
	}
	return line;
}
