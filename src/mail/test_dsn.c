#include "mail/dsn.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/test.h"
#include "lib/xalloc.h"
#include "mail/header.h"

/* Every DSN built here is parsed back the way a receiving client would:
 * boundary from the Content-Type, parts between delimiter lines, fields
 * with header_get() (a group of delivery-status fields is a header
 * section too). */

#define T0 1795313580 /* Sun, 22 Nov 2026 02:13:00 +0000 */

static const char original[] = "Received: from client.test by mx.example.test\r\n"
                               "From: Sender <sender@example.org>\r\n"
                               "To: a@remote.test, b@slow.test\r\n"
                               "Subject: Test message\r\n"
                               "Message-ID: <orig.1@example.org>\r\n"
                               "\r\n"
                               "Hello,\r\n"
                               "this is the body.\r\n"
                               "--=_keel-dsn-0123 looks like a boundary but is not ours\r\n";

static const struct dsn_rcpt two_rcpts[] = {
    {.final_rcpt = "a@remote.test",
     .orcpt_type = "rfc822",
     .orcpt = "A@Remote.Test",
     .action = DSN_ACTION_FAILED,
     .status = "5.2.2",
     .remote_mta = "dns; mx.remote.test",
     .diagnostic = "smtp; 552 5.2.2 Mailbox full",
     .last_attempt = T0 - 60},
    {.final_rcpt = "b@slow.test",
     .action = DSN_ACTION_DELAYED,
     .status = "4.4.1",
     .remote_mta = "mx.slow.test",
     .diagnostic = "421 4.4.1 Try again later",
     .last_attempt = T0 - 30,
     .retry_until = T0 + 5 * 86400},
};

static struct dsn dsn_sample(const struct dsn_rcpt *rcpts, size_t count)
{
	struct dsn d = {
	    .reporting_mta = "mx.example.test",
	    .sender = "sender@example.org",
	    .envid = "env-123",
	    .received_from_mta = "dns; client.test",
	    .arrival = T0 - 3600,
	    .date = T0,
	    .ret = DSN_RET_DEFAULT,
	    .msg = original,
	    .msg_len = sizeof(original) - 1,
	    .rcpts = rcpts,
	    .rcpt_count = count,
	};
	return d;
}

struct part {
	const char *start; /* part header, then body */
	size_t len;
	const char *body;
	size_t body_len;
};

struct parsed {
	char boundary[128];
	struct part parts[4];
	size_t count;
};

static void part_set(struct part *p, const char *start, size_t len)
{
	size_t hdr = header_section_end(start, len);

	p->start = start;
	p->len = len;
	p->body = start + hdr;
	p->body_len = len - hdr;
}

/* Splits the body of msg at "--boundary" lines; false if malformed. */
static bool dsn_parse(const char *msg, size_t len, struct parsed *p)
{
	char ctype[512], delim[160];
	const char *b, *end = msg + len, *pos, *next;

	memset(p, 0, sizeof(*p));
	if (header_get(msg, len, "Content-Type", ctype, sizeof(ctype)) < 0 ||
	    (b = strstr(ctype, "boundary=\"")) == NULL)
		return false;
	b += strlen("boundary=\"");
	if (strchr(b, '"') == NULL || (size_t)(strchr(b, '"') - b) >= sizeof(p->boundary))
		return false;
	memcpy(p->boundary, b, (size_t)(strchr(b, '"') - b));
	snprintf(delim, sizeof(delim), "\r\n--%s", p->boundary);
	/* The preamble ends at the first delimiter. */
	pos = memmem(msg + header_section_end(msg, len) - 2,
	             (size_t)(end - msg) - header_section_end(msg, len) + 2, delim, strlen(delim));
	while (pos != NULL) {
		pos += strlen(delim);
		if (end - pos >= 4 && memcmp(pos, "--\r\n", 4) == 0)
			return pos + 4 == end;
		if (end - pos < 2 || memcmp(pos, "\r\n", 2) != 0 || p->count == 4)
			return false;
		pos += 2;
		next = memmem(pos, (size_t)(end - pos), delim, strlen(delim));
		if (next == NULL)
			return false;
		part_set(&p->parts[p->count++], pos, (size_t)(next - pos));
		pos = next;
	}
	return false;
}

static bool part_field_is(const struct part *part, const char *name, const char *value)
{
	char buf[1024];

	return header_get(part->start, part->len, name, buf, sizeof(buf)) == 0 &&
	       strcmp(buf, value) == 0;
}

