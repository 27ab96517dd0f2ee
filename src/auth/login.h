/* Checking a login (username and password) the same way for every
 * protocol: the user is looked up on the caller's loop (store reader), the
 * argon2id check runs on the work pool, and the answer comes back on the
 * loop.  A missing or disabled user is checked against a hash of a random
 * password, so that it costs as much time as a wrong password (no user
 * enumeration by timing). */
#ifndef KEEL_AUTH_LOGIN_H
#define KEEL_AUTH_LOGIN_H

#include <stdint.h>

#include "store/store.h"

struct loop;
struct workpool;

struct auth_login_result {
	int status;                          /* 0: valid; -1: refused */
	int64_t user_id;
	char address[STORE_ADDR_MAX + 1];    /* canonical when valid, else as given */
};

typedef void auth_login_cb(const struct auth_login_result *result, void *ctx);

/* Copies username and password (and wipes its copy after use); cb runs on
 * loop, exactly once. */
void auth_login_check(struct workpool *pool, struct store_reader *reader, struct loop *loop,
		      const char *username, const char *password, auth_login_cb *cb, void *ctx);

#endif
