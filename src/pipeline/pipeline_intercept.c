/* Interception: the orders in memory, the copies, the event log
 * (pipeline_intercept.h, docs/trace.md). */
#include "pipeline/pipeline_intercept.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "directory/directory.h"
#include "lib/base64.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "mail/dsn.h"
#include "mail/maildate.h"
#include "pipeline/pipeline_private.h"
#include "settings/settings.h"
#include "store/store.h"
#include "trace/trace_json.h"

/* Events whose time is this much before the order still count (a session's
 * access events are stamped when they happen and committed later); the
 * trace id is what decides, the time only narrows the index range. */
#define IC_TIME_SLACK 3600

struct ic_order {
	struct store_intercept o;
	time_t last_mail; /* --to: when the last event message went (memory only) */
};

struct pipeline_intercepts {
	pthread_mutex_t lock;
	atomic_size_t n; /* read without the lock: no orders, no work */
	struct ic_order *orders;
	size_t n_orders;
};

struct pipeline_intercepts *pipeline_intercepts_new(void)
{
	struct pipeline_intercepts *ic = xcalloc(1, sizeof(*ic));

	pthread_mutex_init(&ic->lock, NULL);
	return ic;
}

void pipeline_intercepts_free(struct pipeline_intercepts **icp)
{
	if (*icp == NULL)
		return;
	pthread_mutex_destroy(&(*icp)->lock);
	free((*icp)->orders);
	free(*icp);
	*icp = NULL;
}

int pipeline_intercept_reload(struct pipeline *p, struct store_reader *r)
{
	struct pipeline_intercepts *ic = p->intercepts;
	struct store_intercept *list;
	struct ic_order *orders, *old;
	size_t n;

	if (store_intercept_list(r, &list, &n) < 0)
		return -1;
	orders = xcalloc(n > 0 ? n : 1, sizeof(*orders));
	pthread_mutex_lock(&ic->lock);
	for (size_t i = 0; i < n; i++) {
		orders[i].o = list[i];
		for (size_t j = 0; j < ic->n_orders; j++)
			if (ic->orders[j].o.id == list[i].id)
				orders[i].last_mail = ic->orders[j].last_mail;
	}
	old = ic->orders;
	ic->orders = orders;
	ic->n_orders = n;
	atomic_store(&ic->n, n);
	pthread_mutex_unlock(&ic->lock);
	free(old);
	free(list);
	return 0;
}

/* A copy of the orders, so that slow work runs without the lock. */
static struct ic_order *ic_snapshot(struct pipeline_intercepts *ic, size_t *n_r)
{
	struct ic_order *copy;

	pthread_mutex_lock(&ic->lock);
	*n_r = ic->n_orders;
	copy = xcalloc(ic->n_orders > 0 ? ic->n_orders : 1, sizeof(*copy));
	if (ic->n_orders > 0)
		memcpy(copy, ic->orders, ic->n_orders * sizeof(*copy));
	pthread_mutex_unlock(&ic->lock);
	return copy;
}

static void ic_set_last_mail(struct pipeline_intercepts *ic, int64_t id, time_t t)
{
	pthread_mutex_lock(&ic->lock);
	for (size_t i = 0; i < ic->n_orders; i++)
		if (ic->orders[i].o.id == id)
			ic->orders[i].last_mail = t;
	pthread_mutex_unlock(&ic->lock);
}

/* ---- files ------------------------------------------------------------------ */

