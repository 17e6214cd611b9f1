/*
 * report.c - report.md, gnuplot plots and the "Which mechanism should I
 * use?" section, all computed from results documents (results.json), so
 * ipckit-bench and ipckit-report write the same report.
 */
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SERIES 64

static void hsize(double size, char *buf, size_t cap)
{
	unsigned long s = (unsigned long)size;
	if (s >= (1ul << 20) && s % (1ul << 20) == 0)
		snprintf(buf, cap, "%lu MiB", s >> 20);
	else if (s >= 1024 && s % 1024 == 0)
		snprintf(buf, cap, "%lu KiB", s >> 10);
	else
		snprintf(buf, cap, "%lu B", s);
}

static bool is_mode(json_t *r, const char *mode)
{
	return !strcmp(jstr(r, "mode"), mode);
}

static double p50(json_t *r) { return jnum2(r, "rtt_ns", "p50"); }
static double p999(json_t *r) { return jnum2(r, "rtt_ns", "p999"); }

/* Smallest latency size or largest throughput size measured. */
static double pick_size(json_t *doc, const char *mode, bool largest)
{
	double best = largest ? 0 : INFINITY;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (!is_mode(r, mode))
			continue;
		double s = jnum(r, "size");
		if (largest ? s > best : s < best)
			best = s;
	}
	return isfinite(best) ? best : 0;
}

/* Does backend b have capability cap? From the run's "backends", or the
 * design's table for documents that lack it. */
static bool has_cap(json_t *doc, const char *b, const char *cap)
{
	json_t *caps = json_object_get(json_object_get(json_object_get(doc, "backends"), b), "caps");
	if (caps) {
		size_t i;
		json_t *c;
		json_array_foreach(caps, i, c)
			if (!strcmp(json_string_value(c), cap))
				return true;
		return false;
	}
	if (!strcmp(cap, "cross_host"))
		return !strcmp(b, "tcp") || !strcmp(b, "udp");
	if (!strcmp(cap, "unrelated"))
		return strcmp(b, "pipe") != 0;
	if (!strcmp(cap, "reliable"))
		return strcmp(b, "udp") != 0;
	return false;
}

typedef bool (*row_filter)(json_t *doc, json_t *r);

/* The best ipckit row of mode at size by a metric (lower or higher is
 * better) among those the filter admits. */
static json_t *best_row(json_t *doc, const char *mode, double size, row_filter f,
			double (*metric)(json_t *), bool higher)
{
	json_t *best = NULL, *r;
	size_t i;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		/* zero-copy rows leave the payload untouched: not comparable */
		if (strcmp(jstr(r, "impl"), "ipckit") || !is_mode(r, mode) || jnum(r, "size") != size ||
		    jnum(r, "errors") > 0 || *jstr(r, "variant") || (f && !f(doc, r)))
			continue;
		if (!best || (higher ? metric(r) > metric(best) : metric(r) < metric(best)))
			best = r;
	}
	return best;
}

static double bps(json_t *r) { return jnum(r, "bytes_per_s"); }

/* Reliable backends only: a lossy one's latency leaves out what it lost. */
static bool f_any(json_t *doc, json_t *r) { return has_cap(doc, jstr(r, "backend"), "reliable"); }
static bool f_cross(json_t *doc, json_t *r) { return has_cap(doc, jstr(r, "backend"), "cross_host"); }
static bool f_cross_reliable(json_t *doc, json_t *r)
{
	return f_cross(doc, r) && has_cap(doc, jstr(r, "backend"), "reliable");
}
static bool f_unrelated(json_t *doc, json_t *r)
{
	/* pipe needs a common parent whatever a document says */
	return strcmp(jstr(r, "backend"), "pipe") && has_cap(doc, jstr(r, "backend"), "unrelated") &&
	       f_any(doc, r);
}
/* Rows whose RTT is what a process sleeping in poll/epoll on ipc_fd gets:
 * those that sleep in the kernel (every kernel backend, shm wait=block).
 * shm wait=spin and adaptive take their RTT from spinning in ipc_recv. */
static bool f_sleeps(json_t *doc, json_t *r)
{
	return f_any(doc, r) && (strcmp(jstr(r, "backend"), "shm") || !strcmp(jstr(r, "wait"), "block"));
}
static bool f_boundaries(json_t *doc, json_t *r)
{
	(void)doc;
	return !strcmp(jstr(r, "backend"), "mq") || !strcmp(jstr(r, "backend"), "udp");
}
static bool f_no_names(json_t *doc, json_t *r)
{
	const char *b = jstr(r, "backend");
	return strcmp(b, "fifo") && strcmp(b, "mq") && f_any(doc, r);   /* both create names */
}

