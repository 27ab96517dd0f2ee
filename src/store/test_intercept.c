/* Unit tests for interception in the store (sqlite_intercept.c) against a
 * real database in a temporary data dir: orders added, listed, deleted;
 * events_sent only ever rises; an account's events after a trace id, by
 * time and limit; messages by Message-ID. */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/test.h"
#include "lib/xalloc.h"

static char *t_dir;
static struct store *t_s;
static struct store_reader *t_r;
static struct store_sync ts;
static int64_t t_id;

#define SYNC NULL, store_sync_cb, &ts
#define T(call) (store_sync_init(&ts), (call), t_finish())

static enum store_err t_finish(void)
{
	enum store_err err;

	store_sync_wait(&ts);
	err = ts.status == 0 ? STORE_OK : ts.err;
	t_id = ts.id;
	store_sync_deinit(&ts);
	return err;
}

static void t_setup(void)
{
	const char *error;

	t_dir = test_tmpdir();
	if (store_open(t_dir, &t_s, &error) < 0 || store_reader_open(t_s, &t_r, &error) < 0) {
		fprintf(stderr, "open: %s\n", error);
		exit(2);
	}
}

static void t_teardown(void)
{
	store_reader_close(&t_r);
	store_close(&t_s);
	test_rmtree(t_dir);
	free(t_dir);
	t_dir = NULL;
}

static int64_t t_user(const char *address)
{
	CHECK_INT(T(store_user_add(t_s, address, "", "$argon2id$x", 0, SYNC)), STORE_OK);
	return t_id;
}

static void t_event(const char *account, const char *event, time_t when)
{
	struct store_trace_event e = { .time = when };

	snprintf(e.account, sizeof(e.account), "%s", account);
	snprintf(e.event, sizeof(e.event), "%s", event);
	snprintf(e.protocol, sizeof(e.protocol), "imap");
	CHECK_INT(T(store_trace_append(t_s, &e, 1, SYNC)), STORE_OK);
}

