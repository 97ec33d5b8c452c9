/*
 * fat.c - read-only FAT12/16/32 (Microsoft's FAT specification, as
 * mkfs.fat writes it), with VFAT long names and subdirectories.
 *
 * The boot sector's geometry is checked once at mount: every region lies
 * inside the disk, the FAT is large enough for every cluster, the type
 * follows from the cluster count. After that every cluster number read
 * from the disk (directory entries, FAT entries) is range-checked before
 * use, and every chain walk is bounded by the number of clusters, so a
 * cycle ends in an error rather than a hang.
 */
#include "disk.h"

enum { FAT12 = 12, FAT16 = 16, FAT32 = 32 };
#define EOC 0xffffffffu		/* end of chain, as fat_next reports it */
#define ATTR_DIR 0x10
#define ATTR_VOLUME 0x08
#define ATTR_LFN 0x0f
#define LFN_MAX 20		/* 20 * 13 = 260 UCS-2 characters */
#define WALK_DEPTH 8		/* fat_count: directory nesting it follows */
#define WALK_ENTRIES 65536	/* fat_count: entries it reads at most */

static struct {
	int type;
	uint32_t nclus;		/* data clusters: numbers 2 .. nclus + 1 */
	uint32_t clus_bytes;
	uint64_t fat_off;	/* first FAT */
	uint64_t root_off;	/* FAT12/16 fixed root directory */
	uint32_t root_entries;
	uint32_t root_clus;	/* FAT32 */
	uint64_t data_off;
} fs;

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static bool pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

int fat_mount(void)
{
	uint8_t b[512];
	uint32_t bps, spc, rsvd, nfats, rootent, tot, fatsz, rootsec;
	uint64_t first_data, need;

	fs.type = 0;
	if (disk_geom.bytes < 512 || disk_read(0, b, 512))
		return -1;
	if (b[510] != 0x55 || b[511] != 0xaa || (b[0] != 0xeb && b[0] != 0xe9))
		return -1;
	bps = le16(b + 11);
	spc = b[13];
	rsvd = le16(b + 14);
	nfats = b[16];
	rootent = le16(b + 17);
	tot = le16(b + 19) ? le16(b + 19) : le32(b + 32);
	fatsz = le16(b + 22) ? le16(b + 22) : le32(b + 36);
	if (!pow2(bps) || bps < 512 || bps > 4096 || !pow2(spc) ||
	    spc > 128 || bps * spc > 65536 || rsvd == 0 || nfats == 0 ||
	    nfats > 4 || tot == 0 || fatsz == 0)
		return -1;
	rootsec = (rootent * 32 + bps - 1) / bps;
	first_data = rsvd + (uint64_t)nfats * fatsz + rootsec;
	if (first_data >= tot || (uint64_t)tot * bps > disk_geom.bytes)
		return -1;	/* truncated image, or regions past its end */
	fs.nclus = (uint32_t)((tot - first_data) / spc);
	if (fs.nclus == 0)
		return -1;
	fs.type = fs.nclus < 4085 ? FAT12 : fs.nclus < 65525 ? FAT16 : FAT32;
	fs.clus_bytes = bps * spc;
	fs.fat_off = (uint64_t)rsvd * bps;
	fs.root_off = (rsvd + (uint64_t)nfats * fatsz) * bps;
	fs.root_entries = rootent;
	fs.data_off = first_data * bps;
	/* The FAT must hold an entry for every cluster (+2 reserved). */
	need = fs.type == FAT12 ? ((uint64_t)fs.nclus + 2) * 3 / 2 + 1 :
	       ((uint64_t)fs.nclus + 2) * (fs.type / 8);
	if (need > (uint64_t)fatsz * bps)
		goto bad;
	if (fs.type == FAT32) {
		fs.root_clus = le32(b + 44);
		if (rootent || le16(b + 22) || fs.nclus > 0x0ffffff5u - 2 ||
		    fs.root_clus < 2 || fs.root_clus >= fs.nclus + 2)
			goto bad;
	} else if (rootent == 0) {
		goto bad;
	}
	return 0;
bad:
	fs.type = 0;
	return -1;
}

const char *fat_type(void)
{
	return fs.type == FAT12 ? "FAT12" : fs.type == FAT16 ? "FAT16" :
	       fs.type == FAT32 ? "FAT32" : "none";
}

static bool clus_ok(uint32_t c)
{
	return c >= 2 && c - 2 < fs.nclus;
}

static uint64_t clus_off(uint32_t c)
{
	return fs.data_off + (uint64_t)(c - 2) * fs.clus_bytes;
}

/* The cluster after c: 0 and *nx, EOC at the end; -1 when the entry is
 * free, bad, reserved or out of range (a corrupt chain). */
