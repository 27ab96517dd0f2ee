/* Small pieces of IMAP syntax shared by the command files. */
#include "imap/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/utf8.h"
#include "lib/xalloc.h"

static const char *const imap_months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

static bool imap_quotable(const char *str, size_t len)
{
	if (len > 1024)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)str[i];
		if (c == 0 || c == '\r' || c == '\n' || c >= 0x80)
			return false;
	}
	return true;
}

void imap_write_astring(struct imap_session *s, const char *str, size_t len)
{
	if (!imap_quotable(str, len)) {
		imap_printf(s, "{%zu}\r\n", len);
		imap_write(s, str, len);
		return;
	}
	imap_write(s, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (str[i] == '"' || str[i] == '\\')
			imap_write(s, "\\", 1);
		imap_write(s, &str[i], 1);
	}
	imap_write(s, "\"", 1);
}

void imap_write_nstring(struct imap_session *s, const char *str, size_t len)
{
	if (str == NULL)
		imap_write(s, "NIL", 3);
	else
		imap_write_astring(s, str, len);
}

const char *imap_arg_string(const struct imap_arg *arg, size_t *len_r)
{
	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_NUMBER:
	case IMAP_ARG_NIL:
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
		if (arg->str == NULL)
			return NULL;
		*len_r = arg->len;
		return arg->str;
	default: return NULL;
	}
}

static const struct {
	const char *name;
	uint32_t bit;
} imap_system_flags[] = {
	{ "\\Seen", STORE_FLAG_SEEN },       { "\\Answered", STORE_FLAG_ANSWERED },
	{ "\\Flagged", STORE_FLAG_FLAGGED }, { "\\Deleted", STORE_FLAG_DELETED },
	{ "\\Draft", STORE_FLAG_DRAFT },
};

static bool imap_keyword_valid(const char *str, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)str[i];
		if (c <= ' ' || c >= 0x7f || strchr("(){%*\"\\]", c) != NULL)
			return false;
	}
	return true;
}

static int imap_flag_one(const struct imap_arg *a, uint32_t *flags, char *kw, size_t size,
			 const char **error_r)
{
	if (a->type != IMAP_ARG_ATOM) {
		*error_r = "Flags are atoms";
		return -1;
	}
	if (a->str[0] == '\\') {
		for (size_t i = 0; i < sizeof(imap_system_flags) / sizeof(imap_system_flags[0]); i++) {
			if (strcasecmp(a->str, imap_system_flags[i].name) == 0) {
				*flags |= imap_system_flags[i].bit;
				return 0;
			}
		}
		*error_r = "Invalid system flag";
		return -1;
	}
	if (!imap_keyword_valid(a->str, a->len)) {
		*error_r = "Invalid keyword";
		return -1;
	}
	size_t used = strlen(kw);
	if (used + a->len + 2 > size) {
		*error_r = "Too many keywords";
		return -1;
	}
	snprintf(kw + used, size - used, "%s%s", used ? " " : "", a->str);
	return 0;
}

int imap_flags_parse(const struct imap_arg *arg, uint32_t *flags_r, char *keywords, size_t size,
		     const char **error_r)
{
	*flags_r = 0;
	keywords[0] = '\0';
	if (arg->type != IMAP_ARG_LIST)
		return imap_flag_one(arg, flags_r, keywords, size, error_r);
	for (size_t i = 0; i < arg->n; i++)
		if (imap_flag_one(&arg->list[i], flags_r, keywords, size, error_r) < 0)
			return -1;
	return 0;
}

static int imap_month(const char *m)
{
	for (int i = 0; i < 12; i++)
		if (strncasecmp(m, imap_months[i], 3) == 0)
			return i;
	return -1;
}

int imap_date_parse(const char *str, time_t *t_r)
{
	struct tm tm = { 0 };
	char mon[4];
	int n = 0;

	if (sscanf(str, "%2d-%3[A-Za-z]-%4d%n", &tm.tm_mday, mon, &tm.tm_year, &n) != 3 ||
	    str[n] != '\0' || (tm.tm_mon = imap_month(mon)) < 0 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_year < 1900)
		return -1;
	tm.tm_year -= 1900;
	*t_r = timegm(&tm);
	return 0;
}

