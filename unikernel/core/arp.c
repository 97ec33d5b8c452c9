/*
 * arp.c - ARP for IPv4 over Ethernet (RFC 826).
 *
 * A small cache: resolved entries expire after ARP_TTL_MS (an entry in
 * use is re-requested shortly before, so busy flows never stall on it);
 * unresolved ones are re-requested every second, ARP_TRIES times, then
 * dropped with the packets that waited for them.
 *
 * Under attack or churn: a resolved entry changes its MAC only on a reply
 * to our own request (an unsolicited packet cannot redirect a neighbour);
 * a full cache gives up incomplete entries before resolved ones and never
 * the gateway's; a full pending queue drops its oldest packet, so a fresh
 * reply is not lost behind packets for unresolvable addresses. A
 * conflicting claim on our address is defended once (RFC 5227 2.4 (b));
 * a second one within ARP_DEFEND_MS gives the address up (dhcp_conflict).
 */
#include "net.h"

#define ARP_ENTRIES 16
#define ARP_PENDING 8             /* packets waiting for resolution */
#define ARP_DEFEND_MS 10000       /* RFC 5227 DEFEND_INTERVAL */
#define ARP_TTL_MS (60 * 1000)
#define ARP_REFRESH_MS 5000       /* re-ask this long before expiry */
#define ARP_RETRY_MS 1000
#define ARP_TRIES 3
#define ARP_LEN 28                /* Ethernet/IPv4 ARP packet */

enum { ARP_FREE, ARP_INCOMPLETE, ARP_RESOLVED };

struct arp_entry {
	uint32_t ip;
	uint8_t mac[ETH_ALEN];
	uint8_t state;
	uint8_t tries;
	uint64_t deadline; /* expiry (resolved) or next retry (incomplete) */
};

struct arp_pending {
	uint32_t nh; /* 0: slot free */
	uint32_t seq; /* age order */
	uint16_t len;
	uint8_t pkt[ETH_MTU];
};

static struct arp_entry cache[ARP_ENTRIES];
static struct arp_pending pending[ARP_PENDING];
static uint32_t pending_seq;
static uint64_t last_defend, last_conflict_log;

void arp_reset(void)
{
	memset(cache, 0, sizeof(cache));
	for (int i = 0; i < ARP_PENDING; i++)
		pending[i].nh = 0;
	last_defend = last_conflict_log = 0;
}

bool arp_busy(void)
{
	for (int i = 0; i < ARP_PENDING; i++)
		if (pending[i].nh)
			return true;
	return false;
}

static struct arp_entry *find(uint32_t ip)
{
	for (int i = 0; i < ARP_ENTRIES; i++)
		if (cache[i].state != ARP_FREE && cache[i].ip == ip)
			return &cache[i];
	return NULL;
}

static void drop_pending(uint32_t nh)
{
	for (int i = 0; i < ARP_PENDING; i++)
		if (pending[i].nh == nh) {
			pending[i].nh = 0;
			net_stats.tx_dropped++;
		}
}

/* A free entry, else the oldest incomplete one (its packets dropped),
 * else the resolved one closest to expiry that is not the gateway. */
static struct arp_entry *alloc(void)
{
	struct arp_entry *victim = NULL;
	uint32_t gw = net_gw();
	for (int i = 0; i < ARP_ENTRIES; i++) {
		struct arp_entry *e = &cache[i];
		if (e->state == ARP_FREE)
			return e;
		if (e->state == ARP_RESOLVED && e->ip == gw)
			continue;
		if (!victim || (e->state == ARP_INCOMPLETE &&
				victim->state != ARP_INCOMPLETE) ||
		    (e->state == victim->state &&
		     e->deadline < victim->deadline))
			victim = e;
	}
	if (!victim)
		victim = &cache[0];	/* only with ARP_ENTRIES == 1 */
	if (victim->state == ARP_INCOMPLETE)
		drop_pending(victim->ip);
	victim->state = ARP_FREE;
	return victim;
}

static void send_arp(uint16_t op, const uint8_t tha[ETH_ALEN], uint32_t tpa,
		     const uint8_t dst[ETH_ALEN], uint32_t spa)
{
	uint8_t p[ARP_LEN];
	wr16(p, 1);            /* hardware: Ethernet */
	wr16(p + 2, ETH_P_IPV4);
	p[4] = ETH_ALEN;
	p[5] = 4;
	wr16(p + 6, op);
	memcpy(p + 8, net_mac(), ETH_ALEN);
	wr32(p + 14, spa);
	memcpy(p + 18, tha, ETH_ALEN);
	wr32(p + 24, tpa);
	eth_output(dst, ETH_P_ARP, p, sizeof(p));
}

void arp_request(uint32_t ip)
{
	static const uint8_t zero[ETH_ALEN];
	send_arp(1, zero, ip, eth_broadcast, net_ip());
}

/* RFC 5227 2.1.1 probe: "who has ip", sender address 0.0.0.0. */
void arp_probe(uint32_t ip)
{
	static const uint8_t zero[ETH_ALEN];
	send_arp(1, zero, ip, eth_broadcast, 0);
}

void arp_announce(void)
{
	static const uint8_t zero[ETH_ALEN];
	if (net_ip())
		send_arp(1, zero, net_ip(), eth_broadcast, net_ip());
}

/* Entry e just got its MAC: send what waited for it. */
static void flush(struct arp_entry *e)
{
	for (int i = 0; i < ARP_PENDING; i++) {
		struct arp_pending *q = &pending[i];
		if (q->nh == e->ip) {
			q->nh = 0; /* free first: eth_output can't re-enter */
			eth_output(e->mac, ETH_P_IPV4, q->pkt, q->len);
		}
	}
}

