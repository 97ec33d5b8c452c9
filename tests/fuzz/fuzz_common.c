/* fuzz_common.c - see fuzz_common.h */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "../c/plat_test.h"
#include "http.h"
#include "kv.h"
#include "net.h"
#include "sha256.h"
#include "tcp.h"

/* Table as appdata.py would generate it: a user record (2 iterations,
 * so fuzzing stays fast) and two files. */
#ifndef APP_PORT /* fuzz_app.c links the real app and its packed data */
static const uint8_t rec[52] = { 0, 0, 0, 2, 's', 'a', 'l', 't' };
static const uint8_t idx[] = "<h1>Hello Mirage World!</h1>";
static const uint8_t css[] = "h1{}";
const struct kv_entry kv_table[] = {
	{ "/index.html", 11, idx, sizeof(idx) - 1, "text/html" },
	{ "/style.css", 10, css, sizeof(css) - 1, "text/css" },
	{ "user/mirage", 11, rec, sizeof(rec), NULL },
};
const size_t kv_count = 3;
#endif

static void set_csum(uint8_t *field, const uint8_t *p, size_t n, uint32_t sum);
static const uint8_t *last_sent(uint8_t proto, size_t *l4len);
static void trim_tx(void);

static void handler(const struct http_req *req, struct http_resp *rs)
{
	char user[66], pw[258], path[300];
	size_t ul = 0, pl = 0;
	long n;

	if (req->query) {
		int u = http_query_get(req->query, req->query_len, "user", user, sizeof(user), &ul);
		int p = http_query_get(req->query, req->query_len, "password", pw, sizeof(pw), &pl);
		if (u == 1 && p == 1) {
			char key[80] = "user/";
			const struct kv_entry *e = NULL;
			uint8_t dk[32];
			if (ul <= 64) {
				memcpy(key + 5, user, ul);
				e = kv_get(key, 5 + ul);
			}
			if (e && e->vallen == 52) {
				pbkdf2_sha256(pw, pl, e->val + 4, 16, rd32(e->val), dk, 32);
				if (ct_memcmp(dk, e->val + 20, 32) == 0) {
					rs->len = (size_t)fmt(rs->buf, sizeof(rs->buf), "hello %s!\n", user);
					rs->body = rs->buf;
					return;
				}
			}
			rs->status = 401;
			rs->body = "Invalid login\n";
			rs->len = 14;
			return;
		}
	}
	n = http_pct_decode(req->path, req->path_len, path, 256, false);
	if (n > 0) {
		const struct kv_entry *e;
		if (path[n - 1] == '/') {
			memcpy(path + n, "index.html", 11);
			n += 10;
		}
		e = kv_get(path, (size_t)n);
		if (e) {
			rs->ctype = e->meta;
			rs->body = e->val;
			rs->len = e->vallen;
			return;
		}
	}
	rs->status = 404;
	rs->body = "Not Found\n";
	rs->len = 10;
}

void fuzz_setup(int use_dhcp)
{
	static bool debug_checked, debug;

	if (!debug_checked) {
		debug = getenv("FUZZ_DEBUG") != NULL;
		debug_checked = true;
	}
	if (debug)	/* what the previous input reached */
		fprintf(stderr, "fuzz: ip %08x tcp in %u out %u accepts %u rst %u "
			"cookies %u/%u recycled %u conns %d "
			"http requests %u responses %u errors %u\n",
			net_ip(), tcp_stats.in_segs, tcp_stats.out_segs,
			tcp_stats.accepts, tcp_stats.rst_sent,
			tcp_stats.cookies_sent, tcp_stats.cookies_ok,
			tcp_stats.recycled, tcp_conn_count(),
			http_stats.requests, http_stats.responses, http_stats.errors);
	if (debug)	/* and its console (the DHCP states passed through) */
		fprintf(stderr, "fuzz: console:\n%s", test_console);
	memset(&http_stats, 0, sizeof(http_stats));
	test_reset();
	tcp_reset();
	net_init();
	http_serve(80, handler);
	if (use_dhcp) {
		dhcp_start();
	} else {
		/* Static address, and the peer 10.0.0.1 in the ARP cache
		 * (learnt from its request) so our replies leave at once. */
		static const uint8_t peer_mac[ETH_ALEN] = { 2, 0, 0, 0, 0, 2 };

		dhcp_stop();
		net_configure(FUZZ_IP, FUZZ_MASK, FUZZ_GW);
		fuzz_learn_peer(FUZZ_PEER, peer_mac);
		test_clear_tx();
	}
}

