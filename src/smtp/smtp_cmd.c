/* The SMTP commands but AUTH, DATA and BDAT. */
#include "smtp/smtp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "access/access_policy.h"
#include "auth/relay_window.h"
#include "directory/directory.h"
#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "settings/settings.h"

static void smtp_greeted(struct smtp_session *s, const struct smtp_command *cmd, bool esmtp)
{
	smtp_transaction_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", cmd->domain);
	s->esmtp = esmtp;
	smtp_enter_state(s, SMTP_STATE_READY);
}

void smtp_cmd_ehlo(struct smtp_session *s, const struct smtp_command *cmd)
{
	bool tls_offer = !conn_is_tls(s->conn) && s->service != SMTP_SERVICE_SUBMISSIONS;

	smtp_greeted(s, cmd, true);
	conn_printf(s->conn, "250-%s Hello %s [%s]\r\n", s->hostname, s->helo, s->peer_ip);
	conn_printf(s->conn, "250-PIPELINING\r\n250-SIZE %lld\r\n",
		    (long long)settings_get_int("smtp.max_message_size"));
	if (tls_offer) {
		SSL_CTX *tls = s->env->tls_get(s->env->tls_arg);
		if (tls != NULL)
			conn_printf(s->conn, "250-STARTTLS\r\n");
		SSL_CTX_free(tls);
	}
	if (smtp_auth_offered(s))
		conn_printf(s->conn, "250-AUTH PLAIN LOGIN\r\n");
	conn_printf(s->conn, "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
			     "250-CHUNKING\r\n250-DSN\r\n250 SMTPUTF8\r\n");
}

void smtp_cmd_helo(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_greeted(s, cmd, false);
	smtp_reply(s, 250, "2.0.0", "%s", s->hostname);
}

/* smtp.sender_login_match: an authenticated user sends as its own address
 * or an address (alias, group) that reaches it; <> is always allowed. */
static bool smtp_sender_owned(struct smtp_session *s, const char *sender)
{
	struct directory_result res;
	bool owned = false;

	if (sender[0] == '\0' || strcasecmp(sender, s->auth_user) == 0)
		return true;
	if (directory_resolve(s->reader, sender, &res) == 0 && res.status == DIRECTORY_LOCAL)
		for (size_t i = 0; i < res.n_users && !owned; i++)
			owned = res.users[i].id == s->auth_user_id;
	directory_result_free(&res);
	return owned;
}