static void caveat(json_t *doc, json_t *row, char *buf, size_t cap)
{
	const char *b = jstr(row, "backend");
	json_t *info = json_object_get(json_object_get(doc, "backends"), b);
	double max = jnum(info, "max_msg");
	char ms[32];
	hsize(max, ms, sizeof(ms));
	if (!strcmp(b, "udp"))
		snprintf(buf, cap, "may drop or reorder messages; at most %s per message", max > 0 ? ms : "65507 B");
	else if (!strcmp(b, "mq"))
		snprintf(buf, cap, "messages at most %s here (the kernel's msgsize_max); small queue depth",
			 max > 0 ? ms : "msgsize_max");
	else if (!strcmp(b, "pipe"))
		snprintf(buf, cap, "needs a common parent (ipc_pair before fork, or inherited descriptors)");
	else if (!strcmp(b, "shm"))
		snprintf(buf, cap, "same host only%s", !strcmp(jstr(row, "wait"), "spin")
			 ? "; wait=spin keeps a CPU busy while waiting" : "");
	else if (!strcmp(b, "fifo"))
		snprintf(buf, cap, "creates two FIFOs in the filesystem");
	else if (!strcmp(b, "tcp"))
		snprintf(buf, cap, "the only reliable cross-host choice; slower than local mechanisms");
	else if (!strcmp(b, "unix"))
		snprintf(buf, cap, "same host only");
	else
		buf[0] = 0;
}

static void lat_cell(json_t *r, char *buf, size_t cap)
{
	char nm[64], sz[32];
	series_name(r, nm, sizeof(nm));
	hsize(jnum(r, "size"), sz, sizeof(sz));
	snprintf(buf, cap, "RTT p50 %.1f us, p99 %.1f us, p99.9 %.1f us at %s", p50(r) / 1e3,
		 jnum2(r, "rtt_ns", "p99") / 1e3, p999(r) / 1e3, sz);
}

static void tput_cell(json_t *r, char *buf, size_t cap)
{
	char sz[32];
	hsize(jnum(r, "size"), sz, sizeof(sz));
	snprintf(buf, cap, "%.0f MiB/s (%.0f msg/s) at %s", bps(r) / 1048576.0, jnum(r, "msgs_per_s"), sz);
}

static json_t *find_row(json_t *doc, const char *be, const char *impl, const char *variant,
			const char *wait, const char *mode, double size);

/* The throughput row of the same series as latency row r, at size. */
static json_t *tput_twin(json_t *doc, json_t *r, double size)
{
	if (!r)
		return NULL;
	return find_row(doc, jstr(r, "backend"), jstr(r, "impl"), jstr(r, "variant"), jstr(r, "wait"),
			"throughput", size);
}

static void need_line(FILE *f, json_t *doc, const char *need, json_t *r, json_t *tr, const char *extra)
{
	char name[64], cell[160], cell2[160], cav[200];
	if (!r) {
		fprintf(f, "| %s | (not measured in this run) | | |\n", need);
		return;
	}
	series_name(r, name, sizeof(name));
	if (is_mode(r, "latency"))
		lat_cell(r, cell, sizeof(cell));
	else
		tput_cell(r, cell, sizeof(cell));
	cell2[0] = 0;
	if (tr)
		tput_cell(tr, cell2, sizeof(cell2));
	caveat(doc, r, cav, sizeof(cav));
	fprintf(f, "| %s | **%s** | %s%s%s | %s%s%s |\n", need, name, cell, tr ? "; " : "", cell2,
		cav, *cav && extra ? "; " : "", extra ? extra : "");
}

static const char *sz_big(double size)
{
	static char buf[32];
	hsize(size, buf, sizeof(buf));
	return buf;
}

static json_t *find_row(json_t *doc, const char *be, const char *impl, const char *variant,
			const char *wait, const char *mode, double size);

