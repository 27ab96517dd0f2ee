#include "mail/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/header.h"
#include "mail/mime_decode.h"
#include "mail/mime_private.h"

/* Every scan below is bounded by an explicit end offset: the message is
 * untrusted input, possibly without a final line end or a NUL anywhere.
 * The tree is built breadth first from tree->parts itself, which serves as
 * the work list: parsing a part only ever appends its children, so there is
 * no recursion and no stack to overflow however deep the nesting. */

#define BOUNDARY_MAX  998 /* a longer boundary cannot fit on a line of RFC 5322 */
#define LANGUAGES_MAX 64
#define SECTIONS_MAX  100 /* RFC 2231 continuations of one parameter */

void mime_buf_append(struct mime_buf *b, const void *data, size_t n)
{
	if (b->cap - b->len <= n) {
		size_t cap = b->cap < 64 ? 64 : b->cap;

		while (cap - b->len <= n)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void mime_buf_append_str(struct mime_buf *b, const char *s)
{
	mime_buf_append(b, s, strlen(s));
}

void mime_buf_append_char(struct mime_buf *b, char c)
{
	mime_buf_append(b, &c, 1);
}

char *mime_buf_detach(struct mime_buf *b, size_t *len_r)
{
	char *data = b->data != NULL ? b->data : xstrdup("");

	if (len_r != NULL)
		*len_r = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return data;
}

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

bool mime_is_token_char(unsigned char c)
{
	return c > ' ' && c < 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* The end of the content of the line starting at pos (without its LF or
 * CRLF); *next_r is set to the start of the following line. */
static size_t line_end(const char *msg, size_t end, size_t pos, size_t *next_r)
{
	const char *lf = memchr(msg + pos, '\n', end - pos);
	size_t e;

	if (lf == NULL) {
		*next_r = end;
		return end;
	}
	e = (size_t)(lf - msg);
	*next_r = e + 1;
	if (e > pos && msg[e - 1] == '\r')
		e--;
	return e;
}

/* Same rules as mail/header.c, so that header_get() and this iterator
 * agree on what a field is. */
static bool field_parse_name(const char *msg, size_t start, size_t end, struct mime_field *f)
{
	size_t i = start;

	while (i < end && msg[i] > ' ' && msg[i] < 127 && msg[i] != ':')
		i++;
	if (i == start)
		return false;
	f->name = start;
	f->name_len = i - start;
	while (i < end && is_wsp((unsigned char)msg[i]))
		i++;
	if (i == end || msg[i] != ':')
		return false;
	f->value = i + 1;
	return true;
}

bool mime_field_next(const char *msg, size_t end, size_t *pos, struct mime_field *f)
{
	while (*pos < end) {
		size_t next, le = line_end(msg, end, *pos, &next);

		if (le == *pos)
			return false;
		if (!is_wsp((unsigned char)msg[*pos]) && field_parse_name(msg, *pos, le, f)) {
			f->start = *pos;
			f->end = le;
			while (next < end && is_wsp((unsigned char)msg[next]))
				f->end = line_end(msg, end, next, &next);
			f->next = next;
			*pos = next;
			return true;
		}
		*pos = next;
	}
	return false;
}

char *mime_header_value(const char *msg, size_t len, const struct mime_part *part, const char *name)
{
	size_t hs = part->header_start, he = part->header_end;
	char *buf;

	if (he > len || hs > he)
		return NULL;
	/* A value is never longer than the header it is in, so it is never
	 * cut. */
	buf = xmalloc(he - hs + 1);
	if (header_get(msg + hs, he - hs, name, buf, he - hs + 1) < 0) {
		free(buf);
		return NULL;
	}
	return xrealloc(buf, strlen(buf) + 1);
}

bool mime_part_type_is(const struct mime_part *part, const char *type, const char *subtype)
{
	return strcmp(part->type, type) == 0 &&
	       (subtype == NULL || strcmp(part->subtype, subtype) == 0);
}

bool mime_part_is_multipart(const struct mime_part *part)
{
	return mime_part_type_is(part, "multipart", NULL);
}

bool mime_part_is_message(const struct mime_part *part)
{
	return part->child_count == 1 && (mime_part_type_is(part, "message", "rfc822") ||
	                                  mime_part_type_is(part, "message", "global"));
}

const char *mime_part_param(const struct mime_part *part, const char *name)
{
	for (unsigned i = 0; i < part->param_count; i++)
		if (strcasecmp(part->params[i].name, name) == 0)
			return part->params[i].value;
	return NULL;
}

/* Skips spaces, tabs and (nested) comments of a NUL-terminated value. */
void mime_skip_cfws(const char **p)
{
	unsigned depth = 0;
	const char *s = *p;

	for (; *s != '\0'; s++) {
		if (*s == '(') {
			depth++;
		} else if (*s == ')' && depth > 0) {
			depth--;
		} else if (*s == '\\' && depth > 0) {
			if (s[1] == '\0')
				break;
			s++;
		} else if (depth == 0 && !is_wsp((unsigned char)*s)) {
			break;
		}
	}
	*p = s;
}

/* A lower-cased copy of the RFC 2045 token at *p, or NULL when there is
 * none; *p moves past it. */
static char *read_token(const char **p)
{
	const char *s = *p;
	char *tok;

	while (mime_is_token_char((unsigned char)*s))
		s++;
	if (s == *p)
		return NULL;
	tok = xstrndup(*p, (size_t)(s - *p));
	for (char *c = tok; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	*p = s;
	return tok;
}

/* A parameter as written, before RFC 2231 joins its sections. */
struct raw_param {
	char *name;  /* lower case, without '*' and section */
	int section; /* -1: none */
	bool star;   /* ends in '*': the value is %-encoded */
	char *value;
};

/* Reads a parameter value: a quoted-string (unescaped) or, leniently, any
 * run of octets up to ';', a space or a tab (boundary=----=_Part is common
 * though '=' is not a token octet). */
static char *read_param_value(const char **p)
{
	struct mime_buf b = {0};
	const char *s = *p;

	if (*s == '"') {
		for (s++; *s != '\0' && *s != '"'; s++) {
			if (*s == '\\' && s[1] != '\0')
				s++;
			mime_buf_append_char(&b, *s);
		}
		if (*s == '"')
			s++;
	} else {
		while (*s != '\0' && *s != ';' && !is_wsp((unsigned char)*s))
			mime_buf_append_char(&b, *s++);
	}
	*p = s;
	return mime_buf_detach(&b, NULL);
}

/* Splits "name*3*" into its base name, section and star. */
static void raw_param_name(struct raw_param *r, char *name)
{
	char *star = strchr(name, '*'), *end;
	long section;

	r->name = name;
	r->section = -1;
	r->star = false;
	if (star == NULL || star == name)
		return;
	if (star[1] == '\0') {
		r->star = true;
		*star = '\0';
		return;
	}
	if (star[1] < '0' || star[1] > '9' || (star[1] == '0' && star[2] >= '0' && star[2] <= '9'))
		return;
	section = strtol(star + 1, &end, 10);
	if (section >= SECTIONS_MAX || (*end != '\0' && strcmp(end, "*") != 0))
		return;
	r->section = (int)section;
	r->star = *end == '*';
	*star = '\0';
}

/* Parses "; name=value ..." into raw[]; returns how many. */
static unsigned raw_params_parse(const char *p, struct raw_param *raw)
{
	unsigned n = 0;

	for (;;) {
		char *name;

		mime_skip_cfws(&p);
		if (*p != ';') {
			/* Junk between parameters: resume at the next ';'. */
			p = strchr(p, ';');
			if (p == NULL)
				break;
		}
		p++;
		mime_skip_cfws(&p);
		name = read_token(&p);
		if (name == NULL)
			continue;
		mime_skip_cfws(&p);
		if (*p != '=' || n == MIME_MAX_PARAMS) {
			free(name);
			continue;
		}
		p++;
		mime_skip_cfws(&p);
		raw_param_name(&raw[n], name);
		raw[n].value = read_param_value(&p);
		n++;
	}
	return n;
}

/* Appends s, %XX-decoded when encoded (an invalid '%' stays as it is). */
static void append_section(struct mime_buf *b, const char *s, bool encoded)
{
	for (; *s != '\0'; s++) {
		int hi, lo;

		if (encoded && *s == '%' && (hi = mime_hex_value((unsigned char)s[1])) >= 0 &&
		    (lo = mime_hex_value((unsigned char)s[2])) >= 0) {
			mime_buf_append_char(b, (char)(hi << 4 | lo));
			s += 2;
		} else {
			mime_buf_append_char(b, *s);
		}
	}
}

/* Splits an RFC 2231 initial section "charset'language'value" into param;
 * returns the value part, or NULL when the two quotes are missing. */
static const char *param_split_extended(struct mime_param *param, const char *s)
{
	const char *q1 = strchr(s, '\''), *q2 = q1 != NULL ? strchr(q1 + 1, '\'') : NULL;

	if (q2 == NULL)
		return NULL;
	param->charset = xstrndup(s, (size_t)(q1 - s));
	param->language = xstrndup(q1 + 1, (size_t)(q2 - q1 - 1));
	param->extended = true;
	return q2 + 1;
}

/* Joins raw[first] and the following sections of the same name into
 * param, marking what it used. */
static void param_join(struct mime_param *param, struct raw_param *raw, unsigned n, unsigned first,
                       bool *used)
{
	struct mime_buf b = {0};
	const char *name = raw[first].name;

	param->name = xstrdup(name);
	for (int section = raw[first].section < 0 ? -1 : 0; section < SECTIONS_MAX; section++) {
		unsigned i = first;

		while (i < n &&
		       (used[i] || strcmp(raw[i].name, name) != 0 || raw[i].section != section))
			i++;
		if (i == n)
			break;
		used[i] = true;
		if (section <= 0 && raw[i].star) {
			const char *rest = param_split_extended(param, raw[i].value);

			append_section(&b, rest != NULL ? rest : raw[i].value, rest != NULL);
		} else {
			append_section(&b, raw[i].value, raw[i].star);
		}
		if (section < 0)
			break;
	}
	/* Sections after a gap cannot be placed: dropped. */
	for (unsigned i = first; i < n && raw[first].section >= 0; i++)
		if (strcmp(raw[i].name, name) == 0 && raw[i].section >= 0)
			used[i] = true;
	param->value = mime_buf_detach(&b, &param->value_len);
}

static void params_parse(const char *p, struct mime_param **params_r, unsigned *count_r)
{
	struct raw_param raw[MIME_MAX_PARAMS];
	bool used[MIME_MAX_PARAMS] = {false};
	unsigned n = raw_params_parse(p, raw), count = 0;
	struct mime_param *params = n > 0 ? xcalloc(n, sizeof(*params)) : NULL;

	for (unsigned i = 0; i < n; i++) {
		if (used[i])
			continue;
		param_join(&params[count++], raw, n, i, used);
	}
	for (unsigned i = 0; i < n; i++) {
		free(raw[i].name);
		free(raw[i].value);
	}
	*params_r = params;
	*count_r = count;
}

static void params_free(struct mime_param *params, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		free(params[i].name);
		free(params[i].value);
		free(params[i].charset);
		free(params[i].language);
	}
	free(params);
}

static void part_set_default_type(struct mime_part *part)
{
	const struct mime_part *parent = part->parent;
	bool digest = parent != NULL && mime_part_type_is(parent, "multipart", "digest");

	part->type = xstrdup(digest ? "message" : "text");
	part->subtype = xstrdup(digest ? "rfc822" : "plain");
}

/* RFC 2045 §5.2: a missing or invalid Content-Type is the default type,
 * without parameters. */
static void part_parse_content_type(struct mime_part *part, const char *value)
{
	const char *p = value;
	char *type = NULL, *subtype = NULL;

	if (p != NULL) {
		mime_skip_cfws(&p);
		type = read_token(&p);
		mime_skip_cfws(&p);
		if (type != NULL && *p == '/') {
			p++;
			mime_skip_cfws(&p);
			subtype = read_token(&p);
		}
	}
	if (subtype == NULL) {
		free(type);
		part_set_default_type(part);
		return;
	}
	part->type = type;
	part->subtype = subtype;
	params_parse(p, &part->params, &part->param_count);
}

/* A lower-cased token that must be the whole value, or NULL. */
static char *whole_token(const char *value)
{
	const char *p = value;
	char *tok;

	if (p == NULL)
		return NULL;
	mime_skip_cfws(&p);
	tok = read_token(&p);
	mime_skip_cfws(&p);
	if (tok != NULL && *p != '\0') {
		free(tok);
		return NULL;
	}
	return tok;
}

static void part_parse_disposition(struct mime_part *part, const char *value)
{
	const char *p = value;

	if (p == NULL)
		return;
	mime_skip_cfws(&p);
	part->disposition = read_token(&p);
	if (part->disposition != NULL)
		params_parse(p, &part->disp_params, &part->disp_param_count);
}

/* Content-Language (RFC 3282): a comma-separated list of tags. */
static void part_parse_languages(struct mime_part *part, const char *value)
{
	const char *p = value;

	if (p == NULL)
		return;
	part->languages = xcalloc(LANGUAGES_MAX, sizeof(*part->languages));
	while (*p != '\0' && part->language_count < LANGUAGES_MAX) {
		char *tag;

		mime_skip_cfws(&p);
		tag = read_token(&p);
		if (tag != NULL)
			part->languages[part->language_count++] = tag;
		mime_skip_cfws(&p);
		if (*p != ',' && *p != '\0')
			p++; /* junk: step over it */
		else if (*p == ',')
			p++;
	}
	if (part->language_count == 0) {
		free(part->languages);
		part->languages = NULL;
	}
}

static void part_parse_fields(const char *msg, size_t len, struct mime_part *part)
{
	char *ct = mime_header_value(msg, len, part, "Content-Type");
	char *cte = mime_header_value(msg, len, part, "Content-Transfer-Encoding");
	char *cd = mime_header_value(msg, len, part, "Content-Disposition");
	char *cl = mime_header_value(msg, len, part, "Content-Language");

	part_parse_content_type(part, ct);
	part->encoding = whole_token(cte);
	if (part->encoding == NULL)
		part->encoding = xstrdup("7bit");
	part_parse_disposition(part, cd);
	part_parse_languages(part, cl);
	part->id = mime_header_value(msg, len, part, "Content-ID");
	part->description = mime_header_value(msg, len, part, "Content-Description");
	part->md5 = mime_header_value(msg, len, part, "Content-MD5");
	part->location = mime_header_value(msg, len, part, "Content-Location");
	free(ct);
	free(cte);
	free(cd);
	free(cl);
}

static struct mime_part *part_new(struct mime_tree *tree, struct mime_part *parent, size_t start,
                                  size_t end)
{
	struct mime_part *part = xcalloc(1, sizeof(*part));

	part->parent = parent;
	part->depth = parent != NULL ? parent->depth + 1 : 0;
	part->header_start = start;
	part->body_end = end; /* the end of its range until parsed */
	/* Capacity doubles at each power of two. */
	if ((tree->part_count & (tree->part_count - 1)) == 0)
		tree->parts =
		    xrealloc(tree->parts, (tree->part_count == 0 ? 1 : 2 * tree->part_count) *
		                              sizeof(*tree->parts));
	tree->parts[tree->part_count++] = part;
	return part;
}

static void part_add_child(struct mime_tree *tree, struct mime_part *parent,
                           struct mime_part **tail, size_t start, size_t end)
{
	struct mime_part *child = part_new(tree, parent, start, end);

	if (*tail == NULL)
		parent->children = child;
	else
		(*tail)->next = child;
	*tail = child;
	parent->child_count++;
}

/* 0: not a boundary line; 1: a delimiter; 2: the close delimiter.  The
 * line is [pos, le) without its line end. */
static int boundary_line(const char *msg, size_t pos, size_t le, const char *boundary, size_t blen)
{
	size_t p = pos + 2 + blen;
	int kind = 1;

	if (le - pos < 2 + blen || msg[pos] != '-' || msg[pos + 1] != '-' ||
	    memcmp(msg + pos + 2, boundary, blen) != 0)
		return 0;
	if (le - p >= 2 && msg[p] == '-' && msg[p + 1] == '-') {
		kind = 2;
		p += 2;
	}
	for (; p < le; p++)
		if (!is_wsp((unsigned char)msg[p]))
			return 0;
	return kind;
}

/* The length of the line end just before pos, not reaching below min: it
 * belongs to the boundary line at pos (RFC 2046 §5.1.1). */
static size_t eol_before(const char *msg, size_t pos, size_t min)
{
	if (pos <= min || msg[pos - 1] != '\n')
		return 0;
	return pos - 1 > min && msg[pos - 2] == '\r' ? 2 : 1;
}

static bool tree_full(const struct mime_tree *tree, const struct mime_part *part)
{
	return tree->part_count >= MIME_MAX_PARTS || part->depth + 1 >= MIME_MAX_DEPTH;
}

static void part_split_multipart(const char *msg, struct mime_tree *tree, struct mime_part *part,
                                 const char *boundary)
{
	size_t blen = strlen(boundary), pos = part->body_start, end = part->body_end;
	size_t child = SIZE_MAX, next;
	struct mime_part *tail = NULL;
	int kind = 0;

	for (; pos < end; pos = next) {
		size_t le = line_end(msg, end, pos, &next);

		kind = boundary_line(msg, pos, le, boundary, blen);
		if (kind == 0)
			continue;
		if (child != SIZE_MAX)
			part_add_child(tree, part, &tail, child, pos - eol_before(msg, pos, child));
		child = SIZE_MAX;
		if (kind == 2)
			break;
		if (tree_full(tree, part)) {
			part->flags |= MIME_PART_TRUNCATED;
			break;
		}
		child = next;
	}
	if (child != SIZE_MAX) {
		part_add_child(tree, part, &tail, child, end);
		part->flags |= MIME_PART_NO_CLOSE;
	}
}

/* The body of a message/rfc822 part is parsed as a message only in an
 * identity encoding: base64 or quoted-printable would have to be decoded
 * first, and offsets into decoded text mean nothing to FETCH. */
static bool part_holds_message(const struct mime_part *part)
{
	return (mime_part_type_is(part, "message", "rfc822") ||
	        mime_part_type_is(part, "message", "global")) &&
	       (strcmp(part->encoding, "7bit") == 0 || strcmp(part->encoding, "8bit") == 0 ||
	        strcmp(part->encoding, "binary") == 0);
}

static size_t count_lines(const char *msg, size_t start, size_t end)
{
	size_t lines = 0;
	const char *p = msg + start, *e = msg + end, *lf;

	while (p < e && (lf = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		lines++;
		p = lf + 1;
	}
	return lines + (p < e ? 1 : 0);
}

/* The start of the empty line that ends the header [hs, body_start), or
 * body_start when the header did not end with one. */
static size_t header_end_find(const char *msg, size_t hs, size_t bs)
{
	if (bs == hs || msg[bs - 1] != '\n')
		return bs;
	if (bs - 1 == hs || msg[bs - 2] == '\n')
		return bs - 1;
	if (msg[bs - 2] == '\r' && (bs - 2 == hs || msg[bs - 3] == '\n'))
		return bs - 2;
	return bs;
}

static void part_parse(const char *msg, size_t len, struct mime_tree *tree, struct mime_part *part)
{
	size_t hs = part->header_start, end = part->body_end;
	const char *boundary;

	part->body_start = hs + header_section_end(msg + hs, end - hs);
	part->header_end = header_end_find(msg, hs, part->body_start);
	part_parse_fields(msg, len, part);
	part->body_lines = count_lines(msg, part->body_start, part->body_end);
	if (mime_part_is_multipart(part)) {
		boundary = mime_part_param(part, "boundary");
		if (boundary == NULL || *boundary == '\0' || strlen(boundary) > BOUNDARY_MAX)
			return;
		if (part->depth + 1 >= MIME_MAX_DEPTH)
			part->flags |= MIME_PART_TRUNCATED;
		else
			part_split_multipart(msg, tree, part, boundary);
	} else if (part_holds_message(part)) {
		struct mime_part *tail = NULL;

		if (tree_full(tree, part))
			part->flags |= MIME_PART_TRUNCATED;
		else
			part_add_child(tree, part, &tail, part->body_start, part->body_end);
	}
}

void mime_tree_order(struct mime_tree *tree)
{
	struct mime_part **order = xcalloc(tree->part_count, sizeof(*order));
	struct mime_part *p = tree->root;
	unsigned n = 0;

	while (p != NULL && n < tree->part_count) {
		order[n++] = p;
		if (p->children != NULL) {
			p = p->children;
			continue;
		}
		while (p != NULL && p->next == NULL)
			p = p->parent;
		if (p != NULL)
			p = p->next;
	}
	free(tree->parts);
	tree->parts = order;
}

struct mime_tree *mime_parse(const char *msg, size_t len)
{
	struct mime_tree *tree = xcalloc(1, sizeof(*tree));

	tree->root = part_new(tree, NULL, 0, len);
	for (unsigned i = 0; i < tree->part_count; i++)
		part_parse(msg, len, tree, tree->parts[i]);
	mime_tree_order(tree);
	return tree;
}

void mime_part_free(struct mime_part *part)
{
	free(part->type);
	free(part->subtype);
	params_free(part->params, part->param_count);
	free(part->encoding);
	free(part->disposition);
	params_free(part->disp_params, part->disp_param_count);
	free(part->id);
	free(part->description);
	free(part->md5);
	free(part->location);
	for (unsigned i = 0; i < part->language_count; i++)
		free(part->languages[i]);
	free(part->languages);
	free(part);
}

void mime_tree_free(struct mime_tree **tree)
{
	if (*tree == NULL)
		return;
	for (unsigned i = 0; i < (*tree)->part_count; i++)
		mime_part_free((*tree)->parts[i]);
	free((*tree)->parts);
	free(*tree);
	*tree = NULL;
}
