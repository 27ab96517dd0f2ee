/* Unit tests for the blob segment store: round trips, torn and corrupt
 * tails cut on open, segment rolling, missing committed data refused. */
#include "store/blob.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/test.h"
#include "lib/xalloc.h"

struct test_blob {
	uint8_t *data;
	size_t size;
	uint8_t sha[BLOB_SHA256_LEN];
	uint32_t segment;
	uint64_t offset;
};

static void test_blob_make(struct test_blob *b, unsigned seed, size_t size)
{
	b->data = xmalloc(size);
	b->size = size;
	for (size_t i = 0; i < size; i++)
		b->data[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
	blob_sha256(b->data, size, b->sha);
}

static bool test_blob_append(struct blob_store *bs, struct test_blob *b)
{
	const char *error;

	if (blob_append(bs, b->data, b->size, b->sha, &b->segment, &b->offset, &error) < 0) {
		fprintf(stderr, "  append: %s\n", error);
		return false;
	}
	return true;
}

/* Does the blob read back intact from dir? */
static bool test_blob_readable(const char *dir, const struct test_blob *b)
{
	struct blob_reader *r = blob_reader_new(dir);
	const char *error;
	void *data = NULL;
	bool ok = blob_read(r, b->segment, b->offset, b->size, b->sha, &data, &error) == 0 &&
		  memcmp(data, b->data, b->size) == 0;

	free(data);
	blob_reader_free(&r);
	return ok;
}

static off_t test_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

static void test_file_write(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd >= 0);
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static void *test_file_read(const char *path, size_t *len_r)
{
	off_t size = test_file_size(path);
	int fd = open(path, O_RDONLY);
	void *buf = xmalloc((size_t)size);

	CHECK(fd >= 0 && read(fd, buf, (size_t)size) == size);
	close(fd);
	*len_r = (size_t)size;
	return buf;
}

static void test_blob_roundtrip(void)
{
	char *dir = test_tmpdir();
	char *blobs = xasprintf("%s/blobs", dir);
	struct test_blob b[5];
	struct blob_store *bs;
	const char *error;
	uint32_t seg;
	uint64_t end;

	CHECK(blob_store_open(blobs, 0, 0, 0, &bs, &error) == 0);
	for (unsigned i = 0; i < 5; i++) {
		test_blob_make(&b[i], i, i == 0 ? 0 : 1000 * i + 3);
		CHECK(test_blob_append(bs, &b[i]));
	}
	CHECK(blob_flush(bs, &error) == 0);
	CHECK_INT(b[0].segment, 1);
	CHECK_INT(b[0].offset, 0);
	CHECK_INT(b[1].offset, blob_record_size(0));
	for (unsigned i = 0; i < 5; i++)
		CHECK(test_blob_readable(blobs, &b[i]));
	blob_store_end(bs, &seg, &end);
	blob_store_close(&bs);

	/* Reopen scanning everything: nothing is cut. */
	CHECK(blob_store_open(blobs, 0, 0, 0, &bs, &error) == 0);
	{
		uint32_t seg2;
		uint64_t end2;
		blob_store_end(bs, &seg2, &end2);
		CHECK_INT(seg2, seg);
		CHECK_INT(end2, end);
	}
	blob_store_close(&bs);
	for (unsigned i = 0; i < 5; i++) {
		CHECK(test_blob_readable(blobs, &b[i]));
		free(b[i].data);
	}
	test_rmtree(dir);
	free(blobs);
	free(dir);
}

/* Reads are checked: a wrong size or hash is refused. */
static void test_blob_read_checks(void)
{
	char *dir = test_tmpdir();
	struct test_blob b, wrong;
	struct blob_store *bs;
	struct blob_reader *r;
	const char *error;
	void *data = NULL;

	CHECK(blob_store_open(dir, 0, 0, 0, &bs, &error) == 0);
	test_blob_make(&b, 1, 500);
	test_blob_make(&wrong, 2, 500);
	CHECK(test_blob_append(bs, &b));
	CHECK(blob_flush(bs, &error) == 0);
	r = blob_reader_new(dir);
	CHECK(blob_read(r, b.segment, b.offset, b.size, wrong.sha, &data, &error) < 0);
	CHECK(blob_read(r, b.segment, b.offset, b.size - 1, b.sha, &data, &error) < 0);
	CHECK(blob_read(r, 7, 0, b.size, b.sha, &data, &error) < 0);
	CHECK(blob_read(r, b.segment, b.offset + 1, b.size, b.sha, &data, &error) < 0);
	CHECK(blob_read(r, b.segment, b.offset, b.size, b.sha, &data, &error) == 0);
	free(data);
	blob_reader_free(&r);
	blob_store_close(&bs);
	free(b.data);
	free(wrong.data);
	test_rmtree(dir);
	free(dir);
}

/* Writes n blobs into dir; returns the segment's bytes. */
static uint8_t *test_blob_fill(const char *dir, struct test_blob *b, unsigned n, size_t *len_r)
{
	struct blob_store *bs;
	const char *error;
	char *seg = xasprintf("%s/seg-00000001", dir);
	uint8_t *bytes;

	CHECK(blob_store_open(dir, 0, 0, 0, &bs, &error) == 0);
	for (unsigned i = 0; i < n; i++) {
		test_blob_make(&b[i], i + 10, 40 + 37 * i);
		CHECK(test_blob_append(bs, &b[i]));
	}
	CHECK(blob_flush(bs, &error) == 0);
	blob_store_close(&bs);
	bytes = test_file_read(seg, len_r);
	free(seg);
	return bytes;
}

/* Opens dir (holding a damaged copy), checks the tail was cut back to
 * want_end, the first n_ok blobs survive, and an append works after. */
static void test_blob_check_reopen(const char *dir, uint64_t known_end, struct test_blob *b,
				   unsigned n_ok, uint64_t want_end)
{
	char *seg = xasprintf("%s/seg-00000001", dir);
	struct test_blob after;
	struct blob_store *bs;
	const char *error;

	if (blob_store_open(dir, 0, known_end > 0 ? 1 : 0, known_end, &bs, &error) < 0) {
		fprintf(stderr, "  open: %s\n", error);
		CHECK(false);
		free(seg);
		return;
	}
	CHECK_INT(test_file_size(seg), want_end);
	for (unsigned i = 0; i < n_ok; i++)
		CHECK(test_blob_readable(dir, &b[i]));
	test_blob_make(&after, 99, 123);
	CHECK(test_blob_append(bs, &after));
	CHECK(blob_flush(bs, &error) == 0);
	CHECK_INT(after.offset, want_end);
	CHECK(test_blob_readable(dir, &after));
	blob_store_close(&bs);
	/* The new record is found whole on the next scan. */
	CHECK(blob_store_open(dir, 0, 0, 0, &bs, &error) == 0);
	CHECK_INT(test_file_size(seg), want_end + blob_record_size(after.size));
	blob_store_close(&bs);
	free(after.data);
	free(seg);
}

/* Every possible torn length of the last record, from nothing written to
 * all of it: the torn record is cut, earlier ones survive. */
static void test_blob_torn_tail(void)
{
	char *src = test_tmpdir(), *dst = test_tmpdir();
	char *seg = xasprintf("%s/seg-00000001", dst);
	struct test_blob b[4];
	size_t len;
	uint8_t *bytes = test_blob_fill(src, b, 4, &len);
	uint64_t start = b[3].offset, end = start + blob_record_size(b[3].size);
	unsigned cases = 0;

	CHECK_INT(len, end);
	for (uint64_t l = start; l <= end; l++) {
		bool whole = l == end;
		test_file_write(seg, bytes, l);
		/* Alternate a full scan with one from the known committed end. */
		test_blob_check_reopen(dst, (l & 1) ? start : 0, b, whole ? 4 : 3,
				       whole ? end : start);
		if (!whole)
			CHECK(!test_blob_readable(dst, &b[3]));
		cases++;
	}
	printf("  torn tail: %u lengths checked\n", cases);
	for (unsigned i = 0; i < 4; i++)
		free(b[i].data);
	free(bytes);
	free(seg);
	test_rmtree(src);
	test_rmtree(dst);
	free(src);
	free(dst);
}

/* A bit flipped anywhere in the last record (header, data, footer) makes it
 * corrupt: it is cut. */
static void test_blob_corrupt_tail(void)
{
	char *src = test_tmpdir(), *dst = test_tmpdir();
	char *seg = xasprintf("%s/seg-00000001", dst);
	struct test_blob b[3];
	size_t len;
	uint8_t *bytes = test_blob_fill(src, b, 3, &len);
	uint64_t start = b[2].offset;
	const uint64_t where[] = { 0, 8, 20, BLOB_HEADER_LEN, BLOB_HEADER_LEN + 50,
				   len - start - 16, len - start - 1 };

	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		bytes[start + where[i]] ^= 0x10;
		test_file_write(seg, bytes, len);
		test_blob_check_reopen(dst, 0, b, 2, start);
		bytes[start + where[i]] ^= 0x10;
	}
	for (unsigned i = 0; i < 3; i++)
		free(b[i].data);
	free(bytes);
	free(seg);
	test_rmtree(src);
	test_rmtree(dst);
	free(src);
	free(dst);
}

