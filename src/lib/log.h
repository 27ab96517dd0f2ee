/* Logging: one line per event, "level module s=SESSION key=value ...".
 *
 * The target (stderr, syslog or a file) and the level are set once at
 * start-up and may be changed on reload; every function here is thread-safe.
 * Never pass a password, a token or a message body. */
#ifndef KEEL_LIB_LOG_H
#define KEEL_LIB_LOG_H

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* target: "stderr", "syslog" or a file path (appended to).  ident names the
 * process in syslog and in each line ("keeld[master]"). */
int log_open(const char *target, const char *ident, const char **error_r);
void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug". */
int log_level_parse(const char *s, enum log_level *level_r);
void log_close(void);

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_error(mod, ...) log_msg(LOG_LEVEL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_LEVEL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...)  log_msg(LOG_LEVEL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_LEVEL_DEBUG, mod, __VA_ARGS__)

#endif
