/* Address resolution: the one place that decides what an address is.
 *
 * SMTP RCPT, the queue, the pipeline, keelctl and everyone else ask
 * directory_resolve() and act on its result; nobody else interprets domains,
 * aliases or groups.  It only reads (through the calling thread's store
 * reader), so it is safe on a loop thread: each step is one indexed lookup.
 *
 * Rules, in order:
 *
 *  - The address is parsed with src/mail/address.h (SMTPUTF8 allowed: the
 *    caller decides whether UTF-8 was permitted on its connection).  The
 *    domain is matched case-insensitively.  A domain that is not in the store
 *    (or an address literal) is not ours: DIRECTORY_REMOTE, with the address
 *    itself, canonical, as the only remote address.
 *  - A domain that is an alias of another (store_domain.alias_of) maps to its
 *    primary: user@alias.test reaches exactly what user@primary.test reaches.
 *  - The local part is matched case-insensitively.  When it names nothing,
 *    a subaddress is cut ("user+tag" -> "user", at the first '+') and that
 *    is looked up instead, so user+tag@d reaches user@d unless user+tag@d
 *    itself exists; the same goes for aliases and groups.  A quoted local
 *    part that is not a Dot-string ("a b"@d, "u@remote"@d) names nothing
 *    local: DIRECTORY_REJECT_UNKNOWN_USER.  Open-relay forms such as
 *    u%remote@d or remote!u@d are plain local parts and are never routed to
 *    "remote".
 *  - A user is a local recipient.  A user reached directly (by its address,
 *    through an alias domain or a subaddress) who is disabled is rejected:
 *    DIRECTORY_REJECT_DISABLED.
 *  - An alias expands to its targets, recursively: a user (kept by id, so a
 *    rename follows), another local alias or group, or a remote address.
 *    A group expands to its member users.  A disabled user reached through
 *    an alias or group is skipped silently (counted in n_skipped), like a
 *    target that names nothing (a dangling target left after a delete):
 *    the alias still delivers to everyone else.  An expansion that ends
 *    with nobody is DIRECTORY_REJECT_EMPTY, never an accepted black hole.
 *  - Duplicates are merged: each user once (by id), each remote address
 *    once (case-insensitive domain, exact local part).
 *  - An alias or group met again while it is still being expanded is a
 *    loop: DIRECTORY_REJECT_LOOP; so is nesting deeper than
 *    DIRECTORY_DEPTH_MAX.  One met again after its expansion finished (a
 *    diamond: a -> b, a -> c, b -> d, c -> d) is not a loop; it is simply
 *    not expanded twice.  More than DIRECTORY_RECIPIENTS_MAX recipients, or
 *    more than DIRECTORY_STEPS_MAX targets looked at, is
 *    DIRECTORY_REJECT_TOO_MANY.  Every path ends: resolution never hangs.
 *
 * Renames: store_user_rename() keeps the id.  The user's new address
 * resolves to it; with keep_alias the old address is an alias whose target
 * is the user's id, so old@d resolves to the same id too, and the result
 * carries the user's current (new) address.
 *
 * Example, with example.test primary, alias.test an alias domain of it,
 * users bob (id 7) and ann (id 9, disabled), alias team -> bob, ann,
 * friend@remote.test:
 *     BOB@Alias.Test      LOCAL   users {7 bob@example.test}
 *     bob+lists@alias.test LOCAL  users {7 bob@example.test}
 *     team@example.test   LOCAL   users {7}, remote {friend@remote.test},
 *                                 n_skipped 1 (ann)
 *     ann@example.test    REJECT  DISABLED
 *     nobody@example.test REJECT  UNKNOWN_USER
 *     x@elsewhere.test    REMOTE  remote {x@elsewhere.test}
 */
#ifndef KEEL_DIRECTORY_DIRECTORY_H
#define KEEL_DIRECTORY_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define DIRECTORY_DEPTH_MAX            20    /* nested aliases/groups */
#define DIRECTORY_RECIPIENTS_MAX       1000  /* users + remote addresses */
#define DIRECTORY_STEPS_MAX            10000 /* targets and members looked at */
#define DIRECTORY_SUBADDRESS_DELIMITER '+'

enum directory_status {
	/* The address is ours (in a local or alias domain) and accepted:
	 * deliver to users and forward to remote (either may be empty, not
	 * both). */
	DIRECTORY_LOCAL,
	/* Not ours: remote holds the address itself.  Whether it may be relayed
	 * is the caller's policy, not the directory's. */
	DIRECTORY_REMOTE,
	/* Refused: see reason. */
	DIRECTORY_REJECT,
};

enum directory_reject {
	DIRECTORY_REJECT_NONE = 0,
	DIRECTORY_REJECT_INVALID,      /* not an address (syntax) */
	DIRECTORY_REJECT_UNKNOWN_USER, /* our domain, no such user, alias or group */
	DIRECTORY_REJECT_DISABLED,     /* a disabled user, addressed directly */
	DIRECTORY_REJECT_LOOP,         /* alias loop, or nesting too deep */
	DIRECTORY_REJECT_TOO_MANY,     /* expansion past the limits */
	DIRECTORY_REJECT_EMPTY,        /* an alias/group expanding to nobody */
	/* The store answered inconsistently (a record vanished between two
	 * lookups): try again later (4xx), unlike every other reason (5xx). */
	DIRECTORY_REJECT_TEMPORARY,
};

struct directory_user {
	int64_t id;
	char address[STORE_ADDR_MAX + 1]; /* the user's current, canonical address */
};

struct directory_result {
	enum directory_status status;
	enum directory_reject reason; /* DIRECTORY_REJECT_NONE unless rejected */
	/* Detail for logs and replies, e.g. "alias loop at b@example.test";
	 * "" when accepted. */
	char error[STORE_ADDR_MAX + 64];
	/* The address as resolved: canonical, domain lower-cased and, for an
	 * alias domain, replaced by its primary; "" when invalid. */
	char address[STORE_ADDR_MAX + 1];
	size_t n_users;
	struct directory_user *users; /* distinct, in order of discovery */
	size_t n_remote;
	char (*remote)[STORE_ADDR_MAX + 1]; /* distinct canonical addresses */
	size_t n_skipped; /* disabled or dangling targets left out of an expansion */
};

/* Resolves address (bare "local@domain", no angle brackets) with reader r.
 * Always fills *res_r; returns 0 when the address is accepted
 * (DIRECTORY_LOCAL or DIRECTORY_REMOTE) and -1 when it is rejected
 * (DIRECTORY_REJECT; then users and remote are empty).  The caller frees
 * the result with directory_result_free() in both cases. */
int directory_resolve(struct store_reader *r, const char *address, struct directory_result *res_r);
/* Frees the lists and empties the result; safe to call twice. */
void directory_result_free(struct directory_result *res);

/* Whether domain (any case) is one of ours: a primary or an alias domain. */
bool directory_is_local_domain(struct store_reader *r, const char *domain);

/* "unknown user", "disabled", "alias loop", ... for logs and replies. */
const char *directory_reject_str(enum directory_reject reason);

#endif
