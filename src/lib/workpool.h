/* A small pool of threads for blocking work (password hashing, slow disk
 * reads, scans) so that no loop thread blocks for long.
 *
 * work(arg) runs on a pool thread; done(arg) then runs on the loop given to
 * workpool_run() (or on the pool thread when loop is NULL). */
#ifndef KEEL_LIB_WORKPOOL_H
#define KEEL_LIB_WORKPOOL_H

#include "lib/loop.h"

struct workpool;

struct workpool *workpool_start(unsigned threads);
/* Finishes queued work, joins the threads. */
void workpool_stop(struct workpool **pool);
void workpool_run(struct workpool *pool, loop_fn *work, struct loop *loop, loop_fn *done,
		  void *arg);

#endif