static void recommend(FILE *f, json_t *doc)
{
	double ls = pick_size(doc, "latency", false), ts = pick_size(doc, "throughput", true);
	double ts_small = pick_size(doc, "throughput", false);
	char sz[32], extra[256];

	fprintf(f, "## Which mechanism should I use?\n\n"
		   "Computed from this run's numbers (ipckit rows only; small messages are the smallest "
		   "size measured, bulk the largest; udp competes only where named, since its latency "
		   "leaves out what it lost). RTT is the full round trip.\n\n"
		   "| Need | Use | Measured | Caveats |\n|---|---|---|---|\n");
	json_t *lo = best_row(doc, "latency", ls, f_any, p50, false);
	need_line(f, doc, "Lowest small-message latency", lo, NULL, NULL);
	need_line(f, doc, "Lowest tail latency (p99.9)", best_row(doc, "latency", ls, f_any, p999, false),
		  NULL, NULL);
	json_t *zc = find_row(doc, "shm", "ipckit", "zerocopy", NULL, "latency", ts);
	json_t *zc_small = ls != ts ? find_row(doc, "shm", "ipckit", "zerocopy", NULL, "latency", ls) : NULL;
	extra[0] = 0;
	if (zc && zc_small) {
		hsize(ls, sz, sizeof(sz));
		snprintf(extra, sizeof(extra), "with the zero-copy calls a %s message makes a %.1f us "
			 "round trip on shm (%.1f us at %s)", sz_big(ts), p50(zc) / 1e3, p50(zc_small) / 1e3, sz);
	} else if (zc) {
		snprintf(extra, sizeof(extra), "with the zero-copy calls a %s message makes a %.1f us "
			 "round trip on shm", sz_big(ts), p50(zc) / 1e3);
	}
	need_line(f, doc, "Bulk throughput", best_row(doc, "throughput", ts, f_any, bps, true), NULL,
		  *extra ? extra : NULL);
	json_t *x = best_row(doc, "latency", ls, f_cross_reliable, p50, false);
	json_t *xu = best_row(doc, "latency", ls, f_cross, p50, false);
	extra[0] = 0;
	if (xu && x && xu != x)
		snprintf(extra, sizeof(extra), "udp RTT p50 %.1f us if losses are acceptable", p50(xu) / 1e3);
	need_line(f, doc, "Cross-host", x ? x : xu, tput_twin(doc, x ? x : xu, ts), *extra ? extra : NULL);
	json_t *un = best_row(doc, "latency", ls, f_unrelated, p50, false);
	need_line(f, doc, "Unrelated processes", un, tput_twin(doc, un, ts), NULL);
	json_t *pp = NULL, *r;
	size_t i;
	json_array_foreach(json_object_get(doc, "results"), i, r)
		if (!strcmp(jstr(r, "backend"), "pipe") && !strcmp(jstr(r, "impl"), "ipckit") &&
		    is_mode(r, "latency") && jnum(r, "size") == ls)
			pp = r;
	extra[0] = 0;
	if (pp && lo && pp != lo)
		snprintf(extra, sizeof(extra), "pipe itself: RTT p50 %.1f us", p50(pp) / 1e3);
	need_line(f, doc, "Parent and child only", lo, NULL, *extra ? extra : NULL);
	json_t *ev = best_row(doc, "latency", ls, f_sleeps, p50, false);
	snprintf(extra, sizeof(extra), "ipc_fd() works on every backend; only rows that sleep compete "
		 "(kernel backends, shm wait=block): a loop asleep in epoll wakes like them, whatever "
		 "spinning rows measured%s",
		 ev && !strcmp(jstr(ev, "backend"), "shm") ? " (the shm fd is its eventfd)" : "");
	need_line(f, doc, "Event-loop friendly (poll/epoll on ipc_fd)", ev, NULL, extra);
	need_line(f, doc, "Kernel-kept message boundaries (mq, udp)",
		  best_row(doc, "latency", ls, f_boundaries, p50, false), NULL,
		  "every ipckit backend keeps boundaries; here the kernel itself does");
	need_line(f, doc, "No filesystem names", best_row(doc, "latency", ls, f_no_names, p50, false), NULL,
		  "use @name (abstract) URLs for unix and shm; fifo and mq create names");
	hsize(ts_small, sz, sizeof(sz));
	json_t *ms = best_row(doc, "throughput", ts_small, f_any, bps, true);
	if (ms) {
		char nm[64];
		series_name(ms, nm, sizeof(nm));
		fprintf(f, "\nMost small messages per second (%s): **%s**, %.0f msg/s.\n", sz, nm,
			jnum(ms, "msgs_per_s"));
	}
	fprintf(f, "\n");
}

/* Rows matching backend/impl/variant/mode/size (variant NULL: any; wait
 * NULL: any). */
static json_t *find_row(json_t *doc, const char *be, const char *impl, const char *variant,
			const char *wait, const char *mode, double size)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (!strcmp(jstr(r, "backend"), be) && !strcmp(jstr(r, "impl"), impl) && is_mode(r, mode) &&
		    jnum(r, "size") == size && (!variant || !strcmp(jstr(r, "variant"), variant)) &&
		    (!wait || !strcmp(jstr(r, "wait"), wait)))
			return r;
	}
	return NULL;
}

static void ratio_line(FILE *f, const char *what, json_t *a, json_t *b, bool lat, const char *target)
{
	if (!a || !b)
		return;
	double x = lat ? p50(a) : jnum(a, "msgs_per_s"), y = lat ? p50(b) : jnum(b, "msgs_per_s");
	if (y <= 0)
		return;
	char rs[32];
	fprintf(f, "| %s | %.2f %s | %.2f %s | **%s** | %s |\n", what, lat ? x / 1e3 : x / 1e6,
		lat ? "us" : "M msg/s", lat ? y / 1e3 : y / 1e6, lat ? "us" : "M msg/s",
		fmt_ratio(x / y, rs, sizeof(rs)), target);
}

