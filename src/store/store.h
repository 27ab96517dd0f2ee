/* The store: every piece of persistent state, in mail terms.
 *
 * One interface for every backend (SQLite now; PostgreSQL later).  No SQL
 * leaves the backend, and nothing here assumes SQLite.
 *
 * Threads
 * -------
 * Writes go through the committer, one thread that owns the write
 * connection.  A write function (store_deliver(), store_user_add(), ...)
 * copies its arguments, queues a request and returns at once.  The committer
 * takes every pending request, appends the blobs they carry to the segment
 * files, flushes them once, applies all requests in one transaction (each in
 * its own savepoint, so one failing request fails alone) and commits once:
 * group commit.  Only then is each request's callback called, on the loop
 * given with the request (loop_post), or on the committer thread when that
 * loop is NULL (start-up code and unit tests use struct store_sync).
 * If a flush or the commit fails, every request in that batch fails with
 * STORE_ERR_IO and nothing of it is kept: a failure is never retried and
 * trusted.
 *
 * Reads use a struct store_reader, one per thread (each loop thread opens its
 * own).  A reader sees everything committed before the read began.
 *
 * Strings in the records below are fixed-size arrays so that records are
 * plain values: lists are arrays freed with free().
 *
 * Addresses: a local address is localpart@domain.  Domains compare
 * case-insensitively; local parts of users, aliases and groups compare
 * case-insensitively (ASCII).  One domain's users, aliases and groups share
 * one namespace: an address is at most one of them. */
#ifndef KEEL_STORE_STORE_H
#define KEEL_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct loop;
struct store;
struct store_reader;

#define STORE_DOMAIN_MAX 255
#define STORE_LOCAL_MAX 64
#define STORE_ADDR_MAX 320 /* local@domain */
#define STORE_NAME_MAX 255
#define STORE_HASH_MAX 255
#define STORE_MAILBOX_MAX 1023
#define STORE_KEY_MAX 127
#define STORE_VALUE_MAX 4095

/* Schema version this binary writes; a data dir with a newer one is refused. */
#define STORE_SCHEMA_VERSION 10

enum store_err {
	STORE_OK = 0,
	STORE_ERR_NOT_FOUND, /* the named domain, user, ... does not exist */
	STORE_ERR_EXISTS,    /* the name is taken */
	STORE_ERR_INVALID,   /* the request breaks a rule (text in error) */
	STORE_ERR_QUOTA,     /* over the user's quota */
	STORE_ERR_IO,        /* flush, commit or disk failure: nothing was kept */
};

/* ---- records ---------------------------------------------------------- */

struct store_domain {
	int64_t id;
	char name[STORE_DOMAIN_MAX + 1];     /* lower case */
	int64_t alias_of;                    /* 0, or the primary domain's id */
	char alias_of_name[STORE_DOMAIN_MAX + 1]; /* "" unless an alias */
	time_t created;
	/* Outbound identity (multihoming) for mail from this domain: the local
	 * address the queue runner binds before connecting and the name it
	 * gives in EHLO.  "" when unset: the runner's defaults apply. */
	char source_ip4[64];
	char source_ip6[64];
	char ehlo_name[STORE_DOMAIN_MAX + 1];
};

struct store_user {
	int64_t id;      /* stable: a rename never changes it */
	int64_t domain_id;
	char localpart[STORE_LOCAL_MAX + 1]; /* as given at creation/rename */
	char address[STORE_ADDR_MAX + 1];    /* localpart@domain */
	char name[STORE_NAME_MAX + 1];       /* full name, may be "" */
	char password_hash[STORE_HASH_MAX + 1]; /* PHC string ($argon2id$...) or "" */
	uint64_t quota;  /* bytes, 0 = none */
	uint64_t used;   /* bytes of messages in all its mailboxes */
	bool enabled;
	time_t created;
};

/* An alias target: a local user (by id, so renames follow) or an address
 * string (remote, or another local alias/group). */
struct store_alias_target {
	int64_t user_id;                    /* 0 when address is used */
	char address[STORE_ADDR_MAX + 1];   /* for user targets: the user's current address */
};

struct store_alias {
	int64_t id;
	char address[STORE_ADDR_MAX + 1];
	size_t n_targets;
	struct store_alias_target *targets; /* freed by store_alias_free() */
};

struct store_group {
	int64_t id;
	char address[STORE_ADDR_MAX + 1];
	size_t n_members;
	int64_t *member_ids;                       /* user ids */
	char (*member_addresses)[STORE_ADDR_MAX + 1]; /* current addresses, same order */
};

/* What an address is, found by one lookup. */
enum store_addr_kind {
	STORE_ADDR_NONE = 0,
	STORE_ADDR_USER,
	STORE_ADDR_ALIAS,
	STORE_ADDR_GROUP,
};

enum store_special_use {
	STORE_SPECIAL_NONE = 0,
	STORE_SPECIAL_INBOX, /* not an RFC 6154 attribute, but INBOX is special */
	STORE_SPECIAL_DRAFTS,
	STORE_SPECIAL_SENT,
	STORE_SPECIAL_TRASH,
	STORE_SPECIAL_JUNK,
	STORE_SPECIAL_ARCHIVE,
};

struct store_mailbox {
	int64_t id;
	int64_t user_id;
	char name[STORE_MAILBOX_MAX + 1]; /* full hierarchical name, "/" separated */
	enum store_special_use special_use;
	bool subscribed;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages; /* count of messages not expunged */
	uint64_t size;     /* bytes of those messages */
};

/* System flags as bits; keywords as a space-separated string. */
enum store_flag {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4,
};

struct store_message {
	int64_t id;
	int64_t mailbox_id;
	uint32_t uid;
	uint64_t modseq;
	uint32_t flags;      /* enum store_flag bits */
	char keywords[512];  /* space-separated */
	time_t internaldate;
	uint64_t size;
	int64_t blob_id;
};

struct store_setting {
	char key[STORE_KEY_MAX + 1];
	char value[STORE_VALUE_MAX + 1];
};

/* One trace event (DESIGN.md, Accountability).  Empty strings are stored as
 * NULL. */
