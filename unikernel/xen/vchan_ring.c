/*
 * vchan_ring.c - the vchan ring engine (see vchan.h): byte rings over
 * pages shared with a libxenvchan client. No hypercalls here; the host
 * build (tests/c/test_vchan_ring.py) runs this file against a simulated
 * client.
 *
 * Barriers (x86-64 is TSO, barrier.h):
 *   read:  load the client's prod, then rmb() before loading the data;
 *          mb() after copying the data out, before publishing cons (the
 *          client may overwrite the bytes as soon as it sees cons);
 *   write: load the client's cons, mb() before storing data into the
 *          freed bytes; wmb() between the data and publishing prod;
 *   notify: the flag bytes are updated with locked read-modify-writes
 *          (full barriers): publishing an index and then reading the
 *          client's request bit, or setting our request bit and then
 *          re-reading the client's index, can never be reordered.
 */
#include "vchan.h"
#include "barrier.h"

static uint8_t *ring_ptr(const struct vchan_ring *r, uint32_t off)
{
	/* off < r->size; rings below one page sit in pages[0] */
	return r->pages[off / VCHAN_PAGE] + off % VCHAN_PAGE;
}

/* Bytes contiguous in memory from ring offset off (same page, not past
 * the end of the ring). */
static uint32_t ring_run(const struct vchan_ring *r, uint32_t off)
{
	uint32_t to_end = r->size - off;
	uint32_t to_page = VCHAN_PAGE - off % VCHAN_PAGE;
	return MIN(to_end, to_page);
}

static void ring_copy_out(const struct vchan_ring *r, uint32_t idx,
			  uint8_t *dst, uint32_t n)
{
	while (n > 0) {
		uint32_t off = idx & (r->size - 1);
		uint32_t k = MIN(n, ring_run(r, off));
		memcpy(dst, ring_ptr(r, off), k);
		dst += k;
		idx += k;
		n -= k;
	}
}

static void ring_copy_in(struct vchan_ring *r, uint32_t idx,
			 const uint8_t *src, uint32_t n)
{
	while (n > 0) {
		uint32_t off = idx & (r->size - 1);
		uint32_t k = MIN(n, ring_run(r, off));
		memcpy(ring_ptr(r, off), src, k);
		src += k;
		idx += k;
		n -= k;
	}
}

static int ring_init(struct vchan_ring *r, uint8_t *ctrl, unsigned order,
		     uint8_t *const *pages)
{
	if (order < VCHAN_MIN_ORDER || order > VCHAN_MAX_ORDER)
		return -1;
	memset(r, 0, sizeof(*r));
	r->order = (uint16_t)order;
	r->size = 1u << order;
	if (order == 10) {
		r->pages[0] = ctrl + 1024;
	} else if (order == 11) {
		r->pages[0] = ctrl + 2048;
	} else {
		for (uint32_t i = 0; i < r->size / VCHAN_PAGE; i++) {
			if (!pages || !pages[i])
				return -1;
			r->pages[i] = pages[i];
		}
	}
	return 0;
}

static uint32_t ring_grants(unsigned order)
{
	return order >= 12 ? 1u << (order - 12) : 0;
}

int vchan_setup(struct vchan *v, void *ctrl, unsigned left_order,
		unsigned right_order, uint8_t *const *left_pages,
		const uint32_t *left_grefs, uint8_t *const *right_pages,
		const uint32_t *right_grefs)
{
	memset(v, 0, sizeof(*v));
	if (!ctrl || (left_order < 12 && left_order == right_order))
		return -1; /* two in-page rings at the same offset */
	if (ring_init(&v->rd, ctrl, left_order, left_pages) < 0 ||
	    ring_init(&v->wr, ctrl, right_order, right_pages) < 0)
		return -1;
	/* the grant list must end before the first in-page ring */
	uint32_t nl = ring_grants(left_order), nr = ring_grants(right_order);
	uint32_t limit = VCHAN_PAGE;
	if (left_order == 10 || right_order == 10)
		limit = 1024;
	else if (left_order == 11 || right_order == 11)
		limit = 2048;
	if (sizeof(struct vchan_shared) + 4 * (nl + nr) > limit)
		return -1;
	if ((nl && !left_grefs) || (nr && !right_grefs))
		return -1;
	if (nl + nr > VCHAN_MAX_GRANTS)
		return -1;
	v->sh = ctrl;
	for (uint32_t i = 0; i < nl; i++)
		v->grefs[i] = left_grefs[i];
	for (uint32_t i = 0; i < nr; i++)
		v->grefs[nl + i] = right_grefs[i];
	v->ngrefs = nl + nr;
	vchan_reset(v);
	return 0;
}

