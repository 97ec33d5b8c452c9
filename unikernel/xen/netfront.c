/*
 * netfront.c - the PV network device on Xen: the xenstore handshake with
 * netback, then plat_net_send/plat_net_recv over netfront_ring.c.
 *
 * Handshake (xen/io/netif.h, xenbus states from xen/io/xenbus.h), on
 * device/vif/0 (written by the toolstack):
 *   read backend, backend-id, mac;
 *   wait for the backend's state to reach InitWait (2);
 *   allocate the rings, buffers, grants and an unbound event channel;
 *   write tx-ring-ref, rx-ring-ref, event-channel, request-rx-copy=1,
 *   feature-rx-notify=1, feature-no-csum-offload=1, then state=Connected (4);
 *   wait for the backend's state to reach Connected (4).
 * Keys are polled (no watches). A single queue: no multi-queue keys.
 */
#include "../core/net.h"
#include "../core/platform.h"
#include "netfront.h"
#include "xenplat.h"
#include <xen/io/xenbus.h>

#define VIF "device/vif/0/"
#define HANDSHAKE_TIMEOUT_NS (60ULL * 1000000000ULL)

static struct netfront nf;
static bool nf_up;
static uint8_t nf_mac[6];
static uint32_t csum_fixed;

int nf_grant(uint16_t domid, void *page, bool readonly)
{
	return gnttab_grant(domid, virt_to_mfn(page), readonly);
}

void nf_notify(uint32_t port)
{
	evtchn_notify(port);
}

/* "xx:xx:xx:xx:xx:xx" exactly */
static int parse_mac(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 17)
		return -1;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -1;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Poll path until its value is one of want_a/want_b (or beyond fail). */
static long wait_state(const char *path, long want_a, long want_b,
		       uint64_t deadline)
{
	for (;;) {
		long st = xs_read_uint(path);
		if (st == want_a || st == want_b)
			return st;
		if (st >= XenbusStateClosing || xen_time_ns() >= deadline)
			return st < 0 ? -1 : -st;
		/* sleep 5 ms: poll a port nobody signals (our xenstore one is
		 * quiet between requests) */
		evtchn_poll(start_info.store_evtchn, xen_time_ns() + 5000000ULL);
		evtchn_clear(start_info.store_evtchn);
	}
}

static int write_uint(const char *key, unsigned long v)
{
	char path[64], val[24];
	fmt(path, sizeof(path), VIF "%s", key);
	fmt(val, sizeof(val), "%lu", v);
	return xs_write(path, val);
}

int netfront_init(void)
{
	static bool tried;
	char backend[128], path[200], buf[32];
	uint64_t t0 = xen_time_ns();
	uint64_t deadline = t0 + HANDSHAKE_TIMEOUT_NS;

	if (tried)
		return nf_up ? 0 : -1;
	tried = true;

	long bid = xs_read_uint(VIF "backend-id");
	if (bid < 0 || bid >= DOMID_FIRST_RESERVED ||
	    xs_read(VIF "backend", backend, sizeof(backend) - 16) <= 0 ||
	    xs_read(VIF "mac", buf, sizeof(buf)) < 0 || parse_mac(buf, nf_mac) < 0) {
		printk("netfront: no usable vif in xenstore (need vif=['bridge=...'] in the xl config)\n");
		return -1;
	}
	if (nf_mac[0] & 1) {
		printk("netfront: multicast MAC %s refused\n", buf);
		return -1;
	}
	fmt(path, sizeof(path), "%s/state", backend);
	long st = wait_state(path, XenbusStateInitWait, XenbusStateConnected, deadline);
	if (st < 0) {
		printk("netfront: backend %s not ready (state %ld)\n", backend, -st);
		return -1;
	}

	uint64_t t_ready = xen_time_ns();
	uint8_t *pages = NULL;
	for (int i = 0; i < NF_PAGES; i++) {
		/* the bump allocator hands out consecutive pages */
		uint8_t *p = page_alloc();
		if (!p || (pages && p != pages + (size_t)i * PAGE_SIZE)) {
			printk("netfront: out of memory for rings and buffers\n");
			return -1;
		}
		if (!pages)
			pages = p;
	}
	evtchn_port_t port;
	if (evtchn_alloc_unbound((domid_t)bid, &port) != 0) {
		printk("netfront: cannot allocate an event channel\n");
		return -1;
	}
	if (nf_init(&nf, (uint16_t)bid, port, pages, 0) < 0) {
		printk("netfront: out of grant references\n");
		return -1;
	}
	if (write_uint("tx-ring-ref", nf.tx_ring_ref) || write_uint("rx-ring-ref", nf.rx_ring_ref) ||
	    write_uint("event-channel", port) || write_uint("request-rx-copy", 1) ||
	    write_uint("feature-rx-notify", 1) ||
	    /* full checksums in every frame we get: no csum_blank/partial */
	    write_uint("feature-no-csum-offload", 1) ||
	    write_uint("feature-sg", 0) || write_uint("feature-gso-tcpv4", 0) ||
	    write_uint("state", XenbusStateConnected)) {
		printk("netfront: xenstore writes failed\n");
		return -1;
	}
	st = wait_state(path, XenbusStateConnected, XenbusStateConnected, deadline);
	if (st < 0) {
		printk("netfront: backend did not connect (state %ld)\n", -st);
		return -1;
	}
	printk("netfront: connected to backend domain %ld, event channel %u, handshake %lu ms (backend ready after %lu ms)\n",
	       bid, port, (unsigned long)((xen_time_ns() - t0) / 1000000),
	       (unsigned long)((t_ready - t0) / 1000000));
	nf_up = true;
	return 0;
}

