#include "keeld/worker.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/access_policy.h"
#include "access/dnsbl.h"
#include "admin/admin.h"
#include "auth/relay_window.h"
#include "auth/throttle.h"
#include "keeld/config.h"
#include "keeld/ipc.h"
#include "keeld/master.h"
#include "keeld/session.h"
#include "lib/log.h"
#include "lib/iplimit.h"
#include "lib/loop.h"
#include "lib/tls.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "pipeline/pipeline.h"
#include "queue/queue_runner.h"
#include "imap/imap_recent.h"
#include "pop3/pop3_lock.h"
#include "settings/settings.h"
#include "store/store.h"

struct worker_listener {
	uint32_t id;
	enum service service;
	char address[CONFIG_ADDR_MAX];
	int fd;
	struct evconnlistener **per_loop; /* one per loop, created on that loop */
	struct worker *worker;
	atomic_uint unlisten_pending;     /* loops yet to drop their listener */
};

struct worker_reload {
	struct worker_reload *next;
	void (*done)(int status, const char *error, void *ctx);
	void *ctx;
};

struct worker {
	struct config config;
	struct store *store;
	struct workpool *workpool;
	struct loop_pool *loops;
	struct loop *admin_loop;
	struct admin_server *admin;
	struct event *ipc_ev;
	struct worker_listener **listeners; /* touched on the admin loop only */
	size_t n_listeners;
	struct worker_reload *reloads;      /* pending `keelctl reload`s */
	time_t started;
	pthread_t main_thread;
	pthread_mutex_t tls_lock;
	SSL_CTX *tls;
	struct session_env env;
	struct pipeline *pipeline;
	struct auth_throttle *throttle;
	struct iplimit *iplimit;
	struct relay_window *relay_window;
	struct pop3_locks *pop3_locks;
	struct imap_recent *imap_recent;
	struct queue_runner *runner; /* on runner_loop */
	struct loop *runner_loop;
};

/* ---- TLS ------------------------------------------------------------------ */

static SSL_CTX *worker_tls_get(void *arg)
{
	struct worker *w = arg;
	SSL_CTX *ctx;

	pthread_mutex_lock(&w->tls_lock);
	ctx = w->tls;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&w->tls_lock);
	return ctx;
}

static char *worker_read_fd(int fd, size_t *len_r)
{
	size_t cap = 8192, len = 0;
	char *buf = xmalloc(cap);
	ssize_t n;

	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap)
			buf = xrealloc(buf, cap *= 2);
		if (len > 4 * 1024 * 1024)
			break;
	}
	buf[len] = '\0';
	*len_r = len;
	return buf;
}

/* A new certificate serves new connections; sessions already in TLS keep
 * the context they started with (reference counted). */
static void worker_on_cert(struct worker *w, struct ipc_msg *msg)
{
	size_t cert_len, key_len;
	char *cert, *key;
	const char *err;
	SSL_CTX *ctx, *old;

	if (msg->n_fds != 2) {
		log_error("worker", "event=tls_update_failed error=\"expected 2 descriptors\"");
		return;
	}
	cert = worker_read_fd(msg->fds[0], &cert_len);
	key = worker_read_fd(msg->fds[1], &key_len);
	ctx = tls_server_ctx_new(cert, cert_len, key, key_len, &err);
	explicit_bzero(key, key_len);
	free(cert);
	free(key);
	if (ctx == NULL) {
		log_error("worker", "event=tls_update_failed error=\"%s\"", err);
		return;
	}
	pthread_mutex_lock(&w->tls_lock);
	old = w->tls;
	w->tls = ctx;
	pthread_mutex_unlock(&w->tls_lock);
	SSL_CTX_free(old);
	log_info("worker", "event=tls_updated");
}

/* ---- listeners ------------------------------------------------------------ */

struct worker_listen_task {
	struct worker_listener *l;
	struct loop *loop;
};

static void worker_on_accept(struct evconnlistener *lev, evutil_socket_t fd,
			     struct sockaddr *sa, int socklen, void *arg)
{
	struct worker_listener *l = arg;
	struct loop *loop = loop_current();

	session_accept(&l->worker->env, l->service, fd, sa, (socklen_t)socklen, loop);
}

static void worker_listen_on_loop(void *arg)
{
	struct worker_listen_task *t = arg;
	struct evconnlistener *lev;

	/* Every loop accepts on every listener: the kernel hands each
	 * connection to one of them, which spreads the load. */
	lev = evconnlistener_new(loop_base(t->loop), worker_on_accept, t->l, 0, -1, t->l->fd);
	if (lev == NULL)
		log_error("worker", "event=listen_failed address=%s", t->l->address);
	t->l->per_loop[loop_index(t->loop)] = lev;
	free(t);
}

