/* out.c - results.json, CSV, and the helpers that read a results document. */
#include "out.h"
#include "fmt.h"
#include "machine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_BUILD_FLAGS
#define BENCH_BUILD_FLAGS ""
#endif

const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

double jnum(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

double jnum2(json_t *o, const char *key, const char *sub)
{
	return json_number_value(json_object_get(json_object_get(o, key), sub));
}

double jfig(json_t *row, const char *key)
{
	char k[64];
	const char *dot = strchr(key, '.');
	if (!dot)
		return jnum(row, key);
	snprintf(k, sizeof(k), "%.*s", (int)(dot - key), key);
	return jnum2(row, k, dot + 1);
}

void jci(json_t *row, const char *key, struct ci *c)
{
	json_t *iv = json_object_get(json_object_get(row, "ci95"), key);
	c->med = jfig(row, key);
	c->n = (int)jnum(row, "rounds");
	if (json_array_size(iv) == 2) {
		c->lo = json_number_value(json_array_get(iv, 0));
		c->hi = json_number_value(json_array_get(iv, 1));
	} else {
		c->lo = c->hi = c->med;
		c->n = 1;
	}
}

const char *headline_key(json_t *row)
{
	return strcmp(jstr(row, "mode"), "throughput") ? "rtt_ns.p50" : "msgs_per_s";
}

bool jstable(json_t *row)
{
	return json_is_true(json_object_get(row, "stable"));
}

void series_name(json_t *row, char *buf, size_t cap)
{
	int pairs = jnum(row, "pairs") > 1 ? (int)jnum(row, "pairs") : 1;
	series_label(buf, cap, jstr(row, "backend"), jstr(row, "impl"), jstr(row, "variant"),
		     jstr(row, "wait"), json_is_true(json_object_get(row, "threads")), pairs);
}

double row_batch(json_t *row)
{
	return jnum(row, "batch") > 1 ? jnum(row, "batch") : 1;
}

json_t *baseline_of(json_t *doc, json_t *row)
{
	const char *want = jstr(row, "baseline");
	char nm[96];
	size_t i;
	json_t *r;
	if (!*want)
		return NULL;
	/* Like for like only: a row that sends in ipc_sendv batches has no raw
	 * counterpart (raw rows make one system call per message), so it gets
	 * no ratio; its `send` variant (one ipc_send per message) has one. */
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (row_batch(r) != row_batch(row))
			continue;
		if (strcmp(jstr(r, "impl"), "raw") || strcmp(jstr(r, "mode"), jstr(row, "mode")) ||
		    jnum(r, "size") != jnum(row, "size") || jnum(r, "gap_ms") != jnum(row, "gap_ms") ||
		    jnum(r, "pairs") != jnum(row, "pairs"))
			continue;
		series_label(nm, sizeof(nm), jstr(r, "backend"), "raw", jstr(r, "variant"), "",
			     json_is_true(json_object_get(r, "threads")), 1);
		if (!strcmp(nm, want))
			return r;
	}
	return NULL;
}

/* Sizes of mode in the order they first appear. */
int doc_sizes(json_t *doc, const char *mode, double gap, double *sz, int max)
{
	size_t i;
	json_t *r;
	int n = 0;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (strcmp(jstr(r, "mode"), mode) || jnum(r, "gap_ms") != gap)
			continue;
		int j;
		for (j = 0; j < n && sz[j] != jnum(r, "size"); j++)
			;
		if (j == n && n < max)
			sz[n++] = jnum(r, "size");
	}
	return n;
}

const char *baseline_ratio(json_t *doc, json_t *row, char *buf, size_t cap)
{
	json_t *b = baseline_of(doc, row);
	const char *key = headline_key(row);
	buf[0] = 0;
	if (b && jfig(b, key) > 0)
		fmt_ratio(jfig(row, key) / jfig(b, key), buf, cap);
	return buf;
}

const char *jgroup(json_t *row)
{
	return *jstr(row, "group") ? jstr(row, "group") : jstr(row, "backend");
}

