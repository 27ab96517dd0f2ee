/* The audit log (docs/trace.md, "Audit"): every change made through the
 * admin API becomes a hash-chained record, and audit.list / audit.verify
 * read it back.
 *
 * A handler marks its success with admin_request_log(); that builds the
 * record (the "after" values are read then, once the change is committed)
 * and admin_request_ok() writes it before the client is answered.  The
 * record is a second write right after the change, not part of it: the
 * handlers' writes are many different store operations, and a change
 * without its record can only happen if the store fails between the two,
 * which the error log then says.  So "ok" means the change and its record
 * are both durable. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_request.h"
#include "admin/admin_intercept.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"
#include "store/store.h"
#include "trace/trace_audit.h"

#define ADMIN_AUDIT_PAGE 500

/* ---- snapshots ------------------------------------------------------------ */

static bool admin_audit_secret(const char *name)
{
	return strstr(name, "password") != NULL || strstr(name, "secret") != NULL ||
	       strstr(name, "token") != NULL;
}

/* The arguments with every secret replaced, and a secret setting's value. */
static json_t *admin_audit_args(const struct admin_request *req)
{
	json_t *args = json_deep_copy(req->args), *v;
	const char *name, *key = json_string_value(json_object_get(req->args, "key"));

	json_object_foreach(args, name, v)
		if (admin_audit_secret(name))
			json_object_set_new(args, name, json_string("********"));
	if (strncmp(req->cmd, "config.", 7) == 0 && key != NULL && admin_audit_secret(key) &&
	    json_object_get(args, "value") != NULL)
		json_object_set_new(args, "value", json_string("********"));
	return args;
}

/* A user row as the audit shows it: never the password hash, only whether
 * there is one. */
static json_t *admin_audit_user(const struct store_user *u)
{
	return json_pack("{s:I, s:s, s:s, s:I, s:b, s:b}", "id", (json_int_t)u->id, "address",
			 u->address, "name", u->name, "quota", (json_int_t)u->quota, "enabled",
			 u->enabled, "password_set", u->password_hash[0] != '\0');
}

static json_t *admin_audit_setting(const struct admin_request *req)
{
	const char *key = json_string_value(json_object_get(req->args, "key"));
	char value[STORE_VALUE_MAX + 1];

	if (key == NULL || settings_find(key) == NULL)
		return NULL;
	settings_get(key, value, sizeof(value));
	return json_pack("{s:s, s:s, s:b}", "key", key, "value",
			 admin_audit_secret(key) ? "********" : value, "set",
			 settings_is_set(key));
}

/* Where cheap: a setting's value, a user's row. */
static json_t *admin_audit_snapshot(struct admin_request *req, bool after)
{
	const char *address = json_string_value(json_object_get(req->args, "address"));
	struct store_user u;
	int ret = -1;

	if (strcmp(req->cmd, "config.set") == 0 || strcmp(req->cmd, "config.unset") == 0)
		return admin_audit_setting(req);
	if (strncmp(req->cmd, "intercept.", 10) == 0)
		return admin_intercept_snapshot(req, after);
	if (strncmp(req->cmd, "user.", 5) != 0 || strcmp(req->cmd, "user.list") == 0 ||
	    strcmp(req->cmd, "user.show") == 0)
		return NULL;
	/* By id once known, so that a rename's "after" finds the new name. */
	if (req->audit_user_id != 0)
		ret = store_user_get_by_id(req->host->reader, req->audit_user_id, &u);
	else if (address != NULL)
		ret = store_user_get(req->host->reader, address, &u);
	if (ret < 0)
		return NULL;
	if (!after)
		req->audit_user_id = u.id;
	return admin_audit_user(&u);
}

void admin_audit_begin(struct admin_request *req)
{
	req->audit_before = admin_audit_snapshot(req, false);
}

static void admin_audit_text(json_t *v, char *buf, size_t size)
{
	char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
			       : NULL;

	snprintf(buf, size, "%s", text != NULL ? text : "null");
	free(text);
}

void admin_audit_prepare(struct admin_request *req)
{
	struct store_audit *a = xcalloc(1, sizeof(*a));
	json_t *args = admin_audit_args(req), *after = admin_audit_snapshot(req, true);

	snprintf(a->actor, sizeof(a->actor), "%s", req->actor);
	snprintf(a->command, sizeof(a->command), "%s", req->cmd);
	admin_audit_text(args, a->args, sizeof(a->args));
	admin_audit_text(req->audit_before, a->before, sizeof(a->before));
	admin_audit_text(after, a->after, sizeof(a->after));
	json_decref(args);
	json_decref(after);
	free(req->audit_record);
	req->audit_record = a;
}

/* ---- writing ------------------------------------------------------------- */