static void key_ratios(FILE *f, json_t *doc)
{
	double s = pick_size(doc, "latency", false), ts = pick_size(doc, "throughput", false);
	const char *be[] = { "tcp", "udp", "unix", "fifo", "pipe", "mq" };
	char sz[32];
	hsize(s, sz, sizeof(sz));
	fprintf(f, "## Key ratios (same run)\n\nLatency ratios compare RTT p50 at %s; the rows being "
		   "compared ran interleaved in the same two processes.\n\n"
		   "| Ratio | A | B | A/B | Target |\n|---|---|---|---|---|\n", sz);
	for (size_t i = 0; i < sizeof(be) / sizeof(be[0]); i++) {
		char w[64];
		snprintf(w, sizeof(w), "%s ipckit / raw", be[i]);
		ratio_line(f, w, find_row(doc, be[i], "ipckit", "", NULL, "latency", s),
			   find_row(doc, be[i], "raw", "", NULL, "latency", s), true, "<= 1.05");
	}
	ratio_line(f, "shm ipckit wait=spin / raw spin mailbox",
		   find_row(doc, "shm", "ipckit", "", "spin", "latency", s),
		   find_row(doc, "shm", "raw", "spin", NULL, "latency", s), true, "<= 1.3");
	ratio_line(f, "shm ipckit wait=adaptive / raw spin mailbox",
		   find_row(doc, "shm", "ipckit", "", "adaptive", "latency", s),
		   find_row(doc, "shm", "raw", "spin", NULL, "latency", s), true, "<= 1.5");
	ratio_line(f, "shm ipckit wait=block / raw eventfd",
		   find_row(doc, "shm", "ipckit", "", "block", "latency", s),
		   find_row(doc, "shm", "raw", "eventfd", NULL, "latency", s), true, "<= 1.1");
	ratio_line(f, "unix ipckit / ZeroMQ ipc", find_row(doc, "unix", "ipckit", "", NULL, "latency", s),
		   find_row(doc, "ipc", "zmq", "", NULL, "latency", s), true, "<= 0.4");
	ratio_line(f, "shm ipckit (adaptive) / ZeroMQ ipc",
		   find_row(doc, "shm", "ipckit", "", "adaptive", "latency", s),
		   find_row(doc, "ipc", "zmq", "", NULL, "latency", s), true, "<= 0.05");
	ratio_line(f, "unix ipckit / nng ipc", find_row(doc, "unix", "ipckit", "", NULL, "latency", s),
		   find_row(doc, "ipc", "nng", "", NULL, "latency", s), true, "");
	ratio_line(f, "throughput: unix ipckit (ipc_sendv) / ZeroMQ ipc PUSH/PULL",
		   find_row(doc, "unix", "ipckit", "", NULL, "throughput", ts),
		   find_row(doc, "ipc", "zmq", "", NULL, "throughput", ts), false, ">= 1.5");
	ratio_line(f, "throughput: shm ipckit (adaptive) / unix ipckit, both ipc_sendv batches",
		   find_row(doc, "shm", "ipckit", "", "adaptive", "throughput", ts),
		   find_row(doc, "unix", "ipckit", "", NULL, "throughput", ts), false, ">= 10");
	/* The per-message row runs with the first --wait mode given. */
	json_t *shm_send = find_row(doc, "shm", "ipckit", "send", NULL, "throughput", ts);
	char lbl[128];
	snprintf(lbl, sizeof(lbl), "throughput: shm ipckit (%s) / unix ipckit, both one ipc_send per message",
		 shm_send ? jstr(shm_send, "wait") : "");
	ratio_line(f, lbl, shm_send, find_row(doc, "unix", "ipckit", "send", NULL, "throughput", ts),
		   false, ">= 10");
	double lbig = pick_size(doc, "latency", true);
	if (lbig != s) {
		char w[96], bs[32];
		hsize(lbig, bs, sizeof(bs));
		snprintf(w, sizeof(w), "shm zero-copy RTT p50: %s / %s", bs, sz);
		ratio_line(f, w, find_row(doc, "shm", "ipckit", "zerocopy", NULL, "latency", lbig),
			   find_row(doc, "shm", "ipckit", "zerocopy", NULL, "latency", s), true, "<= 2");
	}
	double big = pick_size(doc, "throughput", true);
	if (big != ts) {
		json_t *a = find_row(doc, "shm", "ipckit", "", "adaptive", "throughput", big);
		json_t *b = find_row(doc, "unix", "ipckit", "", NULL, "throughput", big);
		char rs[32];
		if (a && b && bps(b) > 0)
			fprintf(f, "| throughput bytes/s at largest size: shm ipckit / unix ipckit | %.0f MiB/s "
				   "| %.0f MiB/s | **%s** | >= 1.5 |\n", bps(a) / 1048576.0,
				bps(b) / 1048576.0, fmt_ratio(bps(a) / bps(b), rs, sizeof(rs)));
	}
	fprintf(f, "\n");
}

static void lat_table(FILE *f, json_t *doc)
{
	json_t *r;
	size_t i;
	double last = -1;
	char name[64], sz[32];
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (!is_mode(r, "latency"))
			continue;
		if (jnum(r, "size") != last) {
			last = jnum(r, "size");
			hsize(last, sz, sizeof(sz));
			fprintf(f, "\n**%s** (RTT in microseconds%s)\n\n"
				   "| Row | min | p50 | p90 | p99 | p99.9 | max | mean | samples | p50 vs raw |\n"
				   "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n", sz,
				jnum(r, "rate") > 0 ? "; open loop, from the scheduled send time" : "");
		}
		json_t *b = baseline_of(doc, r);
		char ratio[32] = "";
		if (b && p50(b) > 0)
			fmt_ratio(p50(r) / p50(b), ratio, sizeof(ratio));
		series_name(r, name, sizeof(name));
		fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %s |\n", name,
			jnum2(r, "rtt_ns", "min") / 1e3, p50(r) / 1e3, jnum2(r, "rtt_ns", "p90") / 1e3,
			jnum2(r, "rtt_ns", "p99") / 1e3, p999(r) / 1e3, jnum2(r, "rtt_ns", "max") / 1e3,
			jnum2(r, "rtt_ns", "mean") / 1e3, jnum(r, "count"), ratio);
	}
	fprintf(f, "\n");
}

