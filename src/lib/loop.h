/* Loop threads: N libevent bases, each run by its own thread.
 *
 * Everything a connection does happens on the loop that accepted it.  Other
 * threads (the committer, the work pool) hand results back with loop_post(),
 * which is the only thread-safe entry point into a loop. */
#ifndef KEEL_LIB_LOOP_H
#define KEEL_LIB_LOOP_H

#include <stdbool.h>

struct event_base;
struct loop;
struct loop_pool;

typedef void loop_fn(void *arg);

/* Must be called once before any base is created (sets libevent's pthread
 * locking). */
void loop_global_init(void);

/* Starts n loop threads.  init, if not NULL, runs first on each thread (e.g.
 * to open that thread's store reader). */
struct loop_pool *loop_pool_start(unsigned n, loop_fn *init, void *init_arg);
/* Stops every loop after the callbacks already posted have run, joins the
 * threads and frees the pool. */
void loop_pool_stop(struct loop_pool **pool);
unsigned loop_pool_count(const struct loop_pool *pool);
struct loop *loop_pool_get(struct loop_pool *pool, unsigned i);

struct event_base *loop_base(struct loop *loop);
unsigned loop_index(const struct loop *loop);
/* Per-loop data slot for the owner of the loop (e.g. its store reader). */
void loop_set_data(struct loop *loop, void *data);
void *loop_data(struct loop *loop);

/* Runs fn(arg) on loop's thread, in order of posting.  Safe from any thread. */
void loop_post(struct loop *loop, loop_fn *fn, void *arg);

/* The loop whose thread calls this, or NULL on any other thread. */
struct loop *loop_current(void);

#endif
