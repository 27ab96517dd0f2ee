#include "mail/maildate.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "mail/address.h"

/* Names are spelled out rather than taken from strftime(): "%a" and "%b"
 * follow LC_TIME, and RFC 5322 wants these exact English abbreviations. */
static const char *const day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int fail_empty(char *buf, size_t size)
{
	if (size > 0)
		buf[0] = '\0';
	return -1;
}

int mail_date_format(time_t t, char *buf, size_t size)
{
	struct tm tm;
	long zone, zone_abs;
	int n;

	if (localtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11)
		return fail_empty(buf, size);
	zone = tm.tm_gmtoff / 60;
	zone_abs = zone < 0 ? -zone : zone;
	n = snprintf(buf, size, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld", day_names[tm.tm_wday],
	             tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	             tm.tm_sec, zone < 0 ? '-' : '+', zone_abs / 60, zone_abs % 60);
	if (n < 0 || (size_t)n >= size)
		return fail_empty(buf, size);
	return 0;
}

static int random_fill(void *p, size_t n)
{
	unsigned char *out = p;

	while (n > 0) {
		ssize_t got = getrandom(out, n, 0);

		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		out += got;
		n -= (size_t)got;
	}
	return 0;
}

int mail_random_hex(char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char bytes[64];
	size_t digits = size > 0 ? size - 1 : 0;

	for (size_t done = 0; done < digits;) {
		size_t chunk =
		    digits - done > 2 * sizeof(bytes) ? 2 * sizeof(bytes) : digits - done;

		if (random_fill(bytes, (chunk + 1) / 2) < 0)
			return fail_empty(buf, size);
		for (size_t i = 0; i < chunk; i++)
			buf[done + i] = hex[(bytes[i / 2] >> (i % 2 ? 0 : 4)) & 0xf];
		done += chunk;
	}
	if (size > 0)
		buf[digits] = '\0';
	return 0;
}

int mail_message_id_generate(const char *hostname, char *buf, size_t size)
{
	char rnd[32 + 1];
	int n;

	if (!address_domain_valid(hostname, false) || mail_random_hex(rnd, sizeof(rnd)) < 0)
		return fail_empty(buf, size);
	n = snprintf(buf, size, "<%s.%lld@%s>", rnd, (long long)time(NULL), hostname);
	if (n < 0 || (size_t)n >= size)
		return fail_empty(buf, size);
	return 0;
}

/* The counter is drawn again in a child after fork(): parent and child
 * would otherwise hand out the same ids. */
static pthread_mutex_t queue_id_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t queue_id_pid;
static uint32_t queue_id_counter;

static int queue_id_next(uint32_t *value_r)
{
	pid_t pid = getpid();
	int ret = 0;

	pthread_mutex_lock(&queue_id_lock);
	if (queue_id_pid != pid) {
		if (random_fill(&queue_id_counter, sizeof(queue_id_counter)) < 0)
			ret = -1;
		else
			queue_id_pid = pid;
	}
	*value_r = queue_id_counter++;
	pthread_mutex_unlock(&queue_id_lock);
	return ret;
}

int mail_queue_id_generate(char *buf, size_t size)
{
	uint32_t counter;

	if (size < MAIL_QUEUE_ID_LEN + 1 || queue_id_next(&counter) < 0)
		return fail_empty(buf, size);
	snprintf(buf, size, "%08" PRIX32 "%08" PRIX32, (uint32_t)time(NULL), counter);
	return 0;
}
