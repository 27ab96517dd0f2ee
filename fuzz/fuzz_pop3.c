/* libFuzzer target: the POP3 command parser, one line per input line. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/pop3_parser.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl != NULL ? nl : end) - p);
		struct pop3_command cmd;
		const char *err = NULL;

		if (pop3_parse(p, len, &cmd, &err) == 0) {
			for (unsigned i = 0; i < cmd.argc; i++)
				if (cmd.argv[i] < p || cmd.argv[i] + cmd.arglen[i] > p + len)
					__builtin_trap();
		} else if (err == NULL) {
			__builtin_trap();
		}
		p = nl != NULL ? nl + 1 : end;
	}
	return 0;
}
