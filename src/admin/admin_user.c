/* user.add, user.list, user.show, user.passwd, user.rename, user.enable,
 * user.disable, user.set, user.del
 *
 * Passwords are hashed (argon2id, slow by design) on the work pool, never on
 * the admin loop, and wiped from memory once hashed.  A generated password
 * is returned once, in the reply to the command that set it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_abuse.h"
#include "admin/admin_request.h"
#include "auth/password.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"
#include "mail/address.h"
#include "settings/settings.h"
#include "store/store.h"

/* Longer passwords are refused: nobody types more, and argon2 would hash
 * megabytes. */
#define ADMIN_PASSWORD_MAX 1024

struct admin_password_job {
	struct admin_request *req;
	bool generated;
	char password[ADMIN_PASSWORD_MAX + 1];
	char hash[STORE_HASH_MAX + 1];
	int status;
	const char *error;
	/* what to do with the hash */
	int64_t user_id;                  /* user.passwd */
	char address[STORE_ADDR_MAX + 1]; /* user.add */
	char name[STORE_NAME_MAX + 1];
	uint64_t quota;
};

static int admin_user_lookup(struct admin_request *req, const char *arg, struct store_user *u_r)
{
	char canon[ADDRESS_MAX + 1];
	const char *address;

	if (admin_arg_string(req, arg, true, &address) < 0 ||
	    admin_check_local_address(req, address, canon, sizeof(canon)) < 0)
		return -1;
	if (store_user_get(req->host->reader, canon, u_r) < 0) {
		admin_request_fail(req, "not_found", "user %s does not exist", canon);
		return -1;
	}
	return 0;
}

/* Users live in a primary domain: an alias domain's addresses map onto it. */
static int admin_user_check_domain(struct admin_request *req, const char *address)
{
	const char *domain = strrchr(address, '@') + 1;
	struct store_domain d;

	if (store_domain_get(req->host->reader, domain, &d) < 0) {
		admin_request_fail(req, "not_found", "domain %s does not exist", domain);
		return -1;
	}
	if (d.alias_of != 0) {
		admin_request_fail(req, "invalid",
		                   "domain %s is an alias of %s: use an address "
		                   "in %s",
		                   domain, d.alias_of_name, d.alias_of_name);
		return -1;
	}
	return 0;
}

static int admin_user_check_name(struct admin_request *req, const char *name)
{
	if (strlen(name) > STORE_NAME_MAX) {
		admin_request_fail(req, "invalid", "name longer than %d characters",
		                   STORE_NAME_MAX);
		return -1;
	}
	for (const char *p = name; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			admin_request_fail(req, "invalid", "name contains a control character");
			return -1;
		}
	}
	return 0;
}

static json_t *admin_user_json(const struct store_user *u)
{
	return json_pack("{s:I, s:s, s:s, s:I, s:I, s:b, s:I}", "id", (json_int_t)u->id, "address",
	                 u->address, "name", u->name, "quota", (json_int_t)u->quota, "used",
	                 (json_int_t)u->used, "enabled", u->enabled, "created",
	                 (json_int_t)u->created);
}

/* ---- passwords ---------------------------------------------------------- */

static void admin_password_job_free(struct admin_password_job *job)
{
	explicit_bzero(job, sizeof(*job));
	free(job);
}

/* Takes the "password" argument, checked against the policy, or generates
 * one.  Returns a job, or NULL after answering the error. */
static struct admin_password_job *admin_password_job_new(struct admin_request *req)
{
	struct admin_password_job *job;
	const char *password = NULL, *error;
	int64_t min = settings_get_int("auth.password_min_length");

	if (admin_arg_string(req, "password", false, &password) < 0)
		return NULL;
	if (password != NULL && strlen(password) > ADMIN_PASSWORD_MAX) {
		admin_request_fail(req, "invalid", "password longer than %d characters",
		                   ADMIN_PASSWORD_MAX);
		return NULL;
	}
	if (password != NULL && password_policy_check(password, (unsigned)min, &error) < 0) {
		admin_request_fail(req, "invalid", "%s", error);
		return NULL;
	}
	job = xcalloc(1, sizeof(*job));
	job->req = req;
	if (password != NULL) {
		strcpy(job->password, password);
		return job;
	}
	/* A generated password always passes the policy: never shorter than the
	 * minimum length (the setting's maximum fits the buffer). */
	job->generated = true;
	if (password_generate(job->password,
	                      (min > PASSWORD_GENERATE_LEN ? (size_t)min : PASSWORD_GENERATE_LEN) +
	                          1) < 0) {
		admin_request_fail(req, "internal", "cannot generate a password: no randomness");
		admin_password_job_free(job);
		return NULL;
	}
	return job;
}

