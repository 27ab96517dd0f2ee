#include "settings/settings.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "store/store.h"

/* The registry.  Add a setting here and read it where it applies; the key
 * names the module it configures.  def is what a user would write. */
static const char *const smtp_bare_newline_choices[] = { "reject", "normalize", NULL };
static const char *const delivery_tls_choices[] = { "may", "require", NULL };
static const char *const trace_level_choices[] = { "full", "delivery", "off", NULL };
static const char *const smtp_unresolvable_sender_choices[] = { "no", "reject", "defer", NULL };
static const char *const smtp_sender_tempfail_choices[] = { "defer", "accept", NULL };

static const struct setting_def settings_registry[] = {
    {
        .key = "auth.password_min_length",
        .type = SETTING_INT,
        .def = "10",
        .min = 1,
        .max = 1024,
        .doc = "minimum length of a password set by user add or user passwd",
    },
    {
        .key = "user.default_quota",
        .type = SETTING_SIZE,
        .def = "0",
        .min = 0,
        .max = INT64_MAX,
        .doc = "quota given by user add when --quota is absent (0 = no quota)",
    },
    {
        .key = "auth.failure_delay",
        .type = SETTING_DURATION,
        .def = "1s",
        .min = 0,
        .max = 60,
        .doc = "delay before answering a failed login, doubled per recent failure from the same IP or for the same account",
    },
    {
        .key = "auth.failure_delay_max",
        .type = SETTING_DURATION,
        .def = "15s",
        .min = 0,
        .max = 300,
        .doc = "the longest delay before answering a failed login",
    },
    {
        .key = "auth.block_after",
        .type = SETTING_INT,
        .def = "20",
        .min = 0,
        .max = 100000,
        .doc = "failed logins from one IP, or for one account, within auth.block_window that block it for auth.block_time (0 = never block)",
    },
    {
        .key = "auth.block_window",
        .type = SETTING_DURATION,
        .def = "15m",
        .min = 1,
        .max = 86400,
        .doc = "the window in which auth.block_after failed logins count",
    },
    {
        .key = "auth.block_time",
        .type = SETTING_DURATION,
        .def = "1h",
        .min = 1,
        .max = 604800,
        .doc = "how long a blocked IP or account is refused every login (keelctl auth unblock lifts it)",
    },
    {
        .key = "smtp.max_message_size",
        .type = SETTING_SIZE,
        .def = "50M",
        .min = 1024,
        .max = 2147483647,
        .doc = "largest message accepted over SMTP, advertised in SIZE",
    },
    {
        .key = "smtp.max_recipients",
        .type = SETTING_INT,
        .def = "100",
        .min = 1,
        .max = 100000,
        .doc = "recipients per message; more get 452 4.5.3",
    },
    {
        .key = "smtp.bare_newline",
        .type = SETTING_ENUM,
        .def = "reject",
        .choices = smtp_bare_newline_choices,
        .doc = "a bare CR or LF inside DATA: reject the message (550 5.5.2) or normalize it to CRLF",
    },
    {
        .key = "smtp.max_errors",
        .type = SETTING_INT,
        .def = "10",
        .min = 1,
        .max = 1000,
        .doc = "failed commands in one SMTP session before it is closed with 421 4.7.0",
    },
    {
        .key = "smtp.max_connections_per_ip",
        .type = SETTING_INT,
        .def = "20",
        .min = 0,
        .max = 100000,
        .doc = "concurrent SMTP connections from one IP address (0 = no limit)",
    },
    {
        .key = "smtp.max_hops",
        .type = SETTING_INT,
        .def = "50",
        .min = 1,
        .max = 1000,
        .doc = "Received: headers a message may carry; more get 554 5.4.6 (mail loop)",
    },
    {
        .key = "smtp.sender_login_match",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "an authenticated sender may use as MAIL FROM only its own addresses and aliases",
    },
    {
        .key = "smtp.timeout_command",
        .type = SETTING_DURATION,
        .def = "5m",
        .min = 10,
        .max = 3600,
        .doc = "how long an SMTP session may wait for the next command (RFC 5321 4.5.3.2.7)",
    },
    {
        .key = "smtp.timeout_data",
        .type = SETTING_DURATION,
        .def = "3m",
        .min = 10,
        .max = 3600,
        .doc = "how long an SMTP session may wait for the next block of DATA (RFC 5321 4.5.3.2.5)",
    },
    {
        .key = "relay.pop_before_smtp_minutes",
        .type = SETTING_INT,
        .def = "0",
        .min = 0,
        .max = 1440,
        .doc = "minutes a successful POP3 or IMAP login lets its IP relay through the smtp service (0 = off)",
    },
    /* Access control (docs/access.md): per service, live; a setting whose
     * key ends in _group names an IP group, and ipgroup.del refuses to
     * delete a group such a setting names. */
    {
        .key = "service.smtp.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new smtp connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.smtp.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to smtp (empty: everyone)",
    },
    {
        .key = "service.submission.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new submission connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.submission.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to submission (empty: everyone)",
    },
    {
        .key = "service.submissions.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new submissions connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.submissions.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to submissions (empty: everyone)",
    },
    {
        .key = "service.imap.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new imap connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.imap.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to imap (empty: everyone)",
    },
    {
        .key = "service.imaps.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new imaps connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.imaps.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to imaps (empty: everyone)",
    },
    {
        .key = "service.pop3.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new pop3 connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.pop3.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to pop3 (empty: everyone)",
    },
    {
        .key = "service.pop3s.enabled",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "accept new pop3s connections (no: refused with the protocol's own refusal; the listener stays bound)",
    },
    {
        .key = "service.pop3s.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may connect to pop3s (empty: everyone)",
    },
    {
        .key = "relay.allow_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients may relay without AUTH (empty: none)",
    },
    {
        .key = "relay.open",
        .type = SETTING_BOOL,
        .def = "no",
        .doc = "let everyone relay (an open relay: warned about at every start)",
    },
    {
        .key = "pop3.allow_plaintext_auth",
        .type = SETTING_BOOL,
        .def = "no",
        .doc = "allow USER/PASS and AUTH on POP3 before TLS",
    },
    {
        .key = "pop3.retr_marks_seen",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "RETR sets the message's \\Seen flag",
    },
    {
        .key = "pop3.timeout",
        .type = SETTING_DURATION,
        .def = "10m",
        .min = 600,
        .max = 86400,
        .doc = "idle time before a POP3 session is closed (RFC 1939: at least 10 minutes)",
    },
    {
        .key = "pop3.timeout_login",
        .type = SETTING_DURATION,
        .def = "60s",
        .min = 10,
        .max = 3600,
        .doc = "time a POP3 client has to log in",
    },
    {
        .key = "pop3.max_connections_per_ip",
        .type = SETTING_INT,
        .def = "20",
        .min = 0,
        .max = 100000,
        .doc = "concurrent POP3 connections from one IP address (0 = no limit)",
    },
    {
        .key = "imap.allow_plaintext_auth",
        .type = SETTING_BOOL,
        .def = "no",
        .doc = "allow LOGIN and AUTHENTICATE on IMAP before TLS",
    },
    {
        .key = "imap.timeout_login",
        .type = SETTING_DURATION,
        .def = "60s",
        .min = 10,
        .max = 3600,
        .doc = "time an IMAP client has to log in",
    },
    {
        .key = "imap.max_connections_per_ip",
        .type = SETTING_INT,
        .def = "20",
        .min = 0,
        .max = 100000,
        .doc = "concurrent IMAP connections from one IP address (0 = no limit)",
    },
    {
        .key = "imap.timeout_idle",
        .type = SETTING_DURATION,
        .def = "30m",
        .min = 1800,
        .max = 86400,
        .doc = "idle time before a logged-in IMAP session is closed (RFC 3501: at least 30 minutes)",
    },
    {
        .key = "imap.max_errors",
        .type = SETTING_INT,
        .def = "10",
        .min = 1,
        .max = 1000,
        .doc = "BAD answers in one IMAP session before it is closed",
    },
    {
        .key = "pop3.max_errors",
        .type = SETTING_INT,
        .def = "10",
        .min = 1,
        .max = 1000,
        .doc = "failed commands in one POP3 session before it is closed",
    },
    /* Outbound delivery (src/queue, docs/queue.md).  delivery.routes and
     * delivery.relayhost have a syntax of their own: the queue runner
     * checks them when it uses them and logs a bad value (mail then waits). */
    {
        .key = "delivery.routes",
        .type = SETTING_STRING,
        .def = "",
        .doc = "per-domain routes: DOMAIN=direct|reject|relay:HOST:PORT [tls=require], comma-separated",
    },
    {
        .key = "delivery.relayhost",
        .type = SETTING_STRING,
        .def = "",
        .doc = "HOST:PORT or [ADDRESS]:PORT that takes all outbound mail not routed by delivery.routes (empty: MX lookup)",
    },
    {
        .key = "delivery.relayhost_username",
        .type = SETTING_STRING,
        .def = "",
        .doc = "AUTH user name for delivery.relayhost (empty: no AUTH); sent only over TLS",
    },
    {
        .key = "delivery.relayhost_password",
        .type = SETTING_STRING,
        .def = "",
        .doc = "AUTH password for delivery.relayhost",
    },
    {
        .key = "delivery.relayhost_tls",
        .type = SETTING_ENUM,
        .def = "may",
        .choices = delivery_tls_choices,
        .doc = "STARTTLS to delivery.relayhost: required, or used when offered",
    },
    {
        .key = "delivery.port",
        .type = SETTING_INT,
        .def = "25",
        .min = 1,
        .max = 65535,
        .doc = "TCP port of MX hosts for direct delivery",
    },
    {
        .key = "delivery.max_connections",
        .type = SETTING_INT,
        .def = "20",
        .min = 0,
        .max = 10000,
        .doc = "outbound SMTP sessions at once (0 = delivery paused: mail stays queued)",
    },
    {
        .key = "delivery.max_connections_per_domain",
        .type = SETTING_INT,
        .def = "5",
        .min = 1,
        .max = 1000,
        .doc = "outbound SMTP sessions at once to one recipient domain",
    },
    {
        .key = "dns.resolver",
        .type = SETTING_STRING,
        .def = "",
        .doc = "DNS server for outbound delivery, ADDR or ADDR:PORT (empty: those of /etc/resolv.conf)",
    },
    /* Anti-abuse (src/access, docs/abuse.md): DNS blacklists, limits per
     * client IP, the outbreak brake.  dnsbl.zones has a syntax of its own,
     * checked where it is used (a bad value is logged, nothing checked). */
    {
        .key = "dnsbl.zones",
        .type = SETTING_STRING,
        .def = "",
        .doc = "DNS blacklists asked at connect on the smtp service: ZONE[=reject|mark], comma-separated (reject when no action)",
    },
    {
        .key = "dnsbl.timeout",
        .type = SETTING_DURATION,
        .def = "5s",
        .min = 1,
        .max = 60,
        .doc = "how long the greeting waits for the DNS blacklists; no answer counts as not listed",
    },
    {
        .key = "dnsbl.exempt_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients are not checked against the DNS blacklists (empty: none)",
    },
    {
        .key = "smtp.reject_unresolvable_sender",
        .type = SETTING_ENUM,
        .def = "no",
        .choices = smtp_unresolvable_sender_choices,
        .doc = "MAIL FROM a domain with no MX, A or AAAA record on the smtp service: no (accept), reject (550 5.1.8) or defer (450 4.1.8)",
    },
    {
        .key = "smtp.sender_check_tempfail",
        .type = SETTING_ENUM,
        .def = "defer",
        .choices = smtp_sender_tempfail_choices,
        .doc = "when smtp.reject_unresolvable_sender is on and the sender domain's lookup fails or times out: defer (451 4.4.3, as Postfix's unknown_address_tempfail_action) or accept",
    },
    {
        .key = "limits.exempt_group",
        .type = SETTING_STRING,
        .def = "",
        .doc = "IP group whose clients the limits per client IP (and smtp.max_connections_per_ip) leave alone (empty: none)",
    },
    {
        .key = "limits.messages_per_hour",
        .type = SETTING_INT,
        .def = "1000",
        .min = 0,
        .max = 10000000,
        .doc = "messages one client IP may send in an hour without authenticating; more get 452 4.7.1 (0 = no limit)",
    },
    {
        .key = "limits.unknown_recipients",
        .type = SETTING_INT,
        .def = "50",
        .min = 0,
        .max = 100000,
        .doc = "unknown local recipients from one client IP in an hour before it is blocked for limits.block_time (0 = no limit)",
    },
    {
        .key = "limits.block_time",
        .type = SETTING_DURATION,
        .def = "30m",
        .min = 1,
        .max = 7 * 86400,
        .doc = "how long a client IP that crossed limits.unknown_recipients is refused (421 at connect, 450 to commands)",
    },
    {
        .key = "abuse.account_messages_per_hour",
        .type = SETTING_INT,
        .def = "500",
        .min = 0,
        .max = 10000000,
        .doc = "messages an authenticated account may send in an hour before the outbreak brake stops it (0 = no limit)",
    },
    {
        .key = "abuse.account_messages_per_day",
        .type = SETTING_INT,
        .def = "2000",
        .min = 0,
        .max = 100000000,
        .doc = "messages an authenticated account may send in a day before the outbreak brake stops it (0 = no limit)",
    },
    {
        .key = "abuse.account_recipients_per_hour",
        .type = SETTING_INT,
        .def = "1000",
        .min = 0,
        .max = 10000000,
        .doc = "distinct recipients an authenticated account may send to in an hour before the outbreak brake stops it (0 = no limit)",
    },
    {
        .key = "abuse.auto_suspend",
        .type = SETTING_BOOL,
        .def = "yes",
        .doc = "when the outbreak brake stops an account, also suspend its right to send until keelctl user unsuspend",
    },
    {
        .key = "queue.retry_schedule",
        .type = SETTING_STRING,
        .def = "5m,10m,30m,1h,2h,4h",
        .doc = "delays between delivery attempts; after the last, the last again",
    },
    {
        .key = "queue.warn_after",
        .type = SETTING_DURATION,
        .def = "4h",
        .min = 0,
        .max = 30 * 86400,
        .doc = "age of undelivered mail when the sender gets one delay warning (0 = never)",
    },
    {
        .key = "queue.max_age",
        .type = SETTING_DURATION,
        .def = "5d",
        .min = 1,
        .max = 90 * 86400,
        .doc = "age after which undelivered mail is bounced",
    },
    /* Accountability (src/trace): how long and how much the trace log keeps. */
    {
        .key = "trace.retention",
        .type = SETTING_DURATION,
        .def = "90d",
        .min = 3600,
        .max = 3650 * 86400,
        .doc = "age after which trace events are deleted by the background job",
    },
    {
        .key = "trace.level",
        .type = SETTING_ENUM,
        .def = "full",
        .choices = trace_level_choices,
        .doc = "full: every event; delivery: without IMAP/POP3 access events; off: no events",
    },
    /* Interception (docs/trace.md): how often an order with --to gets its
     * account's new access events by mail. */
    {
        .key = "intercept.event_interval",
        .type = SETTING_DURATION,
        .def = "1h",
        .min = 1,
        .max = 7 * 86400,
        .doc = "least time between two event-log messages of an interception order with --to",
    },
};

