/*
 * vchan_ring.c - the vchan server's ring engine (unikernel/
 * xen/vchan_ring.c, the code the Xen kernel runs) against a simulated
 * libxenvchan client sharing the same control page and ring pages.
 *
 * The simulated client follows libxenvchan's documented protocol (Xen's
 * xen/io/libxenvchan.h): it finds the rings through the orders and the
 * grant list in the control page (resolving grant references through a
 * simulated grant table), writes the left ring, reads the right one, sets
 * cli_live = 1 and srv_notify = WRITE when it connects, requests
 * notifications in srv_notify and honours (clears) the server's requests
 * in cli_notify. Events both ways are counted, so the notification flags
 * are checked, not assumed. The layout of our struct is checked against
 * Xen's own header at compile time.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xen/io/libxenvchan.h>

#include "vchan.h"

/* same layout as Xen's struct vchan_interface */
#define SAME_OFFSET(f)                                                      \
	_Static_assert(offsetof(struct vchan_shared, f) ==                  \
			       offsetof(struct vchan_interface, f),         \
		       "offset of " #f)
SAME_OFFSET(left);
SAME_OFFSET(right);
SAME_OFFSET(left_order);
SAME_OFFSET(right_order);
SAME_OFFSET(cli_live);
SAME_OFFSET(srv_live);
SAME_OFFSET(cli_notify);
SAME_OFFSET(srv_notify);
SAME_OFFSET(grants);
_Static_assert(sizeof(struct vchan_shared) == sizeof(struct vchan_interface), "size");
_Static_assert(VCHAN_NOTIFY_WRITE == 1 && VCHAN_NOTIFY_READ == 2, "flags");

#include "check.h"
#include "simpeer.h"

/* ---- simulated grant table (simpeer.c) and event channel ---------------- */
#define CLIENT 0
static int srv_events;        /* server -> client (vchan_notify_peer) */
static int cli_events;        /* client -> server */

static uint32_t grant(uint8_t *page)
{
	int ref = sim_grant(CLIENT, page, false);
	if (ref < 0)
		abort();
	return (uint32_t)ref;
}

void vchan_notify_peer(struct vchan *v)
{
	(void)v;
	srv_events++;
}

/* ---- simulated libxenvchan client -------------------------------------- */
struct client {
	struct vchan_shared *sh;
	uint8_t *wr_pages[VCHAN_MAX_RING_PAGES]; /* left */
	uint8_t *rd_pages[VCHAN_MAX_RING_PAGES]; /* right */
	uint32_t wr_size, rd_size;
};

static uint8_t *cring(uint8_t **pages, uint32_t off)
{
	return pages[off / VCHAN_PAGE] + off % VCHAN_PAGE;
}

static int map_ring(struct client *c, unsigned order, uint8_t **pages,
		    uint32_t *size, unsigned *g)
{
	if (order < 10 || order > 20)
		return -1;
	*size = 1u << order;
	if (order == 10 || order == 11) {
		pages[0] = (uint8_t *)c->sh + (order == 10 ? 1024 : 2048);
		return 0;
	}
	for (uint32_t i = 0; i < *size / VCHAN_PAGE; i++) {
		pages[i] = sim_map(CLIENT, c->sh->grants[(*g)++], true);
		if (!pages[i])
			return -1;
	}
	return 0;
}

static int client_connect(struct client *c, void *ctrl)
{
	memset(c, 0, sizeof(*c));
	c->sh = ctrl;
	unsigned g = 0;
	if (map_ring(c, c->sh->left_order, c->wr_pages, &c->wr_size, &g) < 0 ||
	    map_ring(c, c->sh->right_order, c->rd_pages, &c->rd_size, &g) < 0)
		return -1;
	c->sh->cli_live = 1;
	c->sh->srv_notify = VCHAN_NOTIFY_WRITE;
	cli_events++; /* libxenvchan wakes the server up */
	return 0;
}

static void client_send_notify(struct client *c, uint8_t bit)
{
	if (__atomic_fetch_and(&c->sh->cli_notify, (uint8_t)~bit, __ATOMIC_SEQ_CST) & bit)
		cli_events++;
}

static size_t client_write(struct client *c, const uint8_t *p, size_t n)
{
	uint32_t space = c->wr_size - (c->sh->left.prod - c->sh->left.cons);
	size_t k = n < space ? n : space;
	for (size_t i = 0; i < k; i++)
		*cring(c->wr_pages, (c->sh->left.prod + i) & (c->wr_size - 1)) = p[i];
	__atomic_thread_fence(__ATOMIC_RELEASE);
	c->sh->left.prod += (uint32_t)k;
	if (k)
		client_send_notify(c, VCHAN_NOTIFY_WRITE);
	return k;
}

static size_t client_read(struct client *c, uint8_t *p, size_t n)
{
	uint32_t ready = c->sh->right.prod - c->sh->right.cons;
	size_t k = n < ready ? n : ready;
	for (size_t i = 0; i < k; i++)
		p[i] = *cring(c->rd_pages, (c->sh->right.cons + i) & (c->rd_size - 1));
	c->sh->right.cons += (uint32_t)k;
	if (k)
		client_send_notify(c, VCHAN_NOTIFY_READ);
	return k;
}

/* ---- fixtures ----------------------------------------------------------- */
static uint64_t rng = 0x12345678;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

struct fixture {
	uint8_t *ctrl;
	uint8_t *lp[VCHAN_MAX_RING_PAGES], *rp[VCHAN_MAX_RING_PAGES];
	uint32_t lg[VCHAN_MAX_RING_PAGES], rg[VCHAN_MAX_RING_PAGES];
	struct vchan v;
};

/* Separately allocated pages, granted in an order unlike their use: the
 * engine must walk the page list, not assume contiguity. */
static int fixture_init(struct fixture *f, unsigned lo, unsigned ro)
{
	memset(f, 0, sizeof(*f));
	sim_gnt_reset();
	sim_gnt_next = 8; /* like Xen: the first refs are reserved */
	f->ctrl = aligned_alloc(VCHAN_PAGE, VCHAN_PAGE);
	memset(f->ctrl, 0xa5, VCHAN_PAGE); /* not zeroed: setup must write all */
	/* pages only for valid orders (the refused ones never get that far) */
	unsigned nl = lo >= 12 && lo <= VCHAN_MAX_ORDER ? 1u << (lo - 12) : 0;
	unsigned nr = ro >= 12 && ro <= VCHAN_MAX_ORDER ? 1u << (ro - 12) : 0;
	for (unsigned i = nr; i-- > 0;) {
		f->rp[i] = aligned_alloc(VCHAN_PAGE, VCHAN_PAGE);
		f->rg[i] = grant(f->rp[i]);
	}
	for (unsigned i = nl; i-- > 0;) {
		f->lp[i] = aligned_alloc(VCHAN_PAGE, VCHAN_PAGE);
		f->lg[i] = grant(f->lp[i]);
	}
	return vchan_setup(&f->v, f->ctrl, lo, ro, f->lp, f->lg, f->rp, f->rg);
}

static void fixture_free(struct fixture *f)
{
	for (unsigned i = 0; i < VCHAN_MAX_RING_PAGES; i++) {
		free(f->lp[i]);
		free(f->rp[i]);
	}
	free(f->ctrl);
}

/* ---- tests -------------------------------------------------------------- */
static void test_setup(void)
{
	struct fixture f;
	/* valid: in-page pairs, mixed, multi-page */
	static const unsigned ok[][2] = { { 10, 11 }, { 11, 10 }, { 10, 12 }, { 12, 11 },
					  { 12, 12 }, { 15, 15 }, { 17, 17 }, { 10, 17 } };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_EQ(fixture_init(&f, ok[i][0], ok[i][1]), 0);
		struct vchan_shared *sh = (void *)f.ctrl;
		CHECK_EQ(sh->left_order, ok[i][0]);
		CHECK_EQ(sh->right_order, ok[i][1]);
		CHECK_EQ(sh->cli_live, VCHAN_LIVE_WAITING);
		CHECK_EQ(sh->srv_live, VCHAN_LIVE_CONNECTED);
		CHECK_EQ(sh->cli_notify, VCHAN_NOTIFY_WRITE);
		CHECK_EQ(sh->srv_notify, 0);
		CHECK_EQ(sh->left.prod | sh->left.cons | sh->right.prod | sh->right.cons, 0);
		struct client c;
		CHECK_EQ(client_connect(&c, f.ctrl), 0);
		/* the client found the server's own pages through the grant list */
		if (ok[i][0] >= 12)
			CHECK(c.wr_pages[0] == f.lp[0] && c.wr_pages[(c.wr_size - 1) / VCHAN_PAGE] ==
							    f.lp[(c.wr_size - 1) / VCHAN_PAGE]);
		if (ok[i][1] >= 12)
			CHECK(c.rd_pages[0] == f.rp[0]);
		CHECK_EQ(vchan_client_state(&f.v), VCHAN_LIVE_CONNECTED);
		fixture_free(&f);
	}
	/* refused: same in-page offset twice, orders out of range */
	static const unsigned bad[][2] = { { 10, 10 }, { 11, 11 }, { 9, 12 }, { 12, 18 }, { 18, 12 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(fixture_init(&f, bad[i][0], bad[i][1]) < 0);
		fixture_free(&f);
	}
	/* missing ring pages are refused */
	CHECK_EQ(fixture_init(&f, 13, 13), 0);
	uint8_t *keep = f.lp[1];
	f.lp[1] = NULL;
	CHECK(vchan_setup(&f.v, f.ctrl, 13, 13, f.lp, f.lg, f.rp, f.rg) < 0);
	f.lp[1] = keep;
	fixture_free(&f);
}

/* Client streams pseudo-random bytes in random chunks; the server echoes
 * them back in random chunks; the client checks what it gets back. Starting
 * indexes near 2^32 make the free-running counters wrap. */
static void traffic(unsigned order, uint32_t idx0, uint32_t total)
{
	struct fixture f;
	CHECK_EQ(fixture_init(&f, order, order == 10 ? 11 : order), 0);
	struct vchan_shared *sh = (void *)f.ctrl;
	sh->left.cons = sh->left.prod = sh->right.cons = sh->right.prod = idx0;
	f.v.rd_cons = f.v.wr_prod = idx0;
	struct client c;
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	uint8_t *sent = malloc(total), *back = malloc(total), *buf = malloc(1 << 19);
	for (uint32_t i = 0; i < total; i++)
		sent[i] = (uint8_t)rnd();
	uint32_t s = 0, got = 0, pending = 0, full_left = 0, full_right = 0;
	while (got < total) {
		if (s < total) {
			size_t want = 1 + rnd() % (3 * c.wr_size / 2);
			if (want > total - s)
				want = total - s;
			size_t k = client_write(&c, sent + s, want);
			if (k < want)
				full_left++;
			s += (uint32_t)k;
		}
		/* server: read what is there into its pending buffer, echo it */
		size_t room = (1u << 19) - pending, ask = 1 + rnd() % (2 * c.wr_size);
		int r = vchan_read(&f.v, buf + pending, ask < room ? ask : room);
		CHECK(r >= 0);
		if (r > 0)
			pending += (uint32_t)r;
		if (pending) {
			int w = vchan_write(&f.v, buf, pending);
			CHECK(w >= 0);
			if (w >= 0 && (uint32_t)w < pending)
				full_right++;
			if (w > 0) {
				memmove(buf, buf + w, pending - (uint32_t)w);
				pending -= (uint32_t)w;
			}
		}
		if (rnd() % 3) /* a client slower than the server */
			got += (uint32_t)client_read(&c, back + got, 1 + rnd() % c.rd_size);
	}
	CHECK(memcmp(sent, back, total) == 0);
	CHECK_EQ(f.v.st.rx_bytes, total);
	CHECK_EQ(f.v.st.tx_bytes, total);
	CHECK_EQ(f.v.st.bad_idx, 0);
	printf("traffic order=%u idx0=%#x: %u bytes each way, end idx %#x, full left %u right %u\n",
	       order, idx0, total, sh->left.prod, full_left, full_right);
	free(sent);
	free(back);
	free(buf);
	fixture_free(&f);
}

static void test_full_ring(void)
{
	struct fixture f;
	CHECK_EQ(fixture_init(&f, 12, 12), 0);
	struct client c;
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	uint8_t data[4096 + 100], out[5000];
	memset(data, 'x', sizeof(data));
	CHECK_EQ(client_write(&c, data, sizeof(data)), 4096); /* exactly full */
	CHECK_EQ(vchan_rx_avail(&f.v), 4096);
	CHECK_EQ(vchan_read(&f.v, out, sizeof(out)), 4096);
	CHECK_EQ(vchan_rx_avail(&f.v), 0);
	CHECK_EQ(vchan_read(&f.v, out, sizeof(out)), 0);
	/* server fills the right ring; further writes take nothing */
	CHECK_EQ(vchan_write(&f.v, data, sizeof(data)), 4096);
	CHECK_EQ(vchan_tx_space(&f.v), 0);
	CHECK_EQ(vchan_write(&f.v, data, 1), 0);
	CHECK_EQ(client_read(&c, out, 10), 10);
	CHECK_EQ(vchan_tx_space(&f.v), 10);
	CHECK_EQ(vchan_write(&f.v, data, 20), 10);
	fixture_free(&f);
}

/* Events only when the other side asked, each request answered once. */
static void test_notifications(void)
{
	struct fixture f;
	CHECK_EQ(fixture_init(&f, 12, 12), 0);
	struct client c;
	srv_events = cli_events = 0;
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	CHECK_EQ(cli_events, 1); /* the connect wake-up */
	struct vchan_shared *sh = (void *)f.ctrl;
	uint8_t b[64];

	/* the server asked (at reset) to hear about the first write */
	CHECK_EQ(client_write(&c, (const uint8_t *)"a", 1), 1);
	CHECK_EQ(cli_events, 2);
	CHECK_EQ(sh->cli_notify & VCHAN_NOTIFY_WRITE, 0);
	CHECK_EQ(client_write(&c, (const uint8_t *)"b", 1), 1);
	CHECK_EQ(cli_events, 2); /* not asked again: no event */
	/* arming before sleeping: the final check sees the data at once */
	CHECK_EQ(vchan_rx_arm(&f.v), 2);
	CHECK_EQ(sh->cli_notify & VCHAN_NOTIFY_WRITE, VCHAN_NOTIFY_WRITE);
	/* reading: the client did not ask for READ events */
	CHECK_EQ(vchan_read(&f.v, b, sizeof(b)), 2);
	CHECK_EQ(srv_events, 0);
	/* writing: the client asked for WRITE at connect; once */
	CHECK_EQ(vchan_write(&f.v, "AB", 2), 2);
	CHECK_EQ(srv_events, 1);
	CHECK_EQ(vchan_write(&f.v, "C", 1), 1);
	CHECK_EQ(srv_events, 1);
	sh->srv_notify |= VCHAN_NOTIFY_WRITE; /* client waits for data again */
	CHECK_EQ(vchan_write(&f.v, "D", 1), 1);
	CHECK_EQ(srv_events, 2);
	/* the client asks to hear about reads (its writes blocked) */
	sh->srv_notify |= VCHAN_NOTIFY_READ;
	CHECK_EQ(client_write(&c, (const uint8_t *)"xyz", 3), 3);
	CHECK_EQ(cli_events, 3); /* armed above */
	CHECK_EQ(vchan_read(&f.v, b, 1), 1);
	CHECK_EQ(srv_events, 3);
	CHECK_EQ(vchan_read(&f.v, b, 1), 1);
	CHECK_EQ(srv_events, 3);
	/* server's tx full: arming for READ, the client's read wakes it */
	CHECK_EQ(client_read(&c, b, sizeof(b)), 4);
	uint8_t fill[4096];
	memset(fill, 'F', sizeof(fill));
	CHECK_EQ(vchan_write(&f.v, fill, sizeof(fill)), 4096);
	CHECK_EQ(vchan_tx_arm(&f.v), 0);
	int before = cli_events;
	CHECK_EQ(client_read(&c, b, 8), 8);
	CHECK_EQ(cli_events, before + 1);
	CHECK_EQ(vchan_tx_space(&f.v), 8);
	fixture_free(&f);
}

/* The client writes anything into the shared page: never an access out of
 * the rings (ASan), never a negative or oversized count, broken stays
 * broken until reset, and a reset serves a well-behaved client again. */
static void test_hostile(void)
{
	struct fixture f;
	CHECK_EQ(fixture_init(&f, 13, 13), 0);
	struct vchan_shared *sh = (void *)f.ctrl;
	struct client c;
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	uint8_t buf[1 << 14];
	/* producer claims more than the ring holds */
	sh->left.prod = 8192 + 1;
	CHECK(vchan_rx_avail(&f.v) < 0);
	CHECK(vchan_read(&f.v, buf, sizeof(buf)) < 0);
	sh->left.prod = 0; /* going back does not un-break it */
	CHECK(vchan_read(&f.v, buf, sizeof(buf)) < 0);
	CHECK_EQ(f.v.st.bad_idx, 1);
	vchan_reset(&f.v);
	CHECK_EQ(vchan_client_state(&f.v), VCHAN_LIVE_WAITING);
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	/* consumer past our producer (2^32 - 1 behind = 1 ahead) */
	sh->right.cons = 1;
	CHECK(vchan_tx_space(&f.v) < 0);
	CHECK(vchan_write(&f.v, "x", 1) < 0);
	vchan_reset(&f.v);
	/* odd cli_live values count as gone */
	sh->cli_live = 7;
	CHECK_EQ(vchan_client_state(&f.v), VCHAN_LIVE_GONE);
	vchan_reset(&f.v);
	/* scribbled orders and grants: the engine keeps its own copies */
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	sh->left_order = 30;
	sh->right_order = 1;
	sh->grants[0] = 0xffffffff;
	CHECK_EQ(client_write(&c, (const uint8_t *)"abc", 3), 3);
	CHECK_EQ(vchan_read(&f.v, buf, sizeof(buf)), 3);
	/* random garbage in every field, many rounds */
	unsigned rounds = 200000, bad = 0;
	for (unsigned i = 0; i < rounds; i++) {
		uint32_t *w = (uint32_t *)(void *)sh;
		w[rnd() % 6] = rnd() % 4 ? rnd() : rnd() % 9000;
		int r = (rnd() & 1) ? vchan_read(&f.v, buf, rnd() % sizeof(buf))
				    : vchan_write(&f.v, buf, rnd() % sizeof(buf));
		CHECK(r <= 8192);
		if (r < 0) {
			bad++;
			vchan_reset(&f.v);
		}
	}
	printf("hostile: %u rounds, %u broken rings reset\n", rounds, bad);
	CHECK(bad > 0);
	/* a well-behaved client after all that */
	vchan_reset(&f.v);
	CHECK_EQ(client_connect(&c, f.ctrl), 0);
	CHECK_EQ(client_write(&c, (const uint8_t *)"hello\n", 6), 6);
	CHECK_EQ(vchan_read(&f.v, buf, sizeof(buf)), 6);
	CHECK(memcmp(buf, "hello\n", 6) == 0);
	fixture_free(&f);
}

static void test_reconnect(void)
{
	struct fixture f;
	CHECK_EQ(fixture_init(&f, 12, 12), 0);
	struct client c;
	uint8_t b[16];
	for (int round = 0; round < 3; round++) {
		CHECK_EQ(vchan_client_state(&f.v), VCHAN_LIVE_WAITING);
		CHECK_EQ(client_connect(&c, f.ctrl), 0);
		CHECK_EQ(client_write(&c, (const uint8_t *)"hi\n", 3), 3);
		/* the client leaves data unread behind it */
		CHECK_EQ(vchan_read(&f.v, b, 2), 2);
		CHECK_EQ(vchan_write(&f.v, "HI", 2), 2);
		c.sh->cli_live = 0; /* what libxenvchan_close and gntdev do */
		CHECK_EQ(vchan_client_state(&f.v), VCHAN_LIVE_GONE);
		vchan_reset(&f.v);
		CHECK_EQ(vchan_rx_avail(&f.v), 0);
		CHECK_EQ(vchan_tx_space(&f.v), 4096);
	}
	fixture_free(&f);
}

int main(void)
{
	test_setup();
	test_full_ring();
	test_notifications();
	test_reconnect();
	traffic(10, 0, 1 << 20);
	traffic(12, 0xfffff000u, 1 << 20);
	traffic(14, 0xffffffffu - 5000, 3 << 20);
	traffic(17, 0x7fffff00u, 4 << 20);
	test_hostile();
	printf("%d checks, %d failures\n", checks, failures);
	return failures != 0;
}
