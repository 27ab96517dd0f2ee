/* IP address groups: parsing entries, compiling every group into sorted,
 * non-overlapping interval arrays (one per address family), and the live
 * snapshot.
 *
 * A group's compiled set is (its included entries, nested groups' compiled
 * sets among them) minus (its excluded entries), so an exclusion beats any
 * inclusion whatever their order.  Each interval keeps the text of the entry
 * that let it in, so that a match can say why.  A lookup is two binary
 * searches. */
#include "access/ipgroup.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "store/store.h"

#define IPG_V4     0
#define IPG_V6     1
#define IPG_PREFIX "group:"

struct ipg_piece {
	unsigned __int128 lo, hi;
	const char *tag; /* the entry that let these addresses in (or out) */
};

struct ipg_list {
	struct ipg_piece *v;
	size_t n, alloc;
};

enum ipg_state {
	IPG_UNVISITED = 0,
	IPG_ACTIVE,
	IPG_DONE,
};

struct ipg_group {
	char *name;
	enum ipg_state state;
	size_t *entries; /* indexes into the compile input */
	size_t n_entries, alloc_entries;
	struct ipg_list in[2];  /* what the group holds, exclusions applied */
	struct ipg_list out[2]; /* its own exclusions, for the reason of a miss */
};

struct ipgroups {
	atomic_uint refs;
	struct ipg_group *groups; /* sorted by name, ASCII case ignored */
	size_t n_groups;
	char **strs; /* tag texts */
	size_t n_strs, alloc_strs;
};

static __thread char ipg_error[512];

/* ---- parsing -------------------------------------------------------------- */

static unsigned __int128 ipg_family_max(int fam)
{
	return fam == IPG_V4 ? (unsigned __int128)UINT32_MAX : ~(unsigned __int128)0;
}

static unsigned __int128 ipg_from_bytes(const unsigned char *b, size_t n)
{
	unsigned __int128 v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | b[i];
	return v;
}

static bool ipg_v6_mapped(const unsigned char b[16])
{
	static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(b, prefix, sizeof(prefix)) == 0;
}

/* An address literal: 0 with its family and value, -1. */
static int ipg_parse_literal(const char *s, int *fam_r, unsigned __int128 *v_r, bool *mapped_r)
{
	unsigned char b[16];

	*mapped_r = false;
	if (inet_pton(AF_INET, s, b) == 1) {
		*fam_r = IPG_V4;
		*v_r = ipg_from_bytes(b, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, s, b) != 1)
		return -1;
	if (ipg_v6_mapped(b)) {
		*fam_r = IPG_V4;
		*v_r = ipg_from_bytes(b + 12, 4);
		*mapped_r = true;
	} else {
		*fam_r = IPG_V6;
		*v_r = ipg_from_bytes(b, 16);
	}
	return 0;
}

