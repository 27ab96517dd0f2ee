/* Base64 (RFC 4648, standard alphabet, padded), as SASL uses it. */
#ifndef KEEL_LIB_BASE64_H
#define KEEL_LIB_BASE64_H

#include <stddef.h>

/* Decodes len characters of in (no whitespace allowed; padding required
 * for a length that is not a multiple of 4) into out, which has room for
 * at least len / 4 * 3 bytes.  Returns the decoded length, or -1 for input
 * that is not canonical base64. */
long base64_decode(const char *in, size_t len, unsigned char *out);
/* Encodes len bytes into out (room for 4 * ((len + 2) / 3) + 1), NUL-ended;
 * returns the encoded length. */
size_t base64_encode(const unsigned char *in, size_t len, char *out);

#endif
