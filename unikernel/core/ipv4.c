/*
 * ipv4.c - IPv4 (RFC 791) input checks, dispatch and output routing.
 *
 * We never fragment (nothing we send exceeds the MTU) and drop every
 * fragment we receive: reassembly is not needed by our apps.
 */
#include "net.h"

static bool is_martian_src(uint32_t a)
{
	return a == IP_BROADCAST || (a >> 28) == 0xe || /* multicast */
	       (a >> 24) == 127;
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
	if (rd16(p + 6) & 0x3fff) { /* MF set or offset != 0 */
		net_stats.frags++;
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
	/* options (ihl > 20) are skipped; trailing padding cut off */
	const uint8_t *payload = p + ihl;
	size_t plen = tot - ihl;
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

int ipv4_output(uint32_t dst, uint8_t proto, const void *payload, size_t len)
{
	static uint8_t pkt[ETH_MTU];
	static uint16_t ident;
	uint32_t me = net_ip(), mask = net_mask();

	if (len > IP_MAX_PAYLOAD || dst == 0) {
		net_stats.tx_dropped++;
		return -1;
	}
	pkt[0] = 0x45;
	pkt[1] = 0;
	wr16(pkt + 2, (uint16_t)(IP_HLEN + len));
	wr16(pkt + 4, ident++);
	wr16(pkt + 6, 0x4000); /* DF: we never fragment */
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
