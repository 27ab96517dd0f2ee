/* keelctl queue list | show | hold | release | retry | delete | bounce | stats, jobs
 *
 * A change given ids is answered at once.  Given a filter it is a job on
 * the server: keelctl follows it (polling "jobs" on the same connection),
 * showing progress on a terminal, and prints the outcome; --background
 * prints the job's id and leaves it running. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keelctl/keelctl.h"

/* Polling interval while following a job. */
#define KEELCTL_JOB_POLL_US 100000

/* The filter options shared by list and the changes. */
struct keelctl_qfilter {
	const char *sender, *sender_domain, *rcpt, *rcpt_domain, *auth_user, *client_ip, *state,
	    *older_than, *limit;
	bool all, background;
};

#define KEELCTL_QFILTER_OPTS(f)                                                                    \
	{"--sender", true, &(f).sender, NULL},                                                     \
	    {"--sender-domain", true, &(f).sender_domain, NULL},                                   \
	    {"--rcpt", true, &(f).rcpt, NULL}, {"--rcpt-domain", true, &(f).rcpt_domain, NULL},    \
	    {"--auth-user", true, &(f).auth_user, NULL},                                           \
	    {"--client-ip", true, &(f).client_ip, NULL}, {"--state", true, &(f).state, NULL},      \
	{                                                                                          \
		"--older-than", true, &(f).older_than, NULL                                        \
	}

static json_t *keelctl_qfilter_args(const struct keelctl_qfilter *f)
{
	const char *const keys[] = {"sender",    "sender_domain", "rcpt",  "rcpt_domain",
	                            "auth_user", "client_ip",     "state", "older_than"};
	const char *const values[] = {f->sender,    f->sender_domain, f->rcpt,  f->rcpt_domain,
	                              f->auth_user, f->client_ip,     f->state, f->older_than};
	json_t *args = json_object();

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (values[i] != NULL)
			json_object_set_new(args, keys[i], json_string(values[i]));
	return args;
}

static const char *keelctl_queue_str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

/* "3m", "2h", "5d": how long ago t was. */
static void keelctl_queue_age(int64_t t, char *buf, size_t size)
{
	int64_t age = (int64_t)time(NULL) - t;

	if (age < 0)
		age = 0;
	if (age < 120)
		snprintf(buf, size, "%" PRId64 "s", age);
	else if (age < 2 * 3600)
		snprintf(buf, size, "%" PRId64 "m", age / 60);
	else if (age < 2 * 86400)
		snprintf(buf, size, "%" PRId64 "h", age / 3600);
	else
		snprintf(buf, size, "%" PRId64 "d", age / 86400);
}

static json_t *keelctl_queue_row(json_t *e)
{
	char id[32], attempts[32], age[32], reply[44];
	const char *last = keelctl_queue_str(e, "last_reply");
	const char *sender = keelctl_queue_str(e, "sender");

	keelctl_output_cell(json_object_get(e, "id"), id, sizeof(id));
	keelctl_output_cell(json_object_get(e, "attempts"), attempts, sizeof(attempts));
	keelctl_queue_age(json_integer_value(json_object_get(e, "created")), age, sizeof(age));
	/* The table stays one line per entry; --json has the whole reply. */
	if (strlen(last) > 40)
		snprintf(reply, sizeof(reply), "%.37s...", last);
	else
		snprintf(reply, sizeof(reply), "%s", *last != '\0' ? last : "-");
	return json_pack("[s, s, s, s, s, s, s, s]", id, keelctl_queue_str(e, "queue_id"), age,
	                 keelctl_queue_str(e, "state"), attempts, *sender != '\0' ? sender : "<>",
	                 keelctl_queue_str(e, "rcpt"), reply);
}