/* Every line ends in CRLF and holds at most 998 octets. */
static bool lines_ok(const char *msg, size_t len)
{
	size_t line_start = 0;

	for (size_t i = 0; i < len; i++) {
		if (msg[i] == '\r' && (i + 1 == len || msg[i + 1] != '\n'))
			return false;
		if (msg[i] != '\n')
			continue;
		if (i == 0 || msg[i - 1] != '\r' || i - 1 - line_start > 998)
			return false;
		line_start = i + 1;
	}
	return line_start == len;
}

static bool has_line_starting(const char *msg, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	for (size_t i = 0; i + n <= len; i++)
		if ((i == 0 || msg[i - 1] == '\n') && strncasecmp(msg + i, prefix, n) == 0)
			return true;
	return false;
}

static bool contains(const char *p, size_t len, const char *s)
{
	return memmem(p, len, s, strlen(s)) != NULL;
}

/* Group i (0: per-message fields) of a delivery-status body. */
static bool status_group(const struct part *part, size_t i, struct part *group_r)
{
	const char *p = part->body, *end = part->body + part->body_len;

	for (;;) {
		const char *sep = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
		const char *group_end = sep != NULL ? sep + 2 : end;

		if (i-- == 0) {
			part_set(group_r, p, (size_t)(group_end - p));
			return group_end > p;
		}
		if (sep == NULL)
			return false;
		p = sep + 4;
	}
}

static bool group_field_is(const struct part *part, size_t i, const char *name, const char *value)
{
	struct part g;

	return status_group(part, i, &g) && part_field_is(&g, name, value);
}

static bool group_has(const struct part *part, size_t i, const char *name)
{
	struct part g;
	char buf[8];

	return status_group(part, i, &g) && header_get(g.start, g.len, name, buf, sizeof(buf)) == 0;
}

static int build(const struct dsn *d, char **msg_r, size_t *len_r, struct parsed *p)
{
	const char *error = NULL;

	if (dsn_build(d, msg_r, len_r, &error) < 0) {
		fprintf(stderr, "  dsn_build: %s\n", error);
		return -1;
	}
	if (strlen(*msg_r) != *len_r || !lines_ok(*msg_r, *len_r) ||
	    !dsn_parse(*msg_r, *len_r, p)) {
		fprintf(stderr, "  malformed DSN:\n%s\n", *msg_r);
		free(*msg_r);
		return -1;
	}
	return 0;
}

