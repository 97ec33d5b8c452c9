/*
 * xen_rings.c - netfront's ring engine (unikernel/xen/
 * netfront_ring.c, the code the Xen kernel runs) against a simulated
 * netback that shares the same ring pages and buffer pages in memory.
 *
 * The simulated backend plays netback's part with ring.h's BACK_RING
 * macros: it resolves grant references through a simulated grant table
 * (refusing unknown refs and writes through read-only grants), copies
 * frames out of TX buffers and into RX buffers, publishes responses with
 * RING_PUSH_RESPONSES_AND_CHECK_NOTIFY and goes idle with
 * RING_FINAL_CHECK_FOR_REQUESTS. Notifications in both directions are
 * counted, so suppression is checked, not assumed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netfront.h"

#include "check.h"
#include "simpeer.h"

/* ---- simulated grant table (simpeer.c) and event channel ------------ */
#define BACKEND 0
#define PORT 7
static int fe_notifies; /* frontend -> backend (nf_notify) */
static int be_notifies; /* backend -> frontend */

int nf_grant(uint16_t domid, void *page, bool readonly)
{
	return sim_grant(domid, page, readonly);
}

void nf_notify(uint32_t port)
{
	if (port == PORT)
		fe_notifies++;
}

static uint8_t *be_map(grant_ref_t ref, bool write)
{
	return sim_map(BACKEND, ref, write);
}

/* ---- simulated backend ---------------------------------------------- */
static netif_tx_back_ring_t btx;
static netif_rx_back_ring_t brx;
static int be_errors; /* protocol violations the backend saw */

#define WIRE_MAX 4096
static struct {
	size_t len;
	uint8_t data[1600];
} wire[WIRE_MAX]; /* frames the backend took from TX, in order */
static int nwire;

static void be_attach(struct netfront *nf, RING_IDX idx0)
{
	BACK_RING_ATTACH(&btx, nf->tx.sring, idx0, NF_PAGE_SIZE);
	BACK_RING_ATTACH(&brx, nf->rx.sring, idx0, NF_PAGE_SIZE);
	nwire = 0;
	be_errors = 0;
}

/* Take up to max TX requests, answer them, publish; go idle when none. */
static int be_tx(int max)
{
	int done = 0;
	for (;;) {
		while (done < max && RING_HAS_UNCONSUMED_REQUESTS(&btx)) {
			RING_IDX i = btx.req_cons++;
			netif_tx_request_t req = *RING_GET_REQUEST(&btx, i);
			rmb();
			int16_t status = NETIF_RSP_OKAY;
			uint8_t *page = be_map(req.gref, false);
			if (!page || req.offset + req.size > NF_PAGE_SIZE ||
			    req.size > sizeof(wire[0].data) || req.flags) {
				be_errors++;
				status = NETIF_RSP_ERROR;
			} else if (nwire < WIRE_MAX) {
				wire[nwire].len = req.size;
				memcpy(wire[nwire].data, page + req.offset, req.size);
				nwire++;
			}
			netif_tx_response_t *rsp =
				RING_GET_RESPONSE(&btx, btx.rsp_prod_pvt++);
			rsp->id = req.id;
			rsp->status = status;
			done++;
		}
		int notify;
		RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&btx, notify);
		if (notify)
			be_notifies++;
		if (done >= max)
			return done;
		int more;
		RING_FINAL_CHECK_FOR_REQUESTS(&btx, more);
		if (!more)
			return done;
	}
}

/* Put one frame into the next posted RX buffer (response not yet
 * published). -1 when the frontend has no buffer posted (netback drops). */
static int be_rx_put(const void *frame, size_t len, uint16_t offset)
{
	if (!RING_HAS_UNCONSUMED_REQUESTS(&brx))
		return -1;
	RING_IDX i = brx.req_cons++;
	netif_rx_request_t req = *RING_GET_REQUEST(&brx, i);
	uint8_t *page = be_map(req.gref, true);
	netif_rx_response_t *rsp = RING_GET_RESPONSE(&brx, brx.rsp_prod_pvt++);
	rsp->id = req.id;
	rsp->offset = offset;
	rsp->flags = NETRXF_data_validated;
	if (!page || offset + len > NF_PAGE_SIZE) {
		be_errors++;
		rsp->status = NETIF_RSP_ERROR;
		return -1;
	}
	memcpy(page + offset, frame, len);
	rsp->status = (int16_t)len;
	return 0;
}

