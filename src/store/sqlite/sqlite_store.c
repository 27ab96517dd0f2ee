/* Opening and closing the SQLite store: schema migrations, blob segments,
 * the committer; readers; counters. */
#include "store/sqlite/sqlite_private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "lib/xalloc.h"

static __thread char store_open_error[768];

/* Migration N takes the schema from version N-1 to N.  Never edit one that
 * has shipped: add the next. */
static const char *const store_migrations[] = {
	NULL,
	/* 1: everything. */
	"CREATE TABLE domains ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	" alias_of INTEGER REFERENCES domains(id),"
	" created INTEGER NOT NULL);"
	"CREATE INDEX domains_alias_of ON domains(alias_of) WHERE alias_of IS NOT NULL;"
	/* One namespace per domain: what an address is, in one lookup. */
	"CREATE TABLE addresses ("
	" domain_id INTEGER NOT NULL REFERENCES domains(id),"
	" localpart TEXT NOT NULL COLLATE NOCASE,"
	" kind INTEGER NOT NULL," /* 1 user, 2 alias, 3 group */
	" target_id INTEGER NOT NULL,"
	" PRIMARY KEY (domain_id, localpart)) WITHOUT ROWID;"
	"CREATE UNIQUE INDEX addresses_target ON addresses(kind, target_id);"
	"CREATE TABLE users ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused */
	" domain_id INTEGER NOT NULL REFERENCES domains(id),"
	" localpart TEXT NOT NULL,"
	" name TEXT NOT NULL DEFAULT '',"
	" password_hash TEXT NOT NULL DEFAULT '',"
	" quota INTEGER NOT NULL DEFAULT 0,"
	" used INTEGER NOT NULL DEFAULT 0,"
	" enabled INTEGER NOT NULL DEFAULT 1,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX users_domain ON users(domain_id);"
	"CREATE TABLE aliases ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" domain_id INTEGER NOT NULL REFERENCES domains(id),"
	" localpart TEXT NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX aliases_domain ON aliases(domain_id);"
	"CREATE TABLE alias_targets ("
	" alias_id INTEGER NOT NULL REFERENCES aliases(id) ON DELETE CASCADE,"
	" position INTEGER NOT NULL,"
	" user_id INTEGER REFERENCES users(id),"
	" address TEXT,"
	" CHECK ((user_id IS NULL) <> (address IS NULL)),"
	" PRIMARY KEY (alias_id, position)) WITHOUT ROWID;"
	"CREATE INDEX alias_targets_user ON alias_targets(user_id) WHERE user_id IS NOT NULL;"
	"CREATE TABLE groups ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" domain_id INTEGER NOT NULL REFERENCES domains(id),"
	" localpart TEXT NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX groups_domain ON groups(domain_id);"
	"CREATE TABLE group_members ("
	" group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,"
	" user_id INTEGER NOT NULL REFERENCES users(id),"
	" PRIMARY KEY (group_id, user_id)) WITHOUT ROWID;"
	"CREATE INDEX group_members_user ON group_members(user_id);"
	"CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE mailboxes ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" user_id INTEGER NOT NULL REFERENCES users(id),"
	" name TEXT NOT NULL,"
	" special_use INTEGER NOT NULL DEFAULT 0,"
	" subscribed INTEGER NOT NULL DEFAULT 1,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL DEFAULT 1,"
	" highestmodseq INTEGER NOT NULL DEFAULT 0,"
	" messages INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (user_id, name));"
	"CREATE TABLE blobs ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" sha256 BLOB NOT NULL UNIQUE,"
	" size INTEGER NOT NULL,"
	" segment INTEGER NOT NULL,"
	" offset INTEGER NOT NULL,"
	" refcount INTEGER NOT NULL,"
	" created INTEGER NOT NULL);"
	"CREATE INDEX blobs_location ON blobs(segment, offset);"
	"CREATE INDEX blobs_dead ON blobs(id) WHERE refcount = 0;"
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" flags INTEGER NOT NULL DEFAULT 0,"
	" keywords TEXT NOT NULL DEFAULT '',"
	" internaldate INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" blob_id INTEGER NOT NULL REFERENCES blobs(id),"
	" envelope TEXT,"
	" bodystructure TEXT,"
	" UNIQUE (mailbox_id, uid));"
	"CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);"
	"CREATE INDEX messages_blob ON messages(blob_id);"
	"CREATE TABLE trace ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time INTEGER NOT NULL,"
	" queue_id TEXT,"
	" message_id TEXT,"
	" event TEXT,"
	" account TEXT COLLATE NOCASE,"
	" protocol TEXT,"
	" client_ip TEXT,"
	" session TEXT,"
	" sender TEXT COLLATE NOCASE,"
	" rcpt TEXT COLLATE NOCASE,"
	" detail TEXT);"
	"CREATE INDEX trace_time ON trace(time);"
	"CREATE INDEX trace_queue_id ON trace(queue_id, time) WHERE queue_id IS NOT NULL;"
	"CREATE INDEX trace_message_id ON trace(message_id, time) WHERE message_id IS NOT NULL;"
	"CREATE INDEX trace_account ON trace(account, time) WHERE account IS NOT NULL;"
	"CREATE INDEX trace_client_ip ON trace(client_ip, time) WHERE client_ip IS NOT NULL;"
	"CREATE INDEX trace_sender ON trace(sender, time) WHERE sender IS NOT NULL;"
	"CREATE INDEX trace_rcpt ON trace(rcpt, time) WHERE rcpt IS NOT NULL;",
	/* 2: the outbound queue, one row per remote recipient. */
	"CREATE TABLE queue ("
	" id INTEGER PRIMARY KEY,"
	" queue_id TEXT NOT NULL,"
	" blob_id INTEGER NOT NULL REFERENCES blobs(id),"
	" size INTEGER NOT NULL,"
	" sender TEXT NOT NULL,"
	" sender_domain TEXT NOT NULL COLLATE NOCASE,"
	" rcpt TEXT NOT NULL,"
	" rcpt_domain TEXT NOT NULL COLLATE NOCASE,"
	" orcpt TEXT, notify INTEGER NOT NULL DEFAULT 0,"
	" envid TEXT, ret INTEGER NOT NULL DEFAULT 0, body INTEGER NOT NULL DEFAULT 0,"
	" smtputf8 INTEGER NOT NULL DEFAULT 0,"
	" message_id TEXT, auth_user TEXT, client_ip TEXT,"
	" state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
	" created INTEGER NOT NULL, next_attempt INTEGER NOT NULL, last_reply TEXT);"
	"CREATE INDEX queue_due ON queue(state, next_attempt);"
	"CREATE INDEX queue_queue_id ON queue(queue_id);"
	"CREATE INDEX queue_sender ON queue(sender);"
	"CREATE INDEX queue_rcpt_domain ON queue(rcpt_domain);"
	"CREATE INDEX queue_auth_user ON queue(auth_user) WHERE auth_user IS NOT NULL;"
	"CREATE INDEX queue_client_ip ON queue(client_ip) WHERE client_ip IS NOT NULL;"
	"CREATE INDEX queue_blob ON queue(blob_id);",
	/* 3: expunged uids, for QRESYNC's VANISHED (RFC 7162).  uids are never
	 * reused in a mailbox, so (mailbox_id, uid) is a key; rows go with
	 * their mailbox. */
	"CREATE TABLE expunged ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),"
	" uid INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);",
	/* 4: queue management and per-domain outbound identity.  Filters on
	 * addresses compare case-insensitively, so their indexes are NOCASE
	 * (the binary ones they replace served no query); each index ends in
	 * the rowid, so "field = ? AND id > ? ORDER BY id" pages without a
	 * sort.  queue_state serves a filter on one state alone. */
	"DROP INDEX queue_sender;"
	"DROP INDEX queue_auth_user;"
	"CREATE INDEX queue_sender ON queue(sender COLLATE NOCASE);"
	"CREATE INDEX queue_sender_domain ON queue(sender_domain);"
	"CREATE INDEX queue_rcpt ON queue(rcpt COLLATE NOCASE);"
	"CREATE INDEX queue_auth_user ON queue(auth_user COLLATE NOCASE)"
	" WHERE auth_user IS NOT NULL;"
	"CREATE INDEX queue_state ON queue(state);"
	"ALTER TABLE domains ADD COLUMN source_ip4 TEXT;"
	"ALTER TABLE domains ADD COLUMN source_ip6 TEXT;"
	"ALTER TABLE domains ADD COLUMN ehlo_name TEXT;",
	/* 5: structure computed at delivery (FETCH BODY and BODY[section]
	 * without parsing) and the full-text index for SEARCH.  One index row
	 * per message (rowid = messages.id): trigram, so that any substring of
	 * three characters or more is found exactly, case folded.  The trigger
	 * drops a message's row on every way a message goes (expunge, mailbox
	 * or user deletion), whoever deletes it. */
	[5] = "ALTER TABLE messages ADD COLUMN body TEXT;"
	"ALTER TABLE messages ADD COLUMN structure BLOB;"
	"CREATE VIRTUAL TABLE message_text USING fts5(header, nested, body,"
	" tokenize = 'trigram');"
	"CREATE TRIGGER messages_text_gone AFTER DELETE ON messages BEGIN"
	" DELETE FROM message_text WHERE rowid = old.id;"
	" END;",
	/* 6: accountability (docs/trace.md).  A blob's Message-ID, set at
	 * delivery from the envelope, lets IMAP and POP3 access events name the
	 * message they touched; it lives on the blob (the content it describes)
	 * so that COPY and MOVE, which copy message rows, keep it for free.  The
	 * audit log is hash-chained: see src/trace/trace_audit.h.  AUTOINCREMENT
	 * keeps ids dense and never reused, so a removed record leaves a gap. */
	[6] = "ALTER TABLE blobs ADD COLUMN message_id TEXT;"
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time INTEGER NOT NULL,"
	" actor TEXT NOT NULL,"
	" command TEXT NOT NULL,"
	" args TEXT NOT NULL,"
	" before TEXT NOT NULL,"
	" after TEXT NOT NULL,"
	" hash TEXT NOT NULL);"
	"CREATE INDEX audit_time ON audit(time);",
	/* 7: lawful interception (docs/trace.md).  One row per order: copies of
	 * the account's mail and its access events go to to_address or into
	 * dir, never both.  events_sent is the highest trace id already handed
	 * over, so a restart neither repeats nor skips events.  Keyed by user
	 * id so that an online rename keeps the order. */
	[7] = "CREATE TABLE intercepts ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" user_id INTEGER NOT NULL REFERENCES users(id),"
	" to_address TEXT,"
	" dir TEXT,"
	" case_id TEXT NOT NULL DEFAULT '',"
	" created INTEGER NOT NULL,"
	" events_sent INTEGER NOT NULL DEFAULT 0,"
	" CHECK ((to_address IS NULL) <> (dir IS NULL)));"
	"CREATE INDEX intercepts_user ON intercepts(user_id);",
	/* 8: access control and anti-abuse (docs/access.md).  IP address groups
	 * with their entries (host, range, CIDR or group:NAME; exclude removes
	 * addresses); services' rules live in settings.  An account whose right
	 * to send was suspended by the outbreak brake (or an admin) keeps the
	 * reason and time until `keelctl user unsuspend`. */
	[8] = "CREATE TABLE ipgroups ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE COLLATE NOCASE,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE ipgroup_entries ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" group_id INTEGER NOT NULL REFERENCES ipgroups(id),"
	" entry TEXT NOT NULL,"
	" exclude INTEGER NOT NULL DEFAULT 0,"
	" comment TEXT NOT NULL DEFAULT '',"
	" UNIQUE (group_id, entry, exclude));"
	"ALTER TABLE users ADD COLUMN send_suspended INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE users ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE users ADD COLUMN suspended_at INTEGER NOT NULL DEFAULT 0;",
	/* 9: trace.level = off (docs/trace.md): no trace event is kept, from any
	 * writer (the pipeline, the queue runner, admin actions), without each
	 * asking the setting: the insert is skipped where every event lands.
	 * SMTP, IMAP and POP3 sessions ask trace_recorded() as well, so their
	 * events are not even queued for a write. */
	[9] = "CREATE TRIGGER trace_level_off BEFORE INSERT ON trace"
	" WHEN (SELECT value FROM settings WHERE key = 'trace.level') = 'off'"
	" BEGIN SELECT RAISE(IGNORE); END;",
	/* 10: an IMAP SELECT lists every message's uid and flags (docs/imap.md,
	 * "Big folders").  From the table that reads every row, envelope and
	 * body structure included: thousands of pages for a big folder.  This
	 * index holds just what the listing needs, a dozen bytes a message; a
	 * flag change rewrites one more leaf page. */
	[10] = "CREATE INDEX messages_view ON messages(mailbox_id, uid, flags, keywords);",
};