static void check_top_header(const char *msg, size_t len, const char *subject)
{
	char buf[256];

	CHECK_INT(header_get(msg, len, "From", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "\"Mail Delivery System\" <MAILER-DAEMON@mx.example.test>");
	CHECK_INT(header_get(msg, len, "To", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "<sender@example.org>");
	CHECK_INT(header_get(msg, len, "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, subject);
	CHECK_INT(header_get(msg, len, "Date", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Sun, 22 Nov 2026 02:13:00 +0000");
	CHECK_INT(header_message_id(msg, len, buf, sizeof(buf)), 0);
	CHECK(strlen(buf) > 20 && strcmp(buf + strlen(buf) - 17, "@mx.example.test>") == 0);
	CHECK_INT(header_get(msg, len, "Auto-Submitted", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "auto-replied");
	CHECK_INT(header_get(msg, len, "MIME-Version", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "1.0");
	CHECK_INT(header_get(msg, len, "Content-Type", buf, sizeof(buf)), 0);
	CHECK(strncmp(buf, "multipart/report; report-type=delivery-status;", 46) == 0);
}

static void check_failed_delayed_status(const struct part *st)
{
	CHECK(part_field_is(st, "Content-Type", "message/delivery-status"));
	CHECK(group_field_is(st, 0, "Reporting-MTA", "dns; mx.example.test"));
	CHECK(group_field_is(st, 0, "Original-Envelope-Id", "env-123"));
	CHECK(group_field_is(st, 0, "Received-From-MTA", "dns; client.test"));
	CHECK(group_field_is(st, 0, "Arrival-Date", "Sun, 22 Nov 2026 01:13:00 +0000"));
	CHECK(!group_has(st, 0, "Final-Recipient"));

	CHECK(group_field_is(st, 1, "Original-Recipient", "rfc822; A@Remote.Test"));
	CHECK(group_field_is(st, 1, "Final-Recipient", "rfc822; a@remote.test"));
	CHECK(group_field_is(st, 1, "Action", "failed"));
	CHECK(group_field_is(st, 1, "Status", "5.2.2"));
	CHECK(group_field_is(st, 1, "Remote-MTA", "dns; mx.remote.test"));
	CHECK(group_field_is(st, 1, "Diagnostic-Code", "smtp; 552 5.2.2 Mailbox full"));
	CHECK(group_field_is(st, 1, "Last-Attempt-Date", "Sun, 22 Nov 2026 02:12:00 +0000"));
	CHECK(!group_has(st, 1, "Will-Retry-Until"));

	CHECK(!group_has(st, 2, "Original-Recipient"));
	CHECK(group_field_is(st, 2, "Final-Recipient", "rfc822; b@slow.test"));
	CHECK(group_field_is(st, 2, "Action", "delayed"));
	CHECK(group_field_is(st, 2, "Status", "4.4.1"));
	CHECK(group_field_is(st, 2, "Remote-MTA", "dns; mx.slow.test"));
	CHECK(group_field_is(st, 2, "Diagnostic-Code", "smtp; 421 4.4.1 Try again later"));
	CHECK(group_field_is(st, 2, "Will-Retry-Until", "Fri, 27 Nov 2026 02:13:00 +0000"));
	CHECK(!group_has(st, 3, "Final-Recipient"));
}

static void test_failed_and_delayed(void)
{
	struct dsn d = dsn_sample(two_rcpts, 2);
	struct parsed p;
	char *msg;
	size_t len;

	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	check_top_header(msg, len, "Undelivered Mail Returned to Sender");
	CHECK(!contains(original, sizeof(original) - 1, p.boundary));
	CHECK(strncmp(p.boundary, "=_keel-dsn-", 11) == 0);
	CHECK_INT(p.count, 3);
	/* Part 1: the explanation. */
	CHECK(part_field_is(&p.parts[0], "Content-Type", "text/plain; charset=utf-8"));
	CHECK(part_field_is(&p.parts[0], "Content-Transfer-Encoding", "7bit"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len,
	               "<a@remote.test>: mx.remote.test said: 552 5.2.2 Mailbox full\r\n"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len,
	               "<b@slow.test>: mx.slow.test said: 421 4.4.1 Try again later\r\n"
	               "    Delivery will be tried until Fri, 27 Nov 2026 02:13:00 +0000.\r\n"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len, "original message is attached"));
	/* Part 2: the report. */
	check_failed_delayed_status(&p.parts[1]);
	/* Part 3: the original in full, as it was. */
	CHECK(part_field_is(&p.parts[2], "Content-Type", "message/rfc822"));
	CHECK_INT(p.parts[2].body_len, sizeof(original) - 1);
	CHECK(memcmp(p.parts[2].body, original, sizeof(original) - 1) == 0);
	CHECK(!has_line_starting(msg, header_section_end(msg, len), "Content-Transfer-Encoding"));
	free(msg);
}

static void test_ret_hdrs(void)
{
	struct dsn d = dsn_sample(two_rcpts, 2);
	size_t hdr_len = header_section_end(original, sizeof(original) - 1);
	struct parsed p;
	char *msg;
	size_t len;

	d.ret = DSN_RET_HDRS;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK_INT(p.count, 3);
	CHECK(part_field_is(&p.parts[2], "Content-Type", "text/rfc822-headers"));
	CHECK_INT(p.parts[2].body_len, hdr_len);
	CHECK(memcmp(p.parts[2].body, original, hdr_len) == 0);
	CHECK(!contains(msg, len, "this is the body"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len, "header of the original message"));
	free(msg);
}

static void test_delayed_default_headers(void)
{
	struct dsn d = dsn_sample(&two_rcpts[1], 1);
	struct parsed p;
	char *msg;
	size_t len;

	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	check_top_header(msg, len, "Delayed Mail (still being retried)");
	CHECK(part_field_is(&p.parts[2], "Content-Type", "text/rfc822-headers"));
	CHECK(group_field_is(&p.parts[1], 1, "Action", "delayed"));
	CHECK(!contains(msg, len, "this is the body"));
	free(msg);
	/* RET=FULL overrides the default. */
	d.ret = DSN_RET_FULL;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(part_field_is(&p.parts[2], "Content-Type", "message/rfc822"));
	CHECK(contains(msg, len, "this is the body"));
	free(msg);
}

static void test_delivered(void)
{
	static const struct dsn_rcpt rcpts[] = {
	    {.final_rcpt = "c@example.test", .action = DSN_ACTION_DELIVERED, .status = "2.0.0"},
	    {.final_rcpt = "d@example.test",
	     .action = DSN_ACTION_RELAYED,
	     .status = "2.0.0",
	     .remote_mta = "mx.d.test"},
	};
	struct dsn d = dsn_sample(rcpts, 2);
	struct parsed p;
	char *msg;
	size_t len;

	d.envid = NULL;
	d.received_from_mta = NULL;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	check_top_header(msg, len, "Successful Mail Delivery Report");
	CHECK(!group_has(&p.parts[1], 0, "Original-Envelope-Id"));
	CHECK(!group_has(&p.parts[1], 0, "Received-From-MTA"));
	CHECK(group_field_is(&p.parts[1], 1, "Action", "delivered"));
	CHECK(!group_has(&p.parts[1], 1, "Diagnostic-Code"));
	CHECK(group_field_is(&p.parts[1], 2, "Action", "relayed"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len,
	               "<c@example.test>: delivered (status 2.0.0)\r\n"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len,
	               "<d@example.test>: relayed (status 2.0.0) at mx.d.test\r\n"));
	CHECK(part_field_is(&p.parts[2], "Content-Type", "text/rfc822-headers"));
	free(msg);
}

/* A remote server's reply (or any other input) with CR/LF in it must not
 * become a header line or a MIME part of its own. */
static void test_injection(void)
{
	static const struct dsn_rcpt rcpts[] = {
	    {.final_rcpt = "a@x.test\r\nX-Rcpt: 1",
	     .orcpt_type = "rfc822\r\nX-Type: 1",
	     .orcpt = "a@x.test\nX-Orcpt: 1",
	     .action = DSN_ACTION_FAILED,
	     .status = "5.1.1",
	     .remote_mta = "mx.evil.test\r\nX-Remote: 1",
	     .diagnostic = "550 5.1.1 bad\r\nBcc: victim@evil.test\r\n\r\n--fake\r\nX-Injected: 1"},
	};
	struct dsn d = dsn_sample(rcpts, 1);
	struct parsed p;
	char *msg;
	size_t len;

	d.envid = "e\rX-Env: 1";
	d.received_from_mta = "helo\nX-Helo: 1";
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK_INT(p.count, 3);
	static const char *const bad[] = {"Bcc:",   "X-Injected", "X-Remote", "X-Env", "X-Helo",
	                                  "X-Rcpt", "X-Orcpt",    "X-Type",   "--fake"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(!has_line_starting(msg, len, bad[i]));
	CHECK_INT(header_count(msg, len, "Bcc"), 0);
	CHECK(group_field_is(&p.parts[1], 1, "Diagnostic-Code",
	                     "smtp; 550 5.1.1 bad Bcc: victim@evil.test --fake X-Injected: 1"));
	CHECK(group_field_is(&p.parts[1], 1, "Remote-MTA", "dns; mx.evil.test X-Remote: 1"));
	CHECK(group_field_is(&p.parts[1], 0, "Original-Envelope-Id", "e X-Env: 1"));
	CHECK(group_field_is(&p.parts[1], 0, "Received-From-MTA", "dns; helo X-Helo: 1"));
	CHECK(group_field_is(&p.parts[1], 1, "Final-Recipient",
	                     "utf-8; a@x.test\\x{0D}\\x{0A}X-Rcpt:\\x{20}1"));
	CHECK(group_field_is(&p.parts[1], 1, "Original-Recipient",
	                     "utf-8; a@x.test\\x{0A}X-Orcpt:\\x{20}1"));
	free(msg);
}

static void test_long_diagnostic(void)
{
	struct dsn_rcpt r = two_rcpts[0];
	struct dsn d = dsn_sample(&r, 1);
	struct parsed p;
	struct part g;
	char *diag = xmalloc(6000), value[4096], *msg;
	size_t len;

	memcpy(diag, "smtp; 550 ", 10);
	memset(diag + 10, 'x', 1500);
	strcpy(diag + 1510, " tail");
	for (int i = 0; i < 200; i++)
		strcat(diag, " word");
	r.diagnostic = diag;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		free(diag);
		return;
	}
	/* build() checked that no line passes 998 octets. */
	CHECK(status_group(&p.parts[1], 1, &g));
	CHECK_INT(header_get(g.start, g.len, "Diagnostic-Code", value, sizeof(value)), 0);
	CHECK(strncmp(value, "smtp; 550 xxxxxxxxxx", 20) == 0);
	CHECK(strstr(value, " tail word word") != NULL);
	CHECK(strlen(value) <= 2001); /* cut at 2000, plus the space of one forced break */
	CHECK(group_field_is(&p.parts[1], 1, "Status", "5.2.2"));
	free(msg);
	free(diag);
}

static void test_8bit(void)
{
	static const char body8[] = "Subject: plain\r\n\r\nGr\xc3\xbc\xc3\x9f"
	                            "e\r\n";
	static const char head8[] = "Subject: Gr\xc3\xbc\xc3\x9f"
	                            "e\r\n\r\nbody\r\n";
	struct dsn d = dsn_sample(two_rcpts, 2);
	struct parsed p;
	char *msg, buf[64];
	size_t len;

	d.msg = body8;
	d.msg_len = sizeof(body8) - 1;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(part_field_is(&p.parts[2], "Content-Type", "message/rfc822"));
	CHECK(part_field_is(&p.parts[2], "Content-Transfer-Encoding", "8bit"));
	CHECK_INT(header_get(msg, len, "Content-Transfer-Encoding", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "8bit");
	free(msg);
	/* Headers only: the 8-bit body is not returned, nothing is 8-bit. */
	d.ret = DSN_RET_HDRS;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(!has_line_starting(msg, len, "Content-Transfer-Encoding: 8bit"));
	free(msg);
	/* An internationalized header (RFC 6532): message/global-headers. */
	d.msg = head8;
	d.msg_len = sizeof(head8) - 1;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(part_field_is(&p.parts[2], "Content-Type", "message/global-headers"));
	CHECK(part_field_is(&p.parts[2], "Content-Transfer-Encoding", "8bit"));
	free(msg);
	d.ret = DSN_RET_FULL;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(part_field_is(&p.parts[2], "Content-Type", "message/global"));
	free(msg);
}

static void test_utf8_address(void)
{
	static const struct dsn_rcpt rcpts[] = {
	    {.final_rcpt = "j\xc3\xb6rg+x@b\xc3\xbc"
	                   "cher.test",
	     .orcpt_type = "utf-8",
	     .orcpt = "ascii+tag@x.test",
	     .action = DSN_ACTION_FAILED,
	     .status = "5.1.1",
	     .diagnostic = "550 5.1.1 unknown \xff user"},
	};
	struct dsn d = dsn_sample(rcpts, 1);
	struct parsed p;
	char *msg;
	size_t len;

	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(group_field_is(&p.parts[1], 1, "Final-Recipient",
	                     "utf-8; j\\x{F6}rg\\x{2B}x@b\\x{FC}cher.test"));
	CHECK(
	    group_field_is(&p.parts[1], 1, "Original-Recipient", "utf-8; ascii\\x{2B}tag@x.test"));
	CHECK(group_field_is(&p.parts[1], 1, "Diagnostic-Code", "smtp; 550 5.1.1 unknown ? user"));
	for (size_t i = 0; i < p.parts[1].len; i++)
		if ((unsigned char)p.parts[1].start[i] >= 0x80) {
			CHECK(!"8-bit octet in the delivery-status part");
			break;
		}
	CHECK(part_field_is(&p.parts[0], "Content-Transfer-Encoding", "8bit"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len,
	               "<j\xc3\xb6rg+x@b\xc3\xbc"
	               "cher.test>: 550 5.1.1 unknown ? user"));
	free(msg);
}

static void test_bare_line_ends(void)
{
	static const char lf[] = "Subject: lf\nFrom: a@b.test\n\nbody\nline\rcr";
	static const char want[] = "Subject: lf\r\nFrom: a@b.test\r\n\r\nbody\r\nline\r\ncr\r\n";
	struct dsn d = dsn_sample(two_rcpts, 2);
	struct parsed p;
	char *msg;
	size_t len;

	d.msg = lf;
	d.msg_len = sizeof(lf) - 1;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK_INT(p.parts[2].body_len, sizeof(want) - 1);
	CHECK(memcmp(p.parts[2].body, want, sizeof(want) - 1) == 0);
	free(msg);
}

static void test_full_max_and_no_original(void)
{
	struct dsn d = dsn_sample(two_rcpts, 2);
	struct parsed p;
	char *msg;
	size_t len;

	d.full_max = 100;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK(part_field_is(&p.parts[2], "Content-Type", "text/rfc822-headers"));
	CHECK(contains(p.parts[0].body, p.parts[0].body_len, "too large"));
	free(msg);
	d.msg = NULL;
	d.msg_len = 0;
	if (build(&d, &msg, &len, &p) < 0) {
		CHECK(!"build");
		return;
	}
	CHECK_INT(p.count, 2);
	CHECK(!contains(msg, len, "attached"));
	free(msg);
}

static void test_errors(void)
{
	struct dsn_rcpt r = two_rcpts[0];
	struct dsn d;
	const char *error;
	char *msg = NULL;
	size_t len;

	static const char *const senders[] = {
	    NULL, "", "<>", "not an address", "a@b.test\r\nBcc: x@y.test", "<a@b.test>"};
	for (size_t i = 0; i < sizeof(senders) / sizeof(senders[0]); i++) {
		d = dsn_sample(&r, 1);
		d.sender = senders[i];
		CHECK_INT(dsn_build(&d, &msg, &len, &error), -1);
	}
	CHECK_STR(error, "invalid sender address");
	d = dsn_sample(&r, 1);
	d.sender = "<>";
	CHECK_INT(dsn_build(&d, &msg, &len, &error), -1);
	CHECK_STR(error, "no DSN to the null sender");
	d = dsn_sample(&r, 1);
	d.reporting_mta = "mx example.test";
	CHECK_INT(dsn_build(&d, &msg, &len, &error), -1);
	d = dsn_sample(&r, 0);
	CHECK_INT(dsn_build(&d, &msg, &len, &error), -1);
	static const char *const statuses[] = {NULL,     "",         "5.2",  "6.0.0",
	                                       "5.2.2x", "5.1234.1", "5..1", "x.1.1"};
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		r.status = statuses[i];
		d = dsn_sample(&r, 1);
		CHECK_INT(dsn_build(&d, &msg, &len, &error), -1);
		CHECK_STR(error, "invalid recipient status code");
	}
	r = two_rcpts[0];
	r.final_rcpt = NULL;
	d = dsn_sample(&r, 1);
	CHECK_INT(dsn_build(&d, &msg, &len, &error), -1);
	CHECK(msg == NULL);
}

static void test_should_send(void)
{
	const unsigned fd = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;

	CHECK(!dsn_should_send("", 0, DSN_ACTION_FAILED));
	CHECK(!dsn_should_send("<>", DSN_NOTIFY_FAILURE, DSN_ACTION_FAILED));
	CHECK(!dsn_should_send(NULL, 0, DSN_ACTION_FAILED));
	/* NOTIFY absent: failures and delays. */
	CHECK(dsn_should_send("s@x.test", 0, DSN_ACTION_FAILED));
	CHECK(dsn_should_send("s@x.test", 0, DSN_ACTION_DELAYED));
	CHECK(!dsn_should_send("s@x.test", 0, DSN_ACTION_DELIVERED));
	CHECK(!dsn_should_send("s@x.test", 0, DSN_ACTION_RELAYED));
	/* NEVER wins. */
	CHECK(!dsn_should_send("s@x.test", DSN_NOTIFY_NEVER, DSN_ACTION_FAILED));
	CHECK(!dsn_should_send("s@x.test", DSN_NOTIFY_NEVER, DSN_ACTION_DELAYED));
	CHECK(
	    !dsn_should_send("s@x.test", DSN_NOTIFY_NEVER | DSN_NOTIFY_FAILURE, DSN_ACTION_FAILED));
	/* As listed. */
	CHECK(dsn_should_send("s@x.test", DSN_NOTIFY_SUCCESS, DSN_ACTION_DELIVERED));
	CHECK(dsn_should_send("s@x.test", DSN_NOTIFY_SUCCESS, DSN_ACTION_RELAYED));
	CHECK(dsn_should_send("s@x.test", DSN_NOTIFY_SUCCESS, DSN_ACTION_EXPANDED));
	CHECK(!dsn_should_send("s@x.test", DSN_NOTIFY_SUCCESS, DSN_ACTION_FAILED));
	CHECK(!dsn_should_send("s@x.test", DSN_NOTIFY_SUCCESS, DSN_ACTION_DELAYED));
	CHECK(dsn_should_send("s@x.test", DSN_NOTIFY_FAILURE, DSN_ACTION_FAILED));
	CHECK(!dsn_should_send("s@x.test", DSN_NOTIFY_FAILURE, DSN_ACTION_DELAYED));
	CHECK(dsn_should_send("s@x.test", fd, DSN_ACTION_DELAYED));
	CHECK(!dsn_should_send("s@x.test", fd, DSN_ACTION_DELIVERED));
	CHECK_INT(DSN_NOTIFY_NEVER, 1);
	CHECK_INT(DSN_NOTIFY_SUCCESS, 2);
	CHECK_INT(DSN_NOTIFY_FAILURE, 4);
	CHECK_INT(DSN_NOTIFY_DELAY, 8);
}

/* A parser nobody here wrote: Python's email package must see the same
 * structure, with no defects. */
static const char python_check[] =
    "import sys, email, email.policy\n"
    "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n"
    "def ok(c, what):\n"
    "    if not c: sys.exit('python check failed: ' + what)\n"
    "ok(m.get_content_type() == 'multipart/report', 'type')\n"
    "ok(m.get_param('report-type') == 'delivery-status', 'report-type')\n"
    "ok(m['Auto-Submitted'] == 'auto-replied', 'auto-submitted')\n"
    "for part in m.walk():\n"
    "    ok(not part.defects, 'defects %r' % part.defects)\n"
    "parts = m.get_payload()\n"
    "ok(len(parts) == 3, 'three parts')\n"
    "ok(parts[0].get_content_type() == 'text/plain', 'text')\n"
    "ok('Mailbox full' in parts[0].get_content(), 'explanation')\n"
    "ok(parts[1].get_content_type() == 'message/delivery-status', 'status')\n"
    "ds = parts[1].get_payload()\n"
    "ok(len(ds) == 3, 'groups %d' % len(ds))\n"
    "ok(ds[0]['Reporting-MTA'] == 'dns; mx.example.test', 'reporting')\n"
    "ok(ds[1]['Action'] == 'failed' and ds[1]['Status'] == '5.2.2', 'rcpt 1')\n"
    "ok(ds[2]['Action'] == 'delayed' and ds[2]['Status'] == '4.4.1', 'rcpt 2')\n"
    "ok(parts[2].get_content_type() == 'message/rfc822', 'original type')\n"
    "ok(parts[2].get_payload()[0]['Subject'] == 'Test message', 'original subject')\n";

static void test_python(void)
{
	struct dsn d = dsn_sample(two_rcpts, 2);
	const char *error;
	char *dir, *script, *file, *cmd, *msg;
	size_t len;
	FILE *f;

	if (access("/usr/bin/python3", X_OK) != 0) {
		printf("skip test_python: no /usr/bin/python3\n");
		return;
	}
	if (dsn_build(&d, &msg, &len, &error) < 0) {
		CHECK(!"build");
		return;
	}
	dir = test_tmpdir();
	script = xasprintf("%s/check.py", dir);
	file = xasprintf("%s/dsn.eml", dir);
	if ((f = fopen(script, "w")) != NULL) {
		fputs(python_check, f);
		fclose(f);
	}
	if ((f = fopen(file, "wb")) != NULL) {
		fwrite(msg, 1, len, f);
		fclose(f);
	}
	cmd = xasprintf("/usr/bin/python3 '%s' '%s'", script, file);
	CHECK_INT(system(cmd), 0);
	test_rmtree(dir);
	free(cmd);
	free(file);
	free(script);
	free(dir);
	free(msg);
}

int main(void)
{
	/* Dates in the checks are in UTC. */
	setenv("TZ", "UTC0", 1);
	tzset();
	TEST_RUN(test_failed_and_delayed);
	TEST_RUN(test_ret_hdrs);
	TEST_RUN(test_delayed_default_headers);
	TEST_RUN(test_delivered);
	TEST_RUN(test_injection);
	TEST_RUN(test_long_diagnostic);
	TEST_RUN(test_8bit);
	TEST_RUN(test_utf8_address);
	TEST_RUN(test_bare_line_ends);
	TEST_RUN(test_full_max_and_no_original);
	TEST_RUN(test_errors);
	TEST_RUN(test_should_send);
	TEST_RUN(test_python);
	return test_summary();
}
