#include "proto/pop3_parser.h"

#include <string.h>
#include <strings.h>

/* Arguments a command takes (min, max), and whether they are message
 * numbers: LIST [n], RETR n, DELE n, TOP n lines, UIDL [n]. */
static const struct pop3_verb_def {
	const char *name;
	enum pop3_verb verb;
	unsigned min, max;
	unsigned numeric; /* how many leading arguments are numbers */
} pop3_verbs[] = {
	{ "USER", POP3_VERB_USER, 1, 1, 0 }, { "PASS", POP3_VERB_PASS, 1, 1, 0 },
	{ "STAT", POP3_VERB_STAT, 0, 0, 0 }, { "LIST", POP3_VERB_LIST, 0, 1, 1 },
	{ "RETR", POP3_VERB_RETR, 1, 1, 1 }, { "DELE", POP3_VERB_DELE, 1, 1, 1 },
	{ "NOOP", POP3_VERB_NOOP, 0, 0, 0 }, { "RSET", POP3_VERB_RSET, 0, 0, 0 },
	{ "QUIT", POP3_VERB_QUIT, 0, 0, 0 }, { "TOP", POP3_VERB_TOP, 2, 2, 2 },
	{ "UIDL", POP3_VERB_UIDL, 0, 1, 1 }, { "CAPA", POP3_VERB_CAPA, 0, 0, 0 },
	{ "STLS", POP3_VERB_STLS, 0, 0, 0 }, { "AUTH", POP3_VERB_AUTH, 0, 2, 0 },
	{ "APOP", POP3_VERB_APOP, 2, 2, 0 },
};

const char *pop3_verb_name(enum pop3_verb verb)
{
	for (size_t i = 0; i < sizeof(pop3_verbs) / sizeof(pop3_verbs[0]); i++)
		if (pop3_verbs[i].verb == verb)
			return pop3_verbs[i].name;
	return "UNKNOWN";
}

/* A message number or line count: decimal digits only, no sign, at most
 * 9 digits (no message number comes near 10^9), so it cannot overflow. */
static int pop3_number(const char *s, size_t len, unsigned long *n_r)
{
	unsigned long n = 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		n = n * 10 + (unsigned long)(s[i] - '0');
	}
	*n_r = n;
	return 0;
}

static const struct pop3_verb_def *pop3_find(const char *word, size_t len)
{
	for (size_t i = 0; i < sizeof(pop3_verbs) / sizeof(pop3_verbs[0]); i++)
		if (strlen(pop3_verbs[i].name) == len && strncasecmp(word, pop3_verbs[i].name, len) == 0)
			return &pop3_verbs[i];
	return NULL;
}

static int pop3_split_args(const struct pop3_verb_def *def, const char *p, const char *end,
			   struct pop3_command *cmd, const char **error_r)
{
	size_t max = def->verb == POP3_VERB_USER ? POP3_USERPASS_MAX
		     : def->verb == POP3_VERB_AUTH ? POP3_LINE_MAX
						   : POP3_ARG_MAX;

	while (p < end) {
		const char *arg;
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		if (cmd->argc == def->max) {
			*error_r = "wrong number of arguments";
			return -1;
		}
		arg = p;
		while (p < end && *p != ' ')
			p++;
		if ((size_t)(p - arg) > max) {
			*error_r = "argument too long";
			return -1;
		}
		cmd->argv[cmd->argc] = arg;
		cmd->arglen[cmd->argc++] = (size_t)(p - arg);
	}
	if (cmd->argc < def->min) {
		*error_r = "wrong number of arguments";
		return -1;
	}
	return 0;
}

int pop3_parse(const char *line, size_t len, struct pop3_command *cmd_r, const char **error_r)
{
	const char *end = line + len, *p = line, *word;
	const struct pop3_verb_def *def;

	memset(cmd_r, 0, sizeof(*cmd_r));
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n') {
			*error_r = "invalid characters in command";
			return -1;
		}
	}
	while (p < end && *p != ' ')
		p++;
	word = line;
	if ((def = pop3_find(word, (size_t)(p - word))) == NULL) {
		*error_r = "unknown command";
		return -1;
	}
	cmd_r->verb = def->verb;
	if (def->verb == POP3_VERB_PASS) {
		/* The rest of the line after one space, spaces and all. */
		if (p == end || p + 1 == end || (size_t)(end - p - 1) > POP3_USERPASS_MAX) {
			*error_r = p + 1 < end ? "argument too long" : "wrong number of arguments";
			return -1;
		}
		cmd_r->argc = 1;
		cmd_r->argv[0] = p + 1;
		cmd_r->arglen[0] = (size_t)(end - p - 1);
		return 0;
	}
	if (pop3_split_args(def, p, end, cmd_r, error_r) < 0)
		return -1;
	for (unsigned i = 0; i < def->numeric && i < cmd_r->argc; i++) {
		if (pop3_number(cmd_r->argv[i], cmd_r->arglen[i], &cmd_r->num[i]) < 0 ||
		    (i == 0 && cmd_r->num[i] == 0)) {
			*error_r = i == 0 ? "invalid message number" : "invalid line count";
			return -1;
		}
	}
	return 0;
}
