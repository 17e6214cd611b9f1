/*
 * report/tables.c - the evidence under the answer: the machine and how it
 * behaved, key ratios, one table per mode and size (each headed by the size
 * and "every backend" it shows), what was not measured, and several
 * machines side by side.
 */
#include "report.h"
#include "../fmt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void machine_block(FILE *f, json_t *doc, const char *name)
{
	json_t *m = json_object_get(doc, "machine"), *c = json_object_get(doc, "config");
	json_t *pin = json_object_get(m, "pin"), *noise = json_object_get(m, "noise");
	json_t *costs = json_object_get(m, "costs"), *rem = json_object_get(m, "remote");
	char pins[48] = "none";
	if (json_array_size(pin) == 2)
		snprintf(pins, sizeof(pins), "CPUs %d and %d", (int)json_integer_value(json_array_get(pin, 0)),
			 (int)json_integer_value(json_array_get(pin, 1)));
	fprintf(f, "- Machine: %s; %s, %d CPUs\n- Kernel: %s\n- Compiler: %s\n- Pinning: %s\n"
		   "- Date: %s; ipckit %s; run took %.0f s\n"
		   "- Config: %d rounds per row; per row at most %.0f latency samples (%.2f s cap), %.0f "
		   "warm-up; throughput %s; ipc_sendv batch %.0f; wait %s; turn order seed %.0f\n",
		name, jstr(m, "cpu"), (int)jnum(m, "cpus"), jstr(m, "kernel"), jstr(m, "compiler"), pins,
		jstr(m, "date"), jstr(doc, "ipckit_version"), jnum(doc, "total_s"), (int)jnum(c, "rounds"),
		jnum(c, "count"), jnum(c, "latency_cap_s"), jnum(c, "warmup"),
		json_is_true(json_object_get(c, "count_mode")) ? "fixed count" : "fixed duration",
		jnum(c, "batch"), jstr(c, "wait"), jnum(c, "seed"));
	if (rem)
		fprintf(f, "- Cross-host: the echo side ran on %s (%s)\n", jstr(rem, "url"), jstr(rem, "machine"));
	if (noise) {
		json_t *b = json_object_get(noise, "before"), *a = json_object_get(noise, "after");
		fprintf(f, "- Before / after the run: load average %.2f / %.2f; steal time %.1f%% / %.1f%%; "
			   "governor %s / %s; THP %s; clock source %s (%.0f ns per read)\n",
			jnum(b, "load_avg_1min"), jnum(a, "load_avg_1min"), jnum(b, "steal_pct"),
			jnum(a, "steal_pct"), json_string_value(json_array_get(json_object_get(b, "governor"), 0)),
			json_string_value(json_array_get(json_object_get(a, "governor"), 0)), jstr(b, "thp"),
			jstr(b, "clocksource"), jnum(b, "clock_read_ns"));
		json_t *sib = json_object_get(noise, "smt_siblings");
		if (json_array_size(sib) == 2)
			fprintf(f, "- SMT siblings of the pinned CPUs: %s and %s\n",
				json_string_value(json_array_get(sib, 0)), json_string_value(json_array_get(sib, 1)));
	}
	if (costs) {
		json_t *mc = json_object_get(costs, "memcpy_bytes_per_s"), *v;
		json_t *mc2 = json_object_get(costs, "memcpy_2cpu_bytes_per_s");
		const char *k;
		fprintf(f, "- Integrity: every byte of every message is checked with %s; here it costs "
			   "%.3f ns/byte to write a payload and %.3f ns/byte to check one\n- memcpy here (one CPU%s):",
			jstr(costs, "checksum"), jnum(costs, "fill_ns_per_byte"), jnum(costs, "check_ns_per_byte"),
			json_object_size(mc2) ? " / both pinned CPUs at once" : "");
		json_object_foreach(mc, k, v) {
			char sz[32];
			json_t *v2 = json_object_get(mc2, k);
			fprintf(f, " %s %.0f", fmt_size(atof(k), SZ_LONG, sz, sizeof(sz)),
				json_number_value(v) / 1048576.0);
			if (v2)
				fprintf(f, " / %.0f", json_number_value(v2) / 1048576.0);
			fprintf(f, " MiB/s;");
		}
		fprintf(f, " no row can honestly move more\n");
	}
	fprintf(f, "\n");
}

/* A ratio of two figures with the range their intervals allow. */
static void ratio_row(FILE *f, const char *what, json_t *a, json_t *b, const char *key)
{
	struct ci x, y;
	char r1[32], r2[32], r3[32];
	if (!a || !b)
		return;
	jci(a, key, &x);
	jci(b, key, &y);
	if (y.med <= 0 || y.lo <= 0)
		return;
	bool lat = !strncmp(key, "rtt_ns", 6);
	fprintf(f, "| %s | %.2f %s | %.2f %s | **%s** (%s-%s) |\n", what, lat ? x.med / 1e3 : x.med / 1e6,
		lat ? "us" : "M msg/s", lat ? y.med / 1e3 : y.med / 1e6, lat ? "us" : "M msg/s",
		fmt_ratio(x.med / y.med, r1, sizeof(r1)), fmt_ratio(x.lo / y.hi, r2, sizeof(r2)),
		fmt_ratio(x.hi / y.lo, r3, sizeof(r3)));
}

