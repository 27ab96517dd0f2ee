#include "proto/smtp_parser.h"

#include "lib/test.h"

static struct smtp_command cmd;
static const char *error;

static int parse_flags(const char *line, unsigned flags)
{
	error = NULL;
	return smtp_parser_parse(line, strlen(line), flags, &cmd, &error);
}

static int parse(const char *line)
{
	return parse_flags(line, 0);
}

/* line fails with the given class and, when text is not NULL, detail. */
static void check_fail_flags(const char *line, unsigned flags, enum smtp_parse_error expected,
                             const char *text)
{
	int ret = parse_flags(line, flags);

	if (ret != -1 || cmd.error != expected)
		fprintf(stderr, "  line: %s (error %d: %s)\n", line, cmd.error,
		        error != NULL ? error : "none");
	CHECK_INT(ret, -1);
	CHECK_INT(cmd.error, expected);
	CHECK(error != NULL);
	if (text != NULL && error != NULL)
		CHECK_STR(error, text);
}

static void check_fail(const char *line, enum smtp_parse_error expected, const char *text)
{
	check_fail_flags(line, 0, expected, text);
}

static void check_ok(const char *line, enum smtp_verb verb)
{
	int ret = parse(line);

	if (ret != 0)
		fprintf(stderr, "  line: %s (%s)\n", line, error);
	CHECK_INT(ret, 0);
	CHECK_INT(cmd.verb, verb);
	CHECK_INT(cmd.error, SMTP_PARSE_OK);
}

