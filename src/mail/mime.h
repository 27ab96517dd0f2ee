/* MIME structure of a raw RFC 5322 message, and what IMAP derives from it:
 * ENVELOPE, BODY and BODYSTRUCTURE, FETCH BODY[section] byte ranges, and
 * decoded text for full-text search.
 *
 * The message is given as bytes and a length: it need not be
 * NUL-terminated, may hold NULs, bare CRs or LFs, and may be malformed in
 * any way.  Nothing here reads past len, recurses without bound or does
 * I/O, so every function is safe on any thread (each on its own tree) and
 * the whole module is fuzzed alone (fuzz/fuzz_mime.c).  Lines end in LF
 * with an optional CR before it, as in mail/header.h, whose rules for
 * header sections and fields apply to every part's header here.
 *
 * Keel parses a message once, at delivery: the derived strings and the
 * serialized tree (mime_structure_serialize()) go to the store, and a FETCH
 * answers from them without parsing the message again.
 *
 * The tree.  The root part is the message: its header is the message
 * header, its body the message body.  A multipart part has its body parts
 * as children (RFC 2046 §5.1.1: the preamble before the first boundary and
 * the epilogue after the close boundary belong to no child; the line end
 * before a boundary line belongs to the boundary; a boundary line may end
 * in spaces or tabs; a missing close boundary ends the last part at the end
 * of the multipart; a boundary of an enclosing multipart ends every part
 * inside it, because each part is cut out of its parent's range first).  A
 * message/rfc822 or message/global part whose Content-Transfer-Encoding is
 * 7bit, 8bit or binary has exactly one child: the embedded message, a part
 * whose header starts where its parent's body starts.
 *
 * Limits.  A part at depth MIME_MAX_DEPTH - 1 (the root is at 0) gets no
 * children, and no part is created once the tree holds MIME_MAX_PARTS: the
 * content such a part would have been split into stays in its body as
 * opaque octets, and the part is marked MIME_PART_TRUNCATED (a multipart
 * cut off this way keeps the children it already has; the rest of its body
 * counts as epilogue).  Parsing work is at most MIME_MAX_DEPTH passes over
 * the message; memory is proportional to the number of parts. */
#ifndef KEEL_MAIL_MIME_H
#define KEEL_MAIL_MIME_H

#include <stdbool.h>
#include <stddef.h>

#define MIME_MAX_DEPTH  100   /* levels of parts, the root included */
#define MIME_MAX_PARTS  10000 /* parts in one tree, the root included */
#define MIME_MAX_PARAMS 64    /* parameters kept from one Content-Type or -Disposition */
/* A string longer than this goes out as an IMAP literal even when it
 * could be quoted. */
#define MIME_IMAP_QUOTED_MAX 1024

enum mime_part_flags {
	/* A limit stopped the parser here: what this part contains beyond its
	 * existing children is not parsed. */
	MIME_PART_TRUNCATED = 1 << 0,
	/* A multipart whose close boundary was missing. */
	MIME_PART_NO_CLOSE = 1 << 1,
};

/* One Content-Type or Content-Disposition parameter, after RFC 2231:
 * continuations (name*0, name*1, ...) are joined, and an extended value
 * (name*=charset'language'%XX...) is percent-decoded. */
struct mime_param {
	char *name;  /* lower case, without the RFC 2231 '*' and section */
	char *value; /* NUL-terminated; value_len counts a decoded %00 too */
	size_t value_len;
	char *charset;  /* RFC 2231 charset ("" when given empty); NULL unless extended */
	char *language; /* RFC 2231 language, likewise */
	bool extended;  /* the value was in RFC 2231 charset'language'%XX form */
};

/* Offsets are into the message the tree was parsed from:
 *   header_start <= header_end <= body_start <= body_end <= message length.
 * [header_start, body_start) is the header section with the empty line
 * that ends it (FETCH BODY[x.MIME], BODY[HEADER]); [header_start,
 * header_end) is the same without that empty line; [body_start, body_end)
 * is the body (FETCH BODY[x], BODY[TEXT]).  A header that ends without an
 * empty line (at the end of the message or at a boundary) has
 * header_end == body_start. */
