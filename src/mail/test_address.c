#include "mail/address.h"

#include <stdbool.h>
#include <string.h>

#include "lib/test.h"

struct valid_case {
	const char *in;
	bool utf8;
	const char *localpart, *domain;
	bool quoted, literal;
	const char *canonical;
};

static const struct valid_case valid_cases[] = {
    {"user@example.test", false, "user", "example.test", false, false, "user@example.test"},
    {"User.Name@Example.TEST", false, "User.Name", "example.test", false, false,
     "User.Name@example.test"},
    {"a@b", false, "a", "b", false, false, "a@b"},
    {"postmaster@localhost", false, "postmaster", "localhost", false, false,
     "postmaster@localhost"},
    {"first.middle.last@sub.example.test", false, "first.middle.last", "sub.example.test", false,
     false, "first.middle.last@sub.example.test"},
    {"user+tag@example.test", false, "user+tag", "example.test", false, false,
     "user+tag@example.test"},
    {"!#$%&'*+-/=?^_`{|}~@x.test", false, "!#$%&'*+-/=?^_`{|}~", "x.test", false, false,
     "!#$%&'*+-/=?^_`{|}~@x.test"},
    {"x@a-b.c-d.test", false, "x", "a-b.c-d.test", false, false, "x@a-b.c-d.test"},
    {"x@123.test", false, "x", "123.test", false, false, "x@123.test"},
    {"x@xn--bcher-kva.test", false, "x", "xn--bcher-kva.test", false, false,
     "x@xn--bcher-kva.test"},
    /* Open-relay forms are plain syntax: local parts, never routes. */
    {"u%remote.test@local", false, "u%remote.test", "local", false, false, "u%remote.test@local"},
    {"remote.test!u@local", false, "remote.test!u", "local", false, false, "remote.test!u@local"},
    {"\"u@remote.test\"@local", false, "u@remote.test", "local", true, false,
     "\"u@remote.test\"@local"},
    /* Quoted strings that are Dot-strings are the same mailbox unquoted. */
    {"\"john\"@x.test", false, "john", "x.test", false, false, "john@x.test"},
    {"\"john.doe\"@x.test", false, "john.doe", "x.test", false, false, "john.doe@x.test"},
    {"\"john doe\"@x.test", false, "john doe", "x.test", true, false, "\"john doe\"@x.test"},
    {"\"a..b\"@x.test", false, "a..b", "x.test", true, false, "\"a..b\"@x.test"},
    {"\".a\"@x.test", false, ".a", "x.test", true, false, "\".a\"@x.test"},
    {"\"a\\\"b\"@x.test", false, "a\"b", "x.test", true, false, "\"a\\\"b\"@x.test"},
    {"\"a\\\\b\"@x.test", false, "a\\b", "x.test", true, false, "\"a\\\\b\"@x.test"},
    {"\"a\\b\"@x.test", false, "ab", "x.test", false, false, "ab@x.test"},
    {"\"a,b:c<d>\"@x.test", false, "a,b:c<d>", "x.test", true, false, "\"a,b:c<d>\"@x.test"},
    /* Address literals. */
    {"u@[192.0.2.1]", false, "u", "[192.0.2.1]", false, true, "u@[192.0.2.1]"},
    {"u@[0.0.0.0]", false, "u", "[0.0.0.0]", false, true, "u@[0.0.0.0]"},
    {"u@[255.255.255.255]", false, "u", "[255.255.255.255]", false, true, "u@[255.255.255.255]"},
    {"u@[IPv6:2001:DB8::1]", false, "u", "[IPv6:2001:db8::1]", false, true, "u@[IPv6:2001:db8::1]"},
    {"u@[ipv6:::1]", false, "u", "[IPv6:::1]", false, true, "u@[IPv6:::1]"},
    {"u@[IPv6:::ffff:192.0.2.1]", false, "u", "[IPv6:::ffff:192.0.2.1]", false, true,
     "u@[IPv6:::ffff:192.0.2.1]"},
    /* SMTPUTF8. */
    {"j\xc3\xb6rg@b\xc3\xbc\x63her.test", true, "j\xc3\xb6rg", "b\xc3\xbc\x63her.test", false,
     false, "j\xc3\xb6rg@b\xc3\xbc\x63her.test"},
    {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test", true, "\xe7\x94\xa8\xe6\x88\xb7",
     "\xe4\xbe\x8b\xe5\xad\x90.test", false, false,
     "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test"},
    {"\"\xf0\x9f\x98\x80 x\"@x.test", true, "\xf0\x9f\x98\x80 x", "x.test", true, false,
     "\"\xf0\x9f\x98\x80 x\"@x.test"},
    {"U\xc3\x84@X.TEST", true, "U\xc3\x84", "x.test", false, false, "U\xc3\x84@x.test"},
    /* Limits exactly reached. */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.test", false,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x.test", false, false,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.test"},
    {"u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", false, "u",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", false, false,
     "u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test"},
};