void smtp_cmd_mail(struct smtp_session *s, const struct smtp_command *cmd)
{
	char sender[STORE_ADDR_MAX + 1] = "";
	uint64_t max = (uint64_t)settings_get_int("smtp.max_message_size");

	if (s->service != SMTP_SERVICE_MX && !s->authenticated) {
		smtp_error(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if (!smtp_access_mail(s))
		return;
	if (!cmd->path.null)
		address_format(&cmd->path.addr, sender, sizeof(sender));
	if (cmd->mail.size_given && cmd->mail.size > max) {
		log_info("smtp", "s=%s event=rejected ip=%s limit=smtp.max_message_size max=%llu",
			 s->id, s->peer_ip, (unsigned long long)max);
		smtp_trace(s, "mail", NULL, "rejected: SIZE=%llu over %llu (smtp.max_message_size)",
			   (unsigned long long)cmd->mail.size, (unsigned long long)max);
		smtp_error(s, 552, "5.3.4",
			   "Message size exceeds fixed limit (smtp.max_message_size=%llu)",
			   (unsigned long long)max);
		return;
	}
	if (s->authenticated && settings_get_bool("smtp.sender_login_match") &&
	    !smtp_sender_owned(s, sender)) {
		smtp_trace(s, "mail", NULL, "rejected: <%s> not owned by %s", sender,
			   s->auth_user);
		smtp_error(s, 553, "5.7.1", "Sender address rejected: not owned by user %s",
			   s->auth_user);
		return;
	}
	smtp_transaction_reset(s);
	snprintf(s->sender, sizeof(s->sender), "%s", sender);
	s->mail = cmd->mail;
	s->max_size = max;
	if (!smtp_access_sender(s))
		smtp_mail_accept(s);
}

void smtp_mail_accept(struct smtp_session *s)
{
	smtp_enter_state(s, SMTP_STATE_MAIL);
	smtp_trace(s, "mail", NULL, "from=<%s> size=%llu", s->sender,
		   (unsigned long long)s->mail.size);
	smtp_reply(s, 250, "2.1.0", "Ok");
}

static void smtp_target_add(struct smtp_session *s, int64_t user_id, const char *address)
{
	struct pipeline_target *t;

	for (size_t i = 0; i < s->n_targets; i++) {
		t = &s->targets[i];
		if (user_id > 0 ? t->user_id == user_id
				: t->user_id == 0 && strcmp(t->address, address) == 0)
			return;
	}
	if (s->n_targets == s->targets_alloc) {
		s->targets_alloc = s->targets_alloc ? s->targets_alloc * 2 : 8;
		s->targets = xrealloc(s->targets, s->targets_alloc * sizeof(*s->targets));
	}
	t = &s->targets[s->n_targets++];
	memset(t, 0, sizeof(*t));
	t->user_id = user_id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	t->rcpt = s->n_rcpts;
}

static void smtp_rcpt_add(struct smtp_session *s, const char *address,
			  const struct smtp_command *cmd, const struct directory_result *res)
{
	struct pipeline_rcpt *r;

	for (size_t i = 0; i < res->n_users; i++)
		smtp_target_add(s, res->users[i].id, res->users[i].address);
	for (size_t i = 0; i < res->n_remote; i++)
		smtp_target_add(s, 0, res->remote[i]);
	if (s->n_rcpts == s->rcpts_alloc) {
		s->rcpts_alloc = s->rcpts_alloc ? s->rcpts_alloc * 2 : 8;
		s->rcpts = xrealloc(s->rcpts, s->rcpts_alloc * sizeof(*s->rcpts));
	}
	r = &s->rcpts[s->n_rcpts++];
	memset(r, 0, sizeof(*r));
	snprintf(r->address, sizeof(r->address), "%s", address);
	r->notify = cmd->rcpt.notify;
	if (cmd->rcpt.orcpt_type[0] != '\0')
		snprintf(r->orcpt, sizeof(r->orcpt), "%s;%s", cmd->rcpt.orcpt_type,
			 cmd->rcpt.orcpt_addr);
}

/* The reply for a directory refusal; the detail goes to the trace. */
static void smtp_rcpt_rejected(struct smtp_session *s, const char *address,
			       const struct directory_result *res)
{
	static const struct {
		unsigned code;
		const char *enhanced, *text;
	} replies[] = {
		[DIRECTORY_REJECT_NONE] = { 550, "5.1.1", "Recipient address rejected" },
		[DIRECTORY_REJECT_INVALID] = { 553, "5.1.3", "Bad recipient address syntax" },
		[DIRECTORY_REJECT_UNKNOWN_USER] = { 550, "5.1.1",
						    "Recipient address rejected: user unknown" },
		[DIRECTORY_REJECT_DISABLED] = { 550, "5.2.1",
						"Recipient address rejected: mailbox disabled" },
		[DIRECTORY_REJECT_LOOP] = { 550, "5.4.6", "Recipient address rejected: alias loop" },
		[DIRECTORY_REJECT_TOO_MANY] = { 550, "5.5.3",
						"Recipient address rejected: expands to too many "
						"recipients" },
		[DIRECTORY_REJECT_EMPTY] = { 550, "5.1.1",
					     "Recipient address rejected: no one to deliver to" },
		[DIRECTORY_REJECT_TEMPORARY] = { 451, "4.3.0", "Temporary lookup failure" },
	};

	smtp_trace(s, "rcpt", address, "rejected %u %s: %s (%s)", replies[res->reason].code,
		   replies[res->reason].enhanced, directory_reject_str(res->reason), res->error);
	smtp_error(s, replies[res->reason].code, replies[res->reason].enhanced, "<%s>: %s",
		   address, replies[res->reason].text);
}

/* 452 4.2.2 when the recipient is one user already at its quota; a user
 * reached through an alias or group is left to delivery, which sends a DSN
 * if it fails. */
static bool smtp_rcpt_over_quota(struct smtp_session *s, const struct directory_result *res)
{
	struct store_user u;

	if (res->n_users != 1 || res->n_remote != 0 ||
	    store_user_get_by_id(s->reader, res->users[0].id, &u) < 0)
		return false;
	return u.quota > 0 && u.used >= u.quota;
}

/* "postmaster" without a domain (RFC 5321 4.5.1): the server's own. */
static void smtp_postmaster_address(struct smtp_session *s, char *buf, size_t size)
{
	struct store_domain *domains = NULL;
	size_t n = 0;

	if (directory_is_local_domain(s->reader, s->hostname))
		snprintf(buf, size, "postmaster@%s", s->hostname);
	else if (store_domain_list(s->reader, &domains, &n) == 0 && n > 0)
		snprintf(buf, size, "postmaster@%s", domains[0].name);
	else
		snprintf(buf, size, "postmaster@%s", s->hostname);
	free(domains);
}

/* Relay (a recipient outside our domains) is for authenticated sessions,
 * clients in relay.allow_group (everyone with relay.open), and on the MX
 * service for an IP in its POP-before-SMTP window; each decision is traced
 * with its rule. */
static bool smtp_may_relay(struct smtp_session *s, const char *address)
{
	char rule[256], why[256];
	time_t until;

	if (s->authenticated) {
		smtp_trace(s, "relay", address, "allowed: authenticated as %s", s->auth_user);
		return true;
	}
	/* relay.open and relay.allow_group (docs/access.md). */
	if (access_relay_allowed(s->peer_ip, rule, why, sizeof(why))) {
		log_info("smtp", "s=%s event=relay_allowed ip=%s rcpt=%s rule=%s reason=\"%s\"",
			 s->id, s->peer_ip, address, rule, why);
		smtp_trace(s, "relay", address, "allowed by %s: %s", rule, why);
		return true;
	}
	smtp_trace(s, "relay", address, "not allowed by %s: %s", rule, why);
	if (s->service != SMTP_SERVICE_MX || settings_get_int("relay.pop_before_smtp_minutes") == 0 ||
	    !relay_window_check(s->env->relay_window, s->peer_ip, time(NULL), &until))
		return false;
	log_info("smtp", "s=%s event=relay_allowed ip=%s rcpt=%s reason=pop_before_smtp", s->id,
		 s->peer_ip, address);
	smtp_trace(s, "relay", address, "allowed by POP-before-SMTP (window until %lld)",
		   (long long)until);
	return true;
}

void smtp_cmd_rcpt(struct smtp_session *s, const struct smtp_command *cmd)
{
	int64_t max_rcpts = settings_get_int("smtp.max_recipients");
	char address[STORE_ADDR_MAX + 1];
	struct directory_result res;

	if (s->n_rcpts >= (size_t)max_rcpts) {
		log_info("smtp", "s=%s event=rejected ip=%s limit=smtp.max_recipients max=%lld",
			 s->id, s->peer_ip, (long long)max_rcpts);
		smtp_trace(s, "rcpt", NULL, "rejected 452 4.5.3: smtp.max_recipients=%lld",
			   (long long)max_rcpts);
		smtp_error(s, 452, "4.5.3", "Error: too many recipients (smtp.max_recipients=%lld)",
			   (long long)max_rcpts);
		return;
	}
	if (!smtp_access_rcpt(s))
		return;
	if (cmd->path.postmaster)
		smtp_postmaster_address(s, address, sizeof(address));
	else
		address_format(&cmd->path.addr, address, sizeof(address));
	if (directory_resolve(s->reader, address, &res) < 0) {
		if (!smtp_access_rcpt_unknown(s, address, &res))
			smtp_rcpt_rejected(s, address, &res);
	} else if (res.status == DIRECTORY_REMOTE && !smtp_may_relay(s, address)) {
		smtp_trace(s, "rcpt", address, "rejected 554 5.7.1: relay access denied");
		smtp_error(s, 554, "5.7.1", "<%s>: Relay access denied", address);
	} else if (smtp_rcpt_over_quota(s, &res)) {
		smtp_trace(s, "rcpt", address, "rejected 452 4.2.2: mailbox full");
		smtp_error(s, 452, "4.2.2", "<%s>: Mailbox full", address);
	} else {
		smtp_rcpt_add(s, address, cmd, &res);
		smtp_enter_state(s, SMTP_STATE_RCPT);
		smtp_trace(s, "rcpt", address, "accepted 250 2.1.5 (%s)",
			   res.status == DIRECTORY_REMOTE ? "relay" : "local");
		smtp_reply(s, 250, "2.1.5", "Ok");
	}
	directory_result_free(&res);
}

void smtp_cmd_rset(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_transaction_reset(s);
	if (s->state != SMTP_STATE_HELO)
		smtp_enter_state(s, SMTP_STATE_READY);
	smtp_reply(s, 250, "2.0.0", "Ok");
}

void smtp_cmd_noop(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_reply(s, 250, "2.0.0", "Ok");
}

/* Never says whether a user exists (RFC 5321 7.3). */
void smtp_cmd_vrfy(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message and attempt "
				    "delivery");
}

void smtp_cmd_expn(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_error(s, 502, "5.5.1", "EXPN not available");
}

void smtp_cmd_help(struct smtp_session *s, const struct smtp_command *cmd)
{
	conn_printf(s->conn, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP\r\n"
			     "214-2.0.0 QUIT VRFY HELP STARTTLS AUTH\r\n");
	smtp_reply(s, 214, "2.0.0", "See RFC 5321");
}

void smtp_cmd_quit(struct smtp_session *s, const struct smtp_command *cmd)
{
	smtp_reply(s, 221, "2.0.0", "Bye");
	smtp_close(s);
}

/* RFC 3207: after "220 Ready", whatever the client pipelined in plaintext
 * is thrown away (conn_starttls), and the session starts over: EHLO
 * again, no transaction, not authenticated. */
void smtp_cmd_starttls(struct smtp_session *s, const struct smtp_command *cmd)
{
	SSL_CTX *tls;

	if (conn_is_tls(s->conn) || s->service == SMTP_SERVICE_SUBMISSIONS) {
		smtp_error(s, 503, "5.5.1", "Error: TLS already active");
		return;
	}
	tls = s->env->tls_get(s->env->tls_arg);
	if (tls == NULL) {
		smtp_error(s, 454, "4.7.0", "TLS not available");
		return;
	}
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	conn_starttls(s->conn, tls);
	SSL_CTX_free(tls);
	smtp_transaction_reset(s);
	s->helo[0] = '\0';
	smtp_enter_state(s, SMTP_STATE_HELO);
}
