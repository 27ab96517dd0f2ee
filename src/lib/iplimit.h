/* Concurrent connections per client address, shared by every loop.  The
 * worker makes one table for all services: SMTP keys its entries by the
 * bare IP, the others "SERVICE:IP" ("imap:192.0.2.1"). */
#ifndef KEEL_LIB_IPLIMIT_H
#define KEEL_LIB_IPLIMIT_H

struct iplimit;

struct iplimit *iplimit_new(void);
void iplimit_free(struct iplimit **l);
/* Counts one more connection from ip unless it already has max (max 0: no
 * limit).  Returns 0 when counted, -1 when refused (nothing counted). */
int iplimit_acquire(struct iplimit *l, const char *ip, unsigned max);
/* Releases one counted connection. */
void iplimit_release(struct iplimit *l, const char *ip);
unsigned iplimit_count(struct iplimit *l, const char *ip);

#endif
