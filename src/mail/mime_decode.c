#include "mail/mime_decode.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

enum mime_cte mime_cte_from_name(const char *name)
{
	static const struct {
		const char *name;
		enum mime_cte cte;
	} names[] = {
		{ "7bit", MIME_CTE_IDENTITY }, { "8bit", MIME_CTE_IDENTITY },
		{ "binary", MIME_CTE_IDENTITY }, { "base64", MIME_CTE_BASE64 },
		{ "quoted-printable", MIME_CTE_QP },
	};

	if (name == NULL || *name == '\0')
		return MIME_CTE_IDENTITY; /* absent: 7bit (RFC 2045 §6.1) */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(name, names[i].name) == 0)
			return names[i].cte;
	return MIME_CTE_UNKNOWN;
}

/* The 6-bit value of a base64 alphabet octet, or -1. */
static int b64_digit(unsigned char c)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p = c != '\0' ? strchr(alphabet, c) : NULL;

	return p != NULL ? (int)(p - alphabet) : -1;
}

static size_t decode_b64(const unsigned char *in, size_t len, unsigned char *out)
{
	uint32_t bits = 0;
	unsigned nbits = 0;
	size_t n = 0;

	for (size_t i = 0; i < len && in[i] != '='; i++) {
		int v = b64_digit(in[i]);

		if (v < 0)
			continue;
		bits = (bits << 6 | (uint32_t)v) & 0xfffu;
		nbits += 6;
		if (nbits >= 8) {
			nbits -= 8;
			out[n++] = (unsigned char)(bits >> nbits);
		}
	}
	return n;
}

int mime_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Where a soft line break starting at in[i] ("=" then spaces, then a line
 * end or the end of input) ends, or 0 when it is not one. */
static size_t qp_soft_break(const unsigned char *in, size_t len, size_t i)
{
	size_t j = i + 1;

	while (j < len && (in[j] == ' ' || in[j] == '\t'))
		j++;
	if (j < len && in[j] == '\r' && j + 1 < len && in[j + 1] == '\n')
		j++;
	if (j == len)
		return j;
	return in[j] == '\n' ? j + 1 : 0;
}

/* q: the Q encoding of RFC 2047 §4.2, where '_' is a space. */
static size_t decode_qp(const unsigned char *in, size_t len, unsigned char *out, bool q)
{
	size_t n = 0, i = 0;

	while (i < len) {
		int hi, lo;
		size_t next;

		if (q && in[i] == '_') {
			out[n++] = ' ';
			i++;
		} else if (in[i] != '=') {
			out[n++] = in[i++];
		} else if (i + 2 < len && (hi = mime_hex_value(in[i + 1])) >= 0 &&
			   (lo = mime_hex_value(in[i + 2])) >= 0) {
			out[n++] = (unsigned char)(hi << 4 | lo);
			i += 3;
		} else if ((next = qp_soft_break(in, len, i)) != 0) {
			i = next;
		} else {
			out[n++] = in[i++];
		}
	}
	return n;
}

char *mime_cte_decode(enum mime_cte cte, const char *in, size_t len, size_t *len_r)
{
	unsigned char *out = xmalloc(len + 1);
	const unsigned char *u = (const unsigned char *)in;

	switch (cte) {
	case MIME_CTE_BASE64: *len_r = decode_b64(u, len, out); break;
	case MIME_CTE_QP: *len_r = decode_qp(u, len, out, false); break;
	default:
		if (len > 0)
			memcpy(out, in, len);
		*len_r = len;
		break;
	}
	out[*len_r] = '\0';
	return (char *)out;
}

char *mime_q_decode(const char *in, size_t len, size_t *len_r)
{
	unsigned char *out = xmalloc(len + 1);

	*len_r = decode_qp((const unsigned char *)in, len, out, true);
	out[*len_r] = '\0';
	return (char *)out;
}