struct store_trace_event {
	time_t time;            /* 0: the commit time */
	char queue_id[64];
	char message_id[256];   /* the Message-ID header */
	char event[32];         /* "connect", "rcpt", "accepted", "delivered", ... */
	char account[STORE_ADDR_MAX + 1];
	char protocol[16];      /* "smtp", "imap", "pop3", "admin", ... */
	char client_ip[64];
	char session[32];
	char sender[STORE_ADDR_MAX + 1];
	char rcpt[STORE_ADDR_MAX + 1];
	char detail[1024];
};

/* The outbound queue: one entry per remote recipient of a message.  The
 * queue issue's scheduler moves entries between states; a delivery only
 * adds them (STORE_QUEUE_QUEUED, next attempt now). */
enum store_queue_state {
	STORE_QUEUE_QUEUED = 0,
	STORE_QUEUE_DEFERRED,
	STORE_QUEUE_HELD,
	STORE_QUEUE_DELIVERED,
	STORE_QUEUE_FAILED,
};

/* What the envelope says about the whole message (RFC 5321, RFC 3461). */
struct store_envelope {
	char queue_id[64];
	char sender[STORE_ADDR_MAX + 1]; /* "" for the null reverse-path */
	char message_id[256];
	char envid[101];       /* DSN ENVID, decoded */
	unsigned ret;          /* 0 none, 1 FULL, 2 HDRS */
	unsigned body;         /* 0 none, 1 7BIT, 2 8BITMIME, 3 BINARYMIME */
	bool smtputf8;
	char auth_user[STORE_ADDR_MAX + 1]; /* "" unless submitted with AUTH */
	char client_ip[64];
};

/* A remote recipient to queue. */
struct store_queue_rcpt {
	char rcpt[STORE_ADDR_MAX + 1];
	unsigned notify;       /* DSN NOTIFY bits: 1 never, 2 success, 4 failure, 8 delay */
	char orcpt[600]; /* "rfc822;addr" as given, or "" */
};

struct store_queue_entry {
	int64_t id;
	struct store_envelope env;
	struct store_queue_rcpt rcpt;
	int64_t blob_id;
	uint64_t size;
	enum store_queue_state state;
	unsigned attempts;
	time_t created;
	time_t next_attempt;
	char last_reply[512];
};

struct store_stats {
	uint64_t domains, users, aliases, groups, mailboxes, messages, blobs;
	uint64_t queued; /* queue entries not delivered or failed */
	uint64_t blob_bytes;
	uint64_t flushes;  /* blob fdatasyncs + transaction commits since open */
	uint64_t commits;  /* committer batches since open */
	uint64_t requests; /* write requests applied since open */
};

/* ---- opening ---------------------------------------------------------- */

/* Opens (creating if need be) the store in data_dir: migrates the schema,
 * cuts torn blob segment tails, starts the committer.  Refuses a data dir
 * written by a newer schema, with a message saying so. */
int store_open(const char *data_dir, struct store **store_r, const char **error_r);
/* Applies every queued write, answers its callback, stops the committer and
 * closes.  Readers must be closed first. */
void store_close(struct store **store);

int store_reader_open(struct store *store, struct store_reader **reader_r,
		      const char **error_r);
void store_reader_close(struct store_reader **reader);

/* Counters for tests, benchmarks and `keelctl status`. */
void store_stats(struct store_reader *r, struct store_stats *stats_r);
uint64_t store_flush_count(struct store *store);

/* Test hook: the next n flushes (blob fdatasync or commit) fail as if the
 * disk returned EIO. */
void store_inject_flush_failures(struct store *store, unsigned n);

/* ---- consistency check (`keelctl check`) --------------------------------- */

/* At most this many problem (and note) lines are kept; more_problems counts
 * the rest. */
#define STORE_CHECK_MAX_LINES 1000

/* What store_check() found.  problems: one line each, damage ("blob 12:
 * refcount 2 but 1 references ..."); notes: findings that are not damage (a
 * torn segment tail that nothing references).  Arrays of malloc'd strings,
 * freed by store_check_result_deinit(). */
struct store_check_result {
	uint64_t messages, blobs, segments, records;
	char **problems;
	size_t n_problems;
	uint64_t more_problems;
	char **notes;
	size_t n_notes;
};

/* Checks the store in data_dir without changing it: database integrity and
 * foreign keys, blob references and refcounts, users' and mailboxes' usage
 * counters, and every segment record's checksum against the blob rows.  It
 * opens its own read-only connection and reads one snapshot, so it may run
 * on any thread beside a live committer (it blocks that thread for as long
 * as it reads every segment: run it on a work pool), or on a stopped data
 * dir (nothing is cut or migrated).  0 with *res_r filled (clean when
 * n_problems is 0), or -1 when the check itself cannot run (error_r says
 * why, valid until the next call on this thread). */
int store_check_dir(const char *data_dir, struct store_check_result *res_r,
		    const char **error_r);
/* The same on a live store's data dir. */
int store_check(struct store *store, struct store_check_result *res_r, const char **error_r);
void store_check_result_deinit(struct store_check_result *res);

/* ---- writes (asynchronous, through the committer) ----------------------- */

/* The outcome of one write request, valid only during the callback. */
struct store_reply {
	int status;            /* 0 or -1 */
	enum store_err err;
	const char *error;     /* human-readable when status is -1 */
	int64_t id;            /* the new row's id for *_add; else 0 */
	/* store_deliver(): one entry per recipient, in request order. */
	size_t n_delivered;
	const struct store_delivered *delivered;
};

typedef void store_done_cb(const struct store_reply *reply, void *ctx);

/* Domains.  alias_of NULL: an independent domain. */
void store_domain_add(struct store *s, const char *name, const char *alias_of,
		      struct loop *loop, store_done_cb *cb, void *ctx);
/* Refused (STORE_ERR_INVALID) while the domain has users, aliases, groups or
 * alias domains. */
void store_domain_del(struct store *s, const char *name, struct loop *loop,
		      store_done_cb *cb, void *ctx);
/* Sets a domain's outbound identity (struct store_domain).  Each argument:
 * NULL leaves that field as it is, "" clears it.  The values are stored as
 * given (checking syntax is the caller's; the store only refuses values too
 * long for the record, STORE_ERR_INVALID).  STORE_ERR_NOT_FOUND for an
 * unknown domain. */
