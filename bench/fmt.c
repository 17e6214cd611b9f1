/* fmt.c - labels and numbers as every output shows them. */
#include "fmt.h"

#include <stdio.h>
#include <string.h>

const char *fmt_size(double bytes, int style, char *buf, size_t cap)
{
	static const char *const unit[2][3] = { { "", "K", "M" }, { " B", " KiB", " MiB" } };
	unsigned long long s = bytes > 0 ? (unsigned long long)bytes : 0;
	int u = 0;
	if (s >= (1ull << 20) && s % (1ull << 20) == 0)
		s >>= 20, u = 2;
	else if (s >= 1024 && s % 1024 == 0)
		s >>= 10, u = 1;
	snprintf(buf, cap, "%llu%s", s, unit[style == SZ_LONG][u]);
	return buf;
}

const char *fmt_us(double ns, char *buf, size_t cap)
{
	double us = ns / 1e3;
	snprintf(buf, cap, us < 10 ? "%.2f" : us < 100 ? "%.1f" : "%.0f", us);
	return buf;
}

const char *fmt_ratio(double x, char *buf, size_t cap)
{
	snprintf(buf, cap, x < 0.1 ? "%.3gx" : "%.2fx", x);
	return buf;
}

void series_label(char *buf, size_t cap, const char *backend, const char *impl, const char *variant,
		  const char *wait, bool threads, int pairs)
{
	size_t n = (size_t)snprintf(buf, cap, "%s %s%s%s", backend, impl, *variant ? " " : "", variant);
	if (n < cap && !strcmp(impl, "ipckit") && *wait && strcmp(wait, "adaptive"))
		n += (size_t)snprintf(buf + n, cap - n, " wait=%s", wait);
	if (n < cap && threads)
		n += (size_t)snprintf(buf + n, cap - n, " threads");
	if (n < cap && pairs > 1)
		snprintf(buf + n, cap - n, " x%d", pairs);
}
