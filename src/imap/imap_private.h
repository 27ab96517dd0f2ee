/* The IMAP session's insides, shared by the files of src/imap only.
 *
 *   imap_session.c       life cycle, input (parser feeding), command table,
 *                        tagged and untagged output, states, trace
 *   imap_cmd_auth.c      CAPABILITY NOOP LOGOUT STARTTLS LOGIN AUTHENTICATE
 *                        ENABLE ID NAMESPACE
 *   imap_cmd_mailbox.c   SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE
 *                        UNSUBSCRIBE LIST LSUB STATUS CLOSE UNSELECT CHECK
 *   imap_view.c          the selected mailbox as this session sees it, and
 *                        its updates (EXISTS, EXPUNGE, FETCH FLAGS)
 *   imap_cmd_fetch.c     FETCH, streamed
 *   imap_cmd_store.c     STORE EXPUNGE COPY MOVE
 *   imap_cmd_append.c    APPEND
 *   imap_cmd_idle.c      IDLE
 *   imap_cmd_search.c    SEARCH (and ESEARCH's RETURN)
 *   imap_cmd_quota.c     GETQUOTAROOT GETQUOTA SETQUOTA
 *   imap_cmd_sort.c      SORT
 *   imap_util.c          sets, flags, dates, strings on the wire
 *
 * A command handler either answers at once (imap_ok / imap_no / imap_bad)
 * or suspends the session (imap_suspend) and answers later from a callback,
 * then calls imap_resume.  While a command is in progress no further input
 * is read. */
#ifndef KEEL_IMAP_IMAP_PRIVATE_H
#define KEEL_IMAP_IMAP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "imap/imap_session.h"
#include "proto/imap_parser.h"
#include "store/store.h"
#include "trace/trace.h"

struct conn;
struct event;
struct imap_fetch;
struct imap_append;
struct imap_search_job;

#define IMAP_TAG_MAX 128
#define IMAP_LINE_MAX 8192 /* AUTHENTICATE responses, DONE */

enum imap_state {
	IMAP_STATE_NOT_AUTH,
	IMAP_STATE_AUTH,
	IMAP_STATE_SELECTED,
	IMAP_STATE_LOGOUT,
};

/* What the input is read as. */
enum imap_input {
	IMAP_INPUT_COMMAND,
	IMAP_INPUT_SASL, /* an AUTHENTICATE response line */
	IMAP_INPUT_IDLE, /* waiting for DONE */
};

/* Bits of imap_vmsg.flags (and imap_msg.flags) beyond enum store_flag. */
#define IMAP_MSG_RECENT  (1u << 16)
#define IMAP_MSG_FETCHED (1u << 17) /* the "fetched" trace event was written */
#define IMAP_MSG_SEEN_NOW (1u << 18) /* this FETCH set \Seen: FLAGS go with it */
#define IMAP_MSG_KEYWORDS (1u << 19) /* had keywords when last told */
#define IMAP_MSG_SESSION (IMAP_MSG_RECENT | IMAP_MSG_FETCHED | IMAP_MSG_SEEN_NOW)
#define IMAP_MSG_SYSTEM_FLAGS 0x1fu

/* One message of the selected mailbox as the view keeps it, in sequence
 * order: 8 bytes, so that a session idling in a 2,000-message folder
 * stays small (docs/imap.md, "Memory").  Everything else is read from the
 * store when a command needs it (imap_rows). */
struct imap_vmsg {
	uint32_t uid;
	uint32_t flags; /* enum store_flag bits as last told the client, IMAP_MSG_* */
};

/* One message as a command sees it: the store's row, with this session's
 * IMAP_MSG_* bits. */
struct imap_msg {
	uint32_t uid;
	uint32_t flags; /* the store's flags, IMAP_MSG_SESSION bits of the view */
	uint64_t modseq;
	uint64_t size;
	int64_t blob_id;
	time_t internaldate;
	const char *keywords; /* "" or a space-separated list */
};

