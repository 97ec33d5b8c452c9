/*
 * fuzz_net - whole frames into eth_input: Ethernet, ARP, IPv4, ICMP, UDP,
 * DHCP and TCP/HTTP behind them.
 *
 * Input: mode byte (bit 0: run DHCP instead of a static address), then
 * records [ctl][len:2][frame bytes] (see fuzz_common.h for ctl).
 */
#include <string.h>

#include "fuzz_common.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t f[ETH_FRAME_MAX + 64];
	size_t i = 1;

	if (size < 1)
		return 0;
	fuzz_setup(data[0] & 1);
	while (i + 3 <= size) {
		uint8_t ctl = data[i];
		size_t n = rd16(data + i + 1), fl;

		i += 3;
		if (n > size - i)
			n = size - i;
		fl = n < sizeof(f) ? n : sizeof(f);
		memcpy(f, data + i, fl);
		i += n;
		fuzz_fixup_frame(ctl, f, fl);
		eth_input(f, fl);
		fuzz_tick(ctl);
	}
	return 0;
}
