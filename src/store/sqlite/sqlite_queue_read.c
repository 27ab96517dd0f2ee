/* Queue reads on a store_reader, and the SQL of a queue filter, which the
 * bulk changes of sqlite_queue.c run on the write connection.
 *
 * A filter's statement is built per combination of the fields given, so
 * that each condition is written only when it applies and SQLite can pick
 * the index of a given field (migration 4: sender, sender_domain, rcpt,
 * rcpt_domain, auth_user, client_ip, queue_id, state, each ending in the
 * rowid, so "field = ? AND id > ? ORDER BY id LIMIT n" pages without a
 * sort).  Which index wins among several given fields is SQLite's choice;
 * any of them bounds the rows visited to that field's matches.  Statements
 * are cached per connection by the address of their text, so the texts
 * live for the process. */
#include "store/sqlite/sqlite_private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define SQ_QUEUE_COLUMNS                                                                           \
	"id, queue_id, blob_id, size, sender, rcpt, orcpt, notify, envid, ret, body,"              \
	" smtputf8, message_id, auth_user, client_ip, state, attempts, created,"                   \
	" next_attempt, last_reply"

/* The not-final states: QUEUED, DEFERRED, HELD. */
#define SQ_QUEUE_LIVE 0x7u

void sqlite_queue_fill(sqlite3_stmt *st, void *item)
{
	struct store_queue_entry *q = item;

	q->id = sqlite3_column_int64(st, 0);
	sq_text(st, 1, q->env.queue_id, sizeof(q->env.queue_id));
	q->blob_id = sqlite3_column_int64(st, 2);
	q->size = (uint64_t)sqlite3_column_int64(st, 3);
	sq_text(st, 4, q->env.sender, sizeof(q->env.sender));
	sq_text(st, 5, q->rcpt.rcpt, sizeof(q->rcpt.rcpt));
	sq_text(st, 6, q->rcpt.orcpt, sizeof(q->rcpt.orcpt));
	q->rcpt.notify = (unsigned)sqlite3_column_int(st, 7);
	sq_text(st, 8, q->env.envid, sizeof(q->env.envid));
	q->env.ret = (unsigned)sqlite3_column_int(st, 9);
	q->env.body = (unsigned)sqlite3_column_int(st, 10);
	q->env.smtputf8 = sqlite3_column_int(st, 11) != 0;
	sq_text(st, 12, q->env.message_id, sizeof(q->env.message_id));
	sq_text(st, 13, q->env.auth_user, sizeof(q->env.auth_user));
	sq_text(st, 14, q->env.client_ip, sizeof(q->env.client_ip));
	q->state = (enum store_queue_state)sqlite3_column_int(st, 15);
	q->attempts = (unsigned)sqlite3_column_int(st, 16);
	q->created = (time_t)sqlite3_column_int64(st, 17);
	q->next_attempt = (time_t)sqlite3_column_int64(st, 18);
	sq_text(st, 19, q->last_reply, sizeof(q->last_reply));
}

int store_queue_list(struct store_reader *r, const char *queue_id, int state, size_t limit,
                     struct store_queue_entry **list_r, size_t *n_r)
{
	static const char sql_id[] = "SELECT " SQ_QUEUE_COLUMNS " FROM queue"
	                             " WHERE queue_id = ? ORDER BY id LIMIT ?";
	static const char sql_state[] = "SELECT " SQ_QUEUE_COLUMNS " FROM queue"
	                                " WHERE (?1 < 0 OR state = ?1) ORDER BY id LIMIT ?2";
	sqlite3_stmt *st = sq_get(&r->c, queue_id != NULL ? sql_id : sql_state);

	if (st != NULL) {
		if (queue_id != NULL)
			sqlite3_bind_text(st, 1, queue_id, -1, SQLITE_STATIC);
		else
			sqlite3_bind_int(st, 1, state);
		sqlite3_bind_int64(st, 2, limit == 0 ? -1 : (int64_t)limit);
	}
	return sq_read_list(r, st, sizeof(**list_r), sqlite_queue_fill, list_r, n_r, "queue_list");
}

