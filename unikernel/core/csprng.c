/*
 * csprng.c - ChaCha20 block function (RFC 8439 2.3) and a generator built
 * on it with fast key erasure: every request runs the block function
 * under the current key with counters 1..k for the output, and counter 0
 * gives the next key. Seeding XORs entropy into the key and re-keys.
 */
#include "csprng.h"

static uint8_t key[32];
static uint64_t reseeds;

static uint32_t rotl(uint32_t v, int n)
{
	return v << n | v >> (32 - n);
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

#define QR(a, b, c, d) do { \
	a += b; d ^= a; d = rotl(d, 16); \
	c += d; b ^= c; b = rotl(b, 12); \
	a += b; d ^= a; d = rotl(d, 8); \
	c += d; b ^= c; b = rotl(b, 7); \
} while (0)

void chacha20_block(const uint8_t k[32], uint32_t counter,
		    const uint8_t nonce[12], uint8_t out[64])
{
	uint32_t in[16], x[16];
	int i;

	in[0] = 0x61707865;	/* "expand 32-byte k" */
	in[1] = 0x3320646e;
	in[2] = 0x79622d32;
	in[3] = 0x6b206574;
	for (i = 0; i < 8; i++)
		in[4 + i] = ld32(k + 4 * i);
	in[12] = counter;
	for (i = 0; i < 3; i++)
		in[13 + i] = ld32(nonce + 4 * i);
	memcpy(x, in, sizeof(x));
	for (i = 0; i < 10; i++) {	/* 20 rounds: column + diagonal */
		QR(x[0], x[4], x[8], x[12]);
		QR(x[1], x[5], x[9], x[13]);
		QR(x[2], x[6], x[10], x[14]);
		QR(x[3], x[7], x[11], x[15]);
		QR(x[0], x[5], x[10], x[15]);
		QR(x[1], x[6], x[11], x[12]);
		QR(x[2], x[7], x[8], x[13]);
		QR(x[3], x[4], x[9], x[14]);
	}
	for (i = 0; i < 16; i++) {
		uint32_t v = x[i] + in[i];
		out[4 * i] = (uint8_t)v;
		out[4 * i + 1] = (uint8_t)(v >> 8);
		out[4 * i + 2] = (uint8_t)(v >> 16);
		out[4 * i + 3] = (uint8_t)(v >> 24);
	}
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint32_t csprng_hash32(const uint8_t k[32], uint32_t a, uint32_t b,
		       uint32_t c, uint32_t ctr)
{
	uint8_t nonce[12], out[64];

	put32(nonce, a);
	put32(nonce + 4, b);
	put32(nonce + 8, c);
	chacha20_block(k, ctr, nonce, out);
	return ld32(out);
}

void csprng_seed(const void *seed, size_t n)
{
	const uint8_t *p = seed;
	uint8_t nonce[12] = { 's', 'e', 'e', 'd' }, out[64];

	while (n) {
		size_t k = MIN(n, sizeof(key)), i;

		for (i = 0; i < k; i++)
			key[i] ^= p[i];
		p += k;
		n -= k;
		reseeds++;
		put32(nonce + 4, (uint32_t)reseeds);
		put32(nonce + 8, (uint32_t)(reseeds >> 32));
		chacha20_block(key, 0, nonce, out);
		memcpy(key, out, sizeof(key));
	}
	memset(out, 0, sizeof(out));
}

void csprng_bytes(void *buf, size_t n)
{
	static const uint8_t zero[12];
	uint8_t *p = buf, out[64];
	uint32_t ctr = 1;

	while (n) {
		size_t k = MIN(n, sizeof(out));

		chacha20_block(key, ctr++, zero, out);
		memcpy(p, out, k);
		p += k;
		n -= k;
	}
	chacha20_block(key, 0, zero, out);	/* the next key */
	memcpy(key, out, sizeof(key));
	memset(out, 0, sizeof(out));
}
