/* keelctl: global options, finding the socket, the command table. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keelctl/keelctl.h"
#include "lib/xalloc.h"

#define KEELCTL_DEFAULT_CONF     "/etc/keel/keel.conf"
#define KEELCTL_DEFAULT_DATA_DIR "/var/lib/keel"

#define KEELCTL_QFILTER                                                                            \
	"[--sender ADDR] [--sender-domain D] [--rcpt ADDR] [--rcpt-domain D] [--auth-user ADDR] "  \
	"[--client-ip IP] [--state STATE] [--older-than DURATION]"

static const struct keelctl_command keelctl_commands[] = {
    {"status", "", "version, uptime, listeners and counts", keelctl_cmd_status, 0, 0},
    {"reload", "", "re-read keel.conf and apply it", keelctl_cmd_reload, 0, 0},
    {"domain add", "NAME", "add a domain", keelctl_cmd_domain_add, 1, 1},
    {"domain alias", "ALIAS TARGET", "add ALIAS as an alias domain of TARGET",
     keelctl_cmd_domain_alias, 2, 2},
    {"domain list", "", "list domains", keelctl_cmd_domain_list, 0, 0},
    {"domain del", "NAME", "delete an empty domain", keelctl_cmd_domain_del, 1, 1},
    {"domain set", "NAME [source_ip=IP[,IP]] [ehlo_name=HOST]",
     "set the domain's outbound source address(es) and EHLO name (empty: clear)",
     keelctl_cmd_domain_set, 2, 3},
    {"domain check", "NAME", "check that the domain's source addresses exist on this host",
     keelctl_cmd_domain_check, 1, 1},
    {"user add", "ADDRESS [--name NAME] [--password-stdin] [--quota SIZE]",
     "add a user (prints a generated password unless --password-stdin)", keelctl_cmd_user_add, 1,
     1},
    {"user list", "[DOMAIN]", "list users", keelctl_cmd_user_list, 0, 1},
    {"user show", "ADDRESS", "show a user, its mailboxes and aliases", keelctl_cmd_user_show, 1, 1},
    {"user passwd", "ADDRESS [--password-stdin]",
     "set a user's password (prints a generated one unless --password-stdin)",
     keelctl_cmd_user_passwd, 1, 1},
    {"user rename", "OLD NEW [--no-alias]",
     "give a user a new address; OLD stays as an alias unless --no-alias", keelctl_cmd_user_rename,
     2, 2},
    {"user set", "ADDRESS [--name NAME] [--quota SIZE]", "change a user's name or quota",
     keelctl_cmd_user_set, 1, 1},
    {"user disable", "ADDRESS", "refuse the user's logins and mail", keelctl_cmd_user_disable, 1,
     1},
    {"user enable", "ADDRESS", "enable a disabled user", keelctl_cmd_user_enable, 1, 1},
    {"user del", "ADDRESS", "delete a user and all its mail", keelctl_cmd_user_del, 1, 1},
    {"user unsuspend", "ADDRESS",
     "lift the outbreak brake's suspension of a user's sending and restart its counters",
     keelctl_cmd_user_unsuspend, 1, 1},
    {"alias add", "ADDRESS TARGET...", "add an alias delivering to the targets",
     keelctl_cmd_alias_add, 2, -1},
    {"alias list", "", "list aliases", keelctl_cmd_alias_list, 0, 0},
    {"alias del", "ADDRESS", "delete an alias", keelctl_cmd_alias_del, 1, 1},
    {"group add", "ADDRESS", "add a group", keelctl_cmd_group_add, 1, 1},
    {"group del", "ADDRESS", "delete a group", keelctl_cmd_group_del, 1, 1},
    {"group list", "", "list groups and their members", keelctl_cmd_group_list, 0, 0},
    {"group member add", "GROUP MEMBER", "add a user to a group", keelctl_cmd_group_member_add, 2,
     2},
    {"group member del", "GROUP MEMBER", "remove a user from a group", keelctl_cmd_group_member_del,
     2, 2},
    {"config list", "", "list settings: value, default, whether set", keelctl_cmd_config_list, 0,
     0},
    {"config get", "KEY", "print a setting's value", keelctl_cmd_config_get, 1, 1},
    {"config set", "KEY VALUE", "set a setting (live)", keelctl_cmd_config_set, 2, 2},
    {"config unset", "KEY", "return a setting to its default", keelctl_cmd_config_unset, 1, 1},
    {"queue list", KEELCTL_QFILTER " [--limit N]", "list outbound queue entries",
     keelctl_cmd_queue_list, 0, 0},
    {"queue show", "ID", "show a queued message: envelope, headers, each recipient",
     keelctl_cmd_queue_show, 1, 1},
    {"queue hold", "[ID...] " KEELCTL_QFILTER " [--background]",
     "hold entries: no delivery attempts until released", keelctl_cmd_queue_hold, 0, -1},
    {"queue release", "[ID...] " KEELCTL_QFILTER " [--background]", "release held entries: due now",
     keelctl_cmd_queue_release, 0, -1},
    {"queue retry", "[ID...] " KEELCTL_QFILTER " [--background]",
     "make queued and deferred entries due now", keelctl_cmd_queue_retry, 0, -1},
    {"queue delete", "[ID...] " KEELCTL_QFILTER " [--all] [--background]",
     "delete entries without notice to the sender", keelctl_cmd_queue_delete, 0, -1},
    {"queue bounce", "[ID...] " KEELCTL_QFILTER " [--all] [--background]",
     "fail entries (state failed)", keelctl_cmd_queue_bounce, 0, -1},
    {"queue stats", "", "queue counts by state and by recipient domain", keelctl_cmd_queue_stats, 0,
     0},
    {"jobs", "", "list bulk jobs and their progress", keelctl_cmd_jobs, 0, 0},
    {"trace",
     "[--message-id ID] [--queue-id ID] [--sender ADDR] [--rcpt ADDR] [--account ADDR] [--ip IP]"
     " [--since TIME] [--until TIME]",
     "what happened to messages: a timeline per message", keelctl_cmd_trace, 0, 0},
    {"audit", "[--since TIME]", "list admin changes", keelctl_cmd_audit, 0, 0},
    {"audit verify", "", "check the audit log's hash chain; exit 1 naming the first bad record",
     keelctl_cmd_audit_verify, 0, 0},
    {"trace export",
     "(--account ADDR | --message-id ID) [--since TIME] [--until TIME] --format mbox|jsonl"
     " --output FILE",
     "write an account's or a message's mail (mbox) or trace events (jsonl) to FILE",
     keelctl_cmd_trace_export, 0, 0},
    {"intercept add", "ACCOUNT (--to ADDRESS | --dir PATH) [--case ID]",
     "copy the account's mail and access events to ADDRESS or into PATH, unseen",
     keelctl_cmd_intercept_add, 1, 1},
    {"intercept list", "", "list interception orders", keelctl_cmd_intercept_list, 0, 0},
    {"intercept del", "ID", "end an interception order", keelctl_cmd_intercept_del, 1, 1},
    {"check", "[--data-dir DIR]",
     "check the store's consistency (DIR: a stopped data dir, read-only); exit 1 on damage",
     keelctl_cmd_check, 0, 0},
    {"ipgroup add", "NAME", "add an empty IP address group", keelctl_cmd_ipgroup_add, 1, 1},
    {"ipgroup del", "NAME", "delete an IP group (refused while a rule or group uses it)",
     keelctl_cmd_ipgroup_del, 1, 1},
    {"ipgroup list", "", "list IP groups and their entries (! marks an exclusion)",
     keelctl_cmd_ipgroup_list, 0, 0},
    {"ipgroup test", "NAME IP", "whether IP is in the group and by which entry (exit 1: not)",
     keelctl_cmd_ipgroup_test, 2, 2},
    {"ipgroup entry add", "NAME (IP|CIDR|FROM-TO|group:OTHER) [--exclude] [--comment TEXT]",
     "add an entry (--exclude: its addresses are kept out)", keelctl_cmd_ipgroup_entry_add, 2,
     2},
    {"ipgroup entry del", "NAME ENTRY", "remove an entry from an IP group",
     keelctl_cmd_ipgroup_entry_del, 2, 2},
    {"service set", "SERVICE [--enabled yes|no] [--allow-group NAME|--allow-all]",
     "enable or disable a service, or limit it to an IP group", keelctl_cmd_service_set, 1, 1},
    {"service list", "", "list the services, enabled or not, and their allowed group",
     keelctl_cmd_service_list, 0, 0},
    {"auth blocks", "", "list IPs and accounts blocked after failed logins",
     keelctl_cmd_auth_blocks, 0, 0},
    {"auth unblock", "IP|ADDRESS", "lift the failed-login block of an IP or an account",
     keelctl_cmd_auth_unblock, 1, 1},
};

#define KEELCTL_N_COMMANDS (sizeof(keelctl_commands) / sizeof(keelctl_commands[0]))

static void keelctl_vprint(struct keelctl *ctl, const char *fmt, va_list ap)
{
	fprintf(stderr, "keelctl: ");
	if (ctl != NULL && ctl->cmd != NULL)
		fprintf(stderr, "%s: ", ctl->cmd->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int keelctl_fail(struct keelctl *ctl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	keelctl_vprint(ctl, fmt, ap);
	va_end(ap);
	return KEELCTL_EXIT_FAIL;
}

static void keelctl_usage_line(FILE *f, const struct keelctl_command *c, const char *prefix)
{
	fprintf(f, "%skeelctl [-s SOCKET | -c FILE] [--json] %s%s%s\n", prefix, c->name,
	        *c->args ? " " : "", c->args);
}

int keelctl_usage_error(struct keelctl *ctl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	keelctl_vprint(ctl, fmt, ap);
	va_end(ap);
	if (ctl->cmd != NULL)
		keelctl_usage_line(stderr, ctl->cmd, "usage: ");
	return KEELCTL_EXIT_USAGE;
}

static void keelctl_help(FILE *f)
{
	fprintf(f,
	        "usage: keelctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]\n"
	        "       keelctl --help | --version\n\n"
	        "  -s SOCKET   the admin socket\n"
	        "  -c FILE     keel.conf naming it (default %s; or $KEEL_SOCKET)\n"
	        "  --json      print results as JSON\n\ncommands:\n",
	        KEELCTL_DEFAULT_CONF);
	for (size_t i = 0; i < KEELCTL_N_COMMANDS; i++) {
		const struct keelctl_command *c = &keelctl_commands[i];
		char left[320];

		snprintf(left, sizeof(left), "%s%s%s", c->name, *c->args ? " " : "", c->args);
		if (strlen(left) > 34)
			fprintf(f, "  %s\n  %-34s  %s\n", left, "", c->help);
		else
			fprintf(f, "  %-34s  %s\n", left, c->help);
	}
	fprintf(f, "\nSizes: 123, 10K, 50M, 2G.  See keelctl(8).\n");
}

/* Trims blanks at both ends in place. */
static char *keelctl_trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	return s;
}

