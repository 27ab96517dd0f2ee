#include <sqlite3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/test.h"
#include "store/sqlite/sqlite_private.h"
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
	struct store_trace_event e[9] = { 0 };
	size_t g[9];

	strcpy(e[0].session, "s1");
	strcpy(e[1].queue_id, "Q1");
	strcpy(e[1].message_id, "<m@x>");
	strcpy(e[2].queue_id, "Q2");
	strcpy(e[3].message_id, "<m@x>");
	strcpy(e[4].message_id, "<other@x>");
	/* A second queue id that carried <m@x> later: the first one keeps it. */
	strcpy(e[5].queue_id, "Q3");
	strcpy(e[5].message_id, "<m@x>");
	strcpy(e[6].message_id, "<m@x>");
	/* An access event before the queue event that carried its message. */
	strcpy(e[7].message_id, "<z@x>");
	strcpy(e[8].queue_id, "Q4");
	strcpy(e[8].message_id, "<z@x>");
	trace_group(e, 9, g);
	CHECK_INT(g[0], 0);
	CHECK_INT(g[1], 1);
	CHECK_INT(g[2], 2);
	CHECK_INT(g[3], 1);
	CHECK_INT(g[4], 4);
	CHECK_INT(g[5], 5);
	CHECK_INT(g[6], 1);
	CHECK_INT(g[7], 7); /* the group starts at its earliest event */
	CHECK_INT(g[8], 7);
}

/* ---- every keelctl trace filter is answered from an index --------------- */

/* The SQL the store ran last on a connection: its statements are built and
 * cached inside the backend, so the test takes them from SQLite as they
 * run rather than rebuilding them. */
static char t_last_sql[2048];

static int t_capture_sql(unsigned type, void *ctx, void *p, void *x)
{
	const char *sql = sqlite3_sql(p);

	if (type == SQLITE_TRACE_STMT && sql != NULL && strstr(sql, " trace") != NULL &&
	    (strncmp(sql, "SELECT", 6) == 0 || strncmp(sql, "DELETE", 6) == 0))
		snprintf(t_last_sql, sizeof(t_last_sql), "%s", sql);
	return 0;
}

/* EXPLAIN QUERY PLAN of sql on db: 1 when trace is searched by each of the
 * indexes named in want (space-separated) and never scanned (the table or
 * a whole index), 0 otherwise; the plan goes to stderr when it fails.
 * Searching by the filter's own index matters, not just "an index": a
 * range on trace_time from 0 to the end is a scan in all but name. */
