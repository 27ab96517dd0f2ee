#include "proto/smtp_data.h"

#include <stdbool.h>
#include <stdlib.h>

#include "lib/test.h"
#include "lib/xalloc.h"

struct result {
	unsigned char *out;
	size_t out_len;
	bool done;
	size_t consumed; /* input octets consumed in total */
	unsigned errors;
	uint64_t size;
	unsigned received;
	size_t sink_calls;
};

static int sink_append(const unsigned char *data, size_t size, void *context)
{
	struct result *r = context;

	if (size == 0)
		abort(); /* the header promises size > 0 */
	r->out = xrealloc(r->out, r->out_len + size);
	memcpy(r->out + r->out_len, data, size);
	r->out_len += size;
	r->sink_calls++;
	return 0;
}

static int sink_fail(const unsigned char *data, size_t size, void *context)
{
	struct result *r = context;

	r->sink_calls++;
	return -1;
}

/* The reply for errors, without crashing the test when there is none. */
static unsigned reply_code(unsigned errors)
{
	const struct smtp_reply_code *reply = smtp_data_error_reply(errors);

	return reply != NULL ? reply->code : 0;
}

static const char *reply_enhanced(unsigned errors)
{
	const struct smtp_reply_code *reply = smtp_data_error_reply(errors);

	return reply != NULL ? reply->enhanced : "";
}

/* Feeds input in pieces: cuts[] are the offsets where a new feed call
 * starts (ascending, ncuts of them).  The reader must consume every piece
 * fully until DONE, and nothing after. */
static struct result run_cuts(const char *input, size_t len, enum smtp_data_bare_mode mode,
                              uint64_t max_size, const size_t *cuts, size_t ncuts,
                              smtp_data_sink_cb *sink)
{
	struct result r = {0};
	struct smtp_data_settings set = {
	    .max_size = max_size, .bare_mode = mode, .sink = sink, .context = &r};
	struct smtp_data *data = smtp_data_new(&set);
	size_t start = 0;

	for (size_t i = 0; i <= ncuts && !r.done; i++) {
		size_t stop = i < ncuts ? cuts[i] : len, consumed;
		enum smtp_data_result res =
		    smtp_data_feed(data, input + start, stop - start, &consumed);

		r.consumed += consumed;
		if (res == SMTP_DATA_DONE)
			r.done = true;
		else
			CHECK_INT(consumed, stop - start);
		start = stop;
	}
	r.errors = smtp_data_errors(data);
	r.size = smtp_data_size(data);
	r.received = smtp_data_received_count(data);
	smtp_data_free(&data);
	CHECK(data == NULL);
	return r;
}

static struct result run_whole(const char *input, size_t len, enum smtp_data_bare_mode mode,
                               uint64_t max_size)
{
	return run_cuts(input, len, mode, max_size, NULL, 0, sink_append);
}

static bool results_equal(const struct result *a, const struct result *b)
{
	/* After an error the sink gets a prefix whose length depends on
	 * where the chunks fell; only error-free output must match. */
	if (a->errors == 0 && (a->out_len != b->out_len ||
	                       (a->out_len > 0 && memcmp(a->out, b->out, a->out_len) != 0)))
		return false;
	return a->done == b->done && a->consumed == b->consumed && a->errors == b->errors &&
	       a->size == b->size && a->received == b->received;
}

/* The input fed whole, one octet at a time, and in two pieces at every
 * split point gives the same result; returns the whole-input result. */
static struct result run_all_splits(const char *input, size_t len, enum smtp_data_bare_mode mode,
                                    uint64_t max_size)
{
	struct result whole = run_whole(input, len, mode, max_size), r;
	size_t *cuts = xcalloc(len + 1, sizeof(*cuts));

	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	r = run_cuts(input, len, mode, max_size, cuts, len, sink_append);
	CHECK(results_equal(&whole, &r));
	if (max_size != 0)
		CHECK(r.out_len <= max_size);
	free(r.out);
	for (size_t split = 0; split <= len; split++) {
		r = run_cuts(input, len, mode, max_size, &split, 1, sink_append);
		if (!results_equal(&whole, &r))
			fprintf(stderr, "  differs when split at %zu\n", split);
		CHECK(results_equal(&whole, &r));
		if (max_size != 0)
			CHECK(r.out_len <= max_size);
		free(r.out);
	}
	free(cuts);
	return whole;
}