static void test_intercept_orders(void)
{
	struct store_intercept i = { 0 }, *list;
	int64_t alice, first;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	alice = t_user("alice@x.test");
	t_event("alice@x.test", "fetched", 1000);
	i.user_id = alice;
	snprintf(i.to_address, sizeof(i.to_address), "lea@x.test");
	snprintf(i.case_id, sizeof(i.case_id), "C1");
	CHECK_INT(T(store_intercept_add(t_s, &i, SYNC)), STORE_OK);
	first = t_id;
	CHECK(first > 0);
	i.to_address[0] = '\0';
	snprintf(i.dir, sizeof(i.dir), "/srv/c2");
	CHECK_INT(T(store_intercept_add(t_s, &i, SYNC)), STORE_OK);
	i.user_id = 999;
	CHECK_INT(T(store_intercept_add(t_s, &i, SYNC)), STORE_ERR_NOT_FOUND);

	CHECK(store_intercept_list(t_r, &list, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_INT(list[0].id, first);
		CHECK_STR(list[0].address, "alice@x.test");
		CHECK_STR(list[0].to_address, "lea@x.test");
		CHECK_STR(list[0].dir, "");
		CHECK_STR(list[0].case_id, "C1");
		CHECK_STR(list[1].dir, "/srv/c2");
		/* Events from before the order are not handed over. */
		CHECK(list[0].events_sent >= 1);
		CHECK(list[0].created > 0);
	}
	free(list);

	/* events_sent rises, never falls; a deleted order is no error. */
	CHECK_INT(T(store_intercept_set_sent(t_s, first, 50, SYNC)), STORE_OK);
	CHECK_INT(t_id, 1);
	CHECK_INT(T(store_intercept_set_sent(t_s, first, 20, SYNC)), STORE_OK);
	CHECK_INT(t_id, 0);
	CHECK(store_intercept_list(t_r, &list, &n) == 0 && n == 2);
	if (n == 2)
		CHECK_INT(list[0].events_sent, 50);
	free(list);

	CHECK_INT(T(store_intercept_del(t_s, first, SYNC)), STORE_OK);
	CHECK_INT(T(store_intercept_del(t_s, first, SYNC)), STORE_ERR_NOT_FOUND);
	CHECK_INT(T(store_intercept_set_sent(t_s, first, 60, SYNC)), STORE_OK);
	CHECK_INT(t_id, 0);
	CHECK(store_intercept_list(t_r, &list, &n) == 0);
	CHECK_INT(n, 1);
	free(list);
	t_teardown();
}

static void test_intercept_account_events(void)
{
	struct store_trace_event *ev;
	int64_t *ids;
	size_t n;

	t_setup();
	for (int k = 0; k < 5; k++)
		t_event("Alice@X.test", k % 2 ? "flags" : "fetched", 1000 + k * 10);
	t_event("bob@x.test", "fetched", 1005);

	/* The account matches without regard to case; ids ascend. */
	CHECK(store_trace_account_after(t_r, "alice@x.test", 0, 0, 0, 0, &ev, &ids, &n) == 0);
	CHECK_INT(n, 5);
	for (size_t k = 1; k < n; k++)
		CHECK(ids[k] > ids[k - 1]);
	int64_t second = n == 5 ? ids[1] : 0;
	free(ev);
	free(ids);

	/* After a trace id, with a limit: the next page. */
	CHECK(store_trace_account_after(t_r, "alice@x.test", second, 0, 0, 2, &ev, &ids, &n) ==
	      0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK(ids[0] > second);
		CHECK_INT(ev[0].time, 1020);
		CHECK_STR(ev[0].event, "fetched");
	}
	free(ev);
	free(ids);

	/* Time bounds are inclusive. */
	CHECK(store_trace_account_after(t_r, "alice@x.test", 0, 1010, 1030, 0, &ev, &ids, &n) ==
	      0);
	CHECK_INT(n, 3);
	free(ev);
	free(ids);
	CHECK(store_trace_account_after(t_r, "nobody@x.test", 0, 0, 0, 0, &ev, &ids, &n) == 0);
	CHECK_INT(n, 0);
	free(ev);
	free(ids);
	t_teardown();
}

static void test_intercept_find_by_message_id(void)
{
	static const char body[] = "Message-ID: <m1@x.test>\r\nSubject: hi\r\n\r\nhello\r\n";
	struct store_rcpt rcpts[2] = { 0 };
	struct store_trace_event e = { .event = "delivered", .message_id = "<m1@x.test>" };
	struct store_delivery d = { .data = body, .size = sizeof(body) - 1, .rcpts = rcpts,
				    .n_rcpts = 2, .events = &e, .n_events = 1 };
	struct store_message *list;
	size_t n;

	t_setup();
	CHECK_INT(T(store_domain_add(t_s, "x.test", NULL, SYNC)), STORE_OK);
	rcpts[0].user_id = t_user("alice@x.test");
	rcpts[1].user_id = t_user("bob@x.test");
	CHECK_INT(T(store_deliver(t_s, &d, SYNC)), STORE_OK);
	CHECK(store_message_find_by_message_id(t_r, "<m1@x.test>", &list, &n) == 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK(list[0].id < list[1].id);
		CHECK(list[0].mailbox_id != list[1].mailbox_id);
		CHECK_INT(list[0].size, sizeof(body) - 1);
	}
	free(list);
	CHECK(store_message_find_by_message_id(t_r, "<other@x.test>", &list, &n) == 0);
	CHECK_INT(n, 0);
	free(list);
	t_teardown();
}

int main(void)
{
	log_set_level(LOG_LEVEL_WARN);
	TEST_RUN(test_intercept_orders);
	TEST_RUN(test_intercept_account_events);
	TEST_RUN(test_intercept_find_by_message_id);
	return test_summary();
}
