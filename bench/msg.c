/*
 * msg.c - what every message carries, and a check that covers every byte.
 *
 * Bytes 0-7: the sequence number (turn and index, or a control flag).
 * Bytes 8-15: a checksum over the length, the sequence number and every
 * byte from 16 on. Bytes 16 on: 64-bit words base + i * K with base derived
 * from the sequence number, so every message differs from every other one
 * and a stale, torn or misplaced payload fails the check as surely as a
 * flipped bit.
 *
 * The checksum is written here by hand (Debian's libxxhash-dev is not among
 * the build's dependencies, and adding one would change the install line of
 * the README): four lanes of Fletcher-style sums over 64-bit little-endian
 * words (a += w; b += a per lane), finished with a 64-bit mix of all eight
 * sums, the length and the sequence number. Any change of one byte changes
 * a lane's first sum; swapped words change the second. The sender computes
 * it while it writes the payload (one pass); the receiver reads every byte
 * once. machine.c measures both costs per byte on the machine under test.
 */
#include "bench.h"

#include <string.h>

const char msg_checksum_name[] = "fletcher64x4 (4 lanes of 64-bit Fletcher sums, mixed)";

#define STEP 0x9e3779b97f4a7c15ull

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

struct sums { uint64_t a[4], b[4]; };

static uint64_t finish(const struct sums *s, size_t len, uint64_t seq)
{
	uint64_t h = mix(len ^ 0x243f6a8885a308d3ull) ^ seq;
	for (int j = 0; j < 4; j++)
		h = mix(h ^ s->a[j]) + s->b[j];
	return mix(h);
}

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

/* Sum n bytes at p (the part after the header). */
static void sum_bytes(struct sums *s, const unsigned char *p, size_t n)
{
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		a0 += load64(p + i);
		a1 += load64(p + i + 8);
		a2 += load64(p + i + 16);
		a3 += load64(p + i + 24);
		b0 += a0;
		b1 += a1;
		b2 += a2;
		b3 += a3;
	}
	for (; i + 8 <= n; i += 8) {
		a0 += load64(p + i);
		b0 += a0;
	}
	if (i < n) {
		uint64_t w = 0;
		memcpy(&w, p + i, n - i);
		a1 += w + 1;   /* + 1: a zero tail still counts */
		b1 += a1;
	}
	s->a[0] = a0, s->a[1] = a1, s->a[2] = a2, s->a[3] = a3;
	s->b[0] = b0, s->b[1] = b1, s->b[2] = b2, s->b[3] = b3;
}

/* Write the payload words for seq and sum them in the same pass. The
 * arithmetic matches sum_bytes exactly. */
static void fill_bytes(struct sums *s, unsigned char *p, size_t n, uint64_t seq)
{
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
	uint64_t w = mix(seq ^ 0x13198a2e03707344ull);
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		uint64_t w1 = w + STEP, w2 = w + 2 * STEP, w3 = w + 3 * STEP;
		memcpy(p + i, &w, 8);
		memcpy(p + i + 8, &w1, 8);
		memcpy(p + i + 16, &w2, 8);
		memcpy(p + i + 24, &w3, 8);
		a0 += w;
		a1 += w1;
		a2 += w2;
		a3 += w3;
		b0 += a0;
		b1 += a1;
		b2 += a2;
		b3 += a3;
		w += 4 * STEP;
	}
	for (; i + 8 <= n; i += 8) {
		memcpy(p + i, &w, 8);
		a0 += w;
		b0 += a0;
		w += STEP;
	}
	if (i < n) {
		uint64_t t = 0;
		memcpy(p + i, &w, n - i);
		memcpy(&t, p + i, n - i);
		a1 += t + 1;
		b1 += a1;
	}
	s->a[0] = a0, s->a[1] = a1, s->a[2] = a2, s->a[3] = a3;
	s->b[0] = b0, s->b[1] = b1, s->b[2] = b2, s->b[3] = b3;
}

void msg_fill(void *buf, size_t len, uint64_t seq)
{
	unsigned char *p = buf;
	struct sums s;
	uint64_t sum;
	memcpy(p, &seq, 8);
	fill_bytes(&s, p + MSG_HDR, len - MSG_HDR, seq);
	sum = finish(&s, len, seq);
	memcpy(p + 8, &sum, 8);
}

int msg_check(const void *buf, ssize_t got, size_t len, uint64_t *seq)
{
	const unsigned char *p = buf;
	struct sums s;
	uint64_t sq, sum;
	if (got < 0 || (size_t)got != len || len < MSG_HDR)
		return -1;
	memcpy(&sq, p, 8);
	memcpy(&sum, p + 8, 8);
	sum_bytes(&s, p + MSG_HDR, len - MSG_HDR);
	if (sum != finish(&s, len, sq))
		return -1;
	*seq = sq;
	return 0;
}

void msg_corrupt(void *buf, size_t len)
{
	((unsigned char *)buf)[len / 2] ^= 0x40;
}
