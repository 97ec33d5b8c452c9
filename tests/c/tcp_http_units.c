/*
 * Unit tests of TCP, HTTP, SHA-256/HMAC/PBKDF2 and kv, run on the host
 * with ASan/UBSan by tests/c/test_tcp_http_units.py.
 *
 * The IP layer is a harness: ipv4_output() records every segment we send
 * (and checks its checksum); the tests feed crafted segments to
 * tcp_input() and drive the clock by hand.
 *
 *   ./tcp_http_units --list        names of all tests
 *   ./tcp_http_units NAME          run one (exit 0 = pass)
 *   ./tcp_http_units sha256 HEX | hmac KEYHEX MSGHEX | pbkdf2 PWHEX SALTHEX ITER DKLEN
 *                                  print results, for cross-checks with hashlib
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "platform.h"
#include "tcp.h"
#include "http.h"
#include "kv.h"
#include "sha256.h"
#include "csprng.h"
#include <sys/random.h>

/* ---- Harness: clock, address, captured output --------------------------- */

static uint64_t now = 100000;
static const uint32_t US = 0x0a000002, PEER = 0x0a000001;

uint64_t net_now_ms(void) { return now; }
uint32_t net_ip(void) { return US; }
void plat_console_write(const char *s, size_t n) { fwrite(s, 1, n, stdout); }
/* Fixed "randomness" unless a command asks for the real thing. */
static bool real_random;
void plat_random(void *b, size_t n)
{
	if (real_random)
		csprng_bytes(b, n);
	else
		memset(b, 0x42, n);
}

/* inet_sum, inet_fold, inet_pseudo: the stack's own (core/cksum.c). */

struct seg {
	uint32_t dst;
	uint16_t sport, dport, wnd;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t mss;		/* MSS option, 0 if none */
	size_t dlen;
	uint8_t data[1600];
};
static struct seg out[2048];
static int nout;

/* Our ISNs follow RFC 6528 (keyed hash of the 4-tuple + clock), so each
 * connection has its own. The tests speak in sequence numbers relative
 * to a virtual ISS: the harness shifts our seq and the peer's ack by the
 * difference, learnt from each SYN-ACK (per peer port). */
#define ISS 0x42424242u
static uint32_t iss_off[65536];

#define FIN 0x01
#define SYN 0x02
#define RST 0x04
#define PSH 0x08
#define ACK 0x10

static int failures;
#define CHECK(c) do { if (!(c)) { printf("%s:%d: CHECK failed: %s\n", \
	__FILE__, __LINE__, #c); failures++; } } while (0)
#define REQUIRE(c) do { if (!(c)) { printf("%s:%d: REQUIRE failed: %s\n", \
	__FILE__, __LINE__, #c); exit(1); } } while (0)

int ipv4_output(uint32_t dst, uint8_t proto, const void *p, size_t len)
{
	const uint8_t *b = p;
	struct seg *s;
	size_t hlen;

	REQUIRE(proto == IP_PROTO_TCP);
	REQUIRE(len >= 20 && len <= IP_MAX_PAYLOAD);
	REQUIRE(inet_fold(inet_sum(p, len, inet_pseudo(US, dst, 6, (uint16_t)len))) == 0);
	REQUIRE(nout < (int)(sizeof(out) / sizeof(out[0])));
	s = &out[nout++];
	memset(s, 0, sizeof(*s));
	s->dst = dst;
	s->sport = rd16(b);
	s->dport = rd16(b + 2);
	s->seq = rd32(b + 4);
	s->ack = rd32(b + 8);
	hlen = (size_t)(b[12] >> 4) * 4;
	REQUIRE(hlen >= 20 && hlen <= len);
	s->flags = b[13];
	if ((s->flags & 0x12) == 0x12)	/* SYN-ACK: a new ISS for the port */
		iss_off[s->dport] = s->seq - ISS;
	s->seq -= iss_off[s->dport];
	s->wnd = rd16(b + 14);
	if (hlen == 24 && b[20] == 2 && b[21] == 4)
		s->mss = rd16(b + 22);
	s->dlen = len - hlen;
	memcpy(s->data, b + hlen, s->dlen);
	return 0;
}

/* Build and feed a segment from peer:sport to US:dport. */
static uint32_t peer = PEER;
static void feed_opt(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		     uint8_t flags, uint16_t wnd, const uint8_t *opt, size_t optlen,
		     const void *data, size_t dlen)
{
	uint8_t b[2000];
	size_t hlen = 20 + optlen;

	memset(b, 0, sizeof(b));
	wr16(b, sport);
	wr16(b + 2, dport);
	wr32(b + 4, seq);
	wr32(b + 8, ack + iss_off[sport]);
	b[12] = (uint8_t)((hlen / 4) << 4);
	b[13] = flags;
	wr16(b + 14, wnd);
	if (optlen)
		memcpy(b + 20, opt, optlen);
	if (dlen)
		memcpy(b + hlen, data, dlen);
	wr16(b + 16, inet_fold(inet_sum(b, hlen + dlen,
		inet_pseudo(peer, US, 6, (uint16_t)(hlen + dlen)))));
	tcp_input(peer, US, b, hlen + dlen);
}

static void feed(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
		 uint8_t flags, uint16_t wnd, const void *data, size_t dlen)
{
	feed_opt(sport, dport, seq, ack, flags, wnd, NULL, 0, data, dlen);
}

static struct seg *last(void)
{
	REQUIRE(nout > 0);
	return &out[nout - 1];
}

/* ---- A test app on port 80 ----------------------------------------------- */

static struct tcp_conn *app_conn[8];
static int n_accept, n_closed, n_eof, n_sent;
static uint8_t rxbuf[65536];
static size_t rxlen, app_space = 65535, app_take = (size_t)-1;

static void t_accept(struct tcp_conn *c)
{
	app_conn[n_accept++ % 8] = c;
}
static size_t t_recv(struct tcp_conn *c, const uint8_t *p, size_t n)
{
	(void)c;
	if (n == 0) {
		n_eof++;
		return 0;
	}
	if (n > app_take)
		n = app_take;
	if (rxlen + n > sizeof(rxbuf))
		n = sizeof(rxbuf) - rxlen;
	memcpy(rxbuf + rxlen, p, n);
	rxlen += n;
	return n;
}
static void t_sent(struct tcp_conn *c) { (void)c; n_sent++; }
static void t_closed(struct tcp_conn *c) { (void)c; n_closed++; }
static size_t t_space(struct tcp_conn *c) { (void)c; return app_space; }

static const struct tcp_ops test_ops = {
	.accept = t_accept, .recv = t_recv, .sent = t_sent,
	.closed = t_closed, .rcv_space = t_space,
};

#define IRS 1000u

static void setup(void)
{
	tcp_reset();
	peer = PEER;
	nout = 0;
	n_accept = n_closed = n_eof = n_sent = 0;
	rxlen = 0;
	app_space = 65535;
	app_take = (size_t)-1;
	REQUIRE(tcp_listen(80, &test_ops) == 0);
}

/* Three-way handshake from port sport; returns the connection. */
static struct tcp_conn *handshake(uint16_t sport, uint16_t wnd)
{
	uint8_t mss[4] = { 2, 4, 0x05, 0xb4 };
	int before = n_accept;

	feed_opt(sport, 80, IRS, 0, SYN, wnd, mss, 4, NULL, 0);
	REQUIRE(last()->flags == (SYN | ACK));
	feed(sport, 80, IRS + 1, ISS + 1, ACK, wnd, NULL, 0);
	REQUIRE(n_accept == before + 1);
	return app_conn[before % 8];
}

/* ---- TCP tests ----------------------------------------------------------- */

static void test_tcp_handshake(void)
{
	uint8_t mss[4] = { 2, 4, 0x05, 0xb4 };
	struct seg *s;

	setup();
	feed_opt(4000, 80, IRS, 0, SYN, 65535, mss, 4, NULL, 0);
	REQUIRE(nout == 1);
	s = last();
	CHECK(s->dst == PEER && s->sport == 80 && s->dport == 4000);
	CHECK(s->flags == (SYN | ACK));
	CHECK(s->seq == ISS && s->ack == IRS + 1);
	CHECK(s->mss == TCP_MSS);
	CHECK(s->wnd > 0);
	CHECK(n_accept == 0);
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, NULL, 0);
	CHECK(n_accept == 1);
	CHECK(app_conn[0]->state == TCP_ESTABLISHED);
	CHECK(tcp_conn_count() == 1);
}

