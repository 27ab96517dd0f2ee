/* Limits per client IP (docs/abuse.md, "Limits per client IP"): messages
 * per hour (limits.messages_per_hour) and unknown recipients per hour
 * (limits.unknown_recipients), after which the address is blocked for
 * limits.block_time.
 *
 * The counters live in memory, in one table per worker process shared by
 * every loop (a mutex; held only for a lookup): a worker restart starts
 * them afresh.  Each counter counts in a fixed window of one hour that
 * opens with its first event.  The table is bounded (CLIENTLIMIT_MAX
 * addresses): when full, addresses whose windows and block have run out
 * are dropped, and if none has, a new address is not tracked (its limits
 * then do not apply; logged).  Callers check the exempt group
 * (limits.exempt_group) themselves. */
#ifndef KEEL_ACCESS_CLIENTLIMIT_H
#define KEEL_ACCESS_CLIENTLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CLIENTLIMIT_MAX 65536
#define CLIENTLIMIT_WINDOW 3600

/* Whether ip is blocked at now; *until_r is the end of the block. */
bool clientlimit_blocked(const char *ip, time_t now, time_t *until_r);
/* Whether one more message from ip would exceed max within the window
 * (max 0: no limit). */
bool clientlimit_messages_over(const char *ip, unsigned max, time_t now);
/* Counts one accepted message from ip. */
void clientlimit_message_count(const char *ip, time_t now);
/* Counts an unknown recipient; when that makes max (0: no limit) within
 * the window, blocks ip for block_time seconds and returns true. */
bool clientlimit_unknown_rcpt(const char *ip, unsigned max, time_t block_time, time_t now);
/* Forgets every address (tests). */
void clientlimit_reset(void);

#endif
