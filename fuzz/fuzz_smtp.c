/* libFuzzer target for src/proto/smtp_parser.c and smtp_data.c.
 *
 * Command parser: the input is cut into lines at LF (a CR before the LF is
 * dropped, so bare CRs and NULs still reach the parser) and every line is
 * parsed with and without SMTP_PARSER_FLAG_UTF8, checking the contract of
 * the result.
 *
 * DATA reader: the whole input is read at once and again in chunks whose
 * sizes come from a generator seeded by the input, in both bare-CR/LF modes
 * and with and without a size limit; the results must agree, and must agree
 * with two independent models: the data ends exactly at the first
 * "\r\n.\r\n" in "\r\n" + input, and clean data un-stuffs line by line. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/smtp_data.h"
#include "proto/smtp_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static void check_command(const char *line, size_t len, unsigned flags)
{
	struct smtp_command cmd;
	const char *error = NULL;
	int ret = smtp_parser_parse(line, len, flags, &cmd, &error);

	CHECK(ret == 0 || ret == -1);
	CHECK((ret == 0) == (cmd.error == SMTP_PARSE_OK));
	CHECK(cmd.verb <= SMTP_VERB_AUTH);
	CHECK(smtp_parser_error_reply(cmd.error) != NULL);
	CHECK(smtp_parser_verb_name(cmd.verb) != NULL);
	if (ret < 0) {
		CHECK(error != NULL && strlen(error) > 0);
		return;
	}
	CHECK(memchr(line, '\0', len) == NULL && memchr(line, '\r', len) == NULL &&
	      memchr(line, '\n', len) == NULL);
	CHECK(cmd.verb != SMTP_VERB_UNKNOWN);
	CHECK(strlen(cmd.domain) <= SMTP_HELO_MAX);
	CHECK(strlen(cmd.mail.envid) <= SMTP_ENVID_MAX);
	CHECK(strlen(cmd.rcpt.orcpt_addr) <= SMTP_ORCPT_MAX);
	if (cmd.arg != NULL)
		CHECK(cmd.arg >= line && cmd.arg + cmd.arg_len <= line + len && cmd.arg_len > 0);
	else
		CHECK(cmd.arg_len == 0);
	if ((cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT) && !cmd.path.null &&
	    !cmd.path.postmaster) {
		bool utf8 = cmd.verb == SMTP_VERB_MAIL ? cmd.mail.smtputf8
		                                       : (flags & SMTP_PARSER_FLAG_UTF8) != 0;
		char buf[ADDRESS_MAX + 1];
		struct address again;
		const char *err;

		CHECK(address_format(&cmd.path.addr, buf, sizeof(buf)) == 0);
		CHECK(address_parse(buf, utf8, &again, &err) == 0);
	}
	if (cmd.verb == SMTP_VERB_MAIL && cmd.path.null)
		CHECK(cmd.path.addr.localpart[0] == '\0');
	if (cmd.verb == SMTP_VERB_RCPT)
		CHECK(!cmd.path.null);
	if ((cmd.rcpt.notify & SMTP_NOTIFY_NEVER) != 0)
		CHECK(cmd.rcpt.notify == SMTP_NOTIFY_NEVER);
}

static void fuzz_commands(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = lf != NULL ? lf : end;
		size_t len = (size_t)(line_end - p);

		if (len > 0 && p[len - 1] == '\r')
			len--;
		/* An exact-size copy, so ASan sees any read past the line. */
		char *line = malloc(len + 1);

		CHECK(line != NULL);
		memcpy(line, p, len);
		check_command(line, len, 0);
		check_command(line, len, SMTP_PARSER_FLAG_UTF8);
		free(line);
		p = line_end + 1;
	}
}

struct run {
	unsigned char *out;
	size_t out_len;
	bool done;
	size_t consumed;
	unsigned errors;
	uint64_t size;
	unsigned received;
};

static int sink(const unsigned char *data, size_t size, void *context)
{
	struct run *r = context;

	CHECK(size > 0);
	r->out = realloc(r->out, r->out_len + size);
	CHECK(r->out != NULL);
	memcpy(r->out + r->out_len, data, size);
	r->out_len += size;
	return 0;
}