static void tput_table(FILE *f, json_t *doc)
{
	json_t *r;
	size_t i;
	double last = -1;
	char name[64], sz[32];
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (!is_mode(r, "throughput"))
			continue;
		if (jnum(r, "size") != last) {
			last = jnum(r, "size");
			hsize(last, sz, sizeof(sz));
			fprintf(f, "\n**%s**\n\n| Row | msg/s | MiB/s | CPU ns/msg sender | receiver | "
				   "ctx switches sender | receiver | batch | msg/s vs raw |\n"
				   "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n", sz);
		}
		json_t *b = baseline_of(doc, r);
		char ratio[32] = "", lost[64] = "";
		if (b && jnum(b, "msgs_per_s") > 0)
			fmt_ratio(jnum(r, "msgs_per_s") / jnum(b, "msgs_per_s"), ratio, sizeof(ratio));
		if (jnum(r, "lost") > 0)
			snprintf(lost, sizeof(lost), " (%.1f%% lost)", 100 * jnum(r, "lost") / jnum(r, "sent"));
		series_name(r, name, sizeof(name));
		fprintf(f, "| %s%s | %.0f | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | %s |\n", name, lost,
			jnum(r, "msgs_per_s"), bps(r) / 1048576.0, jnum2(r, "cpu_ns_per_msg", "sender"),
			jnum2(r, "cpu_ns_per_msg", "receiver"), jnum2(r, "ctx_switches", "sender"),
			jnum2(r, "ctx_switches", "receiver"), jnum(r, "batch") > 0 ? jnum(r, "batch") : 1, ratio);
	}
	fprintf(f, "\n");
}

/* ---- plots ---- */

struct series {
	char name[64], file[96], backend[16], impl[8];
	bool lat, tput;   /* has latency / throughput points */
};

static void sanitize(const char *in, char *out, size_t cap)
{
	size_t j = 0;
	for (size_t i = 0; in[i] && j + 1 < cap; i++)
		out[j++] = (in[i] >= 'a' && in[i] <= 'z') || (in[i] >= '0' && in[i] <= '9') ? in[i] : '_';
	out[j] = 0;
}

/* Write data/<prefix><series>.dat ("size p50_us p99_us MiB/s msg/s", one
 * line per size, sorted by size) for every series; returns the count. */
static int write_series(json_t *doc, const char *dir, const char *prefix, struct series *ss)
{
	int n = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		char nm[64];
		series_name(r, nm, sizeof(nm));
		int k;
		for (k = 0; k < n && strcmp(ss[k].name, nm); k++)
			;
		if (k == n && n < MAX_SERIES) {
			char san[64];
			snprintf(ss[n].name, sizeof(ss[n].name), "%s", nm);
			sanitize(nm, san, sizeof(san));
			snprintf(ss[n].file, sizeof(ss[n].file), "data/%s%s.dat", prefix, san);
			snprintf(ss[n].backend, sizeof(ss[n].backend), "%s", jstr(r, "backend"));
			snprintf(ss[n].impl, sizeof(ss[n].impl), "%s", jstr(r, "impl"));
			ss[n].lat = ss[n].tput = false;
			k = n++;
		}
		if (k < n) {
			if (is_mode(r, "latency"))
				ss[k].lat = true;
			else
				ss[k].tput = true;
		}
	}
	for (int k = 0; k < n; k++) {
		char path[PATH_MAX];
		double sizes[64];
		int ns = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, ss[k].file);
		FILE *f = fopen(path, "w");
		if (!f)
			return -errno;
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			char nm[64];
			series_name(r, nm, sizeof(nm));
			double s = jnum(r, "size");
			int j;
			for (j = 0; j < ns && sizes[j] != s; j++)
				;
			if (strcmp(nm, ss[k].name) || j < ns || ns == 64)
				continue;
			sizes[ns++] = s;
		}
		for (int a = 0; a < ns; a++)   /* sort: few sizes */
			for (int b = a + 1; b < ns; b++)
				if (sizes[b] < sizes[a]) {
					double t = sizes[a];
					sizes[a] = sizes[b];
					sizes[b] = t;
				}
		fprintf(f, "# size rtt_p50_us rtt_p99_us MiB_per_s msgs_per_s\n");
		for (int a = 0; a < ns; a++) {
			double v[4] = { NAN, NAN, NAN, NAN };
			json_array_foreach(json_object_get(doc, "results"), i, r) {
				char nm[64];
				series_name(r, nm, sizeof(nm));
				if (strcmp(nm, ss[k].name) || jnum(r, "size") != sizes[a])
					continue;
				if (is_mode(r, "latency")) {
					v[0] = p50(r) / 1e3;
					v[1] = jnum2(r, "rtt_ns", "p99") / 1e3;
				} else {
					v[2] = bps(r) / 1048576.0;
					v[3] = jnum(r, "msgs_per_s");
				}
			}
			fprintf(f, "%.0f", sizes[a]);
			for (int c = 0; c < 4; c++)
				isnan(v[c]) ? fprintf(f, " NaN") : fprintf(f, " %g", v[c]);
			fprintf(f, "\n");
		}
		fclose(f);
	}
	return n;
}

static void plot_common(FILE *g, const char *out, const char *title, const char *ylabel)
{
	fprintf(g, "set output '%s'\nset title \"%s\"\nset ylabel \"%s\"\n", out, title, ylabel);
}

