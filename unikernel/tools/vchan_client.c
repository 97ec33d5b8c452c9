/*
 * vchan-client - talk to a vchan server (the bundled echo unikernel) from
 * dom0 through Xen's own libxenvchan: the interoperability test of our
 * server (unikernel/xen/vchan.c).
 *
 *   vchan-client DOMID PATH                 stdin lines -> server, replies -> stdout
 *   vchan-client --send TEXT DOMID PATH     one line, print the one reply line
 *   vchan-client --bench BYTES DOMID PATH   stream BYTES through the echo
 *                                           (checked), then 16-byte round trips
 *   vchan-client --tcp-bench BYTES IP PORT  the same against the echo kernel's
 *                                           TCP mode (echo=tcp), for comparison
 *
 * PATH is the server's xenstore directory, e.g. /local/domain/5/data/vchan.
 * Build: cc -O2 -o vchan-client vchan_client.c -lxenvchan -lxenctrl
 * (Debian: libxen-dev). Needs root (/dev/xen/gntdev, /dev/xen/evtchn,
 * xenstore). Exit status: 0 ok, 1 connection or protocol failure, 2 usage.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sched.h>
#include <stdbool.h>
#include <libxenvchan.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_TIMEOUT_S 20
#define MAX_LINE 65536

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct libxenvchan *connect_to(int domid, const char *path)
{
	/* the server may still be writing its keys: retry for a while */
	double deadline = now_s() + CONNECT_TIMEOUT_S;
	for (;;) {
		struct libxenvchan *c = libxenvchan_client_init(NULL, domid, path);
		if (c)
			return c;
		if (now_s() > deadline) {
			fprintf(stderr, "vchan-client: cannot connect to domain %d at %s: %s\n",
				domid, path, strerror(errno));
			return NULL;
		}
		usleep(200000);
	}
}

/* Read one reply line (up to '\n') into buf; its length, -1 on close. */
static ssize_t read_line(struct libxenvchan *c, char *buf, size_t cap)
{
	size_t n = 0;
	while (n < cap) {
		int r = libxenvchan_read(c, buf + n, 1);
		if (r < 0)
			return -1;
		if (r == 0) {
			if (!libxenvchan_is_open(c))
				return -1;
			libxenvchan_wait(c);
			continue;
		}
		if (buf[n++] == '\n')
			return (ssize_t)n;
	}
	return (ssize_t)n;
}

static int write_all(struct libxenvchan *c, const char *p, size_t n)
{
	while (n > 0) {
		if (!libxenvchan_is_open(c))
			return -1;
		int w = libxenvchan_write(c, p, n);
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
		if (n > 0 && w == 0)
			libxenvchan_wait(c);
	}
	return 0;
}

static int send_line(struct libxenvchan *c, const char *text)
{
	size_t n = strlen(text);
	char *line = malloc(n + 2), *reply = malloc(n + 2);
	int rc = 1;
	if (!line || !reply)
		goto out;
	memcpy(line, text, n);
	line[n] = '\n';
	if (write_all(c, line, n + 1) < 0) {
		fprintf(stderr, "vchan-client: write failed (server gone)\n");
		goto out;
	}
	/* the echo answers byte for byte: read exactly as many bytes */
	size_t got = 0;
	while (got < n + 1) {
		ssize_t r = read_line(c, reply + got, n + 1 - got);
		if (r < 0) {
			fprintf(stderr, "vchan-client: connection closed before the reply\n");
			goto out;
		}
		got += (size_t)r;
	}
	fwrite(reply, 1, got, stdout);
	rc = 0;
out:
	free(line);
	free(reply);
	return rc;
}

static int interactive(struct libxenvchan *c)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		if (send_line(c, line) != 0) {
			free(line);
			return 1;
		}
		fflush(stdout);
	}
	free(line);
	return 0;
}

static char expected_upper(char ch)
{
	return ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
}

/* Stay on the CPU we run on: Linux's pvclock keeps CLOCK_MONOTONIC
 * monotonic across vCPUs by clamping to the last value read, so with
 * skewed vCPU clocks (seen under TCG) a migrating timer reads round
 * trips of 0 us next to inflated ones. */
