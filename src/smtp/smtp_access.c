/* The SMTP session's access checks (docs/abuse.md): DNS blacklists at
 * connect, the sender domain check at MAIL, limits per client IP and the
 * outbreak brake.  The policies live in src/access; this file only ties
 * them to the session's states and replies.  A refusal names the list or
 * the limit in the reply, the log and the trace. */
#include "smtp/smtp_private.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/abuse.h"
#include "access/clientlimit.h"
#include "access/dnsbl.h"
#include "access/exempt.h"
#include "directory/directory.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

/* ---- connect: the block and the DNS blacklists ----------------------------- */

static void smtp_access_dnsbl_done(const struct dnsbl_result *r, void *ctx)
{
	struct smtp_session *s = ctx;

	s->access_check = NULL;
	if (!smtp_unref(s))
		return;
	if (r->marks[0] != '\0') {
		snprintf(s->dnsbl_marks, sizeof(s->dnsbl_marks), "%s", r->marks);
		log_info("smtp", "s=%s event=dnsbl_marked ip=%s zones=%s", s->id, s->peer_ip,
			 r->marks);
		smtp_trace(s, "dnsbl", NULL, "marked: client [%s] listed by %s", s->peer_ip,
			   r->marks);
	}
	if (r->rejected) {
		log_info("smtp", "s=%s event=refused ip=%s reason=dnsbl zone=%s", s->id,
			 s->peer_ip, r->zone);
		smtp_trace(s, "refused", NULL, "554 5.7.1 client [%s] listed by %s (dnsbl.zones)",
			   s->peer_ip, r->zone);
		smtp_reply(s, 554, "5.7.1", "Service unavailable; client [%s] listed by %s",
			   s->peer_ip, r->zone);
		smtp_close(s);
		return;
	}
	if (r->marks[0] == '\0')
		smtp_trace(s, "dnsbl", NULL, "client [%s] not listed", s->peer_ip);
	smtp_enter_state(s, SMTP_STATE_HELO);
	smtp_reply(s, 220, "", "%s ESMTP Keel", s->hostname);
	smtp_resume(s);
}

bool smtp_access_connect(struct smtp_session *s)
{
	char zones[STORE_VALUE_MAX + 1];
	time_t until;

	if (!s->limits_exempt && clientlimit_blocked(s->peer_ip, time(NULL), &until)) {
		log_info("smtp", "s=%s event=refused ip=%s reason=blocked until=%lld "
				 "limit=limits.unknown_recipients",
			 s->id, s->peer_ip, (long long)until);
		smtp_trace(s, "refused", NULL, "421 4.7.1 blocked for %lld s more "
					       "(limits.unknown_recipients)",
			   (long long)(until - time(NULL)));
		smtp_reply(s, 421, "4.7.1",
			   "%s Too many unknown recipients from %s (limits.unknown_recipients=%lld); "
			   "try again later",
			   s->hostname, s->peer_ip,
			   (long long)settings_get_int("limits.unknown_recipients"));
		smtp_close(s);
		return true;
	}
	if (s->service != SMTP_SERVICE_MX)
		return false;
	/* No lists (the usual case): nothing to look up, nothing to allocate. */
	settings_get("dnsbl.zones", zones, sizeof(zones));
	if (zones[0] == '\0')
		return false;
	if (exempt_ip("dnsbl.exempt_group", s->peer_ip)) {
		smtp_trace(s, "dnsbl", NULL, "skipped: client in dnsbl.exempt_group");
		return false;
	}
	s->access_check = dnsbl_check_start(loop_base(s->loop), s->peer_ip,
					    smtp_access_dnsbl_done, s);
	if (s->access_check == NULL)
		return false;
	smtp_ref(s);
	smtp_enter_state(s, SMTP_STATE_WAIT);
	return true;
}

void smtp_access_cancel(struct smtp_session *s)
{
	if (s->access_check == NULL)
		return;
	dnsbl_check_cancel(&s->access_check);
	smtp_unref(s);
}

/* ---- MAIL: per-IP limits, the outbreak brake, the sender domain -------------- */