static void test_tcp_rst_closed_port(void)
{
	setup();
	/* SYN to a port nobody listens on: RST|ACK acking the SYN. */
	feed(4000, 81, 5000, 0, SYN, 1000, NULL, 0);
	REQUIRE(nout == 1);
	CHECK(last()->flags == (RST | ACK));
	CHECK(last()->seq == 0 && last()->ack == 5001);
	/* ACK with data to an unknown connection: RST with seq = their ack. */
	feed(4001, 80, 5000, 777, ACK, 1000, "xy", 2);
	REQUIRE(nout == 2);
	CHECK(last()->flags == RST && last()->seq == 777);
	/* Never answer a RST. */
	feed(4002, 81, 5000, 0, RST, 0, NULL, 0);
	CHECK(nout == 2);
	/* A bare FIN to the listening port is dropped. */
	feed(4003, 80, 5000, 0, FIN, 0, NULL, 0);
	CHECK(nout == 2 && tcp_conn_count() == 0);
}

static void test_tcp_bad_segments(void)
{
	uint8_t b[40];

	setup();
	memset(b, 0, sizeof(b));
	tcp_input(PEER, US, b, 0);
	tcp_input(PEER, US, b, 19);
	wr16(b, 4000); wr16(b + 2, 80); b[12] = 0xf0; b[13] = SYN;	/* hlen 60 > 40 */
	tcp_input(PEER, US, b, 40);
	b[12] = 0x40;	/* hlen 16 < 20 */
	tcp_input(PEER, US, b, 40);
	b[12] = 0x50;	/* good header, checksum zero: wrong */
	tcp_input(PEER, US, b, 40);
	CHECK(nout == 0);
	CHECK(tcp_stats.bad_csum == 1);
	CHECK(tcp_stats.bad_seg == 4);
	/* Correct checksum but broadcast / foreign destination. */
	wr16(b + 16, 0);
	wr16(b + 16, inet_fold(inet_sum(b, 20, inet_pseudo(PEER, 0x0a0000ff, 6, 20))));
	tcp_input(PEER, 0x0a0000ff, b, 20);
	CHECK(nout == 0 && tcp_conn_count() == 0);
}

static void test_tcp_mss_option_garbage(void)
{
	/* Truncated, zero-length and oversized options must not be read
	 * past; the peer MSS is clamped to [TCP_MIN_MSS, TCP_MSS]. */
	uint8_t o1[4] = { 2, 4, 0, 1 };		/* MSS 1: clamped up */
	uint8_t o2[4] = { 8, 0, 2, 4 };		/* length 0: stop */
	uint8_t o3[4] = { 1, 1, 2, 9 };		/* length past the end */
	uint8_t o4[8] = { 1, 1, 1, 2, 4, 0xff, 0xff, 0 };
	struct tcp_conn *c;

	setup();
	feed_opt(4000, 80, IRS, 0, SYN, 1000, o1, 4, NULL, 0);
	feed_opt(4001, 80, IRS, 0, SYN, 1000, o2, 4, NULL, 0);
	feed_opt(4002, 80, IRS, 0, SYN, 1000, o3, 4, NULL, 0);
	feed_opt(4003, 80, IRS, 0, SYN, 1000, o4, 8, NULL, 0);
	CHECK(nout == 4 && tcp_conn_count() == 4);
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, NULL, 0);
	feed(4001, 80, IRS + 1, ISS + 1, ACK, 65535, NULL, 0);
	feed(4003, 80, IRS + 1, ISS + 1, ACK, 65535, NULL, 0);
	REQUIRE(n_accept == 3);
	c = app_conn[0];
	CHECK(c->mss == TCP_MIN_MSS);
	CHECK(app_conn[1]->mss == TCP_DEFAULT_MSS);
	CHECK(app_conn[2]->mss == TCP_MSS);
}

static void test_tcp_data_in_order(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	nout = 0;
	feed(4000, 80, IRS + 1, ISS + 1, ACK | PSH, 65535, "hello", 5);
	CHECK(rxlen == 5 && memcmp(rxbuf, "hello", 5) == 0);
	REQUIRE(nout == 1);
	CHECK(last()->flags == ACK && last()->ack == IRS + 6);
	/* The app answers from its callback: the answer carries the ACK. */
	CHECK(tcp_send(c, "world", 5) == 5);
	tcp_output(c);
	CHECK(last()->dlen == 5 && last()->seq == ISS + 1 && memcmp(last()->data, "world", 5) == 0);
	CHECK(last()->flags & ACK);
}

static void test_tcp_out_of_order_dropped(void)
{
	setup();
	handshake(4000, 65535);
	nout = 0;
	/* Segment 2 arrives first: dropped, duplicate ACK for segment 1. */
	feed(4000, 80, IRS + 6, ISS + 1, ACK, 65535, "world", 5);
	CHECK(rxlen == 0);
	REQUIRE(nout == 1);
	CHECK(last()->ack == IRS + 1);
	CHECK(tcp_stats.ooo_dropped == 1);
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, "hello", 5);
	CHECK(rxlen == 5 && last()->ack == IRS + 6);
	/* Retransmission overlapping what we have: only the new part. */
	feed(4000, 80, IRS + 3, ISS + 1, ACK, 65535, "lloworld", 8);
	CHECK(rxlen == 10 && memcmp(rxbuf, "helloworld", 10) == 0);
	CHECK(last()->ack == IRS + 11);
	/* Pure duplicate: nothing delivered, re-ACKed. */
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, "hello", 5);
	CHECK(rxlen == 10 && last()->ack == IRS + 11);
}

static void test_tcp_out_of_window(void)
{
	struct tcp_conn *c;
	int before;

	setup();
	app_space = 100;
	c = handshake(4000, 65535);
	nout = 0;
	/* Far beyond the window: ACKed and dropped. */
	feed(4000, 80, IRS + 1 + 500000, ISS + 1, ACK, 65535, "evil", 4);
	CHECK(rxlen == 0 && nout == 1 && last()->ack == IRS + 1);
	CHECK(tcp_stats.out_of_window == 1);
	/* Way behind: same. */
	feed(4000, 80, IRS - 100000, ISS + 1, ACK, 65535, "evil", 4);
	CHECK(rxlen == 0 && nout == 2);
	/* More than the window: only the window's worth is taken. */
	{
		static uint8_t big[300];
		memset(big, 'a', sizeof(big));
		feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, big, sizeof(big));
	}
	CHECK(rxlen == 100);
	CHECK(last()->ack == IRS + 101);
	/* ACK for data we never sent: ACK back, connection lives on. */
	before = nout;
	feed(4000, 80, IRS + 101, ISS + 5000, ACK, 65535, NULL, 0);
	CHECK(nout == before + 1 && c->state == TCP_ESTABLISHED && c->snd_una == ISS + 1 + iss_off[4000]);
}

static void test_tcp_rst_validation(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	nout = 0;
	/* In window but not exact: challenge ACK (RFC 5961). */
	feed(4000, 80, IRS + 10, 0, RST, 0, NULL, 0);
	CHECK(n_closed == 0 && c->state == TCP_ESTABLISHED);
	CHECK(nout == 1 && last()->flags == ACK && last()->ack == IRS + 1);
	/* Out of window: silently dropped. */
	feed(4000, 80, IRS + 1000000, 0, RST, 0, NULL, 0);
	CHECK(n_closed == 0 && nout == 1);
	/* SYN on an established connection: challenge ACK. */
	feed(4000, 80, IRS + 1, 0, SYN, 0, NULL, 0);
	CHECK(n_closed == 0 && nout == 2 && last()->flags == ACK);
	/* Exact: the connection dies, the app hears about it. */
	feed(4000, 80, IRS + 1, 0, RST, 0, NULL, 0);
	CHECK(n_closed == 1 && tcp_conn_count() == 0);
}

