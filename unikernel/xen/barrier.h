/*
 * barrier.h - memory barriers for memory shared with other domains
 * (shared rings, grant entries, the console and xenstore pages).
 *
 * x86-64 is TSO: loads are not reordered with other loads, stores are not
 * reordered with other stores, but a load may pass an older store to a
 * different location. So:
 *   rmb()  read barrier: only the compiler must not reorder reads;
 *   wmb()  write barrier: only the compiler must not reorder writes;
 *   mb()   full barrier: a store followed by a load of another location
 *          (e.g. "publish req_prod, then read req_event") needs mfence.
 * ring.h uses xen_mb/xen_rmb/xen_wmb, defined here from these, so this
 * file must be included before <xen/io/ring.h>.
 *
 * The same file is used by the host build of the ring code (tests/c),
 * which also runs on x86-64.
 */
#ifndef XEN_BARRIER_H
#define XEN_BARRIER_H

#define barrier() __asm__ __volatile__("" ::: "memory")
#define mb() __asm__ __volatile__("mfence" ::: "memory")
#define rmb() barrier()
#define wmb() barrier()
#define xen_mb() mb()
#define xen_rmb() rmb()
#define xen_wmb() wmb()

/* One access the compiler must really make (shared memory fields). */
#define ACCESS_ONCE(x) (*(volatile __typeof__(x) *)&(x))

#endif
