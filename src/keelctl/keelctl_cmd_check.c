/* keelctl check [--data-dir DIR]: the store's consistency check
 * (store_check), through keeld, or directly on a stopped data dir. */
#include <stdio.h>

#include "keelctl/keelctl.h"
#include "store/store.h"

static json_t *keelctl_check_lines(char **lines, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(lines[i]));
	return a;
}

/* The same object as the admin API's check answer (docs/admin-api.md). */
static json_t *keelctl_check_json(const struct store_check_result *res)
{
	return json_pack("{s:b, s:I, s:I, s:I, s:I, s:o, s:I, s:o}", "clean", res->n_problems == 0,
	                 "messages", (json_int_t)res->messages, "blobs", (json_int_t)res->blobs,
	                 "segments", (json_int_t)res->segments, "records", (json_int_t)res->records,
	                 "problems", keelctl_check_lines(res->problems, res->n_problems),
	                 "more_problems", (json_int_t)res->more_problems, "notes",
	                 keelctl_check_lines(res->notes, res->n_notes));
}

/* Reads data_dir read-only, without keeld: after a crash, before a restart. */
static int keelctl_check_dir(struct keelctl *ctl, const char *data_dir, json_t **result_r)
{
	struct store_check_result res;
	const char *error;

	if (store_check_dir(data_dir, &res, &error) < 0) {
		keelctl_fail(ctl, "%s", error);
		return -1;
	}
	*result_r = keelctl_check_json(&res);
	store_check_result_deinit(&res);
	return 0;
}

static long long keelctl_check_int(json_t *result, const char *key)
{
	return (long long)json_integer_value(json_object_get(result, key));
}

static void keelctl_check_print(json_t *result)
{
	json_t *problems = json_object_get(result, "problems"),
	       *notes = json_object_get(result, "notes");
	size_t i;

	for (i = 0; i < json_array_size(notes); i++)
		printf("note: %s\n", json_string_value(json_array_get(notes, i)));
	for (i = 0; i < json_array_size(problems); i++)
		printf("problem: %s\n", json_string_value(json_array_get(problems, i)));
	if (keelctl_check_int(result, "more_problems") > 0)
		printf("problem: ... and %lld more\n", keelctl_check_int(result, "more_problems"));
	printf("%s: %lld messages, %lld blobs, %lld segments checked\n",
	       json_array_size(problems) == 0 ? "ok" : "damaged",
	       keelctl_check_int(result, "messages"), keelctl_check_int(result, "blobs"),
	       keelctl_check_int(result, "segments"));
}

int keelctl_cmd_check(struct keelctl *ctl, int argc, char **argv)
{
	const char *data_dir = NULL;
	const struct keelctl_option opts[] = {
	    {"--data-dir", true, &data_dir, NULL},
	    {NULL, false, NULL, NULL},
	};
	char *pos[1];
	json_t *result;
	size_t n_problems;

	if (keelctl_args_parse(ctl, argc, argv, opts, pos) < 0)
		return KEELCTL_EXIT_USAGE;
	if (data_dir != NULL ? keelctl_check_dir(ctl, data_dir, &result) < 0
	                     : keelctl_client_call(ctl, "check", NULL, &result) < 0)
		return KEELCTL_EXIT_FAIL;
	n_problems = json_array_size(json_object_get(result, "problems")) +
	             (size_t)keelctl_check_int(result, "more_problems");
	if (ctl->json)
		keelctl_output_json(result);
	else
		keelctl_check_print(result);
	json_decref(result);
	if (n_problems > 0)
		return keelctl_fail(ctl, "%zu problem%s found", n_problems,
		                    n_problems == 1 ? "" : "s");
	return KEELCTL_EXIT_OK;
}