/* A raw response the test crafts (hostile backends). */
static netif_rx_response_t *be_rx_raw(void)
{
	if (!RING_HAS_UNCONSUMED_REQUESTS(&brx))
		return NULL;
	brx.req_cons++;
	return RING_GET_RESPONSE(&brx, brx.rsp_prod_pvt++);
}

static void be_rx_push(void)
{
	int notify;
	RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&brx, notify);
	if (notify)
		be_notifies++;
}

/* netback's "wake me when requests come" after it ran out of them */
static bool be_rx_wait_for_requests(void)
{
	int more;
	RING_FINAL_CHECK_FOR_REQUESTS(&brx, more);
	return more;
}

/* ---- helpers --------------------------------------------------------- */
static uint8_t *pages;
static struct netfront nf;

static void make_frame(uint8_t *f, size_t len, uint32_t seq)
{
	for (size_t i = 0; i < len; i++)
		f[i] = (uint8_t)(seq * 131 + i * 7 + (i >> 8));
	memcpy(f, &seq, sizeof(seq));
}

static void setup(RING_IDX idx0)
{
	memset(pages, 0, (size_t)NF_PAGES * NF_PAGE_SIZE);
	sim_gnt_reset();
	fe_notifies = be_notifies = 0;
	CHECK_EQ(nf_init(&nf, BACKEND, PORT, pages, idx0), 0);
	be_attach(&nf, idx0);
	CHECK_EQ(be_rx_wait_for_requests(), 1); /* every buffer is posted */
	CHECK_EQ(brx.sring->req_prod - brx.req_cons, NF_RX_BUFS);
}

/* ---- tests ----------------------------------------------------------- */
static void test_basic(void)
{
	uint8_t f[1514], got[1600];
	setup(0);
	for (uint32_t s = 0; s < 3; s++) {
		make_frame(f, 60 + s, s);
		CHECK_EQ(nf_send(&nf, f, 60 + s), 0);
	}
	CHECK_EQ(be_tx(100), 3);
	CHECK_EQ(nwire, 3);
	for (uint32_t s = 0; s < 3; s++) {
		make_frame(f, 60 + s, s);
		CHECK_EQ(wire[s].len, 60 + s);
		CHECK(!memcmp(wire[s].data, f, 60 + s));
	}
	CHECK_EQ(nf_tx_reap(&nf, false), NF_TX_BUFS);

	for (uint32_t s = 0; s < 3; s++) {
		make_frame(f, 1514 - s, 100 + s);
		CHECK_EQ(be_rx_put(f, 1514 - s, (uint16_t)(s * 2)), 0);
	}
	be_rx_push();
	for (uint32_t s = 0; s < 3; s++) {
		make_frame(f, 1514 - s, 100 + s);
		CHECK_EQ(nf_recv(&nf, got, sizeof(got)), 1514 - s);
		CHECK(!memcmp(got, f, 1514 - s));
	}
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), 0);
	/* truncated to the caller's buffer, never overrun */
	make_frame(f, 1514, 7);
	CHECK_EQ(be_rx_put(f, 1514, 0), 0);
	be_rx_push();
	memset(got, 0xee, sizeof(got));
	CHECK_EQ(nf_recv(&nf, got, 100), 100);
	CHECK(!memcmp(got, f, 100));
	CHECK_EQ(got[100], 0xee);
	CHECK_EQ(nf.st.rx_trunc, 1);
	/* bad lengths are refused before touching the ring */
	CHECK_EQ(nf_send(&nf, f, 0), -1);
	CHECK_EQ(nf_send(&nf, f, 13), -1);
	CHECK_EQ(nf_send(&nf, f, NF_PAGE_SIZE + 1), -1);
	CHECK_EQ(be_errors, 0);
	/* every buffer got its own grant, ring pages too, none read-only
	 * except TX buffers */
	CHECK_EQ(sim_gnt_next, NF_PAGES);
	CHECK(!sim_gnt[nf.tx_ring_ref].ro && !sim_gnt[nf.rx_ring_ref].ro);
	CHECK(sim_gnt[nf.tx_gref[0]].ro && !sim_gnt[nf.rx_gref[0]].ro);
}

