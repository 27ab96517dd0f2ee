#include "queue/mx.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <idn2.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/dns.h"
#include "lib/xalloc.h"

#define MX_NAME_MAX 253 /* in text, without the final dot */

/* One address lookup (A or AAAA) of one exchange. */
struct mx_slot {
	struct mx_lookup *lookup;
	struct dns_query *query;
	enum dns_status status;
	size_t n;
	struct sockaddr_storage *addrs;
};

struct mx_exchange {
	char name[256];
	unsigned pref;
	uint64_t key;           /* random tie-break among equal preferences */
	struct mx_slot slot[2]; /* [0] A, [1] AAAA */
};

struct mx_lookup {
	struct dns_resolver *dns;
	mx_cb *cb;
	void *ctx;
	char domain[256];
	uint64_t rng;
	struct dns_query *mx_query;
	bool implicit;
	size_t nex;
	struct mx_exchange *ex;
	unsigned pending;
	/* A result known at once (literal, invalid domain) waits for the loop
	 * here, so that the callback never runs inside mx_lookup(). */
	struct event *defer;
	struct mx_result *early;
};

/* splitmix64: small, fast, and fully determined by the seed. */
static uint64_t mx_random(struct mx_lookup *l)
{
	uint64_t z = (l->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t mx_seed_random(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	return seed;
}

/* RFC 5321 4.1.2 Domain: LDH labels of 1 to 63, none starting or ending
 * with a hyphen.  Lower-cases s in place. */
static bool mx_hostname_check(char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > MX_NAME_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c >= 'A' && c <= 'Z')
			s[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		           (c == '-' && label > 0)))
			return false;
		label++;
	}
	return true;
}

static bool mx_has_non_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return true;
	return false;
}

/* Into out: the domain in A-labels, lower case, without a final dot. */
static int mx_domain_normalize(const char *domain, char out[256], const char **error_r)
{
	char *ascii = NULL;
	size_t len;

	if (mx_has_non_ascii(domain)) {
		int rc = idn2_to_ascii_8z(domain, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) {
			*error_r = "invalid internationalised domain name";
			return -1;
		}
		domain = ascii;
	}
	len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	if (len > MX_NAME_MAX) {
		idn2_free(ascii);
		*error_r = "invalid domain name";
		return -1;
	}
	memcpy(out, domain, len);
	out[len] = '\0';
	idn2_free(ascii);
	if (!mx_hostname_check(out)) {
		*error_r = "invalid domain name";
		return -1;
	}
	return 0;
}

static struct mx_result *mx_result_new(const struct mx_lookup *l, size_t n)
{
	struct mx_result *res = xcalloc(1, sizeof(*res) + n * sizeof(res->hosts[0]));

	snprintf(res->domain, sizeof(res->domain), "%s", l->domain);
	return res;
}

static void mx_result_fail(struct mx_result *res, enum mx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mx_result_fail(struct mx_result *res, enum mx_status status, const char *fmt, ...)
{
	va_list ap;

	res->status = status;
	res->n = 0;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
}

static void mx_lookup_free(struct mx_lookup *l)
{
	dns_cancel(&l->mx_query);
	for (size_t i = 0; i < l->nex; i++) {
		for (int f = 0; f < 2; f++) {
			dns_cancel(&l->ex[i].slot[f].query);
			free(l->ex[i].slot[f].addrs);
		}
	}
	free(l->ex);
	if (l->defer != NULL)
		event_free(l->defer);
	free(l->early);
	free(l);
}

static void mx_deliver(struct mx_lookup *l, struct mx_result *res)
{
	l->cb(res, l->ctx);
	free(res);
	mx_lookup_free(l);
}

static void mx_deliver_early(evutil_socket_t fd, short what, void *arg)
{
	struct mx_lookup *l = arg;
	struct mx_result *res = l->early;

	l->early = NULL;
	mx_deliver(l, res);
}

static void mx_defer(struct mx_lookup *l, struct mx_result *res)
{
	l->early = res;
	l->defer = event_new(dns_resolver_base(l->dns), -1, 0, mx_deliver_early, l);
	event_active(l->defer, EV_TIMEOUT, 0);
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]" (RFC 5321 4.1.3). */
static void mx_literal(struct mx_lookup *l, const char *literal)
{
	struct mx_result *res = mx_result_new(l, 1);
	struct mx_host *h = &res->hosts[0];
	size_t len = strlen(literal);
	char addr[INET6_ADDRSTRLEN + 8];
	const char *a = addr;
	int family = AF_INET;

	snprintf(res->domain, sizeof(res->domain), "%s", literal);
	if (len < 3 || len - 2 >= sizeof(addr) || literal[len - 1] != ']') {
		mx_result_fail(res, MX_PERMFAIL, "invalid address literal");
		mx_defer(l, res);
		return;
	}
	memcpy(addr, literal + 1, len - 2);
	addr[len - 2] = '\0';
	if (strncasecmp(addr, "IPv6:", 5) == 0) {
		family = AF_INET6;
		a = addr + 5;
	}
	if ((family == AF_INET &&
	     inet_pton(AF_INET, a, &((struct sockaddr_in *)&h->addr)->sin_addr) != 1) ||
	    (family == AF_INET6 &&
	     inet_pton(AF_INET6, a, &((struct sockaddr_in6 *)&h->addr)->sin6_addr) != 1)) {
		mx_result_fail(res, MX_PERMFAIL, "invalid address literal");
		mx_defer(l, res);
		return;
	}
	h->addr.ss_family = (sa_family_t)family;
	h->family = family;
	snprintf(h->name, sizeof(h->name), "%s", literal);
	res->n = 1;
	res->status = MX_OK;
	mx_defer(l, res);
}

static bool mx_addr_listed(const struct mx_result *res, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < res->n; i++) {
		const struct sockaddr_storage *o = &res->hosts[i].addr;

		if (o->ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET && memcmp(&((const struct sockaddr_in *)o)->sin_addr,
		                                       &((const struct sockaddr_in *)ss)->sin_addr,
		                                       sizeof(struct in_addr)) == 0)
			return true;
		if (ss->ss_family == AF_INET6 &&
		    memcmp(&((const struct sockaddr_in6 *)o)->sin6_addr,
		           &((const struct sockaddr_in6 *)ss)->sin6_addr,
		           sizeof(struct in6_addr)) == 0)
			return true;
	}
	return false;
}

