/* The job runner: a registry of jobs on the admin loop, each stepping
 * through its work one bounded piece at a time (admin_job.h). */
#include "admin/admin_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_request.h"
#include "lib/log.h"
#include "lib/xalloc.h"

struct admin_job_waiter {
	struct admin_job_waiter *next;
	struct admin_request *req;
};

struct admin_job {
	struct admin_jobs *jobs;
	struct admin_job *next; /* registry order: oldest first */
	unsigned id;
	char kind[32];
	char actor[32];
	json_t *about;
	enum admin_job_state state;
	uint64_t total, matched, changed, steps;
	time_t started, finished;
	struct timespec t0;
	long long elapsed_ms;
	char error[256];
	bool in_flight; /* a step has started and not reported back */
	struct admin_job_waiter *waiters;
	const struct admin_job_ops *ops;
	void *data;
};

struct admin_jobs {
	struct admin_job *head, *tail;
	unsigned next_id;
	unsigned n_in_flight;
	bool stopping;
};

struct admin_jobs *admin_jobs_new(void)
{
	return xcalloc(1, sizeof(struct admin_jobs));
}

static void admin_job_free(struct admin_job *job)
{
	if (job->ops->free != NULL)
		job->ops->free(job->data);
	json_decref(job->about);
	free(job);
}

static void admin_jobs_destroy(struct admin_jobs *jobs)
{
	while (jobs->head != NULL) {
		struct admin_job *job = jobs->head;
		jobs->head = job->next;
		admin_job_free(job);
	}
	free(jobs);
}

void admin_jobs_free(struct admin_jobs **jobsp)
{
	struct admin_jobs *jobs = *jobsp;

	if (jobs == NULL)
		return;
	*jobsp = NULL;
	jobs->stopping = true;
	/* A step in flight still holds the registry; its report frees it. */
	if (jobs->n_in_flight == 0)
		admin_jobs_destroy(jobs);
}

/* Drops the oldest finished jobs beyond ADMIN_JOBS_KEPT. */
static void admin_jobs_prune(struct admin_jobs *jobs)
{
	size_t finished = 0;
	struct admin_job **p;

	for (struct admin_job *j = jobs->head; j != NULL; j = j->next)
		finished += j->state != ADMIN_JOB_RUNNING;
	for (p = &jobs->head; *p != NULL && finished > ADMIN_JOBS_KEPT;) {
		struct admin_job *j = *p;
		if (j->state == ADMIN_JOB_RUNNING) {
			p = &j->next;
			continue;
		}
		*p = j->next;
		admin_job_free(j);
		finished--;
	}
	jobs->tail = NULL;
	for (struct admin_job *j = jobs->head; j != NULL; j = j->next)
		jobs->tail = j;
}

static void admin_job_answer(struct admin_job *job, struct admin_request *req)
{
	if (job->state == ADMIN_JOB_DONE)
		admin_request_ok(req, admin_job_json(job));
	else
		admin_request_fail(req, "io", "job %u failed after %llu changes: %s", job->id,
		                   (unsigned long long)job->changed, job->error);
}

static void admin_job_end(struct admin_job *job, const char *error)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	job->elapsed_ms =
	    (now.tv_sec - job->t0.tv_sec) * 1000LL + (now.tv_nsec - job->t0.tv_nsec) / 1000000L;
	job->finished = time(NULL);
	job->state = error != NULL ? ADMIN_JOB_FAILED : ADMIN_JOB_DONE;
	if (error != NULL)
		snprintf(job->error, sizeof(job->error), "%s", error);
	log_info("admin",
	         "%s event=job_%s job=%u kind=%s matched=%llu changed=%llu steps=%llu "
	         "elapsed_ms=%lld%s%s%s",
	         job->actor, error != NULL ? "failed" : "done", job->id, job->kind,
	         (unsigned long long)job->matched, (unsigned long long)job->changed,
	         (unsigned long long)job->steps, job->elapsed_ms, error != NULL ? " error=\"" : "",
	         error != NULL ? error : "", error != NULL ? "\"" : "");
	if (job->ops->finish != NULL)
		job->ops->finish(job, job->data);
	while (job->waiters != NULL) {
		struct admin_job_waiter *w = job->waiters;
		job->waiters = w->next;
		admin_job_answer(job, w->req);
		free(w);
	}
}

