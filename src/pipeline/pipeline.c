#include "pipeline/pipeline.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "directory/directory.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "mail/dsn.h"
#include "mail/header.h"
#include "mail/maildate.h"
#include "pipeline/pipeline_private.h"

/* One message on its way through; lives until its store writes answer. */
struct pipeline_job {
	struct pipeline *p;
	struct loop *loop;
	pipeline_done_cb *cb;
	void *ctx;
	struct store_envelope env;
	char protocol[16], session[32], helo[256];
	char *data; /* as received: for DSNs */
	size_t size;
	struct pipeline_rcpt *rcpts;
	size_t n_rcpts;
	struct pipeline_target *local; /* local targets, in delivery order */
	size_t n_local;
	struct store_delivered *outcome; /* one per local target */
	unsigned pending;                /* store writes not answered yet */
	int status;
	char error[256];
	size_t queued;
	time_t arrival;
};

struct pipeline *pipeline_new(struct store *store)
{
	struct pipeline *p = xcalloc(1, sizeof(*p));

	p->store = store;
	pthread_mutex_init(&p->lock, NULL);
	snprintf(p->hostname, sizeof(p->hostname), "localhost");
	p->intercepts = pipeline_intercepts_new();
	return p;
}

void pipeline_free(struct pipeline **pp)
{
	if (*pp == NULL)
		return;
	pthread_mutex_destroy(&(*pp)->lock);
	pipeline_intercepts_free(&(*pp)->intercepts);
	free(*pp);
	*pp = NULL;
}

void pipeline_set_hostname(struct pipeline *p, const char *hostname)
{
	pthread_mutex_lock(&p->lock);
	snprintf(p->hostname, sizeof(p->hostname), "%s", hostname);
	pthread_mutex_unlock(&p->lock);
}

void pipeline_set_workpool(struct pipeline *p, struct workpool *pool)
{
	pthread_mutex_lock(&p->lock);
	p->workpool = pool;
	pthread_mutex_unlock(&p->lock);
}

void pipeline_set_queue_hook(struct pipeline *p, pipeline_queued_cb *cb, void *arg)
{
	pthread_mutex_lock(&p->lock);
	p->queued_cb = cb;
	p->queued_arg = arg;
	pthread_mutex_unlock(&p->lock);
}

/* Under the lock, so that a hook being removed is never called after. */
static void pipeline_kick_queue(struct pipeline *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->queued_cb != NULL)
		p->queued_cb(p->queued_arg);
	pthread_mutex_unlock(&p->lock);
}

void pipeline_queue_changed(struct pipeline *p)
{
	if (p != NULL)
		pipeline_kick_queue(p);
}

void pipeline_get_hostname(struct pipeline *p, char *buf, size_t size)
{
	pthread_mutex_lock(&p->lock);
	snprintf(buf, size, "%s", p->hostname);
	pthread_mutex_unlock(&p->lock);
}

/* Interception (docs/trace.md): once the message is durable, the accounts
 * under an order that received it (delivered to them) or sent it. */
static void pipeline_intercept_job(struct pipeline_job *job)
{
	struct pipeline_copy_src src = { .env = &job->env, .protocol = job->protocol,
					 .data = job->data, .size = job->size };
	int64_t *users;

	if (!pipeline_intercepts_active(job->p))
		return;
	src.users = users = xcalloc(job->n_local > 0 ? job->n_local : 1, sizeof(*users));
	for (size_t i = 0; i < job->n_local; i++)
		if (job->outcome[i].status == 0)
			users[src.n_users++] = job->local[i].user_id;
	pipeline_intercept_copy(job->p, &src, job->loop);
	free(users);
}

static void pipeline_job_free(struct pipeline_job *job)
{
	free(job->data);
	free(job->rcpts);
	free(job->local);
	free(job->outcome);
	free(job);
}