/* An ARP request from ip/mac for our address: the stack learns the peer. */
void fuzz_learn_peer(uint32_t ip, const uint8_t mac[6])
{
	uint8_t f[ETH_HLEN + 28];

	memset(f, 0xff, ETH_ALEN);
	memcpy(f + 6, mac, ETH_ALEN);
	wr16(f + 12, ETH_P_ARP);
	wr16(f + 14, 1);
	wr16(f + 16, ETH_P_IPV4);
	f[18] = 6;
	f[19] = 4;
	wr16(f + 20, 1);
	memcpy(f + 22, mac, ETH_ALEN);
	wr32(f + 28, ip);
	memset(f + 32, 0, ETH_ALEN);
	wr32(f + 38, FUZZ_IP);
	eth_input(f, sizeof(f));
}

/* Build a TCP segment from FUZZ_PEER:sport to us:dport and feed it. */
void fuzz_tcp_segment(uint16_t sport, uint16_t dport, uint32_t seq,
		      uint32_t ack, uint8_t flags, const uint8_t *data, size_t n)
{
	static uint8_t seg[20 + 65536];

	if (n > sizeof(seg) - 20)
		n = sizeof(seg) - 20;
	memset(seg, 0, 20);
	wr16(seg, sport);
	wr16(seg + 2, dport);
	wr32(seg + 4, seq);
	wr32(seg + 8, ack);
	seg[12] = 5 << 4;
	seg[13] = flags;
	wr16(seg + 14, 65535);
	if (n)
		memcpy(seg + 20, data, n);
	set_csum(seg + 16, seg, 20 + n,
		 inet_pseudo(FUZZ_PEER, FUZZ_IP, IP_PROTO_TCP, (uint16_t)(20 + n)));
	trim_tx();
	tcp_input(FUZZ_PEER, FUZZ_IP, seg, 20 + n);
}

/* Handshake from sport; returns 0 and our ISS + 1 in *ack. */
int fuzz_tcp_connect(uint16_t sport, uint16_t dport, uint32_t irs, uint32_t *ack)
{
	size_t ol;
	const uint8_t *o;

	test_clear_tx();
	fuzz_tcp_segment(sport, dport, irs, 0, 0x02, NULL, 0);
	o = last_sent(IP_PROTO_TCP, &ol);
	if (!o || ol < 20 || o[13] != 0x12)
		return -1;
	*ack = rd32(o + 4) + 1;
	fuzz_tcp_segment(sport, dport, irs + 1, *ack, 0x10, NULL, 0);
	return 0;
}

/* Highest sequence number we sent + 1 (what the peer would ACK). */
uint32_t fuzz_tcp_sent_upto(uint32_t cur)
{
	int i;

	for (i = 0; i < test_ntx; i++) {
		const uint8_t *f = test_tx[i].data, *t;
		size_t len = test_tx[i].len, ihl, tl, thl;
		uint32_t end;
		if (len < ETH_HLEN + IP_HLEN + 20 || rd16(f + 12) != ETH_P_IPV4 ||
		    f[ETH_HLEN + 9] != IP_PROTO_TCP)
			continue;
		ihl = (size_t)(f[ETH_HLEN] & 15) * 4;
		tl = rd16(f + ETH_HLEN + 2);
		if (ihl < IP_HLEN || tl < ihl || ETH_HLEN + tl > len)
			continue;
		t = f + ETH_HLEN + ihl;
		tl -= ihl;
		thl = (size_t)(t[12] >> 4) * 4;
		if (tl < 20 || thl > tl)
			continue;
		end = rd32(t + 4) + (uint32_t)(tl - thl) + ((t[13] & 1) ? 1 : 0);
		if ((int32_t)(end - cur) > 0)
			cur = end;
	}
	return cur;
}

/* plat_test keeps 64 frames and shifts them all for every new one when
 * full, which would dominate the fuzzing time: keep it short instead. */
static void trim_tx(void)
{
	if (test_ntx > TEST_TX_MAX / 2) {
		memmove(test_tx, test_tx + test_ntx - 4, 4 * sizeof(test_tx[0]));
		test_ntx = 4;
	}
}

int fuzz_next_record(const uint8_t *data, size_t size, size_t *pos, uint8_t *ctl,
		     uint8_t *buf, size_t cap, size_t *len)
{
	size_t i = *pos, n;

	if (i > size || size - i < 3)
		return 0;
	*ctl = data[i];
	n = rd16(data + i + 1);
	i += 3;
	if (n > size - i)
		n = size - i;
	*len = n < cap ? n : cap;
	memcpy(buf, data + i, *len);
	*pos = i + n;
	return 1;
}

void fuzz_tick(uint8_t ctl)
{
	trim_tx();
	unsigned steps = ctl >> 4;

	if (!steps)
		return;
	test_now += (uint64_t)steps * 250;
	arp_timer(test_now);
	dhcp_timer(test_now);
	tcp_timer(test_now);
}

static void set_csum(uint8_t *field, const uint8_t *p, size_t n, uint32_t sum)
{
	wr16(field, 0);
	wr16(field, inet_fold(inet_sum(p, n, sum)));
}