static void admin_job_step(struct admin_job *job)
{
	job->in_flight = true;
	job->jobs->n_in_flight++;
	job->steps++;
	job->ops->step(job, job->data);
}

struct admin_job *admin_job_start(struct admin_jobs *jobs, const char *kind, const char *actor,
                                  json_t *about, uint64_t total, const struct admin_job_ops *ops,
                                  void *data)
{
	struct admin_job *job = xcalloc(1, sizeof(*job));

	job->jobs = jobs;
	job->id = ++jobs->next_id;
	snprintf(job->kind, sizeof(job->kind), "%s", kind);
	snprintf(job->actor, sizeof(job->actor), "%s", actor);
	job->about = about != NULL ? about : json_object();
	job->total = total;
	job->started = time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &job->t0);
	job->ops = ops;
	job->data = data;
	if (jobs->tail != NULL)
		jobs->tail->next = job;
	else
		jobs->head = job;
	jobs->tail = job;
	log_info("admin", "%s event=job_started job=%u kind=%s total=%llu", actor, job->id, kind,
	         (unsigned long long)total);
	admin_job_step(job);
	return job;
}

void admin_job_step_done(struct admin_job *job, uint64_t matched, uint64_t changed, bool more,
                         const char *error)
{
	struct admin_jobs *jobs = job->jobs;

	job->in_flight = false;
	jobs->n_in_flight--;
	job->matched += matched;
	job->changed += changed;
	if (error == NULL && jobs->stopping)
		error = "keeld is stopping";
	if (error == NULL && more) {
		admin_job_step(job);
		return;
	}
	admin_job_end(job, error);
	if (jobs->stopping) {
		if (jobs->n_in_flight == 0)
			admin_jobs_destroy(jobs);
		return;
	}
	admin_jobs_prune(jobs);
}

void admin_job_wait(struct admin_job *job, struct admin_request *req)
{
	struct admin_job_waiter *w;

	if (job->state != ADMIN_JOB_RUNNING) {
		admin_job_answer(job, req);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->req = req;
	w->next = job->waiters;
	job->waiters = w;
}

unsigned admin_job_id(const struct admin_job *job)
{
	return job->id;
}

enum admin_job_state admin_job_state(const struct admin_job *job)
{
	return job->state;
}

uint64_t admin_job_changed(const struct admin_job *job)
{
	return job->changed;
}

const char *admin_job_kind(const struct admin_job *job)
{
	return job->kind;
}

json_t *admin_job_json(const struct admin_job *job)
{
	static const char *const states[] = {"running", "done", "failed"};
	long long elapsed = job->elapsed_ms;
	struct timespec now;

	if (job->state == ADMIN_JOB_RUNNING) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed = (now.tv_sec - job->t0.tv_sec) * 1000LL +
		          (now.tv_nsec - job->t0.tv_nsec) / 1000000L;
	}
	return json_pack("{s:I, s:s, s:s, s:O, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:s, s:o}", "id",
	                 (json_int_t)job->id, "kind", job->kind, "state", states[job->state],
	                 "about", job->about, "total", (json_int_t)job->total, "matched",
	                 (json_int_t)job->matched, "changed", (json_int_t)job->changed, "steps",
	                 (json_int_t)job->steps, "started", (json_int_t)job->started, "finished",
	                 job->finished != 0 ? json_integer((json_int_t)job->finished) : json_null(),
	                 "elapsed_ms", (json_int_t)elapsed, "actor", job->actor, "error",
	                 job->error[0] != '\0' ? json_string(job->error) : json_null());
}

struct admin_job *admin_jobs_find(struct admin_jobs *jobs, unsigned id)
{
	for (struct admin_job *j = jobs->head; j != NULL; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

json_t *admin_jobs_json(struct admin_jobs *jobs)
{
	json_t *list = json_array();

	for (struct admin_job *j = jobs->head; j != NULL; j = j->next)
		json_array_append_new(list, admin_job_json(j));
	return list;
}
