/*
 * boot.S - start of day of the x86-64 kernel, PV or PVH (one image).
 *
 * Xen's PV domain builder (libxenguest, "generic" loader) reads the notes
 * below, loads the PT_LOAD segments at XEN_ELFNOTE_VIRT_BASE (0), writes
 * the hypercall stubs into hypercall_page, builds page tables mapping the
 * image plus its bootstrap area, and enters _start in 64-bit mode with:
 *   %rsi = virtual address of start_info, %rsp = a bootstrap stack,
 *   event delivery masked (vcpu_info.evtchn_upcall_mask = 1).
 * PVH (docs/misc/pvh.pandoc, xen/arch-x86/hvm/start_info.h): the same
 * image also names a 32-bit entry, XEN_ELFNOTE_PHYS32_ENTRY. libxl's PVH
 * builder loads the segments at their physical addresses (== virtual: all
 * 0-based) and enters pvh_start in 32-bit protected mode, paging off, flat
 * segments, %ebx = physical address of struct hvm_start_info. We build
 * identity page tables for the low 4 GiB (Xen's special pages - xenstore,
 * console - sit just below 4 GiB), enter long mode and call
 * start_kernel_pvh(hvm_start_info) on the same stack as PV.
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
ELFNOTE(XEN_ELFNOTE_PHYS32_ENTRY, .long pvh_start)
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
 * PVH entry. The code runs at its physical address (linked at 0, loaded
 * at 0). It lives in .text, not in page 0: the page tables below leave
 * page 0 unmapped from the start (NULL faults, as on PV after setup).
 */
#define PG_P 0x1
#define PG_RW 0x2
#define PG_PS 0x80
	.text
	.code32
	.globl pvh_start
pvh_start:
	cld
	movl %ebx, pvh_info_pa          /* keep hvm_start_info's address */
	lgdt pvh_gdt_desc
	/* PML4[0] -> PDPT; PDPT[0..3] -> four page directories (4 GiB) */
	movl $pvh_pdpt + (PG_P | PG_RW), pvh_pml4
	movl $pvh_pd + (PG_P | PG_RW), %eax
	xorl %ecx, %ecx
1:	movl %eax, pvh_pdpt(, %ecx, 8)
	addl $4096, %eax
	incl %ecx
	cmpl $4, %ecx
	jne 1b
	/* 2048 2 MiB pages, identity: entry i maps i << 21 */
	movl $(PG_P | PG_RW | PG_PS), %eax
	xorl %ecx, %ecx
2:	movl %eax, pvh_pd(, %ecx, 8)
	movl %ecx, %edx
	shrl $11, %edx                  /* high dword: bits 32+ of i << 21 */
	movl %edx, pvh_pd + 4(, %ecx, 8)
	addl $0x200000, %eax
	incl %ecx
	cmpl $2048, %ecx
	jne 2b
	/* the first 2 MiB in 4 KiB pages, page 0 not present */
	movl $pvh_pt + (PG_P | PG_RW), pvh_pd
	movl $4096 + (PG_P | PG_RW), %eax
	movl $1, %ecx
3:	movl %eax, pvh_pt(, %ecx, 8)
	addl $4096, %eax
	incl %ecx
	cmpl $512, %ecx
	jne 3b
	movl $pvh_pml4, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax                 /* CR4.PAE */
	movl %eax, %cr4
	movl $0xc0000080, %ecx          /* EFER */
	rdmsr
	orl $0x100, %eax                /* EFER.LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax           /* CR0.PG | CR0.PE: long mode active */
	movl %eax, %cr0
	ljmp $0x08, $pvh_long           /* into the 64-bit code segment */

	.code64
pvh_long:
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
	leaq stack_top(%rip), %rsp
	xorl %ebp, %ebp
	movl pvh_info_pa(%rip), %edi    /* start_kernel_pvh(hvm_start_info) */
	call start_kernel_pvh
4:	ud2
	jmp 4b

	.section .rodata
	.balign 8
	.globl pvh_gdt
pvh_gdt:
	.quad 0                         /* null */
	.quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
	.quad 0x00cf92000000ffff        /* 0x10: data, DPL 0 */
pvh_gdt_end:
pvh_gdt_desc:
	.word pvh_gdt_end - pvh_gdt - 1
	.long pvh_gdt

	.section .bss.pvh, "aw", @nobits
	.balign 4096
pvh_pml4:
	.skip 4096
pvh_pdpt:
	.skip 4096
pvh_pd:
	.skip 4 * 4096
pvh_pt:
	.skip 4096
	.balign 4
pvh_info_pa:
	.skip 4

/*
 * Trap stubs. For a 64-bit PV guest Xen bounces an exception onto the
 * current stack as: rcx, r11, [error code], rip, cs, rflags, rsp, ss
 * (lowest address first). On PVH the same stubs are IDT gates and the
 * CPU pushes [error code], rip, cs, rflags, rsp, ss. Each stub passes the vector, a pointer to that
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
