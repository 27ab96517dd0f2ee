#include "proto/imap_parser.h"

#include <assert.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/utf8.h"
#include "lib/xalloc.h"

/* How the parser works.  Input is collected a line at a time (up to
 * max_line_length) and each complete line is tokenised at once; only lists
 * stay open across lines, which happens when a literal sits inside a list.
 * Tokenising whole lines is what makes the result independent of how the
 * input was chunked: nothing is decided before the line end is seen.
 * Literal octets are never part of a line: they are copied into the
 * argument, handed to the caller, or skipped, as they arrive.
 *
 * Everything a command holds lives in an arena freed in one go when the
 * next command starts, so argument pointers are stable without per-token
 * allocations.  Each list has its own array of elements (plus the EOL
 * sentinel); an array grows by copying into a twice larger one.  Only the
 * innermost open list ever grows, so the stack of open lists (pointers to
 * their LIST arguments inside their parents' arrays) stays valid. */

#define ARENA_BLOCK_SIZE 8192
#define LIST_MIN_CAP     4

enum parser_state {
	STATE_LINE,    /* collecting a line of the command */
	STATE_LITERAL, /* reading an accepted literal's octets */
	STATE_DISCARD, /* a bad command: dropping its line up to the LF */
	STATE_SKIP,    /* a bad command: dropping the octets of its {n+} literal */
};

/* Whether the octets of a line seen so far end in a literal header
 * "{" 1*DIGIT ["+"] "}", scanned forward so that it also works on lines
 * that are discarded without being kept. */
enum tail_state {
	TAIL_NONE,
	TAIL_OPEN,   /* "{" */
	TAIL_DIGITS, /* "{" 1*DIGIT */
	TAIL_PLUS,   /* "{" 1*DIGIT "+" */
	TAIL_CLOSED, /* the whole header; only a CR may follow before the LF */
	TAIL_CR,
};

struct literal_tail {
	enum tail_state state;
	bool sync;
	bool overflow; /* the count does not fit 64 bits */
	uint64_t size;
};

struct arena_block {
	struct arena_block *next;
	size_t size, used;
	max_align_t data[];
};

struct imap_parser {
	struct imap_parser_settings set;
	enum parser_state state;
	/* An event was returned: the next call starts a new command. */
	bool reset_pending;

	unsigned char *line; /* the line being collected, no NUL inside guaranteed */
	size_t line_len, line_cap;
	struct literal_tail tail;
	bool raw_active;  /* imap_parser_read_line() is inside a line */
	bool raw_discard; /* ... which is too long */

	/* The command being read. */
	struct arena_block *arena;
	struct imap_command cmd;
	struct imap_arg root;    /* a LIST holding the command's arguments */
	struct imap_arg **stack; /* open lists: stack[0] is &root */
	unsigned depth;          /* lists open, root not counted */
	size_t args_total;       /* arguments so far, at every depth */
	size_t text_used;        /* octets counted against max_command_size */
	bool started;            /* tag and name read */
	bool need_sep;           /* the next token needs a space before it */

	/* The literal being read. */
	struct imap_arg *lit_arg;
	enum imap_literal_mode lit_mode;
	unsigned char *lit_dst;
	uint64_t lit_left;
	bool lit_refused;

	uint64_t skip_left;
	struct imap_parse_error err;
};

static void *arena_alloc(struct imap_parser *p, size_t size)
{
	struct arena_block *b = p->arena;
	size_t align = alignof(max_align_t);
	void *ret;

	size = (size + align - 1) & ~(align - 1);
	if (b == NULL || b->size - b->used < size) {
		size_t block = size > ARENA_BLOCK_SIZE ? size : ARENA_BLOCK_SIZE;

		b = xmalloc(sizeof(*b) + block);
		b->size = block;
		b->used = 0;
		b->next = p->arena;
		p->arena = b;
	}
	ret = (unsigned char *)b->data + b->used;
	b->used += size;
	return ret;
}

/* Frees the arena but one standard block, which is kept for the next
 * command: most commands fit in it. */