static void plot_lines(FILE *g, struct series *ss, int n, bool (*want)(struct series *, const char *),
		       const char *arg, int col, bool with_p99)
{
	bool first = true;
	for (int k = 0; k < n; k++) {
		if (!want(&ss[k], arg) || !(col >= 4 ? ss[k].tput : ss[k].lat))
			continue;
		/* 8 colours, then the same colours dotted: every series distinct */
		fprintf(g, "%s'%s' using 1:%d with linespoints lw 2 lc %d pt %d dt %d title \"%s%s\"",
			first ? "plot " : ", \\\n     ", ss[k].file, col, k % 8 + 1, k % 13 + 1,
			with_p99 ? 1 : k / 8 + 1, ss[k].name, with_p99 ? " p50" : "");
		if (with_p99)
			fprintf(g, ", \\\n     '%s' using 1:3 with linespoints dt 2 lc %d pt %d title \"%s p99\"",
				ss[k].file, k % 8 + 1, k % 13 + 1, ss[k].name);
		first = false;
	}
	if (first)
		fprintf(g, "set label 1 'no data' at graph 0.5, graph 0.5\nunset logscale y\nset yrange [0:1]\n"
			   "plot NaN notitle\nunset label 1\nset autoscale y\nset logscale y 10");
	fprintf(g, "\n");
}

static bool w_not_raw(struct series *s, const char *a) { (void)a; return strcmp(s->impl, "raw") != 0; }
static bool w_backend(struct series *s, const char *a)
{
	if (!strcmp(s->backend, a))
		return true;
	/* peers go with the mechanism they use */
	return (!strcmp(a, "unix") && !strcmp(s->backend, "ipc")) ||
	       (!strcmp(a, "tcp") && strcmp(s->impl, "ipckit") && strcmp(s->impl, "raw") &&
		!strcmp(s->backend, "tcp"));
}

/* Write the gnuplot script and run it; returns a note for the report
 * ("" when the plots were made). */
static const char *make_plots(json_t *doc, const char *dir, const char *prefix, FILE *md)
{
	static char note[256];
	struct series ss[MAX_SERIES];
	char path[PATH_MAX];
	int n = write_series(doc, dir, prefix, ss);
	if (n < 0)
		return "could not write the plot data";
	snprintf(path, sizeof(path), "%s/%splots.gp", dir, prefix);
	FILE *g = fopen(path, "w");
	if (!g)
		return "could not write the gnuplot script";
	fprintf(g, "# gnuplot script written by ipckit-bench; run in this directory\n"
		   "set terminal svg size 1100,650 dynamic font 'sans,11'\nset logscale xy 2\n"
		   "set xlabel 'message size (bytes)'\nset key outside right top font ',9' spacing 1.1\n"
		   "set grid\nset datafile missing 'NaN'\nset logscale y 10\n");
	/* x tics at the sizes measured, labelled 64, 4K, 1M */
	double sz[32];
	int nsz = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		int j;
		for (j = 0; j < nsz && sz[j] != jnum(r, "size"); j++)
			;
		if (j == nsz && nsz < 32)
			sz[nsz++] = jnum(r, "size");
	}
	fprintf(g, "set xtics (");
	for (int j = 0; j < nsz; j++) {
		unsigned long v = (unsigned long)sz[j];
		if (v >= (1ul << 20) && v % (1ul << 20) == 0)
			fprintf(g, "%s\"%luM\" %lu", j ? ", " : "", v >> 20, v);
		else if (v >= 1024 && v % 1024 == 0)
			fprintf(g, "%s\"%luK\" %lu", j ? ", " : "", v >> 10, v);
		else
			fprintf(g, "%s\"%lu\" %lu", j ? ", " : "", v, v);
	}
	fprintf(g, ")\n");
	if (nsz == 1)   /* one size: give the axis some room */
		fprintf(g, "set xrange [%g:%g]\n", sz[0] / 2, sz[0] * 2);
	char out[512];
	snprintf(out, sizeof(out), "%srtt_p50.svg", prefix);
	plot_common(g, out, "Round-trip time p50 vs message size (ipckit and peers)", "RTT p50 (us)");
	plot_lines(g, ss, n, w_not_raw, NULL, 2, false);
	snprintf(out, sizeof(out), "%srtt_p99.svg", prefix);
	plot_common(g, out, "Round-trip time p99 vs message size (ipckit and peers)", "RTT p99 (us)");
	plot_lines(g, ss, n, w_not_raw, NULL, 3, false);
	snprintf(out, sizeof(out), "%sthroughput.svg", prefix);
	plot_common(g, out, "One-way throughput vs message size (ipckit and peers)", "MiB/s");
	plot_lines(g, ss, n, w_not_raw, NULL, 4, false);
	char backends[16][16];
	int nb = 0;
	for (int k = 0; k < n; k++) {
		int j;
		if (!strcmp(ss[k].impl, "zmq") || !strcmp(ss[k].impl, "nng"))
			continue;
		for (j = 0; j < nb && strcmp(backends[j], ss[k].backend); j++)
			;
		if (j == nb && nb < 16)
			snprintf(backends[nb++], sizeof(backends[0]), "%s", ss[k].backend);
	}
	for (int j = 0; j < nb; j++) {
		char t[512];
		snprintf(out, sizeof(out), "%slatency_%s.svg", prefix, backends[j]);
		snprintf(t, sizeof(t), "%s: RTT p50 (solid) and p99 (dashed), ipckit vs raw%s", backends[j],
			 !strcmp(backends[j], "unix") || !strcmp(backends[j], "tcp") ? " vs peers" : "");
		plot_common(g, out, t, "RTT (us)");
		plot_lines(g, ss, n, w_backend, backends[j], 2, true);
		snprintf(out, sizeof(out), "%sthroughput_%s.svg", prefix, backends[j]);
		snprintf(t, sizeof(t), "%s: one-way throughput, ipckit vs raw", backends[j]);
		plot_common(g, out, t, "MiB/s");
		plot_lines(g, ss, n, w_backend, backends[j], 4, false);
	}
	fclose(g);

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
		return "could not start gnuplot";
	if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
		snprintf(note, sizeof(note), "gnuplot was not found, so there are no plots; the tables "
					     "hold the same data (data/*.dat and %splots.gp are ready for "
					     "gnuplot).", prefix);
		return note;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		snprintf(note, sizeof(note), "gnuplot failed on %splots.gp (see %sgnuplot.log); the tables hold the same data.", prefix, prefix);
		return note;
	}
	fprintf(md, "![RTT p50](%srtt_p50.svg)\n![RTT p99](%srtt_p99.svg)\n![Throughput](%sthroughput.svg)\n\n"
		    "Per mechanism (ipckit against its raw baselines; unix and tcp also against the peers):\n\n",
		prefix, prefix, prefix);
	for (int j = 0; j < nb; j++)
		fprintf(md, "- %s: [latency](%slatency_%s.svg), [throughput](%sthroughput_%s.svg)\n",
			backends[j], prefix, backends[j], prefix, backends[j]);
	fprintf(md, "\n");
	return "";
}