static void smtp_access_sender_init(struct smtp_session *s, struct abuse_sender *a)
{
	memset(a, 0, sizeof(*a));
	a->store = s->env->store;
	a->reader = s->reader;
	a->pipeline = s->env->pipeline;
	a->loop = s->loop;
	a->hostname = s->hostname;
	a->user_id = s->auth_user_id;
	a->account = s->auth_user;
	a->client_ip = s->peer_ip;
	a->session = s->id;
	a->protocol = smtp_protocol_name(s);
}

/* The outbreak brake for an authenticated session; rcpts as abuse_check. */
static bool smtp_access_brake(struct smtp_session *s, size_t rcpts, const char *rcpt)
{
	struct abuse_sender a;
	struct abuse_refusal r;

	if (!s->authenticated)
		return true;
	smtp_access_sender_init(s, &a);
	if (abuse_check(&a, rcpts, &s->brake_seen, &r) == 0)
		return true;
	log_info("smtp", "s=%s event=refused account=%s ip=%s reply=\"%u %s %s\"", s->id,
		 s->auth_user, s->peer_ip, r.code, r.enhanced, r.text);
	smtp_trace(s, "abuse", rcpt, "refused %u %s %s", r.code, r.enhanced, r.text);
	smtp_reply(s, r.code, r.enhanced, "%s", r.text);
	return false;
}

/* 450 while the client is blocked. */
static bool smtp_access_not_blocked(struct smtp_session *s)
{
	time_t until;

	if (s->limits_exempt || !clientlimit_blocked(s->peer_ip, time(NULL), &until))
		return true;
	smtp_trace(s, "refused", NULL, "450 4.7.1 blocked (limits.unknown_recipients)");
	smtp_reply(s, 450, "4.7.1", "Too many unknown recipients from %s "
				    "(limits.unknown_recipients=%lld); try again later",
		   s->peer_ip, (long long)settings_get_int("limits.unknown_recipients"));
	return false;
}

bool smtp_access_mail(struct smtp_session *s)
{
	int64_t max = settings_get_int("limits.messages_per_hour");

	if (!smtp_access_not_blocked(s))
		return false;
	if (!s->authenticated && !s->limits_exempt &&
	    clientlimit_messages_over(s->peer_ip, (unsigned)max, time(NULL))) {
		log_info("smtp", "s=%s event=refused ip=%s limit=limits.messages_per_hour max=%lld",
			 s->id, s->peer_ip, (long long)max);
		smtp_trace(s, "refused", NULL, "452 4.7.1 limits.messages_per_hour=%lld reached",
			   (long long)max);
		smtp_reply(s, 452, "4.7.1", "Too many messages from %s (limits.messages_per_hour=%lld)",
			   s->peer_ip, (long long)max);
		return false;
	}
	return smtp_access_brake(s, 0, NULL);
}

static bool smtp_access_tempfail_defers(void)
{
	char mode[16];

	settings_get("smtp.sender_check_tempfail", mode, sizeof(mode));
	return strcmp(mode, "defer") == 0;
}

