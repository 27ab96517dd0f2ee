/* POP-before-SMTP: a successful POP3 or IMAP login from an IP opens a
 * relay window for that IP on the smtp service for a while
 * (relay.pop_before_smtp_minutes; 0 = off).  In memory, shared by every
 * loop; bounded (a fixed number of slots, the oldest window gives way). */
#ifndef KEEL_AUTH_RELAY_WINDOW_H
#define KEEL_AUTH_RELAY_WINDOW_H

#include <stdbool.h>
#include <time.h>

#define RELAY_WINDOW_SLOTS 4096

struct relay_window;

struct relay_window *relay_window_new(void);
void relay_window_free(struct relay_window **w);
/* Opens (or extends) the window for ip until now + seconds. */
void relay_window_open(struct relay_window *w, const char *ip, time_t now, unsigned seconds);
/* Whether ip may relay at now; *until_r (if not NULL) says until when. */
bool relay_window_check(struct relay_window *w, const char *ip, time_t now, time_t *until_r);

#endif
