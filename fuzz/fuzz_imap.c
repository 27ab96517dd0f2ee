/* libFuzzer target for src/proto/imap_parser.c.
 *
 * The input is a client's side of a session.  It is fed whole, then in
 * chunks whose sizes come from a generator seeded by the input (small and
 * large), under two settings (tight limits that the input reaches easily,
 * and the defaults with every literal of 8 octets or more streamed).  Each
 * run writes its events into a transcript; the transcripts of one setting
 * must be identical, streamed octets included.  After a command named IDLE
 * or AUTHENTICATE the next line is read with imap_parser_read_line(), as a
 * session would.
 *
 * Each event is checked against the header's contract: all input consumed
 * on NEED_MORE, a tag and upper-case name on commands, a well-formed tree
 * (EOL sentinels, types, strings NUL-terminated, no NUL where the grammar
 * forbids it, flags consistent, limits respected), a reason and a tag on
 * errors; every atom is also run through imap_seqset_parse(). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

struct out {
	char *buf;
	size_t len;
};

static void out_add(struct out *o, const void *s, size_t len)
{
	o->buf = realloc(o->buf, o->len + len + 1);
	CHECK(o->buf != NULL);
	memcpy(o->buf + o->len, s, len);
	o->len += len;
	o->buf[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void out_num(struct out *o, const char *prefix, unsigned long long n)
{
	char buf[48];

	snprintf(buf, sizeof(buf), "%s%llu", prefix, n);
	out_str(o, buf);
}

struct run {
	struct imap_parser_settings set;
	struct out out;
	struct out streamed;
	unsigned max_depth_seen;
	size_t args_seen;
};

static enum imap_literal_mode stream_begin(const struct imap_command *cmd,
                                           const struct imap_literal_info *info, void *context)
{
	CHECK(cmd->tag != NULL && cmd->name != NULL && cmd->n_args > 0);
	CHECK(cmd->args[cmd->n_args].type == IMAP_ARG_EOL);
	CHECK(info->size <= IMAP_PARSER_DEFAULT_MAX_LITERAL_SIZE);
	(void)context;
	return info->size >= 8 ? IMAP_LITERAL_STREAM : IMAP_LITERAL_BUFFER;
}

static int stream_data(const unsigned char *data, size_t size, void *context)
{
	struct run *r = context;

	CHECK(size > 0);
	out_add(&r->streamed, data, size);
	return 0;
}

static void check_atom(const struct imap_arg *arg)
{
	struct imap_seqset set;
	const char *error = NULL;

	bool section = false;

	/* No control character; spaces only inside a [section]. */
	for (size_t i = 0; i < arg->len; i++) {
		unsigned char c = (unsigned char)arg->str[i];

		CHECK(c >= 0x20 && c != 0x7f && (c != ' ' || section));
		if (c == '[' || c == ']')
			section = c == '[';
	}
	CHECK(!section);
	if (imap_seqset_parse(arg->str, arg->len, &set, &error) < 0) {
		CHECK(error != NULL && set.ranges == NULL && set.count == 0);
		return;
	}
	CHECK(set.saved == (arg->len == 1 && arg->str[0] == '$'));
	CHECK(set.saved || set.count > 0);
	for (size_t i = 0; i < set.count; i++)
		CHECK(set.ranges[i].first >= 1 && set.ranges[i].first <= set.ranges[i].last);
	imap_seqset_free(&set);
}

static void out_args(struct run *r, const struct imap_arg *args, size_t n, unsigned depth);

