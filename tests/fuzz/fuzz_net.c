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
	size_t i = 1, fl;
	uint8_t ctl;

	if (size < 1)
		return 0;
	fuzz_setup(data[0] & 1);
	while (fuzz_next_record(data, size, &i, &ctl, f, sizeof(f), &fl)) {
		fuzz_fixup_frame(ctl, f, fl);
		eth_input(f, fl);
		fuzz_tick(ctl);
	}
	return 0;
}
