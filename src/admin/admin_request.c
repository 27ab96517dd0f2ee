#include "admin/admin_request.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/address.h"
#include "settings/settings.h"
#include "store/store.h"

static void admin_request_free(struct admin_request *req)
{
	json_decref(req->args);
	json_decref(req->result);
	free(req->audit);
	json_decref(req->audit_before);
	free(req->audit_record);
	free(req);
}

void admin_request_ok(struct admin_request *req, json_t *result)
{
	json_t *reply;

	if (req->audit_record != NULL) {
		admin_audit_write(req, result);
		return;
	}
	reply = json_object();
	json_object_set_new(reply, "ok", json_true());
	json_object_set_new(reply, "result", result != NULL ? result : json_null());
	req->cb(reply, req->ctx);
	json_decref(reply);
	admin_request_free(req);
}

void admin_request_fail(struct admin_request *req, const char *code, const char *fmt, ...)
{
	json_t *reply = json_object();
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
	json_object_set_new(reply, "ok", json_false());
	json_object_set_new(reply, "error", json_string(msg));
	json_object_set_new(reply, "code", json_string(code));
	log_debug("admin", "%s cmd=%s result=failed code=%s error=\"%s\"", req->actor, req->cmd,
	          code, msg);
	free(msg);
	req->cb(reply, req->ctx);
	json_decref(reply);
	admin_request_free(req);
}

void admin_request_fail_store(struct admin_request *req, const struct store_reply *reply)
{
	static const char *const codes[] = {
	    [STORE_OK] = "internal",       [STORE_ERR_NOT_FOUND] = "not_found",
	    [STORE_ERR_EXISTS] = "exists", [STORE_ERR_INVALID] = "invalid",
	    [STORE_ERR_QUOTA] = "quota",   [STORE_ERR_IO] = "io",
	};
	const char *code = "internal";

	if ((unsigned)reply->err < sizeof(codes) / sizeof(codes[0]))
		code = codes[reply->err];
	if (reply->err == STORE_ERR_IO)
		log_error("admin", "%s cmd=%s error=\"%s\"", req->actor, req->cmd,
		          reply->error != NULL ? reply->error : "");
	admin_request_fail(req, code, "%s",
	                   reply->error != NULL && *reply->error ? reply->error : "store error");
}

void admin_request_audit(struct admin_request *req, const char *fmt, ...)
{
	va_list ap;

	free(req->audit);
	va_start(ap, fmt);
	if (vasprintf(&req->audit, fmt, ap) < 0)
		fatal("out of memory");
	va_end(ap);
}

void admin_request_log(struct admin_request *req)
{
	admin_audit_prepare(req);
	log_info("admin", "%s cmd=%s%s%s", req->actor, req->cmd, req->audit != NULL ? " " : "",
	         req->audit != NULL ? req->audit : "");
}

void admin_request_store_done(const struct store_reply *reply, void *ctx)
{
	struct admin_request *req = ctx;
	json_t *result;

	if (reply->status < 0) {
		admin_request_fail_store(req, reply);
		return;
	}
	if (req->want_id && json_is_object(req->result))
		json_object_set_new(req->result, "id", json_integer(reply->id));
	admin_request_log(req);
	result = req->result;
	req->result = NULL;
	admin_request_ok(req, result);
}

/* ---- parsing and checking without a store -------------------------------- */

int admin_request_parse(const char *line, size_t len, json_t **request_r, const char **cmd_r,
                        json_t **args_r, char *err, size_t size)
{
	json_error_t jerr;
	json_t *request = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *cmd, *args;

	if (request == NULL) {
		snprintf(err, size, "invalid JSON: %s", jerr.text);
		return -1;
	}
	cmd = json_object_get(request, "cmd");
	args = json_object_get(request, "args");
	if (!json_is_object(request) || !json_is_string(cmd)) {
		snprintf(err, size, "a request is an object with a string \"cmd\"");
	} else if (!admin_command_known(json_string_value(cmd))) {
		snprintf(err, size, "unknown command %s", json_string_value(cmd));
	} else if (args != NULL && !json_is_null(args) && !json_is_object(args)) {
		snprintf(err, size, "\"args\" must be an object");
	} else {
		*request_r = request;
		*cmd_r = json_string_value(cmd);
		*args_r = json_is_object(args) ? args : NULL;
		return 0;
	}
	json_decref(request);
	return -1;
}

int admin_args_string(json_t *args, const char *name, bool required, const char **value_r,
                      char *err, size_t size)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || json_is_null(v)) {
		if (!required)
			return 0;
		snprintf(err, size, "missing argument %s", name);
		return -1;
	}
	if (!json_is_string(v)) {
		snprintf(err, size, "argument %s must be a string", name);
		return -1;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, size, "argument %s contains a NUL character", name);
		return -1;
	}
	*value_r = json_string_value(v);
	return 0;
}

int admin_args_bool(json_t *args, const char *name, bool *value_r, char *err, size_t size)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		snprintf(err, size, "argument %s must be true or false", name);
		return -1;
	}
	*value_r = json_is_true(v);
	return 0;
}