static void pin_to_this_cpu(void)
{
	int cpu = sched_getcpu();
	cpu_set_t set;
	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		perror("vchan-client: sched_setaffinity");
}

static void report_rtt(double *rtt, int rounds)
{
	/* median by insertion sort (small n) */
	for (int i = 1; i < rounds; i++) {
		double v = rtt[i];
		int j = i - 1;
		while (j >= 0 && rtt[j] > v) {
			rtt[j + 1] = rtt[j];
			j--;
		}
		rtt[j + 1] = v;
	}
	double sum = 0;
	for (int i = 0; i < rounds; i++)
		sum += rtt[i];
	printf("latency: 16-byte round trip over %d rounds: median %.1f us, mean %.1f us, min %.1f us, p99 %.1f us\n",
	       rounds, rtt[rounds / 2] * 1e6, sum / rounds * 1e6, rtt[0] * 1e6,
	       rtt[rounds * 99 / 100] * 1e6);
}

/* Without blocking, write up to want bytes of buf into the ring (write) or
 * read up to want bytes from it into buf: no more than the ring has room or
 * data for. The count moved (0: nothing to do), or -1. */
static int move_some(struct libxenvchan *c, bool write, char *buf, long want)
{
	int avail = write ? libxenvchan_buffer_space(c) : libxenvchan_data_ready(c);
	if (want <= 0 || avail <= 0)
		return 0;
	size_t k = (size_t)(want < avail ? want : avail);
	return write ? libxenvchan_write(c, buf, k) : libxenvchan_read(c, buf, k);
}

static int bench(struct libxenvchan *c, long total)
{
	pin_to_this_cpu();
	/* lines of 1024 bytes: 1023 lower-case letters and '\n' */
	char *out = malloc((size_t)total), *in = malloc((size_t)total);
	if (!out || !in)
		return 1;
	for (long i = 0; i < total; i++)
		out[i] = (i % 1024 == 1023) ? '\n' : (char)('a' + (i * 7) % 26);
	c->blocking = 0;
	long sent = 0, got = 0;
	unsigned waits = 0;
	double t0 = now_s();
	while (got < total) {
		if (!libxenvchan_is_open(c)) {
			fprintf(stderr, "vchan-client: server closed during bench\n");
			return 1;
		}
		int w = move_some(c, true, out + sent, total - sent);
		int r = move_some(c, false, in + got, total - got);
		if (w < 0 || r < 0)
			return 1;
		sent += w;
		got += r;
		if (w == 0 && r == 0) {
			waits++;
			libxenvchan_wait(c);
		}
	}
	double dt = now_s() - t0;
	for (long i = 0; i < total; i++) {
		if (in[i] != expected_upper(out[i])) {
			fprintf(stderr, "vchan-client: bench data differs at byte %ld\n", i);
			return 1;
		}
	}
	printf("throughput: %ld bytes echoed (dom0 -> domU -> dom0) in %.4f s: %.2f MB/s (%u waits)\n",
	       total, dt, total / dt / 1e6, waits);

	/* 16-byte round trips (15 characters and '\n'), blocking mode */
	c->blocking = 1;
	enum { ROUNDS = 2000 };
	static double rtt[ROUNDS];
	const char *msg = "0123456789abcde\n";
	char reply[16];
	for (int i = 0; i < ROUNDS; i++) {
		double a = now_s();
		if (write_all(c, msg, 16) < 0)
			return 1;
		size_t g = 0;
		while (g < 16) {
			int r = libxenvchan_read(c, reply + g, 16 - g);
			if (r < 0)
				return 1;
			g += (size_t)r;
		}
		rtt[i] = now_s() - a;
		if (memcmp(reply, "0123456789ABCDE\n", 16) != 0) {
			fprintf(stderr, "vchan-client: wrong round-trip reply\n");
			return 1;
		}
	}
	report_rtt(rtt, ROUNDS);
	free(out);
	free(in);
	return 0;
}

