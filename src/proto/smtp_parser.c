#include "proto/smtp_parser.h"

#include <string.h>
#include <strings.h>

/* The parser reads the caller's line through a cursor (p, end) and never
 * writes to it: the line is not NUL-terminated and may be a view into the
 * session's input buffer.  Only pieces handed to src/mail/address.c are
 * copied, into bounded local buffers, to get the NUL it needs. */

/* '<' + route + ':' + local part + '@' + domain + '>', with room to spare:
 * anything longer cannot be a valid path. */
#define PATH_BUF_SIZE (ADDRESS_ROUTE_MAX + ADDRESS_MAX + 8)

struct parse_ctx {
	const char *p, *end; /* the arguments not yet read */
	unsigned flags;
	struct smtp_command *cmd;
	const char **error_r;
	/* MAIL AUTH= decoded: checked once SMTPUTF8 is known (it may come
	 * later on the line). */
	char auth[ADDRESS_MAX + 3];
	unsigned params_seen; /* bit per entry of param_table */
};

typedef int parse_verb_cb(struct parse_ctx *ctx);
typedef int parse_param_cb(struct parse_ctx *ctx, const char *value, size_t len);

static int parse_fail(struct parse_ctx *ctx, enum smtp_parse_error error, const char *text)
{
	ctx->cmd->error = error;
	*ctx->error_r = text;
	return -1;
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static void skip_spaces(struct parse_ctx *ctx)
{
	while (ctx->p < ctx->end && *ctx->p == ' ')
		ctx->p++;
}

/* The next space-delimited word: [*word_r, return value). */
static const char *next_word(struct parse_ctx *ctx, const char **word_r)
{
	const char *p = ctx->p;

	*word_r = p;
	while (p < ctx->end && *p != ' ')
		p++;
	ctx->p = p;
	return p;
}

static bool word_equals(const char *word, size_t len, const char *keyword)
{
	return strlen(keyword) == len && strncasecmp(word, keyword, len) == 0;
}

enum number_result { NUMBER_OK, NUMBER_INVALID, NUMBER_OVERFLOW };

/* 1*DIGIT into a uint64_t, refusing to wrap. */
static enum number_result number_parse(const char *p, size_t len, uint64_t *value_r)
{
	uint64_t value = 0;

	if (len == 0)
		return NUMBER_INVALID;
	for (size_t i = 0; i < len; i++) {
		unsigned digit;

		if (!is_digit((unsigned char)p[i]))
			return NUMBER_INVALID;
		digit = (unsigned)(p[i] - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return NUMBER_OVERFLOW;
		value = value * 10 + digit;
	}
	*value_r = value;
	return NUMBER_OK;
}

static int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The octet of the hexchar "+HH" at p (len octets available), or -1. */
static int xtext_hexchar(const char *p, size_t len)
{
	int hi, lo;

	if (len < 3 || (hi = hex_value((unsigned char)p[1])) < 0 ||
	    (lo = hex_value((unsigned char)p[2])) < 0)
		return -1;
	return hi * 16 + lo;
}

/* Decodes RFC 3461 xtext into out (at most max octets plus NUL).  Decoded
 * octets must be printable ASCII, or also 8-bit with allow_8bit (an AUTH=
 * mailbox may be UTF-8 under SMTPUTF8, checked later by address.c): a
 * control character smuggled in as "+0D" would reach logs and DSNs. */
static int xtext_decode(const char *p, size_t len, char *out, size_t max, bool allow_8bit,
                        const char **error_r)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)p[i];

		if (c == '+') {
			c = xtext_hexchar(p + i, len - i);
			if (c < 0) {
				*error_r = "invalid xtext escape";
				return -1;
			}
			i += 2;
			if (c < 0x20 || c == 0x7f || (c >= 0x80 && !allow_8bit)) {
				*error_r = "xtext decodes to a non-printable character";
				return -1;
			}
		} else if (c < 33 || c > 126) {
			*error_r = "invalid character in xtext";
			return -1;
		}
		if (n == max) {
			*error_r = "parameter value too long";
			return -1;
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return 0;
}

/* ---- ESMTP parameters ------------------------------------------------ */

static int param_require_value(struct parse_ctx *ctx, const char *value, const char *text)
{
	if (value == NULL)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, text);
	return 0;
}