static void arena_reset(struct imap_parser *p)
{
	struct arena_block *keep = NULL;

	while (p->arena != NULL) {
		struct arena_block *b = p->arena;

		p->arena = b->next;
		if (keep == NULL && b->size == ARENA_BLOCK_SIZE)
			keep = b;
		else
			free(b);
	}
	if (keep != NULL) {
		keep->used = 0;
		keep->next = NULL;
		p->arena = keep;
	}
}

static size_t list_cap(size_t n)
{
	size_t cap = LIST_MIN_CAP;

	while (cap < n + 1)
		cap *= 2;
	return cap;
}

/* An empty array (just the EOL sentinel) for a new list. */
static struct imap_arg *list_array_new(struct imap_parser *p)
{
	struct imap_arg *array = arena_alloc(p, LIST_MIN_CAP * sizeof(*array));

	memset(array, 0, sizeof(*array));
	return array;
}

static void command_reset(struct imap_parser *p)
{
	arena_reset(p);
	memset(&p->cmd, 0, sizeof(p->cmd));
	memset(&p->root, 0, sizeof(p->root));
	memset(&p->err, 0, sizeof(p->err));
	p->root.type = IMAP_ARG_LIST;
	p->root.list = list_array_new(p);
	p->cmd.args = p->root.list;
	p->depth = 0;
	p->args_total = 0;
	p->text_used = 0;
	p->started = false;
	p->need_sep = false;
	p->lit_arg = NULL;
	p->line_len = 0;
	p->state = STATE_LINE;
	p->reset_pending = false;
}

struct imap_parser *imap_parser_new(const struct imap_parser_settings *set)
{
	struct imap_parser *p = xcalloc(1, sizeof(*p));

	p->set = *set;
	if (p->set.max_line_length == 0)
		p->set.max_line_length = IMAP_PARSER_DEFAULT_MAX_LINE_LENGTH;
	if (p->set.max_command_size == 0)
		p->set.max_command_size = IMAP_PARSER_DEFAULT_MAX_COMMAND_SIZE;
	if (p->set.max_literal_size == 0)
		p->set.max_literal_size = IMAP_PARSER_DEFAULT_MAX_LITERAL_SIZE;
	if (p->set.max_depth == 0)
		p->set.max_depth = IMAP_PARSER_DEFAULT_MAX_DEPTH;
	if (p->set.max_args == 0)
		p->set.max_args = IMAP_PARSER_DEFAULT_MAX_ARGS;
	assert(p->set.literal_begin == NULL || p->set.literal_data != NULL);
	p->stack = xcalloc(p->set.max_depth + 1, sizeof(*p->stack));
	p->stack[0] = &p->root;
	/* Never NULL, so that an empty line is still a valid (p->line, 0). */
	p->line_cap = 256;
	p->line = xmalloc(p->line_cap);
	command_reset(p);
	return p;
}

void imap_parser_free(struct imap_parser **parser)
{
	struct imap_parser *p = *parser;

	if (p == NULL)
		return;
	arena_reset(p);
	free(p->arena);
	free(p->stack);
	free(p->line);
	free(p);
	*parser = NULL;
}

const struct imap_command *imap_parser_command(const struct imap_parser *parser)
{
	return &parser->cmd;
}

const struct imap_parse_error *imap_parser_error(const struct imap_parser *parser)
{
	return &parser->err;
}

/* Records the error of the command being read; returns -1. */
static int command_fail(struct imap_parser *p, enum imap_parse_error_kind kind, const char *text)
{
	p->err.kind = kind;
	p->err.tag = p->cmd.tag != NULL ? p->cmd.tag : "*";
	p->err.name = p->cmd.name;
	p->err.text = text;
	p->err.fatal = false;
	return -1;
}

/* --- character classes and strings --- */

static bool is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* ATOM-CHAR of RFC 9051: CHAR except atom-specials. */
static bool is_atom_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

/* tag = 1*<any ASTRING-CHAR except "+"> */
static bool is_tag_char(unsigned char c)
{
	return c == ']' || (is_atom_char(c) && c != '+');
}

/* Where an argument atom ends (the generic, lenient atom: see the header). */
static bool is_atom_end(unsigned char c)
{
	return c == ' ' || c == '(' || c == ')' || c == '{' || c == '"';
}

