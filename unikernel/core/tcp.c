/*
 * tcp.c - passive-open TCP after RFC 9293, RTO after RFC 6298, blind
 * attack checks after RFC 5961. See tcp.h for what is (not) implemented.
 *
 * Send side: each connection has a ring buffer; its first byte is always
 * snd_una. snd_nxt - snd_una bytes of it are in flight; a FIN, once
 * queued, follows the last byte (so the FIN's sequence number is
 * snd_una + sb_len). On RTO we go back to snd_una and send again.
 */
#include "net.h"
#include "platform.h"
#include "tcp.h"
#include "csprng.h"

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

#define TCP_HLEN 20
#define TCP_OPT_MSS_LEN 4

struct tcp_stats tcp_stats;

static struct tcp_conn conns[TCP_MAX_CONN];
static struct {
	uint16_t port;
	const struct tcp_ops *ops;
} listeners[TCP_MAX_LISTEN];

/* Per-boot secret of the RFC 6528 ISN function, drawn on first use. */
static uint8_t isn_key[32], cookie_key[32];
static bool have_keys;

static void need_keys(void)
{
	if (!have_keys) {
		plat_random(isn_key, sizeof(isn_key));
		plat_random(cookie_key, sizeof(cookie_key));
		have_keys = true;
	}
}

/* RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, key),
 * M a 4-microsecond clock (from our millisecond one), F a keyed ChaCha20
 * hash: every 4-tuple gets its own unpredictable sequence space. */
static uint32_t isn_for(uint32_t lip, uint16_t lport, uint32_t rip,
			uint16_t rport)
{
	need_keys();
	return csprng_hash32(isn_key, lip, rip, (uint32_t)lport << 16 | rport, 0) +
	       (uint32_t)(net_now_ms() * 250);
}

/* One outgoing segment at a time: header, MSS option, payload. */
static uint8_t obuf[TCP_HLEN + TCP_OPT_MSS_LEN + TCP_MSS];

static void free_conn(struct tcp_conn *c, bool notify)
{
	const struct tcp_ops *ops = c->ops;

	c->ops = NULL;
	c->state = TCP_CLOSED;
	if (notify && ops && ops->closed)
		ops->closed(c);
	memset(c, 0, sizeof(*c));
}

void tcp_reset(void)
{
	memset(conns, 0, sizeof(conns));
	memset(listeners, 0, sizeof(listeners));
	memset(&tcp_stats, 0, sizeof(tcp_stats));
}

int tcp_conn_count(void)
{
	int i, n = 0;

	for (i = 0; i < TCP_MAX_CONN; i++)
		n += conns[i].state != TCP_CLOSED;
	return n;
}

int tcp_conn_index(const struct tcp_conn *c)
{
	return (int)(c - conns);
}

int tcp_listen(uint16_t port, const struct tcp_ops *ops)
{
	int i;

	for (i = 0; i < TCP_MAX_LISTEN; i++) {
		if (!listeners[i].ops || listeners[i].port == port) {
			listeners[i].port = port;
			listeners[i].ops = ops;
			return 0;
		}
	}
	return -1;
}

/* ---- Output ------------------------------------------------------------- */

/* Build and send one segment. Payload: n bytes at offset off of c's send
 * ring (c may be NULL when n == 0). */
static void xmit(uint32_t dst, uint16_t sport, uint16_t dport, uint32_t seq,
		 uint32_t ack, uint8_t flags, uint16_t wnd, uint16_t mss_opt,
		 const struct tcp_conn *c, size_t off, size_t n)
{
	size_t hlen = TCP_HLEN + (mss_opt ? TCP_OPT_MSS_LEN : 0);
	uint8_t *p = obuf;

	if (n > TCP_MSS)
		return;
	wr16(p, sport);
	wr16(p + 2, dport);
	wr32(p + 4, seq);
	wr32(p + 8, (flags & TH_ACK) ? ack : 0);
	p[12] = (uint8_t)((hlen / 4) << 4);
	p[13] = flags;
	wr16(p + 14, wnd);
	wr16(p + 16, 0);
	wr16(p + 18, 0);
	if (mss_opt) {
		p[20] = 2; /* kind MSS */
		p[21] = 4;
		wr16(p + 22, mss_opt);
	}
	if (n) {
		/* Copy out of the ring, in at most two pieces. */
		size_t start = (c->sb_head + off) % TCP_SNDBUF;
		size_t first = MIN(n, TCP_SNDBUF - start);
		memcpy(p + hlen, c->sndbuf + start, first);
		if (first < n)
			memcpy(p + hlen + first, c->sndbuf, n - first);
	}
	wr16(p + 16, inet_fold(inet_sum(p, hlen + n,
		inet_pseudo(net_ip(), dst, IP_PROTO_TCP, (uint16_t)(hlen + n)))));
	tcp_stats.out_segs++;
	ipv4_output(dst, IP_PROTO_TCP, p, hlen + n);
}

