#include "queue/queue_runner.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/dns.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "mail/dsn.h"
#include "pipeline/pipeline.h"
#include "queue/mx.h"
#include "queue/queue_policy.h"
#include "queue/smtp_client.h"
#include "settings/settings.h"
#include "store/store.h"

/* Due entries taken per scan; the rest wait for the next one. */
#define RUNNER_SCAN_LIMIT 1000
/* Messages per session: others to the same destination take the next. */
#define RUNNER_MSGS_PER_SESSION 50
/* A DSN carries the whole original up to this size, else its header. */
#define RUNNER_DSN_FULL_MAX (1024 * 1024)
#define RUNNER_DSN_HEAD_READ (64 * 1024)

/* A resolver for one dns.resolver value; replaced when the setting
 * changes, freed when the last lookup on it is over. */
struct runner_dns {
	struct dns_resolver *res;
	char forwarder[STORE_VALUE_MAX + 1];
	unsigned refs;
};

/* One delivery session: the due entries of one (recipient domain, sender
 * domain) pair. */
struct runner_job {
	struct runner_job *next;
	struct queue_runner *r;
	char session[32];
	char domain[STORE_DOMAIN_MAX + 1];
	char sender_domain[STORE_DOMAIN_MAX + 1];
	struct store_queue_entry *entries;
	size_t n;
	struct smtp_client_rcpt *rcpts; /* one per entry, same order */
	struct smtp_client_msg *msgs;   /* entries grouped by message */
	size_t n_msgs;
	struct queue_route route;
	char helo[256];
	char auth_user[STORE_VALUE_MAX + 1];
	char auth_pass[STORE_VALUE_MAX + 1];
	struct sockaddr_storage source4, source6;
	struct runner_dns *dns;
	struct mx_lookup *lookup;
	struct smtp_client_host *hosts;
	size_t n_hosts;
	struct smtp_client *client;
	bool recording; /* its store write is in flight */
};

struct queue_runner {
	struct store *store;
	struct pipeline *pipeline;
	struct loop *loop;
	SSL_CTX *tls;
	pthread_mutex_t lock;
	char hostname[256]; /* under lock */
	atomic_bool kicked;
	struct event *timer;
	struct runner_dns *dns;
	struct runner_job *jobs;
	unsigned active;    /* jobs not yet recording */
	unsigned recording; /* store writes in flight */
	bool stopping;
	unsigned long next_id;
	int64_t *inflight;
	size_t n_inflight, cap_inflight;
};

static void runner_scan(struct queue_runner *r);

/* ---- small helpers ------------------------------------------------------- */

static const char *runner_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

static bool runner_inflight(const struct queue_runner *r, int64_t id)
{
	for (size_t i = 0; i < r->n_inflight; i++)
		if (r->inflight[i] == id)
			return true;
	return false;
}

static void runner_inflight_add(struct queue_runner *r, int64_t id)
{
	if (r->n_inflight == r->cap_inflight) {
		r->cap_inflight = r->cap_inflight > 0 ? r->cap_inflight * 2 : 64;
		r->inflight = xrealloc(r->inflight, r->cap_inflight * sizeof(*r->inflight));
	}
	r->inflight[r->n_inflight++] = id;
}

static void runner_inflight_del(struct queue_runner *r, int64_t id)
{
	for (size_t i = 0; i < r->n_inflight; i++) {
		if (r->inflight[i] == id) {
			r->inflight[i] = r->inflight[--r->n_inflight];
			return;
		}
	}
}

static unsigned runner_domain_active(const struct queue_runner *r, const char *domain)
{
	unsigned n = 0;

	for (const struct runner_job *j = r->jobs; j != NULL; j = j->next)
		if (!j->recording && strcasecmp(j->domain, domain) == 0)
			n++;
	return n;
}

static void runner_dns_unref(struct queue_runner *r, struct runner_dns **dp)
{
	struct runner_dns *d = *dp;

	*dp = NULL;
	if (d == NULL || --d->refs > 0)
		return;
	if (r->dns == d)
		r->dns = NULL;
	dns_resolver_free(&d->res);
	free(d);
}

/* The resolver for the current dns.resolver, made anew when it changed. */
static struct runner_dns *runner_dns_get(struct queue_runner *r, const char **error_r)
{
	char fwd[STORE_VALUE_MAX + 1];
	struct runner_dns *d;