int imap_date_time_parse(const char *str, time_t *t_r)
{
	struct tm tm = { 0 };
	char mon[4], sign;
	int zone, n = 0;

	while (*str == ' ')
		str++;
	if (sscanf(str, "%2d-%3[A-Za-z]-%4d %2d:%2d:%2d %c%4d%n", &tm.tm_mday, mon, &tm.tm_year,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &sign, &zone, &n) != 8 ||
	    str[n] != '\0' || (sign != '+' && sign != '-') || (tm.tm_mon = imap_month(mon)) < 0 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_year < 1900 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60 || zone > 2359)
		return -1;
	tm.tm_year -= 1900;
	long offset = (zone / 100) * 3600L + (zone % 100) * 60L;
	*t_r = timegm(&tm) - (sign == '+' ? offset : -offset);
	return 0;
}

void imap_date_time_format(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, size, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 imap_months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

char *imap_uidset_format(const uint32_t *uids, size_t n)
{
	size_t alloc = 64, len = 0;
	char *buf = xmalloc(alloc);

	buf[0] = '\0';
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j + 1 < n && uids[j + 1] == uids[j] + 1)
			j++;
		if (len + 24 > alloc) {
			alloc *= 2;
			buf = xrealloc(buf, alloc);
		}
		if (j == i)
			len += (size_t)snprintf(buf + len, alloc - len, "%s%u", len ? "," : "", uids[i]);
		else
			len += (size_t)snprintf(buf + len, alloc - len, "%s%u:%u", len ? "," : "",
						uids[i], uids[j]);
		i = j + 1;
	}
	return buf;
}

bool imap_memcasemem(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
	if (needle_len == 0)
		return true;
	for (size_t i = 0; i + needle_len <= hay_len; i++) {
		if (tolower((unsigned char)hay[i]) != tolower((unsigned char)needle[0]))
			continue;
		if (strncasecmp(hay + i, needle, needle_len) == 0)
			return true;
	}
	return false;
}

int imap_uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* ---- mailbox names: modified UTF-7 (RFC 3501 5.1.3) for IMAP4rev1 ------------ */

static const char imap_mutf7_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/* The code point of the UTF-8 sequence at s (n octets, from utf8_seq_len). */
static uint32_t imap_utf8_decode(const unsigned char *s, size_t n)
{
	static const unsigned char lead_mask[] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	uint32_t cp = s[0] & lead_mask[n];

	for (size_t i = 1; i < n; i++)
		cp = cp << 6 | (s[i] & 0x3fu);
	return cp;
}

