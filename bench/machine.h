/* machine.h - the machine under test (machine.c): what could make results
 * unreliable, before and after the run, and what memory and the integrity
 * check cost here. */
#ifndef BENCH_MACHINE_H
#define BENCH_MACHINE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct snap {
	double load1;              /* 1-minute load average */
	uint64_t steal, total;     /* /proc/stat ticks of the pinned CPUs (or all) */
	double steal_pct;          /* over a short sample (before) or the run (after) */
	char governor[2][32];
	long freq_khz[2];
	char thp[32], clocksource[32];
	double clock_ns;           /* one clock_gettime(CLOCK_MONOTONIC) */
};

struct machine {
	int pin[2];
	int cpus;
	char siblings[2][64];      /* SMT siblings of each pinned CPU */
	struct snap before, after;
};

/* The CPU's model name from /proc/cpuinfo ("unknown"). */
void machine_cpu_model(char *buf, size_t cap);
void machine_begin(struct machine *m, const int pin[2]);
void machine_end(struct machine *m);
/* {"before": {...}, "after": {...}, "smt_siblings": [...], "warnings": [...]} */
json_t *machine_noise_json(const struct machine *m);
/* {"checksum": name, "fill_ns_per_byte": x, "check_ns_per_byte": y,
 *  "memcpy_bytes_per_s": {"64": ..., ...}, "memcpy_2cpu_bytes_per_s": {...}}:
 * memcpy on pin[0] alone, and on pin[0] and pin[1] at once (summed). */
json_t *machine_costs_json(const size_t *sizes, int n, const int pin[2]);

#endif
