#include "lib/dns.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unbound-event.h>
#include <unbound.h>

#include "lib/xalloc.h"

#define DNS_HEADER_LEN     12
#define DNS_CLASS_IN       1
#define DNS_RCODE_NXDOMAIN 3
/* A name is at most 255 octets on the wire (RFC 1035 3.1). */
#define DNS_NAME_WIRE_MAX 255
/* In text every wire octet of a label takes at most 4 characters ("\DDD"):
 * 4 * 253 label octets + dots + NUL stays below this. */
#define DNS_NAME_TEXT_SIZE 1024
/* Compression pointers followed for one name: a legitimate name needs a
 * handful; the limit is a second guard beside the backward-only rule. */
#define DNS_NAME_HOPS_MAX 32
/* libunbound's sec argument to the event callback. */
#define DNS_UB_SEC_BOGUS 1

struct dns_resolver {
	struct event_base *base;
	struct ub_ctx *ub;
	unsigned timeout_msecs;
	struct dns_query *head; /* pending queries, so that free can cancel them */
};

struct dns_query {
	struct dns_resolver *resolver;
	struct dns_query *prev, *next;
	/* Fires on timeout, or is made active by libunbound's answer: either
	 * way the result is delivered from the loop, never from inside
	 * libunbound's stack or dns_resolve(). */
	struct event *ev;
	int ub_id;
	bool answered;
	int rcode, sec;
	unsigned char *pkt;
	size_t len;
	char *why_bogus;
	enum dns_type type;
	dns_cb *cb;
	void *ctx;
	char name[];
};

/* ---- wire format ---- */

static unsigned dns_get16(const unsigned char *p)
{
	return ((unsigned)p[0] << 8) | p[1];
}

static uint32_t dns_get32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static bool dns_char_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Appends one label in text (with a leading dot unless first). */
static int dns_label_append(char *out, size_t size, size_t *o, const unsigned char *label, size_t n)
{
	if (*o > 0) {
		if (*o + 1 >= size)
			return -1;
		out[(*o)++] = '.';
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = label[i];
		int w;

		if (dns_char_plain(c))
			w = snprintf(out + *o, size - *o, "%c", c);
		else if (c == '.' || c == '\\')
			w = snprintf(out + *o, size - *o, "\\%c", c);
		else
			w = snprintf(out + *o, size - *o, "\\%03u", c);
		if (w < 0 || (size_t)w >= size - *o)
			return -1;
		*o += (size_t)w;
	}
	return 0;
}

/* Reads the (possibly compressed) name at *pos into out (if not NULL) and
 * moves *pos past the name's bytes in place.  Pointers must point strictly
 * backwards, and the expanded name may not pass 255 octets: with both, no
 * input can loop or read out of bounds. */
static int dns_name_read(const unsigned char *pkt, size_t len, size_t *pos, char *out, size_t size)
{
	size_t p = *pos, end = 0, wire = 0, o = 0;
	unsigned hops = 0;

	for (;;) {
		unsigned c;

		if (p >= len)
			return -1;
		c = pkt[p];
		if ((c & 0xc0) == 0xc0) {
			size_t target;

			if (p + 1 >= len)
				return -1;
			target = ((size_t)(c & 0x3f) << 8) | pkt[p + 1];
			if (hops == 0)
				end = p + 2;
			if (target >= p || ++hops > DNS_NAME_HOPS_MAX)
				return -1;
			p = target;
			continue;
		}
		if ((c & 0xc0) != 0) /* extended label types (RFC 6891 6.2) */
			return -1;
		wire += c + 1;
		if (wire > DNS_NAME_WIRE_MAX || p + 1 + c > len)
			return -1;
		if (c == 0)
			break;
		if (out != NULL && dns_label_append(out, size, &o, pkt + p + 1, c) < 0)
			return -1;
		p += 1 + c;
	}
	if (hops == 0)
		end = p + 1;
	if (out != NULL) {
		if (o == 0)
			out[o++] = '.';
		out[o] = '\0';
	}
	*pos = end;
	return 0;
}

struct dns_rr {
	size_t owner; /* offset of the owner name */
	unsigned type, class;
	uint32_t ttl;
	size_t rdata, rdlen; /* offset and length */
};

