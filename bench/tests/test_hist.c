/* test_hist.c - the benchmark histogram: geometry, precision, merging. */
#include "../hist.h"

#include <criterion/criterion.h>
#include <stdlib.h>

static hist h, h2;

Test(hist, index_geometry_is_contiguous_and_within_one_percent)
{
	/* Every bucket starts where the previous one ended, and is at most
	 * 1/128 of its low value wide above the exact range. */
	for (unsigned i = 1; i < HIST_BUCKETS; i++) {
		cr_assert_eq(hist_bucket_low(i),
			     hist_bucket_low(i - 1) + hist_bucket_width(i - 1), "bucket %u", i);
		if (i >= 2 * HIST_SUB)
			cr_assert_leq(hist_bucket_width(i) * 128, hist_bucket_low(i), "bucket %u", i);
	}
	/* A value maps to the bucket that holds it. */
	uint64_t x = 88172645463325252ull;
	for (int n = 0; n < 100000; n++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t v = x >> (x % 60 + 4);
		unsigned i = hist_index(v);
		if (i == HIST_BUCKETS - 1)
			cr_assert_geq(v, hist_bucket_low(i));
		else
			cr_assert(v >= hist_bucket_low(i) && v < hist_bucket_low(i) + hist_bucket_width(i),
				  "v=%llu i=%u", (unsigned long long)v, i);
	}
	for (uint64_t v = 0; v < 2 * HIST_SUB; v++)
		cr_assert_eq(hist_index(v), v);
}

Test(hist, exact_extremes_mean_and_empty)
{
	hist_init(&h);
	cr_assert_eq(hist_percentile(&h, 50), 0);
	cr_assert_eq(hist_mean(&h), 0.0);
	hist_add(&h, 0);
	hist_add(&h, 1000);
	hist_add(&h, UINT64_MAX / 2);   /* beyond the kept range */
	cr_assert_eq(h.count, 3);
	cr_assert_eq(hist_percentile(&h, 0), 0);
	cr_assert_eq(hist_percentile(&h, 100), UINT64_MAX / 2);
	cr_assert_eq(hist_percentile(&h, 99.9), UINT64_MAX / 2);
	cr_assert_eq(hist_percentile(&h, 50), hist_bucket_low(hist_index(1000)) +
		     (hist_bucket_width(hist_index(1000)) - 1) / 2);
	cr_assert_float_eq(hist_mean(&h), ((double)(UINT64_MAX / 2) + 1000.0) / 3.0, 1.0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(hist, percentiles_within_one_percent_of_sorted_samples)
{
	enum { N = 50000 };
	static uint64_t v[N];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	hist_init(&h);
	for (int i = 0; i < N; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* A long-tailed mix: mostly ~10 us, some up to ~10 ms. */
		v[i] = 9000 + x % 3000 + ((x >> 20) % 100 == 0 ? (x >> 32) % 10000000 : 0);
		hist_add(&h, v[i]);
	}
	qsort(v, N, sizeof(v[0]), cmp_u64);
	const double ps[] = { 1, 10, 50, 90, 99, 99.9, 99.99 };
	for (unsigned j = 0; j < sizeof(ps) / sizeof(ps[0]); j++) {
		size_t rank = (size_t)(ps[j] / 100.0 * N + 0.999999);
		double want = (double)v[rank - 1];
		double got = (double)hist_percentile(&h, ps[j]);
		cr_assert_leq(got > want ? got - want : want - got, want * 0.01,
			      "p%g: got %g want %g", ps[j], got, want);
	}
	cr_assert_eq(hist_percentile(&h, 0), v[0]);
	cr_assert_eq(hist_percentile(&h, 100), v[N - 1]);
}

Test(hist, merge_equals_adding_everything_to_one)
{
	static hist all;
	hist_init(&h);
	hist_init(&h2);
	hist_init(&all);
	for (uint64_t i = 1; i <= 20000; i++) {
		uint64_t val = i * 37 % 100003;
		hist_add(i % 3 ? &h : &h2, val);
		hist_add(&all, val);
	}
	hist_merge(&h, &h2);
	cr_assert_eq(h.count, all.count);
	cr_assert_eq(h.min, all.min);
	cr_assert_eq(h.max, all.max);
	cr_assert_float_eq(h.sum, all.sum, 1e-3);
	cr_assert_arr_eq(h.buckets, all.buckets, sizeof(all.buckets));
	/* Merging an empty histogram changes nothing (min stays real). */
	hist_init(&h2);
	hist_merge(&h, &h2);
	cr_assert_eq(h.min, all.min);
}
