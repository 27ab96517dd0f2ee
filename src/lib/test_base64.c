#include <string.h>

#include "lib/base64.h"
#include "lib/test.h"

static void test_roundtrip(void)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar",
					     "\0user\0pass" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					     "Zm9vYmFy", "AHVzZXIAcGFzcw==" };
	static const size_t lens[] = { 0, 1, 2, 3, 4, 5, 6, 10 };
	unsigned char out[64];
	char enc[64];

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		CHECK_INT(base64_decode(coded[i], strlen(coded[i]), out), (long)lens[i]);
		CHECK(memcmp(out, plain[i], lens[i]) == 0);
		CHECK_INT(base64_encode((const unsigned char *)plain[i], lens[i], enc),
			  strlen(coded[i]));
		CHECK_STR(enc, coded[i]);
	}
}

static void test_invalid(void)
{
	static const char *const bad[] = { "Zg", "Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "=Zg=",
					   "Zm 9v", "Zg=a" };
	unsigned char out[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(base64_decode(bad[i], strlen(bad[i]), out), -1);
}

int main(void)
{
	TEST_RUN(test_roundtrip);
	TEST_RUN(test_invalid);
	return test_summary();
}
