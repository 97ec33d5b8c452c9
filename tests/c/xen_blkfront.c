/*
 * xen_blkfront.c - blkfront's ring engine (unikernel/xen/blkfront_ring.c,
 * the code the Xen kernel runs) against a simulated blkback sharing the
 * same ring page and data pages in memory.
 *
 * The simulated backend plays blkback's part with ring.h's BACK_RING
 * macros: it resolves grant references through a simulated grant table
 * (refusing unknown refs, foreign domids and writes through read-only
 * grants), checks every request it gets (operation, segments, sector
 * range), copies sectors from a simulated disk into the granted page and
 * publishes responses. bf_wait() is where the frontend blocks: here it
 * runs one backend step. Backend modes cover in-order, reversed and one-
 * at-a-time answers and hostile behaviour: invented ids, duplicated ids,
 * a response producer far past the requests, error statuses, a wrong
 * operation, silence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blkfront.h"

#include "check.h"
#include "simpeer.h"

#define BACKEND 0
#define PORT 9
#define DISK_SECTORS 4096

/* grant table: simpeer.c */
static int fe_notifies, waits;
static uint8_t disk[DISK_SECTORS * BF_SECT];

int bf_grant(uint16_t domid, void *page, bool readonly)
{
	return sim_grant(domid, page, readonly);
}

void bf_notify(uint32_t port)
{
	if (port == PORT)
		fe_notifies++;
}

static uint8_t *be_map(grant_ref_t ref, bool write)
{
	return sim_map(BACKEND, ref, write);
}

/* ---- simulated blkback ---------------------------------------------- */
enum mode {
	IN_ORDER,  /* answer every request, in order */
	REVERSED,  /* answer a batch last-first */
	ONE,       /* one answer per wait */
	BAD_ID,    /* first answer carries an invented id, then behaves */
	DUP_ID,    /* answers the first request twice, the second never */
	EXTRA_RSP, /* one response more than there are requests */
	PROD_JUMP, /* rsp_prod far past the requests */
	ERR_STATUS, /* every response BLKIF_RSP_ERROR */
	BAD_OP,    /* operation WRITE in the response */
	SILENT,    /* never answers */
};
static enum mode mode;
static blkif_back_ring_t be;
static int be_bad_req;   /* requests that broke the protocol */
static int be_answered;
static bool be_tricked;  /* the one-off hostile act was done */

static void be_attach(struct blkfront *bf, RING_IDX idx0)
{
	uint8_t *ring = be_map(bf->ring_ref, true);
	BACK_RING_ATTACH(&be, (blkif_sring_t *)(void *)ring, idx0, BF_PAGE_SIZE);
	be_bad_req = be_answered = 0;
	be_tricked = false;
}

/* Serve one request into a response; 0 ok, <0 for a request we refuse. */
static int16_t be_serve(const blkif_request_t *req)
{
	if (req->operation != BLKIF_OP_READ || req->nr_segments < 1 ||
	    req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST) {
		be_bad_req++;
		return BLKIF_RSP_ERROR;
	}
	uint64_t s = req->sector_number;
	for (unsigned int i = 0; i < req->nr_segments; i++) {
		const struct blkif_request_segment *sg = &req->seg[i];
		uint8_t *page = be_map(sg->gref, true);
		if (!page || sg->first_sect > sg->last_sect || sg->last_sect >= BF_SECTS_PER_PAGE) {
			be_bad_req++;
			return BLKIF_RSP_ERROR;
		}
		unsigned int n = sg->last_sect - sg->first_sect + 1u;
		if (s > DISK_SECTORS || n > DISK_SECTORS - s) {
			be_bad_req++;
			return BLKIF_RSP_ERROR;
		}
		memcpy(page + sg->first_sect * BF_SECT, disk + s * BF_SECT, n * BF_SECT);
		s += n;
	}
	return BLKIF_RSP_OKAY;
}

static void be_put(uint64_t id, uint8_t op, int16_t status)
{
	blkif_response_t *r = RING_GET_RESPONSE(&be, be.rsp_prod_pvt);
	r->id = id;
	r->operation = op;
	r->status = status;
	be.rsp_prod_pvt++;
	be_answered++;
}

