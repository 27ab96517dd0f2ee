#include "lib/iplimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

#define IPLIMIT_BUCKETS 1024

struct iplimit_entry {
	struct iplimit_entry *next;
	unsigned count;
	char ip[]; /* NUL-terminated */
};

struct iplimit {
	pthread_mutex_t lock;
	struct iplimit_entry *buckets[IPLIMIT_BUCKETS];
};

struct iplimit *iplimit_new(void)
{
	struct iplimit *l = xcalloc(1, sizeof(*l));

	pthread_mutex_init(&l->lock, NULL);
	return l;
}

void iplimit_free(struct iplimit **lp)
{
	struct iplimit *l = *lp;

	if (l == NULL)
		return;
	for (size_t i = 0; i < IPLIMIT_BUCKETS; i++) {
		while (l->buckets[i] != NULL) {
			struct iplimit_entry *e = l->buckets[i];
			l->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&l->lock);
	free(l);
	*lp = NULL;
}

static struct iplimit_entry **iplimit_find(struct iplimit *l, const char *ip)
{
	uint32_t h = 2166136261u;
	struct iplimit_entry **e;

	for (const char *p = ip; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	for (e = &l->buckets[h % IPLIMIT_BUCKETS]; *e != NULL; e = &(*e)->next)
		if (strcmp((*e)->ip, ip) == 0)
			break;
	return e;
}

int iplimit_acquire(struct iplimit *l, const char *ip, unsigned max)
{
	struct iplimit_entry **e;
	int ret = 0;

	pthread_mutex_lock(&l->lock);
	e = iplimit_find(l, ip);
	if (*e == NULL) {
		size_t len = strlen(ip);
		*e = xcalloc(1, sizeof(**e) + len + 1);
		memcpy((*e)->ip, ip, len + 1);
	}
	if (max > 0 && (*e)->count >= max)
		ret = -1;
	else
		(*e)->count++;
	if ((*e)->count == 0) {
		struct iplimit_entry *gone = *e;
		*e = gone->next;
		free(gone);
	}
	pthread_mutex_unlock(&l->lock);
	return ret;
}

void iplimit_release(struct iplimit *l, const char *ip)
{
	struct iplimit_entry **e;

	pthread_mutex_lock(&l->lock);
	e = iplimit_find(l, ip);
	if (*e != NULL && --(*e)->count == 0) {
		struct iplimit_entry *gone = *e;
		*e = gone->next;
		free(gone);
	}
	pthread_mutex_unlock(&l->lock);
}

unsigned iplimit_count(struct iplimit *l, const char *ip)
{
	struct iplimit_entry **e;
	unsigned n;

	pthread_mutex_lock(&l->lock);
	e = iplimit_find(l, ip);
	n = *e != NULL ? (*e)->count : 0;
	pthread_mutex_unlock(&l->lock);
	return n;
}