/* ---- the filter's SQL ------------------------------------------------------ */

/* The string fields, in the order of their mask bits and parameters ?4.. */
#define SQ_QF_STRINGS 7
static const char *const sq_qf_columns[SQ_QF_STRINGS] = {
    "queue_id = ?4",
    "sender = ?5 COLLATE NOCASE",
    "sender_domain = ?6 COLLATE NOCASE",
    "rcpt = ?7 COLLATE NOCASE",
    "rcpt_domain = ?8 COLLATE NOCASE",
    "auth_user = ?9 COLLATE NOCASE",
    "client_ip = ?10",
};
#define SQ_QF_IDS       (1u << SQ_QF_STRINGS)
#define SQ_QF_ONE_STATE (1u << (SQ_QF_STRINGS + 1))
#define SQ_QF_COMBOS    (1u << (SQ_QF_STRINGS + 2))

static const char *const sq_qf_heads[] = {
    [SQ_QUEUE_ROWS] = "SELECT " SQ_QUEUE_COLUMNS " FROM queue",
    [SQ_QUEUE_COUNT] = "SELECT COUNT(*) FROM queue",
    [SQ_QUEUE_REFS] = "SELECT id, blob_id FROM queue",
};

static pthread_mutex_t sq_qf_lock = PTHREAD_MUTEX_INITIALIZER;
static char *sq_qf_sql[3][SQ_QF_COMBOS];

/* One state alone, and nothing else to narrow by, is what queue_state
 * serves; otherwise the state is a mere check on rows another index (or the
 * rowid range) found, written so that no index on it can be chosen over a
 * field's.  With ids the rowid lookups are best, so "+" keeps the other
 * fields' indexes out of the planner's way. */
static char *sq_qf_build(enum sq_queue_head head, unsigned mask)
{
	char buf[1024];
	int n = snprintf(buf, sizeof(buf), "%s WHERE id > ?1 AND created < ?2 AND %s",
	                 sq_qf_heads[head],
	                 (mask & SQ_QF_ONE_STATE) ? "state = ?3" : "((?3 >> state) & 1) = 1");

	for (unsigned i = 0; i < SQ_QF_STRINGS; i++)
		if (mask & (1u << i))
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, " AND %s%s",
			              (mask & SQ_QF_IDS) ? "+" : "", sq_qf_columns[i]);
	if (mask & SQ_QF_IDS)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n,
		              " AND id IN (SELECT value FROM json_each(?11))");
	if (head != SQ_QUEUE_COUNT)
		snprintf(buf + n, sizeof(buf) - (size_t)n, " ORDER BY id LIMIT ?12");
	return xstrdup(buf);
}

static const char *sq_qf_sql_get(enum sq_queue_head head, unsigned mask)
{
	const char *sql;

	pthread_mutex_lock(&sq_qf_lock);
	if (sq_qf_sql[head][mask] == NULL)
		sq_qf_sql[head][mask] = sq_qf_build(head, mask);
	sql = sq_qf_sql[head][mask];
	pthread_mutex_unlock(&sq_qf_lock);
	return sql;
}

static const char *sq_qf_string(const struct store_queue_filter *f, unsigned i)
{
	const char *const v[SQ_QF_STRINGS] = {
	    f->queue_id,      f->sender_null ? "" : f->sender,
	    f->sender_domain, f->rcpt,
	    f->rcpt_domain,   f->auth_user,
	    f->client_ip,
	};

	return v[i];
}

static bool sq_qf_has(const struct store_queue_filter *f, unsigned i)
{
	const char *v = sq_qf_string(f, i);

	return i == 1 ? f->sender_null || (v != NULL && *v != '\0') : v != NULL && *v != '\0';
}

