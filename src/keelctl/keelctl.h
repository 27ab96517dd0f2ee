/* keelctl: the command-line client of keeld's admin socket.
 *
 * main.c parses the global options and finds the command in one table;
 * keelctl_client.c speaks the wire format of src/admin/admin.h;
 * keelctl_output.c prints tables, key/value blocks and JSON; keelctl_cmd_*.c
 * hold the commands, one file per family.
 *
 * Exit codes: 0 success; 1 a problem, told in one line on stderr
 * ("keelctl: user add: domain example.org does not exist"); 2 wrong usage
 * (the problem and a usage line). */
#ifndef KEEL_KEELCTL_KEELCTL_H
#define KEEL_KEELCTL_KEELCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#define KEELCTL_EXIT_OK    0
#define KEELCTL_EXIT_FAIL  1
#define KEELCTL_EXIT_USAGE 2

struct keelctl_command;

/* One invocation. */
struct keelctl {
	const char *socket_path;
	bool json; /* --json: print results as JSON */
	const struct keelctl_command *cmd;
	int fd; /* -1 until connected */
};

typedef int keelctl_run_fn(struct keelctl *ctl, int argc, char **argv);

struct keelctl_command {
	const char *name; /* "user add": the words that select it */
	const char *args; /* usage after the name: "ADDRESS [--name NAME] ..." */
	const char *help; /* one line */
	keelctl_run_fn *run;
	int min_args, max_args; /* positional arguments; max -1: no limit */
};

/* ---- main.c ------------------------------------------------------------- */

