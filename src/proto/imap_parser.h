/* IMAP client commands (RFC 3501 IMAP4rev1, RFC 9051 IMAP4rev2) parsed
 * incrementally into a generic argument tree, with LITERAL+ / LITERAL-
 * (RFC 7888) and BINARY literal8 (RFC 3516).
 *
 * The parser does no I/O: the session feeds it the octets it has read, in
 * chunks of any size, and gets back one event at a time: a complete
 * command, a request to send a continuation ("+ Ready") for a synchronising
 * literal, or an error.  It consumes input only up to the end of the event,
 * so pipelined commands stay in the caller's buffer for the next call.  The
 * result does not depend on how the input was cut into chunks.  What a
 * command means is the session's business: the parser knows no command
 * names and treats every command alike.  Not thread-safe (one parser per
 * connection); fuzzed alone (fuzz/fuzz_imap.c).
 *
 * Grammar, and what is accepted beyond it because real clients send it:
 *   command  = tag SP name *(SP arg) CRLF
 *   tag      = 1*<ASTRING-CHAR except "+">   ("*" and "+" are not tags)
 *   name     = 1*ATOM-CHAR, returned upper-cased ("uid" -> "UID"); "UID
 *              FETCH" is the command "UID" with the atom "FETCH" first.
 *   arg      = atom / quoted / literal / literal8 / "(" [arg *(SP arg)] ")"
 *   - Lines end in CRLF or a bare LF.  Any other CR, a NUL or another
 *     control character outside a literal is a syntax error.
 *   - Several spaces count as one, and spaces before ")" or the line end
 *     and after "(" are ignored.  Between two arguments at least one space
 *     is required ("a(b)" is an error; "(a)(b)" too).  Empty lines between
 *     commands are ignored.
 *   - An atom is a run of octets other than SP, CTL, "(", ")", "{", "\"".
 *     That covers every atom-like token the server reads: flags ("\Seen"),
 *     list wildcards ("*", "%"), sequence sets ("1:*,3", "$"; see
 *     imap_seqset_parse()), "]" (ASTRING-CHAR) and 8-bit octets (flagged,
 *     see below).  A "[" inside an atom opens a section that runs to the
 *     next "]" and may contain spaces, parentheses and quotes, so that
 *     BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.2048> is ONE atom, brackets and
 *     partial included (as in Dovecot).  A section may not contain "[", a
 *     control character or a line end (so no literal inside a section).
 *   - An atom of digits only whose value fits 63 bits (RFC 9051 number64)
 *     is IMAP_ARG_NUMBER; "NIL" in any case is IMAP_ARG_NIL.  Both keep
 *     their text, so a mailbox called "NIL" or "123" (astring) still reads.
 *   - Quoted strings take the escapes \\ and \" only.  NUL, CR or LF inside
 *     is a syntax error.  8-bit octets are accepted and flagged.
 *   - A literal {n} (synchronising), {n+} (non-synchronising) or literal8
 *     ~{n} / ~{n+} must end its line; n octets of any value follow the
 *     CRLF, then the command goes on.  literal8 is accepted anywhere and
 *     flagged: only APPEND (and CATENATE) may use it, which the session
 *     checks.  A literal holding a NUL is flagged too (RFC 3501 CHAR8
 *     forbids it outside literal8).
 *
 * Invalid UTF-8 is not a parse error: atoms, quoted strings and buffered
 * literals with 8-bit octets carry IMAP_ARG_FLAG_8BIT, and
 * IMAP_ARG_FLAG_BAD_UTF8 when they are not valid UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), so the session
 * can refuse where RFC 9051 or UTF8=ACCEPT requires UTF-8.
 *
 * Literals and memory.  A literal larger than max_literal_size is refused
 * (IMAP_PARSE_ERROR_LITERAL_TOO_BIG).  Otherwise, with literal_begin set,
 * the session chooses for each literal whether the parser buffers it or
 * streams it to literal_data as it arrives (APPEND's message: no copy, no
 * memory); without literal_begin every literal is buffered.  Buffered
 * literals count against max_command_size.  The parser's memory is then
 * bounded by: max_line_length + 2 for the line being read, max_command_size
 * for the text of one command (tag, name, atoms, strings, buffered
 * literals), for the tree at most 12 * sizeof(struct imap_arg) per argument
 * (4 in the usual case; at most max_args arguments), and max_depth
 * pointers.  Skipped and
 * streamed literal octets are never held.
 *
 * Errors.  IMAP_PARSE_ERROR is returned once the whole bad command has been
 * consumed: the next octet fed starts a new command.  To get there the
 * parser discards to the end of the line; if that line ends in a
 * non-synchronising literal {n+} it skips the n octets (unbuffered) and
 * discards the line after them, and so on; if it ends in a synchronising
 * literal {n}, the command ends there and no continuation is requested (the
 * client will not send the literal once it has the tagged reply).  Only a
 * non-synchronising literal whose size does not fit 64 bits cannot be
 * skipped: the error is then marked fatal.
 *
 * Error texts are static strings that never echo client input. */
