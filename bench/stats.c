/*
 * stats.c - medians over rounds and their 95% confidence intervals, by order
 * statistics: for the median of n independent rounds, P(x(k) <= median <=
 * x(n+1-k)) = 1 - 2 P(B < k) with B ~ Binomial(n, 1/2), whatever the
 * distribution of a round's figure. This needs no resampling and is exact,
 * which a bootstrap of 5 to 20 values is not.
 */
#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* P(B < k) for B ~ Binomial(n, 1/2). */
static double binom_below(int n, int k)
{
	double p = 0, c = 1;   /* c = C(n, i) */
	for (int i = 0; i < k; i++) {
		p += c;
		c = c * (n - i) / (i + 1);
	}
	return p / pow(2.0, n);
}

int ci_rank(int n)
{
	int k = 1;
	while (k + 1 <= (n + 1) / 2 && 1 - 2 * binom_below(n, k + 1) >= 0.95)
		k++;
	return k;
}

double ci_coverage(int n)
{
	return n < 1 ? 0 : 1 - 2 * binom_below(n, ci_rank(n));
}

void ci_of(const double *v, int n, struct ci *out)
{
	double s[STATS_MAX];
	memset(out, 0, sizeof(*out));
	if (n < 1)
		return;
	if (n > STATS_MAX)
		n = STATS_MAX;
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_d);
	out->n = n;
	out->med = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	int k = ci_rank(n);
	out->lo = s[k - 1];
	out->hi = s[n - k];
}

bool ci_stable(const struct ci *c)
{
	return c->n > 1 && c->hi - c->lo <= STABLE_WIDTH * fabs(c->med);
}

bool ci_overlap(const struct ci *a, const struct ci *b)
{
	return a->lo <= b->hi && b->lo <= a->hi;
}
