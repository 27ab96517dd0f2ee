#include "auth/password.h"

#include <argon2.h>
#include <stdbool.h>
#include <string.h>

#include "lib/test.h"
#include "lib/workpool.h"

#define PREFIX "$argon2id$v=19$m=19456,t=2,p=1$"

static void test_hash_verify(void)
{
	char hash[PASSWORD_HASH_SIZE];
	const char *error = NULL;

	CHECK_INT(password_hash("correct horse battery", hash, sizeof(hash), &error), 0);
	CHECK(strncmp(hash, PREFIX, strlen(PREFIX)) == 0);
	CHECK_INT(password_verify(hash, "correct horse battery"), 0);
	CHECK_INT(password_verify(hash, "correct horse batterY"), -1);
	CHECK_INT(password_verify(hash, "correct horse battery "), -1);
	CHECK_INT(password_verify(hash, ""), -1);
	CHECK_INT(password_verify(hash, NULL), -1);
}

/* Salt is random: the same password hashes differently each time, and both
 * hashes verify. */
static void test_salt_random(void)
{
	char h1[PASSWORD_HASH_SIZE], h2[PASSWORD_HASH_SIZE];
	const char *error = NULL;

	CHECK_INT(password_hash("same password", h1, sizeof(h1), &error), 0);
	CHECK_INT(password_hash("same password", h2, sizeof(h2), &error), 0);
	CHECK(strcmp(h1, h2) != 0);
	CHECK_INT(password_verify(h1, "same password"), 0);
	CHECK_INT(password_verify(h2, "same password"), 0);
}

static void test_utf8_and_empty_password(void)
{
	char hash[PASSWORD_HASH_SIZE];
	const char *error = NULL;

	CHECK_INT(password_hash("p\xc3\xa4ssw\xc3\xb6rd", hash, sizeof(hash), &error), 0);
	CHECK_INT(password_verify(hash, "p\xc3\xa4ssw\xc3\xb6rd"), 0);
	CHECK_INT(password_verify(hash, "passw\xc3\xb6rd"), -1);
	/* The empty password hashes and verifies like any other; policy is
	 * what keeps it out. */
	CHECK_INT(password_hash("", hash, sizeof(hash), &error), 0);
	CHECK_INT(password_verify(hash, ""), 0);
	CHECK_INT(password_verify(hash, " "), -1);
}

static void test_buffer_too_small(void)
{
	char hash[40];
	const char *error = NULL;

	CHECK_INT(password_hash("secret", hash, sizeof(hash), &error), -1);
	CHECK_STR(error, "password hash buffer too small");
}

static void test_malformed_hashes(void)
{
	char hash[PASSWORD_HASH_SIZE], bad[2 * PASSWORD_HASH_SIZE];
	const char *error = NULL;
	size_t len;

	CHECK_INT(password_verify(NULL, "x"), -1);
	CHECK_INT(password_verify("", ""), -1);
	CHECK_INT(password_verify("", "x"), -1);
	CHECK_INT(password_verify("x", "x"), -1);
	CHECK_INT(password_verify("$argon2id$", ""), -1);
	CHECK_INT(password_verify("$argon2id$v=19$m=19456,t=2,p=1$", ""), -1);
	CHECK_INT(password_verify("{PLAIN}secret", "secret"), -1);
	CHECK_INT(password_verify("secret", "secret"), -1);
	CHECK_INT(password_verify("$1$abcdefgh$abcdefghijklmnopqrstuv", "secret"), -1);

	CHECK_INT(password_hash("secret", hash, sizeof(hash), &error), 0);
	len = strlen(hash);
	/* Truncated. */
	memcpy(bad, hash, len - 5);
	bad[len - 5] = '\0';
	CHECK_INT(password_verify(bad, "secret"), -1);
	/* One character of the hash changed. */
	strcpy(bad, hash);
	bad[len - 3] = bad[len - 3] == 'A' ? 'B' : 'A';
	CHECK_INT(password_verify(bad, "secret"), -1);
	/* Trailing garbage. */
	snprintf(bad, sizeof(bad), "%s$x", hash);
	CHECK_INT(password_verify(bad, "secret"), -1);
	/* Another type's name on an argon2id hash. */
	snprintf(bad, sizeof(bad), "$argon2i$%s", hash + strlen("$argon2id$"));
	CHECK_INT(password_verify(bad, "secret"), -1);
}

