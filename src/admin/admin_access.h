/* The access control commands (admin_access.c, docs/access.md). */
#ifndef KEEL_ADMIN_ADMIN_ACCESS_H
#define KEEL_ADMIN_ADMIN_ACCESS_H

#include "admin/admin_request.h"

admin_handler admin_ipgroup_add, admin_ipgroup_del, admin_ipgroup_list, admin_ipgroup_entry_add,
    admin_ipgroup_entry_del, admin_ipgroup_test;
admin_handler admin_service_set, admin_service_list;

#endif