static unsigned string_flags(const unsigned char *s, size_t len)
{
	unsigned flags = 0;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(s + i, len - i);

		if (s[i] >= 0x80)
			flags |= IMAP_ARG_FLAG_8BIT;
		if (n == 0) {
			flags |= IMAP_ARG_FLAG_BAD_UTF8;
			n = 1;
		}
		i += n;
	}
	return flags;
}

/* Room for len octets plus a NUL of the command's text, or NULL when that
 * would pass max_command_size. */
static char *text_alloc(struct imap_parser *p, size_t len)
{
	if (len > p->set.max_command_size - p->text_used)
		return NULL;
	p->text_used += len;
	return arena_alloc(p, len + 1);
}

static char *text_copy(struct imap_parser *p, const unsigned char *s, size_t len)
{
	char *str = text_alloc(p, len);

	if (str == NULL)
		return NULL;
	memcpy(str, s, len);
	str[len] = '\0';
	return str;
}

/* --- the argument tree --- */

/* A new zeroed argument at the end of the innermost open list. */
static struct imap_arg *arg_append(struct imap_parser *p)
{
	struct imap_arg *parent = p->stack[p->depth];
	struct imap_arg *list = (struct imap_arg *)parent->list;
	size_t cap = list_cap(parent->n);

	if (p->args_total >= p->set.max_args) {
		command_fail(p, IMAP_PARSE_ERROR_TOO_MANY_ARGS, "Too many arguments");
		return NULL;
	}
	p->args_total++;
	if (parent->n + 2 > cap) {
		struct imap_arg *grown = arena_alloc(p, 2 * cap * sizeof(*grown));

		memcpy(grown, list, (parent->n + 1) * sizeof(*grown));
		list = grown;
		parent->list = list;
	}
	memset(&list[parent->n + 1], 0, sizeof(*list));
	memset(&list[parent->n], 0, sizeof(*list));
	parent->n++;
	if (parent == &p->root) {
		p->cmd.args = p->root.list;
		p->cmd.n_args = p->root.n;
	}
	return &list[parent->n - 1];
}

/* --- tokens --- */

static int list_open(struct imap_parser *p)
{
	struct imap_arg *arg;

	if (p->depth >= p->set.max_depth)
		return command_fail(p, IMAP_PARSE_ERROR_TOO_DEEP, "Too deeply nested lists");
	arg = arg_append(p);
	if (arg == NULL)
		return -1;
	arg->type = IMAP_ARG_LIST;
	arg->list = list_array_new(p);
	p->stack[++p->depth] = arg;
	p->need_sep = false;
	return 0;
}

static int list_close(struct imap_parser *p)
{
	if (p->depth == 0)
		return command_fail(p, IMAP_PARSE_ERROR_SYNTAX, "Unexpected ')'");
	p->depth--;
	p->need_sep = true;
	return 0;
}

/* Digits only and within number64: a NUMBER. */
static bool atom_number(const char *s, size_t len, uint64_t *value_r)
{
	uint64_t value = 0;

	if (len == 0 || len > 19)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		value = value * 10 + (uint64_t)(s[i] - '0');
	}
	if (value > INT64_MAX)
		return false;
	*value_r = value;
	return true;
}

/* The end of the atom starting at s, or NULL after recording the error. */
static const unsigned char *atom_scan(struct imap_parser *p, const unsigned char *s,
                                      const unsigned char *end)
{
	bool section = false;

	for (; s < end; s++) {
		unsigned char c = *s;

		if (section) {
			if (c == ']')
				section = false;
			else if (c == '[' || is_ctl(c))
				break;
			continue;
		}
		if (is_atom_end(c))
			return s;
		if (is_ctl(c))
			break;
		if (c == '[')
			section = true;
	}
	if (s == end && !section)
		return s;
	command_fail(p, IMAP_PARSE_ERROR_SYNTAX,
	             section ? "Invalid section in brackets" : "Invalid character in atom");
	return NULL;
}

