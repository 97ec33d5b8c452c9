/*
 * fuzz_tcp - TCP segments straight into tcp_input (an HTTP server listens
 * on port 80), from 10.0.0.1 to our static 10.0.0.2.
 *
 * Input: records [ctl][len:2][segment]; ctl bit 3 rewrites seq/ack as
 * small offsets from our last segment and the ports to our last peer's,
 * bit 0 fixes the checksum, bits 4-7 advance the clock (fuzz_common.h).
 */
#include <string.h>

#include "fuzz_common.h"
#include "net.h"
#include "tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t seg[2048];
	size_t i = 0, sl;
	uint8_t ctl;

	fuzz_setup(0);
	while (fuzz_next_record(data, size, &i, &ctl, seg, sizeof(seg), &sl)) {
		fuzz_fixup_tcp(ctl, FUZZ_PEER, seg, sl);
		tcp_input(FUZZ_PEER, FUZZ_IP, seg, sl);
		fuzz_tick(ctl);
	}
	return 0;
}