static void ipg_format(int fam, unsigned __int128 v, char *buf, size_t size)
{
	unsigned char b[16];
	size_t n = fam == IPG_V4 ? 4 : 16;

	for (size_t i = 0; i < n; i++)
		b[n - 1 - i] = (unsigned char)(v >> (8 * i));
	if (inet_ntop(fam == IPG_V4 ? AF_INET : AF_INET6, b, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
}

bool ipgroup_name_valid(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > STORE_IPGROUP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && strchr("._-", name[i]) == NULL)
			return false;
	return true;
}

/* "ADDR/LEN" split at slash: the block's family and bounds. */
static int ipg_parse_cidr(char *text, char *slash, int *fam_r, unsigned __int128 *lo_r,
                          unsigned __int128 *hi_r, const char **error_r)
{
	unsigned __int128 v, host;
	char *end;
	long len;
	bool mapped;
	int width;

	*slash = '\0';
	if (ipg_parse_literal(text, fam_r, &v, &mapped) < 0) {
		*error_r = "not an IP address before /";
		return -1;
	}
	len = strtol(slash + 1, &end, 10);
	width = *fam_r == IPG_V4 ? 32 : 128;
	if (mapped)
		len -= 96;
	if (slash[1] == '\0' || !isdigit((unsigned char)slash[1]) || *end != '\0' || len < 0 ||
	    len > width) {
		*error_r = "bad prefix length";
		return -1;
	}
	host = len == width ? 0 : (ipg_family_max(*fam_r) >> len);
	*lo_r = v & ~host & ipg_family_max(*fam_r);
	*hi_r = *lo_r | host;
	return 0;
}

/* Any address entry: its family and bounds, and the normal form. */
static int ipg_parse_range(const char *text, int *fam_r, unsigned __int128 *lo_r,
                           unsigned __int128 *hi_r, char norm[IPGROUP_ENTRY_SIZE],
                           const char **error_r)
{
	char buf[IPGROUP_ENTRY_SIZE], a[64], b[64];
	char *sep;
	bool mapped;
	int fam2;

	if (strlen(text) >= sizeof(buf)) {
		*error_r = "entry too long";
		return -1;
	}
	strcpy(buf, text);
	if ((sep = strchr(buf, '/')) != NULL) {
		if (ipg_parse_cidr(buf, sep, fam_r, lo_r, hi_r, error_r) < 0)
			return -1;
		ipg_format(*fam_r, *lo_r, a, sizeof(a));
		int len = 0;
		for (unsigned __int128 h = *hi_r - *lo_r; h != 0; h >>= 1)
			len++;
		snprintf(norm, IPGROUP_ENTRY_SIZE, "%s/%d", a, (*fam_r == IPG_V4 ? 32 : 128) - len);
		return 0;
	}
	if ((sep = strchr(buf, '-')) != NULL) {
		*sep = '\0';
		if (ipg_parse_literal(buf, fam_r, lo_r, &mapped) < 0 ||
		    ipg_parse_literal(sep + 1, &fam2, hi_r, &mapped) < 0) {
			*error_r = "a range is FROM-TO, two IP addresses";
			return -1;
		}
		if (fam2 != *fam_r || *lo_r > *hi_r) {
			*error_r = "a range needs FROM <= TO, both IPv4 or both IPv6";
			return -1;
		}
		ipg_format(*fam_r, *lo_r, a, sizeof(a));
		ipg_format(*fam_r, *hi_r, b, sizeof(b));
		snprintf(norm, IPGROUP_ENTRY_SIZE, "%s-%s", a, b);
		return 0;
	}
	if (ipg_parse_literal(buf, fam_r, lo_r, &mapped) < 0) {
		*error_r = "not an IP address, FROM-TO range, CIDR block or group:NAME";
		return -1;
	}
	*hi_r = *lo_r;
	ipg_format(*fam_r, *lo_r, norm, IPGROUP_ENTRY_SIZE);
	return 0;
}

int ipgroup_entry_parse(const char *text, char norm[IPGROUP_ENTRY_SIZE], const char **error_r)
{
	unsigned __int128 lo, hi;
	int fam;

	if (strncasecmp(text, IPG_PREFIX, strlen(IPG_PREFIX)) == 0) {
		if (!ipgroup_name_valid(text + strlen(IPG_PREFIX))) {
			*error_r = "a group name is 1-64 letters, digits, '.', '_' or '-'";
			return -1;
		}
		snprintf(norm, IPGROUP_ENTRY_SIZE, IPG_PREFIX "%s", text + strlen(IPG_PREFIX));
		return 0;
	}
	return ipg_parse_range(text, &fam, &lo, &hi, norm, error_r);
}

int ipgroup_addr_parse(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

/* ---- interval lists -------------------------------------------------------- */

static void ipg_push(struct ipg_list *l, unsigned __int128 lo, unsigned __int128 hi,
                     const char *tag)
{
	if (l->n > 0) {
		struct ipg_piece *last = &l->v[l->n - 1];

		/* Adjacent pieces of one entry stay one piece. */
		if (last->tag == tag && last->hi < hi && lo <= last->hi + 1 && lo > last->lo) {
			last->hi = hi;
			return;
		}
	}
	if (l->n == l->alloc) {
		l->alloc = l->alloc == 0 ? 8 : l->alloc * 2;
		l->v = xrealloc(l->v, l->alloc * sizeof(*l->v));
	}
	l->v[l->n++] = (struct ipg_piece){lo, hi, tag};
}

static int ipg_piece_cmp(const void *a, const void *b)
{
	const struct ipg_piece *x = a, *y = b;

	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->hi > y->hi ? -1 : x->hi < y->hi;
}

/* Sorts l and makes its pieces disjoint: an address keeps the tag of the
 * piece that starts first (the widest of those starting together). */
static void ipg_normalize(struct ipg_list *l)
{
	struct ipg_list out = {0};

	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), ipg_piece_cmp);
	for (size_t i = 0; i < l->n; i++) {
		struct ipg_piece p = l->v[i];
		const struct ipg_piece *last = out.n > 0 ? &out.v[out.n - 1] : NULL;

		if (last == NULL || p.lo > last->hi)
			ipg_push(&out, p.lo, p.hi, p.tag);
		else if (p.hi > last->hi)
			ipg_push(&out, last->hi + 1, p.hi, p.tag);
	}
	free(l->v);
	*l = out;
}

