/*
 * blkfront.h - the blkfront shared-ring engine (blkfront_ring.c).
 *
 * Pure ring logic over xen/io/blkif.h: no hypercalls, no xenstore, so it
 * builds on the host too, where tests/c/xen_blkfront.c drives it against
 * a simulated (and a hostile) blkback. Its needs from the environment:
 * bf_grant(), bf_notify() and bf_wait() (below); blkfront.c implements
 * them with the grant table and event channels on Xen.
 *
 * Read-only: BLKIF_OP_READ only (the apps read a key/value store; writes
 * are left out). Sector quantities are 512-byte units (we do not
 * advertise feature-large-sector-size). Up to BF_REQS requests in
 * flight, each one data page (8 sectors) granted once at init and kept;
 * a page is reused only after its response, or never again once the
 * backend broke the protocol (it may still be writing into it).
 */
#ifndef BLKFRONT_H
#define BLKFRONT_H

#include "../core/rt.h"
#include "barrier.h"
#ifndef __XEN_INTERFACE_VERSION__
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#endif
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/blkif.h>

#define BF_PAGE_SIZE 4096
#define BF_SECT 512
#define BF_SECTS_PER_PAGE (BF_PAGE_SIZE / BF_SECT)
#define BF_RING_SIZE 32 /* __RING_SIZE of blkif in one page */
#define BF_REQS 8       /* requests in flight, one data page each */
#define BF_PAGES (1 + BF_REQS)

/* Provided by the environment. bf_grant: a grant reference giving domid
 * access to the page at `page`, <0 on failure. bf_wait: block until the
 * backend signals or a deadline passes; 0, or <0 on timeout (the device
 * is then given up: its pages may still be written). */
int bf_grant(uint16_t domid, void *page, bool readonly);
void bf_notify(uint32_t port);
int bf_wait(uint32_t port);

struct bf_stats {
	uint32_t reqs, notify, err_status;
	uint32_t bad_id;   /* id out of range, not in flight, or duplicated */
	uint32_t bad_op;   /* operation not the one we asked for */
	uint32_t bad_prod; /* more responses than requests outstanding */
	uint32_t timeouts;
};

struct blkfront {
	blkif_front_ring_t ring;
	uint16_t backend_id, handle;
	uint32_t evtchn;
	grant_ref_t ring_ref;
	uint64_t sectors; /* device size, 512-byte sectors */

	uint8_t *page[BF_REQS];
	grant_ref_t gref[BF_REQS];
	/* per request id: where its data goes, how many bytes, in flight */
	uint8_t *dest[BF_REQS];
	uint32_t len[BF_REQS];
	bool busy[BF_REQS];
	unsigned int nbusy;
	bool failed; /* an error status in the current bf_read */
	bool broken; /* the backend broke the ring protocol: device is dead */

	struct bf_stats st;
};

/* Set up the ring and the data pages. pages: BF_PAGES page-aligned zeroed
 * pages (the sring, then the data pages). idx0: the first ring index (0
 * with blkback; tests start near 2^32). 0, or <0 when a grant failed. */
int bf_init(struct blkfront *bf, uint16_t backend_id, uint16_t handle,
	    uint32_t evtchn, uint8_t *pages, RING_IDX idx0);

/* Read nsect 512-byte sectors from sector into buf. 0, or -1 on an error
 * status, a range past bf->sectors, a timeout or a broken backend. */
int bf_read(struct blkfront *bf, uint64_t sector, void *buf, uint64_t nsect);

#endif
