#include "mail/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mail/mime_private.h"

/* The blob: "KMS1", the number of parts, then each part in pre-order:
 *   child count, flags, header_start, then the lengths header_end -
 *   header_start, body_start - header_end, body_end - body_start, and
 *   body_lines (all unsigned LEB128);
 *   type, subtype, encoding, disposition, id, description, md5, location
 *   (strings: LEB128 length + 1, 0 for NULL, then the octets);
 *   Content-Type parameters, then Content-Disposition parameters (a count,
 *   then name, value, charset, language as strings and an extended octet);
 *   Content-Language tags (a count, then strings).
 * Lengths rather than offsets keep numbers small; pre-order with child
 * counts rebuilds the links without a recursion. */

#define MAGIC         "KMS1"
#define LANGUAGES_MAX 64
#define MAX_FLAGS     (MIME_PART_TRUNCATED | MIME_PART_NO_CLOSE)

static void put_num(struct mime_buf *b, uint64_t n)
{
	do {
		unsigned char c = n & 0x7f;

		n >>= 7;
		if (n != 0)
			c |= 0x80;
		mime_buf_append_char(b, (char)c);
	} while (n != 0);
}

static void put_bytes(struct mime_buf *b, const char *s, size_t len)
{
	if (s == NULL) {
		put_num(b, 0);
		return;
	}
	put_num(b, (uint64_t)len + 1);
	mime_buf_append(b, s, len);
}

static void put_str(struct mime_buf *b, const char *s)
{
	put_bytes(b, s, s != NULL ? strlen(s) : 0);
}

static void put_params(struct mime_buf *b, const struct mime_param *params, unsigned count)
{
	put_num(b, count);
	for (unsigned i = 0; i < count; i++) {
		put_str(b, params[i].name);
		put_bytes(b, params[i].value, params[i].value_len);
		put_str(b, params[i].charset);
		put_str(b, params[i].language);
		mime_buf_append_char(b, params[i].extended ? 1 : 0);
	}
}

static void put_part(struct mime_buf *b, const struct mime_part *p)
{
	put_num(b, p->child_count);
	put_num(b, p->flags);
	put_num(b, p->header_start);
	put_num(b, p->header_end - p->header_start);
	put_num(b, p->body_start - p->header_end);
	put_num(b, p->body_end - p->body_start);
	put_num(b, p->body_lines);
	put_str(b, p->type);
	put_str(b, p->subtype);
	put_str(b, p->encoding);
	put_str(b, p->disposition);
	put_str(b, p->id);
	put_str(b, p->description);
	put_str(b, p->md5);
	put_str(b, p->location);
	put_params(b, p->params, p->param_count);
	put_params(b, p->disp_params, p->disp_param_count);
	put_num(b, p->language_count);
	for (unsigned i = 0; i < p->language_count; i++)
		put_str(b, p->languages[i]);
}

void *mime_structure_serialize(const struct mime_tree *tree, size_t *size_r)
{
	struct mime_buf b = {0};

	mime_buf_append_str(&b, MAGIC);
	put_num(&b, tree->part_count);
	for (unsigned i = 0; i < tree->part_count; i++)
		put_part(&b, tree->parts[i]);
	return mime_buf_detach(&b, size_r);
}

struct reader {
	const unsigned char *p, *end;
	const char *error; /* the first problem; reading stops there */
};

static void fail(struct reader *r, const char *error)
{
	if (r->error == NULL)
		r->error = error;
	r->p = r->end;
}

static uint64_t get_num(struct reader *r)
{
	uint64_t n = 0;

	for (unsigned shift = 0; shift < 64; shift += 7) {
		unsigned char c;

		if (r->p == r->end) {
			fail(r, "truncated structure");
			return 0;
		}
		c = *r->p++;
		n |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0)
			return n;
	}
	fail(r, "number too long in structure");
	return 0;
}

static size_t get_size(struct reader *r)
{
	uint64_t n = get_num(r);

	if (n > SIZE_MAX / 2) {
		fail(r, "number too large in structure");
		return 0;
	}
	return (size_t)n;
}

/* A string: binary true allows NULs inside (a parameter value). */
static char *get_bytes(struct reader *r, size_t *len_r, bool binary)
{
	size_t n = get_size(r);
	char *s;

	if (n == 0)
		return NULL;
	n--;
	if ((size_t)(r->end - r->p) < n) {
		fail(r, "truncated structure");
		return NULL;
	}
	if (!binary && memchr(r->p, '\0', n) != NULL) {
		fail(r, "NUL in a structure string");
		return NULL;
	}
	s = xmalloc(n + 1);
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	if (len_r != NULL)
		*len_r = n;
	return s;
}

static char *get_str(struct reader *r)
{
	return get_bytes(r, NULL, false);
}

static void get_params(struct reader *r, struct mime_param **params_r, unsigned *count_r)
{
	size_t count = get_size(r);
	struct mime_param *params;

	if (count == 0)
		return;
	if (count > MIME_MAX_PARAMS) {
		fail(r, "too many parameters in structure");
		return;
	}
	params = xcalloc(count, sizeof(*params));
	*params_r = params;
	*count_r = (unsigned)count;
	for (size_t i = 0; i < count; i++) {
		params[i].name = get_str(r);
		params[i].value = get_bytes(r, &params[i].value_len, true);
		params[i].charset = get_str(r);
		params[i].language = get_str(r);
		params[i].extended = r->p < r->end && *r->p++ == 1;
		if (params[i].name == NULL || params[i].value == NULL ||
		    params[i].extended != (params[i].charset != NULL && params[i].language != NULL))
			fail(r, "malformed parameter in structure");
	}
}

