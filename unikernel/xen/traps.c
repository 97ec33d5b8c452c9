/*
 * traps.c - the trap table. Any exception prints one readable line on the
 * console (vector name, rip, error code, fault address, stack pointer)
 * and crashes the domain with SCHEDOP_shutdown(SHUTDOWN_crash); nothing
 * is recoverable in a unikernel. On PVH the same entry stubs are
 * interrupt gates of our own IDT.
 */
#include "hypercall.h"
#include "xenplat.h"

#define T(name) extern char trap_##name[];
T(divide_error) T(debug) T(nmi) T(int3) T(overflow) T(bounds)
T(invalid_op) T(device_not_available) T(coprocessor_segment_overrun)
T(invalid_tss) T(segment_not_present) T(stack_segment)
T(general_protection) T(page_fault) T(coprocessor_error)
T(alignment_check) T(machine_check) T(simd_error)
#undef T

#define E(vec, dpl, name) \
	{ vec, dpl, FLAT_KERNEL_CS, (unsigned long)trap_##name }
static const struct trap_info trap_table[] = {
	E(0, 0, divide_error), E(1, 0, debug), E(2, 0, nmi), E(3, 3, int3),
	E(4, 3, overflow), E(5, 3, bounds), E(6, 0, invalid_op),
	E(7, 0, device_not_available), E(9, 0, coprocessor_segment_overrun),
	E(10, 0, invalid_tss), E(11, 0, segment_not_present),
	E(12, 0, stack_segment), E(13, 0, general_protection),
	E(14, 0, page_fault), E(16, 0, coprocessor_error),
	E(17, 0, alignment_check), E(18, 0, machine_check),
	E(19, 0, simd_error),
	{ 0, 0, 0, 0 },
};
#undef E

static const char *const trap_names[20] = {
	"divide error", "debug", "NMI", "breakpoint", "overflow", "bounds",
	"invalid opcode", "device not available", "double fault",
	"coprocessor segment overrun", "invalid TSS", "segment not present",
	"stack fault", "general protection fault", "page fault", "reserved",
	"x87 FPU error", "alignment check", "machine check", "SIMD error",
};

/* 64-bit interrupt gate (xen_pvh): offset split in three, selector 0x08
 * (boot.S's GDT), type 0xe, present, DPL 0. */
struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
};
static struct idt_gate idt[20] __attribute__((aligned(16)));

static void idt_init(void)
{
	for (const struct trap_info *t = trap_table; t->address; t++) {
		unsigned long a = t->address;
		idt[t->vector] = (struct idt_gate){
			.off0 = (uint16_t)a, .sel = 0x08, .type = 0x8e,
			.off1 = (uint16_t)(a >> 16), .off2 = (uint32_t)(a >> 32) };
	}
	struct __attribute__((packed)) { uint16_t limit; uint64_t base; } d = {
		sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
	__asm__ __volatile__("lidt %0" ::"m"(d));
}

void traps_init(void)
{
	if (xen_pvh) {
		idt_init();
		return;
	}
	if (HYPERVISOR_set_trap_table(trap_table) != 0)
		xen_crash("set_trap_table failed");
}

static unsigned long cr2(void)
{
	unsigned long v;
	if (!xen_pvh)
		return shared_info->vcpu_info[0].arch.cr2;
	__asm__ __volatile__("mov %%cr2, %0" : "=r"(v));
	return v;
}

/* Called by boot.S on the faulting stack. frame: rcx, r11, [error code],
 * rip, cs, rflags, rsp, ss (PVH: no rcx, r11). */
__attribute__((noreturn, used)) void do_trap(unsigned long vec,
					     const unsigned long *frame,
					     unsigned long has_err)
{
	static int nested;
	const unsigned long *f = xen_pvh ? frame : frame + 2;
	unsigned long err = 0;
	if (has_err)
		err = *f++;
	if (nested++) /* a fault while reporting a fault: just die */
		xen_crash(NULL);
	const char *name = vec < 20 ? trap_names[vec] : "trap";
	if (vec == 14)
		printk("\n*** FATAL %s at rip %lx: address %lx, error %lx (%s %s%s), rsp %lx\n",
		       name, f[0], cr2(), err,
		       err & 1 ? "protection" : "not-present",
		       err & 2 ? "write" : "read", err & 16 ? " ifetch" : "",
		       f[3]);
	else
		printk("\n*** FATAL %s (vector %lu) at rip %lx, error %lx, rsp %lx\n",
		       name, vec, f[0], err, f[3]);
	xen_crash("fatal exception");
}