static void test_tcp_syn_retransmit(void)
{
	uint8_t mss[4] = { 2, 4, 0x05, 0xb4 };

	setup();
	feed_opt(4000, 80, IRS, 0, SYN, 1000, mss, 4, NULL, 0);
	feed_opt(4000, 80, IRS, 0, SYN, 1000, mss, 4, NULL, 0);
	REQUIRE(nout == 2);
	CHECK(out[1].flags == (SYN | ACK) && out[1].seq == ISS);
	CHECK(tcp_conn_count() == 1);
	/* Lost SYN-ACKs are retransmitted, then the half-open conn is dropped. */
	now += TCP_RTO_INIT_MS;
	tcp_timer(now);
	CHECK(nout == 3 && last()->flags == (SYN | ACK));
	now += 60 * 60 * 1000;
	tcp_timer(now); tcp_timer(now += 100000); tcp_timer(now += 100000);
	tcp_timer(now += 100000); tcp_timer(now += 100000);
	CHECK(tcp_conn_count() == 0);
	CHECK(n_accept == 0 && n_closed == 0);
	/* A bad ACK in SYN_RCVD is answered with RST. */
	feed_opt(4001, 80, IRS, 0, SYN, 1000, mss, 4, NULL, 0);
	feed(4001, 80, IRS + 1, ISS + 99, ACK, 1000, NULL, 0);
	CHECK(last()->flags == RST && last()->seq == ISS + 99);
}

static void test_tcp_retransmit_backoff(void)
{
	struct tcp_conn *c;
	uint32_t rto;
	int i, before;

	setup();
	c = handshake(4000, 65535);
	nout = 0;
	tcp_send(c, "payload", 7);
	tcp_output(c);
	REQUIRE(nout == 1 && last()->dlen == 7);
	rto = c->rto;
	CHECK(rto == TCP_RTO_INIT_MS);
	tcp_timer(now + rto - 1);
	CHECK(nout == 1);
	now += rto;
	tcp_timer(now);
	REQUIRE(nout == 2);
	CHECK(last()->seq == ISS + 1 && last()->dlen == 7 && memcmp(last()->data, "payload", 7) == 0);
	CHECK(c->rto == 2 * rto);	/* exponential backoff */
	now += c->rto - 1;
	tcp_timer(now);
	CHECK(nout == 2);
	now += 1;
	tcp_timer(now);
	CHECK(nout == 3 && c->rto == 4 * rto);
	/* An ACK stops it. */
	feed(4000, 80, IRS + 1, ISS + 8, ACK, 65535, NULL, 0);
	CHECK(c->rtx_at == 0 && c->sb_len == 0 && n_sent == 1);
	/* Never acknowledged: aborted with RST after TCP_MAX_RETRIES. */
	tcp_send(c, "again", 5);
	tcp_output(c);
	before = n_closed;
	for (i = 0; i < TCP_MAX_RETRIES + 2; i++) {
		now += TCP_RTO_MAX_MS;
		tcp_timer(now);
	}
	CHECK(n_closed == before + 1);
	CHECK(last()->flags & RST);
	CHECK(tcp_conn_count() == 0);
}

static void test_tcp_rtt_estimate(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	tcp_send(c, "x", 1);
	tcp_output(c);
	now += 20;
	feed(4000, 80, IRS + 1, ISS + 2, ACK, 65535, NULL, 0);
	CHECK(c->have_rtt && c->srtt == 20);
	CHECK(c->rto == TCP_RTO_MIN_MS);	/* 20 + 4 * 10 < floor */
}

static void test_tcp_peer_window_and_mss(void)
{
	static uint8_t big[5000];
	uint8_t mss[4] = { 2, 4, 0, 100 };	/* peer MSS 100 */
	struct tcp_conn *c;
	size_t i, sent = 0;

	setup();
	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	feed_opt(4000, 80, IRS, 0, SYN, 250, mss, 4, NULL, 0);
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 250, NULL, 0);
	c = app_conn[0];
	REQUIRE(c && c->mss == 100);
	nout = 0;
	CHECK(tcp_send(c, big, sizeof(big)) == sizeof(big));
	tcp_output(c);
	/* Window 250, MSS 100: 100 + 100 + 50. */
	REQUIRE(nout == 3);
	CHECK(out[0].dlen == 100 && out[1].dlen == 100 && out[2].dlen == 50);
	CHECK(out[2].seq == ISS + 201);
	CHECK(memcmp(out[1].data, big + 100, 100) == 0);
	/* ACK 250 with a window of 1000: ten more segments. */
	nout = 0;
	feed(4000, 80, IRS + 1, ISS + 251, ACK, 1000, NULL, 0);
	for (i = 0; i < (size_t)nout; i++) {
		CHECK(out[i].dlen <= 100);
		sent += out[i].dlen;
	}
	CHECK(sent == 1000);
	CHECK(out[0].seq == ISS + 251);
	CHECK(memcmp(out[0].data, big + 250, 100) == 0);
}

static void test_tcp_zero_window_probe(void)
{
	struct tcp_conn *c;
	int i;

	setup();
	c = handshake(4000, 0);	/* peer window closed from the start */
	nout = 0;
	tcp_send(c, "abc", 3);
	tcp_output(c);
	CHECK(nout == 0);		/* nothing fits */
	now += TCP_RTO_INIT_MS;
	tcp_timer(now);
	REQUIRE(nout == 1);		/* one-byte probe */
	CHECK(last()->dlen == 1 && last()->data[0] == 'a' && last()->seq == ISS + 1);
	/* The peer keeps answering "window 0": we keep probing, never abort. */
	for (i = 0; i < 2 * TCP_MAX_RETRIES; i++) {
		feed(4000, 80, IRS + 1, ISS + 1, ACK, 0, NULL, 0);
		now += TCP_RTO_MAX_MS;
		tcp_timer(now);
	}
	CHECK(c->state == TCP_ESTABLISHED && n_closed == 0);
	CHECK(last()->dlen == 1);
	/* Window opens: the rest goes out. */
	nout = 0;
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 1000, NULL, 0);
	REQUIRE(nout >= 1);
	CHECK(last()->seq == ISS + 1 && last()->dlen == 3);
}

static void test_tcp_passive_close(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	nout = 0;
	feed(4000, 80, IRS + 1, ISS + 1, ACK | FIN, 65535, "bye", 3);
	CHECK(rxlen == 3 && n_eof == 1);
	CHECK(c->state == TCP_CLOSE_WAIT);
	CHECK(last()->ack == IRS + 5);
	/* The app still answers, then closes: data then FIN. */
	tcp_send(c, "ok", 2);
	tcp_close(c);
	tcp_output(c);
	CHECK(c->state == TCP_LAST_ACK);
	CHECK(last()->flags & FIN);
	CHECK(last()->seq == ISS + 1 && last()->dlen == 2);
	feed(4000, 80, IRS + 5, ISS + 4, ACK, 65535, NULL, 0);
	CHECK(tcp_conn_count() == 0);
	CHECK(n_closed == 0);	/* the app closed it itself */
}

static void test_tcp_active_close_time_wait(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	nout = 0;
	tcp_send(c, "data", 4);
	tcp_close(c);
	tcp_output(c);
	CHECK(c->state == TCP_FIN_WAIT_1);
	CHECK(last()->flags & FIN);
	CHECK(tcp_send_space(c) == 0);
	feed(4000, 80, IRS + 1, ISS + 6, ACK, 65535, NULL, 0);
	CHECK(c->state == TCP_FIN_WAIT_2);
	/* Data after our close is acked and discarded. */
	feed(4000, 80, IRS + 1, ISS + 6, ACK, 65535, "late", 4);
	CHECK(rxlen == 0 && last()->ack == IRS + 5);
	feed(4000, 80, IRS + 5, ISS + 6, ACK | FIN, 65535, NULL, 0);
	CHECK(c->state == TCP_TIME_WAIT);
	CHECK(last()->ack == IRS + 6);
	/* Retransmitted FIN in TIME-WAIT: ACKed again. */
	nout = 0;
	feed(4000, 80, IRS + 5, ISS + 6, ACK | FIN, 65535, NULL, 0);
	CHECK(nout == 1 && last()->ack == IRS + 6);
	tcp_timer(now + TCP_TIME_WAIT_MS - 1);
	CHECK(c->state == TCP_TIME_WAIT);
	now += TCP_TIME_WAIT_MS;
	tcp_timer(now);
	CHECK(tcp_conn_count() == 0);
}