static int dns_rr_read(const unsigned char *pkt, size_t len, size_t *pos, struct dns_rr *rr)
{
	rr->owner = *pos;
	if (dns_name_read(pkt, len, pos, NULL, 0) < 0 || len - *pos < 10)
		return -1;
	rr->type = dns_get16(pkt + *pos);
	rr->class = dns_get16(pkt + *pos + 2);
	rr->ttl = dns_get32(pkt + *pos + 4);
	rr->rdlen = dns_get16(pkt + *pos + 8);
	rr->rdata = *pos + 10;
	if (len - rr->rdata < rr->rdlen)
		return -1;
	*pos = rr->rdata + rr->rdlen;
	return 0;
}

/* Growing storage for the parsed records and their name texts.  Names are
 * kept as offsets while the text buffer may still move. */
struct dns_parse {
	struct dns_result *res;
	size_t cap;
	size_t *name_off;
	size_t names_len, names_cap;
};

static int dns_parse_mx(struct dns_parse *ps, const unsigned char *pkt, size_t len,
                        const struct dns_rr *rr, size_t idx)
{
	char text[DNS_NAME_TEXT_SIZE];
	size_t pos = rr->rdata + 2, tlen;

	if (rr->rdlen < 3 || dns_name_read(pkt, len, &pos, text, sizeof(text)) < 0 ||
	    pos != rr->rdata + rr->rdlen)
		return -1;
	ps->res->records[idx].u.mx.pref = dns_get16(pkt + rr->rdata);
	tlen = strlen(text) + 1;
	if (ps->names_len + tlen > ps->names_cap) {
		ps->names_cap = (ps->names_len + tlen) * 2;
		ps->res->names_ = xrealloc(ps->res->names_, ps->names_cap);
	}
	memcpy(ps->res->names_ + ps->names_len, text, tlen);
	ps->name_off[idx] = ps->names_len;
	ps->names_len += tlen;
	return 0;
}

static int dns_parse_addr(struct dns_record *rec, int family)
{
	struct dns_addr *a = &rec->u.addr;

	if (rec->rdlen != (family == AF_INET ? 4u : 16u))
		return -1;
	a->family = family;
	if (family == AF_INET)
		memcpy(&a->u.v4, rec->rdata, 4);
	else
		memcpy(&a->u.v6, rec->rdata, 16);
	inet_ntop(family, &a->u, a->text, sizeof(a->text));
	return 0;
}

static int dns_parse_record(struct dns_parse *ps, const unsigned char *pkt, size_t len,
                            const struct dns_rr *rr)
{
	struct dns_result *res = ps->res;
	struct dns_record *rec;

	if (res->n == ps->cap) {
		ps->cap = ps->cap == 0 ? 4 : ps->cap * 2;
		res->records = xrealloc(res->records, ps->cap * sizeof(*res->records));
		ps->name_off = xrealloc(ps->name_off, ps->cap * sizeof(*ps->name_off));
	}
	rec = &res->records[res->n];
	memset(rec, 0, sizeof(*rec));
	rec->ttl = rr->ttl;
	rec->rdata = pkt + rr->rdata;
	rec->rdlen = rr->rdlen;
	switch (rr->type) {
	case DNS_TYPE_MX:
		if (dns_parse_mx(ps, pkt, len, rr, res->n) < 0)
			return -1;
		break;
	case DNS_TYPE_A:
		if (dns_parse_addr(rec, AF_INET) < 0)
			return -1;
		break;
	case DNS_TYPE_AAAA:
		if (dns_parse_addr(rec, AF_INET6) < 0)
			return -1;
		break;
	default:
		break;
	}
	res->n++;
	return 0;
}

