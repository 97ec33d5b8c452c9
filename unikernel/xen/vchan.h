/*
 * vchan.h - a vchan server wire-compatible with Xen's libxenvchan.
 *
 * The protocol (Xen's public header xen/io/libxenvchan.h describes the
 * shared structures; libxenvchan is the reference peer):
 *   - the server grants one control page (struct vchan_shared below) and,
 *     for rings of 4 KiB and more, the ring pages, whose grant references
 *     follow the header in the control page (left ring first, then right);
 *     rings of 1 KiB (order 10) and 2 KiB (order 11) live inside the
 *     control page at offsets 1024 and 2048;
 *   - left ring: client writes, server reads; right ring: server writes,
 *     client reads; indexes are free-running uint32 byte counters,
 *     a ring's size is a power of two;
 *   - one event channel, allocated unbound by the server for the client
 *     domain; its port and the control page's grant reference are written
 *     to xenstore as <path>/event-channel and <path>/ring-ref;
 *   - cli_live/srv_live: 2 = client not connected yet, 1 = connected,
 *     0 = gone (the client's gntdev mapping writes 0 to cli_live when it
 *     is torn down, even when the client process dies);
 *   - notification flags: a side that wants to hear about the other's
 *     writes (VCHAN_NOTIFY_WRITE) or reads (VCHAN_NOTIFY_READ) sets the
 *     bit in the OTHER side's byte (the server sets bits in cli_notify);
 *     after acting, a side atomically clears the bit in its own byte
 *     (server: srv_notify) and sends an event only when it was set.
 *
 * This file has two halves. The ring engine (vchan_ring.c) is pure memory
 * work on the shared page and ring pages: it builds on the host, where
 * tests/c drives it against a simulated libxenvchan client. The Xen glue
 * (vchan.c) allocates and grants the pages, the event channel and the
 * xenstore keys, and blocks with SCHEDOP_poll.
 *
 * Everything the client can write is untrusted: we keep our own copies of
 * the ring orders, the grant list and of our own indexes (left.cons,
 * right.prod), and only read the client's index from the shared page,
 * checking it against the ring size before every use.
 */
#ifndef VCHAN_H
#define VCHAN_H

#include "../core/rt.h"

/* Layout of Xen's struct vchan_interface (tests/c checks it against the
 * real header): offsets 0, 8, 16, 18, 20, 21, 22, 23, 24. */
struct vchan_ring_shared {
	uint32_t cons, prod;
};
struct vchan_shared {
	struct vchan_ring_shared left, right;
	uint16_t left_order, right_order;
	uint8_t cli_live, srv_live;
	uint8_t cli_notify, srv_notify;
	uint32_t grants[];
};

#define VCHAN_NOTIFY_WRITE 0x1
#define VCHAN_NOTIFY_READ 0x2
#define VCHAN_LIVE_GONE 0
#define VCHAN_LIVE_CONNECTED 1
#define VCHAN_LIVE_WAITING 2

#define VCHAN_PAGE 4096u
#define VCHAN_MIN_ORDER 10
#define VCHAN_MAX_ORDER 17 /* 128 KiB per ring */
#define VCHAN_MAX_RING_PAGES (1u << (VCHAN_MAX_ORDER - 12))
#define VCHAN_MAX_GRANTS (2 * VCHAN_MAX_RING_PAGES)

struct vchan_ring {
	uint8_t *pages[VCHAN_MAX_RING_PAGES]; /* order < 12: pages[0] only */
	uint32_t size;                         /* bytes, 2^order */
	uint16_t order;
};

struct vchan_stats {
	uint64_t rx_bytes, tx_bytes;
	uint32_t notify;   /* events we sent */
	uint32_t bad_idx;  /* client index out of range: ring broken */
	uint32_t resets;   /* rings reset for a new client */
};

struct vchan {
	struct vchan_shared *sh;
	struct vchan_ring rd; /* left: client writes, we read */
	struct vchan_ring wr; /* right: we write, client reads */
	uint32_t rd_cons;     /* our copy of left.cons */
	uint32_t wr_prod;     /* our copy of right.prod */
	uint32_t grefs[VCHAN_MAX_GRANTS]; /* left's, then right's */
	uint32_t ngrefs;
	uint32_t evtchn;
	bool broken;          /* client wrote an impossible index */
	struct vchan_stats st;
};

/* Provided by the environment: signal the client (event channel). */
void vchan_notify_peer(struct vchan *v);

/* Lay out the control page `ctrl` (one page, zeroed or not) for rings of
 * 2^left_order and 2^right_order bytes. For an order >= 12, pages holds
 * 2^(order-12) ring pages and grefs their grant references (written to the
 * control page); for order 10/11 they are unused (NULL is fine). Both
 * in-page rings cannot use the same offset. Returns 0, or <0 on bad
 * orders or a grant list that would not fit before the in-page ring. */
int vchan_setup(struct vchan *v, void *ctrl, unsigned left_order,
		unsigned right_order, uint8_t *const *left_pages,
		const uint32_t *left_grefs, uint8_t *const *right_pages,
		const uint32_t *right_grefs);

/* Fresh indexes and flags for the next client, orders and grant list
 * rewritten from our copies: cli_live = 2 (waiting). */
void vchan_reset(struct vchan *v);

/* The client's cli_live byte: 2 waiting, 1 connected, 0 gone (any other
 * value counts as gone). */
int vchan_client_state(const struct vchan *v);

/* Bytes readable now / space writable now; <0 when the client's index is
 * impossible (the ring is then broken until vchan_reset). */
int vchan_rx_avail(struct vchan *v);
int vchan_tx_space(struct vchan *v);

/* Ask the client to notify us when it writes (rx) / reads (tx), then look
 * again (the final check before sleeping): the same values as above. */
int vchan_rx_arm(struct vchan *v);
int vchan_tx_arm(struct vchan *v);

/* Non-blocking: copy up to n bytes; the count (0 when nothing to do), or
 * <0 when the ring is broken. Sends an event when the client asked. */
int vchan_read(struct vchan *v, void *buf, size_t n);
int vchan_write(struct vchan *v, const void *buf, size_t n);

/* ---- Xen glue (vchan.c) ---- */

/* Start the one vchan server of this kernel for client domain 0. Kernel
 * command line: "vchan=PATH" (xenstore directory; default data/vchan,
 * i.e. /local/domain/<own id>/data/vchan), "vchan_order=N" (log2 of
 * each ring's size, 12..17, default 15). Returns 0 or <0. */
int vchan_server_start(void);
/* Wait for a client to connect: 0 connected, <0 when the platform is
 * stopping. */
int vchan_accept(void);
/* Block until some bytes arrive: their count; 0 when the client went
 * away (or broke the ring); <0 when the platform is stopping. */
int vchan_recv(void *buf, size_t cap);
/* Block until all n bytes are in the ring: 0, or <0 when the client
 * went away or the platform is stopping. */
int vchan_send(const void *buf, size_t n);
/* Forget the client and wait for the next one (rings reset). */
void vchan_disconnect(void);
/* Tell the client we are going away (srv_live = 0). */
void vchan_server_stop(void);
const struct vchan_stats *vchan_stats(void);

#endif
