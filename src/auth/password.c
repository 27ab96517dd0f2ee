#include "auth/password.h"

#include <argon2.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Ceilings for hashes we are asked to verify.  Keel never makes hashes near
 * them; they stop a planted or imported hash from making each login burn
 * gigabytes or seconds. */
#define VERIFY_M_COST_MAX      (256 * 1024) /* KiB */
#define VERIFY_T_COST_MAX      16
#define VERIFY_PARALLELISM_MAX 16

/* Letters and digits minus those read as one another (0/O/o, 1/l/I). */
static const char generate_alphabet[] = "23456789abcdefghijkmnpqrstuvwxyz"
                                        "ABCDEFGHJKLMNPQRSTUVWXYZ";

struct phc_params {
	argon2_type type;
	unsigned long version, m_cost, t_cost, parallelism;
};

static int random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int password_hash(const char *password, char *hash_r, size_t size, const char **error_r)
{
	unsigned char salt[PASSWORD_SALT_LEN];
	size_t need = argon2_encodedlen(PASSWORD_T_COST, PASSWORD_M_COST, PASSWORD_PARALLELISM,
	                                PASSWORD_SALT_LEN, PASSWORD_HASH_LEN, Argon2_id);
	size_t len = strlen(password);
	int ret;

	if (size < need) {
		*error_r = "password hash buffer too small";
		return -1;
	}
	if (len > UINT32_MAX) {
		*error_r = "password too long";
		return -1;
	}
	if (random_bytes(salt, sizeof(salt)) < 0) {
		*error_r = "getrandom() failed: no randomness for the salt";
		return -1;
	}
	ret =
	    argon2id_hash_encoded(PASSWORD_T_COST, PASSWORD_M_COST, PASSWORD_PARALLELISM, password,
	                          len, salt, sizeof(salt), PASSWORD_HASH_LEN, hash_r, size);
	if (ret != ARGON2_OK) {
		*error_r = argon2_error_message(ret);
		return -1;
	}
	return 0;
}

/* Reads "name=" and a decimal number at *pp; on success *pp points past it. */
static int phc_parse_number(const char **pp, const char *name, unsigned long *value_r)
{
	size_t n = strlen(name);
	char *end;

	if (strncmp(*pp, name, n) != 0 || (*pp)[n] < '0' || (*pp)[n] > '9')
		return -1;
	errno = 0;
	*value_r = strtoul(*pp + n, &end, 10);
	if (errno != 0)
		return -1;
	*pp = end;
	return 0;
}

static int phc_parse_type(const char **pp, argon2_type *type_r)
{
	static const struct {
		const char *prefix;
		argon2_type type;
	} types[] = {
	    {"$argon2id$", Argon2_id},
	    {"$argon2i$", Argon2_i},
	    {"$argon2d$", Argon2_d},
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t n = strlen(types[i].prefix);

		if (strncmp(*pp, types[i].prefix, n) == 0) {
			*type_r = types[i].type;
			*pp += n;
			return 0;
		}
	}
	return -1;
}

/* Parses the head of a PHC string: "$argon2id$v=19$m=..,t=..,p=..$".  The
 * "v=" part is optional, as in hashes made before argon2 1.3. */
static int phc_parse_params(const char *hash, struct phc_params *p_r)
{
	const char *p = hash;

	if (phc_parse_type(&p, &p_r->type) < 0)
		return -1;
	p_r->version = ARGON2_VERSION_10;
	if (strncmp(p, "v=", 2) == 0 &&
	    (phc_parse_number(&p, "v=", &p_r->version) < 0 || *p++ != '$'))
		return -1;
	if (phc_parse_number(&p, "m=", &p_r->m_cost) < 0 || *p++ != ',' ||
	    phc_parse_number(&p, "t=", &p_r->t_cost) < 0 || *p++ != ',' ||
	    phc_parse_number(&p, "p=", &p_r->parallelism) < 0 || *p != '$')
		return -1;
	return 0;
}

int password_verify(const char *hash, const char *password)
{
	struct phc_params params;
	size_t len;

	if (hash == NULL || password == NULL || phc_parse_params(hash, &params) < 0)
		return -1;
	if (params.m_cost > VERIFY_M_COST_MAX || params.t_cost > VERIFY_T_COST_MAX ||
	    params.parallelism > VERIFY_PARALLELISM_MAX)
		return -1;
	len = strlen(password);
	if (len > UINT32_MAX)
		return -1;
	return argon2_verify(hash, password, len, params.type) == ARGON2_OK ? 0 : -1;
}

bool password_needs_rehash(const char *hash)
{
	struct phc_params params;

	if (hash == NULL || phc_parse_params(hash, &params) < 0)
		return true;
	return params.type != Argon2_id || params.version != ARGON2_VERSION_NUMBER ||
	       params.m_cost != PASSWORD_M_COST || params.t_cost != PASSWORD_T_COST ||
	       params.parallelism != PASSWORD_PARALLELISM;
}

int password_generate(char *buf, size_t size)
{
	const size_t n_alphabet = sizeof(generate_alphabet) - 1;
	/* Octets at or past this are dropped so that every character is
	 * equally likely (no modulo bias). */
	const unsigned limit = 256 - 256 % n_alphabet;
	size_t i = 0;

	if (size == 0)
		return -1;
	while (i < size - 1) {
		unsigned char r[32];

		if (random_bytes(r, sizeof(r)) < 0) {
			buf[0] = '\0';
			return -1;
		}
		for (size_t j = 0; j < sizeof(r) && i < size - 1; j++)
			if (r[j] < limit)
				buf[i++] = generate_alphabet[r[j] % n_alphabet];
	}
	buf[i] = '\0';
	return 0;
}

/* Octets of the character at p: its first octet and the UTF-8 continuation
 * octets (10xxxxxx) after it, at most three.  Exact for valid UTF-8; for
 * anything else it still moves forward and never past the NUL. */
static size_t char_len(const char *p)
{
	size_t n = 1;

	while (n < 4 && ((unsigned char)p[n] & 0xc0) == 0x80)
		n++;
	return n;
}

int password_policy_check(const char *password, unsigned min_length, const char **error_r)
{
	static __thread char error[64];
	const char *first = password;
	size_t first_len, chars = 0;
	bool all_same = true;

	if (*password == '\0') {
		*error_r = "password must not be empty";
		return -1;
	}
	first_len = char_len(first);
	for (const char *p = password; *p != '\0';) {
		size_t n = char_len(p);

		if (n != first_len || memcmp(p, first, n) != 0)
			all_same = false;
		chars++;
		p += n;
	}
	if (chars < min_length) {
		snprintf(error, sizeof(error), "password must be at least %u characters",
		         min_length);
		*error_r = error;
		return -1;
	}
	if (all_same) {
		*error_r = "password must not be one character repeated";
		return -1;
	}
	return 0;
}
