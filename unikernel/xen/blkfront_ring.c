/*
 * blkfront_ring.c - the blkif request/response ring (see blkfront.h).
 *
 * Index arithmetic is RING_IDX (uint32_t) modulo 2^32. Nothing blkback
 * writes is trusted: rsp_prod may not run past our requests (else the
 * device is marked broken), a response's id must be in range and in
 * flight (else the device is broken too: the request that slot answers
 * is lost and its page may be written later), its operation must be a
 * read, and only BLKIF_RSP_OKAY delivers data.
 */
#include "blkfront.h"

int bf_init(struct blkfront *bf, uint16_t backend_id, uint16_t handle,
	    uint32_t evtchn, uint8_t *pages, RING_IDX idx0)
{
	memset(bf, 0, sizeof(*bf));
	bf->backend_id = backend_id;
	bf->handle = handle;
	bf->evtchn = evtchn;
	blkif_sring_t *s = (blkif_sring_t *)(void *)pages;
	SHARED_RING_INIT(s);
	s->req_prod = s->rsp_prod = idx0;
	s->req_event = s->rsp_event = idx0 + 1;
	FRONT_RING_ATTACH(&bf->ring, s, idx0, BF_PAGE_SIZE);
	if (RING_SIZE(&bf->ring) != BF_RING_SIZE)
		return -1;
	int r = bf_grant(backend_id, s, false);
	if (r < 0)
		return -1;
	bf->ring_ref = (grant_ref_t)r;
	for (unsigned int i = 0; i < BF_REQS; i++) {
		bf->page[i] = pages + (size_t)(i + 1) * BF_PAGE_SIZE;
		/* the backend writes the data of a read into it */
		if ((r = bf_grant(backend_id, bf->page[i], false)) < 0)
			return -1;
		bf->gref[i] = (grant_ref_t)r;
	}
	return 0;
}

/* Queue a read of n (1..8) sectors into request id's page. */
static void submit(struct blkfront *bf, unsigned int id, uint64_t sector,
		   unsigned int n, uint8_t *dest)
{
	blkif_request_t *req = RING_GET_REQUEST(&bf->ring, bf->ring.req_prod_pvt);
	req->operation = BLKIF_OP_READ;
	req->nr_segments = 1;
	req->handle = bf->handle;
	req->id = id;
	req->sector_number = sector;
	req->seg[0].gref = bf->gref[id];
	req->seg[0].first_sect = 0;
	req->seg[0].last_sect = (uint8_t)(n - 1);
	bf->ring.req_prod_pvt++;
	bf->dest[id] = dest;
	bf->len[id] = n * BF_SECT;
	bf->busy[id] = true;
	bf->nbusy++;
	bf->st.reqs++;
}

/* Consume the responses there are: copy data out, free ids. Returns how
 * many requests completed, -1 once the device is broken. Ends with the
 * ring.h final check, so blkback notifies on its next response. */
static int reap(struct blkfront *bf)
{
	int done = 0, more;
	do {
		RING_IDX prod = ACCESS_ONCE(bf->ring.sring->rsp_prod);
		rmb(); /* read rsp_prod before the responses it covers */
		RING_IDX cons = bf->ring.rsp_cons;
		if ((RING_IDX)(prod - cons) > (RING_IDX)(bf->ring.req_prod_pvt - cons)) {
			bf->st.bad_prod++;
			bf->broken = true;
			return -1;
		}
		for (; cons != prod; cons++) {
			/* copy: the backend may rewrite the slot meanwhile */
			blkif_response_t rsp = *RING_GET_RESPONSE(&bf->ring, cons);
			if (rsp.id >= BF_REQS || !bf->busy[rsp.id]) {
				/* invented or duplicate id: the request this slot
				 * answers is lost and its page may still be
				 * written later: give the device up */
				bf->st.bad_id++;
				bf->broken = true;
				bf->ring.rsp_cons = cons + 1;
				return -1;
			}
			unsigned int id = (unsigned int)rsp.id;
			if (rsp.operation != BLKIF_OP_READ) {
				bf->st.bad_op++;
				bf->failed = true;
			} else if (rsp.status != BLKIF_RSP_OKAY) {
				bf->st.err_status++;
				bf->failed = true;
			} else {
				rmb(); /* the response before the data it announces */
				memcpy(bf->dest[id], bf->page[id], bf->len[id]);
			}
			bf->busy[id] = false;
			bf->nbusy--;
			done++;
		}
		bf->ring.rsp_cons = cons;
		/* sets rsp_event = rsp_cons + 1, then looks once more */
		RING_FINAL_CHECK_FOR_RESPONSES(&bf->ring, more);
	} while (more);
	return done;
}

int bf_read(struct blkfront *bf, uint64_t sector, void *buf, uint64_t nsect)
{
	uint8_t *out = buf;
	if (bf->broken || sector > bf->sectors || nsect > bf->sectors - sector)
		return -1;
	bf->failed = false;
	while (nsect > 0 || bf->nbusy > 0) {
		/* fill free ids while there is something left to ask for */
		bool queued = false;
		for (unsigned int id = 0; id < BF_REQS && nsect > 0 && !bf->failed; id++) {
			if (bf->busy[id] || RING_FULL(&bf->ring))
				continue;
			unsigned int n = nsect < BF_SECTS_PER_PAGE ? (unsigned int)nsect
								    : BF_SECTS_PER_PAGE;
			submit(bf, id, sector, n, out);
			sector += n;
			nsect -= n;
			out += (size_t)n * BF_SECT;
			queued = true;
		}
		if (bf->failed)
			nsect = 0; /* ask no more; drain what is in flight */
		if (queued) {
			int notify;
			/* wmb; publish req_prod; mb; notify if blkback waits
			 * for an index we just passed (req_event) */
			RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&bf->ring, notify);
			if (notify) {
				bf->st.notify++;
				bf_notify(bf->evtchn);
			}
		}
		int r = reap(bf);
		if (r < 0)
			return -1;
		if (r == 0 && bf->nbusy > 0 && bf_wait(bf->evtchn) < 0) {
			/* in-flight pages may still be written: never reuse */
			bf->st.timeouts++;
			bf->broken = true;
			return -1;
		}
	}
	return bf->failed ? -1 : 0;
}