/* in minus out, both normalized. */
static void ipg_subtract(struct ipg_list *in, const struct ipg_list *out)
{
	struct ipg_list res = {0};
	size_t j = 0;

	for (size_t i = 0; i < in->n; i++) {
		const struct ipg_piece *a = &in->v[i];
		unsigned __int128 lo = a->lo;

		while (j < out->n && out->v[j].hi < lo)
			j++;
		for (size_t k = j;; k++) {
			if (k >= out->n || out->v[k].lo > a->hi) {
				ipg_push(&res, lo, a->hi, a->tag);
				break;
			}
			if (out->v[k].lo > lo)
				ipg_push(&res, lo, out->v[k].lo - 1, a->tag);
			if (out->v[k].hi >= a->hi)
				break;
			if (out->v[k].hi + 1 > lo)
				lo = out->v[k].hi + 1;
		}
	}
	free(in->v);
	*in = res;
}

static const struct ipg_piece *ipg_find(const struct ipg_list *l, unsigned __int128 v)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->v[mid].hi < v)
			lo = mid + 1;
		else if (l->v[mid].lo > v)
			hi = mid;
		else
			return &l->v[mid];
	}
	return NULL;
}

/* ---- compiling -------------------------------------------------------------- */

static const char *ipg_str(struct ipgroups *set, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static const char *ipg_str(struct ipgroups *set, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (set->n_strs == set->alloc_strs) {
		set->alloc_strs = set->alloc_strs == 0 ? 16 : set->alloc_strs * 2;
		set->strs = xrealloc(set->strs, set->alloc_strs * sizeof(*set->strs));
	}
	set->strs[set->n_strs++] = s;
	return s;
}

static int ipg_group_cmp(const void *a, const void *b)
{
	return strcasecmp(((const struct ipg_group *)a)->name, ((const struct ipg_group *)b)->name);
}

static struct ipg_group *ipg_lookup(const struct ipgroups *set, const char *name)
{
	struct ipg_group key = {.name = (char *)name};

	return bsearch(&key, set->groups, set->n_groups, sizeof(key), ipg_group_cmp);
}

static int ipg_resolve(struct ipgroups *set, struct ipg_group *g,
                       const struct store_ipgroup_entry *entries);

/* Adds the compiled set of group:NAME (entry e of g) to dst. */
static int ipg_add_ref(struct ipgroups *set, struct ipg_group *g,
                       const struct store_ipgroup_entry *e, struct ipg_list dst[2],
                       const struct store_ipgroup_entry *entries)
{
	struct ipg_group *other = ipg_lookup(set, e->entry + strlen(IPG_PREFIX));

	if (other == NULL)
		return 0; /* the store keeps references whole; nothing to add */
	if (other->state == IPG_ACTIVE) {
		snprintf(ipg_error, sizeof(ipg_error),
		         "IP group loop: %s contains group:%s, which contains %s", g->name,
		         other->name, g->name);
		return -1;
	}
	if (ipg_resolve(set, other, entries) < 0)
		return -1;
	for (int fam = 0; fam < 2; fam++) {
		const char *tag = NULL, *inner = NULL;

		for (size_t i = 0; i < other->in[fam].n; i++) {
			const struct ipg_piece *p = &other->in[fam].v[i];

			if (p->tag != inner) {
				inner = p->tag;
				tag = ipg_str(set, "%s > %s", e->entry, inner);
			}
			ipg_push(&dst[fam], p->lo, p->hi, tag);
		}
	}
	return 0;
}

static int ipg_add_entry(struct ipgroups *set, struct ipg_group *g,
                         const struct store_ipgroup_entry *e,
                         const struct store_ipgroup_entry *entries)
{
	struct ipg_list *dst = e->exclude ? g->out : g->in;
	char norm[IPGROUP_ENTRY_SIZE];
	unsigned __int128 lo, hi;
	const char *error;
	int fam;

	if (strncasecmp(e->entry, IPG_PREFIX, strlen(IPG_PREFIX)) == 0)
		return ipg_add_ref(set, g, e, dst, entries);
	if (ipg_parse_range(e->entry, &fam, &lo, &hi, norm, &error) < 0) {
		snprintf(ipg_error, sizeof(ipg_error), "IP group %s: entry %s: %s", g->name,
		         e->entry, error);
		return -1;
	}
	ipg_push(&dst[fam], lo, hi, ipg_str(set, "%s", e->entry));
	return 0;
}

static int ipg_resolve(struct ipgroups *set, struct ipg_group *g,
                       const struct store_ipgroup_entry *entries)
{
	if (g->state == IPG_DONE)
		return 0;
	g->state = IPG_ACTIVE;
	for (size_t i = 0; i < g->n_entries; i++)
		if (ipg_add_entry(set, g, &entries[g->entries[i]], entries) < 0)
			return -1;
	for (int fam = 0; fam < 2; fam++) {
		ipg_normalize(&g->in[fam]);
		ipg_normalize(&g->out[fam]);
		ipg_subtract(&g->in[fam], &g->out[fam]);
	}
	g->state = IPG_DONE;
	return 0;
}

static void ipg_free(struct ipgroups *set)
{
	for (size_t i = 0; i < set->n_groups; i++) {
		struct ipg_group *g = &set->groups[i];

		free(g->name);
		free(g->entries);
		for (int fam = 0; fam < 2; fam++) {
			free(g->in[fam].v);
			free(g->out[fam].v);
		}
	}
	for (size_t i = 0; i < set->n_strs; i++)
		free(set->strs[i]);
	free(set->strs);
	free(set->groups);
	free(set);
}

struct ipgroups *ipgroups_compile(const struct store_ipgroup *groups, size_t n_groups,
                                  const struct store_ipgroup_entry *entries, size_t n_entries,
                                  const char **error_r)
{
	struct ipgroups *set = xcalloc(1, sizeof(*set));

	atomic_init(&set->refs, 1);
	set->groups = xcalloc(n_groups > 0 ? n_groups : 1, sizeof(*set->groups));
	set->n_groups = n_groups;
	for (size_t i = 0; i < n_groups; i++)
		set->groups[i].name = xstrdup(groups[i].name);
	qsort(set->groups, n_groups, sizeof(*set->groups), ipg_group_cmp);
	for (size_t i = 0; i < n_entries; i++) {
		struct ipg_group *g = ipg_lookup(set, entries[i].group);

		if (g == NULL)
			continue;
		if (g->n_entries == g->alloc_entries) {
			g->alloc_entries = g->alloc_entries == 0 ? 4 : g->alloc_entries * 2;
			g->entries = xrealloc(g->entries, g->alloc_entries * sizeof(*g->entries));
		}
		g->entries[g->n_entries++] = i;
	}
	for (size_t i = 0; i < n_groups; i++) {
		if (ipg_resolve(set, &set->groups[i], entries) < 0) {
			*error_r = ipg_error;
			ipg_free(set);
			return NULL;
		}
	}
	return set;
}

struct ipgroups *ipgroups_load(struct store_reader *reader, const char **error_r)
{
	struct store_ipgroup *groups;
	struct store_ipgroup_entry *entries;
	size_t n_groups, n_entries;
	struct ipgroups *set;

	if (store_ipgroup_read_all(reader, &groups, &n_groups, &entries, &n_entries) < 0) {
		*error_r = "cannot read the IP groups from the store";
		return NULL;
	}
	set = ipgroups_compile(groups, n_groups, entries, n_entries, error_r);
	free(groups);
	free(entries);
	return set;
}

/* ---- the live snapshot ------------------------------------------------------ */

static pthread_mutex_t ipg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ipgroups *ipg_current;

void ipgroups_install(struct ipgroups *set)
{
	struct ipgroups *old;

	pthread_mutex_lock(&ipg_lock);
	old = ipg_current;
	ipg_current = set;
	pthread_mutex_unlock(&ipg_lock);
	ipgroups_unref(&old);
}

struct ipgroups *ipgroups_current(void)
{
	struct ipgroups *set;

	/* The lock covers taking the reference only, never a search. */
	pthread_mutex_lock(&ipg_lock);
	set = ipg_current;
	if (set != NULL)
		atomic_fetch_add(&set->refs, 1);
	pthread_mutex_unlock(&ipg_lock);
	return set;
}

void ipgroups_unref(struct ipgroups **set)
{
	if (*set != NULL && atomic_fetch_sub(&(*set)->refs, 1) == 1)
		ipg_free(*set);
	*set = NULL;
}

/* ---- lookups ---------------------------------------------------------------- */

/* addr as a family and value: 0, or -1 for another family. */
static int ipg_addr_value(const struct sockaddr *addr, int *fam_r, unsigned __int128 *v_r)
{
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;

		*fam_r = IPG_V4;
		*v_r = ipg_from_bytes((const unsigned char *)&sin->sin_addr, 4);
		return 0;
	}
	if (addr->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;

		*fam_r = ipg_v6_mapped(b) ? IPG_V4 : IPG_V6;
		*v_r = *fam_r == IPG_V4 ? ipg_from_bytes(b + 12, 4) : ipg_from_bytes(b, 16);
		return 0;
	}
	return -1;
}

int ipgroups_match(const struct ipgroups *set, const char *name, const struct sockaddr *addr,
                   const char **entry_r)
{
	const struct ipg_group *g = set != NULL && name != NULL ? ipg_lookup(set, name) : NULL;
	const struct ipg_piece *p;
	unsigned __int128 v;
	int fam;

	if (entry_r != NULL)
		*entry_r = NULL;
	if (g == NULL)
		return -1;
	if (addr == NULL || ipg_addr_value(addr, &fam, &v) < 0)
		return 0;
	if ((p = ipg_find(&g->in[fam], v)) != NULL) {
		if (entry_r != NULL)
			*entry_r = p->tag;
		return 1;
	}
	if ((p = ipg_find(&g->out[fam], v)) != NULL && entry_r != NULL)
		*entry_r = p->tag;
	return 0;
}

bool ipgroup_contains(const char *name, const struct sockaddr *addr)
{
	struct ipgroups *set;
	bool in;

	if (name == NULL || *name == '\0')
		return false;
	set = ipgroups_current();
	in = ipgroups_match(set, name, addr, NULL) == 1;
	ipgroups_unref(&set);
	return in;
}