static int atom_parse(struct imap_parser *p, const unsigned char **sp, const unsigned char *end)
{
	const unsigned char *start = *sp, *stop = atom_scan(p, start, end);
	struct imap_arg *arg;
	size_t len;
	char *str;

	if (stop == NULL || (arg = arg_append(p)) == NULL)
		return -1;
	len = (size_t)(stop - start);
	if ((str = text_copy(p, start, len)) == NULL)
		return command_fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "Command too long");
	arg->type = IMAP_ARG_ATOM;
	arg->str = str;
	arg->len = len;
	arg->flags = string_flags(start, len);
	if (atom_number(str, len, &arg->num))
		arg->type = IMAP_ARG_NUMBER;
	else if (len == 3 && strncasecmp(str, "NIL", 3) == 0)
		arg->type = IMAP_ARG_NIL;
	*sp = stop;
	p->need_sep = true;
	return 0;
}

/* The unescaped length of the quoted string at s (just past its opening
 * quote), and where its closing quote is; -1 after recording the error. */
static int quoted_scan(struct imap_parser *p, const unsigned char *s, const unsigned char *end,
                       const unsigned char **close_r, size_t *len_r)
{
	size_t len = 0;

	for (; s < end && *s != '"'; s++, len++) {
		if (*s == '\\') {
			if (++s == end || (*s != '\\' && *s != '"'))
				return command_fail(p, IMAP_PARSE_ERROR_SYNTAX,
				                    "Invalid escape in quoted string");
		} else if (*s == '\0' || *s == '\r' || *s == '\n') {
			return command_fail(p, IMAP_PARSE_ERROR_SYNTAX,
			                    "Invalid character in quoted string");
		}
	}
	if (s == end)
		return command_fail(p, IMAP_PARSE_ERROR_SYNTAX, "Unterminated quoted string");
	*close_r = s;
	*len_r = len;
	return 0;
}

static int quoted_parse(struct imap_parser *p, const unsigned char **sp, const unsigned char *end)
{
	const unsigned char *s = *sp + 1, *close;
	struct imap_arg *arg;
	size_t len, i = 0;
	char *str;

	if (quoted_scan(p, s, end, &close, &len) < 0 || (arg = arg_append(p)) == NULL)
		return -1;
	if ((str = text_alloc(p, len)) == NULL)
		return command_fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "Command too long");
	for (; s < close; s++) {
		if (*s == '\\')
			s++;
		str[i++] = (char)*s;
	}
	str[len] = '\0';
	arg->type = IMAP_ARG_STRING;
	arg->str = str;
	arg->len = len;
	arg->flags = string_flags((const unsigned char *)str, len);
	*sp = close + 1;
	p->need_sep = true;
	return 0;
}

/* A literal header must be the rest of the line: "~"? "{" 1*DIGIT "+"? "}".
 * Its size is what the line's tail scan found; the octets come later. */
static int literal_parse(struct imap_parser *p, const unsigned char **sp, const unsigned char *end)
{
	const unsigned char *s = *sp;
	bool binary = *s == '~';
	struct imap_arg *arg;
	size_t digits = 0;

	s += binary ? 2 : 1;
	while (s < end && *s >= '0' && *s <= '9') {
		s++;
		digits++;
	}
	if (s < end && *s == '+')
		s++;
	if (digits == 0 || s == end || *s != '}' || s + 1 != end)
		return command_fail(p, IMAP_PARSE_ERROR_SYNTAX, "Invalid literal");
	if ((arg = arg_append(p)) == NULL)
		return -1;
	arg->type = IMAP_ARG_LITERAL;
	arg->flags =
	    (binary ? IMAP_ARG_FLAG_BINARY : 0) | (s[-1] == '+' ? IMAP_ARG_FLAG_NONSYNC : 0);
	p->lit_arg = arg;
	*sp = end;
	p->need_sep = true;
	return 0;
}

static int token_parse(struct imap_parser *p, const unsigned char **sp, const unsigned char *end)
{
	const unsigned char *s = *sp;

	switch (*s) {
	case '(':
		*sp = s + 1;
		return list_open(p);
	case ')':
		*sp = s + 1;
		return list_close(p);
	case '"':
		return quoted_parse(p, sp, end);
	case '{':
		return literal_parse(p, sp, end);
	case '~':
		if (s + 1 < end && s[1] == '{')
			return literal_parse(p, sp, end);
		return atom_parse(p, sp, end);
	default:
		return atom_parse(p, sp, end);
	}
}