	settings_get("dns.resolver", fwd, sizeof(fwd));
	if (r->dns != NULL && strcmp(r->dns->forwarder, fwd) == 0) {
		r->dns->refs++;
		return r->dns;
	}
	d = xcalloc(1, sizeof(*d));
	d->res = dns_resolver_new(loop_base(r->loop), fwd[0] != '\0' ? fwd : NULL, error_r);
	if (d->res == NULL) {
		free(d);
		return NULL;
	}
	snprintf(d->forwarder, sizeof(d->forwarder), "%s", fwd);
	d->refs = 2; /* the runner's and the caller's */
	if (r->dns != NULL)
		runner_dns_unref(r, &r->dns);
	r->dns = d;
	return d;
}

/* ---- jobs ------------------------------------------------------------------ */

static void runner_job_free(struct runner_job *j)
{
	struct queue_runner *r = j->r;

	if (j->lookup != NULL)
		mx_cancel(&j->lookup);
	runner_dns_unref(r, &j->dns);
	smtp_client_free(&j->client);
	for (size_t i = 0; i < j->n; i++)
		runner_inflight_del(r, j->entries[i].id);
	for (struct runner_job **p = &r->jobs; *p != NULL; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			break;
		}
	}
	explicit_bzero(j->auth_pass, sizeof(j->auth_pass));
	free(j->entries);
	free(j->rcpts);
	free(j->msgs);
	free(j->hosts);
	free(j);
}

/* Groups the job's entries by message (queue id), in first-seen order. */
static void runner_job_messages(struct runner_job *j)
{
	size_t *order = xcalloc(j->n, sizeof(*order));
	struct store_queue_entry *sorted = xcalloc(j->n, sizeof(*sorted));
	bool *taken = xcalloc(j->n, sizeof(*taken));
	size_t k = 0;

	for (size_t i = 0; i < j->n; i++) {
		if (taken[i])
			continue;
		for (size_t m = i; m < j->n; m++) {
			if (!taken[m] && strcmp(j->entries[m].env.queue_id,
						j->entries[i].env.queue_id) == 0) {
				taken[m] = true;
				order[k++] = m;
			}
		}
	}
	for (size_t i = 0; i < j->n; i++)
		sorted[i] = j->entries[order[i]];
	free(j->entries);
	j->entries = sorted;
	j->rcpts = xcalloc(j->n, sizeof(*j->rcpts));
	j->msgs = xcalloc(j->n, sizeof(*j->msgs));
	for (size_t i = 0; i < j->n; i++) {
		struct smtp_client_msg *m;
		j->rcpts[i].rcpt = &j->entries[i].rcpt;
		if (i == 0 || strcmp(j->entries[i].env.queue_id, j->entries[i - 1].env.queue_id) != 0) {
			m = &j->msgs[j->n_msgs++];
			m->env = &j->entries[i].env;
			m->blob_id = j->entries[i].blob_id;
			m->size = j->entries[i].size;
			m->rcpts = &j->rcpts[i];
		}
		j->msgs[j->n_msgs - 1].n_rcpts++;
	}
	free(order);
	free(taken);
}

static void runner_job_all(struct runner_job *j, enum smtp_client_status st, const char *reply,
			   const char *dsn_status)
{
	for (size_t i = 0; i < j->n; i++) {
		if (j->rcpts[i].status != SMTP_CLIENT_PENDING)
			continue;
		j->rcpts[i].status = st;
		snprintf(j->rcpts[i].reply, sizeof(j->rcpts[i].reply), "%s", reply);
		snprintf(j->rcpts[i].dsn_status, sizeof(j->rcpts[i].dsn_status), "%s", dsn_status);
	}
}

/* ---- the end of a session: outcomes, DSNs, one store write ------------------- */

/* The original message (or its beginning) for a DSN; malloc'd. */
static char *runner_read_original(struct queue_runner *r, const struct smtp_client_msg *m,
				  size_t *len_r, bool *headers_only_r)
{
	struct store_reader *reader = loop_data(r->loop);
	struct store_blob_stream *st;
	void *data;
	size_t size;
	uint64_t total;
	const char *err;
	char *buf;
	long n;

	*headers_only_r = m->size > RUNNER_DSN_FULL_MAX;
	if (!*headers_only_r) {
		if (store_blob_read(reader, m->blob_id, &data, &size, &err) < 0)
			return NULL;
		*len_r = size;
		return data;
	}
	if (store_blob_stream_open(reader, m->blob_id, &st, &total, &err) < 0)
		return NULL;
	buf = xmalloc(RUNNER_DSN_HEAD_READ);
	*len_r = 0;
	while (*len_r < RUNNER_DSN_HEAD_READ &&
	       (n = store_blob_stream_read(st, buf + *len_r, RUNNER_DSN_HEAD_READ - *len_r, &err)) > 0)
		*len_r += (size_t)n;
	store_blob_stream_close(&st);
	return buf;
}

