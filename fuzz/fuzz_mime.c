/* libFuzzer target for the MIME module (src/mail/mime*.c): parse, check
 * the tree's invariants, build ENVELOPE, BODY and BODYSTRUCTURE, look up
 * sections (fixed ones and one taken from the input's first line), filter
 * header fields, walk the text, and round-trip the serialized tree.
 * libFuzzer's copy of the input has exactly size octets, so ASan catches a
 * read past len. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_tree(const struct mime_tree *tree, size_t len)
{
	if (tree->part_count == 0 || tree->part_count > MIME_MAX_PARTS ||
	    tree->parts[0] != tree->root)
		abort();
	for (unsigned i = 0; i < tree->part_count; i++) {
		const struct mime_part *p = tree->parts[i], *parent = p->parent;

		if (p->header_start > p->header_end || p->header_end > p->body_start ||
		    p->body_start > p->body_end || p->body_end > len || p->depth >= MIME_MAX_DEPTH)
			abort();
		if (p->body_lines > p->body_end - p->body_start)
			abort();
		if (p->type == NULL || p->subtype == NULL || p->encoding == NULL)
			abort();
		if (parent != NULL &&
		    (p->header_start < parent->body_start || p->body_end > parent->body_end ||
		     p->depth != parent->depth + 1))
			abort();
	}
}

static int text_cb(enum mime_text_kind kind, const struct mime_part *part, const char *name,
                   const char *text, size_t len, void *ctx)
{
	size_t *total = ctx;

	/* Touch every octet so ASan sees a bad length. */
	for (size_t i = 0; i < len; i++)
		*total += (unsigned char)text[i];
	if (kind == MIME_TEXT_HEADER && name == NULL)
		abort();
	return 0;
}

static void fuzz_section(const char *msg, size_t len, const struct mime_tree *tree,
                         const char *spec)
{
	static const char *const names[] = {"From", "subject", "Content-Type"};
	struct mime_section s;
	const char *error = NULL;
	size_t n;
	char *out;

	if (mime_section_find(tree, spec, &s, &error) < 0) {
		if (error == NULL)
			abort();
		return;
	}
	if (s.offset > len || s.size > len - s.offset)
		abort();
	out = mime_section_header_fields(msg, len, s.offset, s.size, names, 3,
	                                 s.kind == MIME_SECTION_HEADER_FIELDS_NOT, &n);
	if (n < 2 || out[n] != '\0' || memcmp(out + n - 2, "\r\n", 2) != 0)
		abort();
	free(out);
}

static void fuzz_sections(const char *msg, size_t len, const struct mime_tree *tree)
{
	static const char *const specs[] = {"",
	                                    "HEADER",
	                                    "TEXT",
	                                    "1",
	                                    "2",
	                                    "1.1",
	                                    "1.MIME",
	                                    "2.MIME",
	                                    "1.HEADER",
	                                    "2.TEXT",
	                                    "1.2.3",
	                                    "2.1.HEADER.FIELDS",
	                                    "3.HEADER.FIELDS.NOT",
	                                    "1.1.1.1.1.1"};
	char spec[33];
	size_t n = 0;

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++)
		fuzz_section(msg, len, tree, specs[i]);
	/* The input's first line, as a spec. */
	while (n < len && n < sizeof(spec) - 1 && msg[n] != '\n' && msg[n] != '\0')
		n++;
	memcpy(spec, msg, n);
	spec[n] = '\0';
	fuzz_section(msg, len, tree, spec);
}

static void fuzz_roundtrip(const char *msg, size_t len, const struct mime_tree *tree,
                           const char *bodystructure)
{
	size_t size, size2;
	void *blob = mime_structure_serialize(tree, &size), *blob2;
	struct mime_tree *copy = NULL;
	const char *error = NULL;
	char *bs;

	if (mime_structure_deserialize(blob, size, len, &copy, &error) < 0)
		abort();
	blob2 = mime_structure_serialize(copy, &size2);
	if (size != size2 || memcmp(blob, blob2, size) != 0)
		abort();
	bs = mime_imap_bodystructure(msg, len, copy, true);
	if (strcmp(bs, bodystructure) != 0)
		abort();
	free(bs);
	free(blob2);
	mime_tree_free(&copy);
	/* The blob cut short is always refused. */
	if (mime_structure_deserialize(blob, size - 1 - size / 2, len, &copy, &error) == 0)
		abort();
	free(blob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *msg = (const char *)data;
	struct mime_tree *tree = mime_parse(msg, size);
	size_t total = 0;
	char *bs, *body;

	check_tree(tree, size);
	for (unsigned i = 0; i < tree->part_count; i++) {
		const struct mime_part *p = tree->parts[i];

		if (p->parent == NULL || mime_part_is_message(p->parent))
			free(mime_imap_envelope(msg, size, p));
	}
	bs = mime_imap_bodystructure(msg, size, tree, true);
	body = mime_imap_bodystructure(msg, size, tree, false);
	if (bs[0] != '(' || body[0] != '(')
		abort();
	fuzz_sections(msg, size, tree);
	if (mime_text_walk(msg, size, tree, text_cb, &total) != 0)
		abort();
	fuzz_roundtrip(msg, size, tree, bs);
	free(bs);
	free(body);
	mime_tree_free(&tree);
	return 0;
}
