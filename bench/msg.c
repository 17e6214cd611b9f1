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
 * words (a += w; b += a per lane, two lanes per vector), finished with a
 * weighted total of all eight sums, the length and the sequence number,
 * mixed once (finish). Any change of one byte changes
 * a lane's first sum; swapped words change the second. The sender computes
 * it while it writes the payload (one pass); the receiver reads every byte
 * once. machine.c measures both costs per byte on the machine under test.
 */
#include "bench.h"

#include <string.h>

const char msg_checksum_name[] = "fletcher64x4w (4 lanes of 64-bit Fletcher sums, weighted, mixed)";

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

/*
 * The eight sums, the length and the sequence number into one word: a
 * weighted total, then one mix. The first sums get odd weights and the
 * second sums even ones, so one changed word, which moves its lane's first
 * sum by some d and its second sum by a multiple of d, moves the total by
 * d times an odd number: never 0 mod 2^64. (Independent multiplies: a few
 * ns per message where a chain of mixes cost ~25, which dwarfed a 64 B
 * message's shm transfer.)
 */
static uint64_t finish(const struct sums *s, size_t len, uint64_t seq)
{
	uint64_t h = (len ^ 0x243f6a8885a308d3ull) * 0x9e3779b97f4a7c15ull ^ seq;
	h += s->a[0] * 0xa0761d6478bd642full + s->a[1] * 0xe7037ed1a0b428dbull +
	     s->a[2] * 0x8ebc6af09c88c6e3ull + s->a[3] * 0x589965cc75374cc3ull +
	     s->b[0] * 0x1d8e4e27c47d124eull + s->b[1] * 0x2127599bf4325c36ull +
	     s->b[2] * 0x81dadef4bc2dd44aull + s->b[3] * 0x4ba9d1a2e1e6b2f2ull;
	return mix(h);
}

static inline uint64_t load64(const unsigned char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	return w;
}

/* Two 64-bit lanes per vector (SSE2 on x86-64, NEON on arm64): lanes 0-1
 * in one vector, 2-3 in the other, the same sums a scalar loop would make. */
typedef uint64_t v2u __attribute__((vector_size(16)));

static inline v2u loadv(const unsigned char *p)
{
	v2u v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static void store_sums(struct sums *s, v2u a01, v2u a23, v2u b01, v2u b23, uint64_t a0, uint64_t b0,
		       uint64_t a1, uint64_t b1)
{
	s->a[0] = a01[0] + a0, s->a[1] = a01[1] + a1, s->a[2] = a23[0], s->a[3] = a23[1];
	s->b[0] = b01[0] + b0, s->b[1] = b01[1] + b1, s->b[2] = b23[0], s->b[3] = b23[1];
}

/* Sum n bytes at p (the part after the header). Whole 32-byte blocks go
 * through the four lanes; the words after them through two scalar sums
 * (added into lanes 0 and 1), a last partial word too. */
static void sum_bytes(struct sums *s, const unsigned char *p, size_t n)
{
	v2u a01 = { 0, 0 }, a23 = { 0, 0 }, b01 = { 0, 0 }, b23 = { 0, 0 };
	uint64_t a0 = 0, b0 = 0, a1 = 0, b1 = 0;
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		a01 += loadv(p + i);
		a23 += loadv(p + i + 16);
		b01 += a01;
		b23 += a23;
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
	store_sums(s, a01, a23, b01, b23, a0, b0, a1, b1);
}

/* Write the payload words for seq and sum them in the same pass. The
 * arithmetic matches sum_bytes exactly. */
static void fill_bytes(struct sums *s, unsigned char *p, size_t n, uint64_t seq)
{
	v2u a01 = { 0, 0 }, a23 = { 0, 0 }, b01 = { 0, 0 }, b23 = { 0, 0 };
	uint64_t a0 = 0, b0 = 0, a1 = 0, b1 = 0, base = mix(seq ^ 0x13198a2e03707344ull);
	v2u w01 = { base, base + STEP }, w23 = { base + 2 * STEP, base + 3 * STEP };
	const v2u step = { 4 * STEP, 4 * STEP };
	size_t i = 0;
	for (; i + 32 <= n; i += 32) {
		memcpy(p + i, &w01, 16);
		memcpy(p + i + 16, &w23, 16);
		a01 += w01;
		a23 += w23;
		b01 += a01;
		b23 += a23;
		w01 += step;
		w23 += step;
	}
	uint64_t w = w01[0];
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
	store_sums(s, a01, a23, b01, b23, a0, b0, a1, b1);
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
