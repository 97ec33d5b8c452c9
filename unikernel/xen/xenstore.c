/*
 * xenstore.c - a synchronous xenstore client over the shared ring
 * (xen/io/xs_wire.h): one request at a time, READ, WRITE and DIRECTORY, no watches
 * and no transactions (callers poll the few keys they wait on).
 *
 * Ring discipline: we produce into req[] (req_prod) and consume rsp[]
 * (rsp_cons); xenstored does the opposite. Every index pair is checked
 * (prod - cons <= ring size) and every length xenstored sends is bounded
 * before use: a broken peer gives an error, never an overrun.
 */
#include "xenplat.h"

#define XS_TIMEOUT_NS (20ULL * 1000000000ULL) /* TCG-emulated dom0s are slow */

static struct xenstore_domain_interface *xs;
static evtchn_port_t xs_port;
static uint32_t xs_req_id;

void xs_init(void)
{
	xs = mfn_to_virt(start_info.store_mfn);
	xs_port = start_info.store_evtchn;
}

static int xs_wait(uint64_t deadline)
{
	uint64_t now = xen_time_ns();
	if (now >= deadline)
		return -1;
	evtchn_poll(xs_port, deadline);
	evtchn_clear(xs_port);
	return 0;
}

static int xs_put(const void *data, size_t len, uint64_t deadline)
{
	const char *p = data;
	while (len > 0) {
		XENSTORE_RING_IDX cons = ACCESS_ONCE(xs->req_cons);
		XENSTORE_RING_IDX prod = xs->req_prod;
		mb(); /* read req_cons before overwriting the space it frees */
		if (prod - cons > XENSTORE_RING_SIZE)
			return -1;
		size_t space = XENSTORE_RING_SIZE - (prod - cons);
		if (space == 0) {
			evtchn_notify(xs_port);
			if (xs_wait(deadline) < 0)
				return -1;
			continue;
		}
		size_t chunk = MIN(len, space);
		chunk = MIN(chunk, XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(prod));
		memcpy(&xs->req[MASK_XENSTORE_IDX(prod)], p, chunk);
		wmb(); /* request bytes before the index that publishes them */
		xs->req_prod = prod + (XENSTORE_RING_IDX)chunk;
		p += chunk;
		len -= chunk;
	}
	evtchn_notify(xs_port);
	return 0;
}

/* Read len bytes of the response stream into out (NULL: discard). */
static int xs_get(void *out, size_t len, uint64_t deadline)
{
	char *o = out;
	while (len > 0) {
		XENSTORE_RING_IDX prod = ACCESS_ONCE(xs->rsp_prod);
		XENSTORE_RING_IDX cons = xs->rsp_cons;
		rmb(); /* read rsp_prod before the bytes it covers */
		if (prod - cons > XENSTORE_RING_SIZE)
			return -1;
		size_t avail = prod - cons;
		if (avail == 0) {
			if (xs_wait(deadline) < 0)
				return -1;
			continue;
		}
		size_t chunk = MIN(len, avail);
		chunk = MIN(chunk, XENSTORE_RING_SIZE - MASK_XENSTORE_IDX(cons));
		if (o) {
			memcpy(o, &xs->rsp[MASK_XENSTORE_IDX(cons)], chunk);
			o += chunk;
		}
		mb(); /* finish reading before handing the space back */
		xs->rsp_cons = cons + (XENSTORE_RING_IDX)chunk;
		len -= chunk;
	}
	evtchn_notify(xs_port);
	return 0;
}

/*
 * One request (type, payload parts a and b concatenated) and its reply.
 * The reply body goes to out (up to cap bytes; longer is an error) and
 * its length to *outlen. Watch events in between are skipped.
 */
static int xs_talk(uint32_t type, const char *a, size_t alen, const char *b,
		   size_t blen, char *out, size_t cap, size_t *outlen)
{
	if (!xs || alen + blen > XENSTORE_PAYLOAD_MAX)
		return -1;
	uint64_t deadline = xen_time_ns() + XS_TIMEOUT_NS;
	struct xsd_sockmsg m = { .type = type, .req_id = ++xs_req_id,
				 .tx_id = 0, .len = (uint32_t)(alen + blen) };
	if (xs_put(&m, sizeof(m), deadline) < 0 || xs_put(a, alen, deadline) < 0 ||
	    (blen && xs_put(b, blen, deadline) < 0))
		return -1;
	for (;;) {
		struct xsd_sockmsg r;
		if (xs_get(&r, sizeof(r), deadline) < 0)
			return -1;
		if (r.len > XENSTORE_PAYLOAD_MAX)
			return -1; /* protocol violation: the stream is lost */
		if (r.type == XS_WATCH_EVENT || r.req_id != m.req_id) {
			if (xs_get(NULL, r.len, deadline) < 0)
				return -1;
			continue;
		}
		if (r.type == XS_ERROR || r.len > cap) {
			if (xs_get(NULL, r.len, deadline) < 0)
				return -1;
			return -1;
		}
		if (xs_get(out, r.len, deadline) < 0)
			return -1;
		*outlen = r.len;
		return 0;
	}
}

int xs_read(const char *path, char *buf, size_t cap)
{
	size_t n;
	if (cap == 0 ||
	    xs_talk(XS_READ, path, strlen(path) + 1, NULL, 0, buf, cap - 1, &n) < 0)
		return -1;
	buf[n] = '\0';
	if (strlen(buf) != n) /* embedded NUL: not a string value */
		return -1;
	return (int)n;
}

int xs_write(const char *path, const char *value)
{
	char ok[8];
	size_t n;
	return xs_talk(XS_WRITE, path, strlen(path) + 1, value, strlen(value),
		       ok, sizeof(ok), &n);
}

long xs_read_uint(const char *path)
{
	char buf[24];
	int n = xs_read(path, buf, sizeof(buf));
	if (n <= 0 || n > 18)
		return -1;
	long v = 0;
	for (int i = 0; i < n; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		v = v * 10 + (buf[i] - '0');
	}
	return v;
}

int xs_directory(const char *path, char *buf, size_t cap)
{
	size_t n;
	if (cap == 0 ||
	    xs_talk(XS_DIRECTORY, path, strlen(path) + 1, NULL, 0, buf, cap - 1, &n) < 0)
		return -1;
	buf[n] = '\0'; /* names are NUL-separated; the list ends with two */
	return (int)n;
}
