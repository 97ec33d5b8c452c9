/*
 * A minimal PVH kernel for the tests: proof that `unikernel run --kernel` boots PVH guests.
 *
 * Xen enters it at XEN_ELFNOTE_PHYS32_ENTRY in 32-bit protected mode, paging off, flat
 * segments (the PVH boot ABI, docs/misc/pvh.pandoc). It finds Xen's CPUID leaves, has Xen fill
 * a hypercall page (the MSR from leaf base+2: vmcall or vmmcall, whichever this CPU has), asks
 * for its console ring (HVMOP_get_param HVM_PARAM_CONSOLE_PFN/EVTCHN), writes one line there,
 * notifies xenconsoled and waits (yielding) until it has read the line, then shuts down with
 * reason crash, so that on_crash = "preserve" keeps it for `xl list` to show.
 *
 *   gcc -m32 -c pvh_hello.S && ld -m elf_i386 -T pvh_hello.lds pvh_hello.o -o pvh_hello.xen
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define XEN_ELFNOTE_GUEST_OS 6
#define HYPERCALL(n) (hypercall_page + (n) * 32)
#define HV_SCHED_OP 29
#define HV_EVENT_CHANNEL_OP 32
#define HV_HVM_OP 34
#define RING_OUT 1024          /* struct xencons_interface: out[2048] */
#define RING_OUT_CONS 3080
#define RING_OUT_PROD 3084

	.pushsection .note.xen, "a", @note
	.balign 4
	.long 4, 4f - 3f, XEN_ELFNOTE_PHYS32_ENTRY
	.asciz "Xen"
3:	.long _start
4:	.balign 4
	.long 4, 6f - 5f, XEN_ELFNOTE_GUEST_OS
	.asciz "Xen"
5:	.asciz "mirage-env-pvh-test"
6:	.balign 4
	.popsection

	.code32
	.text
	.globl _start
_start:
	cld
	mov $stack_top, %esp
	/* Xen's CPUID leaves: "XenVMMXenVMM" at 0x40000000 + n * 0x100 */
	mov $0x40000000, %esi
1:	mov %esi, %eax
	cpuid
	cmp $0x566e6558, %ebx
	jne 2f
	cmp $0x65584d4d, %ecx
	jne 2f
	cmp $0x4d4d566e, %edx
	je 3f
2:	add $0x100, %esi
	cmp $0x40010000, %esi
	jb 1b
	jmp halt                        /* not on Xen: nothing to tell */
3:	lea 2(%esi), %eax               /* leaf base+2: ebx = the hypercall page MSR */
	cpuid
	mov %ebx, %ecx
	mov $hypercall_page, %eax       /* paging is off: this is its physical address */
	xor %edx, %edx
	wrmsr

	movl $17, param_index           /* HVM_PARAM_CONSOLE_PFN */
	call get_param
	mov param_value, %edi
	shl $12, %edi                   /* the ring, identity-mapped */
	movl $18, param_index           /* HVM_PARAM_CONSOLE_EVTCHN */
	call get_param
	mov param_value, %eax
	mov %eax, send_port

	/* copy the message into out[], then publish out_prod */
	mov RING_OUT_PROD(%edi), %edx
	mov $message, %esi
5:	movb (%esi), %al
	test %al, %al
	jz 6f
	mov %edx, %ecx
	and $2047, %ecx
	movb %al, RING_OUT(%edi, %ecx)
	inc %edx
	inc %esi
	jmp 5b
6:	lock orl $0, (%esp)             /* the bytes before the index (a full barrier) */
	mov %edx, RING_OUT_PROD(%edi)
	mov $4, %ebx                    /* EVTCHNOP_send */
	mov $send_port, %ecx
	call HYPERCALL(HV_EVENT_CHANNEL_OP)

	/* wait until xenconsoled has read it (bounded), yielding the CPU */
	mov $1000000, %ebp
7:	mov RING_OUT_CONS(%edi), %eax
	cmp RING_OUT_PROD(%edi), %eax
	je 8f
	xor %ebx, %ebx                  /* SCHEDOP_yield */
	xor %ecx, %ecx
	call HYPERCALL(HV_SCHED_OP)
	dec %ebp
	jnz 7b
8:	mov $2, %ebx                    /* SCHEDOP_shutdown */
	mov $shutdown_reason, %ecx
	call HYPERCALL(HV_SCHED_OP)
halt:	hlt
	jmp halt

get_param:                              /* HVMOP_get_param into param_value */
	mov $1, %ebx
	mov $param, %ecx
	call HYPERCALL(HV_HVM_OP)
	ret

	.data
	.balign 8
param:                                  /* struct xen_hvm_param */
	.word 0x7ff0                    /* DOMID_SELF */
	.word 0
param_index:
	.long 0
param_value:
	.quad 0
send_port:
	.long 0
shutdown_reason:
	.long 3                         /* SHUTDOWN_crash */
message:
	.asciz "mirage-env PVH test kernel: booted through XEN_ELFNOTE_PHYS32_ENTRY\r\n"

	.bss
	.balign 4096
hypercall_page:
	.skip 4096
	.skip 4096
stack_top:

	.section .note.GNU-stack, "", @progbits