/* Many frames both ways with indices starting just below 2^32, random
 * batch sizes on both sides: nothing lost, duplicated or reordered. */
static void run_traffic(RING_IDX idx0, unsigned int seed, int frames,
			int backend_slowness)
{
	uint8_t f[1514], got[1600];
	setup(idx0);
	srand(seed);
	uint32_t sent = 0, taken = 0, delivered = 0, received = 0;
	int full = 0;
	if (frames > WIRE_MAX)
		abort();
	for (int round = 0; round < 100000; round++) {
		if (received == (uint32_t)frames && taken == (uint32_t)frames)
			break;
		/* frontend: a burst of sends */
		int burst = rand() % 20;
		for (int i = 0; i < burst && sent < (uint32_t)frames; i++) {
			size_t len = 14 + (size_t)(rand() % 1500);
			make_frame(f, len, sent);
			int r = nf_send(&nf, f, len);
			if (r == NF_FULL) {
				full++;
				nf_tx_reap(&nf, true); /* ask for an event */
				break;
			}
			CHECK_EQ(r, 0);
			sent++;
		}
		/* backend: sometimes does nothing (slower than the frontend) */
		if (rand() % (1 + backend_slowness) == 0)
			be_tx(1 + rand() % 40);
		for (; taken < (uint32_t)nwire; taken++) {
			uint32_t seq;
			memcpy(&seq, wire[taken].data, sizeof(seq));
			CHECK_EQ(seq, taken);
			make_frame(f, wire[taken].len, taken);
			CHECK(!memcmp(wire[taken].data, f, wire[taken].len));
		}
		/* backend delivers a batch of RX frames, then publishes once */
		if (rand() % (1 + backend_slowness) == 0) {
			int batch = rand() % 50;
			for (int i = 0; i < batch && delivered < (uint32_t)frames; i++) {
				size_t len = 14 + (size_t)(rand() % 1500);
				make_frame(f, len, delivered);
				if (be_rx_put(f, len, (uint16_t)(rand() % 2 * 2)) < 0)
					break; /* no buffer posted: frontend is behind */
				delivered++;
			}
			be_rx_push();
			be_rx_wait_for_requests();
		}
		/* frontend takes a few, sometimes all */
		int take = rand() % 3 ? rand() % 30 : 1000;
		for (int i = 0; i < take; i++) {
			int n = nf_recv(&nf, got, sizeof(got));
			if (n == 0)
				break;
			uint32_t seq;
			memcpy(&seq, got, sizeof(seq));
			CHECK_EQ(seq, received);
			make_frame(f, (size_t)n, received);
			CHECK(!memcmp(got, f, (size_t)n));
			received++;
		}
	}
	CHECK_EQ(received, frames);
	CHECK_EQ(taken, frames);
	CHECK_EQ(sent, frames);
	CHECK_EQ(be_errors, 0);
	CHECK_EQ(nf.st.bad_prod + nf.st.rx_bad + nf.st.rx_err + nf.st.tx_bad_rsp, 0);
	/* all TX buffers come back once the backend caught up */
	be_tx(1000);
	CHECK_EQ(nf_tx_reap(&nf, false), NF_TX_BUFS);
	CHECK_EQ(nf.rx.req_prod_pvt - nf.rx.rsp_cons, NF_RX_BUFS);
	if (backend_slowness)
		CHECK(full > 0); /* the slow backend really filled the ring */
	printf("traffic idx0=%#x slow=%d: %d frames each way, %d full, "
	       "fe->be notifications %d, be->fe %d, final rx index %#x\n",
	       idx0, backend_slowness, frames, full, fe_notifies, be_notifies,
	       nf.rx.rsp_cons);
}

