#include "lib/test.h"

#include <stdlib.h>

#include "lib/xalloc.h"

int test_failed_checks;
int test_passed, test_failed;

int test_summary(void)
{
	printf("%d passed, %d failed\n", test_passed, test_failed);
	return test_failed == 0 ? 0 : 1;
}

char *test_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path = xasprintf("%s/keel-test-XXXXXX", base != NULL ? base : "/tmp");

	if (mkdtemp(path) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	return path;
}

void test_rmtree(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);

	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
	free(cmd);
}