struct invalid_case {
	const char *in;
	bool utf8;
	const char *error; /* a substring of the error */
};

static const struct invalid_case invalid_cases[] = {
    {"", false, "empty local part"},
    {"@example.test", false, "empty local part"},
    {"user", false, "missing '@'"},
    {"user@", false, "empty label"},
    {"u@remote.test@local", false, "more than one '@'"},
    {"a@b@c", false, "more than one '@'"},
    {".user@x.test", false, "starts with a dot"},
    {"user.@x.test", false, "ends with a dot"},
    {"us..er@x.test", false, "two dots"},
    {"us er@x.test", false, "invalid character in local part"},
    {"us(er@x.test", false, "invalid character in local part"},
    {"us\\er@x.test", false, "invalid character in local part"},
    {"us\"er\"@x.test", false, "invalid character in local part"},
    {"\"\"@x.test", false, "empty local part"},
    {"\"abc@x.test", false, "unterminated"},
    {"\"a\tb\"@x.test", false, "invalid character in quoted"},
    {"\"a\\\x01\"@x.test", false, "invalid character in quoted"},
    {"\"a\"b@x.test", false, "invalid character in local part"},
    {"u@x..test", false, "empty label"},
    {"u@.x.test", false, "empty label"},
    {"u@x.test.", false, "ends with a dot"},
    {"u@-x.test", false, "hyphen"},
    {"u@x-.test", false, "hyphen"},
    {"u@x_y.test", false, "invalid character in domain"},
    {"u@x.test ", false, "invalid character in domain"},
    {" u@x.test", false, "empty local part"},
    {"u@x.test>", false, "invalid character in domain"},
    {"u@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", false,
     "longer than 63"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.test", false,
     "longer than 64"},
    {"\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b\"@x.test", false,
     "longer than 64"},
    {"u@[192.0.2.256]", false, "invalid IPv4"},
    {"u@[192.0.2]", false, "invalid IPv4"},
    {"u@[192.0.2.1.5]", false, "invalid IPv4"},
    {"u@[1234.0.2.1]", false, "invalid IPv4"},
    {"u@[]", false, "invalid IPv4"},
    {"u@[192.0.2.1", false, "unterminated"},
    {"u@[IPv6:2001:db8::g]", false, "invalid IPv6"},
    {"u@[IPv6:1:2:3:4:5:6:7:8:9]", false, "invalid IPv6"},
    {"u@[2001:db8::1]", false, "unsupported address literal"},
    {"u@[x-tag:abc]", false, "unsupported address literal"},
    {"u@[192.0.2.1]x", false, "invalid character in domain"},
    /* 8-bit without SMTPUTF8. */
    {"j\xc3\xb6rg@x.test", false, "needs SMTPUTF8"},
    {"u@b\xc3\xbc\x63her.test", false, "needs SMTPUTF8"},
    {"\"j\xc3\xb6rg\"@x.test", false, "needs SMTPUTF8"},
    /* Malformed UTF-8 even with SMTPUTF8. */
    {"a\xc0\xaf@x.test", true, "invalid UTF-8"},
    {"a\xed\xa0\x80@x.test", true, "invalid UTF-8"},
    {"a\xf4\x90\x80\x80@x.test", true, "invalid UTF-8"},
    {"a\xc3@x.test", true, "invalid UTF-8"},
    {"a\x80@x.test", true, "invalid UTF-8"},
    {"u@b\xff.test", true, "invalid UTF-8"},
};

