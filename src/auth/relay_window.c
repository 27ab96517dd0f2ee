#include "auth/relay_window.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

struct relay_slot {
	char ip[64];
	time_t until;
};

struct relay_window {
	pthread_mutex_t lock;
	struct relay_slot slots[RELAY_WINDOW_SLOTS];
};

#define RELAY_PROBE 8

struct relay_window *relay_window_new(void)
{
	struct relay_window *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->lock, NULL);
	return w;
}

void relay_window_free(struct relay_window **wp)
{
	if (*wp == NULL)
		return;
	pthread_mutex_destroy(&(*wp)->lock);
	free(*wp);
	*wp = NULL;
}

static uint32_t relay_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

void relay_window_open(struct relay_window *w, const char *ip, time_t now, unsigned seconds)
{
	uint32_t h = relay_hash(ip);
	struct relay_slot *victim = NULL;

	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < RELAY_PROBE; i++) {
		struct relay_slot *s = &w->slots[(h + i) % RELAY_WINDOW_SLOTS];
		if (strcmp(s->ip, ip) == 0) {
			victim = s;
			break;
		}
		if (victim == NULL || s->until < victim->until)
			victim = s;
	}
	snprintf(victim->ip, sizeof(victim->ip), "%s", ip);
	victim->until = now + (time_t)seconds;
	pthread_mutex_unlock(&w->lock);
}

bool relay_window_check(struct relay_window *w, const char *ip, time_t now, time_t *until_r)
{
	uint32_t h = relay_hash(ip);
	bool open = false;

	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < RELAY_PROBE && !open; i++) {
		struct relay_slot *s = &w->slots[(h + i) % RELAY_WINDOW_SLOTS];
		if (strcmp(s->ip, ip) == 0 && s->until > now) {
			open = true;
			if (until_r != NULL)
				*until_r = s->until;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return open;
}
