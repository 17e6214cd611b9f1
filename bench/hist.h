/*
 * hist.h - a small log-linear histogram of nanosecond samples.
 *
 * Values below 256 are counted exactly. Above that, each power of two
 * [2^k, 2^(k+1)) is split into 128 equal sub-buckets, so a bucket is at
 * most 1/128 (0.78%) of its lowest value wide; reported percentiles are
 * bucket midpoints, within 0.4% of the true sample. Values up to 2^48 ns
 * (78 hours) are kept; larger ones land in the last bucket (max and mean
 * stay exact). The struct is flat (no pointers) so it can be sent through
 * a pipe between processes and merged.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)            /* 128 sub-buckets */
#define HIST_MAX_BIT 47                           /* highest power kept */
#define HIST_BUCKETS ((HIST_MAX_BIT - HIST_SUB_BITS + 2) * HIST_SUB)

typedef struct hist {
	uint64_t count;
	uint64_t min, max;
	double sum;                 /* for the mean */
	uint32_t buckets[HIST_BUCKETS];
} hist;

void hist_init(hist *h);
void hist_add(hist *h, uint64_t v);
/* Add every sample of src to dst. */
void hist_merge(hist *dst, const hist *src);
/* p in [0, 100]: the value at or below which p% of samples fall (0 if
 * empty). p = 0 gives min, p = 100 gives max. */
uint64_t hist_percentile(const hist *h, double p);
double hist_mean(const hist *h);

/* Bucket geometry, exposed for the unit test. */
unsigned hist_index(uint64_t v);
uint64_t hist_bucket_low(unsigned idx);
uint64_t hist_bucket_width(unsigned idx);

#endif
