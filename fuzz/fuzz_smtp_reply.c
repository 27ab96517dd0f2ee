/* libFuzzer target: SMTP server replies as the client reads them, one line
 * per input line, and the EHLO keywords of every complete reply. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct smtp_reply_parser parser;

	smtp_reply_parser_init(&parser);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);
		const char *err = NULL;
		int r = smtp_reply_parser_line(&parser, p, len, &err);

		if (r == 1) {
			struct smtp_ehlo ehlo;
			char buf[SMTP_REPLY_TEXT_MAX + 8];
			if (parser.reply.code < 200 || parser.reply.code > 599 ||
			    strlen(parser.reply.text) >= SMTP_REPLY_TEXT_MAX ||
			    parser.reply.n_lines == 0 || parser.reply.n_lines > SMTP_REPLY_LINES_MAX)
				__builtin_trap();
			smtp_ehlo_parse(&parser.reply, &ehlo);
			smtp_reply_format(&parser.reply, buf, sizeof(buf));
			if (memchr(buf, '\n', strlen(buf)) != NULL)
				__builtin_trap();
		} else if (r < 0 && err == NULL) {
			__builtin_trap();
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}
