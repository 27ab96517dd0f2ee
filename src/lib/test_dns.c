/* lib/dns: the packet parser on hand-made packets, then real lookups through
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

/* ---- a private dnsmasq ---- */

static const char *const dnsmasq_records[] = {
    "--mx-host=example.test,mx1.example.test,10",
    "--mx-host=example.test,mx2.example.test,20",
    "--host-record=mx1.example.test,127.0.0.2",
    "--host-record=mx2.example.test,127.0.0.3",
    "--host-record=v6.test,::1",
    "--mx-host=nullmx.test,.,0",
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

struct answer {
	int calls;
	enum dns_status status;
	uint32_t ttl;
	size_t n;
	unsigned pref[4];
	char text[4][64];
};

static void on_answer(const struct dns_result *r, void *ctx)
{
	struct answer *a = ctx;

	a->calls++;
	a->status = r->status;
	a->ttl = r->ttl;
	a->n = r->n;
	for (size_t i = 0; i < r->n && i < 4; i++) {
		if (r->type == DNS_TYPE_MX) {
			a->pref[i] = r->records[i].u.mx.pref;
			snprintf(a->text[i], sizeof(a->text[i]), "%s", r->records[i].u.mx.exchange);
		} else {
			snprintf(a->text[i], sizeof(a->text[i]), "%s", r->records[i].u.addr.text);
		}
	}
}

static struct dns_resolver *resolver_local(struct event_base *base)
{
	char fwd[64];
	const char *error = NULL;
	struct dns_resolver *r;

	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", dnsmasq_port);
	r = dns_resolver_new(base, fwd, &error);
	if (r == NULL) {
		fprintf(stderr, "dns_resolver_new: %s\n", error);
		exit(2);
	}
	return r;
}

/* Resolves one name and waits for the answer. */
static void lookup(struct event_base *base, const char *name, enum dns_type type, struct answer *a)
{
	struct dns_resolver *r = resolver_local(base);
	const char *error = NULL;

	memset(a, 0, sizeof(*a));
	CHECK(dns_resolve(r, name, type, on_answer, a, &error) != NULL);
	/* The callback never runs inside dns_resolve(). */
	CHECK_INT(a->calls, 0);
	run_until(base, &a->calls, 1, 5000);
	CHECK_INT(a->calls, 1);
	dns_resolver_free(&r);
	CHECK(r == NULL);
}

/* ---- parser on hand-made packets ---- */

struct pkt {
	unsigned char b[1024];
	size_t len;
};

static void put(struct pkt *p, const void *data, size_t n)
{
	memcpy(p->b + p->len, data, n);
	p->len += n;
}

static void put16(struct pkt *p, unsigned v)
{
	unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
	put(p, b, 2);
}

static void put32(struct pkt *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p, v & 0xffff);
}

/* Header and the question "example.test"; the name sits at offset 12. */
static void pkt_start(struct pkt *p, unsigned rcode, unsigned an, unsigned ns, unsigned qtype)
{
	p->len = 0;
	put16(p, 0x1234);
	put16(p, 0x8180 | rcode);
	put16(p, 1);
	put16(p, an);
	put16(p, ns);
	put16(p, 0);
	put(p, "\7example\4test", 14);
	put16(p, qtype);
	put16(p, 1);
}

static void pkt_rr(struct pkt *p, unsigned type, uint32_t ttl, const void *rdata, size_t rdlen)
{
	put16(p, 0xc00c);
	put16(p, type);
	put16(p, 1);
	put32(p, ttl);
	put16(p, (unsigned)rdlen);
	put(p, rdata, rdlen);
}