int keelctl_cmd_queue_list(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"ID",       "QUEUE ID", "AGE",  "STATE",
	                                      "ATTEMPTS", "SENDER",   "RCPT", "LAST REPLY"};
	struct keelctl_qfilter f = {0};
	const struct keelctl_option opts[] = {
	    KEELCTL_QFILTER_OPTS(f),
	    {"--limit", true, &f.limit, NULL},
	    {NULL, false, NULL, NULL},
	};
	char *pos[1];
	json_t *args;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	args = keelctl_qfilter_args(&f);
	if (f.limit != NULL) {
		char *end;
		long long n = strtoll(f.limit, &end, 10);
		if (*f.limit == '\0' || *end != '\0' || n < 0) {
			json_decref(args);
			return keelctl_usage_error(ctl, "--limit takes a count (0: no limit)");
		}
		json_object_set_new(args, "limit", json_integer(n));
	}
	return keelctl_client_list(ctl, "queue.list", args, headers, 8, keelctl_queue_row);
}

static void keelctl_queue_show_text(json_t *m)
{
	json_t *h = json_object_get(m, "headers"), *r;
	char created[64], next[64];
	size_t i;

	keelctl_output_time(json_integer_value(json_object_get(m, "created")), created,
	                    sizeof(created));
	keelctl_output_pair("queue id", 10, "%s", keelctl_queue_str(m, "queue_id"));
	keelctl_output_pair("sender", 10, "<%s>", keelctl_queue_str(m, "sender"));
	keelctl_output_pair("created", 10, "%s", created);
	keelctl_output_pair("size", 10, "%" JSON_INTEGER_FORMAT,
	                    json_integer_value(json_object_get(m, "size")));
	if (*keelctl_queue_str(m, "auth_user") != '\0')
		keelctl_output_pair("auth user", 10, "%s", keelctl_queue_str(m, "auth_user"));
	if (*keelctl_queue_str(m, "client_ip") != '\0')
		keelctl_output_pair("client ip", 10, "%s", keelctl_queue_str(m, "client_ip"));
	if (json_is_object(h)) {
		static const char *const fields[] = {"From", "To", "Subject", "Date", "Message-ID"};
		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (json_is_string(json_object_get(h, fields[i])))
				keelctl_output_pair(fields[i], 10, "%s",
				                    keelctl_queue_str(h, fields[i]));
	}
	printf("\nrecipients:\n");
	json_array_foreach(json_object_get(m, "recipients"), i, r)
	{
		keelctl_output_time(json_integer_value(json_object_get(r, "next_attempt")), next,
		                    sizeof(next));
		printf("  %" JSON_INTEGER_FORMAT "  %s  %s  attempts %" JSON_INTEGER_FORMAT
		       "  next %s\n",
		       json_integer_value(json_object_get(r, "id")), keelctl_queue_str(r, "rcpt"),
		       keelctl_queue_str(r, "state"),
		       json_integer_value(json_object_get(r, "attempts")), next);
		if (*keelctl_queue_str(r, "last_reply") != '\0')
			printf("      last reply: %s\n", keelctl_queue_str(r, "last_reply"));
	}
}

int keelctl_cmd_queue_show(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];
	json_t *m;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "queue.show", json_pack("{s:s}", "id", pos[0]), &m) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(m);
	else
		keelctl_queue_show_text(m);
	json_decref(m);
	return KEELCTL_EXIT_OK;
}

/* ---- changes -------------------------------------------------------------- */

/* An ID is a queue id (16 hex digits, a whole message) or an entry id (the
 * ID column of queue list). */
static int keelctl_queue_ids(struct keelctl *ctl, char **pos, int n, json_t *args)
{
	json_t *ids = json_array();

	for (int i = 0; i < n; i++) {
		const char *a = pos[i];
		size_t len = strlen(a);
		if (len == 16 && strspn(a, "0123456789ABCDEFabcdef") == len) {
			char up[17];
			for (size_t j = 0; j <= len; j++)
				up[j] = (char)(a[j] >= 'a' && a[j] <= 'f' ? a[j] - 32 : a[j]);
			json_array_append_new(ids, json_string(up));
		} else if (len > 0 && len < 16 && strspn(a, "0123456789") == len) {
			json_array_append_new(ids, json_integer(strtoll(a, NULL, 10)));
		} else {
			json_decref(ids);
			return keelctl_usage_error(ctl,
			                           "'%s' is neither a queue id nor an entry id", a),
			       -1;
		}
	}
	if (n > 0)
		json_object_set_new(args, "ids", ids);
	else
		json_decref(ids);
	return 0;
}

