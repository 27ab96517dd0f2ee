/* Asynchronous DNS lookups on a libevent loop, through libunbound.
 *
 * A resolver belongs to one event_base (one loop thread): create one per
 * loop, and use it and its queries only on the thread that runs that base.
 * libunbound runs inside the base itself (ub_ctx_create_event): no helper
 * thread, no helper process, no locks on the lookup path.
 *
 * Callbacks never run inside the call that started the query: a result is
 * always delivered from the loop, later.  This holds even for answers that
 * libunbound has at hand at once (cache, local data). */
#ifndef KEEL_LIB_DNS_H
#define KEEL_LIB_DNS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct dns_resolver;
struct dns_query;

enum dns_status {
	DNS_OK,       /* one or more records of the type asked for */
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_NODATA,   /* the name exists but has no record of that type */
	DNS_SERVFAIL, /* server failure, refusal, or an answer that does not parse */
	DNS_TIMEOUT,  /* no answer within the resolver's timeout */
	DNS_BOGUS,    /* DNSSEC validation failed (only with a trust anchor) */
};

/* Record types in host order, as on the wire. */
enum dns_type {
	DNS_TYPE_A = 1,
	DNS_TYPE_CNAME = 5,
	DNS_TYPE_SOA = 6,
	DNS_TYPE_MX = 15,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_TLSA = 52,
};

/* Default per-query timeout.  libunbound keeps retrying a silent server for
 * much longer than a queue runner should wait. */
#define DNS_TIMEOUT_MSECS_DEFAULT 10000

struct dns_mx {
	unsigned pref;
	/* In text, without the final dot; "." for the root (an RFC 7505 null
	 * MX).  Bytes other than letters, digits, '-' and '_' are escaped as
	 * \DDD, and '.' or '\' inside a label as "\." and "\\". */
	const char *exchange;
};

struct dns_addr {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} u;
	char text[INET6_ADDRSTRLEN];
};

struct dns_record {
	uint32_t ttl;
	/* The raw RDATA (e.g. for TLSA), inside the answer packet. */
	const unsigned char *rdata;
	size_t rdlen;
	/* Filled for MX, A and AAAA only. */
	union {
		struct dns_mx mx;
		struct dns_addr addr;
	} u;
};

struct dns_result {
	enum dns_status status;
	const char *name; /* as asked */
	int type;
	/* How long the result may be kept: the smallest TTL of the answer's
	 * records (the CNAME chain included); for NXDOMAIN and NODATA the
	 * negative TTL from the SOA (RFC 2308), or 0 without one. */
	uint32_t ttl;
	/* Detail for anything but DNS_OK and DNS_NODATA, else NULL. */
	const char *error;
	/* The records of the type asked for (DNS_OK only), in answer order. */
	size_t n;
	struct dns_record *records;
	/* Private to the parser: the text of the names the records point at. */
	char *names_;
};

/* The result and everything it points to are valid only until the callback
 * returns.  The query is over and freed before the callback runs, so the
 * callback may start new queries, cancel others, or free the resolver. */
typedef void dns_cb(const struct dns_result *result, void *ctx);

/* forwarder: "ADDR", "ADDR@PORT", "IPV4:PORT" or "[IPV6]:PORT": every query
 * goes to that server (which then also answers for the special-use name
 * "test.", which libunbound would otherwise answer NXDOMAIN itself).  NULL:
 * the servers of /etc/resolv.conf.  Returns NULL with error_r set on a bad
 * forwarder or a libunbound failure.  Must be freed before base. */
struct dns_resolver *dns_resolver_new(struct event_base *base, const char *forwarder,
                                      const char **error_r);
/* Cancels every pending query (their callbacks never run) and frees. */
void dns_resolver_free(struct dns_resolver **resolver);
/* Applies to queries started afterwards. */
void dns_resolver_set_timeout(struct dns_resolver *resolver, unsigned msecs);
struct event_base *dns_resolver_base(struct dns_resolver *resolver);

/* Looks up name (text, with or without the final dot) for type in class IN.
 * cb runs exactly once, later, on the resolver's loop, unless the query is
 * cancelled first.  Returns NULL with error_r set if the query cannot start
 * (bad name, libunbound failure); cb then never runs. */
struct dns_query *dns_resolve(struct dns_resolver *resolver, const char *name, enum dns_type type,
                              dns_cb *cb, void *ctx, const char **error_r);
/* Cancels a pending query: its callback never runs.  Sets *query to NULL.
 * Only for queries whose callback has not started. */
void dns_cancel(struct dns_query **query);

/* Parses a DNS response in wire format: status, TTL and the answer records
 * of type (MX, A and AAAA decoded).  Names are decompressed with bounds
 * checks, backward-only pointers and a hop limit, so any input is safe.
 * result->name is left as it was.  Returns 0, or -1 with error_r set (the
 * result is then DNS_SERVFAIL with no records).  Release the result with
 * dns_result_deinit() either way.  Used by dns_resolve(); public for tests
 * and fuzzing. */
int dns_packet_parse(const unsigned char *pkt, size_t len, enum dns_type type,
                     struct dns_result *result, const char **error_r);
void dns_result_deinit(struct dns_result *result);

const char *dns_status_str(enum dns_status status);

#endif
