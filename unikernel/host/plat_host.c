/*
 * plat_host.c - the host platform: the unikernel runs as a Linux process
 * on a TAP device (the MirageOS "unix" target).
 *
 *   ./APP.host [--tap NAME] [--mac xx:xx:xx:xx:xx:xx]
 *              [--ip A.B.C.D/N [--gw G.H.I.J]] [--disk FILE]
 *
 * --disk FILE is the block device (plat_block_*): the image file, read
 * with pread in 512-byte sectors, never written.
 * No --ip means DHCP. Console goes to stdout, unbuffered. SIGINT/SIGTERM
 * set the stop flag; net_run() then returns and we exit 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/app.h"
#include "../core/cmdline.h"
#include "../core/csprng.h"
#include "../core/platform.h"

static int tap_fd = -1;
static int disk_fd = -1;
static uint64_t disk_sectors;
#define DISK_SECTOR 512
static uint8_t mac[6];
static struct plat_netcfg netcfg = { .dhcp = true };
static volatile sig_atomic_t stop_flag;
static sigset_t run_mask; /* signal mask to use while waiting in ppoll */

uint64_t plat_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void plat_console_write(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t r = write(1, s, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		s += r;
		n -= (size_t)r;
	}
}

int plat_net_send(const void *frame, size_t len)
{
	if (tap_fd < 0)
		return -1;
	ssize_t r = write(tap_fd, frame, len);
	return r == (ssize_t)len ? 0 : -1;
}

int plat_net_recv(void *buf, size_t cap, uint32_t timeout_ms)
{
	if (tap_fd < 0)
		return -1;
	struct pollfd pfd = { .fd = tap_fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = timeout_ms / 1000,
			       .tv_nsec = (long)(timeout_ms % 1000) * 1000000 };
	/* Signals are blocked except inside ppoll, so a SIGTERM can't slip
	 * in between the stop_flag check above and the wait. */
	int r = ppoll(&pfd, 1, &ts, &run_mask);
	if (r < 0)
		return errno == EINTR ? 0 : -1;
	if (r == 0)
		return 0;
	if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
		return -1;
	ssize_t n = read(tap_fd, buf, cap);
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	return (int)n;
}

void plat_mac(uint8_t out[6])
{
	memcpy(out, mac, 6);
}

/* The kernel's getrandom() seeds core/csprng.c once; plat_random is its
 * output (the same generator as on Xen, see xen/entropy.c). */
void plat_random(void *buf, size_t n)
{
	static bool seeded;

	if (!seeded) {
		uint8_t seed[32], *p = seed;
		size_t left = sizeof(seed);
		while (left > 0) {
			ssize_t r = getrandom(p, left, 0);
			if (r <= 0) {
				if (r < 0 && errno == EINTR)
					continue;
				abort();
			}
			p += r;
			left -= (size_t)r;
		}
		csprng_seed(seed, sizeof(seed));
		memset(seed, 0, sizeof(seed));
		seeded = true;
	}
	csprng_bytes(buf, n);
}

bool plat_stopping(void)
{
	return stop_flag != 0;
}

int plat_block_info(uint64_t *sectors, uint32_t *sector_size)
{
	if (disk_fd < 0)
		return -1;
	*sectors = disk_sectors;
	*sector_size = DISK_SECTOR;
	return 0;
}

