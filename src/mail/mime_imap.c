#include "mail/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mail/mime_private.h"

/* ENVELOPE, BODY and BODYSTRUCTURE.  The writers recurse once per level of
 * the tree, which MIME_MAX_DEPTH bounds (mime_parse() and
 * mime_structure_deserialize() both hold to it); write_part() checks the
 * bound again so that a hand-built tree cannot take it further. */

#define MISSING_MAILBOX "MISSING_MAILBOX"
#define MISSING_DOMAIN  "MISSING_DOMAIN"
#define EMPTY_ENVELOPE  "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
#define EMPTY_BODY      "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0"

static void imap_append_string(struct mime_buf *out, const char *s, size_t len)
{
	bool quote = len <= MIME_IMAP_QUOTED_MAX;
	char head[32];

	for (size_t i = 0; i < len && quote; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == 0 || c >= 0x80 || c == '\r' || c == '\n')
			quote = false;
	}
	if (!quote) {
		snprintf(head, sizeof(head), "{%zu}\r\n", len);
		mime_buf_append_str(out, head);
		mime_buf_append(out, s, len);
		return;
	}
	mime_buf_append_char(out, '"');
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			mime_buf_append_char(out, '\\');
		mime_buf_append_char(out, s[i]);
	}
	mime_buf_append_char(out, '"');
}

static void imap_append_nstring(struct mime_buf *out, const char *s)
{
	if (s == NULL)
		mime_buf_append_str(out, "NIL");
	else
		imap_append_string(out, s, strlen(s));
}

/* Address lists (RFC 5322 §3.4, with the obsolete forms a parser meets):
 * a small lexer over the unfolded field value, then a loop that always
 * consumes a token, so no input can stall it. */

enum tok_kind {
	TOK_END,
	TOK_ATOM,
	TOK_QUOTED,  /* start/len include the quotes */
	TOK_LITERAL, /* a domain literal, brackets included */
	TOK_SPECIAL,
};

struct tok {
	enum tok_kind kind;
	const char *start;
	size_t len;
};

static bool tok_is(const struct tok *t, char c)
{
	return t->kind == TOK_SPECIAL && *t->start == c;
}

/* The end of a quoted string or domain literal starting at s. */
static const char *scan_delimited(const char *s, char close)
{
	for (s++; *s != '\0' && *s != close; s++)
		if (*s == '\\' && s[1] != '\0')
			s++;
	return *s == close ? s + 1 : s;
}

static void tok_next(const char **p, struct tok *t)
{
	const char *s;

	mime_skip_cfws(p);
	s = *p;
	t->start = s;
	if (*s == '\0') {
		t->kind = TOK_END;
	} else if (*s == '"' || *s == '[') {
		t->kind = *s == '"' ? TOK_QUOTED : TOK_LITERAL;
		s = scan_delimited(s, *s == '"' ? '"' : ']');
	} else if (strchr("()<>@,;:.\\]", *s) != NULL) {
		t->kind = TOK_SPECIAL;
		s++;
	} else {
		t->kind = TOK_ATOM;
		while (*s != '\0' && *s != ' ' && *s != '\t' &&
		       strchr("()<>@,;:.\\]\"[", *s) == NULL)
			s++;
	}
	t->len = (size_t)(s - t->start);
	*p = s;
}

/* A phrase as a display name (words joined by one space, quoted strings
 * unquoted) and as written without spaces (for a local part). */
struct phrase {
	struct mime_buf display, raw;
};

static void phrase_add(struct phrase *ph, const struct tok *t)
{
	mime_buf_append(&ph->raw, t->start, t->len);
	if (tok_is(t, '.')) {
		mime_buf_append_char(&ph->display, '.');
		return;
	}
	if (ph->display.len > 0)
		mime_buf_append_char(&ph->display, ' ');
	if (t->kind != TOK_QUOTED) {
		mime_buf_append(&ph->display, t->start, t->len);
		return;
	}
	for (size_t i = 1; i < t->len; i++) {
		if (t->start[i] == '"' && i == t->len - 1)
			break;
		if (t->start[i] == '\\' && i + 1 < t->len)
			i++;
		mime_buf_append_char(&ph->display, t->start[i]);
	}
}

static void phrase_free(struct phrase *ph)
{
	free(ph->display.data);
	free(ph->raw.data);
	memset(ph, 0, sizeof(*ph));
}