/* On a work pool thread. */
static void admin_password_hash_work(void *arg)
{
	struct admin_password_job *job = arg;

	job->status = password_hash(job->password, job->hash, sizeof(job->hash), &job->error);
	if (!job->generated)
		explicit_bzero(job->password, sizeof(job->password));
}

/* Hashes on the work pool, then runs done on the admin loop. */
static void admin_password_job_run(struct admin_password_job *job, loop_fn *done)
{
	workpool_run(job->req->host->workpool, admin_password_hash_work, job->req->host->loop, done,
	             job);
}

/* The result carries the password only when it was generated: that reply is
 * the only place it is ever shown. */
static int admin_password_job_result(struct admin_password_job *job)
{
	struct admin_request *req = job->req;

	if (job->status < 0) {
		admin_request_fail(req, "internal", "password hashing failed: %s",
		                   job->error != NULL ? job->error : "unknown error");
		admin_password_job_free(job);
		return -1;
	}
	if (job->generated)
		json_object_set_new(req->result, "password", json_string(job->password));
	return 0;
}

/* ---- user.add ------------------------------------------------------------ */

static void admin_user_add_hashed(void *arg)
{
	struct admin_password_job *job = arg;
	struct admin_request *req = job->req;

	if (admin_password_job_result(job) < 0)
		return;
	req->want_id = true;
	store_user_add(req->host->store, job->address, job->name, job->hash, job->quota,
	               req->host->loop, admin_request_store_done, req);
	admin_password_job_free(job);
}

/* args: address, name, password (absent: generated), quota (absent: the
 * user.default_quota setting). */
void admin_user_add(struct admin_request *req)
{
	const char *address, *name = "";
	char canon[ADDRESS_MAX + 1];
	uint64_t quota = 0;
	bool quota_set;
	struct admin_password_job *job;

	if (admin_arg_string(req, "address", true, &address) < 0 ||
	    admin_arg_string(req, "name", false, &name) < 0 ||
	    admin_arg_size(req, "quota", &quota, &quota_set) < 0 ||
	    admin_check_local_address(req, address, canon, sizeof(canon)) < 0 ||
	    admin_user_check_domain(req, canon) < 0 || admin_check_address_free(req, canon) < 0 ||
	    admin_user_check_name(req, name) < 0)
		return;
	if (!quota_set)
		quota = (uint64_t)settings_get_int("user.default_quota");
	job = admin_password_job_new(req);
	if (job == NULL)
		return;
	snprintf(job->address, sizeof(job->address), "%s", canon);
	snprintf(job->name, sizeof(job->name), "%s", name);
	job->quota = quota;
	req->result = json_pack("{s:s, s:s, s:I}", "address", canon, "name", name, "quota",
	                        (json_int_t)quota);
	admin_request_audit(req, "address=%s quota=%" PRIu64 " password=%s", canon, quota,
	                    job->generated ? "generated" : "given");
	admin_password_job_run(job, admin_user_add_hashed);
}

/* ---- user.passwd --------------------------------------------------------- */

static void admin_user_passwd_hashed(void *arg)
{
	struct admin_password_job *job = arg;
	struct admin_request *req = job->req;

	if (admin_password_job_result(job) < 0)
		return;
	store_user_set_password(req->host->store, job->user_id, job->hash, req->host->loop,
	                        admin_request_store_done, req);
	admin_password_job_free(job);
}

/* args: address, password (absent: generated). */
void admin_user_passwd(struct admin_request *req)
{
	struct store_user u;
	struct admin_password_job *job;

	if (admin_user_lookup(req, "address", &u) < 0)
		return;
	job = admin_password_job_new(req);
	if (job == NULL)
		return;
	job->user_id = u.id;
	req->result = json_pack("{s:s}", "address", u.address);
	admin_request_audit(req, "address=%s password=%s", u.address,
	                    job->generated ? "generated" : "given");
	admin_password_job_run(job, admin_user_passwd_hashed);
}