static int store_schema_version(struct store *s, int64_t *version_r)
{
	static const char sql[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
	sqlite3_stmt *st = sq_get(&s->w, sql);

	if (st == NULL || sq_row(st) <= 0) {
		sqlite3_reset(st);
		return -1;
	}
	*version_r = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

static int store_migrate_to(struct store *s, int version)
{
	static const char sql[] = "INSERT INTO schema_migrations(version, applied) VALUES(?, ?)";
	sqlite3_stmt *st;

	if (sqlite3_exec(s->w.db, store_migrations[version], NULL, NULL, NULL) != SQLITE_OK ||
	    (st = sq_get(&s->w, sql)) == NULL)
		return -1;
	sqlite3_bind_int(st, 1, version);
	sqlite3_bind_int64(st, 2, (int64_t)time(NULL));
	if (sq_run(st) < 0)
		return -1;
	log_info("store", "event=schema_migrated version=%d", version);
	return 0;
}

/* Brings the schema up to STORE_SCHEMA_VERSION in one transaction, so that a
 * crash half-way leaves the old schema, not a mix. */
static int store_migrate(struct store *s)
{
	int64_t version;

	if (sq_exec(&s->w, "BEGIN IMMEDIATE") < 0)
		goto db_error;
	if (sqlite3_exec(s->w.db,
			 "CREATE TABLE IF NOT EXISTS schema_migrations ("
			 " version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    store_schema_version(s, &version) < 0)
		goto db_error;
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(store_open_error, sizeof(store_open_error),
			 "data dir %s has schema version %lld; this keeld supports up to %d: use "
			 "a newer keeld", s->data_dir, (long long)version, STORE_SCHEMA_VERSION);
		sq_exec(&s->w, "ROLLBACK");
		return -1;
	}
	for (int v = (int)version + 1; v <= STORE_SCHEMA_VERSION; v++)
		if (store_migrate_to(s, v) < 0)
			goto db_error;
	if (sq_exec(&s->w, "COMMIT") < 0)
		goto db_error;
	return 0;
db_error:
	snprintf(store_open_error, sizeof(store_open_error), "migrating %s: %s", s->db_path,
		 sqlite3_errmsg(s->w.db));
	if (!sqlite3_get_autocommit(s->w.db))
		sq_exec(&s->w, "ROLLBACK");
	return -1;
}

/* The end of the last committed blob record: where the segment scan starts. */
static int store_blobs_open(struct store *s)
{
	static const char sql[] =
		"SELECT segment, offset, size FROM blobs ORDER BY segment DESC, offset DESC "
		"LIMIT 1";
	sqlite3_stmt *st = sq_get(&s->w, sql);
	uint32_t segment = 0;
	uint64_t end = 0;
	const char *error;
	int ret;

	if (st == NULL || (ret = sq_row(st)) < 0) {
		snprintf(store_open_error, sizeof(store_open_error), "reading %s: %s",
			 s->db_path, sqlite3_errmsg(s->w.db));
		sqlite3_reset(st);
		return -1;
	}
	if (ret == 1) {
		segment = (uint32_t)sqlite3_column_int64(st, 0);
		end = (uint64_t)sqlite3_column_int64(st, 1) +
		      blob_record_size((uint64_t)sqlite3_column_int64(st, 2));
	}
	sqlite3_reset(st);
	if (blob_store_open(s->blob_dir, 0, segment, end, &s->blobs, &error) < 0) {
		snprintf(store_open_error, sizeof(store_open_error), "%s", error);
		return -1;
	}
	return 0;
}

static void store_free(struct store *s)
{
	sqlite_watch_deinit(s);
	blob_store_close(&s->blobs);
	sq_conn_close(&s->w);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->data_dir);
	free(s->db_path);
	free(s->blob_dir);
	free(s);
}

int store_open(const char *data_dir, struct store **store_r, const char **error_r)
{
	struct store *s = xcalloc(1, sizeof(*s));
	const char *error;

	*error_r = store_open_error;
	s->data_dir = xstrdup(data_dir);
	s->db_path = xasprintf("%s/keel.db", data_dir);
	s->blob_dir = xasprintf("%s/blobs", data_dir);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	sqlite_watch_init(s);
	if (mkdir(data_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(store_open_error, sizeof(store_open_error), "creating data dir %s: %s",
			 data_dir, strerror(errno));
		store_free(s);
		return -1;
	}
	if (sq_conn_open(&s->w, s->db_path, true, &error) < 0) {
		snprintf(store_open_error, sizeof(store_open_error), "%s", error);
		store_free(s);
		return -1;
	}
	if (store_migrate(s) < 0 || store_blobs_open(s) < 0) {
		store_free(s);
		return -1;
	}
	if (store_committer_start(s, &error) < 0) {
		snprintf(store_open_error, sizeof(store_open_error), "%s", error);
		store_free(s);
		return -1;
	}
	log_info("store", "event=opened data_dir=%s schema=%d", data_dir, STORE_SCHEMA_VERSION);
	*store_r = s;
	return 0;
}

void store_close(struct store **sp)
{
	struct store *s = *sp;

	if (s == NULL)
		return;
	store_committer_stop(s);
	store_free(s);
	*sp = NULL;
}

int store_reader_open(struct store *store, struct store_reader **reader_r,
		      const char **error_r)
{
	struct store_reader *r = xcalloc(1, sizeof(*r));

	if (sq_conn_open(&r->c, store->db_path, false, error_r) < 0) {
		free(r);
		return -1;
	}
	r->store = store;
	r->blobs = blob_reader_new(store->blob_dir);
	*reader_r = r;
	return 0;
}

void store_reader_close(struct store_reader **rp)
{
	struct store_reader *r = *rp;

	if (r == NULL)
		return;
	sq_conn_close(&r->c);
	blob_reader_free(&r->blobs);
	free(r);
	*rp = NULL;
}

void sqlite_read_failed(struct store_reader *r, const char *what)
{
	log_error("store", "event=read_failed what=%s error=\"%s\"", what,
		  sqlite3_errmsg(r->c.db));
}

/* Counts rows: fine for `keelctl status` and tests, not for a hot path. */
void store_stats(struct store_reader *r, struct store_stats *stats_r)
{
	static const char sql[] =
		"SELECT (SELECT COUNT(*) FROM domains), (SELECT COUNT(*) FROM users),"
		" (SELECT COUNT(*) FROM aliases), (SELECT COUNT(*) FROM groups),"
		" (SELECT COUNT(*) FROM mailboxes), (SELECT COUNT(*) FROM messages),"
		" (SELECT COUNT(*) FROM blobs WHERE refcount > 0),"
		" (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE refcount > 0),"
		" (SELECT COUNT(*) FROM queue WHERE state < 3)";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	uint64_t *counts[] = { &stats_r->domains,   &stats_r->users,    &stats_r->aliases,
			       &stats_r->groups,    &stats_r->mailboxes, &stats_r->messages,
			       &stats_r->blobs,     &stats_r->blob_bytes, &stats_r->queued };

	memset(stats_r, 0, sizeof(*stats_r));
	if (st != NULL && sq_row(st) == 1) {
		for (int i = 0; i < (int)(sizeof(counts) / sizeof(counts[0])); i++)
			*counts[i] = (uint64_t)sqlite3_column_int64(st, i);
	} else {
		sqlite_read_failed(r, "stats");
	}
	if (st != NULL)
		sqlite3_reset(st);
	stats_r->flushes = atomic_load(&r->store->flushes);
	stats_r->commits = atomic_load(&r->store->commits);
	stats_r->requests = atomic_load(&r->store->requests);
}

uint64_t store_flush_count(struct store *store)
{
	return atomic_load(&store->flushes);
}

void store_inject_flush_failures(struct store *store, unsigned n)
{
	atomic_store(&store->inject_failures, n);
}

bool store_flush_injected(struct store *s)
{
	unsigned n = atomic_load(&s->inject_failures);

	while (n > 0)
		if (atomic_compare_exchange_weak(&s->inject_failures, &n, n - 1))
			return true;
	return false;
}