static int param_size(struct parse_ctx *ctx, const char *value, size_t len)
{
	struct smtp_mail_params *mail = &ctx->cmd->mail;

	if (param_require_value(ctx, value, "SIZE requires a value") < 0)
		return -1;
	switch (number_parse(value, len, &mail->size)) {
	case NUMBER_OK:
		mail->size_given = true;
		return 0;
	case NUMBER_OVERFLOW:
		return parse_fail(ctx, SMTP_PARSE_ERROR_SIZE, "SIZE too large");
	case NUMBER_INVALID:
		break;
	}
	return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "invalid SIZE value");
}

static int param_body(struct parse_ctx *ctx, const char *value, size_t len)
{
	struct smtp_mail_params *mail = &ctx->cmd->mail;

	if (param_require_value(ctx, value, "BODY requires a value") < 0)
		return -1;
	if (word_equals(value, len, "7BIT"))
		mail->body = SMTP_BODY_7BIT;
	else if (word_equals(value, len, "8BITMIME"))
		mail->body = SMTP_BODY_8BITMIME;
	else if (word_equals(value, len, "BINARYMIME"))
		mail->body = SMTP_BODY_BINARYMIME;
	else
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "invalid BODY value");
	return 0;
}

static int param_smtputf8(struct parse_ctx *ctx, const char *value, size_t len)
{
	if (value != NULL)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "SMTPUTF8 takes no value");
	ctx->cmd->mail.smtputf8 = true;
	return 0;
}

static int param_ret(struct parse_ctx *ctx, const char *value, size_t len)
{
	struct smtp_mail_params *mail = &ctx->cmd->mail;

	if (param_require_value(ctx, value, "RET requires a value") < 0)
		return -1;
	if (word_equals(value, len, "FULL"))
		mail->ret = SMTP_RET_FULL;
	else if (word_equals(value, len, "HDRS"))
		mail->ret = SMTP_RET_HDRS;
	else
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "invalid RET value");
	return 0;
}

static int param_envid(struct parse_ctx *ctx, const char *value, size_t len)
{
	const char *error;

	if (param_require_value(ctx, value, "ENVID requires a value") < 0)
		return -1;
	if (xtext_decode(value, len, ctx->cmd->mail.envid, SMTP_ENVID_MAX, false, &error) < 0)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, error);
	return 0;
}

static int param_auth(struct parse_ctx *ctx, const char *value, size_t len)
{
	const char *error;

	if (param_require_value(ctx, value, "AUTH requires a value") < 0)
		return -1;
	if (xtext_decode(value, len, ctx->auth, sizeof(ctx->auth) - 1, true, &error) < 0)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, error);
	ctx->cmd->mail.auth_given = true;
	return 0;
}

/* One NOTIFY list element as a flag, 0 when unknown. */
static unsigned notify_flag(const char *word, size_t len)
{
	if (word_equals(word, len, "NEVER"))
		return SMTP_NOTIFY_NEVER;
	if (word_equals(word, len, "SUCCESS"))
		return SMTP_NOTIFY_SUCCESS;
	if (word_equals(word, len, "FAILURE"))
		return SMTP_NOTIFY_FAILURE;
	if (word_equals(word, len, "DELAY"))
		return SMTP_NOTIFY_DELAY;
	return 0;
}

static int param_notify(struct parse_ctx *ctx, const char *value, size_t len)
{
	const char *p, *end;
	unsigned flags = 0;

	if (param_require_value(ctx, value, "NOTIFY requires a value") < 0)
		return -1;
	end = value + len;
	for (p = value;; p++) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *word_end = comma != NULL ? comma : end;
		unsigned flag = notify_flag(p, (size_t)(word_end - p));

		if (flag == 0)
			return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "invalid NOTIFY value");
		if ((flags & flag) != 0)
			return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER,
			                  "NOTIFY lists a value twice");
		flags |= flag;
		if (comma == NULL)
			break;
		p = comma;
	}
	if ((flags & SMTP_NOTIFY_NEVER) != 0 && flags != SMTP_NOTIFY_NEVER)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER,
		                  "NOTIFY=NEVER cannot be combined with other values");
	ctx->cmd->rcpt.notify = flags;
	return 0;
}

