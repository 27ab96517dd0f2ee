/* UTF-8 well-formedness (RFC 3629), the one check every parser uses. */
#ifndef KEEL_LIB_UTF8_H
#define KEEL_LIB_UTF8_H

#include <stddef.h>

/* Length of the well-formed character at s, given avail octets there: 1 for
 * ASCII, 2 to 4 for a multi-octet sequence, 0 for anything else (a stray
 * continuation octet, an overlong form, a surrogate, a code point past
 * U+10FFFF, or a sequence cut short by avail).  A NUL-terminated string may
 * pass a generous avail: a NUL fails the continuation test, so nothing past
 * it is read. */
size_t utf8_seq_len(const unsigned char *s, size_t avail);

#endif
