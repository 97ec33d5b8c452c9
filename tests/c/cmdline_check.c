/*
 * cmdline_check.c - core/cmdline.c, the one reader of the kernel command
 * line (xen/setup.c, xen/vchan.c, apps/echo.c, host/plat_host.c), against
 * hostile lines: keys that are prefixes of other keys, words without '=',
 * empty values, numbers past 2^32, malformed addresses, and lines with no
 * NUL before the bound (each in a heap block of exactly that size, so
 * ASan stops any read past it).
 */
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"

#include "check.h"

/* The line in a heap block of exactly n bytes, no NUL unless it has one. */
static char *exact(const char *s, size_t n)
{
	char *b = malloc(n ? n : 1);
	memcpy(b, s, n);
	return b;
}

/* get(line, key) compared with want (NULL: absent). */
static int get_is(const char *line, const char *key, const char *want)
{
	struct cmdline_val v = { NULL, 0 };
	int found = cmdline_get(line, strlen(line) + 1, key, &v);
	if (!want)
		return !found;
	return found && v.n == strlen(want) && !memcmp(v.p, want, v.n);
}

static struct cmdline_val val(const char *s)
{
	return (struct cmdline_val){ s, strlen(s) };
}

static void test_words(void)
{
	/* a key that is a prefix of another key, either order */
	CHECK(get_is("vchan_order=16", "vchan", NULL));
	CHECK(get_is("vchan_order=16 vchan=data/x", "vchan", "data/x"));
	CHECK(get_is("vchan=data/x vchan_order=16", "vchan_order", "16"));
	CHECK(get_is("vchan=data/x", "vchan_order", NULL));
	CHECK(get_is("vchanx=1", "vchan", NULL));
	CHECK(get_is("xvchan=1", "vchan", NULL));
	CHECK(get_is("ip=1.2.3.4 gw=1.2.3.1", "ip", "1.2.3.4"));
	/* words without '=' are flags, never values */
	CHECK(get_is("vchan", "vchan", NULL));
	CHECK(get_is("vchan ts", "vchan", NULL));
	CHECK(cmdline_flag("a vchan b", 10, "vchan"));
	CHECK(!cmdline_flag("vchan=x", 8, "vchan"));
	CHECK(!cmdline_flag("tsx ts=1 xts", 13, "ts"));
	CHECK(cmdline_flag("tsx ts=1 xts  ts", 17, "ts"));
	/* empty value, empty word, empty line, runs of spaces */
	CHECK(get_is("echo=", "echo", ""));
	CHECK(get_is("=tcp", "echo", NULL));
	CHECK(get_is("", "echo", NULL));
	CHECK(!cmdline_flag("", 1, "ts"));
	CHECK(get_is("   echo=tcp   ", "echo", "tcp"));
	/* the value runs to the next space only; '=' inside it is its own */
	CHECK(get_is("selftest=a=b ts", "selftest", "a=b"));
	/* the last word of a key counts */
	CHECK(get_is("echo=tcp echo=udp", "echo", "udp"));
	CHECK(get_is("ip=1.1.1.1 ts ip=", "ip", ""));
	/* the bound: nothing past cap is read, a NUL before it ends the line */
	char *b = exact("ts ip=1.2.3.4", 13);
	struct cmdline_val v;
	CHECK(cmdline_flag(b, 13, "ts"));
	CHECK(cmdline_get(b, 13, "ip", &v) && v.n == 7);
	CHECK(cmdline_get(b, 8, "ip", &v) && v.n == 2); /* "1." */
	CHECK(cmdline_ipv4(v, &(uint32_t){ 0 }) < 0);
	CHECK(!cmdline_get(b, 5, "ip", &v));            /* "ts ip" */
	CHECK(!cmdline_flag(b, 1, "ts"));               /* "t" */
	CHECK(!cmdline_flag(b, 0, "ts"));
	free(b);
	b = exact("vchan_order=15", 14);
	unsigned order = 0;
	CHECK(cmdline_get(b, 14, "vchan_order", &v) && cmdline_uint(v, 12, 17, &order) == 0);
	CHECK_EQ(order, 15);
	CHECK(!cmdline_get(b, 11, "vchan_order", &v)); /* "vchan_order" cut before '=' */
	free(b);
	b = exact("ts\0ip=1.2.3.4", 13);
	CHECK(!cmdline_get(b, 13, "ip", &v)); /* past the NUL: not the line */
	free(b);
	b = exact("", 0);
	CHECK(!cmdline_flag(b, 0, "ts") && !cmdline_get(b, 0, "ts", &v));
	free(b);
	/* a value as long as the whole (bounded) line */
	size_t n = 4096;
	b = malloc(n);
	memcpy(b, "vchan=", 6);
	memset(b + 6, 'a', n - 6);
	CHECK(cmdline_get(b, n, "vchan", &v) && v.n == n - 6 && v.p == b + 6);
	CHECK(cmdline_uint(v, 0, 100, &order) < 0);
	free(b);
}

