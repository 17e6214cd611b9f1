/*
 * ipckit-bench - measure every ipckit backend the same way, next to the raw
 * system calls of each mechanism and, where built, ZeroMQ and nng. See
 * docs/benchmarking.md for the method, the stable command
 * line and results.json schema, and bench.h for where each part lives.
 *
 * This file only strings the parts together: parse (cli.c), describe the
 * backends and the machine (plan.c, machine.c), run each size's group under
 * supervision (supervise.c), then write the table, JSON, CSV and report.
 */
#include "cli.h"
#include "fmt.h"
#include "machine.h"
#include "out.h"
#include "remote.h"
#include "report/report.h"
#include "supervise.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* All rows of a size are open at once: room for their queues and
 * descriptors (as much as this process may take). */
static void raise_limits(void)
{
	static const int res[] = { RLIMIT_MSGQUEUE, RLIMIT_NOFILE };
	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
		if (res[i] == RLIMIT_MSGQUEUE && setrlimit(res[i], &rl) == 0)
			continue;
		if (getrlimit(res[i], &rl) == 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(res[i], &rl);
		}
	}
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* --transfer: one whole transfer over the backend's plain ipckit row. */
static int run_transfer(struct config *g, struct sup *s)
{
	struct chan c;
	struct results res = { 0 };
	struct backend *b = &g->plan.be[0];
	if (!b->ok || plan_group(&g->plan, &g->o, g->sizes[0], &c, 1) != 1) {
		fprintf(stderr, "ipckit-bench: %s: %s\n", b->name,
			b->ok ? "--size is larger than the backend's max_msg" : b->why);
		return 2;
	}
	uint64_t t0 = now_ns();
	s->group = s->ngroups = 1;
	int r = sup_run_group(s, &g->plan, &c, 1, &res);
	double secs = (double)(now_ns() - t0) / 1e9;
	if (r || res.n != 1 || res.rows[0].errors) {
		fprintf(stderr, "ipckit-bench: transfer over %s failed\n", b->name);
		free(res.rows);
		return 1;
	}
	if (!g->quiet)
		printf("%s: %.1f MiB in %zu B messages in %.3f s: %.1f MiB/s%s\n", b->name,
		       (double)res.rows[0].count * (double)g->sizes[0] / 1048576.0, g->sizes[0], secs,
		       res.rows[0].fig[0][FIG_MSGS] * (double)g->sizes[0] / 1048576.0,
		       res.rows[0].lost ? " (some lost)" : "");
	free(res.rows);
	return 0;
}

/* Non-zero when the run must fail: integrity errors, or a backend named
 * in --backend (not "all") that gave no ipckit row. */
static int check_rows(const struct config *g, const struct results *res)
{
	int rc = 0;
	for (int i = 0; !g->backends_all && i < g->plan.nbe; i++) {
		int k = 0;
		for (int j = 0; j < res->n; j++)
			k += !strcmp(res->rows[j].group, g->plan.be[i].name) && !strcmp(res->rows[j].impl, "ipckit");
		if (k == 0) {
			fprintf(stderr, "ipckit-bench: %s was named in --backend but nothing was measured: %s\n",
				g->plan.be[i].name, !g->plan.be[i].ok ? g->plan.be[i].why :
				"every size failed or was skipped (see above and \"Not measured\")");
			rc = 1;
		}
	}
	for (int i = 0; i < res->n; i++) {
		const struct row *w = &res->rows[i];
		if (w->errors) {
			char sz[32];
			fprintf(stderr, "ipckit-bench: %s %s%s%s %s: %llu integrity errors\n", w->backend, w->impl,
				*w->variant ? " " : "", w->variant, fmt_size(w->size, SZ_LONG, sz, sizeof(sz)),
				(unsigned long long)w->errors);
			rc = 1;
		}
	}
	return rc;
}

