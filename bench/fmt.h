/* fmt.h - labels and numbers as every output shows them (fmt.c). */
#ifndef BENCH_FMT_H
#define BENCH_FMT_H

#include <stdbool.h>
#include <stddef.h>

/* The one size formatter: SZ_SHORT "64", "4K", "1M" (tables, plots, the
 * command line's own spelling); SZ_LONG "64 B", "4 KiB", "1 MiB" (prose). */
enum { SZ_SHORT, SZ_LONG };
const char *fmt_size(double bytes, int style, char *buf, size_t cap);
/* Nanoseconds as microseconds with 3 significant digits ("0.421", "14.4", "1020"). */
const char *fmt_us(double ns, char *buf, size_t cap);
/* A ratio as "1.23x", or with 3 significant digits below 0.1 ("0.0312x"). */
const char *fmt_ratio(double x, char *buf, size_t cap);
/* A row's label: "unix ipckit", "shm ipckit wait=spin", "shm raw spin",
 * "ipc zmq"; ipckit rows name their wait unless it is adaptive (the
 * default); " threads" for rows between two threads, " xN" for --pairs. */
void series_label(char *buf, size_t cap, const char *backend, const char *impl, const char *variant,
		  const char *wait, bool threads, int pairs);

#endif
