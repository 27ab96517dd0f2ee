#include "proto/smtp_reply.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void smtp_reply_parser_init(struct smtp_reply_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static void smtp_reply_reset(struct smtp_reply_parser *p)
{
	memset(&p->reply, 0, sizeof(p->reply));
	p->in_reply = false;
	p->text_len = 0;
}

static void smtp_reply_append(struct smtp_reply_parser *p, const char *s, size_t len)
{
	size_t room = sizeof(p->reply.text) - 1 - p->text_len;

	if (p->reply.n_lines > 1 && room > 0) {
		p->reply.text[p->text_len++] = '\n';
		room--;
	}
	if (len > room)
		len = room;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		p->reply.text[p->text_len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	p->reply.text[p->text_len] = '\0';
}

/* RFC 3463: class "." subject "." detail, 1-3 digits each, then a space or
 * the end of the text. */
static void smtp_reply_enhanced(struct smtp_reply *r)
{
	const char *t = r->text;
	size_t i = 0;

	if (t[0] != '2' && t[0] != '4' && t[0] != '5')
		return;
	if (t[0] - '0' != r->code / 100 || t[1] != '.')
		return;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;
		while (isdigit((unsigned char)t[i]) && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return;
		if (part == 0) {
			if (t[i] != '.')
				return;
			i++;
		}
	}
	if (t[i] != ' ' && t[i] != '\0' && t[i] != '\n')
		return;
	memcpy(r->enhanced, t, i);
	r->enhanced[i] = '\0';
}

int smtp_reply_parser_line(struct smtp_reply_parser *p, const char *line, size_t len,
                           const char **error_r)
{
	int code;

	if (!p->in_reply)
		smtp_reply_reset(p);
	if (len > SMTP_REPLY_LINE_MAX) {
		*error_r = "reply line too long";
		goto fail;
	}
	if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-')) {
		*error_r = "not an SMTP reply line";
		goto fail;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599) {
		*error_r = "reply code out of range";
		goto fail;
	}
	if (p->in_reply && code != p->reply.code) {
		*error_r = "reply code changes within a multi-line reply";
		goto fail;
	}
	if (++p->reply.n_lines > SMTP_REPLY_LINES_MAX) {
		*error_r = "too many lines in one reply";
		goto fail;
	}
	p->reply.code = code;
	p->in_reply = true;
	smtp_reply_append(p, len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
	if (len > 3 && line[3] == '-')
		return 0;
	p->in_reply = false;
	smtp_reply_enhanced(&p->reply);
	return 1;

fail:
	smtp_reply_reset(p);
	return -1;
}

void smtp_reply_format(const struct smtp_reply *r, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%03d %s", r->code, r->text);

	if (n < 0 || size == 0)
		return;
	for (char *c = buf; *c != '\0'; c++)
		if (*c == '\n')
			*c = ' ';
}

static bool smtp_word_is(const char *w, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(w, kw, len) == 0;
}

static void smtp_ehlo_auth(struct smtp_ehlo *e, const char *p, const char *end)
{
	while (p < end) {
		const char *w;
		size_t len;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		w = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		len = (size_t)(p - w);
		if (len == 0)
			break;
		if (smtp_word_is(w, len, "PLAIN"))
			e->auth |= SMTP_AUTH_PLAIN;
		else if (smtp_word_is(w, len, "LOGIN"))
			e->auth |= SMTP_AUTH_LOGIN;
		else if (smtp_word_is(w, len, "CRAM-MD5"))
			e->auth |= SMTP_AUTH_CRAM_MD5;
		else if (smtp_word_is(w, len, "XOAUTH2"))
			e->auth |= SMTP_AUTH_XOAUTH2;
		else
			e->auth |= SMTP_AUTH_OTHER;
	}
}

static void smtp_ehlo_size(struct smtp_ehlo *e, const char *p, const char *end)
{
	uint64_t n = 0;
	bool digits = false;

	e->size = true;
	while (p < end && *p == ' ')
		p++;
	for (; p < end && isdigit((unsigned char)*p); p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return; /* absurd: treat as no limit */
		n = n * 10 + (uint64_t)(*p - '0');
		digits = true;
	}
	if (digits)
		e->size_max = n;
}

static void smtp_ehlo_line(struct smtp_ehlo *e, const char *line, const char *end)
{
	const char *kw = line, *p = line;
	size_t len;

	while (p < end && *p != ' ' && *p != '=')
		p++;
	len = (size_t)(p - kw);
	if (smtp_word_is(kw, len, "SIZE"))
		smtp_ehlo_size(e, p, end);
	else if (smtp_word_is(kw, len, "PIPELINING"))
		e->pipelining = true;
	else if (smtp_word_is(kw, len, "8BITMIME"))
		e->eightbitmime = true;
	else if (smtp_word_is(kw, len, "SMTPUTF8"))
		e->smtputf8 = true;
	else if (smtp_word_is(kw, len, "STARTTLS"))
		e->starttls = true;
	else if (smtp_word_is(kw, len, "DSN"))
		e->dsn = true;
	else if (smtp_word_is(kw, len, "CHUNKING"))
		e->chunking = true;
	else if (smtp_word_is(kw, len, "BINARYMIME"))
		e->binarymime = true;
	else if (smtp_word_is(kw, len, "ENHANCEDSTATUSCODES"))
		e->enhancedstatuscodes = true;
	else if (smtp_word_is(kw, len, "AUTH") && p < end)
		smtp_ehlo_auth(e, p + 1, end);
}

void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *ehlo_r)
{
	const char *p = r->text;

	memset(ehlo_r, 0, sizeof(*ehlo_r));
	if (r->code != 250)
		return;
	/* The first line is the server's greeting name, not a keyword. */
	p = strchr(p, '\n');
	while (p != NULL) {
		const char *line = p + 1, *end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		smtp_ehlo_line(ehlo_r, line, end);
		p = *end == '\n' ? end : NULL;
	}
}
