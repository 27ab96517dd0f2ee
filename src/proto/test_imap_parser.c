#include "proto/imap_parser.h"

#include <stdbool.h>
#include <stdlib.h>

#include "lib/test.h"
#include "lib/xalloc.h"

/* Every event of a run is written out as one line of a transcript, so that
 * runs over differently chunked input compare as strings:
 *   C <tag> <name> <args>    a command
 *   +                        a continuation request
 *   E <kind> <tag> <text>    an error (" fatal" appended when fatal)
 * Arguments: atoms as sent, #N numbers, NIL, "..." strings and {N}"..."
 * literals (octets outside 0x21..0x7e as \xHH), {N}S streamed literals,
 * (...) lists; flags as !8 !u (bad UTF-8) !0 (NUL) !b (binary) !p ({n+})
 * !e (stream refused). */
struct out {
	char *buf;
	size_t len;
};

static void out_add(struct out *o, const char *s, size_t len)
{
	o->buf = xrealloc(o->buf, o->len + len + 1);
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	o->buf[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_escaped(struct out *o, const char *s, size_t len)
{
	char hex[8];

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c > 0x20 && c < 0x7f && c != '\\') {
			out_add(o, s + i, 1);
		} else {
			snprintf(hex, sizeof(hex), "\\x%02x", c);
			out_str(o, hex);
		}
	}
}

static void out_flags(struct out *o, unsigned flags)
{
	static const char *const names[] = {"!8", "!u", "!0", "!b", "!p", "", "!e"};

	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((flags & (1u << i)) != 0)
			out_str(o, names[i]);
	}
}

static void out_args(struct out *o, const struct imap_arg *args, size_t n);

static void out_arg(struct out *o, const struct imap_arg *arg)
{
	char num[64];

	switch (arg->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_NIL:
		out_escaped(o, arg->str, arg->len);
		break;
	case IMAP_ARG_NUMBER:
		snprintf(num, sizeof(num), "#%llu", (unsigned long long)arg->num);
		out_str(o, num);
		break;
	case IMAP_ARG_STRING:
	case IMAP_ARG_LITERAL:
		if (arg->type == IMAP_ARG_LITERAL) {
			snprintf(num, sizeof(num), "{%zu}", arg->len);
			out_str(o, num);
		}
		if (arg->str == NULL) {
			out_str(o, "S");
			break;
		}
		out_str(o, "\"");
		out_escaped(o, arg->str, arg->len);
		out_str(o, "\"");
		break;
	case IMAP_ARG_LIST:
		out_str(o, "(");
		out_args(o, arg->list, arg->n);
		out_str(o, ")");
		break;
	case IMAP_ARG_EOL:
		out_str(o, "EOL?");
		break;
	}
	out_flags(o, arg->flags);
}

static void out_args(struct out *o, const struct imap_arg *args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			out_str(o, " ");
		out_arg(o, &args[i]);
	}
	if (args[n].type != IMAP_ARG_EOL)
		out_str(o, " NO-EOL");
}

static void out_event(struct out *o, struct imap_parser *p, enum imap_parse_result res)
{
	const struct imap_command *cmd = imap_parser_command(p);
	const struct imap_parse_error *err = imap_parser_error(p);
	char kind[16];

	if (res == IMAP_PARSE_CONTINUATION_NEEDED) {
		out_str(o, "+\n");
	} else if (res == IMAP_PARSE_COMMAND) {
		out_str(o, "C ");
		out_str(o, cmd->tag);
		out_str(o, " ");
		out_str(o, cmd->name);
		out_str(o, " ");
		out_args(o, cmd->args, cmd->n_args);
		out_str(o, "\n");
	} else if (res == IMAP_PARSE_ERROR) {
		snprintf(kind, sizeof(kind), "E %d ", err->kind);
		out_str(o, kind);
		out_str(o, err->tag);
		out_str(o, " ");
		out_str(o, err->text);
		out_str(o, err->fatal ? " fatal\n" : "\n");
	}
}

/* Streaming: literals of STREAM_MIN octets or more are streamed into
 * streamed[]. */
#define STREAM_MIN 10

struct stream {
	struct out data;
	unsigned begins;
	bool refuse;
	struct imap_literal_info last;
	size_t last_n_args;
};

