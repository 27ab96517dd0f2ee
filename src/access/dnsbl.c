#include "access/dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/dns.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"
#include "store/store.h"

#define DNSBL_TTL_MAX 86400
#define DNSBL_QUERIES_MAX DNSBL_ZONES_MAX

/* ---- zones and names ------------------------------------------------------ */

static bool dnsbl_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 253 || name[0] == '.' || name[len - 1] == '.')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return false;
	return strstr(name, "..") == NULL;
}

int dnsbl_zones_parse(const char *text, struct dnsbl_zone *zones, size_t *n_r,
		      const char **error_r)
{
	char *copy = xstrdup(text), *save = NULL;
	int ret = 0;

	*n_r = 0;
	for (char *item = strtok_r(copy, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq, *end;
		struct dnsbl_zone z = { .reject = true };

		while (isspace((unsigned char)*item))
			item++;
		end = item + strlen(item);
		while (end > item && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*item == '\0')
			continue;
		if ((eq = strchr(item, '=')) != NULL) {
			*eq = '\0';
			if (strcmp(eq + 1, "mark") == 0) {
				z.reject = false;
			} else if (strcmp(eq + 1, "reject") != 0) {
				*error_r = "dnsbl.zones: the action after = must be reject or mark";
				ret = -1;
				break;
			}
		}
		if (!dnsbl_name_valid(item)) {
			*error_r = "dnsbl.zones: a zone is not a valid domain name";
			ret = -1;
			break;
		}
		if (*n_r == DNSBL_ZONES_MAX) {
			*error_r = "dnsbl.zones: more than 16 zones";
			ret = -1;
			break;
		}
		snprintf(z.name, sizeof(z.name), "%s", item);
		zones[(*n_r)++] = z;
	}
	free(copy);
	return ret;
}

int dnsbl_query_name(const char *ip, const char *zone, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char a[16];
	char rev[80];
	size_t n = 0;
	int len;

	if (inet_pton(AF_INET, ip, a) == 1) {
		len = snprintf(buf, size, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
		return len < 0 || (size_t)len >= size || len > 253 ? -1 : 0;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return -1;
	for (int i = 15; i >= 0; i--) {
		rev[n++] = hex[a[i] & 0xf];
		rev[n++] = '.';
		rev[n++] = hex[a[i] >> 4];
		rev[n++] = '.';
	}
	rev[n] = '\0';
	len = snprintf(buf, size, "%s%s", rev, zone);
	return len < 0 || (size_t)len >= size || len > 253 ? -1 : 0;
}

/* ---- the cache ------------------------------------------------------------- */

struct dnsbl_cached {
	char name[254];
	bool listed;
	time_t expires;
};

static pthread_mutex_t dnsbl_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dnsbl_cached dnsbl_cache[DNSBL_CACHE_SLOTS];

static struct dnsbl_cached *dnsbl_cache_slot(const char *name)
{
	uint32_t h = 2166136261u;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)tolower((unsigned char)*p)) * 16777619u;
	return &dnsbl_cache[h % DNSBL_CACHE_SLOTS];
}

/* 1 listed, 0 not listed, -1 not known. */
static int dnsbl_cache_get(const char *name, time_t now)
{
	struct dnsbl_cached *c;
	int ret = -1;

	pthread_mutex_lock(&dnsbl_cache_lock);
	c = dnsbl_cache_slot(name);
	if (c->expires > now && strcasecmp(c->name, name) == 0)
		ret = c->listed ? 1 : 0;
	pthread_mutex_unlock(&dnsbl_cache_lock);
	return ret;
}

static void dnsbl_cache_put(const char *name, bool listed, uint32_t ttl, time_t now)
{
	struct dnsbl_cached *c;

	if (ttl == 0)
		return;
	pthread_mutex_lock(&dnsbl_cache_lock);
	c = dnsbl_cache_slot(name);
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->listed = listed;
	c->expires = now + (ttl > DNSBL_TTL_MAX ? DNSBL_TTL_MAX : ttl);
	pthread_mutex_unlock(&dnsbl_cache_lock);
}

void dnsbl_cache_clear(void)
{
	pthread_mutex_lock(&dnsbl_cache_lock);
	memset(dnsbl_cache, 0, sizeof(dnsbl_cache));
	pthread_mutex_unlock(&dnsbl_cache_lock);
}

/* ---- the loop's resolver ---------------------------------------------------- */

/* A resolver and the queries started on it and not answered yet.  When
 * dns.resolver changes, the current one retires: new queries go to a new
 * resolver at once, and the retired one is freed once its queries are done
 * (never from inside its own callback: the next check, or deinit, frees). */
struct dnsbl_res {
	struct dns_resolver *res;
	char fwd[STORE_VALUE_MAX + 1];
	unsigned pending;
	struct dnsbl_res *next; /* retired list */
};

struct dnsbl_loop {
	struct event_base *base;
	struct dnsbl_res *cur;
	struct dnsbl_res *retired;
};

static __thread struct dnsbl_loop *dnsbl_loop;

static void dnsbl_res_free(struct dnsbl_res *r)
{
	dns_resolver_free(&r->res);
	free(r);
}

/* The resolver for the current dns.resolver. */
static struct dnsbl_res *dnsbl_resolver(struct event_base *base)
{
	struct dnsbl_loop *l = dnsbl_loop;
	char fwd[STORE_VALUE_MAX + 1];
	const char *err;

	settings_get("dns.resolver", fwd, sizeof(fwd));
	if (l == NULL) {
		l = dnsbl_loop = xcalloc(1, sizeof(*l));
		l->base = base;
	}
	for (struct dnsbl_res **rp = &l->retired; *rp != NULL;) {
		struct dnsbl_res *r = *rp;
		if (r->pending == 0) {
			*rp = r->next;
			dnsbl_res_free(r);
		} else {
			rp = &r->next;
		}
	}
	if (l->cur != NULL && strcmp(l->cur->fwd, fwd) != 0) {
		if (l->cur->pending == 0) {
			dnsbl_res_free(l->cur);
		} else {
			l->cur->next = l->retired;
			l->retired = l->cur;
		}
		l->cur = NULL;
	}
	if (l->cur == NULL) {
		struct dns_resolver *res = dns_resolver_new(base, fwd[0] != '\0' ? fwd : NULL, &err);
		if (res == NULL) {
			log_error("access", "event=bad_setting key=dns.resolver error=\"%s\"", err);
			return NULL;
		}
		l->cur = xcalloc(1, sizeof(*l->cur));
		l->cur->res = res;
		snprintf(l->cur->fwd, sizeof(l->cur->fwd), "%s", fwd);
	}
	dns_resolver_set_timeout(l->cur->res, (unsigned)settings_get_int("dnsbl.timeout") * 1000);
	return l->cur;
}

void dnsbl_loop_deinit(void)
{
	if (dnsbl_loop == NULL)
		return;
	while (dnsbl_loop->retired != NULL) {
		struct dnsbl_res *r = dnsbl_loop->retired;
		dnsbl_loop->retired = r->next;
		dnsbl_res_free(r);
	}
	if (dnsbl_loop->cur != NULL)
		dnsbl_res_free(dnsbl_loop->cur);
	free(dnsbl_loop);
	dnsbl_loop = NULL;
}

/* ---- checks ----------------------------------------------------------------- */

struct dnsbl_query {
	struct dnsbl_check *check;
	struct dns_query *q;
	struct dnsbl_res *res; /* q's resolver, while q is pending */
	char name[254];
	enum dns_type type;
	bool reject;  /* dnsbl: the zone's action */
	size_t zone;  /* dnsbl: index in zones */
	int listed;   /* dnsbl: 1, 0, or -1 not yet */
	enum dns_status status;
};

struct dnsbl_check {
	bool sender;
	dnsbl_cb *cb;
	dnsbl_sender_cb *sender_cb;
	void *ctx;
	struct event *done_ev;
	char ip[64];
	struct dnsbl_zone zones[DNSBL_ZONES_MAX];
	size_t n;
	unsigned pending;
	struct dnsbl_query queries[DNSBL_QUERIES_MAX];
};

static void dnsbl_check_free(struct dnsbl_check *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->queries[i].q != NULL) {
			dns_cancel(&c->queries[i].q);
			c->queries[i].res->pending--;
		}
	}
	if (c->done_ev != NULL)
		event_free(c->done_ev);
	free(c);
}

