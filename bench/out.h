/*
 * out.h - results: rows to results.json (jansson), CSV, the terminal
 * table, and report.md with plots (report.c). Everything after the run
 * reads the JSON document, so ipckit-report rebuilds the same report from
 * saved results.json files.
 */
#ifndef BENCH_OUT_H
#define BENCH_OUT_H

#include "bench.h"

#include <jansson.h>
#include <stdio.h>

struct skip {
	char backend[16], impl[8], variant[16];
	uint32_t size;
	char reason[96];
};

struct run_info {
	const struct bench_opts *o;
	const char *waits;          /* wait list as given */
	const char *sizes;          /* size list as given */
	double total_s;             /* wall time of the whole run */
	int failures;               /* groups that failed */
	double load[2];             /* 1-minute load average at start, end */
	json_t *backends;           /* {name: {max_msg, caps: [...]}} (stolen) */
};

json_t *results_json(const struct row *rows, int n, const struct skip *skips, int nskip,
		     const struct run_info *ri);
int write_csv(json_t *doc, const char *path);
void print_table(json_t *doc, FILE *f);

/* Helpers over a results document, shared with report.c. */
const char *jstr(json_t *o, const char *key);
double jnum(json_t *o, const char *key);
double jnum2(json_t *o, const char *key, const char *sub);
/* The label of a row's series: "unix ipckit", "shm ipckit wait=spin",
 * "shm raw spin", "ipc zmq". */
void series_name(json_t *row, char *buf, size_t cap);
/* The raw row of the same backend, mode and size that a row compares with
 * (for shm ipckit: the spin mailbox; wait=block: the eventfd one; for
 * peers: unix or tcp raw), or NULL. */
json_t *baseline_of(json_t *doc, json_t *row);
/* A ratio as "1.23x", or with 3 significant digits below 0.1 ("0.0312x"). */
const char *fmt_ratio(double x, char *buf, size_t cap);

/* report.c: write DIR/report.md (+ SVG plots when gnuplot runs) from one
 * or more results documents (several: side by side, one per machine). */
int write_report(json_t **docs, const char **names, int n, const char *dir, const char *hyperfine_md);

#endif
