/* keelctl intercept add | list | del, keelctl trace export (docs/trace.md,
 * "Interception" and "Export") */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keelctl/keelctl.h"
#include "lib/base64.h"
#include "lib/xalloc.h"
#include "trace/trace.h"

int keelctl_cmd_intercept_add(struct keelctl *ctl, int argc, char **argv)
{
	const char *to = NULL, *dir = NULL, *case_id = NULL;
	const struct keelctl_option opts[] = {
		{ "--to", true, &to, NULL },
		{ "--dir", true, &dir, NULL },
		{ "--case", true, &case_id, NULL },
		{ NULL, false, NULL, NULL },
	};
	json_t *args;
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if ((to == NULL) == (dir == NULL))
		return keelctl_fail(ctl, "give exactly one of --to ADDRESS and --dir PATH");
	if (dir != NULL && dir[0] != '/')
		return keelctl_fail(ctl, "--dir %s is not an absolute path", dir);
	args = json_pack("{s:s}", "account", pos[0]);
	if (to != NULL)
		json_object_set_new(args, "to", json_string(to));
	if (dir != NULL)
		json_object_set_new(args, "dir", json_string(dir));
	if (case_id != NULL)
		json_object_set_new(args, "case", json_string(case_id));
	return keelctl_client_change(ctl, "intercept.add", args,
				     "added interception {id} of {account}");
}

static json_t *keelctl_intercept_row(json_t *o)
{
	char id[32], created[32], sent[32];
	const char *to = json_string_value(json_object_get(o, "to"));
	const char *dir = json_string_value(json_object_get(o, "dir"));
	const char *case_id = json_string_value(json_object_get(o, "case"));

	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(o, "id")));
	snprintf(sent, sizeof(sent), "%lld",
		 (long long)json_integer_value(json_object_get(o, "events_sent")));
	keelctl_output_time(json_integer_value(json_object_get(o, "created")), created,
			    sizeof(created));
	return json_pack("[s, s, s, s, s, s]", id,
			 json_string_value(json_object_get(o, "account")),
			 to != NULL && to[0] != '\0' ? to : dir, case_id[0] ? case_id : "-",
			 created, sent);
}

int keelctl_cmd_intercept_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = { "ID",   "ACCOUNT", "DESTINATION",
					       "CASE", "CREATED", "EVENTS SENT" };
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "intercept.list", NULL, headers, 6,
				   keelctl_intercept_row);
}

int keelctl_cmd_intercept_del(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1], *end;
	long long id;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	errno = 0;
	id = strtoll(pos[0], &end, 10);
	if (end == pos[0] || *end != '\0' || errno != 0 || id <= 0)
		return keelctl_fail(ctl, "'%s' is not an interception number (see intercept list)",
				    pos[0]);
	return keelctl_client_change(ctl, "intercept.del", json_pack("{s:I}", "id", id),
				     "deleted interception {id} of {account}");
}

/* ---- trace export ------------------------------------------------------------ */

struct keelctl_export {
	struct keelctl *ctl;
	FILE *out;
	bool mbox;
	size_t count;
};

/* One line of a message in mboxrd: a line that starts with ">*From " gets
 * one more '>', so that a reader can tell it from a From_ line and undo
 * the quoting. */
static void keelctl_export_line(FILE *out, const unsigned char *line, size_t len)
{
	size_t gt = 0;

	while (gt < len && line[gt] == '>')
		gt++;
	if (len - gt >= 5 && memcmp(line + gt, "From ", 5) == 0)
		fputc('>', out);
	fwrite(line, 1, len, out);
	fputc('\n', out);
}

/* mboxrd: a From_ line (envelope sender, delivery time in UTC), the
 * message with LF line ends, quoted, then an empty line. */
static int keelctl_export_mbox(struct keelctl_export *x, json_t *item)
{
	const char *b64 = json_string_value(json_object_get(item, "data_base64"));
	const char *sender = json_string_value(json_object_get(item, "sender"));
	time_t t = (time_t)json_integer_value(json_object_get(item, "internaldate"));
	size_t len = b64 != NULL ? strlen(b64) : 0, i = 0, end, k;
	unsigned char *data = xmalloc(len / 4 * 3 + 1);
	long n = base64_decode(b64 != NULL ? b64 : "", len, data);
	char when[64];
	struct tm tm;

	if (n < 0) {
		free(data);
		return -1;
	}
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", gmtime_r(&t, &tm));
	fprintf(x->out, "From %s %s\n", sender != NULL && sender[0] ? sender : "MAILER-DAEMON",
		when);
	while (i < (size_t)n) {
		for (end = i; end < (size_t)n && data[end] != '\n'; end++)
			;
		k = end < (size_t)n && end > i && data[end - 1] == '\r' ? end - 1 : end;
		keelctl_export_line(x->out, data + i, k - i);
		i = end + 1;
	}
	fputc('\n', x->out);
	free(data);
	return 0;
}

