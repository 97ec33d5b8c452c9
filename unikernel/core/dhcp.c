/*
 * dhcp.c - DHCP client (RFC 2131, options RFC 2132).
 *
 *   INIT -> SELECTING (DISCOVER) -> REQUESTING (REQUEST) -> PROBING
 *   PROBING (ARP probes of the address, RFC 5227) -> BOUND, or on an
 *         answer DECLINE and INIT after DECLINE_WAIT_MS
 *   BOUND -T1-> RENEWING (unicast REQUEST to the server)
 *         -T2-> REBINDING (broadcast REQUEST) -lease end-> INIT
 *   NAK in REQUESTING/RENEWING/REBINDING -> INIT
 *   a conflicting claim insisted on (arp.c) -> DECLINE, INIT
 *
 * Retransmissions back off exponentially (2 s doubling up to 64 s, with
 * +-0.5 s jitter; RFC 2131 says 4 s first, we start faster so a lost
 * first packet costs less). In RENEWING/REBINDING we retry after half of
 * the time left (down to 4 s rather than the RFC's 60 s, so short test
 * leases still renew), each retry a new transaction (xid) whose send time
 * is remembered. Probing is shorter than RFC 5227's (PROBE_NUM
 * probes PROBE_GAP_MS apart, then PROBE_GAP_MS of silence: ~1 s, not
 * ~7 s). An ACK without a usable server identifier is ignored (RENEWING
 * needs it), so is one with a zero lease time. Option overload (52) is not
 * implemented.
 *
 * The lease, T1 and T2 count from when the REQUEST was sent (RFC 2131
 * 4.4.1), not from when the ACK arrived or probing ended: the server's
 * lease started no earlier, so ours never outlasts it. A lease is used
 * as given, however short (the address is the server's to lend).
 */
#include "net.h"
#include "platform.h"

#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_FIXED 236          /* op .. file */
#define DHCP_OPTS (DHCP_FIXED + 4) /* after the magic cookie */
#define DHCP_MIN_LEN 300        /* BOOTP minimum, some servers insist */
#define DHCP_MAGIC 0x63825363u

#define DHCPDISCOVER 1
#define DHCPOFFER 2
#define DHCPREQUEST 3
#define DHCPDECLINE 4
#define DHCPACK 5
#define DHCPNAK 6
#define DHCPRELEASE 7

#define RETRY_FIRST_MS 2000
#define RETRY_MAX_MS 64000
#define RETRY_MIN_RENEW_MS 4000
#define REQUEST_TRIES 4         /* REQUESTING gives up after this */
#define PROBE_NUM 2             /* ARP probes of an offered address */
#define PROBE_GAP_MS 400
#define DECLINE_WAIT_MS 10000   /* RFC 2131 3.1: wait before restarting */

enum dhcp_state {
	DHCP_OFF,
	DHCP_SELECTING,
	DHCP_REQUESTING,
	DHCP_PROBING,
	DHCP_BOUND,
	DHCP_RENEWING,
	DHCP_REBINDING,
};

/* What we take out of a server's message. */
struct dhcp_msg {
	uint8_t type;
	uint32_t yiaddr;
	uint32_t mask, router, server, lease, t1, t2;
	bool has_mask, has_router, has_server, has_lease, has_t1, has_t2;
};

static struct {
	enum dhcp_state state;
	struct dhcp_msg ack;        /* the ACK being probed */
	uint32_t xid;
	uint32_t offered, server;   /* from the OFFER */
	uint32_t ip, mask, gw;      /* the lease */
	uint32_t lease_s;
	uint64_t t1, t2, expiry;    /* absolute ms */
	uint64_t next_tx;           /* next (re)transmission, absolute ms */
	uint64_t req_ms;            /* when this REQUEST transaction began */
	uint32_t backoff_ms;
	unsigned tries;
} dh;

static uint32_t rand32(void)
{
	uint32_t r;
	plat_random(&r, sizeof(r));
	return r;
}

