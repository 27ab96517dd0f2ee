#include "admin/admin_auth.h"

#include <stdlib.h>
#include <time.h>

#include "auth/throttle.h"
#include "lib/xalloc.h"

/* The table lives in the worker, as does the admin server; a process
 * without one (a test harness) has no blocks. */
void admin_auth_blocks(struct admin_request *req)
{
	struct auth_throttle *t = auth_throttle_process();
	struct auth_throttle_block *blocks;
	time_t now = time(NULL);
	size_t n, max = AUTH_THROTTLE_SLOTS;
	json_t *result = json_array();

	if (t == NULL) {
		admin_request_ok(req, result);
		return;
	}
	blocks = xcalloc(max, sizeof(*blocks));
	n = auth_throttle_blocks(t, now, blocks, max);
	for (size_t i = 0; i < n && i < max; i++)
		json_array_append_new(result,
				      json_pack("{s:s, s:s, s:I, s:I}", "key", blocks[i].key,
						"kind", blocks[i].is_ip ? "ip" : "account",
						"failures", (json_int_t)blocks[i].failures,
						"until", (json_int_t)blocks[i].until));
	free(blocks);
	admin_request_ok(req, result);
}

void admin_auth_unblock(struct admin_request *req)
{
	struct auth_throttle *t = auth_throttle_process();
	const char *key;
	unsigned lifted;

	if (admin_arg_string(req, "key", true, &key) < 0)
		return;
	lifted = t != NULL ? auth_throttle_unblock(t, key, time(NULL)) : 0;
	if (lifted == 0) {
		admin_request_fail(req, "not_found", "%s is not blocked (see auth blocks)", key);
		return;
	}
	admin_request_audit(req, "key=%s lifted=%u", key, lifted);
	admin_request_log(req);
	admin_request_ok(req, json_pack("{s:s, s:I}", "key", key, "lifted", (json_int_t)lifted));
}
