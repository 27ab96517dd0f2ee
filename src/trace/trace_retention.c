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
	struct event *timer; /* persistent, every TRACE_RETENTION_POLL seconds */
	bool busy;           /* a chunk is being deleted */
	bool stopping;       /* stopped while busy: the callback frees */
	time_t next_pass;    /* when the next periodic pass is due */
	int64_t keep;        /* trace.retention the last pass ran with */
	unsigned long long deleted; /* this pass, for the log */
};

static void trace_retention_free(struct trace_retention *tr)
{
	event_free(tr->timer);
	free(tr);
}

static void trace_retention_done(const struct store_reply *reply, void *ctx);

static void trace_retention_chunk(struct trace_retention *tr)
{
	tr->busy = true;
	store_trace_expire(tr->store, time(NULL) - (time_t)tr->keep, TRACE_RETENTION_CHUNK,
			   tr->loop, trace_retention_done, tr);
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
		tr->deleted = 0;
		return;
	}
	tr->deleted += (unsigned long long)reply->id;
	/* A full chunk means more are due: go on at once, each chunk its own
	 * short write, so that other writes get in between. */
	if (reply->id >= TRACE_RETENTION_CHUNK) {
		trace_retention_chunk(tr);
		return;
	}
	if (tr->deleted > 0)
		log_info("trace", "event=retention_pass deleted=%llu retention=%lld", tr->deleted,
			 (long long)tr->keep);
	tr->deleted = 0;
}

/* Cheap: reads the setting from memory.  A pass starts when the period is
 * over or when trace.retention became shorter (live: the events the new
 * value leaves out go within a second of `keelctl config set`). */
static void trace_retention_tick(evutil_socket_t fd, short what, void *arg)
{
	struct trace_retention *tr = arg;
	int64_t keep = settings_get_int("trace.retention");
	time_t now = time(NULL);

	if (tr->busy || (now < tr->next_pass && keep >= tr->keep))
		return;
	tr->keep = keep;
	tr->next_pass = now + TRACE_RETENTION_PERIOD;
	trace_retention_chunk(tr);
}

struct trace_retention *trace_retention_start(struct store *store, struct loop *loop)
{
	struct trace_retention *tr = xcalloc(1, sizeof(*tr));
	struct timeval poll = { TRACE_RETENTION_POLL, 0 };

	tr->store = store;
	tr->loop = loop;
	tr->timer = event_new(loop_base(loop), -1, EV_PERSIST, trace_retention_tick, tr);
	evtimer_add(tr->timer, &poll);
	trace_retention_tick(-1, 0, tr); /* the first pass at once */
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
