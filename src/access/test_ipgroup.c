#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/ipgroup.h"
#include "lib/test.h"
#include "store/store.h"

/* Builds a snapshot from "group entry [!]" specs: "!" marks an exclusion. */
struct spec {
	const char *group, *entry;
	bool exclude;
};

static struct ipgroups *compile(const char *const *names, size_t n_names, const struct spec *specs,
                                size_t n_specs, const char **error_r)
{
	struct store_ipgroup *groups = calloc(n_names, sizeof(*groups));
	struct store_ipgroup_entry *entries = calloc(n_specs + 1, sizeof(*entries));
	struct ipgroups *set;

	for (size_t i = 0; i < n_names; i++)
		snprintf(groups[i].name, sizeof(groups[i].name), "%s", names[i]);
	for (size_t i = 0; i < n_specs; i++) {
		snprintf(entries[i].group, sizeof(entries[i].group), "%s", specs[i].group);
		snprintf(entries[i].entry, sizeof(entries[i].entry), "%s", specs[i].entry);
		entries[i].exclude = specs[i].exclude;
	}
	set = ipgroups_compile(groups, n_names, entries, n_specs, error_r);
	free(groups);
	free(entries);
	return set;
}

/* Match of a text address: 1, 0, -1, with the entry in *entry_r. */
static int match(const struct ipgroups *set, const char *group, const char *ip,
                 const char **entry_r)
{
	struct sockaddr_storage ss;

	if (ipgroup_addr_parse(ip, &ss) < 0)
		return -2;
	return ipgroups_match(set, group, (const struct sockaddr *)&ss, entry_r);
}

