#include <string.h>

#include "lib/test.h"
#include "proto/pop3_parser.h"

static int parse(const char *line, struct pop3_command *cmd, const char **err)
{
	*err = NULL;
	return pop3_parse(line, strlen(line), cmd, err);
}

static void test_verbs(void)
{
	struct pop3_command c;
	const char *err;

	CHECK_INT(parse("stat", &c, &err), 0);
	CHECK_INT(c.verb, POP3_VERB_STAT);
	CHECK_INT(parse("LIST", &c, &err), 0);
	CHECK_INT(c.argc, 0);
	CHECK_INT(parse("list 3", &c, &err), 0);
	CHECK_INT(c.num[0], 3);
	CHECK_INT(parse("TOP 2 10", &c, &err), 0);
	CHECK_INT(c.num[0], 2);
	CHECK_INT(c.num[1], 10);
	CHECK_INT(parse("TOP 2 0", &c, &err), 0);
	CHECK_INT(parse("uidl  7", &c, &err), 0);
	CHECK_INT(c.num[0], 7);
	CHECK_INT(parse("USER bob@example.test", &c, &err), 0);
	CHECK(c.arglen[0] == 16 && memcmp(c.argv[0], "bob@example.test", 16) == 0);
	CHECK_INT(parse("PASS two words ", &c, &err), 0);
	CHECK(c.arglen[0] == 10 && memcmp(c.argv[0], "two words ", 10) == 0);
	CHECK_INT(parse("AUTH PLAIN AGJvYgBzZWNyZXQ=", &c, &err), 0);
	CHECK_INT(c.argc, 2);
	CHECK_INT(parse("AUTH", &c, &err), 0);
	CHECK_INT(parse("CAPA", &c, &err), 0);
	CHECK_INT(parse("STLS", &c, &err), 0);
	CHECK_INT(parse("QUIT", &c, &err), 0);
}

static void test_errors(void)
{
	static const char *const bad[] = {
		"", "FOO", "STAT 1", "RETR", "RETR 0", "RETR -1", "RETR +1", "RETR 1x",
		"RETR 1234567890", "DELE 1 2", "TOP 1", "TOP 1 x", "PASS", "PASS ",
		"USER", "LIST 1 2", "RETRX 1",
		"LIST 12345678901234567890123456789012345678901",
	};
	struct pop3_command c;
	const char *err;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(parse(bad[i], &c, &err), -1);
		CHECK(err != NULL);
	}
	CHECK_INT(pop3_parse("STAT\0", 5, &c, &err), -1);
	CHECK_INT(parse("STAT\r", &c, &err), -1);
	CHECK_INT(parse("USER a\nPASS b", &c, &err), -1);
	CHECK_INT(parse("RETR 0", &c, &err), -1);
	CHECK_INT(c.verb, POP3_VERB_RETR);
}

int main(void)
{
	TEST_RUN(test_verbs);
	TEST_RUN(test_errors);
	return test_summary();
}