void netfront_mac(uint8_t mac[6])
{
	if (netfront_init() == 0)
		memcpy(mac, nf_mac, 6);
	else
		memset(mac, 0, 6);
}

void netfront_stats(void)
{
	if (!nf_up)
		return;
	printk("netfront: tx %u (full %u, err %u) rx %u (err %u, bad %u, truncated %u) notifications %u csum fixed %u\n",
	       nf.st.tx, nf.st.tx_full, nf.st.tx_err + nf.st.tx_bad_rsp + nf.st.tx_bad_len,
	       nf.st.rx, nf.st.rx_err, nf.st.rx_bad + nf.st.bad_prod,
	       nf.st.rx_trunc, nf.st.notify, csum_fixed);
}

int plat_net_send(const void *frame, size_t len)
{
	if (netfront_init() < 0)
		return -1;
	uint64_t deadline = 0;
	for (;;) {
		evtchn_clear(nf.evtchn);
		int r = nf_send(&nf, frame, len);
		if (r != NF_FULL || nf.broken)
			return r == NF_FULL ? -1 : r;
		/* ring full: ask for a TX completion event, wait <= 50 ms */
		if (nf_tx_reap(&nf, true) > 0)
			continue;
		uint64_t now = xen_time_ns();
		if (!deadline)
			deadline = now + 50000000ULL;
		if (now >= deadline)
			return -1;
		evtchn_poll(nf.evtchn, deadline);
	}
}

/*
 * A frame the backend marked NETRXF_csum_blank has only the pseudo-header
 * sum in its TCP/UDP checksum field. We ask for full checksums
 * (feature-no-csum-offload), so this should not happen; if it does, fill
 * the checksum in rather than let the stack drop the frame.
 */
static void fix_csum(uint8_t *f, size_t len)
{
	if (len < ETH_HLEN + IP_HLEN || rd16(f + 12) != ETH_P_IPV4)
		return;
	uint8_t *ip = f + ETH_HLEN;
	size_t ihl = (size_t)(ip[0] & 15) * 4;
	size_t tot = rd16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < IP_HLEN || tot < ihl ||
	    tot > len - ETH_HLEN || (rd16(ip + 6) & 0x3fff))
		return;
	uint8_t proto = ip[9];
	size_t off = proto == IP_PROTO_TCP ? 16 : proto == IP_PROTO_UDP ? 6 : 0;
	size_t l4len = tot - ihl;
	if (!off || l4len < off + 2)
		return;
	uint8_t *l4 = ip + ihl;
	wr16(l4 + off, 0);
	uint32_t s = inet_pseudo(rd32(ip + 12), rd32(ip + 16), proto, (uint16_t)l4len);
	uint16_t c = inet_fold(inet_sum(l4, l4len, s));
	if (proto == IP_PROTO_UDP && c == 0)
		c = 0xffff;
	wr16(l4 + off, c);
	csum_fixed++;
}

int plat_net_recv(void *buf, size_t cap, uint32_t timeout_ms)
{
	if (netfront_init() < 0)
		return -1;
	uint64_t deadline = xen_time_ns() + (uint64_t)timeout_ms * 1000000ULL;
	for (;;) {
		/* clear first, then look: an event after the look re-sets it */
		evtchn_clear(nf.evtchn);
		int n = nf_recv(&nf, buf, cap);
		if (n < 0) {
			printk("netfront: backend broke the ring protocol\n");
			return -1;
		}
		if (n > 0) {
			if (nf.rx_flags & NETRXF_csum_blank)
				fix_csum(buf, (size_t)n);
			return n;
		}
		if (plat_stopping() || xen_time_ns() >= deadline)
			return 0;
		evtchn_poll(nf.evtchn, deadline);
	}
}
