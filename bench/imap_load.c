/* imap_load: an IMAP load generator for bench/imap.sh (keeld against Dovecot).
 *
 * Plaintext IMAP (LOGIN, no TLS) to one ADDR:PORT on the loopback, many
 * clients at once on one epoll loop.  Every client is a small state machine:
 * it sends one command and waits for its tagged answer (closed loop), except
 * in `fill`, where APPENDs are pipelined with LITERAL+.  Literals in answers
 * are skipped by count, so message bodies are never scanned for tags.
 *
 *   imap_load fill  -p PORT -n USERS -M MSGS          APPEND MSGS messages into
 *                                                     each user's INBOX
 *   imap_load login -p PORT -n USERS -c C -t SECS     connect, LOGIN, LOGOUT, loop
 *   imap_load mixed -p PORT -n USERS -c C -t SECS     LOGIN, SELECT INBOX, then a
 *                                                     random mix of UID FETCH,
 *                                                     UID STORE, APPEND, UID SEARCH
 *   imap_load idle  -p PORT -n USERS -c N [-S]        N sessions logged in, INBOX
 *                                                     selected, in IDLE (-S: just
 *                                                     selected); prints "READY N" and
 *                                                     holds them until SIGTERM/-t;
 *                                                     exits 1 if one is lost
 *   imap_load select -p PORT -n USERS -c C -t SECS    LOGIN, then SELECT INBOX again
 *                                                     and again (a big folder: fill
 *                                                     it first)
 *
 * Users are printf(USERFMT, i) for i in 1..USERS (-u, default
 * "u%d@bench.test"), all with the password of -w; client k uses user
 * 1 + k % USERS.  The messages of `fill` are a function of (user, index)
 * only, so two servers filled by it hold the same mail.  Results go to
 * stdout as `RESULT key=value ...` lines for the script, and a readable
 * summary to stderr.
 *
 * Build: cc -O2 -Wall -o imap_load bench/imap_load.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_FILL, MODE_LOGIN, MODE_MIXED, MODE_IDLE, MODE_SELECT };
enum op { OP_LOGIN, OP_FETCH, OP_STORE, OP_APPEND, OP_SEARCH, OP_SELECT, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"login", "fetch", "store", "append", "search", "select"};

enum state {
	ST_CONNECTING,
	ST_GREETING,
	ST_LOGIN,
	ST_SELECT,
	ST_READY,   /* mixed: between commands */
	ST_COMMAND, /* mixed: one command in flight */
	ST_FILLING,
	ST_IDLE_WAIT, /* idle: IDLE sent, waiting for "+" */
	ST_HOLDING,
	ST_LOGOUT,
	ST_DONE,
};

struct conn {
	int fd;
	int id;
	int user;
	enum state st;
	char *rbuf;
	size_t rlen, rcap;
	size_t literal_left;
	char *wbuf;
	size_t wlen, woff, wcap;
	unsigned tagn;
	char tag[16];
	enum op op;
	double t_cmd, t_conn;
	uint32_t uid_max;
	uint64_t rng;
	int fill_sent, fill_acked;
	int restart; /* reconnect at the next loop turn */
	unsigned fill_first_tag;
};

struct stats {
	double *lat; /* ms */
	size_t n, cap;
	unsigned long errors;
};

static struct {
	enum mode mode;
	struct sockaddr_in addr;
	const char *userfmt, *password, *mailbox;
	int users, clients, msgs, window, max_pending, just_select;
	double seconds;
	int weights[OP_COUNT];
	int epfd;
	struct conn *conns;
	struct stats st[OP_COUNT];
	unsigned long dropped, reconnects;
	int active, ready, next_idle, restarts, idle_lost;
	long exists_min, exists_max; /* INBOX sizes seen at SELECT */
	volatile sig_atomic_t stop;
	double t_start, t_end;
	int errors_shown;
} g;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("imap_load: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL)
		die("out of memory");
	return p;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: cheap, and the same sequence on every machine */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void stats_add(enum op op, double ms)
{
	struct stats *s = &g.st[op];
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 4096;
		s->lat = xrealloc(s->lat, s->cap * sizeof(*s->lat));
	}
	s->lat[s->n++] = ms;
}

