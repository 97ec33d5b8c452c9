/*
 * xen_xenstore.c - the unikernel's xenstore client (unikernel/
 * xen/xenstore.c, unchanged) against a simulated xenstored that shares the
 * same xenstore_domain_interface page in memory.
 *
 * The environment the client needs (start_info, mfn_to_virt, event channel
 * and clock functions) is provided here: notifying the event channel runs
 * the simulated daemon, polling advances a fake clock (so the client's
 * timeouts end), and the daemon can be told to misbehave: oversized or
 * mismatched replies, watch events in between, corrupt ring indices,
 * replies delivered a byte at a time, silence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xenplat.h"

#include "check.h"

/* ---- the environment xenstore.c links against ------------------------ */
start_info_t start_info;
static struct xenstore_domain_interface *page;
static uint64_t now_ns;

void *mfn_to_virt(uint64_t mfn)
{
	(void)mfn;
	return page;
}
uint64_t xen_time_ns(void) { return now_ns; }
void evtchn_clear(evtchn_port_t port) { (void)port; }

static void daemon_step(void);
void evtchn_notify(evtchn_port_t port)
{
	(void)port;
	daemon_step();
}
void evtchn_poll(evtchn_port_t port, uint64_t deadline)
{
	(void)port;
	/* time passes: 1 ms per wait, never past the caller's deadline */
	now_ns += 1000000;
	if (deadline && now_ns > deadline)
		now_ns = deadline;
	daemon_step();
}

/* ---- simulated xenstored -------------------------------------------- */
enum mode { NORMAL, HUGE_LEN, WRONG_ID_FIRST, WATCH_FIRST, ERROR_REPLY,
	    EMBEDDED_NUL, CORRUPT_PROD, DRIBBLE, SILENT, LONG_VALUE };
static enum mode mode;
static struct { char key[64]; char val[128]; } store[32];
static int nstore;
static uint8_t pending[8192]; /* reply bytes not yet in the ring */
static size_t npending;
static uint8_t reqbuf[8192];
static size_t nreq;
static int requests;

static void put_reply(uint32_t type, uint32_t id, const void *body, uint32_t len)
{
	struct xsd_sockmsg m = { .type = type, .req_id = id, .tx_id = 0, .len = len };
	memcpy(pending + npending, &m, sizeof(m));
	npending += sizeof(m);
	if (len && body) {
		memcpy(pending + npending, body, len);
		npending += len;
	}
}

static const char *lookup(const char *k)
{
	for (int i = 0; i < nstore; i++)
		if (!strcmp(store[i].key, k))
			return store[i].val;
	return NULL;
}

static void handle(const struct xsd_sockmsg *m, const char *body)
{
	requests++;
	switch (mode) {
	case SILENT:
		return;
	case HUGE_LEN: {
		struct xsd_sockmsg r = { XS_READ, m->req_id, 0, XENSTORE_PAYLOAD_MAX + 1 };
		memcpy(pending + npending, &r, sizeof(r));
		npending += sizeof(r);
		return;
	}
	case WRONG_ID_FIRST:
		put_reply(m->type, m->req_id + 1000, "stale", 5);
		break;
	case WATCH_FIRST:
		put_reply(XS_WATCH_EVENT, 0, "some/path\0token", 16);
		break;
	case ERROR_REPLY:
		put_reply(XS_ERROR, m->req_id, "EACCES", 7);
		return;
	case EMBEDDED_NUL:
		put_reply(m->type, m->req_id, "ab\0cd", 5);
		return;
	case CORRUPT_PROD:
		page->rsp_prod = page->rsp_cons + XENSTORE_RING_SIZE + 7;
		return;
	case LONG_VALUE: {
		static char big[3000];
		memset(big, 'x', sizeof(big));
		put_reply(m->type, m->req_id, big, sizeof(big));
		return;
	}
	default:
		break;
	}
	if (m->type == XS_READ) {
		const char *v = lookup(body);
		if (v)
			put_reply(XS_READ, m->req_id, v, (uint32_t)strlen(v));
		else
			put_reply(XS_ERROR, m->req_id, "ENOENT", 7);
	} else if (m->type == XS_WRITE) {
		size_t klen = strlen(body);
		if (nstore < 32 && klen < 64 && m->len - klen - 1 < 128) {
			memcpy(store[nstore].key, body, klen + 1);
			memcpy(store[nstore].val, body + klen + 1, m->len - klen - 1);
			store[nstore].val[m->len - klen - 1] = '\0';
			nstore++;
		}
		put_reply(XS_WRITE, m->req_id, "OK", 3);
	}
}