static void get_languages(struct reader *r, struct mime_part *p)
{
	size_t count = get_size(r);

	if (count == 0)
		return;
	if (count > LANGUAGES_MAX) {
		fail(r, "too many languages in structure");
		return;
	}
	p->languages = xcalloc(count, sizeof(*p->languages));
	p->language_count = (unsigned)count;
	for (size_t i = 0; i < count; i++)
		if ((p->languages[i] = get_str(r)) == NULL)
			fail(r, "malformed language in structure");
}

/* Reads the offsets as lengths and checks that they add up within
 * msg_len. */
static void get_offsets(struct reader *r, struct mime_part *p, size_t msg_len)
{
	size_t hs = get_size(r), hl = get_size(r), gap = get_size(r), bl = get_size(r);

	if (hs > msg_len || hl > msg_len - hs || gap > msg_len - hs - hl ||
	    bl > msg_len - hs - hl - gap) {
		fail(r, "offsets past the message in structure");
		return;
	}
	p->header_start = hs;
	p->header_end = hs + hl;
	p->body_start = p->header_end + gap;
	p->body_end = p->body_start + bl;
	p->body_lines = get_size(r);
	if (p->body_lines > bl)
		fail(r, "line count larger than the body in structure");
}

static void get_part(struct reader *r, struct mime_part *p, size_t msg_len, size_t *children_r)
{
	*children_r = get_size(r);
	p->flags = (unsigned)get_num(r);
	if (p->flags & ~(unsigned)MAX_FLAGS)
		fail(r, "unknown flags in structure");
	get_offsets(r, p, msg_len);
	p->type = get_str(r);
	p->subtype = get_str(r);
	p->encoding = get_str(r);
	p->disposition = get_str(r);
	p->id = get_str(r);
	p->description = get_str(r);
	p->md5 = get_str(r);
	p->location = get_str(r);
	get_params(r, &p->params, &p->param_count);
	get_params(r, &p->disp_params, &p->disp_param_count);
	get_languages(r, p);
	if (p->type == NULL || p->subtype == NULL || p->encoding == NULL)
		fail(r, "part without a type in structure");
}

/* Whether child may hang below parent (which expects children in all). */
static bool child_fits(const struct mime_part *parent, const struct mime_part *child,
                       size_t children)
{
	bool message = mime_part_type_is(parent, "message", "rfc822") ||
	               mime_part_type_is(parent, "message", "global");

	if (!mime_part_is_multipart(parent) && !(message && children == 1))
		return false;
	return child->header_start >= parent->body_start && child->body_end <= parent->body_end;
}

struct frame {
	struct mime_part *part, *tail;
	size_t remaining, children;
};

/* Links p into the tree below the innermost parent still expecting
 * children; stack[0..*depth) are those parents. */
static void tree_attach(struct reader *r, struct frame *stack, unsigned *depth, struct mime_part *p)
{
	struct frame *top;

	while (*depth > 0 && stack[*depth - 1].remaining == 0)
		(*depth)--;
	if (*depth == 0) {
		fail(r, "more parts than children in structure");
		return;
	}
	top = &stack[*depth - 1];
	if (!child_fits(top->part, p, top->children)) {
		fail(r, "misplaced part in structure");
		return;
	}
	p->parent = top->part;
	p->depth = top->part->depth + 1;
	if (top->tail == NULL)
		top->part->children = p;
	else
		top->tail->next = p;
	top->tail = p;
	top->part->child_count++;
	top->remaining--;
}

static void tree_read(struct reader *r, struct mime_tree *tree, size_t count, size_t msg_len)
{
	struct frame stack[MIME_MAX_DEPTH];
	unsigned depth = 0;

	for (size_t i = 0; i < count && r->error == NULL; i++) {
		struct mime_part *p = xcalloc(1, sizeof(*p));
		size_t children;

		tree->parts[tree->part_count++] = p;
		get_part(r, p, msg_len, &children);
		if (r->error != NULL)
			break;
		if (i == 0)
			tree->root = p;
		else
			tree_attach(r, stack, &depth, p);
		if (children == 0 || r->error != NULL)
			continue;
		if (p->depth + 1 >= MIME_MAX_DEPTH || children > count) {
			fail(r, "structure deeper or wider than the limits");
			break;
		}
		stack[depth++] =
		    (struct frame){.part = p, .remaining = children, .children = children};
	}
	while (r->error == NULL && depth > 0)
		if (stack[--depth].remaining != 0)
			fail(r, "fewer parts than children in structure");
}

int mime_structure_deserialize(const void *blob, size_t size, size_t msg_len,
                               struct mime_tree **tree_r, const char **error_r)
{
	struct reader r = {.p = blob, .end = (const unsigned char *)blob + size};
	struct mime_tree *tree;
	size_t count;

	if (size < 4 || memcmp(blob, MAGIC, 4) != 0) {
		*error_r = "not a MIME structure";
		return -1;
	}
	r.p += 4;
	count = get_size(&r);
	if (r.error != NULL || count == 0 || count > MIME_MAX_PARTS) {
		*error_r = r.error != NULL ? r.error : "bad part count in structure";
		return -1;
	}
	tree = xcalloc(1, sizeof(*tree));
	tree->parts = xcalloc(count, sizeof(*tree->parts));
	tree_read(&r, tree, count, msg_len);
	if (r.error == NULL && r.p != r.end)
		fail(&r, "trailing bytes after structure");
	if (r.error == NULL && tree->root->header_start != 0)
		fail(&r, "root not at the start of the message in structure");
	if (r.error != NULL) {
		*error_r = r.error;
		mime_tree_free(&tree);
		return -1;
	}
	*tree_r = tree;
	return 0;
}