struct runner_outcome_ctx {
	time_t now;
	const char *remote_host;
	struct queue_retry retry;
	int64_t warn_after, max_age;
};

/* Whether a delay warning went out for this entry already: the trace
 * holds a "delay_warned" event for it (the store keeps no flag). */
static bool runner_warned(struct queue_runner *r, const struct store_queue_entry *e)
{
	struct store_trace_event filter = { 0 }, *list = NULL;
	size_t n = 0;
	bool found = false;

	snprintf(filter.queue_id, sizeof(filter.queue_id), "%s", e->env.queue_id);
	snprintf(filter.rcpt, sizeof(filter.rcpt), "%s", e->rcpt.rcpt);
	if (store_trace_query(loop_data(r->loop), &filter, 0, 0, &list, &n) < 0)
		return true; /* unsure: rather no warning than two */
	for (size_t i = 0; i < n && !found; i++)
		found = strcmp(list[i].event, "delay_warned") == 0;
	free(list);
	return found;
}

static void runner_event(const struct runner_job *j, const struct store_queue_entry *e,
			 struct store_trace_event *ev, const char *event, const char *detail)
{
	memset(ev, 0, sizeof(*ev));
	snprintf(ev->queue_id, sizeof(ev->queue_id), "%s", e->env.queue_id);
	snprintf(ev->message_id, sizeof(ev->message_id), "%s", e->env.message_id);
	snprintf(ev->event, sizeof(ev->event), "%s", event);
	snprintf(ev->account, sizeof(ev->account), "%s", e->env.auth_user);
	snprintf(ev->protocol, sizeof(ev->protocol), "smtp-out");
	snprintf(ev->session, sizeof(ev->session), "%s", j->session);
	snprintf(ev->sender, sizeof(ev->sender), "%s", e->env.sender);
	snprintf(ev->rcpt, sizeof(ev->rcpt), "%s", e->rcpt.rcpt);
	snprintf(ev->detail, sizeof(ev->detail), "%s", detail);
}

/* Decides one entry's new state; fills its DSN line when one is due.
 * Returns the DSN action, or -1 for none. */
static int runner_decide(struct queue_runner *r, const struct runner_outcome_ctx *oc,
			 const struct store_queue_entry *e, struct smtp_client_rcpt *rc,
			 struct store_queue_outcome *o)
{
	time_t age = oc->now - e->created;

	o->id = e->id;
	snprintf(o->last_reply, sizeof(o->last_reply), "%s", rc->reply);
	if (rc->status == SMTP_CLIENT_DELIVERED) {
		o->state = STORE_QUEUE_DELIVERED;
		if (!rc->remote_dsn &&
		    dsn_should_send(e->env.sender, e->rcpt.notify, DSN_ACTION_RELAYED) &&
		    (e->rcpt.notify & DSN_NOTIFY_SUCCESS))
			return DSN_ACTION_RELAYED;
		return -1;
	}
	if (rc->status == SMTP_CLIENT_DEFERRED && age >= oc->max_age) {
		/* Given up: the last reason stands, as a permanent failure. */
		rc->status = SMTP_CLIENT_FAILED;
		snprintf(rc->dsn_status, sizeof(rc->dsn_status), "4.4.7");
		snprintf(o->last_reply, sizeof(o->last_reply), "%.400s (gave up: queue.max_age)",
			 rc->reply);
	}
	if (rc->status == SMTP_CLIENT_FAILED) {
		o->state = STORE_QUEUE_FAILED;
		return dsn_should_send(e->env.sender, e->rcpt.notify, DSN_ACTION_FAILED)
			       ? DSN_ACTION_FAILED
			       : -1;
	}
	o->state = STORE_QUEUE_DEFERRED;
	o->next_attempt = oc->now + queue_retry_delay(&oc->retry, e->attempts + 1);
	if (oc->warn_after > 0 && age >= oc->warn_after &&
	    dsn_should_send(e->env.sender, e->rcpt.notify, DSN_ACTION_DELAYED) &&
	    !runner_warned(r, e))
		return DSN_ACTION_DELAYED;
	return -1;
}

