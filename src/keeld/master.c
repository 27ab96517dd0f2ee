#include "keeld/master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keeld/ipc.h"
#include "keeld/worker.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "lib/xalloc.h"

struct master_listener {
	uint32_t id;
	enum service service;
	char address[CONFIG_ADDR_MAX];
	struct sockaddr_storage sa;
	socklen_t sa_len;
	int fd;
};

struct master {
	struct config config;
	char *config_text;
	const char *self_path;
	struct event_base *base;
	struct master_listener *listeners;
	size_t n_listeners;
	uint32_t next_id;
	uid_t worker_uid;
	gid_t worker_gid;
	bool drop_privileges;
	pid_t worker_pid;
	int ipc_fd;
	struct event *ipc_ev;
	struct timespec worker_started;
	unsigned quick_deaths;
	bool stopping;
	bool foreground;
	int exit_status;
	struct event *restart_timer, *kill_timer;
	char pid_path[PATH_MAX + 16];
};

static void master_spawn_worker(struct master *m);

/* ---- listeners ---------------------------------------------------------- */

static int master_bind(const struct config_listener *cl, const char **error_r)
{
	int one = 1;
	int fd = socket(cl->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (cl->sa.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cl->sa, cl->sa_len) < 0 || listen(fd, 1024) < 0) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	return fd;
}

static struct master_listener *master_find_listener(struct master *m,
						    const struct config_listener *cl)
{
	for (size_t i = 0; i < m->n_listeners; i++)
		if (m->listeners[i].sa_len == cl->sa_len &&
		    memcmp(&m->listeners[i].sa, &cl->sa, cl->sa_len) == 0)
			return &m->listeners[i];
	return NULL;
}

static void master_send_listener(struct master *m, const struct master_listener *l)
{
	char payload[128];
	int n = snprintf(payload, sizeof(payload), "%s %s", service_name(l->service), l->address);

	if (m->ipc_fd >= 0 &&
	    ipc_send(m->ipc_fd, IPC_LISTENER_ADD, l->id, 0, payload, (size_t)n, &l->fd, 1) < 0)
		log_error("master", "event=ipc_send_failed error=\"%s\"", strerror(errno));
}

static void master_add_listener(struct master *m, const struct config_listener *cl, int fd)
{
	struct master_listener *l;

	m->listeners = xrealloc(m->listeners, (m->n_listeners + 1) * sizeof(*l));
	l = &m->listeners[m->n_listeners++];
	memset(l, 0, sizeof(*l));
	l->id = ++m->next_id;
	l->service = cl->service;
	snprintf(l->address, sizeof(l->address), "%s", cl->address);
	l->sa = cl->sa;
	l->sa_len = cl->sa_len;
	l->fd = fd;
	log_info("master", "event=listen service=%s address=%s", service_name(l->service),
		 l->address);
	master_send_listener(m, l);
}

static void master_remove_listener(struct master *m, size_t i)
{
	struct master_listener *l = &m->listeners[i];

	log_info("master", "event=unlisten service=%s address=%s", service_name(l->service),
		 l->address);
	if (m->ipc_fd >= 0)
		ipc_send(m->ipc_fd, IPC_LISTENER_DEL, l->id, 0, NULL, 0, NULL, 0);
	close(l->fd);
	m->listeners[i] = m->listeners[--m->n_listeners];
}

/* Brings the open listeners in line with config: binds the new ones first
 * (so a failure changes nothing), then closes the removed ones.  A listener
 * whose address stays but whose service changes is re-announced. */
