/* libFuzzer target for src/mail/header.c: every function on every input,
 * with the input as the message (libFuzzer's copy has exactly size octets,
 * so ASan catches a read past len) and with its first line as a field name
 * too, plus the invariants the header promises. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The value is NUL-terminated inside buf, holds no CR, LF or NUL, and has
 * no space or tab at either end. */
static void check_value(const char *buf, size_t size)
{
	size_t n = strnlen(buf, size);

	if (n >= size || memchr(buf, '\r', n) != NULL || memchr(buf, '\n', n) != NULL)
		abort();
	if (n > 0 && (buf[0] == ' ' || buf[0] == '\t' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		abort();
}

static void fuzz_get(const char *msg, size_t len, const char *name)
{
	static const size_t sizes[] = {1, 2, 5, 64, 1024};
	char buf[1024];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int ret = header_get(msg, len, name, buf, sizes[i]);

		check_value(buf, sizes[i]);
		if (ret < 0 && buf[0] != '\0')
			abort();
		if ((ret == 0) != (header_count(msg, len, name) > 0))
			abort();
	}
	if (header_get(msg, len, name, NULL, 0) != (header_count(msg, len, name) > 0 ? 0 : -1))
		abort();
}

static void fuzz_message_id(const char *msg, size_t len)
{
	char buf[1024];
	size_t n;

	if (header_message_id(msg, len, buf, sizeof(buf)) < 0) {
		if (buf[0] != '\0')
			abort();
		return;
	}
	n = strlen(buf);
	if (n < 5 || buf[0] != '<' || buf[n - 1] != '>' || strchr(buf, '@') == NULL ||
	    strpbrk(buf, " \t\r\n") != NULL)
		abort();
	/* Fitting exactly works; one octet less does not. */
	if (header_message_id(msg, len, buf, n + 1) < 0 || header_message_id(msg, len, buf, n) == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"Subject", "Received", "Message-ID", "From", ""};
	const char *msg = (const char *)data;
	size_t end = header_section_end(msg, size), name_len;
	char name[64];

	if (end > size)
		abort();
	if (header_section_end(msg, end) != end)
		abort();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		fuzz_get(msg, size, names[i]);
	/* The first line, cut at ':', as a name: reaches matching names. */
	for (name_len = 0; name_len < size && name_len < sizeof(name); name_len++)
		if (msg[name_len] == ':' || msg[name_len] == '\r' || msg[name_len] == '\n' ||
		    msg[name_len] == '\0')
			break;
	if (name_len < sizeof(name)) {
		memcpy(name, msg, name_len);
		name[name_len] = '\0';
		fuzz_get(msg, size, name);
	}
	fuzz_message_id(msg, size);
	return 0;
}