/* Small segments: records roll over to new files, all stay readable, and a
 * reopen continues in the last segment. */
static void test_blob_roll(void)
{
	char *dir = test_tmpdir();
	struct test_blob b[10], more;
	struct blob_store *bs;
	const char *error;
	uint32_t seg;
	uint64_t end;

	CHECK(blob_store_open(dir, 1000, 0, 0, &bs, &error) == 0);
	for (unsigned i = 0; i < 10; i++) {
		test_blob_make(&b[i], i, 300);
		CHECK(test_blob_append(bs, &b[i]));
	}
	CHECK(blob_flush(bs, &error) == 0);
	CHECK_INT(b[0].segment, 1);
	CHECK_INT(b[9].segment, 5); /* two 364-byte records per 1000-byte segment */
	for (unsigned i = 0; i < 10; i++)
		CHECK(test_blob_readable(dir, &b[i]));
	blob_store_end(bs, &seg, &end);
	blob_store_close(&bs);
	CHECK(blob_store_open(dir, 1000, seg, end, &bs, &error) == 0);
	test_blob_make(&more, 42, 10);
	CHECK(test_blob_append(bs, &more));
	CHECK(blob_flush(bs, &error) == 0);
	CHECK_INT(more.segment, seg);
	CHECK_INT(more.offset, end);
	CHECK(test_blob_readable(dir, &more));
	blob_store_close(&bs);
	for (unsigned i = 0; i < 10; i++)
		free(b[i].data);
	free(more.data);
	test_rmtree(dir);
	free(dir);
}