static size_t imap_utf8_encode(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

struct imap_out {
	char *buf;
	size_t size, len;
	bool overflow;
};

static void imap_out_add(struct imap_out *o, const char *s, size_t n)
{
	if (o->overflow || n >= o->size - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* The UTF-16 units of a run of non-ASCII characters, base64'd, in "&...-". */
static void imap_mutf7_run(struct imap_out *o, const uint16_t *units, size_t n)
{
	uint32_t bits = 0;
	unsigned nbits = 0;

	imap_out_add(o, "&", 1);
	for (size_t i = 0; i < n; i++) {
		bits = bits << 16 | units[i];
		nbits += 16;
		while (nbits >= 6) {
			nbits -= 6;
			imap_out_add(o, &imap_mutf7_alphabet[bits >> nbits & 0x3f], 1);
		}
		bits &= (1u << nbits) - 1;
	}
	if (nbits > 0)
		imap_out_add(o, &imap_mutf7_alphabet[bits << (6 - nbits) & 0x3f], 1);
	imap_out_add(o, "-", 1);
}

int imap_mutf7_encode(const char *utf8, char *out, size_t size)
{
	struct imap_out o = { out, size, 0, size == 0 };
	const unsigned char *s = (const unsigned char *)utf8;
	size_t len = strlen(utf8), i = 0;

	if (size > 0)
		out[0] = '\0';
	while (i < len) {
		uint16_t units[2 * 64];
		size_t n_units = 0;

		if (s[i] >= 0x20 && s[i] < 0x7f) {
			imap_out_add(&o, s[i] == '&' ? "&-" : (const char *)&s[i], s[i] == '&' ? 2 : 1);
			i++;
			continue;
		}
		while (i < len && (s[i] < 0x20 || s[i] >= 0x7f) && n_units + 2 <= 2 * 64) {
			size_t n = utf8_seq_len(s + i, len - i);
			uint32_t cp;
			if (n == 0)
				return -1;
			cp = imap_utf8_decode(s + i, n);
			if (cp >= 0x10000) {
				units[n_units++] = (uint16_t)(0xd800 + ((cp - 0x10000) >> 10));
				units[n_units++] = (uint16_t)(0xdc00 + ((cp - 0x10000) & 0x3ff));
			} else {
				units[n_units++] = (uint16_t)cp;
			}
			i += n;
		}
		imap_mutf7_run(&o, units, n_units);
	}
	return o.overflow ? -1 : 0;
}

/* One "&...-" run at in (just past the "&", up to end): its characters as
 * UTF-8; returns the octets consumed through the "-", or 0 if invalid. */
static size_t imap_mutf7_decode_run(const char *in, const char *end, struct imap_out *o)
{
	const char *p = in;
	uint32_t bits = 0, high = 0;
	unsigned nbits = 0;
	char u[4];

	for (; p < end && *p != '-'; p++) {
		const char *d = strchr(imap_mutf7_alphabet, *p);
		if (*p == '\0' || d == NULL)
			return 0;
		bits = bits << 6 | (uint32_t)(d - imap_mutf7_alphabet);
		nbits += 6;
		if (nbits < 16)
			continue;
		nbits -= 16;
		uint32_t unit = bits >> nbits & 0xffff;
		bits &= (1u << nbits) - 1;
		if (unit >= 0xd800 && unit < 0xdc00 && high == 0) {
			high = unit;
			continue;
		}
		if ((unit >= 0xdc00 && unit < 0xe000) != (high != 0))
			return 0; /* a lone surrogate */
		uint32_t cp = high != 0 ? 0x10000 + ((high - 0xd800) << 10) + (unit - 0xdc00) : unit;
		high = 0;
		if (cp >= 0x20 && cp < 0x7f)
			return 0; /* printable ASCII is never encoded */
		imap_out_add(o, u, imap_utf8_encode(cp, u));
	}
	/* "&-" is "&"; otherwise at least one character, no pending
	 * surrogate, and only zero padding bits (fewer than 6) left. */
	if (p == end || high != 0 || nbits >= 6 || bits != 0)
		return 0;
	if (p == in)
		imap_out_add(o, "&", 1);
	return (size_t)(p - in) + 1;
}

int imap_mutf7_decode(const char *in, size_t len, char *out, size_t size)
{
	struct imap_out o = { out, size, 0, size == 0 };
	const char *end = in + len;

	if (size > 0)
		out[0] = '\0';
	while (in < end) {
		if ((unsigned char)*in < 0x20 || (unsigned char)*in >= 0x7f)
			return -1;
		if (*in != '&') {
			imap_out_add(&o, in++, 1);
			continue;
		}
		size_t n = imap_mutf7_decode_run(in + 1, end, &o);
		if (n == 0)
			return -1;
		in += 1 + n;
	}
	return o.overflow ? -1 : 0;
}

void imap_write_mailbox(struct imap_session *s, const char *name)
{
	char buf[4 * STORE_MAILBOX_MAX + 8];
	size_t len = strlen(name);
	bool quotable = len <= 1024;

	if (!s->rev2) {
		if (imap_mutf7_encode(name, buf, sizeof(buf)) == 0)
			name = buf;
		imap_write_astring(s, name, strlen(name));
		return;
	}
	/* IMAP4rev2 quoted strings may hold UTF-8 (RFC 9051 9, QUOTED-CHAR). */
	for (size_t i = 0; i < len && quotable; i++)
		quotable = name[i] != '\r' && name[i] != '\n';
	for (size_t i = 0, n; i < len && quotable; i += n)
		quotable = (n = utf8_seq_len((const unsigned char *)name + i, len - i)) != 0;
	if (!quotable) {
		imap_write_astring(s, name, len);
		return;
	}
	imap_write(s, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '"' || name[i] == '\\')
			imap_write(s, "\\", 1);
		imap_write(s, &name[i], 1);
	}
	imap_write(s, "\"", 1);
}
