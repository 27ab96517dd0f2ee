/* intercept.add, intercept.list, intercept.del and trace.export
 * (docs/admin-api.md, docs/trace.md "Interception"). */
#ifndef KEEL_ADMIN_ADMIN_INTERCEPT_H
#define KEEL_ADMIN_ADMIN_INTERCEPT_H

#include <stdbool.h>

#include "admin/admin_request.h"

/* Messages per trace.export page at most, and bytes (a single larger
 * message still makes a page of its own). */
#define ADMIN_EXPORT_PAGE_MESSAGES 200
#define ADMIN_EXPORT_PAGE_BYTES (4 * 1024 * 1024)
/* Events per trace.export page (by --account). */
#define ADMIN_EXPORT_PAGE_EVENTS 5000

admin_handler admin_intercept_add, admin_intercept_list, admin_intercept_del, admin_trace_export;

/* The audit log's before/after of an intercept.* change: the order (by the
 * argument id before, by the new id in req->result after), or NULL. */
json_t *admin_intercept_snapshot(struct admin_request *req, bool after);

#endif
