/*
 * stack_units.c - unit tests of the runtime and the lower stack (eth,
 * ARP, IPv4, ICMP, UDP, DHCP) over the capturing test platform.
 * Built with ASan/UBSan by test_stack_units.py; exit status = failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "plat_test.h"

#include "check.h"

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((b) << 16) | ((c) << 8) | (d))
static const uint32_t ME = IP(10, 0, 0, 5);
static const uint32_t PEER = IP(10, 0, 0, 9);
static const uint32_t GW = IP(10, 0, 0, 1);
static const uint8_t PEER_MAC[6] = { 0x02, 0xaa, 0, 0, 0, 9 };
static const uint8_t GW_MAC[6] = { 0x02, 0xaa, 0, 0, 0, 1 };
static const uint8_t ME_MAC[6] = { 2, 0, 0, 0, 0, 1 };

/* ---- frame builders ---------------------------------------------------- */
static size_t mk_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src,
		     uint16_t type)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	wr16(f + 12, type);
	return ETH_HLEN;
}

static size_t mk_arp(uint8_t *f, uint16_t op, const uint8_t *sha,
		     uint32_t spa, const uint8_t *tha, uint32_t tpa,
		     const uint8_t *edst)
{
	static const uint8_t zero[6];
	size_t n = mk_eth(f, edst, sha, ETH_P_ARP);
	uint8_t *p = f + n;
	wr16(p, 1);
	wr16(p + 2, ETH_P_IPV4);
	p[4] = 6;
	p[5] = 4;
	wr16(p + 6, op);
	memcpy(p + 8, sha, 6);
	wr32(p + 14, spa);
	memcpy(p + 18, tha ? tha : zero, 6);
	wr32(p + 24, tpa);
	return n + 28;
}

/* IPv4 header at f+14 with payload already at f+14+ihl. */
static size_t mk_ip(uint8_t *f, const uint8_t *src_mac, uint32_t src,
		    uint32_t dst, uint8_t proto, size_t plen, size_t ihl)
{
	mk_eth(f, ME_MAC, src_mac, ETH_P_IPV4);
	uint8_t *p = f + ETH_HLEN;
	memset(p, 0, ihl);
	p[0] = (uint8_t)(0x40 | (ihl / 4));
	wr16(p + 2, (uint16_t)(ihl + plen));
	p[8] = 64;
	p[9] = proto;
	wr32(p + 12, src);
	wr32(p + 16, dst);
	if (ihl > 20)
		p[20] = 1; /* NOP options */
	wr16(p + 10, inet_fold(inet_sum(p, ihl, 0)));
	return ETH_HLEN + ihl + plen;
}

static size_t mk_echo(uint8_t *f, uint32_t src, uint32_t dst, size_t ihl,
		      size_t datalen)
{
	uint8_t *m = f + ETH_HLEN + ihl;
	m[0] = 8;
	m[1] = 0;
	wr16(m + 2, 0);
	wr16(m + 4, 0x1234);
	wr16(m + 6, 7);
	for (size_t i = 0; i < datalen; i++)
		m[8 + i] = (uint8_t)i;
	wr16(m + 2, inet_fold(inet_sum(m, 8 + datalen, 0)));
	return mk_ip(f, PEER_MAC, src, dst, IP_PROTO_ICMP, 8 + datalen, ihl);
}

static size_t mk_udp(uint8_t *f, const uint8_t *src_mac, uint32_t src,
		     uint16_t sport, uint32_t dst, uint16_t dport,
		     const void *data, size_t len, bool csum)
{
	uint8_t *u = f + ETH_HLEN + IP_HLEN;
	uint16_t ulen = (uint16_t)(8 + len);
	wr16(u, sport);
	wr16(u + 2, dport);
	wr16(u + 4, ulen);
	wr16(u + 6, 0);
	memcpy(u + 8, data, len);
	if (csum) {
		uint16_t c = inet_fold(inet_sum(
			u, ulen, inet_pseudo(src, dst, IP_PROTO_UDP, ulen)));
		wr16(u + 6, c ? c : 0xffff);
	}
	return mk_ip(f, src_mac, src, dst, IP_PROTO_UDP, ulen, IP_HLEN);
}

static struct test_frame *last_tx(void)
{
	return test_ntx ? &test_tx[test_ntx - 1] : NULL;
}

static void setup_static(void)
{
	test_reset();
	net_init();
	net_configure(ME, 0xffffff00u, GW);
	test_clear_tx();
}

/* Teach the ARP cache a neighbour by answering... its request to us. */
static void learn_neighbour(const uint8_t *mac, uint32_t ip)
{
	uint8_t f[64];
	size_t n = mk_arp(f, 1, mac, ip, NULL, ME, eth_broadcast);
	eth_input(f, n);
	test_clear_tx();
}

/* ---- runtime ----------------------------------------------------------- */
static void test_fmt(void)
{
	char b[64];
	CHECK_EQ(fmt(b, sizeof(b), "%d|%5d|%-4d|%05d", -42, 17, 3, -7), 20);
	CHECK(!strcmp(b, "-42|   17|3   |-0007"));
	fmt(b, sizeof(b), "%u %x %lu %llu %zu", 4000000000u, 0xbeefu,
	    123456789ul, 18446744073709551615ull, (size_t)99);
	CHECK(!strcmp(b, "4000000000 beef 123456789 18446744073709551615 99"));
	fmt(b, sizeof(b), "%lld %ld", -9223372036854775807ll - 1, -5l);
	CHECK(!strcmp(b, "-9223372036854775808 -5"));
	fmt(b, sizeof(b), "[%s][%6s][%-6s][%c][%%][%02x]", "ab", "cd", "ef",
	    'z', 10);
	CHECK(!strcmp(b, "[ab][    cd][ef    ][z][%][0a]"));
	fmt(b, sizeof(b), "%s", (const char *)NULL);
	CHECK(!strcmp(b, "(null)"));
	fmt(b, sizeof(b), "%p", (void *)0x1000);
	CHECK(!strcmp(b, "0x1000"));
	/* truncation: snprintf semantics, always terminated */
	CHECK_EQ(fmt(b, 5, "hello world"), 11);
	CHECK(!strcmp(b, "hell"));
	CHECK_EQ(fmt(b, 1, "abc"), 3);
	CHECK_EQ(b[0], 0);
	CHECK_EQ(fmt(NULL, 0, "%d", 12345), 5);
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wformat"
	fmt(b, sizeof(b), "100%"); /* a lone '%' at the end */
	CHECK(!strcmp(b, "100"));
	fmt(b, sizeof(b), "%q"); /* unknown conversion: verbatim */
	CHECK(!strcmp(b, "%q"));
#pragma clang diagnostic pop
	char ipb[16];
	CHECK(!strcmp(ip_str(IP(255, 255, 255, 255), ipb), "255.255.255.255"));
	printk("printk %d\n", 7);
	CHECK(strstr(test_console, "printk 7\n") != NULL);
}