static enum imap_literal_mode stream_begin(const struct imap_command *cmd,
                                           const struct imap_literal_info *info, void *context)
{
	struct stream *s = context;

	s->begins++;
	s->last = *info;
	s->last_n_args = cmd->n_args;
	/* The partial command is readable and ends with the literal. */
	if (cmd->tag == NULL || cmd->name == NULL || cmd->args[cmd->n_args].type != IMAP_ARG_EOL)
		abort();
	return info->size >= STREAM_MIN ? IMAP_LITERAL_STREAM : IMAP_LITERAL_BUFFER;
}

static int stream_data(const unsigned char *data, size_t size, void *context)
{
	struct stream *s = context;

	if (size == 0)
		abort();
	out_add(&s->data, (const char *)data, size);
	return s->refuse ? -1 : 0;
}

static struct imap_parser_settings settings;
static struct stream stream;

/* Feeds input in pieces starting at cuts[] (ascending); returns the
 * transcript, plus the streamed octets when streaming. */
static char *run_cuts(const char *input, size_t len, const size_t *cuts, size_t ncuts)
{
	struct imap_parser *p = imap_parser_new(&settings);
	struct out o = {xstrdup(""), 0};
	size_t start = 0;

	for (size_t i = 0; i <= ncuts; i++) {
		size_t stop = i < ncuts ? cuts[i] : len;

		while (start < stop) {
			size_t consumed;
			enum imap_parse_result res =
			    imap_parser_feed(p, input + start, stop - start, &consumed);

			if (res == IMAP_PARSE_NEED_MORE)
				CHECK_INT(consumed, stop - start);
			CHECK(consumed <= stop - start);
			out_event(&o, p, res);
			start += consumed;
		}
	}
	imap_parser_free(&p);
	CHECK(p == NULL);
	if (stream.data.len > 0) {
		out_str(&o, "S=");
		out_escaped(&o, stream.data.buf, stream.data.len);
		free(stream.data.buf);
		stream.data.buf = NULL;
		stream.data.len = 0;
	}
	return o.buf;
}

static char *run(const char *input, size_t len)
{
	return run_cuts(input, len, NULL, 0);
}

/* The transcript of input fed whole, checked equal to the transcripts of
 * input fed one octet at a time and in two pieces at every split point. */
static char *run_all_splits(const char *input, size_t len)
{
	char *whole = run(input, len);
	size_t *cuts = xcalloc(len + 1, sizeof(*cuts));
	char *t;

	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	t = run_cuts(input, len, cuts, len > 0 ? len - 1 : 0);
	CHECK_STR(t, whole);
	free(t);
	for (size_t i = 1; i < len; i++) {
		t = run_cuts(input, len, &i, 1);
		if (strcmp(t, whole) != 0)
			fprintf(stderr, "  split at %zu\n", i);
		CHECK_STR(t, whole);
		free(t);
	}
	free(cuts);
	return whole;
}

static void check_run(const char *input, const char *expected)
{
	char *t = run_all_splits(input, strlen(input));

	CHECK_STR(t, expected);
	free(t);
}

static void check_run_len(const char *input, size_t len, const char *expected)
{
	char *t = run_all_splits(input, len);

	CHECK_STR(t, expected);
	free(t);
}

static void reset_settings(void)
{
	memset(&settings, 0, sizeof(settings));
	memset(&stream, 0, sizeof(stream));
}