static void be_step(void)
{
	blkif_request_t batch[BF_RING_SIZE];
	unsigned int n = 0;
	RING_IDX rp = be.sring->req_prod;
	rmb();
	while (be.req_cons != rp && n < BF_RING_SIZE) {
		if (mode == ONE && n == 1)
			break;
		batch[n++] = *RING_GET_REQUEST(&be, be.req_cons);
		be.req_cons++;
	}
	for (unsigned int k = 0; k < n; k++) {
		const blkif_request_t *req = &batch[mode == REVERSED ? n - 1 - k : k];
		int16_t st = be_serve(req);
		switch (mode) {
		case BAD_ID:
			if (!be_tricked) {
				be_tricked = true;
				be_put(1000 + req->id, BLKIF_OP_READ, st);
				/* this request is answered properly next time */
				be.req_cons--;
				goto push;
			}
			be_put(req->id, BLKIF_OP_READ, st);
			break;
		case DUP_ID:
			be_put(batch[0].id, BLKIF_OP_READ, st);
			break;
		case ERR_STATUS:
			be_put(req->id, BLKIF_OP_READ, BLKIF_RSP_ERROR);
			break;
		case BAD_OP:
			be_put(req->id, BLKIF_OP_WRITE, st);
			break;
		default:
			be_put(req->id, BLKIF_OP_READ, st);
		}
	}
	if (mode == EXTRA_RSP && n > 0)
		be_put(batch[0].id, BLKIF_OP_READ, BLKIF_RSP_OKAY);
push:;
	int notify;
	RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&be, notify);
	(void)notify;
	if (mode == PROD_JUMP && n > 0)
		be.sring->rsp_prod += 1000;
	int more;
	RING_FINAL_CHECK_FOR_REQUESTS(&be, more);
	(void)more;
}

/* A wait on Xen ends with the event or a deadline: here the deadline
 * passes when the backend had nothing to answer three times running. */
int bf_wait(uint32_t port)
{
	static int idle;
	(void)port;
	waits++;
	int before = be_answered;
	if (mode != SILENT)
		be_step();
	idle = be_answered == before ? idle + 1 : 0;
	if (idle >= 3) {
		idle = 0;
		return -1;
	}
	return 0;
}

/* ---- tests ----------------------------------------------------------- */
static uint8_t *pages;
static uint8_t buf[(DISK_SECTORS + 1) * BF_SECT]; /* one sector of slack: overrun check */

static void setup(struct blkfront *bf, enum mode m, RING_IDX idx0)
{
	memset(pages, 0, (size_t)BF_PAGES * BF_PAGE_SIZE);
	sim_gnt_reset();
	fe_notifies = waits = 0;
	mode = m;
	CHECK_EQ(bf_init(bf, BACKEND, 51728, PORT, pages, idx0), 0);
	bf->sectors = DISK_SECTORS;
	be_attach(bf, idx0);
}

static bool same(uint64_t sector, uint64_t n)
{
	return memcmp(buf, disk + sector * BF_SECT, n * BF_SECT) == 0;
}

/* A read refused before any request reaches the ring (out of range, or
 * the device is dead). */
static void check_refused(struct blkfront *bf, uint64_t sector, uint64_t count)
{
	uint32_t reqs = bf->st.reqs;
	CHECK_EQ(bf_read(bf, sector, buf, count), -1);
	CHECK_EQ(bf->st.reqs, reqs);
}

static void test_reads(enum mode m, RING_IDX idx0)
{
	struct blkfront bf;
	setup(&bf, m, idx0);
	/* single sectors, a page, odd lengths, the last sector, all of it */
	static const uint64_t cases[][2] = { { 0, 1 }, { 7, 1 }, { 8, 8 }, { 3, 13 },
					     { 100, 77 }, { DISK_SECTORS - 1, 1 },
					     { 0, DISK_SECTORS } };
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 0xee, sizeof(buf));
		CHECK_EQ(bf_read(&bf, cases[i][0], buf, cases[i][1]), 0);
		CHECK(same(cases[i][0], cases[i][1]));
		CHECK_EQ(buf[cases[i][1] * BF_SECT], 0xee); /* nothing past the end */
		CHECK_EQ(bf.nbusy, 0);
	}
	CHECK_EQ(be_bad_req, 0);
	CHECK_EQ(bf.st.bad_id + bf.st.bad_op + bf.st.bad_prod + bf.st.err_status, 0);
	/* notifications were suppressed while the backend was busy: fewer
	 * than the requests, at least one per bf_read */
	CHECK(fe_notifies >= 7 && (uint32_t)fe_notifies < bf.st.reqs);
	printf("reads mode=%d idx0=%#x: %u requests, %d notifications, %d waits, ring idx now %#x\n",
	       (int)m, idx0, bf.st.reqs, fe_notifies, waits, bf.ring.req_prod_pvt);
	/* out of range: refused before any request */
	check_refused(&bf, DISK_SECTORS, 1);
	check_refused(&bf, DISK_SECTORS - 1, 2);
	check_refused(&bf, UINT64_MAX, 2);
	CHECK(!bf.broken);
}

