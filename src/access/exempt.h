/* Exempt IP groups (docs/access.md): a setting named *.exempt_group holds
 * the name of an IP group (src/access/ipgroup.h) whose clients a check
 * leaves alone.  Empty: nobody is exempt. */
#ifndef KEEL_ACCESS_EXEMPT_H
#define KEEL_ACCESS_EXEMPT_H

#include <stdbool.h>

/* Whether ip (text, IPv4 or IPv6) is in the group named by the setting key
 * ("dnsbl.exempt_group").  False for an empty setting, an unknown group or
 * an address that does not parse.  Any thread. */
bool exempt_ip(const char *key, const char *ip);

#endif
