/* status, reload */
#include <time.h>

#include "admin/admin_request.h"
#include "store/store.h"

void admin_status(struct admin_request *req)
{
	const struct admin_host *host = req->host;
	struct store_stats st;
	time_t now = time(NULL);
	json_t *result;

	store_stats(host->reader, &st);
	result = json_pack(
	    "{s:s, s:I, s:I, s:o}", "version", KEEL_VERSION, "started", (json_int_t)host->started,
	    "uptime", (json_int_t)(now > host->started ? now - host->started : 0), "listeners",
	    host->listeners != NULL ? host->listeners(host->host_ctx) : json_array());
	json_object_set_new(result, "domains", json_integer((json_int_t)st.domains));
	json_object_set_new(result, "users", json_integer((json_int_t)st.users));
	json_object_set_new(result, "aliases", json_integer((json_int_t)st.aliases));
	json_object_set_new(result, "groups", json_integer((json_int_t)st.groups));
	json_object_set_new(result, "mailboxes", json_integer((json_int_t)st.mailboxes));
	json_object_set_new(result, "messages", json_integer((json_int_t)st.messages));
	json_object_set_new(result, "queued", json_integer((json_int_t)st.queued));
	json_object_set_new(result, "blobs", json_integer((json_int_t)st.blobs));
	json_object_set_new(result, "blob_bytes", json_integer((json_int_t)st.blob_bytes));
	json_object_set_new(result, "flushes", json_integer((json_int_t)st.flushes));
	json_object_set_new(result, "commits", json_integer((json_int_t)st.commits));
	json_object_set_new(result, "requests", json_integer((json_int_t)st.requests));
	admin_request_ok(req, result);
}

static void admin_reload_done(int status, const char *error, void *ctx)
{
	struct admin_request *req = ctx;

	if (status < 0) {
		admin_request_fail(req, "invalid", "%s", error != NULL ? error : "reload failed");
		return;
	}
	admin_request_log(req);
	admin_request_ok(req, NULL);
}

void admin_reload(struct admin_request *req)
{
	const struct admin_host *host = req->host;

	if (host->reload == NULL) {
		admin_request_fail(req, "internal", "reload is not available in this process");
		return;
	}
	host->reload(host->host_ctx, admin_reload_done, req);
}