/* RST in reply to a segment that has no connection (RFC 9293 3.10.7.1). */
static void send_rst_reply(uint32_t src, uint16_t sport, uint16_t dport,
			   uint32_t seq, uint32_t ack, uint8_t flags,
			   size_t seglen)
{
	if (flags & TH_RST)
		return;
	tcp_stats.rst_sent++;
	if (flags & TH_ACK)
		xmit(src, dport, sport, ack, 0, TH_RST, 0, 0, NULL, 0, 0);
	else
		xmit(src, dport, sport, 0, seq + (uint32_t)seglen,
		     TH_RST | TH_ACK, 0, 0, NULL, 0, 0);
}

/* The window to advertise now. It never shrinks below what we already
 * promised (rcv_adv); data the app cannot take is simply not ACKed. */
static uint16_t rcv_window(struct tcp_conn *c)
{
	size_t space = 65535;
	uint32_t edge;

	if (c->ops && c->ops->rcv_space)
		space = c->ops->rcv_space(c);
	if (space > 65535)
		space = 65535;
	edge = c->rcv_nxt + (uint32_t)space;
	if (SEQ_LT(edge, c->rcv_adv))
		edge = c->rcv_adv;
	c->rcv_adv = edge;
	return (uint16_t)(edge - c->rcv_nxt);
}

static void arm_rtx(struct tcp_conn *c)
{
	if (!c->rtx_at)
		c->rtx_at = net_now_ms() + c->rto;
}

static void send_ack(struct tcp_conn *c)
{
	xmit(c->rip, c->lport, c->rport, c->snd_nxt, c->rcv_nxt, TH_ACK,
	     rcv_window(c), 0, NULL, 0, 0);
	c->ack_now = false;
}

static bool can_send_data(const struct tcp_conn *c)
{
	switch (c->state) {
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
	case TCP_FIN_WAIT_1:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		return true;
	default:
		return false;
	}
}

/* Send what the peer's window allows, the FIN when its turn comes, or a
 * bare ACK when one is owed. */
void tcp_output(struct tcp_conn *c)
{
	c->out_pending = false;
	if (c->state == TCP_CLOSED)
		return;
	if (c->state == TCP_SYN_RCVD) {
		if (c->snd_nxt == c->iss) {
			xmit(c->rip, c->lport, c->rport, c->iss, c->rcv_nxt,
			     TH_SYN | TH_ACK, rcv_window(c), TCP_MSS, NULL, 0, 0);
			c->snd_nxt = c->iss + 1;
			if (SEQ_GT(c->snd_nxt, c->snd_max))
				c->snd_max = c->snd_nxt;
			arm_rtx(c);
			c->ack_now = false;
		} else if (c->ack_now) {
			send_ack(c);
		}
		return;
	}
	while (can_send_data(c)) {
		uint32_t off = c->snd_nxt - c->snd_una;
		uint32_t wnd_end = c->snd_una + c->snd_wnd;
		size_t unsent, usable, n;
		uint8_t flags = TH_ACK;

		if (off > c->sb_len)	/* FIN already sent */
			break;
		unsent = c->sb_len - off;
		usable = SEQ_GT(wnd_end, c->snd_nxt) ? wnd_end - c->snd_nxt : 0;
		n = MIN(MIN(unsent, usable), c->mss);
		if (c->fin_queued && !c->fin_sent && off + n == c->sb_len)
			flags |= TH_FIN;
		if (n == 0 && !(flags & TH_FIN)) {
			/* Data waits for a window: the persist timer
			 * (rtx_at with nothing in flight) probes it. */
			if (unsent && c->snd_max == c->snd_una)
				arm_rtx(c);
			break;
		}
		if (n && off + n == c->sb_len)
			flags |= TH_PSH;
		xmit(c->rip, c->lport, c->rport, c->snd_nxt, c->rcv_nxt, flags,
		     rcv_window(c), 0, c, off, n);
		c->ack_now = false;
		/* Time one segment at a time, never a retransmission (Karn). */
		if (!c->rtt_start && n && c->snd_nxt == c->snd_max) {
			c->rtt_start = net_now_ms();
			c->rtt_seq = c->snd_nxt + (uint32_t)n;
		}
		c->snd_nxt += (uint32_t)n + ((flags & TH_FIN) ? 1 : 0);
		if (flags & TH_FIN)
			c->fin_sent = true;
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		arm_rtx(c);
		if (flags & TH_FIN)
			break;
	}
	if (c->ack_now)
		send_ack(c);
}