static int master_apply_listeners(struct master *m, const struct config *c, char **error_r)
{
	int *fds = xcalloc(c->n_listeners, sizeof(int));

	for (size_t i = 0; i < c->n_listeners; i++) {
		const char *err;
		fds[i] = -1;
		if (master_find_listener(m, &c->listeners[i]) != NULL)
			continue;
		fds[i] = master_bind(&c->listeners[i], &err);
		if (fds[i] < 0) {
			*error_r = xasprintf("cannot listen on %s for %s: %s",
					     c->listeners[i].address,
					     service_name(c->listeners[i].service), err);
			for (size_t j = 0; j < i; j++)
				if (fds[j] >= 0)
					close(fds[j]);
			free(fds);
			return -1;
		}
	}
	for (size_t i = m->n_listeners; i-- > 0;) {
		bool keep = false;
		for (size_t j = 0; j < c->n_listeners && !keep; j++)
			keep = c->listeners[j].sa_len == m->listeners[i].sa_len &&
			       memcmp(&c->listeners[j].sa, &m->listeners[i].sa,
				      m->listeners[i].sa_len) == 0 &&
			       c->listeners[j].service == m->listeners[i].service;
		if (!keep) {
			/* Same address, new service: keep the socket, new identity. */
			for (size_t j = 0; j < c->n_listeners; j++)
				if (fds[j] < 0 && c->listeners[j].sa_len == m->listeners[i].sa_len &&
				    memcmp(&c->listeners[j].sa, &m->listeners[i].sa,
					   m->listeners[i].sa_len) == 0)
					fds[j] = dup(m->listeners[i].fd);
			master_remove_listener(m, i);
		}
	}
	for (size_t i = 0; i < c->n_listeners; i++)
		if (fds[i] >= 0)
			master_add_listener(m, &c->listeners[i], fds[i]);
	free(fds);
	return 0;
}

/* ---- TLS files ------------------------------------------------------------ */

static void master_tls_paths(const struct config *c, char *cert, char *key, size_t size)
{
	if (c->tls_cert[0] != '\0') {
		snprintf(cert, size, "%s", c->tls_cert);
		snprintf(key, size, "%s", c->tls_key);
	} else {
		snprintf(cert, size, "%s/tls/selfsigned.crt", c->data_dir);
		snprintf(key, size, "%s/tls/selfsigned.key", c->data_dir);
	}
}

static char *master_read_file(const char *path, size_t *len_r, char **error_r)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (f == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(IPC_MAX_PAYLOAD + 1);
	n = fread(buf, 1, IPC_MAX_PAYLOAD, f);
	fclose(f);
	buf[n] = '\0';
	*len_r = n;
	return buf;
}

/* Checks that the configured certificate and key load and match; creates
 * the self-signed pair on first use. */
static int master_check_tls(const struct config *c, char **error_r)
{
	char cert[PATH_MAX + 32], key[PATH_MAX + 32], dir[PATH_MAX + 8];
	char *cert_pem, *key_pem;
	size_t cert_len, key_len;
	const char *err;
	SSL_CTX *ctx;

	master_tls_paths(c, cert, key, sizeof(cert));
	if (c->tls_cert[0] == '\0' && access(cert, F_OK) != 0) {
		snprintf(dir, sizeof(dir), "%s/tls", c->data_dir);
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			*error_r = xasprintf("%s: %s", dir, strerror(errno));
			return -1;
		}
		if (tls_selfsigned_create(c->hostname, cert, key, &err) < 0) {
			*error_r = xasprintf("self-signed certificate: %s", err);
			return -1;
		}
		log_info("master", "event=tls_selfsigned cert=%s hostname=%s", cert, c->hostname);
	}
	if ((cert_pem = master_read_file(cert, &cert_len, error_r)) == NULL)
		return -1;
	if ((key_pem = master_read_file(key, &key_len, error_r)) == NULL) {
		free(cert_pem);
		return -1;
	}
	ctx = tls_server_ctx_new(cert_pem, cert_len, key_pem, key_len, &err);
	explicit_bzero(key_pem, key_len);
	free(cert_pem);
	free(key_pem);
	if (ctx == NULL) {
		*error_r = xasprintf("TLS certificate %s / key %s: %s", cert, key, err);
		return -1;
	}
	SSL_CTX_free(ctx);
	return 0;
}

