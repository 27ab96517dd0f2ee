/* SMTP command lines (RFC 5321 §4.1, with the ESMTP parameters of RFC 1870
 * SIZE, RFC 6152 8BITMIME / RFC 3030 BINARYMIME, RFC 6531 SMTPUTF8, RFC 3461
 * DSN and RFC 4954 AUTH) parsed into a struct smtp_command.
 *
 * The parser does no I/O and keeps no state between lines: the session's
 * line reader hands it one complete command line without its CRLF (and
 * enforces the command-line length limit), the session decides what the
 * command means in its current state.  Safe on any thread; fuzzed alone
 * (fuzz/fuzz_smtp.c).
 *
 * What is accepted beyond the strict grammar, because real clients send it:
 *   - verbs, "FROM:", "TO:", parameter keywords and keyword values (BODY,
 *     RET, NOTIFY, BDAT's LAST) in any case;
 *   - one or more spaces between the verb and its argument and between
 *     parameters, and trailing spaces or tabs at the end of the line;
 *   - one space after "FROM:" / "TO:" ("MAIL FROM: <a@b.test>"), no more;
 *   - lower-case hex digits in xtext ("+2b" as well as "+2B").
 * Always refused: a NUL, CR or LF anywhere in the line (the line reader
 * splits on CRLF only, so a bare CR or LF here is smuggling or garbage).
 *
 * Error texts given through error_r are static strings that never echo
 * client input: fit for the human-readable part of a reply and for logs. */
#ifndef KEEL_PROTO_SMTP_PARSER_H
#define KEEL_PROTO_SMTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mail/address.h"

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_EHLO,
	SMTP_VERB_HELO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
};

/* What went wrong, as the reply class the session must answer with; see
 * smtp_parser_error_reply() for the reply itself. */
enum smtp_parse_error {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_ERROR_SYNTAX,          /* 500 5.5.2: NUL/CR/LF in the line, empty line */
	SMTP_PARSE_ERROR_UNKNOWN_COMMAND, /* 500 5.5.2: verb not recognised */
	SMTP_PARSE_ERROR_ARGUMENTS,       /* 501 5.5.4: bad or missing arguments */
	SMTP_PARSE_ERROR_SENDER,          /* 553 5.1.7: bad MAIL FROM path syntax */
	SMTP_PARSE_ERROR_RECIPIENT,       /* 553 5.1.3: bad RCPT TO path syntax */
	SMTP_PARSE_ERROR_NON_ASCII,       /* 553 5.6.7: UTF-8 path without SMTPUTF8 */
	SMTP_PARSE_ERROR_PARAMETER,       /* 555 5.5.4: bad or unrecognised MAIL/RCPT parameter */
	SMTP_PARSE_ERROR_SIZE,            /* 552 5.3.4: SIZE= or BDAT size past 2^64 - 1 */
};

enum smtp_body {
	SMTP_BODY_NONE = 0, /* no BODY= given */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
	SMTP_BODY_BINARYMIME,
};

enum smtp_ret {
	SMTP_RET_NONE = 0, /* no RET= given */
	SMTP_RET_FULL,
	SMTP_RET_HDRS,
};

/* NOTIFY= (RFC 3461 §4.1): 0 when not given, SMTP_NOTIFY_NEVER alone, or any
 * non-empty combination of the other three. */
enum smtp_notify_flags {
	SMTP_NOTIFY_NEVER = 1 << 0,
	SMTP_NOTIFY_SUCCESS = 1 << 1,
	SMTP_NOTIFY_FAILURE = 1 << 2,
	SMTP_NOTIFY_DELAY = 1 << 3,
};

#define SMTP_ENVID_MAX      100 /* RFC 3461 §4.4, octets after xtext decoding */
#define SMTP_ORCPT_MAX      500 /* RFC 3461 §4.2, octets of the address after decoding */
#define SMTP_ORCPT_TYPE_MAX 64  /* our bound on the addr-type atom ("rfc822") */
#define SMTP_AUTH_MECH_MAX  20  /* RFC 4422 §3.1 */
#define SMTP_HELO_MAX       ADDRESS_DOMAIN_MAX

