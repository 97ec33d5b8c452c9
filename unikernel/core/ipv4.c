/*
 * ipv4.c - IPv4 (RFC 791) input checks, reassembly, dispatch and output
 * routing with fragmentation.
 *
 * Reassembly (RFC 791 3.2, RFC 1122 3.3.2: at least 576 bytes): IPR_SLOTS
 * buffers of IPR_MAX payload bytes, one per (src, dst, id, proto); a
 * bitmap of the 8-byte blocks received; a datagram not complete within
 * IPR_TIMEOUT_MS is dropped, and a new one takes the oldest slot when all
 * are busy. Datagrams up to IPR_MAX are also sent fragmented (a ping
 * reply as big as the request).
 */
#include "net.h"

#define IPR_SLOTS 2
#define IPR_MAX IP_MAX_DATAGRAM	/* three full Ethernet fragments */
#define IPR_TIMEOUT_MS 15000

static struct ipr {
	uint32_t src, dst;
	uint16_t id;
	uint8_t proto;
	bool used;
	size_t total;		/* payload length, once the last fragment came */
	uint64_t started;
	uint8_t have[IPR_MAX / 8 / 8 + 1];	/* one bit per 8-byte block */
	uint8_t data[IPR_MAX];
} ipr[IPR_SLOTS];

static bool is_martian_src(uint32_t a)
{
	uint32_t me = net_ip(), mask = net_mask();

	if (a == IP_BROADCAST || (a >> 28) == 0xe || /* multicast */
	    (a >> 24) == 127)
		return true;
	/* our subnet's broadcast address, or our own address */
	return me && (a == (me | ~mask) || a == me);
}

static bool ipr_complete(const struct ipr *r)
{
	size_t b;

	if (!r->total)
		return false;
	for (b = 0; b < (r->total + 7) / 8; b++)
		if (!(r->have[b / 8] & (1u << (b % 8))))
			return false;
	return true;
}

/* Add one fragment; returns the slot when the datagram is complete. */
static struct ipr *ipr_input(const uint8_t *p, size_t ihl, size_t tot)
{
	uint32_t src = rd32(p + 12), dst = rd32(p + 16);
	uint16_t id = rd16(p + 4), fl = rd16(p + 6);
	size_t off = (size_t)(fl & 0x1fff) * 8, n = tot - ihl, b;
	bool more = fl & 0x2000;
	uint64_t now = net_now_ms();
	struct ipr *r = NULL, *old = &ipr[0];
	int i;

	if (off + n > IPR_MAX || (more && (n == 0 || n % 8))) {
		net_stats.rx_dropped++;	/* too big for us, or malformed */
		return NULL;
	}
	for (i = 0; i < IPR_SLOTS; i++) {
		struct ipr *s = &ipr[i];
		if (s->used && now - s->started > IPR_TIMEOUT_MS)
			s->used = false;	/* timed out */
		if (s->used && s->src == src && s->dst == dst && s->id == id &&
		    s->proto == p[9])
			r = s;
		if (!s->used || (old->used && s->started < old->started))
			old = s;
	}
	if (!r) {
		r = old;
		memset(r, 0, offsetof(struct ipr, data));
		r->used = true;
		r->src = src;
		r->dst = dst;
		r->id = id;
		r->proto = p[9];
		r->started = now;
	}
	if (!more) {
		if (r->total && r->total != off + n) {
			r->used = false;	/* two different ends */
			net_stats.rx_dropped++;
			return NULL;
		}
		r->total = off + n;
	}
	if (r->total && off + n > r->total) {
		r->used = false;
		net_stats.rx_dropped++;
		return NULL;
	}
	memcpy(r->data + off, p + ihl, n);
	for (b = off / 8; b < (off + n + 7) / 8; b++)
		r->have[b / 8] |= (uint8_t)(1u << (b % 8));
	if (!ipr_complete(r))
		return NULL;
	r->used = false;	/* the caller uses data before the next frame */
	return r;
}

