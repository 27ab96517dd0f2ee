#include "mail/mime.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/test.h"
#include "lib/xalloc.h"

/* A test message: written with LF line ends for legibility and turned
 * into CRLF (or kept) in an allocation of exactly its length, with no NUL
 * after it, so that ASan catches any read past len. */
struct msg {
	char *data;
	size_t len;
	char *copy; /* the same, NUL-terminated, for comparisons */
	struct mime_tree *tree;
};

static void msg_load(struct msg *m, const char *text, bool crlf)
{
	size_t n = 0;

	for (const char *s = text; *s != '\0'; s++)
		n += crlf && *s == '\n' ? 2 : 1;
	m->data = xmalloc(n > 0 ? n : 1);
	m->len = 0;
	for (const char *s = text; *s != '\0'; s++) {
		if (crlf && *s == '\n')
			m->data[m->len++] = '\r';
		m->data[m->len++] = *s;
	}
	/* A NUL-terminated copy for strstr() in the checks; data itself is
	 * exactly len octets, so that ASan catches any read past it. */
	m->copy = xmalloc(m->len + 1);
	memcpy(m->copy, m->data, m->len);
	m->copy[m->len] = '\0';
	m->tree = mime_parse(m->data, m->len);
}

static void msg_free(struct msg *m)
{
	mime_tree_free(&m->tree);
	CHECK(m->tree == NULL);
	free(m->data);
	free(m->copy);
}

static void check_bodystructure(const struct msg *m, const char *bs, const char *body)
{
	char *s = mime_imap_bodystructure(m->data, m->len, m->tree, true);

	CHECK_STR(s, bs);
	free(s);
	s = mime_imap_bodystructure(m->data, m->len, m->tree, false);
	CHECK_STR(s, body);
	free(s);
}

static void check_envelope(const struct msg *m, const struct mime_part *part, const char *env)
{
	char *s = mime_imap_envelope(m->data, m->len, part);

	CHECK_STR(s, env);
	free(s);
}

/* The section's octets, as a string for CHECK_STR. */
static char *section_text(const struct msg *m, const char *spec)
{
	struct mime_section s;
	const char *error = NULL;

	if (mime_section_find(m->tree, spec, &s, &error) < 0)
		return xasprintf("error: %s", error);
	if (s.offset > m->len || s.size > m->len - s.offset)
		return xstrdup("error: range outside the message");
	return xstrndup(m->data + s.offset, s.size);
}

static void check_section(const struct msg *m, const char *spec, const char *expected)
{
	char *s = section_text(m, spec);

	if (strcmp(s, expected) != 0)
		fprintf(stderr, "  section [%s]\n", spec);
	CHECK_STR(s, expected);
	free(s);
}

static void check_section_error(const struct msg *m, const char *spec)
{
	struct mime_section s;
	const char *error = NULL;

	if (mime_section_find(m->tree, spec, &s, &error) == 0)
		fprintf(stderr, "  section [%s] found\n", spec);
	CHECK(error != NULL);
}

/* Serializes, deserializes and serializes again: the same blob, the same
 * BODYSTRUCTURE, and every truncation of the blob refused. */
static void check_roundtrip(const struct msg *m)
{
	size_t size, size2;
	void *blob = mime_structure_serialize(m->tree, &size), *blob2;
	struct mime_tree *tree = NULL;
	const char *error = NULL;
	char *a, *b;

	CHECK_INT(mime_structure_deserialize(blob, size, m->len, &tree, &error), 0);
	if (tree == NULL) {
		free(blob);
		return;
	}
	blob2 = mime_structure_serialize(tree, &size2);
	CHECK(size == size2 && memcmp(blob, blob2, size) == 0);
	a = mime_imap_bodystructure(m->data, m->len, m->tree, true);
	b = mime_imap_bodystructure(m->data, m->len, tree, true);
	CHECK_STR(b, a);
	free(a);
	free(b);
	free(blob2);
	mime_tree_free(&tree);
	for (size_t cut = 0; cut < size; cut += 1 + size / 64) {
		error = NULL;
		CHECK_INT(mime_structure_deserialize(blob, cut, m->len, &tree, &error), -1);
		CHECK(error != NULL);
	}
	/* A message shorter than the offsets say is refused too. */
	if (m->len > 0)
		CHECK_INT(mime_structure_deserialize(blob, size, m->len - 1, &tree, &error), -1);
	free(blob);
}

static const char simple[] = "From: user@domain.org\n"
                             "Date: Sat, 24 Mar 2017 23:00:00 +0200\n"
                             "Mime-Version: 1.0\n"
                             "Content-Type: text/plain; charset=us-ascii\n"
                             "\n"
                             "body\n";