#define SETTINGS_N (sizeof(settings_registry) / sizeof(settings_registry[0]))

/* Current values, indexed like the registry.  A reader copies out under the
 * read lock, so a concurrent update never shows a half-written value. */
struct setting_value {
	char text[STORE_VALUE_MAX + 1];
	int64_t num;
	bool set;
};

static pthread_rwlock_t settings_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct setting_value settings_values[SETTINGS_N];
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

/* Error texts that name a range are built per thread. */
static __thread char settings_errbuf[256];

const struct setting_def *settings_all(size_t *n_r)
{
	*n_r = SETTINGS_N;
	return settings_registry;
}

static int settings_index(const char *key)
{
	for (size_t i = 0; i < SETTINGS_N; i++)
		if (strcmp(settings_registry[i].key, key) == 0)
			return (int)i;
	return -1;
}

const struct setting_def *settings_find(const char *key)
{
	int i = settings_index(key);

	return i < 0 ? NULL : &settings_registry[i];
}

/* Parses an unsigned decimal number followed by an optional unit; units maps
 * each accepted suffix letter (lower case) to its multiplier. */
static int settings_parse_scaled(const char *value, const char *letters, const int64_t *multipliers,
                                 int64_t *num_r)
{
	const char *p = value;
	uint64_t n = 0;
	int64_t mult = 1;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '\0') {
		const char *u = strchr(letters, tolower((unsigned char)*p));
		if (u == NULL)
			return -1;
		mult = multipliers[u - letters];
		p++;
	}
	if (*p != '\0' || n > (uint64_t)(INT64_MAX / mult))
		return -1;
	*num_r = (int64_t)n * mult;
	return 0;
}

