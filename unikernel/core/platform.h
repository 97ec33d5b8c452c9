/*
 * platform.h - what a platform (host TAP process, Xen PV domain) gives the
 * core. Everything here is implemented once per platform: host/plat_host.c
 * and xen/. One network interface, frames are whole Ethernet
 * frames without FCS.
 */
#ifndef PLATFORM_H
#define PLATFORM_H

#include "rt.h"

/* Monotonic clock in milliseconds (arbitrary origin). */
uint64_t plat_now_ms(void);

/* Write n bytes to the console (no NUL needed, no newline added). */
void plat_console_write(const char *s, size_t n);

/* Send one Ethernet frame (14-byte header included, no FCS).
 * Returns 0 when sent, <0 when dropped. */
int plat_net_send(const void *frame, size_t len);

/* Wait up to timeout_ms for one received frame and copy it into buf.
 * Returns its length (>0), 0 on timeout (or when the stop flag got set
 * while waiting), <0 on error. Frames longer than cap are truncated to
 * cap bytes (the stack then drops them on its length checks). */
int plat_net_recv(void *buf, size_t cap, uint32_t timeout_ms);

/* The interface's MAC address. */
void plat_mac(uint8_t mac[6]);

/* n random bytes (seeded from the platform's entropy; not for keys). */
void plat_random(void *buf, size_t n);

/* True once the platform was asked to stop (SIGINT/SIGTERM on the host,
 * shutdown request from xenstore on Xen). */
bool plat_stopping(void);

/* Network configuration chosen by the user. Addresses are host order. */
struct plat_netcfg {
	bool dhcp;     /* true: run the DHCP client, ignore the rest */
	uint32_t ip;   /* static address */
	uint32_t mask; /* static netmask, e.g. 0xffffff00 */
	uint32_t gw;   /* static default gateway, 0 for none */
};
void plat_netcfg(struct plat_netcfg *cfg);

/* The first block device, read-only (Xen: blkfront on the domain's first
 * disk, e.g. xvdb; host: the image file given with --disk FILE).
 * plat_block_info returns 0 and fills the geometry when a disk is
 * attached, -1 when there is none. plat_block_read reads count sectors
 * of *sector_size bytes from sector into buf; 0 on success, -1 on an error
 * or a range past the end. Only apps that use a disk call these. */
int plat_block_info(uint64_t *sectors, uint32_t *sector_size);
int plat_block_read(uint64_t sector, void *buf, size_t count);

/* The kernel command line and the most bytes it spans (*cap), for
 * core/cmdline.h (Xen: xl's `extra=`; host: "", its options are argv). */
const char *plat_cmdline(size_t *cap);

/* Leave the unikernel with an exit status. */
void plat_exit(int code) __attribute__((noreturn));

#endif
