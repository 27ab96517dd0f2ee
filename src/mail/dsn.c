#include "mail/dsn.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/utf8.h"
#include "lib/xalloc.h"
#include "mail/address.h"
#include "mail/header.h"
#include "mail/maildate.h"

/* The three parts are built into buffers of their own before the boundary
 * is chosen, so that it can be checked against everything it will separate
 * (the original, and diagnostics written by remote servers) and drawn again
 * in the unlikely case it occurs. */

#define FOLD_WIDTH     78   /* header lines fold here when a space allows */
#define TEXT_WIDTH     72   /* lines of the explanation wrap here */
#define WORD_MAX       900  /* the longest run written without a break: 998 less a field name */
#define VALUE_MAX      2000 /* octets kept of any one value */
#define BOUNDARY_TRIES 8

struct dsn_buf {
	char *data;
	size_t len, size;
};

/* What of the original goes into part 3. */
enum dsn_orig {
	DSN_ORIG_NONE,
	DSN_ORIG_FULL,
	DSN_ORIG_HDRS,
	DSN_ORIG_HDRS_TOO_BIG, /* ret asked for it in full, full_max said no */
};

struct dsn_parts {
	struct dsn_buf text, status, orig;
	const char *orig_type;
	bool text_8bit, orig_8bit;
};

static const char *const action_names[] = {
    [DSN_ACTION_FAILED] = "failed",       [DSN_ACTION_DELAYED] = "delayed",
    [DSN_ACTION_DELIVERED] = "delivered", [DSN_ACTION_RELAYED] = "relayed",
    [DSN_ACTION_EXPANDED] = "expanded",
};

static const char *const action_intros[] = {
    [DSN_ACTION_FAILED] = "Your message could not be delivered to the recipients below. The "
                          "errors are permanent: delivery will not be tried again.",
    [DSN_ACTION_DELAYED] = "Your message has not been delivered yet to the recipients below. "
                           "Delivery is still being tried, so there is no need to send it "
                           "again; you will be told if it finally fails.",
    [DSN_ACTION_DELIVERED] = "Your message was delivered to the recipients below, as you asked "
                             "to be told.",
    [DSN_ACTION_RELAYED] = "Your message was passed on for the recipients below to a system "
                           "that does not send delivery reports: no further report about "
                           "them will come.",
    [DSN_ACTION_EXPANDED] = "Your message was delivered to the recipients below, which are "
                            "lists or aliases, and passed on to their members.",
};

/* Report order in the explanation: the gravest first. */
static const enum dsn_action action_order[] = {DSN_ACTION_FAILED, DSN_ACTION_DELAYED,
                                               DSN_ACTION_DELIVERED, DSN_ACTION_RELAYED,
                                               DSN_ACTION_EXPANDED};

/* Makes room for n more octets and a NUL. */
static void buf_reserve(struct dsn_buf *b, size_t n)
{
	size_t size = b->size > 0 ? b->size : 4096;

	if (b->size - b->len > n)
		return;
	while (size - b->len <= n)
		size *= 2;
	b->data = xrealloc(b->data, size);
	b->size = size;
}

