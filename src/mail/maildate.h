/* Dates and identifiers for messages Keel writes: the Date field, the
 * Message-ID of generated mail (DSNs, auto-replies), the queue id of logs
 * and trace, and the random hex they are made from.
 *
 * Every function is thread-safe.  Randomness comes from getrandom(2); it
 * can only fail on a kernel without it, and then the function returns -1
 * rather than produce a guessable value. */
#ifndef KEEL_MAIL_MAILDATE_H
#define KEEL_MAIL_MAILDATE_H

#include <stddef.h>
#include <time.h>

/* Room for any of the strings below (hostname aside). */
#define MAIL_DATE_MAX     40 /* "Sun, 22 Nov 2026 02:13:00 +0000" and then some */
#define MAIL_QUEUE_ID_LEN 16

/* Writes t as an RFC 5322 date-time in local time with a numeric zone:
 * "Sun, 22 Nov 2026 02:13:00 +0100".  Day and month names are English
 * whatever the locale.  Returns 0, or -1 (buf = "" when size > 0) if size
 * is too small (MAIL_DATE_MAX always suffices) or t cannot be converted. */
int mail_date_format(time_t t, char *buf, size_t size);

/* Writes a new msg-id "<RANDOM.UNIXTIME@hostname>", RANDOM being 128 random
 * bits in lower-case hex.  hostname must be a valid domain (as
 * address_domain_valid() says, ASCII), so that the result is a valid
 * msg-id.  Returns 0, or -1 (buf = "" when size > 0) for a bad hostname, a
 * buffer too small (strlen(hostname) + 48 suffice) or no randomness. */
int mail_message_id_generate(const char *hostname, char *buf, size_t size);

/* Writes a new queue id: MAIL_QUEUE_ID_LEN upper-case hex digits, the
 * first 8 the time in seconds (so ids sort by time of creation), the last 8
 * a per-process counter started at a random value (redrawn in a forked
 * child).  Within a process ids never repeat (short of 2^32 ids in one
 * second); two processes collide only if their counters, drawn
 * independently, land within the number of ids made in the same second of
 * each other (about n/2^31 for n ids a second).  Returns 0, or -1 (buf = ""
 * when size > 0) if size < MAIL_QUEUE_ID_LEN + 1 or there is no randomness. */
int mail_queue_id_generate(char *buf, size_t size);

/* Fills buf with size - 1 random lower-case hex digits and a NUL (4 random
 * bits a digit).  Returns 0, or -1 (buf = "" when size > 0) without
 * randomness. */
int mail_random_hex(char *buf, size_t size);

#endif