static void test_wraparound(void)
{
	/* start 200 below 2^32: thousands of frames cross the wrap */
	run_traffic(0xffffff38u, 1, 3000, 0);
	CHECK(nf.rx.rsp_cons < 0x10000 && nf.tx.rsp_cons < 0x10000);
	run_traffic(0u - NF_RING_SIZE / 2, 2, 2000, 0);
}

static void test_slow_backend(void)
{
	run_traffic(0, 3, 2000, 4);
	run_traffic(0xfffffff0u, 4, 2000, 8);
}

/* TX ring full: the frontend gets NF_FULL, loses nothing, resumes. */
static void test_full_tx(void)
{
	uint8_t f[100];
	setup(0xfffffffeu);
	int n = 0;
	for (int i = 0; i < 1000; i++) {
		make_frame(f, sizeof(f), (uint32_t)i);
		int r = nf_send(&nf, f, sizeof(f));
		if (r == NF_FULL)
			break;
		CHECK_EQ(r, 0);
		n++;
	}
	CHECK_EQ(n, NF_TX_BUFS);
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), NF_FULL); /* still full, no harm */
	CHECK_EQ(nf_tx_reap(&nf, true), 0);            /* wants an event now */
	int before = be_notifies;
	CHECK_EQ(be_tx(10), 10);
	CHECK_EQ(be_notifies, before + 1); /* the frontend asked: one event */
	CHECK_EQ(nf_tx_reap(&nf, false), 10);
	for (int i = 0; i < 10; i++) {
		make_frame(f, sizeof(f), (uint32_t)(n + i));
		CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	}
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), NF_FULL);
	be_tx(1000);
	CHECK_EQ(nwire, NF_TX_BUFS + 10);
	for (int i = 0; i < nwire; i++) {
		uint32_t seq;
		memcpy(&seq, wire[i].data, 4);
		CHECK_EQ(seq, i);
	}
	CHECK_EQ(be_errors, 0);
}

/* RX ring full: the backend has only NF_RX_BUFS buffers to fill; the
 * frontend drains and reposts them; the backend can go on. */
static void test_full_rx(void)
{
	uint8_t f[200], got[1600];
	setup(0xffffffc0u);
	int put = 0;
	for (int i = 0; i < NF_RX_BUFS + 5; i++) {
		make_frame(f, sizeof(f), (uint32_t)i);
		if (be_rx_put(f, sizeof(f), 0) < 0)
			break;
		put++;
	}
	CHECK_EQ(put, NF_RX_BUFS);
	CHECK_EQ(be_rx_wait_for_requests(), 0); /* backend now waits for buffers */
	be_rx_push();
	int before = fe_notifies;
	for (int i = 0; i < NF_RX_BUFS; i++) {
		CHECK_EQ(nf_recv(&nf, got, sizeof(got)), sizeof(f));
		uint32_t seq;
		memcpy(&seq, got, 4);
		CHECK_EQ(seq, i);
	}
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), 0);
	/* the backend asked for requests (req_event): exactly one kick for
	 * the first repost, none for the rest */
	CHECK_EQ(fe_notifies, before + 1);
	CHECK_EQ(be_rx_wait_for_requests(), 1);
	CHECK_EQ(brx.sring->req_prod - brx.req_cons, NF_RX_BUFS);
}