static void test_checksum(void)
{
	/* RFC 1071 section 3 example: sum is ddf2, checksum 220d */
	const uint8_t d[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	CHECK_EQ(inet_fold(inet_sum(d, sizeof(d), 0)), 0x220d);
	/* odd length: last byte is the high half of a word */
	const uint8_t o[] = { 0x12, 0x34, 0x56 };
	CHECK_EQ(inet_fold(inet_sum(o, 3, 0)), (uint16_t)~(0x1234 + 0x5600));
	/* chaining equals one pass when chunks are even */
	CHECK_EQ(inet_fold(inet_sum(d + 4, 4, inet_sum(d, 4, 0))),
		 inet_fold(inet_sum(d, 8, 0)));
	/* a big buffer of 0xff never overflows */
	static uint8_t big[65536];
	memset(big, 0xff, sizeof(big));
	CHECK_EQ(inet_fold(inet_sum(big, sizeof(big), 0)), 0);
	CHECK_EQ(inet_pseudo(IP(1, 2, 3, 4), IP(5, 6, 7, 8), 17, 10),
		 0x0102 + 0x0304 + 0x0506 + 0x0708 + 17 + 10);
}

/* ---- Ethernet / ARP ---------------------------------------------------- */
static void test_eth_drops(void)
{
	setup_static();
	uint8_t f[ETH_FRAME_MAX + 10];
	memset(f, 0, sizeof(f));
	eth_input(f, 0);
	eth_input(f, 13);
	size_t n = mk_arp(f, 1, PEER_MAC, PEER, NULL, ME, eth_broadcast);
	eth_input(f, ETH_FRAME_MAX + 1); /* oversized */
	CHECK_EQ(test_ntx, 0);
	/* to another unicast MAC: not ours */
	memcpy(f, PEER_MAC, 6);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	/* unknown ethertype */
	n = mk_arp(f, 1, PEER_MAC, PEER, NULL, ME, eth_broadcast);
	wr16(f + 12, 0x86dd);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	CHECK_EQ(net_stats.rx_dropped, 5);
	/* short frames are padded to 60 bytes on output */
	uint8_t tiny[4] = { 1, 2, 3, 4 };
	CHECK_EQ(eth_output(PEER_MAC, 0x88b5, tiny, 4), 0);
	CHECK_EQ(last_tx()->len, 60);
	CHECK_EQ(eth_output(PEER_MAC, 0x88b5, f, ETH_MTU + 1), -1);
	test_send_fail = 1;
	CHECK_EQ(eth_output(PEER_MAC, 0x88b5, tiny, 4), -1);
}

static void test_arp_reply(void)
{
	setup_static();
	uint8_t f[64];
	size_t n = mk_arp(f, 1, PEER_MAC, PEER, NULL, ME, eth_broadcast);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 1);
	struct test_frame *r = last_tx();
	CHECK(!memcmp(r->data, PEER_MAC, 6));
	CHECK(!memcmp(r->data + 6, ME_MAC, 6));
	CHECK_EQ(rd16(r->data + 12), ETH_P_ARP);
	const uint8_t *a = r->data + 14;
	CHECK_EQ(rd16(a + 6), 2);
	CHECK(!memcmp(a + 8, ME_MAC, 6));
	CHECK_EQ(rd32(a + 14), ME);
	CHECK(!memcmp(a + 18, PEER_MAC, 6));
	CHECK_EQ(rd32(a + 24), PEER);
	/* and the requester was learned */
	uint8_t mac[6];
	CHECK_EQ(arp_lookup(PEER, mac), 1);
	CHECK(!memcmp(mac, PEER_MAC, 6));

	/* a request for someone else: no reply, not learned */
	test_clear_tx();
	n = mk_arp(f, 1, GW_MAC, GW, NULL, IP(10, 0, 0, 77), eth_broadcast);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	CHECK_EQ(arp_lookup(GW, mac), 0);
	/* truncated, wrong hardware type/lengths, bad op, multicast sender */
	n = mk_arp(f, 1, PEER_MAC, PEER, NULL, ME, eth_broadcast);
	eth_input(f, n - 1);
	f[14 + 4] = 8;
	eth_input(f, n);
	f[14 + 4] = 6;
	wr16(f + 14 + 6, 3);
	eth_input(f, n);
	wr16(f + 14 + 6, 1);
	f[14 + 8] |= 1;
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	/* unconfigured: we answer nobody */
	net_configure(0, 0, 0);
	test_clear_tx();
	n = mk_arp(f, 1, PEER_MAC, PEER, NULL, ME, eth_broadcast);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
}

static void test_arp_resolve_queue_expiry(void)
{
	setup_static();
	uint8_t mac[6], f[64];
	uint8_t payload[100];
	memset(payload, 0xab, sizeof(payload));

	/* unknown on-link peer: request sent, packet queued */
	CHECK_EQ(ipv4_output(PEER, 253, payload, sizeof(payload)), 0);
	CHECK_EQ(test_ntx, 1);
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_ARP);
	CHECK(!memcmp(last_tx()->data, eth_broadcast, 6));
	CHECK_EQ(rd32(last_tx()->data + 14 + 24), PEER);
	CHECK(arp_busy());
	/* a second packet for the same hop waits too (fragments) */
	payload[0] = 0xcd;
	CHECK_EQ(ipv4_output(PEER, 253, payload, sizeof(payload)), 0);
	CHECK_EQ(test_ntx, 1); /* no second request */
	/* the reply flushes both to the learned MAC */
	test_clear_tx();
	size_t n = mk_arp(f, 2, PEER_MAC, PEER, ME_MAC, ME, ME_MAC);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 2);
	CHECK(!memcmp(last_tx()->data, PEER_MAC, 6));
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_IPV4);
	CHECK_EQ(last_tx()->data[14 + 20], 0xcd);
	CHECK(!arp_busy());
	/* cached now: next packet goes out at once */
	test_clear_tx();
	CHECK_EQ(ipv4_output(PEER, 253, payload, 10), 0);
	CHECK_EQ(test_ntx, 1);
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_IPV4);
	/* unsolicited ARP (gratuitous, or a request or reply nobody asked
	 * for) does not move a resolved neighbour to a new MAC */
	static const uint8_t NEW_MAC[6] = { 2, 0xbb, 0, 0, 0, 9 };
	n = mk_arp(f, 1, NEW_MAC, PEER, NULL, PEER, eth_broadcast);
	eth_input(f, n);
	n = mk_arp(f, 1, NEW_MAC, PEER, NULL, ME, eth_broadcast);
	eth_input(f, n);
	n = mk_arp(f, 2, NEW_MAC, PEER, ME_MAC, ME, ME_MAC);
	eth_input(f, n);
	CHECK_EQ(arp_lookup(PEER, mac), 1);
	CHECK(!memcmp(mac, PEER_MAC, 6));
	/* entries expire after 60 s */
	test_now += 60 * 1000;
	arp_timer(test_now);
	CHECK_EQ(arp_lookup(PEER, mac), 0);

	/* an unanswered hop: 3 requests one second apart, then dropped */
	test_clear_tx();
	uint32_t ghost = IP(10, 0, 0, 200);
	CHECK_EQ(ipv4_output(ghost, 253, payload, 10), 0);
	for (int i = 0; i < 5; i++) {
		test_now += 1000;
		arp_timer(test_now);
	}
	CHECK_EQ(test_ntx, 3);
	CHECK(!arp_busy());
	/* an unsolicited reply for a host we never asked about: ignored */
	n = mk_arp(f, 2, GW_MAC, IP(10, 0, 0, 66), ME_MAC, IP(10, 0, 0, 99),
		   ME_MAC);
	eth_input(f, n);
	CHECK_EQ(arp_lookup(IP(10, 0, 0, 66), mac), 0);
}