static void addr_write(struct mime_buf *out, const char *name, const char *route,
                       const char *mailbox, const char *host)
{
	mime_buf_append_char(out, '(');
	imap_append_nstring(out, name);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, route);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, mailbox);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, host);
	mime_buf_append_char(out, ')');
}

/* Collects atoms, quoted strings, dots (and, with literal, domain
 * literals) as written; t ends at the first other token. */
static void collect_raw(const char **p, struct tok *t, struct mime_buf *b, bool literal)
{
	while (t->kind == TOK_ATOM || t->kind == TOK_QUOTED || tok_is(t, '.') ||
	       (literal && t->kind == TOK_LITERAL)) {
		mime_buf_append(b, t->start, t->len);
		tok_next(p, t);
	}
}

static const char *nonempty(const struct mime_buf *b, const char *dflt)
{
	return b->len > 0 ? b->data : dflt;
}

/* After '<': [route ':'] local-part ['@' domain] '>'. */
static void parse_angle(const char **p, struct tok *t, const char *name, struct mime_buf *out)
{
	struct mime_buf route = {0}, local = {0}, domain = {0};
	bool has_route = false;

	if (tok_is(t, '@')) {
		while (t->kind != TOK_END && !tok_is(t, ':') && !tok_is(t, '>')) {
			mime_buf_append(&route, t->start, t->len);
			tok_next(p, t);
		}
		has_route = tok_is(t, ':');
		if (has_route)
			tok_next(p, t);
	}
	collect_raw(p, t, &local, false);
	if (tok_is(t, '@')) {
		tok_next(p, t);
		collect_raw(p, t, &domain, true);
	} else if (!has_route && route.len > 1) {
		/* "<@domain>": no route after all, an empty local part. */
		mime_buf_append(&domain, route.data + 1, route.len - 1);
		route.len = 0;
	}
	while (t->kind != TOK_END && !tok_is(t, '>'))
		tok_next(p, t);
	if (tok_is(t, '>'))
		tok_next(p, t);
	addr_write(out, name, has_route ? nonempty(&route, NULL) : NULL,
	           nonempty(&local, MISSING_MAILBOX), nonempty(&domain, MISSING_DOMAIN));
	free(route.data);
	free(local.data);
	free(domain.data);
}

/* One mailbox, group start, or (skipped) junk token at t. */
static void parse_one(const char **p, struct tok *t, bool *in_group, struct mime_buf *out)
{
	struct phrase ph = {0};

	while (t->kind == TOK_ATOM || t->kind == TOK_QUOTED || tok_is(t, '.')) {
		phrase_add(&ph, t);
		tok_next(p, t);
	}
	if (tok_is(t, ':') && !*in_group) {
		addr_write(out, NULL, NULL, nonempty(&ph.display, ""), NULL);
		*in_group = true;
		tok_next(p, t);
	} else if (tok_is(t, '<')) {
		tok_next(p, t);
		parse_angle(p, t, nonempty(&ph.display, NULL), out);
	} else if (tok_is(t, '@') && ph.raw.len > 0) {
		struct mime_buf domain = {0};

		tok_next(p, t);
		collect_raw(p, t, &domain, true);
		addr_write(out, NULL, NULL, ph.raw.data, nonempty(&domain, MISSING_DOMAIN));
		free(domain.data);
	} else if (ph.raw.len > 0) {
		addr_write(out, NULL, NULL, ph.raw.data, MISSING_DOMAIN);
	} else {
		tok_next(p, t); /* a token that starts nothing: skipped */
	}
	phrase_free(&ph);
}

/* Appends the address list of value ("(...)..." with its parentheses) or
 * NIL when value is NULL or holds no address. */
static void write_address_list(struct mime_buf *out, const char *value)
{
	struct mime_buf list = {0};
	const char *p = value;
	bool in_group = false;
	struct tok t;

	if (value == NULL) {
		mime_buf_append_str(out, "NIL");
		return;
	}
	tok_next(&p, &t);
	while (t.kind != TOK_END) {
		if (tok_is(&t, ',')) {
			tok_next(&p, &t);
		} else if (tok_is(&t, ';')) {
			if (in_group)
				addr_write(&list, NULL, NULL, NULL, NULL);
			in_group = false;
			tok_next(&p, &t);
		} else {
			parse_one(&p, &t, &in_group, &list);
		}
	}
	if (in_group)
		addr_write(&list, NULL, NULL, NULL, NULL);
	if (list.len == 0) {
		mime_buf_append_str(out, "NIL");
	} else {
		mime_buf_append_char(out, '(');
		mime_buf_append(out, list.data, list.len);
		mime_buf_append_char(out, ')');
	}
	free(list.data);
}

