#include "keeld/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/xalloc.h"

static const char *const service_names[SERVICE_COUNT] = {
	"smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s",
};

const char *service_name(enum service service)
{
	return service_names[service];
}

int service_parse(const char *name, enum service *service_r)
{
	for (int i = 0; i < SERVICE_COUNT; i++) {
		if (strcmp(name, service_names[i]) == 0) {
			*service_r = (enum service)i;
			return 0;
		}
	}
	return -1;
}

bool service_implicit_tls(enum service service)
{
	return service == SERVICE_SUBMISSIONS || service == SERVICE_IMAPS ||
	       service == SERVICE_POP3S;
}

struct config_parse_ctx {
	const char *path;
	const char *dir; /* for relative paths */
	unsigned line;
	const char *key;
	struct config *config;
	char **error_r;
	bool seen_data_dir, seen_admin_socket;
};

__attribute__((format(printf, 2, 3))) static int config_fail(struct config_parse_ctx *ctx,
								   const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	*ctx->error_r = xasprintf("%s:%u: key '%s': %s", ctx->path, ctx->line, ctx->key, msg);
	return -1;
}

static int config_set_string(struct config_parse_ctx *ctx, char *dst, size_t size,
			     const char *value)
{
	if (*value == '\0')
		return config_fail(ctx, "empty value");
	if (strlen(value) >= size)
		return config_fail(ctx, "value longer than %zu characters", size - 1);
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

static int config_set_path(struct config_parse_ctx *ctx, char *dst, const char *value)
{
	char buf[PATH_MAX * 2];

	if (*value == '\0')
		return config_fail(ctx, "empty path");
	if (value[0] == '/')
		snprintf(buf, sizeof(buf), "%s", value);
	else
		snprintf(buf, sizeof(buf), "%s/%s", ctx->dir, value);
	if (strlen(buf) >= PATH_MAX)
		return config_fail(ctx, "path too long");
	memcpy(dst, buf, strlen(buf) + 1);
	return 0;
}

/* "ADDR:PORT" or "[V6]:PORT", numeric addresses only: a listener must not
 * depend on DNS at start-up. */
static int config_parse_sockaddr(const char *s, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[CONFIG_ADDR_MAX];
	const char *colon, *port_s;
	char *end;
	long port;

	memset(sa, 0, sizeof(*sa));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, rb - s - 1);
		host[rb - s - 1] = '\0';
		port_s = rb + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, colon - s);
		host[colon - s] = '\0';
		port_s = colon + 1;
	}
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (*port_s == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535)
		return -1;
	if (s[0] == '[') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)sa;
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	}
	return 0;
}

static char *config_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

static int config_add_listeners(struct config_parse_ctx *ctx, enum service service,
				char *value)
{
	struct config *c = ctx->config;
	char *save = NULL;

	for (char *tok = strtok_r(value, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		struct config_listener *l;

		tok = config_trim(tok);
		if (*tok == '\0')
			continue;
		c->listeners = xrealloc(c->listeners, (c->n_listeners + 1) * sizeof(*l));
		l = &c->listeners[c->n_listeners];
		memset(l, 0, sizeof(*l));
		if (strlen(tok) >= sizeof(l->address) ||
		    config_parse_sockaddr(tok, &l->sa, &l->sa_len) < 0)
			return config_fail(ctx,
					   "'%s' is not ADDR:PORT or [IPV6]:PORT with a numeric "
					   "address",
					   tok);
		for (size_t i = 0; i < c->n_listeners; i++)
			if (c->listeners[i].sa_len == l->sa_len &&
			    memcmp(&c->listeners[i].sa, &l->sa, l->sa_len) == 0)
				return config_fail(ctx, "address %s is already used by another "
							"listener",
						   tok);
		l->service = service;
		snprintf(l->address, sizeof(l->address), "%s", tok);
		c->n_listeners++;
	}
	return 0;
}

static int config_parse_workers(struct config_parse_ctx *ctx, const char *value)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(value, &end, 10);
	if (*value == '\0' || *end != '\0' || errno != 0 || n < 1 || n > 256)
		return config_fail(ctx, "'%s' is not a number of threads from 1 to 256", value);
	ctx->config->workers = (unsigned)n;
	return 0;
}

