/* queue/mx: routes for destination domains, resolved through lib/dns and
 * libunbound against a private dnsmasq on a free 127.0.0.1 port.  Nothing
 * here queries any other DNS server. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/dns.h"
#include "lib/test.h"
#include "queue/mx.h"

/* ---- a private dnsmasq (as in lib/test_dns.c) ---- */

static const char *const dnsmasq_records[] = {
    "--mx-host=multi.test,a.multi.test,10",
    "--mx-host=multi.test,b.multi.test,20",
    "--mx-host=multi.test,c.multi.test,20",
    "--host-record=a.multi.test,127.0.0.10",
    "--host-record=b.multi.test,127.0.0.11,::11",
    "--host-record=c.multi.test,127.0.0.12",
    "--host-record=implicit.test,127.0.0.5",
    "--mx-host=nullmx.test,.,0",
    "--mx-host=noaddr.test,ghost.noaddr.test,10",
    "--mx-host=partial.test,ghost.partial.test,5",
    "--mx-host=partial.test,mx.partial.test,10",
    "--host-record=mx.partial.test,127.0.0.6",
    "--mx-host=v6only.test,mx.v6only.test,10",
    "--host-record=mx.v6only.test,::1",
    "--mx-host=dup.test,m1.dup.test,10",
    "--mx-host=dup.test,m2.dup.test,20",
    "--host-record=m1.dup.test,127.0.0.7",
    "--host-record=m2.dup.test,127.0.0.7",
    "--host-record=xn--bcher-kva.test,127.0.0.9",
    "--txt-record=txtonly.test,hello",
    NULL,
};

static pid_t dnsmasq_pid = -1;
static int dnsmasq_port;
static bool dnsmasq_skip;

static const char *dnsmasq_path(void)
{
	static const char *const paths[] = {"/usr/sbin/dnsmasq", "/usr/bin/dnsmasq",
	                                    "/sbin/dnsmasq"};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

/* A UDP socket on a free 127.0.0.1 port; *port_r gets the port. */
static int udp_bind_free(int *port_r)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		perror("udp socket");
		exit(2);
	}
	*port_r = ntohs(sin.sin_port);
	return fd;
}

static bool udp_port_taken(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	bool taken;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	taken = bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 && errno == EADDRINUSE;
	close(fd);
	return taken;
}

static void dnsmasq_exec(const char *path, int port, const char *const *records)
{
	const char *argv[32];
	char portarg[32];
	size_t n = 0;
	int null = open("/dev/null", O_WRONLY);

	snprintf(portarg, sizeof(portarg), "--port=%d", port);
	argv[n++] = path;
	argv[n++] = "--keep-in-foreground";
	argv[n++] = "--conf-file=/dev/null";
	argv[n++] = portarg;
	argv[n++] = "--listen-address=127.0.0.1";
	argv[n++] = "--bind-interfaces";
	argv[n++] = "--no-resolv";
	argv[n++] = "--no-hosts";
	argv[n++] = "--local=/test/";
	argv[n++] = "--local-ttl=300";
	if (geteuid() == 0)
		argv[n++] = "--user=nobody";
	for (; *records != NULL && n < 31; records++)
		argv[n++] = *records;
	argv[n] = NULL;
	dup2(null, STDOUT_FILENO);
	execv(path, (char *const *)argv);
	_exit(127);
}

/* Starts dnsmasq, or marks the live tests skipped when it is not installed. */
static void dnsmasq_start(const char *const *records)
{
	const char *path = dnsmasq_path();
	int fd, status;

	if (path == NULL) {
		dnsmasq_skip = true;
		return;
	}
	fd = udp_bind_free(&dnsmasq_port);
	close(fd);
	dnsmasq_pid = fork();
	if (dnsmasq_pid == 0)
		dnsmasq_exec(path, dnsmasq_port, records);
	for (int i = 0; i < 250; i++) {
		if (udp_port_taken(dnsmasq_port))
			return;
		if (waitpid(dnsmasq_pid, &status, WNOHANG) == dnsmasq_pid) {
			fprintf(stderr, "dnsmasq exited at start-up\n");
			exit(2);
		}
		usleep(20000);
	}
	fprintf(stderr, "dnsmasq did not start\n");
	kill(dnsmasq_pid, SIGTERM);
	exit(2);
}

static void dnsmasq_stop(void)
{
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
		dnsmasq_pid = -1;
	}
}

/* ---- driving the loop ---- */

static void tick(evutil_socket_t fd, short what, void *arg)
{
}