static void test_parse_mx_compressed(void)
{
	/* mx1.<pointer to example.test>, then a pointer to the whole name. */
	static const unsigned char mx1[] = {0, 10, 3, 'm', 'x', '1', 0xc0, 12};
	static const unsigned char mx2[] = {0, 20, 0xc0, 12};
	struct dns_result res = {.name = "example.test"};
	const char *error = NULL;
	struct pkt p;

	pkt_start(&p, 0, 2, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 300, mx1, sizeof(mx1));
	pkt_rr(&p, DNS_TYPE_MX, 200, mx2, sizeof(mx2));
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error), 0);
	CHECK_INT(res.status, DNS_OK);
	CHECK_STR(res.name, "example.test");
	CHECK_INT(res.ttl, 200);
	CHECK_INT(res.n, 2);
	if (res.n == 2) {
		CHECK_INT(res.records[0].u.mx.pref, 10);
		CHECK_STR(res.records[0].u.mx.exchange, "mx1.example.test");
		CHECK_INT(res.records[1].u.mx.pref, 20);
		CHECK_STR(res.records[1].u.mx.exchange, "example.test");
	}
	dns_result_deinit(&res);
}

static void test_parse_null_mx(void)
{
	static const unsigned char null_mx[] = {0, 0, 0};
	struct dns_result res = {0};
	const char *error = NULL;
	struct pkt p;

	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 60, null_mx, sizeof(null_mx));
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error), 0);
	CHECK_INT(res.status, DNS_OK);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_INT(res.records[0].u.mx.pref, 0);
		CHECK_STR(res.records[0].u.mx.exchange, ".");
	}
	dns_result_deinit(&res);
}

static void test_parse_addresses_and_cname(void)
{
	static const unsigned char target[] = {4, 'h', 'o', 's', 't', 0xc0, 20};
	static const unsigned char v4[] = {192, 0, 2, 7};
	static const unsigned char v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	struct dns_result res = {0};
	const char *error = NULL;
	struct pkt p;

	/* A CNAME with a shorter TTL than the address: the chain's minimum. */
	pkt_start(&p, 0, 3, 0, DNS_TYPE_A);
	pkt_rr(&p, DNS_TYPE_CNAME, 50, target, sizeof(target));
	pkt_rr(&p, DNS_TYPE_A, 100, v4, sizeof(v4));
	pkt_rr(&p, DNS_TYPE_AAAA, 10, v6, sizeof(v6));
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_A, &res, &error), 0);
	CHECK_INT(res.status, DNS_OK);
	CHECK_INT(res.ttl, 50);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_INT(res.records[0].u.addr.family, AF_INET);
		CHECK_STR(res.records[0].u.addr.text, "192.0.2.7");
		CHECK_INT(res.records[0].rdlen, 4);
	}
	dns_result_deinit(&res);

	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_AAAA, &res, &error), 0);
	CHECK_INT(res.n, 1);
	if (res.n == 1) {
		CHECK_INT(res.records[0].u.addr.family, AF_INET6);
		CHECK_STR(res.records[0].u.addr.text, "2001:db8::1");
	}
	dns_result_deinit(&res);
}

static void pkt_soa(struct pkt *p, uint32_t ttl, uint32_t minimum)
{
	struct pkt rd = {.len = 0};

	put(&rd, "\2ns\300\14", 5);
	put(&rd, "\4host\300\14", 7);
	put32(&rd, 1);
	put32(&rd, 3600);
	put32(&rd, 600);
	put32(&rd, 86400);
	put32(&rd, minimum);
	pkt_rr(p, DNS_TYPE_SOA, ttl, rd.b, rd.len);
}

static void test_parse_negative(void)
{
	struct dns_result res = {0};
	const char *error = NULL;
	struct pkt p;

	/* NXDOMAIN: the negative TTL is min(SOA TTL, SOA MINIMUM). */
	pkt_start(&p, 3, 0, 1, DNS_TYPE_MX);
	pkt_soa(&p, 300, 60);
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error), 0);
	CHECK_INT(res.status, DNS_NXDOMAIN);
	CHECK_INT(res.ttl, 60);
	CHECK_INT(res.n, 0);
	dns_result_deinit(&res);

	pkt_start(&p, 0, 0, 1, DNS_TYPE_MX);
	pkt_soa(&p, 30, 60);
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error), 0);
	CHECK_INT(res.status, DNS_NODATA);
	CHECK_INT(res.ttl, 30);
	dns_result_deinit(&res);

	pkt_start(&p, 2, 0, 0, DNS_TYPE_MX);
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error), 0);
	CHECK_INT(res.status, DNS_SERVFAIL);
	dns_result_deinit(&res);
}