static void test_tokens(void)
{
	reset_settings();
	check_run("a1 NOOP\r\n", "C a1 NOOP \n");
	check_run("tag.1 login user \"pa ss\"\r\n", "C tag.1 LOGIN user \"pa\\x20ss\"\n");
	check_run("a2 x nil NIL Nil 0 42 9223372036854775807 9223372036854775808 007\r\n",
	          "C a2 X nil NIL Nil #0 #42 #9223372036854775807 9223372036854775808 #7\n");
	check_run("a3 STORE 1:*,3 +FLAGS.SILENT (\\Seen \\Deleted $Junk)\r\n",
	          "C a3 STORE 1:*,3 +FLAGS.SILENT (\\x5cSeen \\x5cDeleted $Junk)\n");
	check_run("a4 LIST \"\" %/*\r\n", "C a4 LIST \"\" %/*\n");
	check_run("a5 X \"a\\\\b\\\"c\" \"\"\r\n", "C a5 X \"a\\x5cb\"c\" \"\"\n");
	/* Bare LF ends a line too; extra spaces are tolerated. */
	check_run("a6  X  a   b  \n", "C a6 X a b\n");
	check_run("a7 X ~abc ]x\r\n", "C a7 X ~abc ]x\n");
	/* Tags may hold "]" but not "+"; "*" is not a tag. */
	check_run("a]1 NOOP\r\n", "C a]1 NOOP \n");
	check_run("a+1 NOOP\r\n", "E 1 * Invalid tag\n");
	check_run("* NOOP\r\n", "E 1 * Invalid tag\n");
	check_run("a1\r\n", "E 1 * Invalid tag\n");
	check_run("a1 \r\n", "E 1 a1 Invalid command name\n");
	check_run("a1 NO{OP\r\n", "E 1 a1 Invalid command name\n");
	/* Empty lines between commands are ignored. */
	check_run("\r\n\na1 NOOP\r\n\r\n", "C a1 NOOP \n");
	check_run("\na1 NOOP\r\n", "C a1 NOOP \n");
}

static void test_fetch_att_one_token(void)
{
	reset_settings();
	check_run("a1 FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.2048> FLAGS)\r\n",
	          "C a1 FETCH #1 (BODY.PEEK[HEADER.FIELDS\\x20(FROM\\x20TO)]<0.2048> FLAGS)\n");
	check_run("a2 FETCH 1 BODY[HEADER.FIELDS (FROM TO)]<0.2048>\r\n",
	          "C a2 FETCH #1 BODY[HEADER.FIELDS\\x20(FROM\\x20TO)]<0.2048>\n");
	check_run("a3 FETCH 2:4 (BODY[] BODY[1.2.MIME] BINARY.PEEK[1]<0.10>)\r\n",
	          "C a3 FETCH 2:4 (BODY[] BODY[1.2.MIME] BINARY.PEEK[1]<0.10>)\n");
	check_run("a4 FETCH 1 BODY[HEADER.FIELDS (\"Subject\")]\r\n",
	          "C a4 FETCH #1 BODY[HEADER.FIELDS\\x20(\"Subject\")]\n");
	check_run("a5 FETCH 1 BODY[HEADER\r\n", "E 1 a5 Invalid section in brackets\n");
	check_run("a6 FETCH 1 BODY[a[b]]\r\n", "E 1 a6 Invalid section in brackets\n");
	check_run("a7 FETCH 1 (BODY[TEXT]\r\n", "E 1 a7 Unterminated list\n");
}

static void test_lists(void)
{
	reset_settings();
	check_run("a1 X () (a) (a (b (c ()) d) e)\r\n", "C a1 X () (a) (a (b (c ()) d) e)\n");
	check_run("a2 X ( a b )\r\n", "C a2 X (a b)\n");
	check_run("a3 X (a)(b)\r\n", "E 1 a3 Missing space between arguments\n");
	check_run("a4 X a(b)\r\n", "E 1 a4 Missing space between arguments\n");
	check_run("a5 X (a))\r\n", "E 1 a5 Unexpected ')'\n");
	check_run("a6 X ((a)\r\n", "E 1 a6 Unterminated list\n");
	check_run("a7 X \"a\"b\r\n", "E 1 a7 Missing space between arguments\n");
}