static int config_parse_log(struct config_parse_ctx *ctx, const char *value)
{
	if (strcmp(value, "stderr") == 0 || strcmp(value, "syslog") == 0)
		return config_set_string(ctx, ctx->config->log, sizeof(ctx->config->log), value);
	return config_set_path(ctx, ctx->config->log, value);
}

static int config_parse_store(struct config_parse_ctx *ctx, const char *value)
{
	if (strcmp(value, "sqlite") == 0)
		return config_set_string(ctx, ctx->config->store, sizeof(ctx->config->store),
					 value);
	if (strncmp(value, "postgresql://", 13) == 0)
		return config_fail(ctx, "the PostgreSQL store is not part of this build; "
					"use 'sqlite'");
	return config_fail(ctx, "'%s' is not a store: use 'sqlite'", value);
}

static int config_parse_hostname(struct config_parse_ctx *ctx, const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len > 253)
		return config_fail(ctx, "'%s' is not a host name", value);
	for (const char *p = value; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return config_fail(ctx, "'%s' is not a host name", value);
	return config_set_string(ctx, ctx->config->hostname, sizeof(ctx->config->hostname),
				 value);
}

static int config_parse_kv(struct config_parse_ctx *ctx, char *value)
{
	struct config *c = ctx->config;
	const char *key = ctx->key;
	enum service service;
	char svc[32];
	const char *dot = strchr(key, '.');

	if (dot != NULL && strcmp(dot, ".listen") == 0 && (size_t)(dot - key) < sizeof(svc)) {
		memcpy(svc, key, dot - key);
		svc[dot - key] = '\0';
		if (service_parse(svc, &service) == 0)
			return config_add_listeners(ctx, service, value);
	}
	if (strcmp(key, "hostname") == 0)
		return config_parse_hostname(ctx, value);
	if (strcmp(key, "data_dir") == 0) {
		ctx->seen_data_dir = true;
		return config_set_path(ctx, c->data_dir, value);
	}
	if (strcmp(key, "user") == 0)
		return config_set_string(ctx, c->user, sizeof(c->user), value);
	if (strcmp(key, "log") == 0)
		return config_parse_log(ctx, value);
	if (strcmp(key, "log_level") == 0) {
		if (log_level_parse(value, &c->log_level) < 0)
			return config_fail(ctx, "'%s' is not one of error, warn, info, debug",
					   value);
		return 0;
	}
	if (strcmp(key, "tls.cert") == 0)
		return config_set_path(ctx, c->tls_cert, value);
	if (strcmp(key, "tls.key") == 0)
		return config_set_path(ctx, c->tls_key, value);
	if (strcmp(key, "admin.socket") == 0) {
		ctx->seen_admin_socket = true;
		return config_set_path(ctx, c->admin_socket, value);
	}
	if (strcmp(key, "store") == 0)
		return config_parse_store(ctx, value);
	if (strcmp(key, "workers") == 0)
		return config_parse_workers(ctx, value);
	return config_fail(ctx, "unknown key");
}

static void config_defaults(struct config *c)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	char host[256] = "localhost";
	struct addrinfo hints = { .ai_flags = AI_CANONNAME }, *ai = NULL;

	memset(c, 0, sizeof(*c));
	/* The FQDN: gethostname() plus the canonical name if the resolver
	 * knows one; never fails start-up. */
	if (gethostname(host, sizeof(host) - 1) == 0 && strchr(host, '.') == NULL &&
	    getaddrinfo(host, NULL, &hints, &ai) == 0 && ai != NULL && ai->ai_canonname != NULL)
		snprintf(host, sizeof(host), "%s", ai->ai_canonname);
	if (ai != NULL)
		freeaddrinfo(ai);
	snprintf(c->hostname, sizeof(c->hostname), "%s", host);
	snprintf(c->data_dir, sizeof(c->data_dir), "/var/lib/keel");
	snprintf(c->user, sizeof(c->user), "keel");
	snprintf(c->log, sizeof(c->log), "syslog");
	c->log_level = LOG_LEVEL_INFO;
	snprintf(c->store, sizeof(c->store), "sqlite");
	c->workers = cores > 0 ? (unsigned)cores : 1;
}

