#include "auth/login.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/password.h"
#include "lib/workpool.h"
#include "lib/xalloc.h"

static char login_dummy_hash[STORE_HASH_MAX + 1];
static pthread_once_t login_dummy_once = PTHREAD_ONCE_INIT;

/* Made once, on a pool thread: a hash of a random password nobody knows. */
static void login_dummy_init(void)
{
	char password[PASSWORD_GENERATE_SIZE];
	const char *error;

	if (password_generate(password, sizeof(password)) < 0 ||
	    password_hash(password, login_dummy_hash, sizeof(login_dummy_hash), &error) < 0)
		login_dummy_hash[0] = '\0';
	explicit_bzero(password, sizeof(password));
}

struct login_job {
	auth_login_cb *cb;
	void *ctx;
	char hash[STORE_HASH_MAX + 1];
	char password[1024];
	bool known;
	struct auth_login_result result;
};

static void login_work(void *arg)
{
	struct login_job *job = arg;
	int ok;

	pthread_once(&login_dummy_once, login_dummy_init);
	ok = password_verify(job->known ? job->hash : login_dummy_hash, job->password);
	job->result.status = job->known && ok == 0 ? 0 : -1;
	explicit_bzero(job->password, sizeof(job->password));
}

static void login_done(void *arg)
{
	struct login_job *job = arg;

	job->cb(&job->result, job->ctx);
	explicit_bzero(job, sizeof(*job));
	free(job);
}

void auth_login_check(struct workpool *pool, struct store_reader *reader, struct loop *loop,
		      const char *username, const char *password, auth_login_cb *cb, void *ctx)
{
	struct login_job *job = xcalloc(1, sizeof(*job));
	struct store_user u;

	job->cb = cb;
	job->ctx = ctx;
	job->result.status = -1;
	snprintf(job->result.address, sizeof(job->result.address), "%s", username);
	snprintf(job->password, sizeof(job->password), "%s", password);
	if (store_user_get(reader, username, &u) == 0 && u.enabled) {
		job->known = true;
		job->result.user_id = u.id;
		snprintf(job->result.address, sizeof(job->result.address), "%s", u.address);
		snprintf(job->hash, sizeof(job->hash), "%s", u.password_hash);
	}
	explicit_bzero(&u, sizeof(u));
	workpool_run(pool, login_work, loop, login_done, job);
}
