#include "admin/admin_abuse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/abuse.h"
#include "lib/xalloc.h"
#include "mail/address.h"
#include "store/store.h"

void admin_abuse_show(struct admin_request *req, int64_t user_id, json_t *user)
{
	struct store_send_state st;

	if (store_user_send_state(req->host->reader, user_id, &st) < 0)
		return;
	json_object_set_new(user, "send_suspended", json_boolean(st.suspended));
	json_object_set_new(user, "suspended_reason", json_string(st.reason));
	json_object_set_new(user, "suspended_at", json_integer((json_int_t)st.suspended_at));
	json_object_set_new(user, "counters_since", json_integer((json_int_t)st.since));
}

struct admin_abuse_unsuspend {
	struct admin_request *req;
	int64_t user_id;
};

static void admin_abuse_unsuspended(const struct store_reply *reply, void *ctx)
{
	struct admin_abuse_unsuspend *u = ctx;

	/* Forgotten only now: until the write is durable the brake stays. */
	if (reply->status == 0)
		abuse_forget(u->user_id);
	admin_request_store_done(reply, u->req);
	free(u);
}

void admin_abuse_unsuspend(struct admin_request *req)
{
	struct admin_abuse_unsuspend *u;
	struct store_trace_event e = { 0 };
	struct store_send_state st;
	struct store_user user;
	const char *address;
	char canon[ADDRESS_MAX + 1];

	if (admin_arg_string(req, "address", true, &address) < 0 ||
	    admin_check_local_address(req, address, canon, sizeof(canon)) < 0)
		return;
	if (store_user_get(req->host->reader, canon, &user) < 0) {
		admin_request_fail(req, "not_found", "user %s does not exist", canon);
		return;
	}
	if (store_user_send_state(req->host->reader, user.id, &st) < 0) {
		admin_request_fail(req, "internal", "cannot read the send state of %s", canon);
		return;
	}
	e.time = time(NULL);
	snprintf(e.event, sizeof(e.event), "abuse");
	snprintf(e.account, sizeof(e.account), "%s", user.address);
	snprintf(e.protocol, sizeof(e.protocol), "admin");
	snprintf(e.detail, sizeof(e.detail), "unsuspended by %s (was %s); counters restarted",
		 req->actor, st.suspended ? "suspended" : "not suspended");
	req->result = json_pack("{s:s, s:b, s:b}", "address", user.address, "was_suspended",
				st.suspended, "send_suspended", 0);
	admin_request_audit(req, "address=%s was_suspended=%s", user.address,
			    st.suspended ? "yes" : "no");
	u = xcalloc(1, sizeof(*u));
	u->req = req;
	u->user_id = user.id;
	store_user_set_send_suspended(req->host->store, user.id, false, NULL, &e, 1,
				      req->host->loop, admin_abuse_unsuspended, u);
}
