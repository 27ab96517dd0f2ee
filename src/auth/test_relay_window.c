#include <stdio.h>
#include "auth/relay_window.h"
#include "auth/throttle.h"
#include "lib/test.h"

static void test_window(void)
{
	struct relay_window *w = relay_window_new();
	time_t until = 0;

	CHECK(!relay_window_check(w, "127.0.0.2", 1000, NULL));
	relay_window_open(w, "127.0.0.2", 1000, 600);
	CHECK(relay_window_check(w, "127.0.0.2", 1000, &until));
	CHECK_INT(until, 1600);
	CHECK(relay_window_check(w, "127.0.0.2", 1599, NULL));
	CHECK(!relay_window_check(w, "127.0.0.2", 1600, NULL));
	CHECK(!relay_window_check(w, "127.0.0.3", 1000, NULL));
	/* Many IPs: memory stays bounded, recent windows survive. */
	for (int i = 0; i < 20000; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
		relay_window_open(w, ip, 2000 + i, 600);
	}
	CHECK(relay_window_check(w, "10.0.78.31", 22000, NULL));
	relay_window_free(&w);
}

static void test_throttle(void)
{
	struct auth_throttle *t = auth_throttle_new();

	CHECK_INT(auth_throttle_failure(t, "127.0.0.2", "a@x.test", 1000, 8000, 100), 1000);
	CHECK_INT(auth_throttle_failure(t, "127.0.0.2", "a@x.test", 1000, 8000, 101), 2000);
	CHECK_INT(auth_throttle_failure(t, "127.0.0.2", "a@x.test", 1000, 8000, 102), 4000);
	CHECK_INT(auth_throttle_failure(t, "127.0.0.2", "a@x.test", 1000, 8000, 103), 8000);
	CHECK_INT(auth_throttle_failure(t, "127.0.0.2", "a@x.test", 1000, 8000, 104), 8000);
	/* The account is counted from another IP too. */
	CHECK_INT(auth_throttle_failure(t, "127.0.0.3", "a@x.test", 1000, 8000, 105), 8000);
	/* Success clears the account, not the IP. */
	auth_throttle_success(t, "a@x.test");
	CHECK_INT(auth_throttle_failure(t, "127.0.0.9", "a@x.test", 1000, 8000, 106), 1000);
	/* Failures are forgotten after AUTH_THROTTLE_FORGET. */
	CHECK_INT(auth_throttle_failure(t, "127.0.0.2", "", 1000, 8000,
					104 + AUTH_THROTTLE_FORGET + 1),
		  1000);
	auth_throttle_free(&t);
}

int main(void)
{
	TEST_RUN(test_window);
	TEST_RUN(test_throttle);
	return test_summary();
}
