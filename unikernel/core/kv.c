/* Binary search over the generated, sorted kv_table, unless kv_init()
 * found a disk (diskkv.c). */
#include "rt.h"
#include "kv.h"

static int keycmp(const struct kv_entry *e, const char *key, size_t keylen)
{
	size_t n = e->keylen < keylen ? e->keylen : keylen;
	int r = n ? memcmp(e->key, key, n) : 0;

	if (r)
		return r;
	return e->keylen < keylen ? -1 : e->keylen > keylen;
}

const struct kv_entry *(*kv_disk_get)(const char *key, size_t keylen);

const struct kv_entry *kv_get(const char *key, size_t keylen)
{
	size_t lo = 0, hi = kv_count;

	if (kv_disk_get)
		return kv_disk_get(key, keylen);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = keycmp(&kv_table[mid], key, keylen);
		if (r == 0)
			return &kv_table[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