static int write_outputs(const struct config *g, json_t *doc, double total_s)
{
	int rc = 0;
	if (!g->quiet)
		print_table(doc, stdout);
	if (g->json_path && json_dump_file(doc, g->json_path, JSON_INDENT(1)) < 0) {
		fprintf(stderr, "ipckit-bench: cannot write %s\n", g->json_path);
		rc = 1;
	}
	if (g->csv_path && write_csv(doc, g->csv_path) < 0) {
		fprintf(stderr, "ipckit-bench: cannot write %s\n", g->csv_path);
		rc = 1;
	}
	if (g->report_dir) {
		char p[PATH_MAX], hf[PATH_MAX];
		const char *name = "this machine";
		int e = mkdir_p(g->report_dir);
		snprintf(p, sizeof(p), "%s/results.json", g->report_dir);
		if (!e && json_dump_file(doc, p, JSON_INDENT(1)) < 0)
			e = -EIO;
		snprintf(p, sizeof(p), "%s/results.csv", g->report_dir);
		if (!e)
			e = write_csv(doc, p);
		snprintf(hf, sizeof(hf), "%s/hyperfine.md", g->report_dir);
		if (!e)
			e = write_report(&doc, &name, 1, g->report_dir, access(hf, R_OK) == 0 ? hf : NULL, NULL);
		if (e) {
			fprintf(stderr, "ipckit-bench: cannot write the report in %s: %s\n", g->report_dir,
				strerror(-e));
			rc = 1;
		} else if (!g->quiet) {
			printf("\nReport: %s/report.md (%.0f s in all)\n", g->report_dir, total_s);
		}
	}
	return rc;
}

int main(int argc, char **argv)
{
	static struct config g;
	struct remote_info ri = { 0 };
	struct results res = { 0 };
	struct machine m;
	int rc = cli_parse(argc, argv, &g);
	if (rc >= 0)
		return rc;
	signal(SIGPIPE, SIG_IGN);   /* raw baselines write to pipes and sockets */
	raise_limits();
	if (g.serve[0])
		return remote_serve(g.serve, &g.o);
	if (g.connect[0]) {
		int r = remote_probe(g.connect, &ri);
		if (r) {
			fprintf(stderr, "ipckit-bench: --connect %s: %s\n", g.connect_url, ipc_strerror(r));
			return 1;
		}
		g.plan.remote = true;
		g.plan.remote_kinds = ri.kinds;
	}
	struct sup s = { .o = &g.o, .remote = g.connect[0] ? g.connect : NULL, .quiet = g.quiet,
			 .tty = isatty(2), .t_start = now_ns() };
	sup_signals();
	int nbe = 0;
	for (int i = 0; i < g.plan.nbe; i++) {
		struct backend *b = &g.plan.be[i];
		plan_backend(b, g.plan.remote);
		if (!b->ok && g.plan.remote && g.backends_all)
			continue;   /* "all" across hosts: those that cross */
		for (int k = 0; !b->ok && k < g.nsizes; k++)
			plan_skip(&g.plan, b->name, "ipckit", "", g.sizes[k], b->why);
		g.plan.be[nbe++] = *b;
	}
	g.plan.nbe = nbe;
	if (g.transfer)
		return run_transfer(&g, &s);

	machine_begin(&m, g.o.pin);
	json_t *costs = machine_costs_json(g.sizes, g.nsizes, g.o.pin);
	s.ngroups = g.nsizes;
	for (int k = 0; k < g.nsizes && !sup_stopped(); k++) {
		static struct chan cs[MAX_CHANS];
		int n = plan_group(&g.plan, &g.o, g.sizes[k], cs, MAX_CHANS);
		s.group = k + 1;
		if (n == 0)
			continue;
		int r = sup_run_group(&s, &g.plan, cs, n, &res);
		if (r && !sup_stopped()) {
			char sz[32];
			fprintf(stderr, "%sipckit-bench: %s group failed: %s\n", s.tty ? "\n" : "",
				fmt_size(g.sizes[k], SZ_LONG, sz, sizeof(sz)), bench_strerror(NULL, r));
		}
	}
	if (s.tty && !g.quiet)
		fprintf(stderr, "\r\033[K");
	if (sup_stopped()) {
		fprintf(stderr, "ipckit-bench: interrupted (%s); nothing written\n",
			sup_stopped() == SIGINT ? "SIGINT" : "SIGTERM");
		json_decref(costs);
		return 128 + sup_stopped();
	}
	machine_end(&m);
	double total_s = (double)(now_ns() - s.t_start) / 1e9;
	struct run_info info = { .o = &g.o, .waits = g.waits_str, .sizes = g.sizes_str, .total_s = total_s,
				 .failures = s.failures, .plan = &g.plan, .noise = machine_noise_json(&m),
				 .costs = costs, .remote = g.connect_url, .remote_machine = ri.machine };
	json_t *doc = results_json(res.rows, res.n, &info);
	if (!doc) {
		fprintf(stderr, "ipckit-bench: cannot build the results document\n");
		return 1;
	}
	rc = s.failures ? 1 : 0;
	rc |= check_rows(&g, &res);
	rc |= write_outputs(&g, doc, total_s);
	if (!g.quiet)
		printf("Total time: %.1f s%s\n", total_s, rc ? "  (FAILED: see the messages above)" : "");
	json_decref(doc);
	free(res.rows);
	free(g.plan.skips);
	return rc;
}