static void test_parse_escapes(void)
{
	static const unsigned char odd[] = {0, 5, 5, 'a', ' ', 'b', '.', 'c', 0xc0, 12};
	struct dns_result res = {0};
	const char *error = NULL;
	struct pkt p;

	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, odd, sizeof(odd));
	CHECK_INT(dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error), 0);
	CHECK_INT(res.n, 1);
	if (res.n == 1)
		CHECK_STR(res.records[0].u.mx.exchange, "a\\032b\\.c.example.test");
	dns_result_deinit(&res);
}

static void expect_malformed(const struct pkt *p, enum dns_type type)
{
	struct dns_result res = {0};
	const char *error = NULL;

	CHECK_INT(dns_packet_parse(p->b, p->len, type, &res, &error), -1);
	CHECK_STR(error, "malformed answer");
	CHECK_INT(res.status, DNS_SERVFAIL);
	CHECK_INT(res.n, 0);
	dns_result_deinit(&res);
}

static void test_parse_malformed(void)
{
	static const unsigned char self_ptr[] = {0, 10, 0xc0, 0};
	static const unsigned char long_a[] = {1, 2, 3, 4, 5};
	static const unsigned char past_rdata[] = {0, 10, 3, 'm', 'x'};
	static const unsigned char ext_label[] = {0, 10, 0x41, 'x', 0};
	struct pkt p, long_name = {.len = 0};

	/* A pointer to itself (offset patched in below). */
	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, self_ptr, sizeof(self_ptr));
	p.b[p.len - 1] = (unsigned char)(p.len - 2);
	expect_malformed(&p, DNS_TYPE_MX);
	/* A forward pointer. */
	p.b[p.len - 1] = (unsigned char)(p.len + 4);
	expect_malformed(&p, DNS_TYPE_MX);
	/* Pointer chains that come back through labels grow past 255 octets. */
	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, "\0\12\3abc\300\0", 8);
	p.b[p.len - 1] = (unsigned char)(p.len - 6);
	expect_malformed(&p, DNS_TYPE_MX);
	pkt_start(&p, 0, 1, 0, DNS_TYPE_A);
	pkt_rr(&p, DNS_TYPE_A, 1, long_a, sizeof(long_a));
	expect_malformed(&p, DNS_TYPE_A);
	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, past_rdata, sizeof(past_rdata));
	expect_malformed(&p, DNS_TYPE_MX);
	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, ext_label, sizeof(ext_label));
	expect_malformed(&p, DNS_TYPE_MX);
	/* Truncated in the middle of the answer. */
	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, past_rdata, sizeof(past_rdata));
	p.len -= 3;
	expect_malformed(&p, DNS_TYPE_MX);
	/* An MX name of 260 octets on the wire. */
	put16(&long_name, 10);
	for (int i = 0; i < 4; i++)
		put(&long_name,
		    "\77aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 64);
	put(&long_name, "\3abc", 4);
	put(&long_name, "", 1);
	pkt_start(&p, 0, 1, 0, DNS_TYPE_MX);
	pkt_rr(&p, DNS_TYPE_MX, 1, long_name.b, long_name.len);
	expect_malformed(&p, DNS_TYPE_MX);
	/* Shorter than a header. */
	p.len = 11;
	expect_malformed(&p, DNS_TYPE_MX);
}

/* Random damage to a valid answer: every outcome must be a clean parse or a
 * clean "malformed" (the sanitizers watch the reads). */
