#include "queue/queue_policy.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "settings/settings.h"

/* Copies s[0..len) without surrounding blanks into buf; -1 if too long. */
static int queue_trim(const char *s, size_t len, char *buf, size_t size)
{
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len >= size)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int queue_retry_parse(const char *text, struct queue_retry *r, const char **error_r)
{
	const char *p = text;

	r->n = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char item[32];
		int64_t secs;

		if (queue_trim(p, len, item, sizeof(item)) < 0 || item[0] == '\0' ||
		    settings_parse_duration(item, &secs) < 0) {
			*error_r = "expected durations separated by commas, like 5m,10m,1h";
			return -1;
		}
		if (secs <= 0 || secs > 30 * 86400) {
			*error_r = "each interval must be between 1s and 30d";
			return -1;
		}
		if (r->n == QUEUE_RETRY_STEPS_MAX) {
			*error_r = "too many intervals (at most 32)";
			return -1;
		}
		r->steps[r->n++] = (time_t)secs;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

time_t queue_retry_delay(const struct queue_retry *r, unsigned attempts)
{
	size_t i = attempts > 0 ? attempts - 1 : 0;

	if (r->n == 0)
		return 300;
	return r->steps[i < r->n ? i : r->n - 1];
}

static bool queue_host_chars_ok(const char *h)
{
	if (*h == '\0')
		return false;
	for (; *h != '\0'; h++)
		if (!isalnum((unsigned char)*h) && strchr(".-_:", *h) == NULL)
			return false;
	return true;
}

int queue_route_parse_host(const char *text, struct queue_route *route, const char **error_r)
{
	const char *p = text, *port = NULL;
	size_t hlen;

	route->literal = false;
	route->port = 25;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (close == NULL) {
			*error_r = "missing ] after the host";
			return -1;
		}
		route->literal = true;
		hlen = (size_t)(close - p - 1);
		p++;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0') {
			*error_r = "expected :PORT after ]";
			return -1;
		}
	} else {
		const char *colon = strrchr(p, ':');
		hlen = colon != NULL ? (size_t)(colon - p) : strlen(p);
		if (colon != NULL)
			port = colon + 1;
	}
	if (hlen == 0 || hlen >= sizeof(route->host)) {
		*error_r = "missing or too long host";
		return -1;
	}
	memcpy(route->host, p, hlen);
	route->host[hlen] = '\0';
	if (!queue_host_chars_ok(route->host) || (!route->literal && strchr(route->host, ':'))) {
		*error_r = "bad host name (an IPv6 address goes in brackets)";
		return -1;
	}
	if (port != NULL) {
		char *end;
		long n = strtol(port, &end, 10);
		if (*port == '\0' || *end != '\0' || n < 1 || n > 65535) {
			*error_r = "bad port";
			return -1;
		}
		route->port = (unsigned)n;
	}
	return 0;
}

static bool queue_pattern_ok(const char *pat)
{
	if (strcmp(pat, "*") == 0)
		return true;
	if (strncmp(pat, "*.", 2) == 0)
		pat += 2;
	if (*pat == '\0' || *pat == '.')
		return false;
	for (; *pat != '\0'; pat++)
		if (!isalnum((unsigned char)*pat) && strchr(".-_", *pat) == NULL)
			return false;
	return true;
}

/* 2: exact match, 1: wildcard match, 0: none. */
static int queue_pattern_match(const char *pat, const char *domain)
{
	size_t dl = strlen(domain), pl;

	if (strcmp(pat, "*") == 0)
		return 1;
	if (strncmp(pat, "*.", 2) == 0) {
		pl = strlen(pat + 1); /* ".example.com" */
		return dl > pl && strcasecmp(domain + dl - pl, pat + 1) == 0 ? 1 : 0;
	}
	return strcasecmp(pat, domain) == 0 ? 2 : 0;
}

static int queue_action_parse(char *action, struct queue_route *route, const char **error_r)
{
	char *save = NULL, *word = strtok_r(action, " \t", &save);

	memset(route, 0, sizeof(*route));
	route->tls = QUEUE_TLS_MAY;
	if (word == NULL) {
		*error_r = "missing action (direct, reject or relay:HOST:PORT)";
		return -1;
	}
	if (strcasecmp(word, "direct") == 0) {
		route->kind = QUEUE_ROUTE_DIRECT;
		route->port = 0;
	} else if (strcasecmp(word, "reject") == 0) {
		route->kind = QUEUE_ROUTE_REJECT;
	} else if (strncasecmp(word, "relay:", 6) == 0) {
		route->kind = QUEUE_ROUTE_RELAY;
		if (queue_route_parse_host(word + 6, route, error_r) < 0)
			return -1;
	} else {
		*error_r = "unknown action (expected direct, reject or relay:HOST:PORT)";
		return -1;
	}
	while ((word = strtok_r(NULL, " \t", &save)) != NULL) {
		if (strcasecmp(word, "tls=require") == 0)
			route->tls = QUEUE_TLS_REQUIRE;
		else if (strcasecmp(word, "tls=may") == 0)
			route->tls = QUEUE_TLS_MAY;
		else {
			*error_r = "unknown option (expected tls=require or tls=may)";
			return -1;
		}
	}
	return 0;
}

/* Walks the table; with domain not NULL, keeps the best match in route. */
static int queue_routes_walk(const char *table, const char *domain, struct queue_route *route,
			     const char **error_r)
{
	const char *p = table;
	int best = 0;

	while (*p != '\0') {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char entry[600], *eq;
		struct queue_route r;
		int m;

		if (queue_trim(p, len, entry, sizeof(entry)) < 0) {
			*error_r = "entry too long";
			return -1;
		}
		p += len + (comma != NULL ? 1 : 0);
		if (entry[0] == '\0')
			continue;
		if ((eq = strchr(entry, '=')) == NULL) {
			*error_r = "expected DOMAIN=ACTION";
			return -1;
		}
		*eq = '\0';
		{
			char pat[300];
			if (queue_trim(entry, strlen(entry), pat, sizeof(pat)) < 0 ||
			    !queue_pattern_ok(pat)) {
				*error_r = "bad domain pattern (a domain, *.domain or *)";
				return -1;
			}
			if (queue_action_parse(eq + 1, &r, error_r) < 0)
				return -1;
			m = domain != NULL ? queue_pattern_match(pat, domain) : 0;
		}
		if (m > best) {
			best = m;
			*route = r;
		}
	}
	return best > 0 ? 1 : 0;
}

int queue_routes_validate(const char *table, const char **error_r)
{
	struct queue_route r;

	return queue_routes_walk(table, NULL, &r, error_r) < 0 ? -1 : 0;
}

int queue_routes_lookup(const char *table, const char *domain, struct queue_route *route,
			const char **error_r)
{
	return queue_routes_walk(table, domain, route, error_r);
}
