/* Inside the admin API: one request in flight, the helpers every command
 * handler uses to read its arguments and answer, and the handlers.
 *
 * A handler is called on the admin loop with a request whose args is a JSON
 * object.  It must answer exactly once, with admin_request_ok() or
 * admin_request_fail() (or a helper that calls one of them), either at once
 * (reads) or later from a store or work pool callback (writes).  Answering
 * frees the request.
 *
 * Writes answer only from the committer's callback, so "ok" means durable.
 * Every change that succeeds is logged at info level through the audit line
 * the handler sets with admin_request_audit(): never put a password in it. */
#ifndef KEEL_ADMIN_ADMIN_REQUEST_H
#define KEEL_ADMIN_ADMIN_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "admin/admin.h"

struct store_audit;
struct store_reply;

struct admin_request {
	const struct admin_host *host;
	const char *cmd; /* "user.add": static, from the command table */
	char actor[32];  /* "uid=0" */
	json_t *args;    /* an object (own reference) */
	/* What a generic store callback answers on success: result (may be
	 * NULL for JSON null; an object gets "id" when want_id) and
	 * the audit line. */
	json_t *result;
	bool want_id; /* set result's "id" from the store's new row */
	char *audit;
	/* The audit record (admin_audit.c): the values before the change, the
	 * user it concerns, and the record admin_request_ok() writes. */
	json_t *audit_before;
	int64_t audit_user_id;
	struct store_audit *audit_record;
	admin_reply_cb *cb;
	void *ctx;
};

typedef void admin_handler(struct admin_request *req);

/* ---- answering --------------------------------------------------------- */

/* result: stolen; NULL means JSON null. */
void admin_request_ok(struct admin_request *req, json_t *result);
/* code: "usage", "not_found", "exists", "invalid", "quota", "io", "internal". */
void admin_request_fail(struct admin_request *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a failed store reply to its code and message. */
void admin_request_fail_store(struct admin_request *req, const struct store_reply *reply);

/* Sets the audit text logged on success ("address=a@b.test"); the line
 * becomes "info admin uid=0 cmd=user.add address=a@b.test". */
void admin_request_audit(struct admin_request *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Marks the change done: logs the audit line and prepares the audit
 * record, which admin_request_ok() then writes before answering.  Every
 * change calls it once it has succeeded (admin_request_store_done does). */
void admin_request_log(struct admin_request *req);

/* A store_done_cb for writes whose answer is req->result: logs the audit
 * line and answers ok, or answers the store's error. */
void admin_request_store_done(const struct store_reply *reply, void *ctx);

/* ---- the audit log (admin_audit.c) -------------------------------------- */

/* Before a command runs: keeps the values it may change (a setting, a
 * user row). */
void admin_audit_begin(struct admin_request *req);
/* After it succeeded: builds req->audit_record. */
void admin_audit_prepare(struct admin_request *req);
/* Writes req->audit_record, then answers ok with result (stolen). */
void admin_audit_write(struct admin_request *req, json_t *result);

/* ---- arguments --------------------------------------------------------- */
/* Each returns 0, or answers a "usage" error and returns -1 (the request is
 * then gone: return at once).  An absent optional argument leaves *value_r
 * as the caller set it. */

int admin_arg_string(struct admin_request *req, const char *name, bool required,
                     const char **value_r);
int admin_arg_bool(struct admin_request *req, const char *name, bool *value_r);
/* An array of strings (at least one). */
int admin_arg_strings(struct admin_request *req, const char *name, json_t **array_r);
/* A size: a JSON integer (bytes) or a string like "50M".  *set_r tells
 * whether it was given. */
int admin_arg_size(struct admin_request *req, const char *name, uint64_t *value_r, bool *set_r);

/* ---- parsing and checking without a store --------------------------------- */
/* The pure half of the above: no request, no store, nothing answered, so
 * fuzz/fuzz_admin.c runs them alone.  Each returns 0, or -1 with a message
 * naming the problem in err (size bytes, always terminated); the admin_arg_*
 * and admin_check_* functions are these plus the answer. */

/* One request line as the socket reads it: JSON (duplicate keys refused),
 * an object with a string "cmd" naming a known command and an "args" that
 * is absent, null or an object.  On success *request_r is the parsed object
 * (own reference), *cmd_r its command name (borrowed from it) and *args_r
 * its args object (borrowed; NULL when absent or null).  err names the
 * problem with the code "usage". */
int admin_request_parse(const char *line, size_t len, json_t **request_r, const char **cmd_r,
                        json_t **args_r, char *err, size_t size);
/* Whether name is in the command table (admin_command.c). */
bool admin_command_known(const char *name);

/* args: an object or NULL.  Leave *value_r alone when absent. */
int admin_args_string(json_t *args, const char *name, bool required, const char **value_r,
                      char *err, size_t size);
int admin_args_bool(json_t *args, const char *name, bool *value_r, char *err, size_t size);
int admin_args_strings(json_t *args, const char *name, json_t **array_r, char *err,
                       size_t size);
int admin_args_size(json_t *args, const char *name, uint64_t *value_r, bool *set_r, char *err,
                    size_t size);
/* admin_check_local_address() without the answer. */
int admin_local_address_check(const char *address, char *buf, size_t bufsize, char *err,
                              size_t size);

/* ---- validation shared by the families ----------------------------------- */

/* A local address (user, alias or group): valid syntax, a plain local part,
 * a host-name domain; canonical form into buf (ADDRESS_MAX + 1).  Answers
 * "invalid" and returns -1 on failure. */
int admin_check_local_address(struct admin_request *req, const char *address, char *buf,
                              size_t size);
/* The domain of a canonical local address must exist; answers "not_found"
 * ("domain example.org does not exist") and returns -1 if not. */
int admin_check_domain_exists(struct admin_request *req, const char *address);
/* The address must be free (no user, alias or group has it); answers
 * "exists" and returns -1 if not. */
int admin_check_address_free(struct admin_request *req, const char *address);

/* ---- handlers, one file per family --------------------------------------- */

admin_handler admin_status, admin_reload;
admin_handler admin_domain_add, admin_domain_del, admin_domain_list, admin_domain_set,
    admin_domain_check_outbound;
admin_handler admin_user_add, admin_user_list, admin_user_show, admin_user_passwd,
    admin_user_rename, admin_user_enable, admin_user_disable, admin_user_set, admin_user_del;
admin_handler admin_alias_add, admin_alias_del, admin_alias_list;
admin_handler admin_group_add, admin_group_del, admin_group_list, admin_group_member_add,
    admin_group_member_del;
admin_handler admin_config_list, admin_config_get, admin_config_set, admin_config_unset;
admin_handler admin_trace_query, admin_audit_list, admin_audit_verify;
/* admin_trace.c: argument NAME as epoch seconds into *t_r (0 when absent);
 * -1 after failing the request. */
int admin_trace_time(struct admin_request *req, const char *name, time_t *t_r);
admin_handler admin_check, admin_testhook_fail_flush;
admin_handler admin_queue_list, admin_queue_show, admin_queue_hold, admin_queue_release,
    admin_queue_retry, admin_queue_delete, admin_queue_bounce, admin_queue_stats, admin_jobs_list;

#endif