struct admin_audit_write {
	struct admin_request *req;
	json_t *result;
};

static void admin_audit_written(const struct store_reply *reply, void *ctx)
{
	struct admin_audit_write *w = ctx;

	if (reply->status < 0)
		log_error("admin", "%s cmd=%s event=audit_failed error=\"%s\"", w->req->actor,
			  w->req->cmd, reply->error != NULL ? reply->error : "");
	admin_request_ok(w->req, w->result);
	free(w);
}

void admin_audit_write(struct admin_request *req, json_t *result)
{
	struct admin_audit_write *w = xcalloc(1, sizeof(*w));
	struct store_audit *a = req->audit_record;

	req->audit_record = NULL;
	w->req = req;
	w->result = result;
	store_audit_append(req->host->store, a, req->host->loop, admin_audit_written, w);
	free(a);
}

/* ---- reading ------------------------------------------------------------- */

/* A field written as JSON text; the text itself if it no longer parses
 * (cut at its field's size). */
static json_t *admin_audit_json(const char *text)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);

	return v != NULL ? v : json_string(text);
}

static json_t *admin_audit_record_json(const struct store_audit *a)
{
	json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s}", "id", (json_int_t)a->id, "time",
			      (json_int_t)a->time, "actor", a->actor, "command", a->command,
			      "hash", a->hash);

	json_object_set_new(o, "args", admin_audit_json(a->args));
	json_object_set_new(o, "before", admin_audit_json(a->before));
	json_object_set_new(o, "after", admin_audit_json(a->after));
	return o;
}

/* args: since (optional, epoch seconds). */
void admin_audit_list(struct admin_request *req)
{
	json_t *since = json_object_get(req->args, "since"), *result = json_array();
	struct store_audit *list;
	int64_t after_id = 0;
	size_t n;

	if (since != NULL && !json_is_integer(since)) {
		json_decref(result);
		admin_request_fail(req, "usage", "argument since must be an integer (epoch seconds)");
		return;
	}
	do {
		if (store_audit_list(req->host->reader, (time_t)json_integer_value(since), after_id,
				     ADMIN_AUDIT_PAGE, &list, &n) < 0) {
			json_decref(result);
			admin_request_fail(req, "io", "reading the audit log failed");
			return;
		}
		for (size_t i = 0; i < n; i++)
			json_array_append_new(result, admin_audit_record_json(&list[i]));
		after_id = n > 0 ? list[n - 1].id : after_id;
		free(list);
	} while (n == ADMIN_AUDIT_PAGE);
	admin_request_ok(req, result);
}

/* Walks the whole chain a page at a time; -1 with v->bad_id set when it
 * breaks, -2 when the store cannot be read. */
static int admin_audit_walk(struct admin_request *req, struct trace_audit_verify *v,
			    int64_t *count_r)
{
	struct trace_audit_fields f;
	struct store_audit *list;
	size_t n;
	int ret = 0;

	do {
		if (store_audit_list(req->host->reader, 0, v->last_id, ADMIN_AUDIT_PAGE, &list,
				     &n) < 0)
			return -2;
		for (size_t i = 0; i < n && ret == 0; i++) {
			f = (struct trace_audit_fields){ list[i].id,    (int64_t)list[i].time,
							 list[i].actor, list[i].command,
							 list[i].args,  list[i].before,
							 list[i].after };
			/* The chain starts at record 1: a later first record
			 * means the ones before it were removed. */
			if (v->last_id == 0 && f.id != 1) {
				v->bad_id = f.id;
				v->problem = "a record before it is missing";
				ret = -1;
			} else {
				ret = trace_audit_verify_step(v, &f, list[i].hash);
			}
			*count_r += ret == 0;
		}
		free(list);
	} while (ret == 0 && n == ADMIN_AUDIT_PAGE);
	return ret;
}

void admin_audit_verify(struct admin_request *req)
{
	struct trace_audit_verify v;
	int64_t count = 0, last_id;
	int ret;

	trace_audit_verify_init(&v);
	ret = admin_audit_walk(req, &v, &count);
	if (ret == -2 || (ret == 0 && store_audit_last_id(req->host->reader, &last_id) < 0)) {
		admin_request_fail(req, "io", "reading the audit log failed");
		return;
	}
	if (ret == 0 && last_id != v.last_id) {
		admin_request_fail(req, "invalid",
				   "record %" PRId64 ": missing (the log ends at record %" PRId64
				   ")", last_id, v.last_id);
		return;
	}
	if (ret < 0) {
		admin_request_fail(req, "invalid", "record %" PRId64 ": %s", v.bad_id, v.problem);
		return;
	}
	admin_request_ok(req, json_pack("{s:b, s:I, s:s}", "ok", true, "records",
					(json_int_t)count, "last_hash", v.last_hash));
}
