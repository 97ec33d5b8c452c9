/*
 * rt.h - the unikernel's tiny runtime.
 *
 * The core only ever includes the freestanding headers below plus this
 * file. The string/memory functions have their standard prototypes: on
 * the host target libc supplies the bodies (so ASan/UBSan keep checking
 * them); the Xen target supplies its own bodies in xen/.
 * The formatter is ours on every target.
 */
#ifndef RT_H
#define RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/*
 * snprintf-like formatter. Conversions: %s %c %d %u %x %ld %lu %lx %lld
 * %llu %llx %zu %zx %p %%, with an optional '-' (left align), '0' (zero
 * pad) and a decimal width. Always NUL-terminates when n > 0. Returns the
 * length the full output would have had (so ret >= n means truncated).
 */
int vfmt(char *buf, size_t n, const char *f, va_list ap);
int fmt(char *buf, size_t n, const char *f, ...)
	__attribute__((format(printf, 3, 4)));

/* The value of one hex digit (either case), -1 for anything else. */
int hexval(char c);

/* Format and write to the platform console (lines up to 255 chars). */
void printk(const char *f, ...) __attribute__((format(printf, 1, 2)));

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define UNUSED(x) ((void)(x))

#endif
