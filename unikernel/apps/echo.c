/*
 * echo - the vchan echo of the seed walk-throughs: dom0 connects with
 * Xen's libxenvchan to /local/domain/<our id>/data/vchan (xen/vchan.h),
 * sends lines, and gets each back upper-cased ("hello from dom0" ->
 * "HELLO FROM DOM0"). One client at a time; when it goes away the rings
 * are reset and the next one is served. Lines longer than the buffer are
 * echoed in pieces (the bytes are the same).
 *
 * Kernel command line "echo=tcp": the same echo over TCP port 7 on the
 * vif (DHCP or ip=) instead of the vchan, to compare the two paths with
 * the same kernel (benchmarks/vchan_echo.py). One mode per boot: each runs
 * its own wait loop.
 *
 * TARGET=xen only: the host target has no vchan (Makefile refuses it).
 */
#include "../core/app.h"
#include "../core/cmdline.h"
#include "../core/net.h"
#include "../core/platform.h"
#include "../core/rt.h"
#include "../core/tcp.h"
#include "../xen/vchan.h"

const char app_name[] = "echo";

#define TCP_ECHO_PORT 7

static uint8_t in[4096];
static uint8_t line[4096];

static uint8_t upper(uint8_t c)
{
	return c >= 'a' && c <= 'z' ? (uint8_t)(c - 'a' + 'A') : c;
}

static void serve(void)
{
	size_t len = 0;
	for (;;) {
		int n = vchan_recv(in, sizeof(in));
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			uint8_t c = upper(in[i]);
			line[len++] = c;
			if (c == '\n' || len == sizeof(line)) {
				if (vchan_send(line, len) < 0)
					return;
				len = 0;
			}
		}
	}
}

static void vchan_echo(void)
{
	if (vchan_server_start() < 0) {
		printk("echo: vchan server failed to start\n");
		plat_exit(1);
	}
	unsigned clients = 0;
	while (vchan_accept() == 0) {
		printk("echo: client %u connected\n", ++clients);
		serve();
		const struct vchan_stats *st = vchan_stats();
		printk("echo: client %u gone (%lu bytes in, %lu out, %u events sent%s)\n",
		       clients, (unsigned long)st->rx_bytes,
		       (unsigned long)st->tx_bytes, st->notify,
		       st->bad_idx ? ", broke the ring" : "");
		vchan_disconnect();
	}
	vchan_server_stop();
}

/* TCP: take only what fits in the send buffer (the advertised window is
 * that space too), echo it upper-cased at once. */
static size_t tcp_echo_space(struct tcp_conn *c)
{
	return tcp_send_space(c);
}

static size_t tcp_echo_recv(struct tcp_conn *c, const uint8_t *p, size_t n)
{
	if (n == 0) {
		tcp_close(c);
		return 0;
	}
	size_t take = MIN(n, tcp_send_space(c));
	uint8_t buf[512];
	for (size_t done = 0; done < take;) {
		size_t k = MIN(take - done, sizeof(buf));
		for (size_t i = 0; i < k; i++)
			buf[i] = upper(p[done + i]);
		size_t sent = tcp_send(c, buf, k);
		done += sent;
		if (sent < k)
			return done; /* the rest comes again */
	}
	return take;
}

static void tcp_echo_sent(struct tcp_conn *c)
{
	tcp_recved(c); /* the window opens again */
}

static const struct tcp_ops tcp_echo_ops = {
	.recv = tcp_echo_recv,
	.sent = tcp_echo_sent,
	.rcv_space = tcp_echo_space,
};

void app_main(void)
{
	size_t cap;
	const char *line = plat_cmdline(&cap);
	struct cmdline_val mode;
	if (cmdline_get(line, cap, "echo", &mode)) {
		if (cmdline_is(mode, "tcp")) {
			tcp_listen(TCP_ECHO_PORT, &tcp_echo_ops);
			printk("echo: TCP echo on port %d\n", TCP_ECHO_PORT);
			net_run();
			return;
		}
		printk("echo: bad echo= ignored (tcp)\n");
	}
	vchan_echo();
}