static void test_arp_cache_full(void)
{
	setup_static();
	uint8_t mac[6] = { 2, 0xcc, 0, 0, 0, 0 };
	/* more neighbours than entries: the newest always resolve */
	for (int i = 1; i <= 40; i++) {
		mac[5] = (uint8_t)i;
		learn_neighbour(mac, IP(10, 0, 0, 100 + i));
		test_now += 10;
	}
	uint8_t got[6];
	CHECK_EQ(arp_lookup(IP(10, 0, 0, 140), got), 1);
	CHECK_EQ(got[5], 40);
	CHECK_EQ(arp_lookup(IP(10, 0, 0, 101), got), 0);
	/* more unresolved hops than pending slots: the oldest packets give
	 * way, so the newest hop's reply still goes out once resolved */
	uint8_t p[8] = { 0 };
	int queued = 0;
	for (int i = 0; i < 20; i++)
		queued += ipv4_output(IP(10, 0, 0, 10 + i), 253, p, 8) == 0;
	CHECK_EQ(queued, 20);
	test_clear_tx();
	uint8_t f[64];
	size_t n = mk_arp(f, 2, mac, IP(10, 0, 0, 29), ME_MAC, ME, ME_MAC);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 1);
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_IPV4);
}

static void test_arp_churn_keeps_resolved_and_gateway(void)
{
	setup_static();
	uint8_t mac[6] = { 2, 0xcc, 0, 0, 0, 0 }, got[6];
	learn_neighbour(GW_MAC, GW);
	mac[5] = 1;
	learn_neighbour(mac, PEER);
	/* a burst of packets to unresolvable addresses (replies to spoofed
	 * sources): incomplete entries churn, resolved ones stay */
	uint8_t p[8] = { 0 };
	for (int i = 0; i < 100; i++) {
		ipv4_output(IP(10, 0, 0, 100 + i), 253, p, 8);
		test_now += 10;
	}
	CHECK_EQ(arp_lookup(GW, got), 1);
	CHECK_EQ(arp_lookup(PEER, got), 1);
	/* requests from many new neighbours may evict resolved entries,
	 * never the gateway */
	for (int i = 1; i <= 40; i++) {
		mac[5] = (uint8_t)(i + 1);
		learn_neighbour(mac, IP(10, 0, 0, 100 + i));
		test_now += 10;
	}
	CHECK_EQ(arp_lookup(GW, got), 1);
	CHECK(!memcmp(got, GW_MAC, 6));
}

static void test_arp_refresh(void)
{
	setup_static();
	uint8_t p[8] = { 0 }, f[64], mac[6];
	learn_neighbour(PEER_MAC, PEER);
	/* in use 56 s later: packet sent, plus one refresh request */
	test_now += 56 * 1000;
	CHECK_EQ(ipv4_output(PEER, 253, p, 8), 0);
	CHECK_EQ(test_ntx, 2);
	CHECK_EQ(rd16(test_tx[0].data + 12), ETH_P_ARP);
	CHECK_EQ(rd16(test_tx[1].data + 12), ETH_P_IPV4);
	CHECK_EQ(ipv4_output(PEER, 253, p, 8), 0);
	CHECK_EQ(test_ntx, 3); /* only one refresh */
	/* the reply extends the entry for another minute */
	size_t n = mk_arp(f, 2, PEER_MAC, PEER, ME_MAC, ME, ME_MAC);
	eth_input(f, n);
	test_now += 30 * 1000;
	arp_timer(test_now);
	CHECK_EQ(arp_lookup(PEER, mac), 1);
}

/* ---- IPv4 / ICMP ------------------------------------------------------- */
/* One fragment of the ICMP message msg[0..len) at off (n bytes). */
static size_t mk_frag(uint8_t *f, uint32_t src, uint16_t id, const uint8_t *msg,
		      size_t off, size_t n, bool more)
{
	size_t fl = mk_ip(f, PEER_MAC, src, ME, IP_PROTO_ICMP, n, 20);
	uint8_t *ip = f + ETH_HLEN;
	wr16(ip + 4, id);
	wr16(ip + 6, (uint16_t)((off / 8) | (more ? 0x2000 : 0)));
	wr16(ip + 10, 0);
	wr16(ip + 10, inet_fold(inet_sum(ip, 20, 0)));
	memcpy(ip + 20, msg + off, n);
	return fl;
}

static void test_ipv4_reassembly(void)
{
	static uint8_t msg[3008], got[3008];
	uint8_t f[ETH_FRAME_MAX];
	size_t i, n, len = sizeof(msg);

	setup_static();
	learn_neighbour(PEER_MAC, PEER);
	msg[0] = 8;
	wr16(msg + 4, 0x4242);
	for (i = 8; i < len; i++)
		msg[i] = (uint8_t)(i * 7);
	wr16(msg + 2, inet_fold(inet_sum(msg, len, 0)));
	/* Three fragments, out of order, a duplicate among them. */
	n = mk_frag(f, PEER, 77, msg, 2960, len - 2960, false);
	eth_input(f, n);
	n = mk_frag(f, PEER, 77, msg, 0, 1480, true);
	eth_input(f, n);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	n = mk_frag(f, PEER, 77, msg, 1480, 1480, true);
	eth_input(f, n);
	/* The reply: as big as the request, in three fragments. */
	CHECK_EQ(test_ntx, 3);
	size_t total = 0;
	for (int k = 0; k < test_ntx && k < 3; k++) {
		const uint8_t *ip = test_tx[k].data + 14;
		size_t off = (size_t)(rd16(ip + 6) & 0x1fff) * 8, pl = rd16(ip + 2) - 20u;
		CHECK_EQ(inet_fold(inet_sum(ip, 20, 0)), 0);
		CHECK_EQ(!!(rd16(ip + 6) & 0x2000), k < 2);
		if (off + pl > sizeof(got)) { CHECK(0); break; }
		memcpy(got + off, ip + 20, pl);
		total += pl;
	}
	CHECK_EQ(total, len);
	CHECK_EQ(got[0], 0);
	CHECK_EQ(inet_fold(inet_sum(got, len, 0)), 0);
	CHECK(!memcmp(got + 4, msg + 4, len - 4));
	/* Incomplete datagrams time out; too big ones are dropped. */
	test_clear_tx();
	n = mk_frag(f, PEER, 78, msg, 0, 1480, true);
	eth_input(f, n);
	test_now += 60000;
	n = mk_frag(f, PEER, 78, msg, 1480, 1480, false);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	n = mk_frag(f, PEER, 79, msg, 0, 1000, false);
	wr16(f + ETH_HLEN + 6, (uint16_t)(4000 / 8));
	wr16(f + ETH_HLEN + 10, 0);
	wr16(f + ETH_HLEN + 10, inet_fold(inet_sum(f + ETH_HLEN, 20, 0)));
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	/* Our subnet's broadcast address as a source is refused. */
	n = mk_echo(f, IP(10, 0, 0, 255), ME, 20, 8);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
}