static void test_parse_damaged(void)
{
	static const unsigned char mx1[] = {0, 10, 3, 'm', 'x', '1', 0xc0, 12};
	uint32_t rng = 12345;
	struct pkt good, p;

	pkt_start(&good, 0, 2, 1, DNS_TYPE_MX);
	pkt_rr(&good, DNS_TYPE_MX, 300, mx1, sizeof(mx1));
	pkt_rr(&good, DNS_TYPE_MX, 300, mx1, sizeof(mx1));
	pkt_soa(&good, 30, 60);
	for (int i = 0; i < 20000; i++) {
		struct dns_result res = {0};
		const char *error = NULL;
		int r;

		p = good;
		for (int k = 0; k < 1 + i % 4; k++) {
			rng = rng * 1103515245u + 12345u;
			p.b[(rng >> 8) % p.len] = (unsigned char)(rng >> 20);
		}
		rng = rng * 1103515245u + 12345u;
		if (i % 3 == 0)
			p.len = (rng >> 8) % (p.len + 1);
		r = dns_packet_parse(p.b, p.len, DNS_TYPE_MX, &res, &error);
		CHECK(r == 0 || res.status == DNS_SERVFAIL);
		for (size_t j = 0; r == 0 && j < res.n; j++)
			CHECK(strlen(res.records[j].u.mx.exchange) < 1024);
		dns_result_deinit(&res);
	}
}

static void test_forwarder_forms(void)
{
	static const char *const good[] = {"127.0.0.1", "127.0.0.1@53", "127.0.0.1:5353", "::1",
	                                   "::1@53",    "[::1]:53",     "[::1]"};
	static const char *const bad[] = {
	    "localhost", "127.0.0.1:0", "127.0.0.1:99999", "[::1", "[::1]x", "1.2.3.4:53x", ""};
	struct event_base *base = event_base_new();

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const char *error = NULL;
		struct dns_resolver *r = dns_resolver_new(base, good[i], &error);

		CHECK(r != NULL);
		if (r == NULL)
			fprintf(stderr, "  %s: %s\n", good[i], error);
		dns_resolver_free(&r);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *error = NULL;

		CHECK(dns_resolver_new(base, bad[i], &error) == NULL);
		CHECK(error != NULL);
	}
	event_base_free(base);
}

/* ---- live, against dnsmasq ---- */

static void test_live_mx(void)
{
	struct event_base *base = event_base_new();
	struct answer a;

	lookup(base, "example.test", DNS_TYPE_MX, &a);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 2);
	CHECK_INT(a.ttl, 300);
	/* dnsmasq may list them in either order. */
	if (a.n == 2 && a.pref[0] != 10) {
		CHECK_INT(a.pref[1], 10);
		CHECK_STR(a.text[1], "mx1.example.test");
		CHECK_STR(a.text[0], "mx2.example.test");
	} else if (a.n == 2) {
		CHECK_INT(a.pref[1], 20);
		CHECK_STR(a.text[0], "mx1.example.test");
		CHECK_STR(a.text[1], "mx2.example.test");
	}
	lookup(base, "nullmx.test.", DNS_TYPE_MX, &a);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 1);
	CHECK_INT(a.pref[0], 0);
	CHECK_STR(a.text[0], ".");
	event_base_free(base);
}

static void test_live_addresses(void)
{
	struct event_base *base = event_base_new();
	struct answer a;

	lookup(base, "mx1.example.test", DNS_TYPE_A, &a);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 1);
	CHECK_STR(a.text[0], "127.0.0.2");
	lookup(base, "v6.test", DNS_TYPE_AAAA, &a);
	CHECK_INT(a.status, DNS_OK);
	CHECK_INT(a.n, 1);
	CHECK_STR(a.text[0], "::1");
	lookup(base, "mx1.example.test", DNS_TYPE_AAAA, &a);
	CHECK_INT(a.status, DNS_NODATA);
	CHECK_INT(a.n, 0);
	lookup(base, "example.test", DNS_TYPE_A, &a);
	CHECK_INT(a.status, DNS_NODATA);
	lookup(base, "nosuch.test", DNS_TYPE_MX, &a);
	CHECK_INT(a.status, DNS_NXDOMAIN);
	CHECK_INT(a.n, 0);
	event_base_free(base);
}