static void test_list_tree_shape(void)
{
	struct imap_parser *p;
	const struct imap_command *cmd;
	const char *in = "t SEARCH OR (FROM a NOT (TO b)) UID 1:5\r\n";
	size_t consumed;

	reset_settings();
	p = imap_parser_new(&settings);
	CHECK_INT(imap_parser_feed(p, in, strlen(in), &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(consumed, strlen(in));
	cmd = imap_parser_command(p);
	CHECK_INT(cmd->n_args, 4);
	CHECK(imap_arg_atom_equals(&cmd->args[0], "or"));
	CHECK(!imap_arg_atom_equals(&cmd->args[0], "o"));
	CHECK_INT(cmd->args[1].type, IMAP_ARG_LIST);
	CHECK_INT(cmd->args[1].n, 4);
	CHECK_INT(cmd->args[1].list[3].type, IMAP_ARG_LIST);
	CHECK_INT(cmd->args[1].list[3].n, 2);
	CHECK_STR(cmd->args[1].list[3].list[1].str, "b");
	CHECK_INT(cmd->args[1].list[3].list[2].type, IMAP_ARG_EOL);
	CHECK_INT(cmd->args[1].list[4].type, IMAP_ARG_EOL);
	CHECK_INT(cmd->args[4].type, IMAP_ARG_EOL);
	CHECK_INT(imap_parser_error(p)->kind, IMAP_PARSE_ERROR_NONE);
	imap_parser_free(&p);
}

static void test_quoted_errors(void)
{
	reset_settings();
	check_run_len("a1 LOGIN \"us\0er\" x\r\na2 NOOP\r\n", 29,
	              "E 1 a1 Invalid character in quoted string\nC a2 NOOP \n");
	check_run("a1 LOGIN \"us\rer\" x\r\na2 NOOP\r\n",
	          "E 1 a1 Invalid character in quoted string\nC a2 NOOP \n");
	check_run("a1 LOGIN \"user\r\na2 NOOP\r\n",
	          "E 1 a1 Unterminated quoted string\nC a2 NOOP \n");
	check_run("a1 LOGIN \"us\\er\" x\r\n", "E 1 a1 Invalid escape in quoted string\n");
	check_run("a1 LOGIN us\ter x\r\n", "E 1 a1 Invalid character in atom\n");
	check_run_len("a1 LOGIN u\0 x\r\n", 15, "E 1 a1 Invalid character in atom\n");
	check_run("a1 LOGIN u\rx x\r\n", "E 1 a1 Invalid character in atom\n");
}

static void test_literals(void)
{
	static const char session[] = "a1 LOGIN {4}\r\nuser {8+}\r\npa\r\ns\0rd\r\n"
	                              "a2 APPEND INBOX (\\Seen) ~{5}\r\nab\0cd\r\n"
	                              "a3 X ({0}\r\n {0+}\r\n) x\r\n";
	const char *expected = "+\nC a1 LOGIN {4}\"user\" {8}\"pa\\x0d\\x0as\\x00rd\"!0!p\n"
	                       "+\nC a2 APPEND INBOX (\\x5cSeen) {5}\"ab\\x00cd\"!0!b\n"
	                       "+\nC a3 X ({0}\"\" {0}\"\"!p) x\n";

	reset_settings();
	check_run_len(session, sizeof(session) - 1, expected);
	/* A literal must end its line, and be separated like any argument. */
	check_run("a1 X {3}x\r\n", "E 1 a1 Invalid literal\n");
	check_run("a1 X {}\r\n", "E 1 a1 Invalid literal\n");
	check_run("a1 X {+}\r\n", "E 1 a1 Invalid literal\n");
	check_run("a1 X {3}\r\nabcdef\r\n", "+\nE 1 a1 Missing space between arguments\n");
	check_run("a1 X a{3}\r\n", "E 1 a1 Missing space between arguments\n");
	/* A literal in a bad line: no continuation for {n}, skipped for {n+}. */
	check_run("a1 X ) {3}\r\na2 NOOP\r\n", "E 1 a1 Unexpected ')'\nC a2 NOOP \n");
	check_run("a1 X ) {3+}\r\nabc\r\na2 NOOP\r\n", "E 1 a1 Unexpected ')'\nC a2 NOOP \n");
	check_run("a1 X ) {3+}\r\nab\n y {2+}\r\n\r\n\r\na2 NOOP\r\n",
	          "E 1 a1 Unexpected ')'\nC a2 NOOP \n");
	check_run("a1 X ) {0000000000000000000000003+}\r\n\r\n\r\na2 NOOP\r\n",
	          "E 1 a1 Unexpected ')'\nC a2 NOOP \n");
}

static void test_continuations_only_for_sync(void)
{
	static const char in[] = "a1 X {1}\r\na {1+}\r\nb ~{1}\r\nc ~{1+}\r\nd\r\n";
	char *t;
	unsigned conts = 0;

	reset_settings();
	t = run_all_splits(in, sizeof(in) - 1);
	CHECK_STR(t, "+\n+\nC a1 X {1}\"a\" {1}\"b\"!p {1}\"c\"!b {1}\"d\"!b!p\n");
	for (const char *s = t; (s = strstr(s, "+\n")) != NULL; s++)
		conts++;
	CHECK_INT(conts, 2);
	free(t);
}

static void check_huge_literal(const char *count, bool nonsync, const char *expected)
{
	char *in = xasprintf("a1 APPEND INBOX {%s%s}\r\na2 NOOP\r\n", count, nonsync ? "+" : "");

	check_run(in, expected);
	free(in);
}

static void test_literal_too_big(void)
{
	reset_settings();
	/* Synchronising: refused at once, no continuation; the client sends
	 * no octets, so the next line is the next command. */
	check_huge_literal("4294967296", false, "E 3 a1 Literal too big\nC a2 NOOP \n");
	check_huge_literal("18446744073709551615", false, "E 3 a1 Literal too big\nC a2 NOOP \n");
	check_huge_literal("18446744073709551616", false, "E 3 a1 Literal too big\nC a2 NOOP \n");
	check_huge_literal("99999999999999999999999", false,
	                   "E 3 a1 Literal too big\nC a2 NOOP \n");
	/* Non-synchronising and uncountable: the parser cannot stay in step. */
	check_huge_literal("99999999999999999999999", true,
	                   "E 3 a1 Literal too big fatal\nC a2 NOOP \n");

	/* Non-synchronising: skipped, then the error. */
	settings.max_literal_size = 5;
	check_run("a1 APPEND INBOX {6+}\r\nabcdef\r\na2 NOOP\r\n",
	          "E 3 a1 Literal too big\nC a2 NOOP \n");
	check_run("a1 APPEND INBOX {5+}\r\nabcde\r\na2 NOOP\r\n",
	          "C a1 APPEND INBOX {5}\"abcde\"!p\nC a2 NOOP \n");
	/* Buffered literals also count against max_command_size. */
	settings.max_literal_size = 0;
	settings.max_command_size = 40;
	check_run("a1 LOGIN {20}\r\n01234567890123456789 {20}\r\n", "+\nE 3 a1 Literal too big\n");
}

/* {4294967296+} over the default 64 MiB limit: 4 GiB skipped, not held. */
static void test_literal_skip_4g(void)
{
	static const char head[] = "a1 APPEND INBOX {4294967296+}\r\n";
	static const char tail[] = "\r\na2 NOOP\r\n";
	static char zeros[1 << 16];
	struct imap_parser *p;
	size_t consumed;
	uint64_t left = 4294967296ull;
	bool ok = true;

	reset_settings();
	p = imap_parser_new(&settings);
	CHECK_INT(imap_parser_feed(p, head, sizeof(head) - 1, &consumed), IMAP_PARSE_NEED_MORE);
	while (left > 0 && ok) {
		size_t n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);

		ok = imap_parser_feed(p, zeros, n, &consumed) == IMAP_PARSE_NEED_MORE &&
		     consumed == n;
		left -= n;
	}
	CHECK(ok);
	CHECK_INT(imap_parser_feed(p, tail, sizeof(tail) - 1, &consumed), IMAP_PARSE_ERROR);
	CHECK_INT(consumed, 2);
	CHECK_INT(imap_parser_error(p)->kind, IMAP_PARSE_ERROR_LITERAL_TOO_BIG);
	CHECK_STR(imap_parser_error(p)->tag, "a1");
	CHECK_STR(imap_parser_error(p)->name, "APPEND");
	CHECK(!imap_parser_error(p)->fatal);
	CHECK_INT(imap_parser_feed(p, tail + 2, sizeof(tail) - 3, &consumed), IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->tag, "a2");
	imap_parser_free(&p);
}

static void test_deep_nesting(void)
{
	size_t depth = 1000, len = 0;
	char *in = xmalloc(2 * depth + 64);

	reset_settings();
	len += (size_t)sprintf(in, "a1 X ");
	memset(in + len, '(', depth);
	len += depth;
	memset(in + len, ')', depth);
	len += depth;
	len += (size_t)sprintf(in + len, "\r\na2 NOOP\r\n");
	check_run_len(in, len, "E 4 a1 Too deeply nested lists\nC a2 NOOP \n");

	/* Exactly max_depth is fine. */
	settings.max_depth = 3;
	check_run("a1 X (((a)))\r\n", "C a1 X (((a)))\n");
	check_run("a1 X ((((a))))\r\n", "E 4 a1 Too deeply nested lists\n");
	free(in);
}

static void test_too_many_args(void)
{
	reset_settings();
	settings.max_args = 4;
	check_run("a1 X a b c d\r\n", "C a1 X a b c d\n");
	check_run("a1 X a b c d e\r\na2 NOOP\r\n", "E 5 a1 Too many arguments\nC a2 NOOP \n");
	check_run("a1 X (a b c)\r\n", "C a1 X (a b c)\n");
	check_run("a1 X (a b c d)\r\n", "E 5 a1 Too many arguments\n");
	check_run("a1 X a b c {1+}\r\nx\r\na2 NOOP\r\n", "C a1 X a b c {1}\"x\"!p\nC a2 NOOP \n");
	check_run("a1 X a b c d {1+}\r\nx\r\na2 NOOP\r\n",
	          "E 5 a1 Too many arguments\nC a2 NOOP \n");
}

static void test_line_too_long(void)
{
	reset_settings();
	settings.max_line_length = 20;
	check_run("a1 X 0123456789abcde\r\n", "C a1 X 0123456789abcde\n");
	check_run("a1 X 0123456789abcdef\r\na2 NOOP\r\n", "E 2 a1 Line too long\nC a2 NOOP \n");
	check_run("a1 X 0123456789abcdef\na2 NOOP\r\n", "E 2 a1 Line too long\nC a2 NOOP \n");
	check_run("a1 X 0123456789abcdefghijklmnopqrstuvwxyz\r\na2 NOOP\r\n",
	          "E 2 a1 Line too long\nC a2 NOOP \n");
	/* No tag in sight: "*". */
	check_run("0123456789012345678901234567890123456789\r\na2 NOOP\r\n",
	          "E 2 * Line too long\nC a2 NOOP \n");
	/* The discarded line ends in {n+}: its octets are skipped too. */
	check_run("a1 X 0123456789abcdefghijklmnopqrstuvwxyz {5+}\r\n\r\n\r\n\r\na2 NOOP\r\n",
	          "E 2 a1 Line too long\nC a2 NOOP \n");
	check_run("a1 X 0123456789abcdefghijklmnopqrstuvwxyz {5}\r\na2 NOOP\r\n",
	          "E 2 a1 Line too long\nC a2 NOOP \n");
	/* The limit is per line: literals start new ones. */
	check_run("a1 X 0123456789 {1+}\r\nx 0123456789abcdefghi\r\n",
	          "C a1 X #123456789 {1}\"x\"!p 0123456789abcdefghi\n");
	check_run("a1 X 0123456789 {1+}\r\nx 0123456789abcdefghij\r\n", "E 2 a1 Line too long\n");
}

static void test_pipelined(void)
{
	static const char in[] = "a1 CAPABILITY\r\na2 LOGIN alice secret\r\na3 SELECT INBOX\r\n"
	                         "a4 UID FETCH 1:* (UID FLAGS)\r\na5 IDLE\r\n";
	struct imap_parser *p;
	size_t pos = 0, consumed, ncmds = 0;

	reset_settings();
	check_run(in, "C a1 CAPABILITY \nC a2 LOGIN alice secret\nC a3 SELECT INBOX\n"
	              "C a4 UID FETCH 1:* (UID FLAGS)\nC a5 IDLE \n");
	/* Each command consumes exactly its own octets. */
	p = imap_parser_new(&settings);
	while (pos < sizeof(in) - 1) {
		CHECK_INT(imap_parser_feed(p, in + pos, sizeof(in) - 1 - pos, &consumed),
		          IMAP_PARSE_COMMAND);
		pos += consumed;
		ncmds++;
		if (ncmds == 2)
			CHECK_INT(pos, strlen("a1 CAPABILITY\r\na2 LOGIN alice secret\r\n"));
	}
	CHECK_INT(ncmds, 5);
	imap_parser_free(&p);
}

static void test_utf8_flags(void)
{
	reset_settings();
	check_run("a1 SELECT \"Entw\xc3\xbc rfe\" caf\xc3\xa9\r\n",
	          "C a1 SELECT \"Entw\\xc3\\xbc\\x20rfe\"!8 caf\\xc3\\xa9!8\n");
	/* Lone continuation, overlong, surrogate, past U+10FFFF, truncated. */
	check_run(
	    "a1 X \"\x80\" \"\xc0\xaf\" \"\xed\xa0\x80\" \"\xf4\x90\x80\x80\" \"\xe2\x82\"\r\n",
	    "C a1 X \"\\x80\"!8!u \"\\xc0\\xaf\"!8!u \"\\xed\\xa0\\x80\"!8!u "
	    "\"\\xf4\\x90\\x80\\x80\"!8!u \"\\xe2\\x82\"!8!u\n");
	check_run("a1 X \"\xf0\x9f\x93\xa7\" {2}\r\n\xff\xfe\r\n",
	          "+\nC a1 X \"\\xf0\\x9f\\x93\\xa7\"!8 {2}\"\\xff\\xfe\"!8!u\n");
}

static void test_streaming(void)
{
	static const char in[] = "a1 APPEND INBOX (\\Seen) {16}\r\nSubject: hi\r\n\r\nx "
	                         "{3}\r\nabc\r\na2 APPEND Sent ~{12+}\r\n\0\0binary\0\0\0\0\r\n";
	char *t;

	reset_settings();
	settings.literal_begin = stream_begin;
	settings.literal_data = stream_data;
	settings.context = &stream;
	check_run_len(in, sizeof(in) - 1,
	              "+\n+\nC a1 APPEND INBOX (\\x5cSeen) {16}S {3}\"abc\"\n"
	              "C a2 APPEND Sent {12}S!0!b!p\n"
	              "S=Subject:\\x20hi\\x0d\\x0a\\x0d\\x0ax\\x00\\x00binary\\x00\\x00\\x00\\x00");
	/* A refused stream: the octets are offered once, the command goes on. */
	stream.refuse = true;
	t = run("a1 APPEND INBOX {12+}\r\n0123456789ab\r\n", 37);
	CHECK_STR(t, "C a1 APPEND INBOX {12}S!p!e\nS=0123456789ab");
	free(t);
	/* Streamed literals can be bigger than max_command_size. */
	reset_settings();
	settings.literal_begin = stream_begin;
	settings.literal_data = stream_data;
	settings.context = &stream;
	settings.max_command_size = 32;
	check_run("a1 APPEND INBOX {40+}\r\n0123456789012345678901234567890123456789\r\n",
	          "C a1 APPEND INBOX {40}S!p\nS=0123456789012345678901234567890123456789");
}

/* literal_begin sees where the literal is, in the command read so far. */
static void test_literal_info(void)
{
	static const char in[] = "a1 APPEND INBOX CATENATE (URL \"/x\" TEXT ~{12+}\r\n"
	                         "0123456789ab)\r\n";
	struct imap_parser *p;
	size_t consumed;

	reset_settings();
	settings.literal_begin = stream_begin;
	settings.literal_data = stream_data;
	settings.context = &stream;
	p = imap_parser_new(&settings);
	CHECK_INT(imap_parser_feed(p, in, 48, &consumed), IMAP_PARSE_NEED_MORE);
	CHECK_INT(stream.begins, 1);
	CHECK_INT(stream.last.size, 12);
	CHECK(!stream.last.sync && stream.last.binary);
	CHECK_INT(stream.last.depth, 1);
	CHECK_INT(stream.last.index, 3);
	CHECK_INT(stream.last_n_args, 3);
	CHECK_INT(imap_parser_feed(p, in + 48, sizeof(in) - 49, &consumed), IMAP_PARSE_COMMAND);
	CHECK_INT(imap_parser_command(p)->args[2].n, 4);
	CHECK_INT(imap_parser_command(p)->args[2].list[3].len, 12);
	CHECK_STR(stream.data.buf, "0123456789ab");
	free(stream.data.buf);
	imap_parser_free(&p);
}

static void test_max_command_size(void)
{
	reset_settings();
	settings.max_command_size = 20;
	check_run("a1 X abcdefghijklmnopq\r\n", "C a1 X abcdefghijklmnopq\n");
	check_run("a1 X abcdefghijklmnopqr\r\n", "E 2 a1 Command too long\n");
}

static void test_read_line(void)
{
	struct imap_parser *p;
	static const char in[] = "a1 AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\na2 NOOP\r\n";
	const char *line;
	size_t len, consumed, pos = 0;

	reset_settings();
	settings.max_line_length = 30;
	p = imap_parser_new(&settings);
	CHECK_INT(imap_parser_feed(p, in, sizeof(in) - 1, &consumed), IMAP_PARSE_COMMAND);
	pos += consumed;
	/* The raw line, fed in two pieces. */
	CHECK_INT(imap_parser_read_line(p, in + pos, 5, &consumed, &line, &len),
	          IMAP_PARSE_NEED_MORE);
	CHECK_INT(consumed, 5);
	pos += consumed;
	CHECK_INT(imap_parser_read_line(p, in + pos, sizeof(in) - 1 - pos, &consumed, &line, &len),
	          IMAP_PARSE_LINE);
	CHECK_STR(line, "AGFsaWNlAHNlY3JldA==");
	CHECK_INT(len, 20);
	pos += consumed;
	CHECK_INT(imap_parser_feed(p, in + pos, sizeof(in) - 1 - pos, &consumed),
	          IMAP_PARSE_COMMAND);
	CHECK_STR(imap_parser_command(p)->tag, "a2");
	/* Too long: discarded to the LF, then an error. */
	CHECK_INT(imap_parser_read_line(p, "0123456789012345678901234567890123456789", 40,
	                                &consumed, &line, &len),
	          IMAP_PARSE_NEED_MORE);
	CHECK_INT(imap_parser_read_line(p, "xx\r\nDONE\r\n", 10, &consumed, &line, &len),
	          IMAP_PARSE_ERROR);
	CHECK_INT(consumed, 4);
	CHECK_INT(imap_parser_error(p)->kind, IMAP_PARSE_ERROR_LINE_TOO_LONG);
	CHECK_STR(imap_parser_error(p)->tag, "*");
	CHECK_INT(imap_parser_read_line(p, "DONE\n", 5, &consumed, &line, &len), IMAP_PARSE_LINE);
	CHECK_STR(line, "DONE");
	imap_parser_free(&p);
}

static void check_seqset(const char *str, const char *expected)
{
	struct imap_seqset set;
	const char *error = NULL;
	struct out o = {xstrdup(""), 0};
	char buf[32];

	if (imap_seqset_parse(str, strlen(str), &set, &error) < 0) {
		CHECK(error != NULL);
		CHECK(set.ranges == NULL && set.count == 0);
		out_str(&o, "error");
	} else if (set.saved) {
		out_str(&o, "$");
	}
	for (size_t i = 0; i < set.count; i++) {
		snprintf(buf, sizeof(buf), "%s%u:%u", i > 0 ? "," : "", set.ranges[i].first,
		         set.ranges[i].last);
		out_str(&o, buf);
	}
	CHECK_STR(o.buf, expected);
	imap_seqset_free(&set);
	free(o.buf);
}

static void test_seqset(void)
{
	check_seqset("1", "1:1");
	check_seqset("1:*,3,5:7", "1:4294967295,3:3,5:7");
	check_seqset("*:1", "1:4294967295");
	check_seqset("7:5,*", "5:7,4294967295:4294967295");
	check_seqset("4294967295", "4294967295:4294967295");
	check_seqset("$", "$");
	check_seqset("0", "error");
	check_seqset("1:0", "error");
	check_seqset("01", "error");
	check_seqset("1:", "error");
	check_seqset(":5", "error");
	check_seqset("1,,2", "error");
	check_seqset(",1", "error");
	check_seqset("1,", "error");
	check_seqset("", "error");
	check_seqset("1:2:3", "error");
	check_seqset("$,1", "error");
	check_seqset("$$", "error");
	check_seqset("4294967296", "error");
	check_seqset("99999999999999999999", "error");
	check_seqset("1:*x", "error");
	check_seqset("a", "error");
}

int main(void)
{
	TEST_RUN(test_tokens);
	TEST_RUN(test_fetch_att_one_token);
	TEST_RUN(test_lists);
	TEST_RUN(test_list_tree_shape);
	TEST_RUN(test_quoted_errors);
	TEST_RUN(test_literals);
	TEST_RUN(test_continuations_only_for_sync);
	TEST_RUN(test_literal_too_big);
	TEST_RUN(test_literal_skip_4g);
	TEST_RUN(test_deep_nesting);
	TEST_RUN(test_too_many_args);
	TEST_RUN(test_line_too_long);
	TEST_RUN(test_pipelined);
	TEST_RUN(test_utf8_flags);
	TEST_RUN(test_streaming);
	TEST_RUN(test_literal_info);
	TEST_RUN(test_max_command_size);
	TEST_RUN(test_read_line);
	TEST_RUN(test_seqset);
	return test_summary();
}
