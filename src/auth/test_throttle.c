/* The failed-login blocks of auth/throttle.c: per IP, per account (without
 * case), the window, the end, the listing and the lifting. */
#include <stdio.h>
#include <string.h>

#include "auth/throttle.h"
#include "lib/test.h"

static unsigned bump(struct auth_throttle *t, const char *ip, const char *acct, time_t now)
{
	return auth_throttle_block_count(t, ip, acct, 3, 60, 600, now);
}

static void test_block_ip_and_account(void)
{
	struct auth_throttle *t = auth_throttle_new();
	struct auth_throttle_block list[4];
	time_t until = 0;

	CHECK(auth_throttle_process() == t);
	CHECK_INT(bump(t, "192.0.2.1", "a@x.test", 1000), 0);
	CHECK_INT(bump(t, "192.0.2.2", "A@X.test", 1001), 0);
	CHECK_INT(auth_throttle_blocked(t, "192.0.2.1", "a@x.test", 1001, NULL), 0);
	/* The third failure of the account (any IP, any case) blocks it. */
	CHECK_INT(bump(t, "192.0.2.3", "a@X.TEST", 1002), AUTH_BLOCK_ACCOUNT);
	CHECK_INT(auth_throttle_blocked(t, "198.51.100.1", "a@x.test", 1003, &until),
		  AUTH_BLOCK_ACCOUNT);
	CHECK_INT(until, 1602);
	CHECK_INT(auth_throttle_blocked(t, "198.51.100.1", "b@x.test", 1003, NULL), 0);
	/* The block ends by itself. */
	CHECK_INT(auth_throttle_blocked(t, "198.51.100.1", "a@x.test", 1602, NULL), 0);
	/* Three failures of one IP for different accounts block the IP. */
	CHECK_INT(bump(t, "203.0.113.9", "u1@x.test", 2000), 0);
	CHECK_INT(bump(t, "203.0.113.9", "u2@x.test", 2001), 0);
	CHECK_INT(bump(t, "203.0.113.9", "u3@x.test", 2002), AUTH_BLOCK_IP);
	CHECK_INT(auth_throttle_blocked(t, "203.0.113.9", NULL, 2003, NULL), AUTH_BLOCK_IP);
	CHECK_INT(auth_throttle_blocks(t, 2003, list, 4), 1);
	CHECK_STR(list[0].key, "203.0.113.9");
	CHECK(list[0].is_ip);
	CHECK_INT(list[0].failures, 3);
	CHECK_INT(auth_throttle_unblock(t, "203.0.113.9", 2004), 1);
	CHECK_INT(auth_throttle_unblock(t, "203.0.113.9", 2004), 0);
	CHECK_INT(auth_throttle_blocked(t, "203.0.113.9", NULL, 2005, NULL), 0);
	auth_throttle_free(&t);
	CHECK(auth_throttle_process() == NULL);
}

static void test_window_and_off(void)
{
	struct auth_throttle *t = auth_throttle_new();

	/* Failures further apart than the window never add up. */
	for (int i = 0; i < 10; i++)
		CHECK_INT(bump(t, "192.0.2.7", NULL, 1000 + i * 31), 0);
	/* block_after 0: never. */
	for (int i = 0; i < 50; i++)
		CHECK_INT(auth_throttle_block_count(t, "192.0.2.8", "z@x.test", 0, 60, 600, 5000),
			  0);
	/* A success clears the account's count. */
	CHECK_INT(bump(t, "192.0.2.9", "s@x.test", 6000), 0);
	CHECK_INT(bump(t, "192.0.2.10", "s@x.test", 6001), 0);
	auth_throttle_success(t, "s@x.test");
	CHECK_INT(bump(t, "192.0.2.11", "s@x.test", 6002), 0);
	auth_throttle_free(&t);
}

int main(void)
{
	TEST_RUN(test_block_ip_and_account);
	TEST_RUN(test_window_and_off);
	return test_summary();
}