static long elapsed_ms(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Runs base until *count reaches want or msecs pass; a ticking timer keeps
 * each turn short. */
static void run_until(struct event_base *base, const int *count, int want, long msecs)
{
	struct timeval tv = {0, 20000};
	struct event *ev = event_new(base, -1, EV_PERSIST, tick, NULL);
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	event_add(ev, &tv);
	while (*count < want && elapsed_ms(&start) < msecs)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(ev);
}

/* ---- lookups ---- */

struct route {
	int calls;
	enum mx_status status;
	char error[256];
	size_t n;
	char name[8][256];
	unsigned pref[8];
	char addr[8][INET6_ADDRSTRLEN];
};

static void on_route(const struct mx_result *r, void *ctx)
{
	struct route *rt = ctx;

	rt->calls++;
	rt->status = r->status;
	snprintf(rt->error, sizeof(rt->error), "%s", r->error);
	rt->n = r->n;
	for (size_t i = 0; i < r->n && i < 8; i++) {
		const struct mx_host *h = &r->hosts[i];
		const void *a =
		    h->family == AF_INET
		        ? (const void *)&((const struct sockaddr_in *)&h->addr)->sin_addr
		        : (const void *)&((const struct sockaddr_in6 *)&h->addr)->sin6_addr;

		snprintf(rt->name[i], sizeof(rt->name[i]), "%s", h->name);
		rt->pref[i] = h->pref;
		CHECK_INT(h->addr.ss_family, h->family);
		inet_ntop(h->family, a, rt->addr[i], sizeof(rt->addr[i]));
	}
}

static struct dns_resolver *resolver_at(struct event_base *base, int port)
{
	char fwd[64];
	const char *error = NULL;
	struct dns_resolver *r;

	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", port);
	r = dns_resolver_new(base, fwd, &error);
	if (r == NULL) {
		fprintf(stderr, "dns_resolver_new: %s\n", error);
		exit(2);
	}
	return r;
}

static struct event_base *base;
static struct dns_resolver *resolver;

static void route(const char *domain, uint64_t seed, struct route *rt)
{
	memset(rt, 0, sizeof(*rt));
	CHECK(mx_lookup(resolver, domain, seed, on_route, rt) != NULL);
	/* Never inside mx_lookup(), even when the answer is known at once. */
	CHECK_INT(rt->calls, 0);
	run_until(base, &rt->calls, 1, 5000);
	CHECK_INT(rt->calls, 1);
}

static void test_mx_order(void)
{
	bool b_first = false, c_first = false;
	struct route rt, again;

	for (uint64_t seed = 1; seed <= 40; seed++) {
		route("multi.test", seed, &rt);
		CHECK_INT(rt.status, MX_OK);
		CHECK_STR(rt.error, "");
		CHECK_INT(rt.n, 4);
		if (rt.n != 4)
			return;
		CHECK_STR(rt.name[0], "a.multi.test");
		CHECK_INT(rt.pref[0], 10);
		CHECK_STR(rt.addr[0], "127.0.0.10");
		CHECK_INT(rt.pref[1], 20);
		CHECK_INT(rt.pref[3], 20);
		if (strcmp(rt.name[1], "b.multi.test") == 0) {
			/* b: its IPv4 address, then its IPv6 one, then c. */
			b_first = true;
			CHECK_STR(rt.addr[1], "127.0.0.11");
			CHECK_STR(rt.name[2], "b.multi.test");
			CHECK_STR(rt.addr[2], "::11");
			CHECK_STR(rt.name[3], "c.multi.test");
			CHECK_STR(rt.addr[3], "127.0.0.12");
		} else {
			c_first = true;
			CHECK_STR(rt.name[1], "c.multi.test");
			CHECK_STR(rt.addr[1], "127.0.0.12");
			CHECK_STR(rt.name[2], "b.multi.test");
			CHECK_STR(rt.addr[2], "127.0.0.11");
			CHECK_STR(rt.addr[3], "::11");
		}
		/* The same seed gives the same order. */
		route("multi.test", seed, &again);
		CHECK_STR(again.name[1], rt.name[1]);
	}
	CHECK(b_first);
	CHECK(c_first);
}

static void test_mx_implicit(void)
{
	struct route rt;

	route("implicit.test", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_INT(rt.n, 1);
	CHECK_STR(rt.name[0], "implicit.test");
	CHECK_INT(rt.pref[0], 0);
	CHECK_STR(rt.addr[0], "127.0.0.5");
	/* Upper case and a final dot are the same domain. */
	route("IMPLICIT.Test.", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_STR(rt.name[0], "implicit.test");
}

static void test_mx_permanent(void)
{
	struct route rt;

	route("nosuch.test", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	CHECK_STR(rt.error, "domain nosuch.test does not exist");
	CHECK_INT(rt.n, 0);
	route("nullmx.test", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	CHECK_STR(rt.error, "nullmx.test accepts no mail (null MX, RFC 7505)");
	/* A name that exists with neither MX nor address. */
	route("txtonly.test", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	CHECK_STR(rt.error, "txtonly.test has no MX and no address records");
	route("bad..test", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	CHECK_STR(rt.error, "invalid domain name");
	route("-x.test", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	route("exa mple.test", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	route("", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
}

static void test_mx_hosts_without_address(void)
{
	struct route rt;

	/* The only MX host has no address: try again later. */
	route("noaddr.test", 0, &rt);
	CHECK_INT(rt.status, MX_TEMPFAIL);
	CHECK_STR(rt.error, "no MX host of noaddr.test has an address");
	/* The better one has none: skipped. */
	route("partial.test", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_INT(rt.n, 1);
	CHECK_STR(rt.name[0], "mx.partial.test");
	CHECK_INT(rt.pref[0], 10);
	CHECK_STR(rt.addr[0], "127.0.0.6");
	/* IPv6 only. */
	route("v6only.test", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_INT(rt.n, 1);
	CHECK_STR(rt.addr[0], "::1");
	/* Two exchanges on one address: listed once, for the better one. */
	route("dup.test", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_INT(rt.n, 1);
	CHECK_STR(rt.name[0], "m1.dup.test");
}

static void test_mx_idn(void)
{
	struct route rt;

	route("b\xc3\xbc"
	      "cher.test",
	      0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_INT(rt.n, 1);
	CHECK_STR(rt.name[0], "xn--bcher-kva.test");
	CHECK_STR(rt.addr[0], "127.0.0.9");
	/* Not UTF-8. */
	route("b\xfc"
	      "cher.test",
	      0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	CHECK_STR(rt.error, "invalid internationalised domain name");
}

/* Literals and failures that need no DNS: resolved against a server that
 * never answers, so any query would show as a timeout. */
static void test_mx_no_dns(void)
{
	struct dns_resolver *saved = resolver;
	int port, silent = udp_bind_free(&port);
	struct route rt;

	resolver = resolver_at(base, port);
	dns_resolver_set_timeout(resolver, 200);
	route("[127.0.0.2]", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_INT(rt.n, 1);
	CHECK_STR(rt.name[0], "[127.0.0.2]");
	CHECK_STR(rt.addr[0], "127.0.0.2");
	route("[IPv6:::1]", 0, &rt);
	CHECK_INT(rt.status, MX_OK);
	CHECK_STR(rt.addr[0], "::1");
	route("[127.0.0.256]", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	route("[::1]", 0, &rt);
	CHECK_INT(rt.status, MX_PERMFAIL);
	/* The timeout itself: temporary. */
	route("example.test", 0, &rt);
	CHECK_INT(rt.status, MX_TEMPFAIL);
	CHECK_STR(rt.error, "DNS lookup of MX for example.test failed: timed out");
	dns_resolver_free(&resolver);
	close(silent);
	resolver = saved;
}

/* Cancelled at every stage (before the MX answer, while the addresses are
 * looked up, ...): the callback never runs.  A fresh resolver each time, so
 * that every stage waits for dnsmasq instead of the cache. */
static void test_mx_cancel(void)
{
	int finished = 0, cancelled = 0;

	for (int turns = 0; turns < 12; turns++) {
		struct dns_resolver *fresh = resolver_at(base, dnsmasq_port);
		struct route rt = {0};
		struct mx_lookup *l = mx_lookup(fresh, "multi.test", 7, on_route, &rt);

		for (int i = 0; i < turns && rt.calls == 0; i++)
			event_base_loop(base, EVLOOP_ONCE);
		if (rt.calls == 0) {
			mx_cancel(&l);
			CHECK(l == NULL);
			cancelled++;
			run_until(base, &rt.calls, 1, 100);
			CHECK_INT(rt.calls, 0);
		} else {
			finished++;
			CHECK_INT(rt.status, MX_OK);
		}
		dns_resolver_free(&fresh);
	}
	/* Both outcomes seen: lookups were cut at several points, and the
	 * same lookup does finish when left alone. */
	CHECK(cancelled >= 2);
	CHECK(finished > 0);
}

int main(void)
{
	const char *req = getenv("KEEL_REQUIRE_PEERS");

	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	dnsmasq_start(dnsmasq_records);
	if (dnsmasq_skip) {
		printf("SKIP test_mx: dnsmasq is not installed\n");
		if (req != NULL && strcmp(req, "1") == 0)
			test_failed++;
		event_base_free(base);
		return test_summary();
	}
	resolver = resolver_at(base, dnsmasq_port);
	TEST_RUN(test_mx_order);
	TEST_RUN(test_mx_implicit);
	TEST_RUN(test_mx_permanent);
	TEST_RUN(test_mx_hosts_without_address);
	TEST_RUN(test_mx_idn);
	TEST_RUN(test_mx_no_dns);
	TEST_RUN(test_mx_cancel);
	dns_resolver_free(&resolver);
	event_base_free(base);
	dnsmasq_stop();
	return test_summary();
}