/* backoff_ms +- 500 ms jitter */
static uint64_t jittered(uint32_t ms)
{
	return (uint64_t)ms - 500 + rand32() % 1001;
}

static void send_msg(uint8_t type)
{
	static uint8_t m[DHCP_MIN_LEN + 64];
	const uint8_t *mac = net_mac();
	bool have_addr = dh.state == DHCP_RENEWING ||
			 dh.state == DHCP_REBINDING || type == DHCPRELEASE;
	size_t n = DHCP_OPTS;

	memset(m, 0, sizeof(m));
	m[0] = 1; /* BOOTREQUEST */
	m[1] = 1; /* Ethernet */
	m[2] = ETH_ALEN;
	wr32(m + 4, dh.xid);
	if (have_addr)
		wr32(m + 12, dh.ip); /* ciaddr */
	memcpy(m + 28, mac, ETH_ALEN); /* chaddr */
	wr32(m + DHCP_FIXED, DHCP_MAGIC);

	m[n++] = 53; /* message type */
	m[n++] = 1;
	m[n++] = type;
	m[n++] = 61; /* client identifier: hardware type + MAC */
	m[n++] = 7;
	m[n++] = 1;
	memcpy(m + n, mac, ETH_ALEN);
	n += ETH_ALEN;
	if (type == DHCPREQUEST && dh.state == DHCP_REQUESTING) {
		m[n++] = 50; /* requested address */
		m[n++] = 4;
		wr32(m + n, dh.offered);
		n += 4;
	}
	if (type == DHCPDECLINE) {
		m[n++] = 50; /* the declined address */
		m[n++] = 4;
		wr32(m + n, dh.offered);
		n += 4;
	}
	if ((type == DHCPREQUEST && dh.state == DHCP_REQUESTING) ||
	    type == DHCPRELEASE || type == DHCPDECLINE) {
		m[n++] = 54; /* server identifier */
		m[n++] = 4;
		wr32(m + n, dh.server);
		n += 4;
	}
	if (type != DHCPRELEASE && type != DHCPDECLINE) {
		static const uint8_t prl[] = { 1, 3, 51, 54, 58, 59 };
		m[n++] = 55; /* parameter request list */
		m[n++] = sizeof(prl);
		memcpy(m + n, prl, sizeof(prl));
		n += sizeof(prl);
		m[n++] = 57; /* max message size: what one frame holds */
		m[n++] = 2;
		wr16(m + n, UDP_MAX_PAYLOAD);
		n += 2;
	}
	m[n++] = 255;
	if (n < DHCP_MIN_LEN)
		n = DHCP_MIN_LEN;

	/* RENEWING and RELEASE go to the server, the rest is broadcast */
	uint32_t dst = (dh.state == DHCP_RENEWING || type == DHCPRELEASE)
			       ? dh.server
			       : IP_BROADCAST;
	udp_output(dst, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, m, n);
}

/*
 * Parse a server message. Returns 0 and fills out when it is a BOOTREPLY
 * for our xid and MAC with a well-formed option area and a message type.
 */
static int dhcp_parse(const uint8_t *p, size_t len, uint32_t xid,
	       const uint8_t mac[ETH_ALEN], struct dhcp_msg *out)
{
	memset(out, 0, sizeof(*out));
	if (len < DHCP_OPTS || p[0] != 2 || p[1] != 1 || p[2] != ETH_ALEN ||
	    rd32(p + 4) != xid || memcmp(p + 28, mac, ETH_ALEN) != 0 ||
	    rd32(p + DHCP_FIXED) != DHCP_MAGIC)
		return -1;
	out->yiaddr = rd32(p + 16);

	size_t i = DHCP_OPTS;
	while (i < len) {
		uint8_t code = p[i];
		if (code == 0) { /* pad */
			i++;
			continue;
		}
		if (code == 255)
			break;
		if (i + 2 > len || i + 2 + p[i + 1] > len)
			return -1; /* option runs past the end */
		uint8_t olen = p[i + 1];
		const uint8_t *v = p + i + 2;
		switch (code) {
		case 53:
			if (olen == 1 && !out->type)
				out->type = v[0];
			break;
/* the first instance of a repeated option wins */
#define OPT32(c, field, flag)                     \
	case c:                                   \
		if (olen >= 4 && !out->flag) {    \
			out->field = rd32(v);     \
			out->flag = true;         \
		}                                 \
		break;
		OPT32(1, mask, has_mask)
		OPT32(3, router, has_router)  /* first router only */
		OPT32(51, lease, has_lease)
		OPT32(54, server, has_server)
		OPT32(58, t1, has_t1)
		OPT32(59, t2, has_t2)
#undef OPT32
		default:
			break;
		}
		i += 2 + (size_t)olen;
	}
	return out->type ? 0 : -1;
}