/* 0, or -1 after printing the problem. */
static int keelctl_export_page(struct keelctl_export *x, json_t *items)
{
	json_t *item;
	size_t i;
	char *line;

	json_array_foreach(items, i, item) {
		if (x->mbox && keelctl_export_mbox(x, item) < 0) {
			keelctl_fail(x->ctl, "the server sent a message that is not base64");
			return -1;
		}
		if (!x->mbox) {
			line = json_dumps(item, JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(x->out, "%s\n", line != NULL ? line : "{}");
			free(line);
		}
		x->count++;
	}
	return 0;
}

/* Asks page after page until the server says there is no next one. */
static int keelctl_export_fetch(struct keelctl_export *x, json_t *args)
{
	json_t *result, *next = json_null();

	do {
		json_object_set(args, "after", next);
		json_decref(next);
		if (keelctl_client_call(x->ctl, "trace.export", json_incref(args), &result) < 0)
			return -1;
		if (keelctl_export_page(x, json_object_get(result, "items")) != 0) {
			json_decref(result);
			return -1;
		}
		next = json_incref(json_object_get(result, "next"));
		json_decref(result);
	} while (next != NULL && !json_is_null(next));
	json_decref(next);
	return 0;
}

/* Written beside the output as a temporary file, flushed, then renamed:
 * the file is complete or absent.  Mode 0600: it holds someone's mail. */
static int keelctl_export_write(struct keelctl_export *x, json_t *args, const char *output)
{
	char *tmp = xasprintf("%s.tmp-%ld", output, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), ret;

	if (fd < 0) {
		ret = keelctl_fail(x->ctl, "cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return ret;
	}
	if ((x->out = fdopen(fd, "w")) == NULL) {
		ret = keelctl_fail(x->ctl, "cannot write %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		free(tmp);
		return ret;
	}
	ret = keelctl_export_fetch(x, args);
	if (ret == 0 && (fflush(x->out) != 0 || fsync(fd) != 0))
		ret = keelctl_fail(x->ctl, "writing %s: %s", tmp, strerror(errno));
	if (fclose(x->out) != 0 && ret == 0)
		ret = keelctl_fail(x->ctl, "writing %s: %s", tmp, strerror(errno));
	if (ret == 0 && rename(tmp, output) < 0)
		ret = keelctl_fail(x->ctl, "cannot rename %s to %s: %s", tmp, output,
				   strerror(errno));
	if (ret != 0)
		unlink(tmp);
	free(tmp);
	return ret != 0 ? KEELCTL_EXIT_FAIL : KEELCTL_EXIT_OK;
}

int keelctl_cmd_trace_export(struct keelctl *ctl, int argc, char **argv)
{
	const char *account = NULL, *message_id = NULL, *since = NULL, *until = NULL;
	const char *format = NULL, *output = NULL;
	const struct keelctl_option opts[] = {
		{ "--account", true, &account, NULL }, { "--message-id", true, &message_id, NULL },
		{ "--since", true, &since, NULL },     { "--until", true, &until, NULL },
		{ "--format", true, &format, NULL },   { "--output", true, &output, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct keelctl_export x = { .ctl = ctl };
	json_t *args;
	char *pos[1];
	int ret;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if ((account == NULL) == (message_id == NULL))
		return keelctl_fail(ctl, "give exactly one of --account ADDRESS and --message-id ID");
	if (format == NULL || (strcmp(format, "mbox") != 0 && strcmp(format, "jsonl") != 0))
		return keelctl_fail(ctl, "--format must be mbox or jsonl");
	if (output == NULL || output[0] == '\0')
		return keelctl_fail(ctl, "--output FILE is required");
	x.mbox = strcmp(format, "mbox") == 0;
	args = json_pack("{s:s}", "what", x.mbox ? "messages" : "events");
	json_object_set_new(args, account != NULL ? "account" : "message_id",
			    json_string(account != NULL ? account : message_id));
	if (keelctl_trace_times(ctl, args, since, until) < 0) {
		json_decref(args);
		return KEELCTL_EXIT_USAGE;
	}
	ret = keelctl_export_write(&x, args, output);
	json_decref(args);
	if (ret == KEELCTL_EXIT_OK && !ctl->json) {
		printf("wrote %zu %s to %s\n", x.count, x.mbox ? "messages" : "events", output);
	} else if (ret == KEELCTL_EXIT_OK) {
		args = json_pack("{s:s, s:I}", "output", output, "count", (json_int_t)x.count);
		keelctl_output_json(args);
		json_decref(args);
	}
	return ret;
}