static void test_simple(void)
{
	struct msg m;

	msg_load(&m, simple, true);
	CHECK_INT(m.tree->part_count, 1);
	/* Sizes as Dovecot's test-imap-bodystructure gives them (it counts
	 * LF as CRLF; this message is CRLF). */
	check_bodystructure(&m,
	                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1 "
	                    "NIL NIL NIL NIL)",
	                    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
	check_envelope(
	    &m, m.tree->root,
	    "(\"Sat, 24 Mar 2017 23:00:00 +0200\" NIL ((NIL NIL \"user\" \"domain.org\")) "
	    "((NIL NIL \"user\" \"domain.org\")) ((NIL NIL \"user\" \"domain.org\")) "
	    "NIL NIL NIL NIL NIL)");
	check_section(&m, "", m.copy);
	check_section(&m, "HEADER",
	              "From: user@domain.org\r\nDate: Sat, 24 Mar 2017 23:00:00 +0200\r\n"
	              "Mime-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
	check_section(&m, "TEXT", "body\r\n");
	check_section(&m, "text", "body\r\n");
	/* Part 1 of a message that is not multipart is its body. */
	check_section(&m, "1", "body\r\n");
	check_section(&m, "1.MIME",
	              "From: user@domain.org\r\nDate: Sat, 24 Mar 2017 23:00:00 +0200\r\n"
	              "Mime-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
	check_section_error(&m, "2");
	check_section_error(&m, "1.1");
	check_section_error(&m, "0");
	check_section_error(&m, "01");
	check_section_error(&m, "1.");
	check_section_error(&m, ".1");
	check_section_error(&m, "MIME");
	check_section_error(&m, "1.HEADER");
	check_section_error(&m, "BODY");
	check_section_error(&m, "1 ");
	check_section_error(&m, "99999999999999999999");
	check_roundtrip(&m);
	msg_free(&m);
}

static const char alternative[] = "From: \"Alice Example\" <alice@example.test>\n"
                                  "To: bob@example.test\n"
                                  "Subject: Hi\n"
                                  "Content-Type: multipart/alternative; boundary=\"b1\"\n"
                                  "\n"
                                  "This is a MIME preamble.\n"
                                  "--b1\n"
                                  "Content-Type: text/plain; charset=utf-8\n"
                                  "\n"
                                  "Hello Bob\n"
                                  "--b1 \t\n"
                                  "Content-Type: text/html; charset=utf-8\n"
                                  "Content-Transfer-Encoding: quoted-printable\n"
                                  "\n"
                                  "<p>Hello Bob</p>\n"
                                  "<p>Bye</p>\n"
                                  "--b1--\n"
                                  "epilogue\n";

static void test_alternative(void)
{
	struct msg m;

	msg_load(&m, alternative, true);
	CHECK_INT(m.tree->part_count, 3);
	/* "Hello Bob" without the CRLF before the boundary: 9 octets, 1 line;
	 * the boundary line with trailing white space counts. */
	check_bodystructure(
	    &m,
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 9 1 NIL NIL NIL NIL)"
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 28 2 "
	    "NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 9 1)"
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 28 2) "
	    "\"alternative\")");
	check_envelope(&m, m.tree->root,
	               "(NIL \"Hi\" ((\"Alice Example\" NIL \"alice\" \"example.test\")) "
	               "((\"Alice Example\" NIL \"alice\" \"example.test\")) "
	               "((\"Alice Example\" NIL \"alice\" \"example.test\")) "
	               "((NIL NIL \"bob\" \"example.test\")) NIL NIL NIL NIL)");
	check_section(&m, "1", "Hello Bob");
	check_section(&m, "1.MIME", "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	check_section(&m, "2", "<p>Hello Bob</p>\r\n<p>Bye</p>");
	check_section(&m, "2.MIME",
	              "Content-Type: text/html; charset=utf-8\r\n"
	              "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	check_section(&m, "TEXT", strstr(m.copy, "This is a MIME"));
	check_section_error(&m, "3");
	check_section_error(&m, "1.1");
	check_section_error(&m, "2.TEXT");
	CHECK_INT(m.tree->root->flags, 0);
	check_roundtrip(&m);
	msg_free(&m);
}

/* A PNG header's first octets. */
#define PNG_B64 "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk\n"

static const char attachment[] = "From: a@example.test\n"
                                 "Content-Type: multipart/mixed; boundary=XyZ\n"
                                 "\n"
                                 "--XyZ\n"
                                 "Content-Type: text/plain\n"
                                 "\n"
                                 "See attached.\n"
                                 "\n"
                                 "--XyZ\n"
                                 "Content-Type: image/png; name=\"dot.png\"\n"
                                 "Content-Transfer-Encoding: BASE64\n"
                                 "Content-Disposition: attachment; filename=\"dot.png\"\n"
                                 "Content-ID: <dot@example.test>\n"
                                 "\n" PNG_B64 "--XyZ--\n";

static void test_attachment(void)
{
	struct msg m;

	msg_load(&m, attachment, true);
	CHECK_INT(m.tree->part_count, 3);
	check_bodystructure(
	    &m,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 1 NIL NIL NIL NIL)"
	    "(\"image\" \"png\" (\"name\" \"dot.png\") \"<dot@example.test>\" NIL \"base64\" 60 "
	    "NIL (\"attachment\" (\"filename\" \"dot.png\")) NIL NIL) \"mixed\" "
	    "(\"boundary\" \"XyZ\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 15 1)"
	    "(\"image\" \"png\" (\"name\" \"dot.png\") \"<dot@example.test>\" NIL \"base64\" 60) "
	    "\"mixed\")");
	check_section(&m, "1", "See attached.\r\n");
	check_section(&m, "2", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk");
	CHECK_STR(mime_part_param(m.tree->parts[2], "NAME"), "dot.png");
	CHECK(mime_part_param(m.tree->parts[2], "charset") == NULL);
	check_roundtrip(&m);
	msg_free(&m);
}

static const char nested[] = "Content-Type: multipart/mixed; boundary=outer\n"
                             "\n"
                             "--outer\n"
                             "Content-Type: multipart/alternative; boundary=inner\n"
                             "\n"
                             "--inner\n"
                             "\n"
                             "plain\n"
                             "--inner\n"
                             "Content-Type: text/html\n"
                             "\n"
                             "<b>html</b>\n"
                             "--inner--\n"
                             "--outer\n"
                             "Content-Type: application/pdf\n"
                             "Content-Transfer-Encoding: base64\n"
                             "\n"
                             "JVBERi0=\n"
                             "--outer--\n";

static void test_nested(void)
{
	struct msg m;

	msg_load(&m, nested, true);
	CHECK_INT(m.tree->part_count, 5);
	check_bodystructure(
	    &m,
	    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1 NIL NIL NIL NIL)"
	    "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1 NIL NIL NIL NIL) "
	    "\"alternative\" (\"boundary\" \"inner\") NIL NIL NIL)"
	    "(\"application\" \"pdf\" NIL NIL NIL \"base64\" 8 NIL NIL NIL NIL) \"mixed\" "
	    "(\"boundary\" \"outer\") NIL NIL NIL)",
	    "(((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 5 1)"
	    "(\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 11 1) \"alternative\")"
	    "(\"application\" \"pdf\" NIL NIL NIL \"base64\" 8) \"mixed\")");
	check_section(&m, "1.1", "plain");
	check_section(&m, "1.1.MIME", "\r\n");
	check_section(&m, "1.2", "<b>html</b>");
	check_section(&m, "1.2.MIME", "Content-Type: text/html\r\n\r\n");
	check_section(&m, "1",
	              "--inner\r\n\r\nplain\r\n--inner\r\nContent-Type: text/html\r\n\r\n"
	              "<b>html</b>\r\n--inner--");
	check_section(&m, "1.MIME", "Content-Type: multipart/alternative; boundary=inner\r\n\r\n");
	check_section(&m, "2", "JVBERi0=");
	check_section_error(&m, "1.3");
	check_section_error(&m, "2.1");
	check_roundtrip(&m);
	msg_free(&m);
}

/* Dovecot's test-imap-bodystructure.c message with a message/rfc822 part
 * (its expected strings count LF as CRLF, so this one is loaded as CRLF). */
static const char rfc822[] =
    "From: user@domain.org\n"
    "Date: Sat, 24 Mar 2007 23:00:00 +0200\n"
    "Mime-Version: 1.0\n"
    "Content-Type: multipart/mixed; boundary=\"foo\n"
    " bar\"\n"
    "\n"
    "Root MIME prologue\n"
    "\n"
    "--foo bar\n"
    "Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\n"
    "Content-ID: <foo@example.com>\n"
    "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
    "Content-Disposition: inline; foo=bar\n"
    "Content-Description: hellodescription\n"
    "Content-Language: en, fi, se\n"
    "Content-Location: http://example.com/test.txt\n"
    "\n"
    "hello\n"
    "\n"
    "--foo bar\n"
    "Content-Type: message/rfc822\n"
    "\n"
    "From: sub@domain.org\n"
    "To: sub-to1@domain.org, sub-to2@domain.org\n"
    "Date: Sun, 12 Aug 2012 12:34:56 +0300\n"
    "Subject: submsg\n"
    "Content-Type: multipart/alternative; boundary=\"sub1\"\n"
    "\n"
    "Sub MIME prologue\n"
    "--sub1\n"
    "Content-Type: text/html\n"
    "Content-Transfer-Encoding: 8bit\n"
    "\n"
    "<p>Hello world</p>\n"
    "\n"
    "--sub1\n"
    "Content-Type: text/plain\n"
    "Content-Transfer-Encoding: ?invalid\n"
    "\n"
    "Hello another world\n"
    "\n"
    "--sub1--\n"
    "Sub MIME epilogue\n"
    "\n"
    "--foo bar--\n"
    "Root MIME epilogue\n";

/* Dovecot's expected strings for it, with the outer parentheses. */
#define RFC822_PART1                                                                               \
	"(\"text\" \"x-myown\" (\"charset\" \"us-ascii\" \"foo\" \"quoted\\\"string\") "           \
	"\"<foo@example.com>\" \"hellodescription\" \"7bit\" 7 1"
#define RFC822_ENVELOPE                                                                            \
	"(\"Sun, 12 Aug 2012 12:34:56 +0300\" \"submsg\" ((NIL NIL \"sub\" \"domain.org\")) "      \
	"((NIL NIL \"sub\" \"domain.org\")) ((NIL NIL \"sub\" \"domain.org\")) "                   \
	"((NIL NIL \"sub-to1\" \"domain.org\")(NIL NIL \"sub-to2\" \"domain.org\")) "              \
	"NIL NIL NIL NIL)"

static const char rfc822_bodystructure[] =
    "(" RFC822_PART1 " \"Q2hlY2sgSW50ZWdyaXR5IQ==\" (\"inline\" (\"foo\" \"bar\")) "
    "(\"en\" \"fi\" \"se\") \"http://example.com/test.txt\")"
    "(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 412 " RFC822_ENVELOPE " "
    "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"8bit\" 20 1 NIL NIL NIL NIL)"
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 21 1 NIL NIL NIL NIL) "
    "\"alternative\" (\"boundary\" \"sub1\") NIL NIL NIL) 21 NIL NIL NIL NIL) "
    "\"mixed\" (\"boundary\" \"foo bar\") NIL NIL NIL)";

static const char rfc822_body[] =
    "(" RFC822_PART1 ")(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 412 " RFC822_ENVELOPE " "
    "((\"text\" \"html\" (\"charset\" \"us-ascii\") NIL NIL \"8bit\" 20 1)"
    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 21 1) \"alternative\") "
    "21) \"mixed\")";

