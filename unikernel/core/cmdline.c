/*
 * cmdline.c - find words in the kernel command line and check their
 * values (cmdline.h). The line is untrusted: every loop is bounded by cap
 * as well as by the NUL, and no value is copied.
 */
#include "cmdline.h"

/* Length of the line: up to its NUL or cap, whichever comes first. */
static size_t line_len(const char *line, size_t cap)
{
	size_t n = 0;
	while (n < cap && line[n])
		n++;
	return n;
}

/* Length of the word at w: up to a space or the end of the line. */
static size_t word_len(const char *w, size_t left)
{
	size_t n = 0;
	while (n < left && w[n] != ' ')
		n++;
	return n;
}

/* Does the word w (wn bytes) start with the NUL-terminated s? Its length. */
static size_t prefix(const char *w, size_t wn, const char *s)
{
	size_t k = 0;
	while (s[k]) {
		if (k >= wn || w[k] != s[k])
			return 0;
		k++;
	}
	return k;
}

int cmdline_get(const char *line, size_t cap, const char *key, struct cmdline_val *v)
{
	size_t len = line_len(line, cap), wn;
	int found = 0;
	for (size_t i = 0; i < len; i += wn + 1) {
		const char *w = line + i;
		wn = word_len(w, len - i);
		size_t k = prefix(w, wn, key);
		if (k == 0 || k >= wn || w[k] != '=')
			continue; /* not this key, or a longer key it is a prefix of */
		v->p = w + k + 1;
		v->n = wn - k - 1;
		found = 1; /* keep looking: the last one counts */
	}
	return found;
}

bool cmdline_flag(const char *line, size_t cap, const char *word)
{
	size_t len = line_len(line, cap), wn;
	for (size_t i = 0; i < len; i += wn + 1) {
		const char *w = line + i;
		wn = word_len(w, len - i);
		size_t k = prefix(w, wn, word);
		if (k > 0 && k == wn)
			return true;
	}
	return false;
}

bool cmdline_is(struct cmdline_val v, const char *s)
{
	size_t k = prefix(v.p, v.n, s);
	return k == v.n && (k > 0 || !s[0]);
}

/* Decimal digits at v.p[*at..v.n): their value (clamped to limit + 1 so
 * nothing overflows), the count in *digits; *at moves past them. */
static uint64_t digits_at(struct cmdline_val v, size_t *at, uint64_t limit, size_t *digits)
{
	uint64_t x = 0;
	size_t d = 0;
	while (*at < v.n && v.p[*at] >= '0' && v.p[*at] <= '9') {
		x = x * 10 + (uint64_t)(v.p[*at] - '0');
		if (x > limit)
			x = limit + 1;
		(*at)++;
		d++;
	}
	*digits = d;
	return x;
}

int cmdline_uint(struct cmdline_val v, unsigned min, unsigned max, unsigned *out)
{
	size_t at = 0, d;
	uint64_t x = digits_at(v, &at, max, &d);
	if (d == 0 || at != v.n || x < min || x > max)
		return -1;
	*out = (unsigned)x;
	return 0;
}

/* "A.B.C.D" at the start of v: the address, *at past it; -1 when malformed. */
static int ipv4_at(struct cmdline_val v, size_t *at, uint32_t *ip)
{
	uint32_t a = 0;
	for (int part = 0; part < 4; part++) {
		size_t d;
		uint64_t x = digits_at(v, at, 255, &d);
		if (d == 0 || d > 3 || x > 255)
			return -1;
		a = a << 8 | (uint32_t)x;
		if (part < 3) {
			if (*at >= v.n || v.p[*at] != '.')
				return -1;
			(*at)++;
		}
	}
	*ip = a;
	return 0;
}

int cmdline_ipv4(struct cmdline_val v, uint32_t *ip)
{
	size_t at = 0;
	uint32_t a;
	if (ipv4_at(v, &at, &a) < 0 || at != v.n)
		return -1;
	*ip = a;
	return 0;
}

int cmdline_ipv4_prefix(struct cmdline_val v, uint32_t *ip, unsigned *plen)
{
	size_t at = 0;
	uint32_t a;
	unsigned p = 24;
	if (ipv4_at(v, &at, &a) < 0)
		return -1;
	if (at < v.n) {
		if (v.p[at] != '/')
			return -1;
		struct cmdline_val rest = { v.p + at + 1, v.n - at - 1 };
		if (cmdline_uint(rest, 1, 32, &p) < 0)
			return -1;
	}
	*ip = a;
	*plen = p;
	return 0;
}
