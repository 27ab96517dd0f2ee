/* The outbreak brake in the admin API (admin_abuse.c, docs/abuse.md):
 * user.unsuspend, and the send state user.show reports. */
#ifndef KEEL_ADMIN_ADMIN_ABUSE_H
#define KEEL_ADMIN_ADMIN_ABUSE_H

#include <stdint.h>

#include "admin/admin_request.h"

/* args: address.  Lifts a suspension of the right to send and restarts the
 * account's counters (also when it was not suspended); audited. */
admin_handler admin_abuse_unsuspend;

/* Adds "send_suspended", "suspended_reason", "suspended_at" and
 * "counters_since" to user (a user.show result). */
void admin_abuse_show(struct admin_request *req, int64_t user_id, json_t *user);

#endif