static int fat_next(uint32_t c, uint32_t *nx)
{
	uint8_t e[4];
	uint32_t v;

	if (!clus_ok(c))
		return -1;
	if (fs.type == FAT12) {
		if (disk_read(fs.fat_off + c + c / 2, e, 2))
			return -1;
		v = le16(e);
		v = c & 1 ? v >> 4 : v & 0xfff;
		if (v >= 0xff8)
			v = EOC;
	} else if (fs.type == FAT16) {
		if (disk_read(fs.fat_off + (uint64_t)c * 2, e, 2))
			return -1;
		v = le16(e);
		if (v >= 0xfff8)
			v = EOC;
	} else {
		if (disk_read(fs.fat_off + (uint64_t)c * 4, e, 4))
			return -1;
		v = le32(e) & 0x0fffffff;
		if (v >= 0x0ffffff8)
			v = EOC;
	}
	if (v != EOC && !clus_ok(v))
		return -1;
	*nx = v;
	return 0;
}

/* Brent's cycle check on a chain: remember the cluster met at every
 * power-of-two step; meeting it again means the chain loops. A loop is
 * found within about twice its length, in O(1) memory. */
struct chain {
	uint32_t saved, steps, power;
};

static void chain_start(struct chain *ch, uint32_t first)
{
	ch->saved = first;
	ch->steps = 0;
	ch->power = 1;
}

static bool chain_loops(struct chain *ch, uint32_t c)
{
	if (c == ch->saved)
		return true;
	if (++ch->steps == ch->power && ch->power < 0x80000000u) {
		ch->saved = c;
		ch->power *= 2;
		ch->steps = 0;
	}
	return false;
}

/* A directory being read: the fixed root (clus 0, FAT12/16) or a chain. */
struct fat_dir {
	uint32_t clus;
	uint32_t idx;	/* next entry in the root or in this cluster */
	uint32_t hops;	/* clusters followed: bounded by nclus */
	struct chain ch;
};

struct fat_dent {
	char name[DISK_NAME_MAX + 1];
	size_t len;	/* 0: name too long or unusable (never matches) */
	uint8_t attr;
	uint32_t clus;
	uint32_t size;
};

static void dir_open(struct fat_dir *d, uint32_t clus)
{
	d->clus = clus;
	d->idx = 0;
	d->hops = 0;
	chain_start(&d->ch, clus);
}

static const uint8_t lfn_pos[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24,
				     28, 30 };

static uint8_t short_sum(const uint8_t *e)
{
	uint8_t s = 0;
	for (int i = 0; i < 11; i++)
		s = (uint8_t)(((s & 1) << 7) + (s >> 1) + e[i]);
	return s;
}

/* UCS-2 long name -> UTF-8 in out; its length, 0 when it does not fit. */
static size_t lfn_utf8(const uint16_t *u, size_t nu, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < nu && u[i]; i++) {
		uint16_t c = u[i];
		if (n + (c < 0x80 ? 1u : c < 0x800 ? 2u : 3u) > DISK_NAME_MAX)
			return 0;
		if (c < 0x80) {
			out[n++] = (char)c;
		} else if (c < 0x800) {
			out[n++] = (char)(0xc0 | c >> 6);
			out[n++] = (char)(0x80 | (c & 0x3f));
		} else {
			out[n++] = (char)(0xe0 | c >> 12);
			out[n++] = (char)(0x80 | (c >> 6 & 0x3f));
			out[n++] = (char)(0x80 | (c & 0x3f));
		}
	}
	out[n] = '\0';
	return n;
}

