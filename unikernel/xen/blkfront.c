/*
 * blkfront.c - the PV block device on Xen: the xenstore handshake with
 * blkback, then plat_block_info/plat_block_read over blkfront_ring.c.
 * Read-only (no BLKIF_OP_WRITE: the apps only read their store).
 *
 * Handshake (xen/io/blkif.h, xenbus states from xen/io/xenbus.h), on the
 * first entry of device/vbd/ (the toolstack names it by virtual device
 * number, e.g. 51728 for xvdb):
 *   read backend, backend-id; wait for the backend's state InitWait (2)
 *   (or Connected);
 *   grant the ring and data pages, allocate an unbound event channel;
 *   write ring-ref, event-channel, protocol=x86_64-abi, state=Initialised (3);
 *   wait for the backend's state Connected (4); read sectors, sector-size,
 *   info; write state=Connected (4).
 * Without a vbd, plat_block_info returns -1 at once (one xenstore read).
 */
#include "../core/platform.h"
#include "blkfront.h"
#include "xenplat.h"
#include <xen/io/protocols.h>
#include <xen/io/xenbus.h>

#define HANDSHAKE_TIMEOUT_NS (30ULL * 1000000000ULL)
#define IO_TIMEOUT_NS (10ULL * 1000000000ULL)

static struct blkfront bf;
static bool bf_up;
static char vbd[48]; /* "device/vbd/<id>/" */

int bf_grant(uint16_t domid, void *page, bool readonly)
{
	return gnttab_grant(domid, virt_to_mfn(page), readonly);
}

void bf_notify(uint32_t port)
{
	evtchn_notify(port);
}

int bf_wait(uint32_t port)
{
	uint64_t deadline = xen_time_ns() + IO_TIMEOUT_NS;
	evtchn_poll(port, deadline);
	/* cleared after the poll and before the next look at the ring: an
	 * event after that look sets it again and the next poll returns */
	evtchn_clear(port);
	return xen_time_ns() >= deadline ? -1 : 0;
}

/* Poll path until its value is want_a or want_b; <0 past Closing or
 * after the deadline. */
static long wait_state(const char *path, long want_a, long want_b, uint64_t deadline)
{
	for (;;) {
		long st = xs_read_uint(path);
		if (st == want_a || st == want_b)
			return st;
		if (st >= XenbusStateClosing || xen_time_ns() >= deadline)
			return -1;
		evtchn_poll(start_info.store_evtchn, xen_time_ns() + 5000000ULL);
		evtchn_clear(start_info.store_evtchn);
	}
}

static int write_key(const char *key, const char *val)
{
	char path[96];
	fmt(path, sizeof(path), "%s%s", vbd, key);
	return xs_write(path, val);
}

static int write_uint(const char *key, unsigned long v)
{
	char val[24];
	fmt(val, sizeof(val), "%lu", v);
	return write_key(key, val);
}

