/*
 * netfront_ring.c - TX and RX shared rings of netfront (see netfront.h).
 *
 * Index arithmetic is RING_IDX (uint32_t) modulo 2^32 throughout; slots
 * are index & (NF_RING_SIZE - 1). Nothing the backend writes (response
 * producer, ids, offsets, sizes, flags) is trusted without a check; a
 * response producer past our requests marks the device broken.
 */
#include "netfront.h"

int nf_init(struct netfront *nf, uint16_t backend_id, uint32_t evtchn,
	    uint8_t *pages, RING_IDX idx0)
{
	memset(nf, 0, sizeof(*nf));
	nf->backend_id = backend_id;
	nf->evtchn = evtchn;

	netif_tx_sring_t *txs = (netif_tx_sring_t *)(void *)pages;
	netif_rx_sring_t *rxs =
		(netif_rx_sring_t *)(void *)(pages + NF_PAGE_SIZE);
	SHARED_RING_INIT(txs);
	SHARED_RING_INIT(rxs);
	txs->req_prod = txs->rsp_prod = idx0;
	txs->req_event = txs->rsp_event = idx0 + 1;
	rxs->req_prod = rxs->rsp_prod = idx0;
	rxs->req_event = rxs->rsp_event = idx0 + 1;
	FRONT_RING_ATTACH(&nf->tx, txs, idx0, NF_PAGE_SIZE);
	FRONT_RING_ATTACH(&nf->rx, rxs, idx0, NF_PAGE_SIZE);
	if (RING_SIZE(&nf->tx) != NF_RING_SIZE ||
	    RING_SIZE(&nf->rx) != NF_RING_SIZE)
		return -1;

	int r = nf_grant(backend_id, txs, false);
	if (r < 0)
		return -1;
	nf->tx_ring_ref = (grant_ref_t)r;
	if ((r = nf_grant(backend_id, rxs, false)) < 0)
		return -1;
	nf->rx_ring_ref = (grant_ref_t)r;

	uint8_t *p = pages + 2 * NF_PAGE_SIZE;
	for (unsigned int i = 0; i < NF_TX_BUFS; i++, p += NF_PAGE_SIZE) {
		nf->tx_buf[i] = p;
		/* the backend only reads what we send */
		if ((r = nf_grant(backend_id, p, true)) < 0)
			return -1;
		nf->tx_gref[i] = (grant_ref_t)r;
		nf->tx_free[nf->tx_nfree++] = (uint16_t)(NF_TX_BUFS - 1 - i);
	}
	for (unsigned int i = 0; i < NF_RX_BUFS; i++, p += NF_PAGE_SIZE) {
		nf->rx_buf[i] = p;
		if ((r = nf_grant(backend_id, p, false)) < 0)
			return -1;
		nf->rx_gref[i] = (grant_ref_t)r;
		/* post it: request id = buffer id; remember which buffer
		 * sits at this slot for responses that carry no usable id */
		RING_IDX idx = nf->rx.req_prod_pvt++;
		netif_rx_request_t *req = RING_GET_REQUEST(&nf->rx, idx);
		req->id = (uint16_t)i;
		req->gref = nf->rx_gref[i];
		nf->rx_at[idx & (NF_RING_SIZE - 1)] = (uint16_t)i;
	}
	wmb(); /* requests before the producer index that publishes them */
	rxs->req_prod = nf->rx.req_prod_pvt;
	return 0;
}

/* A backend that claims more responses than we have requests outstanding
 * has broken the protocol: the slots past our requests hold no responses.
 * Like Linux's RING_RESPONSE_PROD_OVERFLOW check, stop using the device. */
static bool prod_overflow(struct netfront *nf, RING_IDX prod, RING_IDX cons,
			  RING_IDX req_prod_pvt)
{
	if ((RING_IDX)(prod - cons) <= (RING_IDX)(req_prod_pvt - cons))
		return false;
	nf->st.bad_prod++;
	nf->broken = true;
	return true;
}

unsigned int nf_tx_reap(struct netfront *nf, bool want_event)
{
	int more;
	do {
		if (nf->broken)
			return 0;
		RING_IDX prod = ACCESS_ONCE(nf->tx.sring->rsp_prod);
		rmb(); /* read rsp_prod before the responses it covers */
		if (prod_overflow(nf, prod, nf->tx.rsp_cons, nf->tx.req_prod_pvt))
			return 0;
		RING_IDX cons;
		for (cons = nf->tx.rsp_cons; cons != prod; cons++) {
			netif_tx_response_t rsp = *RING_GET_RESPONSE(&nf->tx, cons);
			if (rsp.status == NETIF_RSP_NULL)
				continue; /* answers an extra-info slot */
			if (rsp.id >= NF_TX_BUFS || !nf->tx_busy[rsp.id]) {
				nf->st.tx_bad_rsp++;
				continue;
			}
			if (rsp.status != NETIF_RSP_OKAY)
				nf->st.tx_err++;
			nf->tx_busy[rsp.id] = false;
			nf->tx_free[nf->tx_nfree++] = rsp.id;
		}
		nf->tx.rsp_cons = cons;
		if (!want_event)
			break;
		/* sets rsp_event = rsp_cons + 1, then looks once more */
		RING_FINAL_CHECK_FOR_RESPONSES(&nf->tx, more);
	} while (more);
	return nf->tx_nfree;
}

