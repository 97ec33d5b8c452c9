/*
 * setup.c - start of day in C, and the platform interface (core/platform.h)
 * that is not networking: clock, console, stop flag (randomness: entropy.c), network
 * configuration from the command line, exit.
 *
 *   PV:  boot.S _start -> start_kernel(start_info) -> start_kernel_common
 *   PVH: boot.S pvh_start -> pvh.c start_kernel_pvh(hvm_start_info)
 *        -> start_kernel_common
 *   start_kernel_common -> app_main() -> plat_exit(0)
 *
 * Kernel command line (xl config `extra="..."`): "ip=A.B.C.D/N gw=A.B.C.D"
 * gives a static address; without ip= the stack runs DHCP. "ts" prefixes
 * console lines with the seconds since boot. "blkdump" prints the first
 * bytes of the first disk's sector 0 (blkfront check). "selftest=null" and
 * "selftest=ud" fault on purpose before the app starts (to see the fault
 * report on the console).
 */
#include "../core/app.h"
#include "../core/cmdline.h"
#include "../core/platform.h"
#include "hypercall.h"
#include "xenplat.h"

start_info_t start_info;
shared_info_t *shared_info;

/* Placeholder page in our image; its mapping (PV) or its gfn (PVH) is
 * replaced by the shared info frame. */
uint8_t shared_info_page[PAGE_SIZE] __attribute__((aligned(4096)));

static struct plat_netcfg netcfg = { .dhcp = true };
static bool stop_flag;

void xen_crash(const char *why)
{
	if (why)
		printk("*** %s: crashing the domain\n", why);
	console_flush();
	struct sched_shutdown s = { .reason = SHUTDOWN_crash };
	for (;;)
		HYPERVISOR_sched_op(SCHEDOP_shutdown, &s);
}

uint64_t plat_now_ms(void)
{
	return xen_time_ns() / 1000000ULL;
}

/* Kernel command line "ts": prefix console lines with [seconds since
 * boot] (for timing the boot from the console log). */
static bool console_ts;
static struct cmdline_val selftest; /* "null" or "ud": fault on purpose (tests) */
static bool blkdump; /* print the first sector of the first disk at boot */
static uint64_t boot_ns;

void plat_console_write(const char *s, size_t n)
{
	static bool at_line_start = true;
	if (!console_ts) {
		console_write(s, n);
		return;
	}
	while (n > 0) {
		if (at_line_start) {
			char ts[24];
			uint64_t ms = (xen_time_ns() - boot_ns) / 1000000ULL;
			int k = fmt(ts, sizeof(ts), "[%4lu.%03lu] ",
				    (unsigned long)(ms / 1000), (unsigned long)(ms % 1000));
			console_write(ts, (size_t)k);
		}
		size_t k = 0;
		while (k < n && s[k] != '\n')
			k++;
		if (k < n)
			k++; /* include the newline */
		console_write(s, k);
		at_line_start = s[k - 1] == '\n';
		s += k;
		n -= k;
	}
}

void plat_mac(uint8_t mac[6])
{
	netfront_mac(mac);
}

/* The toolstack asks for shutdown by writing control/shutdown
 * ("poweroff", "reboot", "halt"). Polled at most once a second. */
bool plat_stopping(void)
{
	static uint64_t next_check;
	if (stop_flag)
		return true;
	uint64_t now = plat_now_ms();
	if (now < next_check)
		return false;
	next_check = now + 1000;
	char req[16];
	if (xs_read("control/shutdown", req, sizeof(req)) > 0) {
		printk("shutdown requested: %s\n", req);
		xs_write("control/shutdown", ""); /* acknowledge */
		stop_flag = true;
	}
	return stop_flag;
}

void plat_netcfg(struct plat_netcfg *cfg)
{
	*cfg = netcfg;
}

void plat_exit(int code)
{
	netfront_stats();
	printk("exit status %d\n", code);
	console_flush();
	struct sched_shutdown s = { .reason = code == 0 ? SHUTDOWN_poweroff
							  : SHUTDOWN_crash };
	for (;;)
		HYPERVISOR_sched_op(SCHEDOP_shutdown, &s);
}