static void out_arg(struct run *r, const struct imap_arg *arg, unsigned depth)
{
	struct out *o = &r->out;

	r->args_seen++;
	out_num(o, " t", arg->type);
	out_num(o, "f", arg->flags);
	CHECK((arg->flags & IMAP_ARG_FLAG_BAD_UTF8) == 0 || (arg->flags & IMAP_ARG_FLAG_8BIT) != 0);
	if (arg->type == IMAP_ARG_LIST) {
		CHECK(arg->str == NULL && arg->flags == 0 && arg->list != NULL);
		out_str(o, "(");
		out_args(r, arg->list, arg->n, depth + 1);
		out_str(o, ")");
		return;
	}
	CHECK(arg->type >= IMAP_ARG_ATOM && arg->type <= IMAP_ARG_LITERAL);
	out_num(o, "l", arg->len);
	if (arg->type == IMAP_ARG_LITERAL && (arg->flags & IMAP_ARG_FLAG_STREAMED) != 0) {
		CHECK(arg->str == NULL);
		return;
	}
	CHECK(arg->str != NULL && arg->str[arg->len] == '\0');
	out_str(o, ":");
	out_add(o, arg->str, arg->len);
	if (arg->type == IMAP_ARG_ATOM || arg->type == IMAP_ARG_NUMBER || arg->type == IMAP_ARG_NIL)
		check_atom(arg);
	if (arg->type == IMAP_ARG_NUMBER)
		CHECK(arg->num <= INT64_MAX && strtoull(arg->str, NULL, 10) == arg->num);
	if (arg->type == IMAP_ARG_STRING)
		CHECK(memchr(arg->str, '\0', arg->len) == NULL);
	if (arg->type == IMAP_ARG_LITERAL)
		CHECK(((arg->flags & IMAP_ARG_FLAG_NUL) != 0) ==
		      (memchr(arg->str, '\0', arg->len) != NULL));
}

static void out_args(struct run *r, const struct imap_arg *args, size_t n, unsigned depth)
{
	if (depth > r->max_depth_seen)
		r->max_depth_seen = depth;
	for (size_t i = 0; i < n; i++)
		out_arg(r, &args[i], depth);
	CHECK(args[n].type == IMAP_ARG_EOL);
}

static void check_command(struct run *r, const struct imap_command *cmd)
{
	struct out *o = &r->out;
	unsigned max_depth =
	    r->set.max_depth != 0 ? r->set.max_depth : IMAP_PARSER_DEFAULT_MAX_DEPTH;
	unsigned max_args = r->set.max_args != 0 ? r->set.max_args : IMAP_PARSER_DEFAULT_MAX_ARGS;

	CHECK(cmd->tag != NULL && cmd->tag[0] != '\0' && strcmp(cmd->tag, "*") != 0);
	CHECK(strchr(cmd->tag, '+') == NULL && strchr(cmd->tag, ' ') == NULL);
	CHECK(cmd->name != NULL && cmd->name[0] != '\0');
	for (const char *c = cmd->name; *c != '\0'; c++)
		CHECK(!(*c >= 'a' && *c <= 'z') && *c > 0x20);
	out_str(o, "C ");
	out_str(o, cmd->tag);
	out_str(o, " ");
	out_str(o, cmd->name);
	r->max_depth_seen = 0;
	r->args_seen = 0;
	out_args(r, cmd->args, cmd->n_args, 0);
	CHECK(r->max_depth_seen <= max_depth && r->args_seen <= max_args);
	out_str(o, "\n");
}

static void check_error(struct run *r, const struct imap_parse_error *err)
{
	CHECK(err->kind >= IMAP_PARSE_ERROR_SYNTAX && err->kind <= IMAP_PARSE_ERROR_TOO_MANY_ARGS);
	CHECK(err->tag != NULL && err->tag[0] != '\0');
	CHECK(err->text != NULL && err->text[0] != '\0');
	out_num(&r->out, "E", err->kind);
	out_str(&r->out, " ");
	out_str(&r->out, err->tag);
	out_str(&r->out, err->fatal ? " fatal\n" : "\n");
}

static bool wants_raw_line(const struct imap_command *cmd)
{
	return strcmp(cmd->name, "IDLE") == 0 || strcmp(cmd->name, "AUTHENTICATE") == 0;
}