static void daemon_step(void)
{
	/* take every request byte the client published */
	while (page->req_cons != page->req_prod) {
		reqbuf[nreq++] = (uint8_t)page->req[MASK_XENSTORE_IDX(page->req_cons)];
		page->req_cons++;
		if (nreq >= sizeof(struct xsd_sockmsg)) {
			struct xsd_sockmsg m;
			memcpy(&m, reqbuf, sizeof(m));
			if (nreq == sizeof(m) + m.len) {
				char body[4200];
				memcpy(body, reqbuf + sizeof(m), m.len);
				body[m.len] = '\0';
				handle(&m, body);
				nreq = 0;
			}
		}
	}
	/* publish reply bytes as far as the ring has room (one at a time
	 * when dribbling) */
	size_t moved = 0;
	while (npending > 0 && page->rsp_prod - page->rsp_cons < XENSTORE_RING_SIZE) {
		page->rsp[MASK_XENSTORE_IDX(page->rsp_prod)] = (char)pending[0];
		memmove(pending, pending + 1, --npending);
		page->rsp_prod++;
		if (mode == DRIBBLE && ++moved == 1)
			break;
	}
}

static void reset(enum mode m, XENSTORE_RING_IDX idx0)
{
	memset(page, 0, sizeof(*page));
	page->req_cons = page->req_prod = idx0;
	page->rsp_cons = page->rsp_prod = idx0 + 3;
	npending = nreq = 0;
	mode = m;
	now_ns = 1000;
	xs_init();
}

int main(void)
{
	page = calloc(1, 4096);
	char buf[64];

	/* normal operation, indices about to wrap */
	reset(NORMAL, 0xfffffff0u);
	nstore = 0;
	CHECK_EQ(xs_write("device/vif/0/state", "4"), 0);
	CHECK_EQ(xs_read("device/vif/0/state", buf, sizeof(buf)), 1);
	CHECK(!strcmp(buf, "4"));
	CHECK_EQ(xs_read_uint("device/vif/0/state"), 4);
	CHECK_EQ(xs_read("missing", buf, sizeof(buf)), -1);
	CHECK_EQ(xs_read_uint("missing"), -1);
	CHECK_EQ(xs_write("num", "12x"), 0);
	CHECK_EQ(xs_read_uint("num"), -1); /* not a number */
	CHECK_EQ(xs_write("empty", ""), 0);
	CHECK_EQ(xs_read_uint("empty"), -1);
	/* many round trips: both rings wrap many times over */
	for (int i = 0; i < 2000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i % 8);
		CHECK_EQ(xs_read(i % 2 ? key : "num", buf, sizeof(buf)), i % 2 ? -1 : 3);
	}
	CHECK(page->rsp_prod < 0x10000); /* crossed 2^32 */
	/* a value longer than the caller's buffer is an error, not an
	 * overrun, and the stream stays in sync */
	CHECK_EQ(xs_write("long", "0123456789abcdef0123456789"), 0);
	CHECK_EQ(xs_read("long", buf, 8), -1);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), 3);
	/* a request bigger than the ring goes out in pieces */
	{
		static char path[3000];
		memset(path, 'p', sizeof(path) - 1);
		CHECK_EQ(xs_read(path, buf, sizeof(buf)), -1); /* ENOENT */
		CHECK_EQ(xs_read("num", buf, sizeof(buf)), 3);
	}

	reset(WRONG_ID_FIRST, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), 3); /* stale reply skipped */
	reset(WATCH_FIRST, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), 3); /* watch event skipped */
	reset(DRIBBLE, 100);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), 3); /* byte by byte */
	reset(ERROR_REPLY, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);
	CHECK_EQ(xs_write("a", "b"), -1);
	reset(EMBEDDED_NUL, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);
	reset(LONG_VALUE, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);

	/* hostile or dead daemons: errors after the timeout, never a hang */
	reset(HUGE_LEN, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);
	reset(CORRUPT_PROD, 0);
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);
	reset(SILENT, 0);
	uint64_t t0 = now_ns;
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);
	CHECK(now_ns - t0 >= 20ULL * 1000000000ULL); /* gave it 20 s */
	/* requests-ring indices that claim more than a ring's worth used */
	reset(NORMAL, 0);
	page->req_cons = page->req_prod + 5000;
	CHECK_EQ(xs_read("num", buf, sizeof(buf)), -1);

	free(page);
	printf("%d checks, %d failures\n", checks, failures);
	return failures != 0;
}