static void pipeline_event(const struct pipeline_job *job, struct store_trace_event *e,
			   const char *event, const char *account, const char *rcpt,
			   const char *detail)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->queue_id, sizeof(e->queue_id), "%s", job->env.queue_id);
	snprintf(e->message_id, sizeof(e->message_id), "%s", job->env.message_id);
	snprintf(e->event, sizeof(e->event), "%s", event);
	snprintf(e->account, sizeof(e->account), "%s", account);
	snprintf(e->protocol, sizeof(e->protocol), "%s", job->protocol);
	snprintf(e->client_ip, sizeof(e->client_ip), "%s", job->env.client_ip);
	snprintf(e->session, sizeof(e->session), "%s", job->session);
	snprintf(e->sender, sizeof(e->sender), "%s", job->env.sender);
	snprintf(e->rcpt, sizeof(e->rcpt), "%s", rcpt);
	snprintf(e->detail, sizeof(e->detail), "%s", detail);
}

/* "delivered" (mailbox and uid, known only now) or "failed" per local
 * target; trace only, so it need not be durable before the reply: it goes
 * with the next batch of writes, at no flush of its own. */
static void pipeline_trace_outcome(struct pipeline_job *job)
{
	struct store_trace_event *events;
	char detail[128];

	if (job->n_local == 0)
		return;
	events = xcalloc(job->n_local, sizeof(*events));
	for (size_t i = 0; i < job->n_local; i++) {
		const struct store_delivered *o = &job->outcome[i];
		const struct pipeline_target *t = &job->local[i];
		if (o->status == 0)
			snprintf(detail, sizeof(detail), "mailbox=INBOX uid=%u", o->uid);
		else
			snprintf(detail, sizeof(detail), "%s",
				 o->err == STORE_ERR_QUOTA ? "552 5.2.2 mailbox full"
							   : "550 5.1.1 mailbox unavailable");
		pipeline_event(job, &events[i], o->status == 0 ? "delivered" : "failed",
			       t->address, job->rcpts[t->rcpt].address, detail);
	}
	store_trace_defer(job->p->store, events, job->n_local);
	free(events);
}

static void pipeline_dsn_done(const struct pipeline_result *result, void *ctx)
{
	if (result->status < 0)
		log_error("pipeline", "event=dsn_not_stored error=\"%s\"", result->error);
}

static void pipeline_submit_dsn(struct pipeline_job *job, const char *msg, size_t len);

struct pipeline_target *pipeline_targets_of(const struct directory_result *res, size_t *n_r)
{
	struct pipeline_target *targets = xcalloc(res->n_users + res->n_remote + 1, sizeof(*targets));
	size_t n = 0;

	for (size_t i = 0; i < res->n_users; i++, n++) {
		targets[n].user_id = res->users[i].id;
		snprintf(targets[n].address, sizeof(targets[n].address), "%s",
			 res->users[i].address);
	}
	for (size_t i = 0; i < res->n_remote; i++, n++)
		snprintf(targets[n].address, sizeof(targets[n].address), "%s", res->remote[i]);
	*n_r = n;
	return targets;
}