static int config_parse_line(struct config_parse_ctx *ctx, char *line)
{
	char *eq, *key, *value;

	line = config_trim(line);
	if (*line == '\0' || *line == '#')
		return 0;
	eq = strchr(line, '=');
	ctx->key = line;
	if (eq == NULL)
		return config_fail(ctx, "expected 'key = value'");
	*eq = '\0';
	key = config_trim(line);
	value = config_trim(eq + 1);
	ctx->key = key;
	if (*key == '\0')
		return config_fail(ctx, "expected 'key = value'");
	return config_parse_kv(ctx, value);
}

static bool config_seen_before(const char *text, size_t upto, const char *key);

int config_parse(const char *text, const char *path, struct config *config_r, char **error_r)
{
	struct config_parse_ctx ctx = { .path = path, .config = config_r, .error_r = error_r };
	char *copy = xstrdup(text), *dir = xstrdup(path), *slash;
	int ret = 0;

	config_defaults(config_r);
	snprintf(config_r->path, sizeof(config_r->path), "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	ctx.dir = slash != NULL ? (*dir ? dir : "/") : ".";
	for (char *p = copy, *nl; p != NULL && ret == 0; p = nl) {
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		ctx.line++;
		ret = config_parse_line(&ctx, p);
		if (ret == 0 && ctx.key != NULL &&
		    config_seen_before(text, (size_t)(p - copy), ctx.key)) {
			ret = config_fail(&ctx, "given more than once");
		}
		ctx.key = NULL;
	}
	if (ret == 0 && (config_r->tls_cert[0] == '\0') != (config_r->tls_key[0] == '\0')) {
		*error_r = xasprintf("%s: tls.cert and tls.key must be given together", path);
		ret = -1;
	}
	if (ret == 0 && !ctx.seen_admin_socket)
		snprintf(config_r->admin_socket, sizeof(config_r->admin_socket), "%.*s/keel.sock",
			 PATH_MAX - 11, config_r->data_dir);
	free(copy);
	free(dir);
	if (ret < 0)
		config_deinit(config_r);
	return ret;
}

/* True when a line before offset upto sets key.  Keys are few and files
 * short, so a rescan is simpler than a table. */
static bool config_seen_before(const char *text, size_t upto, const char *key)
{
	char *copy = xstrndup(text, upto), *save = NULL;
	bool seen = false;

	for (char *line = strtok_r(copy, "\n", &save); line != NULL && !seen;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		line = config_trim(line);
		if (*line == '#' || eq == NULL)
			continue;
		*eq = '\0';
		seen = strcmp(config_trim(line), key) == 0;
	}
	free(copy);
	return seen;
}

int config_load(const char *path, struct config *config_r, char **text_r, char **error_r)
{
	char abs[PATH_MAX];
	FILE *f;
	char *text;
	size_t len = 0, cap = 4096, n;
	int ret;

	if (realpath(path, abs) == NULL || (f = fopen(abs, "re")) == NULL) {
		*error_r = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	text = xmalloc(cap);
	while ((n = fread(text + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len > 1024 * 1024) {
			fclose(f);
			free(text);
			*error_r = xasprintf("%s: file larger than 1 MiB", abs);
			return -1;
		}
		if (cap - len - 1 == 0)
			text = xrealloc(text, cap *= 2);
	}
	fclose(f);
	text[len] = '\0';
	if (strlen(text) != len) {
		free(text);
		*error_r = xasprintf("%s: contains a NUL byte", abs);
		return -1;
	}
	ret = config_parse(text, abs, config_r, error_r);
	if (ret == 0 && text_r != NULL)
		*text_r = text;
	else
		free(text);
	return ret;
}

void config_deinit(struct config *config)
{
	free(config->listeners);
	config->listeners = NULL;
	config->n_listeners = 0;
}