/* One DSN per message for the recipients that need one. */
static void runner_send_dsns(struct queue_runner *r, struct runner_job *j, const int *actions,
			     const struct store_queue_outcome *outcomes,
			     const struct runner_outcome_ctx *oc)
{
	struct dsn_rcpt *dr = xcalloc(j->n, sizeof(*dr));
	char (*orcpt)[600] = xcalloc(j->n, sizeof(*orcpt));

	for (size_t m = 0, base = 0; m < j->n_msgs; base += j->msgs[m].n_rcpts, m++) {
		const struct smtp_client_msg *msg = &j->msgs[m];
		struct pipeline_report rep = { .env = msg->env, .rcpts = dr };
		size_t n = 0;
		bool headers_only;
		const char *err;
		char *orig;

		for (size_t i = base; i < base + msg->n_rcpts; i++) {
			const struct store_queue_entry *e = &j->entries[i];
			const char *semi = strchr(e->rcpt.orcpt, ';');
			struct dsn_rcpt *d = &dr[n];
			if (actions[i] < 0)
				continue;
			memset(d, 0, sizeof(*d));
			d->final_rcpt = e->rcpt.rcpt;
			if (semi != NULL) {
				snprintf(orcpt[n], sizeof(orcpt[n]), "%.*s", (int)(semi - e->rcpt.orcpt),
					 e->rcpt.orcpt);
				d->orcpt_type = orcpt[n];
				d->orcpt = semi + 1;
			}
			d->action = (enum dsn_action)actions[i];
			d->status = j->rcpts[i].dsn_status[0] != '\0' ? j->rcpts[i].dsn_status
					: d->action == DSN_ACTION_FAILED ? "5.0.0"
					: d->action == DSN_ACTION_DELAYED ? "4.0.0"
									   : "2.0.0";
			d->remote_mta = j->rcpts[i].remote_mta ? oc->remote_host : NULL;
			d->diagnostic = outcomes[i].last_reply[0] != '\0' ? outcomes[i].last_reply
									  : NULL;
			d->last_attempt = oc->now;
			if (d->action == DSN_ACTION_DELAYED)
				d->retry_until = e->created + oc->max_age;
			rep.arrival = e->created;
			n++;
		}
		if (n == 0)
			continue;
		orig = runner_read_original(r, msg, &rep.msg_len, &headers_only);
		rep.msg = orig;
		rep.headers_only = headers_only;
		if (orig == NULL)
			rep.msg_len = 0;
		rep.n_rcpts = n;
		if (pipeline_submit_report(r->pipeline, &rep, r->loop, &err) < 0)
			log_error("queue", "s=%s queue=%s event=dsn_not_sent error=\"%s\"", j->session,
				  msg->env->queue_id, err);
		free(orig);
	}
	free(orcpt);
	free(dr);
}

static void runner_on_recorded(const struct store_reply *reply, void *ctx)
{
	struct runner_job *j = ctx;
	struct queue_runner *r = j->r;

	if (reply->status < 0)
		log_error("queue", "s=%s event=record_failed error=\"%s\"", j->session, reply->error);
	r->recording--;
	runner_job_free(j);
	if (r->stopping) {
		if (r->recording == 0 && r->jobs == NULL) {
			pthread_mutex_destroy(&r->lock);
			free(r->inflight);
			free(r);
		}
		return;
	}
	runner_scan(r);
}

static const char *runner_state_event(enum store_queue_state st)
{
	return st == STORE_QUEUE_DELIVERED ? "delivered"
	       : st == STORE_QUEUE_FAILED  ? "bounced"
					   : "deferred";
}

/* Every recipient has its outcome: one store write with all of them and
 * the trace; DSNs first, while the blobs are still referenced. */
