/* A minimal unit-test harness: each test binary defines test functions, runs
 * them through TEST_RUN() from main() and ends with test_summary(), which
 * prints "N passed, N failed" and returns the exit code. */
#ifndef KEEL_LIB_TEST_H
#define KEEL_LIB_TEST_H

#include <stdio.h>
#include <string.h>

extern int test_failed_checks;
extern int test_passed, test_failed;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__,  \
				#cond);                                                \
			test_failed_checks++;                                          \
		}                                                                      \
	} while (0)

#define CHECK_INT(a, b)                                                                \
	do {                                                                           \
		long long a_ = (long long)(a), b_ = (long long)(b);                    \
		if (a_ != b_) {                                                        \
			fprintf(stderr, "  %s:%d: %s == %lld, expected %lld\n", __FILE__,    \
				__LINE__, #a, a_, b_);                                 \
			test_failed_checks++;                                          \
		}                                                                      \
	} while (0)

#define CHECK_STR(a, b)                                                                \
	do {                                                                           \
		const char *a_ = (a), *b_ = (b);                                       \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                 \
			fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n",         \
				__FILE__, __LINE__, #a, a_ ? a_ : "(null)",            \
				b_ ? b_ : "(null)");                                   \
			test_failed_checks++;                                          \
		}                                                                      \
	} while (0)

#define TEST_RUN(fn)                                                                   \
	do {                                                                           \
		int before_ = test_failed_checks;                                      \
		fn();                                                                  \
		if (test_failed_checks == before_) {                                   \
			test_passed++;                                                 \
			printf("ok %s\n", #fn);                                        \
		} else {                                                               \
			test_failed++;                                                 \
			printf("FAIL %s\n", #fn);                                      \
		}                                                                      \
	} while (0)

int test_summary(void);
/* A fresh empty directory under $TMPDIR; the caller removes it with
 * test_rmtree(). */
char *test_tmpdir(void);
void test_rmtree(const char *path);

#endif