/* The same measurement over TCP to the echo kernel in echo=tcp mode. */
static int tcp_bench(const char *ip, int port, long total)
{
	pin_to_this_cpu();
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return 2;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "vchan-client: connect %s:%d: %s\n", ip, port, strerror(errno));
		return 1;
	}
	char *out = malloc((size_t)total), *in = malloc((size_t)total);
	if (!out || !in)
		return 1;
	for (long i = 0; i < total; i++)
		out[i] = (i % 1024 == 1023) ? '\n' : (char)('a' + (i * 7) % 26);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	long sent = 0, got = 0;
	double t0 = now_s();
	while (got < total) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < total ? POLLOUT : 0) };
		if (poll(&p, 1, 10000) <= 0) {
			fprintf(stderr, "vchan-client: tcp bench stalled at %ld/%ld bytes\n", got, total);
			return 1;
		}
		if (sent < total && (p.revents & POLLOUT)) {
			ssize_t w = send(fd, out + sent, (size_t)(total - sent), MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN)
				return 1;
			if (w > 0)
				sent += w;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = recv(fd, in + got, (size_t)(total - got), 0);
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				fprintf(stderr, "vchan-client: tcp connection closed at %ld bytes\n", got);
				return 1;
			}
			if (r > 0)
				got += r;
		}
	}
	double dt = now_s() - t0;
	for (long i = 0; i < total; i++) {
		if (in[i] != expected_upper(out[i])) {
			fprintf(stderr, "vchan-client: tcp bench data differs at byte %ld\n", i);
			return 1;
		}
	}
	printf("throughput: %ld bytes echoed (dom0 -> domU -> dom0, TCP over the bridge) in %.4f s: %.2f MB/s\n",
	       total, dt, total / dt / 1e6);
	fcntl(fd, F_SETFL, 0);
	enum { ROUNDS = 2000 };
	static double rtt[ROUNDS];
	char reply[16];
	for (int i = 0; i < ROUNDS; i++) {
		double a = now_s();
		if (send(fd, "0123456789abcde\n", 16, MSG_NOSIGNAL) != 16)
			return 1;
		size_t g = 0;
		while (g < 16) {
			ssize_t r = recv(fd, reply + g, 16 - g, 0);
			if (r <= 0)
				return 1;
			g += (size_t)r;
		}
		rtt[i] = now_s() - a;
		if (memcmp(reply, "0123456789ABCDE\n", 16) != 0)
			return 1;
	}
	report_rtt(rtt, ROUNDS);
	close(fd);
	free(out);
	free(in);
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: vchan-client [--send TEXT | --bench BYTES] DOMID PATH\n"
			"       vchan-client --tcp-bench BYTES IP PORT\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *send = NULL;
	long bench_bytes = 0;
	int i = 1;
	if (argc == 5 && !strcmp(argv[1], "--tcp-bench")) {
		char *end;
		long n = strtol(argv[2], &end, 10);
		long port = strtol(argv[4], NULL, 10);
		if (*end || n <= 0 || n > (1L << 30) || port <= 0 || port > 65535)
			return usage();
		return tcp_bench(argv[3], (int)port, n);
	}
	if (i + 1 < argc && !strcmp(argv[i], "--send")) {
		send = argv[i + 1];
		i += 2;
	} else if (i + 1 < argc && !strcmp(argv[i], "--bench")) {
		char *end;
		bench_bytes = strtol(argv[i + 1], &end, 10);
		if (*end || bench_bytes <= 0 || bench_bytes > (1L << 30))
			return usage();
		i += 2;
	}
	if (argc - i != 2)
		return usage();
	char *end;
	long domid = strtol(argv[i], &end, 10);
	if (*end || domid <= 0 || domid >= 0x7ff0)
		return usage();
	const char *path = argv[i + 1];
	if (!*path || strlen(path) > 40) {
		/* libxenvchan builds "<path>/event-channel" in a 64-byte buffer */
		fprintf(stderr, "vchan-client: path must be 1..40 characters\n");
		return 2;
	}
	if (send && strchr(send, '\n')) {
		fprintf(stderr, "vchan-client: --send TEXT must be one line\n");
		return 2;
	}
	struct libxenvchan *c = connect_to((int)domid, path);
	if (!c)
		return 1;
	c->blocking = 1;
	int rc = send ? send_line(c, send)
		      : bench_bytes ? bench(c, bench_bytes) : interactive(c);
	fflush(stdout);
	libxenvchan_close(c);
	return rc;
}
