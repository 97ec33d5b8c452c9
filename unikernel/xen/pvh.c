/*
 * pvh.c - start of day on PVH: find what PV's start_info hands over.
 *
 *   boot.S pvh_start (32-bit, paging off) -> long mode -> start_kernel_pvh
 *
 * Contract: docs/misc/pvh.pandoc, xen/arch-x86/hvm/start_info.h.
 *   hypercalls   CPUID leaves 0x40000000.. (step 0x100) signed "XenVMMXenVMM";
 *                leaf base+2 names the MSR that makes Xen write the hypercall
 *                page at the physical address we give it;
 *   shared info  XENMEM_add_to_physmap(XENMAPSPACE_shared_info) over a page
 *                of ours (the RAM page at that gfn is given back to Xen);
 *   xenstore,    HVM params STORE_PFN/STORE_EVTCHN, CONSOLE_PFN/CONSOLE_EVTCHN
 *   console      (special pages below 4 GiB, covered by boot.S's identity map);
 *   cmdline      hvm_start_info.cmdline_paddr;
 *   memory       hvm_start_info's memmap (version >= 1), else XENMEM_memory_map.
 * Addresses: virtual == physical == gfn (no p2m on PVH: grants take gfns).
 * Everything hvm_start_info points at is copied before the allocator runs:
 * the builder puts it after our image, where free pages start.
 */
#include "hypercall.h"
#include "xenplat.h"
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/memory.h>

bool xen_pvh;
uint64_t pvh_ram_end; /* end of the RAM region our image sits in */

extern char _end[];

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ __volatile__("cpuid"
			     : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			     : "a"(leaf), "c"(0));
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ __volatile__("wrmsr" ::"c"(msr), "a"((uint32_t)v),
			     "d"((uint32_t)(v >> 32)));
}

/* Nothing works without hypercalls: stop the vCPU (the domain shows as
 * running but idle; there is no way to report anything). */
static void __attribute__((noreturn)) halt(void)
{
	for (;;)
		__asm__ __volatile__("cli; hlt");
}

static void hypercall_page_init(void)
{
	for (uint32_t base = 0x40000000; base < 0x40010000; base += 0x100) {
		uint32_t r[4];
		cpuid(base, r);
		if (r[1] == 0x566e6558 && r[2] == 0x65584d4d && r[3] == 0x4d4d566e &&
		    r[0] - base >= 2) { /* "XenVMMXenVMM", leaves up to base+2 */
			cpuid(base + 2, r);
			if (r[0] < 1) /* number of hypercall pages */
				break;
			wrmsr(r[1], (uint64_t)(uintptr_t)hypercall_page);
			return;
		}
	}
	halt();
}

static long hvm_param(uint32_t index, uint64_t *value)
{
	struct xen_hvm_param p = { .domid = DOMID_SELF, .index = index };
	long r = hypercall(__HYPERVISOR_hvm_op, HVMOP_get_param,
			   (unsigned long)&p, 0, 0, 0);
	*value = p.value;
	return r;
}

int pvh_add_to_physmap(unsigned int space, unsigned long idx, void *page)
{
	struct xen_add_to_physmap a = { .domid = DOMID_SELF, .space = space,
					.idx = idx,
					.gpfn = (uintptr_t)page >> PAGE_SHIFT };
	return (int)hypercall(__HYPERVISOR_memory_op, XENMEM_add_to_physmap,
			      (unsigned long)&a, 0, 0, 0);
}

/* Physical ranges we may touch through the identity map (low 4 GiB). */
static bool low(uint64_t pa, uint64_t len)
{
	return pa < (1ULL << 32) && len <= (1ULL << 32) - pa;
}

/* The RAM region holding our image, from the memory map. */
static void find_ram(const struct hvm_start_info *si)
{
	uint64_t image = (uint64_t)(uintptr_t)_end;
	if (si->version >= 1 && si->memmap_entries > 0 &&
	    low(si->memmap_paddr, (uint64_t)si->memmap_entries * 24)) {
		const struct hvm_memmap_table_entry *m =
			(const void *)(uintptr_t)si->memmap_paddr;
		for (uint32_t i = 0; i < si->memmap_entries; i++)
			if (m[i].type == XEN_HVM_MEMMAP_TYPE_RAM && m[i].addr < image &&
			    m[i].size > image - m[i].addr)
				pvh_ram_end = m[i].addr + m[i].size;
		return;
	}
	/* e820 entries: addr, size (u64), type (u32), packed */
	static uint8_t e820[32 * 20] __attribute__((aligned(8)));
	struct xen_memory_map mm = { .nr_entries = 32 };
	set_xen_guest_handle(mm.buffer, e820);
	if (hypercall(__HYPERVISOR_memory_op, XENMEM_memory_map,
		      (unsigned long)&mm, 0, 0, 0) != 0 || mm.nr_entries > 32)
		return;
	for (unsigned int i = 0; i < mm.nr_entries; i++) {
		uint64_t addr, size;
		uint32_t type;
		memcpy(&addr, e820 + 20 * i, 8);
		memcpy(&size, e820 + 20 * i + 8, 8);
		memcpy(&type, e820 + 20 * i + 16, 4);
		if (type == 1 && addr < image && size > image - addr)
			pvh_ram_end = addr + size;
	}
}

__attribute__((noreturn, used)) void start_kernel_pvh(uint32_t si_pa)
{
	xen_pvh = true;
	hypercall_page_init();
	const struct hvm_start_info *si = (const void *)(uintptr_t)si_pa;
	if (si->magic != XEN_HVM_START_MAGIC_VALUE) {
		static const char m[] = "pvh: bad hvm_start_info magic\n";
		HYPERVISOR_console_io(CONSOLEIO_write, sizeof(m) - 1, m);
		xen_crash(NULL);
	}

	/* shared info over our placeholder page (setup.c) */
	if (pvh_add_to_physmap(XENMAPSPACE_shared_info, 0, shared_info_page) != 0)
		xen_crash("pvh: cannot map shared info");

	/* what start_info says on PV */
	uint64_t v;
	if (hvm_param(HVM_PARAM_STORE_PFN, &v) == 0)
		start_info.store_mfn = v;
	if (hvm_param(HVM_PARAM_STORE_EVTCHN, &v) == 0)
		start_info.store_evtchn = (uint32_t)v;
	if (hvm_param(HVM_PARAM_CONSOLE_PFN, &v) == 0)
		start_info.console.domU.mfn = v;
	if (hvm_param(HVM_PARAM_CONSOLE_EVTCHN, &v) == 0)
		start_info.console.domU.evtchn = (uint32_t)v;
	if (!low(start_info.store_mfn << PAGE_SHIFT, PAGE_SIZE) ||
	    !low(start_info.console.domU.mfn << PAGE_SHIFT, PAGE_SIZE))
		xen_crash("pvh: xenstore or console page above 4 GiB");
	if (si->cmdline_paddr && low(si->cmdline_paddr, 1)) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t n = 0;
		while (n < MAX_GUEST_CMDLINE - 1 && low(si->cmdline_paddr + n, 1) && c[n])
			n++;
		memcpy(start_info.cmd_line, c, n);
		start_info.cmd_line[n] = '\0';
	}
	find_ram(si);
	if (!pvh_ram_end)
		xen_crash("pvh: no RAM region around the image in the memory map");
	if (pvh_ram_end > (1ULL << 32))
		pvh_ram_end = 1ULL << 32; /* what boot.S maps */
	start_info.nr_pages = pvh_ram_end >> PAGE_SHIFT;
	start_kernel_common();
}