static void test_parse(void)
{
	char norm[IPGROUP_ENTRY_SIZE];
	const char *error;

	CHECK_INT(ipgroup_entry_parse("10.1.2.3", norm, &error), 0);
	CHECK_STR(norm, "10.1.2.3");
	CHECK_INT(ipgroup_entry_parse("10.1.2.3/8", norm, &error), 0);
	CHECK_STR(norm, "10.0.0.0/8");
	CHECK_INT(ipgroup_entry_parse("2001:DB8:0::1/32", norm, &error), 0);
	CHECK_STR(norm, "2001:db8::/32");
	CHECK_INT(ipgroup_entry_parse("::ffff:192.0.2.0/120", norm, &error), 0);
	CHECK_STR(norm, "192.0.2.0/24");
	CHECK_INT(ipgroup_entry_parse("::ffff:192.0.2.9", norm, &error), 0);
	CHECK_STR(norm, "192.0.2.9");
	CHECK_INT(ipgroup_entry_parse("10.0.0.9-10.0.0.20", norm, &error), 0);
	CHECK_STR(norm, "10.0.0.9-10.0.0.20");
	CHECK_INT(ipgroup_entry_parse("0.0.0.0/0", norm, &error), 0);
	CHECK_STR(norm, "0.0.0.0/0");
	CHECK_INT(ipgroup_entry_parse("group:Office-1", norm, &error), 0);
	CHECK_STR(norm, "group:Office-1");
	CHECK_INT(ipgroup_entry_parse("10.0.0.20-10.0.0.9", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("10.0.0.1-::1", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("10.0.0.1/33", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("10.0.0.1/", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("::1/129", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("::ffff:1.2.3.4/64", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("10.0.0", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("group:", norm, &error), -1);
	CHECK_INT(ipgroup_entry_parse("group:a b", norm, &error), -1);
	CHECK(!ipgroup_name_valid(""));
	CHECK(ipgroup_name_valid("lan_2.x-y"));
}

static void test_ranges_cidr(void)
{
	static const char *const names[] = {"net"};
	static const struct spec specs[] = {
	    {"net", "10.0.0.9-10.0.0.20", false},
	    {"net", "192.168.0.0/16", false},
	    {"net", "2001:db8::/32", false},
	    {"net", "fe80::1", false},
	};
	const char *error = NULL, *entry;
	struct ipgroups *set = compile(names, 1, specs, 4, &error);

	CHECK(set != NULL);
	CHECK_INT(match(set, "net", "10.0.0.8", &entry), 0);
	CHECK(entry == NULL);
	CHECK_INT(match(set, "net", "10.0.0.9", &entry), 1);
	CHECK_STR(entry, "10.0.0.9-10.0.0.20");
	CHECK_INT(match(set, "net", "10.0.0.20", NULL), 1);
	CHECK_INT(match(set, "net", "10.0.0.21", NULL), 0);
	CHECK_INT(match(set, "NET", "192.168.255.255", &entry), 1);
	CHECK_STR(entry, "192.168.0.0/16");
	CHECK_INT(match(set, "net", "192.169.0.0", NULL), 0);
	CHECK_INT(match(set, "net", "2001:db8:ffff::5", &entry), 1);
	CHECK_STR(entry, "2001:db8::/32");
	CHECK_INT(match(set, "net", "2001:db9::", NULL), 0);
	CHECK_INT(match(set, "net", "fe80::1", NULL), 1);
	CHECK_INT(match(set, "net", "fe80::2", NULL), 0);
	/* A v4-mapped client counts as the v4 address. */
	CHECK_INT(match(set, "net", "::ffff:10.0.0.10", &entry), 1);
	CHECK_STR(entry, "10.0.0.9-10.0.0.20");
	CHECK_INT(match(set, "other", "10.0.0.10", NULL), -1);
	ipgroups_unref(&set);
	CHECK(set == NULL);
}

static void test_nesting_exclusions(void)
{
	static const char *const names[] = {"all", "lan", "wifi", "empty"};
	static const struct spec specs[] = {
	    {"lan", "10.0.0.0/8", false},
	    {"lan", "10.9.0.0/16", true},
	    {"wifi", "172.16.0.0/12", false},
	    {"all", "group:lan", false},
	    {"all", "group:wifi", false},
	    {"all", "group:empty", false},
	    {"all", "172.16.5.5", true},
	    /* An exclusion listed first still wins over a later inclusion. */
	    {"all", "10.1.0.0-10.1.0.255", true},
	    {"all", "10.1.0.7", false},
	};
	const char *error = NULL, *entry;
	struct ipgroups *set = compile(names, 4, specs, 9, &error);

	CHECK(set != NULL);
	CHECK_INT(match(set, "lan", "10.2.3.4", &entry), 1);
	CHECK_STR(entry, "10.0.0.0/8");
	CHECK_INT(match(set, "lan", "10.9.1.1", &entry), 0);
	CHECK_STR(entry, "10.9.0.0/16");
	CHECK_INT(match(set, "all", "10.2.3.4", &entry), 1);
	CHECK_STR(entry, "group:lan > 10.0.0.0/8");
	/* lan's own exclusion holds inside all too. */
	CHECK_INT(match(set, "all", "10.9.1.1", NULL), 0);
	CHECK_INT(match(set, "all", "172.16.5.4", &entry), 1);
	CHECK_STR(entry, "group:wifi > 172.16.0.0/12");
	CHECK_INT(match(set, "all", "172.16.5.5", &entry), 0);
	CHECK_STR(entry, "172.16.5.5");
	CHECK_INT(match(set, "all", "172.16.5.6", NULL), 1);
	CHECK_INT(match(set, "all", "10.1.0.7", &entry), 0);
	CHECK_STR(entry, "10.1.0.0-10.1.0.255");
	CHECK_INT(match(set, "all", "10.1.1.0", NULL), 1);
	CHECK_INT(match(set, "all", "192.0.2.1", NULL), 0);
	CHECK_INT(match(set, "empty", "10.2.3.4", NULL), 0);
	ipgroups_unref(&set);
}

static void test_exclude_edges(void)
{
	static const char *const names[] = {"g"};
	static const struct spec specs[] = {
	    {"g", "0.0.0.0/0", false},
	    {"g", "::/0", false},
	    {"g", "0.0.0.0", true},
	    {"g", "255.255.255.255", true},
	    {"g", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", true},
	    {"g", "10.0.0.5-10.0.0.6", true},
	};
	const char *error = NULL;
	struct ipgroups *set = compile(names, 1, specs, 6, &error);

	CHECK(set != NULL);
	CHECK_INT(match(set, "g", "0.0.0.0", NULL), 0);
	CHECK_INT(match(set, "g", "0.0.0.1", NULL), 1);
	CHECK_INT(match(set, "g", "255.255.255.254", NULL), 1);
	CHECK_INT(match(set, "g", "255.255.255.255", NULL), 0);
	CHECK_INT(match(set, "g", "10.0.0.4", NULL), 1);
	CHECK_INT(match(set, "g", "10.0.0.5", NULL), 0);
	CHECK_INT(match(set, "g", "10.0.0.6", NULL), 0);
	CHECK_INT(match(set, "g", "10.0.0.7", NULL), 1);
	CHECK_INT(match(set, "g", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:feff", NULL), 1);
	CHECK_INT(match(set, "g", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL), 0);
	CHECK_INT(match(set, "g", "::", NULL), 1);
	ipgroups_unref(&set);
}

static void test_loops(void)
{
	static const char *const names[] = {"a", "b", "c"};
	static const struct spec specs[] = {
	    {"a", "group:b", false},
	    {"b", "group:c", false},
	    {"c", "group:a", true},
	};
	static const struct spec self[] = {
	    {"a", "group:a", false},
	};
	const char *error = NULL;
	struct ipgroups *set = compile(names, 3, specs, 3, &error);

	CHECK(set == NULL);
	CHECK(error != NULL && strstr(error, "loop") != NULL);
	error = NULL;
	set = compile(names, 1, self, 1, &error);
	CHECK(set == NULL);
	CHECK(error != NULL && strstr(error, "a") != NULL);
	/* A diamond is no loop. */
	static const struct spec diamond[] = {
	    {"a", "group:b", false},
	    {"a", "group:c", false},
	    {"b", "group:c", false},
	    {"c", "10.0.0.1", false},
	};
	set = compile(names, 3, diamond, 4, &error);
	CHECK(set != NULL);
	CHECK_INT(match(set, "a", "10.0.0.1", NULL), 1);
	ipgroups_unref(&set);
}

static void test_snapshot(void)
{
	static const char *const names[] = {"lan"};
	static const struct spec one[] = {{"lan", "127.0.0.2", false}};
	static const struct spec two[] = {{"lan", "127.0.0.3", false}};
	const char *error;
	struct sockaddr_storage a2, a3;
	struct ipgroups *held;

	ipgroup_addr_parse("127.0.0.2", &a2);
	ipgroup_addr_parse("127.0.0.3", &a3);
	CHECK(ipgroups_current() == NULL);
	CHECK(!ipgroup_contains("lan", (struct sockaddr *)&a2));
	ipgroups_install(compile(names, 1, one, 1, &error));
	CHECK(ipgroup_contains("lan", (struct sockaddr *)&a2));
	CHECK(!ipgroup_contains("lan", (struct sockaddr *)&a3));
	CHECK(!ipgroup_contains("", (struct sockaddr *)&a2));
	CHECK(!ipgroup_contains("nosuch", (struct sockaddr *)&a2));
	/* A held snapshot stays valid after a new one is installed. */
	held = ipgroups_current();
	ipgroups_install(compile(names, 1, two, 1, &error));
	CHECK_INT(ipgroups_match(held, "lan", (struct sockaddr *)&a2, NULL), 1);
	CHECK(ipgroup_contains("lan", (struct sockaddr *)&a3));
	CHECK(!ipgroup_contains("lan", (struct sockaddr *)&a2));
	ipgroups_unref(&held);
	ipgroups_install(NULL);
}

int main(void)
{
	TEST_RUN(test_parse);
	TEST_RUN(test_ranges_cidr);
	TEST_RUN(test_nesting_exclusions);
	TEST_RUN(test_exclude_edges);
	TEST_RUN(test_loops);
	TEST_RUN(test_snapshot);
	return test_summary();
}
