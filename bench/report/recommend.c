/*
 * report/recommend.c - "Which mechanism should I use?", computed from a
 * run. Each need is a set of candidate ipckit rows (chosen by the backends'
 * caps and the rows' own measurements, never by name) and one figure. The
 * winner is named only where its 95% interval is clear of the runner-up's;
 * otherwise the need says which candidates tie and by how much their
 * medians differ.
 */
#include "report.h"
#include "../fmt.h"

#include <math.h>
#include <string.h>

double pick_size(json_t *doc, const char *mode, bool largest)
{
	double best = largest ? 0 : INFINITY;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (strcmp(jstr(r, "mode"), mode))
			continue;
		double s = jnum(r, "size");
		if (largest ? s > best : s < best)
			best = s;
	}
	return isfinite(best) ? best : 0;
}

static bool better(double a, double b, bool higher)
{
	return higher ? a > b : a < b;
}

void decide(json_t **rows, int n, const char *key, bool higher, struct verdict *v)
{
	struct ci w, c;
	memset(v, 0, sizeof(*v));
	v->intervals = true;
	for (int i = 0; i < n; i++) {
		jci(rows[i], key, &c);
		v->intervals &= c.n > 1;
		if (!v->win || better(c.med, jfig(v->win, key), higher)) {
			v->runner = v->win;
			v->win = rows[i];
		} else if (!v->runner || better(c.med, jfig(v->runner, key), higher)) {
			v->runner = rows[i];
		}
	}
	if (!v->win)
		return;
	jci(v->win, key, &w);
	if (!v->runner) {
		v->clear = v->intervals;
		return;
	}
	jci(v->runner, key, &c);
	v->diff = w.med != 0 ? fabs(c.med - w.med) / fabs(w.med) : 0;
	v->clear = v->intervals && !ci_overlap(&w, &c);
	for (int i = 0; i < n && !v->clear && v->intervals; i++) {
		if (rows[i] == v->win || v->ntie == 16)
			continue;
		jci(rows[i], key, &c);
		if (ci_overlap(&w, &c))
			v->tie[v->ntie++] = rows[i];
	}
}

/* ---- candidates ---- */

typedef bool (*row_filter)(json_t *doc, json_t *r);

static bool cap(json_t *doc, json_t *r, const char *c)
{
	return has_cap(doc, jgroup(r), c);
}

static bool f_reliable(json_t *doc, json_t *r) { return cap(doc, r, "reliable"); }
static bool f_cross(json_t *doc, json_t *r) { return cap(doc, r, "cross_host"); }
static bool f_cross_reliable(json_t *doc, json_t *r) { return f_cross(doc, r) && f_reliable(doc, r); }
static bool f_unrelated(json_t *doc, json_t *r)
{
	return f_reliable(doc, r) && cap(doc, r, "unrelated") && cap(doc, r, "process") &&
	       !json_is_true(json_object_get(r, "threads"));
}
static bool f_processes(json_t *doc, json_t *r)
{
	return f_reliable(doc, r) && cap(doc, r, "process") && !json_is_true(json_object_get(r, "threads"));
}
static bool f_threads(json_t *doc, json_t *r)
{
	return f_reliable(doc, r) && json_is_true(json_object_get(r, "threads"));
}
/* Rows whose round trip is what a loop asleep in poll/epoll gets: the echo
 * side went to sleep for (nearly) every message, as measured. */
static bool f_sleeps(json_t *doc, json_t *r)
{
	return f_reliable(doc, r) && jnum2(r, "vcsw_per_msg", "echo") >= 0.5;
}
/* No name in the filesystem: abstract @names, ipc_pair, host:port. */
static bool f_no_names(json_t *doc, json_t *r)
{
	return f_reliable(doc, r) &&
	       (cap(doc, r, "abstract") || !cap(doc, r, "unrelated") || cap(doc, r, "cross_host"));
}

/* The ipckit rows of mode at size (gap rows: at gap_ms) that f admits. One
 * send per message rows only show a call pattern: not candidates. */
static int candidates(json_t *doc, const char *mode, double size, double gap, row_filter f,
		      json_t **out, int max)
{
	size_t i;
	json_t *r;
	int n = 0;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (strcmp(jstr(r, "impl"), "ipckit") || strcmp(jstr(r, "mode"), mode) ||
		    jnum(r, "size") != size || jnum(r, "gap_ms") != gap || jnum(r, "errors") > 0 ||
		    !strcmp(jstr(r, "variant"), "send") || (f && !f(doc, r)))
			continue;
		if (n < max)
			out[n++] = r;
	}
	return n;
}