/* Why no exchange gave an address, once every lookup is back. */
static void mx_fail_no_hosts(struct mx_lookup *l, struct mx_result *res)
{
	bool temporary = false;

	for (size_t i = 0; i < l->nex; i++)
		for (int f = 0; f < 2; f++)
			if (l->ex[i].slot[f].status != DNS_NXDOMAIN &&
			    l->ex[i].slot[f].status != DNS_NODATA)
				temporary = true;
	if (!l->implicit)
		mx_result_fail(res, MX_TEMPFAIL, "no MX host of %s has an address%s", l->domain,
		               temporary ? " (DNS lookup failed)" : "");
	else if (temporary)
		mx_result_fail(res, MX_TEMPFAIL, "DNS lookup of the address of %s failed",
		               l->domain);
	else
		mx_result_fail(res, MX_PERMFAIL, "%s has no MX and no address records", l->domain);
}

static void mx_finish_hosts(struct mx_lookup *l)
{
	struct mx_result *res;
	size_t total = 0;

	for (size_t i = 0; i < l->nex; i++)
		total += l->ex[i].slot[0].n + l->ex[i].slot[1].n;
	res = mx_result_new(l, total);
	for (size_t i = 0; i < l->nex; i++) {
		for (int f = 0; f < 2; f++) {
			const struct mx_slot *s = &l->ex[i].slot[f];

			for (size_t j = 0; j < s->n; j++) {
				struct mx_host *h = &res->hosts[res->n];

				if (mx_addr_listed(res, &s->addrs[j]))
					continue;
				memcpy(h->name, l->ex[i].name, sizeof(h->name));
				h->pref = l->ex[i].pref;
				h->family = s->addrs[j].ss_family;
				h->addr = s->addrs[j];
				res->n++;
			}
		}
	}
	if (res->n > 0)
		res->status = MX_OK;
	else
		mx_fail_no_hosts(l, res);
	mx_deliver(l, res);
}

static void mx_on_addr(const struct dns_result *r, void *ctx)
{
	struct mx_slot *s = ctx;
	struct mx_lookup *l = s->lookup;

	s->query = NULL;
	s->status = r->status;
	if (r->status == DNS_OK) {
		s->addrs = xcalloc(r->n, sizeof(*s->addrs));
		for (size_t i = 0; i < r->n; i++) {
			const struct dns_addr *a = &r->records[i].u.addr;
			struct sockaddr_storage *ss = &s->addrs[i];

			ss->ss_family = (sa_family_t)a->family;
			if (a->family == AF_INET)
				((struct sockaddr_in *)ss)->sin_addr = a->u.v4;
			else
				((struct sockaddr_in6 *)ss)->sin6_addr = a->u.v6;
		}
		s->n = r->n;
	}
	if (--l->pending == 0)
		mx_finish_hosts(l);
}

/* Starts A and AAAA for every exchange at once. */
static void mx_resolve_exchanges(struct mx_lookup *l)
{
	static const enum dns_type types[2] = {DNS_TYPE_A, DNS_TYPE_AAAA};
	const char *error;

	l->pending = 1; /* held until every query is started */
	for (size_t i = 0; i < l->nex; i++) {
		for (int f = 0; f < 2; f++) {
			struct mx_slot *s = &l->ex[i].slot[f];

			s->lookup = l;
			s->query =
			    dns_resolve(l->dns, l->ex[i].name, types[f], mx_on_addr, s, &error);
			if (s->query != NULL)
				l->pending++;
			else
				s->status = DNS_SERVFAIL;
		}
	}
	if (--l->pending == 0)
		mx_finish_hosts(l);
}

