#include "mail/mime_decode.h"

#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "lib/xalloc.h"

/* Decodes s from an allocation of exactly its length (ASan catches any
 * read past it) and compares with want[0, want_len). */
static void check_decode(enum mime_cte cte, const char *s, const char *want, size_t want_len)
{
	size_t len = strlen(s), n = 99;
	char *in = xmalloc(len + 1);
	char *out;

	memcpy(in, s, len);
	out = mime_cte_decode(cte, in, len, &n);
	CHECK_INT(n, want_len);
	CHECK(n == want_len && memcmp(out, want, n) == 0);
	CHECK(out[n] == '\0');
	free(out);
	free(in);
}

static void test_names(void)
{
	CHECK_INT(mime_cte_from_name("base64"), MIME_CTE_BASE64);
	CHECK_INT(mime_cte_from_name("Base64"), MIME_CTE_BASE64);
	CHECK_INT(mime_cte_from_name("quoted-printable"), MIME_CTE_QP);
	CHECK_INT(mime_cte_from_name("7bit"), MIME_CTE_IDENTITY);
	CHECK_INT(mime_cte_from_name("8BIT"), MIME_CTE_IDENTITY);
	CHECK_INT(mime_cte_from_name("binary"), MIME_CTE_IDENTITY);
	CHECK_INT(mime_cte_from_name(NULL), MIME_CTE_IDENTITY);
	CHECK_INT(mime_cte_from_name("x-uuencode"), MIME_CTE_UNKNOWN);
	CHECK_INT(mime_cte_from_name("base64x"), MIME_CTE_UNKNOWN);
}

static void test_base64(void)
{
	check_decode(MIME_CTE_BASE64, "aGVsbG8=", "hello", 5);
	check_decode(MIME_CTE_BASE64, "aGVs\r\nbG8gd29y\r\nbGQ=\r\n", "hello world", 11);
	check_decode(MIME_CTE_BASE64, "AAEC/w==", "\0\1\2\377", 4);
	check_decode(MIME_CTE_BASE64, "", "", 0);
	check_decode(MIME_CTE_BASE64, "a*G!V sbG8", "hello", 5); /* junk skipped */
	check_decode(MIME_CTE_BASE64, "aGk=aGk=", "hi", 2);      /* '=' ends it */
	check_decode(MIME_CTE_BASE64, "a", "", 0);
}

static void test_qp(void)
{
	check_decode(MIME_CTE_QP, "caf=C3=A9", "caf\303\251", 5);
	check_decode(MIME_CTE_QP, "soft=\r\nbreak", "softbreak", 9);
	check_decode(MIME_CTE_QP, "soft= \t\nbreak", "softbreak", 9);
	check_decode(MIME_CTE_QP, "a\r\nb", "a\r\nb", 4);
	check_decode(MIME_CTE_QP, "x=3", "x=3", 3);   /* short escape stays */
	check_decode(MIME_CTE_QP, "x=zz", "x=zz", 4); /* bad escape stays */
	check_decode(MIME_CTE_QP, "end=", "end", 3);
	check_decode(MIME_CTE_QP, "=00", "\0", 1);
}

static void test_q(void)
{
	size_t n = 99;
	char *out = mime_q_decode("caf=C3=A9_au_lait=", 18, &n);

	CHECK_INT(n, 13);
	CHECK(n == 13 && memcmp(out, "caf\303\251 au lait", 13) == 0 && out[n] == '\0');
	free(out);
	CHECK_INT(mime_hex_value('a'), 10);
	CHECK_INT(mime_hex_value('F'), 15);
	CHECK_INT(mime_hex_value('9'), 9);
	CHECK_INT(mime_hex_value('g'), -1);
	CHECK_INT(mime_hex_value('/'), -1);
}

static void test_identity(void)
{
	check_decode(MIME_CTE_IDENTITY, "as=41 is", "as=41 is", 8);
}

int main(void)
{
	TEST_RUN(test_names);
	TEST_RUN(test_base64);
	TEST_RUN(test_qp);
	TEST_RUN(test_identity);
	TEST_RUN(test_q);
	return test_summary();
}