static void test_valid(void)
{
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
		const struct valid_case *c = &valid_cases[i];
		struct address a;
		const char *error = NULL;
		char buf[ADDRESS_MAX + 1];

		if (address_parse(c->in, c->utf8, &a, &error) < 0) {
			fprintf(stderr, "  case \"%s\": %s\n", c->in, error);
			CHECK(false);
			continue;
		}
		CHECK_STR(a.localpart, c->localpart);
		CHECK_STR(a.domain, c->domain);
		CHECK_INT(a.quoted, c->quoted);
		CHECK_INT(a.literal, c->literal);
		CHECK_INT(address_format(&a, buf, sizeof(buf)), 0);
		CHECK_STR(buf, c->canonical);
	}
}

static void test_invalid(void)
{
	for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
		const struct invalid_case *c = &invalid_cases[i];
		struct address a;
		const char *error = NULL;

		if (address_parse(c->in, c->utf8, &a, &error) == 0) {
			fprintf(stderr, "  case \"%s\" accepted\n", c->in);
			CHECK(false);
			continue;
		}
		if (error == NULL || strstr(error, c->error) == NULL) {
			fprintf(stderr, "  case \"%s\": error \"%s\", expected \"%s\"\n", c->in,
			        error != NULL ? error : "(null)", c->error);
			CHECK(false);
		}
	}
}

/* A canonical form parses back to the same address. */
static void test_format_roundtrip(void)
{
	for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
		struct address a, b;
		const char *error;
		char buf[ADDRESS_MAX + 1];

		CHECK_INT(address_parse(valid_cases[i].in, valid_cases[i].utf8, &a, &error), 0);
		CHECK_INT(address_format(&a, buf, sizeof(buf)), 0);
		CHECK_INT(address_parse(buf, valid_cases[i].utf8, &b, &error), 0);
		CHECK_STR(b.localpart, a.localpart);
		CHECK_STR(b.domain, a.domain);
		CHECK_INT(b.quoted, a.quoted);
	}
}

static void test_format_small_buffer(void)
{
	struct address a;
	const char *error;
	char buf[8];

	CHECK_INT(address_parse("user@example.test", false, &a, &error), 0);
	CHECK_INT(address_format(&a, buf, sizeof(buf)), -1);
	CHECK_STR(buf, "");
	CHECK_INT(address_format(&a, buf, 0), -1);
}

/* The longest legal domain is 255 octets; one more is refused. */
static void test_domain_length(void)
{
	char domain[300], addr[320];
	struct address a;
	const char *error;
	size_t n = 0;

	while (n < 192) { /* three labels of 63 octets and a dot */
		memset(domain + n, 'a', 63);
		domain[n + 63] = '.';
		n += 64;
	}
	memset(domain + n, 'b', 255 - n);
	domain[255] = '\0';
	CHECK_INT(strlen(domain), 255);
	CHECK(address_domain_valid(domain, false));
	snprintf(addr, sizeof(addr), "u@%s", domain);
	CHECK_INT(address_parse(addr, false, &a, &error), 0);
	CHECK_STR(a.domain, domain);

	/* 256: the last label one shorter, then ".c". */
	memcpy(domain + 254, ".c", 3);
	CHECK(!address_domain_valid(domain, false));
	snprintf(addr, sizeof(addr), "u@%s", domain);
	CHECK_INT(address_parse(addr, false, &a, &error), -1);
	CHECK(strstr(error, "longer than 255") != NULL);
}

static void test_domain_check(void)
{
	const char *error;

	CHECK(address_domain_valid("example.test", false));
	CHECK(address_domain_valid("EXAMPLE.test", false));
	CHECK(address_domain_valid("localhost", false));
	CHECK(address_domain_valid("[192.0.2.1]", false));
	CHECK(address_domain_valid("[IPv6:::1]", false));
	CHECK(address_domain_valid("b\xc3\xbc\x63her.test", true));
	CHECK(!address_domain_valid("b\xc3\xbc\x63her.test", false));
	CHECK(!address_domain_valid("", false));
	CHECK(!address_domain_valid("a..b", false));
	CHECK(!address_domain_valid("a.b.", false));
	CHECK(!address_domain_valid("-a.b", false));
	CHECK(!address_domain_valid("a b", false));
	CHECK(!address_domain_valid("a@b", false));
	CHECK(!address_domain_valid("a_b.test", false));
	CHECK_INT(address_domain_check("a@b", false, &error), -1);
	CHECK(strstr(error, "'@'") != NULL);
	CHECK_INT(address_domain_check("x.test.", false, &error), -1);
	CHECK_STR(error, "domain ends with a dot");
}