/* Notification suppression, both directions. */
static void test_notifications(void)
{
	uint8_t f[100], got[1600];
	setup(0);
	/* TX: backend idle (final check done) -> the first push notifies, the
	 * next nine do not (backend is "running" from our point of view) */
	CHECK_EQ(be_tx(1000), 0);
	fe_notifies = 0;
	for (int i = 0; i < 10; i++) {
		make_frame(f, sizeof(f), (uint32_t)i);
		CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	}
	CHECK_EQ(fe_notifies, 1);
	CHECK_EQ(be_tx(1000), 10); /* ...and it goes idle again */
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	CHECK_EQ(fe_notifies, 2);
	/* TX completions: we reap without asking for events, so after the
	 * initial rsp_event the backend's responses notify nobody */
	be_tx(1000);
	nf_tx_reap(&nf, false);
	be_notifies = 0;
	for (int round = 0; round < 5; round++) {
		CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
		be_tx(1000);
		nf_tx_reap(&nf, false);
	}
	CHECK_EQ(be_notifies, 0);

	/* RX: frontend idle (nf_recv returned 0 -> rsp_event = cons + 1) */
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), 0);
	be_notifies = 0;
	for (int i = 0; i < 5; i++) /* five frames, one publish: one event */
		CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
	be_rx_push();
	CHECK_EQ(be_notifies, 1);
	for (int i = 0; i < 5; i++) { /* five publishes, frontend still busy */
		CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
		be_rx_push();
	}
	CHECK_EQ(be_notifies, 1);
	/* the frontend takes one and is still busy: no new event armed */
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), sizeof(f));
	CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
	be_rx_push();
	CHECK_EQ(be_notifies, 1);
	/* drained: the final check arms the event for the next response */
	int n = 0;
	while (nf_recv(&nf, got, sizeof(got)) > 0)
		n++;
	CHECK_EQ(n, 10);
	CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
	be_rx_push();
	CHECK_EQ(be_notifies, 2);
	/* RX refill: the backend has plenty of buffers and did not ask, so
	 * reposting does not notify it */
	fe_notifies = 0;
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), sizeof(f));
	CHECK_EQ(fe_notifies, 0);
}

