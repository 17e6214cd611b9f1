/* supervise.h - the main process's side of a run (supervise.c). */
#ifndef BENCH_SUPERVISE_H
#define BENCH_SUPERVISE_H

#include "plan.h"

struct results {
	struct row *rows;
	int n, cap;
};

struct sup {
	const struct bench_opts *o;
	const char *remote;    /* --connect: the serving host's host:port */
	bool quiet, tty;
	int group, ngroups;
	uint64_t t_start;
	int failures;          /* groups or rows that failed */
};

/* Ctrl-C / SIGTERM in the main process: pass SIGTERM on to the leaders. */
void sup_signals(void);
/* The signal that stopped the run, 0 if none. */
int sup_stopped(void);
/* Run one group with its --pairs leaders and append its rows. A row that
 * fails is dropped (listed in p's skips with its cause) and the rest of
 * the group runs again. 0 or -errno. */
int sup_run_group(struct sup *s, struct plan *p, struct chan *cs, int n, struct results *res);

#endif