static void test_dot_string(void)
{
	CHECK(address_localpart_is_dot_string("john.doe", false));
	CHECK(address_localpart_is_dot_string("a+b", false));
	CHECK(!address_localpart_is_dot_string("", false));
	CHECK(!address_localpart_is_dot_string("a b", false));
	CHECK(!address_localpart_is_dot_string("a..b", false));
	CHECK(!address_localpart_is_dot_string("a@b", false));
	CHECK(address_localpart_is_dot_string("j\xc3\xb6rg", true));
	CHECK(!address_localpart_is_dot_string("j\xc3\xb6rg", false));
}

static void test_subaddress(void)
{
	char s[ADDRESS_LOCAL_MAX + 1];

	strcpy(s, "user+tag");
	CHECK(address_subaddress_strip(s, '+'));
	CHECK_STR(s, "user");
	strcpy(s, "user+a+b");
	CHECK(address_subaddress_strip(s, '+'));
	CHECK_STR(s, "user");
	strcpy(s, "user+");
	CHECK(address_subaddress_strip(s, '+'));
	CHECK_STR(s, "user");
	strcpy(s, "user");
	CHECK(!address_subaddress_strip(s, '+'));
	CHECK_STR(s, "user");
	strcpy(s, "+tag");
	CHECK(!address_subaddress_strip(s, '+'));
	CHECK_STR(s, "+tag");
	strcpy(s, "user-tag");
	CHECK(address_subaddress_strip(s, '-'));
	CHECK_STR(s, "user");
	strcpy(s, "user+tag");
	CHECK(!address_subaddress_strip(s, '\0'));
	CHECK_STR(s, "user+tag");
}

static void test_fold_case(void)
{
	char s[32];

	strcpy(s, "John.DOE+Tag");
	address_fold_case(s);
	CHECK_STR(s, "john.doe+tag");
	strcpy(s, "\xc3\x84Z");
	address_fold_case(s);
	CHECK_STR(s, "\xc3\x84z");
}

static void test_path(void)
{
	struct address_path p;
	const char *error = NULL;

	CHECK_INT(address_path_parse("<user@Example.test>", false, 0, &p, NULL, &error), 0);
	CHECK(!p.null);
	CHECK_STR(p.addr.localpart, "user");
	CHECK_STR(p.addr.domain, "example.test");
	CHECK_STR(p.route, "");

	CHECK_INT(address_path_parse("<\"a>b\"@x.test>", false, 0, &p, NULL, &error), 0);
	CHECK_STR(p.addr.localpart, "a>b");

	CHECK_INT(address_path_parse("<u@[IPv6:::1]>", false, 0, &p, NULL, &error), 0);
	CHECK_STR(p.addr.domain, "[IPv6:::1]");
}

static void test_path_null(void)
{
	struct address_path p;
	const char *error = NULL;

	CHECK_INT(address_path_parse("<>", false, ADDRESS_PATH_ALLOW_NULL, &p, NULL, &error), 0);
	CHECK(p.null);
	CHECK_STR(p.addr.localpart, "");
	CHECK_INT(address_path_parse("<>", false, 0, &p, NULL, &error), -1);
	CHECK_STR(error, "empty path not allowed here");
}

static void test_path_postmaster(void)
{
	struct address_path p;
	const char *error = NULL;
	unsigned pm = ADDRESS_PATH_ALLOW_POSTMASTER;

	CHECK_INT(address_path_parse("<Postmaster>", false, pm, &p, NULL, &error), 0);
	CHECK(p.postmaster);
	CHECK_STR(p.addr.localpart, "Postmaster");
	CHECK_STR(p.addr.domain, "");
	CHECK_INT(address_path_parse("<POSTMASTER>", false, pm, &p, NULL, &error), 0);
	CHECK(p.postmaster);
	CHECK_INT(address_path_parse("<postmaster@x.test>", false, pm, &p, NULL, &error), 0);
	CHECK(!p.postmaster);
	CHECK_STR(p.addr.domain, "x.test");
	CHECK_INT(address_path_parse("<Postmaster>", false, 0, &p, NULL, &error), -1);
	CHECK_INT(address_path_parse("<admin>", false, pm, &p, NULL, &error), -1);
	CHECK(strstr(error, "missing '@'") != NULL);
}