/* A usable unicast host address? */
static bool good_addr(uint32_t a)
{
	uint8_t top = (uint8_t)(a >> 24);
	return a != 0 && a != IP_BROADCAST && top != 0 && top != 127 &&
	       top < 224;
}

/* A mask is contiguous ones then zeros (and not all-zero/one). */
static bool good_mask(uint32_t m)
{
	return m != 0 && m != IP_BROADCAST && ((~m + 1) & ~m) == 0;
}

static void set_timer(uint64_t now, uint32_t ms)
{
	dh.next_tx = now + jittered(ms);
}

static void start_discover(uint64_t now)
{
	dh.state = DHCP_SELECTING;
	dh.xid = rand32();
	dh.tries = 1;
	dh.backoff_ms = RETRY_FIRST_MS;
	send_msg(DHCPDISCOVER);
	set_timer(now, dh.backoff_ms);
}

/* The retry time in RENEWING/REBINDING: half the time to `until`. */
static void set_renew_timer(uint64_t now, uint64_t until)
{
	uint64_t left = until > now ? until - now : 0;
	uint64_t wait = left / 2;
	if (wait < RETRY_MIN_RENEW_MS)
		wait = RETRY_MIN_RENEW_MS;
	dh.next_tx = now + wait;
}

static void drop_lease(uint64_t now, const char *why)
{
	printk("DHCP: %s, restarting\n", why);
	net_configure(0, 0, 0);
	dh.ip = 0;
	start_discover(now);
}

/* A REQUEST in RENEWING/REBINDING: a new transaction, timed from now. */
static void send_renewal(uint64_t now)
{
	dh.xid = rand32();
	dh.req_ms = now;
	send_msg(DHCPREQUEST);
}

/* Bind the lease in m, counted from dh.req_ms (when the REQUEST went out). */
static void bind(const struct dhcp_msg *m)
{
	char a[16], s[16];
	bool renewed = dh.state == DHCP_RENEWING || dh.state == DHCP_REBINDING;
	uint32_t lease = m->has_lease ? m->lease : 3600;
	uint64_t start = dh.req_ms;

	dh.ip = m->yiaddr;
	if (m->has_server)
		dh.server = m->server;
	if (m->has_mask && good_mask(m->mask))
		dh.mask = m->mask;
	else /* classful default (RFC 2131 leaves it to the client) */
		dh.mask = (dh.ip >> 30) == 2 ? 0xffff0000u
			  : (dh.ip >> 29) == 6 ? 0xffffff00u
					       : 0xff000000u;
	dh.gw = m->has_router && good_addr(m->router) &&
			(m->router & dh.mask) == (dh.ip & dh.mask)
		? m->router
		: 0;
	dh.lease_s = lease;
	if (lease == 0xffffffffu) { /* infinite */
		dh.t1 = dh.t2 = dh.expiry = UINT64_MAX;
	} else {
		uint64_t l = (uint64_t)lease * 1000;
		uint64_t t1 = m->has_t1 ? (uint64_t)m->t1 * 1000 : l / 2;
		uint64_t t2 = m->has_t2 ? (uint64_t)m->t2 * 1000 : l * 7 / 8;
		if (t2 >= l || t2 == 0)
			t2 = l * 7 / 8;
		if (t1 >= t2 || t1 == 0)
			t1 = t2 / 2 < l / 2 ? t2 / 2 : l / 2;
		dh.t1 = start + t1;
		dh.t2 = start + t2;
		dh.expiry = start + l;
	}
	dh.state = DHCP_BOUND;
	dh.next_tx = UINT64_MAX;
	net_configure(dh.ip, dh.mask, dh.gw);
	printk("DHCP: %s %s from %s, lease %u s\n",
	       renewed ? "renewed" : "bound to", ip_str(dh.ip, a),
	       ip_str(dh.server, s), dh.lease_s);
}

