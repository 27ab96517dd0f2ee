#include "settings/settings.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/test.h"
#include "store/store.h"

/* Validates value against def; returns the canonical form, or "ERR: ..." */
static const char *check(const struct setting_def *def, const char *value)
{
	static char out[STORE_VALUE_MAX + 16];
	char canon[STORE_VALUE_MAX + 1];
	const char *error;

	if (settings_validate(def, value, canon, sizeof(canon), &error) < 0)
		snprintf(out, sizeof(out), "ERR: %s", error);
	else
		snprintf(out, sizeof(out), "%s", canon);
	return out;
}

static void test_registry(void)
{
	size_t n;
	const struct setting_def *all = settings_all(&n);
	char canon[STORE_VALUE_MAX + 1];
	const char *error;

	CHECK(n >= 2);
	for (size_t i = 0; i < n; i++) {
		CHECK(all[i].key != NULL && all[i].doc != NULL && all[i].def != NULL);
		CHECK(settings_find(all[i].key) == &all[i]);
		/* Every default passes its own validation. */
		CHECK_INT(settings_validate(&all[i], all[i].def, canon, sizeof(canon), &error), 0);
	}
	CHECK(settings_find("auth.password_min_length") != NULL);
	CHECK(settings_find("user.default_quota") != NULL);
	CHECK(settings_find("no.such_key") == NULL);
	CHECK(settings_find("") == NULL);
}

static void test_size(void)
{
	struct setting_def def = {.key = "t.size",
	                          .type = SETTING_SIZE,
	                          .def = "0",
	                          .min = 0,
	                          .max = INT64_MAX,
	                          .doc = "test"};
	int64_t n;

	CHECK_STR(check(&def, "123"), "123");
	CHECK_STR(check(&def, "0"), "0");
	CHECK_STR(check(&def, "10K"), "10240");
	CHECK_STR(check(&def, "10k"), "10240");
	CHECK_STR(check(&def, "50M"), "52428800");
	CHECK_STR(check(&def, "2G"), "2147483648");
	CHECK_STR(check(&def, "1T"), "1099511627776");
	CHECK_STR(check(&def, "7b"), "7");
	CHECK_STR(check(&def, ""), "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, "M"), "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, "10X"), "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, "10MB"), "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, "-1"), "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, " 5"), "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, "1.5G"), "ERR: expected a size like 123, 10K, 50M or 2G");
	/* Overflow is refused, not wrapped. */
	CHECK_STR(check(&def, "99999999999999999999"),
	          "ERR: expected a size like 123, 10K, 50M or 2G");
	CHECK_STR(check(&def, "9000000000T"), "ERR: expected a size like 123, 10K, 50M or 2G");
	def.min = 1024;
	def.max = 1 << 20;
	CHECK_STR(check(&def, "1K"), "1024");
	CHECK_STR(check(&def, "1M"), "1048576");
	CHECK_STR(check(&def, "1023"), "ERR: must be between 1024 and 1048576");
	CHECK_STR(check(&def, "2M"), "ERR: must be between 1024 and 1048576");
	CHECK_INT(settings_parse_size("3K", &n), 0);
	CHECK_INT(n, 3072);
	CHECK_INT(settings_parse_size("3Q", &n), -1);
}

static void test_duration(void)
{
	struct setting_def def = {.key = "t.dur",
	                          .type = SETTING_DURATION,
	                          .def = "5m",
	                          .min = 1,
	                          .max = 30 * 86400,
	                          .doc = "test"};

	CHECK_STR(check(&def, "30"), "30");
	CHECK_STR(check(&def, "30s"), "30");
	CHECK_STR(check(&def, "5m"), "300");
	CHECK_STR(check(&def, "4h"), "14400");
	CHECK_STR(check(&def, "5d"), "432000");
	CHECK_STR(check(&def, "2w"), "1209600");
	CHECK_STR(check(&def, "5H"), "18000");
	CHECK_STR(check(&def, "0"), "ERR: must be between 1 and 2592000");
	CHECK_STR(check(&def, "31d"), "ERR: must be between 1 and 2592000");
	CHECK_STR(check(&def, "5y"),
	          "ERR: expected a duration like 30s, 5m, 4h, 5d or a number of seconds");
	CHECK_STR(check(&def, "m"),
	          "ERR: expected a duration like 30s, 5m, 4h, 5d or a number of seconds");
	CHECK_STR(check(&def, "5m3s"),
	          "ERR: expected a duration like 30s, 5m, 4h, 5d or a number of seconds");
}

static void test_int(void)
{
	struct setting_def def = {
	    .key = "t.int", .type = SETTING_INT, .def = "10", .min = -5, .max = 100, .doc = "test"};

	CHECK_STR(check(&def, "10"), "10");
	CHECK_STR(check(&def, "-5"), "-5");
	CHECK_STR(check(&def, "+7"), "7");
	CHECK_STR(check(&def, "007"), "7");
	CHECK_STR(check(&def, "101"), "ERR: must be between -5 and 100");
	CHECK_STR(check(&def, "-6"), "ERR: must be between -5 and 100");
	CHECK_STR(check(&def, "ten"), "ERR: expected an integer like 10");
	CHECK_STR(check(&def, "10K"), "ERR: expected an integer like 10");
	CHECK_STR(check(&def, ""), "ERR: expected an integer like 10");
	CHECK_STR(check(&def, " 1"), "ERR: expected an integer like 10");
	CHECK_STR(check(&def, "99999999999999999999"), "ERR: expected an integer like 10");
}

