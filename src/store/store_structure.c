/* A message's structure and search text, computed before it is stored
 * (store.h, struct store_structure).  Backend-independent: it only parses
 * (mail/mime.h) and never touches the store. */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mail/mime.h"

struct st_text {
	char *data;
	size_t len, alloc;
};

static void st_text_put(struct st_text *t, const char *p, size_t len, bool clean)
{
	if (t->len + len + 1 > t->alloc) {
		t->alloc = (t->len + len + 1) * 2;
		t->data = xrealloc(t->data, t->alloc);
	}
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		/* The separator and NUL cannot be part of a value (see store.h). */
		t->data[t->len++] = clean && (unsigned char)c <= 0x02 ? STORE_TEXT_BREAK : c;
	}
	t->data[t->len] = '\0';
}

/* Each entry is preceded by a separator, so that the first one too is
 * found by its boundary. */
static void st_text_entry(struct st_text *t, const char *name, const char *text, size_t len)
{
	const char sep = STORE_TEXT_SEP;

	st_text_put(t, &sep, 1, false);
	if (name != NULL) {
		st_text_put(t, name, strlen(name), true);
		st_text_put(t, ":", 1, false);
	}
	st_text_put(t, text, len, true);
}

struct st_walk {
	struct st_text header, inner, body;
};

static int st_walk_cb(enum mime_text_kind kind, const struct mime_part *part, const char *name,
		      const char *text, size_t len, void *ctx)
{
	struct st_walk *w = ctx;

	if (kind == MIME_TEXT_BODY)
		st_text_entry(&w->body, NULL, text, len);
	else
		st_text_entry(part->depth == 0 ? &w->header : &w->inner, name, text, len);
	return 0;
}

static char *st_text_take(struct st_text *t)
{
	return t->data != NULL ? t->data : xstrdup("");
}

void store_structure_compute(struct store_structure *st, const void *data, size_t size)
{
	struct mime_tree *tree = mime_parse(data, size);
	struct st_walk w;

	memset(st, 0, sizeof(*st));
	memset(&w, 0, sizeof(w));
	st->envelope = mime_imap_envelope(data, size, tree->root);
	st->bodystructure = mime_imap_bodystructure(data, size, tree, true);
	st->body = mime_imap_bodystructure(data, size, tree, false);
	st->tree = mime_structure_serialize(tree, &st->tree_size);
	mime_text_walk(data, size, tree, st_walk_cb, &w);
	st->text_header = st_text_take(&w.header);
	st->text_inner = st_text_take(&w.inner);
	st->text_body = st_text_take(&w.body);
	mime_tree_free(&tree);
}

void store_structure_deinit(struct store_structure *st)
{
	free(st->envelope);
	free(st->bodystructure);
	free(st->body);
	free(st->tree);
	free(st->text_header);
	free(st->text_inner);
	free(st->text_body);
	memset(st, 0, sizeof(*st));
}

/* The trigram index finds a phrase of three characters or more; the
 * separator bytes are excluded so that a needle never spans two entries
 * in the index where it could not in the message. */
bool store_search_indexable(const char *needle, size_t len)
{
	size_t chars = 0;

	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)needle[i];
		size_t n = c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3
				   : c >= 0xf0 && c < 0xf5 ? 4 : 0;
		if (n == 0 || i + n > len || c <= 0x02)
			return false;
		for (size_t k = 1; k < n; k++)
			if (((unsigned char)needle[i + k] & 0xc0) != 0x80)
				return false;
		i += n;
		chars++;
	}
	return chars >= 3;
}
