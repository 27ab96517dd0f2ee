/* Content-Transfer-Encoding (RFC 2045 §6) undone, for FETCH BINARY and
 * BINARY.SIZE (RFC 3516) and for the full-text index (mime_text.c): a
 * part's body as its content, without the encoding that made it fit in a
 * 7-bit message.  Works on one part's body
 * (a byte range of the stored message), never on a whole message. */
#ifndef KEEL_MAIL_MIME_DECODE_H
#define KEEL_MAIL_MIME_DECODE_H

#include <stddef.h>

enum mime_cte {
	MIME_CTE_IDENTITY, /* 7bit, 8bit, binary: the octets as they are */
	MIME_CTE_BASE64,
	MIME_CTE_QP,       /* quoted-printable */
	MIME_CTE_UNKNOWN,  /* anything else: IMAP answers NO [UNKNOWN-CTE] */
};

/* The encoding named by a Content-Transfer-Encoding value (struct
 * mime_part's encoding; ASCII case ignored). */
enum mime_cte mime_cte_from_name(const char *name);

/* Decodes in[0, len) (not MIME_CTE_UNKNOWN) into a new NUL-terminated
 * buffer, its length in *len_r.  Decoding is lenient like mail readers:
 * base64 skips octets outside its alphabet and stops at '='; in
 * quoted-printable "=" + two hex digits is an octet, "=" before a line end
 * (spaces allowed) a soft break, and any other "=" stays; a line end stays
 * as sent (CRLF or LF).  The result is never longer than the input. */
char *mime_cte_decode(enum mime_cte cte, const char *in, size_t len, size_t *len_r);

/* The Q encoding of an RFC 2047 encoded-word (§4.2): quoted-printable with
 * '_' for a space.  Same contract as mime_cte_decode(). */
char *mime_q_decode(const char *in, size_t len, size_t *len_r);

/* The value of a hex digit (either case), or -1. */
int mime_hex_value(unsigned char c);

#endif