/* Shows "queue.hold: 35000/100000" on a terminal, in place. */
static void keelctl_queue_progress(json_t *job)
{
	if (!isatty(STDERR_FILENO))
		return;
	fprintf(stderr,
	        "\r%s job %" JSON_INTEGER_FORMAT ": %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
	        "   ",
	        keelctl_queue_str(job, "kind"), json_integer_value(json_object_get(job, "id")),
	        json_integer_value(json_object_get(job, "changed")),
	        json_integer_value(json_object_get(job, "total")));
}

/* Follows job id until it ends; its last state in *job_r. */
static int keelctl_queue_follow(struct keelctl *ctl, json_int_t id, json_t **job_r)
{
	for (;;) {
		json_t *list, *job;
		if (keelctl_client_call(ctl, "jobs", json_pack("{s:I}", "id", id), &list) < 0)
			return -1;
		job = json_incref(json_array_get(list, 0));
		json_decref(list);
		if (job == NULL)
			return keelctl_fail(ctl, "job %" JSON_INTEGER_FORMAT " vanished", id), -1;
		keelctl_queue_progress(job);
		if (strcmp(keelctl_queue_str(job, "state"), "running") != 0) {
			if (isatty(STDERR_FILENO))
				fputc('\n', stderr);
			*job_r = job;
			return 0;
		}
		json_decref(job);
		usleep(KEELCTL_JOB_POLL_US);
	}
}

static int keelctl_queue_job_done(struct keelctl *ctl, const char *action, json_t *job)
{
	int ret = KEELCTL_EXIT_OK;

	if (ctl->json)
		keelctl_output_json(job);
	else if (strcmp(keelctl_queue_str(job, "state"), "done") == 0)
		printf("%s: %" JSON_INTEGER_FORMAT " entries (job %" JSON_INTEGER_FORMAT
		       ", %" JSON_INTEGER_FORMAT " ms)\n",
		       action, json_integer_value(json_object_get(job, "changed")),
		       json_integer_value(json_object_get(job, "id")),
		       json_integer_value(json_object_get(job, "elapsed_ms")));
	if (strcmp(keelctl_queue_str(job, "state"), "done") != 0)
		ret = keelctl_fail(ctl,
		                   "job %" JSON_INTEGER_FORMAT " failed after %" JSON_INTEGER_FORMAT
		                   " entries: %s",
		                   json_integer_value(json_object_get(job, "id")),
		                   json_integer_value(json_object_get(job, "changed")),
		                   keelctl_queue_str(job, "error"));
	json_decref(job);
	return ret;
}

/* The server's answer to a change: the entries changed (ids), or a job. */
static int keelctl_queue_answer(struct keelctl *ctl, const char *action, bool background,
                                json_t *res)
{
	json_t *job = json_object_get(res, "job");
	json_t *done;

	if (!json_is_integer(job) || background) {
		if (ctl->json)
			keelctl_output_json(res);
		else if (json_is_integer(job))
			printf("started job %" JSON_INTEGER_FORMAT " (%s, %" JSON_INTEGER_FORMAT
			       " entries): see keelctl jobs\n",
			       json_integer_value(job), action,
			       json_integer_value(json_object_get(res, "total")));
		else
			printf("%s: %" JSON_INTEGER_FORMAT " entries\n", action,
			       json_integer_value(json_object_get(res, "changed")));
		json_decref(res);
		return KEELCTL_EXIT_OK;
	}
	if (keelctl_queue_follow(ctl, json_integer_value(job), &done) < 0) {
		json_decref(res);
		return KEELCTL_EXIT_FAIL;
	}
	json_decref(res);
	return keelctl_queue_job_done(ctl, action, done);
}