/* Each loop drops its own evconnlistener; the last one to do so closes the
 * socket and frees the listener. */
static void worker_unlisten_on_loop(void *arg)
{
	struct worker_listen_task *t = arg;
	struct worker_listener *l = t->l;
	unsigned i = loop_index(t->loop);

	free(t);
	if (l->per_loop[i] != NULL)
		evconnlistener_free(l->per_loop[i]);
	l->per_loop[i] = NULL;
	if (atomic_fetch_sub(&l->unlisten_pending, 1) == 1) {
		close(l->fd);
		free(l->per_loop);
		free(l);
	}
}

static void worker_for_each_loop(struct worker *w, struct worker_listener *l, loop_fn *fn)
{
	for (unsigned i = 0; i < loop_pool_count(w->loops); i++) {
		struct worker_listen_task *t = xmalloc(sizeof(*t));
		t->l = l;
		t->loop = loop_pool_get(w->loops, i);
		loop_post(t->loop, fn, t);
	}
}

static void worker_on_listener_add(struct worker *w, struct ipc_msg *msg)
{
	struct worker_listener *l;
	char svc[32];
	enum service service;

	if (msg->n_fds != 1 || sscanf(msg->payload, "%31s", svc) != 1 ||
	    service_parse(svc, &service) < 0) {
		log_error("worker", "event=bad_ipc type=listener_add");
		return;
	}
	l = xcalloc(1, sizeof(*l));
	l->id = msg->id;
	l->service = service;
	snprintf(l->address, sizeof(l->address), "%s", msg->payload + strlen(svc) + 1);
	l->fd = msg->fds[0];
	msg->fds[0] = -1;
	l->worker = w;
	l->per_loop = xcalloc(loop_pool_count(w->loops), sizeof(*l->per_loop));
	w->listeners = xrealloc(w->listeners, (w->n_listeners + 1) * sizeof(*w->listeners));
	w->listeners[w->n_listeners++] = l;
	worker_for_each_loop(w, l, worker_listen_on_loop);
	log_info("worker", "event=listen service=%s address=%s", svc, l->address);
}

/* Removes listener i: every loop drops its evconnlistener, the last one
 * closes the socket. */
static void worker_remove_listener(struct worker *w, size_t i)
{
	struct worker_listener *l = w->listeners[i];

	log_info("worker", "event=unlisten service=%s address=%s", service_name(l->service),
		 l->address);
	w->listeners[i] = w->listeners[--w->n_listeners];
	atomic_store(&l->unlisten_pending, loop_pool_count(w->loops));
	worker_for_each_loop(w, l, worker_unlisten_on_loop);
}

static void worker_on_listener_del(struct worker *w, uint32_t id)
{
	for (size_t i = 0; i < w->n_listeners; i++) {
		if (w->listeners[i]->id == id) {
			worker_remove_listener(w, i);
			return;
		}
	}
}

static json_t *worker_listeners_json(void *arg)
{
	struct worker *w = arg;
	json_t *a = json_array();

	for (size_t i = 0; i < w->n_listeners; i++)
		json_array_append_new(a, json_pack("{s:s,s:s}", "service",
						   service_name(w->listeners[i]->service),
						   "address", w->listeners[i]->address));
	return a;
}

/* ---- reload ---------------------------------------------------------------- */

static void worker_reload(void *arg, void (*done)(int status, const char *error, void *ctx),
			  void *ctx)
{
	struct worker *w = arg;
	struct worker_reload *r = xmalloc(sizeof(*r)), **tail = &w->reloads;

	r->next = NULL;
	r->done = done;
	r->ctx = ctx;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = r;
	if (ipc_send(WORKER_IPC_FD, IPC_RELOAD_REQUEST, 0, 0, NULL, 0, NULL, 0) < 0) {
		*tail = NULL;
		free(r);
		done(-1, "the master process does not answer", ctx);
	}
}

static void worker_on_reload_done(struct worker *w, struct ipc_msg *msg)
{
	struct worker_reload *r = w->reloads;

	if (r == NULL)
		return;
	w->reloads = r->next;
	r->done(msg->status, msg->status == 0 ? NULL : msg->payload, r->ctx);
	free(r);
}

