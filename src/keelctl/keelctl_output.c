/* Printing results: aligned tables, key/value blocks, JSON. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "keelctl/keelctl.h"
#include "lib/xalloc.h"

void keelctl_output_json(json_t *value)
{
	char *text = json_dumps(value, JSON_INDENT(2) | JSON_ENCODE_ANY);

	printf("%s\n", text != NULL ? text : "null");
	free(text);
}

/* Display width of UTF-8 text: one column per code point (names may hold
 * accents; wide scripts are rare in an admin's table). */
static size_t keelctl_output_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void keelctl_output_table(const char *const *headers, size_t n_cols, json_t *rows)
{
	size_t *width = xcalloc(n_cols, sizeof(*width));
	json_t *row;
	size_t i;

	for (size_t c = 0; c < n_cols; c++)
		width[c] = keelctl_output_width(headers[c]);
	for (i = 0; i < json_array_size(rows) && (row = json_array_get(rows, i)) != NULL; i++)
		for (size_t c = 0; c < n_cols; c++) {
			size_t w = keelctl_output_width(json_string_value(json_array_get(row, c)));
			if (w > width[c])
				width[c] = w;
		}
	for (size_t c = 0; c < n_cols; c++)
		printf("%s%-*s", c ? "  " : "", c + 1 < n_cols ? (int)width[c] : 0, headers[c]);
	putchar('\n');
	for (i = 0; i < json_array_size(rows) && (row = json_array_get(rows, i)) != NULL; i++) {
		for (size_t c = 0; c < n_cols; c++) {
			const char *s = json_string_value(json_array_get(row, c));
			size_t w = keelctl_output_width(s);

			printf("%s%s", c ? "  " : "", s);
			/* No trailing blanks after the last column. */
			if (c + 1 < n_cols)
				printf("%*s", (int)(width[c] - w), "");
		}
		putchar('\n');
	}
	free(width);
}

void keelctl_output_pair(const char *key, int width, const char *fmt, ...)
{
	va_list ap;

	printf("%-*s  ", width, key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void keelctl_output_size(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGT";
	uint64_t unit = 1;
	int u = -1;

	while (u < 3 && bytes >= (unit << 10)) {
		unit <<= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, size, "%" PRIu64, bytes);
	else if (bytes % unit == 0)
		snprintf(buf, size, "%" PRIu64 "%c", bytes / unit, units[u]);
	else
		snprintf(buf, size, "%.1f%c", (double)bytes / (double)unit, units[u]);
}

void keelctl_output_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, size, "-");
		return;
	}
	strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

void keelctl_output_template(const char *tmpl, json_t *obj)
{
	char key[64], buf[64];

	while (*tmpl != '\0') {
		const char *close = *tmpl == '{' ? strchr(tmpl, '}') : NULL;
		size_t len = close != NULL ? (size_t)(close - tmpl - 1) : 0;

		if (close == NULL || len == 0 || len >= sizeof(key)) {
			putchar(*tmpl++);
			continue;
		}
		memcpy(key, tmpl + 1, len);
		key[len] = '\0';
		fputs(keelctl_output_cell(json_object_get(obj, key), buf, sizeof(buf)), stdout);
		tmpl = close + 1;
	}
	putchar('\n');
}

const char *keelctl_output_cell(json_t *v, char *buf, size_t size)
{
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
	else
		snprintf(buf, size, "-");
	return buf;
}