/* A message that must end cleanly with output expected and len consumed. */
static void check_message(const char *input, size_t consumed, enum smtp_data_bare_mode mode,
                          const char *expected)
{
	struct result r = run_all_splits(input, strlen(input), mode, 0);

	CHECK(r.done);
	CHECK_INT(r.consumed, consumed);
	CHECK_INT(r.errors, 0);
	CHECK_INT(r.out_len, strlen(expected));
	CHECK(r.out_len == strlen(expected) &&
	      (r.out_len == 0 || memcmp(r.out, expected, r.out_len) == 0));
	CHECK_INT(r.size, strlen(expected));
	free(r.out);
}

static void test_simple(void)
{
	const char *msg = "Subject: hi\r\n\r\nbody\r\n.\r\n";

	check_message(msg, strlen(msg), SMTP_DATA_BARE_REJECT, "Subject: hi\r\n\r\nbody\r\n");
	check_message(msg, strlen(msg), SMTP_DATA_BARE_NORMALIZE, "Subject: hi\r\n\r\nbody\r\n");
}

static void test_empty_message(void)
{
	/* The DATA command's CRLF is the terminator's first CRLF. */
	check_message(".\r\n", 3, SMTP_DATA_BARE_REJECT, "");
	check_message("\r\n.\r\n", 5, SMTP_DATA_BARE_REJECT, "\r\n");
}

static void test_dot_stuffing(void)
{
	const char *msg = "..leading\r\n...\r\n.x\r\nmid.dle\r\n..\r\n.\r\n";

	check_message(msg, strlen(msg), SMTP_DATA_BARE_REJECT,
	              ".leading\r\n..\r\nx\r\nmid.dle\r\n.\r\n");
}

static void test_pipelined_bytes_left(void)
{
	const char *input = "a\r\n.\r\nQUIT\r\n";
	struct result r = run_all_splits(input, strlen(input), SMTP_DATA_BARE_REJECT, 0);
	struct smtp_data_settings set = {.sink = sink_append, .context = &r};
	struct smtp_data *data;
	size_t consumed;

	CHECK(r.done);
	CHECK_INT(r.consumed, 6);
	CHECK(r.out_len == 3 && memcmp(r.out, "a\r\n", 3) == 0);
	free(r.out);

	/* Feeding after DONE consumes nothing. */
	memset(&r, 0, sizeof(r));
	data = smtp_data_new(&set);
	CHECK_INT(smtp_data_feed(data, input, strlen(input), &consumed), SMTP_DATA_DONE);
	CHECK_INT(consumed, 6);
	CHECK_INT(smtp_data_feed(data, input + 6, 6, &consumed), SMTP_DATA_DONE);
	CHECK_INT(consumed, 0);
	CHECK_INT(smtp_data_feed(data, "", 0, &consumed), SMTP_DATA_DONE);
	smtp_data_free(&data);
	smtp_data_free(&data); /* NULL is fine */
	free(r.out);
}

static const char *const smuggling[] = {
    "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r", "\r\n.\n", "\r.\r\n", "\n.\r", ".\n", ".\r",
};

/* Each smuggling sequence inside a message: never the end, the real
 * terminator is; REJECT flags it, NORMALIZE turns it into CRLFs. */
static void test_smuggling(void)
{
	for (size_t i = 0; i < sizeof(smuggling) / sizeof(smuggling[0]); i++) {
		char msg[256];
		struct result r;
		size_t len;

		snprintf(msg, sizeof(msg),
		         "Subject: x\r\n\r\nhello%sMAIL FROM:<evil@x.test>\r\n"
		         "RCPT TO:<victim@y.test>\r\nDATA\r\n\r\nbad\r\n.\r\n",
		         smuggling[i]);
		len = strlen(msg);
		r = run_all_splits(msg, len, SMTP_DATA_BARE_REJECT, 0);
		if (!r.done || r.consumed != len)
			fprintf(stderr, "  sequence %zu ended early\n", i);
		CHECK(r.done);
		CHECK_INT(r.consumed, len);
		CHECK(r.errors != 0);
		CHECK_INT(r.errors & ~(unsigned)(SMTP_DATA_ERROR_BARE_CR | SMTP_DATA_ERROR_BARE_LF),
		          0);
		CHECK_INT(reply_code(r.errors), 550);
		CHECK_STR(reply_enhanced(r.errors), "5.5.2");
		free(r.out);

		r = run_all_splits(msg, len, SMTP_DATA_BARE_NORMALIZE, 0);
		CHECK(r.done);
		CHECK_INT(r.consumed, len);
		CHECK_INT(r.errors, 0);
		free(r.out);

		/* Without the final terminator it never ends. */
		r = run_all_splits(msg, len - 3, SMTP_DATA_BARE_NORMALIZE, 0);
		CHECK(!r.done);
		CHECK_INT(r.consumed, len - 3);
		free(r.out);
	}
}