/* Parses the IPC_CONFIG / IPC_SETTINGS payload: path, log override, text. */
static int worker_parse_payload(char *payload, struct config *c, char **error_r)
{
	char *nl1 = strchr(payload, '\n'), *nl2;

	if (nl1 == NULL || (nl2 = strchr(nl1 + 1, '\n')) == NULL) {
		*error_r = xasprintf("malformed configuration message");
		return -1;
	}
	*nl1 = *nl2 = '\0';
	if (config_parse(nl2 + 1, payload, c, error_r) < 0)
		return -1;
	if (nl1[1] != '\0')
		snprintf(c->log, sizeof(c->log), "%s", nl1 + 1);
	return 0;
}

/* keel.conf after a reload: what the worker applies live. */
static void worker_on_settings(struct worker *w, struct ipc_msg *msg)
{
	struct config c;
	char *err = NULL;
	const char *lerr;

	if (worker_parse_payload(msg->payload, &c, &err) < 0) {
		log_error("worker", "event=settings_failed error=\"%s\"", err);
		free(err);
		return;
	}
	if (strcmp(c.log, w->config.log) != 0 && log_open(c.log, "keeld", &lerr) < 0)
		log_error("worker", "event=log_open_failed error=\"%s\"", lerr);
	log_set_level(c.log_level);
	session_env_set_hostname(&w->env, c.hostname);
	pipeline_set_hostname(w->pipeline, c.hostname);
	if (w->runner != NULL)
		queue_runner_set_hostname(w->runner, c.hostname);
	config_deinit(&w->config);
	w->config = c;
}

/* ---- IPC ------------------------------------------------------------------ */

static void worker_on_ipc(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct ipc_msg msg;
	int r;

	while ((r = ipc_recv(WORKER_IPC_FD, &msg)) > 0) {
		switch (msg.type) {
		case IPC_LISTENER_ADD: worker_on_listener_add(w, &msg); break;
		case IPC_LISTENER_DEL: worker_on_listener_del(w, msg.id); break;
		case IPC_CERT: worker_on_cert(w, &msg); break;
		case IPC_SETTINGS: worker_on_settings(w, &msg); break;
		case IPC_RELOAD_DONE: worker_on_reload_done(w, &msg); break;
		case IPC_STOP: pthread_kill(w->main_thread, SIGTERM); break;
		default: log_error("worker", "event=bad_ipc type=%d", (int)msg.type); break;
		}
		ipc_msg_free(&msg);
	}
	if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
		/* The master is gone: nobody can restart us, so stop cleanly. */
		log_error("worker", "event=master_gone action=stop");
		event_del(w->ipc_ev);
		pthread_kill(w->main_thread, SIGTERM);
	}
}

/* ---- start and stop --------------------------------------------------------- */

static void worker_loop_init(void *arg)
{
	struct worker *w = arg;
	struct store_reader *reader;
	const char *err;

	if (store_reader_open(w->store, &reader, &err) < 0)
		fatal("store reader: %s", err);
	loop_set_data(loop_current(), reader);
}

static void worker_loop_deinit(void *arg)
{
	struct store_reader *reader = loop_data(loop_current());

	store_reader_close(&reader);
	loop_set_data(loop_current(), NULL);
	dnsbl_loop_deinit();
}

struct worker_sync {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int status;
	struct worker *w;
};