/* ------------------------------------------------------------ messages */

static const char *const words[] = {
    "account", "agenda",  "budget",   "call",    "change",  "client",  "contract", "data",
    "deadline", "design", "draft",    "event",   "figures", "follow",  "invoice",  "issue",
    "launch",  "meeting", "minutes",  "monday",  "network", "office",  "order",    "plan",
    "price",   "project", "question", "release", "report",  "review",  "sales",    "schedule",
    "server",  "service", "status",   "summary", "support", "team",    "thanks",   "ticket",
    "today",   "travel",  "update",   "version", "week",    "workshop", "please",  "attached",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))
#define N_SENDERS 40
#define N_CODES 1000

/* Message number idx (0-based) of user `user`, into buf; returns its length.
 * Deterministic: the same (user, idx) gives the same bytes.  Each carries
 * one rare word "zqNNNN" (N_CODES of them) for SEARCH BODY to find. */
static size_t message_make(char *buf, size_t cap, int user, int idx, int appended)
{
	uint64_t s = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)user << 32) ^ (uint64_t)idx ^
	             ((uint64_t)appended << 63);
	time_t t = 1767225600 + (time_t)idx * 600; /* 2026-01-01 + 10 min per message */
	struct tm tm;
	char date[64];
	size_t len = 0;
	int i, lines;

	rng_next(&s);
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	len += (size_t)snprintf(buf + len, cap - len,
	                        "From: Sender %02u <sender%02u@ex%u.test>\r\n"
	                        "To: u%d@bench.test\r\n"
	                        "Subject: %s %s %s %u\r\n"
	                        "Date: %s\r\n"
	                        "Message-ID: <%d.%d.%d@bench.test>\r\n"
	                        "MIME-Version: 1.0\r\n"
	                        "Content-Type: text/plain; charset=us-ascii\r\n"
	                        "\r\n",
	                        (unsigned)(rng_next(&s) % N_SENDERS), (unsigned)(s % N_SENDERS),
	                        (unsigned)(s % 7), user, words[rng_next(&s) % N_WORDS],
	                        words[rng_next(&s) % N_WORDS], words[rng_next(&s) % N_WORDS],
	                        (unsigned)(rng_next(&s) % 10000), date, idx, user, appended);
	lines = appended ? 3 : 8 + (int)(rng_next(&s) % 30);
	for (i = 0; i < lines && len + 200 < cap; i++) {
		int j, n = 6 + (int)(rng_next(&s) % 8);
		if (i == lines / 2)
			len += (size_t)snprintf(buf + len, cap - len, "ref zq%04u ",
			                        (unsigned)(rng_next(&s) % N_CODES));
		for (j = 0; j < n; j++)
			len += (size_t)snprintf(buf + len, cap - len, "%s%s", j ? " " : "",
			                        words[rng_next(&s) % N_WORDS]);
		len += (size_t)snprintf(buf + len, cap - len, "\r\n");
	}
	return len;
}

/* ------------------------------------------------------------ output */

static void conn_write(struct conn *c, const char *data, size_t n);
static void conn_close(struct conn *c, int dropped);
static void conn_start(struct conn *c);

static void conn_printf(struct conn *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		die("command too long");
	conn_write(c, buf, (size_t)n);
}

/* A new tag "aN" in c->tag; the command text follows it. */
static void cmd_begin(struct conn *c, enum op op)
{
	snprintf(c->tag, sizeof(c->tag), "a%u", ++c->tagn);
	c->op = op;
	c->t_cmd = now();
	conn_printf(c, "%s ", c->tag);
}

static void conn_epoll(struct conn *c, uint32_t events, int add)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};
	if (epoll_ctl(g.epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));
}

