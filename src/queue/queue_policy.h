/* The queue's policy texts, parsed: the retry schedule
 * (queue.retry_schedule) and the route table (delivery.routes, and the
 * relay host of delivery.relayhost).  No I/O; every function is safe on
 * any thread.
 *
 * Route table syntax (docs/queue.md): entries separated by commas, each
 * "PATTERN=ACTION [tls=require|may]":
 *   PATTERN  a domain ("example.com": that domain only), "*.example.com"
 *            (any subdomain, not the domain itself), or "*" (every domain)
 *   ACTION   "direct" (MX lookup), "reject" (bounce at once), or
 *            "relay:HOST:PORT" / "relay:[HOST]:PORT" / "relay:HOST" (port 25):
 *            an IP address in brackets is used as it is; a name (with or
 *            without brackets) is looked up as a domain: its MX records,
 *            else its own addresses.
 * The first matching entry in the order written wins, except that an exact
 * domain always beats a wildcard. */
#ifndef KEEL_QUEUE_QUEUE_POLICY_H
#define KEEL_QUEUE_QUEUE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define QUEUE_RETRY_STEPS_MAX 32

struct queue_retry {
	size_t n;
	time_t steps[QUEUE_RETRY_STEPS_MAX]; /* seconds, each > 0 */
};

/* "5m,10m,30m,1h,2h,4h" (durations as settings write them: 30s, 5m, 4h,
 * 2d, bare seconds; spaces allowed around commas).  Returns -1 with a
 * static *error_r on a bad or empty list. */
int queue_retry_parse(const char *text, struct queue_retry *r, const char **error_r);
/* The delay before the next attempt after attempt number attempts (1 for
 * the first attempt): step attempts-1, and after the last, the last step
 * again. */
time_t queue_retry_delay(const struct queue_retry *r, unsigned attempts);

enum queue_route_kind {
	QUEUE_ROUTE_DIRECT,
	QUEUE_ROUTE_RELAY,
	QUEUE_ROUTE_REJECT,
};

enum queue_tls {
	QUEUE_TLS_MAY,     /* STARTTLS when offered, no certificate check */
	QUEUE_TLS_REQUIRE, /* no delivery without STARTTLS (still no certificate check) */
};

struct queue_route {
	enum queue_route_kind kind;
	enum queue_tls tls;
	/* QUEUE_ROUTE_RELAY: the host as written without brackets, whether it
	 * was in brackets (no MX lookup), and the port. */
	char host[256];
	bool literal;
	unsigned port;
};

/* Parses "relay:"'s target ("[127.0.0.1]:2525", "smtp.example.com",
 * "[relay.example.com]:587"): also the syntax of delivery.relayhost. */
int queue_route_parse_host(const char *text, struct queue_route *route, const char **error_r);

/* Checks the whole table; error_r names the bad entry's problem. */
int queue_routes_validate(const char *table, const char **error_r);

/* Finds domain's route in table.  Returns 1 and fills route when an entry
 * matches, 0 when none does, -1 when the table does not parse (error_r). */
int queue_routes_lookup(const char *table, const char *domain, struct queue_route *route,
			const char **error_r);

#endif
