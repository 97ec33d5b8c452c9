/*
 * fuzz_dhcp - server messages for the DHCP client, wrapped by the harness
 * in Ethernet/IPv4/UDP from 10.0.0.1:67 to 255.255.255.255:68.
 *
 * Input: records [ctl][len:2][BOOTP message]; ctl bit 2 patches in the
 * xid and chaddr of our last DHCP message (so OFFER -> REQUEST -> ACK ->
 * BOUND -> RENEWING is reachable), bits 4-7 advance the clock. The server
 * answers our ARP requests for it, as a real one does, so RENEWING's
 * unicast REQUESTs leave (and an ACK can answer them).
 */
#include <string.h>

#include "fuzz_common.h"
#include "../c/plat_test.h"
#include "net.h"

/* If our newest frame asks who has FUZZ_PEER, answer from the peer's MAC. */
static void answer_arp(void)
{
	uint8_t r[ETH_HLEN + 28];
	const uint8_t *f;

	if (test_ntx == 0)
		return;
	f = test_tx[test_ntx - 1].data;
	if (test_tx[test_ntx - 1].len < ETH_HLEN + 28 ||
	    rd16(f + 12) != ETH_P_ARP || rd16(f + 20) != 1 ||
	    rd32(f + 38) != FUZZ_PEER)
		return;
	memcpy(r, f + 6, ETH_ALEN);		/* to us */
	r[6] = 2; r[7] = 0; r[8] = 0; r[9] = 0; r[10] = 0; r[11] = 2;
	wr16(r + 12, ETH_P_ARP);
	wr16(r + 14, 1);
	wr16(r + 16, ETH_P_IPV4);
	r[18] = ETH_ALEN;
	r[19] = 4;
	wr16(r + 20, 2);			/* reply */
	memcpy(r + 22, r + 6, ETH_ALEN);	/* sender: the peer */
	wr32(r + 28, FUZZ_PEER);
	memcpy(r + 32, f + 22, ETH_ALEN);	/* target: the asker */
	memcpy(r + 38, f + 28, 4);
	eth_input(r, sizeof(r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t f[ETH_FRAME_MAX + 64];
	const size_t hdr = ETH_HLEN + IP_HLEN + UDP_HLEN;
	size_t i = 0;

	fuzz_setup(1);
	while (i + 3 <= size) {
		uint8_t ctl = data[i];
		size_t n = rd16(data + i + 1);

		i += 3;
		if (n > size - i)
			n = size - i;
		if (n > sizeof(f) - hdr)
			n = sizeof(f) - hdr;
		memset(f, 0xff, ETH_ALEN);
		f[6] = 2; f[7] = 0; f[8] = 0; f[9] = 0; f[10] = 0; f[11] = 2;
		wr16(f + 12, ETH_P_IPV4);
		memset(f + ETH_HLEN, 0, IP_HLEN);
		f[ETH_HLEN] = 0x45;
		wr16(f + ETH_HLEN + 2, (uint16_t)(IP_HLEN + UDP_HLEN + n));
		f[ETH_HLEN + 8] = 64;
		f[ETH_HLEN + 9] = IP_PROTO_UDP;
		wr32(f + ETH_HLEN + 12, FUZZ_PEER);
		wr32(f + ETH_HLEN + 16, 0xffffffffu);
		wr16(f + ETH_HLEN + IP_HLEN, 67);
		wr16(f + ETH_HLEN + IP_HLEN + 2, 68);
		wr16(f + ETH_HLEN + IP_HLEN + 4, (uint16_t)(UDP_HLEN + n));
		wr16(f + ETH_HLEN + IP_HLEN + 6, 0);
		memcpy(f + hdr, data + i, n);
		i += n;
		fuzz_fixup_frame((uint8_t)(ctl | CTL_FIX_CSUM), f, hdr + n);
		eth_input(f, hdr + n);
		fuzz_tick(ctl);
		answer_arp();
	}
	return 0;
}
