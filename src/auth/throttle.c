#include "auth/throttle.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

struct throttle_slot {
	char key[330]; /* "ip:..." or "acct:..." (lower case) */
	unsigned fails;
	time_t last;
	/* The block: failures in the window opened at window_start. */
	unsigned window_fails;
	time_t window_start;
	time_t blocked_until;
};

static pthread_mutex_t throttle_process_lock = PTHREAD_MUTEX_INITIALIZER;
static struct auth_throttle *throttle_process_table;

struct auth_throttle {
	pthread_mutex_t lock;
	struct throttle_slot slots[AUTH_THROTTLE_SLOTS];
};

#define THROTTLE_PROBE 8

struct auth_throttle *auth_throttle_new(void)
{
	struct auth_throttle *t = xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_lock(&throttle_process_lock);
	if (throttle_process_table == NULL)
		throttle_process_table = t;
	pthread_mutex_unlock(&throttle_process_lock);
	return t;
}

struct auth_throttle *auth_throttle_process(void)
{
	struct auth_throttle *t;

	pthread_mutex_lock(&throttle_process_lock);
	t = throttle_process_table;
	pthread_mutex_unlock(&throttle_process_lock);
	return t;
}

void auth_throttle_free(struct auth_throttle **tp)
{
	if (*tp == NULL)
		return;
	pthread_mutex_lock(&throttle_process_lock);
	if (throttle_process_table == *tp)
		throttle_process_table = NULL;
	pthread_mutex_unlock(&throttle_process_lock);
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

/* Whether victim should give way before s: a slot in force (blocked) is
 * taken last, then the stalest goes. */
static bool throttle_worse(const struct throttle_slot *s, const struct throttle_slot *victim,
			   time_t now)
{
	bool s_blocked = s->blocked_until > now, v_blocked = victim->blocked_until > now;

	if (s_blocked != v_blocked)
		return v_blocked;
	return s->last < victim->last;
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
		if (victim == NULL || s->key[0] == '\0' || throttle_worse(s, victim, now))
			victim = s;
	}
	memset(victim, 0, sizeof(*victim));
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	victim->last = now;
	return victim;
}

/* "ip:IP" or "acct:account" in lower case: Alice@X and alice@x are one
 * account to the block. */
