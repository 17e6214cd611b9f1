/*
 * table.c - the terminal table, from a results document: one block per mode
 * and size, each headed by what it shows; every figure is the median over
 * the rounds with half its 95% interval as a percentage, and rows whose
 * interval is wider than 10% of the median are marked "unstable". Ends with
 * what was not measured and the machine's warnings.
 */
#include "fmt.h"
#include "out.h"

#include <math.h>
#include <string.h>

static void pm(const struct ci *c, char *buf, size_t cap)
{
	if (c->n < 2 || c->med == 0)
		snprintf(buf, cap, "-");
	else
		snprintf(buf, cap, "±%.0f%%", 50.0 * (c->hi - c->lo) / fabs(c->med));
}


static void lat_block(json_t *doc, FILE *f, const char *mode, double gap)
{
	double sz[32];
	char name[96], s[32], p[16], ratio[16];
	int ns = doc_sizes(doc, mode, gap, sz, 32);
	int rounds = (int)jnum(json_object_get(doc, "config"), "rounds");
	for (int k = 0; k < ns; k++) {
		size_t i;
		json_t *r;
		fmt_size(sz[k], SZ_LONG, s, sizeof(s));
		if (gap > 0)
			fprintf(f, "\nIdle-gap latency, %s messages, one every %g ms, every backend: wake-up "
				   "round trip in us (median of %d rounds)\n", s, gap, rounds);
		else
			fprintf(f, "\nLatency, %s messages, every backend: round trip (RTT) in us, median of %d "
				   "rounds%s\n", s, rounds, jnum(json_object_get(doc, "config"), "rate") > 0
				   ? ", open loop (from the scheduled send time)" : "");
		fprintf(f, "%-36s %9s %9s %5s %9s %9s %9s %8s  %s\n", "row", "min", "p50", "±", "p99", "p99.9",
			"max", "p50/raw", "tuning");
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			struct ci c;
			if (strcmp(jstr(r, "mode"), mode) || jnum(r, "size") != sz[k] || jnum(r, "gap_ms") != gap)
				continue;
			baseline_ratio(doc, r, ratio, sizeof(ratio));
			jci(r, "rtt_ns.p50", &c);
			pm(&c, p, sizeof(p));
			series_name(r, name, sizeof(name));
			fprintf(f, "%-36s %9.2f %9.2f %5s %9.2f %9.2f %9.2f %8s  %s%s%s", name,
				jnum2(r, "rtt_ns", "min") / 1e3, c.med / 1e3, p, jnum2(r, "rtt_ns", "p99") / 1e3,
				jnum2(r, "rtt_ns", "p999") / 1e3, jnum2(r, "rtt_ns", "max") / 1e3, ratio,
				jstr(r, "tuning"), jstable(r) || c.n < 2 ? "" : "  unstable",
				jnum(r, "errors") > 0 ? "  ERRORS" : "");
			if (jnum(r, "lost") > 0)
				fprintf(f, "  (%.0f lost)", jnum(r, "lost"));
			fputc('\n', f);
		}
	}
}

static void tput_block(json_t *doc, FILE *f)
{
	double sz[32];
	char name[96], s[32], p[16], ratio[16];
	int ns = doc_sizes(doc, "throughput", 0, sz, 32);
	int rounds = (int)jnum(json_object_get(doc, "config"), "rounds");
	for (int k = 0; k < ns; k++) {
		size_t i;
		json_t *r;
		fmt_size(sz[k], SZ_LONG, s, sizeof(s));
		fprintf(f, "\nThroughput, %s messages, every backend: one-way stream, median of %d rounds\n",
			s, rounds);
		fprintf(f, "%-36s %11s %5s %10s %10s %10s %6s %8s  %s\n", "row", "msg/s", "±", "MiB/s",
			"cpu ns/msg", "(recv)", "batch", "msg/raw", "tuning");
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			struct ci c;
			if (strcmp(jstr(r, "mode"), "throughput") || jnum(r, "size") != sz[k])
				continue;
			baseline_ratio(doc, r, ratio, sizeof(ratio));
			jci(r, "msgs_per_s", &c);
			pm(&c, p, sizeof(p));
			series_name(r, name, sizeof(name));
			fprintf(f, "%-36s %11.0f %5s %10.1f %10.0f %10.0f %6.0f %8s  %s%s%s", name, c.med, p,
				jnum(r, "bytes_per_s") / 1048576.0, jnum2(r, "cpu_ns_per_msg", "sender"),
				jnum2(r, "cpu_ns_per_msg", "receiver"), jnum(r, "batch"), ratio, jstr(r, "tuning"),
				jstable(r) || c.n < 2 ? "" : "  unstable", jnum(r, "errors") > 0 ? "  ERRORS" : "");
			if (jnum(r, "lost") > 0)
				fprintf(f, "  (%.0f of %.0f lost)", jnum(r, "lost"), jnum(r, "sent"));
			fputc('\n', f);
		}
	}
}

void print_table(json_t *doc, FILE *f)
{
	json_t *sk = json_object_get(doc, "skipped"), *r;
	json_t *gaps = json_object_get(json_object_get(doc, "config"), "gaps_ms");
	size_t i;
	char s[32];
	lat_block(doc, f, "latency", 0);
	tput_block(doc, f);
	json_array_foreach(gaps, i, r)
		lat_block(doc, f, "gap", json_number_value(r));
	if (json_array_size(sk)) {
		fprintf(f, "\nNot measured:\n");
		json_array_foreach(sk, i, r)
			fprintf(f, "  %s %s%s%s %s: %s\n", jstr(r, "backend"), jstr(r, "impl"),
				*jstr(r, "variant") ? " " : "", jstr(r, "variant"),
				fmt_size(jnum(r, "size"), SZ_LONG, s, sizeof(s)), jstr(r, "reason"));
	}
	int n = 0, stable = 0;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		n++;
		stable += jstable(r);
	}
	json_t *c = json_object_get(doc, "config");
	fprintf(f, "\n%d rounds per row; %d of %d rows stable (95%% interval, by order statistics with "
		   "%.1f%% coverage, within 10%% of the median).\n", (int)jnum(c, "rounds"), stable, n,
		100 * jnum2(c, "ci95", "coverage"));
	json_t *w = json_object_get(json_object_get(json_object_get(doc, "machine"), "noise"), "warnings");
	if (json_array_size(w)) {
		fprintf(f, "\nWarning: these results may be unreliable:\n");
		json_array_foreach(w, i, r)
			fprintf(f, "  - %s\n", json_string_value(r));
	}
	if ((int)jnum(c, "rounds") < 2)
		fprintf(f, "\nOne round per row: no intervals, so no row can be called stable.\n");
	else if (n && stable * 4 < n * 3)
		fprintf(f, "%sWarning: %d of %d rows did not reach a stable result: their rounds "
			   "disagreed by more than 10%%. Run again on a quieter machine or with more "
			   "--rounds before trusting differences below that.\n",
			json_array_size(w) ? "" : "\n", n - stable, n);
}