static void dnsbl_finish_list(struct dnsbl_check *c)
{
	struct dnsbl_result r = { 0 };
	size_t len = 0;

	for (size_t i = 0; i < c->n; i++) {
		const struct dnsbl_query *q = &c->queries[i];
		if (q->listed != 1)
			continue;
		if (q->reject && !r.rejected) {
			r.rejected = true;
			snprintf(r.zone, sizeof(r.zone), "%s", c->zones[q->zone].name);
		} else if (!q->reject && len + strlen(c->zones[q->zone].name) + 2 < sizeof(r.marks)) {
			len += (size_t)snprintf(r.marks + len, sizeof(r.marks) - len, "%s%s",
						len > 0 ? "," : "", c->zones[q->zone].name);
		}
	}
	c->cb(&r, c->ctx);
}

static void dnsbl_finish_sender(struct dnsbl_check *c)
{
	enum dnsbl_sender v = DNSBL_SENDER_NONE;

	for (size_t i = 0; i < c->n; i++) {
		if (c->queries[i].listed == 1) {
			v = DNSBL_SENDER_OK;
			break;
		}
		if (c->queries[i].status != DNS_NXDOMAIN && c->queries[i].status != DNS_NODATA &&
		    c->queries[i].status != DNS_OK)
			v = DNSBL_SENDER_UNKNOWN;
	}
	c->sender_cb(v, c->ctx);
}

