#include "trace/trace_audit.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "lib/xalloc.h"

static void trace_audit_put(char **p, size_t *len, size_t *cap, const char *name,
			    const char *value)
{
	size_t n = strlen(value), need = strlen(name) + n + 32;

	if (*len + need > *cap) {
		*cap = (*len + need) * 2;
		*p = xrealloc(*p, *cap);
	}
	*len += (size_t)sprintf(*p + *len, "%s %zu:", name, n);
	memcpy(*p + *len, value, n);
	*len += n;
	(*p)[(*len)++] = '\n';
	(*p)[*len] = '\0';
}

char *trace_audit_canonical(const struct trace_audit_fields *f, size_t *len_r)
{
	size_t cap = 256, len;
	char *p = xmalloc(cap);

	len = (size_t)snprintf(p, cap, "keel-audit-1\nid %" PRId64 "\ntime %" PRId64 "\n", f->id,
			       f->time);
	trace_audit_put(&p, &len, &cap, "actor", f->actor != NULL ? f->actor : "");
	trace_audit_put(&p, &len, &cap, "command", f->command != NULL ? f->command : "");
	trace_audit_put(&p, &len, &cap, "args", f->args != NULL ? f->args : "");
	trace_audit_put(&p, &len, &cap, "before", f->before != NULL ? f->before : "");
	trace_audit_put(&p, &len, &cap, "after", f->after != NULL ? f->after : "");
	*len_r = len;
	return p;
}

int trace_audit_hash(const char *prev, const struct trace_audit_fields *f,
		     char hash_r[TRACE_AUDIT_HASH_HEX])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	size_t len;
	char *text = trace_audit_canonical(f, &len);
	int ok;

	if (prev == NULL)
		prev = "";
	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, prev, strlen(prev)) == 1 &&
	     EVP_DigestUpdate(md, text, len) == 1 && EVP_DigestFinal_ex(md, digest, &n) == 1 &&
	     n == 32;
	EVP_MD_CTX_free(md);
	free(text);
	if (!ok)
		return -1;
	for (unsigned int i = 0; i < n; i++)
		snprintf(hash_r + 2 * i, 3, "%02x", digest[i]);
	return 0;
}

void trace_audit_verify_init(struct trace_audit_verify *v)
{
	memset(v, 0, sizeof(*v));
}

int trace_audit_verify_step(struct trace_audit_verify *v, const struct trace_audit_fields *f,
			    const char *stored_hash)
{
	char hash[TRACE_AUDIT_HASH_HEX];

	if (v->last_id != 0 && f->id != v->last_id + 1) {
		v->bad_id = f->id;
		v->problem = "a record before it is missing";
		return -1;
	}
	if (trace_audit_hash(v->last_hash, f, hash) < 0) {
		v->bad_id = f->id;
		v->problem = "the hash could not be computed";
		return -1;
	}
	if (strcmp(hash, stored_hash) != 0) {
		v->bad_id = f->id;
		v->problem = "its hash does not match its contents and the previous record";
		return -1;
	}
	v->last_id = f->id;
	snprintf(v->last_hash, sizeof(v->last_hash), "%s", stored_hash);
	return 0;
}