int settings_parse_size(const char *value, int64_t *bytes_r)
{
	static const int64_t mult[] = {1, 1LL << 10, 1LL << 20, 1LL << 30, 1LL << 40};

	return settings_parse_scaled(value, "bkmgt", mult, bytes_r);
}

int settings_parse_duration(const char *value, int64_t *seconds_r)
{
	static const int64_t mult[] = {1, 60, 3600, 86400, 7 * 86400};

	return settings_parse_scaled(value, "smhdw", mult, seconds_r);
}

static int settings_parse_int(const char *value, int64_t *num_r)
{
	char *end;
	long long n;

	if (*value == '\0' || isspace((unsigned char)*value))
		return -1;
	errno = 0;
	n = strtoll(value, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*num_r = n;
	return 0;
}

static int settings_parse_bool(const char *value, bool *b_r)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(value, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -1;
}

static int settings_validate_number(const struct setting_def *def, const char *value,
                                    int64_t *num_r, const char **error_r)
{
	int ret;

	switch (def->type) {
	case SETTING_INT:
		ret = settings_parse_int(value, num_r);
		*error_r = "expected an integer like 10";
		break;
	case SETTING_SIZE:
		ret = settings_parse_size(value, num_r);
		*error_r = "expected a size like 123, 10K, 50M or 2G";
		break;
	default:
		ret = settings_parse_duration(value, num_r);
		*error_r = "expected a duration like 30s, 5m, 4h, 5d or a number of seconds";
		break;
	}
	if (ret < 0)
		return -1;
	if (*num_r < def->min || *num_r > def->max) {
		if (def->max == INT64_MAX)
			snprintf(settings_errbuf, sizeof(settings_errbuf),
			         "must be at least %" PRId64, def->min);
		else
			snprintf(settings_errbuf, sizeof(settings_errbuf),
			         "must be between %" PRId64 " and %" PRId64, def->min, def->max);
		*error_r = settings_errbuf;
		return -1;
	}
	return 0;
}

static int settings_validate_enum(const struct setting_def *def, const char *value,
                                  const char **canon_r, const char **error_r)
{
	size_t len = 0;

	for (const char *const *c = def->choices; *c != NULL; c++) {
		if (strcasecmp(*c, value) == 0) {
			*canon_r = *c;
			return 0;
		}
	}
	len = (size_t)snprintf(settings_errbuf, sizeof(settings_errbuf), "expected one of:");
	for (const char *const *c = def->choices; *c != NULL && len < sizeof(settings_errbuf); c++)
		len += (size_t)snprintf(settings_errbuf + len, sizeof(settings_errbuf) - len,
		                        "%s %s", c == def->choices ? "" : ",", *c);
	*error_r = settings_errbuf;
	return -1;
}

static int settings_validate_string(const char *value, const char **error_r)
{
	if (strlen(value) > STORE_VALUE_MAX) {
		*error_r = "too long";
		return -1;
	}
	for (const char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*error_r = "control characters are not allowed";
			return -1;
		}
	}
	return 0;
}

