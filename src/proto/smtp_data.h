/* The SMTP DATA reader (RFC 5321 §4.1.1.4, §4.5.2): an incremental state
 * machine fed the bytes that follow "354", in chunks of any size as they
 * arrive, that finds the end of the message, removes dot-stuffing and hands
 * the message to a sink.  No I/O, no threads: the sink runs only inside
 * smtp_data_feed(), on the caller's thread.  Fuzzed alone (fuzz/fuzz_smtp.c).
 *
 * End of data is <CRLF>.<CRLF> and nothing else; the CRLF that ended the
 * DATA command line counts as the first CRLF, so a "." line right away is an
 * empty message.  A bare CR or bare LF never ends a line for this purpose,
 * whatever follows it: "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r", "\r\n.\n" and
 * "\r.\r\n" are message content (SMTP smuggling defence; the line after a
 * bare CR or LF is not at a line start, so its dot is neither unstuffed nor
 * a terminator).  A leading "." on a real line is removed.
 *
 * Bare CR / bare LF in the content, by setting:
 *   SMTP_DATA_BARE_REJECT     recorded as an error, the message is refused;
 *   SMTP_DATA_BARE_NORMALIZE  each written out as CRLF (and then it ends a
 *                             line for the line-length and header counting,
 *                             as it does in the stored message).
 *
 * Errors never end the data early: the reader always consumes up to the
 * real terminator, so the session stays in step with the client and answers
 * once, after it.  From the first error on, nothing more goes to the sink
 * (the message will be refused, so storing more is waste; in particular the
 * octets past the size limit are never handed over or buffered).
 *
 * The output is the message as it will be stored: un-stuffed, lines ending
 * in CRLF (the terminator's CRLF.CRLF contributes its first CRLF, which ends
 * the last line, and nothing else).
 *
 * BDAT (RFC 3030) chunks do not go through this reader: they are counted
 * octets with no terminator and no stuffing, binary-safe by definition
 * (BINARYMIME), so neither the line limit nor the bare CR/LF checks apply to
 * them. */
#ifndef KEEL_PROTO_SMTP_DATA_H
#define KEEL_PROTO_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "proto/smtp_parser.h"

/* RFC 5321 §4.5.3.1.6: a text line, CRLF included, stuffing dot excluded. */
#define SMTP_DATA_LINE_MAX 1000

enum smtp_data_bare_mode {
	SMTP_DATA_BARE_REJECT = 0,
	SMTP_DATA_BARE_NORMALIZE,
};

enum smtp_data_error_flags {
	SMTP_DATA_ERROR_BARE_CR = 1 << 0,       /* REJECT mode only */
	SMTP_DATA_ERROR_BARE_LF = 1 << 1,       /* REJECT mode only */
	SMTP_DATA_ERROR_LINE_TOO_LONG = 1 << 2, /* a line over SMTP_DATA_LINE_MAX */
	SMTP_DATA_ERROR_TOO_BIG = 1 << 3,       /* output past max_size */
	SMTP_DATA_ERROR_SINK = 1 << 4,          /* the sink returned -1 */
};

enum smtp_data_result {
	SMTP_DATA_NEED_MORE, /* all input consumed, the terminator not seen yet */
	SMTP_DATA_DONE,      /* the terminator was consumed; see *consumed_r */
};

/* Receives the next size octets of the message (size > 0).  Returns 0, or
 * -1 to refuse them (a write failed): the reader then records
 * SMTP_DATA_ERROR_SINK, calls the sink no more, and reads on to the end. */
typedef int smtp_data_sink_cb(const unsigned char *data, size_t size, void *context);

struct smtp_data_settings {
	uint64_t max_size; /* octets of output allowed; 0 for no limit */
	enum smtp_data_bare_mode bare_mode;
	smtp_data_sink_cb *sink;
	void *context; /* given to sink */
};

struct smtp_data *smtp_data_new(const struct smtp_data_settings *set);
/* Frees *data (which may be NULL) and sets it to NULL. */
void smtp_data_free(struct smtp_data **data);

/* Reads up to size octets of input.  Returns SMTP_DATA_NEED_MORE with
 * *consumed_r == size, or SMTP_DATA_DONE with *consumed_r the octets up to
 * and including the terminator's final LF: the rest (pipelined commands) is
 * the session's.  All output for the input consumed has reached the sink
 * when this returns.  Once DONE, further calls consume nothing and return
 * DONE again. */
enum smtp_data_result smtp_data_feed(struct smtp_data *data, const void *input, size_t size,
                                     size_t *consumed_r);

/* enum smtp_data_error_flags seen so far (final once DONE). */
unsigned smtp_data_errors(const struct smtp_data *data);
/* Octets of output so far, counting those past max_size that were not
 * handed over (for logs and the 552 reply). */
uint64_t smtp_data_size(const struct smtp_data *data);
/* "Received:" fields in the header section (before the first empty line),
 * for the hop-count limit (RFC 5321 §6.3). */
unsigned smtp_data_received_count(const struct smtp_data *data);

/* The reply for a set of error flags, NULL when errors == 0.  One reply per
 * message, by precedence:
 *   bare CR / LF     550 5.5.2  (the content is not SMTP: refuse, do not guess)
 *   line too long    500 5.5.6  (RFC 5321 §4.5.3.1 gives "500 Line too long";
 *                                X.5.6, registered by RFC 4954 for AUTH lines,
 *                                is the only "line too long" status code)
 *   too big          552 5.3.4  (RFC 5321 §4.5.3.1, RFC 1870)
 *   sink failed      451 4.3.0  (our fault: the client retries later) */
const struct smtp_reply_code *smtp_data_error_reply(unsigned errors);

#endif