static void test_rfc822(void)
{
	struct msg m;
	char *s;

	msg_load(&m, rfc822, true);
	CHECK_INT(m.tree->part_count, 6);
	check_bodystructure(&m, rfc822_bodystructure, rfc822_body);
	check_envelope(&m, m.tree->parts[3], RFC822_ENVELOPE);
	CHECK(mime_part_is_message(m.tree->parts[2]));
	check_section(&m, "1", "hello\r\n");
	check_section(&m, "2.HEADER",
	              "From: sub@domain.org\r\n"
	              "To: sub-to1@domain.org, sub-to2@domain.org\r\n"
	              "Date: Sun, 12 Aug 2012 12:34:56 +0300\r\n"
	              "Subject: submsg\r\n"
	              "Content-Type: multipart/alternative; boundary=\"sub1\"\r\n\r\n");
	s = section_text(&m, "2.TEXT");
	CHECK(strncmp(s, "Sub MIME prologue\r\n--sub1\r\n", 27) == 0);
	CHECK(strlen(s) > 19 && strcmp(s + strlen(s) - 19, "Sub MIME epilogue\r\n") == 0);
	free(s);
	s = section_text(&m, "2");
	CHECK(strncmp(s, "From: sub@domain.org\r\n", 22) == 0);
	CHECK_INT(strlen(s), 412);
	free(s);
	check_section(&m, "2.MIME", "Content-Type: message/rfc822\r\n\r\n");
	check_section(&m, "2.1", "<p>Hello world</p>\r\n");
	check_section(&m, "2.1.MIME",
	              "Content-Type: text/html\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
	check_section(&m, "2.2", "Hello another world\r\n");
	/* HEADER.FIELDS: the header's range, for mime_section_header_fields(). */
	s = section_text(&m, "2.HEADER");
	check_section(&m, "2.HEADER.FIELDS", s);
	check_section(&m, "2.header.fields.not", s);
	free(s);
	check_section_error(&m, "1.HEADER");
	check_section_error(&m, "2.3");
	check_section_error(&m, "HEADER.FIELDS.NOTX");
	check_roundtrip(&m);
	msg_free(&m);
}

static void test_rfc822_single(void)
{
	struct msg m;

	/* An embedded message that is not multipart: 2.1 is its body. */
	msg_load(&m,
	         "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nintro\n--b\n"
	         "Content-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b--\n",
	         false);
	CHECK_INT(m.tree->part_count, 4);
	check_section(&m, "2.1", "inner body");
	check_section(&m, "2.TEXT", "inner body");
	check_section(&m, "2.HEADER", "Subject: inner\n\n");
	check_section(&m, "2.1.MIME", "Subject: inner\n\n");
	check_section_error(&m, "2.2");
	msg_free(&m);

	/* base64 message/rfc822 is not parsed: an empty envelope and body. */
	msg_load(&m,
	         "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
	         "U3ViamVjdDogeA0KDQp5DQo=\n",
	         false);
	CHECK_INT(m.tree->part_count, 1);
	check_bodystructure(
	    &m,
	    "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 25 "
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
	    "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL) 1 NIL NIL "
	    "NIL NIL)",
	    "(\"message\" \"rfc822\" NIL NIL NIL \"base64\" 25 "
	    "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) (\"text\" \"plain\" "
	    "(\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) 1)");
	check_section_error(&m, "1.HEADER");
	msg_free(&m);
}

static void test_rfc2231(void)
{
	struct msg m;
	const struct mime_param *p;

	/* RFC 2231's own examples (§3, §4.1), and a plain continuation. */
	msg_load(&m,
	         "Content-Type: application/x-stuff;\n"
	         " title*0*=us-ascii'en'This%20is%20even%20more%20;\n"
	         " title*2=\"isn't it!\";\n"
	         " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n"
	         " name*0=\"long \"; name*1=name.txt; (comment) Other=\"x\\\\y\"\n"
	         "Content-Disposition: Attachment; filename*=UTF-8''%E2%82%AC%20rates.txt\n"
	         "\n"
	         "x",
	         true);
	CHECK_INT(m.tree->root->param_count, 3);
	p = &m.tree->root->params[0];
	CHECK_STR(p->name, "title");
	CHECK_STR(p->value, "This is even more ***fun*** isn't it!");
	CHECK_STR(p->charset, "us-ascii");
	CHECK_STR(p->language, "en");
	CHECK(p->extended);
	CHECK_STR(mime_part_param(m.tree->root, "name"), "long name.txt");
	CHECK_STR(mime_part_param(m.tree->root, "other"), "x\\y");
	CHECK_STR(m.tree->root->disposition, "attachment");
	CHECK_INT(m.tree->root->disp_param_count, 1);
	CHECK_STR(m.tree->root->disp_params[0].value, "\xe2\x82\xac rates.txt");
	CHECK_STR(m.tree->root->disp_params[0].charset, "UTF-8");
	check_bodystructure(
	    &m,
	    "(\"application\" \"x-stuff\" (\"title*\" "
	    "\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!\" "
	    "\"name\" \"long name.txt\" \"other\" \"x\\\\y\") NIL NIL \"7bit\" 1 NIL "
	    "(\"attachment\" (\"filename*\" \"UTF-8''%E2%82%AC%20rates.txt\")) NIL NIL)",
	    "(\"application\" \"x-stuff\" (\"title*\" "
	    "\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!\" "
	    "\"name\" \"long name.txt\" \"other\" \"x\\\\y\") NIL NIL \"7bit\" 1)");
	check_roundtrip(&m);
	msg_free(&m);

	/* A gap in the sections drops what follows it; junk is skipped. */
	msg_load(&m, "Content-Type: text/plain; a*0=x; a*2=z; ;; b c; d=\"open\n\n", true);
	CHECK_STR(mime_part_param(m.tree->root, "a"), "x");
	CHECK_STR(mime_part_param(m.tree->root, "d"), "open");
	CHECK_INT(m.tree->root->param_count, 2);
	msg_free(&m);
}

static void test_missing_close(void)
{
	struct msg m;

	msg_load(&m,
	         "Content-Type: multipart/mixed; boundary=\"=_x\"\n\n"
	         "--=_x\n\none\n--=_x\nContent-Type: text/html\n\ntwo\nlast line",
	         true);
	CHECK_INT(m.tree->part_count, 3);
	CHECK(m.tree->root->flags & MIME_PART_NO_CLOSE);
	check_section(&m, "1", "one");
	/* The last part runs to the end of the message. */
	check_section(&m, "2", "two\r\nlast line");
	CHECK_INT(m.tree->parts[2]->body_lines, 2);
	check_roundtrip(&m);
	msg_free(&m);

	/* A boundary that never comes: no parts; BODYSTRUCTURE shows an empty
	 * one, as the grammar needs one. */
	msg_load(&m, "Content-Type: multipart/mixed; boundary=\"foo\"\n\nno parts here\n", false);
	CHECK_INT(m.tree->part_count, 1);
	check_bodystructure(
	    &m,
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL "
	    "NIL NIL NIL) \"mixed\" (\"boundary\" \"foo\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0) "
	    "\"mixed\")");
	check_section_error(&m, "1");
	check_section(&m, "TEXT", "no parts here\n");
	msg_free(&m);

	/* An outer boundary ends an inner part whose own close is missing. */
	msg_load(
	    &m,
	    "Content-Type: multipart/mixed; boundary=o\n\n--o\n"
	    "Content-Type: multipart/mixed; boundary=i\n\n--i\n\ninner\n--o\n\nsecond\n--o--\n",
	    false);
	CHECK_INT(m.tree->part_count, 4);
	check_section(&m, "1.1", "inner");
	check_section(&m, "2", "second");
	CHECK(m.tree->parts[1]->flags & MIME_PART_NO_CLOSE);
	msg_free(&m);

	/* A line that starts with the boundary but goes on is not one. */
	msg_load(
	    &m, "Content-Type: multipart/mixed; boundary=ab\n\n--ab\n\nx\n--abc\n--ab--x\n--ab--\n",
	    false);
	CHECK_INT(m.tree->part_count, 2);
	check_section(&m, "1", "x\n--abc\n--ab--x");
	msg_free(&m);
}

static void test_header_only(void)
{
	struct msg m;

	msg_load(&m, "From: a@example.test\nSubject: only a header", true);
	CHECK_INT(m.tree->part_count, 1);
	CHECK_INT(m.tree->root->header_end, m.len);
	CHECK_INT(m.tree->root->body_start, m.len);
	check_bodystructure(
	    &m,
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL "
	    "NIL NIL NIL)",
	    "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
	check_section(&m, "HEADER", m.copy);
	check_section(&m, "TEXT", "");
	check_roundtrip(&m);
	msg_free(&m);

	/* Header and empty line, nothing after. */
	msg_load(&m, "Subject: x\n\n", true);
	CHECK_INT(m.tree->root->header_end, 12);
	CHECK_INT(m.tree->root->body_start, 14);
	check_section(&m, "HEADER", "Subject: x\r\n\r\n");
	msg_free(&m);

	msg_load(&m, "", false);
	CHECK_INT(m.tree->part_count, 1);
	check_section(&m, "", "");
	check_envelope(&m, m.tree->root, "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
	check_roundtrip(&m);
	msg_free(&m);
}

static void test_lf_only(void)
{
	struct msg m;
	const struct mime_part *p;

	msg_load(&m, alternative, false);
	CHECK_INT(m.tree->part_count, 3);
	p = m.tree->parts[1];
	/* Offsets are exact in the LF text. */
	CHECK_INT(p->header_start, strstr(alternative, "Content-Type: text/plain") - alternative);
	CHECK_INT(p->body_start, strstr(alternative, "Hello Bob") - alternative);
	CHECK_INT(p->body_end - p->body_start, 9);
	check_section(&m, "2", "<p>Hello Bob</p>\n<p>Bye</p>");
	check_bodystructure(
	    &m,
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 9 1 NIL NIL NIL NIL)"
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 27 2 "
	    "NIL NIL NIL NIL) \"alternative\" (\"boundary\" \"b1\") NIL NIL NIL)",
	    "((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 9 1)"
	    "(\"text\" \"html\" (\"charset\" \"utf-8\") NIL NIL \"quoted-printable\" 27 2) "
	    "\"alternative\")");
	check_roundtrip(&m);
	msg_free(&m);
}

static void test_addresses(void)
{
	struct msg m;

	msg_load(
	    &m,
	    "From: \"Smith, John Q.\" <john@example.test>\n"
	    "Sender: Mary (the secretary) <mary@[192.0.2.1]>\n"
	    "Reply-To:\n"
	    "To: undisclosed-recipients:;\n"
	    "Cc: Team: a@x.test, \"B \\\"bee\\\" B.\" <b@y.test>;, c.d@z.test\n"
	    "Bcc: <@r1.test,@r2.test:e@w.test>, localonly, <>, =?utf-8?q?J=C3=B6rg?= <j@v.test>\n"
	    "In-Reply-To: <parent@example.test>\n"
	    "Message-ID: <id@example.test>\n"
	    "\n",
	    true);
	check_envelope(&m, m.tree->root,
	               "(NIL NIL ((\"Smith, John Q.\" NIL \"john\" \"example.test\")) "
	               "((\"Mary\" NIL \"mary\" \"[192.0.2.1]\")) "
	               "((\"Smith, John Q.\" NIL \"john\" \"example.test\")) "
	               "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) "
	               "((NIL NIL \"Team\" NIL)(NIL NIL \"a\" \"x.test\")"
	               "(\"B \\\"bee\\\" B.\" NIL \"b\" \"y.test\")(NIL NIL NIL NIL)"
	               "(NIL NIL \"c.d\" \"z.test\")) "
	               "((NIL \"@r1.test,@r2.test\" \"e\" \"w.test\")"
	               "(NIL NIL \"localonly\" \"MISSING_DOMAIN\")"
	               "(NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\")"
	               "(\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"v.test\")) "
	               "\"<parent@example.test>\" \"<id@example.test>\")");
	msg_free(&m);

	/* An unclosed group is closed; junk does not stop the parse. */
	msg_load(&m, "To: g: a@b.test, > @ ;; \"unterminated <x@y.test\n\n", true);
	check_envelope(
	    &m, m.tree->root,
	    "(NIL NIL NIL NIL NIL ((NIL NIL \"g\" NIL)(NIL NIL \"a\" \"b.test\")"
	    "(NIL NIL NIL NIL)(NIL NIL \"\\\"unterminated <x@y.test\" \"MISSING_DOMAIN\")) "
	    "NIL NIL NIL NIL)");
	msg_free(&m);
}

static void test_quoting(void)
{
	struct msg m;
	char *long_subject = xmalloc(MIME_IMAP_QUOTED_MAX + 64), *text, *expected;

	msg_load(&m,
	         "Subject: say \"hi\" \\o/\n"
	         "Date: =?iso-8859-1?q?caf=E9?=\n"
	         "From: =?UTF-8?B?SsO2cmc=?= <j@x.test>\n"
	         "To: \"J\xc3\xb6rg\" <j@x.test>\n\n",
	         true);
	/* Quoted with escapes; encoded-words as they are; 8-bit as a literal. */
	check_envelope(&m, m.tree->root,
	               "(\"=?iso-8859-1?q?caf=E9?=\" \"say \\\"hi\\\" \\\\o/\" "
	               "((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"j\" \"x.test\")) "
	               "((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"j\" \"x.test\")) "
	               "((\"=?UTF-8?B?SsO2cmc=?=\" NIL \"j\" \"x.test\")) "
	               "(({5}\r\nJ\xc3\xb6rg NIL \"j\" \"x.test\")) NIL NIL NIL NIL)");
	msg_free(&m);

	/* Longer than MIME_IMAP_QUOTED_MAX: a literal even though 7-bit. */
	strcpy(long_subject, "Subject: ");
	memset(long_subject + 9, 'a', MIME_IMAP_QUOTED_MAX + 1);
	strcpy(long_subject + 9 + MIME_IMAP_QUOTED_MAX + 1, "\n\n");
	msg_load(&m, long_subject, true);
	text = mime_imap_envelope(m.data, m.len, m.tree->root);
	expected = xasprintf("(NIL {%d}\r\n", MIME_IMAP_QUOTED_MAX + 1);
	CHECK(strncmp(text, expected, strlen(expected)) == 0);
	free(expected);
	free(text);
	msg_free(&m);
	/* Exactly MIME_IMAP_QUOTED_MAX: still quoted. */
	strcpy(long_subject + 9 + MIME_IMAP_QUOTED_MAX, "\n\n");
	msg_load(&m, long_subject, true);
	text = mime_imap_envelope(m.data, m.len, m.tree->root);
	CHECK(strncmp(text, "(NIL \"aaa", 9) == 0);
	free(text);
	msg_free(&m);
	free(long_subject);
}

static void test_header_fields(void)
{
	static const char *const names[] = {"subject", "FROM"};
	struct msg m;
	struct mime_section s;
	const char *error;
	char *out;
	size_t n;

	msg_load(&m,
	         "From: a@example.test\nTo: b@example.test\nSubject: folded\n  line\n"
	         "X-Junk: 1\nnot a field\n\nFrom: body@example.test\n",
	         true);
	CHECK_INT(mime_section_find(m.tree, "HEADER.FIELDS", &s, &error), 0);
	CHECK_INT(s.kind, MIME_SECTION_HEADER_FIELDS);
	out = mime_section_header_fields(m.data, m.len, s.offset, s.size, names, 2, false, &n);
	CHECK_STR(out, "From: a@example.test\r\nSubject: folded\r\n  line\r\n\r\n");
	CHECK_INT(n, strlen(out));
	free(out);
	CHECK_INT(mime_section_find(m.tree, "header.fields.not", &s, &error), 0);
	CHECK_INT(s.kind, MIME_SECTION_HEADER_FIELDS_NOT);
	out = mime_section_header_fields(m.data, m.len, s.offset, s.size, names, 2, true, &n);
	CHECK_STR(out, "To: b@example.test\r\nX-Junk: 1\r\n\r\n");
	free(out);
	/* Nothing matches: just the empty line.  A range past len is empty. */
	out = mime_section_header_fields(m.data, m.len, s.offset, s.size, NULL, 0, false, &n);
	CHECK_STR(out, "\r\n");
	free(out);
	out = mime_section_header_fields(m.data, m.len, m.len, 5, names, 2, true, &n);
	CHECK_STR(out, "\r\n");
	free(out);
	msg_free(&m);
	/* A last field without a line end gets one. */
	msg_load(&m, "Subject: s", false);
	out = mime_section_header_fields(m.data, m.len, 0, m.len, names, 2, false, &n);
	CHECK_STR(out, "Subject: s\r\n\r\n");
	free(out);
	msg_free(&m);
}

static void test_digest(void)
{
	struct msg m;

	msg_load(&m,
	         "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nfirst\n"
	         "--d\nContent-Type: text/plain\n\nnot a message\n--d--\n",
	         false);
	CHECK_INT(m.tree->part_count, 4);
	CHECK_STR(m.tree->parts[1]->type, "message");
	CHECK_STR(m.tree->parts[1]->subtype, "rfc822");
	CHECK(mime_part_is_message(m.tree->parts[1]));
	CHECK_STR(m.tree->parts[3]->type, "text");
	check_section(&m, "1.HEADER", "Subject: one\n\n");
	check_section(&m, "1.1", "first");
	check_section(&m, "2", "not a message");
	msg_free(&m);
}

/* Builds a multipart/mixed with n empty parts. */
static char *many_parts(size_t n)
{
	size_t cap = 64 + n * 16, len;
	char *s = xmalloc(cap);

	len = (size_t)sprintf(s, "Content-Type: multipart/mixed; boundary=b\n\n");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(s + len, "--b\n\npart %zu\n", i % 10);
	strcpy(s + len, "--b--\n");
	return s;
}

static void test_many_parts(void)
{
	char *text = many_parts(MIME_MAX_PARTS + 500), *bs;
	struct msg m;

	msg_load(&m, text, false);
	CHECK_INT(m.tree->part_count, MIME_MAX_PARTS);
	CHECK_INT(m.tree->root->child_count, MIME_MAX_PARTS - 1);
	CHECK(m.tree->root->flags & MIME_PART_TRUNCATED);
	check_section(&m, "9999", "part 8");
	check_section_error(&m, "10000");
	bs = mime_imap_bodystructure(m.data, m.len, m.tree, true);
	CHECK(strlen(bs) > 60 * (size_t)(MIME_MAX_PARTS - 1));
	free(bs);
	check_roundtrip(&m);
	msg_free(&m);
	free(text);

	/* Just under the limit: nothing truncated. */
	text = many_parts(MIME_MAX_PARTS - 1);
	msg_load(&m, text, false);
	CHECK_INT(m.tree->part_count, MIME_MAX_PARTS);
	CHECK_INT(m.tree->root->flags, 0);
	msg_free(&m);
	free(text);
}

/* n levels of multiparts, each with its own boundary, or of
 * message/rfc822 parts. */
static char *deep(size_t n, bool messages)
{
	size_t cap = 128 + n * 80, len = 0;
	char *s = xmalloc(cap);

	for (size_t i = 0; i < n; i++) {
		if (messages)
			len += (size_t)sprintf(s + len, "Content-Type: message/rfc822\n\n");
		else
			len += (size_t)sprintf(
			    s + len, "Content-Type: multipart/mixed; boundary=\"l%zu\"\n\n--l%zu\n",
			    i, i);
	}
	len += (size_t)sprintf(s + len, "\ninnermost\n");
	for (size_t i = n; i-- > 0 && !messages;)
		len += (size_t)sprintf(s + len, "--l%zu--\n", i);
	s[len] = '\0';
	return s;
}

static void test_deep_nesting(void)
{
	for (int messages = 0; messages < 2; messages++) {
		char *text = deep(10000, messages), *bs;
		struct msg m;
		const struct mime_part *last;

		msg_load(&m, text, false);
		CHECK_INT(m.tree->part_count, MIME_MAX_DEPTH);
		last = m.tree->parts[m.tree->part_count - 1];
		CHECK_INT(last->depth, MIME_MAX_DEPTH - 1);
		CHECK(last->flags & MIME_PART_TRUNCATED);
		bs = mime_imap_bodystructure(m.data, m.len, m.tree, true);
		CHECK(bs[0] == '(');
		free(bs);
		bs = mime_imap_envelope(m.data, m.len, last);
		free(bs);
		check_roundtrip(&m);
		msg_free(&m);
		free(text);
	}
}

struct fts {
	char body[4][128];
	unsigned bodies;
	char subject[128], from[128];
};

static int fts_cb(enum mime_text_kind kind, const struct mime_part *part, const char *name,
                  const char *text, size_t len, void *ctx)
{
	struct fts *f = ctx;
	char *dst = NULL;

	if (kind == MIME_TEXT_BODY && f->bodies < 4)
		dst = f->body[f->bodies++];
	else if (kind == MIME_TEXT_HEADER && part->parent == NULL && strcmp(name, "Subject") == 0)
		dst = f->subject;
	else if (kind == MIME_TEXT_HEADER && part->parent == NULL && strcmp(name, "From") == 0)
		dst = f->from;
	if (dst != NULL && len < 128) {
		memcpy(dst, text, len);
		dst[len] = '\0';
	}
	return 0;
}

static int fts_stop_cb(enum mime_text_kind kind, const struct mime_part *part, const char *name,
                       const char *text, size_t len, void *ctx)
{
	(*(unsigned *)ctx)++;
	return 7;
}

static void test_fts(void)
{
	struct msg m;
	struct fts f = {0};
	unsigned calls = 0;

	msg_load(
	    &m,
	    "Subject: =?ISO-8859-1?Q?Caf=E9_cr=E8me?= =?utf-8?b?IOKCrA==?= and\n"
	    " =?bogus\n"
	    "From: =?windows-1252?q?=80uro?= <e@x.test>\n"
	    "Content-Type: multipart/mixed; boundary=b\n\n"
	    "--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
	    "SGVsbG8g\n4oKsIHdvcmxk\n"
	    "--b\nContent-Type: text/plain; charset=ISO-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n\n"
	    "na=EFve soft=\nbreak =3D done\n"
	    "--b\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\nAAAA\n"
	    "--b\nContent-Type: text/plain; charset=x-unknown-charset\n\nraw \xff\n"
	    "--b--\n",
	    true);
	CHECK_INT(mime_text_walk(m.data, m.len, m.tree, fts_cb, &f), 0);
	CHECK_STR(f.subject, "Caf\xc3\xa9 cr\xc3\xa8me \xe2\x82\xac and =?bogus");
	CHECK_STR(f.from, "\xe2\x82\xacuro <e@x.test>");
	CHECK_INT(f.bodies, 3);
	CHECK_STR(f.body[0], "Hello \xe2\x82\xac world");
	CHECK_STR(f.body[1], "na\xc3\xafve softbreak = done");
	CHECK_STR(f.body[2], "raw \xff");
	CHECK_INT(mime_text_walk(m.data, m.len, m.tree, fts_stop_cb, &calls), 7);
	CHECK_INT(calls, 1);
	msg_free(&m);
}

static void test_deserialize_hostile(void)
{
	static const char *const blobs[] = {
	    "",     "KMS",      "XMS1\x01",
	    "KMS1", "KMS1\x00", "KMS1\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"};
	struct mime_tree *tree = NULL;
	const char *error;
	struct msg m;
	size_t size;
	unsigned char *blob;

	for (size_t i = 0; i < sizeof(blobs) / sizeof(blobs[0]); i++) {
		error = NULL;
		CHECK_INT(mime_structure_deserialize(blobs[i], strlen(blobs[i]) + (i == 4), 100,
		                                     &tree, &error),
		          -1);
		CHECK(error != NULL);
	}
	/* Every single-octet change is either refused or gives a tree whose
	 * offsets stay inside the message. */
	msg_load(&m, nested, true);
	blob = mime_structure_serialize(m.tree, &size);
	for (size_t i = 0; i < size; i++) {
		unsigned char saved = blob[i];

		for (unsigned v = 0; v < 256; v += 37) {
			blob[i] = (unsigned char)v;
			if (mime_structure_deserialize(blob, size, m.len, &tree, &error) == 0) {
				for (unsigned k = 0; k < tree->part_count; k++)
					CHECK(tree->parts[k]->body_end <= m.len);
				free(mime_imap_bodystructure(m.data, m.len, tree, true));
				mime_tree_free(&tree);
			}
		}
		blob[i] = saved;
	}
	free(blob);
	msg_free(&m);
}

/* Python's email package, when present, must see the same parts with the
 * same content types (in the same pre-order) for the well-formed tests.
 * policy.default, because compat32 does not unfold the folded boundary
 * parameter of the rfc822 test (RFC 5322 §2.2.3 says to). */
static void check_python(const char *text)
{
	static const char script[] =
	    "import sys, email\n"
	    "from email import policy\n"
	    "m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=policy.default)\n"
	    "for p in m.walk(): print(p.get_content_type())\n";
	char *dir, *path, *cmd, line[256];
	struct msg m;
	FILE *f, *out;
	unsigned i = 0;

	if (access("/usr/bin/python3", X_OK) != 0)
		return;
	dir = test_tmpdir();
	path = xasprintf("%s/m.eml", dir);
	msg_load(&m, text, true);
	f = fopen(path, "wb");
	CHECK(f != NULL && fwrite(m.data, 1, m.len, f) == m.len);
	if (f != NULL)
		fclose(f);
	cmd = xasprintf("/usr/bin/python3 -c \"$KEEL_PY\" '%s'", path);
	setenv("KEEL_PY", script, 1);
	out = popen(cmd, "r");
	while (out != NULL && fgets(line, sizeof(line), out) != NULL) {
		char *expected;

		line[strcspn(line, "\n")] = '\0';
		CHECK(i < m.tree->part_count);
		if (i >= m.tree->part_count)
			break;
		expected = xasprintf("%s/%s", m.tree->parts[i]->type, m.tree->parts[i]->subtype);
		CHECK_STR(expected, line);
		free(expected);
		i++;
	}
	CHECK(out != NULL && pclose(out) == 0);
	CHECK_INT(i, m.tree->part_count);
	msg_free(&m);
	free(cmd);
	free(path);
	test_rmtree(dir);
	free(dir);
}

static void test_python_agrees(void)
{
	check_python(simple);
	check_python(alternative);
	check_python(attachment);
	check_python(nested);
	check_python(rfc822);
}

int main(void)
{
	TEST_RUN(test_simple);
	TEST_RUN(test_alternative);
	TEST_RUN(test_attachment);
	TEST_RUN(test_nested);
	TEST_RUN(test_rfc822);
	TEST_RUN(test_rfc822_single);
	TEST_RUN(test_rfc2231);
	TEST_RUN(test_missing_close);
	TEST_RUN(test_header_only);
	TEST_RUN(test_lf_only);
	TEST_RUN(test_addresses);
	TEST_RUN(test_quoting);
	TEST_RUN(test_header_fields);
	TEST_RUN(test_digest);
	TEST_RUN(test_many_parts);
	TEST_RUN(test_deep_nesting);
	TEST_RUN(test_fts);
	TEST_RUN(test_deserialize_hostile);
	TEST_RUN(test_python_agrees);
	return test_summary();
}