int nf_send(struct netfront *nf, const void *frame, size_t len)
{
	if (nf->broken)
		return -1;
	if (len < 14 || len > NF_PAGE_SIZE) {
		nf->st.tx_bad_len++;
		return -1;
	}
	if (nf->tx_nfree == 0 || RING_FULL(&nf->tx))
		nf_tx_reap(nf, false);
	if (nf->tx_nfree == 0 || RING_FULL(&nf->tx)) {
		nf->st.tx_full++;
		return NF_FULL;
	}
	uint16_t id = nf->tx_free[--nf->tx_nfree];
	nf->tx_busy[id] = true;
	memcpy(nf->tx_buf[id], frame, len);

	netif_tx_request_t *req = RING_GET_REQUEST(&nf->tx, nf->tx.req_prod_pvt);
	req->gref = nf->tx_gref[id];
	req->offset = 0;
	req->flags = 0; /* checksums are complete; one slot, no extras */
	req->id = id;
	req->size = (uint16_t)len;
	nf->tx.req_prod_pvt++;

	int notify;
	/* wmb; publish req_prod; mb; notify only if the backend asked for
	 * an event at an index we just passed (req_event) */
	RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&nf->tx, notify);
	if (notify) {
		nf->st.notify++;
		nf_notify(nf->evtchn);
	}
	nf->st.tx++;
	return 0;
}

/* Post buffer b again at the next request slot (not yet published). */
static void rx_repost(struct netfront *nf, uint16_t b)
{
	RING_IDX idx = nf->rx.req_prod_pvt++;
	netif_rx_request_t *req = RING_GET_REQUEST(&nf->rx, idx);
	req->id = b;
	req->gref = nf->rx_gref[b];
	nf->rx_at[idx & (NF_RING_SIZE - 1)] = b;
}

static void rx_push(struct netfront *nf)
{
	int notify;
	RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&nf->rx, notify);
	if (notify) {
		nf->st.notify++;
		nf_notify(nf->evtchn);
	}
}

int nf_recv(struct netfront *nf, void *buf, size_t cap)
{
	int more;
	int got = 0;
	bool reposted = false;

	do {
		if (nf->broken)
			return -1;
		RING_IDX prod = ACCESS_ONCE(nf->rx.sring->rsp_prod);
		rmb(); /* read rsp_prod before the responses it covers */
		if (prod_overflow(nf, prod, nf->rx.rsp_cons, nf->rx.req_prod_pvt))
			return -1;
		while (!got && nf->rx.rsp_cons != prod) {
			RING_IDX cons = nf->rx.rsp_cons++;
			/* The buffer is the one WE posted at this slot (netback
			 * answers in order); rsp.id is not trusted for it. */
			uint16_t b = nf->rx_at[cons & (NF_RING_SIZE - 1)];
			netif_rx_response_t rsp = *RING_GET_RESPONSE(&nf->rx, cons);

			if (nf->rx_in_extras) {
				/* this slot holds a netif_extra_info */
				netif_extra_info_t ex;
				_Static_assert(sizeof(ex) == sizeof(rsp),
					       "extra info fills one response slot");
				memcpy(&ex, &rsp, sizeof(ex));
				nf->st.rx_extra++;
				nf->rx_in_extras = (ex.flags & XEN_NETIF_EXTRA_FLAG_MORE) != 0;
			} else if (nf->rx_in_more) {
				nf->rx_in_more = (rsp.flags & NETRXF_more_data) != 0;
			} else {
				if (rsp.flags & NETRXF_extra_info)
					nf->rx_in_extras = true;
				if (rsp.flags & NETRXF_more_data) {
					/* we offered no scatter-gather: drop */
					nf->st.rx_more++;
					nf->rx_in_more = true;
				} else if (rsp.status <= 0) {
					nf->st.rx_err++;
				} else if ((size_t)rsp.offset + (size_t)rsp.status >
						   NF_PAGE_SIZE ||
					   rsp.status < 14) {
					nf->st.rx_bad++;
				} else {
					size_t n = (size_t)rsp.status;
					if (n > cap) {
						nf->st.rx_trunc++;
						n = cap;
					}
					memcpy(buf, nf->rx_buf[b] + rsp.offset, n);
					nf->st.rx++;
					nf->rx_flags = rsp.flags;
					got = (int)n;
				}
			}
			/* copied out (or dropped): the buffer goes back */
			rx_repost(nf, b);
			reposted = true;
		}
		if (got)
			break;
		/* sets rsp_event = rsp_cons + 1, then looks once more */
		RING_FINAL_CHECK_FOR_RESPONSES(&nf->rx, more);
	} while (more);

	if (reposted)
		rx_push(nf);
	return got;
}
