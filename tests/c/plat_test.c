/* plat_test.c - see plat_test.h */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat_test.h"

uint64_t test_now;
uint8_t test_mac[ETH_ALEN];
struct plat_netcfg test_netcfg;
bool test_stop;
struct test_frame test_tx[TEST_TX_MAX];
int test_ntx;
int test_send_fail;
char test_console[8192];
size_t test_console_len;
static uint64_t rng;

void test_clear_tx(void)
{
	test_ntx = 0;
}

void test_reset(void)
{
	static const uint8_t mac[ETH_ALEN] = { 2, 0, 0, 0, 0, 1 };
	memcpy(test_mac, mac, sizeof(mac));
	test_now = 1000;
	memset(&test_netcfg, 0, sizeof(test_netcfg));
	test_netcfg.dhcp = true;
	test_stop = false;
	test_send_fail = 0;
	test_ntx = 0;
	test_console_len = 0;
	test_console[0] = '\0';
	rng = 0x9e3779b97f4a7c15ull;
}

uint64_t plat_now_ms(void)
{
	return test_now;
}

void plat_console_write(const char *s, size_t n)
{
	if (getenv("TEST_VERBOSE"))
		fwrite(s, 1, n, stderr);
	size_t room = sizeof(test_console) - 1 - test_console_len;
	if (n > room)
		n = room;
	memcpy(test_console + test_console_len, s, n);
	test_console_len += n;
	test_console[test_console_len] = '\0';
}

int plat_net_send(const void *frame, size_t len)
{
	if (test_send_fail)
		return -1;
	if (len > ETH_FRAME_MAX) {
		fprintf(stderr, "plat_net_send: oversized frame %zu\n", len);
		abort();
	}
	if (test_ntx == TEST_TX_MAX) { /* keep the newest */
		memmove(test_tx, test_tx + 1, sizeof(test_tx[0]) * (TEST_TX_MAX - 1));
		test_ntx--;
	}
	test_tx[test_ntx].len = len;
	memcpy(test_tx[test_ntx].data, frame, len);
	test_ntx++;
	return 0;
}

int plat_net_recv(void *buf, size_t cap, uint32_t timeout_ms)
{
	(void)buf;
	(void)cap;
	test_now += timeout_ms;
	return 0;
}

void plat_mac(uint8_t mac[6])
{
	memcpy(mac, test_mac, ETH_ALEN);
}

void plat_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	for (size_t i = 0; i < n; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		p[i] = (uint8_t)rng;
	}
}

bool plat_stopping(void)
{
	return test_stop;
}

void plat_netcfg(struct plat_netcfg *cfg)
{
	*cfg = test_netcfg;
}

void plat_exit(int code)
{
	exit(code);
}