/* Prints "keelctl: CMD: problem" and returns KEELCTL_EXIT_FAIL. */
int keelctl_fail(struct keelctl *ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "keelctl: CMD: problem" and the command's usage line; returns
 * KEELCTL_EXIT_USAGE. */
int keelctl_usage_error(struct keelctl *ctl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- keelctl_args.c: the options after a command's name ----------------- */

/* One command-line option a command accepts.  has_value: takes the next word
 * (or "--opt=VALUE"); the value goes to *value_r, a flag sets *flag_r. */
struct keelctl_option {
	const char *name; /* "--name" */
	bool has_value;
	const char **value_r;
	bool *flag_r;
};

/* Splits argv into options (per opts) and positional arguments (into pos,
 * in order; "--" ends options); checks the count against the command's
 * bounds.  Returns the number of positionals, or -1 after printing a usage
 * error. */
int keelctl_args_parse(struct keelctl *ctl, int argc, char **argv,
                       const struct keelctl_option *opts, char **pos);

/* Reads the password from standard input: its first line, newline
 * stripped.  Returns a malloc'd string, or NULL after printing the problem
 * (empty, or nothing to read). */
char *keelctl_args_read_password(struct keelctl *ctl);

/* ---- keelctl_client.c --------------------------------------------------- */

/* Sends {"cmd": cmd, "args": args} (args stolen, may be NULL) and waits for
 * the reply.  Returns 0 with the result in *result_r (new reference), or
 * prints the problem ("keelctl: CMD: error text") and returns -1. */
int keelctl_client_call(struct keelctl *ctl, const char *cmd, json_t *args, json_t **result_r);
void keelctl_client_close(struct keelctl *ctl);
/* A change: calls cmd and, on success, prints the result as JSON (--json)
 * or the message: tmpl with each "{key}" replaced by the result's field (the
 * server's canonical form of what was typed).  Returns the exit code. */
int keelctl_client_change(struct keelctl *ctl, const char *cmd, json_t *args, const char *tmpl);
/* Makes a table row (an array of strings) from one listed object. */
typedef json_t *keelctl_row_fn(json_t *item);
/* A listing: calls cmd and prints its array result as JSON (--json) or as
 * a table with the given headers.  Returns the exit code. */
int keelctl_client_list(struct keelctl *ctl, const char *cmd, json_t *args,
                        const char *const *headers, size_t n_cols, keelctl_row_fn *row);

/* ---- keelctl_output.c --------------------------------------------------- */

/* Prints JSON, indented, with a final newline. */
void keelctl_output_json(json_t *value);
/* A table: headers, then rows (an array of arrays of strings), each column
 * padded to its widest cell. */
void keelctl_output_table(const char *const *headers, size_t n_cols, json_t *rows);
/* "key   value" lines, keys padded to width. */
void keelctl_output_pair(const char *key, int width, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* 52428800 -> "50M", 1536 -> "1.5K", 100 -> "100". */
void keelctl_output_size(uint64_t bytes, char *buf, size_t size);
/* A UTC time: "2024-05-01 10:00:00Z". */
void keelctl_output_time(int64_t t, char *buf, size_t size);
/* Prints tmpl with every "{key}" replaced by obj's field, and a newline. */
void keelctl_output_template(const char *tmpl, json_t *obj);
/* A JSON value's text for a cell: strings as they are, numbers in decimal,
 * true/false as yes/no, null as "-". */
const char *keelctl_output_cell(json_t *v, char *buf, size_t size);

/* ---- commands ----------------------------------------------------------- */

keelctl_run_fn keelctl_cmd_status, keelctl_cmd_reload;
keelctl_run_fn keelctl_cmd_domain_add, keelctl_cmd_domain_alias, keelctl_cmd_domain_list,
    keelctl_cmd_domain_del, keelctl_cmd_domain_set, keelctl_cmd_domain_check;
keelctl_run_fn keelctl_cmd_user_add, keelctl_cmd_user_list, keelctl_cmd_user_show,
    keelctl_cmd_user_passwd, keelctl_cmd_user_rename, keelctl_cmd_user_set,
    keelctl_cmd_user_disable, keelctl_cmd_user_enable, keelctl_cmd_user_del,
    keelctl_cmd_user_unsuspend;
keelctl_run_fn keelctl_cmd_alias_add, keelctl_cmd_alias_list, keelctl_cmd_alias_del;
keelctl_run_fn keelctl_cmd_group_add, keelctl_cmd_group_del, keelctl_cmd_group_list,
    keelctl_cmd_group_member_add, keelctl_cmd_group_member_del;
keelctl_run_fn keelctl_cmd_config_list, keelctl_cmd_config_get, keelctl_cmd_config_set,
    keelctl_cmd_config_unset;
keelctl_run_fn keelctl_cmd_queue_list, keelctl_cmd_queue_show, keelctl_cmd_queue_hold,
    keelctl_cmd_queue_release, keelctl_cmd_queue_retry, keelctl_cmd_queue_delete,
    keelctl_cmd_queue_bounce, keelctl_cmd_queue_stats, keelctl_cmd_jobs;
/* keelctl_cmd_trace.c: puts --since/--until (either may be NULL) into args
 * as epoch seconds; -1 after a usage error, printed. */
int keelctl_trace_times(struct keelctl *ctl, json_t *args, const char *since, const char *until);
keelctl_run_fn keelctl_cmd_trace, keelctl_cmd_audit, keelctl_cmd_audit_verify;
keelctl_run_fn keelctl_cmd_intercept_add, keelctl_cmd_intercept_list, keelctl_cmd_intercept_del,
    keelctl_cmd_trace_export;
keelctl_run_fn keelctl_cmd_check;
keelctl_run_fn keelctl_cmd_ipgroup_add, keelctl_cmd_ipgroup_del, keelctl_cmd_ipgroup_list,
    keelctl_cmd_ipgroup_test, keelctl_cmd_ipgroup_entry_add, keelctl_cmd_ipgroup_entry_del;
keelctl_run_fn keelctl_cmd_service_set, keelctl_cmd_service_list;
keelctl_run_fn keelctl_cmd_auth_blocks, keelctl_cmd_auth_unblock;

#endif
