/*
 * fuzz_app.c - the REAL auth or www app (apps/auth.c, apps/www.c with the
 * packed data of unikernel/data/APP, PBKDF2 at 2 iterations) behind the
 * whole stack, talking to 8 peer addresses over up to 256 connections.
 *
 * Built once per app (-DAPP_PORT=8088 with auth.c, 80 with www.c).
 * app_main runs with the stop flag already set: it registers its server,
 * and net_run configures the static address and returns at once. Input:
 * records
 *     [conn][flags][wnd:2][len:2] data[len]
 * conn: connection (peer 10.0.0.10 + conn % 8, port 40000 + conn);
 * flags & 0x1f: TCP flags; 0x20: advance the clock 500 ms and run timers;
 * 0x40: use a wrong sequence number; 0x80: ACK everything we were sent
 * on this connection (else the last ACK again). The harness tracks each
 * connection's sequence numbers from the segments the stack sends, so
 * records reach established connections, full tables (more SYNs than
 * slots, cookies), zero and small windows (send-ring wrap-around),
 * pipelined requests with a FIN, timeouts.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "net.h"
#include "plat_test.h"
#include "tcp.h"

void app_main(void);

#define NPEERS 8
#define PEER0 0x0a00000au

static struct {
	uint32_t seq;		/* the peer's next sequence number */
	uint32_t got;		/* what we sent, +1 for SYN/FIN */
	uint32_t ack;		/* what the peer acknowledges (0: got) */
	bool synced;
} conns[256];

static void learn_peers(void)
{
	for (int i = 0; i < NPEERS; i++) {
		uint8_t mac[ETH_ALEN] = { 2, 0, 0, 0, 1, (uint8_t)i };
		fuzz_learn_peer(PEER0 + (uint32_t)i, mac);
	}
}

/* Follow what the stack sent: the highest sequence number per connection. */
static void scan_tx(void)
{
	for (int k = 0; k < test_ntx; k++) {
		const uint8_t *f = test_tx[k].data, *ip = f + ETH_HLEN;
		if (test_tx[k].len < ETH_HLEN + 40 || rd16(f + 12) != ETH_P_IPV4 ||
		    ip[9] != IP_PROTO_TCP)
			continue;
		size_t ihl = (size_t)(ip[0] & 15) * 4, tot = rd16(ip + 2);
		const uint8_t *t = ip + ihl;
		if (tot < ihl + 20 || ETH_HLEN + tot > test_tx[k].len)
			continue;
		uint16_t dport = rd16(t + 2);
		if (dport < 40000 || dport >= 40256)
			continue;
		size_t th = (size_t)(t[12] >> 4) * 4, dlen = tot - ihl - th;
		uint32_t end = rd32(t + 4) + (uint32_t)dlen + !!(t[13] & 0x03);
		int c = dport - 40000;
		if (t[13] & 0x04) {		/* RST: forget */
			conns[c].synced = false;
			continue;
		}
		if ((t[13] & 0x02) || !conns[c].synced || SEQ_GT(end, conns[c].got)) {
			conns[c].got = end;
			conns[c].synced = true;
		}
	}
	test_clear_tx();
}

static void send_seg(int c, uint8_t flags, uint16_t wnd, const uint8_t *d, size_t n)
{
	static uint8_t seg[20 + 1400];
	uint32_t src = PEER0 + (uint32_t)(c % NPEERS);
	uint8_t tf = flags & 0x1f;
	uint32_t seq = conns[c].seq;

	if (tf & 0x02) {		/* a new connection */
		seq = conns[c].seq = 1000000u * (uint32_t)c + 1;
		conns[c].synced = false;
		conns[c].ack = 0;
	}
	if ((flags & 0x80) || !conns[c].ack)
		conns[c].ack = conns[c].got;
	if (flags & 0x40)
		seq += 0x40000000u;	/* far out of window */
	memset(seg, 0, 20);
	wr16(seg, (uint16_t)(40000 + c));
	wr16(seg + 2, APP_PORT);
	wr32(seg + 4, seq);
	wr32(seg + 8, conns[c].ack);
	seg[12] = 5 << 4;
	seg[13] = tf | (tf & 0x02 ? 0 : 0x10);
	wr16(seg + 14, wnd);
	memcpy(seg + 20, d, n);
	wr16(seg + 16, inet_fold(inet_sum(seg, 20 + n,
		inet_pseudo(src, FUZZ_IP, IP_PROTO_TCP, (uint16_t)(20 + n)))));
	tcp_input(src, FUZZ_IP, seg, 20 + n);
	if (!(flags & 0x40))
		conns[c].seq = seq + (uint32_t)n + !!(tf & 0x03);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i = 0;

	fuzz_setup(0);
	memset(conns, 0, sizeof(conns));
	test_netcfg.dhcp = false;
	test_netcfg.ip = FUZZ_IP;
	test_netcfg.mask = FUZZ_MASK;
	test_netcfg.gw = FUZZ_GW;
	test_stop = true;
	app_main();
	test_stop = false;
	learn_peers();
	test_clear_tx();
	while (i + 6 <= size) {
		int c = data[i];
		uint8_t flags = data[i + 1];
		uint16_t wnd = rd16(data + i + 2);
		size_t n = rd16(data + i + 4) % 1401;
		i += 6;
		if (n > size - i)
			n = size - i;
		send_seg(c, flags, wnd, data + i, n);
		i += n;
		if (flags & 0x20)
			fuzz_tick(0x20);
		scan_tx();
		if (tcp_conn_count() > TCP_MAX_CONN)
			abort();
	}
	fuzz_tick(0xf0);
	return 0;
}
