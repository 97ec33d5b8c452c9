/*
 * netfront.h - the netfront shared-ring engine (netfront_ring.c).
 *
 * Pure ring logic over xen/io/netif.h: no hypercalls, no xenstore. It
 * builds on the host too, where tests/c drives it against a simulated
 * backend that shares the same ring pages. Its two needs from the
 * environment are nf_grant() and nf_notify() (below); netfront.c
 * implements them with the grant table and event channels on Xen.
 *
 * One page per buffer, each granted once at init and kept: a TX buffer
 * is reused only after its response (netback has stopped reading it by
 * then), an RX buffer is reposted only after its frame was copied out.
 */
#ifndef NETFRONT_H
#define NETFRONT_H

#include "../core/rt.h"
#include "barrier.h"
#ifndef __XEN_INTERFACE_VERSION__
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#endif
#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/netif.h>

#define NF_PAGE_SIZE 4096
#define NF_RING_SIZE 256 /* __RING_SIZE of both netif rings in one page */
#define NF_TX_BUFS 64    /* <= NF_RING_SIZE */
#define NF_RX_BUFS 64    /* <= NF_RING_SIZE */
#define NF_PAGES (2 + NF_TX_BUFS + NF_RX_BUFS)

/* Provided by the environment. nf_grant: a grant reference giving domid
 * access to the page at `page`, <0 on failure. */
int nf_grant(uint16_t domid, void *page, bool readonly);
void nf_notify(uint32_t port);

struct nf_stats {
	uint32_t tx, tx_full, tx_bad_len, tx_err, tx_bad_rsp;
	uint32_t rx, rx_err, rx_bad, rx_trunc, rx_extra, rx_more;
	uint32_t notify; /* event channel notifications we sent */
	uint32_t bad_prod; /* backend claimed more responses than requests */
};

struct netfront {
	netif_tx_front_ring_t tx;
	netif_rx_front_ring_t rx;
	uint16_t backend_id;
	uint32_t evtchn;
	grant_ref_t tx_ring_ref, rx_ring_ref;

	uint8_t *tx_buf[NF_TX_BUFS];
	grant_ref_t tx_gref[NF_TX_BUFS];
	bool tx_busy[NF_TX_BUFS];
	uint16_t tx_free[NF_TX_BUFS]; /* stack of free buffer ids */
	unsigned int tx_nfree;

	uint8_t *rx_buf[NF_RX_BUFS];
	grant_ref_t rx_gref[NF_RX_BUFS];
	uint16_t rx_at[NF_RING_SIZE]; /* buffer posted at each ring slot */
	bool rx_in_extras; /* next slot is an extra-info descriptor */
	bool rx_in_more;   /* next slot continues a dropped multi-slot frame */
	uint16_t rx_flags; /* NETRXF_* of the frame nf_recv last returned */
	bool broken; /* the backend broke the ring protocol: device is dead */

	struct nf_stats st;
};

/*
 * Set up both rings and all buffers. pages: NF_PAGES page-aligned pages
 * (TX sring, RX sring, TX buffers, RX buffers), zeroed. idx0: the first
 * ring index (0 with netback, which always starts at 0; tests start near
 * 2^32 to cross the wrap). Grants everything to backend_id, posts every
 * RX buffer. Does not notify: the backend reads the rings when it
 * connects. 0, or <0 when a grant failed.
 */
int nf_init(struct netfront *nf, uint16_t backend_id, uint32_t evtchn,
	    uint8_t *pages, RING_IDX idx0);

/* Queue one frame (copied) for transmission. 0 queued; NF_FULL when no
 * buffer or slot is free (call nf_tx_reap(nf, true), wait for the event,
 * retry); -1 otherwise (bad length: dropped; or the device is broken). */
#define NF_FULL (-2)
int nf_send(struct netfront *nf, const void *frame, size_t len);

/* Collect TX responses, freeing buffers. With want_event, finish with the
 * ring.h final check so the backend notifies on its next response (used
 * when the ring is full and the caller will wait); without it TX
 * completions raise no events at all. Returns the free buffer count. */
unsigned int nf_tx_reap(struct netfront *nf, bool want_event);

/* Take the next received frame: its length (copied into buf, truncated
 * to cap), or 0 when none is left, or -1 once the device is broken.
 * Returning 0 implies the final check was done: the backend will notify
 * on its next response. */
int nf_recv(struct netfront *nf, void *buf, size_t cap);

#endif
