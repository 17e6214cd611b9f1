/*
 * report/plots.c - the plots, drawn by gnuplot from data files written here:
 * one data/<series>.dat per row label ("size p50 p50_lo p50_hi p99 MiB/s
 * lo hi msg/s", one line per size), a plots.gp script, and SVGs with the
 * 95% intervals as error bars: every row against size, and per backend its
 * ipckit rows against their raw baselines (and the peers of its mechanism).
 */
#include "report.h"
#include "../fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SERIES 96

struct series {
	char name[96], file[128], group[16], impl[8];
	bool lat, tput;   /* has latency / throughput points */
};

static void sanitize(const char *in, char *out, size_t cap)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && j + 1 < cap; i++)
		out[j++] = (in[i] >= 'a' && in[i] <= 'z') || (in[i] >= '0' && in[i] <= '9') ? in[i] : '_';
	out[j] = 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void write_points(json_t *doc, FILE *f, const struct series *ss)
{
	double sizes[64];
	int ns = 0;
	size_t i;
	json_t *r;
	char nm[96];
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		series_name(r, nm, sizeof(nm));
		int j;
		for (j = 0; j < ns && sizes[j] != jnum(r, "size"); j++)
			;
		if (!strcmp(nm, ss->name) && j == ns && ns < 64 && strcmp(jstr(r, "mode"), "gap"))
			sizes[ns++] = jnum(r, "size");
	}
	qsort(sizes, (size_t)ns, sizeof(sizes[0]), cmp_d);
	fprintf(f, "# size rtt_p50_us lo hi rtt_p99_us MiB_per_s lo hi msgs_per_s\n");
	for (int a = 0; a < ns; a++) {
		double v[8];
		for (int c = 0; c < 8; c++)
			v[c] = NAN;
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			struct ci c;
			series_name(r, nm, sizeof(nm));
			if (strcmp(nm, ss->name) || jnum(r, "size") != sizes[a])
				continue;
			if (!strcmp(jstr(r, "mode"), "latency")) {
				jci(r, "rtt_ns.p50", &c);
				v[0] = c.med / 1e3, v[1] = c.lo / 1e3, v[2] = c.hi / 1e3;
				v[3] = jnum2(r, "rtt_ns", "p99") / 1e3;
			} else if (!strcmp(jstr(r, "mode"), "throughput")) {
				jci(r, "bytes_per_s", &c);
				v[4] = c.med / 1048576.0, v[5] = c.lo / 1048576.0, v[6] = c.hi / 1048576.0;
				v[7] = jnum(r, "msgs_per_s");
			}
		}
		fprintf(f, "%.0f", sizes[a]);
		for (int c = 0; c < 8; c++)
			isnan(v[c]) ? fprintf(f, " NaN") : fprintf(f, " %g", v[c]);
		fprintf(f, "\n");
	}
}

/* Every series (row label) and its data file; returns the count. */
static int write_series(json_t *doc, const char *dir, const char *prefix, struct series *ss)
{
	int n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		char nm[96], san[96];
		int k;
		if (!strcmp(jstr(r, "mode"), "gap"))
			continue;
		series_name(r, nm, sizeof(nm));
		for (k = 0; k < n && strcmp(ss[k].name, nm); k++)
			;
		if (k == n && n < MAX_SERIES) {
			memset(&ss[n], 0, sizeof(ss[n]));
			snprintf(ss[n].name, sizeof(ss[n].name), "%s", nm);
			sanitize(nm, san, sizeof(san));
			snprintf(ss[n].file, sizeof(ss[n].file), "data/%s%s.dat", prefix, san);
			snprintf(ss[n].group, sizeof(ss[n].group), "%s", jgroup(r));
			snprintf(ss[n].impl, sizeof(ss[n].impl), "%s", jstr(r, "impl"));
			k = n++;
		}
		if (k < n) {
			ss[k].lat |= !strcmp(jstr(r, "mode"), "latency");
			ss[k].tput |= !strcmp(jstr(r, "mode"), "throughput");
		}
	}
	for (int k = 0; k < n; k++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, ss[k].file);
		FILE *f = fopen(path, "w");
		if (!f)
			return -errno;
		write_points(doc, f, &ss[k]);
		fclose(f);
	}
	return n;
}

static void plot_head(FILE *g, const char *out, const char *title, const char *ylabel)
{
	fprintf(g, "set output '%s'\nset title \"%s\"\nset ylabel \"%s\"\n", out, title, ylabel);
}

/* col 2: p50 with its interval (3, 4); 5: p99; 6: MiB/s with (7, 8). */
static void plot_lines(FILE *g, struct series *ss, int n, const char *group, int col, bool with_p99)
{
	bool first = true;
	for (int k = 0; k < n; k++) {
		bool want = group ? !strcmp(ss[k].group, group) : strcmp(ss[k].impl, "raw") != 0;
		if (!want || !(col >= 6 ? ss[k].tput : ss[k].lat))
			continue;
		/* 8 colours, then the same colours dotted: every series distinct */
		fprintf(g, "%s'%s' using 1:%d:%d:%d with yerrorlines lw 2 lc %d pt %d dt %d title \"%s%s\"",
			first ? "plot " : ", \\\n     ", ss[k].file, col, col + 1, col + 2, k % 8 + 1, k % 13 + 1,
			with_p99 ? 1 : k / 8 + 1, ss[k].name, with_p99 ? " p50" : "");
		if (with_p99)
			fprintf(g, ", \\\n     '%s' using 1:5 with linespoints dt 2 lc %d pt %d title \"%s p99\"",
				ss[k].file, k % 8 + 1, k % 13 + 1, ss[k].name);
		first = false;
	}
	if (first)
		fprintf(g, "set label 1 'no data' at graph 0.5, graph 0.5\nunset logscale y\nset yrange [0:1]\n"
			   "plot NaN notitle\nunset label 1\nset autoscale y\nset logscale y 10");
	fprintf(g, "\n");
}

