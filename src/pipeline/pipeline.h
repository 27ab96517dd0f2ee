/* The message pipeline (DESIGN.md): every message — received over SMTP,
 * submitted, and later appended or generated — is handed over here with
 * its recipients already resolved by the directory, and comes back with one
 * verdict: durable, or nothing kept.
 *
 *   policy and filters (later issues) -> local delivery (store_deliver into
 *   each user's INBOX, with Return-Path) and the outbound queue (remote
 *   recipients, the message as received) -> trace events.
 *
 * A local recipient that fails at delivery (over quota, deleted since RCPT)
 * does not fail the message: it gets a delivery status notification to the
 * sender (RFC 3464), itself delivered through the pipeline, unless the
 * sender is null or NOTIFY says otherwise.  Callbacks run on the loop given
 * to pipeline_submit(). */
#ifndef KEEL_PIPELINE_PIPELINE_H
#define KEEL_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/dsn.h"
#include "store/store.h"

struct loop;
struct pipeline;
struct workpool;

/* A recipient as the client gave it (RCPT TO), for DSNs and the trace. */
struct pipeline_rcpt {
	char address[STORE_ADDR_MAX + 1];
	unsigned notify;                   /* DSN NOTIFY bits (store.h) */
	char orcpt[600];   /* "rfc822;addr" or "" */
};

/* Where the message goes: a local user (user_id > 0, address its current
 * address) or a remote address (user_id 0).  rcpt indexes the recipient it
 * came from.  Targets are distinct. */
struct pipeline_target {
	int64_t user_id;
	char address[STORE_ADDR_MAX + 1];
	size_t rcpt;
};

struct directory_result;
/* The targets of a resolved recipient: malloc'd, local users first, then
 * remote addresses; *n_r of them. */
struct pipeline_target *pipeline_targets_of(const struct directory_result *res, size_t *n_r);

struct pipeline_message {
	struct store_envelope env;  /* queue_id set by the caller */
	const char *protocol;       /* "smtp", "submission", ... */
	const char *session;        /* session id for the trace */
	const char *helo;           /* for DSN Received-From-MTA; may be NULL */
	const char *data;           /* the message as stored: our Received on top */
	size_t size;
	const struct pipeline_rcpt *rcpts;
	size_t n_rcpts;
	const struct pipeline_target *targets;
	size_t n_targets;
	/* Trace events of the session so far, committed with the message. */
	const struct store_trace_event *events;
	size_t n_events;
};

struct pipeline_result {
	int status;          /* 0: durable (the 250 may go); -1: nothing kept */
	const char *error;   /* with -1: why, for the log */
	size_t delivered;    /* local mailbox entries made */
	size_t queued;       /* remote recipients queued */
	size_t failed;       /* local recipients that failed (each gets a DSN) */
};

typedef void pipeline_done_cb(const struct pipeline_result *result, void *ctx);

struct pipeline *pipeline_new(struct store *store);
void pipeline_free(struct pipeline **p);
/* The reporting host name for DSNs, changed on reload; on the admin loop
 * while others read it: the pipeline keeps its own copy under a lock. */
void pipeline_set_hostname(struct pipeline *p, const char *hostname);
/* The pool for blocking file writes (interception's --dir copies); any
 * thread.  Set it to NULL before stopping the pool.  Without one those
 * writes run on the submitting loop. */
void pipeline_set_workpool(struct pipeline *p, struct workpool *pool);

/* Copies what it needs from m before returning. */
void pipeline_submit(struct pipeline *p, const struct pipeline_message *m, struct loop *loop,
		     pipeline_done_cb *cb, void *ctx);
/* A message this server makes (a DSN, an interception copy): from <> to
 * one address resolved by the directory, with NOTIFY=NEVER, stored or
 * queued like any other.  The caller fills in m's protocol, session, data
 * and size (and env.message_id for a trace by it); the envelope's sender,
 * its queue id (set in m->env.queue_id), recipient and targets are set
 * here.  -1 when the directory refuses the address: nothing is submitted
 * and *reason_r says why. */
int pipeline_submit_from_null(struct pipeline *p, struct pipeline_message *m, const char *to,
			      struct loop *loop, pipeline_done_cb *cb, void *ctx,
			      const char **reason_r);

/* The outbound queue's wake-up: called after a message's remote recipients
 * are queued durably, on the loop of that submission (any thread): it must
 * be cheap and thread-safe (queue_runner_kick).  NULL removes it; after
 * this returns the old hook is never called again. */
typedef void pipeline_queued_cb(void *arg);
void pipeline_set_queue_hook(struct pipeline *p, pipeline_queued_cb *cb, void *arg);
/* Wakes the outbound queue for a change made elsewhere (an entry released
 * or retried by the admin, a delivery setting changed), so that it acts at
 * once rather than at its next poll.  p may be NULL (nothing happens). */
void pipeline_queue_changed(struct pipeline *p);

/* A delivery status notification about mail in the outbound queue (failed,
 * delayed, relayed), to env->sender, built with dsn_build() and submitted
 * from <> like the pipeline's own DSNs.  The caller decided that one is due
 * (dsn_should_send); the pipeline fills in the reporting MTA.  msg is the
 * original (or its beginning, with headers_only).  On the caller's loop,
 * whose data is its store reader.  Returns -1 with a static *error_r when
 * the DSN cannot be built or its recipient is not deliverable (both
 * logged); 0 once submitted (its storage is then logged if it fails). */
struct pipeline_report {
	const struct store_envelope *env;
	time_t arrival;
	const char *msg;
	size_t msg_len;
	bool headers_only;
	const struct dsn_rcpt *rcpts;
	size_t n_rcpts;
};
int pipeline_submit_report(struct pipeline *p, const struct pipeline_report *r,
			   struct loop *loop, const char **error_r);

#endif