/* value relative to the directory of the file, as keeld reads it. */
static char *keelctl_conf_path(const char *conf, const char *value)
{
	const char *slash = strrchr(conf, '/');

	if (value[0] == '/' || slash == NULL)
		return xstrdup(value);
	return xasprintf("%.*s/%s", (int)(slash - conf), conf, value);
}

/* Takes only data_dir and admin.socket from keel.conf, tolerantly: every
 * other line, however odd, is keeld's business. */
static int keelctl_conf_read(const char *conf, bool must_exist, char **socket_r)
{
	FILE *f = fopen(conf, "re");
	char line[4096], *data_dir = NULL, *sock = NULL;

	if (f == NULL) {
		if (must_exist || errno != ENOENT)
			return keelctl_fail(NULL, "cannot read %s: %s", conf, strerror(errno));
		*socket_r = xstrdup(KEELCTL_DEFAULT_DATA_DIR "/keel.sock");
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq, *key, *value = keelctl_trim(line);
		size_t len;

		if (*value == '#' || (eq = strchr(value, '=')) == NULL)
			continue;
		*eq = '\0';
		key = keelctl_trim(value);
		value = keelctl_trim(eq + 1);
		len = strlen(value);
		if (len >= 2 && (value[0] == '"' || value[0] == '\'') &&
		    value[len - 1] == value[0]) {
			value[len - 1] = '\0';
			value++;
		}
		if (*value == '\0')
			continue;
		if (strcmp(key, "data_dir") == 0) {
			free(data_dir);
			data_dir = keelctl_conf_path(conf, value);
		} else if (strcmp(key, "admin.socket") == 0) {
			free(sock);
			sock = keelctl_conf_path(conf, value);
		}
	}
	fclose(f);
	if (sock == NULL)
		sock = xasprintf("%s/keel.sock",
		                 data_dir != NULL ? data_dir : KEELCTL_DEFAULT_DATA_DIR);
	free(data_dir);
	*socket_r = sock;
	return 0;
}