static void runner_job_complete(struct runner_job *j)
{
	struct queue_runner *r = j->r;
	struct store_queue_outcome *outcomes = xcalloc(j->n, sizeof(*outcomes));
	int *actions = xcalloc(j->n, sizeof(*actions));
	const struct smtp_client_attempt *att = NULL, *served = NULL;
	size_t n_att = 0, n_ev = 0;
	struct store_trace_event *events;
	struct runner_outcome_ctx oc = { .now = time(NULL) };
	char retry_text[STORE_VALUE_MAX + 1], detail[1024];
	const char *err;

	settings_get("queue.retry_schedule", retry_text, sizeof(retry_text));
	if (queue_retry_parse(retry_text, &oc.retry, &err) < 0) {
		log_error("queue", "event=bad_setting key=queue.retry_schedule error=\"%s\" "
				   "using=\"5m,10m,30m,1h,2h,4h\"", err);
		queue_retry_parse("5m,10m,30m,1h,2h,4h", &oc.retry, &err);
	}
	oc.warn_after = settings_get_int("queue.warn_after");
	oc.max_age = settings_get_int("queue.max_age");
	if (j->client != NULL) {
		att = smtp_client_attempts(j->client, &n_att);
		served = smtp_client_served_by(j->client);
	}
	oc.remote_host = served != NULL ? served->host : n_att > 0 ? att[n_att - 1].host : NULL;
	for (size_t i = 0; i < j->n; i++)
		actions[i] = runner_decide(r, &oc, &j->entries[i], &j->rcpts[i], &outcomes[i]);
	runner_send_dsns(r, j, actions, outcomes, &oc);

	events = xcalloc(j->n * (n_att + 2), sizeof(*events));
	for (size_t i = 0; i < j->n; i++) {
		const struct store_queue_entry *e = &j->entries[i];
		bool first_of_msg = i == 0 || strcmp(e->env.queue_id, j->entries[i - 1].env.queue_id);
		for (size_t a = 0; first_of_msg && a < n_att; a++) {
			snprintf(detail, sizeof(detail), "host=%s ip=%s tls=%s result=\"%s\"",
				 att[a].host, att[a].ip, att[a].tls[0] ? att[a].tls : "none",
				 att[a].result);
			runner_event(j, e, &events[n_ev++], "attempt", detail);
		}
		snprintf(detail, sizeof(detail), "host=%s ip=%s tls=%s reply=\"%s\"",
			 served != NULL ? served->host : "", served != NULL ? served->ip : "",
			 served != NULL && served->tls[0] ? served->tls : "none",
			 outcomes[i].last_reply);
		runner_event(j, e, &events[n_ev++], runner_state_event(outcomes[i].state), detail);
		if (actions[i] == DSN_ACTION_DELAYED)
			runner_event(j, e, &events[n_ev++], "delay_warned", "delay DSN sent");
		log_info("queue", "s=%s queue=%s rcpt=<%s> event=%s %s", j->session, e->env.queue_id,
			 e->rcpt.rcpt, runner_state_event(outcomes[i].state), detail);
	}
	smtp_client_free(&j->client);
	j->recording = true;
	r->active--;
	r->recording++;
	store_queue_record(r->store, outcomes, j->n, events, n_ev, r->loop, runner_on_recorded, j);
	free(events);
	free(actions);
	free(outcomes);
}

static void runner_on_client_done(struct smtp_client *client, void *ctx)
{
	runner_job_complete(ctx);
}

/* ---- routing -------------------------------------------------------------------- */

static void runner_job_deliver(struct runner_job *j)
{
	struct smtp_client_params p = {
		.loop = j->r->loop,
		.tls = j->r->tls,
		.tls_policy = j->route.tls,
		.helo = j->helo,
		.source4 = j->source4,
		.source6 = j->source6,
		.auth_user = j->auth_user[0] != '\0' ? j->auth_user : NULL,
		.auth_pass = j->auth_pass,
		.session = j->session,
		.hosts = j->hosts,
		.n_hosts = j->n_hosts,
	};

	j->client = smtp_client_start(&p, j->msgs, j->n_msgs, runner_on_client_done, j);
}

