/* The failed-login blocks in the admin API (admin_auth.c, auth/throttle.h,
 * docs/reliability.md "AUTH brute force"): auth.blocks, auth.unblock. */
#ifndef KEEL_ADMIN_ADMIN_AUTH_H
#define KEEL_ADMIN_ADMIN_AUTH_H

#include "admin/admin_request.h"

/* No args.  The blocks in force: an array of {"key", "kind" ("ip" or
 * "account"), "failures", "until"} (until: Unix time). */
admin_handler admin_auth_blocks;
/* args: key, an IP or an account.  Lifts its block and forgets its
 * failures; "not_found" when none was in force; audited. */
admin_handler admin_auth_unblock;

#endif