/* tag SP: sets cmd.tag, or returns -1 without recording an error. */
static int head_parse_tag(struct imap_parser *p, const unsigned char **sp, const unsigned char *end)
{
	const unsigned char *s = *sp;

	while (s < end && is_tag_char(*s))
		s++;
	if (s == *sp || s == end || *s != ' ')
		return -1;
	if ((p->cmd.tag = text_copy(p, *sp, (size_t)(s - *sp))) == NULL)
		return -1;
	*sp = s;
	return 0;
}

static int head_parse(struct imap_parser *p, const unsigned char **sp, const unsigned char *end)
{
	const unsigned char *s, *start;
	char *name;

	if (head_parse_tag(p, sp, end) < 0)
		return command_fail(p, IMAP_PARSE_ERROR_SYNTAX, "Invalid tag");
	for (s = *sp; s < end && *s == ' '; s++)
		;
	for (start = s; s < end && is_atom_char(*s); s++)
		;
	if (s == start || (s < end && *s != ' '))
		return command_fail(p, IMAP_PARSE_ERROR_SYNTAX, "Invalid command name");
	if ((name = text_copy(p, start, (size_t)(s - start))) == NULL)
		return command_fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "Command too long");
	for (char *c = name; *c != '\0'; c++) {
		if (*c >= 'a' && *c <= 'z')
			*c = (char)(*c - 'a' + 'A');
	}
	p->cmd.name = name;
	p->started = true;
	p->need_sep = true;
	*sp = s;
	return 0;
}

/* One complete line of the command, without its line end. */
static int line_parse(struct imap_parser *p, const unsigned char *s, const unsigned char *end)
{
	if (!p->started && head_parse(p, &s, end) < 0)
		return -1;
	while (s < end) {
		if (*s == ' ') {
			s++;
			p->need_sep = false;
		} else if (p->need_sep && *s != ')') {
			return command_fail(p, IMAP_PARSE_ERROR_SYNTAX,
			                    "Missing space between arguments");
		} else if (token_parse(p, &s, end) < 0) {
			return -1;
		}
	}
	return 0;
}

/* --- the literal header at a line's end --- */

static void tail_feed(struct literal_tail *t, unsigned char c)
{
	if (c == '{') {
		t->state = TAIL_OPEN;
		t->size = 0;
		t->overflow = false;
	} else if (c >= '0' && c <= '9' && (t->state == TAIL_OPEN || t->state == TAIL_DIGITS)) {
		unsigned digit = (unsigned)(c - '0');

		if (t->size > (UINT64_MAX - digit) / 10)
			t->overflow = true;
		else
			t->size = t->size * 10 + digit;
		t->state = TAIL_DIGITS;
	} else if (c == '+' && t->state == TAIL_DIGITS) {
		t->state = TAIL_PLUS;
	} else if (c == '}' && (t->state == TAIL_DIGITS || t->state == TAIL_PLUS)) {
		t->sync = t->state == TAIL_DIGITS;
		t->state = TAIL_CLOSED;
	} else if (c == '\r' && t->state == TAIL_CLOSED) {
		t->state = TAIL_CR;
	} else {
		t->state = TAIL_NONE;
	}
}

static void tail_feed_buf(struct literal_tail *t, const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		tail_feed(t, s[i]);
}

static bool tail_found(const struct literal_tail *t)
{
	return t->state == TAIL_CLOSED || t->state == TAIL_CR;
}

/* A bad command's line has ended (p->tail describes its end).  Finds the
 * end of the command, reporting the error once there. */
static enum imap_parse_result discard_line_end(struct imap_parser *p)
{
	bool nonsync = tail_found(&p->tail) && !p->tail.sync;

	p->line_len = 0;
	if (nonsync && !p->tail.overflow) {
		/* The client sends the literal regardless: skip it, then the
		 * rest of the command's line after it. */
		p->skip_left = p->tail.size;
		p->state = p->skip_left > 0 ? STATE_SKIP : STATE_DISCARD;
		p->tail.state = TAIL_NONE;
		return IMAP_PARSE_NEED_MORE;
	}
	p->err.fatal = nonsync;
	p->state = STATE_LINE;
	return IMAP_PARSE_ERROR;
}

