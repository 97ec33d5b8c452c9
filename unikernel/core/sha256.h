/* SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and PBKDF2-HMAC-SHA256
 * (RFC 8018).  Freestanding: only memcpy/memset from rt.h. */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN   32
#define SHA256_BLOCK 64

struct sha256 {
	uint32_t h[8];
	uint64_t total;			/* bytes hashed so far */
	uint8_t buf[SHA256_BLOCK];
	size_t used;			/* bytes waiting in buf */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *p, size_t n);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
void sha256(const void *p, size_t n, uint8_t out[SHA256_LEN]);

struct hmac_sha256 {
	struct sha256 inner, outer;	/* states after the ipad/opad block */
};

void hmac_sha256_init(struct hmac_sha256 *h, const void *key, size_t keylen);
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
		 uint8_t out[SHA256_LEN]);

/* PBKDF2 with HMAC-SHA256 as PRF.  dklen may be any length. */
void pbkdf2_sha256(const void *pw, size_t pwlen, const void *salt,
		   size_t saltlen, uint32_t iterations, uint8_t *dk,
		   size_t dklen);

/* Constant-time comparison: 0 when equal.  Time depends on n only. */
int ct_memcmp(const void *a, const void *b, size_t n);

#endif
