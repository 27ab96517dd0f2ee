/* The parts of the anti-abuse checks that need no server (docs/abuse.md):
 * dnsbl.zones parsing, DNSBL query names, and the per-IP counters' windows
 * and blocks (with explicit times). */
#include <stdio.h>
#include <string.h>

#include "access/clientlimit.h"
#include "access/dnsbl.h"
#include "lib/test.h"

static void test_zones_parse(void)
{
	struct dnsbl_zone z[DNSBL_ZONES_MAX];
	const char *err = NULL;
	char many[1024] = "";
	size_t n;

	CHECK_INT(dnsbl_zones_parse("", z, &n, &err), 0);
	CHECK_INT(n, 0);
	CHECK_INT(dnsbl_zones_parse(" bl.test , mk.test=mark,x.test=reject,", z, &n, &err), 0);
	CHECK_INT(n, 3);
	CHECK_STR(z[0].name, "bl.test");
	CHECK(z[0].reject);
	CHECK_STR(z[1].name, "mk.test");
	CHECK(!z[1].reject);
	CHECK(z[2].reject);
	CHECK_INT(dnsbl_zones_parse("bl.test=drop", z, &n, &err), -1);
	CHECK(err != NULL && strstr(err, "reject or mark") != NULL);
	CHECK_INT(dnsbl_zones_parse("bad..zone", z, &n, &err), -1);
	CHECK_INT(dnsbl_zones_parse("sp ace.test", z, &n, &err), -1);
	CHECK_INT(dnsbl_zones_parse(".lead.test", z, &n, &err), -1);
	for (int i = 0; i < DNSBL_ZONES_MAX + 1; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), "z%d.test,", i);
	CHECK_INT(dnsbl_zones_parse(many, z, &n, &err), -1);
	CHECK(strstr(err, "16") != NULL);
}

static void test_query_name(void)
{
	char buf[300];

	CHECK_INT(dnsbl_query_name("127.0.0.2", "bl.test", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "2.0.0.127.bl.test");
	CHECK_INT(dnsbl_query_name("192.0.2.99", "zen.example", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "99.2.0.192.zen.example");
	/* RFC 5782 section 2.4: nibbles, low first. */
	CHECK_INT(dnsbl_query_name("2001:db8:1:2:3:4:567:89ab", "bl.test", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test");
	CHECK_INT(dnsbl_query_name("not-an-ip", "bl.test", buf, sizeof(buf)), -1);
	CHECK_INT(dnsbl_query_name("127.0.0.2", "bl.test", buf, 10), -1);
}

static void test_clientlimit(void)
{
	time_t t = 1000000, until = 0;

	clientlimit_reset();
	/* Messages: max in the window, then over; a new window starts afresh. */
	CHECK(!clientlimit_messages_over("127.0.0.9", 2, t));
	clientlimit_message_count("127.0.0.9", t);
	clientlimit_message_count("127.0.0.9", t + 10);
	CHECK(clientlimit_messages_over("127.0.0.9", 2, t + 20));
	CHECK(!clientlimit_messages_over("127.0.0.9", 3, t + 20));
	CHECK(!clientlimit_messages_over("127.0.0.9", 0, t + 20));
	CHECK(!clientlimit_messages_over("127.0.0.8", 2, t + 20));
	CHECK(clientlimit_messages_over("127.0.0.9", 2, t + CLIENTLIMIT_WINDOW - 1));
	CHECK(!clientlimit_messages_over("127.0.0.9", 2, t + CLIENTLIMIT_WINDOW));
	/* Unknown recipients: the max-th blocks for block_time. */
	CHECK(!clientlimit_unknown_rcpt("127.0.0.7", 3, 60, t));
	CHECK(!clientlimit_unknown_rcpt("127.0.0.7", 3, 60, t + 1));
	CHECK(!clientlimit_blocked("127.0.0.7", t + 1, &until));
	CHECK(clientlimit_unknown_rcpt("127.0.0.7", 3, 60, t + 2));
	CHECK(clientlimit_blocked("127.0.0.7", t + 3, &until));
	CHECK_INT(until, t + 62);
	CHECK(!clientlimit_blocked("127.0.0.7", t + 62, &until));
	CHECK(!clientlimit_blocked("127.0.0.6", t + 3, &until));
	/* 0: no limit. */
	for (int i = 0; i < 10; i++)
		CHECK(!clientlimit_unknown_rcpt("127.0.0.5", 0, 60, t));
	clientlimit_reset();
	CHECK(!clientlimit_blocked("127.0.0.7", t + 3, &until));
}

int main(void)
{
	TEST_RUN(test_zones_parse);
	TEST_RUN(test_query_name);
	TEST_RUN(test_clientlimit);
	return test_summary();
}
