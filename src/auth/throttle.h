/* Failed-login throttle: a growing delay per client IP and per account.
 *
 * Each failure doubles the delay the next failed answer waits (from
 * auth.failure_delay up to auth.failure_delay_max); failures older than
 * AUTH_THROTTLE_FORGET seconds are forgotten; a success clears the
 * account's count.  Memory is bounded: the table has a fixed number of
 * slots and the stalest entry gives way.  Thread-safe: one table serves
 * every loop and protocol. */
#ifndef KEEL_AUTH_THROTTLE_H
#define KEEL_AUTH_THROTTLE_H

#include <time.h>

#define AUTH_THROTTLE_FORGET 900
#define AUTH_THROTTLE_SLOTS 8192

struct auth_throttle;

struct auth_throttle *auth_throttle_new(void);
void auth_throttle_free(struct auth_throttle **t);

/* Records a failed login of account ("" if unknown) from ip; returns how
 * many milliseconds the failure reply should wait: base_ms doubled for each
 * earlier recent failure of the IP or the account (the larger), at most
 * max_ms. */
unsigned auth_throttle_failure(struct auth_throttle *t, const char *ip, const char *account,
			       unsigned base_ms, unsigned max_ms, time_t now);
void auth_throttle_success(struct auth_throttle *t, const char *account);
/* Recent failures counted for key (an IP or an account), for logs. */
unsigned auth_throttle_count(struct auth_throttle *t, const char *key, time_t now);

#endif