bool has_cap(json_t *doc, const char *b, const char *cap)
{
	json_t *caps = json_object_get(json_object_get(json_object_get(doc, "backends"), b), "caps");
	size_t i;
	json_t *c;
	bool newer = false;   /* documents from before IPC_CAP_PROCESS list none of these */
	json_array_foreach(caps, i, c) {
		if (!strcmp(json_string_value(c), cap))
			return true;
		newer |= !strcmp(json_string_value(c), "pair") || !strcmp(json_string_value(c), "process");
	}
	return !strcmp(cap, "process") && caps && !newer;
}

/* ---- writing ---- */

static const char *const fig_lat[MAX_FIGS] = { "rtt_ns.p50", "rtt_ns.p90", "rtt_ns.p99", "rtt_ns.p999",
					       "rtt_ns.mean" };
static const char *const fig_tput[3] = { "msgs_per_s", "cpu_ns_per_msg.sender", "cpu_ns_per_msg.receiver" };

/* Per-round values, median and interval of figure f. */
static void add_fig(json_t *o, json_t *ci95, json_t *vals, const struct row *w, int f, const char *key,
		    double scale, struct ci *c)
{
	double v[MAX_ROUNDS];
	json_t *a = json_array();
	for (int r = 0; r < w->rounds; r++) {
		v[r] = w->fig[r][f] * scale;
		json_array_append_new(a, json_real(v[r]));
	}
	ci_of(v, w->rounds, c);
	json_object_set_new(vals, key, a);
	if (w->rounds > 1)
		json_object_set_new(ci95, key, json_pack("[f, f]", c->lo, c->hi));
	(void)o;
}

static json_t *row_json(const struct row *w)
{
	static const char *const modes[] = { [MODE_LATENCY] = "latency", [MODE_THROUGHPUT] = "throughput",
					     [MODE_GAP] = "gap" };
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:i}", "backend", w->backend,
			      "impl", w->impl, "mode", modes[w->mode], "size", (json_int_t)w->size,
			      "wait", w->wait, "count", (json_int_t)w->count, "errors",
			      (json_int_t)w->errors, "group", w->group, "rounds", w->rounds);
	json_t *ci95 = json_object(), *vals = json_object();
	struct ci c[MAX_FIGS];
	if (!o)
		return NULL;
	if (w->variant[0])
		json_object_set_new(o, "variant", json_string(w->variant));
	if (w->baseline[0])
		json_object_set_new(o, "baseline", json_string(w->baseline));
	if (w->tuning[0])
		json_object_set_new(o, "tuning", json_string(w->tuning));
	if (w->pairs > 1)
		json_object_set_new(o, "pairs", json_integer(w->pairs));
	if (w->threads)
		json_object_set_new(o, "threads", json_true());
	if (w->remote)
		json_object_set_new(o, "remote", json_true());
	if (w->lossy)
		json_object_set_new(o, "lost", json_integer((json_int_t)w->lost));
	if (w->mode != MODE_THROUGHPUT) {
		for (int f = 0; f < MAX_FIGS; f++)
			add_fig(o, ci95, vals, w, f, fig_lat[f], 1, &c[f]);
		json_object_set_new(o, "rtt_ns", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"min", (json_int_t)hist_percentile(&w->h, 0), "p50", (json_int_t)(c[0].med + 0.5),
			"p90", (json_int_t)(c[1].med + 0.5), "p99", (json_int_t)(c[2].med + 0.5),
			"p999", (json_int_t)(c[3].med + 0.5), "max", (json_int_t)hist_percentile(&w->h, 100),
			"mean", (json_int_t)(c[4].med + 0.5)));
		double n = w->count ? (double)w->count : 1;
		json_object_set_new(o, "vcsw_per_msg", json_pack("{s:f, s:f}", "pinger",
			(double)w->vcsw[0] / n, "echo", (double)w->vcsw[1] / n));
		if (w->rate > 0)
			json_object_set_new(o, "rate", json_real(w->rate));
		if (w->mode == MODE_GAP)
			json_object_set_new(o, "gap_ms", json_real(w->gap_ms));
	} else {
		for (int f = 0; f < 3; f++)
			add_fig(o, ci95, vals, w, f, fig_tput[f], 1, &c[f]);
		struct ci b;
		add_fig(o, ci95, vals, w, FIG_MSGS, "bytes_per_s", (double)w->size, &b);
		json_object_set_new(o, "msgs_per_s", json_real(c[0].med));
		json_object_set_new(o, "bytes_per_s", json_real(b.med));
		json_object_set_new(o, "cpu_ns_per_msg", json_pack("{s:f, s:f}", "sender", c[1].med,
								    "receiver", c[2].med));
		json_object_set_new(o, "ctx_switches", json_pack("{s:I, s:I}", "sender", (json_int_t)w->ctx[0],
								  "receiver", (json_int_t)w->ctx[1]));
		json_object_set_new(o, "sent", json_integer((json_int_t)w->sent));
		json_object_set_new(o, "elapsed_s", json_real(w->elapsed_s));
		json_object_set_new(o, "batch", json_integer(w->batch));
	}
	json_object_set_new(o, "stable", json_boolean(w->rounds > 1 && ci_stable(&c[0])));
	json_object_set_new(o, "ci95", ci95);
	json_object_set_new(o, "round_values", vals);
	return o;
}