/* The negative TTL of RFC 2308: the SOA's own TTL capped by its MINIMUM. */
static int dns_parse_negative_ttl(const unsigned char *pkt, size_t len, size_t pos,
                                  unsigned nscount, uint32_t *ttl_r)
{
	*ttl_r = 0;
	for (unsigned i = 0; i < nscount; i++) {
		struct dns_rr rr;
		size_t p;
		uint32_t minimum;

		if (dns_rr_read(pkt, len, &pos, &rr) < 0)
			return -1;
		if (rr.type != DNS_TYPE_SOA || rr.class != DNS_CLASS_IN)
			continue;
		p = rr.rdata;
		if (dns_name_read(pkt, len, &p, NULL, 0) < 0 ||
		    dns_name_read(pkt, len, &p, NULL, 0) < 0 || rr.rdata + rr.rdlen < p + 20 ||
		    p + 20 > len)
			return -1;
		minimum = dns_get32(pkt + p + 16);
		*ttl_r = rr.ttl < minimum ? rr.ttl : minimum;
		return 0;
	}
	return 0;
}

static int dns_parse_answers(struct dns_parse *ps, const unsigned char *pkt, size_t len,
                             size_t *pos, unsigned ancount, enum dns_type type)
{
	bool any = false;

	for (unsigned i = 0; i < ancount; i++) {
		struct dns_rr rr;

		if (dns_rr_read(pkt, len, pos, &rr) < 0)
			return -1;
		if (rr.class != DNS_CLASS_IN || (rr.type != type && rr.type != DNS_TYPE_CNAME))
			continue;
		if (!any || rr.ttl < ps->res->ttl)
			ps->res->ttl = rr.ttl;
		any = true;
		if (rr.type == type && dns_parse_record(ps, pkt, len, &rr) < 0)
			return -1;
	}
	return 0;
}

static int dns_parse_sections(struct dns_parse *ps, const unsigned char *pkt, size_t len,
                              enum dns_type type)
{
	struct dns_result *res = ps->res;
	unsigned rcode, qdcount, ancount, nscount;
	size_t pos = DNS_HEADER_LEN;

	if (len < DNS_HEADER_LEN)
		return -1;
	rcode = pkt[3] & 0x0f;
	qdcount = dns_get16(pkt + 4);
	ancount = dns_get16(pkt + 6);
	nscount = dns_get16(pkt + 8);
	if (rcode != 0 && rcode != DNS_RCODE_NXDOMAIN) {
		res->status = DNS_SERVFAIL;
		res->error = "the server reported a failure";
		return 0;
	}
	for (unsigned i = 0; i < qdcount; i++) {
		if (dns_name_read(pkt, len, &pos, NULL, 0) < 0 || len - pos < 4)
			return -1;
		pos += 4;
	}
	if (dns_parse_answers(ps, pkt, len, &pos, ancount, type) < 0)
		return -1;
	if (rcode == 0 && res->n > 0) {
		res->status = DNS_OK;
		return 0;
	}
	res->status = rcode == DNS_RCODE_NXDOMAIN ? DNS_NXDOMAIN : DNS_NODATA;
	if (res->status == DNS_NXDOMAIN)
		res->error = "no such domain";
	res->n = 0;
	return dns_parse_negative_ttl(pkt, len, pos, nscount, &res->ttl);
}

int dns_packet_parse(const unsigned char *pkt, size_t len, enum dns_type type,
                     struct dns_result *res, const char **error_r)
{
	struct dns_parse ps = {.res = res};
	const char *name = res->name;

	memset(res, 0, sizeof(*res));
	res->name = name;
	res->type = (int)type;
	if (dns_parse_sections(&ps, pkt, len, type) < 0) {
		free(ps.name_off);
		dns_result_deinit(res);
		res->name = name;
		res->type = (int)type;
		res->status = DNS_SERVFAIL;
		res->error = "malformed answer";
		*error_r = res->error;
		return -1;
	}
	if (type == DNS_TYPE_MX && ps.name_off != NULL) {
		for (size_t i = 0; i < res->n; i++)
			res->records[i].u.mx.exchange = res->names_ + ps.name_off[i];
	}
	free(ps.name_off);
	return 0;
}

void dns_result_deinit(struct dns_result *res)
{
	free(res->records);
	free(res->names_);
	memset(res, 0, sizeof(*res));
}

const char *dns_status_str(enum dns_status status)
{
	switch (status) {
	case DNS_OK:
		return "ok";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NODATA:
		return "nodata";
	case DNS_SERVFAIL:
		return "servfail";
	case DNS_TIMEOUT:
		return "timeout";
	case DNS_BOGUS:
		return "bogus";
	}
	return "unknown";
}

