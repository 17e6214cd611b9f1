/* out.c - results.json, CSV and the terminal table. */
#include "out.h"

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

void series_name(json_t *row, char *buf, size_t cap)
{
	const char *v = jstr(row, "variant");
	if (!strcmp(jstr(row, "backend"), "shm") && !strcmp(jstr(row, "impl"), "ipckit"))
		snprintf(buf, cap, "shm ipckit%s%s wait=%s", *v ? " " : "", v, jstr(row, "wait"));
	else
		snprintf(buf, cap, "%s %s%s%s", jstr(row, "backend"), jstr(row, "impl"), *v ? " " : "", v);
	if (jnum(row, "pairs") > 1) {
		size_t l = strlen(buf);
		snprintf(buf + l, cap - l, " x%d", (int)jnum(row, "pairs"));
	}
}

json_t *baseline_of(json_t *doc, json_t *row)
{
	const char *impl = jstr(row, "impl"), *be = jstr(row, "backend"), *variant = "";
	if (!strcmp(impl, "raw"))
		return NULL;
	if (!strcmp(impl, "ipckit")) {
		if (!strcmp(be, "shm"))
			variant = !strcmp(jstr(row, "wait"), "block") ? "eventfd" : "spin";
	} else if (!strcmp(be, "ipc")) {
		be = "unix";
	}
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		if (!strcmp(jstr(r, "impl"), "raw") && !strcmp(jstr(r, "backend"), be) &&
		    !strcmp(jstr(r, "variant"), variant) && !strcmp(jstr(r, "mode"), jstr(row, "mode")) &&
		    jnum(r, "size") == jnum(row, "size") && jnum(r, "pairs") == jnum(row, "pairs"))
			return r;
	}
	return NULL;
}

static void cpu_model(char *buf, size_t cap)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[512];
	snprintf(buf, cap, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':');
		if (c && !strncmp(line, "model name", 10)) {
			c++;
			while (*c == ' ')
				c++;
			c[strcspn(c, "\n")] = 0;
			snprintf(buf, cap, "%s", c);
			break;
		}
	}
	fclose(f);
}

static json_t *row_json(const struct row *w)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I}",
			      "backend", w->backend, "impl", w->impl,
			      "mode", w->mode == MODE_LATENCY ? "latency" : "throughput",
			      "size", (json_int_t)w->size, "wait", w->wait,
			      "count", (json_int_t)w->count, "errors", (json_int_t)w->errors);
	if (!o)
		return NULL;
	if (w->variant[0])
		json_object_set_new(o, "variant", json_string(w->variant));
	if (w->pairs > 1)
		json_object_set_new(o, "pairs", json_integer(w->pairs));
	if (!strcmp(w->backend, "udp"))
		json_object_set_new(o, "lost", json_integer((json_int_t)w->lost));
	if (w->mode == MODE_LATENCY) {
		const hist *h = &w->h;
		json_object_set_new(o, "rtt_ns", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"min", (json_int_t)hist_percentile(h, 0),
			"p50", (json_int_t)hist_percentile(h, 50),
			"p90", (json_int_t)hist_percentile(h, 90),
			"p99", (json_int_t)hist_percentile(h, 99),
			"p999", (json_int_t)hist_percentile(h, 99.9),
			"max", (json_int_t)hist_percentile(h, 100),
			"mean", (json_int_t)(hist_mean(h) + 0.5)));
		if (w->rate > 0)
			json_object_set_new(o, "rate", json_real(w->rate));
	} else {
		json_object_set_new(o, "msgs_per_s", json_real(w->msgs_per_s));
		json_object_set_new(o, "bytes_per_s", json_real(w->bytes_per_s));
		json_object_set_new(o, "cpu_ns_per_msg", json_pack("{s:f, s:f}",
			"sender", w->cpu_ns[0], "receiver", w->cpu_ns[1]));
		json_object_set_new(o, "ctx_switches", json_pack("{s:I, s:I}",
			"sender", (json_int_t)w->ctx[0], "receiver", (json_int_t)w->ctx[1]));
		json_object_set_new(o, "sent", json_integer((json_int_t)w->sent));
		json_object_set_new(o, "elapsed_s", json_real(w->elapsed_s));
		json_object_set_new(o, "batch", json_integer(w->batch));
	}
	return o;
}

