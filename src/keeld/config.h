/* keel.conf: what keeld needs before the store opens.
 *
 * Format: `key = value` lines; `#` starts a comment line; blank lines are
 * ignored; a key may appear once.  An unknown key or a bad value fails the
 * whole parse with one message naming the file, the line and the key.
 * Relative paths are taken relative to the directory of the file.
 * Everything else (limits, policy, ...) is a live setting in the store. */
#ifndef KEEL_KEELD_CONFIG_H
#define KEEL_KEELD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "lib/log.h"

enum service {
	SERVICE_SMTP,
	SERVICE_SUBMISSION,
	SERVICE_SUBMISSIONS,
	SERVICE_IMAP,
	SERVICE_IMAPS,
	SERVICE_POP3,
	SERVICE_POP3S,
	SERVICE_COUNT
};

const char *service_name(enum service service);
int service_parse(const char *name, enum service *service_r);
/* Services whose connections start with a TLS handshake. */
bool service_implicit_tls(enum service service);

#define CONFIG_ADDR_MAX 80

struct config_listener {
	enum service service;
	char address[CONFIG_ADDR_MAX]; /* as written: "127.0.0.1:25", "[::1]:143" */
	struct sockaddr_storage sa;
	socklen_t sa_len;
};

struct config {
	char path[PATH_MAX];      /* the file, absolute */
	char hostname[256];
	char data_dir[PATH_MAX];
	char user[64];            /* worker's user when started as root */
	char log[PATH_MAX];       /* "stderr", "syslog" or a path */
	enum log_level log_level;
	char tls_cert[PATH_MAX];  /* "" = self-signed in data_dir */
	char tls_key[PATH_MAX];
	char admin_socket[PATH_MAX];
	char store[PATH_MAX];     /* "sqlite" */
	unsigned workers;         /* loop threads */
	size_t n_listeners;
	struct config_listener *listeners;
};

/* Parses text as the contents of the file at path (path is used for
 * messages and for resolving relative paths).  On error, *error_r is a
 * malloc'd "FILE:LINE: key 'k': problem" string the caller frees. */
int config_parse(const char *text, const char *path, struct config *config_r, char **error_r);
/* Reads and parses the file.  text_r (if not NULL) receives the text read,
 * malloc'd, so that the same bytes can be handed to the worker. */
int config_load(const char *path, struct config *config_r, char **text_r, char **error_r);
void config_deinit(struct config *config);

/* Default location of keel.conf. */
#define CONFIG_DEFAULT_PATH "/etc/keel/keel.conf"

#endif