static void test_live_timeout(void)
{
	struct event_base *base = event_base_new();
	const char *error = NULL;
	struct dns_resolver *r;
	struct timespec start;
	struct answer a = {0};
	char fwd[64];
	int port, silent = udp_bind_free(&port);

	/* A bound socket nobody reads: queries vanish. */
	snprintf(fwd, sizeof(fwd), "127.0.0.1:%d", port);
	r = dns_resolver_new(base, fwd, &error);
	CHECK(r != NULL);
	if (r == NULL)
		return;
	dns_resolver_set_timeout(r, 200);
	clock_gettime(CLOCK_MONOTONIC, &start);
	CHECK(dns_resolve(r, "example.test", DNS_TYPE_MX, on_answer, &a, &error) != NULL);
	run_until(base, &a.calls, 1, 5000);
	CHECK_INT(a.calls, 1);
	CHECK_INT(a.status, DNS_TIMEOUT);
	CHECK(elapsed_ms(&start) < 2000);
	dns_resolver_free(&r);
	close(silent);
	event_base_free(base);
}

static void test_live_cancel(void)
{
	struct event_base *base = event_base_new();
	struct dns_resolver *r = resolver_local(base);
	struct answer cancelled = {0}, kept = {0}, freed = {0};
	const char *error = NULL;
	struct dns_query *q;

	q = dns_resolve(r, "mx2.example.test", DNS_TYPE_A, on_answer, &cancelled, &error);
	CHECK(q != NULL);
	/* The same name, not cancelled: proves an answer did come. */
	CHECK(dns_resolve(r, "mx2.example.test", DNS_TYPE_A, on_answer, &kept, &error) != NULL);
	dns_cancel(&q);
	CHECK(q == NULL);
	run_until(base, &kept.calls, 1, 5000);
	CHECK_INT(kept.calls, 1);
	CHECK_INT(kept.status, DNS_OK);
	run_until(base, &cancelled.calls, 1, 300);
	CHECK_INT(cancelled.calls, 0);

	/* Freeing the resolver cancels what is pending. */
	CHECK(dns_resolve(r, "v6.test", DNS_TYPE_AAAA, on_answer, &freed, &error) != NULL);
	dns_resolver_free(&r);
	run_until(base, &freed.calls, 1, 300);
	CHECK_INT(freed.calls, 0);
	event_base_free(base);
}

struct free_in_cb {
	struct dns_resolver *resolver;
	int calls;
	struct answer other;
};

static void free_resolver_cb(const struct dns_result *result, void *ctx)
{
	struct free_in_cb *f = ctx;
	const char *error = NULL;

	f->calls++;
	/* Still pending when the resolver goes: must never call back. */
	CHECK(dns_resolve(f->resolver, "v6.test", DNS_TYPE_AAAA, on_answer, &f->other, &error) !=
	      NULL);
	dns_resolver_free(&f->resolver);
}

/* A callback may free its resolver; what else was pending is cancelled. */
static void test_live_free_in_callback(void)
{
	struct event_base *base = event_base_new();
	struct free_in_cb f = {.resolver = resolver_local(base)};
	const char *error = NULL;

	CHECK(dns_resolve(f.resolver, "nullmx.test", DNS_TYPE_MX, free_resolver_cb, &f, &error) !=
	      NULL);
	run_until(base, &f.calls, 1, 5000);
	CHECK_INT(f.calls, 1);
	CHECK(f.resolver == NULL);
	run_until(base, &f.other.calls, 1, 300);
	CHECK_INT(f.other.calls, 0);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	TEST_RUN(test_parse_mx_compressed);
	TEST_RUN(test_parse_null_mx);
	TEST_RUN(test_parse_addresses_and_cname);
	TEST_RUN(test_parse_negative);
	TEST_RUN(test_parse_escapes);
	TEST_RUN(test_parse_malformed);
	TEST_RUN(test_parse_damaged);
	TEST_RUN(test_forwarder_forms);
	TEST_RUN(test_live_timeout);
	dnsmasq_start(dnsmasq_records);
	if (dnsmasq_skip) {
		const char *req = getenv("KEEL_REQUIRE_PEERS");

		printf("SKIP live DNS tests: dnsmasq is not installed\n");
		if (req != NULL && strcmp(req, "1") == 0)
			test_failed++;
		return test_summary();
	}
	TEST_RUN(test_live_mx);
	TEST_RUN(test_live_addresses);
	TEST_RUN(test_live_cancel);
	TEST_RUN(test_live_free_in_callback);
	dnsmasq_stop();
	return test_summary();
}