static void test_icmp_echo(void)
{
	setup_static();
	learn_neighbour(PEER_MAC, PEER);
	uint8_t f[ETH_FRAME_MAX];
	size_t n = mk_echo(f, PEER, ME, 20, 56);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 1);
	struct test_frame *r = last_tx();
	const uint8_t *ip = r->data + 14;
	CHECK(!memcmp(r->data, PEER_MAC, 6));
	CHECK_EQ(inet_fold(inet_sum(ip, 20, 0)), 0);
	CHECK_EQ(rd32(ip + 12), ME);
	CHECK_EQ(rd32(ip + 16), PEER);
	CHECK_EQ(ip[9], IP_PROTO_ICMP);
	CHECK_EQ(rd16(ip + 2), 20 + 64);
	CHECK_EQ(ip[20], 0);
	CHECK_EQ(inet_fold(inet_sum(ip + 20, 64, 0)), 0);
	CHECK(!memcmp(ip + 24, f + 14 + 24, 60)); /* id, seq, data echoed */
	CHECK_EQ(net_stats.icmp_echo, 1);

	/* options in the request (ihl 6) are skipped */
	test_clear_tx();
	n = mk_echo(f, PEER, ME, 24, 8);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 1);
	/* Ethernet padding after the datagram is ignored */
	test_clear_tx();
	n = mk_echo(f, PEER, ME, 20, 0);
	memset(f + n, 0x55, 60 - n);
	eth_input(f, 60);
	CHECK_EQ(test_ntx, 1);
	CHECK_EQ(rd16(last_tx()->data + 16), 28);
	/* biggest echo that fits, and one byte more is cut by eth_input */
	test_clear_tx();
	n = mk_echo(f, PEER, ME, 20, ETH_MTU - 28);
	CHECK_EQ(n, ETH_FRAME_MAX);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 1);
}

static void test_ipv4_drops(void)
{
	setup_static();
	learn_neighbour(PEER_MAC, PEER);
	uint8_t f[ETH_FRAME_MAX];
	size_t n = mk_echo(f, PEER, ME, 20, 8);
	uint8_t *ip = f + 14;
	uint32_t bad0 = net_stats.bad_csum;

	/* bad header checksum */
	ip[10] ^= 1;
	eth_input(f, n);
	CHECK_EQ(net_stats.bad_csum, bad0 + 1);
	ip[10] ^= 1;
	/* bad ICMP checksum */
	ip[20 + 6] ^= 1;
	eth_input(f, n);
	ip[20 + 6] ^= 1;
	/* total length beyond the frame, ihl < 5, ihl > total, version 6 */
	n = mk_echo(f, PEER, ME, 20, 8);
	eth_input(f, n - 1);
	ip[0] = 0x44;
	eth_input(f, n);
	ip[0] = 0x4f;
	wr16(ip + 2, 40);
	eth_input(f, n);
	n = mk_echo(f, PEER, ME, 20, 8);
	ip[0] = 0x65;
	eth_input(f, n);
	/* fragments: first (MF) and later (offset) */
	uint32_t frags0 = net_stats.frags;
	n = mk_echo(f, PEER, ME, 20, 8);
	wr16(ip + 6, 0x2000);
	wr16(ip + 10, 0);
	wr16(ip + 10, inet_fold(inet_sum(ip, 20, 0)));
	eth_input(f, n);
	wr16(ip + 6, 0x0010);
	wr16(ip + 10, 0);
	wr16(ip + 10, inet_fold(inet_sum(ip, 20, 0)));
	eth_input(f, n);
	CHECK_EQ(net_stats.frags, frags0 + 2);
	/* not for us; broadcast ping; martian source; unknown protocol */
	n = mk_echo(f, PEER, IP(10, 0, 0, 6), 20, 8);
	eth_input(f, n);
	n = mk_echo(f, PEER, IP(10, 0, 0, 255), 20, 8);
	eth_input(f, n);
	n = mk_echo(f, IP(224, 0, 0, 1), ME, 20, 8);
	eth_input(f, n);
	n = mk_ip(f, PEER_MAC, PEER, ME, 99, 0, 20);
	eth_input(f, n);
	/* TCP to an app without TCP: the weak stub drops it */
	n = mk_ip(f, PEER_MAC, PEER, ME, IP_PROTO_TCP, 0, 20);
	eth_input(f, n);
	/* ICMP other than echo request (an echo reply) */
	n = mk_echo(f, PEER, ME, 20, 8);
	f[14 + 20] = 0;
	wr16(f + 14 + 22, 0);
	wr16(f + 14 + 22, inet_fold(inet_sum(f + 34, 16, 0)));
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	/* unconfigured: ICMP dropped */
	net_configure(0, 0, 0);
	n = mk_echo(f, PEER, ME, 20, 8);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
}

static void test_ipv4_routing(void)
{
	setup_static();
	uint8_t p[4] = { 0 };
	/* off-link: ARP for the gateway */
	CHECK_EQ(ipv4_output(IP(192, 0, 2, 1), 253, p, 4), 0);
	CHECK_EQ(rd32(last_tx()->data + 14 + 24), GW);
	/* on-link: ARP for the destination itself */
	CHECK_EQ(ipv4_output(IP(10, 0, 0, 42), 253, p, 4), 0);
	CHECK_EQ(rd32(last_tx()->data + 14 + 24), IP(10, 0, 0, 42));
	/* broadcasts go straight to ff:ff:ff:ff:ff:ff */
	test_clear_tx();
	CHECK_EQ(ipv4_output(IP_BROADCAST, 253, p, 4), 0);
	CHECK_EQ(ipv4_output(IP(10, 0, 0, 255), 253, p, 4), 0);
	CHECK_EQ(test_ntx, 2);
	CHECK(!memcmp(test_tx[0].data, eth_broadcast, 6));
	CHECK(!memcmp(test_tx[1].data, eth_broadcast, 6));
	CHECK_EQ(rd16(test_tx[0].data + 12), ETH_P_IPV4);
	/* too big, to ourselves, to 0.0.0.0 */
	static uint8_t big[IP_MAX_DATAGRAM + 1];
	CHECK_EQ(ipv4_output(PEER, 253, big, sizeof(big)), -1);
	CHECK_EQ(ipv4_output(ME, 253, p, 4), -1);
	CHECK_EQ(ipv4_output(0, 253, p, 4), -1);
	/* no gateway: off-link unreachable, on-link fine */
	net_configure(ME, 0xffffff00u, 0);
	CHECK_EQ(ipv4_output(IP(192, 0, 2, 1), 253, p, 4), -1);
	CHECK_EQ(ipv4_output(IP(10, 0, 0, 42), 253, p, 4), 0);
	/* unconfigured: only broadcast works (DHCP) */
	net_configure(0, 0, 0);
	CHECK_EQ(ipv4_output(IP(10, 0, 0, 42), 253, p, 4), -1);
	CHECK_EQ(ipv4_output(IP_BROADCAST, 253, p, 4), 0);
	const uint8_t *ip = last_tx()->data + 14;
	CHECK_EQ(rd32(ip + 12), 0);
	CHECK_EQ(rd16(ip + 6), 0x4000); /* DF */
	CHECK_EQ(ip[8], 64);
}

/* ---- UDP --------------------------------------------------------------- */
static int udp_hits;
static size_t udp_len;
static uint16_t udp_sport;
static void udp_rx(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
		   const uint8_t *data, size_t len)
{
	(void)src;
	(void)dst;
	(void)dport;
	(void)data;
	udp_hits++;
	udp_len = len;
	udp_sport = sport;
}

