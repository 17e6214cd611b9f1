/* hist.c - log-linear histogram; see hist.h for the bucket layout. */
#include "hist.h"

#include <string.h>

void hist_init(hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	unsigned k = 63u - (unsigned)__builtin_clzll(v);   /* k >= 8 */
	if (k > HIST_MAX_BIT)
		return HIST_BUCKETS - 1;
	unsigned sub = (unsigned)(v >> (k - HIST_SUB_BITS)) - HIST_SUB; /* 0..127 */
	return (k - HIST_SUB_BITS + 1) * HIST_SUB + sub;
}

uint64_t hist_bucket_low(unsigned idx)
{
	if (idx < 2 * HIST_SUB)
		return idx;
	unsigned k = idx / HIST_SUB + HIST_SUB_BITS - 1;
	uint64_t sub = idx % HIST_SUB + HIST_SUB;
	return sub << (k - HIST_SUB_BITS);
}

uint64_t hist_bucket_width(unsigned idx)
{
	if (idx < 2 * HIST_SUB)
		return 1;
	unsigned k = idx / HIST_SUB + HIST_SUB_BITS - 1;
	return (uint64_t)1 << (k - HIST_SUB_BITS);
}

void hist_add(hist *h, uint64_t v)
{
	h->buckets[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(hist *dst, const hist *src)
{
	if (src->count == 0)
		return;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_percentile(const hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* The rank of the sample wanted, 1-based: ceil(p% of count). */
	double r = p / 100.0 * (double)h->count;
	uint64_t rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			if (i == HIST_BUCKETS - 1)
				return h->max;   /* the overflow bucket has no width */
			uint64_t w = hist_bucket_width(i);
			uint64_t v = hist_bucket_low(i) + (w - 1) / 2;
			/* The exact extremes are known: never report beyond them. */
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

double hist_mean(const hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