/* A delivery status notification for the local targets that failed. */
static void pipeline_bounce(struct pipeline_job *job)
{
	struct dsn_rcpt *dr = xcalloc(job->n_local, sizeof(*dr));
	char (*diag)[STORE_ADDR_MAX + 64] = xcalloc(job->n_local, sizeof(*diag));
	char host[256];
	struct dsn d = { 0 };
	size_t n = 0, len;
	char *msg;
	const char *error;

	for (size_t i = 0; i < job->n_local; i++) {
		const struct pipeline_rcpt *r = &job->rcpts[job->local[i].rcpt];
		bool quota = job->outcome[i].err == STORE_ERR_QUOTA;
		if (job->outcome[i].status == 0 ||
		    !dsn_should_send(job->env.sender, r->notify, DSN_ACTION_FAILED))
			continue;
		snprintf(diag[n], sizeof(diag[n]), "%s <%s>: %s", quota ? "552 5.2.2" : "550 5.1.1",
			 job->local[i].address, quota ? "Mailbox full" : "Mailbox unavailable");
		dr[n].final_rcpt = job->local[i].address;
		dr[n].action = DSN_ACTION_FAILED;
		dr[n].status = quota ? "5.2.2" : "5.1.1";
		dr[n].diagnostic = diag[n];
		dr[n].last_attempt = time(NULL);
		if (r->orcpt[0] != '\0' && strchr(r->orcpt, ';') != NULL) {
			dr[n].orcpt_type = "rfc822";
			dr[n].orcpt = strchr(r->orcpt, ';') + 1;
		}
		n++;
	}
	if (n > 0) {
		pipeline_get_hostname(job->p, host, sizeof(host));
		d.reporting_mta = host;
		d.sender = job->env.sender;
		d.envid = job->env.envid[0] != '\0' ? job->env.envid : NULL;
		d.received_from_mta = job->helo[0] != '\0' ? job->helo : NULL;
		d.arrival = job->arrival;
		d.ret = job->env.ret == 2 ? DSN_RET_HDRS : job->env.ret == 1 ? DSN_RET_FULL
									   : DSN_RET_DEFAULT;
		d.msg = job->data;
		d.msg_len = job->size;
		d.rcpts = dr;
		d.rcpt_count = n;
		if (dsn_build(&d, &msg, &len, &error) < 0) {
			log_error("pipeline", "queue=%s event=dsn_failed error=\"%s\"",
				  job->env.queue_id, error);
		} else {
			pipeline_submit_dsn(job, msg, len);
			free(msg);
		}
	}
	free(diag);
	free(dr);
}

static void pipeline_finish(struct pipeline_job *job)
{
	struct pipeline_result result = { .status = job->status, .error = job->error };

	if (job->status == 0) {
		for (size_t i = 0; i < job->n_local; i++) {
			if (job->outcome[i].status == 0)
				result.delivered++;
			else
				result.failed++;
		}
		result.queued = job->queued;
		if (job->queued > 0)
			pipeline_kick_queue(job->p);
		pipeline_trace_outcome(job);
		if (result.failed > 0)
			pipeline_bounce(job);
		pipeline_intercept_job(job);
	}
	job->cb(&result, job->ctx);
	pipeline_job_free(job);
}

static void pipeline_on_store(const struct store_reply *reply, void *ctx)
{
	struct pipeline_job *job = ctx;

	if (reply->status < 0) {
		job->status = -1;
		snprintf(job->error, sizeof(job->error), "%s", reply->error);
	} else if (reply->n_delivered > 0) {
		memcpy(job->outcome, reply->delivered,
		       reply->n_delivered * sizeof(*reply->delivered));
	}
	if (--job->pending == 0)
		pipeline_finish(job);
}

/* The local copy: the same message with Return-Path on top (RFC 5321
 * 4.4: added at final delivery), into each user's INBOX.  Its structure is
 * computed here, on the session's loop, from the bytes stored (Return-Path
 * included, so that offsets and ENVELOPE agree with them): once for every
 * recipient, and never on the committer. */
static void pipeline_deliver_local(struct pipeline_job *job, const struct pipeline_message *m)
{
	struct store_rcpt *rcpts = xcalloc(job->n_local, sizeof(*rcpts));
	char *rp = xasprintf("Return-Path: <%s>\r\n", m->env.sender);
	size_t rplen = strlen(rp);
	char *data = xmalloc(rplen + m->size);
	struct store_structure structure;
	struct store_delivery d = { .data = data, .size = rplen + m->size,
				    .rcpts = rcpts, .n_rcpts = job->n_local,
				    .events = m->events, .n_events = m->n_events,
				    .structure = &structure };

	memcpy(data, rp, rplen);
	memcpy(data + rplen, m->data, m->size);
	store_structure_compute(&structure, data, d.size);
	for (size_t i = 0; i < job->n_local; i++)
		rcpts[i].user_id = job->local[i].user_id;
	job->pending++;
	store_deliver(job->p->store, &d, job->loop, pipeline_on_store, job);
	store_structure_deinit(&structure);
	free(rp);
	free(data);
	free(rcpts);
}