static void test_values(void)
{
	unsigned u = 7;
	CHECK(cmdline_uint(val("12"), 12, 17, &u) == 0 && u == 12);
	CHECK(cmdline_uint(val("17"), 12, 17, &u) == 0 && u == 17);
	CHECK(cmdline_uint(val("0000015"), 12, 17, &u) == 0 && u == 15);
	u = 7;
	CHECK(cmdline_uint(val("11"), 12, 17, &u) < 0);
	CHECK(cmdline_uint(val("18"), 12, 17, &u) < 0);
	CHECK(cmdline_uint(val(""), 0, 17, &u) < 0);
	CHECK(cmdline_uint(val("-1"), 0, 17, &u) < 0);
	CHECK(cmdline_uint(val("+15"), 0, 17, &u) < 0);
	CHECK(cmdline_uint(val("15x"), 0, 17, &u) < 0);
	CHECK(cmdline_uint(val("1 5"), 0, 17, &u) < 0);
	CHECK(cmdline_uint(val("4294967311"), 0, 17, &u) < 0);        /* 2^32 + 15 */
	CHECK(cmdline_uint(val("18446744073709551631"), 0, 17, &u) < 0); /* 2^64 + 15 */
	CHECK(cmdline_uint(val("99999999999999999999999999999999"), 0, 0xffffffffu, &u) < 0);
	CHECK(cmdline_uint(val("4294967295"), 0, 0xffffffffu, &u) == 0 && u == 0xffffffffu);
	CHECK(cmdline_uint(val("4294967296"), 0, 0xffffffffu, &u) < 0);
	CHECK_EQ(u, 0xffffffffu); /* untouched by the refusals */

	CHECK(cmdline_is(val("tcp"), "tcp"));
	CHECK(!cmdline_is(val("tcpx"), "tcp"));
	CHECK(!cmdline_is(val("tc"), "tcp"));
	CHECK(!cmdline_is(val(""), "tcp"));
	CHECK(cmdline_is(val(""), ""));
	CHECK(!cmdline_is((struct cmdline_val){ NULL, 0 }, "null"));

	uint32_t ip = 0;
	unsigned plen = 0;
	CHECK(cmdline_ipv4(val("192.168.56.50"), &ip) == 0 && ip == 0xc0a83832u);
	CHECK(cmdline_ipv4(val("0.0.0.0"), &ip) == 0 && ip == 0);
	CHECK(cmdline_ipv4(val("255.255.255.255"), &ip) == 0 && ip == 0xffffffffu);
	ip = 1;
	const char *bad[] = { "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "1..3.4", ".1.2.3",
			      "1.2.3.", "0001.2.3.4", "1.2.3.4x", "1.2.3.-4", "a.b.c.d", "1.2.3.4/24",
			      "4294967297.1.1.1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(cmdline_ipv4(val(bad[i]), &ip) < 0);
	CHECK_EQ(ip, 1);

	CHECK(cmdline_ipv4_prefix(val("10.0.0.2"), &ip, &plen) == 0 && ip == 0x0a000002u && plen == 24);
	CHECK(cmdline_ipv4_prefix(val("10.0.0.2/8"), &ip, &plen) == 0 && plen == 8);
	CHECK(cmdline_ipv4_prefix(val("10.0.0.2/32"), &ip, &plen) == 0 && plen == 32);
	CHECK(cmdline_ipv4_prefix(val("10.0.0.2/1"), &ip, &plen) == 0 && plen == 1);
	ip = 1;
	plen = 99;
	const char *badp[] = { "10.0.0.2/", "10.0.0.2/0", "10.0.0.2/33", "10.0.0.2/24/24", "10.0.0.2/24x",
			       "10.0.0.2//24", "10.0.0.2/-1", "10.0.0.2/4294967320", "10.0.0/24", "10.0.0.2:24" };
	for (size_t i = 0; i < sizeof(badp) / sizeof(badp[0]); i++)
		CHECK(cmdline_ipv4_prefix(val(badp[i]), &ip, &plen) < 0);
	CHECK(ip == 1 && plen == 99);
}

int main(void)
{
	test_words();
	test_values();
	printf("%d checks, %d failures\n", checks, failures);
	return failures != 0;
}
