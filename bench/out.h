/*
 * out.h - results: rows to results.json (jansson) and CSV (out.c), the
 * terminal table (table.c). Everything after the run reads the JSON
 * document, so ipckit-report rebuilds the same table and report from saved
 * results.json files.
 */
#ifndef BENCH_OUT_H
#define BENCH_OUT_H

#include "plan.h"
#include "stats.h"

#include <jansson.h>
#include <stdio.h>

struct run_info {
	const struct bench_opts *o;
	const char *waits, *sizes;   /* as given */
	double total_s;              /* wall time of the whole run */
	int failures;
	const struct plan *plan;     /* backends and skips */
	json_t *noise, *costs;       /* machine.c (stolen) */
	const char *remote;          /* --connect URL, NULL */
	const char *remote_machine;
};

json_t *results_json(const struct row *rows, int n, const struct run_info *ri);
int write_csv(json_t *doc, const char *path);
void print_table(json_t *doc, FILE *f);

/* Helpers over a results document, shared with report/. */
const char *jstr(json_t *o, const char *key);
double jnum(json_t *o, const char *key);
double jnum2(json_t *o, const char *key, const char *sub);
/* A dotted figure ("rtt_ns.p50", "msgs_per_s") of a row. */
double jfig(json_t *row, const char *key);
/* The figure's median and interval (from ci95; a document without it
 * gives lo = hi = the figure and n = 1). */
void jci(json_t *row, const char *key, struct ci *c);
/* Is the row's headline figure stable? (false when unknown) */
bool jstable(json_t *row);
/* The row's label (fmt.h series_label). */
void series_name(json_t *row, char *buf, size_t cap);
/* The raw row a row is compared with: same mechanism, mode, size, gap,
 * pairs and batch (NULL where there is none). */
json_t *baseline_of(json_t *doc, json_t *row);
/* Messages per send call of a row (1 where it has no batch). */
double row_batch(json_t *row);
/* The headline figure of row over its baseline's ("0.98x"), "" if none. */
const char *baseline_ratio(json_t *doc, json_t *row, char *buf, size_t cap);
/* The row's headline figure key: "rtt_ns.p50" or "msgs_per_s". */
const char *headline_key(json_t *row);
/* The sizes of mode's rows (gap rows: at gap ms) in the order they first
 * appear; returns how many. */
int doc_sizes(json_t *doc, const char *mode, double gap, double *sz, int max);
/* The ipckit backend a row belongs to ("group"; its backend in documents
 * older than that field). */
const char *jgroup(json_t *row);
/* Does the document's backend b have capability cap ("reliable", ...)? */
bool has_cap(json_t *doc, const char *b, const char *cap);

#endif
