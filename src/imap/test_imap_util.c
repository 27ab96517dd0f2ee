#include <stdlib.h>

#include "imap/imap_private.h"
#include "imap/imap_recent.h"
#include "lib/test.h"

static void test_dates(void)
{
	time_t t;
	char buf[64];

	CHECK_INT(imap_date_time_parse("17-Jul-1996 02:44:25 -0700", &t), 0);
	CHECK_INT(t, 837596665);
	imap_date_time_format(t, buf, sizeof(buf));
	CHECK_STR(buf, "17-Jul-1996 09:44:25 +0000");
	CHECK_INT(imap_date_time_parse(" 5-Mar-2026 12:34:56 +0100", &t), 0);
	imap_date_time_format(t, buf, sizeof(buf));
	CHECK_STR(buf, "05-Mar-2026 11:34:56 +0000");
	CHECK_INT(imap_date_time_parse("17-Foo-1996 02:44:25 -0700", &t), -1);
	CHECK_INT(imap_date_time_parse("17-Jul-1996 02:44:25", &t), -1);
	CHECK_INT(imap_date_time_parse("17-Jul-1996 25:44:25 +0000", &t), -1);
	CHECK_INT(imap_date_time_parse("17-Jul-1996 02:44:25 +0000 x", &t), -1);
	CHECK_INT(imap_date_parse("1-Feb-1994", &t), 0);
	CHECK_INT(t, 760060800);
	CHECK_INT(imap_date_parse("1-Feb-1994x", &t), -1);
	CHECK_INT(imap_date_parse("32-Feb-1994", &t), -1);
}

static void test_uidset(void)
{
	const uint32_t uids[] = { 1, 2, 3, 7, 9, 10, 4294967295u };
	char *s = imap_uidset_format(uids, 7);

	CHECK_STR(s, "1:3,7,9:10,4294967295");
	free(s);
	s = imap_uidset_format(uids, 0);
	CHECK_STR(s, "");
	free(s);
}

static void test_flags(void)
{
	struct imap_arg list[4] = {
		{ .type = IMAP_ARG_ATOM, .str = "\\Seen", .len = 5 },
		{ .type = IMAP_ARG_ATOM, .str = "$Work", .len = 5 },
		{ .type = IMAP_ARG_ATOM, .str = "\\deleted", .len = 8 },
		{ .type = IMAP_ARG_EOL },
	};
	struct imap_arg arg = { .type = IMAP_ARG_LIST, .list = list, .n = 3 };
	struct imap_arg bad = { .type = IMAP_ARG_ATOM, .str = "\\Recent", .len = 7 };
	struct imap_arg badkw = { .type = IMAP_ARG_ATOM, .str = "a%b", .len = 3 };
	const char *error;
	uint32_t flags;
	char kw[64];

	CHECK_INT(imap_flags_parse(&arg, &flags, kw, sizeof(kw), &error), 0);
	CHECK_INT(flags, STORE_FLAG_SEEN | STORE_FLAG_DELETED);
	CHECK_STR(kw, "$Work");
	CHECK_INT(imap_flags_parse(&bad, &flags, kw, sizeof(kw), &error), -1);
	CHECK_INT(imap_flags_parse(&badkw, &flags, kw, sizeof(kw), &error), -1);
}

static void test_recent(void)
{
	struct imap_recent *r = imap_recent_new();

	CHECK_INT(imap_recent_peek(r, 7), 1);
	CHECK_INT(imap_recent_claim(r, 7, 5), 1);  /* uids 1..4 are ours */
	CHECK_INT(imap_recent_claim(r, 7, 5), 5);  /* nothing left for the next one */
	CHECK_INT(imap_recent_claim(r, 7, 3), 5);  /* never goes back */
	CHECK_INT(imap_recent_peek(r, 7), 5);
	CHECK_INT(imap_recent_claim(r, 7 + 1024, 2), 1); /* same bucket, own entry */
	imap_recent_forget(r, 7);
	CHECK_INT(imap_recent_peek(r, 7), 1);
	CHECK_INT(imap_recent_peek(r, 7 + 1024), 2);
	imap_recent_free(&r);
	CHECK(r == NULL);
}

static void test_casemem(void)
{
	CHECK(imap_memcasemem("Hello World", 11, "WORLD", 5));
	CHECK(!imap_memcasemem("Hello World", 11, "WORLDS", 6));
	CHECK(imap_memcasemem("a\0bc", 4, "BC", 2));
	CHECK(imap_memcasemem("", 0, "", 0));
}

/* RFC 3501 5.1.3 modified UTF-7, and its canonical-form checks. */
static void test_mutf7(void)
{
	char buf[64];

	CHECK_INT(imap_mutf7_encode("Entw\xc3\xbcrfe/Sp\xc3\xa4t", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Entw&APw-rfe/Sp&AOQ-t");
	CHECK_INT(imap_mutf7_encode("a&b", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "a&-b");
	/* Outside the BMP: a surrogate pair. */
	CHECK_INT(imap_mutf7_encode("\xf0\x9f\x93\xa7", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "&2D3c5w-");
	CHECK_INT(imap_mutf7_decode("&2D3c5w-", 8, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "\xf0\x9f\x93\xa7");
	CHECK_INT(imap_mutf7_decode("Entw&APw-rfe", 12, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Entw\xc3\xbcrfe");
	CHECK_INT(imap_mutf7_decode("a&-b", 4, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "a&b");
	CHECK_INT(imap_mutf7_decode("&AGE-", 5, buf, sizeof(buf)), -1); /* "a" encoded */
	CHECK_INT(imap_mutf7_decode("&APw", 4, buf, sizeof(buf)), -1);  /* no "-" */
	CHECK_INT(imap_mutf7_decode("&2D0-", 5, buf, sizeof(buf)), -1); /* lone surrogate */
	CHECK_INT(imap_mutf7_decode("&APx-", 5, buf, sizeof(buf)), -1); /* bits left over */
	CHECK_INT(imap_mutf7_encode("\xff", buf, sizeof(buf)), -1);     /* not UTF-8 */
	CHECK_INT(imap_mutf7_encode("\xc3\xbc\xc3\xbc\xc3\xbc", buf, 6), -1); /* too long */
}

int main(void)
{
	TEST_RUN(test_dates);
	TEST_RUN(test_uidset);
	TEST_RUN(test_flags);
	TEST_RUN(test_recent);
	TEST_RUN(test_casemem);
	TEST_RUN(test_mutf7);
	return test_summary();
}