/* The ipckit row a peer row is compared with: its group's default row. */
static json_t *ipckit_of(json_t *doc, json_t *peer)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r)
		if (!strcmp(jstr(r, "impl"), "ipckit") && !strcmp(jstr(r, "backend"), jgroup(peer)) &&
		    !strcmp(jstr(r, "mode"), jstr(peer, "mode")) && jnum(r, "size") == jnum(peer, "size") &&
		    !*jstr(r, "variant") && !strcmp(jstr(r, "wait"), "adaptive") &&
		    jnum(r, "gap_ms") == jnum(peer, "gap_ms"))
			return r;
	return NULL;
}

void key_ratios(FILE *f, json_t *doc)
{
	double s = pick_size(doc, "latency", false), ts = pick_size(doc, "throughput", false);
	char sz[32], tsz[32], w[160], nm[96], bn[96];
	size_t i;
	json_t *r;
	fmt_size(s, SZ_LONG, sz, sizeof(sz));
	fmt_size(ts, SZ_LONG, tsz, sizeof(tsz));
	fprintf(f, "## Key ratios (same run)\n\nEach ipckit row against the raw system calls it is "
		   "compared with (same tuning, same harness, interleaved in the same rounds), and each "
		   "peer against the ipckit row of its mechanism. Rows that send in ipc_sendv batches "
		   "have no raw ratio (raw rows make one system call per message); their `send` rows "
		   "do. Latency: RTT p50 at %s; throughput: msg/s at %s. In brackets, the range of the ratio that the two intervals allow.\n\n"
		   "| Ratio | A | B | A/B |\n|---|---|---|---|\n", sz, tsz);
	/* pass 0: ipckit / its raw baseline; pass 1: the ipckit row of a
	 * peer's mechanism / the peer */
	for (int pass = 0; pass < 2; pass++) {
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			bool lat = !strcmp(jstr(r, "mode"), "latency"), ik = !strcmp(jstr(r, "impl"), "ipckit");
			if (jnum(r, "size") != (lat ? s : ts) || (!lat && strcmp(jstr(r, "mode"), "throughput")) ||
			    (pass == 0 ? !ik : ik || !strcmp(jstr(r, "impl"), "raw")))
				continue;
			json_t *a = pass == 0 ? r : ipckit_of(doc, r), *b = pass == 0 ? baseline_of(doc, r) : r;
			if (!a || !b)
				continue;
			series_name(a, nm, sizeof(nm));
			series_name(b, bn, sizeof(bn));
			/* A peer sends one message per call and batches inside its
			 * library; say so where the ipckit row batches with ipc_sendv. */
			if (row_batch(a) > 1)
				snprintf(nm + strlen(nm), sizeof(nm) - strlen(nm), " (ipc_sendv, %.0f per call)",
					 row_batch(a));
			snprintf(w, sizeof(w), "%s: %s / %s", lat ? "latency" : "throughput", nm, bn);
			ratio_row(f, w, a, b, lat ? "rtt_ns.p50" : "msgs_per_s");
		}
	}
	fprintf(f, "\n");
}


static const char *flag(json_t *r)
{
	return jstable(r) || jnum(r, "rounds") < 2 ? "" : " ~unstable";
}

void lat_tables(FILE *f, json_t *doc, const char *mode, double gap)
{
	double sz[32];
	int ns = doc_sizes(doc, mode, gap, sz, 32);
	for (int k = 0; k < ns; k++) {
		char s[32], name[96], ratio[32];
		size_t i;
		json_t *r;
		fmt_size(sz[k], SZ_LONG, s, sizeof(s));
		if (gap > 0)
			fprintf(f, "\n### Idle-gap latency: %s messages, one every %g ms, every backend\n\n"
				   "Wake-up round trip in microseconds: the receiver had been idle for %g ms.\n\n",
				s, gap, gap);
		else
			fprintf(f, "\n### Latency: %s messages, every backend\n\nRTT in microseconds%s.\n\n", s,
				jnum(json_object_get(doc, "config"), "rate") > 0
				? " (open loop, from the scheduled send time)" : "");
		fprintf(f, "| Row (%s) | min | p50 [95%% interval] | p90 | p99 | p99.9 | max | samples | sleeps/msg "
			   "(echo) | p50 vs raw | tuning |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n", s);
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			struct ci c;
			if (strcmp(jstr(r, "mode"), mode) || jnum(r, "size") != sz[k] || jnum(r, "gap_ms") != gap)
				continue;
			baseline_ratio(doc, r, ratio, sizeof(ratio));
			jci(r, "rtt_ns.p50", &c);
			series_name(r, name, sizeof(name));
			fprintf(f, "| %s%s | %.2f | %.2f [%.2f-%.2f] | %.2f | %.2f | %.2f | %.2f | %.0f | %.2f | %s | %s |\n",
				name, flag(r), jnum2(r, "rtt_ns", "min") / 1e3, c.med / 1e3, c.lo / 1e3, c.hi / 1e3,
				jnum2(r, "rtt_ns", "p90") / 1e3, jnum2(r, "rtt_ns", "p99") / 1e3,
				jnum2(r, "rtt_ns", "p999") / 1e3, jnum2(r, "rtt_ns", "max") / 1e3, jnum(r, "count"),
				jnum2(r, "vcsw_per_msg", "echo"), ratio, jstr(r, "tuning"));
		}
	}
	fprintf(f, "\n");
}