static void conn_flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			conn_close(c, 1);
			return;
		}
		c->woff += (size_t)n;
	}
	if (c->woff == c->wlen) {
		c->woff = c->wlen = 0;
		conn_epoll(c, EPOLLIN, 0);
	} else {
		conn_epoll(c, EPOLLIN | EPOLLOUT, 0);
	}
}

static void conn_write(struct conn *c, const char *data, size_t n)
{
	if (c->wlen + n > c->wcap) {
		c->wcap = (c->wlen + n) * 2;
		c->wbuf = xrealloc(c->wbuf, c->wcap);
	}
	memcpy(c->wbuf + c->wlen, data, n);
	c->wlen += n;
}

/* ------------------------------------------------------------ commands */

static void send_login(struct conn *c)
{
	char user[256];
	snprintf(user, sizeof(user), g.userfmt, c->user);
	cmd_begin(c, OP_LOGIN);
	conn_printf(c, "LOGIN \"%s\" \"%s\"\r\n", user, g.password);
	c->st = ST_LOGIN;
}

static void send_append(struct conn *c, int idx, int appended)
{
	char msg[8192];
	size_t n = message_make(msg, sizeof(msg), c->user, idx, appended);
	conn_printf(c, "APPEND %s {%zu+}\r\n", g.mailbox, n);
	conn_write(c, msg, n);
	conn_write(c, "\r\n", 2);
}

static void fill_more(struct conn *c)
{
	while (c->fill_sent < g.msgs && c->fill_sent - c->fill_acked < g.window) {
		cmd_begin(c, OP_APPEND);
		if (c->fill_sent == 0)
			c->fill_first_tag = c->tagn;
		send_append(c, c->fill_sent, 0);
		c->fill_sent++;
	}
}

static enum op pick_op(struct conn *c)
{
	int total = 0, r, i;
	for (i = 0; i < OP_COUNT; i++)
		total += g.weights[i];
	r = (int)(rng_next(&c->rng) % (uint64_t)total);
	for (i = 0; i < OP_COUNT; i++) {
		if (r < g.weights[i])
			return (enum op)i;
		r -= g.weights[i];
	}
	return OP_FETCH;
}

static void mixed_next(struct conn *c)
{
	enum op op = pick_op(c);
	uint32_t uid = 1 + (uint32_t)(rng_next(&c->rng) % (c->uid_max ? c->uid_max : 1));

	cmd_begin(c, op);
	switch (op) {
	case OP_FETCH:
		conn_printf(c, "UID FETCH %u (FLAGS BODY.PEEK[])\r\n", uid);
		break;
	case OP_STORE:
		conn_printf(c, "UID STORE %u %cFLAGS (\\Flagged)\r\n", uid,
		            rng_next(&c->rng) & 1 ? '+' : '-');
		break;
	case OP_APPEND:
		send_append(c, (int)(rng_next(&c->rng) % 1000000), 1);
		break;
	case OP_SEARCH:
		if (rng_next(&c->rng) & 1)
			conn_printf(c, "UID SEARCH FROM \"sender%02u\"\r\n",
			            (unsigned)(rng_next(&c->rng) % N_SENDERS));
		else
			conn_printf(c, "UID SEARCH BODY \"zq%04u\"\r\n",
			            (unsigned)(rng_next(&c->rng) % N_CODES));
		break;
	default:
		die("bad op");
	}
	c->st = ST_COMMAND;
}

static void idle_start_more(void);

static void logged_in(struct conn *c)
{
	switch (g.mode) {
	case MODE_FILL:
		c->st = ST_FILLING;
		fill_more(c);
		break;
	case MODE_LOGIN:
		cmd_begin(c, OP_COUNT);
		conn_printf(c, "LOGOUT\r\n");
		c->st = ST_LOGOUT;
		break;
	case MODE_MIXED:
	case MODE_IDLE:
	case MODE_SELECT:
		cmd_begin(c, OP_SELECT);
		conn_printf(c, "SELECT %s\r\n", g.mailbox);
		c->st = ST_SELECT;
		break;
	}
}