static void test_udp(void)
{
	setup_static();
	udp_hits = 0;
	CHECK_EQ(udp_bind(7777, udp_rx), 0);
	uint8_t f[ETH_FRAME_MAX];
	const char msg[] = "hello";
	size_t n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7777, msg, 5, true);
	eth_input(f, n);
	CHECK_EQ(udp_hits, 1);
	CHECK_EQ(udp_len, 5);
	CHECK_EQ(udp_sport, 5000);
	/* checksum 0: accepted */
	n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7777, msg, 5, false);
	eth_input(f, n);
	CHECK_EQ(udp_hits, 2);
	/* bad checksum, length beyond datagram, length < 8, other port */
	n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7777, msg, 5, true);
	f[14 + 20 + 8] ^= 1;
	eth_input(f, n);
	n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7777, msg, 5, false);
	wr16(f + 14 + 20 + 4, 14);
	eth_input(f, n);
	wr16(f + 14 + 20 + 4, 7);
	eth_input(f, n);
	n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7778, msg, 5, true);
	eth_input(f, n);
	CHECK_EQ(udp_hits, 2);
	/* a UDP length shorter than the IP payload is fine (trailer cut) */
	n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7777, msg, 5, false);
	wr16(f + 14 + 20 + 4, 10);
	eth_input(f, n);
	CHECK_EQ(udp_hits, 3);
	CHECK_EQ(udp_len, 2);
	/* unbind; binding table fills up */
	CHECK_EQ(udp_bind(7777, NULL), 0);
	n = mk_udp(f, PEER_MAC, PEER, 5000, ME, 7777, msg, 5, true);
	eth_input(f, n);
	CHECK_EQ(udp_hits, 3);
	int ok = 0;
	for (int i = 0; i < UDP_MAX_BINDINGS + 2; i++)
		ok += udp_bind((uint16_t)(9000 + i), udp_rx) == 0;
	CHECK(ok <= UDP_MAX_BINDINGS);
	for (int i = 0; i < UDP_MAX_BINDINGS + 2; i++)
		udp_bind((uint16_t)(9000 + i), NULL);
	/* output: checksum verifies with the pseudo-header */
	learn_neighbour(PEER_MAC, PEER);
	CHECK_EQ(udp_output(PEER, 1234, 53, "abc", 3), 0);
	const uint8_t *ip = last_tx()->data + 14, *u = ip + 20;
	CHECK_EQ(rd16(u + 4), 11);
	CHECK_EQ(inet_fold(inet_sum(u, 11, inet_pseudo(ME, PEER, 17, 11))), 0);
	static uint8_t big[UDP_MAX_PAYLOAD + 1];
	CHECK_EQ(udp_output(PEER, 1, 2, big, sizeof(big)), -1);
	CHECK_EQ(udp_output(PEER, 1, 2, big, UDP_MAX_PAYLOAD), 0);
	CHECK_EQ(last_tx()->len, ETH_FRAME_MAX);
}

/* ---- DHCP -------------------------------------------------------------- */
static const uint32_t SERVER = IP(10, 0, 0, 1);
static const uint8_t SERVER_MAC[6] = { 2, 0x5e, 0, 0, 0, 1 };

struct seen {
	int type;        /* option 53, -1 if none */
	uint32_t xid, ciaddr, reqip, server, ipdst;
	uint8_t dstmac[6];
	size_t len;
};

/* Parse the last frame if it is a DHCP client message. */
static int last_dhcp(struct seen *s)
{
	memset(s, 0, sizeof(*s));
	s->type = -1;
	for (int k = test_ntx - 1; k >= 0; k--) {
		const uint8_t *f = test_tx[k].data;
		if (rd16(f + 12) != ETH_P_IPV4 || f[14 + 9] != IP_PROTO_UDP)
			continue;
		const uint8_t *u = f + 34;
		if (rd16(u + 2) != 67)
			continue;
		const uint8_t *m = u + 8;
		size_t len = rd16(u + 4) - 8;
		memcpy(s->dstmac, f, 6);
		s->ipdst = rd32(f + 14 + 16);
		s->len = len;
		s->xid = rd32(m + 4);
		s->ciaddr = rd32(m + 12);
		CHECK_EQ(m[0], 1);
		CHECK(!memcmp(m + 28, ME_MAC, 6));
		CHECK_EQ(rd32(m + 236), 0x63825363u);
		for (size_t i = 240; i + 1 < len && m[i] != 255;) {
			if (m[i] == 0) {
				i++;
				continue;
			}
			uint8_t c = m[i], l = m[i + 1];
			const uint8_t *v = m + i + 2;
			if (c == 53)
				s->type = v[0];
			if (c == 50)
				s->reqip = rd32(v);
			if (c == 54)
				s->server = rd32(v);
			i += 2u + l;
		}
		return 1;
	}
	return 0;
}

static uint32_t mk_mask = 0xffffff00u; /* subnet mask option sent */

/* Build a server reply. opts: extra raw option bytes (without end). */
static size_t mk_dhcp(uint8_t *f, uint8_t type, uint32_t xid, uint32_t yiaddr,
		      uint32_t lease, const uint8_t *extra, size_t extralen,
		      bool with_server)
{
	uint8_t m[600];
	memset(m, 0, sizeof(m));
	m[0] = 2;
	m[1] = 1;
	m[2] = 6;
	wr32(m + 4, xid);
	wr32(m + 16, yiaddr);
	memcpy(m + 28, ME_MAC, 6);
	wr32(m + 236, 0x63825363u);
	size_t n = 240;
	m[n++] = 53;
	m[n++] = 1;
	m[n++] = type;
	if (with_server) {
		m[n++] = 54;
		m[n++] = 4;
		wr32(m + n, SERVER);
		n += 4;
	}
	if (lease) {
		m[n++] = 51;
		m[n++] = 4;
		wr32(m + n, lease);
		n += 4;
	}
	m[n++] = 1;
	m[n++] = 4;
	wr32(m + n, mk_mask);
	n += 4;
	m[n++] = 3;
	m[n++] = 8; /* two routers: the first is used */
	wr32(m + n, GW);
	wr32(m + n + 4, IP(10, 0, 0, 2));
	n += 8;
	if (extralen)
		memcpy(m + n, extra, extralen);
	n += extralen;
	m[n++] = 255;
	return mk_udp(f, SERVER_MAC, SERVER, 67, yiaddr ? yiaddr : IP_BROADCAST,
		      68, m, n, true);
}

/* When dhcp_to_bound's REQUEST went out: the lease counts from there. */
static uint64_t dhcp_req_at;

/* A fresh client that has just sent its first DISCOVER (into *s). */
static void dhcp_fresh_discover(struct seen *s)
{
	test_reset();
	net_init();
	dhcp_start();
	CHECK(last_dhcp(s));
}