static void test_tcp_time_wait_reuse(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	tcp_close(c);
	tcp_output(c);
	feed(4000, 80, IRS + 1, ISS + 2, ACK | FIN, 65535, NULL, 0);
	REQUIRE(c->state == TCP_TIME_WAIT);
	/* An old-numbered SYN is only ACKed... */
	nout = 0;
	feed(4000, 80, IRS, 0, SYN, 65535, NULL, 0);
	CHECK(c->state == TCP_TIME_WAIT && last()->flags == ACK);
	/* ...a SYN above the old sequence space opens a new connection. */
	feed(4000, 80, IRS + 100000, 0, SYN, 65535, NULL, 0);
	CHECK(last()->flags == (SYN | ACK) && last()->ack == IRS + 100001);
	feed(4000, 80, IRS + 100001, ISS + 1, ACK, 65535, NULL, 0);
	CHECK(n_accept == 2 && tcp_conn_count() == 1);
}

static void test_tcp_simultaneous_close(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	tcp_close(c);
	tcp_output(c);
	/* Peer's FIN crosses ours: CLOSING, then TIME-WAIT on the ACK. */
	feed(4000, 80, IRS + 1, ISS + 1, ACK | FIN, 65535, NULL, 0);
	CHECK(c->state == TCP_CLOSING);
	feed(4000, 80, IRS + 2, ISS + 2, ACK, 65535, NULL, 0);
	CHECK(c->state == TCP_TIME_WAIT);
}

static void test_tcp_fin_retransmitted(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	nout = 0;
	tcp_close(c);
	tcp_output(c);
	REQUIRE(nout == 1 && last()->flags == (FIN | ACK));
	now += c->rto;
	tcp_timer(now);
	REQUIRE(nout == 2);
	CHECK(last()->flags == (FIN | ACK) && last()->seq == ISS + 1);
}

static void test_tcp_concurrent(void)
{
	struct tcp_conn *a, *b, *c;

	setup();
	a = handshake(4001, 65535);
	b = handshake(4002, 65535);
	c = handshake(4003, 65535);
	CHECK(a != b && b != c && tcp_conn_count() == 3);
	rxlen = 0;
	feed(4002, 80, IRS + 1, ISS + 1, ACK, 65535, "B", 1);
	feed(4001, 80, IRS + 1, ISS + 1, ACK, 65535, "A", 1);
	CHECK(rxlen == 2 && rxbuf[0] == 'B' && rxbuf[1] == 'A');
	CHECK(a->rcv_nxt == IRS + 2 && b->rcv_nxt == IRS + 2 && c->rcv_nxt == IRS + 1);
	feed(4002, 80, IRS + 2, ISS + 1, RST, 0, NULL, 0);
	CHECK(tcp_conn_count() == 2 && a->state == TCP_ESTABLISHED);
}

static void test_tcp_syn_flood_keeps_real_clients(void)
{
	int i, before;

	setup();
	/* A real client's handshake is half-way when the flood starts... */
	feed(9000, 80, IRS, 0, SYN, 1000, NULL, 0);
	REQUIRE(last()->flags == (SYN | ACK));
	/* ...from many (spoofed) addresses, far more SYNs than slots. */
	for (i = 0; i < 4 * TCP_MAX_CONN; i++) {
		now++;
		peer = 0x0b000000u + (uint32_t)i;
		feed((uint16_t)(10000 + i), 80, IRS, 0, SYN, 1000, NULL, 0);
		CHECK(last()->flags == (SYN | ACK));	/* every SYN answered */
	}
	peer = PEER;
	CHECK(tcp_conn_count() <= TCP_HALF_OPEN_MAX + 1);
	CHECK(tcp_stats.cookies_sent > 0);
	/* The half-open client completes: it was not evicted. */
	feed(9000, 80, IRS + 1, ISS + 1, ACK, 1000, NULL, 0);
	CHECK(n_accept == 1);
	/* A client arriving during the flood gets a cookie and gets in. */
	peer = 0x0b100000u;
	feed(10000, 80, IRS, 0, SYN, 1000, NULL, 0);	/* the flood goes on */
	peer = PEER;
	feed(9001, 80, IRS, 0, SYN, 1000, NULL, 0);
	REQUIRE(last()->flags == (SYN | ACK));
	feed(9001, 80, IRS + 1, ISS + 1, ACK, 1000, "hi", 2);
	CHECK(n_accept == 2 && rxlen == 2 && last()->ack == IRS + 3);
	CHECK(tcp_stats.cookies_ok == 1);
	/* A forged cookie ACK (wrong ISS) creates nothing. */
	before = n_accept;
	feed(9002, 80, IRS + 1, ISS + 77, ACK, 1000, NULL, 0);
	CHECK(n_accept == before && last()->flags == RST);
	/* A cookie expires after two slots. */
	feed(9003, 80, IRS, 0, SYN, 1000, NULL, 0);
	now += 3 * TCP_COOKIE_SLOT_MS;
	feed(9003, 80, IRS + 1, ISS + 1, ACK, 1000, NULL, 0);
	CHECK(n_accept == before);
}

static void test_tcp_idle_clients_do_not_lock_out(void)
{
	int i;

	setup();
	/* One client opens 100 idle connections, another peer 10... */
	for (i = 0; i < 100; i++) {
		now++;
		feed((uint16_t)(20000 + i), 80, IRS, 0, SYN, 1000, NULL, 0);
		feed((uint16_t)(20000 + i), 80, IRS + 1, ISS + 1, ACK, 1000, NULL, 0);
	}
	CHECK(tcp_conn_count() <= TCP_PER_SOURCE);
	peer = 0x0a000063;
	for (i = 0; i < 10; i++) {
		now++;
		feed((uint16_t)(30000 + i), 80, IRS, 0, SYN, 1000, NULL, 0);
		feed((uint16_t)(30000 + i), 80, IRS + 1, ISS + 1, ACK, 1000, NULL, 0);
	}
	CHECK(n_accept == 110);
	/* ...a fresh client from either address is still served. */
	peer = 0x0a000064;
	feed(9000, 80, IRS, 0, SYN, 1000, NULL, 0);
	feed(9000, 80, IRS + 1, ISS + 1, ACK, 1000, "x", 1);
	CHECK(n_accept == 111 && last()->ack == IRS + 2);
	peer = PEER;
	feed(9001, 80, IRS, 0, SYN, 1000, NULL, 0);
	feed(9001, 80, IRS + 1, ISS + 1, ACK, 1000, "y", 1);
	CHECK(n_accept == 112 && last()->ack == IRS + 2);
	/* Filling the whole table from many addresses recycles the least
	 * recently heard connection of the biggest holder. */
	for (i = 0; i < 2 * TCP_MAX_CONN; i++) {
		now++;
		peer = 0x0c000000u + (uint32_t)i;
		feed(9100, 80, IRS, 0, SYN, 1000, NULL, 0);
		feed(9100, 80, IRS + 1, ISS + 1, ACK, 1000, NULL, 0);
	}
	CHECK(n_accept == 112 + 2 * TCP_MAX_CONN);
	CHECK(tcp_conn_count() == TCP_MAX_CONN);
}

static void test_tcp_junk_does_not_keep_alive(void)
{
	struct tcp_conn *c;
	int i;

	setup();
	c = handshake(4000, 65535);
	tcp_close(c);		/* FIN_WAIT_1, then the peer ACKs: FIN_WAIT_2 */
	tcp_output(c);
	feed(4000, 80, IRS + 1, ISS + 2, ACK, 65535, NULL, 0);
	REQUIRE(c->state == TCP_FIN_WAIT_2);
	/* Out-of-window RSTs every second must not refresh the timer. */
	for (i = 0; i < TCP_FIN_WAIT2_MS / 1000 + 2; i++) {
		now += 1000;
		feed(4000, 80, IRS + 100000, 0, RST, 0, NULL, 0);
		tcp_timer(now);
	}
	CHECK(tcp_conn_count() == 0);
}

static void test_tcp_idle_timeout_any_state(void)
{
	setup();
	handshake(4000, 65535);		/* ESTABLISHED, app never closes */
	feed(4001, 80, IRS, 0, SYN, 1000, NULL, 0);
	feed(4001, 80, IRS + 1, ISS + 1, ACK | FIN, 1000, NULL, 0);	/* CLOSE_WAIT */
	REQUIRE(tcp_conn_count() == 2);
	now += TCP_IDLE_MS / 2;
	tcp_timer(now);
	CHECK(tcp_conn_count() == 2);
	now += TCP_IDLE_MS;
	tcp_timer(now);
	CHECK(tcp_conn_count() == 0 && n_closed == 2);
	CHECK(last()->flags & RST);
}

