/*
 * csprng.h - the unikernel's random numbers: ChaCha20 (RFC 8439) as a
 * fast-key-erasure generator. The platform seeds it from its entropy
 * (host: getrandom; Xen: RDSEED/RDRAND, TSC, clocks, a toolstack seed in
 * xenstore, see xen/entropy.c) and plat_random returns its output.
 */
#ifndef CSPRNG_H
#define CSPRNG_H

#include "rt.h"

/* One ChaCha20 block (RFC 8439 2.3): 64 bytes of key stream. */
void chacha20_block(const uint8_t key[32], uint32_t counter,
		    const uint8_t nonce[12], uint8_t out[64]);

/* A keyed 32-bit hash of three words and a counter (a ChaCha20 block
 * used as a PRF): RFC 6528 ISNs and SYN cookies. */
uint32_t csprng_hash32(const uint8_t key[32], uint32_t a, uint32_t b,
		       uint32_t c, uint32_t ctr);

/* Mix n bytes of entropy into the generator's key (any number of calls). */
void csprng_seed(const void *seed, size_t n);
/* n bytes of output; the key is replaced after every call, so a later
 * compromise of the state does not reveal earlier output. */
void csprng_bytes(void *buf, size_t n);

#endif
