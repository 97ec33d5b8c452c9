/*
 * entropy.c - plat_random on Xen: core/csprng.c seeded, on first use,
 * from what a PV domain has:
 *   - RDSEED and RDRAND when CPUID says the CPU has them (leaf 7 EBX bit
 *     18, leaf 1 ECX bit 30), each value checked with the carry flag;
 *   - a seed the toolstack may write to xenstore before the domain runs
 *     (data/random-seed in the domain's home, hex; erased once read);
 *   - the TSC, Xen system time and wall clock, and the TSC jitter of a
 *     few hundred clock reads (weak, but never zero).
 */
#include "../core/csprng.h"
#include "../core/platform.h"
#include "xenplat.h"

static inline void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4])
{
	__asm__ __volatile__("cpuid"
			     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			     : "a"(leaf), "c"(sub));
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* One hardware random value; false when the CPU had none ready (CF=0). */
static bool hw_rand(bool seed, uint64_t *v)
{
	uint8_t ok;

	if (seed)
		__asm__ __volatile__("rdseed %0; setc %1" : "=r"(*v), "=qm"(ok));
	else
		__asm__ __volatile__("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok));
	return ok;
}

/* Mix 16 hardware values from RDSEED or RDRAND (10 tries each). */
static int mix_hw(bool seed)
{
	int got = 0;

	for (int i = 0; i < 16; i++) {
		for (int t = 0; t < 10; t++) {
			uint64_t v;
			if (hw_rand(seed, &v)) {
				csprng_seed(&v, sizeof(v));
				got++;
				break;
			}
		}
	}
	return got;
}

static void seed_once(void)
{
	uint32_t r[4];
	uint64_t v[3];
	char hex[130];
	int n, got_seed = 0, got_rand = 0, xs_bytes = 0;

	v[0] = rdtsc();
	v[1] = xen_time_ns();
	v[2] = xen_wallclock_s();
	csprng_seed(v, sizeof(v));
	for (int i = 0; i < 256; i++) {		/* clock-read jitter */
		uint64_t t0 = rdtsc();
		(void)xen_time_ns();
		v[i & 1] ^= (rdtsc() - t0) << (i % 57);
	}
	csprng_seed(v, sizeof(v));

	cpuid(0, 0, r);
	if (r[0] >= 7) {
		cpuid(7, 0, r);
		if (r[1] & (1u << 18))
			got_seed = mix_hw(true);
	}
	cpuid(1, 0, r);
	if (r[2] & (1u << 30))
		got_rand = mix_hw(false);

	n = xs_read("data/random-seed", hex, sizeof(hex));
	if (n > 0) {
		uint8_t b[64];
		int k = 0;
		for (int i = 0; i + 1 < n && k < (int)sizeof(b); i += 2) {
			int h = hexval(hex[i]), l = hexval(hex[i + 1]);
			if (h < 0 || l < 0)
				break;
			b[k++] = (uint8_t)(h << 4 | l);
		}
		csprng_seed(b, (size_t)k);
		memset(b, 0, sizeof(b));
		xs_bytes = k;
		xs_write("data/random-seed", "");	/* used once */
	}
	memset(hex, 0, sizeof(hex));
	printk("random: seeded (rdseed %d, rdrand %d, xenstore %d bytes, clocks)\n",
	       got_seed, got_rand, xs_bytes);
}

void plat_random(void *buf, size_t n)
{
	static bool seeded;

	if (!seeded) {
		seed_once();
		seeded = true;
	}
	csprng_bytes(buf, n);
}
