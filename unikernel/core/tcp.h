/*
 * tcp.h - a small TCP (RFC 9293) for servers: passive open only.
 *
 * Fixed table of connections, in-order receive (out-of-order segments are
 * dropped and re-ACKed), MSS option, retransmission with RTO (RFC 6298)
 * and exponential backoff, FIN both ways, RST, TIME-WAIT, window
 * advertisement from the app's free space and respect of the peer's
 * window, RFC 5961 checks against blind RST/SYN/data, RFC 6528 ISNs.
 * Resources: at most TCP_PER_SOURCE connections per remote address and
 * TCP_HALF_OPEN_MAX half-open ones (further SYNs get a SYN cookie and no
 * state); a full table recycles TIME-WAIT, then the least recently heard
 * connection of the address holding most; every state times out. No window scaling,
 * SACK or timestamps; no congestion control beyond the peer's window
 * (the stack serves a LAN).
 *
 * The app works with callbacks; every callback runs from tcp_input or
 * tcp_timer, and data the app queues with tcp_send goes out when the
 * callback returns (so a response rides on the ACK of its request).
 */
#ifndef TCP_H
#define TCP_H

#include "rt.h"

#ifndef TCP_MAX_CONN
#define TCP_MAX_CONN 64
#endif
#ifndef TCP_SNDBUF
#define TCP_SNDBUF 8192		/* per connection send buffer */
#endif
#define TCP_MAX_LISTEN 4
#define TCP_MSS 1460		/* ours: Ethernet MTU - 40 */
#define TCP_MIN_MSS 64		/* floor for the peer's MSS option */
#define TCP_DEFAULT_MSS 536	/* peer sent no MSS option */
#define TCP_RTO_INIT_MS 1000
#define TCP_RTO_MIN_MS 200
#define TCP_RTO_MAX_MS 60000
#define TCP_MAX_RETRIES 8	/* then the connection is aborted */
#define TCP_SYN_RETRIES 4	/* SYN-ACK retransmissions */
#define TCP_TIME_WAIT_MS 10000	/* short 2*MSL: one LAN, no stale segments */
#define TCP_FIN_WAIT2_MS 30000
#define TCP_IDLE_MS 300000	/* nothing heard for this long: abort, any state */
#ifndef TCP_PER_SOURCE
/* Connections per remote address: one client (or a NAT full of them) may
 * use most of the table, never all of it; under pressure the biggest
 * holder's least recently heard connection is recycled first. */
#define TCP_PER_SOURCE (TCP_MAX_CONN * 7 / 8)
#endif
#define TCP_HALF_OPEN_MAX (TCP_MAX_CONN / 4)	/* more SYNs: answered with cookies */
#define TCP_COOKIE_SLOT_MS 64000	/* a SYN cookie is valid 64-128 s */
#define TCP_CHALLENGE_PER_S 10	/* RFC 5961 7 rate limit */
#define TCP_COOKIE_WND 2048	/* window offered by a cookie SYN-ACK */

enum tcp_state {
	TCP_CLOSED = 0,
	TCP_SYN_RCVD,
	TCP_ESTABLISHED,
	TCP_FIN_WAIT_1,
	TCP_FIN_WAIT_2,
	TCP_CLOSING,
	TCP_TIME_WAIT,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
};

struct tcp_conn;

struct tcp_ops {
	/* Three-way handshake done. */
	void (*accept)(struct tcp_conn *c);
	/* In-order data; returns how many bytes it took (the rest is not
	 * ACKed and comes again). n == 0: the peer sent FIN. */
	size_t (*recv)(struct tcp_conn *c, const uint8_t *p, size_t n);
	/* Some of our data was ACKed: there is send space again. */
	void (*sent)(struct tcp_conn *c);
	/* The connection died (RST, retransmission timeout): forget c. Not
	 * called after the app's own tcp_close/tcp_abort. */
	void (*closed)(struct tcp_conn *c);
	/* Called from tcp_timer for each connection the app holds. */
	void (*poll)(struct tcp_conn *c, uint64_t now_ms);
	/* Free receive space, advertised as the window (NULL: 65535). */
	size_t (*rcv_space)(struct tcp_conn *c);
};

struct tcp_conn {
	enum tcp_state state;
	const struct tcp_ops *ops;	/* NULL once the app closed */
	void *arg;			/* the app's per-connection state */
	uint32_t rip, lip;		/* remote/local address */
	uint16_t rport, lport;

	/* send side (RFC 9293 names) */
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2;
	uint32_t max_snd_wnd;		/* largest window the peer offered (RFC 5961 5.2) */
	uint16_t mss;			/* effective segment size */
	bool fin_queued, fin_sent;
	uint8_t sndbuf[TCP_SNDBUF];	/* ring; byte at sb_head is snd_una */
	size_t sb_head, sb_len;

	/* receive side */
	uint32_t irs, rcv_nxt, rcv_adv;	/* rcv_adv: right edge we advertised */
	bool ack_now;

	/* timers (ms, 0 = off) */
	uint64_t rtx_at, tw_at, last_rx;
	uint32_t rto, srtt, rttvar;	/* ms */
	bool have_rtt;			/* srtt/rttvar hold a sample */
	bool fin_acked;
	uint32_t rtt_seq;
	uint64_t rtt_start;		/* 0: no RTT measurement running */
	uint8_t retries;
	bool out_pending;		/* tcp_send queued data to flush */
};

struct tcp_stats {
	uint32_t in_segs, out_segs, bad_csum, bad_seg, rst_sent, rst_rcvd;
	uint32_t retrans, ooo_dropped, out_of_window, accepts, aborts;
	uint32_t table_full, recycled, cookies_sent, cookies_ok, idle_aborts;
	uint32_t per_source_refused, challenge_acks, challenge_limited;
};
extern struct tcp_stats tcp_stats;

/* Listen on port; 0 ok, <0 when the listener table is full. */
int tcp_listen(uint16_t port, const struct tcp_ops *ops);
/* Queue up to n bytes; returns how many were queued (0 when full or the
 * connection can no longer send). */
size_t tcp_send(struct tcp_conn *c, const void *p, size_t n);
size_t tcp_send_space(const struct tcp_conn *c);
/* Send queued data now (outside callbacks; callbacks need not call it). */
void tcp_output(struct tcp_conn *c);
/* Orderly close: FIN after the queued data. The app must not touch c
 * afterwards and gets no more callbacks. */
void tcp_close(struct tcp_conn *c);
/* Abortive close: send RST and free c. */
void tcp_abort(struct tcp_conn *c);
/* The app freed receive space: send a window update when it matters. */
void tcp_recved(struct tcp_conn *c);

/* Forget all connections and listeners (tests, fuzzers). */
void tcp_reset(void);
int tcp_conn_count(void);
int tcp_conn_index(const struct tcp_conn *c);

/* Modular sequence comparisons. */
#define SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define SEQ_GT(a, b) SEQ_LT(b, a)
#define SEQ_GEQ(a, b) SEQ_LEQ(b, a)

/* Declared in net.h too: entry from ipv4.c and the main loop. */
void tcp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len);
void tcp_timer(uint64_t now_ms);

#endif
