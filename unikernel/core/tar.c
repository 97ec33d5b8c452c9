/*
 * tar.c - read-only tar archives (POSIX ustar and pax, GNU tar's long
 * names), as GNU tar and Python's tarfile write them.
 *
 * Headers are 512-byte blocks, each followed by its data rounded up to
 * 512 bytes. Every header's checksum is verified and every size is checked
 * against the end of the disk before it is used, so the walk only moves
 * forward and ends at two zero blocks, the end of the disk or the first
 * bad header. Regular files ('0', NUL, '7') are keys; directories, links
 * (never followed) and devices are skipped. A pax 'x' header's path= and
 * size= and a GNU 'L' long name apply to the entry after it.
 */
#include "disk.h"

#define BLK 512
#define EXT_MAX 4096		/* pax / GNU long name data we parse */

static uint8_t ext[EXT_MAX];

/* Octal number field (NUL/space padded). -1 when malformed or > max. */
static int octal(const uint8_t *p, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	bool digits = false;

	if (n && (p[0] & 0x80))
		return -1;	/* base-256 (files > 8 GiB): not for us */
	while (i < n && p[i] == ' ')
		i++;
	for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
		v = v * 8 + (uint64_t)(p[i] - '0');
		if (v > max)
			return -1;
		digits = true;
	}
	if (!digits || (i < n && p[i] != ' ' && p[i] != '\0'))
		return -1;
	*out = v;
	return 0;
}

static bool header_ok(const uint8_t *h)
{
	uint64_t want;
	uint32_t sum = 0;

	if (octal(h + 148, 8, 0xffffffu, &want))
		return false;
	for (int i = 0; i < BLK; i++)
		sum += i >= 148 && i < 156 ? ' ' : h[i];
	return sum == want;
}

static bool zero_block(const uint8_t *h)
{
	for (int i = 0; i < BLK; i++)
		if (h[i])
			return false;
	return true;
}

struct tar_ent {
	char name[DISK_NAME_MAX + 1];
	size_t len;		/* 0: unusable name (never matches) */
	uint64_t off, size;
};

/* Copy a name into e, dropping leading "./" and "/". */
static void set_name(struct tar_ent *e, const uint8_t *a, size_t na,
		     const uint8_t *b, size_t nb)
{
	size_t n = 0;

	while (na && a[0] == '/') {
		a++;
		na--;
	}
	while (na >= 2 && a[0] == '.' && a[1] == '/') {
		a += 2;
		na -= 2;
	}
	if (na + nb > DISK_NAME_MAX) {
		e->len = 0;
		return;
	}
	for (size_t i = 0; i < na; i++)
		e->name[n++] = (char)a[i];
	for (size_t i = 0; i < nb; i++)
		e->name[n++] = (char)b[i];
	e->name[n] = '\0';
	e->len = strlen(e->name) == n ? n : 0;	/* no NUL inside */
}

static size_t fieldlen(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n && p[i])
		i++;
	return i;
}

/* pax records "LEN key=value\n" in ext[0..n): path= and size=. */
static int pax_parse(size_t n, struct tar_ent *e, bool *have_name,
		     uint64_t *size, bool *have_size)
{
	size_t i = 0;

	while (i < n) {
		size_t len = 0, j = i, k;
		while (j < n && ext[j] >= '0' && ext[j] <= '9' && len < EXT_MAX)
			len = len * 10 + (size_t)(ext[j++] - '0');
		if (j == i || j >= n || ext[j] != ' ' || len > n - i ||
		    len < j - i + 3 || ext[i + len - 1] != '\n')
			return -1;
		j++;
		for (k = j; k < i + len - 1 && ext[k] != '='; k++)
			;
		if (k == i + len - 1)
			return -1;
		if (k - j == 4 && !memcmp(ext + j, "path", 4)) {
			set_name(e, ext + k + 1, i + len - 1 - (k + 1), NULL, 0);
			*have_name = true;
		} else if (k - j == 4 && !memcmp(ext + j, "size", 4)) {
			uint64_t v = 0;
			size_t m;
			for (m = k + 1; m < i + len - 1; m++) {
				if (ext[m] < '0' || ext[m] > '9' ||
				    v > disk_geom.bytes || v >> 40)
					return -1;
				v = v * 10 + (uint64_t)(ext[m] - '0');
			}
			if (m == k + 1)
				return -1;
			*size = v;
			*have_size = true;
		}
		i += len;
	}
	return 0;
}