json_t *results_json(const struct row *rows, int n, const struct skip *skips, int nskip,
		     const struct run_info *ri)
{
	const struct bench_opts *o = ri->o;
	char cpu[256], kernel[512], compiler[512], date[64];
	struct utsname u;
	time_t t = time(NULL);
	struct tm tm;

	cpu_model(cpu, sizeof(cpu));
	if (uname(&u) == 0)
		snprintf(kernel, sizeof(kernel), "%s %s %s %s", u.sysname, u.release, u.version, u.machine);
	else
		snprintf(kernel, sizeof(kernel), "unknown");
#ifdef __VERSION__
	snprintf(compiler, sizeof(compiler), "%s %s; %s",
#ifdef __clang__
		 "clang",
#else
		 "gcc",
#endif
		 __VERSION__, BENCH_BUILD_FLAGS);
#else
	snprintf(compiler, sizeof(compiler), "unknown; %s", BENCH_BUILD_FLAGS);
#endif
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);

	json_t *pin = o->pin[0] < 0 ? json_null() : json_pack("[i, i]", o->pin[0], o->pin[1]);
	json_t *doc = json_pack("{s:s, s:{s:s, s:i, s:s, s:s, s:o, s:s}, "
				"s:{s:I, s:I, s:f, s:s, s:s, s:f, s:i, s:i, s:i, s:f, s:b}}",
		"ipckit_version", ipc_version(),
		"machine", "cpu", cpu, "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN), "kernel", kernel,
		"compiler", compiler, "pin", pin, "date", date,
		"config", "count", (json_int_t)o->count, "warmup", (json_int_t)o->warmup,
		"duration_s", o->duration, "wait", ri->waits, "sizes", ri->sizes,
		"latency_cap_s", o->lat_cap, "rounds", o->rounds, "batch", o->batch,
		"pairs", o->pairs, "rate", o->rate, "count_mode", (int)o->count_set);
	if (!doc)
		return NULL;
	json_t *res = json_array(), *sk = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(res, row_json(&rows[i]));
	for (int i = 0; i < nskip; i++) {
		json_t *s = json_pack("{s:s, s:s, s:I, s:s}", "backend", skips[i].backend,
				      "impl", skips[i].impl, "size", (json_int_t)skips[i].size,
				      "reason", skips[i].reason);
		if (skips[i].variant[0])
			json_object_set_new(s, "variant", json_string(skips[i].variant));
		json_array_append_new(sk, s);
	}
	json_object_set_new(json_object_get(doc, "machine"), "load_avg",
			    json_pack("[f, f]", ri->load[0], ri->load[1]));
	json_object_set_new(doc, "results", res);
	json_object_set_new(doc, "skipped", sk);
	json_object_set_new(doc, "backends", ri->backends ? ri->backends : json_object());
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
	fprintf(f, "backend,impl,variant,mode,size,wait,pairs,count,errors,lost,"
		   "rtt_min_ns,rtt_p50_ns,rtt_p90_ns,rtt_p99_ns,rtt_p999_ns,rtt_max_ns,rtt_mean_ns,"
		   "msgs_per_s,bytes_per_s,cpu_ns_sender,cpu_ns_receiver,ctx_sender,ctx_receiver\n");
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		int pairs = jnum(r, "pairs") > 1 ? (int)jnum(r, "pairs") : 1;
		fprintf(f, "%s,%s,%s,%s,%.0f,%s,%d,%.0f,%.0f,%.0f,", jstr(r, "backend"), jstr(r, "impl"),
			jstr(r, "variant"), jstr(r, "mode"), jnum(r, "size"), jstr(r, "wait"), pairs,
			jnum(r, "count"), jnum(r, "errors"), jnum(r, "lost"));
		if (!strcmp(jstr(r, "mode"), "latency"))
			fprintf(f, "%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,,,,,,\n",
				jnum2(r, "rtt_ns", "min"), jnum2(r, "rtt_ns", "p50"), jnum2(r, "rtt_ns", "p90"),
				jnum2(r, "rtt_ns", "p99"), jnum2(r, "rtt_ns", "p999"), jnum2(r, "rtt_ns", "max"),
				jnum2(r, "rtt_ns", "mean"));
		else
			fprintf(f, ",,,,,,,%.1f,%.1f,%.1f,%.1f,%.0f,%.0f\n", jnum(r, "msgs_per_s"),
				jnum(r, "bytes_per_s"), jnum2(r, "cpu_ns_per_msg", "sender"),
				jnum2(r, "cpu_ns_per_msg", "receiver"), jnum2(r, "ctx_switches", "sender"),
				jnum2(r, "ctx_switches", "receiver"));
	}
	return fclose(f) ? -errno : 0;
}