struct smtp_mail_params {
	bool size_given;
	uint64_t size; /* SIZE=: the client's estimate in octets */
	enum smtp_body body;
	bool smtputf8;
	enum smtp_ret ret;
	char envid[SMTP_ENVID_MAX + 1]; /* ENVID= xtext-decoded, printable ASCII; "" if absent */
	/* AUTH= (RFC 4954 §5): auth_given, then either auth_null ("AUTH=<>") or
	 * auth_addr holds the decoded mailbox. */
	bool auth_given;
	bool auth_null;
	struct address auth_addr;
};

struct smtp_rcpt_params {
	unsigned notify; /* enum smtp_notify_flags, 0 when NOTIFY= is absent */
	/* ORCPT=addr-type;xtext: orcpt_type as written ("rfc822"), orcpt_addr
	 * xtext-decoded, printable ASCII and not checked further (it is only
	 * echoed in DSNs).  Both "" when ORCPT= is absent. */
	char orcpt_type[SMTP_ORCPT_TYPE_MAX + 1];
	char orcpt_addr[SMTP_ORCPT_MAX + 1];
};

/* A parsed command.  Only the fields of its verb are set; all others are
 * zero.  Everything is stored in the struct except arg, which points into
 * the caller's line and is valid only as long as that line. */
struct smtp_command {
	enum smtp_verb verb;         /* set as soon as the verb is recognised, even on error */
	enum smtp_parse_error error; /* SMTP_PARSE_OK, or why parsing failed */

	/* EHLO: a Domain or address-literal (RFC 5321 §4.1.1.1), U-labels
	 * allowed (RFC 6531 §3.3).  HELO: any single word of visible
	 * characters (RFC 5321 §4.1.4 lets a server not check it).  As written. */
	char domain[SMTP_HELO_MAX + 1];

	/* MAIL: may be null ("<>").  RCPT: may be postmaster without a domain
	 * (path.postmaster).  A source route is parsed and ignored (path.route
	 * is kept only for logging). */
	struct address_path path;
	struct smtp_mail_params mail;
	struct smtp_rcpt_params rcpt;

	/* BDAT size [LAST] (RFC 3030).  When a BDAT line fails to parse, the
	 * chunk's octets follow anyway and nobody knows how many: the session
	 * cannot find the next command and should answer and close. */
	uint64_t bdat_size;
	bool bdat_last;

	/* AUTH mechanism [initial-response]: the mechanism upper-cased; the
	 * initial response in arg (base64 characters, or "=" for an empty one),
	 * not decoded. */
	char auth_mechanism[SMTP_AUTH_MECH_MAX + 1];

	/* VRFY, EXPN (required), HELP, NOOP (optional): the text after the
	 * verb; AUTH: the initial response.  NULL with arg_len 0 when absent.
	 * Not NUL-terminated: a pointer into the caller's line. */
	const char *arg;
	size_t arg_len;
};

enum smtp_parser_flags {
	/* The transaction's MAIL FROM carried SMTPUTF8: RCPT TO paths may hold
	 * UTF-8.  (MAIL itself looks at its own SMTPUTF8 parameter.) */
	SMTP_PARSER_FLAG_UTF8 = 1 << 0,
};

/* A reply: code, enhanced status code (RFC 3463) and standard text.  The
 * session writes "code enhanced text" and may append the error_r detail. */
struct smtp_reply_code {
	unsigned code;
	const char *enhanced;
	const char *text;
};

/* Parses one command line of len octets (no CRLF; need not be
 * NUL-terminated).  flags: enum smtp_parser_flags.  Returns 0 with *cmd_r
 * filled, or -1 with cmd_r->error set, cmd_r->verb set when the verb was
 * recognised, and *error_r a static detail text; the other fields are then
 * unspecified.
 *
 * MAIL/RCPT parameters are parsed before the path, since SMTPUTF8 decides
 * whether the path may hold UTF-8.  A repeated parameter, a parameter of the
 * other command, or an unknown one is SMTP_PARSE_ERROR_PARAMETER
 * ("unrecognised parameter" for the last two). */
int smtp_parser_parse(const char *line, size_t len, unsigned flags, struct smtp_command *cmd_r,
                      const char **error_r);

/* The reply for a parse error (never NULL; SMTP_PARSE_OK maps to 250). */
const struct smtp_reply_code *smtp_parser_error_reply(enum smtp_parse_error error);

/* "MAIL", "EHLO", ...; "UNKNOWN" for SMTP_VERB_UNKNOWN.  For logs. */
const char *smtp_parser_verb_name(enum smtp_verb verb);

#endif