size_t tcp_send_space(const struct tcp_conn *c)
{
	if (!can_send_data(c) || c->fin_queued)
		return 0;
	return TCP_SNDBUF - c->sb_len;
}

size_t tcp_send(struct tcp_conn *c, const void *data, size_t n)
{
	const uint8_t *p = data;
	size_t space = tcp_send_space(c), tail, first;

	if (n > space)
		n = space;
	if (!n)
		return 0;
	tail = (c->sb_head + c->sb_len) % TCP_SNDBUF;
	first = MIN(n, TCP_SNDBUF - tail);
	memcpy(c->sndbuf + tail, p, first);
	if (first < n)
		memcpy(c->sndbuf, p + first, n - first);
	c->sb_len += n;
	c->out_pending = true;
	return n;
}

void tcp_close(struct tcp_conn *c)
{
	c->ops = NULL;
	c->arg = NULL;
	switch (c->state) {
	case TCP_ESTABLISHED:
		c->state = TCP_FIN_WAIT_1;
		break;
	case TCP_CLOSE_WAIT:
		c->state = TCP_LAST_ACK;
		break;
	case TCP_SYN_RCVD:
		tcp_abort(c);
		return;
	default:
		return;	/* already closing */
	}
	c->fin_queued = true;
	c->out_pending = true;
}

void tcp_abort(struct tcp_conn *c)
{
	if (c->state == TCP_CLOSED)
		return;
	tcp_stats.rst_sent++;
	xmit(c->rip, c->lport, c->rport, c->snd_nxt, c->rcv_nxt,
	     TH_RST | TH_ACK, 0, 0, NULL, 0, 0);
	free_conn(c, false);
}

void tcp_recved(struct tcp_conn *c)
{
	size_t space, cur;

	if (c->state == TCP_CLOSED || !c->ops || !c->ops->rcv_space)
		return;
	space = c->ops->rcv_space(c);
	cur = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	/* Tell the peer once the window grew by a segment (or opened). */
	if (space > cur + c->mss || (cur == 0 && space > 0)) {
		c->ack_now = true;
		c->out_pending = true;
	}
}

/* ---- Input -------------------------------------------------------------- */

static struct tcp_conn *lookup(uint32_t rip, uint16_t rport, uint16_t lport)
{
	int i;

	for (i = 0; i < TCP_MAX_CONN; i++) {
		struct tcp_conn *c = &conns[i];
		if (c->state != TCP_CLOSED && c->rip == rip &&
		    c->rport == rport && c->lport == lport)
			return c;
	}
	return NULL;
}

static int source_count(uint32_t rip, bool half_open_only)
{
	int i, n = 0;

	for (i = 0; i < TCP_MAX_CONN; i++) {
		const struct tcp_conn *c = &conns[i];
		if (c->state == TCP_CLOSED || c->state == TCP_TIME_WAIT)
			continue;
		/* Half-open ones count only towards the global bound. */
		if (half_open_only ? c->state == TCP_SYN_RCVD :
		    c->state != TCP_SYN_RCVD && c->rip == rip)
			n++;
	}
	return n;
}

/* Give up c to make room: quietly for TIME-WAIT and half-open, with a
 * RST (and the app told) for a synchronized connection. */
static void recycle(struct tcp_conn *c)
{
	tcp_stats.recycled++;
	if (c->state == TCP_TIME_WAIT || c->state == TCP_SYN_RCVD) {
		free_conn(c, false);
		return;
	}
	xmit(c->rip, c->lport, c->rport, c->snd_nxt, c->rcv_nxt,
	     TH_RST | TH_ACK, 0, 0, NULL, 0, 0);
	free_conn(c, true);
}

/* A slot for a new connection from rip. At its per-source limit, rip
 * gives up its own least recently heard connection. Otherwise a free
 * slot; when full, the oldest TIME-WAIT, then the least recently heard
 * synchronized connection of the address that holds the most (so a
 * client that opens many idle connections pays for them, not the others).
 * Half-open ones are never evicted: SYN cookies cover floods. */
static struct tcp_conn *alloc_conn(uint32_t rip)
{
	struct tcp_conn *tw = NULL, *victim = NULL;
	int i, vcount = 0;

