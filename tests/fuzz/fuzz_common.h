/*
 * fuzz_common.h - shared by the libFuzzer harnesses in this directory.
 *
 * Every harness links the whole stack of a network app (core/ sources) over
 * tests/c/plat_test.c, with an HTTP server on port 80 whose handler does
 * what auth and www do (query decoding, kv lookups, PBKDF2).
 *
 * Random bytes rarely carry valid checksums, a DHCP transaction id or the
 * sequence numbers of a live TCP connection, so a per-frame control byte
 * lets the fuzzer ask the harness to patch those in (or not: bad ones are
 * fuzzed too).
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_IP 0x0a000002u	/* 10.0.0.2/24, gateway 10.0.0.1 */
#define FUZZ_MASK 0xffffff00u
#define FUZZ_GW 0x0a000001u
#define FUZZ_PEER 0x0a000001u	/* the gateway, in our ARP cache */

#define CTL_FIX_CSUM 0x01	/* recompute IPv4/ICMP/UDP/TCP checksums */
#define CTL_TO_US 0x02		/* destination MAC and IP := ours */
#define CTL_DHCP_XID 0x04	/* xid and chaddr := those of our last DHCP */
#define CTL_TCP_SEQ 0x08	/* seq/ack := continue our last segment */
/* bits 4-7: advance the clock by that many * 250 ms, then run timers */

/* Reset platform and stack; static address or DHCP (SELECTING). */
void fuzz_setup(int use_dhcp);
/* Apply ctl to an IPv4-in-Ethernet frame in place. */
void fuzz_fixup_frame(uint8_t ctl, uint8_t *f, size_t len);
/* Same for a bare TCP segment from src to us. */
void fuzz_fixup_tcp(uint8_t ctl, uint32_t src, uint8_t *seg, size_t len);
void fuzz_tick(uint8_t ctl);
/* The next record [ctl][len:2][bytes] of an input, from offset *pos: sets
 * *ctl, copies its bytes (at most cap; a length past the input's end stops
 * at the end) into buf and sets *len, moves *pos past it. 0: no record left. */
int fuzz_next_record(const uint8_t *data, size_t size, size_t *pos, uint8_t *ctl,
		     uint8_t *buf, size_t cap, size_t *len);
/* An ARP request from ip (with mac) for FUZZ_IP: the stack caches the peer
 * (and queues its reply). */
void fuzz_learn_peer(uint32_t ip, const uint8_t mac[6]);
/* TCP from FUZZ_PEER, with a correct checksum. */
void fuzz_tcp_segment(uint16_t sport, uint16_t dport, uint32_t seq,
		      uint32_t ack, uint8_t flags, const uint8_t *data, size_t n);
int fuzz_tcp_connect(uint16_t sport, uint16_t dport, uint32_t irs, uint32_t *ack);
uint32_t fuzz_tcp_sent_upto(uint32_t cur);

#endif