struct mime_part {
	struct mime_part *parent, *children, *next; /* children: first child; next: sibling */
	unsigned child_count;
	unsigned depth; /* 0 for the root */
	unsigned flags; /* enum mime_part_flags */
	size_t header_start, header_end, body_start, body_end;
	size_t body_lines; /* line ends in the body, plus one for a last line without one */

	/* Content-Type: lower case; text/plain by default (message/rfc822
	 * inside multipart/digest); an invalid value also gives the default. */
	char *type, *subtype;
	struct mime_param *params;
	unsigned param_count;
	/* Content-Transfer-Encoding, lower case, "7bit" when absent or not a
	 * token. */
	char *encoding;
	/* Content-Disposition type, lower case, and its parameters; NULL and
	 * 0 when absent. */
	char *disposition;
	struct mime_param *disp_params;
	unsigned disp_param_count;
	/* Unfolded, trimmed field values (header_get()), NULL when absent. */
	char *id, *description, *md5, *location;
	/* Content-Language tags, comments and spaces removed. */
	char **languages;
	unsigned language_count;
};

/* Read-only for callers.  parts[] lists every part in pre-order (parents
 * before children, children in order): parts[0] is the root. */
struct mime_tree {
	struct mime_part *root;
	struct mime_part **parts;
	unsigned part_count;
};

/* Parses msg[0, len) into a new tree.  Every input gives a tree (garbage
 * is a text/plain message with an empty header, or the like), so this
 * cannot fail.  The tree does not point into msg. */
struct mime_tree *mime_parse(const char *msg, size_t len);
/* Frees the tree and sets *tree to NULL; NULL is fine. */
void mime_tree_free(struct mime_tree **tree);

/* The value of the first parameter called name (ASCII case ignored) of the
 * part's Content-Type, or NULL. */
const char *mime_part_param(const struct mime_part *part, const char *name);
/* Whether the part is a multipart (its body parts are its children, if
 * any were found). */
bool mime_part_is_multipart(const struct mime_part *part);
/* Whether the part is message/rfc822 or message/global with its embedded
 * message parsed as its only child. */
bool mime_part_is_message(const struct mime_part *part);

/* IMAP strings (RFC 3501 §7.4.2, RFC 9051 §7.5.2), each newly allocated
 * and NUL-terminated, ready to follow "ENVELOPE ", "BODY " or
 * "BODYSTRUCTURE " in a FETCH response (outer parentheses included).  A
 * string is quoted ("\" and '"' escaped) when it is 7-bit, holds no CR,
 * LF or NUL and is at most MIME_IMAP_QUOTED_MAX octets, and sent as a
 * literal "{n}\r\n..." otherwise.  Octet counts are of the stored message
 * as it is (a message with bare LFs counts them as one octet each), so
 * they agree with the bytes FETCH BODY[section] returns from it.  msg must
 * be the message the tree came from; offsets past len (a tree that does not
 * belong to msg) read as empty, never past len. */

/* ENVELOPE of the message whose header is part's header (the root, or the
 * child of a message/rfc822 part): (date subject from sender reply-to to cc
 * bcc in-reply-to message-id).  Values are the raw, unfolded field values
 * (RFC 2047 encoded-words are left as they are); a missing field is NIL;
 * an empty or missing Sender or Reply-To is the From list.  Addresses are
 * (name adl mailbox host); a group is opened by (NIL NIL "name" NIL) and
 * closed by (NIL NIL NIL NIL); an address without a domain gets the host
 * "MISSING_DOMAIN", an empty local part the mailbox "MISSING_MAILBOX". */
char *mime_imap_envelope(const char *msg, size_t len, const struct mime_part *part);
/* BODYSTRUCTURE (extended true) or BODY (false) of the whole tree.  A
 * multipart without body parts shows one empty text/plain part, and a
 * message/rfc822 part whose embedded message is not parsed shows an empty
 * envelope and body, as the grammar needs them.  A text part without a
 * charset parameter shows charset us-ascii. */
char *mime_imap_bodystructure(const char *msg, size_t len, const struct mime_tree *tree,
                              bool extended);