/* The newest frame we sent that is IPv4 with protocol proto, or NULL. */
static const uint8_t *last_sent(uint8_t proto, size_t *l4len)
{
	int i;

	for (i = test_ntx - 1; i >= 0; i--) {
		const uint8_t *f = test_tx[i].data;
		size_t len = test_tx[i].len, ihl, tot;
		if (len < ETH_HLEN + IP_HLEN || rd16(f + 12) != ETH_P_IPV4 ||
		    f[ETH_HLEN + 9] != proto)
			continue;
		ihl = (size_t)(f[ETH_HLEN] & 15) * 4;
		tot = rd16(f + ETH_HLEN + 2);	/* frames are padded to 60 */
		if (ihl < IP_HLEN || tot < ihl || ETH_HLEN + tot > len)
			continue;
		*l4len = tot - ihl;
		return f + ETH_HLEN + ihl;
	}
	return NULL;
}

void fuzz_fixup_tcp(uint8_t ctl, uint32_t src, uint8_t *seg, size_t len)
{
	size_t ol;
	const uint8_t *o;

	if (len < 20)
		return;
	if ((ctl & CTL_TCP_SEQ) && (o = last_sent(IP_PROTO_TCP, &ol)) && ol >= 20) {
		size_t ohl = (size_t)(o[12] >> 4) * 4;
		uint32_t next = rd32(o + 4) + (uint32_t)(ol > ohl ? ol - ohl : 0) +
				((o[13] & 0x02) ? 1 : 0) + ((o[13] & 0x01) ? 1 : 0);
		/* The fuzzer's seq/ack become small offsets from the live
		 * values, so both sides of the window get explored. */
		wr32(seg + 4, rd32(o + 8) + (uint32_t)(int8_t)seg[7]);
		wr32(seg + 8, next + (uint32_t)(int8_t)seg[11]);
		wr16(seg, rd16(o + 2));	/* their port = our last peer's */
		wr16(seg + 2, rd16(o));
	}
	if (ctl & CTL_FIX_CSUM)
		set_csum(seg + 16, seg, len,
			 inet_pseudo(src, FUZZ_IP, IP_PROTO_TCP, (uint16_t)len));
}

void fuzz_fixup_frame(uint8_t ctl, uint8_t *f, size_t len)
{
	uint8_t *ip, *l4;
	size_t ihl, tot, l4len;
	uint32_t src, dst;

	if (len < ETH_HLEN)
		return;
	if (ctl & CTL_TO_US)
		memcpy(f, test_mac, ETH_ALEN);
	if (rd16(f + 12) != ETH_P_IPV4 || len < ETH_HLEN + IP_HLEN)
		return;
	ip = f + ETH_HLEN;
	ihl = (size_t)(ip[0] & 15) * 4;
	tot = rd16(ip + 2);
	if (ihl < IP_HLEN || ETH_HLEN + ihl > len)
		return;
	if (tot < ihl || ETH_HLEN + tot > len)
		tot = len - ETH_HLEN;
	if (ctl & CTL_TO_US) {
		if (net_ip())
			wr32(ip + 16, net_ip());
		ip[0] = (uint8_t)(0x40 | (ip[0] & 15));
		wr16(ip + 2, (uint16_t)tot);
		wr16(ip + 6, 0);	/* no fragments */
	}
	l4 = ip + ihl;
	l4len = tot - ihl;
	src = rd32(ip + 12);
	dst = rd32(ip + 16);
	if ((ctl & CTL_DHCP_XID) && ip[9] == IP_PROTO_UDP && l4len >= 8 + 34) {
		size_t ol;
		const uint8_t *o = last_sent(IP_PROTO_UDP, &ol);
		if (o && ol >= 8 + 34 && rd16(o) == 68) {
			memcpy(l4 + 8 + 4, o + 8 + 4, 4);		/* xid */
			memcpy(l4 + 8 + 28, o + 8 + 28, ETH_ALEN);	/* chaddr */
			wr16(l4, 67);
			wr16(l4 + 2, 68);
		}
	}
	if (ctl & CTL_FIX_CSUM) {
		switch (ip[9]) {
		case IP_PROTO_TCP:
			if (ctl & CTL_TCP_SEQ)
				fuzz_fixup_tcp(ctl & CTL_TCP_SEQ, src, l4, l4len);
			if (l4len >= 20)
				set_csum(l4 + 16, l4, l4len,
					 inet_pseudo(src, dst, IP_PROTO_TCP, (uint16_t)l4len));
			break;
		case IP_PROTO_UDP:
			if (l4len >= 8) {
				wr16(l4 + 4, (uint16_t)l4len);
				set_csum(l4 + 6, l4, l4len,
					 inet_pseudo(src, dst, IP_PROTO_UDP, (uint16_t)l4len));
			}
			break;
		case IP_PROTO_ICMP:
			if (l4len >= 4)
				set_csum(l4 + 2, l4, l4len, 0);
			break;
		}
		set_csum(ip + 10, ip, ihl, 0);
	}
}