void ipv4_input(const uint8_t *p, size_t len)
{
	if (len < IP_HLEN || (p[0] >> 4) != 4) {
		net_stats.rx_dropped++;
		return;
	}
	size_t ihl = (size_t)(p[0] & 0x0f) * 4;
	size_t tot = rd16(p + 2);
	if (ihl < IP_HLEN || ihl > tot || tot > len) {
		net_stats.rx_dropped++;
		return;
	}
	if (inet_fold(inet_sum(p, ihl, 0)) != 0) {
		net_stats.bad_csum++;
		net_stats.rx_dropped++;
		return;
	}
	uint8_t proto = p[9];
	uint32_t src = rd32(p + 12), dst = rd32(p + 16);
	uint32_t me = net_ip();
	if (is_martian_src(src)) {
		net_stats.rx_dropped++;
		return;
	}
	/* options (ihl > 20) are skipped; trailing padding cut off */
	const uint8_t *payload = p + ihl;
	size_t plen = tot - ihl;
	if (rd16(p + 6) & 0x3fff) { /* MF set or offset != 0 */
		net_stats.frags++;
		if (me == 0 || dst != me) {
			net_stats.rx_dropped++;	/* unicast to us only */
			return;
		}
		struct ipr *r = ipr_input(p, ihl, tot);
		if (!r)
			return;
		payload = r->data;
		plen = r->total;
	}
	if (me == 0) {
		/* Unconfigured: only UDP (DHCP replies may be unicast to the
		 * offered address before we have it). */
		if (proto != IP_PROTO_UDP) {
			net_stats.rx_dropped++;
			return;
		}
	} else if (dst != me && dst != IP_BROADCAST &&
		   dst != (me | ~net_mask())) {
		net_stats.rx_dropped++;
		return;
	}
	switch (proto) {
	case IP_PROTO_ICMP:
		icmp_input(src, dst, payload, plen);
		break;
	case IP_PROTO_TCP:
		/* TCP is unicast only */
		if (me && dst == me)
			tcp_input(src, dst, payload, plen);
		else
			net_stats.rx_dropped++;
		break;
	case IP_PROTO_UDP:
		udp_input(src, dst, payload, plen);
		break;
	default:
		net_stats.rx_dropped++;
		break;
	}
}

static int send_one(uint32_t dst, uint8_t proto, const uint8_t *payload,
		    size_t len, uint16_t id, uint16_t frag);

int ipv4_output(uint32_t dst, uint8_t proto, const void *payload, size_t len)
{
	static uint16_t ident;
	const uint8_t *p = payload;
	size_t off = 0;
	int rc = 0;

	if (len > IPR_MAX || dst == 0) {
		net_stats.tx_dropped++;
		return -1;
	}
	if (len <= IP_MAX_PAYLOAD)	/* DF: the usual case */
		return send_one(dst, proto, p, len, ident++, 0x4000);
	/* Fragments of 1480 bytes (a multiple of 8), MF on all but the last. */
	while (off < len && rc == 0) {
		size_t n = MIN(len - off, (size_t)IP_MAX_PAYLOAD);
		rc = send_one(dst, proto, p + off, n, ident,
			      (uint16_t)((off / 8) | (off + n < len ? 0x2000 : 0)));
		off += n;
	}
	ident++;
	return rc;
}

static int send_one(uint32_t dst, uint8_t proto, const uint8_t *payload,
		    size_t len, uint16_t id, uint16_t frag)
{
	static uint8_t pkt[ETH_MTU];
	uint32_t me = net_ip(), mask = net_mask();

	pkt[0] = 0x45;
	pkt[1] = 0;
	wr16(pkt + 2, (uint16_t)(IP_HLEN + len));
	wr16(pkt + 4, id);
	wr16(pkt + 6, frag);
	pkt[8] = 64;
	pkt[9] = proto;
	wr16(pkt + 10, 0);
	wr32(pkt + 12, me);
	wr32(pkt + 16, dst);
	wr16(pkt + 10, inet_fold(inet_sum(pkt, IP_HLEN, 0)));
	memcpy(pkt + IP_HLEN, payload, len);
	size_t n = IP_HLEN + len;

	if (dst == IP_BROADCAST || (me && dst == (me | ~mask)))
		return eth_output(eth_broadcast, ETH_P_IPV4, pkt, n);
	if (me == 0 || dst == me) { /* no route yet / no loopback */
		net_stats.tx_dropped++;
		return -1;
	}
	uint32_t nh = dst;
	if ((dst & mask) != (me & mask)) {
		nh = net_gw();
		if (nh == 0) {
			net_stats.tx_dropped++;
			return -1;
		}
	}
	return arp_output(nh, pkt, n);
}
