#include "store/blob.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define BLOB_MAGIC "KEELBLB1"
#define BLOB_END_MAGIC "KEELEND1"
#define BLOB_SCAN_CHUNK (64 * 1024)

struct blob_store {
	char *dir;
	int dir_fd;
	uint64_t segment_max;
	uint32_t segment; /* the segment appended to; 0 before the first */
	int fd;           /* its descriptor, or -1 */
	uint64_t end;     /* its size */
	bool cur_dirty;   /* fd written since the last flush */
	bool dir_dirty;   /* a segment was created since the last flush */
	bool must_roll;   /* a failed append could not be undone: never write behind it */
	int *old_fds;     /* segments rolled away from, written but not yet flushed */
	size_t n_old_fds;
	char error[512];
};

struct blob_reader {
	char *dir;
	int *fds; /* indexed by segment number, -1 when not open */
	size_t n_fds;
	char error[512];
};

static __thread char blob_open_error[512];

uint64_t blob_record_size(uint64_t size)
{
	return BLOB_HEADER_LEN + size + BLOB_FOOTER_LEN;
}

void blob_sha256(const void *data, size_t size, uint8_t out[BLOB_SHA256_LEN])
{
	if (EVP_Digest(data, size, out, NULL, EVP_sha256(), NULL) != 1)
		fatal("openssl: SHA-256 failed");
}

static void blob_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t blob_get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static char *blob_segment_path(const char *dir, uint32_t segment)
{
	return xasprintf("%s/seg-%08u", dir, segment);
}

/* Reads exactly len bytes at off; 0 on success, 1 when the file ends first, -1 on error. */
static int blob_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int blob_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Hashes len bytes of fd from off; 0, 1 (file too short) or -1. */
static int blob_hash_range(int fd, uint64_t off, uint64_t len, uint8_t out[BLOB_SHA256_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t *buf = xmalloc(BLOB_SCAN_CHUNK);
	int ret = 0;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatal("openssl: SHA-256 init failed");
	while (len > 0 && ret == 0) {
		size_t n = len < BLOB_SCAN_CHUNK ? (size_t)len : BLOB_SCAN_CHUNK;
		ret = blob_pread_all(fd, buf, n, off);
		if (ret == 0 && EVP_DigestUpdate(ctx, buf, n) != 1)
			fatal("openssl: SHA-256 update failed");
		off += n;
		len -= n;
	}
	if (ret == 0 && EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		fatal("openssl: SHA-256 final failed");
	EVP_MD_CTX_free(ctx);
	free(buf);
	return ret;
}

int blob_record_verify(int fd, uint64_t off, uint64_t file_size, uint64_t *len_r,
		       uint8_t sha_r[BLOB_SHA256_LEN])
{
	uint8_t hdr[BLOB_HEADER_LEN], ftr[BLOB_FOOTER_LEN], sha[BLOB_SHA256_LEN];
	uint64_t len;
	int ret;

	if (off > file_size || file_size - off < BLOB_HEADER_LEN + BLOB_FOOTER_LEN)
		return 0;
	if ((ret = blob_pread_all(fd, hdr, sizeof(hdr), off)) != 0)
		return ret < 0 ? -1 : 0;
	len = blob_get_le64(hdr + 8);
	if (memcmp(hdr, BLOB_MAGIC, 8) != 0 ||
	    len > file_size - off - BLOB_HEADER_LEN - BLOB_FOOTER_LEN)
		return 0;
	if ((ret = blob_pread_all(fd, ftr, sizeof(ftr), off + BLOB_HEADER_LEN + len)) != 0)
		return ret < 0 ? -1 : 0;
	if (blob_get_le64(ftr) != len || memcmp(ftr + 8, BLOB_END_MAGIC, 8) != 0)
		return 0;
	if ((ret = blob_hash_range(fd, off + BLOB_HEADER_LEN, len, sha)) != 0)
		return ret < 0 ? -1 : 0;
	if (memcmp(sha, hdr + 16, BLOB_SHA256_LEN) != 0)
		return 0;
	*len_r = len;
	if (sha_r != NULL)
		memcpy(sha_r, sha, BLOB_SHA256_LEN);
	return 1;
}

/* Walks the records of the last segment from start and cuts what follows the
 * last whole one.  A crash can leave a record half written (the data was
 * never flushed, so nobody references it); appending behind it would hide
 * every later record from the next scan. */
static int blob_scan_tail(struct blob_store *bs, const char *path, uint64_t start,
			  uint64_t size)
{
	uint64_t off = start, len;
	int ret = 1;

	while (off < size && (ret = blob_record_verify(bs->fd, off, size, &len, NULL)) == 1)
		off += blob_record_size(len);
	if (off < size && ret < 0) {
		snprintf(blob_open_error, sizeof(blob_open_error), "reading %s: %s", path,
			 strerror(errno));
		return -1;
	}
	if (off < size) {
		if (ftruncate(bs->fd, (off_t)off) < 0 || fsync(bs->fd) < 0) {
			snprintf(blob_open_error, sizeof(blob_open_error),
				 "cutting the torn tail of %s: %s", path, strerror(errno));
			return -1;
		}
		log_warn("store", "event=blob_tail_cut path=%s from=%llu to=%llu", path,
			 (unsigned long long)size, (unsigned long long)off);
	}
	bs->end = off;
	return 0;
}

/* The highest segment number in dir, 0 when there is none. */
static int blob_last_segment(const char *dir, uint32_t *segment_r)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint32_t last = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		unsigned n;
		char tail;
		if (strlen(de->d_name) == 12 &&
		    sscanf(de->d_name, "seg-%8u%c", &n, &tail) == 1 && n > last)
			last = n;
	}
	closedir(d);
	*segment_r = last;
	return 0;
}