static void show_error(struct conn *c, const char *line)
{
	if (g.errors_shown++ < 10)
		fprintf(stderr, "imap_load: client %d (%s): %s\n", c->id,
		        c->op < OP_COUNT ? op_names[c->op] : "logout", line);
}

/* A tagged answer to c->tag: ok is 1 for OK. */
static void tagged(struct conn *c, int ok, const char *line)
{
	double ms = (now() - c->t_cmd) * 1000.0;

	/* a command answered after the end of the run does not count */
	if (c->op < OP_COUNT && (g.mode == MODE_FILL || g.mode == MODE_IDLE || now() <= g.t_end)) {
		if (ok)
			stats_add(c->op, ms);
		else {
			g.st[c->op].errors++;
			show_error(c, line);
		}
	}
	switch (c->st) {
	case ST_LOGIN:
		if (!ok) {
			conn_close(c, 1);
			return;
		}
		logged_in(c);
		break;
	case ST_SELECT:
		if (!ok) {
			conn_close(c, 1);
			return;
		}
		if (g.mode == MODE_IDLE) {
			if (g.just_select) {
				c->st = ST_HOLDING;
				g.ready++;
			} else {
				cmd_begin(c, OP_COUNT);
				conn_printf(c, "IDLE\r\n");
				c->st = ST_IDLE_WAIT;
			}
			idle_start_more();
		} else if (g.mode == MODE_SELECT) {
			if (g.stop || now() >= g.t_end) {
				cmd_begin(c, OP_COUNT);
				conn_printf(c, "LOGOUT\r\n");
				c->st = ST_LOGOUT;
			} else {
				cmd_begin(c, OP_SELECT);
				conn_printf(c, "SELECT %s\r\n", g.mailbox);
			}
		} else {
			mixed_next(c);
		}
		break;
	case ST_COMMAND:
		if (g.stop || now() >= g.t_end) {
			cmd_begin(c, OP_COUNT);
			conn_printf(c, "LOGOUT\r\n");
			c->st = ST_LOGOUT;
		} else {
			mixed_next(c);
		}
		break;
	case ST_LOGOUT:
		conn_close(c, 0);
		break;
	default:
		break;
	}
}

/* One line of the server's answer, without CRLF and without the literal
 * data it announces (which conn_read skips). */
static void conn_line(struct conn *c, char *line)
{
	size_t tl = strlen(c->tag);

	if (c->st == ST_GREETING) {
		if (strncmp(line, "* OK", 4) != 0) {
			show_error(c, line);
			conn_close(c, 1);
			return;
		}
		send_login(c);
		return;
	}
	if (line[0] == '*') {
		if (c->st == ST_SELECT) {
			char *p = strstr(line, "[UIDNEXT ");
			char *end;
			long n = strtol(line + 1, &end, 10);
			if (p != NULL)
				c->uid_max = (uint32_t)strtoul(p + 9, NULL, 10) - 1;
			if (end != line + 1 && strcmp(end, " EXISTS") == 0) {
				if (g.exists_min < 0 || n < g.exists_min)
					g.exists_min = n;
				if (n > g.exists_max)
					g.exists_max = n;
			}
		} else if (strncmp(line, "* BYE", 5) == 0 && c->st != ST_LOGOUT) {
			show_error(c, line);
		}
		return;
	}
	if (line[0] == '+') {
		if (c->st == ST_IDLE_WAIT) {
			c->st = ST_HOLDING;
			g.ready++;
		}
		return;
	}
	if (c->st == ST_FILLING) {
		/* pipelined APPENDs: tags a<first>..; answers come in order */
		if (line[0] == 'a') {
			int ok = strncmp(strchr(line, ' ') ? strchr(line, ' ') : "", " OK", 3) == 0;
			if (!ok) {
				g.st[OP_APPEND].errors++;
				show_error(c, line);
			}
			else
				stats_add(OP_APPEND, 0);
			c->fill_acked++;
			if (c->fill_acked == g.msgs) {
				cmd_begin(c, OP_COUNT);
				conn_printf(c, "LOGOUT\r\n");
				c->st = ST_LOGOUT;
			} else {
				fill_more(c);
			}
		}
		return;
	}
	if (strncmp(line, c->tag, tl) == 0 && line[tl] == ' ')
		tagged(c, strncmp(line + tl + 1, "OK", 2) == 0, line);
}