static void worker_sync_signal(struct worker_sync *s, int status)
{
	pthread_mutex_lock(&s->lock);
	s->status = status;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void worker_sync_wait(struct worker_sync *s)
{
	pthread_mutex_lock(&s->lock);
	while (!s->done)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

static void worker_start_admin(void *arg)
{
	struct worker_sync *s = arg;
	struct worker *w = s->w;
	struct admin_host host = {
		.store = w->store,
		.reader = loop_data(w->admin_loop),
		.workpool = w->workpool,
		.loop = w->admin_loop,
		.pipeline = w->pipeline,
		.started = w->started,
		.listeners = worker_listeners_json,
		.reload = worker_reload,
		.host_ctx = w,
	};
	const char *err;

	w->ipc_ev = event_new(loop_base(w->admin_loop), WORKER_IPC_FD, EV_READ | EV_PERSIST,
			      worker_on_ipc, w);
	event_add(w->ipc_ev, NULL);
	if (admin_server_start(&host, w->config.admin_socket, &w->admin, &err) < 0) {
		log_error("worker", "event=admin_failed socket=%s error=\"%s\"",
			  w->config.admin_socket, err);
		worker_sync_signal(s, -1);
		return;
	}
	worker_sync_signal(s, 0);
}

/* On the admin loop: stop accepting, close the admin socket. */
static void worker_stop_accepting(void *arg)
{
	struct worker_sync *s = arg;
	struct worker *w = s->w;

	while (w->n_listeners > 0)
		worker_remove_listener(w, w->n_listeners - 1);
	free(w->listeners);
	w->listeners = NULL;
	admin_server_stop(&w->admin);
	if (w->ipc_ev != NULL) {
		event_free(w->ipc_ev);
		w->ipc_ev = NULL;
	}
	while (w->reloads != NULL) {
		struct worker_reload *r = w->reloads;
		w->reloads = r->next;
		r->done(-1, "keeld is stopping", r->ctx);
		free(r);
	}
	worker_sync_signal(s, 0);
}

static void worker_run_on(struct worker *w, struct loop *loop, loop_fn *fn, int *status_r)
{
	struct worker_sync s = { .w = w };

	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	loop_post(loop, fn, &s);
	worker_sync_wait(&s);
	pthread_mutex_destroy(&s.lock);
	pthread_cond_destroy(&s.cond);
	if (status_r != NULL)
		*status_r = s.status;
}

static int worker_read_config(struct worker *w)
{
	struct ipc_msg msg;
	char *err = NULL;

	if (ipc_recv(WORKER_IPC_FD, &msg) <= 0 || msg.type != IPC_CONFIG) {
		fprintf(stderr, "keeld: worker: no configuration from the master\n");
		return -1;
	}
	if (worker_parse_payload(msg.payload, &w->config, &err) < 0) {
		fprintf(stderr, "keeld: worker: %s\n", err);
		free(err);
		ipc_msg_free(&msg);
		return -1;
	}
	ipc_msg_free(&msg);
	return 0;
}

static int worker_open_store(struct worker *w)
{
	struct store_reader *reader;
	const char *err;

	if (store_open(w->config.data_dir, &w->store, &err) < 0) {
		log_error("worker", "event=store_failed data_dir=%s error=\"%s\"",
			  w->config.data_dir, err);
		return -1;
	}
	if (store_reader_open(w->store, &reader, &err) < 0) {
		log_error("worker", "event=store_failed error=\"%s\"", err);
		store_close(&w->store);
		return -1;
	}
	settings_load(reader);
	access_start(reader);
	store_reader_close(&reader);
	return 0;
}

/* Waits for SIGTERM on the main thread; every other thread blocks it. */
static void worker_wait_for_stop(sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGTERM)
			return;
		/* SIGINT from a terminal reaches the whole process group: the
		 * master decides, the worker ignores it. */
	}
}

/* How long stopping waits for the replies to writes in flight to go out. */
#define WORKER_STOP_FLUSH_MS 200

static void worker_loop_noop(void *arg)
{
	struct worker_sync *s = arg;

	worker_sync_signal(s, 0);
}

/* Lets every write in flight finish and every callback it causes run, so
 * that nothing is posted to a loop after the loops stop.  A callback may
 * start one more write (a DSN, trace events): a few rounds drain that. */
static void worker_quiesce(struct worker *w)
{
	for (int round = 0; round < 3; round++) {
		struct store_sync barrier;

		/* An empty write queued after everything else: when it is
		 * answered, every earlier write is durable and its callback
		 * has been posted. */
		store_sync_init(&barrier);
		store_trace_append(w->store, NULL, 0, NULL, store_sync_cb, &barrier);
		store_sync_wait(&barrier);
		store_sync_deinit(&barrier);
		for (unsigned i = 0; i < loop_pool_count(w->loops); i++)
			worker_run_on(w, loop_pool_get(w->loops, i), worker_loop_noop, NULL);
	}
}

/* ---- the queue runner: one loop, the last (away from the admin loop) ---- */

static void worker_start_runner(void *arg)
{
	struct worker_sync *s = arg;

	queue_runner_start(s->w->runner);
	worker_sync_signal(s, 0);
}

static void worker_stop_runner(void *arg)
{
	struct worker_sync *s = arg;

	queue_runner_stop(&s->w->runner);
	worker_sync_signal(s, 0);
}