void store_domain_set_outbound(struct store *s, const char *name, const char *source_ip4,
			       const char *source_ip6, const char *ehlo_name, struct loop *loop,
			       store_done_cb *cb, void *ctx);

/* Users.  Creates the user with INBOX, Drafts, Sent, Trash, Junk and Archive
 * (special-use set).  The domain must exist and not be an alias domain. */
void store_user_add(struct store *s, const char *address, const char *name,
		    const char *password_hash, uint64_t quota, struct loop *loop,
		    store_done_cb *cb, void *ctx);
void store_user_set_password(struct store *s, int64_t user_id, const char *password_hash,
			     struct loop *loop, store_done_cb *cb, void *ctx);
void store_user_set_enabled(struct store *s, int64_t user_id, bool enabled,
			    struct loop *loop, store_done_cb *cb, void *ctx);
void store_user_set_name(struct store *s, int64_t user_id, const char *name,
			 struct loop *loop, store_done_cb *cb, void *ctx);
void store_user_set_quota(struct store *s, int64_t user_id, uint64_t quota,
			  struct loop *loop, store_done_cb *cb, void *ctx);
/* Gives the user a new address (same id, mailboxes and mail).  With
 * keep_alias the old address becomes an alias to the user. */
void store_user_rename(struct store *s, int64_t user_id, const char *new_address,
		       bool keep_alias, struct loop *loop, store_done_cb *cb, void *ctx);
/* Deletes the user, its mailboxes and messages (blob references dropped),
 * its group memberships and alias targets pointing at it. */
void store_user_del(struct store *s, int64_t user_id, struct loop *loop,
		    store_done_cb *cb, void *ctx);

/* Aliases: targets are addresses; one naming an existing local user is kept
 * by user id, so it follows renames. */
void store_alias_add(struct store *s, const char *address, const char *const *targets,
		     size_t n_targets, struct loop *loop, store_done_cb *cb, void *ctx);
void store_alias_del(struct store *s, const char *address, struct loop *loop,
		     store_done_cb *cb, void *ctx);

/* Groups: members are local users. */
void store_group_add(struct store *s, const char *address, struct loop *loop,
		     store_done_cb *cb, void *ctx);
void store_group_del(struct store *s, const char *address, struct loop *loop,
		     store_done_cb *cb, void *ctx);
void store_group_member_add(struct store *s, const char *group, const char *member,
			    struct loop *loop, store_done_cb *cb, void *ctx);
void store_group_member_del(struct store *s, const char *group, const char *member,
			    struct loop *loop, store_done_cb *cb, void *ctx);

/* Settings: plain key/value text; validation is the caller's (src/settings). */
void store_setting_set(struct store *s, const char *key, const char *value,
		       struct loop *loop, store_done_cb *cb, void *ctx);
void store_setting_unset(struct store *s, const char *key, struct loop *loop,
			 store_done_cb *cb, void *ctx);

/* Mailboxes. */
void store_mailbox_create(struct store *s, int64_t user_id, const char *name,
			  enum store_special_use special_use, struct loop *loop,
			  store_done_cb *cb, void *ctx);

/* Mailbox changes for IMAP and POP3.  A request that changes messages of a
 * mailbox takes one new modseq there, the mailbox's highestmodseq + 1, for
 * every message it changes (RFC 7162 allows one value per request); a
 * request that changes nothing takes none.  Each write that changes a
 * mailbox notifies its watchers (store_watch) after the commit.  uids may
 * come in any order and repeat: each distinct uid counts once, in ascending
 * order; uids not in the mailbox are skipped, not an error.  reply->id is
 * the mailbox's highestmodseq after the change (store_copy: see there). */

/* Renames the mailbox and its children ("a" to "x": "a/b" becomes "x/b").
 * STORE_ERR_EXISTS when a new name is taken (INBOX in any case is taken);
 * STORE_ERR_INVALID for INBOX itself (RFC 3501's INBOX rename moves the
 * messages: store_copy with move) and for a rename into its own subtree.
 * No modseq changes; the watchers of every renamed mailbox are told. */
void store_mailbox_rename(struct store *s, int64_t mailbox_id, const char *new_name,
			  struct loop *loop, store_done_cb *cb, void *ctx);
/* Deletes the mailbox, its messages (blob references, counters and the
 * user's usage go with them) and its expunge records.  Children stay.  INBOX
 * cannot be deleted (STORE_ERR_INVALID).  Watchers are told with the last
 * highestmodseq; store_mailbox_get_by_id then finds nothing. */
void store_mailbox_delete(struct store *s, int64_t mailbox_id, struct loop *loop,
			  store_done_cb *cb, void *ctx);
/* No modseq change, no notification. */
void store_mailbox_subscribe(struct store *s, int64_t mailbox_id, bool subscribed,
			     struct loop *loop, store_done_cb *cb, void *ctx);

enum store_flags_mode {
	STORE_FLAGS_ADD,
	STORE_FLAGS_REMOVE,
	STORE_FLAGS_REPLACE,
};

/* STORE: changes flags (enum store_flag bits) and keywords (space-separated,
 * case-insensitive as IMAP keywords are) of the messages with the given
 * uids.  Keywords are kept as a set: each word once, in the spelling first
 * seen (a message's own before the request's), in the order added; at most
 * 511 bytes in all (else STORE_ERR_INVALID, nothing changed).  Checking
 * them (atoms, no "\") is the caller's.
 * With unchangedsince > 0 (CONDSTORE), a message whose modseq is greater is
 * not changed and is listed in reply->delivered with status -1, err
 * STORE_ERR_INVALID and its current modseq (RFC 7162's "modified" set);
 * UNCHANGEDSINCE 0 is the caller's to answer.  Messages whose flags and
 * keywords end up the same (as sets) are not changed, get no new modseq and
 * are not listed.  reply->delivered: one entry per changed (status 0, the
 * new modseq) or refused message, ascending uid. */
