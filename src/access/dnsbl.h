/* DNS blacklists and the sender domain check (docs/abuse.md, "DNS
 * blacklists").
 *
 * dnsbl.zones lists zones, each "zone[=reject|mark]" (reject when no action
 * is given).  At connect, every zone is asked at once for the client's
 * address in reverse form (RFC 5782: 2.0.0.127.ZONE for 127.0.0.2, 32
 * nibbles for IPv6) under dnsbl.timeout; an A record in 127.0.0.0/8 (but
 * 127.255.255.0/24, the lists' own error codes) means listed.  An
 * unanswered or failed query means not listed (logged).  Answers, listed or
 * not, are kept for their TTL (at most a day) in one bounded cache per
 * worker (DNSBL_CACHE_SLOTS, direct-mapped: a new answer replaces the one
 * in its slot).
 *
 * The sender check asks for the MX, A and AAAA records of a domain at once.
 *
 * Queries go through one resolver per loop thread (src/lib/dns.h, honouring
 * dns.resolver); a check and its callback belong to the thread that started
 * it.  dnsbl_loop_deinit() frees that thread's resolver before its loop
 * goes. */
#ifndef KEEL_ACCESS_DNSBL_H
#define KEEL_ACCESS_DNSBL_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct dnsbl_check;

#define DNSBL_ZONES_MAX 16
#define DNSBL_CACHE_SLOTS 4096

struct dnsbl_zone {
	char name[254];
	bool reject; /* else mark */
};

/* Parses a dnsbl.zones value into at most DNSBL_ZONES_MAX zones.  -1 with
 * *error_r (static text) on a bad entry. */
int dnsbl_zones_parse(const char *text, struct dnsbl_zone *zones, size_t *n_r,
		      const char **error_r);
/* The name to ask for ip (text) in zone; -1 if ip is not an address or the
 * name is too long. */
int dnsbl_query_name(const char *ip, const char *zone, char *buf, size_t size);

struct dnsbl_result {
	bool rejected;
	char zone[254];  /* the first reject zone that lists the client */
	char marks[512]; /* mark zones that list it, comma-separated, or "" */
};
typedef void dnsbl_cb(const struct dnsbl_result *result, void *ctx);

/* Starts checking ip against dnsbl.zones on base's loop (the calling
 * thread's).  NULL when there is nothing to check (no zones, a bad value:
 * logged, or ip not an address); else cb runs exactly once, later, on this
 * loop, unless the check is cancelled first. */
struct dnsbl_check *dnsbl_check_start(struct event_base *base, const char *ip, dnsbl_cb *cb,
				      void *ctx);
/* Cancels a check whose callback has not run; sets *check to NULL. */
void dnsbl_check_cancel(struct dnsbl_check **check);

enum dnsbl_sender {
	DNSBL_SENDER_OK,      /* an MX (not a null MX), A or AAAA record */
	DNSBL_SENDER_NONE,    /* none of them: the domain or its records do not exist */
	DNSBL_SENDER_UNKNOWN, /* no record and a lookup failed or timed out */
};
typedef void dnsbl_sender_cb(enum dnsbl_sender verdict, void *ctx);
/* Starts the sender domain check of domain; the same rules as
 * dnsbl_check_start (NULL: domain not a valid name). */
struct dnsbl_check *dnsbl_sender_start(struct event_base *base, const char *domain,
				       dnsbl_sender_cb *cb, void *ctx);

/* Frees the calling loop thread's resolver (every check on it must be over
 * or cancelled). */
void dnsbl_loop_deinit(void);
/* Empties the cache (tests). */
void dnsbl_cache_clear(void);

#endif