/* The worker gets open descriptors, so it never needs to read key files. */
static void master_send_cert(struct master *m)
{
	char cert[PATH_MAX + 32], key[PATH_MAX + 32];
	int fds[2];

	master_tls_paths(&m->config, cert, key, sizeof(cert));
	fds[0] = open(cert, O_RDONLY | O_CLOEXEC);
	fds[1] = open(key, O_RDONLY | O_CLOEXEC);
	if (fds[0] >= 0 && fds[1] >= 0 && m->ipc_fd >= 0)
		ipc_send(m->ipc_fd, IPC_CERT, 0, 0, NULL, 0, fds, 2);
	else if (fds[0] < 0 || fds[1] < 0)
		log_error("master", "event=tls_open_failed cert=%s key=%s error=\"%s\"", cert, key,
			  strerror(errno));
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ---- reload ---------------------------------------------------------------- */

static bool master_needs_new_worker(const struct config *a, const struct config *b)
{
	return strcmp(a->data_dir, b->data_dir) != 0 || strcmp(a->user, b->user) != 0 ||
	       strcmp(a->store, b->store) != 0 || a->workers != b->workers ||
	       strcmp(a->admin_socket, b->admin_socket) != 0;
}

static void master_send_config(struct master *m, enum ipc_type type)
{
	/* First line the file's path, second the log target when the command
	 * line overrides it (-f), then the text the master parsed. */
	char *payload = xasprintf("%s\n%s\n%s", m->config.path, m->foreground ? "stderr" : "",
				  m->config_text);

	if (m->ipc_fd >= 0 &&
	    ipc_send(m->ipc_fd, type, 0, 0, payload, strlen(payload), NULL, 0) < 0)
		log_error("master", "event=ipc_send_failed error=\"%s\"", strerror(errno));
	free(payload);
}

static int master_apply_log(const struct config *c, char **error_r)
{
	const char *err;

	if (log_open(c->log, "keeld", &err) < 0) {
		*error_r = xasprintf("log %s: %s", c->log, err);
		return -1;
	}
	log_set_level(c->log_level);
	return 0;
}

/* Re-reads keel.conf and applies it; on any error nothing changes. */
static int master_reload(struct master *m, char **error_r)
{
	struct config c;
	char *text;
	bool new_worker;

	if (config_load(m->config.path, &c, &text, error_r) < 0)
		return -1;
	if (m->foreground)
		snprintf(c.log, sizeof(c.log), "stderr");
	if (master_check_tls(&c, error_r) < 0 || master_apply_listeners(m, &c, error_r) < 0) {
		config_deinit(&c);
		free(text);
		return -1;
	}
	if (strcmp(c.log, m->config.log) != 0 || c.log_level != m->config.log_level)
		master_apply_log(&c, error_r); /* best effort: the old target stays */
	new_worker = master_needs_new_worker(&m->config, &c);
	config_deinit(&m->config);
	free(m->config_text);
	m->config = c;
	m->config_text = text;
	master_send_cert(m);
	master_send_config(m, IPC_SETTINGS);
	log_info("master", "event=reloaded listeners=%zu", m->n_listeners);
	if (new_worker && m->worker_pid > 0) {
		log_info("master", "event=worker_replace reason=\"data_dir, user, store, workers "
				   "or admin.socket changed\"");
		ipc_send(m->ipc_fd, IPC_STOP, 0, 0, NULL, 0, NULL, 0);
	}
	return 0;
}

static void master_reload_reply(struct master *m, int status, const char *error)
{
	if (m->ipc_fd >= 0)
		ipc_send(m->ipc_fd, IPC_RELOAD_DONE, 0, status, error,
			 error != NULL ? strlen(error) : 0, NULL, 0);
}

/* ---- the worker ---------------------------------------------------------- */

static void master_on_ipc(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;
	struct ipc_msg msg;
	int r;

	while ((r = ipc_recv(m->ipc_fd, &msg)) > 0) {
		if (msg.type == IPC_READY) {
			log_info("master", "event=worker_ready pid=%ld", (long)m->worker_pid);
		} else if (msg.type == IPC_RELOAD_REQUEST) {
			char *err = NULL;
			int status = master_reload(m, &err);
			if (status < 0)
				log_error("master", "event=reload_failed error=\"%s\"", err);
			master_reload_reply(m, status, err);
			free(err);
		}
		ipc_msg_free(&msg);
	}
	if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
		/* The worker is gone; SIGCHLD does the rest. */
		event_free(m->ipc_ev);
		m->ipc_ev = NULL;
		close(m->ipc_fd);
		m->ipc_fd = -1;
	}
}

