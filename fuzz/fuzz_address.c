/* libFuzzer target for src/mail/address.c: every parser on every input, in
 * both SMTPUTF8 modes, plus the invariant that an accepted address written
 * in canonical form parses back to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/address.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_roundtrip(const struct address *a, bool utf8)
{
	char buf[ADDRESS_MAX + 1];
	struct address b;
	const char *error;

	if (address_format(a, buf, sizeof(buf)) < 0)
		abort();
	if (address_parse(buf, utf8, &b, &error) < 0)
		abort();
	if (strcmp(a->localpart, b.localpart) != 0 || strcmp(a->domain, b.domain) != 0 ||
	    a->quoted != b.quoted || a->literal != b.literal)
		abort();
	if (!address_domain_valid(a->domain, utf8))
		abort();
	if (a->quoted == address_localpart_is_dot_string(a->localpart, utf8))
		abort();
}

static void fuzz_one(const char *s, bool utf8)
{
	struct address a;
	struct address_path path;
	const char *error, *end;
	char local[ADDRESS_LOCAL_MAX + 1];

	if (address_parse(s, utf8, &a, &error) == 0) {
		check_roundtrip(&a, utf8);
		memcpy(local, a.localpart, sizeof(local));
		address_subaddress_strip(local, '+');
		address_fold_case(local);
	}
	for (unsigned flags = 0; flags < 4; flags++) {
		if (address_path_parse(s, utf8, flags, &path, NULL, &error) == 0 && !path.null &&
		    !path.postmaster)
			check_roundtrip(&path.addr, utf8);
		if (address_path_parse(s, utf8, flags, &path, &end, &error) == 0 &&
		    (end <= s || end > s + strlen(s)))
			abort();
	}
	(void)address_domain_check(s, utf8, &error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_one(s, false);
	fuzz_one(s, true);
	free(s);
	return 0;
}
