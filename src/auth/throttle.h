/* Failed-login throttle: a growing delay per client IP and per account.
 *
 * Each failure doubles the delay the next failed answer waits (from
 * auth.failure_delay up to auth.failure_delay_max); failures older than
 * AUTH_THROTTLE_FORGET seconds are forgotten; a success clears the
 * account's count.  Memory is bounded: the table has a fixed number of
 * slots and the stalest entry gives way (a blocked entry last).
 * Thread-safe: one table serves every loop and protocol.
 *
 * Blocks: auth.block_after failures of one IP or one account within
 * auth.block_window block that IP or account for auth.block_time: every
 * login from the IP, or for the account from anywhere, is refused without
 * checking its password.  Blocks live in the worker's memory only (a worker
 * restart lifts them); the admin API lists and lifts them (auth.blocks,
 * auth.unblock).  Account names are compared without case. */
#ifndef KEEL_AUTH_THROTTLE_H
#define KEEL_AUTH_THROTTLE_H

#include <stdbool.h>
#include <stddef.h>
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

/* The table of this process: the first one made and not yet freed (the
 * worker makes one); NULL if none.  The admin API reaches it here. */
struct auth_throttle *auth_throttle_process(void);

/* Counts a failure toward the blocks: when it makes block_after (0: never)
 * failures of the IP or of the account within window seconds, blocks it
 * until now + block_time.  Returns a bit set of what this failure blocked:
 * AUTH_BLOCK_IP, AUTH_BLOCK_ACCOUNT. */
#define AUTH_BLOCK_IP 1
#define AUTH_BLOCK_ACCOUNT 2
unsigned auth_throttle_block_count(struct auth_throttle *t, const char *ip, const char *account,
				   unsigned block_after, time_t window, time_t block_time,
				   time_t now);
/* What of ip and account (NULL or "": the IP alone) is blocked at now: a
 * bit set as above; *until_r (may be NULL) gets the latest end. */
unsigned auth_throttle_blocked(struct auth_throttle *t, const char *ip, const char *account,
			       time_t now, time_t *until_r);

/* A failed login as the protocols report it: the delay from
 * auth.failure_delay/auth.failure_delay_max, counted toward a block with
 * auth.block_after/window/time; a new block is logged
 * "event=auth_blocked ip=.. account=.." under proto.  Returns the delay in
 * milliseconds. */
unsigned auth_throttle_login_failed(struct auth_throttle *t, const char *proto, const char *ip,
				    const char *account, time_t now);
/* Before checking a password: whether the login must be refused because
 * the IP or the account is blocked (logged "event=auth_refused_blocked"). */
bool auth_throttle_login_refused(struct auth_throttle *t, const char *proto, const char *ip,
				 const char *account, time_t now);

struct auth_throttle_block {
	char key[320]; /* the IP or the account */
	bool is_ip;
	unsigned failures; /* within the window that led to the block */
	time_t until;
};
/* Copies up to max current blocks into out; returns how many there are
 * (may exceed max). */
size_t auth_throttle_blocks(struct auth_throttle *t, time_t now, struct auth_throttle_block *out,
			    size_t max);
/* Lifts the block of key, an IP or an account (both if the same text
 * names both), and forgets its failures.  Returns how many blocks it
 * lifted (0: none was in force). */
unsigned auth_throttle_unblock(struct auth_throttle *t, const char *key, time_t now);

#endif