	if (source_count(rip, false) >= TCP_PER_SOURCE) {
		for (i = 0; i < TCP_MAX_CONN; i++) {
			struct tcp_conn *c = &conns[i];
			if (c->state == TCP_CLOSED || c->state == TCP_TIME_WAIT ||
			    c->state == TCP_SYN_RCVD || c->rip != rip)
				continue;
			if (!victim || c->last_rx < victim->last_rx)
				victim = c;
		}
		if (!victim) {
			tcp_stats.per_source_refused++;
			return NULL;
		}
		recycle(victim);
		return victim;
	}
	for (i = 0; i < TCP_MAX_CONN; i++) {
		struct tcp_conn *c = &conns[i];
		if (c->state == TCP_CLOSED)
			return c;
		if (c->state == TCP_TIME_WAIT && (!tw || c->tw_at < tw->tw_at))
			tw = c;
	}
	if (tw) {
		recycle(tw);
		return tw;
	}
	for (i = 0; i < TCP_MAX_CONN; i++) {
		struct tcp_conn *c = &conns[i];
		int n;
		if (c->state == TCP_SYN_RCVD)
			continue;
		n = source_count(c->rip, false);
		if (!victim || n > vcount ||
		    (n == vcount && c->last_rx < victim->last_rx)) {
			victim = c;
			vcount = n;
		}
	}
	if (victim)
		recycle(victim);
	return victim;
}

/* Peer's MSS option from a SYN; TCP_DEFAULT_MSS when absent. */
static uint16_t parse_mss(const uint8_t *opt, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t kind = opt[i];
		if (kind == 0)		/* end of options */
			break;
		if (kind == 1) {	/* no-op */
			i++;
			continue;
		}
		if (i + 1 >= n || opt[i + 1] < 2 || opt[i + 1] > n - i)
			break;		/* malformed: ignore the rest */
		if (kind == 2 && opt[i + 1] == 4)
			return rd16(opt + i + 2);
		i += opt[i + 1];
	}
	return TCP_DEFAULT_MSS;
}

/* SYN cookies: with too many half-open connections a SYN gets a SYN-ACK
 * whose ISS encodes, under a keyed hash, the 4-tuple, the client's ISN,
 * a 64 s time slot and the MSS; the connection is created only when the
 * ACK comes back with ISS + 1. Low 3 bits: MSS index, the next 1: slot
 * parity. */
static const uint16_t cookie_mss[8] = { 64, 256, 536, 1024, 1220, 1360, 1440, 1460 };

static uint32_t cookie_hash(uint32_t rip, uint16_t rport, uint16_t lport,
			    uint32_t irs, uint32_t slot)
{
	need_keys();
	return csprng_hash32(cookie_key, rip, (uint32_t)lport << 16 | rport, irs,
			     slot) & ~15u;
}

static uint32_t cookie_make(uint32_t rip, uint16_t rport, uint16_t lport,
			    uint32_t irs, uint16_t mss)
{
	uint32_t slot = (uint32_t)(net_now_ms() / TCP_COOKIE_SLOT_MS), m = 0;

	while (m < 7 && cookie_mss[m + 1] <= mss)
		m++;
	return cookie_hash(rip, rport, lport, irs, slot) | (slot & 1) << 3 | m;
}

/* The MSS the cookie iss carries, or 0 when it is not one of ours. */
static uint16_t cookie_check(uint32_t rip, uint16_t rport, uint16_t lport,
			     uint32_t irs, uint32_t iss)
{
	uint32_t slot = (uint32_t)(net_now_ms() / TCP_COOKIE_SLOT_MS);

	if (((iss >> 3) & 1) != (slot & 1))
		slot--;		/* made in the previous slot */
	if ((iss & ~15u) != cookie_hash(rip, rport, lport, irs, slot))
		return 0;
	return cookie_mss[iss & 7];
}

static void conn_init(struct tcp_conn *c, const struct tcp_ops *ops,
		      uint32_t src, uint32_t dst, uint16_t sport,
		      uint16_t dport, uint32_t iss, uint32_t irs, uint16_t wnd,
		      uint16_t mss)
{
	memset(c, 0, sizeof(*c));
	c->state = TCP_SYN_RCVD;
	c->ops = ops;
	c->rip = src;
	c->lip = dst;
	c->rport = sport;
	c->lport = dport;
	c->iss = iss;
	c->snd_una = c->snd_nxt = c->snd_max = c->iss;
	c->snd_wnd = wnd;
	c->max_snd_wnd = wnd;
	c->snd_wl1 = irs;
	c->mss = mss;
	c->irs = irs;
	c->rcv_nxt = irs + 1;	/* data on the SYN is not taken */
	c->rcv_adv = c->rcv_nxt;
	c->rto = TCP_RTO_INIT_MS;
	c->last_rx = net_now_ms();
}

static void conn_input(struct tcp_conn *c, uint32_t seq, uint32_t ack,
		       uint8_t flags, uint16_t wnd, const uint8_t *data,
		       size_t dlen);

