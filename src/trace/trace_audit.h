/* The audit log's hash chain (docs/trace.md, "Audit").
 *
 * Each record stores hash = hex(SHA-256(prev || canonical)), where prev is
 * the previous record's hash (64 hex digits; "" for the first record) and
 * canonical is the record's fields in a fixed order, each string prefixed
 * by its length, so that no two different records share a text (moving a
 * byte from one field to the next changes a length).  Altering a record
 * breaks its own hash; removing one breaks the next record's link and
 * leaves a gap in the ids, which are never reused.
 *
 * Pure functions, no I/O: the store's committer chains records as it
 * writes them and the admin API verifies the chain. */
#ifndef KEEL_TRACE_TRACE_AUDIT_H
#define KEEL_TRACE_TRACE_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_AUDIT_HASH_HEX 65 /* 64 hex digits and a NUL */

/* The fields a record's hash covers. */
struct trace_audit_fields {
	int64_t id;
	int64_t time;
	const char *actor, *command, *args, *before, *after;
};

/* The canonical text of f: malloc'd, NUL-terminated; its length in *len_r. */
char *trace_audit_canonical(const struct trace_audit_fields *f, size_t *len_r);

/* hash_r = hex(SHA-256(prev || canonical(f))); prev NULL or "" for the
 * first record.  0, or -1 if the digest fails. */
int trace_audit_hash(const char *prev, const struct trace_audit_fields *f,
		     char hash_r[TRACE_AUDIT_HASH_HEX]);

/* Walking the chain record by record, in id order. */
struct trace_audit_verify {
	int64_t last_id;                     /* 0 before the first record */
	char last_hash[TRACE_AUDIT_HASH_HEX]; /* "" before the first record */
	int64_t bad_id;                      /* first record that does not match */
	const char *problem;                 /* static text: why */
};

void trace_audit_verify_init(struct trace_audit_verify *v);
/* Checks the next record (f, with its stored hash).  0 while the chain
 * holds; -1 once it breaks, with bad_id and problem set ("hash does not
 * match", "a record before it is missing").  Ids must follow each other with
 * no gap; the caller checks the ends (the first id is 1, the last is the
 * highest id ever given). */
int trace_audit_verify_step(struct trace_audit_verify *v, const struct trace_audit_fields *f,
			    const char *stored_hash);

#endif