/* ---- reads --------------------------------------------------------------- */

/* args: domain (optional). */
void admin_user_list(struct admin_request *req)
{
	const char *domain = NULL;
	char canon[STORE_DOMAIN_MAX + 1];
	struct store_domain d;
	struct store_user *list;
	size_t n;
	json_t *result;

	if (admin_arg_string(req, "domain", false, &domain) < 0)
		return;
	if (domain != NULL) {
		snprintf(canon, sizeof(canon), "%s", domain);
		address_fold_case(canon);
		if (store_domain_get(req->host->reader, canon, &d) < 0) {
			admin_request_fail(req, "not_found", "domain %s does not exist", canon);
			return;
		}
		domain = canon;
	}
	if (store_user_list(req->host->reader, domain, &list, &n) < 0) {
		admin_request_fail(req, "io", "cannot read the user list");
		return;
	}
	result = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, admin_user_json(&list[i]));
	free(list);
	admin_request_ok(req, result);
}

static const char *admin_special_use_name(enum store_special_use use)
{
	static const char *const names[] = {
	    [STORE_SPECIAL_NONE] = "",
	    [STORE_SPECIAL_INBOX] = "inbox",
	    [STORE_SPECIAL_DRAFTS] = "\\Drafts",
	    [STORE_SPECIAL_SENT] = "\\Sent",
	    [STORE_SPECIAL_TRASH] = "\\Trash",
	    [STORE_SPECIAL_JUNK] = "\\Junk",
	    [STORE_SPECIAL_ARCHIVE] = "\\Archive",
	};

	return (unsigned)use < sizeof(names) / sizeof(names[0]) ? names[use] : "";
}

static json_t *admin_user_mailboxes(struct admin_request *req, int64_t user_id)
{
	struct store_mailbox *list;
	size_t n;
	json_t *result = json_array();

	if (store_mailbox_list(req->host->reader, user_id, &list, &n) < 0)
		return result;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(result, json_pack("{s:s, s:s, s:I, s:I}", "name",
		                                        list[i].name, "special_use",
		                                        admin_special_use_name(list[i].special_use),
		                                        "messages", (json_int_t)list[i].messages,
		                                        "size", (json_int_t)list[i].size));
	free(list);
	return result;
}