/* The regular file at or after *pos: 1 and *e (pos moves past it), 0 at
 * the end of the archive, -1 on a bad header or a size past the disk. */
static int tar_next(uint64_t *pos, struct tar_ent *e)
{
	uint8_t h[BLK];
	bool have_name = false, have_size = false;
	uint64_t pax_size = 0;

	for (;;) {
		uint64_t size, next;
		uint8_t type;

		if (disk_geom.bytes < BLK || *pos > disk_geom.bytes - BLK)
			return 0;	/* no room for another header */
		if (disk_read(*pos, h, BLK))
			return -1;
		if (zero_block(h))
			return 0;
		if (!header_ok(h) || octal(h + 124, 12, disk_geom.bytes, &size))
			return -1;
		type = h[156];
		if (have_size && (type == '0' || type == 0 || type == '7'))
			size = pax_size;
		if (size > disk_geom.bytes - *pos - BLK)
			return -1;	/* data past the end of the disk */
		next = *pos + BLK + (size + BLK - 1) / BLK * BLK;
		if (type == 'x' || type == 'L') {
			if (size > EXT_MAX || disk_read(*pos + BLK, ext, size))
				return -1;
			if (type == 'L') {
				set_name(e, ext, fieldlen(ext, size), NULL, 0);
				have_name = true;
			} else if (pax_parse(size, e, &have_name, &pax_size,
					     &have_size)) {
				return -1;
			}
			*pos = next;
			continue;
		}
		*pos = next;
		if (type != '0' && type != 0 && type != '7') {
			have_name = have_size = false;	/* dir, link, 'g', ... */
			continue;
		}
		if (!have_name) {
			/* ustar: prefix "/" name when the prefix is set */
			size_t nn = fieldlen(h, 100);
			size_t np = memcmp(h + 257, "ustar\0", 6) == 0 ?
				    fieldlen(h + 345, 155) : 0;
			if (np) {
				uint8_t tmp[155 + 1 + 100];
				memcpy(tmp, h + 345, np);
				tmp[np] = '/';
				memcpy(tmp + np + 1, h, nn);
				set_name(e, tmp, np + 1 + nn, NULL, 0);
			} else {
				set_name(e, h, nn, NULL, 0);
			}
		}
		if (e->len && e->name[e->len - 1] == '/')
			e->len = 0;	/* a directory in disguise */
		e->off = *pos - (size + BLK - 1) / BLK * BLK;
		e->size = size;
		return 1;
	}
}

int tar_mount(void)
{
	uint8_t h[BLK];

	if (disk_geom.bytes < BLK || disk_read(0, h, BLK))
		return -1;
	return header_ok(h) && !zero_block(h) ? 0 : -1;
}

int tar_lookup(const char *path, size_t n, struct disk_file *f)
{
	struct tar_ent e;
	uint64_t pos = 0;
	int r;

	if (n == 0 || n > DISK_NAME_MAX)
		return 0;
	/* The last entry of a name wins, as when extracting. */
	f->size = 0;
	f->off = 0;
	bool found = false;
	while ((r = tar_next(&pos, &e)) > 0) {
		if (e.len == n && !memcmp(e.name, path, n)) {
			if (e.size > 0xffffffffu)
				return -1;
			f->off = e.off;
			f->size = (uint32_t)e.size;
			f->clus = 0;
			found = true;
		}
	}
	if (found)
		return 1;
	return r;
}

int tar_read(const struct disk_file *f, void *buf)
{
	return disk_read(f->off, buf, f->size);
}

long tar_count(void)
{
	struct tar_ent e;
	uint64_t pos = 0;
	long n = 0;
	int r;

	/* A bad header ends the archive: the entries before it count. */
	while ((r = tar_next(&pos, &e)) > 0)
		n++;
	return n;
}