/* chunk == 0: all at once; otherwise sizes 1..chunk from a generator. */
static struct run run_data(const uint8_t *data, size_t size, enum smtp_data_bare_mode mode,
                           uint64_t max_size, uint32_t seed, unsigned chunk)
{
	struct run r = {0};
	struct smtp_data_settings set = {max_size, mode, sink, &r};
	struct smtp_data *reader = smtp_data_new(&set);
	size_t pos = 0;

	do {
		size_t n = size - pos, consumed;

		if (chunk != 0) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			if (n > 1 + seed % chunk)
				n = 1 + seed % chunk;
		}
		if (smtp_data_feed(reader, data + pos, n, &consumed) == SMTP_DATA_DONE) {
			r.done = true;
			CHECK(consumed <= n);
		} else {
			CHECK(consumed == n);
		}
		pos += consumed;
	} while (!r.done && pos < size);
	r.consumed = pos;
	r.errors = smtp_data_errors(reader);
	r.size = smtp_data_size(reader);
	r.received = smtp_data_received_count(reader);
	smtp_data_free(&reader);
	return r;
}

static void check_same(const struct run *a, const struct run *b)
{
	CHECK(a->done == b->done && a->consumed == b->consumed && a->errors == b->errors &&
	      a->size == b->size && a->received == b->received);
	if (a->errors == 0)
		CHECK(a->out_len == b->out_len &&
		      (a->out_len == 0 || memcmp(a->out, b->out, a->out_len) == 0));
}

/* Model 1: where the data ends. */
static size_t model_end(const uint8_t *data, size_t size, bool *done_r)
{
	unsigned char *buf = malloc(size + 2);
	unsigned char *hit;

	CHECK(buf != NULL);
	memcpy(buf, "\r\n", 2);
	memcpy(buf + 2, data, size);
	hit = memmem(buf, size + 2, "\r\n.\r\n", 5);
	*done_r = hit != NULL;
	size = hit != NULL ? (size_t)(hit - buf) + 3 : size;
	free(buf);
	return size;
}

/* Model 2: clean data (no error) is its CRLF lines, each without a leading
 * dot; body_len is where the terminator's ".\r\n" starts. */
static void check_unstuffed(const uint8_t *data, size_t body_len, const struct run *r)
{
	size_t in = 0, out = 0;

	while (in < body_len) {
		const uint8_t *crlf = memmem(data + in, body_len - in, "\r\n", 2);
		size_t line_len;

		CHECK(crlf != NULL);
		line_len = (size_t)(crlf - (data + in)) + 2;
		if (data[in] == '.') {
			in++;
			line_len--;
		}
		CHECK(out + line_len <= r->out_len &&
		      memcmp(r->out + out, data + in, line_len) == 0);
		in += line_len;
		out += line_len;
	}
	CHECK(out == r->out_len);
}

static void check_normalized(const struct run *r)
{
	size_t line = 0;

	for (size_t i = 0; i < r->out_len; i++) {
		if (r->out[i] == '\r')
			CHECK(i + 1 < r->out_len && r->out[i + 1] == '\n');
		if (r->out[i] == '\n') {
			CHECK(i > 0 && r->out[i - 1] == '\r');
			line = 0;
		} else {
			CHECK(++line <= SMTP_DATA_LINE_MAX - 1);
		}
	}
}

static void fuzz_data_mode(const uint8_t *data, size_t size, enum smtp_data_bare_mode mode,
                           uint64_t max_size, uint32_t seed)
{
	struct run whole = run_data(data, size, mode, max_size, seed, 0);
	struct run small = run_data(data, size, mode, max_size, seed, 7);
	struct run large = run_data(data, size, mode, max_size, seed ^ 0x5bd1e995u, 300);
	bool done;
	size_t end = model_end(data, size, &done);

	check_same(&whole, &small);
	check_same(&whole, &large);
	CHECK(whole.done == done && whole.consumed == end);
	if (max_size != 0)
		CHECK(whole.out_len <= max_size && small.out_len <= max_size);
	CHECK((smtp_data_error_reply(whole.errors) == NULL) == (whole.errors == 0));
	if (whole.errors == 0) {
		CHECK(whole.size == whole.out_len);
		if (mode == SMTP_DATA_BARE_REJECT && done)
			check_unstuffed(data, end - 3, &whole);
		if (mode == SMTP_DATA_BARE_NORMALIZE)
			check_normalized(&whole);
	}
	if (mode == SMTP_DATA_BARE_NORMALIZE)
		CHECK((whole.errors & (SMTP_DATA_ERROR_BARE_CR | SMTP_DATA_ERROR_BARE_LF)) == 0);
	free(whole.out);
	free(small.out);
	free(large.out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed = 2166136261u;

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	seed |= 1;
	fuzz_commands(data, size);
	fuzz_data_mode(data, size, SMTP_DATA_BARE_REJECT, 0, seed);
	fuzz_data_mode(data, size, SMTP_DATA_BARE_NORMALIZE, 0, seed);
	fuzz_data_mode(data, size, SMTP_DATA_BARE_REJECT, size / 2 + 1, seed);
	fuzz_data_mode(data, size, SMTP_DATA_BARE_NORMALIZE, size / 3 + 1, seed);
	return 0;
}