/* The words of the command line this file reads (the others: vchan.c and
 * the apps, each through core/cmdline.h). A bad value is refused whole
 * and said on the console; the default stays. */
static void parse_cmdline(const char *line, size_t cap)
{
	struct cmdline_val v;
	uint32_t ip;
	unsigned plen;
	console_ts = cmdline_flag(line, cap, "ts"); /* first: it stamps the lines below */
	blkdump = cmdline_flag(line, cap, "blkdump");
	if (cmdline_get(line, cap, "ip", &v)) {
		if (cmdline_ipv4_prefix(v, &ip, &plen) == 0 && ip) {
			netcfg.dhcp = false;
			netcfg.ip = ip;
			netcfg.mask = plen == 32 ? 0xffffffffu : ~(0xffffffffu >> plen);
		} else {
			printk("cmdline: bad ip= ignored (A.B.C.D/N, N 1..32)\n");
		}
	}
	if (cmdline_get(line, cap, "gw", &v)) {
		if (cmdline_ipv4(v, &ip) == 0)
			netcfg.gw = ip;
		else
			printk("cmdline: bad gw= ignored (A.B.C.D)\n");
	}
	if (cmdline_get(line, cap, "selftest", &v)) {
		if (cmdline_is(v, "null") || cmdline_is(v, "ud"))
			selftest = v;
		else
			printk("cmdline: bad selftest= ignored (null, ud)\n");
	}
}

const char *plat_cmdline(size_t *cap)
{
	*cap = sizeof(start_info.cmd_line);
	return (const char *)start_info.cmd_line;
}

static const char *domain_name(void)
{
	static char name[64];
	if (xs_read("name", name, sizeof(name)) <= 0)
		return "?";
	return name;
}

__attribute__((noreturn, used)) void start_kernel(start_info_t *si)
{
	start_info = *si;
	start_info.cmd_line[MAX_GUEST_CMDLINE - 1] = '\0';

	/* map the shared info frame over our placeholder page */
	if (HYPERVISOR_update_va_mapping((unsigned long)shared_info_page,
					 start_info.shared_info | 7, /* P|RW|U */
					 UVMF_INVLPG) != 0)
		xen_crash("cannot map shared info");
	start_kernel_common();
}

/* Both entries end here with start_info filled in and the shared info
 * page in place. */
__attribute__((noreturn)) void start_kernel_common(void)
{
	shared_info = (shared_info_t *)(void *)shared_info_page;
	/* no upcalls: we poll event channels (evtchn.c) */
	ACCESS_ONCE(shared_info->vcpu_info[0].evtchn_upcall_mask) = 1;

	boot_ns = xen_time_ns();
	traps_init();
	/* unmap page 0 (entry code and notes only, see xen.lds): NULL
	 * pointer accesses now fault and get reported (PVH: boot.S never
	 * mapped it) */
	if (!xen_pvh && HYPERVISOR_update_va_mapping(0, 0, UVMF_INVLPG) != 0)
		xen_crash("cannot unmap page 0");
	console_init();
	mm_init();
	xs_init();
	if (gnttab_init() < 0)
		xen_crash("no grant table");
	parse_cmdline((const char *)start_info.cmd_line, sizeof(start_info.cmd_line));

	printk("mirage-env unikernel: app %s, xen %s platform, %lu pages (%lu free), domain %s\n",
	       app_name, xen_pvh ? "PVH" : "PV", start_info.nr_pages, mm_free_pages(), domain_name());
	if (blkdump)
		blkfront_dump();
	if (cmdline_is(selftest, "null")) {
		printk("selftest: reading address 0\n");
		printk("read %d\n", *(volatile int *)0);
	} else if (cmdline_is(selftest, "ud")) {
		printk("selftest: invalid opcode\n");
		__asm__ __volatile__("ud2");
	}
	app_main();
	printk("%s: exit\n", app_name);
	plat_exit(0);
}
