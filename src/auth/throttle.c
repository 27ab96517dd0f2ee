#include "auth/throttle.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lib/xalloc.h"

struct throttle_slot {
	char key[330]; /* "ip:..." or "acct:..." */
	unsigned fails;
	time_t last;
};

struct auth_throttle {
	pthread_mutex_t lock;
	struct throttle_slot slots[AUTH_THROTTLE_SLOTS];
};

#define THROTTLE_PROBE 8

struct auth_throttle *auth_throttle_new(void)
{
	struct auth_throttle *t = xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void auth_throttle_free(struct auth_throttle **tp)
{
	if (*tp == NULL)
		return;
	pthread_mutex_destroy(&(*tp)->lock);
	free(*tp);
	*tp = NULL;
}

static uint32_t throttle_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The slot for key: its own, else a free or stale one among the probed,
 * else the stalest of them (bounded memory beats exact memory). */
static struct throttle_slot *throttle_slot(struct auth_throttle *t, const char *key, time_t now)
{
	uint32_t h = throttle_hash(key);
	struct throttle_slot *victim = NULL;

	for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
		struct throttle_slot *s = &t->slots[(h + i) % AUTH_THROTTLE_SLOTS];
		if (strcmp(s->key, key) == 0) {
			if (now - s->last > AUTH_THROTTLE_FORGET)
				s->fails = 0;
			return s;
		}
		if (victim == NULL || s->key[0] == '\0' || s->last < victim->last)
			victim = s;
	}
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	victim->fails = 0;
	victim->last = now;
	return victim;
}

static unsigned throttle_bump(struct auth_throttle *t, const char *prefix, const char *what,
			      time_t now)
{
	char key[330];
	struct throttle_slot *s;

	snprintf(key, sizeof(key), "%s%s", prefix, what);
	s = throttle_slot(t, key, now);
	s->fails++;
	s->last = now;
	return s->fails;
}

unsigned auth_throttle_failure(struct auth_throttle *t, const char *ip, const char *account,
			       unsigned base_ms, unsigned max_ms, time_t now)
{
	unsigned fails, acct = 0;
	uint64_t delay;

	pthread_mutex_lock(&t->lock);
	fails = throttle_bump(t, "ip:", ip, now);
	if (account != NULL && account[0] != '\0')
		acct = throttle_bump(t, "acct:", account, now);
	pthread_mutex_unlock(&t->lock);
	if (acct > fails)
		fails = acct;
	delay = base_ms;
	for (unsigned i = 1; i < fails && delay < max_ms; i++)
		delay *= 2;
	return delay > max_ms ? max_ms : (unsigned)delay;
}

void auth_throttle_success(struct auth_throttle *t, const char *account)
{
	char key[330];

	snprintf(key, sizeof(key), "acct:%s", account);
	pthread_mutex_lock(&t->lock);
	throttle_slot(t, key, time(NULL))->fails = 0;
	pthread_mutex_unlock(&t->lock);
}

unsigned auth_throttle_count(struct auth_throttle *t, const char *key, time_t now)
{
	unsigned n;

	pthread_mutex_lock(&t->lock);
	n = throttle_slot(t, key, now)->fails;
	pthread_mutex_unlock(&t->lock);
	return n;
}