struct imap_view {
	int64_t mailbox_id;
	char name[STORE_MAILBOX_MAX + 1];
	bool readonly;
	uint32_t uidvalidity;
	uint64_t highestmodseq; /* what this view has caught up with */
	struct imap_vmsg *msgs;
	size_t n, alloc;
	struct store_watch *watch;
	bool changed;              /* the notifier spoke since the last sync */
	uint32_t *expunged;        /* expunged, not yet announced (ascending) */
	size_t n_expunged;
	bool gone;                 /* the mailbox was deleted or renamed away */
};

struct imap_session;
typedef void imap_cmd_fn(struct imap_session *s, const struct imap_arg *args);

enum imap_cmd_flags {
	IMAP_CMD_UID = 1 << 0,        /* has a UID variant */
	IMAP_CMD_NO_EXPUNGE = 1 << 1, /* FETCH, STORE, SEARCH: EXPUNGE withheld */
};

struct imap_cmd_def {
	const char *name;
	unsigned states; /* 1 << enum imap_state */
	imap_cmd_fn *fn;
	unsigned flags;
};

struct imap_session {
	const struct imap_env *env;
	struct loop *loop;
	struct store_reader *reader;
	struct conn *conn;
	imap_session_end_cb *end;
	void *owner;
	char id[24];
	char peer_ip[64];
	char hostname[256];
	enum imap_state state;
	enum imap_input input;
	unsigned refs;
	bool closed;
	bool busy;       /* a command is in progress */
	bool processing; /* inside imap_process */
	unsigned errors;
	struct imap_parser *parser;
	struct event *delay;       /* a delayed login failure */
	struct event *login_timer; /* imap.timeout_login */
	bool ip_counted;           /* counted in imap.max_connections_per_ip */

	/* The command in progress. */
	char tag[IMAP_TAG_MAX];
	const struct imap_cmd_def *cmd;
	bool uid; /* the UID variant */
	void (*pump)(struct imap_session *s); /* produces a long answer */

	int64_t user_id;
	char account[STORE_ADDR_MAX + 1];
	bool condstore; /* enabled (RFC 7162 3.1) */
	bool qresync;   /* enabled (RFC 7162 3.2): VANISHED instead of EXPUNGE */
	bool rev2;      /* ENABLE IMAP4rev2 (RFC 9051): no \Recent, ESEARCH, UTF-8 names */
	struct imap_view view;
	struct imap_fetch *fetch;
	struct imap_append *append;
	struct imap_search_job *search;
	bool search_esearch;     /* SEARCH RETURN (...) given */
	unsigned search_return;  /* its options */
	int pending;    /* writes still to answer for this command */
	char *scratch;  /* per-command text of a suspended command */
	struct store_reply final; /* the deciding write's outcome (error copied) */
	char final_error[256];
	int64_t target_id; /* a mailbox the suspended command works on */

	struct store_trace_event *events;
	size_t n_events, events_alloc;
};

