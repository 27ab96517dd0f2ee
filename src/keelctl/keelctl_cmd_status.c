/* keelctl status, keelctl reload */
#include <inttypes.h>
#include <stdio.h>

#include "keelctl/keelctl.h"

static void keelctl_status_uptime(int64_t s, char *buf, size_t size)
{
	if (s >= 86400)
		snprintf(buf, size, "%" PRId64 "d %" PRId64 "h %" PRId64 "m", s / 86400,
		         s % 86400 / 3600, s % 3600 / 60);
	else if (s >= 3600)
		snprintf(buf, size, "%" PRId64 "h %" PRId64 "m %" PRId64 "s", s / 3600,
		         s % 3600 / 60, s % 60);
	else if (s >= 60)
		snprintf(buf, size, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, size, "%" PRId64 "s", s);
}

static void keelctl_status_print(json_t *st)
{
	static const char *const counts[] = {"domains",  "users", "aliases", "groups",  "mailboxes",
	                                     "messages", "queued", "blobs", "flushes", "commits", "requests"};
	char buf[64], started[64];
	json_t *listeners = json_object_get(st, "listeners"), *l;
	size_t i;

	keelctl_output_pair("version", 10, "%s", json_string_value(json_object_get(st, "version")));
	keelctl_status_uptime(json_integer_value(json_object_get(st, "uptime")), buf, sizeof(buf));
	keelctl_output_time(json_integer_value(json_object_get(st, "started")), started,
	                    sizeof(started));
	keelctl_output_pair("uptime", 10, "%s (since %s)", buf, started);
	for (i = 0; i < json_array_size(listeners) && (l = json_array_get(listeners, i)) != NULL;
	     i++)
		keelctl_output_pair("listener", 10, "%-12s %s",
		                    json_string_value(json_object_get(l, "service")),
		                    json_string_value(json_object_get(l, "address")));
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		keelctl_output_pair(
		    counts[i], 10, "%s",
		    keelctl_output_cell(json_object_get(st, counts[i]), buf, sizeof(buf)));
	keelctl_output_size((uint64_t)json_integer_value(json_object_get(st, "blob_bytes")), buf,
	                    sizeof(buf));
	keelctl_output_pair("blob bytes", 10, "%s", buf);
}

int keelctl_cmd_status(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];
	json_t *st;

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (keelctl_client_call(ctl, "status", NULL, &st) < 0)
		return KEELCTL_EXIT_FAIL;
	if (ctl->json)
		keelctl_output_json(st);
	else
		keelctl_status_print(st);
	json_decref(st);
	return KEELCTL_EXIT_OK;
}

int keelctl_cmd_reload(struct keelctl *ctl, int argc, char **argv)
{
	char *pos[1];

	if (keelctl_args_parse(ctl, argc, argv, NULL, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	return keelctl_client_change(ctl, "reload", NULL, "reloaded");
}
