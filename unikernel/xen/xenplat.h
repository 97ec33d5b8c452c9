/*
 * xenplat.h - what the files of the Xen PV platform share.
 *
 * Memory layout on PVH: see pvh.c (identity map of the low 4 GiB).
 * Memory layout (PV x86-64, XEN_ELFNOTE_VIRT_BASE 0): virtual address ==
 * pseudo-physical address. Xen maps the image at 0, followed by the p2m
 * list, start_info, the xenstore and console pages, the bootstrap page
 * tables and stack, and at least 512 KiB of padding; mm.c hands out the
 * mapped pages after all that.
 */
#ifndef XENPLAT_H
#define XENPLAT_H

#include "../core/rt.h"
#include "barrier.h"

/* Interface version of Debian's libxen-dev 4.17 headers, pinned so a newer
 * header set cannot change structure layouts under us. */
#ifndef __XEN_INTERFACE_VERSION__
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#endif
#include <xen/xen.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/sched.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE 4096UL

/* setup.c */
extern start_info_t start_info;        /* a copy of Xen's start_info */
extern shared_info_t *shared_info;     /* mapped shared info page */
void xen_crash(const char *why) __attribute__((noreturn));
void start_kernel_common(void) __attribute__((noreturn));
extern uint8_t shared_info_page[PAGE_SIZE];

/* pvh.c: true when booted through the PVH entry (no PV MMU hypercalls,
 * virtual == physical == gfn, an IDT instead of Xen's trap table) */
extern bool xen_pvh;
extern uint64_t pvh_ram_end;
int pvh_add_to_physmap(unsigned int space, unsigned long idx, void *page);

/* mm.c */
void mm_init(void);
uint64_t virt_to_mfn(const void *va);
void *mfn_to_virt(uint64_t mfn);
void *page_alloc(void); /* one zeroed, mapped page; NULL when none left */
unsigned long mm_free_pages(void);

/* time.c: Xen system time (ns since the host booted) */
uint64_t xen_time_ns(void);
uint64_t xen_wallclock_s(void);

/* console.c */
void console_init(void);
void console_write(const char *s, size_t n);
void console_flush(void); /* wait (bounded) until xenconsoled read it all */

/* traps.c */
void traps_init(void);

/* evtchn.c */
int evtchn_alloc_unbound(domid_t remote, evtchn_port_t *port);
void evtchn_notify(evtchn_port_t port);
void evtchn_clear(evtchn_port_t port);
bool evtchn_pending(evtchn_port_t port);
/* Block until port is pending or Xen system time reaches deadline_ns
 * (SCHEDOP_poll; 0 = no deadline). Does not clear the pending bit. */
void evtchn_poll(evtchn_port_t port, uint64_t deadline_ns);

/* gnttab.c */
int gnttab_init(void);
/* Grant domid access to machine frame mfn: a reference >= 0, or <0 when
 * the table is full. */
int gnttab_grant(domid_t domid, uint64_t mfn, bool readonly);
/* Revoke a grant: 0, or <0 while the other side still uses it. */
int gnttab_end(grant_ref_t ref);

/* xenstore.c: paths are relative to /local/domain/<our id> unless they
 * start with '/'. */
void xs_init(void);
/* Read a value into buf (NUL-terminated). Returns its length, or <0:
 * missing key, error or timeout. Values longer than cap-1 are an error. */
int xs_read(const char *path, char *buf, size_t cap);
int xs_write(const char *path, const char *value);
/* Read an unsigned decimal value; <0 when missing or malformed. */
long xs_read_uint(const char *path);
/* List a directory: NUL-separated names in buf, total length returned
 * (<0 when missing); buf always ends with an extra NUL. */
int xs_directory(const char *path, char *buf, size_t cap);

/* blkfront.c: debug dump of the first sector (cmdline "blkdump") */
void blkfront_dump(void);

/* netfront.c */
int netfront_init(void);
void netfront_mac(uint8_t mac[6]);
void netfront_stats(void);

#endif
