#include "mail/address.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "lib/utf8.h"

/* Parsers below work on a cursor and stop at the first octet that cannot
 * continue what they read, so the caller decides whether that octet ends
 * the element ('@', '>', ',', ':') or is an error; that keeps one grammar for
 * bare mailboxes and for paths. */

#define LABEL_MAX 63

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 atext. */
static bool is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Skips atext (and, with utf8, UTF-8 sequences); returns where it stopped. */
static const unsigned char *skip_atom(const unsigned char *p, bool utf8)
{
	for (;;) {
		size_t n;

		if (is_atext(*p))
			p++;
		else if (utf8 && *p >= 0x80 && (n = utf8_seq_len(p, 4)) > 0)
			p += n;
		else
			return p;
	}
}

static const char *bad_octet_error(unsigned char c, bool utf8, const char *where_ascii,
                                   const char *where_8bit, const char *where_utf8)
{
	if (c < 0x80)
		return where_ascii;
	return utf8 ? where_utf8 : where_8bit;
}

static const char *dot_string_error(bool first, unsigned char next)
{
	if (first)
		return next == '.' ? "local part starts with a dot" : "empty local part";
	return next == '.' ? "local part has two dots in a row" : "local part ends with a dot";
}

/* Scans a Dot-string at *pp; on success *pp points past it. */
static int scan_dot_string(const char **pp, bool utf8, const char **error_r)
{
	const unsigned char *p = (const unsigned char *)*pp;

	for (bool first = true;; first = false) {
		const unsigned char *atom = p;

		p = skip_atom(p, utf8);
		if (p == atom) {
			*error_r = dot_string_error(first, *p);
			return -1;
		}
		if (*p != '.')
			break;
		p++;
	}
	*pp = (const char *)p;
	return 0;
}

bool address_localpart_is_dot_string(const char *s, bool utf8)
{
	const char *error;

	return scan_dot_string(&s, utf8, &error) == 0 && *s == '\0';
}

/* Decodes a Quoted-string at *pp (which points at the opening quote) into
 * out (ADDRESS_LOCAL_MAX + 1 bytes), refusing more than ADDRESS_LOCAL_MAX
 * octets as written. */
/* The octets of the next qcontent at p (quoted-pairSMTP, qtextSMTP or,
 * with utf8, a UTF-8 sequence), or 0 with *error_r. */
static size_t qcontent_len(const unsigned char *p, bool utf8, const char **error_r)
{
	size_t n;

	if (*p == '\\' && p[1] >= 32 && p[1] <= 126)
		return 2;
	if (*p >= 32 && *p <= 126 && *p != '\\')
		return 1;
	if (utf8 && *p >= 0x80 && (n = utf8_seq_len(p, 4)) > 0)
		return n;
	if (*p == '\0')
		*error_r = "unterminated quoted local part";
	else
		*error_r = bad_octet_error(*p, utf8, "invalid character in quoted local part",
		                           "non-ASCII local part needs SMTPUTF8",
		                           "invalid UTF-8 in local part");
	return 0;
}

/* Decodes a Quoted-string at *pp (which points at the opening quote) into
 * out (ADDRESS_LOCAL_MAX + 1 bytes), refusing more than ADDRESS_LOCAL_MAX
 * octets as written, quotes included. */
static int parse_quoted_string(const char **pp, bool utf8, char *out, const char **error_r)
{
	const unsigned char *start = (const unsigned char *)*pp, *p = start + 1;
	size_t len = 0, n;

	while (*p != '"') {
		n = qcontent_len(p, utf8, error_r);
		if (n == 0)
			return -1;
		/* + 1 for the closing quote still to come. */
		if ((size_t)(p + n - start) + 1 > ADDRESS_LOCAL_MAX) {
			*error_r = "local part longer than 64 octets";
			return -1;
		}
		if (*p == '\\') {
			out[len++] = (char)p[1];
		} else {
			memcpy(out + len, p, n);
			len += n;
		}
		p += n;
	}
	out[len] = '\0';
	*pp = (const char *)p + 1;
	return 0;
}

