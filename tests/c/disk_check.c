/*
 * disk_check - the disk key/value store (core/diskkv.c, fat.c, tar.c) on an
 * image file, from the command line:
 *   ./disk_check IMG count              kv_init()'s file count
 *   ./disk_check IMG get KEY...         per key: "KEY<TAB>LEN<TAB>TYPE<TAB>HEX"
 *                                       or "KEY<TAB>missing"
 *   ./disk_check IMG auth USER PASSWORD "ok" / "bad" / "nouser" / "badrecord"
 *   ./disk_check IMG walk               count, then get of every name on
 *                                       stdin (one per line)
 * IMG "-" means no disk (the compiled-in table, empty here). The disk is
 * read through plat_block_read with pread, 512-byte sectors, as on the
 * host target; a trailing partial sector is not part of the disk.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv.h"
#include "net.h"
#include "platform.h"
#include "sha256.h"

#include "auth_record.h"

const struct kv_entry kv_table[1];
const size_t kv_count = 0;

static int fd = -1;
static uint64_t nsec;

void plat_console_write(const char *s, size_t n)
{
	fwrite(s, 1, n, stderr);
}

int plat_block_info(uint64_t *sectors, uint32_t *sector_size)
{
	if (fd < 0)
		return -1;
	*sectors = nsec;
	*sector_size = 512;
	return 0;
}

int plat_block_read(uint64_t sector, void *buf, size_t count)
{
	if (sector > nsec || count > nsec - sector)
		return -1;
	ssize_t r = pread(fd, buf, count * 512, (off_t)(sector * 512));
	return r == (ssize_t)(count * 512) ? 0 : -1;
}

static void get(const char *key)
{
	const struct kv_entry *e = kv_get(key, strlen(key));

	if (!e) {
		printf("%s\tmissing\n", key);
		return;
	}
	if (kv_get(key, strlen(key)) != e)
		printf("UNSTABLE ");	/* the same key must give the same entry */
	printf("%s\t%zu\t%s\t", key, e->vallen, e->meta ? e->meta : "-");
	for (size_t i = 0; i < e->vallen; i++)
		printf("%02x", e->val[i]);
	printf("\n");
}

int main(int argc, char **argv)
{
	struct stat st;
	size_t n;

	if (argc < 3)
		return 2;
	if (strcmp(argv[1], "-")) {
		fd = open(argv[1], O_RDONLY);
		if (fd < 0 || fstat(fd, &st))
			return 2;
		nsec = (uint64_t)st.st_size / 512;
	}
	n = kv_init();
	if (!strcmp(argv[2], "count")) {
		printf("%zu\n", n);
	} else if (!strcmp(argv[2], "get")) {
		for (int i = 3; i < argc; i++)
			get(argv[i]);
	} else if (!strcmp(argv[2], "walk")) {
		char line[1024];
		printf("%zu\n", n);
		while (fgets(line, sizeof(line), stdin)) {
			line[strcspn(line, "\n")] = '\0';
			get(line);
		}
	} else if (!strcmp(argv[2], "auth") && argc == 5) {
		const char *v = auth_verdict(argv[3], argv[4]);
		if (!v)
			return 2;
		puts(v);
	} else {
		return 2;
	}
	return 0;
}