static void runner_on_mx(const struct mx_result *res, void *ctx)
{
	struct runner_job *j = ctx;
	char text[512];
	unsigned port = j->route.kind == QUEUE_ROUTE_RELAY ? j->route.port
							    : (unsigned)settings_get_int("delivery.port");

	j->lookup = NULL;
	runner_dns_unref(j->r, &j->dns);
	if (res->status != MX_OK) {
		bool nullmx = strstr(res->error, "null MX") != NULL;
		if (res->status == MX_TEMPFAIL)
			snprintf(text, sizeof(text), "451 4.4.3 %s", res->error);
		else
			snprintf(text, sizeof(text), "%s %s", nullmx ? "556 5.1.10" : "550 5.1.2",
				 res->error);
		runner_job_all(j, res->status == MX_TEMPFAIL ? SMTP_CLIENT_DEFERRED
							     : SMTP_CLIENT_FAILED,
			       text, res->status == MX_TEMPFAIL ? "4.4.3" : nullmx ? "5.1.10" : "5.1.2");
		runner_job_complete(j);
		return;
	}
	j->hosts = xcalloc(res->n, sizeof(*j->hosts));
	for (size_t i = 0; i < res->n; i++) {
		struct smtp_client_host *h = &j->hosts[j->n_hosts++];
		snprintf(h->name, sizeof(h->name), "%s", res->hosts[i].name);
		h->addr = res->hosts[i].addr;
		if (h->addr.ss_family == AF_INET6) {
			((struct sockaddr_in6 *)&h->addr)->sin6_port = htons((uint16_t)port);
			h->addr_len = sizeof(struct sockaddr_in6);
		} else {
			((struct sockaddr_in *)&h->addr)->sin_port = htons((uint16_t)port);
			h->addr_len = sizeof(struct sockaddr_in);
		}
	}
	runner_job_deliver(j);
}

/* The route of the job's domain: delivery.routes, else delivery.relayhost,
 * else direct.  Returns -1 (entries decided) when the settings are bad. */
static int runner_job_route(struct runner_job *j)
{
	char table[STORE_VALUE_MAX + 1], relay[STORE_VALUE_MAX + 1], tls[16];
	const char *err;
	int found;

	settings_get("delivery.routes", table, sizeof(table));
	found = queue_routes_lookup(table, j->domain, &j->route, &err);
	if (found < 0) {
		/* Mail waits rather than go where the table may not mean. */
		log_error("queue", "event=bad_setting key=delivery.routes error=\"%s\"", err);
		runner_job_all(j, SMTP_CLIENT_DEFERRED, "451 4.3.5 delivery.routes is invalid",
			       "4.3.5");
		return -1;
	}
	if (found)
		return 0;
	settings_get("delivery.relayhost", relay, sizeof(relay));
	if (relay[0] == '\0') {
		memset(&j->route, 0, sizeof(j->route));
		j->route.kind = QUEUE_ROUTE_DIRECT;
		return 0;
	}
	if (queue_route_parse_host(relay, &j->route, &err) < 0) {
		log_error("queue", "event=bad_setting key=delivery.relayhost error=\"%s\"", err);
		runner_job_all(j, SMTP_CLIENT_DEFERRED, "451 4.3.5 delivery.relayhost is invalid",
			       "4.3.5");
		return -1;
	}
	j->route.kind = QUEUE_ROUTE_RELAY;
	settings_get("delivery.relayhost_tls", tls, sizeof(tls));
	j->route.tls = strcmp(tls, "require") == 0 ? QUEUE_TLS_REQUIRE : QUEUE_TLS_MAY;
	settings_get("delivery.relayhost_username", j->auth_user, sizeof(j->auth_user));
	settings_get("delivery.relayhost_password", j->auth_pass, sizeof(j->auth_pass));
	return 0;
}

/* A relay given as an IP address: no DNS. */
static bool runner_literal_host(struct runner_job *j)
{
	struct smtp_client_host h = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&h.addr;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h.addr;

	if (inet_pton(AF_INET, j->route.host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)j->route.port);
		h.addr_len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, j->route.host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)j->route.port);
		h.addr_len = sizeof(*s6);
	} else {
		return false;
	}
	snprintf(h.name, sizeof(h.name), "[%.250s]", j->route.host);
	j->hosts = xmalloc(sizeof(h));
	j->hosts[0] = h;
	j->n_hosts = 1;
	return true;
}

/* The sender domain's outbound identity (multihoming): source addresses
 * and EHLO name, else the defaults. */
