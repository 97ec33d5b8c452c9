/*
 * vchan.c - the Xen half of the vchan server (vchan.h): pages, grants,
 * event channel, xenstore keys, and blocking waits with SCHEDOP_poll.
 *
 * Setup (once): allocate the control page and the ring pages, grant them
 * all to the client domain (dom0) read-write, lay out the control page
 * (vchan_ring.c), allocate an unbound event channel for dom0, then write
 * <path>/event-channel and <path>/ring-ref (ring-ref last: a client that
 * finds it finds both). The keys stay for the kernel's life: every client
 * maps the same page and binds to the same port (when a client unbinds,
 * Xen returns our port to the unbound state, ready for the next one).
 *
 * Waiting: clear the port's pending bit, check the condition, arm the
 * notification request and check again, then SCHEDOP_poll with a 1 s
 * timeout (so the shutdown request and a silent client death are noticed
 * even without an event).
 */
#include "../core/cmdline.h"
#include "../core/platform.h"
#include "vchan.h"
#include "xenplat.h"

#define CLIENT_DOMID 0
#define DEFAULT_ORDER 15
#define WAIT_SLICE_NS 1000000000ULL

static struct vchan vc;
static bool started;
static char xs_dir[96] = "data/vchan";

void vchan_notify_peer(struct vchan *v)
{
	evtchn_notify(v->evtchn);
}

/* A xenstore path of letters, digits and "/-_." that fits xs_dir with
 * room for "/event-channel". */
static bool good_path(struct cmdline_val v)
{
	if (v.n == 0 || v.n >= sizeof(xs_dir) - 16)
		return false;
	for (size_t i = 0; i < v.n; i++) {
		char ch = v.p[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '/' || ch == '-' || ch == '_' ||
		      ch == '.'))
			return false;
	}
	return true;
}

/* "vchan=PATH" and "vchan_order=N" from the kernel command line */
static unsigned parse_cmdline(void)
{
	size_t cap;
	const char *line = plat_cmdline(&cap);
	struct cmdline_val v;
	unsigned order = DEFAULT_ORDER;
	if (cmdline_get(line, cap, "vchan", &v)) {
		if (good_path(v)) {
			memcpy(xs_dir, v.p, v.n);
			xs_dir[v.n] = '\0';
		} else {
			printk("vchan: bad vchan= ignored\n");
		}
	}
	if (cmdline_get(line, cap, "vchan_order", &v) &&
	    cmdline_uint(v, 12, VCHAN_MAX_ORDER, &order) < 0)
		printk("vchan: bad vchan_order= ignored (12..%d)\n", VCHAN_MAX_ORDER);
	return order;
}

static int alloc_ring(unsigned order, uint8_t **pages, uint32_t *grefs)
{
	for (uint32_t i = 0; i < (1u << (order - 12)); i++) {
		pages[i] = page_alloc();
		if (!pages[i])
			return -1;
		int g = gnttab_grant(CLIENT_DOMID, virt_to_mfn(pages[i]), false);
		if (g < 0)
			return -1;
		grefs[i] = (uint32_t)g;
	}
	return 0;
}

int vchan_server_start(void)
{
	static uint8_t *lp[VCHAN_MAX_RING_PAGES], *rp[VCHAN_MAX_RING_PAGES];
	static uint32_t lg[VCHAN_MAX_RING_PAGES], rg[VCHAN_MAX_RING_PAGES];
	unsigned order = parse_cmdline();
	uint8_t *ctrl = page_alloc();
	if (!ctrl)
		return -1;
	int cref = gnttab_grant(CLIENT_DOMID, virt_to_mfn(ctrl), false);
	if (cref < 0 || alloc_ring(order, lp, lg) < 0 ||
	    alloc_ring(order, rp, rg) < 0) {
		printk("vchan: out of pages or grant entries\n");
		return -1;
	}
	if (vchan_setup(&vc, ctrl, order, order, lp, lg, rp, rg) < 0)
		return -1;
	evtchn_port_t port;
	if (evtchn_alloc_unbound(CLIENT_DOMID, &port) != 0) {
		printk("vchan: cannot allocate an event channel\n");
		return -1;
	}
	vc.evtchn = port;
	char key[128], val[16];
	fmt(key, sizeof(key), "%s/event-channel", xs_dir);
	fmt(val, sizeof(val), "%u", (unsigned)port);
	if (xs_write(key, val) < 0)
		goto xs_fail;
	fmt(key, sizeof(key), "%s/ring-ref", xs_dir);
	fmt(val, sizeof(val), "%d", cref);
	if (xs_write(key, val) < 0)
		goto xs_fail;
	char domid[16];
	if (xs_read("domid", domid, sizeof(domid)) <= 0)
		fmt(domid, sizeof(domid), "?");
	if (xs_dir[0] == '/')
		fmt(key, sizeof(key), "%s", xs_dir);
	else
		fmt(key, sizeof(key), "/local/domain/%s/%s", domid, xs_dir);
	printk("vchan: server on %s (ring-ref %d, event-channel %u, rings 2x%u bytes)\n",
	       key, cref, (unsigned)port, 1u << order);
	started = true;
	return 0;
xs_fail:
	printk("vchan: cannot write %s in xenstore\n", key);
	return -1;
}

/* Sleep until an event on our port or the next slice. */
static void wait_event(void)
{
	evtchn_poll(vc.evtchn, xen_time_ns() + WAIT_SLICE_NS);
}

int vchan_accept(void)
{
	if (!started)
		return -1;
	for (;;) {
		if (plat_stopping())
			return -1;
		evtchn_clear(vc.evtchn);
		int s = vchan_client_state(&vc);
		if (s == VCHAN_LIVE_CONNECTED)
			return 0;
		if (s == VCHAN_LIVE_GONE)
			vchan_reset(&vc); /* a client came and went: wait anew */
		wait_event();
	}
}

int vchan_recv(void *buf, size_t cap)
{
	for (;;) {
		int n = vchan_read(&vc, buf, cap);
		if (n != 0)
			return n < 0 ? 0 : n; /* broken ring: drop the client */
		if (vchan_client_state(&vc) != VCHAN_LIVE_CONNECTED)
			return 0;
		if (plat_stopping())
			return -1;
		evtchn_clear(vc.evtchn);
		n = vchan_rx_arm(&vc);
		if (n < 0)
			return 0;
		if (n == 0 && vchan_client_state(&vc) == VCHAN_LIVE_CONNECTED)
			wait_event();
	}
}

int vchan_send(const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0) {
		if (vchan_client_state(&vc) != VCHAN_LIVE_CONNECTED)
			return -1;
		int k = vchan_write(&vc, p, n);
		if (k < 0)
			return -1;
		if (k > 0) {
			p += k;
			n -= (size_t)k;
			continue;
		}
		if (plat_stopping())
			return -1;
		evtchn_clear(vc.evtchn);
		k = vchan_tx_arm(&vc);
		if (k < 0)
			return -1;
		if (k == 0)
			wait_event();
	}
	return 0;
}

void vchan_disconnect(void)
{
	if (started)
		vchan_reset(&vc);
}

void vchan_server_stop(void)
{
	if (!started)
		return;
	ACCESS_ONCE(vc.sh->srv_live) = VCHAN_LIVE_GONE;
	mb();
	evtchn_notify(vc.evtchn);
}

const struct vchan_stats *vchan_stats(void)
{
	return &vc.st;
}
