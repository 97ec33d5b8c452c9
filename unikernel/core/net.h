/*
 * net.h - the network stack shared by every subsystem and app.
 *
 * One interface, flat globals (Mini-OS style). IPv4 addresses are
 * host-order uint32_t everywhere in the API (0xc0a83801 = 192.168.56.1);
 * on the wire they are read/written with rd32/wr32. All parsers take a
 * pointer and a length and check every length before reading.
 */
#ifndef NET_H
#define NET_H

#include "rt.h"

/* ---- Sizes and numbers ------------------------------------------------ */
#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_MTU 1500                   /* IP datagram max */
#define ETH_FRAME_MAX (ETH_HLEN + ETH_MTU)
#define ETH_P_IPV4 0x0800
#define ETH_P_ARP 0x0806

#define IP_HLEN 20                     /* we send no options */
#define IP_MAX_PAYLOAD (ETH_MTU - IP_HLEN) /* 1480: biggest unfragmented payload */
#define IP_MAX_DATAGRAM 4480 /* biggest payload reassembled or sent in fragments */
#define IP_PROTO_ICMP 1
#define IP_PROTO_TCP 6
#define IP_PROTO_UDP 17
#define IP_BROADCAST 0xffffffffu

#define UDP_HLEN 8
#define UDP_MAX_PAYLOAD (IP_MAX_PAYLOAD - UDP_HLEN)

/* ---- Big-endian access (unaligned-safe) ------------------------------- */
static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ---- Internet checksum (RFC 1071) ------------------------------------- */
/* Add n bytes at p, read as big-endian 16-bit words (odd tail padded with
 * zero), to the running 32-bit sum. Chain calls for pseudo-headers; only
 * the last chunk may have odd length. */
uint32_t inet_sum(const void *p, size_t n, uint32_t sum);
/* Fold carries and complement: the value to store with wr16() in a
 * checksum field (computed with that field zero). Over data that includes
 * a correct checksum field, inet_fold(inet_sum(...)) == 0. */
uint16_t inet_fold(uint32_t sum);
/* Sum of the TCP/UDP pseudo-header (src, dst, zero, proto, length). */
uint32_t inet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len);

/* Print an address into buf (at least 16 bytes): "a.b.c.d". */
char *ip_str(uint32_t ip, char buf[16]);

/* ---- Interface state --------------------------------------------------- */
uint32_t net_ip(void);     /* our address, 0 until configured */
uint32_t net_mask(void);   /* netmask, 0 until configured */
uint32_t net_gw(void);     /* default gateway, 0 for none */
const uint8_t *net_mac(void);
uint64_t net_now_ms(void); /* the platform clock */

/* Read the MAC from the platform, clear the address, ARP cache, DHCP
 * client and statistics (other UDP bindings stay). Called by net_run(); tests and fuzzers
 * may call it directly, then net_configure() a static address. */
void net_init(void);
/* Set (ip != 0) or clear (ip == 0) the interface address. When the
 * address changes it prints the console line
 *   "IP address: a.b.c.d netmask m.m.m.m gateway g.g.g.g" */
void net_configure(uint32_t ip, uint32_t mask, uint32_t gw);

/* Configure the interface (DHCP or static, from plat_netcfg), then loop:
 * receive frames into eth_input, run timers (ARP, DHCP, tcp_timer) until
 * plat_stopping(). Sends a DHCPRELEASE on the way out when leased.
 * A device error ends the unikernel with plat_exit(1). */
void net_run(void);
/* One step of that loop: wait up to timeout_ms for a frame, handle it,
 * run timers. Returns <0 when the platform reported an error. */
int net_poll(uint32_t timeout_ms);

/* ---- Ethernet ---------------------------------------------------------- */
/* Entry of every received frame (fuzzers feed this). */
void eth_input(const uint8_t *frame, size_t len);
/* Build and send a frame to dst with our MAC as source. */
int eth_output(const uint8_t dst[ETH_ALEN], uint16_t type,
	       const void *payload, size_t len);
extern const uint8_t eth_broadcast[ETH_ALEN];

/* ---- ARP --------------------------------------------------------------- */
void arp_input(const uint8_t *pkt, size_t len);
/* Look ip up in the cache: 1 and mac filled when known, 0 otherwise. */
int arp_lookup(uint32_t ip, uint8_t mac[ETH_ALEN]);
/* Send an IPv4 packet (full IP header included) to next hop nh: at once
 * when nh is cached, else send a request and keep this packet as the one
 * pending packet for nh (an older pending one is dropped). 0 sent or
 * queued, <0 dropped. */
int arp_output(uint32_t nh, const void *ippkt, size_t len);
void arp_request(uint32_t ip);
void arp_announce(void); /* gratuitous ARP for our address */
void arp_probe(uint32_t ip); /* RFC 5227 probe (sender 0.0.0.0) */
void arp_timer(uint64_t now_ms);
void arp_reset(void);
bool arp_busy(void); /* a packet still waits for resolution */

/* ---- IPv4 -------------------------------------------------------------- */
void ipv4_input(const uint8_t *pkt, size_t len);
/* Send payload (len <= IP_MAX_DATAGRAM; fragmented above IP_MAX_PAYLOAD) to dst with protocol proto from
 * net_ip() (0.0.0.0 before configuration). dst 255.255.255.255 and the
 * subnet broadcast go to the Ethernet broadcast address; on-link
 * destinations are resolved directly, others through the gateway.
 * 0 sent/queued, <0 dropped. */
int ipv4_output(uint32_t dst, uint8_t proto, const void *payload, size_t len);

/* ---- ICMP -------------------------------------------------------------- */
void icmp_input(uint32_t src, uint32_t dst, const uint8_t *msg, size_t len);

/* ---- UDP --------------------------------------------------------------- */
typedef void (*udp_handler)(uint32_t src, uint16_t sport, uint32_t dst,
			    uint16_t dport, const uint8_t *data, size_t len);
#define UDP_MAX_BINDINGS 8
/* Deliver datagrams for local port to h (h NULL unbinds). 0 ok, <0 full. */
int udp_bind(uint16_t port, udp_handler h);
void udp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len);
/* Send one datagram (len <= UDP_MAX_PAYLOAD) from net_ip():sport. */
int udp_output(uint32_t dst, uint16_t sport, uint16_t dport,
	       const void *data, size_t len);

/* ---- DHCP client (RFC 2131) ------------------------------------------- */
void dhcp_start(void);
void dhcp_stop(void); /* sends DHCPRELEASE when bound */
void dhcp_reset(void); /* forget everything, send nothing */
void dhcp_timer(uint64_t now_ms);
bool dhcp_bound(void);
bool dhcp_busy(void); /* an exchange is under way (its retries need a tick) */
uint64_t dhcp_deadline(void); /* next time dhcp_timer has work (ms), or UINT64_MAX */
/* From arp.c: an ARP packet from another host (RFC 5227 probing). */
void dhcp_arp_seen(uint32_t spa, uint32_t tpa);
/* From arp.c: another host insists on our address: give it up. */
void dhcp_conflict(void);

/* ---- TCP (core/tcp.c, helper B) -------------------------------------- */
/* netif.c has weak no-op versions so apps without TCP (ping) link. */
void tcp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len);
void tcp_timer(uint64_t now_ms);
bool tcp_busy(void); /* some connection is not closed (its timers need a tick) */

/* Statistics, printed on exit and read by tests. */
struct net_stats {
	uint32_t rx_frames, tx_frames, rx_dropped, tx_dropped;
	uint32_t bad_csum, arp_in, icmp_echo, udp_in, frags;
};
extern struct net_stats net_stats;

#endif
