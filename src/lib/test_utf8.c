#include "lib/test.h"
#include "lib/utf8.h"

static size_t len_of(const char *s, size_t avail)
{
	return utf8_seq_len((const unsigned char *)s, avail);
}

static void test_valid(void)
{
	CHECK_INT(len_of("a", 1), 1);
	CHECK_INT(len_of("\xc3\xa9", 2), 2);          /* é */
	CHECK_INT(len_of("\xe2\x82\xac", 3), 3);      /* € */
	CHECK_INT(len_of("\xf0\x9f\x98\x80", 4), 4);  /* U+1F600 */
	CHECK_INT(len_of("\xf4\x8f\xbf\xbf", 4), 4);  /* U+10FFFF */
	CHECK_INT(len_of("\xed\x9f\xbf", 3), 3);      /* U+D7FF */
}

static void test_invalid(void)
{
	CHECK_INT(len_of("\x80", 1), 0);              /* stray continuation */
	CHECK_INT(len_of("\xc0\xaf", 2), 0);          /* overlong '/' */
	CHECK_INT(len_of("\xc1\xbf", 2), 0);
	CHECK_INT(len_of("\xe0\x9f\xbf", 3), 0);      /* overlong */
	CHECK_INT(len_of("\xed\xa0\x80", 3), 0);      /* surrogate */
	CHECK_INT(len_of("\xf0\x8f\xbf\xbf", 4), 0);  /* overlong */
	CHECK_INT(len_of("\xf4\x90\x80\x80", 4), 0);  /* past U+10FFFF */
	CHECK_INT(len_of("\xf5\x80\x80\x80", 4), 0);
	CHECK_INT(len_of("\xe2\x82", 2), 0);          /* cut short by avail */
	CHECK_INT(len_of("\xe2\x82\xac", 2), 0);
	CHECK_INT(len_of("\xc3", 1), 0);
	CHECK_INT(len_of("\xe2\x82", 8), 0);          /* the NUL after it fails */
}

int main(void)
{
	TEST_RUN(test_valid);
	TEST_RUN(test_invalid);
	return test_summary();
}