static void worker_shutdown(struct worker *w)
{
	worker_run_on(w, w->admin_loop, worker_stop_accepting, NULL);
	if (w->runner != NULL) {
		/* No new kicks, then stop on its loop (kicks already posted
		 * run before the stop). */
		pipeline_set_queue_hook(w->pipeline, NULL, NULL);
		worker_run_on(w, w->runner_loop, worker_stop_runner, NULL);
	}
	/* Writes in flight are answered before the sessions close: a client
	 * whose message is being committed gets its 250 instead of resending
	 * it.  The pause lets the loops put those replies on the wire. */
	worker_quiesce(w);
	usleep(WORKER_STOP_FLUSH_MS * 1000);
	session_close_all(&w->env, w->loops);
	pipeline_set_workpool(w->pipeline, NULL);
	workpool_stop(&w->workpool);
	worker_quiesce(w);
	for (unsigned i = 0; i < loop_pool_count(w->loops); i++)
		loop_post(loop_pool_get(w->loops, i), worker_loop_deinit, NULL);
	loop_pool_stop(&w->loops);
	store_close(&w->store);
	access_stop();
	session_env_deinit(&w->env);
	pipeline_free(&w->pipeline);
	auth_throttle_free(&w->throttle);
	iplimit_free(&w->iplimit);
	relay_window_free(&w->relay_window);
	pop3_locks_free(&w->pop3_locks);
	imap_recent_free(&w->imap_recent);
	SSL_CTX_free(w->tls);
	config_deinit(&w->config);
	log_info("worker", "event=stopped");
}

int worker_main(void)
{
	struct worker w = { 0 };
	sigset_t set;
	const char *err;
	int status;

	if (worker_read_config(&w) < 0)
		return WORKER_EXIT_FATAL;
	if (log_open(w.config.log, "keeld", &err) < 0)
		fprintf(stderr, "keeld: worker: log %s: %s\n", w.config.log, err);
	log_set_level(w.config.log_level);
	if (getuid() == 0 || geteuid() == 0) {
		log_error("worker", "event=refused reason=\"running as root\"");
		config_deinit(&w.config);
		return WORKER_EXIT_FATAL;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	fcntl(WORKER_IPC_FD, F_SETFL, fcntl(WORKER_IPC_FD, F_GETFL) | O_NONBLOCK);
	w.main_thread = pthread_self();
	w.started = time(NULL);
	pthread_mutex_init(&w.tls_lock, NULL);
	loop_global_init();
	if (worker_open_store(&w) < 0) {
		config_deinit(&w.config);
		pthread_mutex_destroy(&w.tls_lock);
		return WORKER_EXIT_FATAL;
	}
	w.workpool = workpool_start(2);
	w.loops = loop_pool_start(w.config.workers, worker_loop_init, &w);
	w.admin_loop = loop_pool_get(w.loops, 0);
	session_env_init(&w.env, w.config.hostname, worker_tls_get, &w, w.store);
	w.pipeline = pipeline_new(w.store);
	pipeline_set_hostname(w.pipeline, w.config.hostname);
	pipeline_set_workpool(w.pipeline, w.workpool);
	w.throttle = auth_throttle_new();
	w.iplimit = iplimit_new();
	w.env.smtp.pipeline = w.pipeline;
	w.env.smtp.workpool = w.workpool;
	w.env.smtp.throttle = w.throttle;
	w.env.smtp.iplimit = w.iplimit;
	w.relay_window = relay_window_new();
	w.pop3_locks = pop3_locks_new();
	w.env.smtp.relay_window = w.relay_window;
	w.env.pop3.workpool = w.workpool;
	w.env.pop3.throttle = w.throttle;
	w.env.pop3.relay_window = w.relay_window;
	w.env.pop3.locks = w.pop3_locks;
	w.env.pop3.iplimit = w.iplimit;
	w.imap_recent = imap_recent_new();
	w.env.imap.workpool = w.workpool;
	w.env.imap.throttle = w.throttle;
	w.env.imap.iplimit = w.iplimit;
	w.env.imap.relay_window = w.relay_window;
	w.env.imap.recent = w.imap_recent;
	w.runner_loop = loop_pool_get(w.loops, loop_pool_count(w.loops) - 1);
	w.runner = queue_runner_new(w.store, w.pipeline, w.runner_loop, w.config.hostname);
	pipeline_set_queue_hook(w.pipeline, queue_runner_kick, w.runner);
	worker_run_on(&w, w.runner_loop, worker_start_runner, NULL);
	worker_run_on(&w, w.admin_loop, worker_start_admin, &status);
	if (status < 0) {
		worker_shutdown(&w);
		return WORKER_EXIT_FATAL;
	}
	ipc_send(WORKER_IPC_FD, IPC_READY, 0, 0, NULL, 0, NULL, 0);
	log_info("worker", "event=ready pid=%ld uid=%ld loops=%u", (long)getpid(), (long)getuid(),
		 w.config.workers);
	worker_wait_for_stop(&set);
	log_info("worker", "event=stopping");
	worker_shutdown(&w);
	pthread_mutex_destroy(&w.tls_lock);
	return 0;
}