static void test_tcp_rfc5961_ack_bound_and_challenge_limit(void)
{
	struct tcp_conn *c;
	int i, before;

	setup();
	c = handshake(4000, 1000);
	/* Data with SEG.ACK far below SND.UNA - MAX.SND.WND is dropped. */
	before = (int)rxlen;
	feed(4000, 80, IRS + 1, ISS + 1 - 0x40000000u, ACK, 1000, "evil", 4);
	CHECK((int)rxlen == before && c->rcv_nxt == IRS + 1);
	/* Within the bound it is taken. */
	feed(4000, 80, IRS + 1, ISS + 1 - 500, ACK, 1000, "good", 4);
	CHECK(rxlen == 4 && c->rcv_nxt == IRS + 5);
	/* In-window RSTs: challenge ACKs, but at most TCP_CHALLENGE_PER_S a second. */
	now += 1000;
	nout = 0;
	for (i = 0; i < 100; i++)
		feed(4000, 80, IRS + 100, ISS + 1, RST, 0, NULL, 0);
	CHECK(nout == TCP_CHALLENGE_PER_S && c->state == TCP_ESTABLISHED);
	now += 1000;
	feed(4000, 80, IRS + 5, ISS + 1, SYN, 1000, NULL, 0);
	CHECK(nout == TCP_CHALLENGE_PER_S + 1 && last()->ack == IRS + 5);
}

static void test_tcp_app_takes_partial(void)
{
	struct tcp_conn *c;

	setup();
	c = handshake(4000, 65535);
	app_take = 3;
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, "abcdef", 6);
	/* Only what the app took is acknowledged. */
	CHECK(rxlen == 3 && last()->ack == IRS + 4);
	app_take = (size_t)-1;
	feed(4000, 80, IRS + 4, ISS + 1, ACK | FIN, 65535, "def", 3);
	CHECK(rxlen == 6 && n_eof == 1 && c->state == TCP_CLOSE_WAIT);
}

static void test_tcp_window_advertised(void)
{
	struct tcp_conn *c;

	setup();
	app_space = 3000;
	c = handshake(4000, 65535);
	feed(4000, 80, IRS + 1, ISS + 1, ACK, 65535, "abc", 3);
	CHECK(last()->wnd >= 2997);
	app_space = 0;
	/* Window never shrinks below what was promised. */
	feed(4000, 80, IRS + 4, ISS + 1, ACK, 65535, "d", 1);
	CHECK((uint32_t)last()->wnd + last()->ack == c->rcv_adv);
	CHECK(c->rcv_adv == IRS + 1 + 3000 || SEQ_GT(c->rcv_adv, IRS + 3001));
}


/* ---- Randomness and ISNs ---------------------------------------------------- */

static void test_chacha20_rfc8439_vector(void)
{
	/* RFC 8439 2.3.2: key 00..1f, nonce 00:00:00:09:00:00:00:4a:00:00:00:00, counter 1. */
	static const uint8_t want[16] = { 0x10, 0xf1, 0xe7, 0xe4, 0xd1, 0x3b, 0x59, 0x15,
					  0x50, 0x0f, 0xdd, 0x1f, 0xa3, 0x20, 0x71, 0xc4 };
	static const uint8_t want_end[4] = { 0xa2, 0x50, 0x3c, 0x4e };
	uint8_t key[32], nonce[12] = { 0, 0, 0, 9, 0, 0, 0, 0x4a, 0, 0, 0, 0 }, out[64];
	int i;

	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	chacha20_block(key, 1, nonce, out);
	CHECK(memcmp(out, want, 16) == 0);
	CHECK(memcmp(out + 60, want_end, 4) == 0);
}

static void test_csprng_never_repeats_and_erases_key(void)
{
	uint8_t a[64], b[64];

	csprng_seed("x", 1);
	csprng_bytes(a, sizeof(a));
	csprng_bytes(b, sizeof(b));
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	/* Same seed history, same stream: the output is a function of the
	 * seeds only (no hidden clock), and a new seed changes it. */
	csprng_seed("y", 1);
	csprng_bytes(a, 8);
	csprng_bytes(b, 8);
	CHECK(memcmp(a, b, 8) != 0);
}

static uint32_t syn_ack_seq(uint16_t sport)
{
	feed(sport, 80, IRS, 0, SYN, 65535, NULL, 0);
	REQUIRE(last()->flags == (SYN | ACK) && last()->dport == sport);
	return last()->seq + iss_off[sport];	/* the real ISS */
}

static void test_tcp_isn_rfc6528(void)
{
	uint32_t a, b, a2;

	setup();
	a = syn_ack_seq(4000);
	b = syn_ack_seq(4001);
	/* Neighbouring 4-tuples: unrelated ISNs (a keyed hash, not a counter). */
	CHECK(b - a > 1000000u && a - b > 1000000u);
	/* The same 4-tuple later: the hash plus a 4 us clock (RFC 6528 M). */
	tcp_reset();
	REQUIRE(tcp_listen(80, &test_ops) == 0);
	now += 1000;
	a2 = syn_ack_seq(4000);
	CHECK(a2 - a == 250000u);
}

/* ---- HTTP parser ---------------------------------------------------------- */

static long parse(const char *s, struct http_req *r)
{
	return http_parse(s, strlen(s), HTTP_REQ_MAX, r);
}

static void test_http_parse_basic(void)
{
	struct http_req r;
	const char *q = "GET /a/b?user=x&password=y HTTP/1.1\r\nHost: h\r\n\r\n";

	CHECK(parse(q, &r) == (long)strlen(q));
	CHECK(r.method == HTTP_GET && r.minor == 1 && r.keep_alive);
	CHECK(r.path_len == 4 && memcmp(r.path, "/a/b", 4) == 0);
	CHECK(r.query_len == 17 && memcmp(r.query, "user=x&password=y", 17) == 0);
	CHECK(parse("HEAD / HTTP/1.1\r\nhost: h\r\n\r\n", &r) > 0 && r.method == HTTP_HEAD);
	CHECK(r.query == NULL);
	/* HTTP/1.0: no Host needed, close by default, keep-alive on request. */
	CHECK(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0 && !r.keep_alive);
	CHECK(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) > 0 && r.keep_alive);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n", &r) > 0 && !r.keep_alive);
	/* Bare LF line ends and leading empty lines are tolerated. */
	CHECK(parse("\r\nGET / HTTP/1.1\nHost: h\n\n", &r) == 26);
	/* OWS around values. */
	CHECK(parse("GET / HTTP/1.1\r\nHost:   h  \r\nContent-Length: \t0 \r\n\r\n", &r) > 0);
}

static void test_http_parse_incomplete(void)
{
	struct http_req r;
	const char *q = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	size_t i;

	for (i = 0; i < strlen(q); i++)
		CHECK(http_parse(q, i, HTTP_REQ_MAX, &r) == 0);
	CHECK(http_parse(q, strlen(q), HTTP_REQ_MAX, &r) == (long)strlen(q));
}

