#include "access/exempt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "access/ipgroup.h"
#include "settings/settings.h"
#include "store/store.h"

bool exempt_ip(const char *key, const char *ip)
{
	char group[STORE_VALUE_MAX + 1];
	struct sockaddr_in6 sin6 = { 0 };
	struct sockaddr_in sin = { 0 };

	settings_get(key, group, sizeof(group));
	if (group[0] == '\0')
		return false;
	if (inet_pton(AF_INET, ip, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		return ipgroup_contains(group, (const struct sockaddr *)&sin);
	}
	if (inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		return ipgroup_contains(group, (const struct sockaddr *)&sin6);
	}
	return false;
}
