/*
 * fuzz_vchan.c - a hostile vchan client against the server's ring engine
 * (unikernel/xen/vchan_ring.c, the code the Xen kernel runs).
 *
 * The input picks the ring orders (in-page 1 and 2 KiB rings and 1-2 page
 * rings), then scripts the client: it writes any value to its indexes
 * (left.prod, right.cons), to ours (left.cons, right.prod, which it can
 * reach too), to the live and notify bytes and to the grant list, while
 * the server reads, writes, arms notifications and resets for a new
 * client. The engine must stay inside its pages, never report more than
 * fits, and stay broken once it saw an impossible index until a reset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simpeer.h"
#include "vchan.h"

static uint8_t ctrl[VCHAN_PAGE] __attribute__((aligned(4096)));
static uint8_t lpages[2][VCHAN_PAGE] __attribute__((aligned(4096)));
static uint8_t rpages[2][VCHAN_PAGE] __attribute__((aligned(4096)));

void vchan_notify_peer(struct vchan *v)
{
	(void)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned orders[4] = { 10, 11, 12, 13 };
	static struct vchan v;
	static uint8_t buf[3 * VCHAN_PAGE];
	struct sim_script s = { data, size };
	unsigned lo = orders[sim_take(&s, 1) % 4], ro = orders[sim_take(&s, 1) % 4];
	uint8_t *lp[2] = { lpages[0], lpages[1] }, *rp[2] = { rpages[0], rpages[1] };
	uint32_t lg[2] = { 11, 12 }, rg[2] = { 21, 22 };

	memset(ctrl, 0, sizeof(ctrl));
	if (vchan_setup(&v, ctrl, lo, ro, lp, lg, rp, rg) < 0)
		return 0;	/* refused orders: nothing to run */
	struct vchan_shared *sh = v.sh;
	for (int steps = 0; s.n && steps < 4096; steps++) {
		uint8_t op = (uint8_t)sim_take(&s, 1);
		uint32_t x = sim_take(&s, op & 0x80 ? 4 : 2);
		int r;
		switch (op % 9) {
		case 0:		/* client: bytes in, prod moved by x */
			sh->left.prod += x;
			break;
		case 1:		/* client: consumed x bytes */
			sh->right.cons += x;
			break;
		case 2:		/* client overwrites our own indexes */
			if (x & 1)
				sh->left.cons = x;
			else
				sh->right.prod = x;
			break;
		case 3:		/* live / notify bytes, orders, grants */
			sh->cli_live = (uint8_t)x;
			sh->srv_notify = (uint8_t)(x >> 8);
			if (x & 0x10000)
				sh->left_order = (uint16_t)x;
			break;
		case 4:
			r = vchan_read(&v, buf, x % sizeof(buf));
			if (r > (int)(x % sizeof(buf)) || (v.broken && r > 0))
				abort();
			break;
		case 5:
			r = vchan_write(&v, buf, x % sizeof(buf));
			if (r > (int)(x % sizeof(buf)))
				abort();
			break;
		case 6:
			r = vchan_rx_avail(&v);
			if (r > (int)v.rd.size)
				abort();
			r = vchan_tx_space(&v);
			if (r > (int)v.wr.size)
				abort();
			break;
		case 7:
			(void)vchan_rx_arm(&v);
			(void)vchan_tx_arm(&v);
			(void)vchan_client_state(&v);
			break;
		case 8:		/* a new client */
			vchan_reset(&v);
			if (v.broken)
				abort();
			break;
		}
	}
	return 0;
}
