#include "imap/imap_recent.h"

#include <pthread.h>
#include <stdlib.h>

#include "lib/xalloc.h"

#define IMAP_RECENT_BUCKETS 1024

struct imap_recent_entry {
	struct imap_recent_entry *next;
	int64_t mailbox_id;
	uint32_t first_unclaimed;
};

struct imap_recent {
	pthread_mutex_t lock;
	struct imap_recent_entry *buckets[IMAP_RECENT_BUCKETS];
};

struct imap_recent *imap_recent_new(void)
{
	struct imap_recent *t = xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void imap_recent_free(struct imap_recent **tp)
{
	struct imap_recent *t = *tp;

	if (t == NULL)
		return;
	*tp = NULL;
	for (size_t i = 0; i < IMAP_RECENT_BUCKETS; i++) {
		while (t->buckets[i] != NULL) {
			struct imap_recent_entry *e = t->buckets[i];
			t->buckets[i] = e->next;
			free(e);
		}
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* With the lock held; creates the entry (nothing claimed yet) if need be. */
static struct imap_recent_entry *imap_recent_entry(struct imap_recent *t, int64_t mailbox_id)
{
	struct imap_recent_entry **head = &t->buckets[(uint64_t)mailbox_id % IMAP_RECENT_BUCKETS];

	for (struct imap_recent_entry *e = *head; e != NULL; e = e->next)
		if (e->mailbox_id == mailbox_id)
			return e;
	struct imap_recent_entry *e = xcalloc(1, sizeof(*e));
	e->mailbox_id = mailbox_id;
	e->first_unclaimed = 1;
	e->next = *head;
	*head = e;
	return e;
}

uint32_t imap_recent_claim(struct imap_recent *t, int64_t mailbox_id, uint32_t next_uid)
{
	uint32_t first;

	pthread_mutex_lock(&t->lock);
	struct imap_recent_entry *e = imap_recent_entry(t, mailbox_id);
	first = e->first_unclaimed;
	if (next_uid > e->first_unclaimed)
		e->first_unclaimed = next_uid;
	pthread_mutex_unlock(&t->lock);
	return first;
}

uint32_t imap_recent_peek(struct imap_recent *t, int64_t mailbox_id)
{
	uint32_t first;

	pthread_mutex_lock(&t->lock);
	first = imap_recent_entry(t, mailbox_id)->first_unclaimed;
	pthread_mutex_unlock(&t->lock);
	return first;
}

void imap_recent_forget(struct imap_recent *t, int64_t mailbox_id)
{
	pthread_mutex_lock(&t->lock);
	for (struct imap_recent_entry **p = &t->buckets[(uint64_t)mailbox_id % IMAP_RECENT_BUCKETS];
	     *p != NULL; p = &(*p)->next) {
		if ((*p)->mailbox_id == mailbox_id) {
			struct imap_recent_entry *e = *p;
			*p = e->next;
			free(e);
			break;
		}
	}
	pthread_mutex_unlock(&t->lock);
}
