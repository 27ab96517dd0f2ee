#include "access/abuse.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "directory/directory.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/maildate.h"
#include "pipeline/pipeline.h"
#include "settings/settings.h"
#include "store/store.h"
#include "trace/trace.h"

#define ABUSE_FIRED_MAX 1024
#define ABUSE_FIRED_TTL 86400

/* ---- which accounts the brake fired for (per worker) ---------------------- */

struct abuse_fired {
	int64_t user_id;
	time_t at;
};

static pthread_mutex_t abuse_lock = PTHREAD_MUTEX_INITIALIZER;
static struct abuse_fired abuse_fired[ABUSE_FIRED_MAX];

/* Notes that the brake fires for user_id now; false when it already did
 * within ABUSE_FIRED_TTL.  A full table forgets its oldest note. */
static bool abuse_fire_once(int64_t user_id, time_t now)
{
	struct abuse_fired *slot = NULL, *oldest = &abuse_fired[0];
	bool first = true;

	pthread_mutex_lock(&abuse_lock);
	for (size_t i = 0; i < ABUSE_FIRED_MAX; i++) {
		struct abuse_fired *f = &abuse_fired[i];
		if (f->user_id == user_id) {
			first = now - f->at >= ABUSE_FIRED_TTL;
			slot = f;
			break;
		}
		if (slot == NULL && (f->user_id == 0 || now - f->at >= ABUSE_FIRED_TTL))
			slot = f;
		if (f->at < oldest->at)
			oldest = f;
	}
	if (first) {
		if (slot == NULL)
			slot = oldest;
		slot->user_id = user_id;
		slot->at = now;
	}
	pthread_mutex_unlock(&abuse_lock);
	return first;
}

/* Whether the brake fired for user_id within ABUSE_FIRED_TTL. */
static bool abuse_fired_recently(int64_t user_id, time_t now)
{
	bool fired = false;

	pthread_mutex_lock(&abuse_lock);
	for (size_t i = 0; i < ABUSE_FIRED_MAX && !fired; i++)
		fired = abuse_fired[i].user_id == user_id && now - abuse_fired[i].at < ABUSE_FIRED_TTL;
	pthread_mutex_unlock(&abuse_lock);
	return fired;
}

/* ---- counts kept in memory, for trace.level = off ------------------------- */

/* Fixed windows of an hour and a day, opened by their first message;
 * recipients are counted, not told apart.  Per worker, like the notes
 * above. */
struct abuse_count {
	int64_t user_id;
	time_t hour_start, day_start;
	uint64_t msgs_hour, msgs_day, rcpts_hour;
};

static struct abuse_count abuse_counts[ABUSE_FIRED_MAX];

/* The slot of user_id, or a free or the stalest one if create; with the
 * lock held. */
static struct abuse_count *abuse_count_slot(int64_t user_id, bool create)
{
	struct abuse_count *stalest = &abuse_counts[0];

	for (size_t i = 0; i < ABUSE_FIRED_MAX; i++) {
		if (abuse_counts[i].user_id == user_id)
			return &abuse_counts[i];
		if (abuse_counts[i].day_start < stalest->day_start)
			stalest = &abuse_counts[i];
	}
	if (!create)
		return NULL;
	memset(stalest, 0, sizeof(*stalest));
	stalest->user_id = user_id;
	return stalest;
}

static void abuse_count_add(int64_t user_id, size_t rcpts, time_t now)
{
	struct abuse_count *c;

	pthread_mutex_lock(&abuse_lock);
	c = abuse_count_slot(user_id, true);
	if (now - c->hour_start >= 3600) {
		c->hour_start = now;
		c->msgs_hour = c->rcpts_hour = 0;
	}
	if (now - c->day_start >= 86400) {
		c->day_start = now;
		c->msgs_day = 0;
	}
	c->msgs_hour++;
	c->msgs_day++;
	c->rcpts_hour += rcpts;
	pthread_mutex_unlock(&abuse_lock);
}

static void abuse_count_get(int64_t user_id, time_t now, struct store_account_activity *a)
{
	struct abuse_count *c;

	memset(a, 0, sizeof(*a));
	pthread_mutex_lock(&abuse_lock);
	if ((c = abuse_count_slot(user_id, false)) != NULL) {
		if (now - c->hour_start < 3600) {
			a->messages_hour = c->msgs_hour;
			a->rcpts_hour = c->rcpts_hour;
		}
		if (now - c->day_start < 86400)
			a->messages_day = c->msgs_day;
	}
	pthread_mutex_unlock(&abuse_lock);
}