/* Splits what arrived into lines; a line ending in {N} or {N+} announces N
 * octets of literal, skipped here. */
static void conn_parse(struct conn *c)
{
	size_t pos = 0;

	while (pos < c->rlen && c->fd >= 0) {
		if (c->literal_left > 0) {
			size_t take = c->rlen - pos < c->literal_left ? c->rlen - pos : c->literal_left;
			pos += take;
			c->literal_left -= take;
			continue;
		}
		char *start = c->rbuf + pos;
		char *nl = memchr(start, '\n', c->rlen - pos);
		if (nl == NULL)
			break;
		size_t len = (size_t)(nl - start);
		pos += len + 1;
		if (len > 0 && start[len - 1] == '\r')
			len--;
		start[len] = '\0';
		if (len > 2 && start[len - 1] == '}') {
			char *b = strrchr(start, '{');
			if (b != NULL)
				c->literal_left = strtoul(b + 1, NULL, 10);
		}
		conn_line(c, start);
	}
	if (c->fd < 0)
		return;
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
}

static void conn_read(struct conn *c)
{
	for (;;) {
		if (c->rcap - c->rlen < 65536) {
			c->rcap = c->rcap ? c->rcap * 2 : 131072;
			c->rbuf = xrealloc(c->rbuf, c->rcap);
		}
		ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen - 1);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			conn_close(c, c->st != ST_LOGOUT);
			return;
		}
		c->rlen += (size_t)n;
		conn_parse(c);
		if (c->fd < 0)
			return;
		if ((size_t)n < c->rcap / 2)
			break;
	}
	if (c->wlen > c->woff)
		conn_flush(c);
}

/* ------------------------------------------------------------ connections */

static void conn_close(struct conn *c, int dropped)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	c->rlen = c->wlen = c->woff = 0;
	c->literal_left = 0;
	if (dropped) {
		g.dropped++;
		if (g.errors_shown++ < 10)
			fprintf(stderr, "imap_load: client %d: connection lost in state %d\n", c->id, c->st);
	}
	c->st = ST_DONE;
	g.active--;
	/* idle: a session lost (refused, timed out) spoils the memory figure */
	if (g.mode == MODE_IDLE && dropped)
		g.idle_lost = 1;
	/* login: the next cycle; mixed: a lost client comes back */
	if (!g.stop && now() < g.t_end && (g.mode == MODE_LOGIN || (g.mode == MODE_MIXED && dropped))) {
		/* not from here: the caller may still be parsing this connection's buffer */
		g.reconnects += dropped;
		c->restart = 1;
		g.restarts++;
	}
}

static void conn_start(struct conn *c)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0)
		die("socket: %s", strerror(errno));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->t_conn = now();
	c->st = ST_CONNECTING;
	g.active++;
	if (connect(fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) < 0 && errno != EINPROGRESS)
		die("connect: %s", strerror(errno));
	conn_epoll(c, EPOLLOUT, 1);
}

static void conn_event(struct conn *c, uint32_t ev)
{
	if (c->st == ST_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			if (g.errors_shown++ < 10)
				fprintf(stderr, "imap_load: connect: %s\n", strerror(err));
			conn_close(c, 1);
			return;
		}
		c->st = ST_GREETING;
		conn_epoll(c, EPOLLIN, 0);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		conn_read(c);
	if (c->fd >= 0 && (ev & EPOLLOUT))
		conn_flush(c);
}

/* idle: at most max_pending logins at once (argon2 is slow on purpose) */
static void idle_start_more(void)
{
	while (g.next_idle < g.clients && g.active - g.ready < g.max_pending) {
		conn_start(&g.conns[g.next_idle++]);
	}
}