static void throttle_key(char *key, size_t size, const char *prefix, const char *what)
{
	bool acct = prefix[0] == 'a';

	snprintf(key, size, "%s%s", prefix, what);
	for (char *p = key; acct && *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
}

static unsigned throttle_bump(struct auth_throttle *t, const char *prefix, const char *what,
			      time_t now)
{
	char key[330];
	struct throttle_slot *s;

	throttle_key(key, sizeof(key), prefix, what);
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

/* The slot of key if there is one (no slot is taken for a lookup). */
static struct throttle_slot *throttle_find(struct auth_throttle *t, const char *key)
{
	uint32_t h = throttle_hash(key);

	for (unsigned i = 0; i < THROTTLE_PROBE; i++) {
		struct throttle_slot *s = &t->slots[(h + i) % AUTH_THROTTLE_SLOTS];
		if (strcmp(s->key, key) == 0)
			return s;
	}
	return NULL;
}

void auth_throttle_success(struct auth_throttle *t, const char *account)
{
	char key[330];
	struct throttle_slot *s;

	throttle_key(key, sizeof(key), "acct:", account);
	pthread_mutex_lock(&t->lock);
	/* A success never takes a slot: that could push out the count of
	 * an IP or account under attack. */
	if ((s = throttle_find(t, key)) != NULL) {
		s->fails = 0;
		s->window_fails = 0;
	}
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

/* ---- blocks ---------------------------------------------------------------- */

/* Counts one failure of key toward its block; returns whether it blocked. */
static bool throttle_block_bump(struct auth_throttle *t, const char *prefix, const char *what,
				unsigned block_after, time_t window, time_t block_time, time_t now)
{
	char key[330];
	struct throttle_slot *s;

	throttle_key(key, sizeof(key), prefix, what);
	s = throttle_slot(t, key, now);
	if (s->window_fails == 0 || now - s->window_start >= window) {
		s->window_start = now;
		s->window_fails = 0;
	}
	s->window_fails++;
	if (block_after == 0 || s->window_fails < block_after || s->blocked_until > now)
		return false;
	s->blocked_until = now + block_time;
	return true;
}

unsigned auth_throttle_block_count(struct auth_throttle *t, const char *ip, const char *account,
				   unsigned block_after, time_t window, time_t block_time,
				   time_t now)
{
	unsigned blocked = 0;

	pthread_mutex_lock(&t->lock);
	if (throttle_block_bump(t, "ip:", ip, block_after, window, block_time, now))
		blocked |= AUTH_BLOCK_IP;
	if (account != NULL && account[0] != '\0' &&
	    throttle_block_bump(t, "acct:", account, block_after, window, block_time, now))
		blocked |= AUTH_BLOCK_ACCOUNT;
	pthread_mutex_unlock(&t->lock);
	return blocked;
}

unsigned auth_throttle_blocked(struct auth_throttle *t, const char *ip, const char *account,
			       time_t now, time_t *until_r)
{
	char key[330];
	struct throttle_slot *s;
	unsigned blocked = 0;
	time_t until = 0;

	pthread_mutex_lock(&t->lock);
	throttle_key(key, sizeof(key), "ip:", ip);
	if ((s = throttle_find(t, key)) != NULL && s->blocked_until > now) {
		blocked |= AUTH_BLOCK_IP;
		until = s->blocked_until;
	}
	if (account != NULL && account[0] != '\0') {
		throttle_key(key, sizeof(key), "acct:", account);
		if ((s = throttle_find(t, key)) != NULL && s->blocked_until > now) {
			blocked |= AUTH_BLOCK_ACCOUNT;
			if (s->blocked_until > until)
				until = s->blocked_until;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (until_r != NULL)
		*until_r = until;
	return blocked;
}

static const char *throttle_what(unsigned blocked)
{
	if (blocked == (AUTH_BLOCK_IP | AUTH_BLOCK_ACCOUNT))
		return "ip,account";
	return blocked == AUTH_BLOCK_IP ? "ip" : "account";
}

unsigned auth_throttle_login_failed(struct auth_throttle *t, const char *proto, const char *ip,
				    const char *account, time_t now)
{
	unsigned ms = auth_throttle_failure(t, ip, account,
					    (unsigned)settings_get_int("auth.failure_delay") * 1000,
					    (unsigned)settings_get_int("auth.failure_delay_max") * 1000,
					    now);
	time_t block_time = (time_t)settings_get_int("auth.block_time");
	unsigned blocked = auth_throttle_block_count(
		t, ip, account, (unsigned)settings_get_int("auth.block_after"),
		(time_t)settings_get_int("auth.block_window"), block_time, now);

	if (blocked != 0)
		log_warn(proto, "event=auth_blocked ip=%s account=%s blocked=%s seconds=%lld", ip,
			 account != NULL ? account : "", throttle_what(blocked), (long long)block_time);
	return ms;
}

bool auth_throttle_login_refused(struct auth_throttle *t, const char *proto, const char *ip,
				 const char *account, time_t now)
{
	time_t until;
	unsigned blocked = auth_throttle_blocked(t, ip, account, now, &until);

	if (blocked == 0)
		return false;
	log_info(proto, "event=auth_refused_blocked ip=%s account=%s blocked=%s until=%lld", ip,
		 account != NULL ? account : "",
		 throttle_what(blocked),
		 (long long)until);
	return true;
}

size_t auth_throttle_blocks(struct auth_throttle *t, time_t now, struct auth_throttle_block *out,
			    size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < AUTH_THROTTLE_SLOTS; i++) {
		const struct throttle_slot *s = &t->slots[i];
		bool is_ip = strncmp(s->key, "ip:", 3) == 0;

		if (s->key[0] == '\0' || s->blocked_until <= now)
			continue;
		if (n < max) {
			snprintf(out[n].key, sizeof(out[n].key), "%s", s->key + (is_ip ? 3 : 5));
			out[n].is_ip = is_ip;
			out[n].failures = s->window_fails;
			out[n].until = s->blocked_until;
		}
		n++;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

static unsigned throttle_lift(struct auth_throttle *t, const char *prefix, const char *what,
			      time_t now)
{
	char key[330];
	struct throttle_slot *s;
	bool was;

	throttle_key(key, sizeof(key), prefix, what);
	if ((s = throttle_find(t, key)) == NULL)
		return 0;
	was = s->blocked_until > now;
	s->blocked_until = 0;
	s->window_fails = 0;
	s->fails = 0;
	return was ? 1 : 0;
}

unsigned auth_throttle_unblock(struct auth_throttle *t, const char *key, time_t now)
{
	unsigned n;

	pthread_mutex_lock(&t->lock);
	n = throttle_lift(t, "ip:", key, now) + throttle_lift(t, "acct:", key, now);
	pthread_mutex_unlock(&t->lock);
	return n;
}