/* 8.3 name, with the lower-case flags Windows NT (and mtools) set. */
static size_t short_name(const uint8_t *e, char *out)
{
	size_t n = 0;
	int i, end;

	for (end = 8; end > 0 && e[end - 1] == ' '; end--)
		;
	for (i = 0; i < end; i++) {
		uint8_t c = i == 0 && e[0] == 0x05 ? 0xe5 : e[i];
		if ((e[12] & 0x08) && c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + 32);
		out[n++] = (char)c;
	}
	for (end = 11; end > 8 && e[end - 1] == ' '; end--)
		;
	if (end > 8)
		out[n++] = '.';
	for (i = 8; i < end; i++) {
		uint8_t c = e[i];
		if ((e[12] & 0x10) && c >= 'A' && c <= 'Z')
			c = (uint8_t)(c + 32);
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return n;
}

/* The next named entry of d: 1 and *de, 0 at the end, -1 corrupt.
 * Skips deleted entries, volume labels, "." and "..". A long name is used
 * only when its pieces are in sequence and match the short entry's
 * checksum; otherwise the short name counts. */
static int dir_next(struct fat_dir *d, struct fat_dent *de)
{
	uint16_t u[LFN_MAX * 13];
	uint8_t e[32], sum = 0;
	unsigned have = 0, total = 0;	/* lowest LFN piece seen, pieces */

	for (;;) {
		uint64_t off;

		if (d->clus == 0) {
			if (d->idx >= fs.root_entries)
				return 0;
			off = fs.root_off + (uint64_t)d->idx * 32;
		} else {
			if (d->idx >= fs.clus_bytes / 32) {
				uint32_t nx;
				if (fat_next(d->clus, &nx))
					return -1;
				if (nx == EOC)
					return 0;
				if (++d->hops >= fs.nclus ||
				    chain_loops(&d->ch, nx))
					return -1;	/* a cycle */
				d->clus = nx;
				d->idx = 0;
			}
			off = clus_off(d->clus) + (uint64_t)d->idx * 32;
		}
		d->idx++;
		if (disk_read(off, e, 32))
			return -1;
		if (e[0] == 0x00)
			return 0;
		if (e[0] == 0xe5) {
			have = 0;
			continue;
		}
		if ((e[11] & 0x3f) == ATTR_LFN) {
			unsigned seq = e[0] & 0x1f;
			if (e[0] & 0x40) {
				have = seq >= 1 && seq <= LFN_MAX ? seq : 0;
				total = have;
				sum = e[13];
			} else if (have > 1 && seq == have - 1 && e[13] == sum) {
				have = seq;
			} else {
				have = 0;
			}
			if (have)
				for (int k = 0; k < 13; k++)
					u[(have - 1) * 13 + k] =
						le16(e + lfn_pos[k]);
			continue;
		}
		if (e[11] & ATTR_VOLUME || e[0] == '.') {
			have = 0;
			continue;
		}
		de->len = have == 1 && sum == short_sum(e) ?
			  lfn_utf8(u, total * 13, de->name) :
			  short_name(e, de->name);
		de->attr = e[11];
		de->clus = le16(e + 26);
		if (fs.type == FAT32)
			de->clus |= (uint32_t)le16(e + 20) << 16;
		de->size = le32(e + 28);
		return 1;
	}
}

static uint32_t root_clus(void)
{
	return fs.type == FAT32 ? fs.root_clus : 0;
}

int fat_lookup(const char *path, size_t n, struct disk_file *f)
{
	struct fat_dir d;
	struct fat_dent de;
	size_t i = 0;

	if (!fs.type)
		return -1;
	dir_open(&d, root_clus());
	while (i < n) {
		size_t j = i;
		int r;

		while (j < n && path[j] != '/')
			j++;
		if (j == i || j - i > DISK_NAME_MAX)
			return 0;	/* empty component, or too long */
		do {
			r = dir_next(&d, &de);
			if (r <= 0)
				return r;
		} while (de.len != j - i || memcmp(de.name, path + i, de.len));
		if (j == n) {
			if (de.attr & ATTR_DIR)
				return 0;
			f->clus = de.clus;
			f->size = de.size;
			f->off = 0;
			return 1;
		}
		if (!(de.attr & ATTR_DIR) || !clus_ok(de.clus))
			return 0;
		dir_open(&d, de.clus);
		i = j + 1;
	}
	return 0;
}

int fat_read(const struct disk_file *f, void *buf)
{
	uint8_t *p = buf;
	uint32_t c = f->clus, left = f->size;
	struct chain ch;

	/* The size bounds the walk (size / clus_bytes + 1 steps); a loop
	 * inside that is corruption too. */
	chain_start(&ch, c);
	while (left) {
		uint32_t k = MIN(left, fs.clus_bytes);
		if (!clus_ok(c) || disk_read(clus_off(c), p, k))
			return -1;
		p += k;
		left -= k;
		if (left && (fat_next(c, &c) || c == EOC || chain_loops(&ch, c)))
			return -1;	/* chain shorter than the size, or a loop */
	}
	return 0;
}

long fat_count(void)
{
	struct fat_dir stack[WALK_DEPTH];
	struct fat_dent de;
	int depth = 0;
	long n = 0, budget = WALK_ENTRIES;

	if (!fs.type)
		return -1;
	dir_open(&stack[0], root_clus());
	while (depth >= 0) {
		int r = dir_next(&stack[depth], &de);
		if (r < 0)
			return -1;
		if (r == 0) {
			depth--;
		} else if (!(de.attr & ATTR_DIR)) {
			n++;
		} else if (depth + 1 < WALK_DEPTH && clus_ok(de.clus)) {
			dir_open(&stack[++depth], de.clus);
		}
		if (--budget < 0)
			return -1;	/* directories that loop into each other */
	}
	return n;
}