static void test_normalize_output(void)
{
	/* The line after a bare LF does not start a line for stuffing. */
	check_message("a\n.\nb\r\n.\r\n", 10, SMTP_DATA_BARE_NORMALIZE, "a\r\n.\r\nb\r\n");
	check_message("a\r\n.\rx\r\n.\r\n", 11, SMTP_DATA_BARE_NORMALIZE, "a\r\n\r\nx\r\n");
	check_message("a\rb\r\r\n.\r\n", 9, SMTP_DATA_BARE_NORMALIZE, "a\r\nb\r\n\r\n");
	check_message("\n\r\n.\r\n", 6, SMTP_DATA_BARE_NORMALIZE, "\r\n\r\n");
}

static void test_reject_flags(void)
{
	struct result r;

	r = run_all_splits("a\nb\r\n.\r\n", 8, SMTP_DATA_BARE_REJECT, 0);
	CHECK(r.done);
	CHECK_INT(r.errors, SMTP_DATA_ERROR_BARE_LF);
	free(r.out);
	r = run_all_splits("a\rb\r\n.\r\n", 8, SMTP_DATA_BARE_REJECT, 0);
	CHECK_INT(r.errors, SMTP_DATA_ERROR_BARE_CR);
	free(r.out);
	r = run_all_splits("a\r\r\n\n\r\n.\r\n", 10, SMTP_DATA_BARE_REJECT, 0);
	CHECK(r.done);
	CHECK_INT(r.errors, SMTP_DATA_ERROR_BARE_CR | SMTP_DATA_ERROR_BARE_LF);
	CHECK_INT(r.consumed, 10);
	free(r.out);
	/* The error stops the output: nothing after it reaches the sink. */
	r = run_whole("ok\r\nbad\rline\r\nmore\r\n.\r\n", 23, SMTP_DATA_BARE_REJECT, 0);
	CHECK(r.done);
	CHECK_INT(r.out_len, 0);
	free(r.out);
}

static void test_line_limit(void)
{
	char msg[2200];
	struct result r;
	size_t len;

	/* 998 octets + CRLF = 1000: allowed; a stuffing dot does not count. */
	memset(msg, 'x', 998);
	memcpy(msg + 998, "\r\n.", 3);
	memset(msg + 1001, 'y', 998);
	memcpy(msg + 1999, "\r\n.\r\n", 6);
	len = strlen(msg);
	r = run_whole(msg, len, SMTP_DATA_BARE_REJECT, 0);
	CHECK(r.done);
	CHECK_INT(r.errors, 0);
	CHECK_INT(r.out_len, 2000);
	free(r.out);

	/* 999 + CRLF: too long, yet read to the end and not cut. */
	memset(msg, 'x', 999);
	memcpy(msg + 999, "\r\nnext\r\n.\r\nQUIT\r\n", 18);
	len = strlen(msg);
	r = run_all_splits(msg, len, SMTP_DATA_BARE_REJECT, 0);
	CHECK(r.done);
	CHECK_INT(r.consumed, len - 6);
	CHECK_INT(r.errors, SMTP_DATA_ERROR_LINE_TOO_LONG);
	CHECK_INT(r.size, 999 + 2 + 6);
	CHECK_INT(reply_code(r.errors), 500);
	CHECK_STR(reply_enhanced(r.errors), "5.5.6");
	free(r.out);
}

static void test_size_limit(void)
{
	const char *msg = "0123456789\r\n0123456789\r\n.\r\n";
	struct result r;

	/* Exactly the limit is fine. */
	r = run_all_splits(msg, strlen(msg), SMTP_DATA_BARE_REJECT, 24);
	CHECK_INT(r.errors, 0);
	CHECK_INT(r.out_len, 24);
	free(r.out);

	r = run_all_splits(msg, strlen(msg), SMTP_DATA_BARE_REJECT, 23);
	CHECK(r.done);
	CHECK_INT(r.consumed, strlen(msg));
	CHECK_INT(r.errors, SMTP_DATA_ERROR_TOO_BIG);
	CHECK_INT(r.size, 24);
	CHECK(r.out_len <= 23);
	CHECK_INT(reply_code(r.errors), 552);
	CHECK_STR(reply_enhanced(r.errors), "5.3.4");
	free(r.out);
}

