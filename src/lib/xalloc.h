/* Allocation that aborts on failure: a mail server out of memory has no
 * sensible recovery, and checking every small allocation hides real errors. */
#ifndef KEEL_LIB_XALLOC_H
#define KEEL_LIB_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
