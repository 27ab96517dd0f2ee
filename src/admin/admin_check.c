/* check: store_check() on the work pool, so that reading every segment
 * never holds the admin loop; the answer comes back on the admin loop. */
#include <stdio.h>
#include <stdlib.h>

#include "admin/admin_request.h"
#include "lib/log.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "store/store.h"

struct admin_check_job {
	struct admin_request *req;
	struct store_check_result res;
	int status;
	char error[768];
};

static void admin_check_work(void *arg)
{
	struct admin_check_job *job = arg;
	const char *error;

	job->status = store_check(job->req->host->store, &job->res, &error);
	if (job->status < 0)
		snprintf(job->error, sizeof(job->error), "%s", error);
}

static json_t *admin_check_lines(char **lines, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(lines[i]));
	return a;
}

/* {"clean", "messages", "blobs", "segments", "records", "problems", "notes",
 *  "more_problems"} */
static json_t *admin_check_json(const struct store_check_result *res)
{
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:o, s:I, s:o}", "clean", res->n_problems == 0,
	                 "messages", (json_int_t)res->messages, "blobs", (json_int_t)res->blobs,
	                 "segments", (json_int_t)res->segments, "records", (json_int_t)res->records,
	                 "problems", admin_check_lines(res->problems, res->n_problems),
	                 "more_problems", (json_int_t)res->more_problems, "notes",
	                 admin_check_lines(res->notes, res->n_notes));
}

static void admin_check_done(void *arg)
{
	struct admin_check_job *job = arg;
	struct admin_request *req = job->req;

	if (job->status < 0) {
		admin_request_fail(req, "io", "cannot check the store: %s", job->error);
	} else {
		log_info("admin",
		         "%s cmd=check problems=%zu messages=%llu blobs=%llu segments=%llu",
		         req->actor, job->res.n_problems + (size_t)job->res.more_problems,
		         (unsigned long long)job->res.messages, (unsigned long long)job->res.blobs,
		         (unsigned long long)job->res.segments);
		admin_request_ok(req, admin_check_json(&job->res));
	}
	store_check_result_deinit(&job->res);
	free(job);
}

void admin_check(struct admin_request *req)
{
	struct admin_check_job *job;

	if (req->host->workpool == NULL) {
		admin_request_fail(req, "internal", "check is not available in this process");
		return;
	}
	job = xcalloc(1, sizeof(*job));
	job->req = req;
	workpool_run(req->host->workpool, admin_check_work, req->host->loop, admin_check_done, job);
}
