/* Small pieces of IMAP syntax shared by the command files. */
#include "imap/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