/* ------------------------------------------------------------ report */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const struct stats *s, double p)
{
	size_t i;
	if (s->n == 0)
		return 0;
	i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return s->lat[i];
}

static void report(double elapsed)
{
	int i;
	fprintf(stderr, "%-7s %9s %9s %9s %9s %9s %9s %7s\n", "command", "count", "per s", "p50 ms",
	        "p90 ms", "p99 ms", "max ms", "errors");
	for (i = 0; i < OP_COUNT; i++) {
		struct stats *s = &g.st[i];
		if (s->n == 0 && s->errors == 0)
			continue;
		qsort(s->lat, s->n, sizeof(*s->lat), cmp_double);
		printf("RESULT op=%s n=%zu rate=%.1f p50=%.2f p90=%.2f p99=%.2f max=%.2f errors=%lu\n",
		       op_names[i], s->n, (double)s->n / elapsed, pct(s, 0.5), pct(s, 0.9), pct(s, 0.99),
		       pct(s, 1.0), s->errors);
		fprintf(stderr, "%-7s %9zu %9.1f %9.2f %9.2f %9.2f %9.2f %7lu\n", op_names[i], s->n,
		        (double)s->n / elapsed, pct(s, 0.5), pct(s, 0.9), pct(s, 0.99), pct(s, 1.0),
		        s->errors);
	}
	printf("RESULT op=total elapsed=%.3f dropped=%lu exists_min=%ld exists_max=%ld\n", elapsed,
	       g.dropped, g.exists_min, g.exists_max);
	fprintf(stderr, "elapsed %.2f s, connections lost %lu (plaintext IMAP, LOGIN, no TLS)\n",
	        elapsed, g.dropped);
	fflush(stdout);
}

/* ------------------------------------------------------------ main */

static void on_signal(int sig)
{
	(void)sig;
	g.stop = 1;
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: imap_load fill|login|mixed|idle|select -p PORT [-a ADDR] [-n USERS] [-u USERFMT]\n"
	        "         [-w PASSWORD] [-c CLIENTS] [-t SECONDS] [-M MSGS] [-W WINDOW]\n"
	        "         [-x FETCH:STORE:APPEND:SEARCH] [-P PENDING] [-S] [-m MAILBOX]\n");
	exit(2);
}

static void parse_weights(const char *s)
{
	if (sscanf(s, "%d:%d:%d:%d", &g.weights[OP_FETCH], &g.weights[OP_STORE],
	           &g.weights[OP_APPEND], &g.weights[OP_SEARCH]) != 4 ||
	    g.weights[OP_FETCH] + g.weights[OP_STORE] + g.weights[OP_APPEND] + g.weights[OP_SEARCH] <= 0)
		die("-x wants four weights FETCH:STORE:APPEND:SEARCH, e.g. 40:30:20:10");
}

static int run_loop(void)
{
	struct epoll_event evs[256];
	int i, n, announced = 0;

	for (;;) {
		double t = now();
		if (g.mode == MODE_IDLE) {
			if (!announced && g.ready == g.clients) {
				printf("READY %d\n", g.ready);
				fflush(stdout);
				fprintf(stderr, "imap_load: %d sessions %s, opened in %.1f s\n", g.ready,
				        g.just_select ? "selected" : "in IDLE", t - g.t_start);
				announced = 1;
				g.t_end = t + g.seconds;
			}
			if (g.idle_lost) {
				fprintf(stderr, "imap_load: an idle session was lost (%d of %d ready)\n",
				        g.ready, g.clients);
				return 1;
			}
			if (g.stop || (announced && t >= g.t_end))
				return announced ? 0 : 1;
			if (!announced && g.active == 0 && g.next_idle >= g.clients)
				return 1;
		} else if (g.active == 0 && g.restarts == 0) {
			return 0;
		}
		if (g.stop && g.mode != MODE_IDLE) {
			/* SIGINT: leave at once */
			return 0;
		}
		n = epoll_wait(g.epfd, evs, 256, 200);
		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++)
			conn_event(evs[i].data.ptr, evs[i].events);
		if (g.mode == MODE_IDLE)
			idle_start_more();
		for (i = 0; g.restarts > 0 && i < g.clients; i++) {
			if (g.conns[i].restart) {
				g.conns[i].restart = 0;
				g.restarts--;
				conn_start(&g.conns[i]);
			}
		}
	}
}