static int parse_local_part(const char **pp, bool utf8, struct address *a, const char **error_r)
{
	const char *start = *pp;
	size_t len;

	if (*start == '"') {
		if (parse_quoted_string(pp, utf8, a->localpart, error_r) < 0)
			return -1;
		if (a->localpart[0] == '\0') {
			*error_r = "empty local part";
			return -1;
		}
		/* "john"@x and john@x are one mailbox: keep one form. */
		a->quoted = !address_localpart_is_dot_string(a->localpart, utf8);
		return 0;
	}
	if (scan_dot_string(pp, utf8, error_r) < 0)
		return -1;
	len = (size_t)(*pp - start);
	if (len > ADDRESS_LOCAL_MAX) {
		*error_r = "local part longer than 64 octets";
		return -1;
	}
	memcpy(a->localpart, start, len);
	a->localpart[len] = '\0';
	a->quoted = false;
	return 0;
}

static bool is_ldh(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-';
}

/* Scans one label; returns its end, or NULL with *error_r. */
static const unsigned char *scan_label(const unsigned char *p, bool utf8, const char **error_r)
{
	const unsigned char *start = p;
	bool ascii = true;
	size_t n;

	for (;;) {
		if (is_ldh(*p)) {
			p++;
		} else if (utf8 && *p >= 0x80 && (n = utf8_seq_len(p, 4)) > 0) {
			p += n;
			ascii = false;
		} else {
			break;
		}
	}
	if (p == start)
		*error_r =
		    bad_octet_error(*p, utf8, "empty label in domain",
		                    "non-ASCII domain needs SMTPUTF8", "invalid UTF-8 in domain");
	else if (*start == '-' || p[-1] == '-')
		*error_r = "domain label starts or ends with a hyphen";
	else if (ascii && p - start > LABEL_MAX)
		*error_r = "domain label longer than 63 octets";
	else
		return p;
	return NULL;
}

/* Scans a host name (sub-domain *("." sub-domain)) at *pp. */
static int scan_hostname(const char **pp, bool utf8, const char **error_r)
{
	const unsigned char *start = (const unsigned char *)*pp, *p = start;

	for (;;) {
		p = scan_label(p, utf8, error_r);
		if (p == NULL)
			return -1;
		if (*p != '.')
			break;
		p++;
		if (*p == '\0' || *p == '>' || *p == ',' || *p == ':') {
			*error_r = "domain ends with a dot";
			return -1;
		}
	}
	if (p - start > ADDRESS_DOMAIN_MAX) {
		*error_r = "domain longer than 255 octets";
		return -1;
	}
	*pp = (const char *)p;
	return 0;
}

/* IPv4-address-literal: four Snum (1-3 digits, at most 255) joined by dots. */
static bool ipv4_literal_valid(const char *s, size_t len)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		unsigned value = 0, digits = 0;

		if (part > 0 && (i >= len || s[i++] != '.'))
			return false;
		while (i < len && is_digit((unsigned char)s[i]) && digits < 3) {
			value = value * 10 + (unsigned)(s[i++] - '0');
			digits++;
		}
		if (digits == 0 || value > 255)
			return false;
	}
	return i == len;
}

static bool ipv6_literal_valid(const char *s, size_t len)
{
	char buf[INET6_ADDRSTRLEN + 1];
	struct in6_addr in6;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &in6) == 1;
}

/* Scans "[...]" at *pp and writes its canonical form to out: IPv4 as
 * written, IPv6 as "[IPv6:" + lower-case text + "]". */