/* Aliases with a target that is this user (by id), and groups it is in. */
static void admin_user_links(struct admin_request *req, int64_t user_id, json_t *user)
{
	json_t *aliases = json_array(), *groups = json_array();
	struct store_alias *al;
	struct store_group *gl;
	size_t n;

	if (store_alias_list(req->host->reader, &al, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t t = 0; t < al[i].n_targets; t++)
				if (al[i].targets[t].user_id == user_id) {
					json_array_append_new(aliases, json_string(al[i].address));
					break;
				}
		store_alias_list_free(al, n);
	}
	if (store_group_list(req->host->reader, &gl, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			for (size_t m = 0; m < gl[i].n_members; m++)
				if (gl[i].member_ids[m] == user_id) {
					json_array_append_new(groups, json_string(gl[i].address));
					break;
				}
		store_group_list_free(gl, n);
	}
	json_object_set_new(user, "aliases", aliases);
	json_object_set_new(user, "groups", groups);
}

/* args: address. */
void admin_user_show(struct admin_request *req)
{
	struct store_user u;
	json_t *result;

	if (admin_user_lookup(req, "address", &u) < 0)
		return;
	result = admin_user_json(&u);
	json_object_set_new(result, "mailboxes", admin_user_mailboxes(req, u.id));
	admin_user_links(req, u.id, result);
	admin_abuse_show(req, u.id, result);
	admin_request_ok(req, result);
}

/* ---- other changes ------------------------------------------------------- */

/* args: address, new_address, keep_alias (default true). */
void admin_user_rename(struct admin_request *req)
{
	struct store_user u;
	const char *new_address;
	char canon[ADDRESS_MAX + 1];
	bool keep_alias = true;
	int64_t id;

	if (admin_user_lookup(req, "address", &u) < 0 ||
	    admin_arg_string(req, "new_address", true, &new_address) < 0 ||
	    admin_arg_bool(req, "keep_alias", &keep_alias) < 0 ||
	    admin_check_local_address(req, new_address, canon, sizeof(canon)) < 0 ||
	    admin_user_check_domain(req, canon) < 0)
		return;
	/* Changing only the case of one's own address is a rename too, and the
	 * old spelling is the same address: no alias. */
	if (store_address_kind(req->host->reader, canon, &id) == STORE_ADDR_USER && id == u.id)
		keep_alias = false;
	else if (admin_check_address_free(req, canon) < 0)
		return;
	req->result = json_pack("{s:I, s:s, s:s, s:b}", "id", (json_int_t)u.id, "address", canon,
	                        "old_address", u.address, "alias", keep_alias);
	admin_request_audit(req, "address=%s new_address=%s keep_alias=%s", u.address, canon,
	                    keep_alias ? "yes" : "no");
	store_user_rename(req->host->store, u.id, canon, keep_alias, req->host->loop,
	                  admin_request_store_done, req);
}

static void admin_user_set_enabled(struct admin_request *req, bool enabled)
{
	struct store_user u;

	if (admin_user_lookup(req, "address", &u) < 0)
		return;
	req->result = json_pack("{s:s, s:b}", "address", u.address, "enabled", enabled);
	admin_request_audit(req, "address=%s", u.address);
	store_user_set_enabled(req->host->store, u.id, enabled, req->host->loop,
	                       admin_request_store_done, req);
}

/* args: address. */
void admin_user_enable(struct admin_request *req)
{
	admin_user_set_enabled(req, true);
}

/* args: address. */
void admin_user_disable(struct admin_request *req)
{
	admin_user_set_enabled(req, false);
}

struct admin_user_set_state {
	struct admin_request *req;
	int64_t user_id;
	uint64_t quota;
};

/* The name is written first; the quota follows once it is durable, so that
 * a failure leaves at most the name changed and says so. */
static void admin_user_set_name_done(const struct store_reply *reply, void *ctx)
{
	struct admin_user_set_state *st = ctx;
	struct admin_request *req = st->req;

	if (reply->status < 0) {
		admin_request_fail_store(req, reply);
	} else {
		store_user_set_quota(req->host->store, st->user_id, st->quota, req->host->loop,
		                     admin_request_store_done, req);
	}
	free(st);
}

/* args: address, name and/or quota. */
void admin_user_set(struct admin_request *req)
{
	struct store_user u;
	const char *name = NULL;
	uint64_t quota = 0;
	bool quota_set;
	struct admin_user_set_state *st;

	if (admin_user_lookup(req, "address", &u) < 0 ||
	    admin_arg_string(req, "name", false, &name) < 0 ||
	    admin_arg_size(req, "quota", &quota, &quota_set) < 0 ||
	    (name != NULL && admin_user_check_name(req, name) < 0))
		return;
	if (name == NULL && !quota_set) {
		admin_request_fail(req, "usage", "nothing to set: give name or quota");
		return;
	}
	req->result = admin_user_json(&u);
	if (name != NULL)
		json_object_set_new(req->result, "name", json_string(name));
	if (quota_set)
		json_object_set_new(req->result, "quota", json_integer((json_int_t)quota));
	admin_request_audit(req, "address=%s%s quota=%" PRIu64, u.address,
	                    name != NULL ? " name=changed" : "", quota_set ? quota : u.quota);
	if (name == NULL) {
		store_user_set_quota(req->host->store, u.id, quota, req->host->loop,
		                     admin_request_store_done, req);
		return;
	}
	if (!quota_set) {
		store_user_set_name(req->host->store, u.id, name, req->host->loop,
		                    admin_request_store_done, req);
		return;
	}
	st = xcalloc(1, sizeof(*st));
	st->req = req;
	st->user_id = u.id;
	st->quota = quota;
	store_user_set_name(req->host->store, u.id, name, req->host->loop, admin_user_set_name_done,
	                    st);
}

/* args: address. */
void admin_user_del(struct admin_request *req)
{
	struct store_user u;

	if (admin_user_lookup(req, "address", &u) < 0)
		return;
	req->result = json_pack("{s:I, s:s}", "id", (json_int_t)u.id, "address", u.address);
	admin_request_audit(req, "address=%s id=%" PRId64, u.address, u.id);
	store_user_del(req->host->store, u.id, req->host->loop, admin_request_store_done, req);
}