int settings_validate(const struct setting_def *def, const char *value, char *canon,
                      size_t canon_size, const char **error_r)
{
	const char *text = value;
	int64_t num;
	bool b;
	int len;

	switch (def->type) {
	case SETTING_BOOL:
		if (settings_parse_bool(value, &b) < 0) {
			*error_r = "expected yes or no";
			return -1;
		}
		text = b ? "yes" : "no";
		break;
	case SETTING_INT:
	case SETTING_SIZE:
	case SETTING_DURATION:
		if (settings_validate_number(def, value, &num, error_r) < 0)
			return -1;
		len = snprintf(canon, canon_size, "%" PRId64, num);
		if (len < 0 || (size_t)len >= canon_size) {
			*error_r = "value too long";
			return -1;
		}
		return 0;
	case SETTING_ENUM:
		if (settings_validate_enum(def, value, &text, error_r) < 0)
			return -1;
		break;
	case SETTING_STRING:
		if (settings_validate_string(value, error_r) < 0)
			return -1;
		break;
	}
	if (strlen(text) >= canon_size) {
		*error_r = "value too long";
		return -1;
	}
	strcpy(canon, text);
	return 0;
}

/* Stores a canonical value into slot i; the caller holds the write lock. */
static void settings_store_value(size_t i, const char *canon, bool set)
{
	struct setting_value *v = &settings_values[i];
	const struct setting_def *def = &settings_registry[i];

	snprintf(v->text, sizeof(v->text), "%s", canon);
	v->set = set;
	v->num = 0;
	if (def->type == SETTING_BOOL)
		v->num = strcmp(canon, "yes") == 0;
	else if (def->type == SETTING_INT || def->type == SETTING_SIZE ||
	         def->type == SETTING_DURATION)
		v->num = strtoll(canon, NULL, 10);
}