/* A large message past a small limit: what reaches the sink stays under the
 * limit however the input is chunked. */
static void test_size_limit_large(void)
{
	size_t len = 100 * 1000;
	char *msg = xmalloc(len + 6);
	size_t cuts[100];
	struct result r;

	for (size_t i = 0; i < len; i += 100) {
		memset(msg + i, 'z', 98);
		memcpy(msg + i + 98, "\r\n", 2);
	}
	memcpy(msg + len, ".\r\n", 4);
	for (size_t i = 0; i < 100; i++)
		cuts[i] = (i + 1) * 997;
	r = run_cuts(msg, len + 3, SMTP_DATA_BARE_REJECT, 10000, cuts, 100, sink_append);
	CHECK(r.done);
	CHECK_INT(r.consumed, len + 3);
	CHECK_INT(r.errors, SMTP_DATA_ERROR_TOO_BIG);
	CHECK_INT(r.size, len);
	CHECK(r.out_len <= 10000);
	free(r.out);
	r = run_cuts(msg, len + 3, SMTP_DATA_BARE_REJECT, 0, cuts, 100, sink_append);
	CHECK_INT(r.errors, 0);
	CHECK_INT(r.out_len, len);
	CHECK(r.sink_calls < 100 + len / 8192 + 2); /* staged, not per run */
	free(r.out);
	free(msg);
}

static void test_received_count(void)
{
	const char *msg = "Received: from a\r\n"
	                  "\tby b\r\n"
	                  "received :from c\r\n"
	                  "RECEIVED:\r\n"
	                  ".Received: stuffed\r\n"
	                  "X-Received: no\r\n"
	                  "ReceivedX: no\r\n"
	                  "Receive: no\r\n"
	                  "Subject: Received: no\r\n"
	                  "\r\n"
	                  "Received: in the body\r\n"
	                  ".\r\n";
	struct result r = run_all_splits(msg, strlen(msg), SMTP_DATA_BARE_REJECT, 0);

	CHECK(r.done);
	CHECK_INT(r.received, 4);
	free(r.out);
	r = run_all_splits("\r\nReceived: x\r\n.\r\n", 18, SMTP_DATA_BARE_REJECT, 0);
	CHECK_INT(r.received, 0);
	free(r.out);
}

static void test_sink_failure(void)
{
	const char *msg = "a\r\nb\r\n.\r\nQUIT\r\n";
	size_t cuts[2] = {3, 6};
	struct result r = run_cuts(msg, strlen(msg), SMTP_DATA_BARE_REJECT, 0, cuts, 2, sink_fail);

	CHECK(r.done);
	CHECK_INT(r.consumed, 9);
	CHECK_INT(r.errors, SMTP_DATA_ERROR_SINK);
	CHECK_INT(r.sink_calls, 1);
	CHECK_INT(reply_code(r.errors), 451);
}

static void test_error_precedence(void)
{
	CHECK(smtp_data_error_reply(0) == NULL);
	CHECK_INT(reply_code(SMTP_DATA_ERROR_TOO_BIG | SMTP_DATA_ERROR_BARE_LF), 550);
	CHECK_INT(reply_code(SMTP_DATA_ERROR_TOO_BIG | SMTP_DATA_ERROR_LINE_TOO_LONG), 500);
	CHECK_INT(reply_code(SMTP_DATA_ERROR_TOO_BIG | SMTP_DATA_ERROR_SINK), 552);
}

int main(void)
{
	TEST_RUN(test_simple);
	TEST_RUN(test_empty_message);
	TEST_RUN(test_dot_stuffing);
	TEST_RUN(test_pipelined_bytes_left);
	TEST_RUN(test_smuggling);
	TEST_RUN(test_normalize_output);
	TEST_RUN(test_reject_flags);
	TEST_RUN(test_line_limit);
	TEST_RUN(test_size_limit);
	TEST_RUN(test_size_limit_large);
	TEST_RUN(test_received_count);
	TEST_RUN(test_sink_failure);
	TEST_RUN(test_error_precedence);
	return test_summary();
}
