/*
 * fuzz_netback.c - a hostile netback against netfront's ring engine
 * (unikernel/xen/netfront_ring.c, the code the Xen kernel runs).
 *
 * The input is a script. The frontend sends and receives as the kernel
 * would; the "backend" writes whatever the script says into the shared
 * ring pages: response producers far ahead or behind, ids, offsets,
 * sizes, flags and extra-info chains of its choosing, request producers
 * and event indexes it has no business touching. The engine must never
 * read or write outside its pages, return more than the caller's
 * capacity, or come back to life once it declared the device broken.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netfront.h"
#include "simpeer.h"

static uint8_t pages[NF_PAGES * NF_PAGE_SIZE] __attribute__((aligned(4096)));

int nf_grant(uint16_t domid, void *page, bool readonly)
{
	int ref = sim_grant(domid, page, readonly);
	if (ref < 0)
		abort();	/* the engine grants whole pages only, NF_PAGES of them */
	return ref;
}

void nf_notify(uint32_t port)
{
	(void)port;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct netfront nf;
	static uint8_t frame[NF_PAGE_SIZE + 64], buf[NF_PAGE_SIZE + 64];
	struct sim_script s = { data, size };
	netif_tx_sring_t *txs = (netif_tx_sring_t *)(void *)pages;
	netif_rx_sring_t *rxs = (netif_rx_sring_t *)(void *)(pages + NF_PAGE_SIZE);
	/* start near 2^32 half of the time: wrap-around */
	RING_IDX idx0 = sim_take(&s, 1) & 1 ? 0xffffff00u + sim_take(&s, 1) : 0;
	bool broken = false;

	memset(pages, 0, sizeof(pages));
	sim_gnt_reset();
	if (nf_init(&nf, 0, 7, pages, idx0) < 0)
		abort();
	for (int steps = 0; s.n && steps < 4096; steps++) {
		uint8_t op = (uint8_t)sim_take(&s, 1);
		switch (op % 8) {
		case 0: {	/* the kernel sends a frame */
			size_t len = sim_take(&s, 2) % sizeof(frame);
			int r = nf_send(&nf, frame, len);
			if (broken && r == 0)
				abort();
			break;
		}
		case 1: {	/* backend: a TX response, producer moved by d */
			RING_IDX prod = txs->rsp_prod;
			netif_tx_response_t *rsp = &txs->ring[prod % NF_RING_SIZE].rsp;
			rsp->id = (uint16_t)sim_take(&s, 2);
			rsp->status = (int16_t)sim_take(&s, 2);
			wmb();
			txs->rsp_prod = prod + (sim_take(&s, 1) % 4 == 0 ? sim_take(&s, 4) : sim_take(&s, 1) % 8);
			break;
		}
		case 2: {	/* backend: an RX response at the next slot */
			RING_IDX prod = rxs->rsp_prod;
			netif_rx_response_t *rsp = &rxs->ring[prod % NF_RING_SIZE].rsp;
			rsp->id = (uint16_t)sim_take(&s, 2);
			rsp->offset = (uint16_t)sim_take(&s, 2);
			rsp->flags = (uint16_t)sim_take(&s, 2);
			rsp->status = (int16_t)sim_take(&s, 2);
			wmb();
			rxs->rsp_prod = prod + (sim_take(&s, 1) % 4 == 0 ? sim_take(&s, 4) : sim_take(&s, 1) % 8);
			break;
		}
		case 3: {	/* the kernel receives */
			size_t cap = sim_take(&s, 2) % sizeof(buf);
			int r = nf_recv(&nf, buf, cap);
			if (r > (int)cap || (broken && r != -1))
				abort();
			if (r == -1)
				broken = true;
			break;
		}
		case 4:		/* the kernel reaps TX completions */
			if (nf_tx_reap(&nf, sim_take(&s, 1) & 1) > NF_TX_BUFS)
				abort();
			break;
		case 5: {	/* backend scribbles anywhere in a ring page */
			uint8_t *page = pages + (sim_take(&s, 1) & 1) * NF_PAGE_SIZE;
			size_t off = sim_take(&s, 2) % (NF_PAGE_SIZE - 4);
			uint32_t v = sim_take(&s, 4);
			memcpy(page + off, &v, 4);
			break;
		}
		case 6:		/* backend: event indexes */
			txs->rsp_event = sim_take(&s, 4);
			rxs->rsp_event = sim_take(&s, 4);
			break;
		case 7:		/* backend: scribbles into an RX buffer */
			pages[(2 + NF_TX_BUFS) * NF_PAGE_SIZE + sim_take(&s, 2) % (NF_RX_BUFS * NF_PAGE_SIZE)] =
				(uint8_t)sim_take(&s, 1);
			break;
		}
		broken |= nf.broken;
		if (nf.tx_nfree > NF_TX_BUFS)
			abort();
	}
	return 0;
}