static int parse_literal(const char **pp, char *out, const char **error_r)
{
	const char *start = *pp + 1, *end = strchr(start, ']');
	size_t len;
	bool ipv6;

	if (end == NULL) {
		*error_r = "unterminated address literal";
		return -1;
	}
	len = (size_t)(end - start);
	ipv6 = len >= 5 && strncasecmp(start, "IPv6:", 5) == 0;
	if (ipv6) {
		if (!ipv6_literal_valid(start + 5, len - 5)) {
			*error_r = "invalid IPv6 address literal";
			return -1;
		}
	} else if (memchr(start, ':', len) != NULL) {
		*error_r = "unsupported address literal (only IPv4 and IPv6)";
		return -1;
	} else if (!ipv4_literal_valid(start, len)) {
		*error_r = "invalid IPv4 address literal";
		return -1;
	}
	/* The longest valid literal ("[IPv6:" + 45 + "]") fits easily. */
	out[0] = '[';
	memcpy(out + 1, start, len);
	out[len + 1] = ']';
	out[len + 2] = '\0';
	address_fold_case(out);
	if (ipv6)
		memcpy(out + 1, "IPv6", 4);
	*pp = end + 1;
	return 0;
}

static int parse_domain(const char **pp, bool utf8, struct address *a, const char **error_r)
{
	const char *start = *pp;
	size_t len;

	if (*start == '[') {
		a->literal = true;
		return parse_literal(pp, a->domain, error_r);
	}
	a->literal = false;
	if (scan_hostname(pp, utf8, error_r) < 0)
		return -1;
	len = (size_t)(*pp - start);
	memcpy(a->domain, start, len);
	a->domain[len] = '\0';
	address_fold_case(a->domain);
	return 0;
}

/* local-part "@" domain, leaving *pp just past the domain. */
static int parse_mailbox(const char **pp, bool utf8, struct address *a, const char **error_r)
{
	if (parse_local_part(pp, utf8, a, error_r) < 0)
		return -1;
	if (**pp != '@') {
		*error_r = **pp == '\0' || **pp == '>'
		               ? "missing '@' and domain"
		               : bad_octet_error((unsigned char)**pp, utf8,
		                                 "invalid character in local part",
		                                 "non-ASCII local part needs SMTPUTF8",
		                                 "invalid UTF-8 in local part");
		return -1;
	}
	(*pp)++;
	return parse_domain(pp, utf8, a, error_r);
}

/* The error for a mailbox followed by octet c instead of its terminator. */
static const char *trailing_error(unsigned char c, bool utf8)
{
	if (c == '@')
		return "more than one '@' (a local part containing '@' must be quoted)";
	return bad_octet_error(c, utf8, "invalid character in domain",
	                       "non-ASCII domain needs SMTPUTF8", "invalid UTF-8 in domain");
}

int address_parse(const char *s, bool utf8, struct address *a_r, const char **error_r)
{
	const char *p = s;

	memset(a_r, 0, sizeof(*a_r));
	if (parse_mailbox(&p, utf8, a_r, error_r) < 0)
		return -1;
	if (*p != '\0') {
		*error_r = trailing_error((unsigned char)*p, utf8);
		return -1;
	}
	return 0;
}

/* A-d-l = At-domain *( "," At-domain ), then ':'.  *pp points at the first
 * '@'; on success it points past the ':'. */
static int parse_route(const char **pp, bool utf8, char *route_r, const char **error_r)
{
	const char *start = *pp, *p = start;
	size_t len;

	for (;;) {
		if (*p != '@') {
			*error_r = "invalid source route (expected '@domain')";
			return -1;
		}
		p++;
		if (scan_hostname(&p, utf8, error_r) < 0)
			return -1;
		if (*p == ':')
			break;
		if (*p != ',') {
			*error_r = "invalid source route (expected ',' or ':')";
			return -1;
		}
		p++;
	}
	len = (size_t)(p - start);
	if (len > ADDRESS_ROUTE_MAX) {
		*error_r = "source route too long";
		return -1;
	}
	memcpy(route_r, start, len);
	route_r[len] = '\0';
	*pp = p + 1;
	return 0;
}