static void runner_job_identity(struct runner_job *j)
{
	struct store_domain d;

	pthread_mutex_lock(&j->r->lock);
	snprintf(j->helo, sizeof(j->helo), "%s", j->r->hostname);
	pthread_mutex_unlock(&j->r->lock);
	if (j->sender_domain[0] == '\0' ||
	    store_domain_get(loop_data(j->r->loop), j->sender_domain, &d) < 0)
		return;
	if (d.ehlo_name[0] != '\0')
		snprintf(j->helo, sizeof(j->helo), "%s", d.ehlo_name);
	if (d.source_ip4[0] != '\0') {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&j->source4;
		if (inet_pton(AF_INET, d.source_ip4, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else
			log_error("queue", "domain=%s event=bad_source_ip4 value=%s", d.name,
				  d.source_ip4);
	}
	if (d.source_ip6[0] != '\0') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&j->source6;
		if (inet_pton(AF_INET6, d.source_ip6, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		else
			log_error("queue", "domain=%s event=bad_source_ip6 value=%s", d.name,
				  d.source_ip6);
	}
}

static void runner_job_start(struct runner_job *j)
{
	struct queue_runner *r = j->r;
	const char *lookup, *err;
	char text[300];

	runner_job_messages(j);
	runner_job_identity(j);
	log_info("queue", "s=%s event=job domain=%s sender_domain=%s messages=%zu rcpts=%zu",
		 j->session, j->domain, j->sender_domain, j->n_msgs, j->n);
	if (runner_job_route(j) < 0) {
		runner_job_complete(j);
		return;
	}
	if (j->route.kind == QUEUE_ROUTE_REJECT) {
		snprintf(text, sizeof(text), "550 5.7.1 mail to %.250s is refused by delivery.routes",
			 j->domain);
		runner_job_all(j, SMTP_CLIENT_FAILED, text, "5.7.1");
		runner_job_complete(j);
		return;
	}
	if (j->route.kind == QUEUE_ROUTE_RELAY && runner_literal_host(j)) {
		runner_job_deliver(j);
		return;
	}
	lookup = j->route.kind == QUEUE_ROUTE_RELAY ? j->route.host : j->domain;
	j->dns = runner_dns_get(r, &err);
	if (j->dns == NULL) {
		log_error("queue", "event=bad_setting key=dns.resolver error=\"%s\"", err);
		runner_job_all(j, SMTP_CLIENT_DEFERRED, "451 4.4.3 dns.resolver is unusable",
			       "4.4.3");
		runner_job_complete(j);
		return;
	}
	j->lookup = mx_lookup(j->dns->res, lookup, 0, runner_on_mx, j);
}

/* ---- scanning --------------------------------------------------------------------- */

static struct runner_job *runner_find_job(struct runner_job *list, const char *domain,
					  const char *sender_domain)
{
	for (; list != NULL; list = list->next)
		if (strcasecmp(list->domain, domain) == 0 &&
		    strcasecmp(list->sender_domain, sender_domain) == 0)
			return list;
	return NULL;
}

/* Whether entry e should open a new session rather than join j: a session
 * carries at most RUNNER_MSGS_PER_SESSION messages' worth of recipients,
 * so that a backlog to one destination spreads over as many sessions as
 * delivery.max_connections_per_domain allows, at once, instead of growing
 * one session per scan.  A message's recipients (consecutive entries of
 * one blob) stay together while they fit. */
static bool runner_job_full(const struct runner_job *j, const struct store_queue_entry *e)
{
	if (j->n >= RUNNER_MSGS_PER_SESSION * 4)
		return true;
	return j->n >= RUNNER_MSGS_PER_SESSION && j->entries[j->n - 1].blob_id != e->blob_id;
}

/* Groups due entries into new jobs (not yet linked into r->jobs). */
static struct runner_job *runner_group(struct queue_runner *r, struct store_queue_entry *list,
				       size_t n)
{
	struct runner_job *fresh = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct store_queue_entry *e = &list[i];
		const char *dom = runner_domain_of(e->rcpt.rcpt);
		const char *sdom = runner_domain_of(e->env.sender);
		struct runner_job *j;

		if (e->state == STORE_QUEUE_HELD || runner_inflight(r, e->id))
			continue;
		j = runner_find_job(fresh, dom, sdom);
		if (j == NULL || runner_job_full(j, e)) {
			j = xcalloc(1, sizeof(*j));
			j->r = r;
			snprintf(j->domain, sizeof(j->domain), "%s", dom);
			for (char *c = j->domain; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			snprintf(j->sender_domain, sizeof(j->sender_domain), "%s", sdom);
			j->entries = xcalloc(RUNNER_MSGS_PER_SESSION * 4, sizeof(*j->entries));
			j->next = fresh;
			fresh = j;
		}
		j->entries[j->n++] = *e;
	}
	return fresh;
}

static void runner_schedule(struct queue_runner *r)
{
	time_t next = store_queue_next_due(loop_data(r->loop)), now = time(NULL);
	struct timeval tv = { .tv_sec = QUEUE_RUNNER_POLL };

	if (next > now && next - now < QUEUE_RUNNER_POLL)
		tv.tv_sec = next - now;
	evtimer_add(r->timer, &tv);
}

static void runner_scan(struct queue_runner *r)
{
	struct store_queue_entry *list = NULL;
	struct runner_job *fresh, *next;
	size_t n = 0;
	int64_t max_all = settings_get_int("delivery.max_connections");
	int64_t max_dom = settings_get_int("delivery.max_connections_per_domain");

	if (r->stopping)
		return;
	atomic_store(&r->kicked, false);
	if (store_queue_due(loop_data(r->loop), time(NULL), RUNNER_SCAN_LIMIT, &list, &n) < 0) {
		log_error("queue", "event=scan_failed");
		runner_schedule(r);
		return;
	}
	fresh = runner_group(r, list, n);
	free(list);
	for (struct runner_job *j = fresh; j != NULL; j = next) {
		next = j->next;
		if ((int64_t)r->active >= max_all ||
		    (int64_t)runner_domain_active(r, j->domain) >= max_dom) {
			/* Over a limit: the entries stay due, and the end of
			 * a running session scans again. */
			free(j->entries);
			free(j);
			continue;
		}
		snprintf(j->session, sizeof(j->session), "q%lx", ++r->next_id);
		for (size_t i = 0; i < j->n; i++)
			runner_inflight_add(r, j->entries[i].id);
		j->next = r->jobs;
		r->jobs = j;
		r->active++;
		runner_job_start(j);
	}
	runner_schedule(r);
}

static void runner_on_timer(evutil_socket_t fd, short what, void *arg)
{
	runner_scan(arg);
}

static void runner_on_kick(void *arg)
{
	struct queue_runner *r = arg;

	if (!r->stopping)
		runner_scan(r);
}

/* ---- public ------------------------------------------------------------------------ */

struct queue_runner *queue_runner_new(struct store *store, struct pipeline *pipeline,
				      struct loop *loop, const char *hostname)
{
	struct queue_runner *r = xcalloc(1, sizeof(*r));

	r->store = store;
	r->pipeline = pipeline;
	r->loop = loop;
	pthread_mutex_init(&r->lock, NULL);
	snprintf(r->hostname, sizeof(r->hostname), "%s", hostname);
	atomic_init(&r->kicked, false);
	return r;
}

void queue_runner_start(struct queue_runner *r)
{
	const char *err;

	r->tls = smtp_client_tls_ctx_new(&err);
	if (r->tls == NULL)
		log_error("queue", "event=tls_unavailable error=\"%s\"", err);
	r->timer = evtimer_new(loop_base(r->loop), runner_on_timer, r);
	log_info("queue", "event=runner_started loop=%u", loop_index(r->loop));
	runner_scan(r);
}

void queue_runner_kick(void *arg)
{
	struct queue_runner *r = arg;

	/* Many deliveries in a burst make one scan. */
	if (!atomic_exchange(&r->kicked, true))
		loop_post(r->loop, runner_on_kick, r);
}

void queue_runner_set_hostname(struct queue_runner *r, const char *hostname)
{
	pthread_mutex_lock(&r->lock);
	snprintf(r->hostname, sizeof(r->hostname), "%s", hostname);
	pthread_mutex_unlock(&r->lock);
}

void queue_runner_stop(struct queue_runner **rp)
{
	struct queue_runner *r = *rp;
	struct runner_job *j, *next;

	*rp = NULL;
	if (r == NULL)
		return;
	r->stopping = true;
	if (r->timer != NULL)
		event_free(r->timer);
	r->timer = NULL;
	for (j = r->jobs; j != NULL; j = next) {
		next = j->next;
		if (!j->recording)
			runner_job_free(j);
	}
	if (r->dns != NULL) {
		struct runner_dns *d = r->dns;
		runner_dns_unref(r, &d);
	}
	SSL_CTX_free(r->tls);
	r->tls = NULL;
	log_info("queue", "event=runner_stopped");
	if (r->recording == 0 && r->jobs == NULL) {
		pthread_mutex_destroy(&r->lock);
		free(r->inflight);
		free(r);
	}
}
