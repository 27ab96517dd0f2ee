/* Inside the pipeline: its state, shared by pipeline.c and
 * pipeline_intercept.c and nothing else. */
#ifndef KEEL_PIPELINE_PIPELINE_PRIVATE_H
#define KEEL_PIPELINE_PIPELINE_PRIVATE_H

#include <pthread.h>

#include "pipeline/pipeline.h"

struct pipeline_intercepts;

struct pipeline {
	struct store *store;
	pthread_mutex_t lock;
	char hostname[256];
	pipeline_queued_cb *queued_cb; /* under lock */
	void *queued_arg;
	/* The interception orders (pipeline_intercept.c). */
	struct pipeline_intercepts *intercepts;
	struct workpool *workpool; /* under lock; may be NULL */
};

/* A message the pipeline made durable, as interception sees it. */
struct pipeline_copy_src {
	const struct store_envelope *env;
	const char *protocol;
	const char *data; /* as received (no Return-Path) */
	size_t size;
	const int64_t *users; /* local users it was delivered to */
	size_t n_users;
};

struct pipeline_intercepts *pipeline_intercepts_new(void);
void pipeline_intercepts_free(struct pipeline_intercepts **ic);
/* Whether any interception order is in force (one atomic read). */
bool pipeline_intercepts_active(struct pipeline *p);
/* After src is durable, on the loop of its submission (whose data is the
 * store reader): copies for every order on an account that received or
 * sent it.  Cheap when there are no orders (one atomic read). */
void pipeline_intercept_copy(struct pipeline *p, const struct pipeline_copy_src *src,
			     struct loop *loop);
/* The pipeline's hostname, for messages it writes. */
void pipeline_get_hostname(struct pipeline *p, char *buf, size_t size);

#endif