struct store_flags_change {
	int64_t mailbox_id;
	const uint32_t *uids;
	size_t n_uids;
	enum store_flags_mode mode;
	uint32_t flags;
	const char *keywords; /* NULL or "" for none */
	uint64_t unchangedsince;
	const struct store_trace_event *events; /* committed with the change */
	size_t n_events;
};
void store_flags_set(struct store *s, const struct store_flags_change *c, struct loop *loop,
		     store_done_cb *cb, void *ctx);

/* EXPUNGE (and POP3's DELE at QUIT): removes the messages with the given
 * uids; their space leaves the mailbox's counters and the user's quota;
 * blob references drop.  Each expunged uid is remembered with the modseq of
 * its removal (store_expunged_since, for QRESYNC VANISHED).
 * reply->delivered: one entry per expunged uid, ascending, with that
 * modseq. */
void store_expunge(struct store *s, int64_t mailbox_id, const uint32_t *uids, size_t n_uids,
		   const struct store_trace_event *events, size_t n_events, struct loop *loop,
		   store_done_cb *cb, void *ctx);

/* COPY / MOVE: the messages with the given uids get new uids in the target
 * mailbox, in ascending source uid order (same blob, flags, keywords,
 * internaldate, size and cached envelope/bodystructure; one new modseq in
 * the target); with move they are expunged from the source in the same
 * transaction (remembered for VANISHED; the source's highestmodseq bumps).
 * The target user's quota applies to the whole copy (a move within one user
 * adds nothing): STORE_ERR_QUOTA fails the request and changes nothing.
 * reply->delivered: one entry per distinct requested uid, ascending, so
 * that entry i pairs with the i-th source uid for COPYUID (RFC 4315):
 * status 0 with mailbox_id = target, uid = new uid and modseq; status -1,
 * STORE_ERR_NOT_FOUND for a uid not in the source.  reply->id is the
 * target's uidvalidity. */
void store_copy(struct store *s, int64_t from_mailbox, const uint32_t *uids, size_t n_uids,
		int64_t to_mailbox, bool move, const struct store_trace_event *events,
		size_t n_events, struct loop *loop, store_done_cb *cb, void *ctx);

/* The notifier: after each commit that changed mailbox_id (delivery, flags,
 * expunge, copy or move into or out of it, rename, delete, its user's
 * deletion), cb runs on loop with the mailbox's highestmodseq after that
 * commit.  Calls coalesce: while one is queued and not yet run, later
 * commits only raise the value it reports, so one call may stand for
 * several commits, and a value may repeat (rename and delete change no
 * modseq).  cb should re-read what it needs (store_mailbox_get_by_id,
 * store_message_changed, store_expunged_since).  To miss nothing, watch
 * first, then read the mailbox's state.
 *
 * store_watch: any thread; loop must not be NULL.  store_unwatch: on loop's
 * thread (from cb too), or after that loop has stopped; after it returns cb
 * is never called again, even for a change already committed and posted to
 * the loop but not yet run.  Sets *watch to NULL.  Every watch must be
 * unwatched before store_close. */
typedef void store_watch_cb(int64_t mailbox_id, uint64_t highestmodseq, void *ctx);
struct store_watch;
struct store_watch *store_watch(struct store *s, int64_t mailbox_id, struct loop *loop,
				store_watch_cb *cb, void *ctx);
void store_unwatch(struct store *s, struct store_watch **watch);

/* Delivery: one message, stored once (content-addressed, deduplicated), one
 * mailbox entry per local recipient and one queue entry per remote
 * recipient (queue entries need envelope).  A recipient names a user and a mailbox
 * (by id, or 0 for the user's INBOX).  Each recipient gets its own outcome
 * in reply->delivered; a recipient over quota fails alone (STORE_ERR_QUOTA)
 * unless ignore_quota.  reply->status is 0 when at least the request was
 * applied; look at each entry.  The events, if any, are appended in the same
 * transaction. */
struct store_rcpt {
	int64_t user_id;
	int64_t mailbox_id;  /* 0: INBOX */
	uint32_t flags;      /* initial enum store_flag bits */
	bool ignore_quota;
};

struct store_delivered {
	int status;          /* 0 or -1 */
	enum store_err err;
	int64_t mailbox_id;
	uint32_t uid;
	uint64_t modseq;
};

/* What a message's MIME structure gives IMAP, computed once before it is
 * stored (DESIGN.md: a FETCH never re-parses a message).  Every string is
 * NUL-terminated and malloc'd.
 *   envelope, bodystructure, body: FETCH ENVELOPE, BODYSTRUCTURE and BODY
 *     values (mail/mime.h), outer parentheses included.
 *   tree: mime_structure_serialize() of the message, for BODY[section]
 *     without reading the whole message.
 *   text_header: the message header's fields, text_inner: the fields of
 *     embedded messages' headers, text_body: the decoded text parts, for the
 *     full-text index (mime_text_walk()).  A field is "name:value"; entries
 *     are separated by STORE_TEXT_SEP; bytes 0x00-0x02 inside a value or a
 *     body become STORE_TEXT_BREAK, so that no needle without such a byte
 *     (store_message_search_text) matches across two entries. */
#define STORE_TEXT_SEP '\x01'
#define STORE_TEXT_BREAK '\x02'
struct store_structure {
	char *envelope, *bodystructure, *body;
	void *tree;
	size_t tree_size;
	char *text_header, *text_inner, *text_body;
};
/* Parses data[0, size) and fills *st (zeroed first).  Any bytes give a
 * structure; safe on any thread (it does no I/O), meant for the caller's
 * loop thread so that the committer never parses. */
void store_structure_compute(struct store_structure *st, const void *data, size_t size);
/* Frees the fields and zeroes *st. */
void store_structure_deinit(struct store_structure *st);

struct store_delivery {
	const void *data;    /* the whole message, as it will be served */
	size_t size;
	time_t internaldate; /* 0: now */
	const struct store_rcpt *rcpts;
	size_t n_rcpts;
	const struct store_queue_rcpt *remote;
	size_t n_remote;
	const struct store_envelope *envelope; /* required when n_remote > 0 */
	const struct store_trace_event *events;
	size_t n_events;
	/* NULL, or the structure of data (store_structure_compute() on exactly
	 * these bytes): kept with each mailbox entry (copied by store_copy) and
	 * indexed for search.  Without it, readers parse the message when asked. */
	const struct store_structure *structure;
	/* NULL, or the keywords each mailbox entry starts with (IMAP APPEND),
	 * space-separated as store_flags_set() takes them: set in the same
	 * transaction as the message. */
	const char *keywords;
};
void store_deliver(struct store *s, const struct store_delivery *d, struct loop *loop,
		   store_done_cb *cb, void *ctx);