#ifndef KEEL_PROTO_IMAP_PARSER_H
#define KEEL_PROTO_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_PARSER_DEFAULT_MAX_LINE_LENGTH  65536u
#define IMAP_PARSER_DEFAULT_MAX_COMMAND_SIZE (1024u * 1024u)
#define IMAP_PARSER_DEFAULT_MAX_LITERAL_SIZE (64u * 1024u * 1024u)
#define IMAP_PARSER_DEFAULT_MAX_DEPTH        32u
#define IMAP_PARSER_DEFAULT_MAX_ARGS         10000u

enum imap_arg_type {
	IMAP_ARG_EOL = 0, /* ends every argument array: args[n] is EOL */
	IMAP_ARG_ATOM,
	IMAP_ARG_NUMBER, /* an atom of digits: num holds the value, str the text */
	IMAP_ARG_NIL,    /* the atom NIL, any case: str holds it as sent */
	IMAP_ARG_STRING, /* a quoted string, unescaped */
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,
};

enum imap_arg_flags {
	IMAP_ARG_FLAG_8BIT = 1 << 0,       /* holds an octet >= 0x80 */
	IMAP_ARG_FLAG_BAD_UTF8 = 1 << 1,   /* ... and is not valid UTF-8 (with 8BIT only) */
	IMAP_ARG_FLAG_NUL = 1 << 2,        /* a literal holding a NUL octet */
	IMAP_ARG_FLAG_BINARY = 1 << 3,     /* a literal8: ~{n} */
	IMAP_ARG_FLAG_NONSYNC = 1 << 4,    /* a literal sent as {n+} */
	IMAP_ARG_FLAG_STREAMED = 1 << 5,   /* a literal handed to literal_data, not kept */
	IMAP_ARG_FLAG_STREAM_ERR = 1 << 6, /* ... and literal_data returned -1 */
};

/* One argument.  Strings (every type but LIST and EOL, and a literal that
 * was not streamed) are NUL-terminated copies in the parser's memory; len
 * counts their octets without the NUL, and is authoritative for literals,
 * which may hold NULs.  A streamed literal has str == NULL and len its
 * size.  For NIL and NUMBER, str is the atom as sent.  8BIT and BAD_UTF8
 * are set on atoms, strings and buffered literals; NUL on literals
 * (streamed ones too). */
struct imap_arg {
	enum imap_arg_type type;
	unsigned flags; /* enum imap_arg_flags */
	const char *str;
	size_t len;
	uint64_t num; /* NUMBER: the value, at most INT64_MAX */
	/* LIST: n elements in list[0..n-1], then list[n] of type EOL. */
	const struct imap_arg *list;
	size_t n;
};

