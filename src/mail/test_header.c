#include "mail/header.h"
#include "mail/maildate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/test.h"
#include "lib/xalloc.h"

/* The message in an allocation of exactly its length, with no NUL after
 * it: ASan then catches any read past len. */
static char *exact(const char *s, size_t *len_r)
{
	size_t len = strlen(s);
	char *p = xmalloc(len);

	memcpy(p, s, len);
	*len_r = len;
	return p;
}

static int get(const char *msg, const char *name, char *buf, size_t size)
{
	size_t len;
	char *m = exact(msg, &len);
	int ret = header_get(m, len, name, buf, size);

	free(m);
	return ret;
}

static const char sample[] = "Received: from a.test by b.test; Sun, 22 Nov 2026 02:13:00 +0000\r\n"
                             "From: Alice <alice@a.test>\r\n"
                             "Subject: Hello\r\n"
                             "  there,\r\n"
                             "\tfriend  \r\n"
                             "Received: from c.test\r\n"
                             "  by a.test\r\n"
                             "Message-ID: <1234.5678@a.test>\r\n"
                             "Received-SPF: pass\r\n"
                             "\r\n"
                             "Received: in the body, not a field\r\n"
                             "Subject: neither is this\r\n";

static void test_section_end(void)
{
	const char *body = strstr(sample, "\r\n\r\n") + 4;

	CHECK_INT(header_section_end(sample, strlen(sample)), body - sample);
	CHECK_INT(header_section_end("A: b\r\n\r\n", 8), 8);
	CHECK_INT(header_section_end("A: b\r\nC: d\r\n", 12), 12);
	CHECK_INT(header_section_end("A: b\r\nC: d", 10), 10);
	CHECK_INT(header_section_end("\r\nbody\r\n", 8), 2);
	CHECK_INT(header_section_end("A: b\n\nbody\n", 11), 6);
	CHECK_INT(header_section_end("A: b\r\n\r", 7), 7);
	CHECK_INT(header_section_end("", 0), 0);
	/* A line of spaces is not the empty line. */
	CHECK_INT(header_section_end("A: b\r\n \r\n\r\nx", 12), 11);
	/* The length bounds the scan, whatever follows. */
	CHECK_INT(header_section_end("A: b\r\n\r\n", 5), 5);
}