static void settings_default(size_t i)
{
	char canon[STORE_VALUE_MAX + 1];
	const char *error;

	/* A default that fails its own validation is a broken registry. */
	if (settings_validate(&settings_registry[i], settings_registry[i].def, canon, sizeof(canon),
	                      &error) < 0)
		fatal("settings: default of %s is invalid: %s", settings_registry[i].key, error);
	settings_store_value(i, canon, false);
}

static void settings_init_defaults(void)
{
	pthread_rwlock_wrlock(&settings_lock);
	for (size_t i = 0; i < SETTINGS_N; i++)
		settings_default(i);
	pthread_rwlock_unlock(&settings_lock);
}

static void settings_init(void)
{
	pthread_once(&settings_once, settings_init_defaults);
}

static void settings_load_one(const struct store_setting *s)
{
	int i = settings_index(s->key);
	char canon[STORE_VALUE_MAX + 1];
	const char *error;

	if (i < 0) {
		log_warn("settings", "key=%s event=ignored reason=\"unknown setting\"", s->key);
		return;
	}
	if (settings_validate(&settings_registry[i], s->value, canon, sizeof(canon), &error) < 0) {
		log_warn("settings", "key=%s event=ignored reason=\"%s\"", s->key, error);
		return;
	}
	pthread_rwlock_wrlock(&settings_lock);
	settings_store_value((size_t)i, canon, true);
	pthread_rwlock_unlock(&settings_lock);
}