static void dnsbl_finish(struct dnsbl_check *c)
{
	if (c->sender)
		dnsbl_finish_sender(c);
	else
		dnsbl_finish_list(c);
	dnsbl_check_free(c);
}

static void dnsbl_done_ev(evutil_socket_t fd, short what, void *arg)
{
	dnsbl_finish(arg);
}

/* An A record in 127/8 but the lists' error codes in 127.255.255/24. */
static bool dnsbl_listed(const struct dns_result *res)
{
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++) {
		const struct dns_addr *a = &res->records[i].u.addr;
		uint32_t v;

		if (a->family != AF_INET)
			continue;
		v = ntohl(a->u.v4.s_addr);
		if ((v >> 24) == 127 && (v >> 8) != 0x7fffff)
			return true;
	}
	return false;
}

/* A usable answer for the sender check: a record, and for MX not only the
 * null MX "." (RFC 7505). */
static bool dnsbl_sender_found(const struct dns_result *res)
{
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++)
		if (res->type != DNS_TYPE_MX || strcmp(res->records[i].u.mx.exchange, ".") != 0)
			return true;
	return false;
}

static void dnsbl_answered(const struct dns_result *res, void *ctx)
{
	struct dnsbl_query *q = ctx;
	struct dnsbl_check *c = q->check;

	q->q = NULL;
	q->status = res->status;
	q->res->pending--;
	if (c->sender) {
		q->listed = dnsbl_sender_found(res) ? 1 : 0;
	} else if (res->status == DNS_OK || res->status == DNS_NXDOMAIN ||
		   res->status == DNS_NODATA) {
		q->listed = dnsbl_listed(res) ? 1 : 0;
		dnsbl_cache_put(q->name, q->listed == 1, res->ttl, time(NULL));
		log_debug("access", "event=dnsbl name=%s listed=%s ttl=%u", q->name,
			  q->listed ? "yes" : "no", res->ttl);
	} else {
		q->listed = 0;
		log_info("access", "event=dnsbl_unanswered ip=%s zone=%s status=%s error=\"%s\"",
			 c->ip, c->zones[q->zone].name, dns_status_str(res->status),
			 res->error != NULL ? res->error : "");
	}
	if (--c->pending == 0)
		dnsbl_finish(c);
}

