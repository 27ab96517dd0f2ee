#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "store/store.h"
#include "trace/trace.h"
#include "trace/trace_audit.h"

static struct trace_audit_fields t_record(int64_t id, const char *actor)
{
	return (struct trace_audit_fields){ id, 1700000000 + id, actor, "config.set",
					    "{\"key\":\"smtp.max_errors\"}", "null", "null" };
}

/* The chain is SHA-256(prev || canonical): a known first link, and each
 * later hash depends on the one before. */
static void test_audit_hash_chain(void)
{
	struct trace_audit_fields a = t_record(1, "uid=0"), b = t_record(2, "uid=0");
	char h1[TRACE_AUDIT_HASH_HEX], h2[TRACE_AUDIT_HASH_HEX], h2x[TRACE_AUDIT_HASH_HEX];
	size_t len;
	char *text = trace_audit_canonical(&a, &len);

	CHECK_INT(len, strlen(text));
	CHECK(strstr(text, "actor 5:uid=0\n") != NULL);
	free(text);
	CHECK_INT(trace_audit_hash(NULL, &a, h1), 0);
	CHECK_INT(strlen(h1), 64);
	CHECK_INT(trace_audit_hash(h1, &b, h2), 0);
	CHECK_INT(trace_audit_hash("", &b, h2x), 0);
	CHECK(strcmp(h2, h2x) != 0);
	/* Moving text across a field boundary changes the lengths, so the hash. */
	a.actor = "uid=0c";
	a.command = "onfig.set";
	CHECK_INT(trace_audit_hash(NULL, &a, h2x), 0);
	CHECK(strcmp(h1, h2x) != 0);
}

static void test_audit_verify(void)
{
	struct trace_audit_fields r[4];
	char h[4][TRACE_AUDIT_HASH_HEX];
	struct trace_audit_verify v;

	for (int i = 0; i < 4; i++) {
		r[i] = t_record(i + 1, "uid=0");
		CHECK_INT(trace_audit_hash(i ? h[i - 1] : "", &r[i], h[i]), 0);
	}
	trace_audit_verify_init(&v);
	for (int i = 0; i < 4; i++)
		CHECK_INT(trace_audit_verify_step(&v, &r[i], h[i]), 0);
	CHECK_INT(v.last_id, 4);
	/* Altered: record 2's actor. */
	trace_audit_verify_init(&v);
	CHECK_INT(trace_audit_verify_step(&v, &r[0], h[0]), 0);
	r[1].actor = "uid=1000";
	CHECK_INT(trace_audit_verify_step(&v, &r[1], h[1]), -1);
	CHECK_INT(v.bad_id, 2);
	r[1].actor = "uid=0";
	/* Removed: record 2, so 3 follows 1. */
	trace_audit_verify_init(&v);
	CHECK_INT(trace_audit_verify_step(&v, &r[0], h[0]), 0);
	CHECK_INT(trace_audit_verify_step(&v, &r[2], h[2]), -1);
	CHECK_INT(v.bad_id, 3);
}

static void test_time_parse(void)
{
	time_t now = 1700000000, t;

	CHECK_INT(trace_time_parse("2h", now, &t), 0);
	CHECK_INT(t, now - 7200);
	CHECK_INT(trace_time_parse("3d", now, &t), 0);
	CHECK_INT(t, now - 3 * 86400);
	CHECK_INT(trace_time_parse("2024-05-01T10:00:00Z", now, &t), 0);
	CHECK_INT(t, 1714557600);
	CHECK_INT(trace_time_parse("2024-05-01Z", now, &t), 0);
	CHECK_INT(t, 1714521600);
	CHECK_INT(trace_time_parse("@42", now, &t), 0);
	CHECK_INT(t, 42);
	CHECK_INT(trace_time_parse("2024-05-01 10:00", now, &t), 0);
	CHECK_INT(trace_time_parse("yesterday", now, &t), -1);
	CHECK_INT(trace_time_parse("2x", now, &t), -1);
	CHECK_INT(trace_time_parse("", now, &t), -1);
}

/* Access events (a Message-ID, no queue id) join the queue id that carried
 * the message; events with neither group by session. */
static void test_group(void)
{
	struct store_trace_event e[5] = { 0 };
	size_t g[5];

	strcpy(e[0].session, "s1");
	strcpy(e[1].queue_id, "Q1");
	strcpy(e[1].message_id, "<m@x>");
	strcpy(e[2].queue_id, "Q2");
	strcpy(e[3].message_id, "<m@x>");
	strcpy(e[4].message_id, "<other@x>");
	trace_group(e, 5, g);
	CHECK_INT(g[0], 0);
	CHECK_INT(g[1], 1);
	CHECK_INT(g[2], 2);
	CHECK_INT(g[3], 1);
	CHECK_INT(g[4], 4);
}

int main(void)
{
	TEST_RUN(test_audit_hash_chain);
	TEST_RUN(test_audit_verify);
	TEST_RUN(test_time_parse);
	TEST_RUN(test_group);
	return test_summary();
}
