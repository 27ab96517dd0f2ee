/* Access rules over the live settings and the IP group snapshot
 * (docs/access.md): who may connect to a service, who may relay, which
 * settings name an IP group, and the snapshot's life in the worker.
 *
 * Every function may be called on any thread; none reads the database
 * except access_start and access_reload. */
#ifndef KEEL_ACCESS_ACCESS_POLICY_H
#define KEEL_ACCESS_ACCESS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct store_reader;

/* The services whose access is a setting, in the order keelctl lists them. */
extern const char *const access_services[];
bool access_service_known(const char *service);

/* Whether a new connection from addr to service ("smtp", "imaps", ...) may
 * go on: 0 yes, -1 no.  On -1, rule (size bytes) names the setting that
 * refused it ("service.imap.enabled", "service.imap.allow_group") and why
 * (size bytes) says how, for the log and the trace ("group lan does not
 * contain 127.0.0.3").  On 0, why says which entry let it in when a group
 * is set, else "". */
int access_service_check(const char *service, const struct sockaddr *addr, char *rule, char *why,
                         size_t size);

/* Whether ip (text) may relay without AUTH: relay.open, or an address in
 * relay.allow_group.  On true, rule (size bytes) names the setting and why
 * the entry or "relay.open is on". */
bool access_relay_allowed(const char *ip, char *rule, char *why, size_t size);

/* A setting names an IP group when its key ends in "_group"
 * (service.*.allow_group, relay.allow_group, *.exempt_group). */
bool access_setting_names_group(const char *key);
/* Whether the current snapshot holds a group of that name (ASCII case
 * ignored). */
bool access_group_exists(const char *name);
/* The first such setting whose value is the group name (ASCII case
 * ignored): 1 with its key in key_r, 0 none. */
int access_group_user(const char *name, char *key_r, size_t size);

/* Worker start: compiles the IP groups and installs them, and warns when
 * relay.open is on.  A store error or a loop is logged: no group then
 * matches (a service limited to a group admits no one). */
void access_start(struct store_reader *reader);
/* After a change to the groups: recompiles and installs; -1 with *error_r
 * when the store cannot be read or holds a loop (the old snapshot stays). */
int access_reload(struct store_reader *reader, const char **error_r);
/* Worker stop: drops the snapshot. */
void access_stop(void);
/* Logs the open-relay warning (at start and whenever relay.open is set on). */
void access_warn_open_relay(void);

#endif
