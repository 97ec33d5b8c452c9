/*
 * plat_test.h - a platform for C unit tests and fuzzers: frames sent by
 * the stack are captured, the clock is a variable, randomness is a fixed
 * xorshift sequence, and plat_net_recv() just advances the clock.
 */
#ifndef PLAT_TEST_H
#define PLAT_TEST_H

#include "platform.h"
#include "net.h"

#define TEST_TX_MAX 64

struct test_frame {
	size_t len;
	uint8_t data[ETH_FRAME_MAX];
};

extern uint64_t test_now;             /* plat_now_ms() */
extern uint8_t test_mac[ETH_ALEN];    /* 02:00:00:00:00:01 after reset */
extern struct plat_netcfg test_netcfg;
extern bool test_stop;
extern struct test_frame test_tx[TEST_TX_MAX]; /* captured frames */
extern int test_ntx;                  /* how many (older ones dropped) */
extern int test_send_fail;            /* make plat_net_send fail */
extern char test_console[8192];       /* console output, NUL-terminated */
extern size_t test_console_len;

/* Clear captured frames and console, clock at 1000 ms, DHCP config,
 * default MAC, random seed. Call net_init() after it. */
void test_reset(void);
/* Forget captured frames only. */
void test_clear_tx(void);

#endif