/* Segments shorter than what the database says was committed are refused. */
static void test_blob_missing(void)
{
	char *dir = test_tmpdir();
	struct test_blob b;
	struct blob_store *bs;
	const char *error;

	CHECK(blob_store_open(dir, 0, 0, 0, &bs, &error) == 0);
	test_blob_make(&b, 1, 100);
	CHECK(test_blob_append(bs, &b));
	CHECK(blob_flush(bs, &error) == 0);
	blob_store_close(&bs);
	CHECK(blob_store_open(dir, 0, 1, 100000, &bs, &error) < 0);
	CHECK(strstr(error, "committed mail is missing") != NULL);
	CHECK(blob_store_open(dir, 0, 2, 10, &bs, &error) < 0);
	CHECK(strstr(error, "segment 2 is missing") != NULL);
	CHECK(blob_store_open(dir, 0, 1, blob_record_size(100), &bs, &error) == 0);
	blob_store_close(&bs);
	free(b.data);
	test_rmtree(dir);
	free(dir);
}

int main(void)
{
	/* Cut tails are logged as warnings; the checks here say what matters. */
	log_set_level(LOG_LEVEL_ERROR);
	TEST_RUN(test_blob_roundtrip);
	TEST_RUN(test_blob_read_checks);
	TEST_RUN(test_blob_torn_tail);
	TEST_RUN(test_blob_corrupt_tail);
	TEST_RUN(test_blob_roll);
	TEST_RUN(test_blob_missing);
	return test_summary();
}
