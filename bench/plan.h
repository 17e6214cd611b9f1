/* plan.h - which rows run (plan.c). */
#ifndef BENCH_PLAN_H
#define BENCH_PLAN_H

#include "rows/row.h"

#define MAX_BACKENDS 16

/* A compiled-in backend as ipc_backend_info describes it, and the URL form
 * chosen for it. */
struct backend {
	char name[16];
	size_t max_msg;
	unsigned caps;
	int form;            /* FORM_* */
	bool ok;
	char why[512];       /* when not ok */
};

/* A row that was not measured, and why. */
struct skip {
	char backend[16], impl[8], variant[16];
	uint32_t size;
	char reason[96];
};

struct plan {
	struct backend be[MAX_BACKENDS];
	int nbe;
	int waits[3];
	int nwaits;
	bool waits_given;    /* --wait: every backend gets every mode */
	bool baseline, peers;
	bool remote;         /* the echo side is on another host */
	uint32_t remote_kinds;
	struct skip *skips;
	int nskips, cap_skips;
};

extern const char *const wait_names[3];

/* The kind registry: ids are stable (the remote side names kinds by id);
 * a kind not built here is NULL. */
const struct kind *kind_by_id(int id);
int kind_count(void);
/* Fill b from ipc_backend_info and choose its URL form (a probe open for
 * path forms). remote: only backends that cross hosts. */
void plan_backend(struct backend *b, bool remote);
/* The rows of one size over every backend; returns how many (cs[0..]). */
int plan_group(struct plan *p, const struct bench_opts *o, size_t size, struct chan *cs, int max);
void plan_skip(struct plan *p, const char *be, const char *impl, const char *variant, size_t size,
	       const char *why);

#endif
