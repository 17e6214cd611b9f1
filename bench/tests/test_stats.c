/* test_stats.c - the interval code against known samples. */
#include "../stats.h"

#include <criterion/criterion.h>
#include <math.h>

Test(stats, median_and_interval_of_nine_rounds)
{
	/* shuffled 1..9: median 5; k = 2 (coverage 1 - 2*10/512) -> [2, 8] */
	const double v[9] = { 7, 3, 9, 1, 5, 8, 2, 6, 4 };
	struct ci c;
	ci_of(v, 9, &c);
	cr_assert_eq(c.n, 9);
	cr_assert_float_eq(c.med, 5, 1e-12);
	cr_assert_float_eq(c.lo, 2, 1e-12);
	cr_assert_float_eq(c.hi, 8, 1e-12);
	cr_assert_eq(ci_rank(9), 2);
	cr_assert_float_eq(ci_coverage(9), 1 - 20.0 / 512, 1e-12);
}

Test(stats, fewer_than_six_rounds_give_the_range)
{
	const double v[5] = { 10, 30, 20, 50, 40 };
	struct ci c;
	ci_of(v, 5, &c);
	cr_assert_float_eq(c.med, 30, 1e-12);
	cr_assert_float_eq(c.lo, 10, 1e-12);
	cr_assert_float_eq(c.hi, 50, 1e-12);
	cr_assert_float_eq(ci_coverage(5), 1 - 2.0 / 32, 1e-12);   /* 93.75% */
	cr_assert_float_eq(ci_coverage(3), 0.75, 1e-12);
	cr_assert_float_eq(ci_coverage(6), 1 - 2.0 / 64, 1e-12);    /* first n reaching 95% */
}

Test(stats, twenty_rounds_and_even_median)
{
	double v[20];
	struct ci c;
	for (int i = 0; i < 20; i++)
		v[i] = 100 + (i * 7) % 20;   /* a permutation of 100..119 */
	ci_of(v, 20, &c);
	cr_assert_float_eq(c.med, 109.5, 1e-12);
	/* P(B(20) <= 5) = 21700 / 2^20 = 0.0207 -> k = 6: [x6, x15] */
	cr_assert_eq(ci_rank(20), 6);
	cr_assert_float_eq(c.lo, 105, 1e-12);
	cr_assert_float_eq(c.hi, 114, 1e-12);
	cr_assert_float_eq(ci_coverage(20), 1 - 2 * 21700.0 / 1048576, 1e-12);
}

Test(stats, stable_and_overlap)
{
	struct ci a = { .med = 100, .lo = 96, .hi = 105, .n = 9 };
	struct ci b = { .med = 100, .lo = 90, .hi = 111, .n = 9 };
	struct ci c = { .med = 120, .lo = 106, .hi = 130, .n = 9 };
	cr_assert(ci_stable(&a));      /* 9% wide */
	cr_assert(!ci_stable(&b));     /* 21% wide */
	cr_assert(ci_overlap(&a, &b));
	cr_assert(!ci_overlap(&a, &c));
	cr_assert(ci_overlap(&b, &c));
	struct ci one = { .med = 5, .lo = 5, .hi = 5, .n = 1 };
	cr_assert(!ci_stable(&one));   /* one round: no interval, not stable */
}