static void test_get_basic(void)
{
	char buf[256];

	CHECK_INT(get(sample, "From", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Alice <alice@a.test>");
	CHECK_INT(get(sample, "from", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Alice <alice@a.test>");
	CHECK_INT(get(sample, "MESSAGE-id", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "<1234.5678@a.test>");
	/* The first of several, and only from the header section. */
	CHECK_INT(get(sample, "Received", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "from a.test by b.test; Sun, 22 Nov 2026 02:13:00 +0000");
	/* A prefix of a name is not the name. */
	CHECK_INT(get(sample, "Received-S", buf, sizeof(buf)), -1);
	CHECK_INT(get(sample, "Received-SPF", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "pass");
}

static void test_get_folding(void)
{
	char buf[256];

	CHECK_INT(get(sample, "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Hello  there,\tfriend");
	CHECK_INT(get("Subject:\r\n folded first\r\n\r\n", "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "folded first");
	CHECK_INT(get("Subject: bare\n lf\n\nbody", "subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "bare lf");
	/* A fold right before the blank line ending the section. */
	CHECK_INT(get("X: a\r\n \r\n\r\nX: body", "X", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "a");
}

static void test_get_absent(void)
{
	char buf[16] = "junk";

	CHECK_INT(get(sample, "To", buf, sizeof(buf)), -1);
	CHECK_STR(buf, "");
	CHECK_INT(get("", "To", buf, sizeof(buf)), -1);
	CHECK_INT(get("To: x\r\n", "", buf, sizeof(buf)), -1);
	CHECK_INT(get("\r\nTo: in the body\r\n", "To", buf, sizeof(buf)), -1);
}

static void test_get_header_only(void)
{
	char buf[64];

	/* Header section and blank line, no body. */
	CHECK_INT(get("To: a@b.test\r\nSubject: s\r\n\r\n", "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "s");
	/* No blank line at all, no line end after the last field. */
	CHECK_INT(get("To: a@b.test\r\nSubject: last", "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "last");
	CHECK_INT(get("Subject:", "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "");
	CHECK_INT(get("Subject: x\r", "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "x");
	CHECK_INT(get("Subject: x\r\n ", "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "x");
}

static void test_get_truncate(void)
{
	char buf[8];

	memset(buf, 'z', sizeof(buf));
	CHECK_INT(get("Subject: 0123456789\r\n", "Subject", buf, 6), 0);
	CHECK_STR(buf, "01234");
	CHECK_INT(buf[6], 'z');
	CHECK_INT(get("Subject: 0123456789\r\n", "Subject", buf, 1), 0);
	CHECK_STR(buf, "");
	buf[0] = 'z';
	CHECK_INT(get("Subject: 0123456789\r\n", "Subject", buf, 0), 0);
	CHECK_INT(buf[0], 'z');
	CHECK_INT(get("Subject: 0123456789\r\n", "To", buf, 0), -1);
	/* Never half a UTF-8 sequence: "a" then U+00E9 (2 octets). */
	CHECK_INT(get("Subject: a\xc3\xa9\r\n", "Subject", buf, 3), 0);
	CHECK_STR(buf, "a");
	CHECK_INT(get("Subject: a\xc3\xa9\r\n", "Subject", buf, 4), 0);
	CHECK_STR(buf, "a\xc3\xa9");
	/* U+1F600 (4 octets) cut after 3. */
	CHECK_INT(get("Subject: ab\xf0\x9f\x98\x80\r\n", "Subject", buf, 6), 0);
	CHECK_STR(buf, "ab");
	/* A cut after a space leaves no trailing space. */
	CHECK_INT(get("Subject: ab cd\r\n", "Subject", buf, 4), 0);
	CHECK_STR(buf, "ab");
}

static void test_get_garbage(void)
{
	static const char msg[] = "From sender@x.test Sun Nov 22 02:13:00 2026\r\n"
	                          " orphan continuation\r\n"
	                          "no colon here\r\n"
	                          "Sub ject: not a field\r\n"
	                          "\x01\x02: binary name\r\n"
	                          "Subject : spaced name\r\n"
	                          "X-Cr: a\rb\r\n"
	                          "X-Nul: a\0b\r\n"
	                          "X-Eight: \xff\xfe\r\n"
	                          "\r\n";
	char buf[64];

	CHECK_INT(header_get(msg, sizeof(msg) - 1, "From", buf, sizeof(buf)), -1);
	CHECK_INT(header_get(msg, sizeof(msg) - 1, "Sub ject", buf, sizeof(buf)), -1);
	CHECK_INT(header_get(msg, sizeof(msg) - 1, "Subject", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "spaced name");
	CHECK_INT(header_get(msg, sizeof(msg) - 1, "X-Cr", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "a b");
	CHECK_INT(header_get(msg, sizeof(msg) - 1, "X-Nul", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "a b");
	CHECK_INT(header_get(msg, sizeof(msg) - 1, "X-Eight", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "\xff\xfe");
	CHECK_INT(header_count(msg, sizeof(msg) - 1, "Subject"), 1);
	/* Nothing but garbage. */
	CHECK_INT(get("\x80\x81\x82", "Subject", buf, sizeof(buf)), -1);
	CHECK_INT(get(":::\r\n: x\r\n", "", buf, sizeof(buf)), -1);
	CHECK_INT(header_message_id("\xff", 1, buf, sizeof(buf)), -1);
}

static void test_count(void)
{
	size_t len;
	char *m = exact(sample, &len);

	CHECK_INT(header_count(m, len, "Received"), 2);
	CHECK_INT(header_count(m, len, "received"), 2);
	CHECK_INT(header_count(m, len, "Received-SPF"), 1);
	CHECK_INT(header_count(m, len, "To"), 0);
	CHECK_INT(header_count(m, 0, "Received"), 0);
	free(m);
	CHECK_INT(header_count("Received: a\r\nReceived: b\r\nReceived: c", 37, "Received"), 3);
}

static int msgid(const char *msg, char *buf, size_t size)
{
	size_t len;
	char *m = exact(msg, &len);
	int ret = header_message_id(m, len, buf, size);

	free(m);
	return ret;
}

static void test_message_id(void)
{
	char buf[64];

	CHECK_INT(msgid(sample, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "<1234.5678@a.test>");
	CHECK_INT(msgid("Message-Id: (a (nested) comment) <x@y> (trailer)\r\n", buf, sizeof(buf)),
	          0);
	CHECK_STR(buf, "<x@y>");
	CHECK_INT(msgid("Message-ID:\r\n\t<folded@host.test>\r\n\r\n", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "<folded@host.test>");
	CHECK_INT(msgid("Message-ID: <[literal]@[192.0.2.1]>\r\n", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "<[literal]@[192.0.2.1]>");
	/* Exactly fits: 5 octets and the NUL. */
	CHECK_INT(msgid("Message-ID: <a@b>\r\n", buf, 6), 0);
	CHECK_STR(buf, "<a@b>");
	CHECK_INT(msgid("Message-ID: <a@b>\r\n", buf, 5), -1);
	CHECK_STR(buf, "");

	static const char *const garbage[] = {
	    "Subject: no id\r\n",
	    "Message-ID: no-brackets@x\r\n",
	    "Message-ID: <no-at>\r\n",
	    "Message-ID: <@x>\r\n",
	    "Message-ID: <x@>\r\n",
	    "Message-ID: <a b@x>\r\n",
	    "Message-ID: <unterminated@x\r\n",
	    "Message-ID: <a<b@x>\r\n",
	    "Message-ID: (unterminated comment <a@b>\r\n",
	    "Message-ID:\r\n",
	    "\r\nMessage-ID: <in@body>\r\n",
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		strcpy(buf, "junk");
		CHECK_INT(msgid(garbage[i], buf, sizeof(buf)), -1);
		CHECK_STR(buf, "");
	}
}

static void test_date_format(void)
{
	char buf[MAIL_DATE_MAX];

	setenv("TZ", "UTC0", 1);
	tzset();
	CHECK_INT(mail_date_format(1795313580, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Sun, 22 Nov 2026 02:13:00 +0000");
	CHECK_INT(mail_date_format(0, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
	setenv("TZ", "IST-5:30", 1);
	tzset();
	CHECK_INT(mail_date_format(1795313580, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Sun, 22 Nov 2026 07:43:00 +0530");
	setenv("TZ", "BRT3", 1);
	tzset();
	CHECK_INT(mail_date_format(1795313580, buf, sizeof(buf)), 0);
	CHECK_STR(buf, "Sat, 21 Nov 2026 23:13:00 -0300");
	CHECK_INT(mail_date_format(1795313580, buf, 10), -1);
	CHECK_STR(buf, "");
	unsetenv("TZ");
	tzset();
}

static bool all_of(const char *s, size_t n, const char *set)
{
	return strspn(s, set) == n;
}

static void test_message_id_generate(void)
{
	char a[128], b[128], out[64];
	const char *dot, *at;

	CHECK_INT(mail_message_id_generate("mx.example.test", a, sizeof(a)), 0);
	CHECK_INT(mail_message_id_generate("mx.example.test", b, sizeof(b)), 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(a[0] == '<' && a[strlen(a) - 1] == '>');
	dot = strchr(a, '.');
	at = strchr(a, '@');
	CHECK(dot != NULL && at != NULL && dot < at);
	if (dot != NULL && at != NULL) {
		CHECK_INT(dot - a - 1, 32); /* 128 bits */
		CHECK(all_of(a + 1, 32, "0123456789abcdef"));
		CHECK(all_of(dot + 1, (size_t)(at - dot - 1), "0123456789"));
		CHECK_STR(at, "@mx.example.test>");
	}
	/* What it writes, header_message_id() reads back. */
	char *msg = xasprintf("Message-ID: %s\r\n\r\n", a);
	CHECK_INT(header_message_id(msg, strlen(msg), out, sizeof(out)), 0);
	CHECK_STR(out, a);
	free(msg);
	CHECK_INT(mail_message_id_generate("bad host\r\nX: y", a, sizeof(a)), -1);
	CHECK_STR(a, "");
	CHECK_INT(mail_message_id_generate("", a, sizeof(a)), -1);
	CHECK_INT(mail_message_id_generate("mx.example.test", a, 30), -1);
	CHECK_STR(a, "");
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

#define IDS 20000

/* Ids from a forked child, while the parent makes its own. */
static void test_queue_id(void)
{
	static char ids[2 * IDS][MAIL_QUEUE_ID_LEN + 1];
	int fds[2];
	pid_t pid;
	int status;

	CHECK_INT(mail_queue_id_generate(ids[0], sizeof(ids[0])), 0);
	CHECK_INT(strlen(ids[0]), MAIL_QUEUE_ID_LEN);
	CHECK(all_of(ids[0], MAIL_QUEUE_ID_LEN, "0123456789ABCDEF"));
	CHECK_INT(mail_queue_id_generate(ids[1], MAIL_QUEUE_ID_LEN), -1);
	CHECK_STR(ids[1], "");
	if (pipe(fds) < 0 || (pid = fork()) < 0) {
		CHECK(!"pipe/fork");
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		for (int i = 0; i < IDS; i++)
			if (mail_queue_id_generate(ids[i], sizeof(ids[i])) < 0 ||
			    write(fds[1], ids[i], sizeof(ids[i])) != (ssize_t)sizeof(ids[i]))
				_exit(1);
		_exit(0);
	}
	close(fds[1]);
	for (int i = 0; i < IDS; i++)
		CHECK_INT(mail_queue_id_generate(ids[i], sizeof(ids[i])), 0);
	for (int i = IDS; i < 2 * IDS; i++)
		if (read(fds[0], ids[i], sizeof(ids[i])) != (ssize_t)sizeof(ids[i]))
			CHECK(!"short read from child");
	close(fds[0]);
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	qsort(ids, 2 * IDS, sizeof(ids[0]), cmp_id);
	for (int i = 1; i < 2 * IDS; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0) {
			CHECK(!"duplicate queue id");
			break;
		}
}

int main(void)
{
	TEST_RUN(test_section_end);
	TEST_RUN(test_get_basic);
	TEST_RUN(test_get_folding);
	TEST_RUN(test_get_absent);
	TEST_RUN(test_get_header_only);
	TEST_RUN(test_get_truncate);
	TEST_RUN(test_get_garbage);
	TEST_RUN(test_count);
	TEST_RUN(test_message_id);
	TEST_RUN(test_date_format);
	TEST_RUN(test_message_id_generate);
	TEST_RUN(test_queue_id);
	return test_summary();
}
