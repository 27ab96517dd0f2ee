/* QUOTA (RFC 9208, the STORAGE resource only): one quota root, "", per
 * user, holding every mailbox; limits and usage come from the user record
 * (users.quota and users.used, in bytes; IMAP counts KiB).  SETQUOTA is an
 * administrator's job (keelctl user quota) and is refused. */
#include "imap/imap_private.h"

#include <string.h>

static void imap_quota_line(struct imap_session *s, const struct store_user *u)
{
	if (u->quota == 0)
		imap_untagged(s, "QUOTA \"\" ()");
	else
		imap_untagged(s, "QUOTA \"\" (STORAGE %llu %llu)",
			      (unsigned long long)((u->used + 1023) / 1024),
			      (unsigned long long)(u->quota / 1024));
}

void imap_cmd_getquotaroot(struct imap_session *s, const struct imap_arg *args)
{
	char name[STORE_MAILBOX_MAX + 1];
	struct store_mailbox m;
	struct store_user u;

	if (imap_mailbox_name(s, &args[0], name, sizeof(name)) < 0 || args[1].type != IMAP_ARG_EOL) {
		imap_bad(s, "GETQUOTAROOT needs a mailbox name");
		return;
	}
	if (store_mailbox_get(s->reader, s->user_id, name, &m) < 0) {
		imap_no(s, "[NONEXISTENT] Mailbox does not exist");
		return;
	}
	if (store_user_get_by_id(s->reader, s->user_id, &u) < 0) {
		imap_no(s, "[UNAVAILABLE] GETQUOTAROOT failed, try again later");
		return;
	}
	imap_printf(s, "* QUOTAROOT ");
	imap_write_mailbox(s, m.name);
	imap_printf(s, " \"\"\r\n");
	imap_quota_line(s, &u);
	imap_ok(s, "GETQUOTAROOT completed");
}

void imap_cmd_getquota(struct imap_session *s, const struct imap_arg *args)
{
	struct store_user u;
	size_t len;

	if (imap_arg_string(&args[0], &len) == NULL || args[1].type != IMAP_ARG_EOL) {
		imap_bad(s, "GETQUOTA needs a quota root");
		return;
	}
	if (len != 0) {
		imap_no(s, "[NONEXISTENT] No such quota root");
		return;
	}
	if (store_user_get_by_id(s->reader, s->user_id, &u) < 0) {
		imap_no(s, "[UNAVAILABLE] GETQUOTA failed, try again later");
		return;
	}
	imap_quota_line(s, &u);
	imap_ok(s, "GETQUOTA completed");
}

void imap_cmd_setquota(struct imap_session *s, const struct imap_arg *args)
{
	imap_no(s, "[NOPERM] Quotas are set by the administrator");
}
