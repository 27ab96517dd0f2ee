#include "mail/mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/mime_private.h"

/* The nth (1-based) child of part, or NULL. */
static const struct mime_part *part_child(const struct mime_part *part, unsigned long n)
{
	const struct mime_part *c = part->children;

	for (unsigned long i = 1; c != NULL && i < n; i++)
		c = c->next;
	return c;
}

/* One step of a part number (RFC 3501 §6.4.5).  cur is NULL before the
 * first step, which starts from the message itself.  Inside a message
 * (the root, or what a message/rfc822 part embeds), the numbers are those
 * of its multipart body, or 1 alone for a body that is not multipart. */
static const struct mime_part *part_step(const struct mime_tree *tree, const struct mime_part *cur,
                                         unsigned long n)
{
	const struct mime_part *msg;

	if (cur == NULL)
		msg = tree->root;
	else if (mime_part_is_multipart(cur))
		return part_child(cur, n);
	else if (mime_part_is_message(cur))
		msg = cur->children;
	else
		return NULL;
	if (mime_part_is_multipart(msg))
		return part_child(msg, n);
	return n == 1 ? msg : NULL;
}

/* Reads a nz-number at *p (no leading zero, at most MIME_MAX_PARTS). */
static int read_number(const char **p, unsigned long *n_r)
{
	const char *s = *p;
	unsigned long n = 0;

	if (*s < '1' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		n = n * 10 + (unsigned long)(*s - '0');
		if (n > MIME_MAX_PARTS)
			return -1;
	}
	*p = s;
	*n_r = n;
	return 0;
}

static int section_text_kind(const char *s, enum mime_section_kind *kind_r)
{
	static const struct {
		const char *name;
		enum mime_section_kind kind;
	} names[] = {
	    {"HEADER", MIME_SECTION_HEADER},
	    {"HEADER.FIELDS", MIME_SECTION_HEADER_FIELDS},
	    {"HEADER.FIELDS.NOT", MIME_SECTION_HEADER_FIELDS_NOT},
	    {"TEXT", MIME_SECTION_TEXT},
	    {"MIME", MIME_SECTION_MIME},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*kind_r = names[i].kind;
			return 0;
		}
	}
	return -1;
}

static void section_set(struct mime_section *s, enum mime_section_kind kind,
                        const struct mime_part *part, size_t start, size_t end)
{
	s->kind = kind;
	s->part = part;
	s->offset = start;
	s->size = end - start;
}

/* Fills *s for kind applied to part (NULL: the message itself). */
static int section_resolve(const struct mime_tree *tree, const struct mime_part *part,
                           enum mime_section_kind kind, struct mime_section *s,
                           const char **error_r)
{
	const struct mime_part *msg = part == NULL ? tree->root : NULL;

	if (kind == MIME_SECTION_BODY) {
		section_set(s, kind, part, part->body_start, part->body_end);
		return 0;
	}
	if (kind == MIME_SECTION_MIME) {
		if (part == NULL) {
			*error_r = "MIME needs a part number";
			return -1;
		}
		section_set(s, kind, part, part->header_start, part->body_start);
		return 0;
	}
	if (msg == NULL) {
		if (!mime_part_is_message(part)) {
			*error_r = "HEADER and TEXT need a message/rfc822 part";
			return -1;
		}
		msg = part->children;
	}
	if (kind == MIME_SECTION_TEXT)
		section_set(s, kind, msg, msg->body_start, msg->body_end);
	else
		section_set(s, kind, msg, msg->header_start, msg->body_start);
	return 0;
}

int mime_section_find(const struct mime_tree *tree, const char *spec,
                      struct mime_section *section_r, const char **error_r)
{
	const struct mime_part *part = NULL;
	const char *p = spec;
	enum mime_section_kind kind = MIME_SECTION_BODY;
	unsigned long n;

	if (*spec == '\0') {
		section_set(section_r, MIME_SECTION_ALL, tree->root, 0, tree->root->body_end);
		return 0;
	}
	while (*p >= '0' && *p <= '9') {
		if (read_number(&p, &n) < 0 || (part = part_step(tree, part, n)) == NULL) {
			*error_r = "no such part";
			return -1;
		}
		if (*p == '\0')
			break;
		if (*p++ != '.') {
			*error_r = "malformed section";
			return -1;
		}
	}
	if (*p != '\0' && section_text_kind(p, &kind) < 0) {
		*error_r = "malformed section";
		return -1;
	}
	if (p > spec && p[-1] == '.' && *p == '\0') {
		*error_r = "malformed section";
		return -1;
	}
	return section_resolve(tree, part, kind, section_r, error_r);
}

static bool name_listed(const char *msg, const struct mime_field *f, const char *const *names,
                        unsigned count)
{
	for (unsigned i = 0; i < count; i++)
		if (strlen(names[i]) == f->name_len &&
		    strncasecmp(msg + f->name, names[i], f->name_len) == 0)
			return true;
	return false;
}

char *mime_section_header_fields(const char *msg, size_t len, size_t offset, size_t size,
                                 const char *const *names, unsigned count, bool exclude,
                                 size_t *size_r)
{
	struct mime_buf b = {0};
	struct mime_field f;
	size_t pos = offset, end = offset + size;

	if (offset > len || size > len - offset)
		pos = end = 0;
	while (mime_field_next(msg, end, &pos, &f)) {
		if (name_listed(msg, &f, names, count) == exclude)
			continue;
		mime_buf_append(&b, msg + f.start, f.next - f.start);
		/* A last field without a line end still ends its line. */
		if (msg[f.next - 1] != '\n')
			mime_buf_append_str(&b, "\r\n");
	}
	mime_buf_append_str(&b, "\r\n");
	return mime_buf_detach(&b, size_r);
}