int pipeline_intercept_dir_prepare(const char *dir, char *err, size_t size)
{
	char *path;
	struct stat st;

	if (dir[0] != '/') {
		snprintf(err, size, "directory %s is not an absolute path", dir);
		return -1;
	}
	path = xstrdup(dir);
	/* Each missing component, parents first (mkdir -p), mode 0700. */
	for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash != NULL)
			*slash = '\0';
		if (path[0] != '\0' && mkdir(path, 0700) < 0 && errno != EEXIST) {
			snprintf(err, size, "cannot create directory %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		if (slash == NULL)
			break;
		*slash = '/';
		if (slash[1] == '\0')
			break;
	}
	free(path);
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, size, "%s is not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		snprintf(err, size, "cannot write to directory %s: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static int ic_write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static void ic_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* One message into dir: a temporary file, written and flushed, then renamed
 * to its name, so that a reader never sees half a message. */
static int ic_write_message(const char *dir, const char *name, const char *header,
			    const char *data, size_t size)
{
	char *tmp = xasprintf("%s/.tmp-%s", dir, name), *final = xasprintf("%s/%s", dir, name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600), ret = -1;

	if (fd >= 0) {
		ret = 0;
		if (ic_write_all(fd, header, strlen(header)) < 0 ||
		    ic_write_all(fd, data, size) < 0 || fsync(fd) < 0)
			ret = -1;
		if (close(fd) < 0)
			ret = -1;
		if (ret == 0 && rename(tmp, final) < 0)
			ret = -1;
		if (ret < 0)
			unlink(tmp);
		else
			ic_fsync_dir(dir);
	}
	if (ret < 0)
		log_error("intercept", "event=copy_failed file=%s error=\"%s\"", final,
			  strerror(errno));
	free(tmp);
	free(final);
	return ret;
}

/* A --dir copy on its way to the disk: written on the work pool (open,
 * write, fsync, rename, fsync of the directory would hold the submitting
 * loop for milliseconds per message), nothing waits for it. */
struct ic_file {
	char *dir, *name, *header, *data;
	size_t size;
};

static void ic_file_write(void *arg)
{
	struct ic_file *f = arg;

	ic_write_message(f->dir, f->name, f->header, f->data, f->size);
	free(f->dir);
	free(f->name);
	free(f->header);
	free(f->data);
	free(f);
}

static void ic_file_queue(struct pipeline *p, const char *dir, const char *name,
			  const char *header, const char *data, size_t size)
{
	struct ic_file *f = xcalloc(1, sizeof(*f));

	f->dir = xstrdup(dir);
	f->name = xstrdup(name);
	f->header = xstrdup(header);
	f->data = xmalloc(size > 0 ? size : 1);
	memcpy(f->data, data, size);
	f->size = size;
	/* Under the lock: the pool is not stopped between the test and the
	 * hand-over (shutdown clears it first). */
	pthread_mutex_lock(&p->lock);
	if (p->workpool != NULL) {
		workpool_run(p->workpool, ic_file_write, NULL, NULL, f);
		f = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (f != NULL)
		ic_file_write(f);
}

/* ---- submitting ------------------------------------------------------------- */

struct ic_sent {
	struct pipeline_intercept_timer *t; /* NULL for copies */
	int64_t order_id, last_id;
};

static void ic_event_mail_done(struct ic_sent *sent, int status);

static void ic_submit_done(const struct pipeline_result *result, void *ctx)
{
	struct ic_sent *sent = ctx;

	if (result->status < 0)
		log_error("intercept", "event=copy_failed order=%lld error=\"%s\"",
			  (long long)sent->order_id, result->error);
	if (sent->t != NULL)
		ic_event_mail_done(sent, result->status);
	free(sent);
}

/* A message from <> (no DSN ever reaches the intercepted account) to
 * address, resolved by the directory; protocol "intercept", which is never
 * intercepted again.  It carries no Message-ID in its envelope, so a trace
 * by the original's Message-ID does not list it. */
static int ic_submit(struct pipeline *p, struct loop *loop, const char *address,
		     const char *msg, size_t len, struct ic_sent *sent)
{
	struct pipeline_message m = { .protocol = "intercept", .session = "intercept",
				      .data = msg, .size = len };
	const char *reason;

	if (pipeline_submit_from_null(p, &m, address, loop, ic_submit_done, sent, &reason) < 0) {
		log_error("intercept", "event=copy_failed order=%lld to=<%s> reason=\"%s\"",
			  (long long)sent->order_id, address, reason);
		return -1;
	}
	return 0;
}

/* ---- copies ------------------------------------------------------------------ */

static bool ic_local_client(const char *ip)
{
	return ip[0] == '\0' || strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
	       strncmp(ip, "::ffff:127.", 11) == 0;
}

/* Sent by address: submitted with it as the authenticated user, or with it
 * as envelope sender from this host without AUTH. */
static bool ic_sent_by(const struct store_envelope *env, const char *address)
{
	if (env->auth_user[0] != '\0')
		return strcasecmp(env->auth_user, address) == 0;
	return env->sender[0] != '\0' && strcasecmp(env->sender, address) == 0 &&
	       ic_local_client(env->client_ip);
}

static bool ic_received_by(const struct pipeline_copy_src *src, int64_t user_id)
{
	for (size_t i = 0; i < src->n_users; i++)
		if (src->users[i] == user_id)
			return true;
	return false;
}

static void ic_copy_one(struct pipeline *p, const struct ic_order *order,
			const struct pipeline_copy_src *src, const char *direction,
			struct loop *loop)
{
	char *header = xasprintf("X-Keel-Intercept: case=%s; account=%s; direction=%s;"
				 " queue=%s\r\n",
				 order->o.case_id, order->o.address, direction, src->env->queue_id);
	char name[160], stamp[32];
	time_t now = time(NULL);
	struct tm tm;
	struct ic_sent *sent;
	size_t hlen = strlen(header);
	char *msg;

	if (order->o.dir[0] != '\0') {
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", gmtime_r(&now, &tm));
		snprintf(name, sizeof(name), "%s-%s-%s.eml", stamp, src->env->queue_id, direction);
		ic_file_queue(p, order->o.dir, name, header, src->data, src->size);
	} else {
		msg = xmalloc(hlen + src->size + 1);
		memcpy(msg, header, hlen);
		memcpy(msg + hlen, src->data, src->size);
		sent = xcalloc(1, sizeof(*sent));
		sent->order_id = order->o.id;
		if (ic_submit(p, loop, order->o.to_address, msg, hlen + src->size, sent) < 0)
			free(sent);
		free(msg);
	}
	log_info("intercept", "event=copy order=%lld queue=%s direction=%s",
		 (long long)order->o.id, src->env->queue_id, direction);
	free(header);
}

bool pipeline_intercepts_active(struct pipeline *p)
{
	return atomic_load(&p->intercepts->n) > 0;
}

void pipeline_intercept_copy(struct pipeline *p, const struct pipeline_copy_src *src,
			     struct loop *loop)
{
	struct ic_order *orders;
	size_t n;

	if (!pipeline_intercepts_active(p) || strcmp(src->protocol, "intercept") == 0)
		return;
	orders = ic_snapshot(p->intercepts, &n);
	for (size_t i = 0; i < n; i++) {
		if (ic_received_by(src, orders[i].o.user_id))
			ic_copy_one(p, &orders[i], src, "in", loop);
		if (ic_sent_by(src->env, orders[i].o.address))
			ic_copy_one(p, &orders[i], src, "out", loop);
	}
	free(orders);
}

/* ---- the event log ------------------------------------------------------------ */

struct pipeline_intercept_timer {
	struct pipeline *p;
	struct store *store;
	struct loop *loop;
	struct store_reader *r;
	struct event *ev;
	unsigned pending; /* writes and messages in flight */
	bool stopping;    /* stopped while pending: the last callback frees */
};

static void ic_timer_free(struct pipeline_intercept_timer *t)
{
	event_free(t->ev);
	free(t);
}

static void ic_timer_arm(struct pipeline_intercept_timer *t)
{
	struct timeval tv = { PIPELINE_INTERCEPT_TICK, 0 };

	evtimer_add(t->ev, &tv);
}

static void ic_pending_done(struct pipeline_intercept_timer *t)
{
	if (--t->pending == 0 && t->stopping)
		ic_timer_free(t);
}

static void ic_sent_recorded(const struct store_reply *reply, void *ctx)
{
	struct pipeline_intercept_timer *t = ctx;

	if (reply->status < 0)
		log_error("intercept", "event=events_sent_failed error=\"%s\"",
			  reply->error != NULL ? reply->error : "");
	ic_pending_done(t);
}

static void ic_record_sent(struct pipeline_intercept_timer *t, int64_t order_id, int64_t last_id)
{
	t->pending++;
	store_intercept_set_sent(t->store, order_id, last_id, t->loop, ic_sent_recorded, t);
}

static void ic_event_mail_done(struct ic_sent *sent, int status)
{
	struct pipeline_intercept_timer *t = sent->t;

	if (status == 0 && !t->stopping)
		ic_record_sent(t, sent->order_id, sent->last_id);
	ic_pending_done(t);
}

/* The highest trace_id in dir's events.jsonl, so that events appended
 * before a crash that kept events_sent from being recorded are not
 * appended twice.  A torn last line (a crash mid-append) is cut. */
static int64_t ic_jsonl_last_id(const char *path)
{
	char buf[8192], *nl, *start;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	off_t size, from;
	ssize_t n;
	json_t *line;
	int64_t id = 0;

	if (fd < 0)
		return 0;
	size = lseek(fd, 0, SEEK_END);
	from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	n = size > 0 ? pread(fd, buf, (size_t)(size - from), from) : 0;
	if (n > 0) {
		buf[n] = '\0';
		nl = strrchr(buf, '\n');
		if (nl == NULL || nl != buf + n - 1) {
			if (ftruncate(fd, nl != NULL ? from + (nl - buf) + 1 : from) < 0)
				log_error("intercept", "event=truncate_failed file=%s", path);
		}
		if (nl != NULL) {
			*nl = '\0';
			start = strrchr(buf, '\n');
			line = json_loads(start != NULL ? start + 1 : buf, 0, NULL);
			id = json_integer_value(json_object_get(line, "trace_id"));
			json_decref(line);
		}
	}
	close(fd);
	return id;
}

/* The events as JSON lines, each with its trace id and the case. */
static char *ic_events_text(const struct ic_order *order, const struct store_trace_event *events,
			    const int64_t *ids, size_t n, size_t *len_r)
{
	size_t len = 0, cap = 4096;
	char *text = xmalloc(cap), *line;
	json_t *o;

	for (size_t i = 0; i < n; i++) {
		o = trace_event_json(&events[i]);
		json_object_set_new(o, "trace_id", json_integer(ids[i]));
		json_object_set_new(o, "case", json_string(order->o.case_id));
		line = trace_event_json_line(o);
		json_decref(o);
		while (len + strlen(line) + 1 > cap)
			text = xrealloc(text, cap *= 2);
		memcpy(text + len, line, strlen(line));
		len += strlen(line);
		free(line);
	}
	text[len] = '\0';
	*len_r = len;
	return text;
}

/* An append to a --dir order's events.jsonl, done on the work pool (read
 * of the tail, write, fsync); the timer records how far it got once back
 * on its loop. */
struct ic_append {
	struct pipeline_intercept_timer *t;
	int64_t order_id;
	char *path, *text; /* text: one line per id, in id order */
	size_t len, n;
	int64_t *ids;
	int status;
};

static void ic_append_write(void *arg)
{
	struct ic_append *a = arg;
	int64_t last = ic_jsonl_last_id(a->path);
	size_t off = 0;
	int fd;

	/* Lines already in the file (appended before a crash kept events_sent
	 * from being recorded) are not appended twice. */
	for (size_t k = 0; k < a->n && a->ids[k] <= last; k++)
		off = (size_t)(strchr(a->text + off, '\n') - a->text) + 1;
	a->status = 0;
	if (off == a->len)
		return;
	fd = open(a->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || ic_write_all(fd, a->text + off, a->len - off) < 0 || fsync(fd) < 0)
		a->status = -1;
	if (a->status < 0)
		log_error("intercept", "event=events_failed file=%s error=\"%s\"", a->path,
			  strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void ic_append_done(void *arg)
{
	struct ic_append *a = arg;

	if (a->status == 0 && !a->t->stopping)
		ic_record_sent(a->t, a->order_id, a->ids[a->n - 1]);
	ic_pending_done(a->t);
	free(a->path);
	free(a->text);
	free(a->ids);
	free(a);
}

static void ic_events_dir(struct pipeline_intercept_timer *t, const struct ic_order *order)
{
	struct store_trace_event *events;
	struct ic_append *a;
	struct pipeline *p = t->p;
	int64_t *ids;
	size_t n;

	if (store_trace_account_after(t->r, order->o.address, order->o.events_sent,
				      order->o.created - IC_TIME_SLACK, 0,
				      PIPELINE_INTERCEPT_EVENTS_MAX, &events, &ids, &n) < 0)
		return;
	if (n == 0) {
		free(events);
		free(ids);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->t = t;
	a->order_id = order->o.id;
	a->path = xasprintf("%s/events.jsonl", order->o.dir);
	a->text = ic_events_text(order, events, ids, n, &a->len);
	a->ids = ids;
	a->n = n;
	free(events);
	t->pending++;
	pthread_mutex_lock(&p->lock);
	if (p->workpool != NULL) {
		workpool_run(p->workpool, ic_append_write, t->loop, ic_append_done, a);
		a = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	if (a != NULL) {
		ic_append_write(a);
		ic_append_done(a);
	}
}

/* The event message: the events as JSON lines in a base64 text part (lines
 * may be longer than SMTP allows, and any octet). */
static char *ic_events_message(struct pipeline_intercept_timer *t, const struct ic_order *order,
			       const char *text, size_t len, int64_t first, int64_t last,
			       size_t *len_r)
{
	char host[256], date[64], msgid[320], *b64 = xmalloc(4 * ((len + 2) / 3) + 1), *head, *msg;
	size_t blen = base64_encode((const unsigned char *)text, len, b64), hlen, off;

	pipeline_get_hostname(t->p, host, sizeof(host));
	mail_date_format(time(NULL), date, sizeof(date));
	mail_message_id_generate(host, msgid, sizeof(msgid));
	head = xasprintf("From: Keel interception <MAILER-DAEMON@%s>\r\nTo: <%s>\r\n"
			 "Subject: Access events of %s (case %s)\r\nDate: %s\r\n"
			 "Message-ID: %s\r\n"
			 "X-Keel-Intercept: case=%s; account=%s; direction=events;"
			 " events=%lld-%lld\r\nMIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Transfer-Encoding: base64\r\n\r\n",
			 host, order->o.to_address, order->o.address, order->o.case_id, date,
			 msgid, order->o.case_id, order->o.address, (long long)first,
			 (long long)last);
	hlen = strlen(head);
	msg = xmalloc(hlen + blen + 2 * (blen / 76 + 1) + 1);
	memcpy(msg, head, hlen);
	off = hlen;
	for (size_t i = 0; i < blen; i += 76) {
		size_t k = blen - i < 76 ? blen - i : 76;
		memcpy(msg + off, b64 + i, k);
		off += k;
		memcpy(msg + off, "\r\n", 2);
		off += 2;
	}
	*len_r = off;
	free(head);
	free(b64);
	return msg;
}

static void ic_events_to(struct pipeline_intercept_timer *t, const struct ic_order *order,
			 time_t now)
{
	struct store_trace_event *events;
	int64_t *ids;
	size_t n, len, mlen;
	char *text, *msg;
	struct ic_sent *sent;

	if (now - order->last_mail < settings_get_int("intercept.event_interval"))
		return;
	if (store_trace_account_after(t->r, order->o.address, order->o.events_sent,
				      order->o.created - IC_TIME_SLACK, 0,
				      PIPELINE_INTERCEPT_EVENTS_MAX, &events, &ids, &n) < 0)
		return;
	if (n > 0) {
		text = ic_events_text(order, events, ids, n, &len);
		msg = ic_events_message(t, order, text, len, ids[0], ids[n - 1], &mlen);
		sent = xcalloc(1, sizeof(*sent));
		sent->t = t;
		sent->order_id = order->o.id;
		sent->last_id = ids[n - 1];
		ic_set_last_mail(t->p->intercepts, order->o.id, now);
		t->pending++;
		if (ic_submit(t->p, t->loop, order->o.to_address, msg, mlen, sent) < 0) {
			t->pending--;
			free(sent);
		}
		free(text);
		free(msg);
	}
	free(events);
	free(ids);
}

static void ic_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline_intercept_timer *t = arg;
	struct ic_order *orders;
	time_t now = time(NULL);
	size_t n;

	/* One round at a time: the next starts once this one's writes are
	 * recorded, so events_sent is never read stale. */
	if (t->pending == 0 && atomic_load(&t->p->intercepts->n) > 0 &&
	    pipeline_intercept_reload(t->p, t->r) == 0) {
		orders = ic_snapshot(t->p->intercepts, &n);
		for (size_t i = 0; i < n; i++) {
			if (orders[i].o.dir[0] != '\0')
				ic_events_dir(t, &orders[i]);
			else
				ic_events_to(t, &orders[i], now);
		}
		free(orders);
	}
	ic_timer_arm(t);
}

struct pipeline_intercept_timer *pipeline_intercept_start(struct pipeline *p, struct store *s,
							  struct loop *loop,
							  struct store_reader *r)
{
	struct pipeline_intercept_timer *t = xcalloc(1, sizeof(*t));

	if (pipeline_intercept_reload(p, r) < 0)
		log_error("intercept", "event=load_failed");
	t->p = p;
	t->store = s;
	t->loop = loop;
	t->r = r;
	t->ev = evtimer_new(loop_base(loop), ic_tick, t);
	ic_timer_arm(t);
	return t;
}

void pipeline_intercept_stop(struct pipeline_intercept_timer **tp)
{
	struct pipeline_intercept_timer *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	evtimer_del(t->ev);
	if (t->pending > 0)
		t->stopping = true;
	else
		ic_timer_free(t);
}
