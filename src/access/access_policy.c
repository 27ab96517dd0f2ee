/* Access rules: services, relay, and which settings hold a group name. */
#include "access/access_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "access/ipgroup.h"
#include "lib/log.h"
#include "settings/settings.h"
#include "store/store.h"

#define ACCESS_GROUP_SUFFIX "_group"

const char *const access_services[] = {
    "smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", NULL,
};

bool access_service_known(const char *service)
{
	for (size_t i = 0; access_services[i] != NULL; i++)
		if (strcmp(access_services[i], service) == 0)
			return true;
	return false;
}

static void access_addr_text(const struct sockaddr *addr, char *buf, size_t size)
{
	const void *a = addr->sa_family == AF_INET
	                    ? (const void *)&((const struct sockaddr_in *)addr)->sin_addr
	                    : (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr;

	if (inet_ntop(addr->sa_family, a, buf, (socklen_t)size) == NULL)
		snprintf(buf, size, "?");
}

/* group names a group (or is empty): 1 addr is in it (why: the entry), 0
 * not (why: the exclusion or that nothing matched). */
static int access_group_check(const char *group, const struct sockaddr *addr, char *why,
                              size_t size)
{
	struct ipgroups *set = ipgroups_current();
	char ip[INET6_ADDRSTRLEN];
	const char *entry;
	int ret = ipgroups_match(set, group, addr, &entry);

	access_addr_text(addr, ip, sizeof(ip));
	if (ret < 0)
		snprintf(why, size, "IP group %s does not exist", group);
	else if (ret == 1)
		snprintf(why, size, "group %s contains %s by entry %s", group, ip, entry);
	else if (entry != NULL)
		snprintf(why, size, "group %s excludes %s by entry %s", group, ip, entry);
	else
		snprintf(why, size, "group %s does not contain %s", group, ip);
	ipgroups_unref(&set);
	return ret == 1;
}

int access_service_check(const char *service, const struct sockaddr *addr, char *rule, char *why,
                         size_t size)
{
	char group[STORE_VALUE_MAX + 1];

	*why = '\0';
	snprintf(rule, size, "service.%s.enabled", service);
	if (!settings_get_bool(rule)) {
		snprintf(why, size, "service %s is disabled", service);
		return -1;
	}
	snprintf(rule, size, "service.%s.allow_group", service);
	settings_get(rule, group, sizeof(group));
	if (group[0] == '\0')
		return 0;
	return access_group_check(group, addr, why, size) ? 0 : -1;
}

bool access_relay_allowed(const char *ip, char *rule, char *why, size_t size)
{
	char group[STORE_VALUE_MAX + 1];
	struct sockaddr_storage ss;

	if (settings_get_bool("relay.open")) {
		snprintf(rule, size, "relay.open");
		snprintf(why, size, "relay.open is on");
		return true;
	}
	snprintf(rule, size, "relay.allow_group");
	settings_get(rule, group, sizeof(group));
	if (group[0] == '\0') {
		snprintf(why, size, "relay.allow_group is empty");
		return false;
	}
	if (ipgroup_addr_parse(ip, &ss) < 0) {
		snprintf(why, size, "client address %s does not parse", ip);
		return false;
	}
	return access_group_check(group, (const struct sockaddr *)&ss, why, size) == 1;
}

bool access_setting_names_group(const char *key)
{
	size_t n = strlen(key), k = strlen(ACCESS_GROUP_SUFFIX);

	return n > k && strcmp(key + n - k, ACCESS_GROUP_SUFFIX) == 0;
}

bool access_group_exists(const char *name)
{
	struct ipgroups *set = ipgroups_current();
	int ret = ipgroups_match(set, name, NULL, NULL);

	ipgroups_unref(&set);
	return ret >= 0;
}

int access_group_user(const char *name, char *key_r, size_t size)
{
	char value[STORE_VALUE_MAX + 1];
	size_t n;
	const struct setting_def *all = settings_all(&n);

	for (size_t i = 0; i < n; i++) {
		if (!access_setting_names_group(all[i].key))
			continue;
		settings_get(all[i].key, value, sizeof(value));
		if (value[0] != '\0' && strcasecmp(value, name) == 0) {
			snprintf(key_r, size, "%s", all[i].key);
			return 1;
		}
	}
	return 0;
}

int access_reload(struct store_reader *reader, const char **error_r)
{
	struct ipgroups *set = ipgroups_load(reader, error_r);

	if (set == NULL)
		return -1;
	ipgroups_install(set);
	return 0;
}

void access_warn_open_relay(void)
{
	log_warn("access", "event=open_relay setting=relay.open message=\"relay.open is on: "
	                   "anyone may relay mail through this server\"");
}

void access_start(struct store_reader *reader)
{
	const char *error;

	if (access_reload(reader, &error) < 0)
		log_error("access", "event=ipgroups_failed error=\"%s\"", error);
	if (settings_get_bool("relay.open"))
		access_warn_open_relay();
}

void access_stop(void)
{
	ipgroups_install(NULL);
}