/* --- states --- */

static enum imap_parse_result literal_accept(struct imap_parser *p)
{
	struct literal_tail *t = &p->tail;
	struct imap_literal_info info = {t->size, t->sync, false, p->depth, 0};
	struct imap_arg *arg = p->lit_arg;

	if (t->overflow || t->size > p->set.max_literal_size) {
		command_fail(p, IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "Literal too big");
		return discard_line_end(p);
	}
	info.binary = (arg->flags & IMAP_ARG_FLAG_BINARY) != 0;
	info.index = p->stack[p->depth]->n - 1;
	arg->len = (size_t)t->size;
	p->lit_mode = p->set.literal_begin == NULL
	                  ? IMAP_LITERAL_BUFFER
	                  : p->set.literal_begin(&p->cmd, &info, p->set.context);
	if (p->lit_mode == IMAP_LITERAL_BUFFER) {
		if ((p->lit_dst = (unsigned char *)text_alloc(p, arg->len)) == NULL) {
			command_fail(p, IMAP_PARSE_ERROR_LITERAL_TOO_BIG, "Literal too big");
			return discard_line_end(p);
		}
		p->lit_dst[arg->len] = '\0';
		arg->str = (const char *)p->lit_dst;
	} else {
		arg->flags |= IMAP_ARG_FLAG_STREAMED;
	}
	p->lit_left = t->size;
	p->lit_refused = false;
	p->line_len = 0;
	p->state = p->lit_left > 0 ? STATE_LITERAL : STATE_LINE;
	return t->sync ? IMAP_PARSE_CONTINUATION_NEEDED : IMAP_PARSE_NEED_MORE;
}

/* A whole line of the command has been collected in p->line. */
static enum imap_parse_result line_end(struct imap_parser *p)
{
	size_t len = p->line_len;

	if (len > 0 && p->line[len - 1] == '\r')
		len--;
	p->tail.state = TAIL_NONE;
	tail_feed_buf(&p->tail, p->line, len);
	if (!p->started && len == 0) {
		p->line_len = 0;
		return IMAP_PARSE_NEED_MORE;
	}
	if (len > p->set.max_line_length) {
		if (!p->started) {
			const unsigned char *s = p->line;

			(void)head_parse_tag(p, &s, p->line + len);
		}
		command_fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "Line too long");
		return discard_line_end(p);
	}
	p->lit_arg = NULL;
	if (line_parse(p, p->line, p->line + len) < 0)
		return discard_line_end(p);
	if (p->lit_arg != NULL)
		return literal_accept(p);
	p->line_len = 0;
	if (p->depth > 0) {
		command_fail(p, IMAP_PARSE_ERROR_SYNTAX, "Unterminated list");
		return discard_line_end(p);
	}
	return IMAP_PARSE_COMMAND;
}

static void line_append(struct imap_parser *p, const unsigned char *s, size_t len)
{
	if (p->line_len + len > p->line_cap) {
		size_t cap = p->line_cap;

		while (cap < p->line_len + len)
			cap *= 2;
		p->line = xrealloc(p->line, cap);
		p->line_cap = cap;
	}
	memcpy(p->line + p->line_len, s, len);
	p->line_len += len;
}

/* Collects octets up to a LF.  A line is kept up to max_line_length octets
 * plus its CR; past that it is discarded instead.  The kept part is the
 * same however the input was cut, so the tag found in it is too. */
