#include "proto/smtp_data.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

/* Where the reader is within the line structure.  Only a real CRLF leads
 * to LINE_START: that one rule is the whole smuggling defence, since a dot
 * is special (stuffing or terminator) only at LINE_START. */
enum data_state {
	DATA_LINE_START, /* just after CRLF (or the DATA command's CRLF) */
	DATA_DOT,        /* "." at a line start, not yet written (stuffing) */
	DATA_DOT_CR,     /* ".\r" at a line start: LF next ends the data */
	DATA_TEXT,       /* inside a line */
	DATA_CR,         /* a CR inside a line, its LF not yet seen */
	DATA_DONE,
};

/* Matching "Received" *WSP ":" at the start of a header line:
 * 0..8 octets of the name matched, then the optional spaces. */
#define RECEIVED_NAME "received"
#define HDR_WSP       8
#define HDR_NONE      9 /* this line is not (or no longer could be) Received */

/* Output is staged here and flushed at the end of each feed, so the sink
 * sees a few large pieces instead of one call per un-stuffed run. */
#define OUT_BUF_SIZE 8192

struct smtp_data {
	struct smtp_data_settings set;
	enum data_state state;
	unsigned errors;
	uint64_t size;   /* output octets counted, stored or not */
	size_t line_len; /* octets of the current line, no CRLF, no stuffing dot */
	bool in_header;
	unsigned hdr_pos;
	unsigned received;
	size_t out_len;
	unsigned char out[OUT_BUF_SIZE];
};

struct smtp_data *smtp_data_new(const struct smtp_data_settings *set)
{
	struct smtp_data *data = xcalloc(1, sizeof(*data));

	data->set = *set;
	data->state = DATA_LINE_START;
	data->in_header = true;
	return data;
}

void smtp_data_free(struct smtp_data **data)
{
	free(*data);
	*data = NULL;
}

static void out_flush(struct smtp_data *data)
{
	size_t len = data->out_len;

	data->out_len = 0;
	if (len == 0 || data->errors != 0)
		return;
	if (data->set.sink(data->out, len, data->set.context) < 0)
		data->errors |= SMTP_DATA_ERROR_SINK;
}

/* Counts n output octets and stages them, unless the message is already
 * refused; the size check comes first so nothing past max_size is kept. */
static void out_write(struct smtp_data *data, const unsigned char *p, size_t n)
{
	data->size += n;
	if (data->set.max_size != 0 && data->size > data->set.max_size)
		data->errors |= SMTP_DATA_ERROR_TOO_BIG;
	if (data->errors != 0) {
		data->out_len = 0;
		return;
	}
	while (n > 0) {
		size_t room = sizeof(data->out) - data->out_len;
		size_t k = n < room ? n : room;

		memcpy(data->out + data->out_len, p, k);
		data->out_len += k;
		p += k;
		n -= k;
		if (data->out_len == sizeof(data->out))
			out_flush(data);
	}
}

static void header_match(struct smtp_data *data, unsigned char c)
{
	if (data->hdr_pos < HDR_WSP) {
		unsigned char lower = c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;

		data->hdr_pos = lower == (unsigned char)RECEIVED_NAME[data->hdr_pos]
		                    ? data->hdr_pos + 1
		                    : HDR_NONE;
	} else if (c == ':') {
		data->received++;
		data->hdr_pos = HDR_NONE;
	} else if (c != ' ' && c != '\t') {
		data->hdr_pos = HDR_NONE;
	}
}

/* n octets of line content (no CR or LF among them). */
static void line_content(struct smtp_data *data, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n && data->in_header && data->hdr_pos != HDR_NONE; i++)
		header_match(data, p[i]);
	data->line_len += n;
	if (data->line_len > SMTP_DATA_LINE_MAX - 2)
		data->errors |= SMTP_DATA_ERROR_LINE_TOO_LONG;
	out_write(data, p, n);
}

static void line_end(struct smtp_data *data)
{
	static const unsigned char crlf[2] = {'\r', '\n'};

	if (data->line_len == 0)
		data->in_header = false;
	data->line_len = 0;
	data->hdr_pos = 0;
	out_write(data, crlf, 2);
}