static int mx_exchange_cmp(const void *a, const void *b)
{
	const struct mx_exchange *x = a, *y = b;

	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return x->key < y->key ? -1 : x->key > y->key;
}

/* Keeps the usable exchanges: not ".", a valid host name, each name once. */
static void mx_collect_exchanges(struct mx_lookup *l, const struct dns_result *r)
{
	l->ex = xcalloc(r->n, sizeof(*l->ex));
	for (size_t i = 0; i < r->n; i++) {
		struct mx_exchange *e = &l->ex[l->nex];
		bool dup = false;

		if (strlen(r->records[i].u.mx.exchange) >= sizeof(e->name))
			continue;
		strcpy(e->name, r->records[i].u.mx.exchange);
		if (!mx_hostname_check(e->name))
			continue;
		e->pref = r->records[i].u.mx.pref;
		for (size_t j = 0; j < l->nex && !dup; j++) {
			if (strcmp(l->ex[j].name, e->name) == 0) {
				dup = true;
				if (e->pref < l->ex[j].pref)
					l->ex[j].pref = e->pref;
			}
		}
		if (!dup) {
			e->key = mx_random(l);
			l->nex++;
		}
	}
	qsort(l->ex, l->nex, sizeof(*l->ex), mx_exchange_cmp);
	if (l->nex > MX_EXCHANGES_MAX)
		l->nex = MX_EXCHANGES_MAX;
}

static void mx_fail(struct mx_lookup *l, enum mx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void mx_fail(struct mx_lookup *l, enum mx_status status, const char *fmt, ...)
{
	struct mx_result *res = mx_result_new(l, 0);
	va_list ap;

	res->status = status;
	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
	mx_deliver(l, res);
}

static void mx_on_mx(const struct dns_result *r, void *ctx)
{
	struct mx_lookup *l = ctx;

	l->mx_query = NULL;
	switch (r->status) {
	case DNS_OK:
		/* RFC 7505: one MX whose exchange is the root.  Its preference
		 * should be 0; with another the root is still no host, so the
		 * answer is the same. */
		if (r->n == 1 && strcmp(r->records[0].u.mx.exchange, ".") == 0) {
			mx_fail(l, MX_PERMFAIL, "%s accepts no mail (null MX, RFC 7505)",
			        l->domain);
			return;
		}
		mx_collect_exchanges(l, r);
		if (l->nex == 0) {
			mx_fail(l, MX_TEMPFAIL, "%s has no usable MX host", l->domain);
			return;
		}
		break;
	case DNS_NODATA:
		l->implicit = true;
		l->ex = xcalloc(1, sizeof(*l->ex));
		l->nex = 1;
		memcpy(l->ex[0].name, l->domain, sizeof(l->ex[0].name));
		break;
	case DNS_NXDOMAIN:
		mx_fail(l, MX_PERMFAIL, "domain %s does not exist", l->domain);
		return;
	default:
		mx_fail(l, MX_TEMPFAIL, "DNS lookup of MX for %s failed: %s", l->domain,
		        r->error != NULL ? r->error : dns_status_str(r->status));
		return;
	}
	mx_resolve_exchanges(l);
}

struct mx_lookup *mx_lookup(struct dns_resolver *dns, const char *domain, uint64_t seed, mx_cb *cb,
                            void *ctx)
{
	struct mx_lookup *l = xcalloc(1, sizeof(*l));
	const char *error;

	l->dns = dns;
	l->cb = cb;
	l->ctx = ctx;
	l->rng = seed != 0 ? seed : mx_seed_random();
	if (domain[0] == '[') {
		mx_literal(l, domain);
		return l;
	}
	if (mx_domain_normalize(domain, l->domain, &error) < 0) {
		struct mx_result *res = mx_result_new(l, 0);

		snprintf(res->domain, sizeof(res->domain), "%.255s", domain);
		mx_result_fail(res, MX_PERMFAIL, "%s", error);
		mx_defer(l, res);
		return l;
	}
	l->mx_query = dns_resolve(dns, l->domain, DNS_TYPE_MX, mx_on_mx, l, &error);
	if (l->mx_query == NULL) {
		struct mx_result *res = mx_result_new(l, 0);

		mx_result_fail(res, MX_TEMPFAIL, "DNS lookup of MX for %s failed: %s", l->domain,
		               error);
		mx_defer(l, res);
	}
	return l;
}

void mx_cancel(struct mx_lookup **lp)
{
	if (*lp == NULL)
		return;
	mx_lookup_free(*lp);
	*lp = NULL;
}