int plat_block_read(uint64_t sector, void *buf, size_t count)
{
	size_t n = count * DISK_SECTOR, done = 0;

	if (disk_fd < 0 || sector > disk_sectors ||
	    count > disk_sectors - sector || count > SIZE_MAX / DISK_SECTOR)
		return -1;
	while (done < n) {
		ssize_t r = pread(disk_fd, (char *)buf + done, n - done,
				  (off_t)(sector * DISK_SECTOR + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static int open_disk(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "--disk %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		fprintf(stderr, "--disk %s: not a regular file or block device\n", path);
		close(fd);
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		/* a partial last sector is not part of the disk, as with a loop device */
		disk_sectors = (uint64_t)st.st_size / DISK_SECTOR;
	} else {
		off_t end = lseek(fd, 0, SEEK_END);
		disk_sectors = end > 0 ? (uint64_t)end / DISK_SECTOR : 0;
	}
	return fd;
}

void plat_netcfg(struct plat_netcfg *cfg)
{
	*cfg = netcfg;
}

void plat_exit(int code)
{
	exit(code);
}

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [--tap NAME] [--mac xx:xx:xx:xx:xx:xx] "
		"[--ip A.B.C.D/N [--gw A.B.C.D]] [--disk FILE]\n",
		prog);
	exit(2);
}

/* An option's value as core/cmdline.h takes it (argv strings end in NUL). */
static struct cmdline_val arg_val(const char *v)
{
	return (struct cmdline_val){ v, strlen(v) };
}

const char *plat_cmdline(size_t *cap)
{
	*cap = 1;
	return "";
}

static int open_tap(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		perror("open /dev/net/tun");
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (strlen(name) >= IFNAMSIZ) {
		fprintf(stderr, "tap name too long: %s\n", name);
		close(fd);
		return -1;
	}
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		perror("TUNSETIFF");
		close(fd);
		return -1;
	}
	/* Bring the link up (the tap may already be up; harmless). */
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0 &&
		    !(ifr.ifr_flags & IFF_UP)) {
			ifr.ifr_flags |= IFF_UP;
			ioctl(s, SIOCSIFFLAGS, &ifr);
		}
		close(s);
	}
	return fd;
}

int main(int argc, char **argv)
{
	const char *tap = NULL;
	bool have_mac = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(argv[0]);
		if (!v)
			usage(argv[0]);
		i++;
		if (!strcmp(a, "--tap")) {
			tap = v;
		} else if (!strcmp(a, "--mac")) {
			unsigned m[6];
			char end;
			if (sscanf(v, "%x:%x:%x:%x:%x:%x%c", &m[0], &m[1], &m[2],
				   &m[3], &m[4], &m[5], &end) != 6)
				usage(argv[0]);
			for (int k = 0; k < 6; k++) {
				if (m[k] > 255)
					usage(argv[0]);
				mac[k] = (uint8_t)m[k];
			}
			if (mac[0] & 1) {
				fprintf(stderr, "--mac: multicast address\n");
				exit(2);
			}
			have_mac = true;
		} else if (!strcmp(a, "--ip")) {
			unsigned plen;
			if (cmdline_ipv4_prefix(arg_val(v), &netcfg.ip, &plen) < 0 ||
			    netcfg.ip == 0)
				usage(argv[0]);
			netcfg.mask = plen == 32 ? 0xffffffffu
						 : ~(0xffffffffu >> plen);
			netcfg.dhcp = false;
		} else if (!strcmp(a, "--disk")) {
			if (disk_fd >= 0)
				usage(argv[0]);
			disk_fd = open_disk(v);
			if (disk_fd < 0)
				exit(2);
		} else if (!strcmp(a, "--gw")) {
			if (cmdline_ipv4(arg_val(v), &netcfg.gw) < 0)
				usage(argv[0]);
		} else {
			usage(argv[0]);
		}
	}
	if (!have_mac) {
		/* random locally administered unicast address */
		plat_random(mac, 6);
		mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02);
	}

	/* Block INT/TERM; they are only delivered inside ppoll (run_mask). */
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &run_mask);
	sigdelset(&run_mask, SIGINT);
	sigdelset(&run_mask, SIGTERM);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (tap) {
		tap_fd = open_tap(tap);
		if (tap_fd < 0)
			return 1;
	}
	printk("mirage-env unikernel: app %s, host platform%s%s\n", app_name,
	       tap ? ", tap " : "", tap ? tap : "");
	app_main();
	printk("%s: exit\n", app_name);
	plat_exit(0);
}
