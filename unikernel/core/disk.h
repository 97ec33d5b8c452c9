/*
 * disk.h - the read-only file systems under the key/value store (kv.h):
 * byte-addressed reads of the attached disk, and the FAT and tar readers.
 *
 * Everything on the disk is untrusted: the readers check every length,
 * offset, cluster number and name against the geometry they validated at
 * mount time, bound every chain walk by the number of clusters, and never
 * recurse. A key is a path on the disk ("user/ann", "css/site.css"):
 * components separated by '/', compared bytewise (case-sensitive, also on
 * FAT). Names longer than DISK_NAME_MAX bytes never match.
 */
#ifndef DISK_H
#define DISK_H

#include "rt.h"

#define DISK_NAME_MAX 255
#define DISK_SECTOR_MAX 4096

/* The attached disk: size in bytes and the device's sector size. */
struct disk_geom {
	uint64_t bytes;
	uint32_t secsize;
};
extern struct disk_geom disk_geom;

/* Read n bytes at byte offset off. 0 ok, -1 past the end or I/O error. */
int disk_read(uint64_t off, void *buf, size_t n);

/* A file found on the disk. */
struct disk_file {
	uint64_t off;	/* tar: offset of the data */
	uint32_t clus;	/* FAT: first cluster */
	uint32_t size;	/* bytes */
};

/* 0 when the disk holds a usable FAT12/16/32 (or tar) file system. */
int fat_mount(void);
int tar_mount(void);
/* Find the regular file at path[0..n). 1 found, 0 not there, -1 corrupt. */
int fat_lookup(const char *path, size_t n, struct disk_file *f);
int tar_lookup(const char *path, size_t n, struct disk_file *f);
/* Read all f->size bytes of a file found by *_lookup into buf. 0 / -1. */
int fat_read(const struct disk_file *f, void *buf);
int tar_read(const struct disk_file *f, void *buf);
/* Regular files on the disk (a bounded walk); -1 when it is corrupt. */
long fat_count(void);
long tar_count(void);
/* "FAT12", "FAT16" or "FAT32" once mounted. */
const char *fat_type(void);

/* Content type for a file name by its extension (the table pack_data.py
 * uses for compiled-in www data). */
const char *content_type(const char *name, size_t n);

#endif
