/* SMTP server replies as a client reads them (RFC 5321 4.2), and the EHLO
 * keywords they carry.  No I/O: the caller feeds one line at a time
 * (without its CRLF) and gets a whole reply back once its last line
 * ("250 ...", after any "250-..." lines) has arrived.
 *
 * Limits keep a hostile server from making the client hold much: a line is
 * at most SMTP_REPLY_LINE_MAX octets of text (the caller's line reader
 * enforces it; a longer line given here is an error), a reply at most
 * SMTP_REPLY_LINES_MAX lines, and the text kept is cut at
 * SMTP_REPLY_TEXT_MAX octets (the reply itself is still read to its end). */
#ifndef KEEL_PROTO_SMTP_REPLY_H
#define KEEL_PROTO_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_REPLY_LINE_MAX 2048
#define SMTP_REPLY_LINES_MAX 100
#define SMTP_REPLY_TEXT_MAX 1024

struct smtp_reply {
	int code;          /* 200..599 */
	char enhanced[16]; /* "5.1.1" when the first line starts with one whose
	                    * class matches the code's; else "" */
	/* The text of every line after "NNN-" / "NNN ", joined with '\n'
	 * (the enhanced code left in place), cut at SMTP_REPLY_TEXT_MAX - 1
	 * octets.  Control octets other than the '\n' separators become
	 * spaces. */
	char text[SMTP_REPLY_TEXT_MAX];
	size_t n_lines;
};

struct smtp_reply_parser {
	struct smtp_reply reply;
	bool in_reply; /* some lines of a reply were read */
	size_t text_len;
};

void smtp_reply_parser_init(struct smtp_reply_parser *p);

/* Feeds one line.  Returns 1 when the line ended a reply (then p->reply
 * holds it until the next call), 0 when more lines are needed, -1 with a
 * static *error_r on a line that is not a reply line, a code that changes
 * within one reply, or too many lines.  After -1 the parser starts afresh
 * with the next line (but the connection is normally given up). */
int smtp_reply_parser_line(struct smtp_reply_parser *p, const char *line, size_t len,
                           const char **error_r);

/* "550 5.1.1 text, second line" on one line: the code, then the lines
 * joined with a space; for logs, trace and DSN diagnostics.  Cut to fit. */
void smtp_reply_format(const struct smtp_reply *r, char *buf, size_t size);

/* What a server offers in its EHLO reply (RFC 1869 and the extensions'
 * RFCs).  Keywords are matched case-insensitively; unknown ones are
 * ignored. */
enum smtp_auth_mech {
	SMTP_AUTH_PLAIN = 1 << 0,
	SMTP_AUTH_LOGIN = 1 << 1,
	SMTP_AUTH_CRAM_MD5 = 1 << 2,
	SMTP_AUTH_XOAUTH2 = 1 << 3,
	SMTP_AUTH_OTHER = 1 << 4,
};

struct smtp_ehlo {
	bool size;     /* SIZE offered */
	uint64_t size_max; /* SIZE's limit; 0 when offered without one (no limit) */
	bool pipelining, eightbitmime, smtputf8, starttls, dsn, chunking, binarymime,
	    enhancedstatuscodes;
	unsigned auth; /* enum smtp_auth_mech bits, from "AUTH" (and the old "AUTH=") */
};

/* Reads the keywords of a 250 reply to EHLO: every line but the first
 * (which greets).  Never fails: a malformed line is skipped, a SIZE
 * argument that is not a number counts as "no limit given". */
void smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *ehlo_r);

#endif