/* A broken or hostile backend: no crash, no overrun, ring keeps going. */
static void test_hostile_backend(void)
{
	uint8_t f[300], got[1600];
	setup(0);
	netif_rx_response_t *r;

	r = be_rx_raw(); /* size past the page */
	r->offset = 4000; r->status = 200; r->flags = 0;
	r = be_rx_raw(); /* negative status */
	r->offset = 0; r->status = NETIF_RSP_ERROR; r->flags = 0;
	r = be_rx_raw(); /* zero length */
	r->offset = 0; r->status = 0; r->flags = 0;
	r = be_rx_raw(); /* a runt */
	r->offset = 0; r->status = 5; r->flags = 0;
	r = be_rx_raw(); /* multi-slot frame (we offered no SG): 3 slots */
	r->offset = 0; r->status = 1000; r->flags = NETRXF_more_data;
	r = be_rx_raw();
	r->offset = 0; r->status = 1000; r->flags = NETRXF_more_data;
	r = be_rx_raw();
	r->offset = 0; r->status = 100; r->flags = 0;
	r = be_rx_raw(); /* bogus id: ignored, the slot's own buffer used */
	make_frame(f, sizeof(f), 42);
	{
		/* fill the buffer this slot maps to via a normal put instead */
		brx.req_cons--;
		brx.rsp_prod_pvt--;
		CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
		RING_GET_RESPONSE(&brx, brx.rsp_prod_pvt - 1)->id = 0xffff;
	}
	/* a frame followed by two extra-info slots */
	make_frame(f, sizeof(f), 43);
	CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
	RING_GET_RESPONSE(&brx, brx.rsp_prod_pvt - 1)->flags |= NETRXF_extra_info;
	{
		netif_extra_info_t *ex = (netif_extra_info_t *)(void *)be_rx_raw();
		ex->type = XEN_NETIF_EXTRA_TYPE_GSO;
		ex->flags = XEN_NETIF_EXTRA_FLAG_MORE;
		ex = (netif_extra_info_t *)(void *)be_rx_raw();
		ex->type = XEN_NETIF_EXTRA_TYPE_HASH;
		ex->flags = 0;
	}
	make_frame(f, sizeof(f), 44);
	CHECK_EQ(be_rx_put(f, sizeof(f), 0), 0);
	be_rx_push();

	uint32_t seq;
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), sizeof(f));
	memcpy(&seq, got, 4);
	CHECK_EQ(seq, 42);
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), sizeof(f));
	memcpy(&seq, got, 4);
	CHECK_EQ(seq, 43);
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), sizeof(f));
	memcpy(&seq, got, 4);
	CHECK_EQ(seq, 44);
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), 0);
	CHECK_EQ(nf.st.rx_bad, 2);
	CHECK_EQ(nf.st.rx_err, 2);
	CHECK_EQ(nf.st.rx_more, 1);
	CHECK_EQ(nf.st.rx_extra, 2);
	/* every slot's buffer was reposted */
	CHECK_EQ(nf.rx.req_prod_pvt - nf.rx.rsp_cons, NF_RX_BUFS);

	/* rsp_prod far beyond anything requested */
	/* (one more than outstanding is already too many) */
	RING_IDX cons0 = nf.rx.rsp_cons;
	nf.rx.sring->rsp_prod = nf.rx.req_prod_pvt + 1;
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), -1);
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), -1);
	/* nothing consumed: those slots hold our requests, not responses */
	CHECK_EQ(nf.rx.rsp_cons, cons0);
	CHECK_EQ(nf.st.bad_prod, 1);
	CHECK(nf.broken);
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), -1); /* the device is dead */
	setup(0);
	RING_IDX tcons0 = nf.tx.rsp_cons;
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	nf.tx.sring->rsp_prod += 100000;
	CHECK_EQ(nf_tx_reap(&nf, false), 0);
	CHECK_EQ(nf.tx.rsp_cons, tcons0);
	CHECK(nf.broken);
	CHECK_EQ(nf_recv(&nf, got, sizeof(got)), -1);

	/* TX responses with ids we never used, or twice */
	setup(0);
	make_frame(f, sizeof(f), 1);
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	be_tx(1000);
	netif_tx_response_t *t = RING_GET_RESPONSE(&btx, btx.rsp_prod_pvt - 1);
	uint16_t real = t->id;
	CHECK_EQ(nf_tx_reap(&nf, false), NF_TX_BUFS);
	/* replay the same response and an out-of-range id as extra responses */
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	CHECK_EQ(nf_send(&nf, f, sizeof(f)), 0);
	btx.req_cons += 2;
	t = RING_GET_RESPONSE(&btx, btx.rsp_prod_pvt++);
	t->id = real == 0 ? 1 : 0; /* an id that is not in flight */
	t->status = NETIF_RSP_OKAY;
	t = RING_GET_RESPONSE(&btx, btx.rsp_prod_pvt++);
	t->id = NF_TX_BUFS + 5;
	t->status = NETIF_RSP_OKAY;
	int notify;
	RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&btx, notify);
	(void)notify;
	unsigned int freed = nf_tx_reap(&nf, false);
	CHECK(freed <= NF_TX_BUFS);
	CHECK(nf.st.tx_bad_rsp >= 1);
	for (unsigned int i = 0; i < nf.tx_nfree; i++) /* no id twice */
		for (unsigned int j = i + 1; j < nf.tx_nfree; j++)
			CHECK(nf.tx_free[i] != nf.tx_free[j]);
}

static void test_grant_failure(void)
{
	memset(pages, 0, (size_t)NF_PAGES * NF_PAGE_SIZE);
	sim_gnt_reset();
	sim_fail_grant_after = 70;
	CHECK(nf_init(&nf, BACKEND, PORT, pages, 0) < 0);
	sim_fail_grant_after = -1;
}

int main(void)
{
	pages = aligned_alloc(NF_PAGE_SIZE, (size_t)NF_PAGES * NF_PAGE_SIZE);
	if (!pages)
		return 2;
	test_basic();
	test_wraparound();
	test_slow_backend();
	test_full_tx();
	test_full_rx();
	test_notifications();
	test_hostile_backend();
	test_grant_failure();
	free(pages);
	printf("%d checks, %d failures\n", checks, failures);
	return failures != 0;
}