static void test_verbs_without_arguments(void)
{
	check_ok("DATA", SMTP_VERB_DATA);
	check_ok("data", SMTP_VERB_DATA);
	check_ok("RSET", SMTP_VERB_RSET);
	check_ok("QuIt", SMTP_VERB_QUIT);
	check_ok("STARTTLS", SMTP_VERB_STARTTLS);
	check_ok("DATA  \t", SMTP_VERB_DATA); /* trailing blanks tolerated */
	check_fail("DATA x", SMTP_PARSE_ERROR_ARGUMENTS, "no arguments allowed");
	check_fail("RSET now", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("QUIT bye", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("STARTTLS x", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	CHECK_INT(cmd.verb, SMTP_VERB_STARTTLS); /* known even on error */
}

static void test_unknown_and_empty(void)
{
	check_fail("FOO", SMTP_PARSE_ERROR_UNKNOWN_COMMAND, "command not recognised");
	CHECK_INT(cmd.verb, SMTP_VERB_UNKNOWN);
	check_fail("DATAX", SMTP_PARSE_ERROR_UNKNOWN_COMMAND, NULL);
	check_fail("MAILFROM:<a@b.test>", SMTP_PARSE_ERROR_UNKNOWN_COMMAND, NULL);
	check_fail("MAIL\tFROM:<a@b.test>", SMTP_PARSE_ERROR_UNKNOWN_COMMAND, NULL);
	check_fail(" DATA", SMTP_PARSE_ERROR_UNKNOWN_COMMAND, NULL);
	check_fail("", SMTP_PARSE_ERROR_SYNTAX, "empty command line");
	check_fail("   ", SMTP_PARSE_ERROR_SYNTAX, NULL);
}

static void test_bare_cr_lf_nul(void)
{
	static const char nul_line[] = "NOOP a\0b";
	static const char nul_mail[] = "MAIL FROM:<a@b.test>\0 SIZE=1";

	check_fail("NOOP a\rb", SMTP_PARSE_ERROR_SYNTAX, "NUL, CR or LF inside a command line");
	check_fail("MAIL FROM:<a@b.test>\r", SMTP_PARSE_ERROR_SYNTAX, NULL);
	check_fail("RSET\nMAIL FROM:<a@b.test>", SMTP_PARSE_ERROR_SYNTAX, NULL);
	check_fail("DATA\r", SMTP_PARSE_ERROR_SYNTAX, NULL);
	CHECK_INT(smtp_parser_parse(nul_line, sizeof(nul_line) - 1, 0, &cmd, &error), -1);
	CHECK_INT(cmd.error, SMTP_PARSE_ERROR_SYNTAX);
	CHECK_INT(smtp_parser_parse(nul_mail, sizeof(nul_mail) - 1, 0, &cmd, &error), -1);
	CHECK_INT(cmd.error, SMTP_PARSE_ERROR_SYNTAX);
	/* The length given is what counts, not a NUL. */
	CHECK_INT(smtp_parser_parse("QUITXYZ", 4, 0, &cmd, &error), 0);
	CHECK_INT(cmd.verb, SMTP_VERB_QUIT);
}

static void test_ehlo(void)
{
	check_ok("EHLO mx.example.test", SMTP_VERB_EHLO);
	CHECK_STR(cmd.domain, "mx.example.test");
	check_ok("ehlo Mail.Example.Test ", SMTP_VERB_EHLO);
	CHECK_STR(cmd.domain, "Mail.Example.Test");
	check_ok("EHLO [192.0.2.1]", SMTP_VERB_EHLO);
	CHECK_STR(cmd.domain, "[192.0.2.1]");
	check_ok("EHLO [IPv6:2001:db8::1]", SMTP_VERB_EHLO);
	check_ok("EHLO localhost", SMTP_VERB_EHLO);
	check_ok("EHLO b\xc3\xbc"
	         "cher.example",
	         SMTP_VERB_EHLO);
	check_fail("EHLO", SMTP_PARSE_ERROR_ARGUMENTS, "domain required");
	check_fail("EHLO bad_name.test", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	CHECK_STR(cmd.domain, "");
	check_fail("EHLO -bad.test", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("EHLO a.test b.test", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("EHLO [300.1.1.1]", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("EHLO example.test.", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
}

static void test_helo(void)
{
	char long_name[300];

	check_ok("HELO mx.example.test", SMTP_VERB_HELO);
	CHECK_STR(cmd.domain, "mx.example.test");
	check_ok("HELO bad_name", SMTP_VERB_HELO); /* loose */
	CHECK_STR(cmd.domain, "bad_name");
	check_ok("helo [1.2.3.4]", SMTP_VERB_HELO);
	check_fail("HELO", SMTP_PARSE_ERROR_ARGUMENTS, "domain required");
	check_fail("HELO a b", SMTP_PARSE_ERROR_ARGUMENTS, "HELO takes one word as domain");
	check_fail("HELO a\x01", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	memset(long_name, 'a', sizeof(long_name));
	memcpy(long_name, "HELO ", 5);
	long_name[sizeof(long_name) - 1] = '\0';
	check_fail(long_name, SMTP_PARSE_ERROR_ARGUMENTS, "domain too long");
}

static void test_mail_basic(void)
{
	check_ok("MAIL FROM:<user@example.test>", SMTP_VERB_MAIL);
	CHECK_STR(cmd.path.addr.localpart, "user");
	CHECK_STR(cmd.path.addr.domain, "example.test");
	CHECK(!cmd.path.null);
	CHECK(!cmd.mail.size_given);
	CHECK_INT(cmd.mail.body, SMTP_BODY_NONE);
	check_ok("mail from:<User@EXAMPLE.test>", SMTP_VERB_MAIL);
	CHECK_STR(cmd.path.addr.localpart, "User");
	CHECK_STR(cmd.path.addr.domain, "example.test");
	check_ok("MAIL From:<>", SMTP_VERB_MAIL);
	CHECK(cmd.path.null);
	check_ok("MAIL FROM: <a@b.test>", SMTP_VERB_MAIL); /* one space tolerated */
	check_ok("MAIL  FROM:<a@b.test>  SIZE=10  ", SMTP_VERB_MAIL);
	CHECK_INT(cmd.mail.size, 10);
	check_ok("MAIL FROM:<@relay.test,@other.test:a@b.test>", SMTP_VERB_MAIL);
	CHECK_STR(cmd.path.addr.localpart, "a");
	CHECK_STR(cmd.path.addr.domain, "b.test");
	CHECK_STR(cmd.path.route, "@relay.test,@other.test");
}

static void test_mail_errors(void)
{
	check_fail("MAIL", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("MAIL TO:<a@b.test>", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("MAIL FROM", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("MAIL FROM:", SMTP_PARSE_ERROR_ARGUMENTS, "missing path");
	check_fail("MAIL FROM:  <a@b.test>", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("MAIL FROM:<a@b.test>x", SMTP_PARSE_ERROR_ARGUMENTS,
	           "unexpected text after the path");
	check_fail("MAIL FROM:<a@b.test>SIZE=1", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("MAIL FROM:a@b.test", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("MAIL FROM:<a@b.test", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("MAIL FROM:<a@@b.test>", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("MAIL FROM:<a.@b.test>", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("MAIL FROM:<postmaster>", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("MAIL FROM:<a b@c.test>", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("MAIL FROM:<\"unterminated@b.test>", SMTP_PARSE_ERROR_SENDER, NULL);
	CHECK_INT(smtp_parser_error_reply(SMTP_PARSE_ERROR_SENDER)->code, 553);
}

static void test_rcpt(void)
{
	check_ok("RCPT TO:<user@example.test>", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.localpart, "user");
	CHECK_INT(cmd.rcpt.notify, 0);
	CHECK_STR(cmd.rcpt.orcpt_addr, "");
	check_ok("rcpt to: <user@example.test>", SMTP_VERB_RCPT);
	check_ok("RCPT TO:<postmaster>", SMTP_VERB_RCPT);
	CHECK(cmd.path.postmaster);
	check_ok("RCPT TO:<PostMaster>", SMTP_VERB_RCPT);
	CHECK(cmd.path.postmaster);
	check_ok("RCPT TO:<@hop.test:u@example.test>", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.domain, "example.test");
	check_ok("RCPT TO:<\"a> b\"@example.test> NOTIFY=NEVER", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.localpart, "a> b");
	CHECK(cmd.path.addr.quoted);
	CHECK_INT(cmd.rcpt.notify, SMTP_NOTIFY_NEVER);
	check_fail("RCPT TO:<>", SMTP_PARSE_ERROR_RECIPIENT, NULL);
	check_fail("RCPT TO:<user>", SMTP_PARSE_ERROR_RECIPIENT, NULL);
	check_fail("RCPT FROM:<a@b.test>", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("RCPT TO:", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("RCPT", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	CHECK_INT(smtp_parser_error_reply(SMTP_PARSE_ERROR_RECIPIENT)->code, 553);
	CHECK_STR(smtp_parser_error_reply(SMTP_PARSE_ERROR_RECIPIENT)->enhanced, "5.1.3");
}

/* Syntax is all the parser checks: relay tricks are plain local parts, and
 * the directory must not route them. */
static void test_open_relay_local_parts(void)
{
	check_ok("RCPT TO:<u%remote.test@local.test>", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.localpart, "u%remote.test");
	CHECK_STR(cmd.path.addr.domain, "local.test");
	check_ok("RCPT TO:<remote.test!u@local.test>", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.localpart, "remote.test!u");
	CHECK_STR(cmd.path.addr.domain, "local.test");
	check_ok("RCPT TO:<\"u@remote.test\"@local.test>", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.localpart, "u@remote.test");
	CHECK_STR(cmd.path.addr.domain, "local.test");
	CHECK(cmd.path.addr.quoted);
	check_ok("RCPT TO:<@remote.test:u@local.test>", SMTP_VERB_RCPT);
	CHECK_STR(cmd.path.addr.localpart, "u");
	CHECK_STR(cmd.path.addr.domain, "local.test");
	check_fail("RCPT TO:<u@remote.test@local.test>", SMTP_PARSE_ERROR_RECIPIENT, NULL);
}

static void test_size(void)
{
	check_ok("MAIL FROM:<a@b.test> SIZE=12345", SMTP_VERB_MAIL);
	CHECK(cmd.mail.size_given);
	CHECK_INT(cmd.mail.size, 12345);
	check_ok("MAIL FROM:<a@b.test> size=0", SMTP_VERB_MAIL);
	CHECK(cmd.mail.size_given);
	CHECK_INT(cmd.mail.size, 0);
	check_ok("MAIL FROM:<a@b.test> SIZE=18446744073709551615", SMTP_VERB_MAIL);
	CHECK(cmd.mail.size == UINT64_MAX);
	check_fail("MAIL FROM:<a@b.test> SIZE=18446744073709551616", SMTP_PARSE_ERROR_SIZE,
	           "SIZE too large");
	check_fail("MAIL FROM:<a@b.test> SIZE=99999999999999999999", SMTP_PARSE_ERROR_SIZE,
	           "SIZE too large");
	check_fail("MAIL FROM:<a@b.test> SIZE=1k", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid SIZE value");
	check_fail("MAIL FROM:<a@b.test> SIZE=-1", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("MAIL FROM:<a@b.test> SIZE", SMTP_PARSE_ERROR_PARAMETER,
	           "SIZE requires a value");
	check_fail("MAIL FROM:<a@b.test> SIZE=", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid parameter syntax");
	CHECK_INT(smtp_parser_error_reply(SMTP_PARSE_ERROR_SIZE)->code, 552);
}

static void test_body_ret_smtputf8(void)
{
	check_ok("MAIL FROM:<a@b.test> BODY=8BITMIME", SMTP_VERB_MAIL);
	CHECK_INT(cmd.mail.body, SMTP_BODY_8BITMIME);
	check_ok("MAIL FROM:<a@b.test> body=7bit", SMTP_VERB_MAIL);
	CHECK_INT(cmd.mail.body, SMTP_BODY_7BIT);
	check_ok("MAIL FROM:<a@b.test> BODY=BinaryMIME", SMTP_VERB_MAIL);
	CHECK_INT(cmd.mail.body, SMTP_BODY_BINARYMIME);
	check_fail("MAIL FROM:<a@b.test> BODY=8BIT", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid BODY value");
	check_ok("MAIL FROM:<a@b.test> RET=HDRS", SMTP_VERB_MAIL);
	CHECK_INT(cmd.mail.ret, SMTP_RET_HDRS);
	check_ok("MAIL FROM:<a@b.test> ret=full", SMTP_VERB_MAIL);
	CHECK_INT(cmd.mail.ret, SMTP_RET_FULL);
	check_fail("MAIL FROM:<a@b.test> RET=ALL", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_ok("MAIL FROM:<a@b.test> SMTPUTF8", SMTP_VERB_MAIL);
	CHECK(cmd.mail.smtputf8);
	check_fail("MAIL FROM:<a@b.test> SMTPUTF8=yes", SMTP_PARSE_ERROR_PARAMETER,
	           "SMTPUTF8 takes no value");
}

static void test_utf8_paths(void)
{
	/* SMTPUTF8 after the path still governs it. */
	check_ok("MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc"
	         "cher.test> SMTPUTF8 BODY=8BITMIME",
	         SMTP_VERB_MAIL);
	CHECK_STR(cmd.path.addr.localpart, "j\xc3\xb6rg");
	check_fail("MAIL FROM:<j\xc3\xb6rg@b.test>", SMTP_PARSE_ERROR_NON_ASCII,
	           "non-ASCII address needs SMTPUTF8");
	CHECK_STR(smtp_parser_error_reply(SMTP_PARSE_ERROR_NON_ASCII)->enhanced, "5.6.7");
	check_fail("MAIL FROM:<j\xff@b.test> SMTPUTF8", SMTP_PARSE_ERROR_SENDER, NULL);
	check_fail("RCPT TO:<j\xc3\xb6rg@b.test>", SMTP_PARSE_ERROR_NON_ASCII, NULL);
	CHECK_INT(parse_flags("RCPT TO:<j\xc3\xb6rg@b.test>", SMTP_PARSER_FLAG_UTF8), 0);
	CHECK_STR(cmd.path.addr.localpart, "j\xc3\xb6rg");
	check_fail("MAIL FROM:<a@b.test> BODY=8BIT\xc3\xb6", SMTP_PARSE_ERROR_PARAMETER, NULL);
}

static void test_envid(void)
{
	char line[512];

	check_ok("MAIL FROM:<a@b.test> ENVID=QQ314159", SMTP_VERB_MAIL);
	CHECK_STR(cmd.mail.envid, "QQ314159");
	check_ok("MAIL FROM:<a@b.test> ENVID=a+2Bb+3Dc+20d", SMTP_VERB_MAIL);
	CHECK_STR(cmd.mail.envid, "a+b=c d");
	check_ok("MAIL FROM:<a@b.test> ENVID=x+2by", SMTP_VERB_MAIL); /* lower-case hex */
	CHECK_STR(cmd.mail.envid, "x+y");
	check_fail("MAIL FROM:<a@b.test> ENVID=a+2", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid xtext escape");
	check_fail("MAIL FROM:<a@b.test> ENVID=a+ZZ", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("MAIL FROM:<a@b.test> ENVID=a+0Ab", SMTP_PARSE_ERROR_PARAMETER,
	           "xtext decodes to a non-printable character");
	check_fail("MAIL FROM:<a@b.test> ENVID=a+00", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("MAIL FROM:<a@b.test> ENVID=a+C3+B6", SMTP_PARSE_ERROR_PARAMETER, NULL);

	/* 100 octets decoded is the limit, however long the xtext. */
	strcpy(line, "MAIL FROM:<a@b.test> ENVID=");
	for (int i = 0; i < 100; i++)
		strcat(line, "+41");
	check_ok(line, SMTP_VERB_MAIL);
	CHECK_INT(strlen(cmd.mail.envid), 100);
	CHECK_INT(cmd.mail.envid[99], 'A');
	strcat(line, "B");
	check_fail(line, SMTP_PARSE_ERROR_PARAMETER, "parameter value too long");
}

static void test_auth_param(void)
{
	check_ok("MAIL FROM:<a@b.test> AUTH=<>", SMTP_VERB_MAIL);
	CHECK(cmd.mail.auth_given);
	CHECK(cmd.mail.auth_null);
	check_ok("MAIL FROM:<a@b.test> AUTH=e+3Dmc2@example.test", SMTP_VERB_MAIL);
	CHECK(cmd.mail.auth_given);
	CHECK(!cmd.mail.auth_null);
	CHECK_STR(cmd.mail.auth_addr.localpart, "e=mc2");
	CHECK_STR(cmd.mail.auth_addr.domain, "example.test");
	check_ok("MAIL FROM:<a@b.test> AUTH=j+C3+B6rg@b.test SMTPUTF8", SMTP_VERB_MAIL);
	CHECK_STR(cmd.mail.auth_addr.localpart, "j\xc3\xb6rg");
	check_fail("MAIL FROM:<a@b.test> AUTH=j+C3+B6rg@b.test", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid AUTH mailbox");
	check_fail("MAIL FROM:<a@b.test> AUTH=nobody", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("MAIL FROM:<a@b.test> AUTH", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_ok("MAIL FROM:<a@b.test>", SMTP_VERB_MAIL);
	CHECK(!cmd.mail.auth_given);
}

static void test_param_errors(void)
{
	check_fail("MAIL FROM:<a@b.test> SIZE=1 SIZE=2", SMTP_PARSE_ERROR_PARAMETER,
	           "repeated parameter");
	check_fail("MAIL FROM:<a@b.test> size=1 BODY=7BIT Size=1", SMTP_PARSE_ERROR_PARAMETER,
	           "repeated parameter");
	check_fail("MAIL FROM:<a@b.test> SMTPUTF8 SMTPUTF8", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> NOTIFY=NEVER notify=NEVER", SMTP_PARSE_ERROR_PARAMETER,
	           "repeated parameter");
	check_fail("MAIL FROM:<a@b.test> FOO=bar", SMTP_PARSE_ERROR_PARAMETER,
	           "unrecognised parameter");
	check_fail("MAIL FROM:<a@b.test> X-FOO", SMTP_PARSE_ERROR_PARAMETER,
	           "unrecognised parameter");
	check_fail("MAIL FROM:<a@b.test> NOTIFY=NEVER", SMTP_PARSE_ERROR_PARAMETER,
	           "unrecognised parameter");
	check_fail("RCPT TO:<a@b.test> SIZE=1", SMTP_PARSE_ERROR_PARAMETER,
	           "unrecognised parameter");
	check_fail("MAIL FROM:<a@b.test> -X=1", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid parameter syntax");
	check_fail("MAIL FROM:<a@b.test> SIZE=1=2", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid parameter syntax");
	check_fail("MAIL FROM:<a@b.test> =1", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("MAIL FROM:<a@b.test> SIZE=1\x01", SMTP_PARSE_ERROR_PARAMETER, NULL);
	/* Parameters are checked before the path. */
	check_fail("MAIL FROM:<bad> FOO", SMTP_PARSE_ERROR_PARAMETER, NULL);
	CHECK_INT(smtp_parser_error_reply(SMTP_PARSE_ERROR_PARAMETER)->code, 555);
	CHECK_STR(smtp_parser_error_reply(SMTP_PARSE_ERROR_PARAMETER)->enhanced, "5.5.4");
}

static void test_notify(void)
{
	check_ok("RCPT TO:<a@b.test> NOTIFY=NEVER", SMTP_VERB_RCPT);
	CHECK_INT(cmd.rcpt.notify, SMTP_NOTIFY_NEVER);
	check_ok("RCPT TO:<a@b.test> NOTIFY=SUCCESS", SMTP_VERB_RCPT);
	CHECK_INT(cmd.rcpt.notify, SMTP_NOTIFY_SUCCESS);
	check_ok("RCPT TO:<a@b.test> NOTIFY=SUCCESS,FAILURE,DELAY", SMTP_VERB_RCPT);
	CHECK_INT(cmd.rcpt.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	check_ok("RCPT TO:<a@b.test> notify=delay,failure", SMTP_VERB_RCPT);
	CHECK_INT(cmd.rcpt.notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	check_fail("RCPT TO:<a@b.test> NOTIFY=NEVER,SUCCESS", SMTP_PARSE_ERROR_PARAMETER,
	           "NOTIFY=NEVER cannot be combined with other values");
	check_fail("RCPT TO:<a@b.test> NOTIFY=FAILURE,NEVER", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> NOTIFY=SUCCESS,SUCCESS", SMTP_PARSE_ERROR_PARAMETER,
	           "NOTIFY lists a value twice");
	check_fail("RCPT TO:<a@b.test> NOTIFY=SUCCESS,", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid NOTIFY value");
	check_fail("RCPT TO:<a@b.test> NOTIFY=,SUCCESS", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> NOTIFY=ALWAYS", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> NOTIFY", SMTP_PARSE_ERROR_PARAMETER, NULL);
}

static void test_orcpt(void)
{
	char line[1200];

	check_ok("RCPT TO:<a@b.test> ORCPT=rfc822;user@example.com", SMTP_VERB_RCPT);
	CHECK_STR(cmd.rcpt.orcpt_type, "rfc822");
	CHECK_STR(cmd.rcpt.orcpt_addr, "user@example.com");
	check_ok("RCPT TO:<a@b.test> NOTIFY=FAILURE ORCPT=RFC822;u+2Bx+3Dy@example.com",
	         SMTP_VERB_RCPT);
	CHECK_STR(cmd.rcpt.orcpt_type, "RFC822");
	CHECK_STR(cmd.rcpt.orcpt_addr, "u+x=y@example.com");
	CHECK_INT(cmd.rcpt.notify, SMTP_NOTIFY_FAILURE);
	check_fail("RCPT TO:<a@b.test> ORCPT=user@example.com", SMTP_PARSE_ERROR_PARAMETER,
	           "ORCPT must be addr-type;address");
	check_fail("RCPT TO:<a@b.test> ORCPT=;user@example.com", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> ORCPT=rfc822;", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> ORCPT=rfc822;a+0Db", SMTP_PARSE_ERROR_PARAMETER, NULL);
	check_fail("RCPT TO:<a@b.test> ORCPT=rf<c;a", SMTP_PARSE_ERROR_PARAMETER,
	           "invalid ORCPT address type");

	strcpy(line, "RCPT TO:<a@b.test> ORCPT=rfc822;");
	for (int i = 0; i < 500; i++)
		strcat(line, "x");
	check_ok(line, SMTP_VERB_RCPT);
	CHECK_INT(strlen(cmd.rcpt.orcpt_addr), 500);
	strcat(line, "x");
	check_fail(line, SMTP_PARSE_ERROR_PARAMETER, "parameter value too long");
}

static void test_bdat(void)
{
	check_ok("BDAT 1000", SMTP_VERB_BDAT);
	CHECK_INT(cmd.bdat_size, 1000);
	CHECK(!cmd.bdat_last);
	check_ok("BDAT 0 LAST", SMTP_VERB_BDAT);
	CHECK_INT(cmd.bdat_size, 0);
	CHECK(cmd.bdat_last);
	check_ok("bdat 5 last", SMTP_VERB_BDAT);
	CHECK(cmd.bdat_last);
	check_ok("BDAT 18446744073709551615", SMTP_VERB_BDAT);
	CHECK(cmd.bdat_size == UINT64_MAX);
	check_fail("BDAT 18446744073709551616", SMTP_PARSE_ERROR_SIZE, "BDAT size too large");
	check_fail("BDAT", SMTP_PARSE_ERROR_ARGUMENTS, "syntax: BDAT size [LAST]");
	check_fail("BDAT x", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("BDAT -1", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("BDAT 1 MORE", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("BDAT 1 LAST x", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
}

static void test_auth(void)
{
	check_ok("AUTH PLAIN", SMTP_VERB_AUTH);
	CHECK_STR(cmd.auth_mechanism, "PLAIN");
	CHECK(cmd.arg == NULL);
	check_ok("auth plain dGVzdAB0ZXN0AHBhc3M=", SMTP_VERB_AUTH);
	CHECK_STR(cmd.auth_mechanism, "PLAIN");
	CHECK_INT(cmd.arg_len, 20);
	CHECK(cmd.arg != NULL && memcmp(cmd.arg, "dGVzdAB0ZXN0AHBhc3M=", 20) == 0);
	check_ok("AUTH LOGIN =", SMTP_VERB_AUTH);
	CHECK_INT(cmd.arg_len, 1);
	check_ok("AUTH SCRAM-SHA-256", SMTP_VERB_AUTH);
	CHECK_STR(cmd.auth_mechanism, "SCRAM-SHA-256");
	check_fail("AUTH", SMTP_PARSE_ERROR_ARGUMENTS, "invalid mechanism name");
	check_fail("AUTH PL@IN", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("AUTH ABCDEFGHIJKLMNOPQRSTU", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_ok("AUTH ABCDEFGHIJKLMNOPQRST", SMTP_VERB_AUTH);
	check_fail("AUTH PLAIN a b", SMTP_PARSE_ERROR_ARGUMENTS, "invalid initial response");
	check_fail("AUTH PLAIN ab=c", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("AUTH PLAIN ab===", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
	check_fail("AUTH PLAIN a!b", SMTP_PARSE_ERROR_ARGUMENTS, NULL);
}

static void test_text_verbs(void)
{
	check_ok("VRFY postmaster", SMTP_VERB_VRFY);
	CHECK_INT(cmd.arg_len, 10);
	CHECK(memcmp(cmd.arg, "postmaster", 10) == 0);
	check_ok("EXPN list-name", SMTP_VERB_EXPN);
	CHECK_INT(cmd.arg_len, 9);
	check_fail("VRFY", SMTP_PARSE_ERROR_ARGUMENTS, "argument required");
	check_fail("EXPN  ", SMTP_PARSE_ERROR_ARGUMENTS, "argument required");
	check_ok("HELP", SMTP_VERB_HELP);
	CHECK(cmd.arg == NULL);
	CHECK_INT(cmd.arg_len, 0);
	check_ok("HELP MAIL", SMTP_VERB_HELP);
	CHECK_INT(cmd.arg_len, 4);
	check_ok("NOOP", SMTP_VERB_NOOP);
	CHECK(cmd.arg == NULL);
	check_ok("noop hello there\tworld", SMTP_VERB_NOOP);
	CHECK_INT(cmd.arg_len, 17);
	check_fail("NOOP a\x1b[0m", SMTP_PARSE_ERROR_ARGUMENTS, "control character in argument");
}

static void test_error_replies(void)
{
	const struct smtp_reply_code *r;

	r = smtp_parser_error_reply(SMTP_PARSE_ERROR_SYNTAX);
	CHECK_INT(r->code, 500);
	CHECK_STR(r->enhanced, "5.5.2");
	r = smtp_parser_error_reply(SMTP_PARSE_ERROR_UNKNOWN_COMMAND);
	CHECK_INT(r->code, 500);
	CHECK_STR(r->enhanced, "5.5.2");
	r = smtp_parser_error_reply(SMTP_PARSE_ERROR_ARGUMENTS);
	CHECK_INT(r->code, 501);
	CHECK_STR(r->enhanced, "5.5.4");
	r = smtp_parser_error_reply(SMTP_PARSE_ERROR_SENDER);
	CHECK_STR(r->enhanced, "5.1.7");
	r = smtp_parser_error_reply(SMTP_PARSE_ERROR_SIZE);
	CHECK_STR(r->enhanced, "5.3.4");
	r = smtp_parser_error_reply((enum smtp_parse_error)1000);
	CHECK_INT(r->code, 500);
	CHECK_STR(smtp_parser_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
	CHECK_STR(smtp_parser_verb_name(SMTP_VERB_EHLO), "EHLO");
	CHECK_STR(smtp_parser_verb_name(SMTP_VERB_AUTH), "AUTH");
	CHECK_STR(smtp_parser_verb_name(SMTP_VERB_UNKNOWN), "UNKNOWN");
	CHECK_STR(smtp_parser_verb_name((enum smtp_verb)99), "UNKNOWN");
}

int main(void)
{
	TEST_RUN(test_verbs_without_arguments);
	TEST_RUN(test_unknown_and_empty);
	TEST_RUN(test_bare_cr_lf_nul);
	TEST_RUN(test_ehlo);
	TEST_RUN(test_helo);
	TEST_RUN(test_mail_basic);
	TEST_RUN(test_mail_errors);
	TEST_RUN(test_rcpt);
	TEST_RUN(test_open_relay_local_parts);
	TEST_RUN(test_size);
	TEST_RUN(test_body_ret_smtputf8);
	TEST_RUN(test_utf8_paths);
	TEST_RUN(test_envid);
	TEST_RUN(test_auth_param);
	TEST_RUN(test_param_errors);
	TEST_RUN(test_notify);
	TEST_RUN(test_orcpt);
	TEST_RUN(test_bdat);
	TEST_RUN(test_auth);
	TEST_RUN(test_text_verbs);
	TEST_RUN(test_error_replies);
	return test_summary();
}
