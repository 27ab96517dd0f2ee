/* domain.add, domain.del, domain.list, domain.set, domain.check */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_request.h"
#include "mail/address.h"
#include "store/store.h"

/* A domain we host: a host name (no address literal), stored lower case. */
static int admin_domain_check(struct admin_request *req, const char *name, char *buf, size_t size)
{
	const char *error;

	if (address_domain_check(name, false, &error) < 0) {
		admin_request_fail(req, "invalid", "invalid domain name '%s': %s", name, error);
		return -1;
	}
	if (name[0] == '[') {
		admin_request_fail(req, "invalid",
		                   "invalid domain name '%s': an address literal cannot be hosted",
		                   name);
		return -1;
	}
	if (strlen(name) >= size || strlen(name) > STORE_DOMAIN_MAX) {
		admin_request_fail(req, "invalid", "invalid domain name '%s': too long", name);
		return -1;
	}
	strcpy(buf, name);
	address_fold_case(buf);
	return 0;
}

static json_t *admin_domain_str_or_null(const char *s)
{
	return *s != '\0' ? json_string(s) : json_null();
}

static json_t *admin_domain_json(const struct store_domain *d)
{
	return json_pack(
	    "{s:I, s:s, s:o, s:I, s:o, s:o, s:o}", "id", (json_int_t)d->id, "name", d->name,
	    "alias_of", d->alias_of != 0 ? json_string(d->alias_of_name) : json_null(), "created",
	    (json_int_t)d->created, "source_ip4", admin_domain_str_or_null(d->source_ip4),
	    "source_ip6", admin_domain_str_or_null(d->source_ip6), "ehlo_name",
	    admin_domain_str_or_null(d->ehlo_name));
}

/* args: name, alias_of (optional: the new domain is an alias of that one). */
void admin_domain_add(struct admin_request *req)
{
	const char *name, *alias_of = NULL;
	char canon[STORE_DOMAIN_MAX + 1], target[STORE_DOMAIN_MAX + 1];
	struct store_domain d;

	if (admin_arg_string(req, "name", true, &name) < 0 ||
	    admin_arg_string(req, "alias_of", false, &alias_of) < 0 ||
	    admin_domain_check(req, name, canon, sizeof(canon)) < 0)
		return;
	if (store_domain_get(req->host->reader, canon, &d) == 0) {
		admin_request_fail(req, "exists", "domain %s already exists", canon);
		return;
	}
	if (alias_of != NULL) {
		if (admin_domain_check(req, alias_of, target, sizeof(target)) < 0)
			return;
		if (store_domain_get(req->host->reader, target, &d) < 0) {
			admin_request_fail(req, "not_found", "domain %s does not exist", target);
			return;
		}
		if (d.alias_of != 0) {
			admin_request_fail(req, "invalid", "domain %s is itself an alias of %s",
			                   target, d.alias_of_name);
			return;
		}
		if (strcmp(target, canon) == 0) {
			admin_request_fail(req, "invalid", "a domain cannot be an alias of itself");
			return;
		}
	}
	req->result = json_pack("{s:s, s:o}", "name", canon, "alias_of",
	                        alias_of != NULL ? json_string(target) : json_null());
	if (alias_of != NULL)
		admin_request_audit(req, "domain=%s alias_of=%s", canon, target);
	else
		admin_request_audit(req, "domain=%s", canon);
	req->want_id = true;
	store_domain_add(req->host->store, canon, alias_of != NULL ? target : NULL, req->host->loop,
	                 admin_request_store_done, req);
}

/* args: name.  Refused while the domain has users (the store also refuses
 * while it has aliases, groups or alias domains). */