/* RFC 5322 atext without '+' and '=', which xtext cannot carry raw. */
static bool is_addr_type_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*-/?^_`{|}~", c) != NULL);
}

static int param_orcpt(struct parse_ctx *ctx, const char *value, size_t len)
{
	struct smtp_rcpt_params *rcpt = &ctx->cmd->rcpt;
	const char *semicolon, *error;
	size_t type_len;

	if (param_require_value(ctx, value, "ORCPT requires a value") < 0)
		return -1;
	semicolon = memchr(value, ';', len);
	if (semicolon == NULL || semicolon == value || semicolon + 1 == value + len)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER,
		                  "ORCPT must be addr-type;address");
	type_len = (size_t)(semicolon - value);
	if (type_len > SMTP_ORCPT_TYPE_MAX)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "ORCPT address type too long");
	for (size_t i = 0; i < type_len; i++)
		if (!is_addr_type_char((unsigned char)value[i]))
			return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER,
			                  "invalid ORCPT address type");
	if (xtext_decode(semicolon + 1, len - type_len - 1, rcpt->orcpt_addr, SMTP_ORCPT_MAX, false,
	                 &error) < 0)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, error);
	memcpy(rcpt->orcpt_type, value, type_len);
	rcpt->orcpt_type[type_len] = '\0';
	return 0;
}

struct param_def {
	const char *keyword;
	enum smtp_verb verb;
	parse_param_cb *parse;
};

static const struct param_def param_table[] = {
    {"SIZE", SMTP_VERB_MAIL, param_size},         {"BODY", SMTP_VERB_MAIL, param_body},
    {"SMTPUTF8", SMTP_VERB_MAIL, param_smtputf8}, {"RET", SMTP_VERB_MAIL, param_ret},
    {"ENVID", SMTP_VERB_MAIL, param_envid},       {"AUTH", SMTP_VERB_MAIL, param_auth},
    {"NOTIFY", SMTP_VERB_RCPT, param_notify},     {"ORCPT", SMTP_VERB_RCPT, param_orcpt},
};

/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
static bool keyword_valid(const char *p, size_t len)
{
	if (len == 0 || !(is_alpha((unsigned char)p[0]) || is_digit((unsigned char)p[0])))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_alpha((unsigned char)p[i]) && !is_digit((unsigned char)p[i]) && p[i] != '-')
			return false;
	return true;
}

/* esmtp-value = 1*(%d33-60 / %d62-126), widened to 8-bit octets (RFC 6531
 * §3.3); each parameter then checks its own value, none of which allows
 * 8-bit octets raw. */
static bool value_valid(const char *p, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= 32 || c == '=' || c == 127)
			return false;
	}
	return true;
}

static int parse_param(struct parse_ctx *ctx, const char *word, size_t len)
{
	const char *eq = memchr(word, '=', len);
	size_t key_len = eq != NULL ? (size_t)(eq - word) : len;
	const char *value = eq != NULL ? eq + 1 : NULL;
	size_t value_len = eq != NULL ? len - key_len - 1 : 0;

	if (!keyword_valid(word, key_len) || (value != NULL && !value_valid(value, value_len)))
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "invalid parameter syntax");
	for (size_t i = 0; i < sizeof(param_table) / sizeof(param_table[0]); i++) {
		const struct param_def *def = &param_table[i];

		if (def->verb != ctx->cmd->verb || !word_equals(word, key_len, def->keyword))
			continue;
		if ((ctx->params_seen & (1u << i)) != 0)
			return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "repeated parameter");
		ctx->params_seen |= 1u << i;
		return def->parse(ctx, value, value_len);
	}
	return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "unrecognised parameter");
}

static int parse_params(struct parse_ctx *ctx)
{
	while (ctx->p < ctx->end) {
		const char *word, *word_end;

		skip_spaces(ctx);
		word_end = next_word(ctx, &word);
		if (parse_param(ctx, word, (size_t)(word_end - word)) < 0)
			return -1;
	}
	return 0;
}

/* ---- MAIL / RCPT ------------------------------------------------------ */

/* Where the path starting at p ends: past the '>' that closes it, skipping
 * a quoted local part (which may hold '>' and spaces); without a '<', at the
 * next space, so that address.c gives the error. */
static const char *path_end(const char *p, const char *end)
{
	bool quoted = false;

	if (p == end || *p != '<') {
		while (p < end && *p != ' ')
			p++;
		return p;
	}
	for (p++; p < end; p++) {
		if (quoted && *p == '\\' && p + 1 < end)
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (!quoted && *p == '>')
			return p + 1;
	}
	return end;
}

static int check_auth_param(struct parse_ctx *ctx, bool utf8)
{
	struct smtp_mail_params *mail = &ctx->cmd->mail;
	const char *error;

	if (!mail->auth_given)
		return 0;
	if (strcmp(ctx->auth, "<>") == 0) {
		mail->auth_null = true;
		return 0;
	}
	if (address_parse(ctx->auth, utf8, &mail->auth_addr, &error) < 0)
		return parse_fail(ctx, SMTP_PARSE_ERROR_PARAMETER, "invalid AUTH mailbox");
	return 0;
}

static int parse_path(struct parse_ctx *ctx, const char *path, size_t len, bool utf8)
{
	bool mail = ctx->cmd->verb == SMTP_VERB_MAIL;
	enum smtp_parse_error bad = mail ? SMTP_PARSE_ERROR_SENDER : SMTP_PARSE_ERROR_RECIPIENT;
	unsigned flags = mail ? ADDRESS_PATH_ALLOW_NULL : ADDRESS_PATH_ALLOW_POSTMASTER;
	char buf[PATH_BUF_SIZE];
	const char *error;

	if (len >= sizeof(buf))
		return parse_fail(ctx, bad, "path too long");
	for (size_t i = 0; i < len && !utf8; i++)
		if ((unsigned char)path[i] >= 0x80)
			return parse_fail(ctx, SMTP_PARSE_ERROR_NON_ASCII,
			                  "non-ASCII address needs SMTPUTF8");
	memcpy(buf, path, len);
	buf[len] = '\0';
	if (address_path_parse(buf, utf8, flags, &ctx->cmd->path, NULL, &error) < 0)
		return parse_fail(ctx, bad, error);
	return 0;
}

/* "FROM:" / "TO:" in any case, then at most one space, then the path and
 * the parameters; the parameters first, as SMTPUTF8 governs the path. */
static int parse_mail_rcpt(struct parse_ctx *ctx, const char *prefix, const char *usage)
{
	size_t prefix_len = strlen(prefix);
	const char *path, *path_stop;
	bool utf8;

	if ((size_t)(ctx->end - ctx->p) < prefix_len ||
	    strncasecmp(ctx->p, prefix, prefix_len) != 0)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, usage);
	ctx->p += prefix_len;
	if (ctx->p < ctx->end && *ctx->p == ' ')
		ctx->p++;
	if (ctx->p == ctx->end)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "missing path");
	if (*ctx->p == ' ')
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS,
		                  "too many spaces before the path");
	path = ctx->p;
	path_stop = path_end(path, ctx->end);
	ctx->p = path_stop;
	if (ctx->p < ctx->end && *ctx->p != ' ')
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS,
		                  "unexpected text after the path");
	if (parse_params(ctx) < 0)
		return -1;
	if (ctx->cmd->verb == SMTP_VERB_MAIL)
		utf8 = ctx->cmd->mail.smtputf8;
	else
		utf8 = (ctx->flags & SMTP_PARSER_FLAG_UTF8) != 0;
	if (check_auth_param(ctx, utf8) < 0)
		return -1;
	return parse_path(ctx, path, (size_t)(path_stop - path), utf8);
}

static int parse_mail(struct parse_ctx *ctx)
{
	return parse_mail_rcpt(ctx, "FROM:", "syntax: MAIL FROM:<address> [parameters]");
}

static int parse_rcpt(struct parse_ctx *ctx)
{
	return parse_mail_rcpt(ctx, "TO:", "syntax: RCPT TO:<address> [parameters]");
}

/* ---- the other verbs --------------------------------------------------- */

static int parse_no_argument(struct parse_ctx *ctx)
{
	if (ctx->p != ctx->end)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "no arguments allowed");
	return 0;
}

/* Free text: any octet but control characters (HTAB is allowed). */
static int parse_text(struct parse_ctx *ctx, bool required)
{
	for (const char *p = ctx->p; p < ctx->end; p++)
		if (((unsigned char)*p < 32 && *p != '\t') || *p == 127)
			return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS,
			                  "control character in argument");
	if (ctx->p == ctx->end) {
		if (required)
			return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "argument required");
		return 0;
	}
	ctx->cmd->arg = ctx->p;
	ctx->cmd->arg_len = (size_t)(ctx->end - ctx->p);
	return 0;
}

static int parse_text_optional(struct parse_ctx *ctx)
{
	return parse_text(ctx, false);
}

static int parse_text_required(struct parse_ctx *ctx)
{
	return parse_text(ctx, true);
}

static int copy_domain(struct parse_ctx *ctx)
{
	size_t len = (size_t)(ctx->end - ctx->p);

	if (len == 0)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "domain required");
	if (len > SMTP_HELO_MAX)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "domain too long");
	memcpy(ctx->cmd->domain, ctx->p, len);
	ctx->cmd->domain[len] = '\0';
	return 0;
}

static int parse_ehlo(struct parse_ctx *ctx)
{
	const char *error;

	if (copy_domain(ctx) < 0)
		return -1;
	if (address_domain_check(ctx->cmd->domain, true, &error) < 0) {
		ctx->cmd->domain[0] = '\0';
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, error);
	}
	return 0;
}

static int parse_helo(struct parse_ctx *ctx)
{
	for (const char *p = ctx->p; p < ctx->end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 32 || c == 127)
			return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS,
			                  "HELO takes one word as domain");
	}
	return copy_domain(ctx);
}

static int parse_bdat(struct parse_ctx *ctx)
{
	const char *word, *word_end = next_word(ctx, &word);

	switch (number_parse(word, (size_t)(word_end - word), &ctx->cmd->bdat_size)) {
	case NUMBER_OK:
		break;
	case NUMBER_OVERFLOW:
		return parse_fail(ctx, SMTP_PARSE_ERROR_SIZE, "BDAT size too large");
	case NUMBER_INVALID:
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "syntax: BDAT size [LAST]");
	}
	skip_spaces(ctx);
	if (ctx->p == ctx->end)
		return 0;
	word_end = next_word(ctx, &word);
	if (!word_equals(word, (size_t)(word_end - word), "LAST") || ctx->p != ctx->end)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "syntax: BDAT size [LAST]");
	ctx->cmd->bdat_last = true;
	return 0;
}

/* initial-response = base64 / "=" (RFC 4954 §4); decoding is the SASL
 * layer's job, this only keeps garbage out of it. */
static bool initial_response_valid(const char *p, size_t len)
{
	size_t pad = 0;

	if (len == 1 && *p == '=')
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '=')
			pad++;
		else if (pad > 0 || !(is_alpha(c) || is_digit(c) || c == '+' || c == '/'))
			return false;
	}
	return pad <= 2;
}

static int parse_auth(struct parse_ctx *ctx)
{
	const char *word, *word_end = next_word(ctx, &word);
	size_t len = (size_t)(word_end - word);

	if (len == 0 || len > SMTP_AUTH_MECH_MAX)
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "invalid mechanism name");
	for (size_t i = 0; i < len; i++) {
		char c = word[i];

		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (!((c >= 'A' && c <= 'Z') || is_digit((unsigned char)c) || c == '-' || c == '_'))
			return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS,
			                  "invalid mechanism name");
		ctx->cmd->auth_mechanism[i] = c;
	}
	ctx->cmd->auth_mechanism[len] = '\0';
	skip_spaces(ctx);
	if (ctx->p == ctx->end)
		return 0;
	word_end = next_word(ctx, &word);
	if (ctx->p != ctx->end || !initial_response_valid(word, (size_t)(word_end - word)))
		return parse_fail(ctx, SMTP_PARSE_ERROR_ARGUMENTS, "invalid initial response");
	ctx->cmd->arg = word;
	ctx->cmd->arg_len = (size_t)(word_end - word);
	return 0;
}

/* ---- the command line -------------------------------------------------- */

struct verb_def {
	const char *name;
	enum smtp_verb verb;
	parse_verb_cb *parse;
};

/* In enum order, so that verb_table[verb - 1].name is its name. */
static const struct verb_def verb_table[] = {
    {"EHLO", SMTP_VERB_EHLO, parse_ehlo},
    {"HELO", SMTP_VERB_HELO, parse_helo},
    {"MAIL", SMTP_VERB_MAIL, parse_mail},
    {"RCPT", SMTP_VERB_RCPT, parse_rcpt},
    {"DATA", SMTP_VERB_DATA, parse_no_argument},
    {"BDAT", SMTP_VERB_BDAT, parse_bdat},
    {"RSET", SMTP_VERB_RSET, parse_no_argument},
    {"NOOP", SMTP_VERB_NOOP, parse_text_optional},
    {"QUIT", SMTP_VERB_QUIT, parse_no_argument},
    {"VRFY", SMTP_VERB_VRFY, parse_text_required},
    {"EXPN", SMTP_VERB_EXPN, parse_text_required},
    {"HELP", SMTP_VERB_HELP, parse_text_optional},
    {"STARTTLS", SMTP_VERB_STARTTLS, parse_no_argument},
    {"AUTH", SMTP_VERB_AUTH, parse_auth},
};

static const struct verb_def *verb_lookup(const char *word, size_t len)
{
	for (size_t i = 0; i < sizeof(verb_table) / sizeof(verb_table[0]); i++)
		if (word_equals(word, len, verb_table[i].name))
			return &verb_table[i];
	return NULL;
}

int smtp_parser_parse(const char *line, size_t len, unsigned flags, struct smtp_command *cmd_r,
                      const char **error_r)
{
	struct parse_ctx ctx = {
	    .p = line, .end = line + len, .flags = flags, .cmd = cmd_r, .error_r = error_r};
	const struct verb_def *def;
	const char *word, *word_end;

	memset(cmd_r, 0, sizeof(*cmd_r));
	/* Before anything else: a CR or LF that reached us did not end the
	 * line, so the client and we disagree on where lines end. */
	for (size_t i = 0; i < len; i++)
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n')
			return parse_fail(&ctx, SMTP_PARSE_ERROR_SYNTAX,
			                  "NUL, CR or LF inside a command line");
	while (ctx.end > ctx.p && (ctx.end[-1] == ' ' || ctx.end[-1] == '\t'))
		ctx.end--;
	if (ctx.p == ctx.end)
		return parse_fail(&ctx, SMTP_PARSE_ERROR_SYNTAX, "empty command line");
	word_end = next_word(&ctx, &word);
	def = verb_lookup(word, (size_t)(word_end - word));
	if (def == NULL)
		return parse_fail(&ctx, SMTP_PARSE_ERROR_UNKNOWN_COMMAND, "command not recognised");
	cmd_r->verb = def->verb;
	skip_spaces(&ctx);
	return def->parse(&ctx);
}

const struct smtp_reply_code *smtp_parser_error_reply(enum smtp_parse_error error)
{
	static const struct smtp_reply_code replies[] = {
	    [SMTP_PARSE_OK] = {250, "2.0.0", "OK"},
	    [SMTP_PARSE_ERROR_SYNTAX] = {500, "5.5.2", "Syntax error"},
	    [SMTP_PARSE_ERROR_UNKNOWN_COMMAND] = {500, "5.5.2", "Command not recognized"},
	    [SMTP_PARSE_ERROR_ARGUMENTS] = {501, "5.5.4",
	                                    "Syntax error in parameters or arguments"},
	    [SMTP_PARSE_ERROR_SENDER] = {553, "5.1.7", "Bad sender address syntax"},
	    [SMTP_PARSE_ERROR_RECIPIENT] = {553, "5.1.3", "Bad recipient address syntax"},
	    [SMTP_PARSE_ERROR_NON_ASCII] = {553, "5.6.7", "Non-ASCII address not permitted"},
	    [SMTP_PARSE_ERROR_PARAMETER] = {555, "5.5.4",
	                                    "MAIL FROM/RCPT TO parameters not recognized or "
	                                    "not implemented"},
	    [SMTP_PARSE_ERROR_SIZE] = {552, "5.3.4",
	                               "Message size exceeds fixed maximum message size"},
	};

	if ((unsigned)error >= sizeof(replies) / sizeof(replies[0]))
		return &replies[SMTP_PARSE_ERROR_SYNTAX];
	return &replies[error];
}

const char *smtp_parser_verb_name(enum smtp_verb verb)
{
	size_t i = (size_t)verb;

	if (i == 0 || i > sizeof(verb_table) / sizeof(verb_table[0]))
		return "UNKNOWN";
	return verb_table[i - 1].name;
}