void caveats(json_t *doc, json_t *row, char *buf, size_t cap_)
{
	json_t *info = json_object_get(json_object_get(doc, "backends"), jgroup(row));
	double max = jnum(info, "max_msg");
	size_t n = 0;
	char ms[32];
	const char *parts[8];
	int np = 0;
	char sized[96], unstable[96];
	buf[0] = 0;
	if (!info)
		return;
	if (!cap(doc, row, "reliable"))
		parts[np++] = "may drop or reorder messages";
	if (max > 0 && max < 16 * 1048576.0) {
		snprintf(sized, sizeof(sized), "messages at most %s", fmt_size(max, SZ_LONG, ms, sizeof(ms)));
		parts[np++] = sized;
	}
	if (!cap(doc, row, "process"))
		parts[np++] = "threads of one process only";
	else if (!cap(doc, row, "unrelated"))
		parts[np++] = "needs a common parent (ipc_pair before fork, or inherited descriptors)";
	if (!cap(doc, row, "cross_host"))
		parts[np++] = "same host only";
	if (cap(doc, row, "unrelated") && !cap(doc, row, "abstract") && !cap(doc, row, "cross_host"))
		parts[np++] = "its URLs name files or queues";
	if (!strcmp(jstr(row, "wait"), "spin"))
		parts[np++] = "wait=spin keeps a CPU busy while waiting";
	if (!jstable(row) && jnum(row, "rounds") > 1) {
		struct ci c;
		jci(row, headline_key(row), &c);
		snprintf(unstable, sizeof(unstable), "unstable: its rounds spread over %.0f%% of the median",
			 c.med ? 100 * (c.hi - c.lo) / fabs(c.med) : 0);
		parts[np++] = unstable;
	}
	for (int i = 0; i < np && n < cap_; i++)
		n += (size_t)snprintf(buf + n, cap_ - n, "%s%s", i ? "; " : "", parts[i]);
}

static void cell(json_t *r, const char *key, char *buf, size_t cap_)
{
	struct ci c;
	char sz[32], m[32], lo[32], hi[32];
	jci(r, key, &c);
	fmt_size(jnum(r, "size"), SZ_LONG, sz, sizeof(sz));
	if (!strncmp(key, "rtt_ns", 6)) {
		fmt_us(c.med, m, sizeof(m));
		fmt_us(c.lo, lo, sizeof(lo));
		fmt_us(c.hi, hi, sizeof(hi));
		if (c.n > 1)
			snprintf(buf, cap_, "%s %s us [%s-%s] at %s", strchr(key, '.') + 1, m, lo, hi, sz);
		else
			snprintf(buf, cap_, "%s %s us at %s", strchr(key, '.') + 1, m, sz);
		return;
	}
	double k = !strcmp(key, "bytes_per_s") ? 1048576.0 : 1;
	const char *unit = k > 1 ? " MiB/s" : " msg/s";
	if (c.n > 1)
		snprintf(buf, cap_, "%.0f%s [%.0f-%.0f] at %s", c.med / k, unit, c.lo / k, c.hi / k, sz);
	else
		snprintf(buf, cap_, "%.0f%s at %s", c.med / k, unit, sz);
}

/* One line of the table: winner or tie, the evidence, the caveats. */
static void need_line(FILE *f, json_t *doc, const char *need, json_t **c, int n, const char *key,
		      bool higher, const char *extra)
{
	struct verdict v;
	char name[96], ev[256], cav[400];
	decide(c, n, key, higher, &v);
	if (!v.win) {
		fprintf(f, "| %s | (not measured in this run) | | |\n", need);
		return;
	}
	series_name(v.win, name, sizeof(name));
	cell(v.win, key, ev, sizeof(ev));
	caveats(doc, v.win, cav, sizeof(cav));
	fprintf(f, "| %s | ", need);
	if (v.clear || !v.runner || !v.intervals) {
		fprintf(f, "**%s**", name);
		if (!v.intervals)
			fprintf(f, " (one round: no interval)");
	} else {
		fprintf(f, "tie: **%s**", name);
		for (int i = 0; i < v.ntie; i++) {
			char nm[96];
			series_name(v.tie[i], nm, sizeof(nm));
			fprintf(f, ", %s", nm);
		}
	}
	fprintf(f, " | %s", ev);
	if (v.runner) {
		char rn[96], rev[256];
		series_name(v.runner, rn, sizeof(rn));
		cell(v.runner, key, rev, sizeof(rev));
		fprintf(f, "; %s %s: %s (%.1f%% %s)", v.clear || !v.intervals ? "runner-up" : "next", rn, rev,
			100 * v.diff,
			higher ? "less" : "more");
		if (!v.clear && v.intervals)
			fprintf(f, "; intervals overlap");
	}
	fprintf(f, " | %s%s%s |\n", cav, *cav && extra ? "; " : "", extra ? extra : "");
}

