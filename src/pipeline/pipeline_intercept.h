/* Interception (docs/trace.md, "Interception"): for each order in the
 * store's intercepts table, a copy of every message its account receives
 * or sends, and its access events, go to the order's address or directory,
 * unseen by the account's user.
 *
 * The pipeline keeps the orders in memory (reloaded when they change), so
 * that a message costs one atomic read when there are none.  Copies are
 * made once the original is durable (pipeline_intercept_copy, on the
 * submitting loop); the event log is handed over by a timer on one loop
 * (the admin loop).  File writes (--dir copies, events.jsonl appends) run
 * on the pipeline's work pool when it has one (pipeline_set_workpool).
 * Only functions for the pipeline's users are here. */
#ifndef KEEL_PIPELINE_PIPELINE_INTERCEPT_H
#define KEEL_PIPELINE_PIPELINE_INTERCEPT_H

#include <stddef.h>

struct loop;
struct pipeline;
struct pipeline_intercept_timer;
struct store;
struct store_reader;

/* How often the timer looks for new events of --dir orders (and whether a
 * --to order's intercept.event_interval has passed), in seconds. */
#define PIPELINE_INTERCEPT_TICK 2
/* Events handed over per order per tick at most; more follow next tick. */
#define PIPELINE_INTERCEPT_EVENTS_MAX 2000

/* Re-reads the orders through r (the calling thread's reader); any thread.
 * 0, or -1 (the old set stays) when the store cannot be read. */
int pipeline_intercept_reload(struct pipeline *p, struct store_reader *r);

/* Makes sure dir (absolute) exists as a directory the worker can write:
 * creates it, and missing parents, mode 0700.  0, or -1 with a message in
 * err naming the problem. */
int pipeline_intercept_dir_prepare(const char *dir, char *err, size_t size);

/* Loads the orders through r and starts the event timer on loop (the
 * caller's thread; r is loop's reader).  Stop it on the same loop; a write
 * in flight then finishes before it is freed. */
struct pipeline_intercept_timer *pipeline_intercept_start(struct pipeline *p, struct store *s,
							  struct loop *loop,
							  struct store_reader *r);
void pipeline_intercept_stop(struct pipeline_intercept_timer **t);

#endif
