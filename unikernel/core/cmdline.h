/*
 * cmdline.h - the kernel command line (Xen: xl's `extra=`), read in one
 * place. A line is words separated by spaces: "key=value" or a bare
 * "flag". The line comes from outside (the domain's config), so every
 * function reads at most cap bytes of it and stops early at a NUL; a
 * value is a pointer and a length into the line, never copied, never
 * NUL-terminated. Keys match whole: "vchan" never finds "vchan_order=15".
 * When a key is given twice, the last word counts.
 *
 * Values are checked whole: a number or address followed by anything
 * (a letter, a second '/', a space inside) is refused, and so is one out
 * of its range; the caller keeps its default and says so.
 *
 * Freestanding: no libc, only <stdint.h> <stddef.h> <stdbool.h>.
 */
#ifndef CMDLINE_H
#define CMDLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cmdline_val {
	const char *p; /* into the line; not NUL-terminated */
	size_t n;      /* 0 for "key=" */
};

/* The last "key=value" word of line (at most cap bytes): 1 and *v set,
 * or 0 when no word has that key (*v untouched). */
int cmdline_get(const char *line, size_t cap, const char *key, struct cmdline_val *v);

/* True when the line has the bare word (e.g. "ts"; "ts=1" or "tsx" do not count). */
bool cmdline_flag(const char *line, size_t cap, const char *word);

/* True when the value is exactly s. */
bool cmdline_is(struct cmdline_val v, const char *s);

/* The value as a decimal number in min..max (digits only, at least one,
 * no sign): 0 and *out set, or -1 (*out untouched). */
int cmdline_uint(struct cmdline_val v, unsigned min, unsigned max, unsigned *out);

/* "A.B.C.D" (each part 1-3 digits, <= 255) in host order: 0, or -1. */
int cmdline_ipv4(struct cmdline_val v, uint32_t *ip);

/* "A.B.C.D" or "A.B.C.D/N" (N 1..32; 24 when absent): 0, or -1. */
int cmdline_ipv4_prefix(struct cmdline_val v, uint32_t *ip, unsigned *plen);

#endif