static void dhcp_input(uint32_t src, uint16_t sport, uint32_t dst,
		       uint16_t dport, const uint8_t *data, size_t len)
{
	struct dhcp_msg m;
	uint64_t now = net_now_ms();
	UNUSED(src);
	UNUSED(dst);
	UNUSED(dport);

	if (sport != DHCP_SERVER_PORT || dh.state == DHCP_OFF ||
	    dh.state == DHCP_BOUND ||
	    dhcp_parse(data, len, dh.xid, net_mac(), &m) < 0)
		return;

	switch (dh.state) {
	case DHCP_SELECTING:
		if (m.type != DHCPOFFER || !good_addr(m.yiaddr) ||
		    !m.has_server || !good_addr(m.server))
			return;
		dh.offered = m.yiaddr;
		dh.server = m.server;
		dh.state = DHCP_REQUESTING;
		dh.tries = 1;
		dh.backoff_ms = RETRY_FIRST_MS;
		dh.req_ms = now; /* retransmissions keep the xid and this */
		send_msg(DHCPREQUEST);
		set_timer(now, dh.backoff_ms);
		break;
	case DHCP_REQUESTING:
	case DHCP_RENEWING:
	case DHCP_REBINDING:
		if (m.type == DHCPNAK) {
			/* in REQUESTING only our chosen server may refuse */
			if (dh.state == DHCP_REQUESTING && m.has_server &&
			    m.server != dh.server)
				return;
			drop_lease(now, "NAK from server");
			return;
		}
		/* An ACK names its server (RFC 2131 table 3): we renew
		 * with it, so 0.0.0.0 or a broadcast one is refused; a
		 * lease of 0 s is no lease. */
		if (m.type != DHCPACK || !good_addr(m.yiaddr) ||
		    !m.has_server || !good_addr(m.server) ||
		    (m.has_lease && m.lease == 0))
			return;
		if (dh.state == DHCP_REQUESTING ? m.yiaddr != dh.offered ||
							  m.server != dh.server
						: m.yiaddr != dh.ip)
			return;
		if (dh.state == DHCP_REQUESTING) {
			/* RFC 2131 4.4.1 / RFC 5227: is it in use? */
			dh.ack = m;
			dh.state = DHCP_PROBING;
			dh.tries = 1;
			arp_probe(dh.offered);
			dh.next_tx = now + PROBE_GAP_MS;
			return;
		}
		bind(&m);
		break;
	default:
		break;
	}
}

void dhcp_reset(void)
{
	memset(&dh, 0, sizeof(dh));
	udp_bind(DHCP_CLIENT_PORT, NULL);
}

void dhcp_start(void)
{
	memset(&dh, 0, sizeof(dh));
	udp_bind(DHCP_CLIENT_PORT, dhcp_input);
	start_discover(net_now_ms());
}

bool dhcp_bound(void)
{
	return dh.state == DHCP_BOUND || dh.state == DHCP_RENEWING ||
	       dh.state == DHCP_REBINDING;
}

bool dhcp_busy(void)
{
	return dh.state == DHCP_SELECTING || dh.state == DHCP_REQUESTING ||
	       dh.state == DHCP_PROBING;
}

/* When dhcp_timer next has something to do: the main loop sleeps no
 * longer, so T1, T2 and the lease's end are kept to the millisecond (an
 * address must not be used past its lease, RFC 2131 4.4.5). */