static void test_path_route(void)
{
	struct address_path p;
	const char *error = NULL;

	CHECK_INT(address_path_parse("<@a.test,@B.test:u@d.test>", false, 0, &p, NULL, &error), 0);
	CHECK_STR(p.route, "@a.test,@B.test");
	CHECK_STR(p.addr.localpart, "u");
	CHECK_STR(p.addr.domain, "d.test");

	CHECK_INT(address_path_parse("<@a.test:u@d.test>", false, 0, &p, NULL, &error), 0);
	CHECK_STR(p.route, "@a.test");
	CHECK_STR(p.addr.localpart, "u");
}

static void test_path_end(void)
{
	struct address_path p;
	const char *error = NULL, *end = NULL;

	CHECK_INT(address_path_parse("<u@x.test> SIZE=100", false, 0, &p, &end, &error), 0);
	CHECK_STR(end, " SIZE=100");
	CHECK_INT(address_path_parse("<> BODY=8BITMIME", false, ADDRESS_PATH_ALLOW_NULL, &p, &end,
	                             &error),
	          0);
	CHECK_STR(end, " BODY=8BITMIME");
	CHECK_INT(address_path_parse("<u@x.test> SIZE=100", false, 0, &p, NULL, &error), -1);
	CHECK_STR(error, "unexpected text after the path");
}

struct invalid_path {
	const char *in;
	const char *error;
};

static const struct invalid_path invalid_paths[] = {
    {"", "enclosed in '<'"},
    {"u@x.test", "enclosed in '<'"},
    {" <u@x.test>", "enclosed in '<'"},
    {"<u@x.test", "missing '>'"},
    {"<u@x.test >", "invalid character in domain"},
    {"< u@x.test>", "empty local part"},
    {"<u@remote.test@local>", "more than one '@'"},
    {"<@a.test>", "expected ',' or ':'"},
    {"<@a.test:>", "empty local part"},
    {"<@:u@x.test>", "empty label"},
    {"<@a.test,u@x.test>", "expected '@domain'"},
    {"<@a.test,:u@x.test>", "expected '@domain'"},
    {"<@a.test;@b.test:u@x.test>", "expected ',' or ':'"},
    {"<@a..test:u@x.test>", "empty label"},
    {"<@a.test.:u@x.test>", "ends with a dot"},
    {"<@[192.0.2.1]:u@x.test>", "empty label"},
    {"<u>", "missing '@'"},
    {"<<u@x.test>>", "empty local part"},
    {"<u@x.test>>", "unexpected text"},
    {"<u@>", "empty label"},
};

static void test_path_invalid(void)
{
	for (size_t i = 0; i < sizeof(invalid_paths) / sizeof(invalid_paths[0]); i++) {
		const struct invalid_path *c = &invalid_paths[i];
		struct address_path p;
		const char *error = NULL;

		if (address_path_parse(c->in, false, ADDRESS_PATH_ALLOW_NULL, &p, NULL, &error) ==
		    0) {
			fprintf(stderr, "  path \"%s\" accepted\n", c->in);
			CHECK(false);
			continue;
		}
		if (error == NULL || strstr(error, c->error) == NULL) {
			fprintf(stderr, "  path \"%s\": error \"%s\", expected \"%s\"\n", c->in,
			        error != NULL ? error : "(null)", c->error);
			CHECK(false);
		}
	}
}

static void test_path_route_too_long(void)
{
	char s[600];
	struct address_path p;
	const char *error = NULL;
	size_t n = 0;

	s[n++] = '<';
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(s + n, sizeof(s) - n, "%s@relay%02d.test", i ? "," : "", i);
	snprintf(s + n, sizeof(s) - n, ":u@x.test>");
	CHECK_INT(address_path_parse(s, false, 0, &p, NULL, &error), -1);
	CHECK_STR(error, "source route too long");
}

int main(void)
{
	TEST_RUN(test_valid);
	TEST_RUN(test_invalid);
	TEST_RUN(test_format_roundtrip);
	TEST_RUN(test_format_small_buffer);
	TEST_RUN(test_domain_length);
	TEST_RUN(test_domain_check);
	TEST_RUN(test_dot_string);
	TEST_RUN(test_subaddress);
	TEST_RUN(test_fold_case);
	TEST_RUN(test_path);
	TEST_RUN(test_path_null);
	TEST_RUN(test_path_postmaster);
	TEST_RUN(test_path_route);
	TEST_RUN(test_path_end);
	TEST_RUN(test_path_invalid);
	TEST_RUN(test_path_route_too_long);
	return test_summary();
}
