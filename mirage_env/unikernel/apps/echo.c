/*
 * echo - the vchan echo of the seed walk-throughs: dom0 connects with
 * Xen's libxenvchan to /local/domain/<our id>/data/vchan (xen/vchan.h),
 * sends lines, and gets each back upper-cased ("hello from dom0" ->
 * "HELLO FROM DOM0"). One client at a time; when it goes away the rings
 * are reset and the next one is served. Lines longer than the buffer are
 * echoed in pieces (the bytes are the same).
 *
 * TARGET=xen only: the host target has no vchan (Makefile refuses it).
 */
#include "../core/app.h"
#include "../core/platform.h"
#include "../core/rt.h"
#include "../xen/vchan.h"

const char app_name[] = "echo";

static uint8_t in[4096];
static uint8_t line[4096];

static void serve(void)
{
	size_t len = 0;
	for (;;) {
		int n = vchan_recv(in, sizeof(in));
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			uint8_t c = in[i];
			if (c >= 'a' && c <= 'z')
				c = (uint8_t)(c - 'a' + 'A');
			line[len++] = c;
			if (c == '\n' || len == sizeof(line)) {
				if (vchan_send(line, len) < 0)
					return;
				len = 0;
			}
		}
	}
}

void app_main(void)
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