/* The outbound copy: the message as received, one queue entry per remote
 * target.  When there are local targets too, the session's events went with
 * the local copy. */
static void pipeline_queue_remote(struct pipeline_job *job, const struct pipeline_message *m)
{
	struct store_queue_rcpt *q = xcalloc(job->queued, sizeof(*q));
	struct store_trace_event *events = xcalloc(m->n_events + job->queued, sizeof(*events));
	struct store_delivery d = { .data = m->data, .size = m->size, .remote = q,
				    .n_remote = job->queued, .envelope = &m->env,
				    .events = events };
	size_t n = 0;

	if (job->n_local == 0 && m->n_events > 0) {
		memcpy(events, m->events, m->n_events * sizeof(*events));
		d.n_events = m->n_events;
	}
	for (size_t i = 0; i < m->n_targets; i++) {
		const struct pipeline_target *t = &m->targets[i];
		if (t->user_id != 0)
			continue;
		snprintf(q[n].rcpt, sizeof(q[n].rcpt), "%s", t->address);
		q[n].notify = m->rcpts[t->rcpt].notify;
		snprintf(q[n].orcpt, sizeof(q[n].orcpt), "%s", m->rcpts[t->rcpt].orcpt);
		pipeline_event(job, &events[d.n_events++], "queued", m->env.auth_user, t->address,
			       "outbound queue");
		n++;
	}
	job->pending++;
	store_deliver(job->p->store, &d, job->loop, pipeline_on_store, job);
	free(q);
	free(events);
}

static struct pipeline_job *pipeline_job_new(struct pipeline *p, const struct pipeline_message *m,
					     struct loop *loop, pipeline_done_cb *cb, void *ctx)
{
	struct pipeline_job *job = xcalloc(1, sizeof(*job));

	job->p = p;
	job->loop = loop;
	job->cb = cb;
	job->ctx = ctx;
	job->env = m->env;
	job->arrival = time(NULL);
	snprintf(job->protocol, sizeof(job->protocol), "%s", m->protocol);
	snprintf(job->session, sizeof(job->session), "%s", m->session != NULL ? m->session : "");
	snprintf(job->helo, sizeof(job->helo), "%s", m->helo != NULL ? m->helo : "");
	job->data = xmalloc(m->size > 0 ? m->size : 1);
	memcpy(job->data, m->data, m->size);
	job->size = m->size;
	job->n_rcpts = m->n_rcpts;
	job->rcpts = xcalloc(m->n_rcpts, sizeof(*job->rcpts));
	memcpy(job->rcpts, m->rcpts, m->n_rcpts * sizeof(*job->rcpts));
	job->local = xcalloc(m->n_targets, sizeof(*job->local));
	for (size_t i = 0; i < m->n_targets; i++) {
		if (m->targets[i].user_id != 0)
			job->local[job->n_local++] = m->targets[i];
		else
			job->queued++;
	}
	job->outcome = xcalloc(job->n_local, sizeof(*job->outcome));
	return job;
}

void pipeline_submit(struct pipeline *p, const struct pipeline_message *m, struct loop *loop,
		     pipeline_done_cb *cb, void *ctx)
{
	struct pipeline_job *job = pipeline_job_new(p, m, loop, cb, ctx);

	if (job->n_local == 0 && job->queued == 0) {
		job->status = -1;
		snprintf(job->error, sizeof(job->error), "no recipients");
		pipeline_finish(job);
		return;
	}
	/* Both writes are queued back to back, so they normally share one
	 * group commit; the reply waits for both either way. */
	if (job->n_local > 0)
		pipeline_deliver_local(job, m);
	if (job->queued > 0)
		pipeline_queue_remote(job, m);
}