void trust_line(FILE *f, json_t *doc)
{
	json_t *c = json_object_get(doc, "config"), *r;
	size_t i;
	int n = 0, stable = 0;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		n++;
		stable += jstable(r);
	}
	int rounds = (int)jnum(c, "rounds");
	if (!json_object_get(c, "ci95") || rounds < 2) {
		fprintf(f, "This run has no per-round intervals (%s): every winner below is a single "
			   "measurement.\n\n", rounds < 2 && json_object_get(c, "ci95") ? "one round per row"
			   : "an older ipckit-bench");
		return;
	}
	fprintf(f, "Each figure is the median of %d rounds, the rows of a size interleaved in a shuffled "
		   "order per round; brackets give its 95%% interval (order statistics, %.1f%% coverage). "
		   "**%d of %d rows were stable** (interval within 10%% of the median)%s. A winner is named "
		   "only where its interval is clear of the runner-up's; otherwise the candidates tie.\n\n",
		rounds, 100 * jnum2(c, "ci95", "coverage"), stable, n,
		stable * 4 < n * 3 ? ": this machine was noisy, read close calls as ties" : "");
	json_t *w = json_object_get(json_object_get(json_object_get(doc, "machine"), "noise"), "warnings");
	json_array_foreach(w, i, r)
		fprintf(f, "> **Warning:** %s\n>\n", json_string_value(r));
	if (json_array_size(w))
		fprintf(f, "\n");
}

void recommend(FILE *f, json_t *doc)
{
	double ls = pick_size(doc, "latency", false), tl = pick_size(doc, "throughput", true);
	double ts = pick_size(doc, "throughput", false);
	json_t *c[64];
	char need[128], extra[256];
	int n;

	fprintf(f, "## Which mechanism should I use?\n\n");
	trust_line(f, doc);
	fprintf(f, "| Need | Use | Measured (median [95%% interval]) | Caveats |\n|---|---|---|---|\n");
	n = candidates(doc, "latency", ls, 0, f_reliable, c, 64);
	need_line(f, doc, "Lowest small-message latency (RTT p50)", c, n, "rtt_ns.p50", false, NULL);
	need_line(f, doc, "Lowest tail latency (RTT p99)", c, n, "rtt_ns.p99", false, NULL);
	n = candidates(doc, "throughput", tl, 0, f_reliable, c, 64);
	need_line(f, doc, "Bulk throughput (largest size)", c, n, "bytes_per_s", true, NULL);
	n = candidates(doc, "throughput", ts, 0, f_reliable, c, 64);
	need_line(f, doc, "Most small messages per second", c, n, "msgs_per_s", true,
		  "ipc_sendv batches; one ipc_send per message is in the throughput tables");
	n = candidates(doc, "latency", ls, 0, f_cross_reliable, c, 64);
	json_t *lossy[64];
	int nl = candidates(doc, "latency", ls, 0, f_cross, lossy, 64);
	extra[0] = 0;
	for (int i = 0; i < nl; i++)
		if (!f_reliable(doc, lossy[i])) {
			char nm[96];
			series_name(lossy[i], nm, sizeof(nm));
			char us[32];
			snprintf(extra, sizeof(extra), "%s: RTT p50 %s us if losses are acceptable", nm,
				 fmt_us(jfig(lossy[i], "rtt_ns.p50"), us, sizeof(us)));
		}
	need_line(f, doc, "Cross-host", c, n, "rtt_ns.p50", false, *extra ? extra : NULL);
	n = candidates(doc, "latency", ls, 0, f_unrelated, c, 64);
	need_line(f, doc, "Unrelated processes", c, n, "rtt_ns.p50", false, NULL);
	n = candidates(doc, "latency", ls, 0, f_processes, c, 64);
	need_line(f, doc, "Parent and child only", c, n, "rtt_ns.p50", false, NULL);
	n = candidates(doc, "latency", ls, 0, f_threads, c, 64);
	if (n)
		need_line(f, doc, "Threads of one process", c, n, "rtt_ns.p50", false, NULL);
	n = candidates(doc, "latency", ls, 0, f_sleeps, c, 64);
	need_line(f, doc, "Event-loop friendly (poll/epoll on ipc_fd)", c, n, "rtt_ns.p50", false,
		  "only rows whose echo side slept for each message compete (measured): a loop asleep "
		  "in epoll wakes like them, whatever spinning rows measured");
	n = candidates(doc, "latency", ls, 0, f_no_names, c, 64);
	need_line(f, doc, "No filesystem names", c, n, "rtt_ns.p50", false,
		  "use @name (abstract) URLs where the backend has them");
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(json_object_get(doc, "config"), "gaps_ms"), i, g) {
		double gap = json_number_value(g);
		double gs = 0;
		size_t j;
		json_t *r;
		json_array_foreach(json_object_get(doc, "results"), j, r)
			if (!strcmp(jstr(r, "mode"), "gap") && jnum(r, "gap_ms") == gap && (!gs || jnum(r, "size") < gs))
				gs = jnum(r, "size");
		n = candidates(doc, "gap", gs, gap, f_reliable, c, 64);
		snprintf(need, sizeof(need), "Wake-up after %g ms idle (RTT p99)", gap);
		need_line(f, doc, need, c, n, "rtt_ns.p99", false, NULL);
	}
	fprintf(f, "\n");
}