/* Several deliveries (n >= 1), all or none: they are applied together in
 * one transaction, in order, and if any recipient of any of them fails
 * (over quota: the quota counts the earlier ones of the group; no such
 * mailbox; ...) nothing of the group is kept.  reply->status is -1 then,
 * with the failing entry's err.  On success reply->delivered holds one
 * entry per recipient of every delivery, in request order (IMAP
 * MULTIAPPEND, RFC 3502). */
void store_deliver_all(struct store *s, const struct store_delivery *d, size_t n,
		       struct loop *loop, store_done_cb *cb, void *ctx);

/* Trace events that need not be durable before anyone is answered (a
 * session's end, access events): they are committed with the next batch of
 * writes, at no flush of their own, or alone after STORE_DEFER_MS.  No
 * callback; a failure is logged.  store_close commits them too. */
#define STORE_DEFER_MS 1000
void store_trace_defer(struct store *s, const struct store_trace_event *events, size_t n);

/* Trace events alone (connects, rejections, access events). */
void store_trace_append(struct store *s, const struct store_trace_event *events,
			size_t n, struct loop *loop, store_done_cb *cb, void *ctx);

/* Waiting for a write from a thread that is not a loop (start-up, tests):
 *   struct store_sync sync; store_sync_init(&sync);
 *   store_user_add(..., NULL, store_sync_cb, &sync);
 *   store_sync_wait(&sync);   then sync.status / sync.err / sync.error / sync.id
 *   store_sync_deinit(&sync);
 * delivered entries are copied into sync.delivered (freed by deinit). */
struct store_sync {
	int status;
	enum store_err err;
	char error[512];
	int64_t id;
	size_t n_delivered;
	struct store_delivered *delivered;
	/* private */
	int done;
	void *impl;
};
void store_sync_init(struct store_sync *sync);
store_done_cb store_sync_cb;
void store_sync_wait(struct store_sync *sync);
void store_sync_deinit(struct store_sync *sync);

/* ---- reads (synchronous, on the calling thread's reader) ---------------- */
/* Lookups return 0 when found, -1 when not found or on error (error_r, if
 * not NULL, says which: NULL when simply not found). */

int store_domain_get(struct store_reader *r, const char *name, struct store_domain *d_r);
int store_domain_list(struct store_reader *r, struct store_domain **list_r, size_t *n_r);

int store_user_get(struct store_reader *r, const char *address, struct store_user *u_r);
int store_user_get_by_id(struct store_reader *r, int64_t id, struct store_user *u_r);
/* domain NULL: every user. */
int store_user_list(struct store_reader *r, const char *domain, struct store_user **list_r,
		    size_t *n_r);

/* What localpart@domain is in its domain (exact domain, no alias-domain
 * mapping: the directory does that).  id_r: the user, alias or group id. */
enum store_addr_kind store_address_kind(struct store_reader *r, const char *address,
					int64_t *id_r);

int store_alias_get(struct store_reader *r, const char *address, struct store_alias *a_r);
void store_alias_free(struct store_alias *a);
int store_alias_list(struct store_reader *r, struct store_alias **list_r, size_t *n_r);
void store_alias_list_free(struct store_alias *list, size_t n);

int store_group_get(struct store_reader *r, const char *address, struct store_group *g_r);
void store_group_free(struct store_group *g);
int store_group_list(struct store_reader *r, struct store_group **list_r, size_t *n_r);
void store_group_list_free(struct store_group *list, size_t n);

int store_setting_get(struct store_reader *r, const char *key, struct store_setting *s_r);
int store_setting_list(struct store_reader *r, struct store_setting **list_r, size_t *n_r);

int store_mailbox_list(struct store_reader *r, int64_t user_id,
		       struct store_mailbox **list_r, size_t *n_r);
int store_mailbox_get(struct store_reader *r, int64_t user_id, const char *name,
		      struct store_mailbox *m_r);
/* Messages of a mailbox with uid >= first_uid, in uid order, at most limit
 * (0: no limit). */
int store_message_list(struct store_reader *r, int64_t mailbox_id, uint32_t first_uid,
		       size_t limit, struct store_message **list_r, size_t *n_r);
/* What an IMAP session keeps of each message of its selected mailbox: the
 * uid, the flags and whether it has keywords.  Read from a covering index
 * (schema 10), so that listing a 100,000-message mailbox reads the index's
 * few hundred pages and never the messages' rows. */
struct store_message_brief {
	uint32_t uid;
	uint32_t flags; /* enum store_flag bits */
	bool keywords;
};
int store_message_brief_list(struct store_reader *r, int64_t mailbox_id, uint32_t first_uid,
			     size_t limit, struct store_message_brief **list_r, size_t *n_r);
int store_mailbox_get_by_id(struct store_reader *r, int64_t mailbox_id,
			    struct store_mailbox *m_r);
/* Messages of a mailbox whose modseq > since (CONDSTORE/QRESYNC), in uid
 * order; the list is freed with free(). */
int store_message_changed(struct store_reader *r, int64_t mailbox_id, uint64_t since,
			  struct store_message **list_r, size_t *n_r);
/* Their uids only, ascending (CHANGEDSINCE, QRESYNC at SELECT: a client's
 * old modseq may name most of a big mailbox). */
int store_message_changed_uids(struct store_reader *r, int64_t mailbox_id, uint64_t since,
			       uint32_t **uids_r, size_t *n_r);
/* uids expunged from a mailbox with modseq > since, ascending; the list is
 * freed with free().  Kept until the mailbox is deleted. */
int store_expunged_since(struct store_reader *r, int64_t mailbox_id, uint64_t since,
			 uint32_t **uids_r, size_t *n_r);