void abuse_forget(int64_t user_id)
{
	pthread_mutex_lock(&abuse_lock);
	for (size_t i = 0; i < ABUSE_FIRED_MAX; i++) {
		if (abuse_fired[i].user_id == user_id)
			memset(&abuse_fired[i], 0, sizeof(abuse_fired[i]));
		if (abuse_counts[i].user_id == user_id)
			memset(&abuse_counts[i], 0, sizeof(abuse_counts[i]));
	}
	pthread_mutex_unlock(&abuse_lock);
}

/* ---- trace ------------------------------------------------------------------ */

struct abuse_brake {
	struct store *store;
	int64_t user_id;
	char account[STORE_ADDR_MAX + 1];
	char client_ip[64];
	char session[32];
	char protocol[16];
	bool again; /* a hold after the brake's own (abuse_accepted) */
};

static void abuse_event(struct store_trace_event *e, const struct abuse_brake *b,
			const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void abuse_event(struct store_trace_event *e, const struct abuse_brake *b,
			const char *fmt, ...)
{
	va_list ap;

	memset(e, 0, sizeof(*e));
	e->time = time(NULL);
	snprintf(e->event, sizeof(e->event), "abuse");
	snprintf(e->account, sizeof(e->account), "%s", b->account);
	snprintf(e->protocol, sizeof(e->protocol), "%s", b->protocol);
	snprintf(e->client_ip, sizeof(e->client_ip), "%s", b->client_ip);
	snprintf(e->session, sizeof(e->session), "%s", b->session);
	va_start(ap, fmt);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	va_end(ap);
}

/* ---- the brake --------------------------------------------------------------- */

static void abuse_held(const struct store_reply *reply, void *ctx)
{
	struct abuse_brake *b = ctx;
	struct store_trace_event e;

	if (reply->status == 0 && reply->id == 0 && b->again) {
		free(b);
		return;
	}
	if (reply->status < 0) {
		log_error("access", "event=abuse_hold_failed account=%s error=\"%s\"", b->account,
			  reply->error);
		abuse_event(&e, b, "holding queued mail failed: %s", reply->error);
	} else {
		log_info("access", "event=abuse_held account=%s held=%lld", b->account,
			 (long long)reply->id);
		abuse_event(&e, b, "held %lld queued outbound messages of the account",
			    (long long)reply->id);
	}
	store_trace_defer(b->store, &e, 1);
	free(b);
}

static void abuse_suspended(const struct store_reply *reply, void *ctx)
{
	struct abuse_brake *b = ctx;

	if (reply->status < 0)
		log_error("access", "event=abuse_suspend_failed account=%s error=\"%s\"",
			  b->account, reply->error);
	else
		log_info("access", "event=abuse_suspended account=%s", b->account);
	free(b);
}

static void abuse_notice_done(const struct pipeline_result *result, void *ctx)
{
	if (result->status < 0)
		log_error("access", "event=abuse_notice_failed error=\"%s\"", result->error);
}

/* A local notice from the mail system to address, delivered through the
 * pipeline from <>. */
static void abuse_notice(const struct abuse_sender *s, const char *to, const char *subject,
			 const char *body)
{
	struct pipeline_message m = { 0 };
	struct pipeline_rcpt rcpt = { 0 };
	struct pipeline_target *targets;
	struct directory_result res;
	char date[MAIL_DATE_MAX], msgid[256];
	size_t n;
	char *msg;

	if (directory_resolve(s->reader, to, &res) < 0 || res.n_users + res.n_remote == 0) {
		log_error("access", "event=abuse_notice_undeliverable to=<%s>", to);
		directory_result_free(&res);
		return;
	}
	targets = pipeline_targets_of(&res, &n);
	mail_date_format(time(NULL), date, sizeof(date));
	if (mail_message_id_generate(s->hostname, msgid, sizeof(msgid)) < 0)
		mail_message_id_generate("localhost", msgid, sizeof(msgid));
	msg = xasprintf("From: Mail system <postmaster@%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
			"Date: %s\r\nMessage-ID: %s\r\nAuto-Submitted: auto-generated\r\n"
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s",
			strchr(s->account, '@') + 1, to, subject, date, msgid, body);
	snprintf(rcpt.address, sizeof(rcpt.address), "%s", to);
	rcpt.notify = DSN_NOTIFY_NEVER;
	mail_queue_id_generate(m.env.queue_id, sizeof(m.env.queue_id));
	snprintf(m.env.message_id, sizeof(m.env.message_id), "%s", msgid);
	m.protocol = "abuse";
	m.session = s->session;
	m.data = msg;
	m.size = strlen(msg);
	m.rcpts = &rcpt;
	m.n_rcpts = 1;
	m.targets = targets;
	m.n_targets = n;
	pipeline_submit(s->pipeline, &m, s->loop, abuse_notice_done, NULL);
	free(msg);
	free(targets);
	directory_result_free(&res);
}

static void abuse_notices(const struct abuse_sender *s, const char *limit, bool suspend)
{
	const char *domain = strchr(s->account, '@') + 1;
	char postmaster[STORE_ADDR_MAX + 1], subject[STORE_ADDR_MAX + 64];
	char *body;
	const char *state = suspend ? "Its right to send has been suspended."
				    : "Further messages are refused until the count falls "
				      "below the limit.";

	snprintf(postmaster, sizeof(postmaster), "postmaster@%s", domain);
	snprintf(subject, sizeof(subject), "Sending %s for %s", suspend ? "suspended" : "stopped",
		 s->account);
	body = xasprintf("The account %s crossed the limit %s (last from %s).\r\n\r\n"
			 "Its outbound mail waiting in the queue has been held. %s\r\n\r\n"
			 "What to do: change the account's password if the mail was not sent by "
			 "its owner, then review the held mail (keelctl queue list --state held "
			 "--auth-user %s) and release or delete it (keelctl queue release|delete "
			 "--auth-user %s). keelctl user unsuspend %s restores sending.\r\n",
			 s->account, limit, s->client_ip, state, s->account, s->account,
			 s->account);
	abuse_notice(s, s->account, subject, body);
	if (strcasecmp(postmaster, s->account) != 0)
		abuse_notice(s, postmaster, subject, body);
	free(body);
}

static struct abuse_brake *abuse_brake_new(const struct abuse_sender *s)
{
	struct abuse_brake *b = xcalloc(1, sizeof(*b));

	b->store = s->store;
	b->user_id = s->user_id;
	snprintf(b->account, sizeof(b->account), "%s", s->account);
	snprintf(b->client_ip, sizeof(b->client_ip), "%s", s->client_ip);
	snprintf(b->session, sizeof(b->session), "%s", s->session);
	snprintf(b->protocol, sizeof(b->protocol), "%s", s->protocol);
	return b;
}

static void abuse_brake(const struct abuse_sender *s, const char *limit)
{
	bool suspend = settings_get_bool("abuse.auto_suspend");
	struct store_queue_filter f = { .state = -1 };
	struct store_trace_event e;
	struct abuse_brake *b = abuse_brake_new(s);
	char reason[256];

	log_info("access", "event=abuse_brake account=%s ip=%s limit=\"%s\" suspend=%s",
		 s->account, s->client_ip, limit, suspend ? "yes" : "no");
	f.auth_user = s->account;
	store_queue_change(s->store, &f, STORE_QUEUE_HOLD, 0, s->loop, abuse_held,
			   abuse_brake_new(s));
	snprintf(reason, sizeof(reason), "crossed %s", limit);
	abuse_event(&e, b, "brake: %s; outbound mail held%s", reason,
		    suspend ? ", sending suspended" : "");
	if (suspend)
		store_user_set_send_suspended(s->store, s->user_id, true, reason, &e, 1, s->loop,
					      abuse_suspended, b);
	else {
		store_trace_defer(s->store, &e, 1);
		free(b);
	}
	abuse_notices(s, limit, suspend);
}

/* ---- the check --------------------------------------------------------------- */

static void abuse_refuse(struct abuse_refusal *r, unsigned code, const char *enhanced,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void abuse_refuse(struct abuse_refusal *r, unsigned code, const char *enhanced,
			 const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* Which limit the activity crosses, as "KEY=MAX", into buf; false if none. */
static bool abuse_over(const struct store_account_activity *a, size_t rcpts, char *buf,
		       size_t size)
{
	int64_t per_hour = settings_get_int("abuse.account_messages_per_hour");
	int64_t per_day = settings_get_int("abuse.account_messages_per_day");
	int64_t rcpts_hour = settings_get_int("abuse.account_recipients_per_hour");
	const char *key = NULL;
	int64_t max = 0;

	if (per_hour > 0 && a->messages_hour >= (uint64_t)per_hour)
		key = "abuse.account_messages_per_hour", max = per_hour;
	else if (per_day > 0 && a->messages_day >= (uint64_t)per_day)
		key = "abuse.account_messages_per_day", max = per_day;
	/* At MAIL: no room for one more recipient; at RCPT: this one is one
	 * too many (the transaction's own are not counted yet). */
	else if (rcpts_hour > 0 && (rcpts == 0 ? a->rcpts_hour >= (uint64_t)rcpts_hour
					       : a->rcpts_hour + rcpts > (uint64_t)rcpts_hour))
		key = "abuse.account_recipients_per_hour", max = rcpts_hour;
	if (key == NULL)
		return false;
	snprintf(buf, size, "%s=%lld", key, (long long)max);
	return true;
}

/* The account's state and activity from the store (or the in-memory
 * count): 0 to go on to the limits with *a filled, 1 to let it go without
 * (no limit on, or a read error), -1 refused (suspended: *r filled). */
static int abuse_read(const struct abuse_sender *s, time_t now, struct store_account_activity *a,
		      struct abuse_refusal *r)
{
	struct store_send_state st;
	time_t hour = now - 3600, day = now - 86400;

	if (s->user_id <= 0 || store_user_send_state(s->reader, s->user_id, &st) < 0)
		return 1;
	if (st.suspended) {
		abuse_refuse(r, 550, "5.7.1",
			     "Sending suspended for %s (%s); contact your postmaster", s->account,
			     st.reason);
		return -1;
	}
	/* Every limit off: nothing to count (the count is a query on the
	 * trace, which a bulk sender would pay for nothing). */
	if (settings_get_int("abuse.account_messages_per_hour") <= 0 &&
	    settings_get_int("abuse.account_messages_per_day") <= 0 &&
	    settings_get_int("abuse.account_recipients_per_hour") <= 0)
		return 1;
	/* After an unsuspend, only what was sent since counts. */
	if (st.since >= hour)
		hour = st.since + 1;
	if (st.since >= day)
		day = st.since + 1;
	/* At trace.level = off the trace keeps nothing: count in memory. */
	if (!trace_recorded(s->protocol, "accepted"))
		abuse_count_get(s->user_id, now, a);
	else if (store_account_activity(s->reader, s->account, hour, day, a) < 0)
		return 1;
	return 0;
}

int abuse_check(const struct abuse_sender *s, size_t rcpts, struct abuse_seen *seen,
		struct abuse_refusal *r)
{
	struct store_account_activity a = { 0 };
	time_t now = time(NULL);
	char limit[128];
	int ret;

	if (seen != NULL && seen->valid && rcpts > 0) {
		if (!seen->counted)
			return 0;
		a = seen->a;
	} else {
		if ((ret = abuse_read(s, now, &a, r)) < 0)
			return -1;
		if (seen != NULL)
			*seen = (struct abuse_seen){ .valid = true, .counted = ret == 0, .a = a };
		if (ret > 0)
			return 0;
	}
	if (!abuse_over(&a, rcpts, limit, sizeof(limit)))
		return 0;
	abuse_refuse(r, 451, "4.7.1", "Sending limit reached for %s (%s); contact your postmaster",
		     s->account, limit);
	if (abuse_fire_once(s->user_id, now))
		abuse_brake(s, limit);
	return -1;
}

void abuse_accepted(const struct abuse_sender *s, size_t rcpts)
{
	struct store_queue_filter f = { .state = -1 };
	struct abuse_brake *b;

	if (s->user_id <= 0)
		return;
	abuse_count_add(s->user_id, rcpts, time(NULL));
	if (!abuse_fired_recently(s->user_id, time(NULL)))
		return;
	/* A message that passed its check before the brake fired and became
	 * durable after the hold: hold it too. */
	f.auth_user = s->account;
	b = abuse_brake_new(s);
	b->again = true;
	store_queue_change(s->store, &f, STORE_QUEUE_HOLD, 0, s->loop, abuse_held, b);
}
