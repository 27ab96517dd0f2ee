#include "mail/mime.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mail/mime_decode.h"
#include "mail/mime_private.h"

/* Decoding for full-text search.  It is lenient throughout: search wants
 * whatever text can be recovered, so bad base64 octets are skipped, an
 * undecodable encoded-word stays as written and a charset iconv does not
 * know is passed through. */

#define CHARSET_NAME_MAX 64
#define REPLACEMENT      "\xef\xbf\xbd" /* U+FFFD in UTF-8 */

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static bool charset_is(const char *charset, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcasecmp(charset, *names) == 0)
			return true;
	return false;
}

static void convert_latin1(const char *in, size_t len, struct mime_buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x80) {
			mime_buf_append_char(out, (char)c);
		} else {
			mime_buf_append_char(out, (char)(0xc0 | c >> 6));
			mime_buf_append_char(out, (char)(0x80 | (c & 0x3f)));
		}
	}
}

/* Only names made of the octets charset names use reach iconv_open(). */
static bool charset_name_sane(const char *charset)
{
	size_t n = strlen(charset);

	if (n == 0 || n > CHARSET_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)charset[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static void convert_iconv(iconv_t cd, const char *in, size_t len, struct mime_buf *out)
{
	char tmp[1024], *ip = (char *)in, *op;
	size_t il = len, ol;

	while (il > 0) {
		op = tmp;
		ol = sizeof(tmp);
		if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 && errno != E2BIG) {
			/* An invalid or incomplete sequence: one octet becomes U+FFFD. */
			mime_buf_append(out, tmp, (size_t)(op - tmp));
			mime_buf_append_str(out, REPLACEMENT);
			ip++;
			il--;
			continue;
		}
		mime_buf_append(out, tmp, (size_t)(op - tmp));
	}
	op = tmp;
	ol = sizeof(tmp);
	iconv(cd, NULL, NULL, &op, &ol);
	mime_buf_append(out, tmp, (size_t)(op - tmp));
}

/* Appends in[0, len) in charset (NULL: US-ASCII) as UTF-8. */
static void charset_to_utf8(const char *charset, const char *in, size_t len, struct mime_buf *out)
{
	static const char *const passed[] = {"us-ascii", "utf-8", "utf8", "ascii", NULL};
	static const char *const latin1[] = {"iso-8859-1", "iso8859-1", "iso_8859-1",
	                                     "latin1",     "l1",        NULL};
	iconv_t cd;

	if (charset == NULL || charset_is(charset, passed) || !charset_name_sane(charset)) {
		mime_buf_append(out, in, len);
		return;
	}
	if (charset_is(charset, latin1)) {
		convert_latin1(in, len, out);
		return;
	}
	cd = iconv_open("UTF-8", charset);
	if (cd == (iconv_t)-1) {
		mime_buf_append(out, in, len);
		return;
	}
	convert_iconv(cd, in, len, out);
	iconv_close(cd);
}

/* An RFC 2047 encoded-word at p ("=?charset?B?...?="): returns its end
 * and, when out is not NULL, appends its text as UTF-8; NULL when p does
 * not start one. */
static const char *encoded_word(const char *p, struct mime_buf *out)
{
	const char *cs = p + 2, *cs_end, *text, *text_end;
	char enc, *charset, *star, *raw;
	size_t raw_len;

	if (p[0] != '=' || p[1] != '?')
		return NULL;
	cs_end = strchr(cs, '?');
	if (cs_end == NULL || cs_end == cs)
		return NULL;
	enc = cs_end[1];
	if ((enc != 'B' && enc != 'b' && enc != 'Q' && enc != 'q') || cs_end[2] != '?')
		return NULL;
	text = cs_end + 3;
	text_end = strchr(text, '?');
	if (text_end == NULL || text_end[1] != '=' || memchr(cs, ' ', (size_t)(text_end - cs)))
		return NULL;
	if (out == NULL)
		return text_end + 2;
	charset = xstrndup(cs, (size_t)(cs_end - cs));
	star = strchr(charset, '*'); /* RFC 2231 §5: charset*language */
	if (star != NULL)
		*star = '\0';
	if (enc == 'B' || enc == 'b')
		raw = mime_cte_decode(MIME_CTE_BASE64, text, (size_t)(text_end - text), &raw_len);
	else
		raw = mime_q_decode(text, (size_t)(text_end - text), &raw_len);
	charset_to_utf8(charset, raw, raw_len, out);
	free(raw);
	free(charset);
	return text_end + 2;
}

/* Decodes the encoded-words of an unfolded value; the white space between
 * two adjacent encoded-words goes (RFC 2047 §6.2). */
static void decode_header_value(const char *p, struct mime_buf *out)
{
	bool after_word = false;

	while (*p != '\0') {
		const char *end = encoded_word(p, out);

		if (end != NULL) {
			after_word = true;
			p = end;
		} else if (is_wsp(*p)) {
			const char *q = p;

			while (is_wsp(*q))
				q++;
			if (!after_word || encoded_word(q, NULL) == NULL)
				mime_buf_append(out, p, (size_t)(q - p));
			p = q;
		} else {
			mime_buf_append_char(out, *p++);
			after_word = false;
		}
	}
}

/* The raw value [value, end) unfolded, NUL and CR as spaces, trimmed. */
static char *field_unfold(const char *msg, const struct mime_field *f)
{
	struct mime_buf b = {0};
	size_t n;

	for (size_t i = f->value; i < f->end; i++) {
		char c = msg[i];

		if (c == '\n' || (c == '\r' && i + 1 < f->end && msg[i + 1] == '\n'))
			continue;
		if (c == '\r' || c == '\0')
			c = ' ';
		if (b.len == 0 && is_wsp(c))
			continue;
		mime_buf_append_char(&b, c);
	}
	n = b.len;
	while (n > 0 && is_wsp(b.data[n - 1]))
		n--;
	if (b.data != NULL)
		b.data[n] = '\0';
	b.len = n;
	return mime_buf_detach(&b, NULL);
}

static int walk_header(const char *msg, size_t len, const struct mime_part *part, mime_text_cb *cb,
                       void *ctx)
{
	size_t pos = part->header_start, end = part->header_end;
	struct mime_field f;
	int ret = 0;

	if (end > len || pos > end)
		return 0;
	while (ret == 0 && mime_field_next(msg, end, &pos, &f)) {
		char *name = xstrndup(msg + f.name, f.name_len), *value = field_unfold(msg, &f);
		struct mime_buf text = {0};

		decode_header_value(value, &text);
		ret = cb(MIME_TEXT_HEADER, part, name, text.data != NULL ? text.data : "", text.len,
		         ctx);
		free(text.data);
		free(value);
		free(name);
	}
	return ret;
}

static int walk_body(const char *msg, size_t len, const struct mime_part *part, mime_text_cb *cb,
                     void *ctx)
{
	struct mime_buf text = {0};
	enum mime_cte cte;
	char *decoded;
	size_t n;
	int ret;

	if (part->body_end > len || part->body_start > part->body_end)
		return 0;
	n = part->body_end - part->body_start;
	/* An encoding nobody knows: its octets, which is what a search can use. */
	if ((cte = mime_cte_from_name(part->encoding)) == MIME_CTE_UNKNOWN)
		cte = MIME_CTE_IDENTITY;
	decoded = mime_cte_decode(cte, msg + part->body_start, n, &n);
	charset_to_utf8(mime_part_param(part, "charset"), decoded, n, &text);
	ret = cb(MIME_TEXT_BODY, part, NULL, text.data != NULL ? text.data : "", text.len, ctx);
	free(decoded);
	free(text.data);
	return ret;
}

int mime_text_walk(const char *msg, size_t len, const struct mime_tree *tree, mime_text_cb *cb,
                   void *ctx)
{
	int ret = 0;

	for (unsigned i = 0; i < tree->part_count && ret == 0; i++) {
		const struct mime_part *part = tree->parts[i];

		if (part->parent == NULL || mime_part_is_message(part->parent))
			ret = walk_header(msg, len, part, cb, ctx);
		if (ret == 0 && mime_part_type_is(part, "text", NULL))
			ret = walk_body(msg, len, part, cb, ctx);
	}
	return ret;
}