/* The stored structure of the message uid of mailbox_id: 0 with *st filled
 * (free with store_structure_deinit(); text_* are left NULL), each field
 * NULL when the message was stored without one (before schema 5); -1 when
 * there is no such message or on error. */
int store_message_structure(struct store_reader *r, int64_t mailbox_id, uint32_t uid,
			    struct store_structure *st);

/* Full-text search of a mailbox (IMAP SEARCH HEADER, BODY, TEXT): the
 * messages whose text contains needle, ASCII case ignored, as mime_text_walk()
 * decodes it.  STORE_SEARCH_HEADER looks at the message header's fields named
 * field (ASCII case ignored; NULL: any), STORE_SEARCH_BODY at text parts,
 * STORE_SEARCH_TEXT at both and at embedded messages' headers.
 * store_search_indexable() says whether needle can use the index: at least 3
 * UTF-8 characters, valid UTF-8, no byte 0x00-0x02.  Returns 0 with *hits_r
 * (uids that match, ascending) and *unindexed_r (uids of messages stored
 * without an index entry, ascending: the caller reads those itself), both
 * freed with free(); -1 on error or when needle is not indexable. */
enum store_search_where {
	STORE_SEARCH_HEADER,
	STORE_SEARCH_BODY,
	STORE_SEARCH_TEXT,
};
bool store_search_indexable(const char *needle, size_t len);
int store_message_search_text(struct store_reader *r, int64_t mailbox_id,
			      enum store_search_where where, const char *field,
			      const char *needle, size_t len, uint32_t **hits_r, size_t *n_hits_r,
			      uint32_t **unindexed_r, size_t *n_unindexed_r);

/* Reads a message's bytes (malloc'd) by blob id. */
int store_blob_read(struct store_reader *r, int64_t blob_id, void **data_r, size_t *size_r,
		    const char **error_r);

/* Queue entries: of one message (queue_id not NULL), or every entry in state
 * (state < 0: any), oldest first, at most limit (0: no limit). */
int store_queue_list(struct store_reader *r, const char *queue_id, int state, size_t limit,
		     struct store_queue_entry **list_r, size_t *n_r);

/* ---- the outbound queue: scheduling and management ------------------------ */

/* Blob references.  A queue entry holds one reference to its message's blob
 * exactly while its state is not final (QUEUED, DEFERRED, HELD).  The only
 * ways out of that set are store_queue_record() to DELIVERED or FAILED,
 * store_queue_change() BOUNCE (to FAILED) and DELETE (row removed); each
 * drops the reference in the same transaction, and each acts only on an
 * entry that is not final, so a reference is dropped once and only once.
 * Final entries stay as history with their blob_id (the bytes remain
 * readable until compaction reclaims them); nothing moves an entry out of a
 * final state. */

/* Which entries a query or a bulk change is about.  Every non-empty /
 * non-zero field must match (AND); strings compare case-insensitively for
 * domains and addresses (ASCII), exactly for queue_id and client_ip.  ids,
 * when given, restrict to those entry ids.  Each address or domain field is
 * served by an index: a filter never scans the whole queue for it. */
struct store_queue_filter {
	const char *queue_id;
	const char *sender;        /* exact address ("" matches the null sender only
				    * when sender_null is set) */
	bool sender_null;
	const char *sender_domain;
	const char *rcpt;
	const char *rcpt_domain;
	const char *auth_user;
	const char *client_ip;
	int state;                 /* enum store_queue_state, or -1 for any
				    * not yet delivered or failed */
	time_t older_than;         /* created before this time; 0: any */
	const int64_t *ids;
	size_t n_ids;
	int64_t after_id;          /* paging: only ids > after_id (ordered by id) */
};

/* Entries matching filter, by id, at most limit (0: no limit). */
int store_queue_query(struct store_reader *r, const struct store_queue_filter *filter,
		      size_t limit, struct store_queue_entry **list_r, size_t *n_r);
/* How many entries match filter (for a job's progress). */
int store_queue_count(struct store_reader *r, const struct store_queue_filter *filter,
		      uint64_t *n_r);

/* Entries due for an attempt: state QUEUED or DEFERRED with next_attempt <=
 * now, oldest next_attempt first (then by id), at most limit (0: no
 * limit).  A read: two runners could see the same entry; the one runner
 * per store is what keeps attempts single. */
int store_queue_due(struct store_reader *r, time_t now, size_t limit,
		    struct store_queue_entry **list_r, size_t *n_r);
/* The earliest next_attempt of any QUEUED or DEFERRED entry, or 0. */
time_t store_queue_next_due(struct store_reader *r);

/* The outcome of one delivery attempt for one entry.  DELIVERED and FAILED
 * are final: the entry stays as history (trace, queue show) but its blob
 * reference is dropped.  DEFERRED needs next_attempt.  attempts is
 * incremented; last_reply recorded.
 *
 * reply->delivered: one entry per outcome, in order (mailbox_id = entry
 * id): status 0 when recorded; status -1 with STORE_ERR_NOT_FOUND when the
 * entry is gone (deleted by the administrator during the attempt), with
 * STORE_ERR_INVALID when it is already final (nothing changed: no second
 * release) or the outcome is not DEFERRED (with next_attempt > 0),
 * DELIVERED or FAILED.  An entry HELD during the attempt stays HELD on
 * DEFERRED (attempts, next_attempt and last_reply are still recorded);
 * DELIVERED and FAILED apply to it, being facts.  reply->id is the number
 * recorded.  The events are appended in the same transaction. */
struct store_queue_outcome {
	int64_t id;
	enum store_queue_state state;
	time_t next_attempt;
	char last_reply[512];
};
void store_queue_record(struct store *s, const struct store_queue_outcome *outcomes, size_t n,
			const struct store_trace_event *events, size_t n_events,
			struct loop *loop, store_done_cb *cb, void *ctx);

