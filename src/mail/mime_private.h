/* Internals shared by the files of the MIME module (mime.c, mime_imap.c,
 * mime_section.c, mime_structure.c, mime_text.c); not for other callers. */
#ifndef KEEL_MAIL_MIME_PRIVATE_H
#define KEEL_MAIL_MIME_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/mime.h"

/* A growing byte buffer; data is always NUL-terminated once anything has
 * been appended, and aborts on allocation failure like xmalloc. */
struct mime_buf {
	char *data;
	size_t len, cap;
};

void mime_buf_append(struct mime_buf *b, const void *data, size_t n);
void mime_buf_append_str(struct mime_buf *b, const char *s);
void mime_buf_append_char(struct mime_buf *b, char c);
/* Hands the buffer over (never NULL, "" when empty); the buffer is reset. */
char *mime_buf_detach(struct mime_buf *b, size_t *len_r);

/* One header field: offsets into the message.  [name, name + name_len) is
 * its name, [value, end) its raw value with the line ends of continuation
 * lines, [start, next) the whole field with its final line end. */
struct mime_field {
	size_t start, next;
	size_t name, name_len;
	size_t value, end;
};

/* The next field of the header section msg[*pos, end) with the rules of
 * mail/header.h (lines that open no field are skipped); false at an empty
 * line or at end.  *pos moves past the field. */
bool mime_field_next(const char *msg, size_t end, size_t *pos, struct mime_field *f);

/* The unfolded, trimmed value of the first field called name in the
 * header of part (header_get()), newly allocated; NULL when absent or when
 * the part's offsets lie past len. */
char *mime_header_value(const char *msg, size_t len, const struct mime_part *part,
                        const char *name);

/* Whether the part's type is type/subtype (subtype NULL: any). */
bool mime_part_type_is(const struct mime_part *part, const char *type, const char *subtype);

/* Skips spaces, tabs and (nested) comments of a NUL-terminated value. */
void mime_skip_cfws(const char **p);

/* Whether c may appear in an RFC 2045 token. */
bool mime_is_token_char(unsigned char c);

/* Frees the strings and arrays a part owns, and the part. */
void mime_part_free(struct mime_part *part);
/* Puts tree->parts in pre-order by walking the links from the root. */
void mime_tree_order(struct mime_tree *tree);

#endif