enum mime_section_kind {
	MIME_SECTION_ALL,           /* "": the whole message */
	MIME_SECTION_BODY,          /* "1.2": the part's body */
	MIME_SECTION_HEADER,        /* "HEADER", "3.HEADER" */
	MIME_SECTION_HEADER_FIELDS, /* "HEADER.FIELDS": the range of the header to filter */
	MIME_SECTION_HEADER_FIELDS_NOT,
	MIME_SECTION_TEXT, /* "TEXT", "3.TEXT" */
	MIME_SECTION_MIME, /* "1.2.MIME" */
};

struct mime_section {
	enum mime_section_kind kind;
	size_t offset, size;          /* the octets of the message to return */
	const struct mime_part *part; /* the part the section belongs to */
};

/* Finds section spec (the text between FETCH BODY's brackets, without a
 * HEADER.FIELDS list: "", "HEADER", "TEXT", "1", "1.2", "1.2.MIME",
 * "2.HEADER", "2.TEXT", "3.1.HEADER.FIELDS", "HEADER.FIELDS.NOT"; keywords
 * in any case) per RFC 3501 §6.4.5: part 1 of a message that is not
 * multipart is its body; "N.HEADER", "N.TEXT" and "N.HEADER.FIELDS" need
 * part N to be message/rfc822 (or global) and mean its embedded message;
 * "N.MIME" is the MIME header of part N.  For HEADER.FIELDS[.NOT] the range
 * is the whole header, for mime_section_header_fields().  Returns 0, or -1
 * with *error_r for a malformed spec or a part that does not exist. */
int mime_section_find(const struct mime_tree *tree, const char *spec,
                      struct mime_section *section_r, const char **error_r);

/* The fields of the header section msg[offset, offset + size) whose names
 * are (exclude false) or are not (exclude true) among names[0, count)
 * (ASCII case ignored), each as it is in the message with its continuation
 * lines, followed by the empty line "\r\n" that ends a header.  Lines that
 * are not fields are left out.  Returns a new buffer (NUL-terminated, its
 * length in *size_r); a range past len reads as empty. */
char *mime_section_header_fields(const char *msg, size_t len, size_t offset, size_t size,
                                 const char *const *names, unsigned count, bool exclude,
                                 size_t *size_r);

/* A compact binary form of the whole tree (offsets, types, parameters,
 * every field above), for the store.  Returns a new buffer, its length in
 * *size_r. */
void *mime_structure_serialize(const struct mime_tree *tree, size_t *size_r);
/* Rebuilds a tree from blob[0, size), checking it on the way (it is read
 * from disk: never trusted): offsets must be ordered and within msg_len
 * (the length of the message it describes), a child within its parent, and
 * the limits above must hold.  Returns 0 with *tree_r, or -1 with *error_r
 * (nothing allocated is left behind). */
int mime_structure_deserialize(const void *blob, size_t size, size_t msg_len,
                               struct mime_tree **tree_r, const char **error_r);

/* Full-text search.  mime_text_walk() calls cb, in message order:
 *   - MIME_TEXT_HEADER for each field of the message header and of each
 *     embedded message's header: name is the field name (NUL-terminated),
 *     text its unfolded value with RFC 2047 encoded-words decoded to UTF-8;
 *   - MIME_TEXT_BODY for each part of type "text" (attachments
 *     included): name is NULL, text the body with its
 *     Content-Transfer-Encoding (base64, quoted-printable) undone and its
 *     charset converted to UTF-8 (US-ASCII and UTF-8 as they are,
 *     ISO-8859-1 by table, others through iconv; an unknown charset is
 *     passed through, an invalid sequence becomes U+FFFD).
 * text is valid during the call only and is not NUL-terminated.  A
 * non-zero return from cb stops the walk, and mime_text_walk() returns it;
 * otherwise it returns 0. */
enum mime_text_kind {
	MIME_TEXT_HEADER,
	MIME_TEXT_BODY,
};

typedef int mime_text_cb(enum mime_text_kind kind, const struct mime_part *part, const char *name,
                         const char *text, size_t len, void *ctx);

int mime_text_walk(const char *msg, size_t len, const struct mime_tree *tree, mime_text_cb *cb,
                   void *ctx);

#endif