static void master_worker_child(struct master *m, int sock)
{
	char *argv[] = { "keeld", "--worker", NULL };

	if (dup2(sock, WORKER_IPC_FD) < 0)
		_exit(WORKER_EXIT_FATAL);
	for (size_t i = 0; i < m->n_listeners; i++)
		close(m->listeners[i].fd);
	if (m->drop_privileges &&
	    (setgroups(1, &m->worker_gid) < 0 || setgid(m->worker_gid) < 0 ||
	     setuid(m->worker_uid) < 0 || getuid() == 0 || geteuid() == 0)) {
		fprintf(stderr, "keeld: cannot switch to user %s: %s\n", m->config.user,
			strerror(errno));
		_exit(WORKER_EXIT_FATAL);
	}
	signal(SIGPIPE, SIG_DFL);
	execv(m->self_path, argv);
	fprintf(stderr, "keeld: exec %s: %s\n", m->self_path, strerror(errno));
	_exit(WORKER_EXIT_FATAL);
}

static void master_spawn_worker(struct master *m)
{
	int sv[2];
	pid_t pid;

	if (ipc_socketpair(sv) < 0)
		fatal("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		fatal("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		master_worker_child(m, sv[1]);
	}
	close(sv[1]);
	m->worker_pid = pid;
	m->ipc_fd = sv[0];
	fcntl(m->ipc_fd, F_SETFL, fcntl(m->ipc_fd, F_GETFL) | O_NONBLOCK);
	clock_gettime(CLOCK_MONOTONIC, &m->worker_started);
	m->ipc_ev = event_new(m->base, m->ipc_fd, EV_READ | EV_PERSIST, master_on_ipc, m);
	event_add(m->ipc_ev, NULL);
	master_send_config(m, IPC_CONFIG);
	for (size_t i = 0; i < m->n_listeners; i++)
		master_send_listener(m, &m->listeners[i]);
	master_send_cert(m);
	log_info("master", "event=worker_started pid=%ld", (long)pid);
}

static void master_on_restart_timer(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (!m->stopping && m->worker_pid == 0)
		master_spawn_worker(m);
}

static void master_worker_exited(struct master *m, int status)
{
	struct timespec now;
	double lived;

	if (m->ipc_ev != NULL) {
		event_free(m->ipc_ev);
		m->ipc_ev = NULL;
	}
	if (m->ipc_fd >= 0)
		close(m->ipc_fd);
	m->ipc_fd = -1;
	m->worker_pid = 0;
	if (m->stopping) {
		event_base_loopbreak(m->base);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_EXIT_FATAL) {
		log_error("master", "event=worker_fatal action=stop");
		m->exit_status = 1;
		m->stopping = true;
		event_base_loopbreak(m->base);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	lived = (double)(now.tv_sec - m->worker_started.tv_sec) +
		(double)(now.tv_nsec - m->worker_started.tv_nsec) / 1e9;
	m->quick_deaths = lived < 2.0 ? m->quick_deaths + 1 : 0;
	if (m->quick_deaths > 3) {
		/* Crash loop: slow down rather than spin. */
		struct timeval one = { 1, 0 };
		log_error("master", "event=worker_crash_loop deaths=%u delay=1s", m->quick_deaths);
		evtimer_add(m->restart_timer, &one);
		return;
	}
	master_spawn_worker(m);
}

static void master_on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid != m->worker_pid)
			continue;
		if (WIFSIGNALED(status))
			log_error("master", "event=worker_died pid=%ld signal=%d", (long)pid,
				  WTERMSIG(status));
		else
			log_info("master", "event=worker_exited pid=%ld status=%d", (long)pid,
				 WEXITSTATUS(status));
		master_worker_exited(m, status);
	}
}

static void master_on_kill_timer(evutil_socket_t fd, short what, void *arg)
{
	struct master *m = arg;

	if (m->worker_pid > 0) {
		log_error("master", "event=worker_stop_timeout action=kill");
		kill(m->worker_pid, SIGKILL);
	}
}

static void master_on_stop(evutil_socket_t sig, short what, void *arg)
{
	struct master *m = arg;
	struct timeval grace = { 30, 0 };

	if (m->stopping)
		return;
	log_info("master", "event=stopping signal=%d", (int)sig);
	m->stopping = true;
	if (m->worker_pid == 0) {
		event_base_loopbreak(m->base);
		return;
	}
	if (m->ipc_fd >= 0)
		ipc_send(m->ipc_fd, IPC_STOP, 0, 0, NULL, 0, NULL, 0);
	else
		kill(m->worker_pid, SIGTERM);
	evtimer_add(m->kill_timer, &grace);
}