int pipeline_submit_from_null(struct pipeline *p, struct pipeline_message *m, const char *to,
			      struct loop *loop, pipeline_done_cb *cb, void *ctx,
			      const char **reason_r)
{
	struct pipeline_rcpt rcpt = { 0 };
	struct pipeline_target *targets;
	struct directory_result res;
	size_t n = 0;

	if (directory_resolve(loop_data(loop), to, &res) < 0) {
		*reason_r = directory_reject_str(res.reason);
		directory_result_free(&res);
		return -1;
	}
	targets = pipeline_targets_of(&res, &n);
	snprintf(rcpt.address, sizeof(rcpt.address), "%s", to);
	rcpt.notify = DSN_NOTIFY_NEVER;
	m->env.sender[0] = '\0';
	mail_queue_id_generate(m->env.queue_id, sizeof(m->env.queue_id));
	m->rcpts = &rcpt;
	m->n_rcpts = 1;
	m->targets = targets;
	m->n_targets = n;
	pipeline_submit(p, m, loop, cb, ctx);
	m->rcpts = NULL;
	m->targets = NULL;
	free(targets);
	directory_result_free(&res);
	return 0;
}

/* A DSN is a message like any other, from <>, to the original sender. */
static int pipeline_submit_dsn_to(struct pipeline *p, const char *sender, const char *about_queue_id,
				  const char *msg, size_t len, struct loop *loop)
{
	struct pipeline_message m = { .protocol = "dsn", .session = about_queue_id, .data = msg,
				      .size = len };
	const char *reason;

	header_message_id(msg, len, m.env.message_id, sizeof(m.env.message_id));
	if (pipeline_submit_from_null(p, &m, sender, loop, pipeline_dsn_done, NULL, &reason) < 0) {
		log_error("pipeline", "queue=%s event=dsn_undeliverable rcpt=%s reason=\"%s\"",
			  about_queue_id, sender, reason);
		return -1;
	}
	log_info("pipeline", "queue=%s event=dsn dsn_queue=%s to=<%s>", about_queue_id,
		 m.env.queue_id, sender);
	return 0;
}

static void pipeline_submit_dsn(struct pipeline_job *job, const char *msg, size_t len)
{
	pipeline_submit_dsn_to(job->p, job->env.sender, job->env.queue_id, msg, len, job->loop);
}

int pipeline_submit_report(struct pipeline *p, const struct pipeline_report *r,
			   struct loop *loop, const char **error_r)
{
	const struct store_envelope *env = r->env;
	struct dsn d = { 0 };
	char host[256], *msg;
	size_t len;

	pipeline_get_hostname(p, host, sizeof(host));
	d.reporting_mta = host;
	d.sender = env->sender;
	d.envid = env->envid[0] != '\0' ? env->envid : NULL;
	d.arrival = r->arrival;
	d.ret = env->ret == 2 ? DSN_RET_HDRS : env->ret == 1 ? DSN_RET_FULL : DSN_RET_DEFAULT;
	/* Only part of the original at hand: its header section only. */
	d.full_max = r->headers_only ? 1 : 0;
	d.msg = r->msg;
	d.msg_len = r->msg_len;
	d.rcpts = r->rcpts;
	d.rcpt_count = r->n_rcpts;
	if (dsn_build(&d, &msg, &len, error_r) < 0) {
		log_error("pipeline", "queue=%s event=dsn_failed error=\"%s\"", env->queue_id,
			  *error_r);
		return -1;
	}
	if (pipeline_submit_dsn_to(p, env->sender, env->queue_id, msg, len, loop) < 0) {
		*error_r = "the sender's address is not deliverable";
		free(msg);
		return -1;
	}
	free(msg);
	return 0;
}