/* A bare CR or LF: flag is its SMTP_DATA_ERROR_BARE_*. */
static void bare_line_end(struct smtp_data *data, unsigned flag)
{
	static const unsigned char cr = '\r', lf = '\n';

	if (data->set.bare_mode == SMTP_DATA_BARE_NORMALIZE) {
		line_end(data);
		return;
	}
	data->errors |= flag;
	line_content(data, flag == SMTP_DATA_ERROR_BARE_CR ? &cr : &lf, 1);
}

/* Inside a line: takes the run of plain octets at p in one piece (the
 * common case) or one CR/LF.  Returns the octets used. */
static size_t step_text(struct smtp_data *data, const unsigned char *p, size_t n)
{
	size_t run = 0;

	if (*p == '\r') {
		data->state = DATA_CR;
		return 1;
	}
	if (*p == '\n') {
		bare_line_end(data, SMTP_DATA_ERROR_BARE_LF);
		return 1;
	}
	while (run < n && p[run] != '\r' && p[run] != '\n')
		run++;
	line_content(data, p, run);
	return run;
}

/* One state transition at p (n > 0 octets available); returns the octets
 * used, 0 meaning "p[0] again, in DATA_TEXT". */
static size_t step(struct smtp_data *data, const unsigned char *p, size_t n)
{
	switch (data->state) {
	case DATA_LINE_START:
		if (*p == '.') {
			data->state = DATA_DOT;
			return 1;
		}
		data->state = DATA_TEXT;
		return step_text(data, p, n);
	case DATA_DOT:
		if (*p == '\r') {
			data->state = DATA_DOT_CR;
			return 1;
		}
		data->state = DATA_TEXT;
		return step_text(data, p, n);
	case DATA_DOT_CR:
		if (*p == '\n') {
			data->state = DATA_DONE;
			return 1;
		}
		/* ".\r" then not LF: an ordinary line holding a bare CR. */
		data->state = DATA_TEXT;
		bare_line_end(data, SMTP_DATA_ERROR_BARE_CR);
		return 0;
	case DATA_CR:
		if (*p == '\n') {
			line_end(data);
			data->state = DATA_LINE_START;
			return 1;
		}
		data->state = DATA_TEXT;
		bare_line_end(data, SMTP_DATA_ERROR_BARE_CR);
		return 0;
	case DATA_TEXT:
		return step_text(data, p, n);
	case DATA_DONE:
		break;
	}
	abort(); /* DATA_DONE is handled by the caller */
}

enum smtp_data_result smtp_data_feed(struct smtp_data *data, const void *input, size_t size,
                                     size_t *consumed_r)
{
	const unsigned char *p = input;
	size_t pos = 0;

	if (data->state == DATA_DONE) {
		*consumed_r = 0;
		return SMTP_DATA_DONE;
	}
	while (pos < size && data->state != DATA_DONE)
		pos += step(data, p + pos, size - pos);
	out_flush(data);
	*consumed_r = pos;
	return data->state == DATA_DONE ? SMTP_DATA_DONE : SMTP_DATA_NEED_MORE;
}

unsigned smtp_data_errors(const struct smtp_data *data)
{
	return data->errors;
}

uint64_t smtp_data_size(const struct smtp_data *data)
{
	return data->size;
}

unsigned smtp_data_received_count(const struct smtp_data *data)
{
	return data->received;
}

const struct smtp_reply_code *smtp_data_error_reply(unsigned errors)
{
	static const struct smtp_reply_code bare = {550, "5.5.2",
	                                            "Bare CR or LF in message data refused"};
	static const struct smtp_reply_code line = {500, "5.5.6", "Line too long"};
	static const struct smtp_reply_code big = {
	    552, "5.3.4", "Message size exceeds fixed maximum message size"};
	static const struct smtp_reply_code sink = {451, "4.3.0", "Local error in processing"};

	if ((errors & (SMTP_DATA_ERROR_BARE_CR | SMTP_DATA_ERROR_BARE_LF)) != 0)
		return &bare;
	if ((errors & SMTP_DATA_ERROR_LINE_TOO_LONG) != 0)
		return &line;
	if ((errors & SMTP_DATA_ERROR_TOO_BIG) != 0)
		return &big;
	if ((errors & SMTP_DATA_ERROR_SINK) != 0)
		return &sink;
	return NULL;
}
