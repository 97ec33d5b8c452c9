/*
 * udp.c - UDP (RFC 768) with a small port-binding table.
 */
#include "net.h"

static struct {
	uint16_t port;
	udp_handler h;
} binds[UDP_MAX_BINDINGS];

int udp_bind(uint16_t port, udp_handler h)
{
	int free_slot = -1;
	for (int i = 0; i < UDP_MAX_BINDINGS; i++) {
		if (binds[i].h && binds[i].port == port) {
			binds[i].h = h; /* rebind or unbind (h NULL) */
			return 0;
		}
		if (!binds[i].h && free_slot < 0)
			free_slot = i;
	}
	if (!h)
		return 0;
	if (free_slot < 0)
		return -1;
	binds[free_slot].port = port;
	binds[free_slot].h = h;
	return 0;
}

void udp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
	if (len < UDP_HLEN) {
		net_stats.rx_dropped++;
		return;
	}
	size_t ulen = rd16(seg + 4);
	if (ulen < UDP_HLEN || ulen > len) {
		net_stats.rx_dropped++;
		return;
	}
	/* checksum 0 means "not computed" (allowed over IPv4) */
	if (rd16(seg + 6) != 0 &&
	    inet_fold(inet_sum(seg, ulen,
			       inet_pseudo(src, dst, IP_PROTO_UDP,
					   (uint16_t)ulen))) != 0) {
		net_stats.bad_csum++;
		net_stats.rx_dropped++;
		return;
	}
	uint16_t sport = rd16(seg), dport = rd16(seg + 2);
	for (int i = 0; i < UDP_MAX_BINDINGS; i++) {
		if (binds[i].h && binds[i].port == dport) {
			net_stats.udp_in++;
			binds[i].h(src, sport, dst, dport, seg + UDP_HLEN,
				   ulen - UDP_HLEN);
			return;
		}
	}
	net_stats.rx_dropped++; /* no listener (no ICMP unreachable) */
}

int udp_output(uint32_t dst, uint16_t sport, uint16_t dport,
	       const void *data, size_t len)
{
	static uint8_t seg[IP_MAX_PAYLOAD];
	if (len > UDP_MAX_PAYLOAD) {
		net_stats.tx_dropped++;
		return -1;
	}
	uint16_t ulen = (uint16_t)(UDP_HLEN + len);
	wr16(seg, sport);
	wr16(seg + 2, dport);
	wr16(seg + 4, ulen);
	wr16(seg + 6, 0);
	memcpy(seg + UDP_HLEN, data, len);
	uint16_t c = inet_fold(inet_sum(
		seg, ulen, inet_pseudo(net_ip(), dst, IP_PROTO_UDP, ulen)));
	wr16(seg + 6, c ? c : 0xffff); /* 0 would mean "no checksum" */
	return ipv4_output(dst, IP_PROTO_UDP, seg, ulen);
}