static int blkfront_init(void)
{
	static bool tried;
	char list[256], backend[128], path[200];
	if (tried)
		return bf_up ? 0 : -1;
	tried = true;

	/* the first vbd: ids are decimal numbers of a few digits */
	int n = xs_directory("device/vbd", list, sizeof(list));
	if (n <= 0 || strlen(list) == 0 || strlen(list) > 10)
		return -1; /* no disk attached */
	long handle = 0;
	for (const char *c = list; *c; c++) {
		if (*c < '0' || *c > '9')
			return -1;
		handle = handle * 10 + (*c - '0');
	}
	fmt(vbd, sizeof(vbd), "device/vbd/%s/", list);

	uint64_t t0 = xen_time_ns(), deadline = t0 + HANDSHAKE_TIMEOUT_NS;
	fmt(path, sizeof(path), "%sbackend-id", vbd);
	long bid = xs_read_uint(path);
	fmt(path, sizeof(path), "%sbackend", vbd);
	if (bid < 0 || bid >= DOMID_FIRST_RESERVED ||
	    xs_read(path, backend, sizeof(backend) - 24) <= 0) {
		printk("blkfront: %s has no usable backend\n", vbd);
		return -1;
	}
	fmt(path, sizeof(path), "%s/state", backend);
	if (wait_state(path, XenbusStateInitWait, XenbusStateConnected, deadline) < 0) {
		printk("blkfront: backend %s not ready\n", backend);
		return -1;
	}

	uint8_t *pages = NULL;
	for (int i = 0; i < BF_PAGES; i++) {
		uint8_t *p = page_alloc(); /* consecutive: a bump allocator */
		if (!p || (pages && p != pages + (size_t)i * PAGE_SIZE)) {
			printk("blkfront: out of memory for the ring\n");
			return -1;
		}
		if (!pages)
			pages = p;
	}
	evtchn_port_t port;
	if (evtchn_alloc_unbound((domid_t)bid, &port) != 0 ||
	    bf_init(&bf, (uint16_t)bid, (uint16_t)handle, port, pages, 0) < 0) {
		printk("blkfront: no event channel or grant references\n");
		return -1;
	}
	if (write_uint("ring-ref", bf.ring_ref) || write_uint("event-channel", port) ||
	    write_key("protocol", XEN_IO_PROTO_ABI_X86_64) ||
	    write_uint("state", XenbusStateInitialised)) {
		printk("blkfront: xenstore writes failed\n");
		return -1;
	}
	if (wait_state(path, XenbusStateConnected, XenbusStateConnected, deadline) < 0) {
		printk("blkfront: backend did not connect\n");
		return -1;
	}
	fmt(path, sizeof(path), "%s/sectors", backend);
	long sectors = xs_read_uint(path);
	fmt(path, sizeof(path), "%s/sector-size", backend);
	long ssize = xs_read_uint(path);
	fmt(path, sizeof(path), "%s/info", backend);
	long info = xs_read_uint(path);
	/* without feature-large-sector-size every quantity is 512-byte
	 * sectors; a backend announcing another size is not followed */
	if (sectors <= 0 || ssize != BF_SECT) {
		printk("blkfront: backend geometry refused (sectors %ld, sector-size %ld)\n",
		       sectors, ssize);
		return -1;
	}
	bf.sectors = (uint64_t)sectors;
	if (write_uint("state", XenbusStateConnected)) {
		printk("blkfront: xenstore writes failed\n");
		return -1;
	}
	printk("blkfront: %s connected to backend domain %ld: %ld sectors of %ld bytes%s, handshake %lu ms\n",
	       vbd, bid, sectors, ssize, info > 0 && (info & VDISK_READONLY) ? " (read-only)" : "",
	       (unsigned long)((xen_time_ns() - t0) / 1000000));
	bf_up = true;
	return 0;
}

int plat_block_info(uint64_t *sectors, uint32_t *sector_size)
{
	if (blkfront_init() < 0)
		return -1;
	*sectors = bf.sectors;
	*sector_size = BF_SECT;
	return 0;
}

int plat_block_read(uint64_t sector, void *buf, size_t count)
{
	if (blkfront_init() < 0)
		return -1;
	if (bf_read(&bf, sector, buf, count) < 0) {
		printk("blkfront: read of %lu sectors at %lu failed (errors %u, bad ids %u, bad ops %u, bad prod %u, timeouts %u)\n",
		       (unsigned long)count, (unsigned long)sector, bf.st.err_status,
		       bf.st.bad_id, bf.st.bad_op, bf.st.bad_prod, bf.st.timeouts);
		return -1;
	}
	return 0;
}

void blkfront_dump(void)
{
	static uint8_t sect[BF_SECT];
	uint64_t n;
	uint32_t ss;
	if (plat_block_info(&n, &ss) < 0) {
		printk("blkdump: no disk\n");
		return;
	}
	if (plat_block_read(0, sect, 1) < 0)
		return;
	for (int row = 0; row < 4; row++) {
		char line[80];
		int k = fmt(line, sizeof(line), "blkdump %03x:", row * 16);
		for (int i = 0; i < 16; i++)
			k += fmt(line + k, sizeof(line) - (size_t)k, " %02x", sect[row * 16 + i]);
		printk("%s\n", line);
	}
	printk("blkdump: bytes 510-511 %02x %02x\n", sect[510], sect[511]);
}
