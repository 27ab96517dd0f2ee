/* proto/smtp_reply: replies and EHLO keywords as an SMTP client reads them. */
#include <string.h>

#include "lib/test.h"
#include "proto/smtp_reply.h"

/* Feeds lines separated by '\n'; returns the result of the last one. */
static int feed(struct smtp_reply_parser *p, const char *text, const char **err)
{
	int r = 0;

	while (*text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t len = nl != NULL ? (size_t)(nl - text) : strlen(text);
		r = smtp_reply_parser_line(p, text, len, err);
		if (r != 0)
			return r;
		text += len + (nl != NULL ? 1 : 0);
	}
	return r;
}

static void test_single_line(void)
{
	struct smtp_reply_parser p;
	const char *err = NULL;

	smtp_reply_parser_init(&p);
	CHECK_INT(feed(&p, "250 2.0.0 Ok: queued as 4XyZ", &err), 1);
	CHECK_INT(p.reply.code, 250);
	CHECK_STR(p.reply.enhanced, "2.0.0");
	CHECK_STR(p.reply.text, "2.0.0 Ok: queued as 4XyZ");
	CHECK_INT(p.reply.n_lines, 1);
	CHECK_INT(feed(&p, "220", &err), 1);
	CHECK_INT(p.reply.code, 220);
	CHECK_STR(p.reply.text, "");
	CHECK_STR(p.reply.enhanced, "");
}

static void test_multi_line(void)
{
	struct smtp_reply_parser p;
	const char *err = NULL;
	char buf[256];

	smtp_reply_parser_init(&p);
	CHECK_INT(smtp_reply_parser_line(&p, "550-5.1.1 no such", 17, &err), 0);
	CHECK_INT(smtp_reply_parser_line(&p, "550 5.1.1 user here", 19, &err), 1);
	CHECK_INT(p.reply.code, 550);
	CHECK_STR(p.reply.enhanced, "5.1.1");
	CHECK_STR(p.reply.text, "5.1.1 no such\n5.1.1 user here");
	smtp_reply_format(&p.reply, buf, sizeof(buf));
	CHECK_STR(buf, "550 5.1.1 no such 5.1.1 user here");
	/* The next reply starts afresh. */
	CHECK_INT(feed(&p, "451 try later", &err), 1);
	CHECK_INT(p.reply.n_lines, 1);
	CHECK_STR(p.reply.enhanced, "");
}

static void test_enhanced_class_must_match(void)
{
	struct smtp_reply_parser p;
	const char *err = NULL;

	smtp_reply_parser_init(&p);
	CHECK_INT(feed(&p, "550 2.0.0 odd", &err), 1);
	CHECK_STR(p.reply.enhanced, "");
	CHECK_INT(feed(&p, "421 4.7.0", &err), 1);
	CHECK_STR(p.reply.enhanced, "4.7.0");
	CHECK_INT(feed(&p, "550 5.1.1234 too many digits", &err), 1);
	CHECK_STR(p.reply.enhanced, "");
	CHECK_INT(feed(&p, "550 5.1.1x", &err), 1);
	CHECK_STR(p.reply.enhanced, "");
}

static void test_bad_lines(void)
{
	struct smtp_reply_parser p;
	const char *err = NULL;
	char big[SMTP_REPLY_LINE_MAX + 10];

	smtp_reply_parser_init(&p);
	CHECK_INT(feed(&p, "hello", &err), -1);
	CHECK(err != NULL);
	CHECK_INT(feed(&p, "25", &err), -1);
	CHECK_INT(feed(&p, "250x", &err), -1);
	CHECK_INT(feed(&p, "199 too low", &err), -1);
	CHECK_INT(feed(&p, "600 too high", &err), -1);
	CHECK_INT(feed(&p, "250-a\n251 b", &err), -1);
	/* After an error the next reply parses. */
	CHECK_INT(feed(&p, "250 fine", &err), 1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "250 ", 4);
	CHECK_INT(smtp_reply_parser_line(&p, big, sizeof(big), &err), -1);
	/* Control octets do not survive into the text. */
	CHECK_INT(smtp_reply_parser_line(&p, "250 a\rb\x01" "c", 9, &err), 1);
	CHECK_STR(p.reply.text, "a b c");
}