static void listen_input(uint32_t src, uint32_t dst, uint16_t sport,
			 uint16_t dport, uint32_t seq, uint32_t ack,
			 uint8_t flags, uint16_t wnd, const uint8_t *opt,
			 size_t optlen, const uint8_t *data, size_t dlen)
{
	const struct tcp_ops *ops = NULL;
	struct tcp_conn *c;
	size_t seglen = dlen + !!(flags & TH_SYN) + !!(flags & TH_FIN);
	uint16_t mss;
	int i;

	for (i = 0; i < TCP_MAX_LISTEN; i++)
		if (listeners[i].ops && listeners[i].port == dport)
			ops = listeners[i].ops;
	if (ops && (flags & (TH_SYN | TH_RST | TH_ACK)) == TH_ACK &&
	    (mss = cookie_check(src, sport, dport, seq - 1, ack - 1)) != 0) {
		/* The ACK of a SYN cookie: the handshake is complete. */
		c = alloc_conn(src);
		if (!c) {
			tcp_stats.table_full++;
			return;
		}
		tcp_stats.cookies_ok++;
		conn_init(c, ops, src, dst, sport, dport, ack - 1, seq - 1, wnd, mss);
		c->snd_nxt = c->snd_max = ack;
		c->rcv_adv = seq + TCP_COOKIE_WND;	/* what the SYN-ACK offered */
		conn_input(c, seq, ack, flags, wnd, data, dlen);
		if (c->state != TCP_CLOSED && (c->ack_now || c->out_pending))
			tcp_output(c);
		return;
	}
	if (!ops || (flags & TH_ACK)) {
		/* Closed port, or an ACK for a connection we do not know. */
		send_rst_reply(src, sport, dport, seq, ack, flags, seglen);
		return;
	}
	if ((flags & (TH_SYN | TH_RST | TH_FIN)) != TH_SYN)
		return;
	mss = parse_mss(opt, optlen);
	if (mss > TCP_MSS)
		mss = TCP_MSS;
	if (mss < TCP_MIN_MSS)
		mss = TCP_MIN_MSS;
	if (source_count(0, true) >= TCP_HALF_OPEN_MAX ||
	    !(c = alloc_conn(src))) {
		/* Stateless answer: nothing to evict, nothing to exhaust. */
		uint32_t iss = cookie_make(src, sport, dport, seq, mss);
		tcp_stats.cookies_sent++;
		xmit(src, dport, sport, iss, seq + 1, TH_SYN | TH_ACK,
		     TCP_COOKIE_WND, TCP_MSS, NULL, 0, 0);
		return;
	}
	conn_init(c, ops, src, dst, sport, dport,
		  isn_for(dst, dport, src, sport), seq, wnd, mss);
	tcp_output(c);		/* SYN-ACK */
}

/* RFC 9293 3.10.7.4 first check: does the segment overlap the window? */
static bool acceptable(const struct tcp_conn *c, uint32_t seq, size_t seglen)
{
	uint32_t wnd = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	uint32_t end = c->rcv_nxt + wnd;

	if (seglen == 0) {
		if (wnd == 0)
			return seq == c->rcv_nxt;
		return SEQ_LEQ(c->rcv_nxt, seq) && SEQ_LT(seq, end);
	}
	if (wnd == 0)
		return false;
	return (SEQ_LEQ(c->rcv_nxt, seq) && SEQ_LT(seq, end)) ||
	       (SEQ_LEQ(c->rcv_nxt, seq + (uint32_t)seglen - 1) &&
		SEQ_LT(seq + (uint32_t)seglen - 1, end));
}

/* RFC 5961 7: at most TCP_CHALLENGE_PER_S challenge ACKs a second, over
 * all connections (so they cannot be used to amplify or as an oracle). */
static void challenge_ack(struct tcp_conn *c)
{
	static uint64_t second;
	static uint32_t sent;
	uint64_t now = net_now_ms() / 1000;

	if (now != second) {
		second = now;
		sent = 0;
	}
	if (sent >= TCP_CHALLENGE_PER_S) {
		tcp_stats.challenge_limited++;
		return;
	}
	sent++;
	tcp_stats.challenge_acks++;
	c->ack_now = true;
}

static void enter_time_wait(struct tcp_conn *c)
{
	c->state = TCP_TIME_WAIT;
	c->tw_at = net_now_ms() + TCP_TIME_WAIT_MS;
	c->rtx_at = 0;
}

static void rtt_sample(struct tcp_conn *c, uint32_t r)
{
	if (!c->have_rtt) {
		c->srtt = r;
		c->rttvar = r / 2;
		c->have_rtt = true;
	} else {
		uint32_t d = c->srtt > r ? c->srtt - r : r - c->srtt;
		c->rttvar = (3 * c->rttvar + d) / 4;
		c->srtt = (7 * c->srtt + r) / 8;
	}
	c->rto = c->srtt + MAX(4 * c->rttvar, 10u);
	if (c->rto < TCP_RTO_MIN_MS)
		c->rto = TCP_RTO_MIN_MS;
	if (c->rto > TCP_RTO_MAX_MS)
		c->rto = TCP_RTO_MAX_MS;
}