static int t_plan_indexed(sqlite3 *db, const char *what, const char *sql, const char *want)
{
	char *eqp = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
	sqlite3_stmt *st = NULL;
	int scans = 0;
	char plan[4096] = "", name[64];
	size_t len = 0;
	bool found = true;

	if (sqlite3_prepare_v2(db, eqp, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
		sqlite3_free(eqp);
		return 0;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *detail = (const char *)sqlite3_column_text(st, 3);
		if (detail == NULL)
			continue;
		if (strncmp(detail, "SCAN trace", 10) == 0)
			scans++;
		if (len < sizeof(plan))
			len += (size_t)snprintf(plan + len, sizeof(plan) - len, "  %s\n", detail);
	}
	sqlite3_finalize(st);
	sqlite3_free(eqp);
	for (const char *w = want; *w != '\0';) {
		size_t n = strcspn(w, " ");
		char needle[128], covering[128];
		snprintf(name, sizeof(name), "%.*s", (int)n, w);
		snprintf(needle, sizeof(needle), "SEARCH trace USING INDEX %s (", name);
		snprintf(covering, sizeof(covering), "SEARCH trace USING COVERING INDEX %s (", name);
		if (strstr(plan, needle) == NULL && strstr(plan, covering) == NULL)
			found = false;
		w += n + (w[n] == ' ');
	}
	if (scans > 0 || !found)
		fprintf(stderr, "%s: not from %s:\n%s\n%s\n", what, want, sql, plan);
	return scans == 0 && found;
}

static void t_event(struct store_trace_event *e, time_t t, const char *queue_id,
		    const char *account, const char *ip)
{
	memset(e, 0, sizeof(*e));
	e->time = t;
	snprintf(e->queue_id, sizeof(e->queue_id), "%s", queue_id);
	snprintf(e->message_id, sizeof(e->message_id), "<%s@x.test>", queue_id);
	snprintf(e->event, sizeof(e->event), "accepted");
	snprintf(e->account, sizeof(e->account), "%s", account);
	snprintf(e->protocol, sizeof(e->protocol), "smtp");
	snprintf(e->client_ip, sizeof(e->client_ip), "%s", ip);
	snprintf(e->session, sizeof(e->session), "s-%s", queue_id);
	snprintf(e->sender, sizeof(e->sender), "from-%s@remote.test", queue_id);
	snprintf(e->rcpt, sizeof(e->rcpt), "%s", account);
}

/* Each filter of `keelctl trace` (admin_trace.c: --message-id through
 * store_trace_query_message, the others through store_trace_query, with
 * --since/--until as the time range), alone and combined, and the
 * retention job's delete. */
static void test_queries_use_indexes(void)
{
	static const struct {
		const char *name;
		int field; /* index in the filter below, -1 none */
		time_t since, until;
		const char *index;
	} cases[] = {
		{ "--queue-id", 0, 0, 0, "trace_queue_id" },
		{ "--sender", 1, 0, 0, "trace_sender" },
		{ "--rcpt", 2, 0, 0, "trace_rcpt" },
		{ "--account", 3, 0, 0, "trace_account" },
		{ "--ip", 4, 0, 0, "trace_client_ip" },
		{ "--since", -1, 1500, 0, "trace_time" },
		{ "--since --until", -1, 1500, 1600, "trace_time" },
		{ "--account --since", 3, 1500, 0, "trace_account" },
		{ "--ip --since --until", 4, 1500, 1600, "trace_client_ip" },
	};
	char *dir = test_tmpdir();
	struct store *s;
	struct store_reader *r;
	struct store_trace_event ev[3], *list;
	struct store_sync sync;
	const char *error;
	size_t n;

	if (store_open(dir, &s, &error) < 0 || store_reader_open(s, &r, &error) < 0) {
		fprintf(stderr, "open: %s\n", error);
		exit(2);
	}
	t_event(&ev[0], 1000, "Q1", "a@x.test", "192.0.2.1");
	t_event(&ev[1], 1550, "Q2", "b@x.test", "192.0.2.2");
	t_event(&ev[2], 900, "Q3", "a@x.test", "192.0.2.1");
	store_sync_init(&sync);
	store_trace_append(s, ev, 3, NULL, store_sync_cb, &sync);
	store_sync_wait(&sync);
	CHECK_INT(sync.status, 0);
	store_sync_deinit(&sync);
	sqlite3_trace_v2(r->c.db, SQLITE_TRACE_STMT, t_capture_sql, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct store_trace_event f = { 0 };
		char *const fields[] = { f.queue_id, f.sender, f.rcpt, f.account, f.client_ip };
		const char *const values[] = { "Q2", "from-Q2@remote.test", "b@x.test",
					       "b@x.test", "192.0.2.2" };
		if (cases[i].field >= 0)
			strcpy(fields[cases[i].field], values[cases[i].field]);
		t_last_sql[0] = '\0';
		CHECK_INT(store_trace_query(r, &f, cases[i].since, cases[i].until, &list, &n), 0);
		/* The statement really ran and found the one event it should. */
		CHECK_INT(n, 1);
		CHECK(n == 1 && strcmp(list[0].queue_id, "Q2") == 0);
		free(list);
		CHECK(t_last_sql[0] != '\0');
		CHECK(t_plan_indexed(r->c.db, cases[i].name, t_last_sql, cases[i].index));
	}
	t_last_sql[0] = '\0';
	CHECK_INT(store_trace_query_message(r, "<Q2@x.test>", 0, 0, &list, &n), 0);
	CHECK_INT(n, 1);
	free(list);
	CHECK(t_last_sql[0] != '\0');
	CHECK(t_plan_indexed(r->c.db, "--message-id", t_last_sql,
			     "trace_message_id trace_queue_id"));
	sqlite3_trace_v2(r->c.db, 0, NULL, NULL);
	/* The retention job's delete runs on the committer's connection. */
	t_last_sql[0] = '\0';
	sqlite3_trace_v2(s->w.db, SQLITE_TRACE_STMT, t_capture_sql, NULL);
	store_sync_init(&sync);
	store_trace_expire(s, 1500, 10, NULL, store_sync_cb, &sync);
	store_sync_wait(&sync);
	CHECK_INT(sync.status, 0);
	CHECK_INT(sync.id, 2);
	store_sync_deinit(&sync);
	CHECK(strstr(t_last_sql, "DELETE FROM trace") != NULL);
	CHECK(t_plan_indexed(r->c.db, "retention", t_last_sql, "trace_time"));
	store_reader_close(&r);
	store_close(&s);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	TEST_RUN(test_audit_hash_chain);
	TEST_RUN(test_audit_verify);
	TEST_RUN(test_time_parse);
	TEST_RUN(test_group);
	TEST_RUN(test_queries_use_indexes);
	return test_summary();
}