void admin_domain_del(struct admin_request *req)
{
	const char *name;
	char canon[STORE_DOMAIN_MAX + 1];
	struct store_domain d;
	struct store_user *users;
	size_t n_users = 0;

	if (admin_arg_string(req, "name", true, &name) < 0 ||
	    admin_domain_check(req, name, canon, sizeof(canon)) < 0)
		return;
	if (store_domain_get(req->host->reader, canon, &d) < 0) {
		admin_request_fail(req, "not_found", "domain %s does not exist", canon);
		return;
	}
	if (store_user_list(req->host->reader, canon, &users, &n_users) == 0)
		free(users);
	if (n_users > 0) {
		admin_request_fail(req, "invalid", "domain %s still has %zu user%s", canon, n_users,
		                   n_users == 1 ? "" : "s");
		return;
	}
	req->result = json_pack("{s:s}", "name", canon);
	admin_request_audit(req, "domain=%s", canon);
	store_domain_del(req->host->store, canon, req->host->loop, admin_request_store_done, req);
}

void admin_domain_list(struct admin_request *req)
{
	struct store_domain *list;
	size_t n;
	json_t *result;

	if (store_domain_list(req->host->reader, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the domain list");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_domain_json(&list[i]));
	free(list);
	admin_request_ok(req, result);
}

/* ---- outbound identity (multihoming) ------------------------------------ */

/* source_ip: "", one address, or an IPv4 and an IPv6 address separated by
 * a comma, in either order; canonical forms into ip4 and ip6 ("" when not
 * given).  Answers "invalid" and returns -1 on anything else. */
static int admin_domain_source_ip(struct admin_request *req, const char *value, char ip4[64],
                                  char ip6[64])
{
	char copy[256], *save, *w;
	unsigned char bin[sizeof(struct in6_addr)];

	ip4[0] = ip6[0] = '\0';
	if (strlen(value) >= sizeof(copy))
		goto invalid;
	snprintf(copy, sizeof(copy), "%s", value);
	for (w = strtok_r(copy, ", ", &save); w != NULL; w = strtok_r(NULL, ", ", &save)) {
		int family = strchr(w, ':') != NULL ? AF_INET6 : AF_INET;
		char *dst = family == AF_INET ? ip4 : ip6;
		if (*dst != '\0' || inet_pton(family, w, bin) != 1)
			goto invalid;
		inet_ntop(family, bin, dst, 64);
	}
	return 0;
invalid:
	admin_request_fail(req, "invalid",
	                   "invalid source_ip '%s': expected an IPv4 address, an IPv6 address, or "
	                   "one of each separated by a comma",
	                   value);
	return -1;
}

/* ehlo_name: "" (clear) or a host name, lower-cased into buf. */
static int admin_domain_ehlo(struct admin_request *req, const char *value, char *buf, size_t size)
{
	const char *error;

	if (*value == '\0') {
		buf[0] = '\0';
		return 0;
	}
	if (address_domain_check(value, false, &error) < 0 || value[0] == '[' ||
	    strlen(value) >= size || strchr(value, '.') == NULL) {
		admin_request_fail(req, "invalid",
		                   "invalid ehlo_name '%s': expected a fully "
		                   "qualified host name",
		                   value);
		return -1;
	}
	snprintf(buf, size, "%s", value);
	address_fold_case(buf);
	return 0;
}

/* args: name; source_ip and ehlo_name ("" clears; absent leaves as is).
 * Giving source_ip replaces both addresses: "192.0.2.1" alone clears the
 * IPv6 one. */
void admin_domain_set(struct admin_request *req)
{
	const char *name, *source_ip = NULL, *ehlo = NULL;
	char canon[STORE_DOMAIN_MAX + 1], ip4[64], ip6[64], ehlo_buf[STORE_DOMAIN_MAX + 1];
	struct store_domain d;

	if (admin_arg_string(req, "name", true, &name) < 0 ||
	    admin_arg_string(req, "source_ip", false, &source_ip) < 0 ||
	    admin_arg_string(req, "ehlo_name", false, &ehlo) < 0 ||
	    admin_domain_check(req, name, canon, sizeof(canon)) < 0)
		return;
	if (source_ip == NULL && ehlo == NULL) {
		admin_request_fail(req, "usage", "nothing to set: give source_ip and/or ehlo_name");
		return;
	}
	if ((source_ip != NULL && admin_domain_source_ip(req, source_ip, ip4, ip6) < 0) ||
	    (ehlo != NULL && admin_domain_ehlo(req, ehlo, ehlo_buf, sizeof(ehlo_buf)) < 0))
		return;
	if (store_domain_get(req->host->reader, canon, &d) < 0) {
		admin_request_fail(req, "not_found", "domain %s does not exist", canon);
		return;
	}
	req->result = json_pack(
	    "{s:s, s:o, s:o, s:o}", "name", canon, "source_ip4",
	    admin_domain_str_or_null(source_ip != NULL ? ip4 : d.source_ip4), "source_ip6",
	    admin_domain_str_or_null(source_ip != NULL ? ip6 : d.source_ip6), "ehlo_name",
	    admin_domain_str_or_null(ehlo != NULL ? ehlo_buf : d.ehlo_name));
	admin_request_audit(req, "domain=%s source_ip=\"%s\" ehlo_name=\"%s\"", canon,
	                    source_ip != NULL ? source_ip : "(unchanged)",
	                    ehlo != NULL ? ehlo_buf : "(unchanged)");
	store_domain_set_outbound(req->host->store, canon, source_ip != NULL ? ip4 : NULL,
	                          source_ip != NULL ? ip6 : NULL, ehlo != NULL ? ehlo_buf : NULL,
	                          req->host->loop, admin_request_store_done, req);
}

/* Is addr (canonical text) one of this host's interface addresses? */
static bool admin_domain_ip_present(const struct ifaddrs *list, const char *addr, int family)
{
	char buf[INET6_ADDRSTRLEN];

	for (const struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
		const void *bin;
		if (i->ifa_addr == NULL || i->ifa_addr->sa_family != family)
			continue;
		bin = family == AF_INET
		          ? (const void *)&((const struct sockaddr_in *)i->ifa_addr)->sin_addr
		          : (const void *)&((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
		if (inet_ntop(family, bin, buf, sizeof(buf)) != NULL && strcmp(buf, addr) == 0)
			return true;
	}
	return false;
}

static json_t *admin_domain_ip_check(const struct ifaddrs *list, const char *addr, int family)
{
	bool present = admin_domain_ip_present(list, addr, family);
	char msg[256];

	snprintf(msg, sizeof(msg),
	         present ? "%s is configured on this host"
	                 : "%s is not an address of this host: connections from it will fail",
	         addr);
	return json_pack("{s:s, s:s, s:b, s:s}", "address", addr, "family",
	                 family == AF_INET ? "ipv4" : "ipv6", "present", present, "message", msg);
}

/* args: name.  Says, for each configured source address, whether it is an
 * address of one of this host's interfaces (getifaddrs). */
void admin_domain_check_outbound(struct admin_request *req)
{
	const char *name;
	char canon[STORE_DOMAIN_MAX + 1];
	struct store_domain d;
	struct ifaddrs *list = NULL;
	json_t *addrs;
	bool ok = true;

	if (admin_arg_string(req, "name", true, &name) < 0 ||
	    admin_domain_check(req, name, canon, sizeof(canon)) < 0)
		return;
	if (store_domain_get(req->host->reader, canon, &d) < 0) {
		admin_request_fail(req, "not_found", "domain %s does not exist", canon);
		return;
	}
	if (getifaddrs(&list) < 0) {
		admin_request_fail(req, "io", "cannot list this host's addresses");
		return;
	}
	addrs = json_array();
	if (d.source_ip4[0] != '\0')
		json_array_append_new(addrs, admin_domain_ip_check(list, d.source_ip4, AF_INET));
	if (d.source_ip6[0] != '\0')
		json_array_append_new(addrs, admin_domain_ip_check(list, d.source_ip6, AF_INET6));
	freeifaddrs(list);
	for (size_t i = 0; i < json_array_size(addrs); i++)
		ok = ok && json_is_true(json_object_get(json_array_get(addrs, i), "present"));
	admin_request_ok(
	    req, json_pack("{s:s, s:o, s:b, s:s, s:o}", "name", canon, "addresses", addrs, "ok", ok,
	                   "message",
	                   json_array_size(addrs) == 0
	                       ? "no source address is set: the default route's address is used"
	                   : ok ? "every source address is configured on this host"
	                        : "a source address is missing from this host",
	                   "ehlo_name", admin_domain_str_or_null(d.ehlo_name)));
}
