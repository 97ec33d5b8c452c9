/*
 * evtchn.c - event channels without interrupts.
 *
 * Event delivery stays masked (vcpu_info.evtchn_upcall_mask = 1, no
 * callback registered). We wait with SCHEDOP_poll, which returns when a
 * listed port's pending bit is set (Xen wakes pollers whatever the port's
 * mask) or at the timeout. Callers clear the pending bit BEFORE checking
 * their ring, then poll: an event arriving in between leaves the bit set
 * and the poll returns at once, so no wake-up is lost.
 */
#include "hypercall.h"
#include "xenplat.h"

int evtchn_alloc_unbound(domid_t remote, evtchn_port_t *port)
{
	struct evtchn_alloc_unbound op = { .dom = DOMID_SELF,
					   .remote_dom = remote };
	long r = HYPERVISOR_event_channel_op(EVTCHNOP_alloc_unbound, &op);
	if (r != 0)
		return (int)r;
	*port = op.port;
	return 0;
}

void evtchn_notify(evtchn_port_t port)
{
	struct evtchn_send op = { .port = port };
	HYPERVISOR_event_channel_op(EVTCHNOP_send, &op);
}

#define BITS (sizeof(xen_ulong_t) * 8)

void evtchn_clear(evtchn_port_t port)
{
	/* atomic: Xen sets other bits of the same word concurrently */
	__atomic_fetch_and(&shared_info->evtchn_pending[port / BITS],
			   ~(1UL << (port % BITS)), __ATOMIC_SEQ_CST);
}

bool evtchn_pending(evtchn_port_t port)
{
	return (ACCESS_ONCE(shared_info->evtchn_pending[port / BITS]) >>
		(port % BITS)) & 1;
}

void evtchn_poll(evtchn_port_t port, uint64_t deadline_ns)
{
	struct sched_poll p = { .nr_ports = 1, .timeout = deadline_ns };
	set_xen_guest_handle(p.ports, &port);
	if (evtchn_pending(port))
		return;
	HYPERVISOR_sched_op(SCHEDOP_poll, &p);
}