static enum imap_parse_result state_line(struct imap_parser *p, const unsigned char *in,
                                         size_t size, size_t *n_r)
{
	const unsigned char *lf = memchr(in, '\n', size);
	size_t chunk = lf != NULL ? (size_t)(lf - in) : size;
	size_t room = p->set.max_line_length + 1 - p->line_len;

	if (chunk > room) {
		const unsigned char *s;

		line_append(p, in, room);
		s = p->line;
		if (!p->started)
			(void)head_parse_tag(p, &s, p->line + p->line_len);
		command_fail(p, IMAP_PARSE_ERROR_LINE_TOO_LONG, "Line too long");
		p->tail.state = TAIL_NONE;
		tail_feed_buf(&p->tail, p->line, p->line_len);
		p->line_len = 0;
		p->state = STATE_DISCARD;
		*n_r = room;
		return IMAP_PARSE_NEED_MORE;
	}
	line_append(p, in, chunk);
	if (lf == NULL) {
		*n_r = size;
		return IMAP_PARSE_NEED_MORE;
	}
	*n_r = chunk + 1;
	return line_end(p);
}

static void literal_done(struct imap_parser *p)
{
	struct imap_arg *arg = p->lit_arg;

	if (p->lit_mode == IMAP_LITERAL_BUFFER) {
		arg->flags |= string_flags((const unsigned char *)arg->str, arg->len);
		if (memchr(arg->str, '\0', arg->len) != NULL)
			arg->flags |= IMAP_ARG_FLAG_NUL;
	}
	p->lit_arg = NULL;
	p->state = STATE_LINE;
}

static enum imap_parse_result state_literal(struct imap_parser *p, const unsigned char *in,
                                            size_t size, size_t *n_r)
{
	size_t n = p->lit_left < size ? (size_t)p->lit_left : size;

	if (p->lit_mode == IMAP_LITERAL_BUFFER) {
		memcpy(p->lit_dst, in, n);
		p->lit_dst += n;
	} else {
		if (memchr(in, '\0', n) != NULL)
			p->lit_arg->flags |= IMAP_ARG_FLAG_NUL;
		if (!p->lit_refused && p->set.literal_data(in, n, p->set.context) < 0) {
			p->lit_refused = true;
			p->lit_arg->flags |= IMAP_ARG_FLAG_STREAM_ERR;
		}
	}
	p->lit_left -= n;
	if (p->lit_left == 0)
		literal_done(p);
	*n_r = n;
	return IMAP_PARSE_NEED_MORE;
}

static enum imap_parse_result state_discard(struct imap_parser *p, const unsigned char *in,
                                            size_t size, size_t *n_r)
{
	const unsigned char *lf = memchr(in, '\n', size);
	size_t chunk = lf != NULL ? (size_t)(lf - in) : size;

	tail_feed_buf(&p->tail, in, chunk);
	if (lf == NULL) {
		*n_r = size;
		return IMAP_PARSE_NEED_MORE;
	}
	*n_r = chunk + 1;
	return discard_line_end(p);
}

static enum imap_parse_result state_skip(struct imap_parser *p, size_t size, size_t *n_r)
{
	size_t n = p->skip_left < size ? (size_t)p->skip_left : size;

	p->skip_left -= n;
	if (p->skip_left == 0) {
		p->tail.state = TAIL_NONE;
		p->state = STATE_DISCARD;
	}
	*n_r = n;
	return IMAP_PARSE_NEED_MORE;
}

enum imap_parse_result imap_parser_feed(struct imap_parser *p, const void *data, size_t size,
                                        size_t *consumed_r)
{
	const unsigned char *in = data;
	enum imap_parse_result ret = IMAP_PARSE_NEED_MORE;
	size_t pos = 0;

	assert(!p->raw_active);
	if (p->reset_pending)
		command_reset(p);
	while (ret == IMAP_PARSE_NEED_MORE && pos < size) {
		size_t n = 0;

		switch (p->state) {
		case STATE_LINE:
			ret = state_line(p, in + pos, size - pos, &n);
			break;
		case STATE_LITERAL:
			ret = state_literal(p, in + pos, size - pos, &n);
			break;
		case STATE_DISCARD:
			ret = state_discard(p, in + pos, size - pos, &n);
			break;
		case STATE_SKIP:
			ret = state_skip(p, size - pos, &n);
			break;
		}
		pos += n;
	}
	if (ret == IMAP_PARSE_COMMAND || ret == IMAP_PARSE_ERROR)
		p->reset_pending = true;
	*consumed_r = pos;
	return ret;
}

/* --- raw lines --- */