static void learn(struct arp_entry *e, uint32_t ip, const uint8_t *mac)
{
	e->ip = ip;
	memcpy(e->mac, mac, ETH_ALEN);
	e->state = ARP_RESOLVED;
	e->tries = 0;
	e->deadline = net_now_ms() + ARP_TTL_MS;
	flush(e);
}

/* Someone else claims our address (RFC 5227 2.4): defend it once with an
 * announcement; a second claim within ARP_DEFEND_MS means the other host
 * insists: give the address up. Logged at most once per ARP_DEFEND_MS. */
static void conflict(const uint8_t *sha)
{
	uint64_t now = net_now_ms();

	if (!last_conflict_log || now - last_conflict_log >= ARP_DEFEND_MS) {
		last_conflict_log = now;
		printk("arp: address conflict: %02x:%02x:%02x:%02x:%02x:%02x "
		       "also claims our address\n",
		       sha[0], sha[1], sha[2], sha[3], sha[4], sha[5]);
	}
	if (last_defend && now - last_defend < ARP_DEFEND_MS) {
		last_defend = 0;
		dhcp_conflict();
		return;
	}
	last_defend = now;
	arp_announce();
}

void arp_input(const uint8_t *p, size_t len)
{
	net_stats.arp_in++;
	if (len < ARP_LEN || rd16(p) != 1 || rd16(p + 2) != ETH_P_IPV4 ||
	    p[4] != ETH_ALEN || p[5] != 4) {
		net_stats.rx_dropped++;
		return;
	}
	uint16_t op = rd16(p + 6);
	const uint8_t *sha = p + 8;
	uint32_t spa = rd32(p + 14);
	uint32_t tpa = rd32(p + 24);
	uint32_t me = net_ip();

	if (op != 1 && op != 2) {
		net_stats.rx_dropped++;
		return;
	}
	if (sha[0] & 1) { /* multicast/broadcast sender: bogus */
		net_stats.rx_dropped++;
		return;
	}
	if (memcmp(sha, net_mac(), ETH_ALEN) == 0)
		return;		/* our own (looped back) */
	dhcp_arp_seen(spa, tpa);	/* a probe of an offered address */
	if (me && spa == me) {
		if (memcmp(sha, net_mac(), ETH_ALEN) != 0)
			conflict(sha);
		return;
	}
	/* The subnet broadcast is nobody's address. */
	if (me && spa == (me | ~net_mask()))
		return;
	/* RFC 826 merge, hardened: a known sender is refreshed when its MAC
	 * is unchanged, or changed by a reply to a request of ours (an
	 * incomplete entry, or a refresh in flight); a new one is added only
	 * when the packet is addressed to us. */
	if (spa != 0 && spa != IP_BROADCAST) {
		struct arp_entry *e = find(spa);
		if (e) {
			bool asked = e->state == ARP_INCOMPLETE ||
				     (op == 2 && e->tries > 0 && tpa == me);
			if (asked || memcmp(e->mac, sha, ETH_ALEN) == 0)
				learn(e, spa, sha);
			else
				net_stats.rx_dropped++;	/* unsolicited change */
		} else if (me && tpa == me) {
			learn(alloc(), spa, sha);
		}
	}
	if (op == 1 && me && tpa == me)
		send_arp(2, sha, spa, sha, me);
}

int arp_lookup(uint32_t ip, uint8_t mac[ETH_ALEN])
{
	struct arp_entry *e = find(ip);
	if (!e || e->state != ARP_RESOLVED || net_now_ms() >= e->deadline)
		return 0;
	memcpy(mac, e->mac, ETH_ALEN);
	return 1;
}

int arp_output(uint32_t nh, const void *pkt, size_t len)
{
	uint8_t mac[ETH_ALEN];
	if (len > ETH_MTU || nh == 0) {
		net_stats.tx_dropped++;
		return -1;
	}
	struct arp_entry *e = find(nh);
	if (arp_lookup(nh, mac)) {
		/* tries counts refresh requests of a resolved entry */
		if (e->tries == 0 &&
		    e->deadline - net_now_ms() < ARP_REFRESH_MS) {
			e->tries = 1;
			arp_request(nh);
		}
		return eth_output(mac, ETH_P_IPV4, pkt, len);
	}

	if (!e || e->state != ARP_INCOMPLETE) {
		if (!e)
			e = alloc();
		e->ip = nh;
		e->state = ARP_INCOMPLETE;
		e->tries = 1;
		e->deadline = net_now_ms() + ARP_RETRY_MS;
		arp_request(nh);
	}
	/* keep this packet in a free slot, else in the oldest one's */
	struct arp_pending *q = NULL;
	for (int i = 0; i < ARP_PENDING; i++) {
		if (pending[i].nh == 0) {
			q = &pending[i];
			break;
		}
		if (!q || pending[i].seq - q->seq > (1u << 31))
			q = &pending[i];
	}
	if (q->nh)
		net_stats.tx_dropped++; /* the oldest waiting packet */
	q->nh = nh;
	q->seq = pending_seq++;
	q->len = (uint16_t)len;
	memcpy(q->pkt, pkt, len);
	return 0;
}

void arp_timer(uint64_t now)
{
	for (int i = 0; i < ARP_ENTRIES; i++) {
		struct arp_entry *e = &cache[i];
		if (e->state == ARP_FREE || now < e->deadline)
			continue;
		if (e->state == ARP_RESOLVED) {
			e->state = ARP_FREE; /* expired: resolve again on use */
		} else if (e->tries >= ARP_TRIES) {
			drop_pending(e->ip);
			e->state = ARP_FREE;
		} else {
			e->tries++;
			e->deadline = now + ARP_RETRY_MS;
			arp_request(e->ip);
		}
	}
}
