/* libFuzzer target: the keel.conf parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keeld/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct config c;
	char *err = NULL;

	memcpy(text, data, size);
	text[size] = '\0';
	if (config_parse(text, "/fuzz/keel.conf", &c, &err) == 0)
		config_deinit(&c);
	free(err);
	free(text);
	return 0;
}
