/* IP address groups (docs/access.md): named sets of hosts, FROM-TO ranges,
 * CIDR blocks and other groups ("group:NAME"), IPv4 and IPv6, each entry
 * optionally an exclusion, which removes its addresses from the group
 * whatever the other entries say.
 *
 * The groups live in the store (tables ipgroups, ipgroup_entries); every
 * process keeps one compiled, immutable snapshot of all of them, rebuilt
 * when the admin API changes a group and swapped in live: a lookup takes no
 * lock held across the search and reads no database.  Any thread may look
 * up. */
#ifndef KEEL_ACCESS_IPGROUP_H
#define KEEL_ACCESS_IPGROUP_H

#include <stdbool.h>
#include <sys/socket.h>

struct ipgroups;
struct store_reader;

/* Compiles every group from the store; NULL with *error_r (static or
 * thread-local text) on a database error or a group loop. */
struct ipgroups *ipgroups_load(struct store_reader *reader, const char **error_r);
/* Makes set the current snapshot (taking over the caller's reference) and
 * drops the old one once no lookup uses it. */
void ipgroups_install(struct ipgroups *set);
/* The current snapshot with a reference of the caller's, or NULL when none
 * was installed; give it back with ipgroups_unref. */
struct ipgroups *ipgroups_current(void);
void ipgroups_unref(struct ipgroups **set);

/* Whether addr (AF_INET or AF_INET6; a v4-mapped v6 address counts as the
 * v4 one) is in group name: 1 yes, 0 no, -1 no such group.  *entry_r (if
 * not NULL) is set, on 1, to the entry that let it in, and on 0 to the
 * exclusion that kept it out or NULL; valid while set is held. */
int ipgroups_match(const struct ipgroups *set, const char *name, const struct sockaddr *addr,
                   const char **entry_r);

/* The same against the current snapshot, for callers that hold nothing:
 * false also when the group does not exist (an unknown group lets no one
 * in).  name NULL or "" is the empty group. */
bool ipgroup_contains(const char *name, const struct sockaddr *addr);

/* ---- added for the admin API and tests ---------------------------------- */

struct store_ipgroup;
struct store_ipgroup_entry;

/* The longest normal form of an entry, NUL included. */
#define IPGROUP_ENTRY_SIZE 128

/* Parses an entry: "IP" (v4 or v6), "FROM-TO" (one family, FROM <= TO),
 * "ADDR/LEN" (host bits are cleared), or "group:NAME".  A v4-mapped v6
 * address (or range, or block of /96 or longer) is taken as the v4 one.  On
 * success writes the normal form ("10.0.0.0/8", "10.0.0.1-10.0.0.9",
 * "2001:db8::1", "group:NAME") into norm; -1 with *error_r (static text). */
int ipgroup_entry_parse(const char *text, char norm[IPGROUP_ENTRY_SIZE], const char **error_r);
/* Whether name is a valid group name: 1-64 of [A-Za-z0-9._-]. */
bool ipgroup_name_valid(const char *name);

/* Compiles groups and their entries (store records: entry.group names the
 * group) into a snapshot with one reference; NULL with *error_r
 * (thread-local text naming the groups) on a loop or an unparsable entry.
 * An entry naming a group that does not exist adds nothing. */
struct ipgroups *ipgroups_compile(const struct store_ipgroup *groups, size_t n_groups,
                                  const struct store_ipgroup_entry *entries, size_t n_entries,
                                  const char **error_r);
/* Parses an IP literal (v4, v6, v4-mapped) into *ss: 0 or -1. */
int ipgroup_addr_parse(const char *text, struct sockaddr_storage *ss);

#endif