static void machine_block(FILE *f, json_t *doc, const char *name)
{
	json_t *m = json_object_get(doc, "machine"), *c = json_object_get(doc, "config");
	json_t *pin = json_object_get(m, "pin");
	char pins[32] = "none";
	if (json_array_size(pin) == 2)
		snprintf(pins, sizeof(pins), "CPUs %d and %d", (int)json_integer_value(json_array_get(pin, 0)),
			 (int)json_integer_value(json_array_get(pin, 1)));
	fprintf(f, "- Machine: %s; %s, %d CPUs\n- Kernel: %s\n- Compiler: %s\n- Pinning: %s\n"
		   "- Date: %s; ipckit %s; run took %.0f s\n"
		   "- Config: %.0f latency samples per row at most (%.2f s cap, %d interleaved rounds), "
		   "%.0f warm-up; throughput %s; ipc_sendv batch %.0f; wait %s%s\n",
		name, jstr(m, "cpu"), (int)jnum(m, "cpus"), jstr(m, "kernel"), jstr(m, "compiler"), pins,
		jstr(m, "date"), jstr(doc, "ipckit_version"), jnum(doc, "total_s"), jnum(c, "count"),
		jnum(c, "latency_cap_s"), (int)jnum(c, "rounds"), jnum(c, "warmup"),
		json_is_true(json_object_get(c, "count_mode")) ? "fixed count" : "fixed duration",
		jnum(c, "batch"), jstr(c, "wait"), jnum(c, "pairs") > 1 ? "; concurrent pairs" : "");
	json_t *la = json_object_get(m, "load_avg");
	if (json_array_size(la) == 2)
		fprintf(f, "- Load average (1 min) at start and end: %.2f, %.2f%s\n",
			json_number_value(json_array_get(la, 0)), json_number_value(json_array_get(la, 1)),
			/* the run itself adds about 2 (two busy processes) */
			json_number_value(json_array_get(la, 0)) > 1.0 || json_number_value(json_array_get(la, 1)) > 3.0
			? " (other work shared the CPUs: absolute numbers may be inflated; ratios between "
			  "interleaved rows of a group hold better)" : "");
	if (jnum(c, "duration_s") > 0 && !json_is_true(json_object_get(c, "count_mode")) &&
	    pick_size(doc, "throughput", true) > 0)
		fprintf(f, "- Throughput rows stream for %.2f s each.\n", jnum(c, "duration_s"));
	fprintf(f, "\n");
}

static void skipped_block(FILE *f, json_t *doc)
{
	json_t *sk = json_object_get(doc, "skipped"), *r;
	size_t i;
	char sz[32];
	if (!json_array_size(sk))
		return;
	fprintf(f, "Not measured:\n\n");
	json_array_foreach(sk, i, r) {
		hsize(jnum(r, "size"), sz, sizeof(sz));
		fprintf(f, "- %s %s%s%s at %s: %s\n", jstr(r, "backend"), jstr(r, "impl"),
			*jstr(r, "variant") ? " " : "", jstr(r, "variant"), sz, jstr(r, "reason"));
	}
	fprintf(f, "\n");
}

