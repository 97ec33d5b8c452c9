/*
 * setup.c - start of day in C, and the platform interface (core/platform.h)
 * that is not networking: clock, console, stop flag (randomness: entropy.c), network
 * configuration from the command line, exit.
 *
 *   boot.S _start -> start_kernel(start_info) -> app_main() -> plat_exit(0)
 *
 * Kernel command line (xl config `extra="..."`): "ip=A.B.C.D/N gw=A.B.C.D"
 * gives a static address; without ip= the stack runs DHCP. "ts" prefixes
 * console lines with the seconds since boot. "selftest=null" and
 * "selftest=ud" fault on purpose before the app starts (to see the fault
 * report on the console).
 */
#include "../core/app.h"
#include "../core/platform.h"
#include "hypercall.h"
#include "xenplat.h"

start_info_t start_info;
shared_info_t *shared_info;

/* Placeholder page in our image; its mapping is replaced by the shared
 * info frame. */
static uint8_t shared_info_page[PAGE_SIZE] __attribute__((aligned(4096)));

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
static const char *selftest; /* "null" or "ud": fault on purpose (tests) */
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

/* "a.b.c.d" at s (up to a space, '/' or end) -> host order; end in *end */
static int parse_ip(const char *s, uint32_t *ip, const char **end)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned int part = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			part = part * 10 + (unsigned int)(*s++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || part > 255)
			return -1;
		v = v << 8 | part;
		if (i < 3 && *s++ != '.')
			return -1;
	}
	*ip = v;
	*end = s;
	return 0;
}

static void parse_cmdline(const char *c)
{
	while (*c) {
		while (*c == ' ')
			c++;
		const char *end;
		uint32_t ip;
		if (!strncmp(c, "ip=", 3) && parse_ip(c + 3, &ip, &end) == 0 && ip) {
			unsigned int plen = 24;
			if (*end == '/') {
				plen = 0;
				end++;
				while (*end >= '0' && *end <= '9' && plen <= 32)
					plen = plen * 10 + (unsigned int)(*end++ - '0');
			}
			if (plen >= 1 && plen <= 32 && (*end == ' ' || !*end)) {
				netcfg.dhcp = false;
				netcfg.ip = ip;
				netcfg.mask = plen == 32 ? 0xffffffffu : ~(0xffffffffu >> plen);
			} else {
				printk("cmdline: bad ip= ignored\n");
			}
			c = end;
		} else if (!strncmp(c, "ts", 2) && (c[2] == ' ' || !c[2])) {
			console_ts = true;
		} else if (!strncmp(c, "selftest=", 9)) {
			selftest = c + 9;
		} else if (!strncmp(c, "gw=", 3) && parse_ip(c + 3, &ip, &end) == 0 &&
			   (*end == ' ' || !*end)) {
			netcfg.gw = ip;
			c = end;
		}
		while (*c && *c != ' ')
			c++;
	}
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
	shared_info = (shared_info_t *)(void *)shared_info_page;
	/* no upcalls: we poll event channels (evtchn.c) */
	ACCESS_ONCE(shared_info->vcpu_info[0].evtchn_upcall_mask) = 1;

	boot_ns = xen_time_ns();
	traps_init();
	/* unmap page 0 (entry code and notes only, see xen.lds): NULL
	 * pointer accesses now fault and get reported */
	if (HYPERVISOR_update_va_mapping(0, 0, UVMF_INVLPG) != 0)
		xen_crash("cannot unmap page 0");
	console_init();
	mm_init();
	xs_init();
	if (gnttab_init() < 0)
		xen_crash("no grant table");
	parse_cmdline((const char *)start_info.cmd_line);

	printk("mirage-env unikernel: app %s, xen platform, %lu pages (%lu free), domain %s\n",
	       app_name, start_info.nr_pages, mm_free_pages(), domain_name());
	if (selftest && !strncmp(selftest, "null", 4)) {
		printk("selftest: reading address 0\n");
		printk("read %d\n", *(volatile int *)0);
	} else if (selftest && !strncmp(selftest, "ud", 2)) {
		printk("selftest: invalid opcode\n");
		__asm__ __volatile__("ud2");
	}
	app_main();
	printk("%s: exit\n", app_name);
	plat_exit(0);
}