static void test_bool_enum_string(void)
{
	static const char *const choices[] = {"none", "may", "encrypt", NULL};
	struct setting_def b = {.key = "t.b", .type = SETTING_BOOL, .def = "no", .doc = "t"};
	struct setting_def e = {
	    .key = "t.e", .type = SETTING_ENUM, .def = "may", .choices = choices, .doc = "t"};
	struct setting_def s = {.key = "t.s", .type = SETTING_STRING, .def = "", .doc = "t"};
	char big[STORE_VALUE_MAX + 2];

	CHECK_STR(check(&b, "yes"), "yes");
	CHECK_STR(check(&b, "TRUE"), "yes");
	CHECK_STR(check(&b, "on"), "yes");
	CHECK_STR(check(&b, "1"), "yes");
	CHECK_STR(check(&b, "No"), "no");
	CHECK_STR(check(&b, "false"), "no");
	CHECK_STR(check(&b, "off"), "no");
	CHECK_STR(check(&b, "0"), "no");
	CHECK_STR(check(&b, "maybe"), "ERR: expected yes or no");
	CHECK_STR(check(&b, ""), "ERR: expected yes or no");
	CHECK_STR(check(&e, "may"), "may");
	CHECK_STR(check(&e, "ENCRYPT"), "encrypt");
	CHECK_STR(check(&e, "always"), "ERR: expected one of: none, may, encrypt");
	CHECK_STR(check(&s, "hello world"), "hello world");
	CHECK_STR(check(&s, ""), "");
	CHECK_STR(check(&s, "a\nb"), "ERR: control characters are not allowed");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_STR(check(&s, big), "ERR: too long");
}

static void test_update_get(void)
{
	char buf[64];

	/* Defaults before anything is set. */
	CHECK_INT(settings_get_int("auth.password_min_length"), 10);
	CHECK(!settings_is_set("auth.password_min_length"));
	settings_get("auth.password_min_length", buf, sizeof(buf));
	CHECK_STR(buf, "10");
	CHECK_INT(settings_get_int("user.default_quota"), 0);

	settings_update("auth.password_min_length", "14");
	CHECK_INT(settings_get_int("auth.password_min_length"), 14);
	CHECK(settings_is_set("auth.password_min_length"));
	settings_get("auth.password_min_length", buf, sizeof(buf));
	CHECK_STR(buf, "14");

	settings_update("user.default_quota", "52428800");
	CHECK_INT(settings_get_int("user.default_quota"), 52428800);

	/* Unset: back to the default. */
	settings_update("auth.password_min_length", NULL);
	CHECK_INT(settings_get_int("auth.password_min_length"), 10);
	CHECK(!settings_is_set("auth.password_min_length"));
	settings_update("user.default_quota", NULL);
	CHECK_INT(settings_get_int("user.default_quota"), 0);
	CHECK(!settings_is_set("user.default_quota"));
	/* A truncating buffer still gets a terminated prefix. */
	settings_get("auth.password_min_length", buf, 2);
	CHECK_STR(buf, "1");
}

static void sync_set(struct store *store, const char *key, const char *value)
{
	struct store_sync sync;

	store_sync_init(&sync);
	store_setting_set(store, key, value, NULL, store_sync_cb, &sync);
	store_sync_wait(&sync);
	CHECK_INT(sync.status, 0);
	store_sync_deinit(&sync);
}

/* settings_load() takes valid stored values and ignores unknown or invalid
 * ones, leaving their defaults. */
static void test_load(void)
{
	char *dir = test_tmpdir();
	struct store *store;
	struct store_reader *reader;
	const char *error;

	if (store_open(dir, &store, &error) < 0) {
		fprintf(stderr, "  store_open: %s\n", error);
		test_failed_checks++;
		test_rmtree(dir);
		free(dir);
		return;
	}
	sync_set(store, "auth.password_min_length", "12");
	sync_set(store, "user.default_quota", "not-a-size");
	sync_set(store, "no.such_key", "1");
	CHECK_INT(store_reader_open(store, &reader, &error), 0);
	settings_update("user.default_quota", "1024");
	CHECK_INT(settings_load(reader), 0);
	CHECK_INT(settings_get_int("auth.password_min_length"), 12);
	CHECK(settings_is_set("auth.password_min_length"));
	/* Invalid stored value: the default applies, and an earlier update is
	 * replaced by what the store holds. */
	CHECK_INT(settings_get_int("user.default_quota"), 0);
	CHECK(!settings_is_set("user.default_quota"));
	store_reader_close(&reader);
	store_close(&store);
	settings_update("auth.password_min_length", NULL);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	TEST_RUN(test_registry);
	TEST_RUN(test_size);
	TEST_RUN(test_duration);
	TEST_RUN(test_int);
	TEST_RUN(test_bool_enum_string);
	TEST_RUN(test_update_get);
	TEST_RUN(test_load);
	return test_summary();
}
