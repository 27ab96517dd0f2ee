/* keelctl trace | audit | audit verify (docs/trace.md) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keelctl/keelctl.h"
#include "trace/trace.h"

static const char *keelctl_trace_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* Local time to the second: what the admin compares with the customer's
 * account of the day. */
static void keelctl_trace_time(json_int_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	strftime(buf, size, "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
}

int keelctl_trace_times(struct keelctl *ctl, json_t *args, const char *since,
			       const char *until)
{
	const char *const names[] = { "since", "until" }, *const values[] = { since, until };
	time_t t;

	for (int i = 0; i < 2; i++) {
		if (values[i] == NULL)
			continue;
		if (trace_time_parse(values[i], time(NULL), &t) < 0) {
			keelctl_usage_error(ctl, "bad --%s '%s': expected 2024-05-01, "
					    "2024-05-01T10:00:00, or a duration like 2h or 3d",
					    names[i], values[i]);
			return -1;
		}
		json_object_set_new(args, names[i], json_integer((json_int_t)t));
	}
	return 0;
}

static json_t *keelctl_trace_row(json_t *e)
{
	char when[32], who[2 * 330];
	const char *sender = keelctl_trace_str(e, "sender"), *rcpt = keelctl_trace_str(e, "rcpt");

	keelctl_trace_time(json_integer_value(json_object_get(e, "time")), when, sizeof(when));
	snprintf(who, sizeof(who), "%s%s%s", sender[0] ? sender : (rcpt[0] ? "" : "-"),
		 rcpt[0] ? " -> " : "", rcpt);
	return json_pack("[s, s, s, s, s, s, s, s]", when, keelctl_trace_str(e, "protocol"),
			 keelctl_trace_str(e, "client_ip")[0] ? keelctl_trace_str(e, "client_ip")
							      : "-",
			 keelctl_trace_str(e, "session"), keelctl_trace_str(e, "event"),
			 keelctl_trace_str(e, "account")[0] ? keelctl_trace_str(e, "account") : "-",
			 who, keelctl_trace_str(e, "detail"));
}

static void keelctl_trace_print(json_t *result)
{
	static const char *const headers[] = { "TIME",  "PROTO",  "IP",     "SESSION",
					       "EVENT", "ACCOUNT", "FROM/TO", "DETAIL" };
	json_t *m, *rows, *e;
	size_t i, j;

	json_array_foreach(json_object_get(result, "messages"), i, m) {
		const char *q = keelctl_trace_str(m, "queue_id"), *id = keelctl_trace_str(m, "message_id");

		if (q[0] != '\0' || id[0] != '\0')
			printf("%smessage queue=%s message-id=%s\n", i ? "\n" : "", q[0] ? q : "-",
			       id[0] ? id : "-");
		else
			printf("%ssession %s\n", i ? "\n" : "", keelctl_trace_str(m, "session"));
		rows = json_array();
		json_array_foreach(json_object_get(m, "events"), j, e)
			json_array_append_new(rows, keelctl_trace_row(e));
		keelctl_output_table(headers, 8, rows);
		json_decref(rows);
	}
	if (json_is_true(json_object_get(result, "truncated")))
		printf("\n(cut: %lld events matched; narrow the query)\n",
		       (long long)json_integer_value(json_object_get(result, "events")));
}

int keelctl_cmd_trace(struct keelctl *ctl, int argc, char **argv)
{
	const char *v[6] = { NULL }, *since = NULL, *until = NULL;
	static const char *const keys[] = { "message_id", "queue_id", "sender", "rcpt", "account",
					    "ip" };
	const struct keelctl_option opts[] = {
		{ "--message-id", true, &v[0], NULL }, { "--queue-id", true, &v[1], NULL },
		{ "--sender", true, &v[2], NULL },     { "--rcpt", true, &v[3], NULL },
		{ "--account", true, &v[4], NULL },    { "--ip", true, &v[5], NULL },
		{ "--since", true, &since, NULL },     { "--until", true, &until, NULL },
		{ NULL, false, NULL, NULL },
	};
	json_t *args, *result;
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	args = json_object();
	for (int i = 0; i < 6; i++)
		if (v[i] != NULL)
			json_object_set_new(args, keys[i], json_string(v[i]));
	if (keelctl_trace_times(ctl, args, since, until) < 0) {
		json_decref(args);
		return KEELCTL_EXIT_USAGE;
	}
	if (json_object_size(args) == 0) {
		json_decref(args);
		return keelctl_usage_error(ctl, "give at least one of --message-id, --queue-id, "
					   "--sender, --rcpt, --account, --ip, --since");
	}
	if (keelctl_client_call(ctl, "trace.query", args, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(result);
	else
		keelctl_trace_print(result);
	json_decref(result);
	return KEELCTL_EXIT_OK;
}

/* ---- audit ----------------------------------------------------------------- */

static void keelctl_audit_text(json_t *v, char *buf, size_t size)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	snprintf(buf, size, "%s", text != NULL ? text : "null");
	free(text);
}

static json_t *keelctl_audit_row(json_t *a)
{
	char when[32], id[32], args[2048], before[2048], after[2048];

	keelctl_trace_time(json_integer_value(json_object_get(a, "time")), when, sizeof(when));
	snprintf(id, sizeof(id), "%lld", (long long)json_integer_value(json_object_get(a, "id")));
	keelctl_audit_text(json_object_get(a, "args"), args, sizeof(args));
	keelctl_audit_text(json_object_get(a, "before"), before, sizeof(before));
	keelctl_audit_text(json_object_get(a, "after"), after, sizeof(after));
	return json_pack("[s, s, s, s, s, s, s]", id, when, keelctl_trace_str(a, "actor"),
			 keelctl_trace_str(a, "command"), args, before, after);
}

int keelctl_cmd_audit(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = { "ID",   "TIME",   "ACTOR", "COMMAND",
					       "ARGS", "BEFORE", "AFTER" };
	const char *since = NULL;
	const struct keelctl_option opts[] = {
		{ "--since", true, &since, NULL },
		{ NULL, false, NULL, NULL },
	};
	json_t *args;
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	args = json_object();
	if (keelctl_trace_times(ctl, args, since, NULL) < 0) {
		json_decref(args);
		return KEELCTL_EXIT_USAGE;
	}
	return keelctl_client_list(ctl, "audit.list", args, headers, 7, keelctl_audit_row);
}

int keelctl_cmd_audit_verify(struct keelctl *ctl, int argc, char **argv)
{
	json_t *result;
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "audit.verify", NULL, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(result);
	else
		printf("audit log intact: %lld records, last hash %s\n",
		       (long long)json_integer_value(json_object_get(result, "records")),
		       keelctl_trace_str(result, "last_hash"));
	json_decref(result);
	return KEELCTL_EXIT_OK;
}