int settings_load(struct store_reader *r)
{
	struct store_setting *list;
	size_t n;

	settings_init();
	if (store_setting_list(r, &list, &n) < 0)
		return -1;
	pthread_rwlock_wrlock(&settings_lock);
	for (size_t i = 0; i < SETTINGS_N; i++)
		settings_default(i);
	pthread_rwlock_unlock(&settings_lock);
	for (size_t i = 0; i < n; i++)
		settings_load_one(&list[i]);
	free(list);
	return 0;
}

static size_t settings_index_or_die(const char *key)
{
	int i = settings_index(key);

	/* Code asking for a setting that is not registered is a programming
	 * error, never a user's. */
	if (i < 0)
		fatal("settings: unknown key %s", key);
	settings_init();
	return (size_t)i;
}

void settings_update(const char *key, const char *value)
{
	size_t i = settings_index_or_die(key);

	pthread_rwlock_wrlock(&settings_lock);
	if (value == NULL)
		settings_default(i);
	else
		settings_store_value(i, value, true);
	pthread_rwlock_unlock(&settings_lock);
}

void settings_get(const char *key, char *buf, size_t size)
{
	size_t i = settings_index_or_die(key);

	pthread_rwlock_rdlock(&settings_lock);
	snprintf(buf, size, "%s", settings_values[i].text);
	pthread_rwlock_unlock(&settings_lock);
}

int64_t settings_get_int(const char *key)
{
	size_t i = settings_index_or_die(key);
	enum setting_type type = settings_registry[i].type;
	int64_t n;

	if (type != SETTING_INT && type != SETTING_SIZE && type != SETTING_DURATION &&
	    type != SETTING_BOOL)
		fatal("settings: %s is not a number", key);

	pthread_rwlock_rdlock(&settings_lock);
	n = settings_values[i].num;
	pthread_rwlock_unlock(&settings_lock);
	return n;
}

bool settings_get_bool(const char *key)
{
	const struct setting_def *def = settings_find(key);

	if (def != NULL && def->type != SETTING_BOOL)
		fatal("settings: %s is not a bool", key);
	return settings_get_int(key) != 0;
}

bool settings_is_set(const char *key)
{
	size_t i = settings_index_or_die(key);
	bool set;

	pthread_rwlock_rdlock(&settings_lock);
	set = settings_values[i].set;
	pthread_rwlock_unlock(&settings_lock);
	return set;
}
