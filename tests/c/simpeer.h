/*
 * simpeer.h - what the simulated Xen peers of tests/c and tests/fuzz
 * share: a grant table that the frontend's grants land in and that the
 * simulated backend maps through, and the script a hostile peer takes
 * its moves from.
 *
 * Built into the host tests of xen/netfront_ring.c (xen_rings.c,
 * fuzz_netback.c), xen/blkfront_ring.c (xen_blkfront.c) and
 * xen/vchan_ring.c (vchan_ring.c, fuzz_vchan.c).
 */
#ifndef TESTS_SIMPEER_H
#define TESTS_SIMPEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- simulated grant table ---------------------------------------------- */
#define SIM_PAGE_SIZE 4096
#define SIM_GNT_MAX 512

struct sim_grant {
	bool used, ro;
	uint16_t domid; /* who may map it */
	uint8_t *page;
};
extern struct sim_grant sim_gnt[SIM_GNT_MAX];
extern int sim_gnt_next;          /* the next ref handed out */
extern int sim_fail_grant_after;  /* refuse the grant with this ref (-1: never) */

/* Every entry free, refs from 0 again, no refusal planned. */
void sim_gnt_reset(void);
/* Grant a whole page (page-aligned) to domid: its ref, or -1 when the
 * page is not aligned, the table is full or this is the planned refusal. */
int sim_grant(uint16_t domid, void *page, bool readonly);
/* What the backend domain gets when it maps ref (for writing or not):
 * the page, or NULL for an unknown ref, another domain's grant or a write
 * through a read-only grant. */
uint8_t *sim_map(uint16_t backend, uint32_t ref, bool write);

/* ---- a hostile peer's script (the fuzzers' input) ------------------------ */
struct sim_script {
	const uint8_t *p;
	size_t n;
};
/* The next `bytes` bytes (1..4) big-endian; zeros once the input ran out. */
uint32_t sim_take(struct sim_script *s, int bytes);

#endif
