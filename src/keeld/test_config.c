#include <stdlib.h>
#include <string.h>

#include "keeld/config.h"
#include "lib/test.h"

static int parse(const char *text, struct config *c, char **err)
{
	*err = NULL;
	return config_parse(text, "/etc/keel/keel.conf", c, err);
}

static void test_defaults_and_paths(void)
{
	struct config c;
	char *err;

	CHECK_INT(parse("# nothing\n\n", &c, &err), 0);
	CHECK_STR(c.data_dir, "/var/lib/keel");
	CHECK_STR(c.admin_socket, "/var/lib/keel/keel.sock");
	CHECK_STR(c.user, "keel");
	CHECK_STR(c.store, "sqlite");
	CHECK(c.workers >= 1);
	CHECK_INT(c.n_listeners, 0);
	config_deinit(&c);

	CHECK_INT(parse("data_dir = var\nlog = keel.log\ntls.cert = /a.crt\ntls.key = k.pem\n",
			&c, &err),
		  0);
	CHECK_STR(c.data_dir, "/etc/keel/var");
	CHECK_STR(c.admin_socket, "/etc/keel/var/keel.sock");
	CHECK_STR(c.log, "/etc/keel/keel.log");
	CHECK_STR(c.tls_cert, "/a.crt");
	CHECK_STR(c.tls_key, "/etc/keel/k.pem");
	config_deinit(&c);
}

static void test_listeners(void)
{
	struct config c;
	char *err;

	CHECK_INT(parse("smtp.listen = 127.0.0.1:25, [::1]:25\r\nimaps.listen = 0.0.0.0:993\n"
			"pop3.listen =\n",
			&c, &err),
		  0);
	CHECK_INT(c.n_listeners, 3);
	CHECK_INT(c.listeners[0].service, SERVICE_SMTP);
	CHECK_STR(c.listeners[1].address, "[::1]:25");
	CHECK_INT(c.listeners[1].sa.ss_family, AF_INET6);
	CHECK_INT(c.listeners[2].service, SERVICE_IMAPS);
	CHECK(service_implicit_tls(SERVICE_IMAPS));
	CHECK(!service_implicit_tls(SERVICE_IMAP));
	config_deinit(&c);
}

static void expect_error(const char *text, const char *needle)
{
	struct config c;
	char *err;

	CHECK_INT(parse(text, &c, &err), -1);
	CHECK(err != NULL && strstr(err, needle) != NULL);
	if (err == NULL || strstr(err, needle) == NULL)
		fprintf(stderr, "  got: %s, wanted: %s\n", err ? err : "(null)", needle);
	free(err);
}

static void test_errors(void)
{
	expect_error("\n\ncolour = blue\n", "/etc/keel/keel.conf:3: key 'colour': unknown key");
	expect_error("smtp.listen = localhost:25\n", "numeric address");
	expect_error("smtp.listen = 127.0.0.1:0\n", "ADDR:PORT");
	expect_error("smtp.listen = [::1]25\n", "ADDR:PORT");
	expect_error("smtp.listen = 127.0.0.1:25\nimap.listen = 127.0.0.1:25\n",
		     "already used");
	expect_error("workers = 12x\n", "1 to 256");
	expect_error("hostname = bad host\n", "not a host name");
	expect_error("tls.cert = /a\n", "must be given together");
	expect_error("user = keel\nuser = other\n", ":2: key 'user': given more than once");
	expect_error("= value\n", "expected 'key = value'");
	expect_error("data_dir =\n", "empty path");
	expect_error("smtps.listen = 127.0.0.1:465\n", "unknown key");
}

int main(void)
{
	TEST_RUN(test_defaults_and_paths);
	TEST_RUN(test_listeners);
	TEST_RUN(test_errors);
	return test_summary();
}
