/* FETCH and UID FETCH.  The answer is produced piece by piece while the
 * output has room (on_written), so FETCH 1:* of a large mailbox never
 * builds its whole answer in memory.  BODY[] and RFC822 (whole or partial)
 * are streamed from the blob.  ENVELOPE, BODY and BODYSTRUCTURE are the
 * strings computed when the message was stored, and other sections are
 * found in the stored MIME tree and read as one byte range of the blob
 * (DESIGN.md: a FETCH never re-parses a message).  A message stored before
 * schema 5 has no stored structure: it is read whole and parsed instead. */
#include "imap/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mail/mime.h"
#include "mail/mime_decode.h"

#define IMAP_FETCH_CHUNK 16384
#define IMAP_FETCH_MAX_FIELDS 64

enum imap_fetch_kind {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_UID,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_SIZE,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_BODY,
	IMAP_FETCH_MODSEQ,
	IMAP_FETCH_SECTION,
	IMAP_FETCH_BINARY,      /* BINARY[part]<o.l>, BINARY.PEEK (RFC 3516) */
	IMAP_FETCH_BINARY_SIZE, /* BINARY.SIZE[part] */
};

struct imap_fetch_item {
	enum imap_fetch_kind kind;
	char name[256];  /* as it goes in the response: "BODY[HEADER]", "RFC822" */
	char spec[128];  /* for mime_section_find: "", "HEADER", "1.2", ... (BINARY: a part) */
	char *fields[IMAP_FETCH_MAX_FIELDS];
	unsigned n_fields;
	bool fields_not;
	bool partial;
	uint64_t offset, length;
	bool peek;
};

struct imap_fetch {
	struct imap_fetch_item *items;
	size_t n_items;
	size_t *idx, n, pos;
	bool in_msg;
	size_t item;
	bool first;
	bool failed; /* some content could not be read: NO at the end */
	bool expunged; /* some messages were expunged meanwhile: NO at the end */
	struct imap_rows rows; /* the messages, read from the store a page at a time */
	const struct imap_msg *m; /* the current one */
	/* The current message's stored structure (its tree in tree), or, for a
	 * message stored without one, its content (msg) and parsed tree. */
	struct store_structure st;
	char *msg;
	size_t msg_len;
	struct mime_tree *tree;
	/* A literal being streamed from a blob. */
	struct store_blob_stream *blob;
	uint64_t skip, left;
};

void imap_fetch_free(struct imap_fetch **fp)
{
	struct imap_fetch *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	for (size_t i = 0; i < f->n_items; i++)
		for (unsigned k = 0; k < f->items[i].n_fields; k++)
			free(f->items[i].fields[k]);
	free(f->items);
	imap_rows_free(&f->rows);
	free(f->idx);
	free(f->msg);
	mime_tree_free(&f->tree);
	store_structure_deinit(&f->st);
	store_blob_stream_close(&f->blob);
	free(f);
}

/* ---- parsing the items --------------------------------------------------------- */