/* The mailbox of a path, or "Postmaster" alone when flags allow it. */
static int parse_path_mailbox(const char **pp, bool utf8, unsigned flags, struct address_path *path,
                              const char **error_r)
{
	const char *save = *pp;

	if ((flags & ADDRESS_PATH_ALLOW_POSTMASTER) != 0 &&
	    parse_local_part(pp, utf8, &path->addr, error_r) == 0 && **pp == '>' &&
	    strcasecmp(path->addr.localpart, "postmaster") == 0) {
		path->postmaster = true;
		return 0;
	}
	*pp = save;
	memset(&path->addr, 0, sizeof(path->addr));
	if (parse_mailbox(pp, utf8, &path->addr, error_r) < 0)
		return -1;
	if (**pp != '>') {
		*error_r = **pp == '\0' ? "missing '>' at the end of the path"
		                        : trailing_error((unsigned char)**pp, utf8);
		return -1;
	}
	return 0;
}

int address_path_parse(const char *s, bool utf8, unsigned flags, struct address_path *path_r,
                       const char **end_r, const char **error_r)
{
	const char *p = s;

	memset(path_r, 0, sizeof(*path_r));
	if (*p++ != '<') {
		*error_r = "path must be enclosed in '<' and '>'";
		return -1;
	}
	if (*p == '>') {
		if ((flags & ADDRESS_PATH_ALLOW_NULL) == 0) {
			*error_r = "empty path not allowed here";
			return -1;
		}
		path_r->null = true;
	} else {
		if (*p == '@' && parse_route(&p, utf8, path_r->route, error_r) < 0)
			return -1;
		if (parse_path_mailbox(&p, utf8, flags, path_r, error_r) < 0)
			return -1;
	}
	p++; /* the '>' */
	if (end_r != NULL) {
		*end_r = p;
	} else if (*p != '\0') {
		*error_r = "unexpected text after the path";
		return -1;
	}
	return 0;
}

int address_domain_check(const char *domain, bool utf8, const char **error_r)
{
	struct address a;
	const char *p = domain;

	if (parse_domain(&p, utf8, &a, error_r) < 0)
		return -1;
	if (*p != '\0') {
		*error_r = trailing_error((unsigned char)*p, utf8);
		return -1;
	}
	return 0;
}

bool address_domain_valid(const char *domain, bool utf8)
{
	const char *error;

	return address_domain_check(domain, utf8, &error) == 0;
}

/* Writes the local part, quoted and escaped when a->quoted. */
static size_t format_localpart(const struct address *a, char *out)
{
	size_t n = 0;

	if (!a->quoted) {
		n = strlen(a->localpart);
		memcpy(out, a->localpart, n);
		return n;
	}
	out[n++] = '"';
	for (const char *p = a->localpart; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			out[n++] = '\\';
		out[n++] = *p;
	}
	out[n++] = '"';
	return n;
}

int address_format(const struct address *a, char *buf, size_t size)
{
	/* A local part decoded from at most 64 octets never grows back past
	 * 2 * 64 + 2 when re-quoted, whatever the caller put in it. */
	char local[2 * ADDRESS_LOCAL_MAX + 3];
	size_t n;

	if (strlen(a->localpart) > ADDRESS_LOCAL_MAX) {
		if (size > 0)
			buf[0] = '\0';
		return -1;
	}
	n = format_localpart(a, local);
	if (n + 1 + strlen(a->domain) + 1 > size) {
		if (size > 0)
			buf[0] = '\0';
		return -1;
	}
	memcpy(buf, local, n);
	buf[n] = '@';
	memcpy(buf + n + 1, a->domain, strlen(a->domain) + 1);
	return 0;
}

bool address_subaddress_strip(char *localpart, char delimiter)
{
	char *p;

	if (delimiter == '\0')
		return false;
	p = strchr(localpart, delimiter);
	if (p == NULL || p == localpart)
		return false;
	*p = '\0';
	return true;
}

void address_fold_case(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}