/* Drive a fresh client to BOUND with lease seconds; returns the xid. */
static uint32_t dhcp_to_bound(uint32_t lease, const uint8_t *extra,
			      size_t extralen)
{
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	dhcp_fresh_discover(&s);
	CHECK_EQ(s.type, 1);
	CHECK(!memcmp(s.dstmac, eth_broadcast, 6));
	CHECK_EQ(s.ipdst, IP_BROADCAST);
	CHECK(s.len >= 300);
	uint32_t xid = s.xid;
	test_now += 300;
	dhcp_req_at = test_now;
	eth_input(f, mk_dhcp(f, 2, xid, ME, lease, extra, extralen, true));
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 3);
	CHECK_EQ(s.reqip, ME);
	CHECK_EQ(s.server, SERVER);
	CHECK_EQ(s.ciaddr, 0);
	CHECK_EQ(s.xid, xid);
	eth_input(f, mk_dhcp(f, 5, xid, ME, lease, extra, extralen, true));
	/* RFC 5227: ARP probes (sender 0.0.0.0) for the address first */
	CHECK(!dhcp_bound());
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_ARP);
	CHECK_EQ(rd32(last_tx()->data + 14 + 14), 0);
	CHECK_EQ(rd32(last_tx()->data + 14 + 24), ME);
	for (int i = 0; i < 3 && !dhcp_bound(); i++) {
		test_now += 400;
		dhcp_timer(test_now);
	}
	return xid;
}

static void test_dhcp_probe_conflict_declines(void)
{
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	static const uint8_t OTHER_MAC[6] = { 2, 0xee, 0, 0, 0, 7 };
	dhcp_fresh_discover(&s);
	uint32_t xid = s.xid;
	eth_input(f, mk_dhcp(f, 2, xid, ME, 120, NULL, 0, true));
	/* an ACK whose server identifier is 0.0.0.0 is refused */
	static const uint8_t zero_sid[] = { 54, 4, 0, 0, 0, 0 };
	eth_input(f, mk_dhcp(f, 5, xid, ME, 120, zero_sid, sizeof(zero_sid), false));
	CHECK(!dhcp_bound() && net_ip() == 0);
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_IPV4);	/* no probe */
	/* a real ACK: probing; another host answers for the address */
	eth_input(f, mk_dhcp(f, 5, xid, ME, 120, NULL, 0, true));
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_ARP);
	test_clear_tx();
	size_t n = mk_arp(f, 2, OTHER_MAC, ME, ME_MAC, 0, ME_MAC);
	eth_input(f, n);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 4);		/* DHCPDECLINE */
	CHECK_EQ(s.reqip, ME);
	CHECK_EQ(s.server, SERVER);
	for (int i = 0; i < 5; i++) {
		test_now += 400;
		dhcp_timer(test_now);
	}
	CHECK(!dhcp_bound() && net_ip() == 0);
	CHECK(strstr(test_console, "DHCP: 10.0.0.5 is in use, declining") != NULL);
	/* a new DISCOVER after the RFC 2131 wait */
	test_clear_tx();
	test_now += 10000;
	dhcp_timer(test_now);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 1);
}

static void test_arp_conflict_defend_then_give_up(void)
{
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	static const uint8_t OTHER_MAC[6] = { 2, 0xee, 0, 0, 0, 8 };
	dhcp_to_bound(120, NULL, 0);
	CHECK(dhcp_bound());
	/* a claim on our address: defended with an announcement */
	test_clear_tx();
	size_t n = mk_arp(f, 1, OTHER_MAC, ME, NULL, ME, eth_broadcast);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 1);
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_ARP);
	CHECK_EQ(rd32(last_tx()->data + 14 + 14), ME);
	CHECK(dhcp_bound());
	/* insisted on within 10 s: the address is given up (and declined) */
	test_now += 2000;
	for (int i = 0; i < 20; i++)
		eth_input(f, n);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 4);
	CHECK(!dhcp_bound() && net_ip() == 0);
	/* the conflict was logged once, not per packet */
	const char *c = strstr(test_console, "address conflict");
	CHECK(c && !strstr(c + 1, "address conflict"));
}

static void test_dhcp_exchange(void)
{
	dhcp_to_bound(120, NULL, 0);
	CHECK(dhcp_bound());
	CHECK_EQ(net_ip(), ME);
	CHECK_EQ(net_mask(), 0xffffff00u);
	CHECK_EQ(net_gw(), GW);
	CHECK(strstr(test_console, "IP address: 10.0.0.5 netmask "
				   "255.255.255.0 gateway 10.0.0.1") != NULL);
	CHECK(strstr(test_console, "DHCP: bound to 10.0.0.5 from 10.0.0.1, "
				   "lease 120 s") != NULL);
	/* the last frame is our gratuitous ARP */
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_ARP);
	CHECK_EQ(rd32(last_tx()->data + 14 + 14), ME);
	CHECK_EQ(rd32(last_tx()->data + 14 + 24), ME);
}

static void test_dhcp_ignores_bogus(void)
{
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	test_reset();
	net_init();
	dhcp_start();
	last_dhcp(&s);
	uint32_t xid = s.xid;
	test_clear_tx();
	/* wrong xid, wrong MAC, no server id, zero/broadcast yiaddr, ACK
	 * while selecting, BOOTREQUEST op, bad cookie, truncated */
	eth_input(f, mk_dhcp(f, 2, xid + 1, ME, 120, NULL, 0, true));
	size_t n = mk_dhcp(f, 2, xid, ME, 120, NULL, 0, true);
	f[42 + 28 + 5] ^= 1;
	eth_input(f, n); /* (UDP checksum now wrong too) */
	eth_input(f, mk_dhcp(f, 2, xid, ME, 120, NULL, 0, false));
	eth_input(f, mk_dhcp(f, 2, xid, 0, 120, NULL, 0, true));
	eth_input(f, mk_dhcp(f, 2, xid, IP_BROADCAST, 120, NULL, 0, true));
	eth_input(f, mk_dhcp(f, 5, xid, ME, 120, NULL, 0, true));
	eth_input(f, mk_dhcp(f, 6, xid, ME, 120, NULL, 0, true));
	/* bogus option lengths: one running past the end of the message */
	const uint8_t runaway[] = { 12, 200, 'x' };
	n = mk_dhcp(f, 2, xid, ME, 120, runaway, sizeof(runaway), true);
	eth_input(f, n - 1); /* also drop the end option: UDP len mismatch */
	/* message type with the wrong length, option at the very end */
	const uint8_t badtype[] = { 53, 2, 2, 2 };
	eth_input(f, mk_dhcp(f, 9, xid, ME, 120, badtype, sizeof(badtype), true));
	/* from the wrong source port */
	n = mk_dhcp(f, 2, xid, ME, 120, NULL, 0, true);
	wr16(f + 34, 6700);
	wr16(f + 34 + 6, 0);
	eth_input(f, n);
	CHECK_EQ(test_ntx, 0);
	CHECK(!dhcp_bound());
	CHECK_EQ(net_ip(), 0);
	/* a short message: < 240 bytes */
	uint8_t m[100] = { 2, 1, 6 };
	eth_input(f, mk_udp(f, SERVER_MAC, SERVER, 67, ME, 68, m, sizeof(m), true));
	CHECK_EQ(test_ntx, 0);
	/* a message whose option area ends without the end option */
	uint8_t m2[244];
	memset(m2, 0, sizeof(m2));
	m2[0] = 2; m2[1] = 1; m2[2] = 6;
	wr32(m2 + 4, xid);
	wr32(m2 + 16, ME);
	memcpy(m2 + 28, ME_MAC, 6);
	wr32(m2 + 236, 0x63825363u);
	m2[240] = 53; m2[241] = 1; m2[242] = 2; m2[243] = 54; /* cut */
	eth_input(f, mk_udp(f, SERVER_MAC, SERVER, 67, ME, 68, m2, sizeof(m2), true));
	CHECK_EQ(test_ntx, 0);
	/* finally a good offer still works */
	eth_input(f, mk_dhcp(f, 2, xid, ME, 120, NULL, 0, true));
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 3);
}