/* Bulk management (keelctl queue hold|release|delete|retry|bounce), applied
 * to at most limit matching entries (0: all) in one write; jobs call it in
 * chunks with filter->after_id to stay short.  Only entries the action
 * applies to count as matching (HOLD looks at QUEUED and DEFERRED entries
 * only, whatever filter->state says beyond that), so every matching entry
 * changes: when reply->id < limit, nothing past the last listed id is
 * left, and the next chunk starts after the last listed id.  reply->id is
 * the number changed and reply->delivered (status 0, mailbox_id = entry id)
 * lists them by ascending id.  The filter's strings are copied.
 *   HOLD     QUEUED/DEFERRED -> HELD
 *   RELEASE  HELD -> QUEUED, due now
 *   RETRY    QUEUED/DEFERRED -> due now (the state stays)
 *   DELETE   removes not-final entries (blob references dropped)
 *   BOUNCE   not-final -> FAILED with last_reply "bounced by the administrator" (the
 *            caller sends the DSN; blob references dropped) */
enum store_queue_action {
	STORE_QUEUE_HOLD,
	STORE_QUEUE_RELEASE,
	STORE_QUEUE_RETRY,
	STORE_QUEUE_DELETE,
	STORE_QUEUE_BOUNCE,
};
#define STORE_QUEUE_BOUNCED "bounced by the administrator"
void store_queue_change(struct store *s, const struct store_queue_filter *filter,
			enum store_queue_action action, size_t limit, struct loop *loop,
			store_done_cb *cb, void *ctx);

/* Counts by state (every state, in enum order, zeros included, key the
 * lower-case state name), and by recipient domain of the entries not final
 * (most first, then by name; at most 100 domains).  Both lists are freed
 * with free(). */
struct store_queue_count {
	char key[STORE_DOMAIN_MAX + 1]; /* a state name or a domain */
	uint64_t count;
};
int store_queue_stats(struct store_reader *r, struct store_queue_count **by_state_r,
		      size_t *n_state_r, struct store_queue_count **by_domain_r,
		      size_t *n_domain_r);
/* "queued", "deferred", "held", "delivered", "failed"; NULL for others. */
const char *store_queue_state_name(int state);

/* Streaming a message's bytes in pieces, so that a big message is never
 * held whole (POP3 RETR, IMAP FETCH of a large body).  The stream belongs
 * to the reader's thread.  store_blob_stream_read returns the bytes read
 * (0 at the end) or -1; at the end the content is checked against its
 * SHA-256 and a mismatch is an error (-1) instead of 0. */
struct store_blob_stream;
int store_blob_stream_open(struct store_reader *r, int64_t blob_id,
			   struct store_blob_stream **stream_r, uint64_t *size_r,
			   const char **error_r);
long store_blob_stream_read(struct store_blob_stream *stream, void *buf, size_t size,
			    const char **error_r);
void store_blob_stream_close(struct store_blob_stream **stream);
/* Reads len bytes from offset of a blob into a malloc'd buffer (*size_r:
 * what was read, less than len only at the end of the blob).  Unlike
 * store_blob_read and the stream, the bytes are not checked against the
 * blob's SHA-256: that needs every byte, and this serves FETCH BODY[section]
 * of a part of a large message.  It is acceptable because the bytes were
 * hashed when they were written, the range is bounded by the size the
 * database records, and every whole read (BODY[], RFC822, POP3 RETR)
 * still verifies the hash, so corruption does not go unnoticed for long. */
int store_blob_read_range(struct store_reader *r, int64_t blob_id, uint64_t offset, size_t len,
			  void **data_r, size_t *size_r, const char **error_r);

/* ---- IP address groups (sqlite_access.c, docs/access.md) ------------------ */

#define STORE_IPGROUP_NAME_MAX 64
#define STORE_IPGROUP_ENTRY_MAX 127
#define STORE_IPGROUP_COMMENT_MAX 255

struct store_ipgroup {
	int64_t id;
	char name[STORE_IPGROUP_NAME_MAX + 1]; /* unique, ASCII case ignored */
	time_t created;
	size_t n_entries;
};

/* One entry: "IP", "FROM-TO", "ADDR/LEN" or "group:NAME", in the normal
 * form src/access/ipgroup.h makes (the store keeps the text as given). */
struct store_ipgroup_entry {
	int64_t id;
	char group[STORE_IPGROUP_NAME_MAX + 1];
	char entry[STORE_IPGROUP_ENTRY_MAX + 1];
	bool exclude;
	char comment[STORE_IPGROUP_COMMENT_MAX + 1];
};

/* STORE_ERR_EXISTS when the name is taken. */
void store_ipgroup_add(struct store *s, const char *name, struct loop *loop,
		       store_done_cb *cb, void *ctx);
/* Deletes the group and its entries.  STORE_ERR_NOT_FOUND; STORE_ERR_INVALID
 * (naming it) while another group has an entry group:NAME.  Settings that
 * name the group are the caller's to check. */
void store_ipgroup_del(struct store *s, const char *name, struct loop *loop,
		       store_done_cb *cb, void *ctx);
/* Adds an entry (comment NULL: none).  STORE_ERR_NOT_FOUND when the group,
 * or the group a "group:OTHER" entry names, does not exist;
 * STORE_ERR_EXISTS when the same entry (same exclude) is there;
 * STORE_ERR_INVALID when a group:OTHER entry would make a loop (OTHER is the
 * group or reaches it through its own group: entries). */
void store_ipgroup_entry_add(struct store *s, const char *name, const char *entry,
			     bool exclude, const char *comment, struct loop *loop,
			     store_done_cb *cb, void *ctx);
/* Removes the entry (included or excluded alike); STORE_ERR_NOT_FOUND. */
void store_ipgroup_entry_del(struct store *s, const char *name, const char *entry,
			     struct loop *loop, store_done_cb *cb, void *ctx);
/* Every group by name (n_entries filled); every entry of every group by
 * group name, then id.  Lists are freed with free(). */
int store_ipgroup_list(struct store_reader *r, struct store_ipgroup **list_r, size_t *n_r);
int store_ipgroup_entries(struct store_reader *r, struct store_ipgroup_entry **list_r,
			  size_t *n_r);
/* Both of the above from one snapshot. */
int store_ipgroup_read_all(struct store_reader *r, struct store_ipgroup **groups_r,
			   size_t *n_groups_r, struct store_ipgroup_entry **entries_r,
			   size_t *n_entries_r);

