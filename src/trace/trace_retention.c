#include "trace/trace_retention.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "settings/settings.h"
#include "store/store.h"

struct trace_retention {
	struct store *store;
	struct loop *loop;
	struct event *timer;
	bool busy;     /* a chunk is being deleted */
	bool stopping; /* stopped while busy: the callback frees */
	unsigned long long deleted; /* this pass, for the log */
};

static void trace_retention_free(struct trace_retention *tr)
{
	event_free(tr->timer);
	free(tr);
}

static void trace_retention_arm(struct trace_retention *tr, int seconds)
{
	struct timeval tv = { seconds, 0 };

	evtimer_add(tr->timer, &tv);
}

static void trace_retention_done(const struct store_reply *reply, void *ctx)
{
	struct trace_retention *tr = ctx;

	tr->busy = false;
	if (tr->stopping) {
		trace_retention_free(tr);
		return;
	}
	if (reply->status < 0) {
		log_error("trace", "event=retention_failed error=\"%s\"",
			  reply->error != NULL ? reply->error : "");
		trace_retention_arm(tr, TRACE_RETENTION_PERIOD);
		return;
	}
	tr->deleted += (unsigned long long)reply->id;
	/* A full chunk means more are due: go on, but let other writes in
	 * between (each chunk is its own short write). */
	if (reply->id >= TRACE_RETENTION_CHUNK) {
		trace_retention_arm(tr, 0);
		return;
	}
	if (tr->deleted > 0)
		log_info("trace", "event=retention_pass deleted=%llu", tr->deleted);
	tr->deleted = 0;
	trace_retention_arm(tr, TRACE_RETENTION_PERIOD);
}

static void trace_retention_tick(evutil_socket_t fd, short what, void *arg)
{
	struct trace_retention *tr = arg;
	int64_t keep = settings_get_int("trace.retention");

	tr->busy = true;
	store_trace_expire(tr->store, time(NULL) - (time_t)keep, TRACE_RETENTION_CHUNK, tr->loop,
			   trace_retention_done, tr);
}

struct trace_retention *trace_retention_start(struct store *store, struct loop *loop)
{
	struct trace_retention *tr = xcalloc(1, sizeof(*tr));

	tr->store = store;
	tr->loop = loop;
	tr->timer = evtimer_new(loop_base(loop), trace_retention_tick, tr);
	trace_retention_arm(tr, 0);
	return tr;
}

void trace_retention_stop(struct trace_retention **trp)
{
	struct trace_retention *tr = *trp;

	if (tr == NULL)
		return;
	*trp = NULL;
	evtimer_del(tr->timer);
	if (tr->busy)
		tr->stopping = true;
	else
		trace_retention_free(tr);
}
