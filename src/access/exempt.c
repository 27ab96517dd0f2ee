#include "access/exempt.h"

#include <sys/socket.h>

#include "access/ipgroup.h"
#include "settings/settings.h"
#include "store/store.h"

bool exempt_ip(const char *key, const char *ip)
{
	char group[STORE_VALUE_MAX + 1];
	struct sockaddr_storage ss;

	settings_get(key, group, sizeof(group));
	if (group[0] == '\0' || ipgroup_addr_parse(ip, &ss) < 0)
		return false;
	return ipgroup_contains(group, (const struct sockaddr *)&ss);
}
