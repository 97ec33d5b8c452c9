/*
 * time.c - Xen system time from the shared info page.
 *
 * Xen publishes, per vCPU, a (tsc_timestamp, system_time) pair and the TSC
 * frequency as mul/shift. It bumps `version` to odd before an update and to
 * even after it, so a reader retries while the version is odd or changed.
 */
#include "xenplat.h"

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

uint64_t xen_time_ns(void)
{
	static uint64_t last;
	struct vcpu_time_info *t = &shared_info->vcpu_info[0].time;
	uint32_t ver;
	uint64_t tsc_ts, sys, tsc;
	uint32_t mul;
	int8_t shift;

	do {
		ver = ACCESS_ONCE(t->version);
		rmb(); /* read the version before the fields it guards */
		tsc_ts = ACCESS_ONCE(t->tsc_timestamp);
		sys = ACCESS_ONCE(t->system_time);
		mul = ACCESS_ONCE(t->tsc_to_system_mul);
		shift = ACCESS_ONCE(t->tsc_shift);
		tsc = rdtsc();
		rmb(); /* read the fields before checking the version again */
	} while ((ver & 1) || ver != ACCESS_ONCE(t->version));

	uint64_t delta = tsc - tsc_ts;
	if (tsc < tsc_ts) /* TSC read before the snapshot: no negative time */
		delta = 0;
	if (shift < 0)
		delta >>= -shift;
	else
		delta <<= shift;
	uint64_t ns = sys + (uint64_t)(((unsigned __int128)delta * mul) >> 32);
	if (ns < last) /* monotonic even across vCPU time updates */
		ns = last;
	last = ns;
	return ns;
}

uint64_t xen_wallclock_s(void)
{
	uint32_t ver, sec;
	do {
		ver = ACCESS_ONCE(shared_info->wc_version);
		rmb();
		sec = ACCESS_ONCE(shared_info->wc_sec);
		rmb();
	} while ((ver & 1) || ver != ACCESS_ONCE(shared_info->wc_version));
	return sec + xen_time_ns() / 1000000000ULL;
}
