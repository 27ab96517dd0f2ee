/* libFuzzer target: the admin API request parser.  One input is one request
 * line as the admin socket reads it; what parses is then put through every
 * argument check the handlers use (string, bool, list, size, local address)
 * for each argument it carries, and the invariants of each answer are
 * checked.  No store: admin_request_parse() and admin_args_*() are the pure
 * half of admin_handle() and admin_arg_*(). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "admin/admin_request.h"
#include "mail/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A failed check must say why; a passed one must leave a usable value. */
static void fuzz_admin_arg(json_t *args, const char *name)
{
	char err[512], canon[ADDRESS_MAX + 1];
	const char *s = NULL;
	json_t *list = NULL;
	uint64_t n = 0;
	bool b = false, set = true;

	err[0] = '\0';
	if (admin_args_string(args, name, true, &s, err, sizeof(err)) == 0) {
		if (s == NULL || strlen(s) != json_string_length(json_object_get(args, name)))
			__builtin_trap();
		err[0] = '\0';
		if (admin_local_address_check(s, canon, sizeof(canon), err, sizeof(err)) == 0) {
			if (strlen(canon) > ADDRESS_MAX || strchr(canon, '@') == NULL)
				__builtin_trap();
		} else if (err[0] == '\0') {
			__builtin_trap();
		}
	} else if (err[0] == '\0' || s != NULL) {
		__builtin_trap();
	}
	err[0] = '\0';
	if (admin_args_bool(args, name, &b, err, sizeof(err)) < 0 && err[0] == '\0')
		__builtin_trap();
	err[0] = '\0';
	if (admin_args_strings(args, name, &list, err, sizeof(err)) == 0) {
		if (!json_is_array(list) || json_array_size(list) == 0)
			__builtin_trap();
	} else if (err[0] == '\0') {
		__builtin_trap();
	}
	err[0] = '\0';
	if (admin_args_size(args, name, &n, &set, err, sizeof(err)) == 0) {
		if (set && n > (uint64_t)INT64_MAX)
			__builtin_trap();
	} else if (err[0] == '\0' || set) {
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *request = NULL, *args = NULL, *v;
	const char *cmd = NULL, *key;
	char err[512];

	err[0] = '\0';
	if (admin_request_parse((const char *)data, size, &request, &cmd, &args, err,
	                        sizeof(err)) < 0) {
		if (err[0] == '\0' || request != NULL)
			__builtin_trap();
		return 0;
	}
	if (cmd == NULL || !admin_command_known(cmd) || (args != NULL && !json_is_object(args)))
		__builtin_trap();
	json_object_foreach(args, key, v)
		fuzz_admin_arg(args, key);
	/* The names handlers ask for whether or not the input has them. */
	fuzz_admin_arg(args, "address");
	fuzz_admin_arg(args, "quota");
	json_decref(request);
	return 0;
}