uint64_t dhcp_deadline(void)
{
	switch (dh.state) {
	case DHCP_BOUND:
		return dh.t1;
	case DHCP_RENEWING:
		return MIN(dh.next_tx, MIN(dh.t2, dh.expiry));
	case DHCP_REBINDING:
		return MIN(dh.next_tx, dh.expiry);
	case DHCP_OFF:
		return UINT64_MAX;
	default:
		return dh.next_tx;
	}
}

/* The offered address is in use: DECLINE it, start over a bit later. */
static void decline(uint64_t now, const char *why)
{
	char a[16];

	printk("DHCP: %s %s, declining\n", ip_str(dh.offered, a), why);
	send_msg(DHCPDECLINE);
	net_configure(0, 0, 0);
	dh.ip = 0;
	dh.state = DHCP_SELECTING;
	dh.xid = rand32();
	dh.tries = 0;
	dh.backoff_ms = RETRY_FIRST_MS / 2;
	dh.next_tx = now + DECLINE_WAIT_MS;
}

void dhcp_arp_seen(uint32_t spa, uint32_t tpa)
{
	/* RFC 5227 2.1.1: a packet from the address, or another host's
	 * probe for it, means we must not use it. */
	if (dh.state == DHCP_PROBING &&
	    (spa == dh.offered || (spa == 0 && tpa == dh.offered)))
		decline(net_now_ms(), "is in use");
}

void dhcp_conflict(void)
{
	if (!dhcp_bound()) {
		printk("arp: keeping the configured address\n");
		return;
	}
	dh.offered = dh.ip;
	decline(net_now_ms(), "is claimed by another host");
}

void dhcp_stop(void)
{
	if (dh.state == DHCP_OFF)
		return;
	if (dhcp_bound()) {
		char a[16];
		dh.xid = rand32();
		send_msg(DHCPRELEASE);
		printk("DHCP: released %s\n", ip_str(dh.ip, a));
	}
	dh.state = DHCP_OFF;
	udp_bind(DHCP_CLIENT_PORT, NULL);
}

void dhcp_timer(uint64_t now)
{
	switch (dh.state) {
	case DHCP_PROBING:
		if (now < dh.next_tx)
			return;
		if (dh.tries < PROBE_NUM) {
			dh.tries++;
			arp_probe(dh.offered);
			dh.next_tx = now + PROBE_GAP_MS;
			return;
		}
		bind(&dh.ack);	/* nobody answered: ours */
		break;
	case DHCP_SELECTING:
	case DHCP_REQUESTING:
		if (now < dh.next_tx)
			return;
		if (dh.state == DHCP_REQUESTING && dh.tries >= REQUEST_TRIES) {
			printk("DHCP: no ACK, restarting\n");
			start_discover(now);
			return;
		}
		dh.tries++;
		dh.backoff_ms = MIN(dh.backoff_ms * 2, RETRY_MAX_MS);
		send_msg(dh.state == DHCP_SELECTING ? DHCPDISCOVER
						    : DHCPREQUEST);
		set_timer(now, dh.backoff_ms);
		break;
	case DHCP_BOUND:
		if (now >= dh.t1) {
			char a[16], b[16];
			printk("DHCP: renewing %s with %s\n", ip_str(dh.ip, a),
			       ip_str(dh.server, b));
			dh.state = DHCP_RENEWING;
			send_renewal(now);
			set_renew_timer(now, dh.t2);
		}
		break;
	case DHCP_RENEWING:
	case DHCP_REBINDING:
		if (now >= dh.expiry) {
			drop_lease(now, "lease expired");
			return;
		}
		if (dh.state == DHCP_RENEWING && now >= dh.t2) {
			char a[16];
			printk("DHCP: rebinding %s\n", ip_str(dh.ip, a));
			dh.state = DHCP_REBINDING; /* any server may answer */
			send_renewal(now);
			set_renew_timer(now, dh.expiry);
			return;
		}
		if (now >= dh.next_tx) {
			send_renewal(now);
			set_renew_timer(now,
					dh.state == DHCP_RENEWING ? dh.t2
								  : dh.expiry);
		}
		break;
	default:
		break;
	}
}
