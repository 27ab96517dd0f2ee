/* Where to deliver mail for a domain: RFC 5321 5.1 with RFC 7505 null MX.
 *
 * mx_lookup() resolves the domain's MX records, orders them by preference
 * (random order among equal preferences), resolves A and AAAA for every
 * exchange in parallel, and hands back one ordered list of addresses to try.
 * Without MX records the domain itself is the exchange (implicit MX,
 * preference 0).  An address literal ("[192.0.2.1]", "[IPv6:2001:db8::1]")
 * is used as it is, without DNS.  Internationalised domains are converted to
 * A-labels (IDNA 2008, libidn2) first.
 *
 * Runs on the resolver's loop; see lib/dns.h for the threading rules. */
#ifndef KEEL_QUEUE_MX_H
#define KEEL_QUEUE_MX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dns_resolver;
struct mx_lookup;

enum mx_status {
	MX_OK,       /* at least one host */
	MX_TEMPFAIL, /* DNS failure or timeout, or no exchange has an address: retry later */
	MX_PERMFAIL, /* no such domain, null MX, invalid domain: bounce */
};

/* At most this many MX exchanges (the best ones) are resolved, so that a
 * hostile domain cannot make one delivery start hundreds of queries. */
#define MX_EXCHANGES_MAX 16

struct mx_host {
	/* The exchange in A-labels, lower case (the domain itself for an
	 * implicit MX; the literal as given for an address literal). */
	char name[256];
	unsigned pref;
	int family; /* AF_INET or AF_INET6 */
	/* Port 0: the caller sets the port it connects to. */
	struct sockaddr_storage addr;
};

struct mx_result {
	enum mx_status status;
	/* Why, for MX_TEMPFAIL and MX_PERMFAIL (fit for a log and a DSN);
	 * empty for MX_OK. */
	char error[256];
	/* The domain in A-labels, as looked up. */
	char domain[256];
	/* MX_OK: in the order to try: by preference, exchanges of equal
	 * preference shuffled; per exchange its IPv4 addresses, then its IPv6
	 * ones (IPv4 first, as large receivers are stricter with mail over
	 * IPv6).  An address already listed for a better exchange is not
	 * repeated. */
	size_t n;
	struct mx_host hosts[];
};

/* The result is valid only until the callback returns. */
typedef void mx_cb(const struct mx_result *result, void *ctx);

/* Starts the lookup.  cb runs exactly once, later, on the resolver's loop
 * (never inside this call, even for a literal or an invalid domain), unless
 * mx_cancel() comes first.  The lookup is freed when cb returns; the handle
 * must not be used after that.  seed fixes the shuffle of equal
 * preferences (for tests); 0 takes a random one. */
struct mx_lookup *mx_lookup(struct dns_resolver *dns, const char *domain, uint64_t seed, mx_cb *cb,
                            void *ctx);
/* Stops a lookup whose callback has not run yet: it never will.  Sets
 * *lookup to NULL. */
void mx_cancel(struct mx_lookup **lookup);

#endif