static json_t *backends_json(const struct plan *p)
{
	static const char *const capn[] = { "reliable", "cross_host", "zero_copy", "listen", "unrelated",
					    "pair", "abstract", "process" };
	json_t *o = json_object();
	for (int i = 0; i < p->nbe; i++) {
		if (!p->be[i].ok)
			continue;
		json_t *caps = json_array();
		for (int k = 0; k < 8; k++)
			if (p->be[i].caps & (1u << k))
				json_array_append_new(caps, json_string(capn[k]));
		json_object_set_new(o, p->be[i].name, json_pack("{s:I, s:o}", "max_msg",
			(json_int_t)p->be[i].max_msg, "caps", caps));
	}
	return o;
}

static json_t *machine_json(const struct run_info *ri)
{
	const struct bench_opts *o = ri->o;
	char cpu[256], kernel[512], compiler[512], date[64];
	struct utsname u;
	time_t t = time(NULL);
	struct tm tm;
	machine_cpu_model(cpu, sizeof(cpu));
	if (uname(&u) == 0)
		snprintf(kernel, sizeof(kernel), "%s %s %s %s", u.sysname, u.release, u.version, u.machine);
	else
		snprintf(kernel, sizeof(kernel), "unknown");
#if defined(__clang__)
	snprintf(compiler, sizeof(compiler), "clang %s; %s", __VERSION__, BENCH_BUILD_FLAGS);
#elif defined(__VERSION__)
	snprintf(compiler, sizeof(compiler), "gcc %s; %s", __VERSION__, BENCH_BUILD_FLAGS);
#else
	snprintf(compiler, sizeof(compiler), "unknown; %s", BENCH_BUILD_FLAGS);
#endif
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *pin = o->pin[0] < 0 ? json_null() : json_pack("[i, i]", o->pin[0], o->pin[1]);
	json_t *m = json_pack("{s:s, s:i, s:s, s:s, s:o, s:s}", "cpu", cpu, "cpus",
			      (int)sysconf(_SC_NPROCESSORS_ONLN), "kernel", kernel, "compiler", compiler,
			      "pin", pin, "date", date);
	if (ri->noise) {
		json_t *b = json_object_get(ri->noise, "before"), *a = json_object_get(ri->noise, "after");
		json_object_set_new(m, "load_avg", json_pack("[f, f]", jnum(b, "load_avg_1min"),
							     jnum(a, "load_avg_1min")));
		json_object_set_new(m, "noise", ri->noise);
	}
	if (ri->costs)
		json_object_set_new(m, "costs", ri->costs);
	if (ri->remote)
		json_object_set_new(m, "remote", json_pack("{s:s, s:s}", "url", ri->remote, "machine",
							   ri->remote_machine ? ri->remote_machine : ""));
	return m;
}

