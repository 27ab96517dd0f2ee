/* The SQLite backend's insides, shared by its files and nothing else.
 *
 *   sqlite_sql.c             connections, the per-connection statement cache,
 *                            small helpers (binding, copying text, addresses)
 *   sqlite_store.c           open/close, schema migrations, readers, stats
 *   sqlite_committer.c       requests, the committer thread, group commit
 *   sqlite_directory.c       domain/user/alias/group/setting writes
 *   sqlite_directory_read.c  their reads
 *   sqlite_mail.c            mailbox, delivery and trace writes
 *   sqlite_mailbox.c         mailbox changes: rename, delete, subscribe, flags,
 *                            expunge, copy/move
 *   sqlite_mail_read.c       mailbox, message, blob and trace reads; stored
 *                            message structure, partial blob reads
 *   sqlite_search.c          full-text search on the message_text index
 *   sqlite_queue.c           queue writes: attempt outcomes, bulk changes
 *   sqlite_queue_read.c      queue reads and the filter's SQL, shared by both
 *   sqlite_notify.c          the notifier: watchers, told after each commit
 *   sqlite_trace.c           accountability: Message-ID per blob, trace by
 *                            message, retention, the audit log
 *
 * Statements are cached per connection, keyed by the address of their SQL
 * text: SQL lives as static strings next to the code that runs it. */
#ifndef KEEL_STORE_SQLITE_PRIVATE_H
#define KEEL_STORE_SQLITE_PRIVATE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "store/blob.h"
#include "store/store.h"

/* addresses.kind: the same numbers as enum store_addr_kind. */
#define SQ_KIND_USER 1
#define SQ_KIND_ALIAS 2
#define SQ_KIND_GROUP 3

/* ---- connections and statements (sqlite_sql.c) ------------------------- */

struct sq_cached {
	const char *sql;
	sqlite3_stmt *stmt;
};

struct sq_conn {
	sqlite3 *db;
	struct sq_cached *cache; /* open addressing on the sql pointer */
	size_t cache_cap, cache_n;
};

/* Opens path with WAL, synchronous=FULL, foreign keys and a busy timeout.
 * create: the writer (creates the file); otherwise a query-only reader.
 * error_r is valid until the next open on this thread. */
int sq_conn_open(struct sq_conn *c, const char *path, bool create, const char **error_r);
void sq_conn_close(struct sq_conn *c);
/* The cached statement for sql (a static string), reset and unbound; NULL
 * if it does not prepare (sqlite3_errmsg() says why). */
sqlite3_stmt *sq_get(struct sq_conn *c, const char *sql);
/* Runs a cached statement without parameters; 0 or -1. */
int sq_exec(struct sq_conn *c, const char *sql);
/* Keywords as a set (sqlite_mailbox.c): single spaces, each word once (its
 * first spelling), in the order given; a new string, "" for NULL. */
char *sq_keywords_normalise(const char *keywords);
/* Steps st to the end and resets it: 0 or -1 (the error stays in the db). */
int sq_run(sqlite3_stmt *st);
/* One step: 1 a row is ready, 0 no (more) rows, -1 error.  The caller
 * resets st when done with it. */
int sq_row(sqlite3_stmt *st);
/* Binds s, or NULL when s is NULL or empty. */
void sq_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);
/* Copies column col (NULL as "") into dst of size bytes, truncating. */
void sq_text(sqlite3_stmt *st, int col, char *dst, size_t size);
/* Splits "local@domain" at the last '@'; -1 if either part is empty or too
 * long for STORE_LOCAL_MAX / STORE_DOMAIN_MAX. */
int sq_address_split(const char *address, char local_r[STORE_LOCAL_MAX + 1],
		     char domain_r[STORE_DOMAIN_MAX + 1]);
/* Lower-cases ASCII in place; returns s. */
char *sq_lower(char *s);
/* Grows *list (of elem-byte items) so that item n fits. */
void *sq_list_grow(void *list, size_t elem, size_t n, size_t *alloc);

/* ---- the store ---------------------------------------------------------- */

struct store_req;

struct store {
	char *data_dir, *db_path, *blob_dir;
	struct sq_conn w; /* the write connection: the committer's alone once started */
	struct blob_store *blobs;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct store_req *head, *tail; /* queued requests */
	/* Deferred trace events (store_trace_defer): they ride along with the
	 * next batch, or go alone once the oldest has waited long enough. */
	struct store_req *dhead, *dtail;
	struct timespec ddue;
	bool stopping;

