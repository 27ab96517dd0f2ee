#include "access/clientlimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define CLIENTLIMIT_BUCKETS 4096

struct clientlimit_entry {
	struct clientlimit_entry *next;
	time_t msg_start, unknown_start, blocked_until;
	unsigned msgs, unknowns;
	char ip[64];
};

/* One table per process: the limits are per worker (see the header). */
static pthread_mutex_t clientlimit_lock = PTHREAD_MUTEX_INITIALIZER;
static struct clientlimit_entry *clientlimit_buckets[CLIENTLIMIT_BUCKETS];
static size_t clientlimit_n;

static uint32_t clientlimit_hash(const char *ip)
{
	uint32_t h = 2166136261u;

	for (const char *p = ip; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	return h % CLIENTLIMIT_BUCKETS;
}

static bool clientlimit_idle(const struct clientlimit_entry *e, time_t now)
{
	return now - e->msg_start >= CLIENTLIMIT_WINDOW &&
	       now - e->unknown_start >= CLIENTLIMIT_WINDOW && e->blocked_until <= now;
}

/* Drops every entry with nothing left to remember. */
static void clientlimit_sweep(time_t now)
{
	for (size_t i = 0; i < CLIENTLIMIT_BUCKETS; i++) {
		struct clientlimit_entry **p = &clientlimit_buckets[i];
		while (*p != NULL) {
			if (clientlimit_idle(*p, now)) {
				struct clientlimit_entry *gone = *p;
				*p = gone->next;
				free(gone);
				clientlimit_n--;
			} else {
				p = &(*p)->next;
			}
		}
	}
}

/* The entry for ip, made if create; NULL when absent or the table is full.
 * Called with the lock held. */
static struct clientlimit_entry *clientlimit_get(const char *ip, bool create, time_t now)
{
	uint32_t h = clientlimit_hash(ip);
	struct clientlimit_entry *e;

	for (e = clientlimit_buckets[h]; e != NULL; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	if (!create)
		return NULL;
	if (clientlimit_n >= CLIENTLIMIT_MAX) {
		clientlimit_sweep(now);
		if (clientlimit_n >= CLIENTLIMIT_MAX) {
			log_error("access", "event=clientlimit_full ip=%s max=%d", ip,
				  CLIENTLIMIT_MAX);
			return NULL;
		}
	}
	e = xcalloc(1, sizeof(*e));
	snprintf(e->ip, sizeof(e->ip), "%s", ip);
	e->next = clientlimit_buckets[h];
	clientlimit_buckets[h] = e;
	clientlimit_n++;
	return e;
}

bool clientlimit_blocked(const char *ip, time_t now, time_t *until_r)
{
	struct clientlimit_entry *e;
	bool blocked = false;

	pthread_mutex_lock(&clientlimit_lock);
	e = clientlimit_get(ip, false, now);
	if (e != NULL && e->blocked_until > now) {
		blocked = true;
		*until_r = e->blocked_until;
	}
	pthread_mutex_unlock(&clientlimit_lock);
	return blocked;
}

bool clientlimit_messages_over(const char *ip, unsigned max, time_t now)
{
	struct clientlimit_entry *e;
	bool over = false;

	if (max == 0)
		return false;
	pthread_mutex_lock(&clientlimit_lock);
	e = clientlimit_get(ip, false, now);
	if (e != NULL && now - e->msg_start < CLIENTLIMIT_WINDOW && e->msgs >= max)
		over = true;
	pthread_mutex_unlock(&clientlimit_lock);
	return over;
}

void clientlimit_message_count(const char *ip, time_t now)
{
	struct clientlimit_entry *e;

	pthread_mutex_lock(&clientlimit_lock);
	if ((e = clientlimit_get(ip, true, now)) != NULL) {
		if (now - e->msg_start >= CLIENTLIMIT_WINDOW) {
			e->msg_start = now;
			e->msgs = 0;
		}
		e->msgs++;
	}
	pthread_mutex_unlock(&clientlimit_lock);
}

bool clientlimit_unknown_rcpt(const char *ip, unsigned max, time_t block_time, time_t now)
{
	struct clientlimit_entry *e;
	bool blocked = false;

	pthread_mutex_lock(&clientlimit_lock);
	if ((e = clientlimit_get(ip, true, now)) != NULL) {
		if (now - e->unknown_start >= CLIENTLIMIT_WINDOW) {
			e->unknown_start = now;
			e->unknowns = 0;
		}
		e->unknowns++;
		if (max > 0 && e->unknowns >= max) {
			/* The block starts a new count: after it, max more. */
			e->blocked_until = now + block_time;
			e->unknowns = 0;
			blocked = true;
		}
	}
	pthread_mutex_unlock(&clientlimit_lock);
	return blocked;
}

void clientlimit_reset(void)
{
	pthread_mutex_lock(&clientlimit_lock);
	clientlimit_sweep(INT64_MAX / 2);
	pthread_mutex_unlock(&clientlimit_lock);
}