static void smtp_access_sender_done(enum dnsbl_sender v, void *ctx)
{
	struct smtp_session *s = ctx;
	char mode[16];
	const char *domain;

	s->access_check = NULL;
	if (!smtp_unref(s))
		return;
	domain = strrchr(s->sender, '@') + 1;
	settings_get("smtp.reject_unresolvable_sender", mode, sizeof(mode));
	if (v == DNSBL_SENDER_NONE) {
		bool reject = strcmp(mode, "reject") == 0;
		log_info("smtp", "s=%s event=refused ip=%s from=<%s> reason=unresolvable_sender",
			 s->id, s->peer_ip, s->sender);
		smtp_trace(s, "mail", NULL, "rejected %s: sender domain %s has no MX, A or AAAA "
					    "(smtp.reject_unresolvable_sender=%s)",
			   reject ? "550 5.1.8" : "450 4.1.8", domain, mode);
		if (reject)
			smtp_reply(s, 550, "5.1.8", "<%s>: Sender address rejected: domain %s has "
						    "no MX, A or AAAA record", s->sender, domain);
		else
			smtp_reply(s, 450, "4.1.8", "<%s>: Sender address rejected: domain %s has "
						    "no MX, A or AAAA record", s->sender, domain);
		smtp_transaction_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
	} else if (v == DNSBL_SENDER_UNKNOWN && smtp_access_tempfail_defers()) {
		log_info("smtp", "s=%s event=sender_check_failed from=<%s> action=defer", s->id,
			 s->sender);
		smtp_trace(s, "mail", NULL, "rejected 451 4.4.3: sender domain %s could not be "
					    "looked up (smtp.sender_check_tempfail=defer)", domain);
		smtp_reply(s, 451, "4.4.3", "<%s>: Sender address rejected: cannot look up domain "
					    "%s now; try again later", s->sender, domain);
		smtp_transaction_reset(s);
		smtp_enter_state(s, SMTP_STATE_READY);
	} else {
		if (v == DNSBL_SENDER_UNKNOWN)
			log_info("smtp", "s=%s event=sender_check_failed from=<%s> "
					 "action=accept", s->id, s->sender);
		smtp_mail_accept(s);
	}
	smtp_resume(s);
}

bool smtp_access_sender(struct smtp_session *s)
{
	char mode[16];
	const char *at = strrchr(s->sender, '@');

	settings_get("smtp.reject_unresolvable_sender", mode, sizeof(mode));
	if (strcmp(mode, "no") == 0 || s->authenticated || at == NULL ||
	    directory_is_local_domain(s->reader, at + 1))
		return false;
	s->access_check = dnsbl_sender_start(loop_base(s->loop), at + 1,
					     smtp_access_sender_done, s);
	if (s->access_check == NULL)
		return false;
	smtp_ref(s);
	smtp_enter_state(s, SMTP_STATE_WAIT);
	return true;
}

/* ---- RCPT and after ------------------------------------------------------------ */

bool smtp_access_rcpt(struct smtp_session *s)
{
	return smtp_access_not_blocked(s) && smtp_access_brake(s, s->n_rcpts + 1, NULL);
}

bool smtp_access_rcpt_unknown(struct smtp_session *s, const char *address,
			      const struct directory_result *res)
{
	int64_t max = settings_get_int("limits.unknown_recipients");

	if (res->reason != DIRECTORY_REJECT_UNKNOWN_USER || s->limits_exempt ||
	    !clientlimit_unknown_rcpt(s->peer_ip, (unsigned)max,
				      settings_get_int("limits.block_time"), time(NULL)))
		return false;
	log_info("smtp", "s=%s event=blocked ip=%s limit=limits.unknown_recipients max=%lld "
			 "for=%llds",
		 s->id, s->peer_ip, (long long)max,
		 (long long)settings_get_int("limits.block_time"));
	smtp_trace(s, "rcpt", address, "rejected 421 4.7.1: limits.unknown_recipients=%lld "
				       "reached, client blocked for %lld s",
		   (long long)max, (long long)settings_get_int("limits.block_time"));
	smtp_reply(s, 421, "4.7.1", "%s Too many unknown recipients from %s "
				    "(limits.unknown_recipients=%lld); try again later",
		   s->hostname, s->peer_ip, (long long)max);
	smtp_close(s);
	return true;
}

void smtp_access_accepted(struct smtp_session *s)
{
	struct abuse_sender a;

	if (s->authenticated) {
		smtp_access_sender_init(s, &a);
		abuse_accepted(&a, s->n_rcpts);
	} else if (!s->limits_exempt) {
		clientlimit_message_count(s->peer_ip, time(NULL));
	}
}

char *smtp_access_headers(struct smtp_session *s, char *received, size_t *len_r)
{
	char *h;

	if (s->dnsbl_marks[0] == '\0')
		return received;
	h = xasprintf("%sX-Keel-DNSBL: %s\r\n", received, s->dnsbl_marks);
	free(received);
	*len_r = strlen(h);
	return h;
}
