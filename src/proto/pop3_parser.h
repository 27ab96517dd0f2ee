/* POP3 command lines (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH)
 * parsed into a struct pop3_command.  No I/O, no state: the session's line
 * reader hands it one line without its CRLF (and enforces the line limit).
 * Fuzzed alone (fuzz/fuzz_pop3.c).
 *
 * Keywords are case-insensitive.  Arguments are separated by single or
 * several spaces; PASS takes the rest of the line as it is (RFC 1939
 * lets a password contain spaces).  A NUL, CR or LF in the line is a
 * syntax error.  Error texts are static and never echo client input. */
#ifndef KEEL_PROTO_POP3_PARSER_H
#define KEEL_PROTO_POP3_PARSER_H

#include <stddef.h>

/* RFC 2449 4: 255 octets including the CRLF; AUTH responses may be
 * longer (RFC 5034 4 raises it for SASL) and are read separately. */
#define POP3_LINE_MAX 253
#define POP3_AUTH_LINE_MAX 8192
/* RFC 2449 4: arguments up to 40 octets; USER and PASS get more room
 * for long addresses and passphrases. */
#define POP3_ARG_MAX 40
#define POP3_USERPASS_MAX 255

enum pop3_verb {
	POP3_VERB_UNKNOWN = 0,
	POP3_VERB_USER,
	POP3_VERB_PASS,
	POP3_VERB_STAT,
	POP3_VERB_LIST,
	POP3_VERB_RETR,
	POP3_VERB_DELE,
	POP3_VERB_NOOP,
	POP3_VERB_RSET,
	POP3_VERB_QUIT,
	POP3_VERB_TOP,
	POP3_VERB_UIDL,
	POP3_VERB_CAPA,
	POP3_VERB_STLS,
	POP3_VERB_AUTH,
	POP3_VERB_APOP,
};

struct pop3_command {
	enum pop3_verb verb;
	unsigned argc;
	/* Pointers into the caller's line, valid as long as it is; not
	 * NUL-terminated.  For PASS, argv[0] is the whole rest of the line. */
	const char *argv[2];
	size_t arglen[2];
	/* Message numbers and counts for LIST, RETR, DELE, TOP, UIDL, parsed. */
	unsigned long num[2];
};

/* Returns 0 with *cmd_r filled, or -1 with *error_r ("unknown command",
 * "wrong number of arguments", "invalid message number", ...).  verb is
 * set even on error when the keyword was recognised. */
int pop3_parse(const char *line, size_t len, struct pop3_command *cmd_r, const char **error_r);

const char *pop3_verb_name(enum pop3_verb verb);

#endif
