/*
 * fuzz_dhcp - server messages for the DHCP client, wrapped by the harness
 * in Ethernet/IPv4/UDP from 10.0.0.1:67 to 255.255.255.255:68.
 *
 * Input: records [ctl][len:2][BOOTP message]; ctl bit 2 patches in the
 * xid and chaddr of our last DHCP message (so OFFER -> REQUEST -> ACK ->
 * BOUND -> RENEWING is reachable), bits 4-7 advance the clock.
 */
#include <string.h>

#include "fuzz_common.h"
#include "net.h"

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
	}
	return 0;
}
