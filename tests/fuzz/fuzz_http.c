/*
 * fuzz_http - the HTTP parser and query decoding on raw bytes, then the
 * same bytes through the HTTP server over a live TCP connection, cut
 * into segments whose sizes come from the first input byte.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http.h"
#include "net.h"
#include "tcp.h"

static void check_parse(const char *buf, size_t size)
{
	struct http_req r;
	long n = http_parse(buf, size, HTTP_REQ_MAX, &r);
	char out[300];
	size_t ol;

	if (n <= 0)
		return;
	/* Everything the parser returns lies inside the input. */
	if ((size_t)n > size || r.path < buf || r.path + r.path_len > buf + size ||
	    (r.query && (r.query < buf || r.query + r.query_len > buf + size)))
		abort();
	if (r.method != HTTP_GET && r.method != HTTP_HEAD)
		abort();
	if (r.query) {
		int ok = http_query_check(r.query, r.query_len);
		int u = http_query_get(r.query, r.query_len, "user", out, sizeof(out), &ol);
		if (u == 1 && ol >= sizeof(out))
			abort();
		if (ok == 0 && u == -1)
			abort();	/* the check and the decoder must agree */
	}
	http_pct_decode(r.path, r.path_len, out, sizeof(out), false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seq = 1000, ack, upto;
	size_t i, chunk;

	if (size < 1)
		return 0;
	check_parse((const char *)data + 1, size - 1);

	fuzz_setup(0);
	if (fuzz_tcp_connect(40000, 80, seq - 1, &ack) < 0)
		abort();
	chunk = (size_t)(data[0] % 64) * 23 + 1;
	upto = ack;
	for (i = 1; i < size; i += chunk) {
		size_t n = size - i < chunk ? size - i : chunk;
		upto = fuzz_tcp_sent_upto(upto);
		fuzz_tcp_segment(40000, 80, seq, upto, 0x18, data + i, n);
		seq += (uint32_t)n;
		if (data[0] & 0x80)	/* sometimes ACK all we got back */
			fuzz_tcp_segment(40000, 80, seq, fuzz_tcp_sent_upto(upto), 0x10, NULL, 0);
	}
	/* Peer closes; then let timers run out. */
	fuzz_tcp_segment(40000, 80, seq, fuzz_tcp_sent_upto(upto), 0x11, NULL, 0);
	fuzz_tick(0xf0);
	return 0;
}
