/* The trace.retention job: deletes trace events older than the setting, in
 * chunks of TRACE_RETENTION_CHUNK per write so that the committer, which
 * every session waits on, is never held for long.  A pass runs every
 * TRACE_RETENTION_PERIOD seconds, and within TRACE_RETENTION_POLL seconds
 * of trace.retention being made shorter (the setting is live); while a
 * chunk comes back full the next follows at once.  Runs on one loop (the
 * admin loop).  Logs `event=retention_pass deleted=N` after a pass that
 * deleted something. */
#ifndef KEEL_TRACE_TRACE_RETENTION_H
#define KEEL_TRACE_TRACE_RETENTION_H

#define TRACE_RETENTION_CHUNK 5000
#define TRACE_RETENTION_PERIOD 300
#define TRACE_RETENTION_POLL 1

struct loop;
struct store;
struct trace_retention;

/* Starts the job on loop (the caller's thread); the first pass is at once. */
struct trace_retention *trace_retention_start(struct store *store, struct loop *loop);
/* Stops it on its loop; a write in flight finishes and then frees it. */
void trace_retention_stop(struct trace_retention **tr);

#endif