/* Longest command whose words start argv; *n_words_r: how many it took. */
static const struct keelctl_command *keelctl_find(int argc, char **argv, int *n_words_r)
{
	const struct keelctl_command *best = NULL;
	int best_words = 0;

	for (size_t i = 0; i < KEELCTL_N_COMMANDS; i++) {
		char name[64], *save, *w;
		int n = 0;
		bool match = true;

		snprintf(name, sizeof(name), "%s", keelctl_commands[i].name);
		for (w = strtok_r(name, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
			if (n >= argc || strcmp(argv[n], w) != 0) {
				match = false;
				break;
			}
			n++;
		}
		if (match && n > best_words) {
			best = &keelctl_commands[i];
			best_words = n;
		}
	}
	*n_words_r = best_words;
	return best;
}

/* Unknown command: name what was wrong and list the family's commands. */
static int keelctl_unknown(int argc, char **argv)
{
	bool family = false;

	if (argc == 1)
		fprintf(stderr, "keelctl: %s: missing or unknown command\n", argv[0]);
	else
		fprintf(stderr, "keelctl: unknown command '%s %s'\n", argv[0], argv[1]);
	for (size_t i = 0; i < KEELCTL_N_COMMANDS; i++) {
		const struct keelctl_command *c = &keelctl_commands[i];
		size_t len = strlen(argv[0]);

		if (strncmp(c->name, argv[0], len) == 0 && c->name[len] == ' ') {
			keelctl_usage_line(stderr, c, family ? "       " : "usage: ");
			family = true;
		}
	}
	if (!family)
		fprintf(stderr, "usage: keelctl [-s SOCKET | -c FILE] [--json] COMMAND [ARGS]; "
		                "see keelctl --help\n");
	return KEELCTL_EXIT_USAGE;
}

/* Removes every --json (before a "--") from argv; returns the new argc. */
static int keelctl_take_json(int argc, char **argv, bool *json_r)
{
	int out = 0;
	bool done = false;

	for (int i = 0; i < argc; i++) {
		if (!done && strcmp(argv[i], "--") == 0)
			done = true;
		if (!done && strcmp(argv[i], "--json") == 0) {
			*json_r = true;
			continue;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	return out;
}

struct keelctl_globals {
	const char *socket, *conf;
	bool help, version;
};

/* Leading options; returns the index of the command word, or -1 (usage). */
static int keelctl_globals_parse(int argc, char **argv, struct keelctl_globals *g)
{
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			g->help = true;
		} else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			g->version = true;
		} else if ((strcmp(a, "-s") == 0 || strcmp(a, "-c") == 0) && i + 1 < argc) {
			*(a[1] == 's' ? &g->socket : &g->conf) = argv[++i];
		} else if (strncmp(a, "-s", 2) == 0 && a[2] != '\0') {
			g->socket = a + 2;
		} else if (strncmp(a, "-c", 2) == 0 && a[2] != '\0') {
			g->conf = a + 2;
		} else if (strcmp(a, "--") == 0) {
			return i + 1;
		} else {
			fprintf(stderr, "keelctl: %s: %s\n", a,
			        (strcmp(a, "-s") == 0 || strcmp(a, "-c") == 0) ? "missing argument"
			                                                       : "unknown option");
			fprintf(stderr, "usage: keelctl [-s SOCKET | -c FILE] [--json] COMMAND "
			                "[ARGS]; see keelctl --help\n");
			return -1;
		}
	}
	return i;
}

