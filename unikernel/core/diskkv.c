/*
 * diskkv.c - the key/value store on the attached disk (kv.h).
 *
 * kv_init() looks for a disk (plat_block_info); when there is one and it
 * holds a FAT12/16/32 or a tar file system, kv_get() answers from it:
 * a key is a path on the disk, a leading '/' dropped ("/index.html" is
 * the file index.html, "user/ann" the file ann in the directory user).
 * A disk that holds neither answers nothing (not the compiled-in table:
 * the operator asked for the disk). Without a disk kv_get() uses the
 * compiled-in table as before.
 *
 * The disk is read-only and its files never change, so a file is read
 * whole on its first lookup and kept: the HTTP server sends bodies from
 * the pointer kv_get() returns, possibly long after the request, so that
 * memory must stay put. DISKKV_ARENA bounds the bytes kept (values and
 * keys), DISKKV_SLOTS the files; a file that no longer fits is not served
 * (and said so once).
 * Lookups of missing keys read the directory (FAT) or the headers (tar)
 * every time; they are not cached.
 */
#include "disk.h"
#include "kv.h"
#include "platform.h"

#ifndef DISKKV_ARENA
#define DISKKV_ARENA (256 * 1024)
#endif
#define DISK_BYTES_MAX (1ull << 44)	/* 16 TiB */
#ifndef DISKKV_SLOTS
#define DISKKV_SLOTS 256
#endif

struct disk_geom disk_geom;

/* One sector, cached: FAT entries and directory entries come in small
 * pieces from the same sector. */
static uint8_t sec_buf[DISK_SECTOR_MAX];
static uint64_t sec_cached = UINT64_MAX;

int disk_read(uint64_t off, void *buf, size_t n)
{
	uint8_t *p = buf;
	uint32_t ss = disk_geom.secsize;

	if (off > disk_geom.bytes || n > disk_geom.bytes - off)
		return -1;
	while (n) {
		uint64_t sec = off / ss;
		size_t in = (size_t)(off % ss), k;

		if (in == 0 && n >= ss) {
			/* whole sectors straight into the caller's buffer */
			size_t cnt = MIN(n / ss, (size_t)64);
			if (plat_block_read(sec, p, cnt))
				return -1;
			k = cnt * ss;
		} else {
			if (sec != sec_cached) {
				sec_cached = UINT64_MAX;
				if (plat_block_read(sec, sec_buf, 1))
					return -1;
				sec_cached = sec;
			}
			k = MIN(n, ss - in);
			memcpy(p, sec_buf + in, k);
		}
		p += k;
		off += k;
		n -= k;
	}
	return 0;
}

