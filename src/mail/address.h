/* Mailbox addresses as RFC 5321 writes them: local-part "@" domain, and the
 * reverse-path / forward-path around them ("<...>").
 *
 * Syntax only: nothing here knows which domains are ours (src/directory does)
 * and nothing does I/O, so every function is safe on any thread and is
 * fuzzed alone (fuzz/fuzz_address.c).
 *
 * Local part (RFC 5321 §4.1.2): a Dot-string (atoms of atext joined by single
 * dots) or a Quoted-string, at most 64 octets as written.  A quoted local
 * part is stored decoded (quotes and backslashes removed); when the decoded
 * text is itself a valid Dot-string ("john"@x is john@x) it is the same
 * address and is marked unquoted.  Syntax is all that is checked, so the
 * classic open-relay forms are plain local parts here and it is the
 * directory's job not to route them anywhere:
 *     u%remote.test@local      local part "u%remote.test"
 *     remote.test!u@local      local part "remote.test!u"
 *     "u@remote.test"@local    local part "u@remote.test", quoted
 *     u@remote.test@local      invalid (a second '@' outside quotes)
 *
 * Domain: a host name of LDH labels (letters, digits, hyphens; 1-63 octets a
 * label, no hyphen first or last), at most 255 octets, without a trailing
 * dot, stored lower-cased; or an address literal "[192.0.2.1]" /
 * "[IPv6:2001:db8::1]".  General address literals ("[tag:...]") are refused:
 * no tag other than IPv6 is registered.
 *
 * UTF-8 (RFC 6531, SMTPUTF8) is accepted in the local part and in domain
 * labels only when the caller says so (utf8 = true); it must be well formed
 * (no overlong forms, no surrogates).  Case folding is ASCII only.  The
 * 63-octet label limit applies to ASCII labels; a U-label is bounded by the
 * 255-octet domain limit, since its A-label length needs Punycode to know.
 *
 * Strings given in are NUL-terminated; error texts are static strings fit for
 * an SMTP reply's human-readable part. */
#ifndef KEEL_MAIL_ADDRESS_H
#define KEEL_MAIL_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_LOCAL_MAX  64  /* octets of the local part as written */
#define ADDRESS_DOMAIN_MAX 255 /* octets of the domain */
#define ADDRESS_MAX        (ADDRESS_LOCAL_MAX + 1 + ADDRESS_DOMAIN_MAX) /* local@domain */
#define ADDRESS_ROUTE_MAX  255 /* octets of an obsolete source route "@a,@b" */

struct address {
	char localpart[ADDRESS_LOCAL_MAX + 1]; /* decoded, case preserved */
	char domain[ADDRESS_DOMAIN_MAX + 1];   /* lower case; a literal keeps its brackets */
	bool quoted;  /* the local part needs quoting to be written (not a Dot-string) */
	bool literal; /* the domain is an address literal */
};

/* "<>", "<local@domain>" or "<@a,@b:local@domain>". */
struct address_path {
	bool null; /* "<>": the null reverse-path; addr is then all empty */
	/* "<Postmaster>" accepted with ADDRESS_PATH_ALLOW_POSTMASTER: addr has
	 * localpart "Postmaster" (as written) and an empty domain. */
	bool postmaster;
	struct address addr;
	/* The source route without its final ':' ("@a.test,@b.test"), "" when
	 * none.  RFC 5321 §4.1.2 and appendix C: a server MUST accept it and
	 * SHOULD ignore it; it is returned only for logging. */
	char route[ADDRESS_ROUTE_MAX + 1];
};

enum address_path_flags {
	ADDRESS_PATH_ALLOW_NULL = 1 << 0,       /* accept "<>" (a reverse-path) */
	ADDRESS_PATH_ALLOW_POSTMASTER = 1 << 1, /* accept "<Postmaster>" (RCPT, §4.1.1.3) */
};

/* Parses a whole string "local@domain" (no angle brackets, no spaces).
 * On success fills *a_r and returns 0; on failure returns -1 with *error_r
 * saying what is wrong ("local part longer than 64 octets", ...). */
int address_parse(const char *s, bool utf8, struct address *a_r, const char **error_r);

/* Parses a path at the start of s: '<', an optional source route, a mailbox,
 * '>'.  flags: enum address_path_flags.  When end_r is NULL the path must be
 * the whole string; otherwise *end_r points just past the '>' (SMTP
 * parameters may follow).  Returns 0 or -1 with *error_r. */
int address_path_parse(const char *s, bool utf8, unsigned flags, struct address_path *path_r,
                       const char **end_r, const char **error_r);

/* Checks a domain name as it may follow '@' (host name or address literal).
 * Returns 0 or -1 with *error_r.  Case is not changed or required. */
int address_domain_check(const char *domain, bool utf8, const char **error_r);
/* address_domain_check() == 0, for callers that need no reason. */
bool address_domain_valid(const char *domain, bool utf8);

/* Whether s is a Dot-string: usable as a local part without quotes. */
bool address_localpart_is_dot_string(const char *s, bool utf8);

/* Writes a in its canonical form, "local@domain", quoting the local part
 * when a->quoted (escaping only '"' and '\').  Returns 0, or -1 when size is
 * too small (buf then holds "").  ADDRESS_MAX + 1 bytes always suffice for a
 * parsed address. */
int address_format(const struct address *a, char *buf, size_t size);

/* Cuts a subaddress off a local part in place: with delimiter '+',
 * "user+tag" becomes "user" (at the first delimiter, so "u+a+b" becomes "u").
 * Returns true when something was cut.  Nothing is cut when the delimiter is
 * '\0', absent, or first (the base would be empty: "+tag" stays). */
bool address_subaddress_strip(char *localpart, char delimiter);

/* Lower-cases ASCII letters in place; other octets (UTF-8) are unchanged.
 * Local parts compare case-insensitively in Keel's directory. */
void address_fold_case(char *s);

#endif