/* -s, then -c, then $KEEL_SOCKET, then the default keel.conf. */
static int keelctl_socket_find(const struct keelctl_globals *g, char **socket_r)
{
	const char *env = getenv("KEEL_SOCKET");

	if (g->socket != NULL) {
		*socket_r = xstrdup(g->socket);
		return 0;
	}
	if (g->conf != NULL)
		return keelctl_conf_read(g->conf, true, socket_r);
	if (env != NULL && *env != '\0') {
		*socket_r = xstrdup(env);
		return 0;
	}
	return keelctl_conf_read(KEELCTL_DEFAULT_CONF, false, socket_r);
}

int main(int argc, char **argv)
{
	struct keelctl ctl = {.fd = -1};
	struct keelctl_globals g = {0};
	char *socket_path = NULL;
	int first, n_words, ret;

	argc = keelctl_take_json(argc, argv, &ctl.json);
	first = keelctl_globals_parse(argc, argv, &g);
	if (first < 0)
		return KEELCTL_EXIT_USAGE;
	if (g.version) {
		printf("keelctl %s\n", KEEL_VERSION);
		return KEELCTL_EXIT_OK;
	}
	if (g.help || (first < argc && strcmp(argv[first], "help") == 0)) {
		keelctl_help(stdout);
		return KEELCTL_EXIT_OK;
	}
	if (first >= argc) {
		keelctl_help(stderr);
		return KEELCTL_EXIT_USAGE;
	}
	ctl.cmd = keelctl_find(argc - first, argv + first, &n_words);
	if (ctl.cmd == NULL)
		return keelctl_unknown(argc - first, argv + first);
	if (keelctl_socket_find(&g, &socket_path) != 0)
		return KEELCTL_EXIT_FAIL;
	ctl.socket_path = socket_path;
	ret = ctl.cmd->run(&ctl, argc - first - n_words, argv + first + n_words);
	keelctl_client_close(&ctl);
	free(socket_path);
	return ret;
}
