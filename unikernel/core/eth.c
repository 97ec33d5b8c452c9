/*
 * eth.c - Ethernet II framing. No VLANs, no multicast.
 */
#include "net.h"
#include "platform.h"

const uint8_t eth_broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

#define ETH_ZLEN 60 /* minimum frame on the wire, without FCS */

void eth_input(const uint8_t *frame, size_t len)
{
	net_stats.rx_frames++;
	if (len < ETH_HLEN || len > ETH_FRAME_MAX) {
		net_stats.rx_dropped++;
		return;
	}
	const uint8_t *dst = frame;
	if (memcmp(dst, net_mac(), ETH_ALEN) != 0 &&
	    memcmp(dst, eth_broadcast, ETH_ALEN) != 0) {
		net_stats.rx_dropped++; /* not for us (or multicast) */
		return;
	}
	const uint8_t *payload = frame + ETH_HLEN;
	size_t plen = len - ETH_HLEN;
	switch (rd16(frame + 12)) {
	case ETH_P_IPV4:
		ipv4_input(payload, plen);
		break;
	case ETH_P_ARP:
		arp_input(payload, plen);
		break;
	default:
		net_stats.rx_dropped++;
		break;
	}
}

int eth_output(const uint8_t dst[ETH_ALEN], uint16_t type,
	       const void *payload, size_t len)
{
	static uint8_t tx[ETH_FRAME_MAX];
	if (len > ETH_MTU) {
		net_stats.tx_dropped++;
		return -1;
	}
	memcpy(tx, dst, ETH_ALEN);
	memcpy(tx + ETH_ALEN, net_mac(), ETH_ALEN);
	wr16(tx + 12, type);
	memcpy(tx + ETH_HLEN, payload, len);
	size_t flen = ETH_HLEN + len;
	if (flen < ETH_ZLEN) { /* pad short frames with zeros */
		memset(tx + flen, 0, ETH_ZLEN - flen);
		flen = ETH_ZLEN;
	}
	if (plat_net_send(tx, flen) < 0) {
		net_stats.tx_dropped++;
		return -1;
	}
	net_stats.tx_frames++;
	return 0;
}
