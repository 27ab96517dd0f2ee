/* queue/queue_policy: the retry schedule and the route table. */
#include <string.h>

#include "lib/test.h"
#include "queue/queue_policy.h"

static void test_retry_parse(void)
{
	struct queue_retry r;
	const char *err = NULL;

	CHECK_INT(queue_retry_parse("5m,10m,30m,1h,2h,4h", &r, &err), 0);
	CHECK_INT(r.n, 6);
	CHECK_INT(r.steps[0], 300);
	CHECK_INT(r.steps[5], 4 * 3600);
	CHECK_INT(queue_retry_delay(&r, 1), 300);
	CHECK_INT(queue_retry_delay(&r, 2), 600);
	CHECK_INT(queue_retry_delay(&r, 6), 4 * 3600);
	/* After the last interval: the last, again and again. */
	CHECK_INT(queue_retry_delay(&r, 7), 4 * 3600);
	CHECK_INT(queue_retry_delay(&r, 1000), 4 * 3600);
	CHECK_INT(queue_retry_delay(&r, 0), 300);
	CHECK_INT(queue_retry_parse(" 1s , 2 ,1d", &r, &err), 0);
	CHECK_INT(r.n, 3);
	CHECK_INT(r.steps[1], 2);
	CHECK_INT(r.steps[2], 86400);
	CHECK_INT(queue_retry_parse("1s", &r, &err), 0);
	CHECK_INT(queue_retry_delay(&r, 5), 1);
}

static void test_retry_parse_bad(void)
{
	struct queue_retry r;
	const char *err = NULL;

	CHECK_INT(queue_retry_parse("", &r, &err), -1);
	CHECK(err != NULL);
	CHECK_INT(queue_retry_parse("5m,,10m", &r, &err), -1);
	CHECK_INT(queue_retry_parse("5m,", &r, &err), -1);
	CHECK_INT(queue_retry_parse("5x", &r, &err), -1);
	CHECK_INT(queue_retry_parse("0s", &r, &err), -1);
	CHECK_INT(queue_retry_parse("-5m", &r, &err), -1);
	CHECK_INT(queue_retry_parse("40d", &r, &err), -1);
	CHECK_INT(queue_retry_parse("1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,"
				    "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
				    &r, &err),
		  -1);
}

static void test_route_host(void)
{
	struct queue_route r;
	const char *err = NULL;

	CHECK_INT(queue_route_parse_host("[127.0.0.1]:2525", &r, &err), 0);
	CHECK_STR(r.host, "127.0.0.1");
	CHECK(r.literal);
	CHECK_INT(r.port, 2525);
	CHECK_INT(queue_route_parse_host("smtp.example.com", &r, &err), 0);
	CHECK_STR(r.host, "smtp.example.com");
	CHECK(!r.literal);
	CHECK_INT(r.port, 25);
	CHECK_INT(queue_route_parse_host("smtp.example.com:587", &r, &err), 0);
	CHECK_INT(r.port, 587);
	CHECK_INT(queue_route_parse_host("[::1]:25", &r, &err), 0);
	CHECK_STR(r.host, "::1");
	CHECK_INT(queue_route_parse_host("[relay.test]", &r, &err), 0);
	CHECK(r.literal);
	CHECK_INT(r.port, 25);
	CHECK_INT(queue_route_parse_host("", &r, &err), -1);
	CHECK_INT(queue_route_parse_host("[127.0.0.1", &r, &err), -1);
	CHECK_INT(queue_route_parse_host("[127.0.0.1]x", &r, &err), -1);
	CHECK_INT(queue_route_parse_host("host:0", &r, &err), -1);
	CHECK_INT(queue_route_parse_host("host:70000", &r, &err), -1);
	CHECK_INT(queue_route_parse_host("host:25x", &r, &err), -1);
	CHECK_INT(queue_route_parse_host("ho st", &r, &err), -1);
	CHECK_INT(queue_route_parse_host(":25", &r, &err), -1);
}

static void test_routes(void)
{
	const char *table = "example.com=relay:[127.0.0.1]:2525, bad.test=reject,"
			    " *.corp.test=direct tls=require, * = relay:smart.test:587";
	struct queue_route r;
	const char *err = NULL;

	CHECK_INT(queue_routes_validate(table, &err), 0);
	CHECK_INT(queue_routes_lookup(table, "example.com", &r, &err), 1);
	CHECK_INT(r.kind, QUEUE_ROUTE_RELAY);
	CHECK_STR(r.host, "127.0.0.1");
	CHECK_INT(r.port, 2525);
	CHECK_INT(r.tls, QUEUE_TLS_MAY);
	CHECK_INT(queue_routes_lookup(table, "BAD.test", &r, &err), 1);
	CHECK_INT(r.kind, QUEUE_ROUTE_REJECT);
	CHECK_INT(queue_routes_lookup(table, "a.b.corp.test", &r, &err), 1);
	CHECK_INT(r.kind, QUEUE_ROUTE_DIRECT);
	CHECK_INT(r.tls, QUEUE_TLS_REQUIRE);
	/* *.corp.test is not corp.test itself: "*" takes that. */
	CHECK_INT(queue_routes_lookup(table, "corp.test", &r, &err), 1);
	CHECK_INT(r.kind, QUEUE_ROUTE_RELAY);
	CHECK_STR(r.host, "smart.test");
	CHECK_INT(r.port, 587);
	/* An exact domain beats a wildcard written before it. */
	CHECK_INT(queue_routes_lookup("*=reject,x.test=direct", "x.test", &r, &err), 1);
	CHECK_INT(r.kind, QUEUE_ROUTE_DIRECT);
	CHECK_INT(queue_routes_lookup("a.test=reject", "b.test", &r, &err), 0);
	CHECK_INT(queue_routes_lookup("", "b.test", &r, &err), 0);
	CHECK_INT(queue_routes_validate("", &err), 0);
	CHECK_INT(queue_routes_validate(" , a.test=direct ,", &err), 0);
}

static void test_routes_bad(void)
{
	struct queue_route r;
	const char *err = NULL;

	CHECK_INT(queue_routes_validate("example.com", &err), -1);
	CHECK(err != NULL);
	CHECK_INT(queue_routes_validate("example.com=", &err), -1);
	CHECK_INT(queue_routes_validate("example.com=deliver", &err), -1);
	CHECK_INT(queue_routes_validate("example.com=relay:", &err), -1);
	CHECK_INT(queue_routes_validate("example.com=relay:[1.2.3.4]:99999", &err), -1);
	CHECK_INT(queue_routes_validate("example.com=direct tls=maybe", &err), -1);
	CHECK_INT(queue_routes_validate("ex ample.com=direct", &err), -1);
	CHECK_INT(queue_routes_validate("*x.com=direct", &err), -1);
	CHECK_INT(queue_routes_validate("=direct", &err), -1);
	CHECK_INT(queue_routes_lookup("a.test=direct,b.test=bogus", "a.test", &r, &err), -1);
}

int main(void)
{
	TEST_RUN(test_retry_parse);
	TEST_RUN(test_retry_parse_bad);
	TEST_RUN(test_route_host);
	TEST_RUN(test_routes);
	TEST_RUN(test_routes_bad);
	return test_summary();
}