/* A parsed command, owned by the parser: it and everything it points to
 * stay valid until the next call of imap_parser_feed(),
 * imap_parser_read_line() or imap_parser_free().  While a command is still
 * being read (inside a literal callback, or after
 * IMAP_PARSE_CONTINUATION_NEEDED) it shows the arguments read so far; they
 * stay valid until the command ends, except that an open list's array (and
 * args itself) may move when it grows on a later line. */
struct imap_command {
	const char *tag;
	const char *name; /* upper-cased */
	const struct imap_arg *args;
	size_t n_args; /* args[n_args] is EOL */
};

enum imap_parse_result {
	IMAP_PARSE_NEED_MORE,           /* all input consumed, no event yet */
	IMAP_PARSE_COMMAND,             /* imap_parser_command() is complete */
	IMAP_PARSE_CONTINUATION_NEEDED, /* send "+ ..." then feed the literal */
	IMAP_PARSE_ERROR,               /* see imap_parser_error() */
	IMAP_PARSE_LINE,                /* imap_parser_read_line() only */
};

/* Why a command was refused, and the reply the session should give, with
 * its tag or "*" (RFC 3501 §7.1, RFC 9051 §7.1): */
enum imap_parse_error_kind {
	IMAP_PARSE_ERROR_NONE = 0,
	IMAP_PARSE_ERROR_SYNTAX,          /* TAG BAD <text> */
	IMAP_PARSE_ERROR_LINE_TOO_LONG,   /* TAG BAD: a line over max_line_length, or the
	                                   * command's text over max_command_size */
	IMAP_PARSE_ERROR_LITERAL_TOO_BIG, /* TAG NO [TOOBIG] for APPEND (the response code
	                                   * of RFC 4469, RFC 9051 §7.1), TAG BAD [TOOBIG]
	                                   * otherwise (as RFC 7888 asks for refused
	                                   * non-synchronising literals); see name */
	IMAP_PARSE_ERROR_TOO_DEEP,        /* TAG BAD: lists nested past max_depth */
	IMAP_PARSE_ERROR_TOO_MANY_ARGS,   /* TAG BAD: over max_args arguments */
};

/* Valid until the next feed / read_line / free. */
struct imap_parse_error {
	enum imap_parse_error_kind kind;
	const char *tag;  /* the command's tag, or "*" when none could be read */
	const char *name; /* the command name, upper-cased, or NULL if not read */
	const char *text; /* static human-readable detail, e.g. "Literal too big" */
	/* The parser lost step with the client (a {n+} whose n does not fit 64
	 * bits): it cannot tell where the next command starts.  Answer, send
	 * "* BYE" and close. */
	bool fatal;
};

/* Where a literal sits, for literal_begin. */
struct imap_literal_info {
	uint64_t size;
	bool sync;      /* {n}: IMAP_PARSE_CONTINUATION_NEEDED comes next */
	bool binary;    /* ~{n} */
	unsigned depth; /* 0: an argument of the command; 1: inside one list... */
	size_t index;   /* its position among its siblings */
};

enum imap_literal_mode {
	IMAP_LITERAL_BUFFER, /* keep it in the argument (counts against max_command_size) */
	IMAP_LITERAL_STREAM, /* hand it to literal_data, keep nothing */
};

/* Called once the literal's header line has been read and its size
 * accepted, before the continuation is requested.  cmd is the command read
 * so far; the literal (str NULL) is the last element of the innermost open
 * list: info->index in cmd->args when info->depth is 0, else inside the
 * last LIST argument, depth levels down.  Must not call the parser. */
typedef enum imap_literal_mode imap_literal_begin_cb(const struct imap_command *cmd,
                                                     const struct imap_literal_info *info,
                                                     void *context);
/* Receives the next size octets (size > 0) of a streamed literal, as a view
 * into the caller's input, in order, size octets in all over however many
 * calls.  Returns 0, or -1 to refuse them: the rest of the literal is then
 * skipped unseen, the argument gets IMAP_ARG_FLAG_STREAM_ERR and the command
 * is read on as usual.  Must not call the parser. */