static char *address_list(const char *msg, size_t len, const struct mime_part *part,
                          const char *name)
{
	struct mime_buf b = {0};
	char *value = mime_header_value(msg, len, part, name);

	write_address_list(&b, value);
	free(value);
	return mime_buf_detach(&b, NULL);
}

static void write_field_string(struct mime_buf *out, const char *msg, size_t len,
                               const struct mime_part *part, const char *name)
{
	char *value = mime_header_value(msg, len, part, name);

	imap_append_nstring(out, value);
	free(value);
}

static void write_envelope(struct mime_buf *out, const char *msg, size_t len,
                           const struct mime_part *part)
{
	static const char *const tail[] = {"To", "Cc", "Bcc"};
	char *from = address_list(msg, len, part, "From");
	char *sender = address_list(msg, len, part, "Sender");
	char *reply_to = address_list(msg, len, part, "Reply-To");

	mime_buf_append_char(out, '(');
	write_field_string(out, msg, len, part, "Date");
	mime_buf_append_char(out, ' ');
	write_field_string(out, msg, len, part, "Subject");
	mime_buf_append_char(out, ' ');
	mime_buf_append_str(out, from);
	mime_buf_append_char(out, ' ');
	mime_buf_append_str(out, strcmp(sender, "NIL") == 0 ? from : sender);
	mime_buf_append_char(out, ' ');
	mime_buf_append_str(out, strcmp(reply_to, "NIL") == 0 ? from : reply_to);
	for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++) {
		char *list = address_list(msg, len, part, tail[i]);

		mime_buf_append_char(out, ' ');
		mime_buf_append_str(out, list);
		free(list);
	}
	mime_buf_append_char(out, ' ');
	write_field_string(out, msg, len, part, "In-Reply-To");
	mime_buf_append_char(out, ' ');
	write_field_string(out, msg, len, part, "Message-ID");
	mime_buf_append_char(out, ')');
	free(from);
	free(sender);
	free(reply_to);
}

char *mime_imap_envelope(const char *msg, size_t len, const struct mime_part *part)
{
	struct mime_buf b = {0};

	write_envelope(&b, msg, len, part);
	return mime_buf_detach(&b, NULL);
}

/* RFC 2231 attribute-char: what an extended value may hold unencoded. */
static bool is_attribute_char(unsigned char c)
{
	return mime_is_token_char(c) && c != '*' && c != '\'' && c != '%';
}

/* An extended parameter goes out as it came, name*=charset'lang'%XX, so
 * that a client decodes it with its charset. */
static void write_param(struct mime_buf *out, const struct mime_param *param)
{
	struct mime_buf v = {0};
	char hex[4];

	if (!param->extended) {
		imap_append_string(out, param->name, strlen(param->name));
		mime_buf_append_char(out, ' ');
		imap_append_string(out, param->value, param->value_len);
		return;
	}
	mime_buf_append(&v, param->name, strlen(param->name));
	mime_buf_append_char(&v, '*');
	imap_append_string(out, v.data, v.len);
	mime_buf_append_char(out, ' ');
	v.len = 0;
	mime_buf_append_str(&v, param->charset);
	mime_buf_append_char(&v, '\'');
	mime_buf_append_str(&v, param->language);
	mime_buf_append_char(&v, '\'');
	for (size_t i = 0; i < param->value_len; i++) {
		unsigned char c = (unsigned char)param->value[i];

		if (is_attribute_char(c)) {
			mime_buf_append_char(&v, (char)c);
		} else {
			snprintf(hex, sizeof(hex), "%%%02X", c);
			mime_buf_append_str(&v, hex);
		}
	}
	imap_append_string(out, v.data, v.len);
	free(v.data);
}

static void write_params(struct mime_buf *out, const struct mime_param *params, unsigned count,
                         bool default_charset)
{
	for (unsigned i = 0; i < count && default_charset; i++)
		if (strcmp(params[i].name, "charset") == 0)
			default_charset = false;
	if (count == 0 && !default_charset) {
		mime_buf_append_str(out, "NIL");
		return;
	}
	mime_buf_append_char(out, '(');
	for (unsigned i = 0; i < count; i++) {
		if (i > 0)
			mime_buf_append_char(out, ' ');
		write_param(out, &params[i]);
	}
	if (default_charset)
		mime_buf_append_str(out, count > 0 ? " \"charset\" \"us-ascii\""
		                                   : "\"charset\" \"us-ascii\"");
	mime_buf_append_char(out, ')');
}