static void test_bad_id(void)
{
	struct blkfront bf;
	setup(&bf, BAD_ID, 0);
	memset(buf, 0x5a, sizeof(buf));
	/* an invented id: the request behind that slot is lost */
	CHECK_EQ(bf_read(&bf, 40, buf, 1), -1);
	CHECK_EQ(bf.st.bad_id, 1);
	CHECK(bf.broken);
	CHECK_EQ(buf[0], 0x5a); /* no data delivered for it */
	check_refused(&bf, 41, 20); /* dead */
}

static void test_dup_id(void)
{
	struct blkfront bf;
	setup(&bf, DUP_ID, 0);
	/* two requests; both responses name the first: the duplicate
	 * breaks the device (the second request is never answered) */
	memset(buf, 0x5a, sizeof(buf));
	CHECK_EQ(bf_read(&bf, 0, buf, 16), -1);
	CHECK_EQ(bf.st.bad_id, 1);
	CHECK(same(0, 8)); /* the first answer was genuine */
	CHECK_EQ(buf[8 * BF_SECT], 0x5a);
	CHECK(bf.broken); /* its page may still be written: never reused */
	CHECK_EQ(bf_read(&bf, 0, buf, 1), -1);
}

static void test_extra_and_jump(enum mode m)
{
	struct blkfront bf;
	setup(&bf, m, 0xfffffff8u);
	memset(buf, 0x5a, sizeof(buf));
	CHECK_EQ(bf_read(&bf, 5, buf, 24), -1);
	CHECK_EQ(bf.st.bad_prod, 1);
	CHECK(bf.broken);
	check_refused(&bf, 5, 1); /* dead */
}

static void test_errors(void)
{
	struct blkfront bf;
	setup(&bf, ERR_STATUS, 0);
	CHECK_EQ(bf_read(&bf, 0, buf, 40), -1);
	CHECK(bf.st.err_status >= 1);
	CHECK_EQ(bf.nbusy, 0); /* drained: ids free again */
	CHECK(!bf.broken);
	mode = IN_ORDER; /* the backend recovers: so does the device */
	CHECK_EQ(bf_read(&bf, 9, buf, 40), 0);
	CHECK(same(9, 40));

	setup(&bf, BAD_OP, 0);
	CHECK_EQ(bf_read(&bf, 0, buf, 3), -1);
	CHECK_EQ(bf.st.bad_op, 1);
	CHECK(!bf.broken);
}

static void test_silent(void)
{
	struct blkfront bf;
	setup(&bf, SILENT, 0);
	CHECK_EQ(bf_read(&bf, 0, buf, 1), -1);
	CHECK_EQ(bf.st.timeouts, 1);
	CHECK(bf.broken);
}

static void test_grant_failure(void)
{
	struct blkfront bf;
	sim_gnt_reset();
	sim_fail_grant_after = 4;
	CHECK_EQ(bf_init(&bf, BACKEND, 0, PORT, pages, 0), -1);
	sim_fail_grant_after = -1;
}

int main(void)
{
	pages = aligned_alloc(BF_PAGE_SIZE, (size_t)BF_PAGES * BF_PAGE_SIZE);
	if (!pages)
		return 2;
	uint32_t x = 0x12345678;
	for (size_t i = 0; i < sizeof(disk); i++) {
		x = x * 1103515245u + 12345u;
		disk[i] = (uint8_t)(x >> 16);
	}
	test_reads(IN_ORDER, 0);
	test_reads(REVERSED, 0xfffffff0u); /* crosses the 2^32 wrap */
	test_reads(ONE, 0x7ffffffeu);
	test_bad_id();
	test_dup_id();
	test_extra_and_jump(EXTRA_RSP);
	test_extra_and_jump(PROD_JUMP);
	test_errors();
	test_silent();
	test_grant_failure();
	free(pages);
	printf("%d checks, %d failures\n", checks, failures);
	return failures != 0;
}
