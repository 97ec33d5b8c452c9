/*
 * cksum.c - the Internet checksum (RFC 1071) and the TCP/UDP pseudo-header
 * sum, on their own so host tests link the stack's own code.
 */
#include "net.h"

uint32_t inet_sum(const void *p, size_t n, uint32_t sum)
{
	const uint8_t *b = p;
	while (n >= 2) {
		sum += rd16(b);
		b += 2;
		n -= 2;
		if (sum & 0x80000000u) /* fold early, never overflow */
			sum = (sum & 0xffff) + (sum >> 16);
	}
	if (n)
		sum += (uint32_t)b[0] << 8;
	return sum;
}

uint16_t inet_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t inet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, uint16_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
	       proto + len;
}