static int keelctl_queue_change(struct keelctl *ctl, int argc, char **argv, const char *action)
{
	struct keelctl_qfilter f = {0};
	const struct keelctl_option opts[] = {
	    KEELCTL_QFILTER_OPTS(f),
	    {"--all", false, NULL, &f.all},
	    {"--background", false, NULL, &f.background},
	    {NULL, false, NULL, NULL},
	};
	char **pos = calloc((size_t)argc + 1, sizeof(*pos)), cmd[32];
	json_t *args, *res;
	int n;

	n = keelctl_args_parse(ctl, argc, argv, opts, pos);
	if (n < 0) {
		free(pos);
		return KEELCTL_EXIT_USAGE;
	}
	args = keelctl_qfilter_args(&f);
	if (keelctl_queue_ids(ctl, pos, n, args) < 0) {
		free(pos);
		json_decref(args);
		return KEELCTL_EXIT_USAGE;
	}
	free(pos);
	/* The server refuses this too; saying it here names the option. */
	if (json_object_size(args) == 0 && !f.all &&
	    (strcmp(action, "delete") == 0 || strcmp(action, "bounce") == 0)) {
		json_decref(args);
		return keelctl_usage_error(ctl,
		                           "refusing to %s every queued message: give IDs, a "
		                           "filter, or --all",
		                           action);
	}
	if (f.all)
		json_object_set_new(args, "all", json_true());
	snprintf(cmd, sizeof(cmd), "queue.%s", action);
	if (keelctl_client_call(ctl, cmd, args, &res) < 0)
		return KEELCTL_EXIT_FAIL;
	return keelctl_queue_answer(ctl, action, f.background, res);
}

int keelctl_cmd_queue_hold(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_queue_change(ctl, argc, argv, "hold");
}

int keelctl_cmd_queue_release(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_queue_change(ctl, argc, argv, "release");
}

int keelctl_cmd_queue_retry(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_queue_change(ctl, argc, argv, "retry");
}

int keelctl_cmd_queue_delete(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_queue_change(ctl, argc, argv, "delete");
}

int keelctl_cmd_queue_bounce(struct keelctl *ctl, int argc, char **argv)
{
	return keelctl_queue_change(ctl, argc, argv, "bounce");
}

/* ---- stats, jobs ------------------------------------------------------------ */

int keelctl_cmd_queue_stats(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];
	json_t *res, *v, *d;
	const char *key;
	size_t i;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "queue.stats", NULL, &res) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json) {
		keelctl_output_json(res);
	} else {
		json_object_foreach(json_object_get(res, "by_state"), key, v)
		    keelctl_output_pair(key, 10, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if (json_array_size(json_object_get(res, "by_domain")) > 0)
			printf("\nby recipient domain (not yet delivered or failed):\n");
		json_array_foreach(json_object_get(res, "by_domain"), i, d)
		    printf("  %-40s %" JSON_INTEGER_FORMAT "\n", keelctl_queue_str(d, "domain"),
		           json_integer_value(json_object_get(d, "count")));
	}
	json_decref(res);
	return KEELCTL_EXIT_OK;
}

static json_t *keelctl_job_row(json_t *j)
{
	char id[32], changed[32], total[32], started[64], elapsed[32];
	json_t *about = json_object_get(j, "about");
	char *filter = json_dumps(about, JSON_COMPACT | JSON_SORT_KEYS);
	json_t *row;

	keelctl_output_cell(json_object_get(j, "id"), id, sizeof(id));
	keelctl_output_cell(json_object_get(j, "changed"), changed, sizeof(changed));
	keelctl_output_cell(json_object_get(j, "total"), total, sizeof(total));
	keelctl_output_time(json_integer_value(json_object_get(j, "started")), started,
	                    sizeof(started));
	snprintf(elapsed, sizeof(elapsed), "%.1fs",
	         (double)json_integer_value(json_object_get(j, "elapsed_ms")) / 1000.0);
	row = json_pack("[s, s, s, s, s, s, s, s]", id, keelctl_queue_str(j, "kind"),
	                keelctl_queue_str(j, "state"), changed, total, started, elapsed,
	                filter != NULL ? filter : "{}");
	free(filter);
	return row;
}

int keelctl_cmd_jobs(struct keelctl *ctl, int argc, char **argv)
{
	static const char *const headers[] = {"ID",    "KIND",    "STATE",   "CHANGED",
	                                      "TOTAL", "STARTED", "ELAPSED", "FILTER"};
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_list(ctl, "jobs", NULL, headers, 8, keelctl_job_row);
}