static void xtics(FILE *g, json_t *doc)
{
	double sz[32];
	int nsz = 0;
	size_t i;
	json_t *r;
	char s[32];
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		int j;
		for (j = 0; j < nsz && sz[j] != jnum(r, "size"); j++)
			;
		if (j == nsz && nsz < 32)
			sz[nsz++] = jnum(r, "size");
	}
	fprintf(g, "set xtics (");
	for (int j = 0; j < nsz; j++)
		fprintf(g, "%s\"%s\" %.0f", j ? ", " : "", fmt_size(sz[j], SZ_SHORT, s, sizeof(s)), sz[j]);
	fprintf(g, ")\n");
	if (nsz == 1)   /* one size: give the axis some room */
		fprintf(g, "set xrange [%g:%g]\n", sz[0] / 2, sz[0] * 2);
}

static int run_gnuplot(const char *dir, const char *prefix)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		char script[64], logname[64];
		snprintf(script, sizeof(script), "%splots.gp", prefix);
		snprintf(logname, sizeof(logname), "%sgnuplot.log", prefix);
		if (chdir(dir) == 0) {
			/* gnuplot's chatter goes to gnuplot.log, not the terminal. */
			int log = open(logname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
			if (log >= 0) {
				dup2(log, 1);
				dup2(log, 2);
			}
			execlp("gnuplot", "gnuplot", script, (char *)NULL);
		}
		_exit(127);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

const char *make_plots(json_t *doc, const char *dir, const char *prefix, FILE *md)
{
	static char note[256];
	static struct series ss[MAX_SERIES];
	char path[PATH_MAX], out[256], title[256], groups[16][16];
	int ng = 0, n = write_series(doc, dir, prefix, ss);
	if (n < 0)
		return "could not write the plot data";
	snprintf(path, sizeof(path), "%s/%splots.gp", dir, prefix);
	FILE *g = fopen(path, "w");
	if (!g)
		return "could not write the gnuplot script";
	fprintf(g, "# gnuplot script written by ipckit-bench; run in this directory\n"
		   "set terminal svg size 1100,650 dynamic font 'sans,11'\nset logscale xy 2\n"
		   "set xlabel 'message size (bytes)'\nset key outside right top font ',9' spacing 1.1\n"
		   "set grid\nset datafile missing 'NaN'\nset logscale y 10\nset bars small\n");
	xtics(g, doc);
	snprintf(out, sizeof(out), "%srtt_p50.svg", prefix);
	plot_head(g, out, "Round-trip time p50 vs message size, 95% intervals (ipckit and peers)", "RTT p50 (us)");
	plot_lines(g, ss, n, NULL, 2, false);
	snprintf(out, sizeof(out), "%sthroughput.svg", prefix);
	plot_head(g, out, "One-way throughput vs message size, 95% intervals (ipckit and peers)", "MiB/s");
	plot_lines(g, ss, n, NULL, 6, false);
	for (int k = 0; k < n; k++) {
		int j;
		for (j = 0; j < ng && strcmp(groups[j], ss[k].group); j++)
			;
		if (j == ng && ng < 16)
			snprintf(groups[ng++], sizeof(groups[0]), "%s", ss[k].group);
	}
	for (int j = 0; j < ng; j++) {
		snprintf(out, sizeof(out), "%slatency_%s.svg", prefix, groups[j]);
		snprintf(title, sizeof(title), "%s: RTT p50 (solid, 95%% intervals) and p99 (dashed), every row "
			 "of the mechanism", groups[j]);
		plot_head(g, out, title, "RTT (us)");
		plot_lines(g, ss, n, groups[j], 2, true);
		snprintf(out, sizeof(out), "%sthroughput_%s.svg", prefix, groups[j]);
		snprintf(title, sizeof(title), "%s: one-way throughput, every row of the mechanism", groups[j]);
		plot_head(g, out, title, "MiB/s");
		plot_lines(g, ss, n, groups[j], 6, false);
	}
	fclose(g);
	int st = run_gnuplot(dir, prefix);
	if (st == 127) {
		snprintf(note, sizeof(note), "gnuplot was not found, so there are no plots; the tables hold "
					     "the same data (data/*.dat and %splots.gp are ready for gnuplot).", prefix);
		return note;
	}
	if (st) {
		snprintf(note, sizeof(note), "gnuplot failed on %splots.gp (see %sgnuplot.log); the tables hold "
					     "the same data.", prefix, prefix);
		return note;
	}
	fprintf(md, "![RTT p50](%srtt_p50.svg)\n![Throughput](%sthroughput.svg)\n\n"
		    "Per mechanism (every row of it: ipckit, raw baselines, peers):\n\n", prefix, prefix);
	for (int j = 0; j < ng; j++)
		fprintf(md, "- %s: [latency](%slatency_%s.svg), [throughput](%sthroughput_%s.svg)\n", groups[j],
			prefix, groups[j], prefix, groups[j]);
	fprintf(md, "\n");
	return "";
}