/* Several machines: one column per machine for p50 and MiB/s. */
static void side_by_side(FILE *f, json_t **docs, const char **names, int n)
{
	const char *modes[2] = { "latency", "throughput" };
	for (int m = 0; m < 2; m++) {
		fprintf(f, "### %s, side by side (%s)\n\n| Row | Size |", m ? "Throughput" : "Latency",
			m ? "MiB/s" : "RTT p50 / p99 in us");
		for (int k = 0; k < n; k++)
			fprintf(f, " %s |", names[k]);
		fprintf(f, "\n|---|---:|");
		for (int k = 0; k < n; k++)
			fprintf(f, "---:|");
		fprintf(f, "\n");
		/* Rows in the order of the first document that has them. */
		for (int d = 0; d < n; d++) {
			size_t i;
			json_t *r;
			json_array_foreach(json_object_get(docs[d], "results"), i, r) {
				char nm[64], sz[32];
				bool seen = false;
				if (!is_mode(r, modes[m]))
					continue;
				series_name(r, nm, sizeof(nm));
				for (int e = 0; e < d && !seen; e++) {
					size_t j;
					json_t *q;
					json_array_foreach(json_object_get(docs[e], "results"), j, q) {
						char qn[64];
						series_name(q, qn, sizeof(qn));
						if (is_mode(q, modes[m]) && !strcmp(qn, nm) &&
						    jnum(q, "size") == jnum(r, "size"))
							seen = true;
					}
				}
				if (seen)
					continue;
				hsize(jnum(r, "size"), sz, sizeof(sz));
				fprintf(f, "| %s | %s |", nm, sz);
				for (int k = 0; k < n; k++) {
					json_t *q = NULL, *x;
					size_t j;
					json_array_foreach(json_object_get(docs[k], "results"), j, x) {
						char qn[64];
						series_name(x, qn, sizeof(qn));
						if (is_mode(x, modes[m]) && !strcmp(qn, nm) &&
						    jnum(x, "size") == jnum(r, "size"))
							q = x;
					}
					if (!q)
						fprintf(f, " - |");
					else if (m == 0)
						fprintf(f, " %.1f / %.1f |", p50(q) / 1e3, jnum2(q, "rtt_ns", "p99") / 1e3);
					else
						fprintf(f, " %.1f |", bps(q) / 1048576.0);
				}
				fprintf(f, "\n");
			}
		}
		fprintf(f, "\n");
	}
}

int write_report(json_t **docs, const char **names, int n, const char *dir, const char *hyperfine_md)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/data", dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), "%s/report.md", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return -errno;
	bool pinned = true;
	for (int k = 0; k < n; k++)
		pinned = pinned && json_array_size(json_object_get(json_object_get(docs[k], "machine"), "pin")) == 2;
	fprintf(f, "# ipckit benchmark report\n\n"
		   "Every row ran in two processes%s, through the same "
		   "harness: latency is the ping-pong round trip (RTT, not RTT/2) of one message at a "
		   "time; throughput is a one-way stream acknowledged at the end. `raw` rows are the "
		   "mechanism's own system calls without ipckit; `zmq` and `nng` rows are ZeroMQ (PAIR, "
		   "PUSH/PULL) and nng (pair1, push0/pull0) over ipc:// (labelled `ipc`) and tcp://. "
		   "See docs/benchmarking.md for the method.\n\n",
		pinned ? " pinned to two CPUs (see below)" : " (pinning: see below)");
	for (int k = 0; k < n; k++) {
		json_t *doc = docs[k];
		char prefix[16] = "";
		if (n > 1) {
			snprintf(prefix, sizeof(prefix), "m%d_", k + 1);
			fprintf(f, "## Machine %d: %s\n\n", k + 1, names[k]);
		} else {
			fprintf(f, "## Machine\n\n");
		}
		machine_block(f, doc, names[k]);
		if (jnum(doc, "failures") > 0)
			fprintf(f, "**Warning: %.0f group(s) failed in this run; their rows are missing.**\n\n",
				jnum(doc, "failures"));
		recommend(f, doc);
		key_ratios(f, doc);
		if (n == 1) {
			fprintf(f, "## Plots\n\nLog-log axes; one line per row kind.\n\n");
			const char *note = make_plots(doc, dir, prefix, f);
			if (*note)
				fprintf(f, "_%s_\n\n", note);
			fprintf(f, "## Latency\n");
			lat_table(f, doc);
			fprintf(f, "## Throughput\n\nCPU ns/msg is user+system time of each process (all "
				   "its threads) divided by the messages it handled; ctx switches are "
				   "voluntary+involuntary context switches during the stream. ipckit rows "
				   "send with ipc_sendv in batches (column batch); raw rows make one system "
				   "call per message; peers send one message per call and batch inside the "
				   "library.\n");
			tput_table(f, doc);
			skipped_block(f, doc);
		} else {
			fprintf(f, "### Plots\n\n");
			const char *note = make_plots(doc, dir, prefix, f);
			if (*note)
				fprintf(f, "_%s_\n\n", note);
			skipped_block(f, doc);
		}
	}
	if (n > 1)
		side_by_side(f, docs, names, n);
	fprintf(f, "## Whole transfers (hyperfine)\n\n");
	FILE *h = hyperfine_md ? fopen(hyperfine_md, "r") : NULL;
	if (h) {
		char buf[4096];
		size_t got;
		fprintf(f, "Wall time of whole `ipckit-bench --transfer` processes (start, connect, "
			   "transfer, exit), measured by hyperfine (bench/hyperfine.sh):\n\n");
		while ((got = fread(buf, 1, sizeof(buf), h)) > 0)
			fwrite(buf, 1, got, f);
		fclose(h);
		fprintf(f, "\n");
	} else {
		fprintf(f, "Not run. `ninja -C build hyperfine` (bench/hyperfine.sh) times one whole "
			   "transfer per backend and writes hyperfine.md here; `ipckit-report` then "
			   "includes it.\n\n");
	}
	return fclose(f) ? -errno : 0;
}