static struct imap_fetch_item *imap_fetch_add(struct imap_fetch *f, enum imap_fetch_kind kind,
					      const char *name)
{
	struct imap_fetch_item *it;

	f->items = xrealloc(f->items, (f->n_items + 1) * sizeof(*f->items));
	it = &f->items[f->n_items++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	snprintf(it->name, sizeof(it->name), "%s", name);
	return it;
}

static bool imap_fetch_has(const struct imap_fetch *f, enum imap_fetch_kind kind)
{
	for (size_t i = 0; i < f->n_items; i++)
		if (f->items[i].kind == kind)
			return true;
	return false;
}

/* "<o.l>" after a section. */
static int imap_fetch_partial(struct imap_fetch_item *it, const char *p)
{
	char *end;

	if (*p == '\0')
		return 0;
	if (*p != '<' || !isdigit((unsigned char)p[1]))
		return -1;
	it->offset = strtoull(p + 1, &end, 10);
	if (*end != '.' || !isdigit((unsigned char)end[1]))
		return -1;
	it->length = strtoull(end + 1, &end, 10);
	if (*end != '>' || end[1] != '\0' || it->length == 0)
		return -1;
	it->partial = true;
	return 0;
}

/* The header field names of HEADER.FIELDS (a b "c"). */
static int imap_fetch_fields(struct imap_fetch_item *it, const char *p, const char *end)
{
	if (*p != '(' || end <= p || end[-1] != ')')
		return -1;
	for (p++, end--; p < end;) {
		const char *start;
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		bool quoted = *p == '"';
		start = quoted ? ++p : p;
		while (p < end && *p != (quoted ? '"' : ' '))
			p++;
		if (p == start || it->n_fields == IMAP_FETCH_MAX_FIELDS)
			return -1;
		it->fields[it->n_fields++] = xstrndup(start, (size_t)(p - start));
		if (quoted && p < end)
			p++;
	}
	return it->n_fields > 0 ? 0 : -1;
}

/* BODY[...]<...> or BODY.PEEK[...]<...>. */
static int imap_fetch_section(struct imap_fetch *f, const char *atom)
{
	bool peek = strncasecmp(atom, "BODY.PEEK[", 10) == 0;
	const char *sec = atom + (peek ? 10 : 5), *close = strrchr(atom, ']');
	struct imap_fetch_item *it;
	const char *paren;
	size_t spec_len;

	if (close == NULL || close < sec)
		return -1;
	it = imap_fetch_add(f, IMAP_FETCH_SECTION, "");
	it->peek = peek;
	paren = memchr(sec, '(', (size_t)(close - sec));
	spec_len = (size_t)((paren != NULL ? paren : close) - sec);
	while (spec_len > 0 && sec[spec_len - 1] == ' ')
		spec_len--;
	if (spec_len >= sizeof(it->spec))
		return -1;
	for (size_t i = 0; i < spec_len; i++)
		it->spec[i] = (char)toupper((unsigned char)sec[i]);
	it->spec[spec_len] = '\0';
	if (paren != NULL) {
		size_t l = strlen(it->spec);
		if (l < 13 || (strcmp(it->spec + l - 13, "HEADER.FIELDS") != 0 &&
			       (l < 17 || strcmp(it->spec + l - 17, "HEADER.FIELDS.NOT") != 0)))
			return -1;
		it->fields_not = strcmp(it->spec + l - 4, ".NOT") == 0;
		if (imap_fetch_fields(it, paren, close) < 0)
			return -1;
	} else if (strstr(it->spec, "HEADER.FIELDS") != NULL) {
		return -1;
	}
	if (imap_fetch_partial(it, close + 1) < 0)
		return -1;
	int n = snprintf(it->name, sizeof(it->name), "BODY[%s", it->spec);
	if (paren != NULL) {
		n += snprintf(it->name + n, sizeof(it->name) - (size_t)n, " (");
		for (unsigned k = 0; k < it->n_fields; k++)
			n += snprintf(it->name + n, sizeof(it->name) - (size_t)n, "%s%s", k ? " " : "",
				      it->fields[k]);
		n += snprintf(it->name + n, sizeof(it->name) - (size_t)n, ")");
	}
	n += snprintf(it->name + n, sizeof(it->name) - (size_t)n, "]");
	if (it->partial)
		snprintf(it->name + n, sizeof(it->name) - (size_t)n, "<%llu>",
			 (unsigned long long)it->offset);
	return n < (int)sizeof(it->name) - 24 ? 0 : -1;
}

/* BINARY[part]<o.l>, BINARY.PEEK[part]<o.l>, BINARY.SIZE[part]: the
 * section is a part number or nothing (the whole message). */
static int imap_fetch_binary(struct imap_fetch *f, const char *atom)
{
	bool size = strncasecmp(atom, "BINARY.SIZE[", 12) == 0;
	bool peek = !size && strncasecmp(atom, "BINARY.PEEK[", 12) == 0;
	const char *sec = atom + (size || peek ? 12 : 7), *close = strchr(sec, ']');
	struct imap_fetch_item *it;
	size_t len;

	if (close == NULL)
		return -1;
	len = (size_t)(close - sec);
	if (len >= sizeof(((struct imap_fetch_item *)NULL)->spec))
		return -1;
	for (size_t i = 0; i < len; i++) {
		bool digit = sec[i] >= '0' && sec[i] <= '9';
		bool starts = i == 0 || sec[i - 1] == '.';
		if (!(digit || (sec[i] == '.' && !starts && i + 1 < len)) ||
		    (starts && sec[i] == '0'))
			return -1;
	}
	it = imap_fetch_add(f, size ? IMAP_FETCH_BINARY_SIZE : IMAP_FETCH_BINARY, "");
	it->peek = peek || size;
	memcpy(it->spec, sec, len);
	it->spec[len] = '\0';
	if (size ? close[1] != '\0' : imap_fetch_partial(it, close + 1) < 0)
		return -1;
	int n = snprintf(it->name, sizeof(it->name), "%s[%s]", size ? "BINARY.SIZE" : "BINARY",
			 it->spec);
	if (it->partial)
		snprintf(it->name + n, sizeof(it->name) - (size_t)n, "<%llu>",
			 (unsigned long long)it->offset);
	return 0;
}

static int imap_fetch_atom(struct imap_fetch *f, const struct imap_arg *a)
{
	static const struct {
		const char *name;
		enum imap_fetch_kind kind;
	} simple[] = {
		{ "FLAGS", IMAP_FETCH_FLAGS },       { "UID", IMAP_FETCH_UID },
		{ "INTERNALDATE", IMAP_FETCH_INTERNALDATE }, { "RFC822.SIZE", IMAP_FETCH_SIZE },
		{ "ENVELOPE", IMAP_FETCH_ENVELOPE }, { "BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE },
		{ "BODY", IMAP_FETCH_BODY },         { "MODSEQ", IMAP_FETCH_MODSEQ },
	};
	struct imap_fetch_item *it;

	if (a->type != IMAP_ARG_ATOM)
		return -1;
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (strcasecmp(a->str, simple[i].name) == 0) {
			imap_fetch_add(f, simple[i].kind, simple[i].name);
			return 0;
		}
	}
	if (strcasecmp(a->str, "RFC822") == 0) {
		imap_fetch_add(f, IMAP_FETCH_SECTION, "RFC822");
	} else if (strcasecmp(a->str, "RFC822.HEADER") == 0) {
		it = imap_fetch_add(f, IMAP_FETCH_SECTION, "RFC822.HEADER");
		snprintf(it->spec, sizeof(it->spec), "HEADER");
		it->peek = true;
	} else if (strcasecmp(a->str, "RFC822.TEXT") == 0) {
		it = imap_fetch_add(f, IMAP_FETCH_SECTION, "RFC822.TEXT");
		snprintf(it->spec, sizeof(it->spec), "TEXT");
	} else if (strncasecmp(a->str, "BODY[", 5) == 0 || strncasecmp(a->str, "BODY.PEEK[", 10) == 0) {
		return imap_fetch_section(f, a->str);
	} else if (strncasecmp(a->str, "BINARY", 6) == 0 && strchr(a->str, '[') != NULL) {
		return imap_fetch_binary(f, a->str);
	} else {
		return -1;
	}
	return 0;
}

static int imap_fetch_items(struct imap_fetch *f, const struct imap_arg *a)
{
	static const char *const macros[][5] = {
		{ "ALL", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" },
		{ "FAST", "FLAGS", "INTERNALDATE", "RFC822.SIZE", NULL },
		{ "FULL", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE" },
	};

	if (a->type == IMAP_ARG_LIST) {
		if (a->n == 0)
			return -1;
		for (size_t i = 0; i < a->n; i++)
			if (imap_fetch_atom(f, &a->list[i]) < 0)
				return -1;
		return 0;
	}
	for (size_t m = 0; m < 3; m++) {
		if (!imap_arg_atom_equals(a, macros[m][0]))
			continue;
		for (size_t k = 1; k < 5 && macros[m][k] != NULL; k++) {
			struct imap_arg atom = { .type = IMAP_ARG_ATOM, .str = macros[m][k],
						 .len = strlen(macros[m][k]) };
			imap_fetch_atom(f, &atom);
		}
		if (m == 2)
			imap_fetch_add(f, IMAP_FETCH_BODY, "BODY");
		return 0;
	}
	return imap_fetch_atom(f, a);
}

/* ---- one message ------------------------------------------------------------- */

static bool imap_item_whole(const struct imap_fetch_item *it)
{
	return it->kind == IMAP_FETCH_SECTION && it->spec[0] == '\0';
}

static bool imap_item_needs_content(const struct imap_fetch_item *it)
{
	bool sectioned = it->kind == IMAP_FETCH_SECTION || it->kind == IMAP_FETCH_BINARY ||
			 it->kind == IMAP_FETCH_BINARY_SIZE;

	return it->kind == IMAP_FETCH_ENVELOPE || it->kind == IMAP_FETCH_BODYSTRUCTURE ||
	       it->kind == IMAP_FETCH_BODY || (sectioned && it->spec[0] != '\0');
}

/* The stored structure, with its tree rebuilt: 0, or -1 when the message
 * has none usable (stored before schema 5, or a tree that fails its checks:
 * it comes from disk and is never trusted). */
static int imap_fetch_load_stored(struct imap_session *s, struct imap_fetch *f,
				  const struct imap_msg *m)
{
	const char *error;

	if (store_message_structure(s->reader, s->view.mailbox_id, m->uid, &f->st) < 0)
		return -1;
	if (f->st.envelope == NULL || f->st.bodystructure == NULL || f->st.body == NULL ||
	    f->st.tree == NULL)
		return -1;
	if (mime_structure_deserialize(f->st.tree, f->st.tree_size, m->size, &f->tree,
				       &error) < 0) {
		log_error("imap", "s=%s event=structure_invalid uid=%u error=\"%s\"", s->id, m->uid,
			  error);
		return -1;
	}
	return 0;
}

/* The old way, for a message without a stored structure: read and parse. */
static int imap_fetch_load_parse(struct imap_session *s, struct imap_fetch *f,
				 const struct imap_msg *m)
{
	const char *error;
	void *data;

	store_structure_deinit(&f->st);
	if (store_blob_read(s->reader, m->blob_id, &data, &f->msg_len, &error) < 0) {
		log_error("imap", "s=%s event=read_failed uid=%u error=\"%s\"", s->id, m->uid,
			  error != NULL ? error : "not found");
		return -1;
	}
	f->msg = data;
	f->tree = mime_parse(f->msg, f->msg_len);
	f->st.envelope = mime_imap_envelope(f->msg, f->msg_len, f->tree->root);
	f->st.bodystructure = mime_imap_bodystructure(f->msg, f->msg_len, f->tree, true);
	f->st.body = mime_imap_bodystructure(f->msg, f->msg_len, f->tree, false);
	return 0;
}

static int imap_fetch_load(struct imap_session *s, struct imap_fetch *f, const struct imap_msg *m)
{
	for (size_t i = 0; i < f->n_items; i++) {
		if (!imap_item_needs_content(&f->items[i]))
			continue;
		if (imap_fetch_load_stored(s, f, m) == 0)
			return 0;
		return imap_fetch_load_parse(s, f, m);
	}
	return 0;
}

/* The item's <partial> range of data as a literal; with binary (decoded
 * content, BINARY[]) a literal8 when it holds a NUL (RFC 3516 4.3). */
static void imap_fetch_literal_as(struct imap_session *s, const struct imap_fetch_item *it,
				  const char *data, size_t len, bool binary)
{
	if (it->partial) {
		uint64_t off = it->offset < len ? it->offset : len;
		uint64_t n = len - off < it->length ? len - off : it->length;
		data += off;
		len = (size_t)n;
	}
	imap_printf(s, "%s %s{%zu}\r\n", it->name,
		    binary && memchr(data, '\0', len) != NULL ? "~" : "", len);
	imap_write(s, data, len);
}

static void imap_fetch_literal(struct imap_session *s, const struct imap_fetch_item *it,
			       const char *data, size_t len)
{
	imap_fetch_literal_as(s, it, data, len, false);
}

static void imap_fetch_traced(struct imap_session *s, struct imap_fetch *f,
			      const struct imap_msg *m, const struct imap_fetch_item *it)
{
	struct imap_vmsg *vm = &s->view.msgs[f->idx[f->pos]];

	if (vm->flags & IMAP_MSG_FETCHED)
		return;
	vm->flags |= IMAP_MSG_FETCHED;
	trace_event_message_id(s->reader, m->blob_id,
			       imap_trace(s, "fetched", "mailbox=%s uid=%u item=%s size=%llu",
					  s->view.name, m->uid, it->name,
					  (unsigned long long)m->size));
}

/* BODY[] / RFC822, whole or partial: a literal streamed from the blob. */
static void imap_fetch_stream_start(struct imap_session *s, struct imap_fetch *f,
				    const struct imap_fetch_item *it, const struct imap_msg *m)
{
	uint64_t size, off = 0, len;
	const char *error;

	if (store_blob_stream_open(s->reader, m->blob_id, &f->blob, &size, &error) < 0) {
		log_error("imap", "s=%s event=read_failed uid=%u error=\"%s\"", s->id, m->uid,
			  error != NULL ? error : "not found");
		imap_printf(s, "%s NIL", it->name);
		f->failed = true;
		return;
	}
	len = size;
	if (it->partial) {
		off = it->offset < size ? it->offset : size;
		len = size - off < it->length ? size - off : it->length;
	}
	/* BINARY[] may hold anything (an APPEND's literal8): a literal8. */
	imap_printf(s, "%s %s{%llu}\r\n", it->name, it->kind == IMAP_FETCH_BINARY ? "~" : "",
		    (unsigned long long)len);
	f->skip = off;
	f->left = len;
	if (len == 0)
		store_blob_stream_close(&f->blob);
}

/* Sends more of the streamed literal; -1 when the session had to close. */
static int imap_fetch_stream_more(struct imap_session *s, struct imap_fetch *f)
{
	char buf[IMAP_FETCH_CHUNK];
	const char *error = NULL;
	long n = store_blob_stream_read(f->blob, buf, sizeof(buf), &error);
	size_t off = 0, take;

	if (n <= 0) {
		/* Half a literal was sent: the only honest end is to close. */
		log_error("imap", "s=%s event=read_failed error=\"%s\"", s->id,
			  error != NULL ? error : "short blob");
		store_blob_stream_close(&f->blob);
		imap_close(s);
		return -1;
	}
	if (f->skip >= (uint64_t)n) {
		f->skip -= (uint64_t)n;
		return 0;
	}
	off = (size_t)f->skip;
	f->skip = 0;
	take = (size_t)n - off;
	if (take > f->left)
		take = (size_t)f->left;
	imap_write(s, buf + off, take);
	f->left -= take;
	if (f->left == 0)
		store_blob_stream_close(&f->blob);
	return 0;
}

/* The octets [offset, offset + size) of the message: from the content when
 * it was read whole, else one range read of the blob.  NULL on error. */
static char *imap_fetch_range(struct imap_session *s, struct imap_fetch *f,
			      const struct imap_msg *m, uint64_t offset, uint64_t size,
			      size_t *len_r)
{
	const char *error;
	void *data;

	if (f->msg != NULL) {
		offset = offset < f->msg_len ? offset : f->msg_len;
		*len_r = (size_t)(size < f->msg_len - offset ? size : f->msg_len - offset);
		data = xmalloc(*len_r + 1);
		memcpy(data, f->msg + offset, *len_r);
		return data;
	}
	if (store_blob_read_range(s->reader, m->blob_id, offset, (size_t)size, &data, len_r,
				  &error) < 0) {
		log_error("imap", "s=%s event=read_failed uid=%u error=\"%s\"", s->id, m->uid,
			  error != NULL ? error : "not found");
		return NULL;
	}
	return data;
}

/* HEADER.FIELDS[.NOT]: the header is read, then filtered. */
static void imap_fetch_header_fields(struct imap_session *s, struct imap_fetch *f,
				     const struct imap_fetch_item *it, const struct imap_msg *m,
				     const struct mime_section *sec)
{
	size_t len, n;
	char *hdr = imap_fetch_range(s, f, m, sec->offset, sec->size, &len), *h;

	if (hdr == NULL) {
		imap_printf(s, "%s NIL", it->name);
		f->failed = true;
		return;
	}
	h = mime_section_header_fields(hdr, len, 0, len, (const char *const *)it->fields,
				       it->n_fields, it->fields_not, &n);
	imap_fetch_literal(s, it, h, n);
	free(h);
	free(hdr);
}

static void imap_fetch_section_item(struct imap_session *s, struct imap_fetch *f,
				    const struct imap_fetch_item *it, const struct imap_msg *m)
{
	struct imap_fetch_item whole = *it;
	struct mime_section sec;
	const char *error;
	uint64_t off, len;
	size_t n;
	char *data;

	if (f->tree == NULL || mime_section_find(f->tree, it->spec, &sec, &error) < 0) {
		/* A part that does not exist is empty (RFC 3501 6.4.5 allows NIL
		 * or ""; Dovecot and others send ""). */
		imap_fetch_literal(s, it, "", 0);
		return;
	}
	if (sec.kind == MIME_SECTION_HEADER_FIELDS || sec.kind == MIME_SECTION_HEADER_FIELDS_NOT) {
		imap_fetch_header_fields(s, f, it, m, &sec);
		return;
	}
	/* A partial fetch (a client's preview of a large part) reads only the
	 * octets it returns. */
	off = it->partial ? (it->offset < sec.size ? it->offset : sec.size) : 0;
	len = it->partial && it->length < sec.size - off ? it->length : sec.size - off;
	if ((data = imap_fetch_range(s, f, m, sec.offset + off, len, &n)) == NULL) {
		imap_printf(s, "%s NIL", it->name);
		f->failed = true;
		return;
	}
	whole.partial = false;
	imap_fetch_literal(s, &whole, data, n);
	free(data);
}

/* ---- BINARY (RFC 3516) ----------------------------------------------------------- */

/* The part a BINARY item names and how to decode it: 0, 1 when there is
 * no such part, -1 when its Content-Transfer-Encoding is unknown.  A
 * multipart or message part has no encoding of its own to undo. */
static int imap_fetch_binary_part(const struct imap_fetch *f, const struct imap_fetch_item *it,
				  struct mime_section *sec, enum mime_cte *cte_r)
{
	const char *error;

	if (f->tree == NULL || mime_section_find(f->tree, it->spec, sec, &error) < 0)
		return 1;
	if (mime_part_is_multipart(sec->part) || mime_part_is_message(sec->part))
		*cte_r = MIME_CTE_IDENTITY;
	else
		*cte_r = mime_cte_from_name(sec->part->encoding);
	return *cte_r == MIME_CTE_UNKNOWN ? -1 : 0;
}

static void imap_fetch_literal8(struct imap_session *s, const struct imap_fetch_item *it,
				const char *data, size_t len)
{
	imap_fetch_literal_as(s, it, data, len, true);
}

/* BINARY[part] and BINARY.SIZE[part]: the part's body is read (one range
 * of the blob, never the whole message) and decoded; a part without an
 * encoding to undo is read only as far as a partial fetch needs, and its
 * BINARY.SIZE is the stored size. */
static void imap_fetch_binary_item(struct imap_session *s, struct imap_fetch *f,
				   const struct imap_fetch_item *it, const struct imap_msg *m)
{
	bool size = it->kind == IMAP_FETCH_BINARY_SIZE;
	struct imap_fetch_item whole = *it;
	struct mime_section sec;
	enum mime_cte cte;
	uint64_t off = 0, want;
	size_t raw_len, len;
	char *raw, *data;

	if (imap_fetch_binary_part(f, it, &sec, &cte) != 0) {
		if (size)
			imap_printf(s, "%s 0", it->name);
		else
			imap_fetch_literal8(s, it, "", 0);
		return;
	}
	if (cte == MIME_CTE_IDENTITY && size) {
		imap_printf(s, "%s %zu", it->name, sec.size);
		return;
	}
	want = sec.size;
	if (cte == MIME_CTE_IDENTITY && it->partial) {
		off = it->offset < sec.size ? it->offset : sec.size;
		want = it->length < sec.size - off ? it->length : sec.size - off;
		whole.partial = false;
	}
	if ((raw = imap_fetch_range(s, f, m, sec.offset + off, want, &raw_len)) == NULL) {
		imap_printf(s, "%s NIL", it->name);
		f->failed = true;
		return;
	}
	data = mime_cte_decode(cte, raw, raw_len, &len);
	free(raw);
	if (size)
		imap_printf(s, "%s %zu", it->name, len);
	else
		imap_fetch_literal8(s, &whole, data, len);
	free(data);
}

static void imap_fetch_item(struct imap_session *s, struct imap_fetch *f,
			    const struct imap_fetch_item *it, const struct imap_msg *m)
{
	const char *str;
	char date[64];

	switch (it->kind) {
	case IMAP_FETCH_FLAGS: imap_write_flags(s, m); break;
	case IMAP_FETCH_UID: imap_printf(s, "UID %u", m->uid); break;
	case IMAP_FETCH_MODSEQ: imap_printf(s, "MODSEQ (%llu)", (unsigned long long)m->modseq); break;
	case IMAP_FETCH_SIZE: imap_printf(s, "RFC822.SIZE %llu", (unsigned long long)m->size); break;
	case IMAP_FETCH_INTERNALDATE:
		imap_date_time_format(m->internaldate, date, sizeof(date));
		imap_printf(s, "INTERNALDATE \"%s\"", date);
		break;
	case IMAP_FETCH_ENVELOPE:
	case IMAP_FETCH_BODYSTRUCTURE:
	case IMAP_FETCH_BODY:
		str = it->kind == IMAP_FETCH_ENVELOPE	     ? f->st.envelope
		      : it->kind == IMAP_FETCH_BODYSTRUCTURE ? f->st.bodystructure
							     : f->st.body;
		imap_printf(s, "%s %s", it->name, str != NULL ? str : "NIL");
		break;
	case IMAP_FETCH_SECTION:
		imap_fetch_traced(s, f, m, it);
		if (imap_item_whole(it))
			imap_fetch_stream_start(s, f, it, m);
		else
			imap_fetch_section_item(s, f, it, m);
		break;
	case IMAP_FETCH_BINARY:
		imap_fetch_traced(s, f, m, it);
		if (it->spec[0] == '\0')
			imap_fetch_stream_start(s, f, it, m);
		else
			imap_fetch_binary_item(s, f, it, m);
		break;
	case IMAP_FETCH_BINARY_SIZE:
		if (it->spec[0] == '\0')
			imap_printf(s, "%s %llu", it->name, (unsigned long long)m->size);
		else
			imap_fetch_binary_item(s, f, it, m);
		break;
	}
}

/* ---- the answer, piece by piece ------------------------------------------------ */

static void imap_fetch_finish(struct imap_session *s)
{
	bool failed = s->fetch->failed || s->fetch->rows.failed, expunged = s->fetch->expunged;

	imap_fetch_free(&s->fetch);
	if (failed)
		imap_no(s, "[UNAVAILABLE] Some messages could not be read");
	else if (expunged)
		imap_no(s, "[EXPUNGEISSUED] Some of the requested messages no longer exist");
	else
		imap_ok(s, "%sFETCH completed", s->uid ? "UID " : "");
}

/* Forgets the current message's content and structure. */
static void imap_fetch_unload(struct imap_fetch *f)
{
	free(f->msg);
	f->msg = NULL;
	mime_tree_free(&f->tree);
	store_structure_deinit(&f->st);
}

static bool imap_fetch_begin_msg(struct imap_session *s, struct imap_fetch *f)
{
	imap_fetch_unload(f);
	/* Expunged by another session and not yet announced (a FETCH may not
	 * announce it): RFC 2180 4.1.3, answered NO [EXPUNGEISSUED] at the end. */
	if ((f->m = imap_rows_get(s, &f->rows, f->pos)) == NULL) {
		f->expunged |= !f->rows.failed;
		f->pos++;
		return false;
	}
	if (imap_fetch_load(s, f, f->m) < 0) {
		f->failed = true;
		f->pos++;
		return false;
	}
	imap_printf(s, "* %zu FETCH (", f->idx[f->pos] + 1);
	f->in_msg = true;
	f->item = 0;
	f->first = true;
	return true;
}

static void imap_fetch_end_msg(struct imap_session *s, struct imap_fetch *f)
{
	struct imap_vmsg *vm = &s->view.msgs[f->idx[f->pos]];
	const struct imap_msg *m = f->m;

	if ((vm->flags & IMAP_MSG_SEEN_NOW) && !imap_fetch_has(f, IMAP_FETCH_FLAGS)) {
		imap_write(s, " ", 1);
		imap_write_flags(s, m);
		if (s->condstore && !imap_fetch_has(f, IMAP_FETCH_MODSEQ))
			imap_printf(s, " MODSEQ (%llu)", (unsigned long long)m->modseq);
	}
	vm->flags &= ~IMAP_MSG_SEEN_NOW;
	imap_write(s, ")\r\n", 3);
	f->in_msg = false;
	f->pos++;
}

static void imap_fetch_pump(struct imap_session *s)
{
	struct imap_fetch *f = s->fetch;

	while (f != NULL && s->conn != NULL && imap_output_pending(s) < CONN_WRITE_LOW) {
		if (f->blob != NULL) {
			if (imap_fetch_stream_more(s, f) < 0)
				return;
			continue;
		}
		if (!f->in_msg) {
			if (f->pos == f->n) {
				imap_fetch_finish(s);
				return;
			}
			imap_fetch_begin_msg(s, f);
			continue;
		}
		if (f->item == f->n_items) {
			imap_fetch_end_msg(s, f);
			continue;
		}
		if (!f->first)
			imap_write(s, " ", 1);
		f->first = false;
		imap_fetch_item(s, f, &f->items[f->item++], f->m);
	}
}

/* ---- \Seen first, then the answer ------------------------------------------------ */

static void imap_fetch_seen_done(struct imap_session *s, const struct store_reply *reply)
{
	uint32_t *uids;
	size_t n = 0;

	if (reply->status < 0) {
		imap_fetch_free(&s->fetch);
		imap_no_store(s, reply, "FETCH");
		return;
	}
	uids = xmalloc((reply->n_delivered + 1) * sizeof(*uids));
	for (size_t i = 0; i < reply->n_delivered; i++) {
		long k = imap_view_find(&s->view, reply->delivered[i].uid);
		if (k < 0 || reply->delivered[i].status < 0)
			continue;
		s->view.msgs[k].flags |= STORE_FLAG_SEEN | IMAP_MSG_SEEN_NOW;
		uids[n++] = reply->delivered[i].uid;
	}
	/* The answer tells the new \Seen (and MODSEQ): the view takes the
	 * change in without announcing it again.  Others' changes meanwhile
	 * are announced now; expunges wait for the command's end. */
	qsort(uids, n, sizeof(*uids), imap_uid_cmp);
	s->view.changed = true;
	imap_view_sync(s, false, uids, n);
	free(uids);
	s->pump = imap_fetch_pump;
	imap_fetch_pump(s);
}

static bool imap_fetch_sets_seen(const struct imap_fetch *f)
{
	for (size_t i = 0; i < f->n_items; i++)
		if ((f->items[i].kind == IMAP_FETCH_SECTION || f->items[i].kind == IMAP_FETCH_BINARY) &&
		    !f->items[i].peek)
			return true;
	return false;
}

/* RFC 3516 4.2: a BINARY item on a part whose encoding is unknown fails
 * the command with NO [UNKNOWN-CTE].  Checked first, on the stored
 * structures (no message content is read), so that nothing is sent and
 * no \Seen set for a command that fails. */
static bool imap_fetch_unknown_cte(struct imap_session *s, struct imap_fetch *f)
{
	bool binary = false, unknown = false;
	struct mime_section sec;
	enum mime_cte cte;

	for (size_t k = 0; k < f->n_items; k++)
		binary |= (f->items[k].kind == IMAP_FETCH_BINARY ||
			   f->items[k].kind == IMAP_FETCH_BINARY_SIZE) &&
			  f->items[k].spec[0] != '\0';
	struct imap_rows rows;
	const struct imap_msg *m;

	if (!binary)
		return false;
	imap_rows_init(&rows, f->idx, f->n);
	for (size_t i = 0; !unknown && i < f->n; i++) {
		if ((m = imap_rows_get(s, &rows, i)) == NULL || imap_fetch_load(s, f, m) < 0)
			continue; /* answered as unreadable later */
		for (size_t k = 0; k < f->n_items; k++) {
			const struct imap_fetch_item *it = &f->items[k];
			if ((it->kind == IMAP_FETCH_BINARY || it->kind == IMAP_FETCH_BINARY_SIZE) &&
			    it->spec[0] != '\0' && imap_fetch_binary_part(f, it, &sec, &cte) < 0)
				unknown = true;
		}
		imap_fetch_unload(f);
	}
	imap_rows_free(&rows);
	return unknown;
}

static void imap_fetch_start(struct imap_session *s, struct imap_fetch *f)
{
	uint32_t *uids;
	size_t n = 0;

	if (imap_fetch_unknown_cte(s, f)) {
		imap_fetch_free(&f);
		imap_no(s, "[UNKNOWN-CTE] Cannot decode the part's Content-Transfer-Encoding");
		return;
	}
	imap_rows_init(&f->rows, f->idx, f->n);
	s->fetch = f;
	imap_suspend(s);
	if (s->view.readonly || !imap_fetch_sets_seen(f)) {
		s->pump = imap_fetch_pump;
		imap_fetch_pump(s);
		return;
	}
	uids = xmalloc((f->n + 1) * sizeof(*uids));
	for (size_t i = 0; i < f->n; i++)
		if (!(s->view.msgs[f->idx[i]].flags & STORE_FLAG_SEEN))
			uids[n++] = s->view.msgs[f->idx[i]].uid;
	if (n == 0) {
		free(uids);
		s->pump = imap_fetch_pump;
		imap_fetch_pump(s);
		return;
	}
	struct store_flags_change c = { .mailbox_id = s->view.mailbox_id, .uids = uids, .n_uids = n,
					.mode = STORE_FLAGS_ADD, .flags = STORE_FLAG_SEEN };
	store_flags_set(s->env->store, &c, s->loop, imap_call_done,
			imap_call(s, imap_fetch_seen_done));
	free(uids);
}

/* CHANGEDSINCE (RFC 7162 3.1.4.1): only messages with a greater modseq;
 * with VANISHED (UID FETCH, QRESYNC enabled, 3.2.6) the uids of the set
 * expunged since then come first. */
static int imap_fetch_modifiers(struct imap_session *s, struct imap_fetch *f,
				const struct imap_arg *a, const struct imap_arg *set)
{
	uint32_t *changed = NULL;
	size_t out = 0, n_changed = 0;
	uint64_t since;
	bool vanished = false;

	if (a->type == IMAP_ARG_EOL)
		return 0;
	if (a->type != IMAP_ARG_LIST || a->n < 2 || a->n > 3 ||
	    !imap_arg_atom_equals(&a->list[0], "CHANGEDSINCE") ||
	    a->list[1].type != IMAP_ARG_NUMBER || a[1].type != IMAP_ARG_EOL)
		return -1;
	if (a->n == 3) {
		if (!imap_arg_atom_equals(&a->list[2], "VANISHED") || !s->uid || !s->qresync)
			return -1;
		vanished = true;
	}
	since = a->list[1].num;
	s->condstore = true;
	if (store_message_changed_uids(s->reader, s->view.mailbox_id, since, &changed,
				       &n_changed) < 0)
		n_changed = 0;
	for (size_t i = 0, j = 0; i < f->n; i++) {
		uint32_t uid = s->view.msgs[f->idx[i]].uid;
		while (j < n_changed && changed[j] < uid)
			j++;
		if (j < n_changed && changed[j] == uid)
			f->idx[out++] = f->idx[i];
	}
	free(changed);
	f->n = out;
	if (!imap_fetch_has(f, IMAP_FETCH_MODSEQ))
		imap_fetch_add(f, IMAP_FETCH_MODSEQ, "MODSEQ");
	if (vanished)
		imap_view_vanished_earlier(s, since, set);
	return 0;
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_arg *args)
{
	struct imap_fetch *f = xcalloc(1, sizeof(*f));
	const char *error;

	if (args[0].type == IMAP_ARG_EOL || args[1].type == IMAP_ARG_EOL) {
		imap_fetch_free(&f);
		imap_bad(s, "FETCH needs a sequence set and items");
		return;
	}
	if (s->uid)
		imap_fetch_add(f, IMAP_FETCH_UID, "UID");
	if (imap_fetch_items(f, &args[1]) < 0) {
		imap_fetch_free(&f);
		imap_bad(s, "Invalid FETCH item");
		return;
	}
	if (imap_view_resolve(&s->view, &args[0], s->uid, &f->idx, &f->n, &error) < 0) {
		imap_fetch_free(&f);
		imap_bad(s, "%s", error);
		return;
	}
	if (imap_fetch_modifiers(s, f, &args[2], &args[0]) < 0) {
		imap_fetch_free(&f);
		imap_bad(s, "Invalid FETCH modifier");
		return;
	}
	if (imap_fetch_has(f, IMAP_FETCH_MODSEQ))
		s->condstore = true;
	if (s->condstore && imap_fetch_has(f, IMAP_FETCH_FLAGS) && !imap_fetch_has(f, IMAP_FETCH_MODSEQ))
		imap_fetch_add(f, IMAP_FETCH_MODSEQ, "MODSEQ");
	/* Drop a second UID item so that UID FETCH n UID answers UID once. */
	for (size_t i = 1; s->uid && i < f->n_items; i++) {
		if (f->items[i].kind == IMAP_FETCH_UID) {
			memmove(&f->items[i], &f->items[i + 1], (f->n_items - i - 1) * sizeof(*f->items));
			f->n_items--;
			i--;
		}
	}
	imap_fetch_start(s, f);
}
