#include "lib/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;          /* NULL: stderr */
static int log_syslog;
static char log_ident[64] = "keel";
static atomic_int log_level = LOG_LEVEL_INFO;

static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

int log_open(const char *target, const char *ident, const char **error_r)
{
	FILE *f = NULL;
	int use_syslog = 0;

	if (strcmp(target, "syslog") == 0) {
		use_syslog = 1;
	} else if (strcmp(target, "stderr") != 0) {
		f = fopen(target, "ae");
		if (f == NULL) {
			*error_r = strerror(errno);
			return -1;
		}
		setvbuf(f, NULL, _IOLBF, 0);
	}
	pthread_mutex_lock(&log_lock);
	if (log_file != NULL)
		fclose(log_file);
	if (log_syslog)
		closelog();
	log_file = f;
	log_syslog = use_syslog;
	snprintf(log_ident, sizeof(log_ident), "%s", ident);
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	pthread_mutex_unlock(&log_lock);
	return 0;
}

void log_set_level(enum log_level level)
{
	atomic_store(&log_level, level);
}

int log_level_parse(const char *s, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcmp(s, log_level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file != NULL)
		fclose(log_file);
	if (log_syslog)
		closelog();
	log_file = NULL;
	log_syslog = 0;
	pthread_mutex_unlock(&log_lock);
}

__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level level,
							   const char *module, const char *fmt,
							   va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[2048];
	char stamp[40];
	struct timeval tv;
	struct tm tm;

	vsnprintf(line, sizeof(line), fmt, ap);
	pthread_mutex_lock(&log_lock);
	if (log_syslog) {
		syslog(prio[level], "%s %s %s", log_level_names[level], module, line);
	} else {
		gettimeofday(&tv, NULL);
		localtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(log_file != NULL ? log_file : stderr, "%s.%03ld %s[%ld] %s %s %s\n", stamp,
			(long)tv.tv_usec / 1000, log_ident, (long)getpid(), log_level_names[level],
			module, line);
	}
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > atomic_load(&log_level))
		return;
	va_start(ap, fmt);
	log_vmsg(level, module, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, "fatal", fmt, ap);
	va_end(ap);
	exit(1);
}