static void size_str(double size, char *buf, size_t cap)
{
	unsigned long s = (unsigned long)size;
	if (s >= (1ul << 20) && s % (1ul << 20) == 0)
		snprintf(buf, cap, "%luM", s >> 20);
	else if (s >= 1024 && s % 1024 == 0)
		snprintf(buf, cap, "%luK", s >> 10);
	else
		snprintf(buf, cap, "%lu", s);
}

void print_table(json_t *doc, FILE *f)
{
	json_t *res = json_object_get(doc, "results"), *r;
	size_t i;
	char name[64], sz[32];
	int any = 0;

	json_array_foreach(res, i, r) {
		if (strcmp(jstr(r, "mode"), "latency"))
			continue;
		if (!any++)
			fprintf(f, "\nLatency: round trip (RTT) in microseconds%s\n"
				   "%-34s %5s %9s %9s %9s %9s %9s %9s %9s %8s\n",
				jnum(r, "rate") > 0 ? ", open loop (from the scheduled send time)" : "",
				"row", "size", "min", "p50", "p90", "p99", "p99.9", "max", "mean", "p50/raw");
		json_t *b = baseline_of(doc, r);
		char ratio[16] = "";
		if (b && jnum2(b, "rtt_ns", "p50") > 0)
			fmt_ratio(jnum2(r, "rtt_ns", "p50") / jnum2(b, "rtt_ns", "p50"), ratio, sizeof(ratio));
		series_name(r, name, sizeof(name));
		size_str(jnum(r, "size"), sz, sizeof(sz));
		fprintf(f, "%-34s %5s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %8s%s\n", name, sz,
			jnum2(r, "rtt_ns", "min") / 1e3, jnum2(r, "rtt_ns", "p50") / 1e3,
			jnum2(r, "rtt_ns", "p90") / 1e3, jnum2(r, "rtt_ns", "p99") / 1e3,
			jnum2(r, "rtt_ns", "p999") / 1e3, jnum2(r, "rtt_ns", "max") / 1e3,
			jnum2(r, "rtt_ns", "mean") / 1e3, ratio,
			jnum(r, "errors") > 0 ? "  ERRORS" : "");
	}
	any = 0;
	json_array_foreach(res, i, r) {
		if (strcmp(jstr(r, "mode"), "throughput"))
			continue;
		if (!any++)
			fprintf(f, "\nThroughput: one-way stream\n"
				   "%-34s %5s %11s %10s %10s %10s %9s %9s %8s\n",
				"row", "size", "msg/s", "MiB/s", "cpu ns/msg", "(recv)", "ctxsw", "(recv)", "msg/raw");
		json_t *b = baseline_of(doc, r);
		char ratio[16] = "";
		if (b && jnum(b, "msgs_per_s") > 0)
			fmt_ratio(jnum(r, "msgs_per_s") / jnum(b, "msgs_per_s"), ratio, sizeof(ratio));
		series_name(r, name, sizeof(name));
		size_str(jnum(r, "size"), sz, sizeof(sz));
		fprintf(f, "%-34s %5s %11.0f %10.1f %10.0f %10.0f %9.0f %9.0f %8s%s", name, sz,
			jnum(r, "msgs_per_s"), jnum(r, "bytes_per_s") / 1048576.0,
			jnum2(r, "cpu_ns_per_msg", "sender"), jnum2(r, "cpu_ns_per_msg", "receiver"),
			jnum2(r, "ctx_switches", "sender"), jnum2(r, "ctx_switches", "receiver"), ratio,
			jnum(r, "errors") > 0 ? "  ERRORS" : "");
		if (jnum(r, "lost") > 0)
			fprintf(f, "  (%.0f of %.0f lost)", jnum(r, "lost"), jnum(r, "sent"));
		fputc('\n', f);
	}
	json_t *sk = json_object_get(doc, "skipped");
	if (json_array_size(sk)) {
		fprintf(f, "\nNot measured:\n");
		json_array_foreach(sk, i, r) {
			size_str(jnum(r, "size"), sz, sizeof(sz));
			fprintf(f, "  %s %s%s%s %s: %s\n", jstr(r, "backend"), jstr(r, "impl"),
				*jstr(r, "variant") ? " " : "", jstr(r, "variant"), sz, jstr(r, "reason"));
		}
	}
}

const char *fmt_ratio(double x, char *buf, size_t cap)
{
	snprintf(buf, cap, x < 0.1 ? "%.3gx" : "%.2fx", x);
	return buf;
}
