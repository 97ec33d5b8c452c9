/*
 * hypercall.h - x86-64 PV hypercalls through the hypercall page.
 *
 * Xen fills hypercall_page (boot.S, named by the XEN_ELFNOTE_HYPERCALL_PAGE
 * note) with one 32-byte stub per hypercall ("mov $nr,%eax; syscall; ret").
 * Arguments go in rdi, rsi, rdx, r10, r8; the result comes back in rax;
 * syscall clobbers rcx and r11, and Xen may clobber the argument registers.
 */
#ifndef XEN_HYPERCALL_H
#define XEN_HYPERCALL_H

#include "xenplat.h"

extern char hypercall_page[4096];

static inline long hypercall(unsigned int nr, unsigned long a1,
			     unsigned long a2, unsigned long a3,
			     unsigned long a4, unsigned long a5)
{
	register unsigned long r10 __asm__("r10") = a4;
	register unsigned long r8 __asm__("r8") = a5;
	unsigned long rax = (unsigned long)hypercall_page + nr * 32;

	__asm__ __volatile__("call *%%rax"
			     : "+a"(rax), "+D"(a1), "+S"(a2), "+d"(a3),
			       "+r"(r10), "+r"(r8)
			     :
			     : "rcx", "r11", "memory");
	return (long)rax;
}

static inline long HYPERVISOR_sched_op(int cmd, void *arg)
{
	return hypercall(__HYPERVISOR_sched_op, (unsigned long)cmd,
			 (unsigned long)arg, 0, 0, 0);
}

static inline long HYPERVISOR_event_channel_op(int cmd, void *arg)
{
	return hypercall(__HYPERVISOR_event_channel_op, (unsigned long)cmd,
			 (unsigned long)arg, 0, 0, 0);
}

static inline long HYPERVISOR_grant_table_op(unsigned int cmd, void *arg,
					     unsigned int count)
{
	return hypercall(__HYPERVISOR_grant_table_op, cmd, (unsigned long)arg,
			 count, 0, 0);
}

static inline long HYPERVISOR_update_va_mapping(unsigned long va,
						uint64_t pte,
						unsigned long flags)
{
	return hypercall(__HYPERVISOR_update_va_mapping, va, pte, flags, 0, 0);
}

static inline long HYPERVISOR_set_trap_table(const struct trap_info *t)
{
	return hypercall(__HYPERVISOR_set_trap_table, (unsigned long)t, 0, 0,
			 0, 0);
}

static inline long HYPERVISOR_console_io(int cmd, int count, const char *s)
{
	return hypercall(__HYPERVISOR_console_io, (unsigned long)cmd,
			 (unsigned long)count, (unsigned long)s, 0, 0);
}

#endif
