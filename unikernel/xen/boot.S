/*
 * boot.S - start of day of the PV x86-64 kernel.
 *
 * Xen's PV domain builder (libxenguest, "generic" loader) reads the notes
 * below, loads the PT_LOAD segments at XEN_ELFNOTE_VIRT_BASE (0), writes
 * the hypercall stubs into hypercall_page, builds page tables mapping the
 * image plus its bootstrap area, and enters _start in 64-bit mode with:
 *   %rsi = virtual address of start_info, %rsp = a bootstrap stack,
 *   event delivery masked (vcpu_info.evtchn_upcall_mask = 1).
 * Also here: the trap entry stubs registered by traps.c.
 */
#include <xen/elfnote.h>

/* One ELF note in the "Xen" namespace (name "Xen\0", 4-byte aligned). */
#define ELFNOTE(type, desc)                                     \
	.pushsection .note.xen, "a", @note;                     \
	.balign 4;                                              \
	.long 2f - 1f;          /* namesz */                    \
	.long 4f - 3f;          /* descsz */                    \
	.long type;                                             \
1:	.asciz "Xen";                                           \
2:	.balign 4;                                              \
3:	desc;                                                   \
4:	.balign 4;                                              \
	.popsection

ELFNOTE(XEN_ELFNOTE_GUEST_OS, .asciz "mirage-env")
ELFNOTE(XEN_ELFNOTE_GUEST_VERSION, .asciz "1")
ELFNOTE(XEN_ELFNOTE_XEN_VERSION, .asciz "xen-3.0")
ELFNOTE(XEN_ELFNOTE_LOADER, .asciz "generic")
ELFNOTE(XEN_ELFNOTE_VIRT_BASE, .quad 0)
ELFNOTE(XEN_ELFNOTE_PADDR_OFFSET, .quad 0)
ELFNOTE(XEN_ELFNOTE_ENTRY, .quad _start)
ELFNOTE(XEN_ELFNOTE_HYPERCALL_PAGE, .quad hypercall_page)
/* No optional features requested: we use plain PV MMU hypercalls. */
ELFNOTE(XEN_ELFNOTE_FEATURES, .asciz "")

#define STACK_SIZE 65536

	.section .text.boot, "ax", @progbits
	.globl _start
_start:
	cld
	leaq stack_top(%rip), %rsp      /* our stack, 16-byte aligned */
	xorl %ebp, %ebp
	movq %rsi, %rdi                 /* start_kernel(start_info) */
	call start_kernel
1:	ud2
	jmp 1b

/*
 * Trap stubs. For a 64-bit PV guest Xen bounces an exception onto the
 * current stack as: rcx, r11, [error code], rip, cs, rflags, rsp, ss
 * (lowest address first). Each stub passes the vector, a pointer to that
 * frame and whether an error code is present to do_trap(), which prints
 * and crashes the domain: nothing returns, so no registers are saved.
 */
.macro TRAP name, vec, err
	.globl trap_\name
trap_\name:
	movq $\vec, %rdi
	movq %rsp, %rsi
	movq $\err, %rdx
	jmp trap_common
.endm

	.text
TRAP divide_error, 0, 0
TRAP debug, 1, 0
TRAP nmi, 2, 0
TRAP int3, 3, 0
TRAP overflow, 4, 0
TRAP bounds, 5, 0
TRAP invalid_op, 6, 0
TRAP device_not_available, 7, 0
TRAP coprocessor_segment_overrun, 9, 0
TRAP invalid_tss, 10, 1
TRAP segment_not_present, 11, 1
TRAP stack_segment, 12, 1
TRAP general_protection, 13, 1
TRAP page_fault, 14, 1
TRAP coprocessor_error, 16, 0
TRAP alignment_check, 17, 1
TRAP machine_check, 18, 0
TRAP simd_error, 19, 0

trap_common:
	andq $-16, %rsp
	call do_trap
2:	ud2
	jmp 2b

/*
 * Pages Xen writes into: the hypercall stubs (filled in by the domain
 * builder after loading, so BSS is fine: it is part of the loaded image),
 * and the stack.
 */
	.section .bss.hypercall_page, "aw", @nobits
	.balign 4096
	.globl hypercall_page
hypercall_page:
	.skip 4096

	.section .bss.stack, "aw", @nobits
	.balign 16
	.skip STACK_SIZE
stack_top:

	.section .note.GNU-stack, "", @progbits
