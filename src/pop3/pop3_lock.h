/* One POP3 session per maildrop (RFC 1939 8: the exclusive-access lock),
 * across every loop of the worker. */
#ifndef KEEL_POP3_POP3_LOCK_H
#define KEEL_POP3_POP3_LOCK_H

#include <stdint.h>

struct pop3_locks;

struct pop3_locks *pop3_locks_new(void);
void pop3_locks_free(struct pop3_locks **locks);
/* 0 when user_id's maildrop was free and is now held; -1 when held. */
int pop3_lock_take(struct pop3_locks *locks, int64_t user_id);
void pop3_lock_release(struct pop3_locks *locks, int64_t user_id);

#endif
