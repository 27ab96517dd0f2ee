/* The SMTP session's insides, shared by the files of src/smtp only.
 *
 *   smtp_session.c   life cycle, input loop, command table, replies, trace
 *   smtp_cmd.c       EHLO HELO MAIL RCPT RSET NOOP VRFY EXPN HELP QUIT STARTTLS
 *   smtp_auth.c      AUTH PLAIN and LOGIN
 *   smtp_body.c      DATA and BDAT, the Received header, hand-off to the pipeline */
#ifndef KEEL_SMTP_SMTP_PRIVATE_H
#define KEEL_SMTP_SMTP_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/abuse.h"
#include "pipeline/pipeline.h"
#include "proto/smtp_parser.h"
#include "smtp/smtp_session.h"
#include "store/store.h"

struct conn;
struct event;
struct smtp_data;

/* RFC 5321 4.5.3.1.4; RFC 3461 adds 100 octets for ENVID and 500 for
 * ORCPT; RFC 4954 4 allows AUTH lines of 12288 octets. */
#define SMTP_LINE_MAX 512
#define SMTP_LINE_MAX_MAIL (SMTP_LINE_MAX + 100)
#define SMTP_LINE_MAX_RCPT (SMTP_LINE_MAX + 500)
#define SMTP_LINE_MAX_AUTH 12288

enum smtp_state {
	SMTP_STATE_HELO,  /* connected, no EHLO/HELO yet */
	SMTP_STATE_READY, /* greeted, no transaction */
	SMTP_STATE_MAIL,  /* MAIL accepted, no recipient yet */
	SMTP_STATE_RCPT,  /* at least one recipient accepted */
	SMTP_STATE_DATA,  /* reading DATA up to <CRLF>.<CRLF> */
	SMTP_STATE_BDAT,  /* reading a BDAT chunk */
	SMTP_STATE_AUTH,  /* in a SASL exchange */
	SMTP_STATE_WAIT,  /* waiting for the store, a password check or a delay */
	SMTP_STATE_QUIT,  /* closing */
};

#define SMTP_S(state) (1u << (state))

struct smtp_auth_exchange {
	char mechanism[SMTP_AUTH_MECH_MAX + 1];
	unsigned step;
	char username[STORE_ADDR_MAX + 1];
};

struct smtp_session {
	const struct smtp_env *env;
	enum smtp_service service;
	struct loop *loop;
	struct store_reader *reader;
	struct conn *conn;
	smtp_session_end_cb *end;
	void *owner;
	char id[24];
	char peer_ip[64];
	char hostname[256];
	bool counted; /* in the per-IP connection count */

	enum smtp_state state;
	unsigned refs;   /* the session and each pending callback */
	bool closed;     /* the connection is gone */
	unsigned errors;

	char helo[SMTP_HELO_MAX + 1];
	bool esmtp;
	bool authenticated;
	struct abuse_seen brake_seen; /* the outbreak brake's read at MAIL */
	int64_t auth_user_id;
	char auth_user[STORE_ADDR_MAX + 1];
	struct smtp_auth_exchange auth;
	struct event *delay; /* a throttled failure reply */

	/* The transaction. */
	char sender[STORE_ADDR_MAX + 1]; /* "" for <> */
	struct smtp_mail_params mail;
	struct pipeline_rcpt *rcpts;
	size_t n_rcpts, rcpts_alloc;
	struct pipeline_target *targets;
	size_t n_targets, targets_alloc;
	char queue_id[64];

	/* The message being received. */
	struct smtp_data *reader_data;
	char *body;
	size_t body_len, body_alloc;
	uint64_t max_size;
	bool bdat_used, bdat_last, bdat_refused, bdat_too_big;
	enum smtp_state bdat_prev; /* where a refused chunk returns to */
	uint64_t bdat_left;

	/* Trace events not yet committed. */
	struct store_trace_event *events;
	size_t n_events, events_alloc;

	/* Access checks (smtp_access.c). */
	struct dnsbl_check *access_check; /* a DNS check under way (holds a ref) */
	char dnsbl_marks[512];            /* mark zones listing the client */
	bool limits_exempt;               /* in limits.exempt_group */
};

/* smtp_session.c */
void smtp_reply(struct smtp_session *s, unsigned code, const char *enhanced, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
/* A 4xx/5xx reply that counts toward smtp.max_errors. */
void smtp_error(struct smtp_session *s, unsigned code, const char *enhanced, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
void smtp_enter_state(struct smtp_session *s, enum smtp_state state);
void smtp_transaction_reset(struct smtp_session *s);
/* Appends a trace event with the session's fields filled in. */
void smtp_trace(struct smtp_session *s, const char *event, const char *rcpt, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
void smtp_trace_flush(struct smtp_session *s);
/* Takes a reference for a pending callback; smtp_unref() in the callback
 * returns false when the session is gone and must not be touched. */
void smtp_ref(struct smtp_session *s);
/* Clears the SASL exchange (it may hold a user name). */
void smtp_auth_wipe(struct smtp_session *s);
bool smtp_unref(struct smtp_session *s);
/* Resumes reading pipelined input after a wait. */
void smtp_resume(struct smtp_session *s);
void smtp_close(struct smtp_session *s);
const char *smtp_protocol_name(const struct smtp_session *s);

/* smtp_cmd.c */
void smtp_cmd_ehlo(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_helo(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_mail(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_rset(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_noop(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_expn(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_help(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_quit(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_starttls(struct smtp_session *s, const struct smtp_command *cmd);

/* smtp_auth.c */
void smtp_cmd_auth(struct smtp_session *s, const struct smtp_command *cmd);
/* A line of the SASL exchange (state SMTP_STATE_AUTH). */
void smtp_auth_line(struct smtp_session *s, const char *line, size_t len);
bool smtp_auth_offered(const struct smtp_session *s);

/* smtp_cmd.c: the end of a MAIL command that passed its checks. */
void smtp_mail_accept(struct smtp_session *s);

/* smtp_access.c.  Each bool function returns false after refusing (reply
 * sent) unless said otherwise. */
struct directory_result;
/* At connect, before the greeting: true when the greeting is not to be
 * sent now (a DNS blacklist check is under way and will send it, or the
 * client was refused and the session closed). */
bool smtp_access_connect(struct smtp_session *s);
/* Cancels a DNS check under way (shutdown). */
void smtp_access_cancel(struct smtp_session *s);
bool smtp_access_mail(struct smtp_session *s);
/* After the sender is set: true when a sender domain check is under way;
 * it then ends the command (smtp_mail_accept or a refusal) and resumes. */
bool smtp_access_sender(struct smtp_session *s);
bool smtp_access_rcpt(struct smtp_session *s);
/* A recipient the directory rejected: true when it makes the client cross
 * limits.unknown_recipients (then answered 421 and closed). */
bool smtp_access_rcpt_unknown(struct smtp_session *s, const char *address,
			      const struct directory_result *res);
void smtp_access_accepted(struct smtp_session *s);
/* Appends the session's own headers (X-Keel-DNSBL) to received (malloc'd,
 * taken over); returns the new text and its length. */
char *smtp_access_headers(struct smtp_session *s, char *received, size_t *len_r);

/* smtp_body.c */
void smtp_cmd_data(struct smtp_session *s, const struct smtp_command *cmd);
void smtp_cmd_bdat(struct smtp_session *s, const struct smtp_command *cmd);
/* Consumes buffered input in the DATA or BDAT state; false when it needs
 * more. */
bool smtp_body_input(struct smtp_session *s);
void smtp_body_free(struct smtp_session *s);

#endif
