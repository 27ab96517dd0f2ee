/* The outbreak brake (docs/abuse.md, "The outbreak brake"): per
 * authenticated account, messages per hour and per day and distinct
 * recipients per hour (abuse.account_messages_per_hour,
 * abuse.account_messages_per_day, abuse.account_recipients_per_hour; 0
 * turns one off).
 *
 * The counts come from the store (store_account_activity: the trace's
 * "accepted" and accepted "rcpt" events of the account's sessions, on an
 * index), so they survive a worker restart and count every loop; they
 * start afresh at `keelctl user unsuspend`.  At trace.level = off, which
 * keeps no event, they come from counters in memory instead (per worker,
 * fixed windows, recipients not told apart: abuse_accepted).  A message counts once it is
 * durable: sessions submitting in parallel can each pass the check before
 * the others' messages are counted, so a limit may be passed by the number
 * of sessions at once.
 *
 * When an account crosses a limit, the brake, once (an in-memory note per
 * worker keeps it from firing again until unsuspend): holds the account's
 * queued outbound mail (store_queue_change HOLD, filter auth_user), with
 * abuse.auto_suspend suspends its right to send (users.send_suspended),
 * and sends the user and postmaster@ its domain a local notice.  Every
 * decision is a trace event (event "abuse"). */
#ifndef KEEL_ACCESS_ABUSE_H
#define KEEL_ACCESS_ABUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct loop;
struct pipeline;

/* Who submits, and the services the brake uses; on loop's thread, whose
 * store reader is reader. */
struct abuse_sender {
	struct store *store;
	struct store_reader *reader;
	struct pipeline *pipeline;
	struct loop *loop;
	const char *hostname; /* for the notices' Message-ID */
	int64_t user_id;
	const char *account;
	const char *client_ip;
	const char *session;
	const char *protocol;
};

struct abuse_refusal {
	unsigned code;       /* 451 over a limit, 550 suspended */
	char enhanced[8];
	char text[512];      /* names the limit or the suspension */
};

/* What the check at MAIL read (the account's state and its activity),
 * kept by the session for the transaction's RCPTs: the store is asked once
 * per transaction, not once per recipient. */
struct abuse_seen {
	bool valid;
	bool counted; /* some limit was on: a was read */
	struct store_account_activity a;
};

/* At MAIL (rcpts 0) or before accepting a recipient (rcpts: how many the
 * transaction will then have): 0 to go on, or -1 with *r filled (and the
 * brake pulled if this is the account's first crossing).  A store read
 * error lets the message go (logged).  seen (NULL: none) is filled at MAIL
 * and used at RCPT: a recipient is checked against the activity as it was
 * at MAIL plus the transaction's own recipients. */
int abuse_check(const struct abuse_sender *s, size_t rcpts, struct abuse_seen *seen,
		struct abuse_refusal *r);

/* After a message of the account (to rcpts recipients) is durable: counts
 * it in memory (used at trace.level = off), and when the brake fired for
 * the account (and was not lifted), holds its queued outbound mail again,
 * which catches the messages of sessions that passed their check before
 * the brake and were stored after its hold. */
void abuse_accepted(const struct abuse_sender *s, size_t rcpts);

/* Forgets that the brake fired for user_id (user unsuspend). */
void abuse_forget(int64_t user_id);

#endif
