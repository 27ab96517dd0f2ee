/* test.fail_flush: switches the store's injected flush failures
 * (store_inject_flush_failures) from outside, so that an end-to-end test
 * can see what a failing fsync does to a client (docs/reliability.md).
 *
 * Refused unless keeld was started with KEEL_TEST_HOOKS=1 in its
 * environment (the worker inherits it): a production server, started by its
 * unit or its init script, never has it, and the admin socket alone cannot
 * turn it on. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_request.h"
#include "lib/log.h"
#include "store/store.h"

#define ADMIN_TESTHOOK_ENV "KEEL_TEST_HOOKS"

static bool admin_testhook_enabled(void)
{
	const char *v = getenv(ADMIN_TESTHOOK_ENV);

	return v != NULL && strcmp(v, "1") == 0;
}

/* args: {"fail": bool, "count": N}.  fail true: the next count flushes
 * fail (without count: every flush, until fail false). */
void admin_testhook_fail_flush(struct admin_request *req)
{
	json_t *count = json_object_get(req->args, "count");
	bool fail = false;
	json_int_t n = UINT_MAX;

	if (!admin_testhook_enabled()) {
		admin_request_fail(req, "invalid",
		                   "test hooks are off: keeld was not started with %s=1",
		                   ADMIN_TESTHOOK_ENV);
		return;
	}
	if (json_object_get(req->args, "fail") == NULL) {
		admin_request_fail(req, "usage", "missing argument \"fail\"");
		return;
	}
	if (admin_arg_bool(req, "fail", &fail) < 0)
		return;
	if (count != NULL && (!json_is_integer(count) || json_integer_value(count) < 1 ||
	                      json_integer_value(count) > UINT_MAX)) {
		admin_request_fail(req, "usage", "\"count\" must be an integer from 1 to %u",
		                   UINT_MAX);
		return;
	}
	if (count != NULL)
		n = json_integer_value(count);
	store_inject_flush_failures(req->host->store, fail ? (unsigned)n : 0);
	log_warn("admin", "%s cmd=test.fail_flush event=test_hook fail=%s count=%lld", req->actor,
	         fail ? "yes" : "no", fail ? (long long)n : 0LL);
	admin_request_ok(req, json_pack("{s:b, s:I}", "fail", fail, "count", fail ? n : 0));
}