/* The table tools/pack_data.py uses (CONTENT_TYPES); tests keep them equal. */
static const struct {
	const char *ext, *type;
} ctypes[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".htm", "text/html; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".js", "application/javascript" },
	{ ".json", "application/json" },
	{ ".txt", "text/plain; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".png", "image/png" },
	{ ".jpg", "image/jpeg" },
	{ ".jpeg", "image/jpeg" },
	{ ".gif", "image/gif" },
	{ ".ico", "image/x-icon" },
	{ ".xml", "application/xml" },
	{ ".pdf", "application/pdf" },
	{ ".wasm", "application/wasm" },
};

const char *content_type(const char *name, size_t n)
{
	size_t dot = n, base, i, k;

	for (base = n; base > 0 && name[base - 1] != '/'; base--)
		if (name[base - 1] == '.' && dot == n)
			dot = base - 1;
	/* Python's splitext: dots leading the name (".profile") start no
	 * extension */
	for (i = base; i < dot && name[i] == '.'; i++)
		;
	if (i == dot)
		return "application/octet-stream";
	for (k = 0; k < ARRAY_SIZE(ctypes); k++) {
		const char *e = ctypes[k].ext;
		size_t el = strlen(e);
		if (el != n - dot)
			continue;
		for (i = 0; i < el; i++) {
			char c = name[dot + i];
			if (c >= 'A' && c <= 'Z')
				c = (char)(c + 32);
			if (c != e[i])
				break;
		}
		if (i == el)
			return ctypes[k].type;
	}
	return "application/octet-stream";
}

enum { SRC_TABLE, SRC_FAT, SRC_TAR, SRC_NONE };
static int src = SRC_TABLE;
static struct kv_entry slots[DISKKV_SLOTS];	/* key and value in arena */
static size_t nslots;
static uint8_t arena[DISKKV_ARENA];
static size_t arena_used;
static bool full_said;

static const struct kv_entry *disk_get(const char *key, size_t keylen)
{
	struct disk_file f;
	struct kv_entry *e;
	size_t i;
	int r;

	if (keylen && key[0] == '/') {
		key++;
		keylen--;
	}
	if (keylen == 0 || keylen > DISK_NAME_MAX || src == SRC_NONE)
		return NULL;
	for (i = 0; i < nslots; i++)
		if (slots[i].keylen == keylen && !memcmp(slots[i].key, key, keylen))
			return &slots[i];
	r = src == SRC_FAT ? fat_lookup(key, keylen, &f) :
			     tar_lookup(key, keylen, &f);
	if (r <= 0)
		return NULL;
	if (nslots == DISKKV_SLOTS ||
	    f.size + keylen > sizeof(arena) - arena_used) {
		if (!full_said)
			printk("kv: %u files, %u bytes kept: no room for %u more\n",
			       (unsigned)nslots, (unsigned)arena_used,
			       (unsigned)f.size);
		full_said = true;
		return NULL;
	}
	if ((src == SRC_FAT ? fat_read(&f, arena + arena_used) :
			      tar_read(&f, arena + arena_used)) < 0)
		return NULL;
	e = &slots[nslots];
	e->val = arena + arena_used;
	e->vallen = f.size;
	memcpy(arena + arena_used + f.size, key, keylen);
	e->key = (const char *)arena + arena_used + f.size;
	e->keylen = keylen;
	e->meta = content_type(key, keylen);
	arena_used += f.size + keylen;
	nslots++;
	return e;
}

size_t kv_init(void)
{
	uint64_t sectors;
	uint32_t ss;
	long n;

	src = SRC_TABLE;
	kv_disk_get = NULL;
	if (plat_block_info(&sectors, &ss))
		return kv_count;
	kv_disk_get = disk_get;
	src = SRC_NONE;
	nslots = arena_used = 0;
	full_said = false;
	sec_cached = UINT64_MAX;
	/* The size bound keeps every offset sum below 2^64 (tar: pos + size). */
	if (ss < 512 || ss > DISK_SECTOR_MAX || (ss & (ss - 1)) ||
	    sectors > DISK_BYTES_MAX / ss) {
		printk("kv: disk of %llu sectors of %u bytes unsupported: "
		       "serving nothing\n", (unsigned long long)sectors,
		       (unsigned)ss);
		return 0;
	}
	disk_geom.bytes = sectors * ss;
	disk_geom.secsize = ss;
	if (fat_mount() == 0 && (n = fat_count()) >= 0) {
		src = SRC_FAT;
		printk("kv: %s disk, %llu bytes, %ld files\n", fat_type(),
		       (unsigned long long)disk_geom.bytes, n);
	} else if (tar_mount() == 0 && (n = tar_count()) >= 0) {
		src = SRC_TAR;
		printk("kv: tar disk, %llu bytes, %ld files\n",
		       (unsigned long long)disk_geom.bytes, n);
	} else {
		printk("kv: the disk (%llu bytes) holds no readable FAT or tar: "
		       "serving nothing\n", (unsigned long long)disk_geom.bytes);
		return 0;
	}
	return (size_t)n;
}

/* Platforms without a block driver have no disk; a driver's own (strong)
 * definitions replace these. */
__attribute__((weak)) int plat_block_info(uint64_t *sectors,
					  uint32_t *sector_size)
{
	(void)sectors;
	(void)sector_size;
	return -1;
}

__attribute__((weak)) int plat_block_read(uint64_t sector, void *buf,
					  size_t count)
{
	(void)sector;
	(void)buf;
	(void)count;
	return -1;
}
