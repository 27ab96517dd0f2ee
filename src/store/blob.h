/* The blob store: message bodies, content-addressed by SHA-256, appended to
 * segment files DIR/seg-NNNNNNNN and never rewritten.
 *
 * One record:
 *
 *   offset 0   8 bytes   magic "KEELBLB1"
 *          8   8 bytes   data length, little-endian
 *         16  32 bytes   SHA-256 of the data
 *         48   length    the data
 *   48+length  8 bytes   data length again, little-endian
 *   56+length  8 bytes   magic "KEELEND1"
 *
 * A record is whole when both magics and both lengths agree and the data
 * hashes to the header's SHA-256, so a torn or corrupt record at the tail is
 * found by reading it alone.  Which record belongs to which message, and
 * which are still referenced, is the caller's business (the database).
 *
 * Threads: a struct blob_store is used by one thread at a time (the
 * committer).  A struct blob_reader belongs to one thread and opens its own
 * descriptors, so readers run beside the appending thread: they only read
 * records whose location the caller learnt after they were flushed. */
#ifndef KEEL_STORE_BLOB_H
#define KEEL_STORE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define BLOB_SHA256_LEN 32
#define BLOB_HEADER_LEN 48
#define BLOB_FOOTER_LEN 16
/* A segment is closed once it grows past this; a new record goes to the next. */
#define BLOB_SEGMENT_MAX (256ull << 20)

struct blob_store;
struct blob_reader;

/* Bytes one record of size data bytes takes in its segment. */
uint64_t blob_record_size(uint64_t size);
/* SHA-256 of data into out. */
void blob_sha256(const void *data, size_t size, uint8_t out[BLOB_SHA256_LEN]);
/* Is there a whole, intact record at off in fd, a segment of file_size
 * bytes: both magics, both lengths, the SHA-256 of the data?  1: yes, the
 * data's length in *len_r and its SHA-256 in sha_r (unless NULL); 0: no (torn
 * or corrupt); -1: a read error (errno).  Used by the open-time tail scan and
 * by `keelctl check`. */
int blob_record_verify(int fd, uint64_t off, uint64_t file_size, uint64_t *len_r,
		       uint8_t sha_r[BLOB_SHA256_LEN]);

/* Opens the segments in dir (created if missing).  The last segment is
 * scanned from the end of the last record the caller knows to be committed
 * (known_segment, known_end; 0, 0 when none): anything after it that is not
 * a whole record is cut off (ftruncate + fsync).  Records before that point
 * are trusted, not read.  Fails if the segments are shorter than known_end
 * says (committed data is missing).  segment_max 0 means BLOB_SEGMENT_MAX.
 * error_r is valid until the next blob_store_open() on this thread. */
int blob_store_open(const char *dir, uint64_t segment_max, uint32_t known_segment,
		    uint64_t known_end, struct blob_store **bs_r, const char **error_r);
void blob_store_close(struct blob_store **bs);

/* Writes one record (data of size bytes whose SHA-256 is sha256) at the end
 * of the current segment, starting a new segment when the current one is
 * full.  The record is not durable until blob_flush() succeeds.  On failure
 * nothing is left behind that a later append would have to skip.  error_r
 * is valid until the next call on bs. */
int blob_append(struct blob_store *bs, const void *data, size_t size,
		const uint8_t sha256[BLOB_SHA256_LEN], uint32_t *segment_r, uint64_t *offset_r,
		const char **error_r);
/* Makes every record appended since the last flush durable: fdatasync of
 * each segment written (and fsync of dir when a segment was created).  A
 * failure is final: the records of the failed flush must not be referenced. */
int blob_flush(struct blob_store *bs, const char **error_r);
/* The current end of the store (last segment, its size), for tests. */
void blob_store_end(const struct blob_store *bs, uint32_t *segment_r, uint64_t *end_r);

struct blob_reader *blob_reader_new(const char *dir);
void blob_reader_free(struct blob_reader **r);
/* Reads the record at (segment, offset) into a malloc'd buffer of size
 * bytes, checking its header against size and sha256 and the data against
 * sha256.  error_r is valid until the next call on r. */
/* Reads len bytes of the data of the record at offset, from position pos
 * within the data (pos + len within its size), unverified: a caller that
 * streams a blob hashes what it read and compares at the end.  0 or -1. */
int blob_read_range(struct blob_reader *r, uint32_t segment, uint64_t offset, uint64_t pos,
		    void *buf, size_t len, const char **error_r);
int blob_read(struct blob_reader *r, uint32_t segment, uint64_t offset, uint64_t size,
	      const uint8_t sha256[BLOB_SHA256_LEN], void **data_r, const char **error_r);

#endif