static void buf_put(struct dsn_buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void buf_puts(struct dsn_buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

static void buf_vprintf(struct dsn_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void buf_vprintf(struct dsn_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	/* Measured first, then written in place: one pass over the format
	 * would need a guess at the size. */
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

static void buf_printf(struct dsn_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void buf_printf(struct dsn_buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

enum text_mode {
	TEXT_ASCII, /* the delivery-status part: 7-bit only */
	TEXT_UTF8,  /* the explanation and the DSN's own header */
};

/* A clean copy of s to write on a header line or a line of text.  Control
 * octets, CR and LF first of all, become spaces: a diagnostic from a remote
 * server must never start a header line of its own.  Runs of spaces become
 * one (a folded line must hold more than spaces), none is left at either
 * end, octets that are not well-formed UTF-8 (in ASCII mode: any 8-bit
 * octet) become '?', and at most VALUE_MAX octets are kept. */
static char *text_clean(const char *s, enum text_mode mode)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = xmalloc(VALUE_MAX + 1);
	size_t n = 0;

	while (*p != '\0') {
		const char *emit = (const char *)p;
		size_t step = 1, emit_len = 1;

		if (*p < 0x20 || *p == 0x7f) {
			emit = " ";
		} else if (*p >= 0x80) {
			step = mode == TEXT_UTF8 ? utf8_seq_len(p, 4) : 0;
			emit_len = step;
			if (step == 0) {
				emit = "?";
				step = emit_len = 1;
			}
		}
		p += step;
		if (*emit == ' ' && (n == 0 || out[n - 1] == ' '))
			continue;
		if (n + emit_len > VALUE_MAX)
			break;
		memcpy(out + n, emit, emit_len);
		n += emit_len;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
	return out;
}

/* Appends clean text a word at a time.  col is the column the current line
 * is at; the first word stays on that line (after a space, unless col is
 * 0), a later word that would pass width starts a new line with brk ("\r\n "
 * folds a header field, "\r\n    " indents text).  A word longer than
 * WORD_MAX is cut, so that no line passes 998 octets. */
static void put_words(struct dsn_buf *b, size_t col, const char *text, size_t width,
                      const char *brk)
{
	bool first = true;

	while (*text != '\0') {
		size_t n = strcspn(text, " ");

		if (n > WORD_MAX) {
			n = WORD_MAX;
			while (n > 1 && ((unsigned char)text[n] & 0xc0) == 0x80)
				n--;
		}
		if (first && col == 0) {
			/* nothing before the first word of a line */
		} else if (first || col + 1 + n <= width) {
			buf_puts(b, " ");
			col++;
		} else {
			buf_puts(b, brk);
			col = strlen(brk) - 2;
		}
		buf_put(b, text, n);
		col += n;
		text += n;
		if (*text == ' ')
			text++;
		first = false;
	}
}

/* "Name: value" and CRLF; value is clean and not empty. */
static void put_field(struct dsn_buf *b, const char *name, const char *value)
{
	buf_puts(b, name);
	buf_puts(b, ":");
	put_words(b, strlen(name) + 1, value, FOLD_WIDTH, "\r\n ");
	buf_puts(b, "\r\n");
}

static void put_clean_field(struct dsn_buf *b, const char *name, const char *value,
                            enum text_mode mode)
{
	char *clean = text_clean(value, mode);

	if (clean[0] != '\0')
		put_field(b, name, clean);
	free(clean);
}

static void put_date_field(struct dsn_buf *b, const char *name, time_t t)
{
	char date[MAIL_DATE_MAX];

	if (t != 0 && mail_date_format(t, date, sizeof(date)) == 0)
		put_field(b, name, date);
}

static bool is_type_atom(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

/* value as "type; text" (clean), default_type added unless value starts
 * with one.  NULL when nothing is left of value. */
static char *typed_value(const char *value, const char *default_type, enum text_mode mode)
{
	char *clean = text_clean(value, mode), *typed;
	const char *semi = strchr(clean, ';');

	if (clean[0] == '\0') {
		free(clean);
		return NULL;
	}
	if (semi != NULL && is_type_atom(clean, (size_t)(semi - clean)))
		return clean;
	typed = xasprintf("%s; %s", default_type, clean);
	free(clean);
	return typed;
}

/* The text after "type;" of a typed value, for the explanation. */
static const char *typed_text(const char *typed)
{
	const char *p = strchr(typed, ';') + 1;

	return p + strspn(p, " ");
}

static void put_typed_field(struct dsn_buf *b, const char *name, const char *value,
                            const char *default_type)
{
	char *typed = typed_value(value, default_type, TEXT_ASCII);

	if (typed != NULL)
		put_field(b, name, typed);
	free(typed);
}

static uint32_t utf8_decode(const unsigned char *p, size_t n)
{
	static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	uint32_t cp = p[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (p[i] & 0x3f);
	return cp;
}

/* "type; address" for Final-/Original-Recipient.  Printable ASCII goes as
 * it is; anything else, and any "utf-8" address, as RFC 6533
 * utf-8-addr-xtext: octets outside QCHAR (and each UTF-8 character) as
 * "\x{HEX}", which keeps this part 7-bit and CR/LF-free. */
static char *address_value(const char *type, const char *addr)
{
	const unsigned char *p = (const unsigned char *)addr;
	struct dsn_buf b = {0};
	bool plain = strcasecmp(type, "utf-8") != 0;

	for (const unsigned char *s = p; *s != '\0' && plain; s++)
		plain = *s >= 0x20 && *s < 0x7f;
	if (plain)
		return xasprintf("%s; %s", type, addr);
	buf_puts(&b, "utf-8; ");
	while (*p != '\0' && b.len < VALUE_MAX) {
		size_t n = *p >= 0x80 ? utf8_seq_len(p, 4) : 1;
		uint32_t cp = n == 0 ? 0xfffd : utf8_decode(p, n);

		if (*p > 0x20 && *p < 0x7f && *p != '+' && *p != '=' && *p != '\\')
			buf_put(&b, p, 1);
		else
			buf_printf(&b, "\\x{%02" PRIX32 "}", cp);
		p += n == 0 ? 1 : n;
	}
	return b.data;
}

static void put_address_field(struct dsn_buf *b, const char *name, const char *type,
                              const char *addr)
{
	char *value = address_value(is_type_atom(type, strlen(type)) ? type : "rfc822", addr);

	put_field(b, name, value);
	free(value);
}

/* Status codes (RFC 3463): class "." subject "." detail. */
static bool status_valid(const char *s)
{
	if ((s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		size_t n = strspn(s, "0123456789");

		if (n < 1 || n > 3)
			return false;
		s += n;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

static int dsn_check_rcpt(const struct dsn_rcpt *r, const char **error_r)
{
	if (r->final_rcpt == NULL || r->final_rcpt[0] == '\0') {
		*error_r = "recipient without an address";
		return -1;
	}
	if ((unsigned)r->action > DSN_ACTION_EXPANDED) {
		*error_r = "invalid recipient action";
		return -1;
	}
	if (r->status == NULL || !status_valid(r->status)) {
		*error_r = "invalid recipient status code";
		return -1;
	}
	if (r->orcpt_type != NULL && r->orcpt == NULL) {
		*error_r = "original recipient type without an address";
		return -1;
	}
	return 0;
}

static int dsn_check(const struct dsn *d, const char **error_r)
{
	struct address a;
	const char *error;

	if (d->sender == NULL || d->sender[0] == '\0' || strcmp(d->sender, "<>") == 0) {
		*error_r = "no DSN to the null sender";
		return -1;
	}
	if (address_parse(d->sender, true, &a, &error) < 0) {
		*error_r = "invalid sender address";
		return -1;
	}
	if (d->reporting_mta == NULL || !address_domain_valid(d->reporting_mta, false)) {
		*error_r = "invalid reporting MTA host name";
		return -1;
	}
	if (d->rcpts == NULL || d->rcpt_count == 0) {
		*error_r = "DSN without recipients";
		return -1;
	}
	if (d->msg == NULL && d->msg_len > 0) {
		*error_r = "original message length without a message";
		return -1;
	}
	for (size_t i = 0; i < d->rcpt_count; i++)
		if (dsn_check_rcpt(&d->rcpts[i], error_r) < 0)
			return -1;
	return 0;
}

/* The gravest action: failed, then delayed, then any kind of success. */
static enum dsn_action dsn_kind(const struct dsn *d)
{
	enum dsn_action kind = DSN_ACTION_DELIVERED;

	for (size_t i = 0; i < d->rcpt_count; i++) {
		if (d->rcpts[i].action == DSN_ACTION_FAILED)
			return DSN_ACTION_FAILED;
		if (d->rcpts[i].action == DSN_ACTION_DELAYED)
			kind = DSN_ACTION_DELAYED;
	}
	return kind;
}

static enum dsn_orig dsn_orig_choose(const struct dsn *d, enum dsn_action kind)
{
	bool full =
	    d->ret == DSN_RET_FULL || (d->ret == DSN_RET_DEFAULT && kind == DSN_ACTION_FAILED);

	if (d->msg == NULL || d->msg_len == 0)
		return DSN_ORIG_NONE;
	if (!full)
		return DSN_ORIG_HDRS;
	return d->full_max != 0 && d->msg_len > d->full_max ? DSN_ORIG_HDRS_TOO_BIG : DSN_ORIG_FULL;
}

/* One recipient's line of the explanation, e.g. "<u@x>: mx.x said: 552
 * 5.2.2 Mailbox full". */
static void text_put_rcpt(struct dsn_buf *b, const struct dsn_rcpt *r)
{
	char *addr = text_clean(r->final_rcpt, TEXT_UTF8), *line;
	char *remote = r->remote_mta != NULL ? typed_value(r->remote_mta, "dns", TEXT_UTF8) : NULL;
	char *diag = r->diagnostic != NULL ? typed_value(r->diagnostic, "smtp", TEXT_UTF8) : NULL;
	char date[MAIL_DATE_MAX];

	if (diag != NULL && remote != NULL)
		line = xasprintf("<%s>: %s said: %s", addr, typed_text(remote), typed_text(diag));
	else if (diag != NULL)
		line = xasprintf("<%s>: %s", addr, typed_text(diag));
	else
		line = xasprintf("<%s>: %s (status %s)%s%s", addr, action_names[r->action],
		                 r->status, remote != NULL ? " at " : "",
		                 remote != NULL ? typed_text(remote) : "");
	put_words(b, 0, line, TEXT_WIDTH, "\r\n    ");
	buf_puts(b, "\r\n");
	if (r->action == DSN_ACTION_DELAYED && r->retry_until != 0 &&
	    mail_date_format(r->retry_until, date, sizeof(date)) == 0)
		buf_printf(b, "    Delivery will be tried until %s.\r\n", date);
	free(addr);
	free(remote);
	free(diag);
	free(line);
}

static void text_build(const struct dsn *d, enum dsn_orig orig, struct dsn_buf *b)
{
	static const char *const orig_notes[] = {
	    [DSN_ORIG_NONE] = NULL,
	    [DSN_ORIG_FULL] = "The original message is attached.",
	    [DSN_ORIG_HDRS] = "The header of the original message is attached.",
	    [DSN_ORIG_HDRS_TOO_BIG] = "The original message was too large to return in full; "
	                              "its header is attached.",
	};

	buf_printf(b, "This is the mail delivery system at %s.\r\n", d->reporting_mta);
	for (size_t k = 0; k < sizeof(action_order) / sizeof(action_order[0]); k++) {
		enum dsn_action action = action_order[k];
		bool intro = false;

		for (size_t i = 0; i < d->rcpt_count; i++) {
			if (d->rcpts[i].action != action)
				continue;
			if (!intro) {
				buf_puts(b, "\r\n");
				put_words(b, 0, action_intros[action], TEXT_WIDTH, "\r\n");
				buf_puts(b, "\r\n\r\n");
				intro = true;
			}
			text_put_rcpt(b, &d->rcpts[i]);
		}
	}
	if (orig_notes[orig] != NULL) {
		buf_puts(b, "\r\n");
		put_words(b, 0, orig_notes[orig], TEXT_WIDTH, "\r\n");
		buf_puts(b, "\r\n");
	}
}

static void status_put_rcpt(struct dsn_buf *b, const struct dsn_rcpt *r)
{
	buf_puts(b, "\r\n");
	if (r->orcpt_type != NULL)
		put_address_field(b, "Original-Recipient", r->orcpt_type, r->orcpt);
	put_address_field(b, "Final-Recipient", "rfc822", r->final_rcpt);
	put_field(b, "Action", action_names[r->action]);
	put_field(b, "Status", r->status);
	if (r->remote_mta != NULL)
		put_typed_field(b, "Remote-MTA", r->remote_mta, "dns");
	if (r->diagnostic != NULL)
		put_typed_field(b, "Diagnostic-Code", r->diagnostic, "smtp");
	put_date_field(b, "Last-Attempt-Date", r->last_attempt);
	if (r->action == DSN_ACTION_DELAYED)
		put_date_field(b, "Will-Retry-Until", r->retry_until);
}

/* The message/delivery-status body (RFC 3464 §2.1): per-message fields,
 * then a group of fields per recipient, each after an empty line. */
static void status_build(const struct dsn *d, struct dsn_buf *b)
{
	put_typed_field(b, "Reporting-MTA", d->reporting_mta, "dns");
	if (d->envid != NULL)
		put_clean_field(b, "Original-Envelope-Id", d->envid, TEXT_ASCII);
	if (d->received_from_mta != NULL)
		put_typed_field(b, "Received-From-MTA", d->received_from_mta, "dns");
	put_date_field(b, "Arrival-Date", d->arrival);
	for (size_t i = 0; i < d->rcpt_count; i++)
		status_put_rcpt(b, &d->rcpts[i]);
}

/* Appends n octets with every line end (CRLF, bare LF, bare CR) made CRLF
 * and a CRLF after an unterminated last line.  Returns whether an 8-bit
 * octet (or a NUL) was seen. */
static bool put_crlf_text(struct dsn_buf *b, const char *p, size_t n)
{
	size_t start = 0;
	bool eight = false;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x80 || c == 0)
			eight = true;
		if (c != '\r' && c != '\n')
			continue;
		buf_put(b, p + start, i - start);
		buf_puts(b, "\r\n");
		if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	buf_put(b, p + start, n - start);
	if (n > start)
		buf_puts(b, "\r\n");
	return eight;
}

/* Part 3's body and type.  An original whose header holds 8-bit octets is
 * internationalized (RFC 6532): message/rfc822 and text/rfc822-headers may
 * not carry it, RFC 6533's message/global and message/global-headers do. */
static void orig_build(const struct dsn *d, enum dsn_orig orig, struct dsn_parts *parts)
{
	size_t hdr_len = header_section_end(d->msg, d->msg_len);
	bool intl = false;

	for (size_t i = 0; i < hdr_len && !intl; i++)
		intl = (unsigned char)d->msg[i] >= 0x80;
	if (orig == DSN_ORIG_FULL) {
		parts->orig_type = intl ? "message/global" : "message/rfc822";
		parts->orig_8bit = put_crlf_text(&parts->orig, d->msg, d->msg_len);
	} else {
		parts->orig_type = intl ? "message/global-headers" : "text/rfc822-headers";
		parts->orig_8bit = put_crlf_text(&parts->orig, d->msg, hdr_len);
	}
}

static bool buf_has_8bit(const struct dsn_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			return true;
	return false;
}

static bool buf_contains(const struct dsn_buf *b, const char *s)
{
	return b->len > 0 && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/* A random boundary ("=_" cannot occur in quoted-printable or base64 text)
 * that occurs in none of the parts. */
static int boundary_choose(const struct dsn_parts *parts, char *boundary, size_t size,
                           const char **error_r)
{
	char rnd[32 + 1];

	for (int i = 0; i < BOUNDARY_TRIES; i++) {
		if (mail_random_hex(rnd, sizeof(rnd)) < 0) {
			*error_r = "no random bytes for the MIME boundary";
			return -1;
		}
		snprintf(boundary, size, "=_keel-dsn-%s", rnd);
		if (!buf_contains(&parts->text, boundary) &&
		    !buf_contains(&parts->status, boundary) &&
		    !buf_contains(&parts->orig, boundary))
			return 0;
	}
	*error_r = "no MIME boundary found that is not in the message";
	return -1;
}

static const char *dsn_subject(enum dsn_action kind)
{
	switch (kind) {
	case DSN_ACTION_FAILED:
		return "Undelivered Mail Returned to Sender";
	case DSN_ACTION_DELAYED:
		return "Delayed Mail (still being retried)";
	default:
		return "Successful Mail Delivery Report";
	}
}

static int header_build(const struct dsn *d, enum dsn_action kind, const char *boundary, bool eight,
                        struct dsn_buf *b, const char **error_r)
{
	char date[MAIL_DATE_MAX], msgid[ADDRESS_DOMAIN_MAX + 64];

	if (mail_date_format(d->date != 0 ? d->date : time(NULL), date, sizeof(date)) < 0) {
		*error_r = "cannot format the date";
		return -1;
	}
	if (mail_message_id_generate(d->reporting_mta, msgid, sizeof(msgid)) < 0) {
		*error_r = "cannot generate a Message-ID";
		return -1;
	}
	buf_printf(b, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", d->reporting_mta);
	/* The sender passed address_parse(): no controls, no spaces outside quotes. */
	buf_printf(b, "To: <%s>\r\n", d->sender);
	put_field(b, "Subject", dsn_subject(kind));
	put_field(b, "Date", date);
	put_field(b, "Message-ID", msgid);
	put_field(b, "Auto-Submitted", "auto-replied");
	put_field(b, "MIME-Version", "1.0");
	buf_printf(b,
	           "Content-Type: multipart/report; report-type=delivery-status;\r\n"
	           "\tboundary=\"%s\"\r\n",
	           boundary);
	if (eight)
		put_field(b, "Content-Transfer-Encoding", "8bit");
	buf_puts(b, "\r\n");
	return 0;
}

static void parts_append(struct dsn_buf *b, const struct dsn_parts *parts, const char *boundary)
{
	buf_puts(b, "This is a MIME-encapsulated delivery status notification.\r\n");
	buf_printf(b, "\r\n--%s\r\n", boundary);
	buf_puts(b, "Content-Description: Notification\r\n"
	            "Content-Type: text/plain; charset=utf-8\r\n");
	buf_printf(b, "Content-Transfer-Encoding: %s\r\n\r\n", parts->text_8bit ? "8bit" : "7bit");
	buf_put(b, parts->text.data, parts->text.len);
	buf_printf(b, "\r\n--%s\r\n", boundary);
	buf_puts(b, "Content-Description: Delivery report\r\n"
	            "Content-Type: message/delivery-status\r\n\r\n");
	buf_put(b, parts->status.data, parts->status.len);
	if (parts->orig_type != NULL) {
		buf_printf(b, "\r\n--%s\r\n", boundary);
		buf_printf(b, "Content-Description: %s\r\nContent-Type: %s\r\n",
		           strstr(parts->orig_type, "headers") != NULL ? "Original message header"
		                                                       : "Original message",
		           parts->orig_type);
		if (parts->orig_8bit)
			buf_puts(b, "Content-Transfer-Encoding: 8bit\r\n");
		buf_puts(b, "\r\n");
		buf_put(b, parts->orig.data, parts->orig.len);
	}
	buf_printf(b, "\r\n--%s--\r\n", boundary);
}

static void parts_free(struct dsn_parts *parts)
{
	free(parts->text.data);
	free(parts->status.data);
	free(parts->orig.data);
}

int dsn_build(const struct dsn *d, char **msg_r, size_t *len_r, const char **error_r)
{
	struct dsn_parts parts = {0};
	struct dsn_buf out = {0};
	char boundary[64];
	enum dsn_action kind;
	enum dsn_orig orig;
	int ret = -1;

	if (dsn_check(d, error_r) < 0)
		return -1;
	kind = dsn_kind(d);
	orig = dsn_orig_choose(d, kind);
	text_build(d, orig, &parts.text);
	parts.text_8bit = buf_has_8bit(&parts.text);
	status_build(d, &parts.status);
	if (orig != DSN_ORIG_NONE)
		orig_build(d, orig, &parts);
	if (boundary_choose(&parts, boundary, sizeof(boundary), error_r) == 0 &&
	    header_build(d, kind, boundary, parts.text_8bit || parts.orig_8bit, &out, error_r) ==
	        0) {
		parts_append(&out, &parts, boundary);
		*msg_r = out.data;
		*len_r = out.len;
		out.data = NULL;
		ret = 0;
	}
	free(out.data);
	parts_free(&parts);
	return ret;
}

bool dsn_should_send(const char *sender, unsigned notify, enum dsn_action action)
{
	if (sender == NULL || sender[0] == '\0' || strcmp(sender, "<>") == 0)
		return false;
	if ((notify & DSN_NOTIFY_NEVER) != 0)
		return false;
	switch (action) {
	case DSN_ACTION_FAILED:
		return notify == 0 || (notify & DSN_NOTIFY_FAILURE) != 0;
	case DSN_ACTION_DELAYED:
		return notify == 0 || (notify & DSN_NOTIFY_DELAY) != 0;
	case DSN_ACTION_DELIVERED:
	case DSN_ACTION_RELAYED:
	case DSN_ACTION_EXPANDED:
		return (notify & DSN_NOTIFY_SUCCESS) != 0;
	}
	return false;
}
