/*
 * mm.c - address translation and a bump page allocator.
 *
 * With virt base 0 a virtual address is a pseudo-physical address (pfn <<
 * 12). pfn -> mfn comes from the p2m list Xen gave us (start_info.mfn_list),
 * mfn -> pfn from Xen's read-only machine-to-phys table.
 *
 * On PVH there is no p2m: virtual == physical == gfn, and the free pages
 * run from the end of our image (page-aligned) to the end of its RAM
 * region (pvh.c, from the memory map).
 *
 * Free pages (PV): from the end of the bootstrap area (after the page tables and
 * the bootstrap stack) up to the last page the bootstrap page tables map
 * (found by walking them), never past nr_pages. Pages are never freed: the
 * unikernel allocates its rings and buffers once.
 */
#include "xenplat.h"

#define PTE_PRESENT 1UL
#define PTE_PSE 0x80UL
#define PTE_MFN(e) (((e) & 0x000ffffffffff000UL) >> PAGE_SHIFT)

static unsigned long next_pfn, end_pfn;

extern char _end[];

uint64_t virt_to_mfn(const void *va)
{
	unsigned long pfn = (uintptr_t)va >> PAGE_SHIFT;
	if (xen_pvh)
		return pfn;
	if (pfn >= start_info.nr_pages)
		xen_crash("virt_to_mfn: address outside the domain");
	return ((const unsigned long *)start_info.mfn_list)[pfn];
}

void *mfn_to_virt(uint64_t mfn)
{
	if (xen_pvh)
		return (void *)(uintptr_t)(mfn << PAGE_SHIFT);
	unsigned long pfn = machine_to_phys_mapping[mfn];
	return (void *)(pfn << PAGE_SHIFT);
}

/* Is va mapped by the current (bootstrap) page tables? */
static bool mapped(unsigned long va)
{
	const uint64_t *t = (const uint64_t *)start_info.pt_base;
	for (int level = 3; level >= 0; level--) {
		uint64_t e = t[(va >> (PAGE_SHIFT + 9 * level)) & 511];
		if (!(e & PTE_PRESENT))
			return false;
		if (level == 0 || (level < 3 && (e & PTE_PSE)))
			return true;
		unsigned long pfn = machine_to_phys_mapping[PTE_MFN(e)];
		if (pfn >= start_info.nr_pages)
			return false;
		t = (const uint64_t *)(pfn << PAGE_SHIFT);
	}
	return false;
}

void mm_init(void)
{
	if (xen_pvh) {
		next_pfn = ((uintptr_t)_end + PAGE_SIZE - 1) >> PAGE_SHIFT;
		end_pfn = pvh_ram_end >> PAGE_SHIFT;
		if (end_pfn < next_pfn)
			end_pfn = next_pfn;
		return;
	}
	/* The bootstrap stack page(s) follow the page tables: skip 4 pages
	 * of slack past them, as we run on our own stack already. */
	next_pfn = (start_info.pt_base >> PAGE_SHIFT) + start_info.nr_pt_frames + 4;
	end_pfn = next_pfn;
	while (end_pfn < start_info.nr_pages && mapped(end_pfn << PAGE_SHIFT))
		end_pfn++;
}

void *page_alloc(void)
{
	if (next_pfn >= end_pfn)
		return NULL;
	void *p = (void *)(next_pfn++ << PAGE_SHIFT);
	memset(p, 0, PAGE_SIZE);
	return p;
}

unsigned long mm_free_pages(void)
{
	return end_pfn - next_pfn;
}