/* ---- resolver ---- */

static bool dns_port_valid(const char *s)
{
	char *end;
	long port;

	if (*s < '0' || *s > '9')
		return false;
	port = strtol(s, &end, 10);
	return *end == '\0' && port > 0 && port <= 65535;
}

/* Turns the forms dns_resolver_new() accepts into libunbound's "ADDR@PORT". */
static char *dns_forwarder_parse(const char *s, const char **error_r)
{
	char *addr = xstrdup(s[0] == '[' ? s + 1 : s), *port = NULL, *ret = NULL, *sep;
	unsigned char buf[sizeof(struct in6_addr)];
	bool ok = true;

	if (s[0] == '[') {
		sep = strchr(addr, ']');
		if (sep == NULL || (sep[1] != '\0' && sep[1] != ':' && sep[1] != '@'))
			ok = false;
		else if (sep[1] != '\0')
			port = sep + 2;
	} else {
		sep = strchr(addr, '@');
		if (sep == NULL && (sep = strchr(addr, ':')) != NULL &&
		    strchr(sep + 1, ':') != NULL)
			sep = NULL; /* a bare IPv6 address */
		if (sep != NULL)
			port = sep + 1;
	}
	if (sep != NULL)
		*sep = '\0';
	if (ok && (inet_pton(AF_INET, addr, buf) == 1 || inet_pton(AF_INET6, addr, buf) == 1) &&
	    (port == NULL || dns_port_valid(port)))
		ret = port == NULL ? xstrdup(addr) : xasprintf("%s@%s", addr, port);
	else
		*error_r = "dns: forwarder must be ADDR, ADDR@PORT, IPV4:PORT or [IPV6]:PORT";
	free(addr);
	return ret;
}

static int dns_ub_configure(struct ub_ctx *ub, const char *forwarder, const char **error_r)
{
	char *fwd;
	int r;

	if (forwarder == NULL) {
		r = ub_ctx_resolvconf(ub, NULL);
		if (r != 0) {
			*error_r = "dns: cannot read /etc/resolv.conf";
			return -1;
		}
		return 0;
	}
	fwd = dns_forwarder_parse(forwarder, error_r);
	if (fwd == NULL)
		return -1;
	r = ub_ctx_set_fwd(ub, fwd);
	free(fwd);
	/* libunbound answers the special-use "test." (RFC 6761) NXDOMAIN itself;
	 * a forwarder chosen by hand is a lab or test DNS that serves it.  (The
	 * "local-zone: test. nodefault" option is ignored by libunbound 1.17;
	 * removing the zone works, and finalises the context: it comes last.) */
	if (r == 0)
		r = ub_ctx_zone_remove(ub, "test.");
	if (r != 0) {
		*error_r = ub_strerror(r);
		return -1;
	}
	return 0;
}

struct dns_resolver *dns_resolver_new(struct event_base *base, const char *forwarder,
                                      const char **error_r)
{
	struct dns_resolver *resolver;
	struct ub_ctx *ub = ub_ctx_create_event(base);

	if (ub == NULL) {
		*error_r = "dns: cannot create a libunbound context";
		return NULL;
	}
	if (dns_ub_configure(ub, forwarder, error_r) < 0) {
		ub_ctx_delete(ub);
		return NULL;
	}
	resolver = xcalloc(1, sizeof(*resolver));
	resolver->base = base;
	resolver->ub = ub;
	resolver->timeout_msecs = DNS_TIMEOUT_MSECS_DEFAULT;
	return resolver;
}

void dns_resolver_free(struct dns_resolver **resolverp)
{
	struct dns_resolver *resolver = *resolverp;

	if (resolver == NULL)
		return;
	while (resolver->head != NULL) {
		struct dns_query *q = resolver->head;
		dns_cancel(&q);
	}
	ub_ctx_delete(resolver->ub);
	free(resolver);
	*resolverp = NULL;
}

void dns_resolver_set_timeout(struct dns_resolver *resolver, unsigned msecs)
{
	resolver->timeout_msecs = msecs;
}