/* Trace events matching the non-empty fields of filter (queue_id,
 * message_id, account, client_ip, sender, rcpt), newest last. */
int store_trace_query(struct store_reader *r, const struct store_trace_event *filter,
		      time_t since, time_t until, struct store_trace_event **list_r,
		      size_t *n_r);

/* ---- accountability: trace by message, retention, audit (sqlite_trace.c) -- */

/* The Message-ID the blob was delivered with, into buf ("" when unknown: an
 * IMAP APPEND, or mail without one).  0, or -1 on error. */
int store_blob_message_id(struct store_reader *r, int64_t blob_id, char *buf, size_t size);
/* The same for the message uid in mailbox_id. */
int store_message_message_id(struct store_reader *r, int64_t mailbox_id, uint32_t uid,
			     char *buf, size_t size);

/* Every event of one message: those that carry message_id (access events)
 * and every event of the queue ids that did (the SMTP session that carried
 * it, its deliveries and outbound attempts); by time, then insertion.  Two
 * indexed reads, never a scan. */
int store_trace_query_message(struct store_reader *r, const char *message_id, time_t since,
			      time_t until, struct store_trace_event **list_r, size_t *n_r);

/* Deletes up to limit of the oldest trace events older than before, in one
 * short write; reply->id is how many went. */
void store_trace_expire(struct store *s, time_t before, size_t limit, struct loop *loop,
			store_done_cb *cb, void *ctx);

/* One admin change (docs/trace.md).  args, before and after are JSON text,
 * secrets masked by the caller; longer text is cut at its field's size
 * before the hash is taken, so what is stored is what is chained. */
struct store_audit {
	int64_t id;
	time_t time;
	char actor[64];
	char command[64];
	char args[2048];
	char before[4096];
	char after[4096];
	char hash[65]; /* hex SHA-256 (src/trace/trace_audit.h) */
};

/* Appends a record; the committer sets its id, time and hash, chaining it
 * to the record with the highest id in the same transaction.  reply->id is
 * the new record's id. */
void store_audit_append(struct store *s, const struct store_audit *a, struct loop *loop,
			store_done_cb *cb, void *ctx);
/* Records with time >= since and id > after_id, by id, at most limit. */
int store_audit_list(struct store_reader *r, time_t since, int64_t after_id, size_t limit,
		     struct store_audit **list_r, size_t *n_r);
/* The highest audit id ever given (0: none), to notice removed records at
 * the end of the log. */
int store_audit_last_id(struct store_reader *r, int64_t *id_r);

/* ---- interception (sqlite_intercept.c, docs/trace.md) ----------------------- */

/* One order: copies of a user's mail and its access events go to
 * to_address or into dir (exactly one is non-empty).  events_sent: the
 * highest trace id already handed over. */
struct store_intercept {
	int64_t id;
	int64_t user_id;
	char address[STORE_ADDR_MAX + 1]; /* the user's current address */
	char to_address[STORE_ADDR_MAX + 1];
	char dir[1024];
	char case_id[128];
	time_t created;
	int64_t events_sent;
};

/* Adds an order (i->user_id, to_address or dir, case_id); events_sent
 * starts at the highest trace id so far, so that only later events go.
 * STORE_ERR_NOT_FOUND for an unknown user.  reply->id: the order's id. */
void store_intercept_add(struct store *s, const struct store_intercept *i, struct loop *loop,
			 store_done_cb *cb, void *ctx);
/* STORE_ERR_NOT_FOUND when there is no such order. */
void store_intercept_del(struct store *s, int64_t id, struct loop *loop, store_done_cb *cb,
			 void *ctx);
/* Raises the order's events_sent to events_sent (never lowers it); an
 * order deleted meanwhile is not an error (reply->id 0). */
void store_intercept_set_sent(struct store *s, int64_t id, int64_t events_sent,
			      struct loop *loop, store_done_cb *cb, void *ctx);
/* Every order, by id (freed with free()). */
int store_intercept_list(struct store_reader *r, struct store_intercept **list_r, size_t *n_r);
/* An account's trace events with trace id > after_id and time in [since,
 * until] (until 0: no end), by id, at most limit; ids_r[i] is event i's
 * trace id.  Served by the (account, time) index.  Both lists freed with
 * free(). */
int store_trace_account_after(struct store_reader *r, const char *account, int64_t after_id,
			      time_t since, time_t until, size_t limit,
			      struct store_trace_event **list_r, int64_t **ids_r, size_t *n_r);
/* Messages, in any mailbox, whose blob was delivered with message_id, by
 * message id (freed with free()).  blobs.message_id has no index: this
 * reads every blob row, which export (rare, by an administrator) may. */
int store_message_find_by_message_id(struct store_reader *r, const char *message_id,
				     struct store_message **list_r, size_t *n_r);

/* ---- the outbreak brake (sqlite_abuse.c, docs/access.md) -------------------- */

/* An account's right to send.  since is when the counters start: the time
 * of the last `user unsuspend` (0: never); suspended_at is when it was
 * suspended (0 when it is not). */
struct store_send_state {
	bool suspended;
	char reason[256];
	time_t suspended_at;
	time_t since;
};
/* 0 with *st_r filled; -1 when there is no such user or on error. */
int store_user_send_state(struct store_reader *r, int64_t user_id, struct store_send_state *st_r);
/* suspended: sets the flag, reason and time (now).  Not suspended: clears
 * them and starts the counters afresh (since = now).  STORE_ERR_NOT_FOUND.
 * The events are appended in the same transaction. */
void store_user_set_send_suspended(struct store *s, int64_t user_id, bool suspended,
				   const char *reason, const struct store_trace_event *events,
				   size_t n_events, struct loop *loop, store_done_cb *cb,
				   void *ctx);
/* What account sent, from the trace (events "accepted" and accepted "rcpt"
 * of sessions authenticated as account, served by the trace_account
 * index): messages since hour_since and since day_since, distinct
 * recipients since hour_since.  0, or -1 on error. */
struct store_account_activity {
	uint64_t messages_hour, messages_day, rcpts_hour;
};
int store_account_activity(struct store_reader *r, const char *account, time_t hour_since,
			   time_t day_since, struct store_account_activity *a_r);

#endif
