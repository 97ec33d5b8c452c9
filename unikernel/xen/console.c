/*
 * console.c - console output through the PV console ring shared with
 * xenconsoled in dom0 (xen/io/console.h), which logs it to
 * /var/log/xen/console/guest-NAME.log and serves `xl console`.
 *
 * We produce into out[] (out_prod), xenconsoled consumes (out_cons). Before
 * the ring is mapped, or if it stays full, output falls back to the
 * HYPERVISOR_console_io hypercall (visible in `xl dmesg` on debug-level
 * hypervisor logs only).
 */
#include "hypercall.h"
#include "xenplat.h"

static struct xencons_interface *cons;
static evtchn_port_t cons_port;

void console_init(void)
{
	cons = mfn_to_virt(start_info.console.domU.mfn);
	cons_port = start_info.console.domU.evtchn;
}

/* Wait up to ms for xenconsoled to consume something. */
static void console_wait(uint32_t ms)
{
	evtchn_notify(cons_port);
	evtchn_clear(cons_port);
	evtchn_poll(cons_port, xen_time_ns() + ms * 1000000ULL);
}

void console_write(const char *s, size_t n)
{
	if (!cons) {
		HYPERVISOR_console_io(CONSOLEIO_write, (int)n, s);
		return;
	}
	int stalls = 0;
	while (n > 0) {
		XENCONS_RING_IDX c = ACCESS_ONCE(cons->out_cons);
		XENCONS_RING_IDX p = cons->out_prod;
		mb(); /* read out_cons before overwriting the bytes it frees */
		XENCONS_RING_IDX used = p - c;
		if (used > sizeof(cons->out)) /* corrupt indices: give up */
			return;
		size_t space = sizeof(cons->out) - used;
		if (space == 0) {
			if (++stalls > 20) /* ~2 s with nobody reading: drop */
				return;
			console_wait(100);
			continue;
		}
		while (space > 0 && n > 0) {
			cons->out[MASK_XENCONS_IDX(p, cons->out)] = *s++;
			p++;
			space--;
			n--;
		}
		wmb(); /* the bytes before the index that publishes them */
		cons->out_prod = p;
		evtchn_notify(cons_port);
	}
}

void console_flush(void)
{
	if (!cons)
		return;
	for (int i = 0; i < 20; i++) {
		if (ACCESS_ONCE(cons->out_cons) == ACCESS_ONCE(cons->out_prod))
			return;
		console_wait(100);
	}
}