/* The ids as a JSON array for json_each(). */
static char *sq_qf_ids_json(const int64_t *ids, size_t n)
{
	size_t cap = n * 21 + 3, len = 0;
	char *json = xmalloc(cap);

	json[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(json + len, cap - len, "%s%lld", i > 0 ? "," : "",
		                        (long long)ids[i]);
	snprintf(json + len, cap - len, "]");
	return json;
}

unsigned sqlite_queue_filter_states(const struct store_queue_filter *f)
{
	if (f->state < 0)
		return SQ_QUEUE_LIVE;
	return f->state <= STORE_QUEUE_FAILED ? 1u << f->state : 0;
}

static void sq_qf_bind(sqlite3_stmt *st, unsigned mask, const struct store_queue_filter *f,
                       unsigned states, size_t limit)
{
	sqlite3_bind_int64(st, 1, f->after_id);
	sqlite3_bind_int64(st, 2, f->older_than > 0 ? (int64_t)f->older_than : INT64_MAX);
	if (mask & SQ_QF_ONE_STATE)
		sqlite3_bind_int(st, 3, __builtin_ctz(states));
	else
		sqlite3_bind_int(st, 3, (int)states);
	for (unsigned i = 0; i < SQ_QF_STRINGS; i++)
		if (mask & (1u << i))
			sqlite3_bind_text(st, (int)i + 4, sq_qf_string(f, i), -1, SQLITE_STATIC);
	if (mask & SQ_QF_IDS)
		sqlite3_bind_text(st, 11, sq_qf_ids_json(f->ids, f->n_ids), -1, free);
	sqlite3_bind_int64(st, 12, limit == 0 ? -1 : (int64_t)limit);
}

sqlite3_stmt *sqlite_queue_select(struct sq_conn *c, enum sq_queue_head head,
                                  const struct store_queue_filter *f, unsigned states, size_t limit)
{
	unsigned mask = 0;
	sqlite3_stmt *st;

	for (unsigned i = 0; i < SQ_QF_STRINGS; i++)
		if (sq_qf_has(f, i))
			mask |= 1u << i;
	if (f->n_ids > 0)
		mask |= SQ_QF_IDS;
	if (mask == 0 && states != 0 && (states & (states - 1)) == 0)
		mask |= SQ_QF_ONE_STATE;
	st = sq_get(c, sq_qf_sql_get(head, mask));
	if (st != NULL)
		sq_qf_bind(st, mask, f, states, limit);
	return st;
}

/* ---- reads ------------------------------------------------------------------ */

int store_queue_query(struct store_reader *r, const struct store_queue_filter *filter, size_t limit,
                      struct store_queue_entry **list_r, size_t *n_r)
{
	sqlite3_stmt *st = sqlite_queue_select(&r->c, SQ_QUEUE_ROWS, filter,
	                                       sqlite_queue_filter_states(filter), limit);

	return sq_read_list(r, st, sizeof(**list_r), sqlite_queue_fill, list_r, n_r, "queue_query");
}

int store_queue_count(struct store_reader *r, const struct store_queue_filter *filter,
                      uint64_t *n_r)
{
	sqlite3_stmt *st = sqlite_queue_select(&r->c, SQ_QUEUE_COUNT, filter,
	                                       sqlite_queue_filter_states(filter), 0);
	int ret;

	*n_r = 0;
	if (st == NULL) {
		sqlite_read_failed(r, "queue_count");
		return -1;
	}
	if ((ret = sq_row(st)) == 1)
		*n_r = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (ret != 1)
		sqlite_read_failed(r, "queue_count");
	return ret == 1 ? 0 : -1;
}

/* queue_due (state, next_attempt) finds the due rows of each state; only
 * those are sorted. */
int store_queue_due(struct store_reader *r, time_t now, size_t limit,
                    struct store_queue_entry **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT " SQ_QUEUE_COLUMNS " FROM queue"
	                          " WHERE state IN (0, 1) AND next_attempt <= ?"
	                          " ORDER BY next_attempt, id LIMIT ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);

	if (st != NULL) {
		sqlite3_bind_int64(st, 1, (int64_t)now);
		sqlite3_bind_int64(st, 2, limit == 0 ? -1 : (int64_t)limit);
	}
	return sq_read_list(r, st, sizeof(**list_r), sqlite_queue_fill, list_r, n_r, "queue_due");
}

/* One MIN per state: each is a single step down queue_due. */
time_t store_queue_next_due(struct store_reader *r)
{
	static const char sql[] =
	    "SELECT MIN(m) FROM (SELECT MIN(next_attempt) AS m FROM queue WHERE state = 0"
	    " UNION ALL SELECT MIN(next_attempt) FROM queue WHERE state = 1)";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	time_t t = 0;
	int ret = -1;

	if (st != NULL && (ret = sq_row(st)) == 1)
		t = (time_t)sqlite3_column_int64(st, 0);
	if (st != NULL)
		sqlite3_reset(st);
	if (ret < 0)
		sqlite_read_failed(r, "queue_next_due");
	return t;
}

const char *store_queue_state_name(int state)
{
	static const char *const names[] = {
	    [STORE_QUEUE_QUEUED] = "queued", [STORE_QUEUE_DEFERRED] = "deferred",
	    [STORE_QUEUE_HELD] = "held",     [STORE_QUEUE_DELIVERED] = "delivered",
	    [STORE_QUEUE_FAILED] = "failed",
	};

	return state >= 0 && state <= STORE_QUEUE_FAILED ? names[state] : NULL;
}

static void sq_count_fill(sqlite3_stmt *st, void *item)
{
	struct store_queue_count *c = item;

	sq_text(st, 0, c->key, sizeof(c->key));
	c->count = (uint64_t)sqlite3_column_int64(st, 1);
}

/* Every state, zeros included, so that a reader sees the same keys each
 * time. */
static int sq_stats_states(struct store_reader *r, struct store_queue_count **list_r, size_t *n_r)
{
	static const char sql[] = "SELECT state, COUNT(*) FROM queue GROUP BY state";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	struct store_queue_count *list = xcalloc(STORE_QUEUE_FAILED + 1, sizeof(*list));
	int ret = -1;

	for (int i = 0; i <= STORE_QUEUE_FAILED; i++)
		snprintf(list[i].key, sizeof(list[i].key), "%s", store_queue_state_name(i));
	while (st != NULL && (ret = sq_row(st)) == 1) {
		int state = sqlite3_column_int(st, 0);
		if (state >= 0 && state <= STORE_QUEUE_FAILED)
			list[state].count = (uint64_t)sqlite3_column_int64(st, 1);
	}
	if (st != NULL)
		sqlite3_reset(st);
	if (ret < 0) {
		sqlite_read_failed(r, "queue_stats");
		free(list);
		return -1;
	}
	*list_r = list;
	*n_r = STORE_QUEUE_FAILED + 1;
	return 0;
}

/* Both lists from one snapshot. */
int store_queue_stats(struct store_reader *r, struct store_queue_count **by_state_r,
                      size_t *n_state_r, struct store_queue_count **by_domain_r, size_t *n_domain_r)
{
	static const char sql[] = "SELECT rcpt_domain, COUNT(*) AS n FROM queue WHERE state < 3"
	                          " GROUP BY rcpt_domain ORDER BY n DESC, rcpt_domain LIMIT 100";
	int ret;

	*by_state_r = NULL;
	*by_domain_r = NULL;
	*n_state_r = *n_domain_r = 0;
	if (sq_exec(&r->c, "BEGIN") < 0) {
		sqlite_read_failed(r, "begin");
		return -1;
	}
	ret = sq_stats_states(r, by_state_r, n_state_r);
	if (ret == 0)
		ret = sq_read_list(r, sq_get(&r->c, sql), sizeof(**by_domain_r), sq_count_fill,
		                   by_domain_r, n_domain_r, "queue_stats");
	if (!sqlite3_get_autocommit(r->c.db) && sq_exec(&r->c, "COMMIT") < 0)
		sqlite_read_failed(r, "commit");
	if (ret < 0) {
		free(*by_state_r);
		*by_state_r = NULL;
		*n_state_r = 0;
	}
	return ret;
}