/* A hash whose parameters would cost gigabytes is refused unverified. */
static void test_excessive_cost(void)
{
	char hash[PASSWORD_HASH_SIZE], big[2 * PASSWORD_HASH_SIZE];
	const char *error = NULL;

	CHECK_INT(password_hash("secret", hash, sizeof(hash), &error), 0);
	snprintf(big, sizeof(big), "$argon2id$v=19$m=4194304,t=2,p=1$%s", hash + strlen(PREFIX));
	CHECK_INT(password_verify(big, "secret"), -1);
	snprintf(big, sizeof(big), "$argon2id$v=19$m=19456,t=1000,p=1$%s", hash + strlen(PREFIX));
	CHECK_INT(password_verify(big, "secret"), -1);
	snprintf(big, sizeof(big), "$argon2id$v=19$m=19456,t=2,p=255$%s", hash + strlen(PREFIX));
	CHECK_INT(password_verify(big, "secret"), -1);
	snprintf(big, sizeof(big), "$argon2id$v=19$m=99999999999999999999999,t=2,p=1$%s",
	         hash + strlen(PREFIX));
	CHECK_INT(password_verify(big, "secret"), -1);
}

/* Hashes made elsewhere with other parameters or variants still verify, and
 * are flagged for rehashing. */
static void test_other_parameters(void)
{
	const unsigned char salt[16] = "0123456789abcdef";
	char hash[PASSWORD_HASH_SIZE];
	const char *error = NULL;

	CHECK_INT(argon2i_hash_encoded(3, 4096, 1, "legacy", 6, salt, sizeof(salt), 32, hash,
	                               sizeof(hash)),
	          ARGON2_OK);
	CHECK_INT(password_verify(hash, "legacy"), 0);
	CHECK_INT(password_verify(hash, "Legacy"), -1);
	CHECK(password_needs_rehash(hash));

	CHECK_INT(argon2id_hash_encoded(1, 1024, 2, "cheap", 5, salt, sizeof(salt), 32, hash,
	                                sizeof(hash)),
	          ARGON2_OK);
	CHECK_INT(password_verify(hash, "cheap"), 0);
	CHECK(password_needs_rehash(hash));

	CHECK_INT(password_hash("current", hash, sizeof(hash), &error), 0);
	CHECK(!password_needs_rehash(hash));
	CHECK(password_needs_rehash(""));
	CHECK(password_needs_rehash(NULL));
	CHECK(password_needs_rehash("garbage"));
}

static bool in_alphabet(char c)
{
	return c != '\0' &&
	       strchr("23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ", c) != NULL;
}

static void test_generate(void)
{
	char a[PASSWORD_GENERATE_SIZE], b[PASSWORD_GENERATE_SIZE], one[1], big[41];

	CHECK_INT(password_generate(a, sizeof(a)), 0);
	CHECK_INT(password_generate(b, sizeof(b)), 0);
	CHECK_INT(strlen(a), PASSWORD_GENERATE_LEN);
	CHECK_INT(strlen(b), PASSWORD_GENERATE_LEN);
	CHECK(strcmp(a, b) != 0);
	for (size_t i = 0; i < PASSWORD_GENERATE_LEN; i++)
		CHECK(in_alphabet(a[i]));
	CHECK_INT(password_policy_check(a, 12, &(const char *){NULL}), 0);

	CHECK_INT(password_generate(one, sizeof(one)), 0);
	CHECK_STR(one, "");
	CHECK_INT(password_generate(one, 0), -1);
	CHECK_INT(password_generate(big, sizeof(big)), 0);
	CHECK_INT(strlen(big), 40);
}

/* Over many passwords every character of the alphabet turns up and none of
 * the ambiguous ones ever does. */
static void test_generate_coverage(void)
{
	const char *alphabet = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
	unsigned counts[256] = {0};
	char pw[PASSWORD_GENERATE_SIZE];

	for (int i = 0; i < 1000; i++) {
		CHECK_INT(password_generate(pw, sizeof(pw)), 0);
		for (const char *p = pw; *p != '\0'; p++)
			counts[(unsigned char)*p]++;
	}
	for (const char *p = alphabet; *p != '\0'; p++)
		CHECK(counts[(unsigned char)*p] > 0);
	for (const char *p = "0Oo1lI"; *p != '\0'; p++)
		CHECK_INT(counts[(unsigned char)*p], 0);
}

