/*
 * fuzz_disk - the disk key/value store (core/diskkv.c, fat.c, tar.c) on a
 * hostile disk image.
 *
 * Input: 4 bytes little-endian, the disk's size in 512-byte sectors (at
 * most 2^20), then the first bytes of the disk; the rest of the disk reads
 * as zeros. So a seed can be a FAT16 image made by mkfs.fat with its long
 * zero tail cut off. kv_init() mounts and walks the disk, then a fixed set
 * of keys (the seeds' names, nested paths, odd names) is looked up twice:
 * an entry must stay the same pointer, and every byte of it is read (ASan
 * catches a value outside the store's memory).
 */
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "platform.h"

static const uint8_t *img;
static size_t img_len;
static uint64_t img_sectors;

int plat_block_info(uint64_t *sectors, uint32_t *sector_size)
{
	*sectors = img_sectors;
	*sector_size = 512;
	return 0;
}

int plat_block_read(uint64_t sector, void *buf, size_t count)
{
	uint64_t off = sector * 512, n = (uint64_t)count * 512;

	if (sector > img_sectors || count > img_sectors - sector)
		abort();	/* the reader must check its ranges itself */
	memset(buf, 0, n);
	if (off < img_len)
		memcpy(buf, img + off, (size_t)(n < img_len - off ? n : img_len - off));
	return 0;
}

static const char *const keys[] = {
	"index.html", "/index.html", "/style.css", "css/site.css", "user/mirage",
	"user/alice", "sub/readme.txt", "sub/deeper/A Very Long File Name.txt",
	"many/file-number-007-with-a-long-name.html", "big/blob.bin", "a/b/c/d/e/f/g/h/i/j",
	"UPPER.TXT", "upper.txt", "x", "/", "//", "sub/", "sub", ".", "..", "../index.html",
	"dir/n\xc3\xa4me.txt",
	"dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd/zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz.txt",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	volatile uint8_t sink = 0;

	if (size < 4)
		return 0;
	img_sectors = (uint64_t)data[0] | (uint64_t)data[1] << 8 |
		      (uint64_t)data[2] << 16 | (uint64_t)(data[3] & 0x0f) << 24;
	if (img_sectors > (1u << 20))
		img_sectors = 1u << 20;
	img = data + 4;
	img_len = size - 4;
	kv_init();
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t n = strlen(keys[i]);
		const struct kv_entry *e = kv_get(keys[i], n);
		if (!e)
			continue;
		if (kv_get(keys[i], n) != e || !e->meta)
			abort();
		for (size_t k = 0; k < e->vallen; k++)
			sink ^= e->val[k];
	}
	(void)sink;
	return 0;
}
