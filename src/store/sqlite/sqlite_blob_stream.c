/* Streaming reads of one blob: located once through the reader's
 * connection, then read in pieces with pread, hashed as it goes and checked
 * at the end, so a corrupt record is never passed off as whole. */
#include "store/sqlite/sqlite_private.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

struct store_blob_stream {
	struct store_reader *r;
	uint32_t segment;
	uint64_t offset, size, pos;
	uint8_t sha256[BLOB_SHA256_LEN];
	EVP_MD_CTX *md;
};

int store_blob_stream_open(struct store_reader *r, int64_t blob_id,
			   struct store_blob_stream **stream_r, uint64_t *size_r,
			   const char **error_r)
{
	static const char sql[] = "SELECT sha256, size, segment, offset FROM blobs WHERE id = ?";
	sqlite3_stmt *st = sq_get(&r->c, sql);
	struct store_blob_stream *s;
	int ret;

	*stream_r = NULL;
	if (st == NULL) {
		*error_r = sqlite3_errmsg(r->c.db);
		return -1;
	}
	sqlite3_bind_int64(st, 1, blob_id);
	if ((ret = sq_row(st)) != 1 || sqlite3_column_bytes(st, 0) != BLOB_SHA256_LEN) {
		*error_r = ret < 0 ? sqlite3_errmsg(r->c.db) : "no such message content";
		sqlite3_reset(st);
		return -1;
	}
	s = xcalloc(1, sizeof(*s));
	s->r = r;
	memcpy(s->sha256, sqlite3_column_blob(st, 0), BLOB_SHA256_LEN);
	s->size = (uint64_t)sqlite3_column_int64(st, 1);
	s->segment = (uint32_t)sqlite3_column_int64(st, 2);
	s->offset = (uint64_t)sqlite3_column_int64(st, 3);
	sqlite3_reset(st);
	s->md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
	*size_r = s->size;
	*stream_r = s;
	return 0;
}

long store_blob_stream_read(struct store_blob_stream *s, void *buf, size_t size,
			    const char **error_r)
{
	uint8_t sha[BLOB_SHA256_LEN];
	size_t n = s->size - s->pos < size ? (size_t)(s->size - s->pos) : size;

	if (n == 0) {
		if (s->md == NULL)
			return 0;
		EVP_DigestFinal_ex(s->md, sha, NULL);
		EVP_MD_CTX_free(s->md);
		s->md = NULL;
		if (memcmp(sha, s->sha256, BLOB_SHA256_LEN) != 0) {
			*error_r = "message content corrupt: SHA-256 mismatch";
			return -1;
		}
		return 0;
	}
	if (blob_read_range(s->r->blobs, s->segment, s->offset, s->pos, buf, n, error_r) < 0)
		return -1;
	EVP_DigestUpdate(s->md, buf, n);
	s->pos += n;
	return (long)n;
}

void store_blob_stream_close(struct store_blob_stream **sp)
{
	if (*sp == NULL)
		return;
	EVP_MD_CTX_free((*sp)->md);
	free(*sp);
	*sp = NULL;
}