/* Take the peer's window from a segment (RFC 9293 3.10.7.4: with the
 * segment's seq and ack, so an older segment never shrinks it back). */
static void set_snd_wnd(struct tcp_conn *c, uint16_t wnd, uint32_t seq, uint32_t ack)
{
	c->snd_wnd = wnd;
	if (wnd > c->max_snd_wnd)
		c->max_snd_wnd = wnd;
	c->snd_wl1 = seq;
	c->snd_wl2 = ack;
}

/* snd_una < ack <= snd_max: drop the acknowledged bytes (and FIN). */
static void ack_advance(struct tcp_conn *c, uint32_t ack)
{
	uint32_t acked = ack - c->snd_una;
	uint64_t now = net_now_ms();

	if (acked > c->sb_len) {	/* covers our FIN as well */
		c->fin_acked = true;
		c->fin_sent = true;
		acked = (uint32_t)c->sb_len;
	}
	c->sb_head = (c->sb_head + acked) % TCP_SNDBUF;
	c->sb_len -= acked;
	c->snd_una = ack;
	if (SEQ_LT(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	if (c->rtt_start && SEQ_GEQ(ack, c->rtt_seq)) {
		rtt_sample(c, (uint32_t)(now - c->rtt_start));
		c->rtt_start = 0;
	}
	c->retries = 0;
	c->rtx_at = c->snd_una == c->snd_max ? 0 : now + c->rto;
	if (acked && c->ops && c->ops->sent)
		c->ops->sent(c);
}

static void conn_input(struct tcp_conn *c, uint32_t seq, uint32_t ack,
		       uint8_t flags, uint16_t wnd, const uint8_t *data,
		       size_t dlen)
{
	size_t seglen = dlen + !!(flags & TH_SYN) + !!(flags & TH_FIN);
	uint32_t fin_seq = seq + (uint32_t)dlen;
	bool fin = flags & TH_FIN;

	/* Retransmitted SYN while half-open: send the SYN-ACK again. */
	if (c->state == TCP_SYN_RCVD && (flags & (TH_SYN | TH_ACK)) == TH_SYN &&
	    seq == c->irs) {
		c->last_rx = net_now_ms();
		c->snd_nxt = c->iss;
		tcp_output(c);
		return;
	}
	if (!acceptable(c, seq, seglen)) {
		tcp_stats.out_of_window++;
		if (!(flags & TH_RST))
			c->ack_now = true;
		if (c->state == TCP_TIME_WAIT && fin)	/* lost last ACK */
			c->tw_at = net_now_ms() + TCP_TIME_WAIT_MS;
		return;
	}
	/* Only acceptable segments keep a connection alive: junk from a
	 * blind sender must not hold it forever. */
	c->last_rx = net_now_ms();
	if (flags & TH_RST) {
		/* RFC 5961 3.2: only an exact RST kills; others get a
		 * challenge ACK. */
		if (seq == c->rcv_nxt) {
			tcp_stats.rst_rcvd++;
			free_conn(c, true);
		} else {
			challenge_ack(c);
		}
		return;
	}
	if (flags & TH_SYN) {		/* RFC 5961 4.2: challenge ACK */
		challenge_ack(c);
		return;
	}
	if (!(flags & TH_ACK))
		return;

	if (c->state == TCP_SYN_RCVD) {
		if (!(SEQ_LT(c->snd_una, ack) && SEQ_LEQ(ack, c->snd_max))) {
			send_rst_reply(c->rip, c->rport, c->lport, seq, ack,
				       flags, seglen);
			return;
		}
		c->state = TCP_ESTABLISHED;
		c->snd_una = ack;
		set_snd_wnd(c, wnd, seq, ack);
		c->rtx_at = 0;
		c->retries = 0;
		tcp_stats.accepts++;
		if (c->ops && c->ops->accept)
			c->ops->accept(c);
		if (c->state == TCP_CLOSED)
			return;
	} else {
		if (SEQ_GT(ack, c->snd_max)) {	/* ACKs what we never sent */
			c->ack_now = true;
			return;
		}
		if (SEQ_LT(ack, c->snd_una - c->max_snd_wnd)) {
			/* RFC 5961 5.2: older than any window we could have
			 * had in flight: a blind injection, not the peer. */
			tcp_stats.bad_seg++;
			challenge_ack(c);
			return;
		}
		if (SEQ_GT(ack, c->snd_una)) {
			ack_advance(c, ack);
			if (c->state == TCP_CLOSED)
				return;
		} else if (ack == c->snd_una && wnd == 0 &&
			   c->snd_max != c->snd_una && c->ops) {
			/* Zero-window probe answered: keep probing. Not for
			 * connections the app closed, or a peer that never
			 * reads would hold them forever. */
			c->retries = 0;
		}
		if (SEQ_LT(c->snd_wl1, seq) ||
		    (c->snd_wl1 == seq && SEQ_LEQ(c->snd_wl2, ack))) {
			if (c->snd_wnd == 0 && wnd && ack == c->snd_una) {
				/* Window reopened: a probe byte beyond the
				 * old window was dropped; resend from here. */
				c->snd_nxt = c->snd_una;
				if (!c->fin_acked)
					c->fin_sent = false;
			}
			set_snd_wnd(c, wnd, seq, ack);
			c->out_pending = true;	/* the window may have opened */
		}
		if (c->fin_acked) {
			switch (c->state) {
			case TCP_FIN_WAIT_1:
				c->state = TCP_FIN_WAIT_2;
				c->rtx_at = 0;
				break;
			case TCP_CLOSING:
				enter_time_wait(c);
				break;
			case TCP_LAST_ACK:
				free_conn(c, false);
				return;
			default:
				break;
			}
		}
	}

	/* Segment text. */
	if (dlen) {
		if (c->state == TCP_ESTABLISHED || c->state == TCP_FIN_WAIT_1 ||
		    c->state == TCP_FIN_WAIT_2) {
			size_t taken;
			uint32_t wnd_left;

			if (SEQ_LT(seq, c->rcv_nxt)) {	/* old bytes in front */
				uint32_t skip = c->rcv_nxt - seq;
				if (skip >= dlen) {
					dlen = 0;
				} else {
					data += skip;
					dlen -= skip;
				}
				seq = c->rcv_nxt;
			}
			c->ack_now = true;
			if (seq != c->rcv_nxt) {
				/* Out of order: drop, the duplicate ACK tells
				 * the peer what we miss. */
				tcp_stats.ooo_dropped++;
				return;
			}
			wnd_left = SEQ_GT(c->rcv_adv, c->rcv_nxt) ?
				   c->rcv_adv - c->rcv_nxt : 0;
			if (dlen > wnd_left) {
				dlen = wnd_left;
				fin = false;	/* FIN lies beyond the window */
			}
			if (dlen) {
				if (c->ops && c->ops->recv) {
					taken = c->ops->recv(c, data, dlen);
					if (c->state == TCP_CLOSED)
						return;
					if (taken > dlen)
						taken = dlen;
				} else {
					taken = dlen;	/* app gone: discard */
				}
				c->rcv_nxt += (uint32_t)taken;
			}
		} else {
			c->ack_now = true;	/* data after the peer's FIN */
			fin = false;
		}
	}

	if (fin && fin_seq == c->rcv_nxt) {
		c->rcv_nxt++;
		c->rcv_adv = SEQ_GT(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv : c->rcv_nxt;
		c->ack_now = true;
		switch (c->state) {
		case TCP_ESTABLISHED:
			c->state = TCP_CLOSE_WAIT;
			if (c->ops && c->ops->recv)
				c->ops->recv(c, NULL, 0);	/* EOF */
			break;
		case TCP_FIN_WAIT_1:
			if (c->fin_acked)
				enter_time_wait(c);
			else
				c->state = TCP_CLOSING;
			break;
		case TCP_FIN_WAIT_2:
			enter_time_wait(c);
			break;
		default:
			break;
		}
	}
}

void tcp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
	uint16_t sport, dport, wnd;
	uint32_t seq, ack;
	uint8_t flags;
	size_t hlen;
	struct tcp_conn *c;

	tcp_stats.in_segs++;
	if (len < TCP_HLEN || len > 65535) {
		tcp_stats.bad_seg++;
		return;
	}
	hlen = (size_t)(seg[12] >> 4) * 4;
	if (hlen < TCP_HLEN || hlen > len) {
		tcp_stats.bad_seg++;
		return;
	}
	if (inet_fold(inet_sum(seg, len,
		inet_pseudo(src, dst, IP_PROTO_TCP, (uint16_t)len))) != 0) {
		tcp_stats.bad_csum++;
		return;
	}
	/* Only unicast to us, from a plausible unicast source. */
	if (dst != net_ip() || dst == 0 || src == 0 || src == IP_BROADCAST ||
	    (src >> 28) == 0xe || (src >> 24) == 127) {
		tcp_stats.bad_seg++;
		return;
	}
	sport = rd16(seg);
	dport = rd16(seg + 2);
	seq = rd32(seg + 4);
	ack = rd32(seg + 8);
	flags = seg[13];
	wnd = rd16(seg + 14);
	if (sport == 0 || dport == 0) {
		tcp_stats.bad_seg++;
		return;
	}

	c = lookup(src, sport, dport);
	if (c && c->state == TCP_TIME_WAIT &&
	    (flags & (TH_SYN | TH_ACK | TH_RST)) == TH_SYN &&
	    SEQ_GT(seq, c->rcv_nxt)) {
		/* A new connection reusing the 4-tuple, above all the old
		 * sequence numbers: TIME-WAIT may give way (RFC 9293 3.10.7.4). */
		free_conn(c, false);
		c = NULL;
	}
	if (!c) {
		listen_input(src, dst, sport, dport, seq, ack, flags, wnd,
			     seg + TCP_HLEN, hlen - TCP_HLEN, seg + hlen,
			     len - hlen);
		return;
	}
	conn_input(c, seq, ack, flags, wnd, seg + hlen, len - hlen);
	if (c->state != TCP_CLOSED && (c->ack_now || c->out_pending))
		tcp_output(c);
}

/* ---- Timers ------------------------------------------------------------- */

static void rtx_timeout(struct tcp_conn *c, uint64_t now)
{
	/* Persist: data waits behind a zero window. Probe with one byte;
	 * the peer's ACK of a probe resets retries (conn_input). */
	bool probe = c->state != TCP_SYN_RCVD && c->snd_wnd == 0 &&
		     c->sb_len && can_send_data(c);

	c->rtx_at = 0;
	if (c->snd_max == c->snd_una && !probe)
		return;
	if (c->snd_max != c->snd_una &&
	    ++c->retries > (c->state == TCP_SYN_RCVD ? TCP_SYN_RETRIES
						     : TCP_MAX_RETRIES)) {
		tcp_stats.aborts++;
		if (c->state == TCP_SYN_RCVD) {
			free_conn(c, false);
		} else {
			xmit(c->rip, c->lport, c->rport, c->snd_nxt, c->rcv_nxt,
			     TH_RST | TH_ACK, 0, 0, NULL, 0, 0);
			free_conn(c, true);
		}
		return;
	}
	c->rto = MIN(c->rto * 2, (uint32_t)TCP_RTO_MAX_MS);
	c->rtt_start = 0;	/* Karn: no sample from retransmissions */
	c->snd_nxt = c->state == TCP_SYN_RCVD ? c->iss : c->snd_una;
	if (!c->fin_acked)
		c->fin_sent = false;
	if (probe) {
		xmit(c->rip, c->lport, c->rport, c->snd_una, c->rcv_nxt, TH_ACK,
		     rcv_window(c), 0, c, 0, 1);
		c->snd_nxt = c->snd_una + 1;
		if (SEQ_GT(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		c->rtx_at = now + c->rto;
		return;
	}
	tcp_stats.retrans++;
	tcp_output(c);
	if (!c->rtx_at)
		c->rtx_at = now + c->rto;
}

bool tcp_busy(void)
{
	for (int i = 0; i < TCP_MAX_CONN; i++)
		if (conns[i].state != TCP_CLOSED)
			return true;
	return false;
}

void tcp_timer(uint64_t now)
{
	int i;

	for (i = 0; i < TCP_MAX_CONN; i++) {
		struct tcp_conn *c = &conns[i];

		if (c->state == TCP_CLOSED)
			continue;
		if (c->state == TCP_TIME_WAIT) {
			if (now >= c->tw_at)
				free_conn(c, false);
			continue;
		}
		if (c->state == TCP_FIN_WAIT_2 &&
		    now - c->last_rx > TCP_FIN_WAIT2_MS) {
			tcp_stats.idle_aborts++;
			free_conn(c, true);
			continue;
		}
		if (now - c->last_rx > TCP_IDLE_MS) {
			/* Nothing acceptable heard for minutes, whatever the
			 * state (retransmissions bound only what we send). */
			tcp_stats.idle_aborts++;
			if (c->state != TCP_SYN_RCVD)
				xmit(c->rip, c->lport, c->rport, c->snd_nxt,
				     c->rcv_nxt, TH_RST | TH_ACK, 0, 0, NULL, 0, 0);
			free_conn(c, c->state != TCP_SYN_RCVD);
			continue;
		}
		if (c->rtx_at && now >= c->rtx_at) {
			rtx_timeout(c, now);
			if (c->state == TCP_CLOSED)
				continue;
		}
		if (c->ops && c->ops->poll && c->state != TCP_SYN_RCVD) {
			c->ops->poll(c, now);
			if (c->state == TCP_CLOSED)
				continue;
		}
		if (c->out_pending || c->ack_now)
			tcp_output(c);
	}
}