static void master_on_sighup(evutil_socket_t sig, short what, void *arg)
{
	char *err = NULL;

	if (master_reload(arg, &err) < 0) {
		log_error("master", "event=reload_failed error=\"%s\"", err);
		free(err);
	}
}

/* ---- start-up ----------------------------------------------------------- */

static int master_prepare_user(struct master *m, char **error_r)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	pw = getpwnam(m->config.user);
	if (pw == NULL) {
		*error_r = xasprintf("user '%s' does not exist: create it (useradd --system %s) "
				     "or set 'user' in %s",
				     m->config.user, m->config.user, m->config.path);
		return -1;
	}
	if (pw->pw_uid == 0) {
		*error_r = xasprintf("user '%s' is root: the worker never runs as root; set "
				     "'user' in %s",
				     m->config.user, m->config.path);
		return -1;
	}
	m->drop_privileges = true;
	m->worker_uid = pw->pw_uid;
	m->worker_gid = pw->pw_gid;
	return 0;
}

static int master_prepare_data_dir(struct master *m, char **error_r)
{
	const char *dir = m->config.data_dir;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		*error_r = xasprintf("data dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (m->drop_privileges && chown(dir, m->worker_uid, m->worker_gid) < 0) {
		*error_r = xasprintf("data dir %s: chown: %s", dir, strerror(errno));
		return -1;
	}
	return 0;
}

static void master_write_pid(struct master *m)
{
	FILE *f;

	snprintf(m->pid_path, sizeof(m->pid_path), "%s/keeld.pid", m->config.data_dir);
	f = fopen(m->pid_path, "we");
	if (f == NULL) {
		log_warn("master", "event=pidfile_failed path=%s error=\"%s\"", m->pid_path,
			 strerror(errno));
		m->pid_path[0] = '\0';
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

static int master_start(struct master *m, char **error_r)
{
	if (master_prepare_user(m, error_r) < 0 || master_prepare_data_dir(m, error_r) < 0 ||
	    master_check_tls(&m->config, error_r) < 0)
		return -1;
	return master_apply_listeners(m, &m->config, error_r);
}

int master_run(struct config *config, char *config_text, const char *self_path,
	       bool foreground, int ready_fd)
{
	struct master m = { .config = *config, .config_text = config_text,
			    .self_path = self_path, .ipc_fd = -1, .foreground = foreground };
	struct event *sigs[5];
	char *err = NULL;

	signal(SIGPIPE, SIG_IGN);
	m.base = event_base_new();
	if (m.base == NULL)
		fatal("libevent: event_base_new failed");
	if (master_start(&m, &err) < 0) {
		log_error("master", "event=start_failed error=\"%s\"", err);
		if (ready_fd >= 0)
			dprintf(ready_fd, "%s", err);
		free(err);
		return 1;
	}
	master_write_pid(&m);
	m.restart_timer = evtimer_new(m.base, master_on_restart_timer, &m);
	m.kill_timer = evtimer_new(m.base, master_on_kill_timer, &m);
	sigs[0] = evsignal_new(m.base, SIGCHLD, master_on_sigchld, &m);
	sigs[1] = evsignal_new(m.base, SIGTERM, master_on_stop, &m);
	sigs[2] = evsignal_new(m.base, SIGINT, master_on_stop, &m);
	sigs[3] = evsignal_new(m.base, SIGQUIT, master_on_stop, &m);
	sigs[4] = evsignal_new(m.base, SIGHUP, master_on_sighup, &m);
	for (int i = 0; i < 5; i++)
		evsignal_add(sigs[i], NULL);
	master_spawn_worker(&m);
	log_info("master", "event=started version=%s pid=%ld foreground=%s", KEEL_VERSION,
		 (long)getpid(), foreground ? "yes" : "no");
	if (ready_fd >= 0)
		close(ready_fd);
	event_base_dispatch(m.base);

	for (int i = 0; i < 5; i++)
		event_free(sigs[i]);
	event_free(m.restart_timer);
	event_free(m.kill_timer);
	while (m.n_listeners > 0)
		master_remove_listener(&m, m.n_listeners - 1);
	free(m.listeners);
	if (m.pid_path[0] != '\0')
		unlink(m.pid_path);
	event_base_free(m.base);
	log_info("master", "event=stopped status=%d", m.exit_status);
	*config = m.config;
	free(m.config_text);
	return m.exit_status;
}
