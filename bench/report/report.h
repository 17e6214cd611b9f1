/*
 * report/report.h - report.md from one or more results documents, so that
 * ipckit-bench and ipckit-report write the same report. What lives where:
 *   report.c     the layout: the answer first, then the evidence
 *   recommend.c  "Which mechanism should I use?": needs, candidates, the tie rule
 *   tables.c     per-size tables, key ratios, the machine, what was not measured
 *   plots.c      gnuplot data files, script and SVGs
 *   need.c       --need: the user's stated needs ranked against a run
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include "../out.h"

#include <jansson.h>
#include <stdio.h>

/* Write DIR/report.md (+ SVG plots when gnuplot runs) from n documents
 * (several: one section per machine, side by side); need: --need text or
 * NULL. 0 or -errno. */
int write_report(json_t **docs, const char **names, int n, const char *dir, const char *hyperfine_md,
		 const char *need);

/* ---- recommend.c ---- */
/* The tie rule over candidate rows on one figure. */
struct verdict {
	json_t *win;          /* best median (NULL: no candidate) */
	json_t *runner;       /* second best median */
	json_t *tie[16];      /* others whose interval overlaps the winner's */
	int ntie;
	double diff;          /* |winner - runner-up| / winner */
	bool clear;           /* the winner's interval is clear of the runner-up's */
	bool intervals;       /* every candidate had an interval (>= 2 rounds) */
};
void decide(json_t **rows, int n, const char *key, bool higher, struct verdict *v);
void recommend(FILE *f, json_t *doc);
/* "Each figure is the median of 9 rounds ...; 40 of 44 rows stable." */
void trust_line(FILE *f, json_t *doc);
/* Caveats of a row from its backend's caps ("" none). */
void caveats(json_t *doc, json_t *row, char *buf, size_t cap);
/* The smallest or largest size measured in mode. */
double pick_size(json_t *doc, const char *mode, bool largest);

/* ---- tables.c ---- */
void machine_block(FILE *f, json_t *doc, const char *name);
void key_ratios(FILE *f, json_t *doc);
void lat_tables(FILE *f, json_t *doc, const char *mode, double gap_ms);
void tput_tables(FILE *f, json_t *doc);
void skipped_block(FILE *f, json_t *doc);
void side_by_side(FILE *f, json_t **docs, const char **names, int n);

/* ---- plots.c ---- */
/* Returns a note for the report ("" when the plots were made and linked). */
const char *make_plots(json_t *doc, const char *dir, const char *prefix, FILE *md);

/* ---- need.c ---- */
/* Rank the run's mechanisms against need (markdown to f). 0, or -EINVAL
 * with the reason in err for a need that does not parse. */
int need_report(FILE *f, json_t *doc, const char *need, char *err, size_t cap);

#endif
