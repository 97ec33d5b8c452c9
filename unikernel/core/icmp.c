/*
 * icmp.c - ICMP (RFC 792): we answer echo requests, nothing else.
 */
#include "net.h"

#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8

void icmp_input(uint32_t src, uint32_t dst, const uint8_t *msg, size_t len)
{
	static uint8_t reply[IP_MAX_DATAGRAM];	/* reassembled pings too */

	if (len < 8 || len > sizeof(reply) ||
	    inet_fold(inet_sum(msg, len, 0)) != 0) {
		if (len >= 8)
			net_stats.bad_csum++;
		net_stats.rx_dropped++;
		return;
	}
	/* answer only pings to our own address (no broadcast pings) */
	if (msg[0] != ICMP_ECHO_REQUEST || msg[1] != 0 || dst != net_ip()) {
		net_stats.rx_dropped++;
		return;
	}
	net_stats.icmp_echo++;
	memcpy(reply, msg, len);
	reply[0] = ICMP_ECHO_REPLY;
	wr16(reply + 2, 0);
	wr16(reply + 2, inet_fold(inet_sum(reply, len, 0)));
	ipv4_output(src, IP_PROTO_ICMP, reply, len);
}
