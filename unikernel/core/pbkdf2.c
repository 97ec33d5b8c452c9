/* HMAC-SHA256 (RFC 2104) and PBKDF2 (RFC 8018, section 5.2).
 *
 * The inner and outer hash states after the key block are computed once
 * and copied for every PRF call, so one PBKDF2 iteration costs two
 * SHA-256 compressions. */
#include "rt.h"
#include "sha256.h"

void hmac_sha256_init(struct hmac_sha256 *h, const void *key, size_t keylen)
{
	uint8_t k[SHA256_BLOCK], pad[SHA256_BLOCK];
	int i;

	memset(k, 0, sizeof(k));
	if (keylen > SHA256_BLOCK)
		sha256(key, keylen, k);
	else if (keylen)
		memcpy(k, key, keylen);

	for (i = 0; i < SHA256_BLOCK; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_init(&h->inner);
	sha256_update(&h->inner, pad, SHA256_BLOCK);
	for (i = 0; i < SHA256_BLOCK; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_init(&h->outer);
	sha256_update(&h->outer, pad, SHA256_BLOCK);
	memset(k, 0, sizeof(k));
	memset(pad, 0, sizeof(pad));
}

/* out = HMAC(key, a || b) using the precomputed key states. */
static void hmac_run(const struct hmac_sha256 *h, const void *a, size_t alen,
		     const void *b, size_t blen, uint8_t out[SHA256_LEN])
{
	struct sha256 s;
	uint8_t ih[SHA256_LEN];

	s = h->inner;
	sha256_update(&s, a, alen);
	if (blen)
		sha256_update(&s, b, blen);
	sha256_final(&s, ih);
	s = h->outer;
	sha256_update(&s, ih, SHA256_LEN);
	sha256_final(&s, out);
}

void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
		 uint8_t out[SHA256_LEN])
{
	struct hmac_sha256 h;

	hmac_sha256_init(&h, key, keylen);
	hmac_run(&h, msg, n, NULL, 0, out);
	memset(&h, 0, sizeof(h));
}

void pbkdf2_sha256(const void *pw, size_t pwlen, const void *salt,
		   size_t saltlen, uint32_t iterations, uint8_t *dk,
		   size_t dklen)
{
	struct hmac_sha256 h;
	uint8_t u[SHA256_LEN], t[SHA256_LEN], ctr[4];
	uint32_t block = 1, i;
	size_t j, k;

	hmac_sha256_init(&h, pw, pwlen);
	while (dklen) {
		ctr[0] = (uint8_t)(block >> 24);
		ctr[1] = (uint8_t)(block >> 16);
		ctr[2] = (uint8_t)(block >> 8);
		ctr[3] = (uint8_t)block;
		hmac_run(&h, salt, saltlen, ctr, 4, u);	/* U1 */
		memcpy(t, u, SHA256_LEN);
		for (i = 1; i < iterations; i++) {
			hmac_run(&h, u, SHA256_LEN, NULL, 0, u);
			for (j = 0; j < SHA256_LEN; j++)
				t[j] ^= u[j];
		}
		k = dklen < SHA256_LEN ? dklen : SHA256_LEN;
		memcpy(dk, t, k);
		dk += k;
		dklen -= k;
		block++;
	}
	memset(&h, 0, sizeof(h));
	memset(u, 0, sizeof(u));
	memset(t, 0, sizeof(t));
}