static int blob_open_last(struct blob_store *bs, uint32_t last, uint32_t known_segment,
			  uint64_t known_end)
{
	char *path = blob_segment_path(bs->dir, last);
	uint64_t start = known_segment == last ? known_end : 0;
	struct stat st;
	int ret = -1;

	bs->fd = open(path, O_RDWR | O_CLOEXEC);
	if (bs->fd < 0 || fstat(bs->fd, &st) < 0) {
		snprintf(blob_open_error, sizeof(blob_open_error), "opening %s: %s", path,
			 strerror(errno));
	} else if ((uint64_t)st.st_size < start) {
		snprintf(blob_open_error, sizeof(blob_open_error),
			 "%s has %llu bytes but the database references %llu: committed mail "
			 "is missing", path, (unsigned long long)st.st_size,
			 (unsigned long long)start);
	} else {
		bs->segment = last;
		ret = blob_scan_tail(bs, path, start, (uint64_t)st.st_size);
	}
	free(path);
	return ret;
}

int blob_store_open(const char *dir, uint64_t segment_max, uint32_t known_segment,
		    uint64_t known_end, struct blob_store **bs_r, const char **error_r)
{
	struct blob_store *bs = xcalloc(1, sizeof(*bs));
	uint32_t last;

	bs->dir = xstrdup(dir);
	bs->fd = -1;
	bs->dir_fd = -1;
	bs->segment_max = segment_max != 0 ? segment_max : BLOB_SEGMENT_MAX;
	*error_r = blob_open_error;
	if ((mkdir(dir, 0700) < 0 && errno != EEXIST) ||
	    (bs->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    blob_last_segment(dir, &last) < 0) {
		snprintf(blob_open_error, sizeof(blob_open_error), "blob dir %s: %s", dir,
			 strerror(errno));
		blob_store_close(&bs);
		return -1;
	}
	if (known_segment > last) {
		snprintf(blob_open_error, sizeof(blob_open_error),
			 "blob segment %u is missing from %s: committed mail is missing",
			 known_segment, dir);
		blob_store_close(&bs);
		return -1;
	}
	if (last > 0 && blob_open_last(bs, last, known_segment, known_end) < 0) {
		blob_store_close(&bs);
		return -1;
	}
	*bs_r = bs;
	return 0;
}

void blob_store_close(struct blob_store **bsp)
{
	struct blob_store *bs = *bsp;

	if (bs == NULL)
		return;
	for (size_t i = 0; i < bs->n_old_fds; i++)
		close(bs->old_fds[i]);
	if (bs->fd >= 0)
		close(bs->fd);
	if (bs->dir_fd >= 0)
		close(bs->dir_fd);
	free(bs->old_fds);
	free(bs->dir);
	free(bs);
	*bsp = NULL;
}

static int blob_roll(struct blob_store *bs)
{
	char *path = blob_segment_path(bs->dir, bs->segment + 1);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(bs->error, sizeof(bs->error), "creating %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	free(path);
	/* The old segment may hold records of this batch: flush it with them. */
	if (bs->fd >= 0 && bs->cur_dirty) {
		bs->old_fds = xrealloc(bs->old_fds, (bs->n_old_fds + 1) * sizeof(int));
		bs->old_fds[bs->n_old_fds++] = bs->fd;
	} else if (bs->fd >= 0) {
		close(bs->fd);
	}
	bs->fd = fd;
	bs->segment++;
	bs->end = 0;
	bs->cur_dirty = false;
	bs->must_roll = false;
	bs->dir_dirty = true;
	return 0;
}

int blob_append(struct blob_store *bs, const void *data, size_t size,
		const uint8_t sha256[BLOB_SHA256_LEN], uint32_t *segment_r, uint64_t *offset_r,
		const char **error_r)
{
	uint8_t hdr[BLOB_HEADER_LEN], ftr[BLOB_FOOTER_LEN];
	uint64_t rec = blob_record_size(size), off;

	*error_r = bs->error;
	if ((bs->fd < 0 || bs->must_roll || (bs->end > 0 && bs->end + rec > bs->segment_max)) &&
	    blob_roll(bs) < 0)
		return -1;
	memcpy(hdr, BLOB_MAGIC, 8);
	blob_put_le64(hdr + 8, size);
	memcpy(hdr + 16, sha256, BLOB_SHA256_LEN);
	blob_put_le64(ftr, size);
	memcpy(ftr + 8, BLOB_END_MAGIC, 8);
	off = bs->end;
	bs->cur_dirty = true;
	if (blob_pwrite_all(bs->fd, hdr, sizeof(hdr), off) < 0 ||
	    blob_pwrite_all(bs->fd, data, size, off + BLOB_HEADER_LEN) < 0 ||
	    blob_pwrite_all(bs->fd, ftr, sizeof(ftr), off + BLOB_HEADER_LEN + size) < 0) {
		snprintf(bs->error, sizeof(bs->error), "writing segment %u: %s", bs->segment,
			 strerror(errno));
		/* A half record must not sit between whole ones. */
		if (ftruncate(bs->fd, (off_t)off) < 0)
			bs->must_roll = true;
		return -1;
	}
	bs->end = off + rec;
	*segment_r = bs->segment;
	*offset_r = off;
	return 0;
}

static void blob_flush_fd(struct blob_store *bs, int fd, bool full, int *ret)
{
	if ((full ? fsync(fd) : fdatasync(fd)) < 0 && *ret == 0) {
		snprintf(bs->error, sizeof(bs->error), "flushing blob segments: %s",
			 strerror(errno));
		*ret = -1;
	}
}

int blob_flush(struct blob_store *bs, const char **error_r)
{
	int ret = 0;

	*error_r = bs->error;
	/* Flags are cleared even on failure: after a failed fsync the kernel may
	 * have dropped the pages, so a second fsync succeeding proves nothing. */
	for (size_t i = 0; i < bs->n_old_fds; i++) {
		blob_flush_fd(bs, bs->old_fds[i], false, &ret);
		close(bs->old_fds[i]);
	}
	bs->n_old_fds = 0;
	if (bs->cur_dirty)
		blob_flush_fd(bs, bs->fd, false, &ret);
	if (bs->dir_dirty)
		blob_flush_fd(bs, bs->dir_fd, true, &ret);
	bs->cur_dirty = false;
	bs->dir_dirty = false;
	if (ret < 0)
		bs->must_roll = true;
	return ret;
}

void blob_store_end(const struct blob_store *bs, uint32_t *segment_r, uint64_t *end_r)
{
	*segment_r = bs->segment;
	*end_r = bs->end;
}

struct blob_reader *blob_reader_new(const char *dir)
{
	struct blob_reader *r = xcalloc(1, sizeof(*r));

	r->dir = xstrdup(dir);
	return r;
}

void blob_reader_free(struct blob_reader **rp)
{
	struct blob_reader *r = *rp;

	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_fds; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	free(r->fds);
	free(r->dir);
	free(r);
	*rp = NULL;
}

static int blob_reader_fd(struct blob_reader *r, uint32_t segment)
{
	if (segment >= r->n_fds) {
		size_t n = (size_t)segment + 8;
		r->fds = xrealloc(r->fds, n * sizeof(int));
		for (size_t i = r->n_fds; i < n; i++)
			r->fds[i] = -1;
		r->n_fds = n;
	}
	if (r->fds[segment] < 0) {
		char *path = blob_segment_path(r->dir, segment);
		r->fds[segment] = open(path, O_RDONLY | O_CLOEXEC);
		if (r->fds[segment] < 0)
			snprintf(r->error, sizeof(r->error), "opening %s: %s", path,
				 strerror(errno));
		free(path);
	}
	return r->fds[segment];
}

static int blob_read_fail(struct blob_reader *r, uint32_t segment, uint64_t offset,
			  const char *why, void *buf)
{
	free(buf);
	snprintf(r->error, sizeof(r->error), "blob at segment %u offset %llu: %s", segment,
		 (unsigned long long)offset, why);
	return -1;
}

int blob_read_range(struct blob_reader *r, uint32_t segment, uint64_t offset, uint64_t pos,
		    void *buf, size_t len, const char **error_r)
{
	int fd = blob_reader_fd(r, segment), ret;

	*error_r = r->error;
	if (fd < 0)
		return -1;
	if ((ret = blob_pread_all(fd, buf, len, offset + BLOB_HEADER_LEN + pos)) != 0)
		return blob_read_fail(r, segment, offset, ret < 0 ? strerror(errno) : "truncated",
				      NULL);
	return 0;
}

int blob_read(struct blob_reader *r, uint32_t segment, uint64_t offset, uint64_t size,
	      const uint8_t sha256[BLOB_SHA256_LEN], void **data_r, const char **error_r)
{
	uint8_t hdr[BLOB_HEADER_LEN], sha[BLOB_SHA256_LEN];
	int fd = blob_reader_fd(r, segment), ret;
	void *buf;

	*error_r = r->error;
	if (fd < 0)
		return -1;
	if ((ret = blob_pread_all(fd, hdr, sizeof(hdr), offset)) != 0)
		return blob_read_fail(r, segment, offset, ret < 0 ? strerror(errno) : "truncated",
				      NULL);
	if (memcmp(hdr, BLOB_MAGIC, 8) != 0 || blob_get_le64(hdr + 8) != size ||
	    memcmp(hdr + 16, sha256, BLOB_SHA256_LEN) != 0)
		return blob_read_fail(r, segment, offset, "header does not match", NULL);
	buf = xmalloc(size);
	if ((ret = blob_pread_all(fd, buf, size, offset + BLOB_HEADER_LEN)) != 0)
		return blob_read_fail(r, segment, offset, ret < 0 ? strerror(errno) : "truncated",
				      buf);
	blob_sha256(buf, size, sha);
	if (memcmp(sha, sha256, BLOB_SHA256_LEN) != 0)
		return blob_read_fail(r, segment, offset, "SHA-256 mismatch: data corrupt", buf);
	*data_r = buf;
	return 0;
}