static void test_http_parse_errors(void)
{
	struct http_req r;

	CHECK(parse("POST / HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -405);
	CHECK(parse("DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -405);
	CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -405);
	CHECK(parse("GET / HTTP/1.1\r\n\r\n", &r) == -400);		/* no Host */
	CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n", &r) == -505);
	CHECK(parse("GET / HTTP/1.1 x\r\nHost: h\r\n\r\n", &r) == -400);
	CHECK(parse("GET  / HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -400);
	CHECK(parse("GET /\r\nHost: h\r\n\r\n", &r) == -400);		/* HTTP/0.9 */
	CHECK(parse("GET http:// HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -400);	/* no authority */
	CHECK(parse("GET ftp://x/ HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -400);
	CHECK(parse("GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -400);
	CHECK(parse("G(T / HTTP/1.1\r\nHost: h\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nNoColon\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\001b\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1x\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", &r) == -501);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", &r) == -501);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &r) == -400);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", &r) == -413);
	CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 12280\r\n\r\n", &r) == -413);
	{
		char nul[] = "GET /\0 HTTP/1.1";
		CHECK(http_parse(nul, sizeof(nul) - 1, HTTP_REQ_MAX, &r) == -400);
	}
}

static void test_http_parse_limits(void)
{
	static char big[HTTP_REQ_MAX + 100];
	struct http_req r;
	size_t n;
	int i;

	/* Header flood: more than HTTP_MAX_HEADERS fields. */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (i = 0; i < HTTP_MAX_HEADERS; i++)
		n += (size_t)sprintf(big + n, "X-%d: y\r\n", i);
	n += (size_t)sprintf(big + n, "\r\n");
	CHECK(http_parse(big, n, HTTP_REQ_MAX, &r) == -431);	/* RFC 6585 5 */
	/* A request line that never ends within the buffer: 414. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	CHECK(http_parse(big, HTTP_REQ_MAX, HTTP_REQ_MAX, &r) == -414);
	CHECK(http_parse(big, HTTP_REQ_MAX - 1, HTTP_REQ_MAX, &r) == 0);
	/* Header fields that never end: 431. */
	memcpy(big + 5, " HTTP/1.1\r\nX: ", 15);
	CHECK(http_parse(big, HTTP_REQ_MAX, HTTP_REQ_MAX, &r) == -431);
	/* RFC 9112 3: request lines of 8000 octets and ~100 ordinary fields are fine. */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	n = 8000 - 9;
	n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: h\r\n");
	for (i = 0; i < 98; i++)
		n += (size_t)sprintf(big + n, "X-Field-%d: value %d\r\n", i, i);
	n += (size_t)sprintf(big + n, "\r\n");
	CHECK(http_parse(big, n, HTTP_REQ_MAX, &r) == (long)n);
	CHECK(r.path_len == 8000 - 4 - 9);
}

static void test_http_parse_absolute_form_and_chunked(void)
{
	struct http_req r;
	const char *c = "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
			"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
	size_t total = strlen(c) - 4, k;

	CHECK(parse("GET http://example.org:8088/a/b?user=x HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
	CHECK(r.path_len == 4 && memcmp(r.path, "/a/b", 4) == 0);
	CHECK(r.query_len == 6 && memcmp(r.query, "user=x", 6) == 0);
	CHECK(parse("GET HTTP://h HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
	CHECK(r.path_len == 1 && r.path[0] == '/' && !r.query);
	CHECK(parse("HEAD http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
	CHECK(r.path_len == 1 && r.query_len == 3);
	/* Chunked body: complete only with the last chunk and trailers. */
	CHECK(http_parse(c, strlen(c), HTTP_REQ_MAX, &r) == (long)total);
	for (k = 50; k < total; k++) {
		long v = http_parse(c, k, HTTP_REQ_MAX, &r);
		CHECK(v == 0);
		if (v)
			printf("prefix %zu -> %ld\n", k, v);
	}
}

static void test_http_parse_body_and_pipelining(void)
{
	struct http_req r;
	const char *q = "GET /1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
	long n = parse(q, &r);

	CHECK(n == (long)(strlen(q) - strlen("GET /2 HTTP/1.1\r\nHost: h\r\n\r\n")));
	CHECK(r.content_length == 5 && r.path[1] == '1');
	CHECK(parse(q + n, &r) > 0 && r.path[1] == '2');
	/* Body not all there yet. */
	CHECK(http_parse(q, (size_t)n - 1, HTTP_REQ_MAX, &r) == 0);
}

static void test_http_pct_decode(void)
{
	char o[16];

	CHECK(http_pct_decode("a%20b+c", 7, o, sizeof(o), true) == 5 && strcmp(o, "a b c") == 0);
	CHECK(http_pct_decode("a+b", 3, o, sizeof(o), false) == 3 && strcmp(o, "a+b") == 0);
	CHECK(http_pct_decode("%41%6a%6A", 9, o, sizeof(o), true) == 3 && strcmp(o, "Ajj") == 0);
	CHECK(http_pct_decode("%zz", 3, o, sizeof(o), true) == -1);
	CHECK(http_pct_decode("%4", 2, o, sizeof(o), true) == -1);
	CHECK(http_pct_decode("abc%", 4, o, sizeof(o), true) == -1);
	CHECK(http_pct_decode("%g0", 3, o, sizeof(o), true) == -1);
	CHECK(http_pct_decode("0123456789abcdef", 16, o, sizeof(o), true) == -2);
	CHECK(http_pct_decode("x", 1, o, 0, true) == -2);
	CHECK(http_pct_decode("", 0, o, 1, true) == 0 && o[0] == 0);
	CHECK(http_query_check("a=%41&b=%%", 10) == -1);
	CHECK(http_query_check("a=%41&b=c%2", 11) == -1);
	CHECK(http_query_check("a=%41&b=+", 9) == 0);
}

static void test_http_query_get(void)
{
	const char *q = "x=1&user=al%69ce&password=p%40ss+w&empty=&flag&user=second";
	char o[32];
	size_t n = 0;

	CHECK(http_query_get(q, strlen(q), "user", o, sizeof(o), &n) == 1 && strcmp(o, "alice") == 0 && n == 5);
	CHECK(http_query_get(q, strlen(q), "password", o, sizeof(o), &n) == 1 && strcmp(o, "p@ss w") == 0);
	CHECK(http_query_get(q, strlen(q), "empty", o, sizeof(o), &n) == 1 && n == 0);
	CHECK(http_query_get(q, strlen(q), "flag", o, sizeof(o), &n) == 1 && n == 0);
	CHECK(http_query_get(q, strlen(q), "nope", o, sizeof(o), &n) == 0);
	CHECK(http_query_get(NULL, 0, "user", o, sizeof(o), &n) == 0);
	CHECK(http_query_get("us%65r=bob", 10, "user", o, sizeof(o), &n) == 1 && strcmp(o, "bob") == 0);
	CHECK(http_query_get("user=%zz", 8, "user", o, sizeof(o), &n) == -1);
	CHECK(http_query_get("user=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 46, "user", o, sizeof(o), &n) == -2);
	/* "user\0x" is not "user". */
	CHECK(http_query_get("user%00x=1", 10, "user", o, sizeof(o), &n) == 0);
}

/* ---- HTTP server over the TCP harness ------------------------------------ */

static const char big_body[6000] = "BIG";

static void test_handler(const struct http_req *req, struct http_resp *rs)
{
	if (req->path_len == 4 && memcmp(req->path, "/big", 4) == 0) {
		rs->body = big_body;
		rs->len = sizeof(big_body);
		return;
	}
	if (req->path_len == 5 && memcmp(req->path, "/none", 5) == 0) {
		rs->status = 404;
		rs->body = "nope\n";
		rs->len = 5;
		return;
	}
	/* "path <path>\n" (our fmt has no %.*s) */
	memcpy(rs->buf, "path ", 5);
	memcpy(rs->buf + 5, req->path, MIN(req->path_len, 400));
	rs->len = 5 + MIN(req->path_len, 400);
	rs->buf[rs->len++] = '\n';
	rs->body = rs->buf;
}

/* Collect the data we sent on the connection from peer port sport. */
static size_t collect(uint16_t sport, char *buf, size_t cap)
{
	size_t n = 0;
	int i;

	for (i = 0; i < nout; i++) {
		if (out[i].dport != sport || !out[i].dlen)
			continue;
		if (n + out[i].dlen >= cap)
			break;
		memcpy(buf + n, out[i].data, out[i].dlen);
		n += out[i].dlen;
	}
	buf[n] = 0;
	return n;
}

static uint32_t http_setup(uint16_t sport)
{
	tcp_reset();
	nout = 0;
	REQUIRE(http_serve(8080, test_handler) == 0);
	feed(sport, 8080, IRS, 0, SYN, 65535, NULL, 0);
	REQUIRE(last()->flags == (SYN | ACK));
	feed(sport, 8080, IRS + 1, ISS + 1, ACK, 65535, NULL, 0);
	nout = 0;
	return IRS + 1;
}

/* A new connection from sport sends q in one segment (ACK|PSH, window
 * 65535); what the server answered, in got. */
static void http_ask(uint16_t sport, const char *q, char *got, size_t cap)
{
	uint32_t seq = http_setup(sport);
	feed(sport, 8080, seq, ISS + 1, ACK | PSH, 65535, q, strlen(q));
	collect(sport, got, cap);
}

static void test_http_server_keepalive_pipelined(void)
{
	static char got[20000];
	const char *reqs = "GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /none HTTP/1.1\r\nHost: h\r\n\r\nHEAD /x HTTP/1.1\r\nHost: h\r\n\r\n";

	http_ask(5000, reqs, got, sizeof(got));
	if (getenv("SHOW")) fputs(got, stdout);
	CHECK(strstr(got, "HTTP/1.1 200 OK\r\n") == got);
	CHECK(strstr(got, "Content-Length: 10\r\n\r\npath /one\n") != NULL);
	CHECK(strstr(got, "HTTP/1.1 404 Not Found\r\n") != NULL);
	CHECK(strstr(got, "Content-Length: 5\r\n\r\nnope\n") != NULL);
	/* HEAD: same length as GET, no body. */
	CHECK(strstr(got, "Content-Length: 8\r\n\r\n") != NULL);
	CHECK(strstr(got, "path /x") == NULL);
	CHECK(strstr(got, "Connection: close") == NULL);
	CHECK(tcp_conn_count() == 1 && !(last()->flags & FIN));
}

static void test_http_server_close_and_errors(void)
{
	static char got[4096];

	http_ask(5001, "GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", got, sizeof(got));
	CHECK(strstr(got, "Connection: close\r\n") != NULL);
	CHECK(last()->flags & FIN);

	http_ask(5002, "GET /a?x=%zz HTTP/1.1\r\nHost: h\r\n\r\n", got, sizeof(got));
	CHECK(strstr(got, "HTTP/1.1 400 Bad Request\r\n") == got);
	CHECK(strstr(got, "Content-Length: 12\r\n") != NULL);
	CHECK(last()->flags & FIN);

	http_ask(5003, "PUT /a HTTP/1.1\r\nHost: h\r\n\r\n", got, sizeof(got));
	CHECK(strstr(got, "HTTP/1.1 405 Method Not Allowed\r\n") == got);
	CHECK(strstr(got, "Allow: GET, HEAD\r\n") != NULL);
}

static void test_http_server_header_flood(void)
{
	static char got[4096], flood[1400];
	uint32_t seq = http_setup(5004);
	int i;

	memcpy(flood, "GET / HTTP/1.1\r\n", 16);
	feed(5004, 8080, seq, ISS + 1, ACK, 65535, flood, 16);
	seq += 16;
	memset(flood, 'X', sizeof(flood));
	for (i = 0; i < 20 && !(last()->flags & FIN); i++) {
		feed(5004, 8080, seq, ISS + 1, ACK, 65535, flood, sizeof(flood));
		seq += sizeof(flood);
	}
	collect(5004, got, sizeof(got));
	CHECK(strstr(got, "HTTP/1.1 431 ") == got);
	CHECK(last()->flags & FIN);
}

static void test_http_server_streams_big_body(void)
{
	static char got[20000];
	const char *q = "GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
	uint32_t seq = http_setup(5005), acked = ISS + 1;
	size_t n, total = 0;
	int rounds;

	feed(5005, 8080, seq, ISS + 1, ACK, 65535, q, strlen(q));
	seq += (uint32_t)strlen(q);
	/* Ack everything we get until the whole body is out. */
	for (rounds = 0; rounds < 50; rounds++) {
		int i;
		for (i = 0; i < nout; i++)
			if (SEQ_GT(out[i].seq + (uint32_t)out[i].dlen, acked))
				acked = out[i].seq + (uint32_t)out[i].dlen;
		feed(5005, 8080, seq, acked, ACK, 65535, NULL, 0);
	}
	n = collect(5005, got, sizeof(got));
	total = n;
	CHECK(strstr(got, "Content-Length: 6000\r\n") != NULL);
	CHECK(total == 6000 + (size_t)(strstr(got, "\r\n\r\n") + 4 - got));
}

static void test_http_server_timeout(void)
{
	static char got[4096];
	uint32_t seq = http_setup(5006);

	feed(5006, 8080, seq, ISS + 1, ACK, 65535, "GET / HTTP/1.1\r\n", 16);
	now += HTTP_REQ_TIMEOUT_MS + 1;
	tcp_timer(now);
	collect(5006, got, sizeof(got));
	CHECK(strstr(got, "HTTP/1.1 408 ") == got);
	CHECK(last()->flags & FIN);
}

/* A peer that answers with window 0 for ever: each round the clock moves
 * step ms, timers run and it ACKs again, until no connection is left (at
 * most max rounds). The rounds it took. */
static int zero_window_rounds(uint16_t sport, uint32_t seq, uint64_t step, int max)
{
	int i;
	for (i = 0; i < max && tcp_conn_count(); i++) {
		now += step;
		tcp_timer(now);
		feed(sport, 8080, seq, ISS + 1, ACK, 0, NULL, 0);
	}
	return i;
}

static void test_http_server_peer_never_reads(void)
{
	/* A client that requests a body and then keeps its window at zero
	 * forever (answering our probes) must not hold the connection. */
	const char *q = "GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
	uint32_t seq = http_setup(5007);

	feed(5007, 8080, seq, ISS + 1, ACK, 0, q, strlen(q));
	seq += (uint32_t)strlen(q);
	int rounds = zero_window_rounds(5007, seq, 5000, 200);
	CHECK(tcp_conn_count() == 0);
	CHECK(rounds < 200);
}

static void test_http_server_stuck_stream_aborted(void)
{
	/* Same with a body larger than the send buffer: the stream stalls
	 * and the connection is reset after the idle timeout. */
	static char got[4096];
	const char *q = "GET /big HTTP/1.1\r\nHost: h\r\n\r\nGET /big HTTP/1.1\r\nHost: h\r\n\r\n";
	uint32_t seq = http_setup(5008);

	feed(5008, 8080, seq, ISS + 1, ACK, 1000, q, strlen(q));
	seq += (uint32_t)strlen(q);
	zero_window_rounds(5008, seq, 1000, 100);
	collect(5008, got, sizeof(got));
	CHECK(tcp_conn_count() == 0);
	CHECK(last()->flags & RST);
	CHECK(http_stats.timeouts >= 1);
}

/* Occurrences of needle in hay[0..len) (bodies may hold NULs). */
static int count_mem(const char *hay, size_t len, const char *needle)
{
	size_t k = strlen(needle);
	int n = 0;
	for (size_t i = 0; i + k <= len; i++)
		n += memcmp(hay + i, needle, k) == 0;
	return n;
}

/* Ack all we sent so far (and let timers run); returns the new ack. */
static uint32_t ack_all(uint16_t sport, uint32_t seq, uint32_t acked, uint16_t wnd)
{
	for (int i = 0; i < nout; i++)
		if (out[i].dport == sport &&
		    SEQ_GT(out[i].seq + (uint32_t)out[i].dlen + !!(out[i].flags & FIN), acked))
			acked = out[i].seq + (uint32_t)out[i].dlen + !!(out[i].flags & FIN);
	feed(sport, 8080, seq, acked, ACK, wnd, NULL, 0);
	now += 10;
	tcp_timer(now);
	return acked;
}

static void test_http_server_bounded_work_per_segment(void)
{
	static char got[60000], reqs[1400];
	const char *one = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
	uint32_t seq = http_setup(5010), acked = ISS + 1;
	int i, k = 0;

	for (i = 0; i < 40; i++)
		k += sprintf(reqs + k, "%s", one);
	feed(5010, 8080, seq, ISS + 1, ACK, 65535, reqs, (size_t)k);
	seq += (uint32_t)k;
	/* One segment, at most HTTP_REQS_PER_TURN handler runs... */
	CHECK(count_mem(got, collect(5010, got, sizeof(got)), "HTTP/1.1 200") ==
	      HTTP_REQS_PER_TURN);
	/* ...the rest follow on the next timer ticks, in order. */
	for (i = 0; i < 40; i++)
		acked = ack_all(5010, seq, acked, 65535);
	CHECK(count_mem(got, collect(5010, got, sizeof(got)), "HTTP/1.1 200") == 40);
	CHECK(tcp_conn_count() == 1);
}

static void test_http_server_fin_after_pipelined_requests(void)
{
	static char got[300000], reqs[1400];
	const char *one = "GET /big HTTP/1.1\r\nHost: h\r\n\r\n";
	uint32_t seq = http_setup(5011), acked = ISS + 1;
	int i, k = 0, n;

	for (i = 0; i < 40; i++)
		k += sprintf(reqs + k, "%s", one);
	/* 40 requests for a 6000-byte body and the FIN in one segment: the
	 * send buffer fills long before they are answered. */
	feed(5011, 8080, seq, ISS + 1, ACK | FIN, 65535, reqs, (size_t)k);
	seq += (uint32_t)k + 1;
	for (i = 0; i < 400 && tcp_conn_count(); i++)
		acked = ack_all(5011, seq, acked, 65535);
	n = count_mem(got, collect(5011, got, sizeof(got)), "HTTP/1.1 200");
	CHECK(n == 40);
	CHECK(tcp_conn_count() == 0);	/* then closed: our FIN was acked */
}

/* ---- Crypto ----------------------------------------------------------------- */

static void hex(const uint8_t *p, size_t n, char *o)
{
	size_t i;
	for (i = 0; i < n; i++)
		sprintf(o + 2 * i, "%02x", p[i]);
}

static void test_sha256_vectors(void)
{
	uint8_t d[32];
	char h[65];
	struct sha256 s;
	static char million[1000000];
	int i;

	sha256("", 0, d); hex(d, 32, h);
	CHECK(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
	sha256("abc", 3, d); hex(d, 32, h);
	CHECK(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
	sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d); hex(d, 32, h);
	CHECK(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
	memset(million, 'a', sizeof(million));
	/* Fed in odd-sized pieces to exercise the block buffer. */
	sha256_init(&s);
	for (i = 0; i < 1000000; i += 997)
		sha256_update(&s, million + i, MIN(997, 1000000 - i));
	sha256_final(&s, d); hex(d, 32, h);
	CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
}

static void test_hmac_vectors(void)
{
	/* RFC 4231 test cases 1, 2 and 6. */
	uint8_t key[131], d[32];
	char h[65];

	memset(key, 0x0b, 20);
	hmac_sha256(key, 20, "Hi There", 8, d); hex(d, 32, h);
	CHECK(strcmp(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7") == 0);
	hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d); hex(d, 32, h);
	CHECK(strcmp(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") == 0);
	memset(key, 0xaa, sizeof(key));
	hmac_sha256(key, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54, d);
	hex(d, 32, h);
	CHECK(strcmp(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54") == 0);
}

static void test_pbkdf2_vectors(void)
{
	/* RFC 7914 section 11. */
	uint8_t dk[64];
	char h[129];

	pbkdf2_sha256("passwd", 6, "salt", 4, 1, dk, 64); hex(dk, 64, h);
	CHECK(strcmp(h, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
			"49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783") == 0);
	pbkdf2_sha256("Password", 8, "NaCl", 4, 80000, dk, 64); hex(dk, 64, h);
	CHECK(strcmp(h, "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
			"a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d") == 0);
	CHECK(ct_memcmp("abc", "abc", 3) == 0 && ct_memcmp("abc", "abd", 3) != 0);
}

/* kv_table for this binary: three entries, sorted. */
static const uint8_t v_a[] = "A", v_b[] = "BB", v_c[] = "CCC";
const struct kv_entry kv_table[] = {
	{ "/a", 2, v_a, 1, "text/plain" },
	{ "/a/b", 4, v_b, 2, NULL },
	{ "/b", 2, v_c, 3, NULL },
};
const size_t kv_count = 3;

static void test_kv_lookup(void)
{
	CHECK(kv_get("/a", 2) == &kv_table[0]);
	CHECK(kv_get("/a/b", 4) == &kv_table[1]);
	CHECK(kv_get("/b", 2) == &kv_table[2]);
	CHECK(kv_get("/a/", 3) == NULL);
	CHECK(kv_get("/", 1) == NULL);
	CHECK(kv_get("", 0) == NULL);
	CHECK(kv_get("/c", 2) == NULL);
	CHECK(kv_get("/a/bb", 5) == NULL);
}

/* ---- Driver ------------------------------------------------------------- */

#define T(name) { #name, name }
static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	T(test_tcp_handshake), T(test_tcp_rst_closed_port), T(test_tcp_bad_segments),
	T(test_tcp_mss_option_garbage), T(test_tcp_data_in_order),
	T(test_tcp_out_of_order_dropped), T(test_tcp_out_of_window),
	T(test_tcp_rst_validation), T(test_tcp_syn_retransmit),
	T(test_tcp_retransmit_backoff), T(test_tcp_rtt_estimate),
	T(test_tcp_peer_window_and_mss), T(test_tcp_zero_window_probe),
	T(test_tcp_passive_close), T(test_tcp_active_close_time_wait),
	T(test_tcp_time_wait_reuse), T(test_tcp_simultaneous_close), T(test_tcp_fin_retransmitted),
	T(test_tcp_concurrent), T(test_tcp_syn_flood_keeps_real_clients), T(test_tcp_idle_clients_do_not_lock_out),
	T(test_tcp_junk_does_not_keep_alive),
	T(test_http_server_bounded_work_per_segment), T(test_http_parse_absolute_form_and_chunked), T(test_http_server_fin_after_pipelined_requests), T(test_tcp_rfc5961_ack_bound_and_challenge_limit), T(test_tcp_idle_timeout_any_state),
	T(test_tcp_app_takes_partial), T(test_tcp_window_advertised),
	T(test_chacha20_rfc8439_vector), T(test_csprng_never_repeats_and_erases_key),
	T(test_tcp_isn_rfc6528),
	T(test_http_parse_basic), T(test_http_parse_incomplete),
	T(test_http_parse_errors), T(test_http_parse_limits),
	T(test_http_parse_body_and_pipelining), T(test_http_pct_decode),
	T(test_http_query_get), T(test_http_server_keepalive_pipelined),
	T(test_http_server_close_and_errors), T(test_http_server_header_flood),
	T(test_http_server_streams_big_body), T(test_http_server_timeout), T(test_http_server_peer_never_reads),
	T(test_http_server_stuck_stream_aborted),
	T(test_sha256_vectors), T(test_hmac_vectors), T(test_pbkdf2_vectors),
	T(test_kv_lookup),
};

static size_t unhex(const char *s, uint8_t *o, size_t cap)
{
	size_t n = strlen(s) / 2, i;
	unsigned v;
	REQUIRE(n <= cap);
	for (i = 0; i < n; i++) {
		REQUIRE(sscanf(s + 2 * i, "%2x", &v) == 1);
		o[i] = (uint8_t)v;
	}
	return n;
}

int main(int argc, char **argv)
{
	static uint8_t a[4096], b[4096], d[4096];
	char h[8193];
	size_t i, na, nb;

	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "sha256") == 0) {
		na = unhex(argv[2], a, sizeof(a));
		sha256(a, na, d); hex(d, 32, h); puts(h);
		return 0;
	}
	if (argc == 4 && strcmp(argv[1], "hmac") == 0) {
		na = unhex(argv[2], a, sizeof(a));
		nb = unhex(argv[3], b, sizeof(b));
		hmac_sha256(a, na, b, nb, d); hex(d, 32, h); puts(h);
		return 0;
	}
	if (argc == 6 && strcmp(argv[1], "pbkdf2") == 0) {
		size_t dklen = (size_t)atoi(argv[5]);
		REQUIRE(dklen <= 512);
		na = unhex(argv[2], a, sizeof(a));
		nb = unhex(argv[3], b, sizeof(b));
		pbkdf2_sha256(a, na, b, nb, (uint32_t)atoi(argv[4]), d, dklen);
		hex(d, dklen, h); puts(h);
		return 0;
	}
	if (argc == 3 && (strcmp(argv[1], "random") == 0 || strcmp(argv[1], "isn") == 0)) {
		/* Seeded from the kernel like the host platform; prints N
		 * 64-bit outputs (random) or N ISNs of consecutive ports (isn). */
		uint8_t seed[32];
		long k, cnt = atol(argv[2]);
		REQUIRE(getrandom(seed, sizeof(seed), 0) == (ssize_t)sizeof(seed));
		csprng_seed(seed, sizeof(seed));
		real_random = true;
		setup();
		for (k = 0; k < cnt; k++) {
			if (argv[1][0] == 'r') {
				uint64_t v;
				plat_random(&v, sizeof(v));
				printf("%016llx\n", (unsigned long long)v);
			} else {
				tcp_reset();
				REQUIRE(tcp_listen(80, &test_ops) == 0);
				nout = 0;
				printf("%08x\n", syn_ack_seq((uint16_t)(1024 + k % 60000)));
			}
		}
		return 0;
	}
	if (argc == 2) {
		for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
			if (strcmp(argv[1], tests[i].name) == 0) {
				tests[i].fn();
				printf("%s: %s\n", tests[i].name, failures ? "FAIL" : "ok");
				return failures ? 1 : 0;
			}
		}
	}
	fprintf(stderr, "usage: %s --list | TEST | sha256 HEX | hmac K M | pbkdf2 P S ITER LEN\n", argv[0]);
	return 2;
}