static void test_line_count_limit(void)
{
	struct smtp_reply_parser p;
	const char *err = NULL;
	int r = 0;

	smtp_reply_parser_init(&p);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		CHECK_INT(smtp_reply_parser_line(&p, "250-x", 5, &err), 0);
	r = smtp_reply_parser_line(&p, "250 last", 8, &err);
	CHECK_INT(r, -1);
}

static void test_text_cut(void)
{
	struct smtp_reply_parser p;
	const char *err = NULL;
	char line[1000];

	smtp_reply_parser_init(&p);
	memset(line, 'b', sizeof(line));
	memcpy(line, "250-", 4);
	for (int i = 0; i < 5; i++)
		CHECK_INT(smtp_reply_parser_line(&p, line, sizeof(line), &err), 0);
	line[3] = ' ';
	CHECK_INT(smtp_reply_parser_line(&p, line, sizeof(line), &err), 1);
	CHECK_INT(strlen(p.reply.text), SMTP_REPLY_TEXT_MAX - 1);
	CHECK_INT(p.reply.n_lines, 6);
}

static void test_ehlo(void)
{
	struct smtp_reply_parser p;
	struct smtp_ehlo e;
	const char *err = NULL;

	smtp_reply_parser_init(&p);
	CHECK_INT(feed(&p, "250-mx.example.test greets you SIZE PIPELINING\n"
			   "250-SIZE 10240000\n250-pipelining\n250-8BITMIME\n250-SMTPUTF8\n"
			   "250-STARTTLS\n250-AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1\n"
			   "250-AUTH=LOGIN\n250-DSN\n250-ENHANCEDSTATUSCODES\n250-BINARYMIME\n"
			   "250-X-UNKNOWN 1\n250 CHUNKING",
		       &err),
		  1);
	smtp_ehlo_parse(&p.reply, &e);
	CHECK(e.size);
	CHECK_INT(e.size_max, 10240000);
	CHECK(e.pipelining && e.eightbitmime && e.smtputf8 && e.starttls && e.dsn);
	CHECK(e.chunking && e.binarymime && e.enhancedstatuscodes);
	CHECK_INT(e.auth, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_OTHER);

	/* The greeting line is not a keyword; SIZE without a number: no limit. */
	CHECK_INT(feed(&p, "250-STARTTLS\n250 SIZE", &err), 1);
	smtp_ehlo_parse(&p.reply, &e);
	CHECK(!e.starttls);
	CHECK(e.size);
	CHECK_INT(e.size_max, 0);
	CHECK_INT(feed(&p, "250 only.a.greeting", &err), 1);
	smtp_ehlo_parse(&p.reply, &e);
	CHECK(!e.size && !e.pipelining && e.auth == 0);
	/* A refusal offers nothing. */
	CHECK_INT(feed(&p, "502-x\n502 PIPELINING", &err), 1);
	smtp_ehlo_parse(&p.reply, &e);
	CHECK(!e.pipelining);
	/* An absurd SIZE counts as no limit. */
	CHECK_INT(feed(&p, "250-x\n250 SIZE 99999999999999999999999", &err), 1);
	smtp_ehlo_parse(&p.reply, &e);
	CHECK(e.size);
	CHECK_INT(e.size_max, 0);
}

int main(void)
{
	TEST_RUN(test_single_line);
	TEST_RUN(test_multi_line);
	TEST_RUN(test_enhanced_class_must_match);
	TEST_RUN(test_bad_lines);
	TEST_RUN(test_line_count_limit);
	TEST_RUN(test_text_cut);
	TEST_RUN(test_ehlo);
	return test_summary();
}
