/*
 * rt.c - our formatter and console printing. The memory/string bodies
 * come from libc on the host and from xen/ on Xen (see rt.h).
 */
#include "rt.h"
#include "platform.h"

struct out {
	char *buf;
	size_t n;   /* capacity */
	size_t len; /* would-be length */
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->n)
		o->buf[o->len] = c;
	o->len++;
}

static void put_pad(struct out *o, char c, int count)
{
	while (count-- > 0)
		put(o, c);
}

/* Emit digits of v in base (10 or 16), padded to width. */
static void put_num(struct out *o, unsigned long long v, unsigned base,
		    bool neg, int width, bool zero, bool left)
{
	char tmp[24];
	int i = 0;
	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i < (int)sizeof(tmp));
	int len = i + (neg ? 1 : 0);
	if (!left && !zero)
		put_pad(o, ' ', width - len);
	if (neg)
		put(o, '-');
	if (!left && zero)
		put_pad(o, '0', width - len);
	while (i > 0)
		put(o, tmp[--i]);
	if (left)
		put_pad(o, ' ', width - len);
}

int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int vfmt(char *buf, size_t n, const char *f, va_list ap)
{
	struct out o = { buf, n, 0 };

	for (; *f; f++) {
		if (*f != '%') {
			put(&o, *f);
			continue;
		}
		f++;
		bool left = false, zero = false;
		int width = 0, lng = 0;
		for (;; f++) {
			if (*f == '-')
				left = true;
			else if (*f == '0')
				zero = true;
			else
				break;
		}
		while (*f >= '0' && *f <= '9') {
			if (width < 1000) /* no int overflow on silly widths */
				width = width * 10 + (*f - '0');
			f++;
		}
		if (*f == 'z') {
			lng = 3;
			f++;
		} else {
			while (*f == 'l' && lng < 2) {
				lng++;
				f++;
			}
		}
		unsigned long long u;
		long long s;
		switch (*f) {
		case 'd':
			if (lng == 2)
				s = va_arg(ap, long long);
			else if (lng == 1 || lng == 3)
				s = va_arg(ap, long);
			else
				s = va_arg(ap, int);
			/* negate in unsigned space: LLONG_MIN is fine */
			u = s < 0 ? 0ULL - (unsigned long long)s
				  : (unsigned long long)s;
			put_num(&o, u, 10, s < 0, width, zero, left);
			break;
		case 'u':
		case 'x':
			if (lng == 2)
				u = va_arg(ap, unsigned long long);
			else if (lng == 1)
				u = va_arg(ap, unsigned long);
			else if (lng == 3)
				u = va_arg(ap, size_t);
			else
				u = va_arg(ap, unsigned int);
			put_num(&o, u, *f == 'x' ? 16 : 10, false, width, zero,
				left);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uintptr_t)va_arg(ap, void *), 16, false,
				width, zero, left);
			break;
		case 'c': {
			char c = (char)va_arg(ap, int);
			if (!left)
				put_pad(&o, ' ', width - 1);
			put(&o, c);
			if (left)
				put_pad(&o, ' ', width - 1);
			break;
		}
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			int len = (int)strlen(str);
			if (!left)
				put_pad(&o, ' ', width - len);
			while (*str)
				put(&o, *str++);
			if (left)
				put_pad(&o, ' ', width - len);
			break;
		}
		case '%':
			put(&o, '%');
			break;
		case '\0':
			f--; /* lone '%' at the end */
			break;
		default: /* unknown: print it verbatim */
			put(&o, '%');
			put(&o, *f);
			break;
		}
	}
	if (n > 0)
		buf[o.len < n ? o.len : n - 1] = '\0';
	return (int)o.len;
}

int fmt(char *buf, size_t n, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	int r = vfmt(buf, n, f, ap);
	va_end(ap);
	return r;
}

void printk(const char *f, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, f);
	int r = vfmt(line, sizeof(line), f, ap);
	va_end(ap);
	if (r < 0)
		return;
	plat_console_write(line, MIN((size_t)r, sizeof(line) - 1));
}
