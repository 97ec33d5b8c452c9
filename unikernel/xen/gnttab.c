/*
 * gnttab.c - grant table, v1 entries.
 *
 * PVH: XENMEM_add_to_physmap(XENMAPSPACE_grant_table, frame i) puts
 * frame i of our grant table at the gfn of gnt_pages[i].
 * PV: GNTTABOP_setup_table gives us the machine frames of our grant table;
 * we map them over pages reserved in BSS. Granting: write frame and domid,
 * then (write barrier) the flags that make the entry valid, so the other
 * domain never sees a valid entry with a stale frame. Revoking: clear the
 * flags with a compare-and-swap that fails while Xen marks the entry in
 * use (GTF_reading/GTF_writing).
 */
#include "hypercall.h"
#include "xenplat.h"
#include <xen/memory.h>

#define GNT_FRAMES 1
#define GNT_PER_FRAME (PAGE_SIZE / sizeof(grant_entry_v1_t))

static uint8_t gnt_pages[GNT_FRAMES][PAGE_SIZE] __attribute__((aligned(4096)));
static grant_entry_v1_t *gnt;
static grant_ref_t next_ref = GNTTAB_NR_RESERVED_ENTRIES;

int gnttab_init(void)
{
	if (xen_pvh) {
		for (int i = 0; i < GNT_FRAMES; i++)
			if (pvh_add_to_physmap(XENMAPSPACE_grant_table, (unsigned long)i,
					       gnt_pages[i]) != 0) {
				printk("gnttab: cannot map frame %d\n", i);
				return -1;
			}
		gnt = (grant_entry_v1_t *)(void *)gnt_pages[0];
		return 0;
	}
	xen_pfn_t frames[GNT_FRAMES];
	struct gnttab_setup_table op = { .dom = DOMID_SELF,
					 .nr_frames = GNT_FRAMES };
	set_xen_guest_handle(op.frame_list, frames);
	if (HYPERVISOR_grant_table_op(GNTTABOP_setup_table, &op, 1) != 0 ||
	    op.status != GNTST_okay) {
		printk("gnttab: setup_table failed (status %d)\n", op.status);
		return -1;
	}
	for (int i = 0; i < GNT_FRAMES; i++) {
		uint64_t pte = ((uint64_t)frames[i] << PAGE_SHIFT) | 7; /* P|RW|U */
		if (HYPERVISOR_update_va_mapping((unsigned long)gnt_pages[i],
						 pte, UVMF_INVLPG) != 0) {
			printk("gnttab: cannot map frame %d\n", i);
			return -1;
		}
	}
	gnt = (grant_entry_v1_t *)(void *)gnt_pages[0];
	return 0;
}

int gnttab_grant(domid_t domid, uint64_t mfn, bool readonly)
{
	if (!gnt || next_ref >= GNT_FRAMES * GNT_PER_FRAME)
		return -1;
	grant_ref_t ref = next_ref++;
	gnt[ref].frame = (uint32_t)mfn;
	gnt[ref].domid = domid;
	wmb(); /* frame and domid visible before the entry becomes valid */
	ACCESS_ONCE(gnt[ref].flags) =
		GTF_permit_access | (readonly ? GTF_readonly : 0);
	return (int)ref;
}

int gnttab_end(grant_ref_t ref)
{
	if (!gnt || ref >= GNT_FRAMES * GNT_PER_FRAME)
		return -1;
	uint16_t flags = ACCESS_ONCE(gnt[ref].flags);
	do {
		if (flags & (GTF_reading | GTF_writing))
			return -1; /* still mapped or being copied */
	} while (!__atomic_compare_exchange_n(&gnt[ref].flags, &flags, 0, false,
					      __ATOMIC_SEQ_CST,
					      __ATOMIC_SEQ_CST));
	return 0;
}