json_t *results_json(const struct row *rows, int n, const struct run_info *ri)
{
	const struct bench_opts *o = ri->o;
	json_t *gaps = json_array();
	for (int i = 0; i < o->ngaps; i++)
		json_array_append_new(gaps, json_real(o->gap_ms[i]));
	json_t *doc = json_pack("{s:s, s:o, s:{s:I, s:I, s:f, s:s, s:s, s:f, s:i, s:i, s:i, s:f, s:b, "
				"s:o, s:I, s:I, s:b, s:{s:s, s:f, s:f}}}",
		"ipckit_version", ipc_version(), "machine", machine_json(ri),
		"config", "count", (json_int_t)o->count, "warmup", (json_int_t)o->warmup,
		"duration_s", o->duration, "wait", ri->waits, "sizes", ri->sizes,
		"latency_cap_s", o->lat_cap, "rounds", o->rounds, "batch", o->batch,
		"pairs", o->pairs, "rate", o->rate, "count_mode", (int)o->count_set,
		"gaps_ms", gaps, "gap_count", (json_int_t)o->gap_count, "seed", (json_int_t)o->seed,
		"threads", (int)o->threads,
		"ci95", "method", "order statistics of the per-round values (distribution-free, for the median)",
		"coverage", ci_coverage(o->rounds), "stable_width", STABLE_WIDTH);
	if (!doc)
		return NULL;
	json_t *res = json_array(), *sk = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(res, row_json(&rows[i]));
	for (int i = 0; ri->plan && i < ri->plan->nskips; i++) {
		const struct skip *s = &ri->plan->skips[i];
		json_t *j = json_pack("{s:s, s:s, s:I, s:s}", "backend", s->backend, "impl", s->impl,
				      "size", (json_int_t)s->size, "reason", s->reason);
		if (s->variant[0])
			json_object_set_new(j, "variant", json_string(s->variant));
		json_array_append_new(sk, j);
	}
	json_object_set_new(doc, "results", res);
	json_object_set_new(doc, "skipped", sk);
	json_object_set_new(doc, "backends", ri->plan ? backends_json(ri->plan) : json_object());
	json_object_set_new(doc, "total_s", json_real(ri->total_s));
	json_object_set_new(doc, "failures", json_integer(ri->failures));
	return doc;
}

int write_csv(json_t *doc, const char *path)
{
	FILE *f = fopen(path, "w");
	size_t i;
	json_t *r;
	if (!f)
		return -errno;
	fprintf(f, "backend,impl,variant,mode,size,wait,pairs,gap_ms,count,errors,lost,rounds,stable,"
		   "rtt_min_ns,rtt_p50_ns,rtt_p50_lo,rtt_p50_hi,rtt_p90_ns,rtt_p99_ns,rtt_p999_ns,rtt_max_ns,"
		   "rtt_mean_ns,msgs_per_s,msgs_per_s_lo,msgs_per_s_hi,bytes_per_s,cpu_ns_sender,"
		   "cpu_ns_receiver,ctx_sender,ctx_receiver,tuning\n");
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		struct ci c;
		int pairs = jnum(r, "pairs") > 1 ? (int)jnum(r, "pairs") : 1;
		jci(r, headline_key(r), &c);
		fprintf(f, "%s,%s,%s,%s,%.0f,%s,%d,%g,%.0f,%.0f,%.0f,%.0f,%d,", jstr(r, "backend"),
			jstr(r, "impl"), jstr(r, "variant"), jstr(r, "mode"), jnum(r, "size"), jstr(r, "wait"),
			pairs, jnum(r, "gap_ms"), jnum(r, "count"), jnum(r, "errors"), jnum(r, "lost"),
			jnum(r, "rounds"), jstable(r));
		if (strcmp(jstr(r, "mode"), "throughput"))
			fprintf(f, "%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,,,,,,,,,", jnum2(r, "rtt_ns", "min"),
				c.med, c.lo, c.hi, jnum2(r, "rtt_ns", "p90"), jnum2(r, "rtt_ns", "p99"),
				jnum2(r, "rtt_ns", "p999"), jnum2(r, "rtt_ns", "max"), jnum2(r, "rtt_ns", "mean"));
		else
			fprintf(f, ",,,,,,,,,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.0f,%.0f,", c.med, c.lo, c.hi,
				jnum(r, "bytes_per_s"), jnum2(r, "cpu_ns_per_msg", "sender"),
				jnum2(r, "cpu_ns_per_msg", "receiver"), jnum2(r, "ctx_switches", "sender"),
				jnum2(r, "ctx_switches", "receiver"));
		fprintf(f, "\"%s\"\n", jstr(r, "tuning"));
	}
	return fclose(f) ? -errno : 0;
}
