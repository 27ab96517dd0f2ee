#include "mail/header.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

/* Every scan below is bounded by an explicit end offset: the message is
 * untrusted input, possibly without a final line end or a NUL anywhere. */

#define MESSAGE_ID_FIELD_MAX 1024 /* a longer Message-ID value is not a real one */

/* One field: offsets into the message.  [value, end) is the raw value, line
 * ends of continuation lines included, without the field's final line end. */
struct header_field {
	size_t name, name_len;
	size_t value, end;
};

static bool is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* The end of the content of the line starting at pos (its CRLF or LF not
 * included); *next_r is set to the start of the following line. */
static size_t line_end(const char *msg, size_t len, size_t pos, size_t *next_r)
{
	const char *lf = memchr(msg + pos, '\n', len - pos);
	size_t end;

	if (lf == NULL) {
		*next_r = len;
		return len;
	}
	end = (size_t)(lf - msg);
	*next_r = end + 1;
	if (end > pos && msg[end - 1] == '\r')
		end--;
	return end;
}

size_t header_section_end(const char *msg, size_t len)
{
	size_t pos = 0, next;

	while (pos < len) {
		if (line_end(msg, len, pos, &next) == pos && next > pos)
			return next;
		pos = next;
	}
	return len;
}

/* Whether the line [start, end) opens a field; fills name and value. */
static bool field_parse_name(const char *msg, size_t start, size_t end, struct header_field *f)
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

/* The next field at or after *pos, continuation lines included; false at
 * the end of the header section. */
static bool field_next(const char *msg, size_t len, size_t *pos, struct header_field *f)
{
	while (*pos < len) {
		size_t next, end = line_end(msg, len, *pos, &next);

		if (end == *pos)
			return false;
		if (!is_wsp((unsigned char)msg[*pos]) && field_parse_name(msg, *pos, end, f)) {
			f->end = end;
			while (next < len && is_wsp((unsigned char)msg[next]))
				f->end = line_end(msg, len, next, &next);
			*pos = next;
			return true;
		}
		/* Not a field: garbage, or a continuation with nothing to continue. */
		*pos = next;
	}
	return false;
}

static bool field_is(const char *msg, const struct header_field *f, const char *name)
{
	/* The name octets are printable ASCII, so strncasecmp cannot stop early
	 * on a NUL in the message. */
	return strlen(name) == f->name_len && strncasecmp(msg + f->name, name, f->name_len) == 0;
}

/* The length of buf[0, n) without an incomplete UTF-8 sequence at its end,
 * for a value that was cut. */
static size_t utf8_cut(const char *buf, size_t n)
{
	size_t k = n, need;
	unsigned char lead;

	while (k > 0 && n - k < 3 && ((unsigned char)buf[k - 1] & 0xc0) == 0x80)
		k--;
	if (k == 0)
		return n;
	lead = (unsigned char)buf[k - 1];
	if (lead >= 0xf0)
		need = 4;
	else if (lead >= 0xe0)
		need = 3;
	else if (lead >= 0xc0)
		need = 2;
	else
		return n;
	return n - (k - 1) < need ? k - 1 : n;
}

/* Unfolds, trims and copies the value of f; size > 0. */
static void field_copy_value(const char *msg, const struct header_field *f, char *buf, size_t size)
{
	size_t n = 0, kept = 0;
	bool cut = false;

	for (size_t i = f->value; i < f->end; i++) {
		unsigned char c = (unsigned char)msg[i];

		if (c == '\n' || (c == '\r' && i + 1 < f->end && msg[i + 1] == '\n'))
			continue;
		if (c == '\r' || c == '\0')
			c = ' ';
		if (n == 0 && is_wsp(c))
			continue;
		if (n + 1 >= size) {
			cut = true;
			break;
		}
		buf[n++] = (char)c;
		if (!is_wsp(c))
			kept = n;
	}
	if (cut) {
		kept = utf8_cut(buf, kept);
		while (kept > 0 && is_wsp((unsigned char)buf[kept - 1]))
			kept--;
	}
	buf[kept] = '\0';
}

int header_get(const char *msg, size_t len, const char *name, char *buf, size_t size)
{
	struct header_field f;
	size_t pos = 0;

	while (field_next(msg, len, &pos, &f)) {
		if (field_is(msg, &f, name)) {
			if (size > 0)
				field_copy_value(msg, &f, buf, size);
			return 0;
		}
	}
	if (size > 0)
		buf[0] = '\0';
	return -1;
}

unsigned header_count(const char *msg, size_t len, const char *name)
{
	struct header_field f;
	size_t pos = 0;
	unsigned count = 0;

	while (field_next(msg, len, &pos, &f))
		if (field_is(msg, &f, name))
			count++;
	return count;
}

/* Skips spaces and (nested) comments; NULL when a comment is unterminated. */
static const char *skip_cfws(const char *p)
{
	unsigned depth = 0;

	for (; *p != '\0'; p++) {
		if (*p == '(') {
			depth++;
		} else if (*p == ')' && depth > 0) {
			depth--;
		} else if (*p == '\\' && depth > 0) {
			if (*++p == '\0')
				return NULL;
		} else if (depth == 0 && !is_wsp((unsigned char)*p)) {
			return p;
		}
	}
	return depth == 0 ? p : NULL;
}

/* Whether [p, end) is an id-left "@" id-right of acceptable octets. */
static bool msg_id_valid(const char *p, const char *end)
{
	const char *at = NULL;

	for (const char *s = p; s < end; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= ' ' || c == 127 || c == '<')
			return false;
		if (c == '@')
			at = s;
	}
	return at != NULL && at > p && at + 1 < end;
}

int header_message_id(const char *msg, size_t len, char *buf, size_t size)
{
	char value[MESSAGE_ID_FIELD_MAX];
	const char *start, *end;
	size_t n;

	if (size > 0)
		buf[0] = '\0';
	if (header_get(msg, len, "Message-ID", value, sizeof(value)) < 0)
		return -1;
	start = skip_cfws(value);
	if (start == NULL || *start != '<')
		return -1;
	end = strchr(start + 1, '>');
	if (end == NULL || !msg_id_valid(start + 1, end))
		return -1;
	n = (size_t)(end - start) + 1;
	if (n + 1 > size)
		return -1;
	memcpy(buf, start, n);
	buf[n] = '\0';
	return 0;
}