void vchan_reset(struct vchan *v)
{
	struct vchan_shared *sh = v->sh;
	v->rd_cons = v->wr_prod = 0;
	v->broken = false;
	v->st.resets++;
	/* orders and grant list from our copies: a client may have
	 * scribbled over them, the next one must find them intact */
	ACCESS_ONCE(sh->left_order) = v->rd.order;
	ACCESS_ONCE(sh->right_order) = v->wr.order;
	for (uint32_t i = 0; i < v->ngrefs; i++)
		ACCESS_ONCE(sh->grants[i]) = v->grefs[i];
	ACCESS_ONCE(sh->left.cons) = 0;
	ACCESS_ONCE(sh->left.prod) = 0;
	ACCESS_ONCE(sh->right.cons) = 0;
	ACCESS_ONCE(sh->right.prod) = 0;
	/* we want to hear about the client's first write; the client sets
	 * srv_notify itself when it connects */
	ACCESS_ONCE(sh->cli_notify) = VCHAN_NOTIFY_WRITE;
	ACCESS_ONCE(sh->srv_notify) = 0;
	ACCESS_ONCE(sh->srv_live) = VCHAN_LIVE_CONNECTED;
	wmb(); /* indexes and flags before the page says "waiting" */
	ACCESS_ONCE(sh->cli_live) = VCHAN_LIVE_WAITING;
	mb();
}

int vchan_client_state(const struct vchan *v)
{
	uint8_t s = ACCESS_ONCE(v->sh->cli_live);
	return s == VCHAN_LIVE_WAITING || s == VCHAN_LIVE_CONNECTED ? s
								   : VCHAN_LIVE_GONE;
}

/* Clear `bit` in srv_notify; event when the client had asked for it. */
static void send_notify(struct vchan *v, uint8_t bit)
{
	uint8_t prev = __atomic_fetch_and(&v->sh->srv_notify, (uint8_t)~bit,
					  __ATOMIC_SEQ_CST);
	if (prev & bit) {
		v->st.notify++;
		vchan_notify_peer(v);
	}
}

static void request_notify(struct vchan *v, uint8_t bit)
{
	__atomic_fetch_or(&v->sh->cli_notify, bit, __ATOMIC_SEQ_CST);
	mb(); /* the request is visible before we re-read the indexes */
}

static int broken(struct vchan *v)
{
	if (!v->broken)
		v->st.bad_idx++;
	v->broken = true;
	return -1;
}

int vchan_rx_avail(struct vchan *v)
{
	if (v->broken)
		return -1;
	uint32_t prod = ACCESS_ONCE(v->sh->left.prod); /* read once */
	uint32_t ready = prod - v->rd_cons;
	if (ready > v->rd.size)
		return broken(v);
	return (int)ready;
}

int vchan_tx_space(struct vchan *v)
{
	if (v->broken)
		return -1;
	uint32_t cons = ACCESS_ONCE(v->sh->right.cons); /* read once */
	uint32_t used = v->wr_prod - cons;
	if (used > v->wr.size)
		return broken(v);
	return (int)(v->wr.size - used);
}

int vchan_rx_arm(struct vchan *v)
{
	request_notify(v, VCHAN_NOTIFY_WRITE);
	return vchan_rx_avail(v);
}

int vchan_tx_arm(struct vchan *v)
{
	request_notify(v, VCHAN_NOTIFY_READ);
	return vchan_tx_space(v);
}

int vchan_read(struct vchan *v, void *buf, size_t n)
{
	int ready = vchan_rx_avail(v);
	if (ready <= 0)
		return ready;
	uint32_t k = (uint32_t)MIN(n, (size_t)ready);
	if (k == 0)
		return 0;
	rmb(); /* data loads after the prod load */
	ring_copy_out(&v->rd, v->rd_cons, buf, k);
	mb(); /* data copied out before the client may reuse the bytes */
	v->rd_cons += k;
	ACCESS_ONCE(v->sh->left.cons) = v->rd_cons;
	v->st.rx_bytes += k;
	send_notify(v, VCHAN_NOTIFY_READ);
	return (int)k;
}

int vchan_write(struct vchan *v, const void *buf, size_t n)
{
	int space = vchan_tx_space(v);
	if (space <= 0)
		return space;
	uint32_t k = (uint32_t)MIN(n, (size_t)space);
	if (k == 0)
		return 0;
	mb(); /* cons load before our stores into the freed bytes */
	ring_copy_in(&v->wr, v->wr_prod, buf, k);
	wmb(); /* data before prod */
	v->wr_prod += k;
	ACCESS_ONCE(v->sh->right.prod) = v->wr_prod;
	v->st.tx_bytes += k;
	send_notify(v, VCHAN_NOTIFY_WRITE);
	return (int)k;
}