int main(int argc, char **argv)
{
	const char *addr = "127.0.0.1";
	int opt, port = 0, i, rc;
	double elapsed;

	if (argc < 2)
		usage();
	if (strcmp(argv[1], "fill") == 0)
		g.mode = MODE_FILL;
	else if (strcmp(argv[1], "login") == 0)
		g.mode = MODE_LOGIN;
	else if (strcmp(argv[1], "mixed") == 0)
		g.mode = MODE_MIXED;
	else if (strcmp(argv[1], "idle") == 0)
		g.mode = MODE_IDLE;
	else if (strcmp(argv[1], "select") == 0)
		g.mode = MODE_SELECT;
	else
		usage();
	g.userfmt = "u%d@bench.test";
	g.password = "bench-password";
	g.mailbox = "INBOX";
	g.users = 1;
	g.exists_min = -1;
	g.clients = 1;
	g.seconds = 10;
	g.msgs = 100;
	g.window = 32;
	g.max_pending = 16;
	parse_weights("40:30:20:10");
	optind = 2;
	while ((opt = getopt(argc, argv, "a:p:n:u:w:c:t:M:W:x:P:Sm:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'n': g.users = atoi(optarg); break;
		case 'u': g.userfmt = optarg; break;
		case 'w': g.password = optarg; break;
		case 'c': g.clients = atoi(optarg); break;
		case 't': g.seconds = atof(optarg); break;
		case 'M': g.msgs = atoi(optarg); break;
		case 'W': g.window = atoi(optarg); break;
		case 'x': parse_weights(optarg); break;
		case 'P': g.max_pending = atoi(optarg); break;
		case 'S': g.just_select = 1; break;
		case 'm': g.mailbox = optarg; break;
		default: usage();
		}
	}
	if (port <= 0 || port > 65535 || g.users < 1 || g.clients < 1 || g.window < 1 ||
	    g.max_pending < 1 || g.seconds <= 0)
		usage();
	if (strstr(g.userfmt, "%d") == NULL || strchr(strstr(g.userfmt, "%d") + 2, '%') != NULL)
		die("-u wants one %%d and no other %%");
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &g.addr.sin_addr) != 1)
		die("bad address %s", addr);
	if (g.mode == MODE_FILL)
		g.clients = g.users;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	g.conns = calloc((size_t)g.clients, sizeof(*g.conns));
	if (g.conns == NULL)
		die("out of memory");
	g.t_start = now();
	g.t_end = g.mode == MODE_IDLE || g.mode == MODE_FILL ? 1e18 : g.t_start + g.seconds;
	for (i = 0; i < g.clients; i++) {
		struct conn *c = &g.conns[i];
		c->id = i;
		c->fd = -1;
		c->user = 1 + i % g.users;
		c->rng = 0xD1B54A32D192ED03ULL ^ ((uint64_t)i * 0x9E3779B97F4A7C15ULL);
		rng_next(&c->rng);
		if (g.mode != MODE_IDLE)
			conn_start(c);
	}
	if (g.mode == MODE_IDLE)
		idle_start_more();
	rc = run_loop();
	elapsed = now() - g.t_start;
	if (g.mode == MODE_LOGIN || g.mode == MODE_MIXED || g.mode == MODE_SELECT)
		elapsed = g.seconds < elapsed ? g.seconds : elapsed;
	report(elapsed);
	for (i = 0; i < g.clients; i++)
		if (g.conns[i].fd >= 0)
			close(g.conns[i].fd);
	return rc != 0 || (g.mode == MODE_FILL && (g.dropped || g.st[OP_APPEND].errors)) ? 1 : 0;
}