/* ---- imap_session.c ---------------------------------------------------- */
void imap_untagged(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The tagged answers end the command: before OK and NO the selected
 * mailbox's changes are announced.  BAD counts toward imap.max_errors. */
void imap_ok(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_no(struct imap_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void imap_bad(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The store's error mapped to a NO with a response code. */
void imap_no_store(struct imap_session *s, const struct store_reply *reply, const char *what);
void imap_enter_state(struct imap_session *s, enum imap_state state);
void imap_suspend(struct imap_session *s);
/* Reads input again (after an answer sent from a callback).  Returns false
 * if the session is gone. */
void imap_resume(struct imap_session *s);
void imap_ref(struct imap_session *s);
bool imap_unref(struct imap_session *s); /* false: closed or freed */
void imap_close(struct imap_session *s);
struct store_trace_event *imap_trace(struct imap_session *s, const char *event,
				     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void imap_trace_flush(struct imap_session *s);
/* The events gathered so far, handed to a store write: the caller passes
 * s->events and s->n_events, then calls this. */
void imap_trace_taken(struct imap_session *s);
void imap_write(struct imap_session *s, const void *data, size_t len);
void imap_printf(struct imap_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
size_t imap_output_pending(struct imap_session *s);
/* The logged-in user's reader-side helpers. */
bool imap_tls(const struct imap_session *s);

/* A store write on behalf of the command in progress: the session is
 * referenced until the reply, then fn runs (unless the session closed) and
 * input resumes if fn ended the command. */
typedef void imap_reply_fn(struct imap_session *s, const struct store_reply *reply);
void *imap_call(struct imap_session *s, imap_reply_fn *fn);
store_done_cb imap_call_done;
/* Copies reply into s->final (status, err, id, error text). */
void imap_final_set(struct imap_session *s, const struct store_reply *reply);

/* ---- imap_cmd_auth.c --------------------------------------------------- */
imap_cmd_fn imap_cmd_capability, imap_cmd_noop, imap_cmd_logout, imap_cmd_starttls,
	imap_cmd_login, imap_cmd_authenticate, imap_cmd_enable, imap_cmd_id, imap_cmd_namespace;
void imap_sasl_line(struct imap_session *s, const char *line, size_t len);
void imap_capabilities(struct imap_session *s, char *buf, size_t size);

/* ---- imap_cmd_mailbox.c ------------------------------------------------ */
imap_cmd_fn imap_cmd_select, imap_cmd_examine, imap_cmd_create, imap_cmd_delete,
	imap_cmd_rename, imap_cmd_subscribe, imap_cmd_unsubscribe, imap_cmd_list, imap_cmd_lsub,
	imap_cmd_status, imap_cmd_close, imap_cmd_unselect, imap_cmd_check;
/* The name a client gave, "inbox" in any case as "INBOX", a trailing "/"
 * removed, modified UTF-7 decoded in an IMAP4rev1 session; -1 for a name
 * that cannot be a mailbox. */
int imap_mailbox_name(struct imap_session *s, const struct imap_arg *arg, char *buf,
		      size_t size);

/* ---- imap_view.c ------------------------------------------------------- */
/* Opens the view (watch first, then read): 0, or -1 if the mailbox is gone. */
int imap_view_open(struct imap_session *s, const struct store_mailbox *m, bool readonly,
		   uint32_t *recent_r);
void imap_view_close(struct imap_session *s);
/* Announces what changed since the last sync: FETCH (FLAGS) for flag
 * changes (not for the uids in skip, sorted, which the caller reports),
 * EXPUNGE when allowed, EXISTS / RECENT for new messages. */
void imap_view_sync(struct imap_session *s, bool allow_expunge, const uint32_t *skip,
		    size_t n_skip);
/* QRESYNC: "* VANISHED (EARLIER) set" for the uids expunged since modseq
 * that are in known (NULL: any). */
void imap_view_vanished_earlier(struct imap_session *s, uint64_t modseq,
				const struct imap_arg *known);
/* Index of uid in the view, or -1. */
long imap_view_find(const struct imap_view *v, uint32_t uid);
/* The messages a set names: a sorted array of indexes (free()), for a
 * sequence set or (uid) a uid set.  "*" of an empty mailbox names none. */
int imap_view_resolve(const struct imap_view *v, const struct imap_arg *arg, bool uid,
		      size_t **idx_r, size_t *n_r, const char **error_r);
/* "FLAGS (...)" of a message. */
void imap_write_flags(struct imap_session *s, const struct imap_msg *m);

/* Reading the messages a command walks from the store, a page at a time:
 * positions 0..n-1 of idx (sorted view indexes; NULL: the whole view).
 * The rows of one page are held, never the whole set. */
struct imap_rows {
	const size_t *idx;
	size_t n;
	size_t first, count;        /* the page held: positions [first, first + count) */
	struct store_message *rows; /* one per position of the page; uid 0: gone */
	size_t alloc;               /* rows' size: a one-message FETCH holds one */
	struct imap_msg m;
	bool failed;                /* a read failed (not: a message was expunged) */
};
void imap_rows_init(struct imap_rows *c, const size_t *idx, size_t n);
void imap_rows_free(struct imap_rows *c);
/* The message at position pos (valid until the next call), or NULL when it
 * is no longer in the store (expunged, not yet announced) or could not be
 * read (c->failed). */
const struct imap_msg *imap_rows_get(struct imap_session *s, struct imap_rows *c, size_t pos);

/* ---- imap_cmd_fetch.c / store / append / idle / search --------------- */
imap_cmd_fn imap_cmd_fetch, imap_cmd_store, imap_cmd_expunge, imap_cmd_copy, imap_cmd_move,
	imap_cmd_append, imap_cmd_idle, imap_cmd_search, imap_cmd_getquotaroot,
	imap_cmd_getquota, imap_cmd_setquota;
void imap_fetch_free(struct imap_fetch **fetch);
void imap_append_free(struct imap_append **append);
void imap_idle_line(struct imap_session *s, const char *line, size_t len);
/* The literal callbacks for APPEND's message. */
imap_literal_begin_cb imap_append_literal_begin;
imap_literal_data_cb imap_append_literal_data;

/* imap_cmd_search.c: the messages matching search criteria a (to EOL),
 * as sorted view indexes, handed to done (which answers the command).
 * Returns -1 (BAD: *error_r) or -2 (NO: *error_r, e.g. [BADCHARSET])
 * before anything ran, or 0: done has run, or the search suspended the
 * session and done runs later from the loop.  CHARSET is read first if
 * allowed.  done must not keep r->idx. */
struct imap_search_result {
	size_t *idx, n;
	uint64_t max_modseq;
	bool modseq_key;
};
typedef void imap_search_done_fn(struct imap_session *s, struct imap_search_result *r);
int imap_search_start(struct imap_session *s, const struct imap_arg *a, bool charset_allowed,
		      imap_search_done_fn *done, const char **error_r);
void imap_search_free(struct imap_search_job **job);
imap_cmd_fn imap_cmd_sort;

/* ---- imap_util.c ------------------------------------------------------- */
/* A string on the wire: quoted when it can be, else a literal. */
void imap_write_astring(struct imap_session *s, const char *str, size_t len);
void imap_write_nstring(struct imap_session *s, const char *str, size_t len);
/* Flags from a list or one atom: system flags and keywords ("a b").  -1 with
 * *error_r for \Recent, an unknown "\" flag or a bad keyword. */
int imap_flags_parse(const struct imap_arg *arg, uint32_t *flags_r, char *keywords,
		     size_t size, const char **error_r);
/* "17-Jul-1996 02:44:25 -0700" either way. */
int imap_date_time_parse(const char *str, time_t *t_r);
void imap_date_time_format(time_t t, char *buf, size_t size);
int imap_date_parse(const char *str, time_t *t_r); /* "1-Feb-1994" (UTC midnight) */
/* uids as a compact uid-set ("1:3,7"), malloc'd. */
char *imap_uidset_format(const uint32_t *uids, size_t n);
/* An astring argument's text (atom, number, string, literal), or NULL. */
const char *imap_arg_string(const struct imap_arg *arg, size_t *len_r);
/* Case-insensitive substring search. */
bool imap_memcasemem(const char *hay, size_t hay_len, const char *needle, size_t needle_len);
int imap_uid_cmp(const void *a, const void *b);
/* Mailbox names on the wire.  Stored names are UTF-8; an IMAP4rev1
 * session sees them in modified UTF-7 (RFC 3501 5.1.3), an IMAP4rev2 one
 * as UTF-8 (RFC 9051 5.1).  Both return 0, or -1 for input that is not
 * valid (bad UTF-8; a "&" run that is not canonical modified UTF-7) or a
 * result over size octets with its NUL. */
int imap_mutf7_encode(const char *utf8, char *out, size_t size);
int imap_mutf7_decode(const char *in, size_t len, char *out, size_t size);
/* A stored name as the session sees it, as an astring. */
void imap_write_mailbox(struct imap_session *s, const char *name);

#endif