static void test_policy(void)
{
	const char *error = NULL;

	CHECK_INT(password_policy_check("short", 10, &error), -1);
	CHECK_STR(error, "password must be at least 10 characters");
	CHECK_INT(password_policy_check("123456789", 10, &error), -1);
	CHECK_STR(error, "password must be at least 10 characters");
	CHECK_INT(password_policy_check("1234567890", 10, &error), 0);
	CHECK_INT(password_policy_check("", 0, &error), -1);
	CHECK_STR(error, "password must not be empty");
	CHECK_INT(password_policy_check("", 8, &error), -1);
	CHECK_STR(error, "password must not be empty");
	CHECK_INT(password_policy_check("aaaaaaaaaaaa", 10, &error), -1);
	CHECK_STR(error, "password must not be one character repeated");
	CHECK_INT(password_policy_check("aaaaaaaaaaab", 10, &error), 0);
	CHECK_INT(password_policy_check("x", 1, &error), -1);
	CHECK_STR(error, "password must not be one character repeated");
	CHECK_INT(password_policy_check("xy", 1, &error), 0);
	CHECK_INT(password_policy_check("ab", 3, &error), -1);
	CHECK_STR(error, "password must be at least 3 characters");
}

/* Length is in characters, not octets. */
static void test_policy_utf8(void)
{
	const char *error = NULL;

	/* 5 characters, 10 octets. */
	CHECK_INT(password_policy_check("\xc3\xa4\xc3\xb6\xc3\xa4\xc3\xb6\xc3\xa4", 10, &error),
	          -1);
	CHECK_STR(error, "password must be at least 10 characters");
	CHECK_INT(password_policy_check("\xc3\xa4\xc3\xb6\xc3\xa4\xc3\xb6\xc3\xa4", 5, &error), 0);
	/* 3 emoji, 12 octets. */
	CHECK_INT(
	    password_policy_check("\xf0\x9f\x98\x80\xf0\x9f\x98\x81\xf0\x9f\x98\x82", 4, &error),
	    -1);
	CHECK_INT(
	    password_policy_check("\xf0\x9f\x98\x80\xf0\x9f\x98\x81\xf0\x9f\x98\x82", 3, &error),
	    0);
	/* One multi-octet character repeated. */
	CHECK_INT(password_policy_check("\xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4", 2, &error), -1);
	CHECK_STR(error, "password must not be one character repeated");
	/* Same first octet, different characters. */
	CHECK_INT(password_policy_check("\xc3\xa4\xc3\xb6", 2, &error), 0);
}

struct hash_job {
	const char *password;
	char hash[PASSWORD_HASH_SIZE];
	int ret;
	bool done;
};

static void hash_job_work(void *arg)
{
	struct hash_job *job = arg;
	const char *error;

	job->ret = password_hash(job->password, job->hash, sizeof(job->hash), &error);
}

static void hash_job_done(void *arg)
{
	struct hash_job *job = arg;

	job->done = true;
}

/* The way loop code is told to hash: on the work pool. */
static void test_workpool(void)
{
	struct workpool *pool = workpool_start(2);
	struct hash_job jobs[3] = {{.password = "one"}, {.password = "two"}, {.password = "three"}};

	for (size_t i = 0; i < 3; i++)
		workpool_run(pool, hash_job_work, NULL, hash_job_done, &jobs[i]);
	workpool_stop(&pool);
	CHECK(pool == NULL);
	for (size_t i = 0; i < 3; i++) {
		CHECK(jobs[i].done);
		CHECK_INT(jobs[i].ret, 0);
		CHECK_INT(password_verify(jobs[i].hash, jobs[i].password), 0);
		CHECK_INT(password_verify(jobs[i].hash, jobs[(i + 1) % 3].password), -1);
	}
}

int main(void)
{
	TEST_RUN(test_hash_verify);
	TEST_RUN(test_salt_random);
	TEST_RUN(test_utf8_and_empty_password);
	TEST_RUN(test_buffer_too_small);
	TEST_RUN(test_malformed_hashes);
	TEST_RUN(test_excessive_cost);
	TEST_RUN(test_other_parameters);
	TEST_RUN(test_generate);
	TEST_RUN(test_generate_coverage);
	TEST_RUN(test_policy);
	TEST_RUN(test_policy_utf8);
	TEST_RUN(test_workpool);
	return test_summary();
}
