/* Runtime settings: the registry of every live setting (key, type, default,
 * documentation), their validation, and the current values that sessions
 * read.
 *
 * Values are kept in the store as text (store_setting_set); this module
 * knows what they mean.  Every key has a documented default, used when the
 * store holds no value.  Reads are thread-safe and cheap; after a write is
 * committed the admin handler calls settings_update() and every later read
 * sees the new value: no setting needs a restart.
 *
 * Other issues add their settings to the table in settings.c, and each one
 * must be read by the code it configures (a registered but unused setting is
 * a defect). */
#ifndef KEEL_SETTINGS_SETTINGS_H
#define KEEL_SETTINGS_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store_reader;

enum setting_type {
	SETTING_BOOL,     /* yes/no, true/false, on/off, 1/0 -> "yes"/"no" */
	SETTING_INT,      /* decimal integer within [min, max] */
	SETTING_SIZE,     /* bytes: 123, 10K, 50M, 2G (binary units) -> bytes */
	SETTING_DURATION, /* seconds: 30s, 5m, 4h, 5d, or bare seconds -> seconds */
	SETTING_ENUM,     /* one of choices */
	SETTING_STRING,   /* free text up to STORE_VALUE_MAX */
};

struct setting_def {
	const char *key;
	enum setting_type type;
	const char *def;            /* default, in the form a user would write */
	int64_t min, max;           /* for INT, SIZE, DURATION */
	const char *const *choices; /* for ENUM, NULL-terminated */
	const char *doc;            /* one line */
};

const struct setting_def *settings_find(const char *key);
const struct setting_def *settings_all(size_t *n_r);

/* Checks value for def; on success writes the canonical form (e.g. "52428800"
 * for "50M", "yes" for "on") to canon.  On failure error_r names the problem
 * ("expected a size like 50M"); the text stays valid until the calling thread
 * next calls settings_validate(). */
int settings_validate(const struct setting_def *def, const char *value, char *canon,
                      size_t canon_size, const char **error_r);

/* The parsers behind SIZE and DURATION, for other size or duration inputs
 * (e.g. a user's quota).  A size is digits with an optional binary unit
 * B, K, M, G, T (any case); a duration is digits with an optional unit s, m,
 * h, d, w.  Return 0, or -1 on bad syntax or overflow. */
int settings_parse_size(const char *value, int64_t *bytes_r);
int settings_parse_duration(const char *value, int64_t *seconds_r);

/* Loads every stored value (start-up).  Unknown or invalid stored values are
 * logged and ignored (the default applies). */
int settings_load(struct store_reader *r);
/* value NULL: back to the default.  value must be canonical. */
void settings_update(const char *key, const char *value);

/* Current value, as canonical text (copied into buf), and typed. */
void settings_get(const char *key, char *buf, size_t size);
int64_t settings_get_int(const char *key); /* INT, SIZE, DURATION */
bool settings_get_bool(const char *key);
/* True when the store holds a value for key (not the default). */
bool settings_is_set(const char *key);

#endif