	time_t batch_time; /* committer: when the current batch started */
	atomic_uint_fast64_t flushes, commits, requests;
	atomic_uint inject_failures;

	/* The notifier's table (sqlite_notify.c): chained hash on mailbox id. */
	pthread_mutex_t watch_lock;
	struct store_watch **watch_buckets;
	size_t watch_cap;
	atomic_size_t n_watches; /* read without the lock: no watchers, no work */
};

struct store_reader {
	struct store *store;
	struct sq_conn c;
	struct blob_reader *blobs;
};

/* ---- requests (sqlite_committer.c) -------------------------------------- */

struct store_op {
	const char *name; /* for logs: "user.add" */
	/* Runs inside the request's savepoint on the committer thread.  Returns
	 * 0, or -1 after store_req_fail*(): the savepoint is rolled back. */
	int (*apply)(struct store *s, struct store_req *req);
};

/* A delivery's own data; blob fields are set by the committer before the
 * transaction. */
struct sq_delivery {
	void *data;
	size_t size;
	time_t internaldate;
	uint8_t sha256[BLOB_SHA256_LEN];
	struct store_rcpt *rcpts;
	size_t n_rcpts;
	struct store_delivered *delivered; /* n_rcpts entries */
	struct store_queue_rcpt *remote;
	size_t n_remote;
	struct store_envelope envelope;
	struct store_structure structure; /* all NULL when the caller gave none */
	char *keywords;                    /* normalised ("" for none) */
	bool have_bytes;                   /* bytes appended and flushed in this batch at: */
	uint32_t segment;
	uint64_t offset;
};

/* One write request: a copy of the caller's arguments, the outcome, and
 * where to answer.  Which argument fields an op uses is the op's business. */
struct store_req {
	struct store_req *next;
	const struct store_op *op;
	struct loop *loop;
	store_done_cb *cb;
	void *ctx;

	char *str1, *str2, *str3;
	int64_t id;
	uint64_t num;
	bool flag;
	char **strv;
	size_t n_strv;
	struct store_trace_event *events;
	size_t n_events;
	struct sq_delivery *delivery;
	int64_t id2;
	uint32_t *uids; /* ascending, distinct */
	size_t n_uids;
	int mode;
	uint32_t bits;
	int64_t *ids; /* queue entry ids (store_queue_change) */
	size_t n_ids;
	struct store_queue_outcome *outcomes; /* store_queue_record */
	size_t n_outcomes;

	struct store_reply reply;
	char error[512];
	/* Mailbox changes' reply->delivered (a delivery uses its own array). */
	struct store_delivered *out;
	size_t n_out;
	/* What the request changed, for the notifier: kept only if it succeeds. */
	struct sq_changed *changed;
	size_t n_changed, changed_alloc;
	/* store_deliver_all(): the first request of a group has group_n > 0
	 * and answers for all; the group_n - 1 that follow it in the queue
	 * are members (group_member), applied with it and never answered. */
	size_t group_n;
	bool group_member;
};

/* A mailbox a request changed and its highestmodseq after that request. */
struct sq_changed {
	int64_t mailbox_id;
	uint64_t modseq;
};

struct store_req *store_req_new(const struct store_op *op, struct loop *loop,
				store_done_cb *cb, void *ctx);
/* Queues req for the committer, which owns it from now on. */
void store_req_submit(struct store *s, struct store_req *req);
/* Queues the chain first..(next)..last as one unbroken run of the queue,
 * so that it lands in one batch (store_deliver_all). */
