/* Passwords: argon2id hashing and verification (libargon2), random
 * passwords, and the strength policy for new passwords.
 *
 * Hashes are PHC strings, "$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH", kept
 * in store_user.password_hash.  The cost parameters are the constants
 * below (OWASP's argon2id recommendation); a hash made with other
 * parameters still verifies, and password_needs_rehash() says when to
 * replace it after a successful login.
 *
 * Slow on purpose: password_hash() and password_verify() take tens of
 * milliseconds and PASSWORD_M_COST KiB of memory each.  Callers on a loop
 * thread must run them through the work pool (src/lib/workpool.h) and carry
 * on in the done callback; they never call them on the loop itself.  All
 * functions are thread-safe. */
#ifndef KEEL_AUTH_PASSWORD_H
#define KEEL_AUTH_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_T_COST      2     /* passes */
#define PASSWORD_M_COST      19456 /* KiB (19 MiB) */
#define PASSWORD_PARALLELISM 1     /* lanes */
#define PASSWORD_SALT_LEN    16    /* octets, from getrandom() */
#define PASSWORD_HASH_LEN    32    /* octets of raw hash */
/* Room for a PHC string made by password_hash(), NUL included. */
#define PASSWORD_HASH_SIZE 128

/* Length of password_generate()'s passwords, and the buffer they need. */
#define PASSWORD_GENERATE_LEN  16
#define PASSWORD_GENERATE_SIZE (PASSWORD_GENERATE_LEN + 1)

/* Hashes password with a fresh random salt into hash_r (size bytes; use
 * PASSWORD_HASH_SIZE).  Returns 0, or -1 with *error_r (no randomness,
 * buffer too small, out of memory). */
int password_hash(const char *password, char *hash_r, size_t size, const char **error_r);

/* Returns 0 when password matches hash, -1 otherwise.  The comparison is
 * argon2's constant-time one.  NULL, empty or malformed hashes never match,
 * nor do hashes whose cost parameters are far beyond what Keel makes (so a
 * planted hash cannot make a login allocate gigabytes).  argon2id, argon2i
 * and argon2d hashes are understood. */
int password_verify(const char *hash, const char *password);

/* Whether hash was made with other parameters than the current constants
 * (or is not argon2id), so it should be replaced by password_hash() of the
 * password just verified. */
bool password_needs_rehash(const char *hash);

/* Writes a random password of size - 1 characters and a NUL into buf, drawn
 * uniformly from letters and digits that cannot be mistaken for each other
 * (no 0/O/o, 1/l/I).  Use PASSWORD_GENERATE_SIZE (about 93 bits).  Returns 0,
 * or -1 when size is 0 or the kernel gives no randomness (buf then ""). */
int password_generate(char *buf, size_t size);

/* Checks a new password against the policy: at least min_length characters
 * (UTF-8 code points; an invalid octet counts as one), not empty, and not
 * one character repeated.  Returns 0, or -1 with *error_r naming the rule
 * ("password must be at least 10 characters"); the text is valid until the
 * next call on the same thread. */
int password_policy_check(const char *password, unsigned min_length, const char **error_r);

#endif