/* Starts the queries not answered yet (one that cannot start counts as
 * failed); finishes from the loop when none is pending. */
static struct dnsbl_check *dnsbl_run(struct dnsbl_check *c, struct event_base *base)
{
	struct dnsbl_res *res = NULL;
	const char *err;

	for (size_t i = 0; i < c->n; i++) {
		struct dnsbl_query *q = &c->queries[i];
		q->check = c;
		if (q->listed >= 0)
			continue;
		if (res == NULL && (res = dnsbl_resolver(base)) == NULL) {
			q->listed = 0;
			continue;
		}
		q->q = dns_resolve(res->res, q->name, q->type, dnsbl_answered, q, &err);
		if (q->q == NULL) {
			log_info("access", "event=dns_failed name=%s error=\"%s\"", q->name, err);
			q->listed = 0;
			q->status = DNS_SERVFAIL;
			continue;
		}
		q->res = res;
		res->pending++;
		c->pending++;
	}
	if (c->pending == 0) {
		/* Every answer at hand: still answer from the loop, later. */
		struct timeval now = { 0, 0 };
		c->done_ev = event_new(base, -1, 0, dnsbl_done_ev, c);
		event_add(c->done_ev, &now);
	}
	return c;
}

struct dnsbl_check *dnsbl_check_start(struct event_base *base, const char *ip, dnsbl_cb *cb,
				      void *ctx)
{
	char text[STORE_VALUE_MAX + 1];
	struct dnsbl_check *c;
	const char *err;
	time_t now = time(NULL);
	size_t n;

	settings_get("dnsbl.zones", text, sizeof(text));
	c = xcalloc(1, sizeof(*c));
	if (dnsbl_zones_parse(text, c->zones, &n, &err) < 0) {
		log_error("access", "event=bad_setting key=dnsbl.zones error=\"%s\"", err);
		free(c);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		struct dnsbl_query *q = &c->queries[c->n];
		if (dnsbl_query_name(ip, c->zones[i].name, q->name, sizeof(q->name)) < 0)
			continue;
		q->type = DNS_TYPE_A;
		q->reject = c->zones[i].reject;
		q->zone = i;
		q->listed = dnsbl_cache_get(q->name, now);
		q->status = DNS_SERVFAIL;
		c->n++;
	}
	if (c->n == 0) {
		free(c);
		return NULL;
	}
	c->cb = cb;
	c->ctx = ctx;
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	return dnsbl_run(c, base);
}

struct dnsbl_check *dnsbl_sender_start(struct event_base *base, const char *domain,
				       dnsbl_sender_cb *cb, void *ctx)
{
	static const enum dns_type types[] = { DNS_TYPE_MX, DNS_TYPE_A, DNS_TYPE_AAAA };
	struct dnsbl_check *c;

	if (!dnsbl_name_valid(domain))
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->sender = true;
	c->sender_cb = cb;
	c->ctx = ctx;
	snprintf(c->ip, sizeof(c->ip), "-");
	for (size_t i = 0; i < 3; i++) {
		snprintf(c->queries[i].name, sizeof(c->queries[i].name), "%s", domain);
		c->queries[i].type = types[i];
		c->queries[i].listed = -1;
		c->queries[i].status = DNS_SERVFAIL;
	}
	c->n = 3;
	return dnsbl_run(c, base);
}

void dnsbl_check_cancel(struct dnsbl_check **cp)
{
	if (*cp == NULL)
		return;
	dnsbl_check_free(*cp);
	*cp = NULL;
}