void store_req_submit_chain(struct store *s, struct store_req *first, struct store_req *last);
/* Queues req to go with the next batch (at most STORE_DEFER_MS later). */
void store_req_defer(struct store *s, struct store_req *req);
/* Fails req with err and a formatted message; returns -1. */
int store_req_fail(struct store_req *req, enum store_err err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Fails req with the write connection's last SQLite error; returns -1. */
int store_req_fail_db(struct store *s, struct store_req *req);

/* The committer thread (started by store_open, stopped by store_close). */
int store_committer_start(struct store *s, const char **error_r);
void store_committer_stop(struct store *s);
/* Consumes one injected flush failure, if any is pending. */
bool store_flush_injected(struct store *s);

/* ---- reading rows (sqlite_sql.c) ---------------------------------------- */

/* Fills one record from the current row of st. */
typedef void sq_fill_fn(sqlite3_stmt *st, void *item);
/* Steps st (bound by the caller; NULL: it did not prepare) through its rows
 * into a malloc'd array of elem-byte records, zeroed then filled, stored in
 * *list_r (list_r: the address of a pointer to the record type); resets st.
 * -1 on error (logged with what). */
int sq_read_list(struct store_reader *r, sqlite3_stmt *st, size_t elem, sq_fill_fn *fill,
		 void *list_r, size_t *n_r, const char *what);
/* The first row of st into item: 0, or -1 when there is none or on error. */
int sq_read_one(struct store_reader *r, sqlite3_stmt *st, sq_fill_fn *fill, void *item,
		const char *what);
/* Fillers shared between files: a struct store_message from the columns
 * id, mailbox_id, uid, modseq, flags, keywords, internaldate, size, blob_id
 * (sqlite_mail_read.c); a struct store_trace_event from columns 1..11 of
 * SELECT id, time, queue_id, message_id, event, account, protocol,
 * client_ip, session, sender, rcpt, detail (sqlite_trace.c). */
sq_fill_fn sq_message_fill, sq_trace_event_fill;

/* ---- shared between files ----------------------------------------------- */

/* Inserts a mailbox (the name is not checked); *id_r is its id. */
int sqlite_mailbox_insert(struct store *s, int64_t user_id, const char *name,
			  enum store_special_use special_use, int64_t *id_r);
/* Copies events for a request, making sure every string ends inside its
 * field. */
struct store_trace_event *sqlite_events_copy(const struct store_trace_event *events, size_t n);
/* Inserts trace events stamped with the batch time when theirs is 0. */
int sqlite_trace_insert(struct store *s, const struct store_trace_event *events, size_t n);
/* Registers keel_text_has(text, needle, header, field) on db: whether an
 * entry of text (store.h's struct store_structure form; header: entries are
 * "name:value" fields, field NULL or a name to match) contains needle, ASCII
 * case ignored.  It makes the index's candidates exact.  0 or -1. */
int sqlite_text_functions(sqlite3 *db);
/* Logs a failed read on reader r. */
void sqlite_read_failed(struct store_reader *r, const char *what);
/* Records the Message-ID a delivery request's blob came with (from its
 * envelope, else from its trace events), unless the blob has one
 * (sqlite_trace.c). */
int sqlite_blob_set_message_id(struct store *s, int64_t blob_id, const struct store_req *req);

/* ---- the queue (sqlite_queue_read.c) -------------------------------------- */

/* What a queue filter statement selects. */
enum sq_queue_head {
	SQ_QUEUE_ROWS,  /* every column, for sqlite_queue_fill */
	SQ_QUEUE_COUNT, /* COUNT(*) */
	SQ_QUEUE_REFS,  /* id, blob_id */
};

/* State bits (1 << state) a filter's state field stands for. */
unsigned sqlite_queue_filter_states(const struct store_queue_filter *f);
/* The cached statement on c selecting head of the entries that match f and
 * whose state is in states, by ascending id, at most limit (0: all), bound
 * and ready to step; NULL if it does not prepare.  f's strings are bound
 * without copying: they must outlive the stepping. */
sqlite3_stmt *sqlite_queue_select(struct sq_conn *c, enum sq_queue_head head,
				  const struct store_queue_filter *f, unsigned states,
				  size_t limit);
/* Fills a struct store_queue_entry from a SQ_QUEUE_ROWS row. */
void sqlite_queue_fill(sqlite3_stmt *st, void *item);

/* ---- the notifier (sqlite_notify.c) ---------------------------------------- */

void sqlite_watch_init(struct store *s);
void sqlite_watch_deinit(struct store *s);
/* Notes, on the committer, that req changed mailbox_id, whose highestmodseq
 * is now modseq.  Dropped if req fails. */
void sqlite_req_changed(struct store_req *req, int64_t mailbox_id, uint64_t modseq);
/* After the commit: posts the callbacks of every watcher of a mailbox that a
 * successful request of batch changed. */
void sqlite_notify_batch(struct store *s, struct store_req *batch);

#endif