static void test_dhcp_retransmit_backoff(void)
{
	struct seen s;
	test_reset();
	net_init();
	dhcp_start();
	uint64_t last = test_now;
	uint64_t gaps[6];
	int k = 0;
	int before = test_ntx;
	while (k < 6) {
		test_now += 100;
		dhcp_timer(test_now);
		if (test_ntx != before) {
			before = test_ntx;
			CHECK(last_dhcp(&s));
			CHECK_EQ(s.type, 1);
			gaps[k++] = test_now - last;
			last = test_now;
		}
	}
	/* 2, 4, 8, 16, 32, 64 s, each +-0.5 s */
	uint64_t expect = 2000;
	for (int i = 0; i < 6; i++) {
		CHECK(gaps[i] + 600 >= expect && gaps[i] <= expect + 600);
		expect = expect * 2 > 64000 ? 64000 : expect * 2;
	}
	/* capped at 64 s */
	test_now += 70000;
	dhcp_timer(test_now);
	CHECK(last_dhcp(&s));

	/* REQUESTING without ACK: 4 tries then back to DISCOVER */
	uint8_t f[ETH_FRAME_MAX];
	uint32_t xid = s.xid;
	eth_input(f, mk_dhcp(f, 2, xid, ME, 120, NULL, 0, true));
	int requests = 1;
	for (int i = 0; i < 200; i++) {
		test_now += 500;
		int t0 = test_ntx;
		dhcp_timer(test_now);
		if (test_ntx != t0) {
			last_dhcp(&s);
			if (s.type == 1)
				break;
			CHECK_EQ(s.type, 3);
			requests++;
		}
	}
	CHECK_EQ(requests, 4);
	CHECK_EQ(s.type, 1);
	CHECK(s.xid != xid); /* a new transaction */
	CHECK(strstr(test_console, "DHCP: no ACK, restarting") != NULL);
}

static void test_dhcp_renew_rebind_expire(void)
{
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	dhcp_to_bound(100, NULL, 0);
	CHECK(dhcp_bound());
	/* times count from the REQUEST, not from the end of ARP probing */
	uint64_t t0 = dhcp_req_at;
	CHECK(test_now >= t0 + 800);	/* ARP probing took 0.8 s */
	/* the server's MAC is known (it ARPed us before unicasting) */
	learn_neighbour(SERVER_MAC, SERVER);
	/* T1 = 50 s: unicast REQUEST with ciaddr, no requested-ip option */
	test_now = t0 + 49 * 1000;
	dhcp_timer(test_now);
	CHECK_EQ(test_ntx, 0);
	test_now = t0 + 50 * 1000;
	dhcp_timer(test_now);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 3);
	CHECK_EQ(s.ciaddr, ME);
	CHECK_EQ(s.reqip, 0);
	CHECK_EQ(s.server, 0);
	CHECK_EQ(s.ipdst, SERVER);
	CHECK(!memcmp(s.dstmac, SERVER_MAC, 6));
	uint32_t renew_xid = s.xid;
	/* retransmission after half the time to T2 (87.5 s) */
	test_now = t0 + 68 * 1000;
	learn_neighbour(SERVER_MAC, SERVER); /* (the old entry expired) */
	dhcp_timer(test_now);
	CHECK_EQ(test_ntx, 0);
	test_now = t0 + 69 * 1000;
	dhcp_timer(test_now);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.ipdst, SERVER);
	/* each retry is a new transaction: a late ACK to the old one is
	 * ignored (its lease would count from an older REQUEST) */
	CHECK(s.xid != renew_xid);
	uint8_t late[ETH_FRAME_MAX];
	eth_input(late, mk_dhcp(late, 5, renew_xid, ME, 100, NULL, 0, true));
	CHECK(!strstr(test_console, "DHCP: renewed"));
	/* T2: broadcast REQUEST (rebinding) */
	test_clear_tx();
	test_now = t0 + 87500;
	dhcp_timer(test_now);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 3);
	CHECK_EQ(s.ipdst, IP_BROADCAST);
	CHECK_EQ(s.ciaddr, ME);
	CHECK(dhcp_bound());
	CHECK_EQ(net_ip(), ME);
	/* an ACK a little later renews: the new lease counts from the
	 * REQUEST it answers */
	uint64_t t1 = test_now;
	test_now += 700;
	eth_input(f, mk_dhcp(f, 5, s.xid, ME, 100, NULL, 0, true));
	CHECK(strstr(test_console, "DHCP: renewed 10.0.0.5") != NULL);
	/* the lease runs out without answers: address dropped, DISCOVER */
	test_clear_tx();
	for (test_now = t1; test_now < t1 + 100 * 1000; test_now += 250)
		dhcp_timer(test_now);
	CHECK(dhcp_bound());
	dhcp_timer(test_now);
	CHECK(!dhcp_bound());
	CHECK_EQ(net_ip(), 0);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 1);
	CHECK(strstr(test_console, "DHCP: lease expired, restarting") != NULL);
}

static void test_dhcp_nak_and_release(void)
{
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	uint32_t xid = dhcp_to_bound(100, NULL, 0);
	(void)xid;
	learn_neighbour(SERVER_MAC, SERVER);
	test_now += 50 * 1000;
	dhcp_timer(test_now);
	CHECK(last_dhcp(&s));
	/* NAK while renewing: unconfigure and start over */
	eth_input(f, mk_dhcp(f, 6, s.xid, 0, 0, NULL, 0, true));
	CHECK(!dhcp_bound());
	CHECK_EQ(net_ip(), 0);
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 1);
	CHECK(strstr(test_console, "DHCP: NAK from server, restarting"));
	/* bind again, then stop: RELEASE unicast to the server */
	eth_input(f, mk_dhcp(f, 2, s.xid, ME, 100, NULL, 0, true));
	last_dhcp(&s);
	eth_input(f, mk_dhcp(f, 5, s.xid, ME, 100, NULL, 0, true));
	for (int i = 0; i < 3; i++) {	/* ARP probing */
		test_now += 400;
		dhcp_timer(test_now);
	}
	CHECK(dhcp_bound());
	learn_neighbour(SERVER_MAC, SERVER);
	dhcp_stop();
	CHECK(last_dhcp(&s));
	CHECK_EQ(s.type, 7);
	CHECK_EQ(s.ciaddr, ME);
	CHECK_EQ(s.server, SERVER);
	CHECK_EQ(s.ipdst, SERVER);
	CHECK(!dhcp_bound());
	/* stopped: offers are ignored */
	test_clear_tx();
	eth_input(f, mk_dhcp(f, 2, s.xid, ME, 100, NULL, 0, true));
	CHECK_EQ(test_ntx, 0);
}

/* Bound with this lease (s) and these options: quiet until t0 + before ms,
 * the renewing REQUEST at t0 + at ms. */
static void check_renewal(uint32_t lease, const uint8_t *opts, size_t n, uint64_t before, uint64_t at)
{
	dhcp_to_bound(lease, opts, n);
	uint64_t t0 = dhcp_req_at;	/* lease, T1 and T2 count from the REQUEST */
	learn_neighbour(SERVER_MAC, SERVER);
	test_now = t0 + before;
	dhcp_timer(test_now);
	CHECK_EQ(test_ntx, 0);
	test_now = t0 + at;
	dhcp_timer(test_now);
	CHECK_EQ(test_ntx, 1);
}