/* body-ext-1part / body-ext-mpart after the MD5: disposition, language,
 * location. */
static void write_extension(struct mime_buf *out, const struct mime_part *part)
{
	mime_buf_append_char(out, ' ');
	if (part->disposition == NULL) {
		mime_buf_append_str(out, "NIL");
	} else {
		mime_buf_append_char(out, '(');
		imap_append_nstring(out, part->disposition);
		mime_buf_append_char(out, ' ');
		write_params(out, part->disp_params, part->disp_param_count, false);
		mime_buf_append_char(out, ')');
	}
	mime_buf_append_char(out, ' ');
	if (part->language_count == 0) {
		mime_buf_append_str(out, "NIL");
	} else {
		mime_buf_append_char(out, '(');
		for (unsigned i = 0; i < part->language_count; i++) {
			if (i > 0)
				mime_buf_append_char(out, ' ');
			imap_append_nstring(out, part->languages[i]);
		}
		mime_buf_append_char(out, ')');
	}
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, part->location);
}

struct bs_ctx {
	const char *msg;
	size_t len;
	bool extended;
	struct mime_buf *out;
};

static void write_part(const struct bs_ctx *ctx, const struct mime_part *part, unsigned level);

static void write_empty_body(const struct bs_ctx *ctx)
{
	mime_buf_append_str(ctx->out, EMPTY_BODY);
	mime_buf_append_str(ctx->out, ctx->extended ? " NIL NIL NIL NIL)" : ")");
}

static void write_multipart(const struct bs_ctx *ctx, const struct mime_part *part, unsigned level)
{
	struct mime_buf *out = ctx->out;

	mime_buf_append_char(out, '(');
	if (part->children == NULL)
		write_empty_body(ctx);
	for (const struct mime_part *c = part->children; c != NULL; c = c->next)
		write_part(ctx, c, level + 1);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, part->subtype);
	if (ctx->extended) {
		mime_buf_append_char(out, ' ');
		write_params(out, part->params, part->param_count, false);
		write_extension(out, part);
	}
	mime_buf_append_char(out, ')');
}

static void write_number(struct mime_buf *out, size_t n)
{
	char num[32];

	snprintf(num, sizeof(num), " %zu", n);
	mime_buf_append_str(out, num);
}

static void write_single(const struct bs_ctx *ctx, const struct mime_part *part, unsigned level)
{
	struct mime_buf *out = ctx->out;
	bool text = mime_part_type_is(part, "text", NULL);
	bool message = mime_part_type_is(part, "message", "rfc822") ||
	               mime_part_type_is(part, "message", "global");

	mime_buf_append_char(out, '(');
	imap_append_nstring(out, part->type);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, part->subtype);
	mime_buf_append_char(out, ' ');
	write_params(out, part->params, part->param_count, text);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, part->id);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, part->description);
	mime_buf_append_char(out, ' ');
	imap_append_nstring(out, part->encoding);
	write_number(out, part->body_end - part->body_start);
	if (message) {
		mime_buf_append_char(out, ' ');
		if (part->child_count == 1) {
			write_envelope(out, ctx->msg, ctx->len, part->children);
			mime_buf_append_char(out, ' ');
			write_part(ctx, part->children, level + 1);
		} else {
			mime_buf_append_str(out, EMPTY_ENVELOPE " ");
			write_empty_body(ctx);
		}
	}
	if (text || message)
		write_number(out, part->body_lines);
	if (ctx->extended) {
		mime_buf_append_char(out, ' ');
		imap_append_nstring(out, part->md5);
		write_extension(out, part);
	}
	mime_buf_append_char(out, ')');
}

static void write_part(const struct bs_ctx *ctx, const struct mime_part *part, unsigned level)
{
	if (level >= MIME_MAX_DEPTH)
		write_empty_body(ctx);
	else if (mime_part_is_multipart(part))
		write_multipart(ctx, part, level);
	else
		write_single(ctx, part, level);
}

char *mime_imap_bodystructure(const char *msg, size_t len, const struct mime_tree *tree,
                              bool extended)
{
	struct mime_buf b = {0};
	struct bs_ctx ctx = {.msg = msg, .len = len, .extended = extended, .out = &b};

	write_part(&ctx, tree->root, 0);
	return mime_buf_detach(&b, NULL);
}