void tput_tables(FILE *f, json_t *doc)
{
	double sz[32];
	int ns = doc_sizes(doc, "throughput", 0, sz, 32);
	for (int k = 0; k < ns; k++) {
		char s[32], name[96], ratio[32], lost[64];
		size_t i;
		json_t *r;
		fmt_size(sz[k], SZ_LONG, s, sizeof(s));
		fprintf(f, "\n### Throughput: %s messages, every backend\n\n"
			   "| Row (%s) | msg/s [95%% interval] | MiB/s | CPU ns/msg sender | receiver | ctx switches "
			   "sender | receiver | batch | msg/s vs raw | tuning |\n"
			   "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n", s, s);
		json_array_foreach(json_object_get(doc, "results"), i, r) {
			struct ci c;
			if (strcmp(jstr(r, "mode"), "throughput") || jnum(r, "size") != sz[k])
				continue;
			lost[0] = 0;
			baseline_ratio(doc, r, ratio, sizeof(ratio));
			if (jnum(r, "lost") > 0 && jnum(r, "sent") > 0)
				snprintf(lost, sizeof(lost), " (%.1f%% lost)", 100 * jnum(r, "lost") / jnum(r, "sent"));
			jci(r, "msgs_per_s", &c);
			series_name(r, name, sizeof(name));
			fprintf(f, "| %s%s%s | %.0f [%.0f-%.0f] | %.1f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s |\n",
				name, lost, flag(r), c.med, c.lo, c.hi, jnum(r, "bytes_per_s") / 1048576.0,
				jnum2(r, "cpu_ns_per_msg", "sender"), jnum2(r, "cpu_ns_per_msg", "receiver"),
				jnum2(r, "ctx_switches", "sender"), jnum2(r, "ctx_switches", "receiver"),
				jnum(r, "batch") > 0 ? jnum(r, "batch") : 1, ratio, jstr(r, "tuning"));
		}
	}
	fprintf(f, "\n");
}

void skipped_block(FILE *f, json_t *doc)
{
	json_t *sk = json_object_get(doc, "skipped"), *r;
	size_t i;
	char sz[32];
	if (!json_array_size(sk))
		return;
	fprintf(f, "## Not measured\n\n");
	json_array_foreach(sk, i, r)
		fprintf(f, "- %s %s%s%s at %s: %s\n", jstr(r, "backend"), jstr(r, "impl"),
			*jstr(r, "variant") ? " " : "", jstr(r, "variant"),
			fmt_size(jnum(r, "size"), SZ_LONG, sz, sizeof(sz)), jstr(r, "reason"));
	fprintf(f, "\n");
}

static json_t *same_row(json_t *doc, const char *name, const char *mode, double size)
{
	size_t i;
	json_t *r;
	char nm[96];
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		series_name(r, nm, sizeof(nm));
		if (!strcmp(jstr(r, "mode"), mode) && jnum(r, "size") == size && !strcmp(nm, name))
			return r;
	}
	return NULL;
}

/* Several machines: one column per machine for RTT p50 / p99 and MiB/s. */
void side_by_side(FILE *f, json_t **docs, const char **names, int n)
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
				char nm[96], sz[32];
				bool seen = false;
				if (strcmp(jstr(r, "mode"), modes[m]))
					continue;
				series_name(r, nm, sizeof(nm));
				for (int e = 0; e < d && !seen; e++)
					seen = same_row(docs[e], nm, modes[m], jnum(r, "size")) != NULL;
				if (seen)
					continue;
				fprintf(f, "| %s | %s |", nm, fmt_size(jnum(r, "size"), SZ_LONG, sz, sizeof(sz)));
				for (int k = 0; k < n; k++) {
					json_t *q = same_row(docs[k], nm, modes[m], jnum(r, "size"));
					if (!q)
						fprintf(f, " - |");
					else if (m == 0)
						fprintf(f, " %.1f / %.1f |", jnum2(q, "rtt_ns", "p50") / 1e3,
							jnum2(q, "rtt_ns", "p99") / 1e3);
					else
						fprintf(f, " %.1f |", jnum(q, "bytes_per_s") / 1048576.0);
				}
				fprintf(f, "\n");
			}
		}
		fprintf(f, "\n");
	}
}
