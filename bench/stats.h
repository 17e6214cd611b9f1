/* stats.h - a figure over rounds: its median and a 95% confidence interval
 * for that median (stats.c). */
#ifndef BENCH_STATS_H
#define BENCH_STATS_H

#include <stdbool.h>

/* A row whose interval is wider than this fraction of its median is
 * marked unstable. */
#define STABLE_WIDTH 0.10
/* The most rounds ci_of looks at. */
#define STATS_MAX 256

struct ci {
	double med, lo, hi;
	int n;               /* rounds */
};

/* Median of v[0..n) and the distribution-free (order-statistic) interval
 * [x(k), x(n+1-k)] with the largest k whose coverage is at least 95%; with
 * fewer than 6 rounds no k reaches 95% and the interval is [min, max]. */
void ci_of(const double *v, int n, struct ci *out);
/* The coverage of that interval for n rounds: 1 - 2 P(Binomial(n, 1/2) < k). */
double ci_coverage(int n);
/* k for n rounds (1-based order statistic of the lower bound). */
int ci_rank(int n);
/* (hi - lo) <= STABLE_WIDTH * |med| */
bool ci_stable(const struct ci *c);
/* Do two intervals share a point? */
bool ci_overlap(const struct ci *a, const struct ci *b);

#endif