typedef int imap_literal_data_cb(const unsigned char *data, size_t size, void *context);

/* Every limit is a maximum; 0 selects the default. */
struct imap_parser_settings {
	size_t max_line_length;  /* octets of one line, CRLF and literal data excluded */
	size_t max_command_size; /* octets of text kept for one command (see above) */
	size_t max_literal_size; /* octets of one literal, streamed or not: the message limit */
	unsigned max_depth;      /* nested lists */
	unsigned max_args;       /* arguments, each list counting as one beside its elements */
	imap_literal_begin_cb *literal_begin; /* NULL: buffer every literal */
	imap_literal_data_cb *literal_data;   /* required with literal_begin */
	void *context;
};

struct imap_parser *imap_parser_new(const struct imap_parser_settings *set);
/* Frees *parser (which may be NULL) and sets it to NULL. */
void imap_parser_free(struct imap_parser **parser);

/* Reads up to size octets of input; *consumed_r says how many were used,
 * always all of them for NEED_MORE.  Then:
 *   NEED_MORE              feed more input when it arrives;
 *   COMMAND                imap_parser_command() holds the command; the rest
 *                          of the input (pipelined commands) is for the next
 *                          call;
 *   CONTINUATION_NEEDED    a synchronising literal's header was consumed:
 *                          send "+ Ready" (or any "+" line), then feed its
 *                          octets.  Returned exactly once per accepted {n}
 *                          or ~{n}, never for {n+};
 *   ERROR                  imap_parser_error() says what and to whom; the
 *                          bad command has been consumed (see above).
 * Literal callbacks run only inside this call. */
enum imap_parse_result imap_parser_feed(struct imap_parser *parser, const void *data, size_t size,
                                        size_t *consumed_r);

/* The command after IMAP_PARSE_COMMAND, or the partial one while reading. */
const struct imap_command *imap_parser_command(const struct imap_parser *parser);
/* The error after IMAP_PARSE_ERROR (kind NONE otherwise). */
const struct imap_parse_error *imap_parser_error(const struct imap_parser *parser);

/* Reads one raw line, not a command: an AUTHENTICATE response (RFC 3501
 * §6.2.2) or the "DONE" that ends IDLE (RFC 2177).  Call only between
 * commands (after COMMAND or ERROR, or before any input).  Returns
 * NEED_MORE (call again with more input: the partial line is kept), LINE
 * with *line_r / *len_r the line without its CRLF (NUL-terminated, may hold
 * NULs, valid until the next call), or ERROR (LINE_TOO_LONG, tag "*") after
 * discarding a line over max_line_length to its end. */
enum imap_parse_result imap_parser_read_line(struct imap_parser *parser, const void *data,
                                             size_t size, size_t *consumed_r, const char **line_r,
                                             size_t *len_r);

/* Case-insensitive comparison of an ATOM, NUMBER or NIL with word; false
 * for other types. */
bool imap_arg_atom_equals(const struct imap_arg *arg, const char *word);

/* Sequence sets (RFC 9051 §9 sequence-set, RFC 5182 "$"). */
struct imap_seq_range {
	uint32_t first, last; /* first <= last; "*" is UINT32_MAX */
};

struct imap_seqset {
	bool saved;                    /* "$": the saved search result; no ranges */
	struct imap_seq_range *ranges; /* as written ("*:1" becomes 1:*), not merged */
	size_t count;
};

/* Parses str (len octets, e.g. an atom's str/len) into *set_r.  Numbers are
 * nz-number: 1..4294967295, no leading zero; "*" stands for the largest
 * number in use.  Returns 0, or -1 with *error_r a static text for "0",
 * "1:", ":5", "1,,2", ",1", "1:2:3", "$,1" and other malformed sets.  Free
 * with imap_seqset_free(). */
int imap_seqset_parse(const char *str, size_t len, struct imap_seqset *set_r, const char **error_r);
void imap_seqset_free(struct imap_seqset *set);

#endif
