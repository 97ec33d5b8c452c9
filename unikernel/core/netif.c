/*
 * netif.c - the one interface: its addresses, the main loop.
 */
#include "net.h"
#include "platform.h"

struct net_stats net_stats;

static uint8_t if_mac[ETH_ALEN];
static uint32_t if_ip, if_mask, if_gw;

/* Main-loop tick: timers run at least this often. */
#define NET_TICK_MS 10
/* Idle (no connection, nothing waiting for ARP, DHCP not mid-exchange) the
 * poll sleeps until a frame arrives or this long passes: the timers left
 * then (lease renewal, ARP ageing, TIME_WAIT) count in seconds. A 10 ms
 * tick woke each idle unikernel 100 times a second, which starved a
 * software-emulated dom0 running twenty of them. */
#define NET_IDLE_TICK_MS 1000

uint32_t net_ip(void) { return if_ip; }
uint32_t net_mask(void) { return if_mask; }
uint32_t net_gw(void) { return if_gw; }
const uint8_t *net_mac(void) { return if_mac; }
uint64_t net_now_ms(void) { return plat_now_ms(); }

char *ip_str(uint32_t ip, char buf[16])
{
	fmt(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255,
	    (ip >> 8) & 255, ip & 255);
	return buf;
}

void net_init(void)
{
	plat_mac(if_mac);
	if_ip = if_mask = if_gw = 0;
	memset(&net_stats, 0, sizeof(net_stats));
	arp_reset();
	dhcp_reset();
	/* other UDP bindings stay: apps bind before calling net_run() */
}

void net_configure(uint32_t ip, uint32_t mask, uint32_t gw)
{
	bool changed = ip != if_ip || mask != if_mask || gw != if_gw;
	if (ip == 0)
		mask = gw = 0;
	if (ip != if_ip)
		arp_reset(); /* cached neighbours may be on another subnet */
	if_ip = ip;
	if_mask = mask;
	if_gw = gw;
	if (!changed)
		return;
	if (ip == 0) {
		printk("IP address: none\n");
		return;
	}
	char a[16], m[16], g[16];
	printk("IP address: %s netmask %s gateway %s\n", ip_str(ip, a),
	       ip_str(mask, m), gw ? ip_str(gw, g) : "none");
	arp_announce();
}

int net_poll(uint32_t timeout_ms)
{
	/* one byte more than the biggest frame, to see oversized ones */
	static uint8_t rx[ETH_FRAME_MAX + 1];
	int n = plat_net_recv(rx, sizeof(rx), timeout_ms);
	if (n > 0)
		eth_input(rx, (size_t)n);
	uint64_t now = net_now_ms();
	arp_timer(now);
	dhcp_timer(now);
	tcp_timer(now);
	return n < 0 ? -1 : 0;
}

static uint32_t net_tick(void)
{
	if (tcp_busy() || arp_busy() || dhcp_busy())
		return NET_TICK_MS;
	/* idle, but not past DHCP's next deadline (T1, T2, lease end) */
	uint64_t now = net_now_ms(), due = dhcp_deadline();
	if (due <= now)
		return 0;
	return due - now < NET_IDLE_TICK_MS ? (uint32_t)(due - now)
					    : NET_IDLE_TICK_MS;
}

void net_run(void)
{
	struct plat_netcfg cfg;

	net_init();
	plat_netcfg(&cfg);
	{
		const uint8_t *m = if_mac;
		printk("net: mac %02x:%02x:%02x:%02x:%02x:%02x, %s\n", m[0],
		       m[1], m[2], m[3], m[4], m[5],
		       cfg.dhcp ? "dhcp" : "static");
	}
	if (cfg.dhcp)
		dhcp_start();
	else
		net_configure(cfg.ip, cfg.mask, cfg.gw);

	while (!plat_stopping()) {
		if (net_poll(net_tick()) < 0) {
			/* the interface is gone: nothing left to do or send */
			printk("net: device error, exiting\n");
			plat_exit(1);
		}
	}

	dhcp_stop();
	/* let a DHCPRELEASE waiting for ARP go out (at most ~0.5 s) */
	for (int i = 0; i < 50 && arp_busy(); i++)
		if (net_poll(NET_TICK_MS) < 0)
			break;
	printk("net: rx %u tx %u dropped rx %u tx %u bad checksums %u\n",
	       net_stats.rx_frames, net_stats.tx_frames, net_stats.rx_dropped,
	       net_stats.tx_dropped, net_stats.bad_csum);
}

/* Apps without TCP (ping) link these; core/tcp.c overrides them. */
__attribute__((weak)) void tcp_input(uint32_t src, uint32_t dst,
				     const uint8_t *seg, size_t len)
{
	UNUSED(src);
	UNUSED(dst);
	UNUSED(seg);
	UNUSED(len);
	net_stats.rx_dropped++;
}

__attribute__((weak)) void tcp_timer(uint64_t now_ms)
{
	UNUSED(now_ms);
}

__attribute__((weak)) bool tcp_busy(void)
{
	return false;
}