static enum imap_parse_result raw_line_fail(struct imap_parser *p)
{
	p->raw_active = false;
	p->raw_discard = false;
	p->line_len = 0;
	p->err.kind = IMAP_PARSE_ERROR_LINE_TOO_LONG;
	p->err.tag = "*";
	p->err.text = "Line too long";
	p->reset_pending = true;
	return IMAP_PARSE_ERROR;
}

enum imap_parse_result imap_parser_read_line(struct imap_parser *p, const void *data, size_t size,
                                             size_t *consumed_r, const char **line_r, size_t *len_r)
{
	const unsigned char *in = data, *lf = memchr(in, '\n', size);
	size_t chunk = lf != NULL ? (size_t)(lf - in) : size;

	if (p->reset_pending)
		command_reset(p);
	assert(p->raw_active || (p->state == STATE_LINE && !p->started && p->line_len == 0));
	p->raw_active = true;
	*consumed_r = lf != NULL ? chunk + 1 : size;
	if (!p->raw_discard && p->line_len + chunk > p->set.max_line_length + 1) {
		p->raw_discard = true;
		p->line_len = 0;
	}
	if (p->raw_discard)
		return lf != NULL ? raw_line_fail(p) : IMAP_PARSE_NEED_MORE;
	line_append(p, in, chunk);
	if (lf == NULL)
		return IMAP_PARSE_NEED_MORE;
	if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
		p->line_len--;
	if (p->line_len > p->set.max_line_length)
		return raw_line_fail(p);
	line_append(p, (const unsigned char *)"", 1);
	*line_r = (const char *)p->line;
	*len_r = p->line_len - 1;
	p->raw_active = false;
	p->reset_pending = true;
	return IMAP_PARSE_LINE;
}

bool imap_arg_atom_equals(const struct imap_arg *arg, const char *word)
{
	if (arg->type != IMAP_ARG_ATOM && arg->type != IMAP_ARG_NUMBER && arg->type != IMAP_ARG_NIL)
		return false;
	return strlen(word) == arg->len && strncasecmp(arg->str, word, arg->len) == 0;
}

/* --- sequence sets --- */

/* seq-number = nz-number / "*" */
static int seq_number_parse(const char *s, size_t len, uint32_t *value_r)
{
	uint64_t value = 0;

	if (len == 1 && s[0] == '*') {
		*value_r = UINT32_MAX;
		return 0;
	}
	if (len == 0 || len > 10 || s[0] < '1' || s[0] > '9')
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		value = value * 10 + (uint64_t)(s[i] - '0');
	}
	if (value > UINT32_MAX)
		return -1;
	*value_r = (uint32_t)value;
	return 0;
}

/* seq-number / seq-range, as [s, s + len). */
static int seq_range_parse(const char *s, size_t len, struct imap_seq_range *range_r)
{
	const char *colon = memchr(s, ':', len);
	uint32_t first, last;

	if (colon == NULL) {
		if (seq_number_parse(s, len, &first) < 0)
			return -1;
		last = first;
	} else if (seq_number_parse(s, (size_t)(colon - s), &first) < 0 ||
	           seq_number_parse(colon + 1, len - (size_t)(colon - s) - 1, &last) < 0) {
		return -1;
	}
	range_r->first = first < last ? first : last;
	range_r->last = first < last ? last : first;
	return 0;
}

int imap_seqset_parse(const char *str, size_t len, struct imap_seqset *set_r, const char **error_r)
{
	size_t parts = 1, start = 0;

	memset(set_r, 0, sizeof(*set_r));
	if (len == 1 && str[0] == '$') {
		set_r->saved = true;
		return 0;
	}
	for (size_t i = 0; i < len; i++)
		parts += str[i] == ',';
	set_r->ranges = xcalloc(parts, sizeof(*set_r->ranges));
	for (size_t i = 0; i <= len; i++) {
		if (i < len && str[i] != ',')
			continue;
		if (seq_range_parse(str + start, i - start, &set_r->ranges[set_r->count]) < 0) {
			imap_seqset_free(set_r);
			*error_r = "Invalid sequence set";
			return -1;
		}
		set_r->count++;
		start = i + 1;
	}
	return 0;
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	set->ranges = NULL;
	set->count = 0;
}