static void test_dhcp_lease_options(void)
{
	/* explicit T1/T2 are used */
	const uint8_t t12[] = { 58, 4, 0, 0, 0, 10, 59, 4, 0, 0, 0, 20 };
	check_renewal(100, t12, sizeof(t12), 9999, 10000);
	/* nonsense T1 > T2 > lease falls back to 50% / 87.5% */
	const uint8_t bad[] = { 58, 4, 0, 0, 1, 0, 59, 4, 0, 0, 0, 200 };
	check_renewal(100, bad, sizeof(bad), 43000, 50000);
	/* infinite lease: never renews */
	dhcp_to_bound(0xffffffffu, NULL, 0);
	learn_neighbour(SERVER_MAC, SERVER);
	test_now += 10ull * 365 * 24 * 3600 * 1000;
	dhcp_timer(test_now);
	CHECK_EQ(test_ntx, 0);
	CHECK(dhcp_bound());
	/* a short lease is used as given, never longer than the server
	 * lent it: 4 s is T1 2 s, T2 3.5 s, given up at 4 s */
	check_renewal(4, NULL, 0, 1999, 2000);
	uint64_t t0 = dhcp_req_at;
	test_now = t0 + 3999;
	dhcp_timer(test_now);
	CHECK(dhcp_bound() && net_ip() == ME);
	test_now = t0 + 4000;
	dhcp_timer(test_now);
	CHECK(!dhcp_bound() && net_ip() == 0);
	/* a 1 s lease: given up 1 s after the REQUEST, not 1 s after probing */
	dhcp_to_bound(1, NULL, 0);
	CHECK(dhcp_bound());
	test_now = dhcp_req_at + 1000;
	dhcp_timer(test_now);
	dhcp_timer(test_now);
	CHECK(!dhcp_bound() && net_ip() == 0);
	/* an ACK with a lease of 0 s is no lease: not bound */
	static const uint8_t zero_lease[] = { 51, 4, 0, 0, 0, 0 };
	uint8_t f[ETH_FRAME_MAX];
	struct seen s;
	dhcp_fresh_discover(&s);
	eth_input(f, mk_dhcp(f, 2, s.xid, ME, 100, NULL, 0, true));
	eth_input(f, mk_dhcp(f, 5, s.xid, ME, 0, zero_lease, sizeof(zero_lease), true));
	CHECK_EQ(rd16(last_tx()->data + 12), ETH_P_IPV4);	/* no probe */
	for (int i = 0; i < 4; i++) {
		test_now += 400;
		dhcp_timer(test_now);
	}
	CHECK(!dhcp_bound() && net_ip() == 0);
	/* a repeated option: the first instance wins */
	const uint8_t again[] = { 1, 4, 0xff, 0, 0, 0, 54, 4, 9, 9, 9, 9 };
	dhcp_to_bound(100, again, sizeof(again));
	CHECK_EQ(net_mask(), 0xffffff00u);
	/* a non-contiguous mask is not used: classful default instead */
	mk_mask = 0xff00ff00u;
	dhcp_to_bound(100, NULL, 0);
	CHECK_EQ(net_mask(), 0xff000000u);
	CHECK_EQ(net_gw(), GW);
	/* a router outside the subnet is not used */
	mk_mask = 0xfffffff0u;
	dhcp_to_bound(100, NULL, 0);
	CHECK_EQ(net_mask(), 0xfffffff0u);
	CHECK_EQ(net_gw(), GW);
	mk_mask = 0xfffffffcu; /* 10.0.0.4/30: the router 10.0.0.1 is off */
	dhcp_to_bound(100, NULL, 0);
	CHECK_EQ(net_gw(), 0);
	mk_mask = 0xffffff00u;
}

/* ---- main loop ---------------------------------------------------------- */
static void test_net_run_static(void)
{
	test_reset();
	test_netcfg.dhcp = false;
	test_netcfg.ip = ME;
	test_netcfg.mask = 0xffffff00u;
	test_netcfg.gw = GW;
	test_stop = true; /* returns at once, after configuring */
	net_run();
	CHECK_EQ(net_ip(), ME);
	CHECK(strstr(test_console, "net: mac 02:00:00:00:00:01, static"));
	CHECK(strstr(test_console, "net: rx 0 tx 1"));
	if (!strstr(test_console, "net: rx 0 tx 1"))
		fprintf(stderr, "%s", test_console);
}

/* ---- robustness: random frames never crash (sanitizers watch) --------- */
static void test_random_frames(void)
{
	uint8_t f[ETH_FRAME_MAX];
	uint64_t x = 88172645463325252ull;
	setup_static();
	dhcp_start();
	udp_bind(7777, udp_rx);
	learn_neighbour(PEER_MAC, PEER);
	for (int i = 0; i < 200000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t n = (size_t)(x % sizeof(f));
		/* start from a valid-looking frame, then flip bytes */
		size_t kind = (x >> 20) % 4;
		size_t base;
		if (kind == 0)
			base = mk_echo(f, PEER, ME, 20, 40);
		else if (kind == 1)
			base = mk_arp(f, 1, PEER_MAC, PEER, NULL, ME, eth_broadcast);
		else if (kind == 2)
			base = mk_dhcp(f, 2, 0, ME, 120, NULL, 0, true);
		else
			base = mk_udp(f, PEER_MAC, PEER, 1, ME, 7777, "x", 1, true);
		if (n < base && (x & 1))
			n = base;
		for (int k = 0; k < 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			f[(x >> 8) % (n ? n : 1)] = (uint8_t)(x >> 40);
		}
		memcpy(f, ME_MAC, 6);
		eth_input(f, n);
		if (i % 1000 == 0) {
			test_now += 700;
			arp_timer(test_now);
			dhcp_timer(test_now);
			test_clear_tx();
		}
	}
	CHECK(1);
}

int main(void)
{
#define RUN(t)                                   \
	do {                                     \
		int f0 = failures;               \
		t();                             \
		printf("%s %s\n", failures == f0 ? "ok  " : "FAIL", #t); \
	} while (0)
	test_reset();
	RUN(test_fmt);
	RUN(test_checksum);
	RUN(test_eth_drops);
	RUN(test_arp_reply);
	RUN(test_arp_resolve_queue_expiry);
	RUN(test_arp_cache_full);
	RUN(test_arp_refresh);
	RUN(test_icmp_echo);
	RUN(test_ipv4_drops);
	RUN(test_ipv4_reassembly);
	RUN(test_arp_churn_keeps_resolved_and_gateway);
	RUN(test_dhcp_probe_conflict_declines);
	RUN(test_arp_conflict_defend_then_give_up);
	RUN(test_ipv4_routing);
	RUN(test_udp);
	RUN(test_dhcp_exchange);
	RUN(test_dhcp_ignores_bogus);
	RUN(test_dhcp_retransmit_backoff);
	RUN(test_dhcp_renew_rebind_expire);
	RUN(test_dhcp_nak_and_release);
	RUN(test_dhcp_lease_options);
	RUN(test_net_run_static);
	RUN(test_random_frames);
	printf("%d checks, %d failures\n", checks, failures);
	return failures ? 1 : 0;
}
