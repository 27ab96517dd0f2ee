/* Delivery status notifications: when to send one (RFC 3461) and the
 * message itself, a multipart/report (RFC 6522) of report-type
 * delivery-status (RFC 3464), marked Auto-Submitted: auto-replied
 * (RFC 3834).
 *
 * Nothing here does I/O or keeps state: the queue decides, builds the
 * message with dsn_build() and hands it to the pipeline like any other
 * message, from the null reverse-path "<>" (which is what stops a DSN about
 * a DSN).  Every function is safe on any thread.
 *
 * Strings given in are NUL-terminated and need not be trusted: diagnostics
 * come from remote servers.  Control octets (CR and LF included) never
 * reach the result as such, so no input can start a header line or a MIME
 * part of its own. */
#ifndef KEEL_MAIL_DSN_H
#define KEEL_MAIL_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* NOTIFY= of RCPT TO (RFC 3461 §4.1).  The SMTP parser uses the same bits;
 * 0 means the parameter was absent. */
enum dsn_notify {
	DSN_NOTIFY_NEVER = 1,
	DSN_NOTIFY_SUCCESS = 2,
	DSN_NOTIFY_FAILURE = 4,
	DSN_NOTIFY_DELAY = 8,
};

/* Action field values (RFC 3464 §2.3.3). */
enum dsn_action {
	DSN_ACTION_FAILED,
	DSN_ACTION_DELAYED,
	DSN_ACTION_DELIVERED,
	DSN_ACTION_RELAYED,  /* passed to a system that does not do DSNs */
	DSN_ACTION_EXPANDED, /* delivered to an alias or list, which forwarded it */
};

/* RET= of MAIL FROM (RFC 3461 §4.3): what of the original to return. */
enum dsn_ret {
	DSN_RET_DEFAULT, /* absent: in full for a failure, headers only otherwise */
	DSN_RET_FULL,
	DSN_RET_HDRS,
};

struct dsn_rcpt {
	const char *final_rcpt; /* "user@example.test" as delivery was tried */
	/* ORCPT= (RFC 3461 §4.2), decoded from xtext: its address type
	 * ("rfc822", "utf-8") and address.  type NULL: no Original-Recipient. */
	const char *orcpt_type;
	const char *orcpt;
	enum dsn_action action;
	const char *status; /* "5.2.2": class 2, 4 or 5, then 1-3 digits twice */
	/* Optional (NULL).  Without a "type;" in front, "dns; " / "smtp; " is
	 * added: "mx.example.com" and "552 5.2.2 Mailbox full" are fine. */
	const char *remote_mta;
	const char *diagnostic;
	time_t last_attempt; /* 0: not given */
	time_t retry_until;  /* 0: not given; used with DSN_ACTION_DELAYED only */
};

struct dsn {
	const char *reporting_mta; /* our host name: Reporting-MTA, From, Message-ID */
	/* The original envelope sender, where the DSN goes: "local@domain"
	 * without angle brackets, as address_format() writes it. */
	const char *sender;
	const char *envid;             /* ENVID= (decoded), or NULL */
	const char *received_from_mta; /* "dns; helo-name" (or just the name), or NULL */
	time_t arrival;                /* when the original arrived; 0: not given */
	time_t date;                   /* the DSN's Date; 0: now */
	enum dsn_ret ret;
	/* Past this many octets the original is returned as headers only
	 * whatever ret says (0: no limit), as bounce_size_limit does. */
	size_t full_max;
	const char *msg; /* the original message, msg_len octets; NULL/0: not attached */
	size_t msg_len;
	const struct dsn_rcpt *rcpts; /* at least one */
	size_t rcpt_count;
};

/* Whether a DSN with this action should go to sender for a recipient whose
 * NOTIFY= was notify (enum dsn_notify bits, 0 when absent).  Never to the
 * null sender ("" or "<>" or NULL), never with NEVER; without NOTIFY= for
 * failures and delays; otherwise as listed (relayed and expanded count as
 * SUCCESS). */
bool dsn_should_send(const char *sender, unsigned notify, enum dsn_action action);

/* Builds a complete DSN message: header (From MAILER-DAEMON@reporting_mta,
 * To the sender, Subject by the gravest action present, Date, a new
 * Message-ID, Auto-Submitted, MIME), then three parts: a text/plain
 * explanation (UTF-8), the message/delivery-status report, and the original
 * (message/rfc822 in full, text/rfc822-headers for its header section; the
 * RFC 6532 types message/global and message/global-headers when its header
 * section holds 8-bit octets).  The original is returned in full when ret
 * is FULL, or DEFAULT and some recipient failed; see also full_max.
 *
 * All line ends are CRLF (bare CRs and LFs in the original become CRLF);
 * header lines are folded to 78 columns where there is a space and never
 * pass 998 octets (a run of more than 900 octets without a space is broken
 * with a fold, which adds a space).  Values are cut at 2000 octets.
 * Addresses that are not printable ASCII are written in the delivery-status
 * part as RFC 6533 "utf-8" addresses (\x{HEX} escapes), so that part stays
 * 7-bit.  A part holding 8-bit octets is marked Content-Transfer-Encoding:
 * 8bit, and so is the whole; such a message needs BODY=8BITMIME (and
 * SMTPUTF8 for an internationalized original) to be relayed.
 *
 * On success *msg_r is a NUL-terminated string of *len_r octets, freed by
 * the caller with free().  Returns -1 with a static *error_r when the input
 * is unusable (null or invalid sender, invalid host name, no recipients, a
 * bad status code) or no randomness is available. */
int dsn_build(const struct dsn *d, char **msg_r, size_t *len_r, const char **error_r);

#endif