int admin_args_strings(json_t *args, const char *name, json_t **array_r, char *err,
                       size_t size)
{
	json_t *v = json_object_get(args, name);
	json_t *item;
	size_t i;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		snprintf(err, size, "argument %s must be a list of strings", name);
		return -1;
	}
	for (i = 0; i < json_array_size(v) && (item = json_array_get(v, i)) != NULL; i++) {
		if (!json_is_string(item) ||
		    strlen(json_string_value(item)) != json_string_length(item)) {
			snprintf(err, size, "argument %s must be a list of strings", name);
			return -1;
		}
	}
	*array_r = v;
	return 0;
}

int admin_args_size(json_t *args, const char *name, uint64_t *value_r, bool *set_r, char *err,
                    size_t size)
{
	json_t *v = json_object_get(args, name);
	int64_t n;

	*set_r = false;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		n = json_integer_value(v);
	} else if (!json_is_string(v) || settings_parse_size(json_string_value(v), &n) < 0) {
		snprintf(err, size, "invalid %s '%s': expected a size like 123, 10K, 50M or 2G",
		         name, json_is_string(v) ? json_string_value(v) : "(not a string)");
		return -1;
	}
	*value_r = (uint64_t)n;
	*set_r = true;
	return 0;
}

int admin_local_address_check(const char *address, char *buf, size_t bufsize, char *err,
                              size_t size)
{
	struct address a;
	const char *error;

	if (address_parse(address, false, &a, &error) < 0) {
		snprintf(err, size, "invalid address '%s': %s", address, error);
		return -1;
	}
	if (a.quoted || a.literal) {
		snprintf(err, size,
		         "invalid address '%s': a local address needs a plain local part and "
		         "a domain name",
		         address);
		return -1;
	}
	if (strlen(a.localpart) > STORE_LOCAL_MAX || address_format(&a, buf, bufsize) < 0) {
		snprintf(err, size, "invalid address '%s': too long", address);
		return -1;
	}
	return 0;
}

/* ---- the same, answering the request -------------------------------------- */

/* Long enough for any message above with a 4 KiB value in it; a longer
 * value is cut in the message, never overrun. */
#define ADMIN_ERR_MAX 4608

int admin_arg_string(struct admin_request *req, const char *name, bool required,
                     const char **value_r)
{
	char err[ADMIN_ERR_MAX];

	if (admin_args_string(req->args, name, required, value_r, err, sizeof(err)) < 0) {
		admin_request_fail(req, "usage", "%s", err);
		return -1;
	}
	return 0;
}

int admin_arg_bool(struct admin_request *req, const char *name, bool *value_r)
{
	char err[ADMIN_ERR_MAX];

	if (admin_args_bool(req->args, name, value_r, err, sizeof(err)) < 0) {
		admin_request_fail(req, "usage", "%s", err);
		return -1;
	}
	return 0;
}

int admin_arg_strings(struct admin_request *req, const char *name, json_t **array_r)
{
	char err[ADMIN_ERR_MAX];

	if (admin_args_strings(req->args, name, array_r, err, sizeof(err)) < 0) {
		admin_request_fail(req, "usage", "%s", err);
		return -1;
	}
	return 0;
}

int admin_arg_size(struct admin_request *req, const char *name, uint64_t *value_r, bool *set_r)
{
	char err[ADMIN_ERR_MAX];

	if (admin_args_size(req->args, name, value_r, set_r, err, sizeof(err)) < 0) {
		admin_request_fail(req, "invalid", "%s", err);
		return -1;
	}
	return 0;
}

int admin_check_local_address(struct admin_request *req, const char *address, char *buf,
                              size_t size)
{
	char err[ADMIN_ERR_MAX];

	if (admin_local_address_check(address, buf, size, err, sizeof(err)) < 0) {
		admin_request_fail(req, "invalid", "%s", err);
		return -1;
	}
	return 0;
}

int admin_check_domain_exists(struct admin_request *req, const char *address)
{
	const char *at = strrchr(address, '@');
	const char *domain = at != NULL ? at + 1 : address;
	struct store_domain d;

	if (store_domain_get(req->host->reader, domain, &d) < 0) {
		admin_request_fail(req, "not_found", "domain %s does not exist", domain);
		return -1;
	}
	return 0;
}

int admin_check_address_free(struct admin_request *req, const char *address)
{
	static const char *const kinds[] = {
	    [STORE_ADDR_NONE] = "",
	    [STORE_ADDR_USER] = "a user",
	    [STORE_ADDR_ALIAS] = "an alias",
	    [STORE_ADDR_GROUP] = "a group",
	};
	int64_t id;
	enum store_addr_kind kind = store_address_kind(req->host->reader, address, &id);

	if (kind == STORE_ADDR_NONE)
		return 0;
	admin_request_fail(req, "exists", "%s is already %s", address,
	                   (unsigned)kind < 4 ? kinds[kind] : "taken");
	return -1;
}
