/* Jobs: long bulk work started by an admin command (DESIGN.md, "Jobs").
 *
 * A job runs in steps.  Each step starts one bounded piece of work (for the
 * queue: one store write over at most 1000 entries) and reports back with
 * admin_job_step_done() from that work's callback; only then does the next
 * step start.  So a job never holds the admin loop or the committer for
 * long: other writes queue up behind one step and go into the committer's
 * next batch together with the job's next step.
 *
 * Everything here runs on the admin loop.  The registry belongs to the admin
 * server (admin_server_start creates it, admin_server_stop frees it).
 * Finished jobs are kept for `keelctl jobs` (the last ADMIN_JOBS_KEPT). */
#ifndef KEEL_ADMIN_ADMIN_JOB_H
#define KEEL_ADMIN_ADMIN_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct admin_jobs;
struct admin_job;
struct admin_request;

#define ADMIN_JOBS_KEPT 100

enum admin_job_state {
	ADMIN_JOB_RUNNING,
	ADMIN_JOB_DONE,
	ADMIN_JOB_FAILED,
};

struct admin_job_ops {
	/* Starts the next step of the work.  Must lead to exactly one
	 * admin_job_step_done() call, later, on the admin loop. */
	void (*step)(struct admin_job *job, void *data);
	/* Runs once when the job ends, whatever the outcome (a summary for the
	 * trace, the audit line); admin_job_state() tells which.  May be NULL. */
	void (*finish)(struct admin_job *job, void *data);
	/* Frees data when the job itself goes.  May be NULL. */
	void (*free)(void *data);
};

struct admin_jobs *admin_jobs_new(void);
/* Starts no more steps.  A job whose step is in flight ends, failed with
 * "keeld is stopping", when that step reports back; the registry is freed
 * once nothing is in flight.  Sets *jobs to NULL. */
void admin_jobs_free(struct admin_jobs **jobs);

/* Creates a job and starts its first step.  kind ("queue.hold") is copied;
 * about (a JSON object describing what the job works on: its filter) is
 * stolen; total is how many items the job expects (0: unknown), for the
 * progress; actor names the administrator.  Returns the job, which lives in
 * the registry until pruned. */
struct admin_job *admin_job_start(struct admin_jobs *jobs, const char *kind, const char *actor,
                                  json_t *about, uint64_t total, const struct admin_job_ops *ops,
                                  void *data);

/* From a step's completion: adds to the counters (matched: items looked at,
 * changed: items changed) and starts the next step when more is set, else
 * ends the job as done; error (not NULL) ends it as failed instead. */
void admin_job_step_done(struct admin_job *job, uint64_t matched, uint64_t changed, bool more,
                         const char *error);

/* Answers req with the job's JSON (admin_job_json) once the job has ended,
 * at once if it has: ok when done, an "io" error naming the job's error when
 * failed. */
void admin_job_wait(struct admin_job *job, struct admin_request *req);

unsigned admin_job_id(const struct admin_job *job);
enum admin_job_state admin_job_state(const struct admin_job *job);
uint64_t admin_job_changed(const struct admin_job *job);
const char *admin_job_kind(const struct admin_job *job);
/* {"id", "kind", "state", "about", "total", "matched", "changed", "steps",
 * "started", "finished", "elapsed_ms", "actor", "error"}: new reference. */
json_t *admin_job_json(const struct admin_job *job);

/* The job with this id, or NULL. */
struct admin_job *admin_jobs_find(struct admin_jobs *jobs, unsigned id);
/* Every job kept, oldest first, as JSON: new reference. */
json_t *admin_jobs_json(struct admin_jobs *jobs);

#endif