struct event_base *dns_resolver_base(struct dns_resolver *resolver)
{
	return resolver->base;
}

static void dns_query_unlink(struct dns_query *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->resolver->head = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void dns_query_free(struct dns_query *q)
{
	event_free(q->ev);
	free(q->pkt);
	free(q->why_bogus);
	free(q);
}

/* libunbound's callback: keep what it says (its buffers are its own) and let
 * the loop deliver it. */
static void dns_ub_done(void *arg, int rcode, void *packet, int len, int sec, char *why_bogus,
                        int was_ratelimited)
{
	struct dns_query *q = arg;

	q->answered = true;
	q->rcode = rcode;
	q->sec = sec;
	if (rcode == 0 && packet != NULL && len > 0) {
		q->len = (size_t)len;
		q->pkt = xmalloc(q->len);
		memcpy(q->pkt, packet, q->len);
	}
	if (why_bogus != NULL)
		q->why_bogus = xstrdup(why_bogus);
	event_del(q->ev);
	event_active(q->ev, EV_TIMEOUT, 0);
}

static void dns_query_result(struct dns_query *q, struct dns_result *res)
{
	const char *error;

	memset(res, 0, sizeof(*res));
	res->name = q->name;
	res->type = (int)q->type;
	if (!q->answered) {
		res->status = DNS_TIMEOUT;
		res->error = "timed out";
	} else if (q->sec == DNS_UB_SEC_BOGUS) {
		res->status = DNS_BOGUS;
		res->error = q->why_bogus != NULL ? q->why_bogus : "DNSSEC validation failed";
	} else if (q->rcode == DNS_RCODE_NXDOMAIN) {
		res->status = DNS_NXDOMAIN;
		res->error = "no such domain";
	} else if (q->rcode != 0 || q->pkt == NULL) {
		res->status = DNS_SERVFAIL;
		res->error = "server failure";
	} else {
		(void)dns_packet_parse(q->pkt, q->len, q->type, res, &error);
	}
}

static void dns_query_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;
	struct dns_result res;

	if (!q->answered)
		ub_cancel(q->resolver->ub, q->ub_id);
	dns_query_result(q, &res);
	/* Off the resolver's list before the callback, which may free it. */
	dns_query_unlink(q);
	q->cb(&res, q->ctx);
	dns_result_deinit(&res);
	dns_query_free(q);
}

struct dns_query *dns_resolve(struct dns_resolver *resolver, const char *name, enum dns_type type,
                              dns_cb *cb, void *ctx, const char **error_r)
{
	size_t len = strlen(name);
	struct dns_query *q;
	struct timeval tv;
	int r;

	if (len == 0 || len > 254 || (len == 254 && name[len - 1] != '.')) {
		*error_r = "dns: invalid name";
		return NULL;
	}
	q = xcalloc(1, sizeof(*q) + len + 1);
	memcpy(q->name, name, len + 1);
	q->resolver = resolver;
	q->type = type;
	q->cb = cb;
	q->ctx = ctx;
	q->ev = event_new(resolver->base, -1, 0, dns_query_deliver, q);
	tv.tv_sec = resolver->timeout_msecs / 1000;
	tv.tv_usec = (resolver->timeout_msecs % 1000) * 1000;
	event_add(q->ev, &tv);
	q->next = resolver->head;
	if (q->next != NULL)
		q->next->prev = q;
	resolver->head = q;
	/* May call dns_ub_done() before returning (cached or local data). */
	r = ub_resolve_event(resolver->ub, name, (int)type, DNS_CLASS_IN, q, dns_ub_done,
	                     &q->ub_id);
	if (r != 0) {
		*error_r = ub_strerror(r);
		dns_query_unlink(q);
		dns_query_free(q);
		return NULL;
	}
	return q;
}

void dns_cancel(struct dns_query **qp)
{
	struct dns_query *q = *qp;

	if (q == NULL)
		return;
	if (!q->answered)
		ub_cancel(q->resolver->ub, q->ub_id);
	dns_query_unlink(q);
	dns_query_free(q);
	*qp = NULL;
}