/* One feed (or read_line) call; returns the octets consumed. */
static size_t step(struct run *r, struct imap_parser *p, const uint8_t *in, size_t n, bool *raw)
{
	size_t consumed = 0;
	enum imap_parse_result res;

	if (*raw) {
		const char *line = NULL;
		size_t len = 0;

		res = imap_parser_read_line(p, in, n, &consumed, &line, &len);
		if (res == IMAP_PARSE_LINE) {
			CHECK(line != NULL && line[len] == '\0' && memchr(line, '\n', len) == NULL);
			out_str(&r->out, "L ");
			out_add(&r->out, line, len);
			out_str(&r->out, "\n");
		}
	} else {
		res = imap_parser_feed(p, in, n, &consumed);
	}
	CHECK(consumed <= n);
	if (res == IMAP_PARSE_NEED_MORE) {
		CHECK(consumed == n);
		return consumed;
	}
	if (res == IMAP_PARSE_CONTINUATION_NEEDED) {
		CHECK(!*raw);
		out_str(&r->out, "+\n");
	} else if (res == IMAP_PARSE_COMMAND) {
		CHECK(!*raw);
		check_command(r, imap_parser_command(p));
		CHECK(imap_parser_error(p)->kind == IMAP_PARSE_ERROR_NONE);
	} else if (res == IMAP_PARSE_ERROR) {
		check_error(r, imap_parser_error(p));
	} else {
		CHECK(res == IMAP_PARSE_LINE && *raw);
	}
	*raw = res == IMAP_PARSE_COMMAND && wants_raw_line(imap_parser_command(p));
	return consumed;
}

/* chunk == 0: all at once; otherwise sizes 1..chunk from a generator. */
static void run_feed(struct run *r, const uint8_t *data, size_t size, uint32_t seed, unsigned chunk)
{
	struct imap_parser *p = imap_parser_new(&r->set);
	size_t pos = 0;
	bool raw = false;

	while (pos < size) {
		size_t n = size - pos, end;

		if (chunk != 0) {
			seed ^= seed << 13;
			seed ^= seed >> 17;
			seed ^= seed << 5;
			if (n > 1 + seed % chunk)
				n = 1 + seed % chunk;
		}
		end = pos + n;
		while (pos < end)
			pos += step(r, p, data + pos, end - pos, &raw);
	}
	imap_parser_free(&p);
	CHECK(p == NULL);
}

static void fuzz_settings(const struct imap_parser_settings *set, const uint8_t *data, size_t size,
                          uint32_t seed)
{
	struct run runs[3];
	static const unsigned chunks[3] = {0, 7, 500};

	for (int i = 0; i < 3; i++) {
		memset(&runs[i], 0, sizeof(runs[i]));
		runs[i].set = *set;
		runs[i].set.context = &runs[i];
		run_feed(&runs[i], data, size, seed, chunks[i]);
		out_str(&runs[i].out, "");
		out_str(&runs[i].streamed, "");
	}
	for (int i = 1; i < 3; i++) {
		CHECK(runs[i].out.len == runs[0].out.len &&
		      memcmp(runs[i].out.buf, runs[0].out.buf, runs[0].out.len) == 0);
		CHECK(runs[i].streamed.len == runs[0].streamed.len &&
		      memcmp(runs[i].streamed.buf, runs[0].streamed.buf, runs[0].streamed.len) ==
		          0);
	}
	for (int i = 0; i < 3; i++) {
		free(runs[i].out.buf);
		free(runs[i].streamed.buf);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed = 2166136261u;
	struct imap_parser_settings tight = {
	    .max_line_length = 64,
	    .max_command_size = 300,
	    .max_literal_size = 100,
	    .max_depth = 4,
	    .max_args = 20,
	};
	struct imap_parser_settings streaming = {
	    .literal_begin = stream_begin,
	    .literal_data = stream_data,
	};

	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	seed |= 1;
	fuzz_settings(&tight, data, size, seed);
	fuzz_settings(&streaming, data, size, seed);
	return 0;
}
