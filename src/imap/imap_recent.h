/* \Recent (RFC 3501 2.3.2) across every session of the worker: a message is
 * recent for the first session that selects its mailbox read-write after it
 * arrived.  The table keeps, per mailbox, the first uid no session has
 * claimed yet; it lives in memory only, so after a restart every message
 * counts as not yet claimed (recent once more for the next SELECT).
 * Thread-safe. */
#ifndef KEEL_IMAP_IMAP_RECENT_H
#define KEEL_IMAP_IMAP_RECENT_H

#include <stdint.h>

struct imap_recent;

struct imap_recent *imap_recent_new(void);
void imap_recent_free(struct imap_recent **recent);
/* Claims every uid below next_uid of mailbox_id: returns the first uid that
 * was still unclaimed (uids from it up to next_uid - 1 are recent for the
 * caller), and raises the mark to next_uid. */
uint32_t imap_recent_claim(struct imap_recent *recent, int64_t mailbox_id, uint32_t next_uid);
/* The first unclaimed uid, without claiming (EXAMINE, STATUS). */
uint32_t imap_recent_peek(struct imap_recent *recent, int64_t mailbox_id);
/* Forgets a deleted mailbox. */
void imap_recent_forget(struct imap_recent *recent, int64_t mailbox_id);

#endif
