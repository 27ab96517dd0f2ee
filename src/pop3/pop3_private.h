/* The POP3 session's insides, shared by the files of src/pop3 only.
 *
 *   pop3_session.c   life cycle, input loop, command dispatch, replies, trace,
 *                    AUTHORIZATION (USER/PASS, AUTH PLAIN, STLS, CAPA)
 *   pop3_cmd.c       TRANSACTION: STAT LIST UIDL RETR TOP DELE RSET NOOP QUIT */
#ifndef KEEL_POP3_POP3_PRIVATE_H
#define KEEL_POP3_POP3_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pop3/pop3_session.h"
#include "proto/pop3_parser.h"
#include "store/store.h"
#include "trace/trace.h"

struct conn;
struct event;

enum pop3_state {
	POP3_STATE_AUTHORIZATION,
	POP3_STATE_SASL,        /* waiting for an AUTH response line */
	POP3_STATE_TRANSACTION,
	POP3_STATE_STREAM,      /* writing a RETR or TOP answer */
	POP3_STATE_WAIT,        /* a password check, a delayed failure, the expunge */
	POP3_STATE_QUIT,
};

/* One message of the maildrop as it was at login. */
struct pop3_msg {
	uint32_t uid;
	uint64_t size;
	int64_t blob_id;
	bool deleted;
};

/* A RETR or TOP answer in progress: the blob read in pieces, dot-stuffed
 * and given CRLF line ends on the way out. */
struct pop3_stream {
	struct store_blob_stream *blob;
	bool at_line_start, pending_cr, in_body;
	size_t line_len;
	long body_lines_left; /* TOP: lines of body still to send; -1: all */
};

struct pop3_session {
	const struct pop3_env *env;
	struct loop *loop;
	struct store_reader *reader;
	struct conn *conn;
	pop3_session_end_cb *end;
	void *owner;
	char id[24];
	char peer_ip[64];
	char hostname[256];
	enum pop3_state state;
	unsigned refs;
	bool closed;
	unsigned errors;
	struct event *delay;
	struct event *login_timer; /* pop3.timeout_login */
	bool login_expired;        /* it passed during a password check */
	bool ip_counted;           /* counted in pop3.max_connections_per_ip */

	char user[POP3_USERPASS_MAX + 1]; /* from USER */
	bool locked;
	int64_t user_id;
	char account[STORE_ADDR_MAX + 1];
	int64_t mailbox_id;
	uint32_t uidvalidity;
	struct pop3_msg *msgs;
	size_t n_msgs;
	struct pop3_stream stream;

	struct store_trace_event *events;
	size_t n_events, events_alloc;
};

/* pop3_session.c */
void pop3_ok(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An -ERR that counts toward pop3.max_errors. */
void pop3_err(struct pop3_session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pop3_enter_state(struct pop3_session *s, enum pop3_state state);
struct store_trace_event *pop3_trace(struct pop3_session *s, const char *event,
				     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pop3_trace_flush(struct pop3_session *s);
void pop3_ref(struct pop3_session *s);
bool pop3_unref(struct pop3_session *s);
void pop3_resume(struct pop3_session *s);
void pop3_close(struct pop3_session *s);

/* pop3_cmd.c */
void pop3_transaction(struct pop3_session *s, const struct pop3_command *cmd);
/* Writes more of a RETR/TOP answer while the output has room. */
void pop3_stream_pump(struct pop3_session *s);
void pop3_stream_end(struct pop3_session *s);

#endif
