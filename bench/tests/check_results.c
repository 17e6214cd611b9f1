/*
 * check_results.c - check a results.json against the schema of docs/benchmarking.md
 * (with jansson), then what a test asks of it:
 *
 *   check_results FILE [--rounds N] [--gap MS] [--memcpy] [--errors]
 *                      [--remote] [--threads] [--min-p50-us BACKEND=US] [--lost BACKEND]
 *
 * --memcpy: no row moves more bytes per second than memcpy on both pinned
 * CPUs at once, measured in the same run at its size, and there is a zero-copy row wherever a backend
 * has the zero_copy cap. --errors: some row has integrity errors. Exit 0
 * when all holds, 1 with the reasons otherwise.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "check_results: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	fails++;
}

static json_t *need(json_t *o, const char *key, json_type t, const char *where)
{
	json_t *v = json_object_get(o, key);
	bool ok = v && (json_typeof(v) == t || (t == JSON_REAL && json_is_number(v)) ||
			(t == JSON_TRUE && json_is_boolean(v)));
	if (!ok)
		fail("%s: \"%s\" missing or of the wrong type", where, key);
	return ok ? v : NULL;
}

static double num(json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static void check_ci(json_t *r, const char *where, const char *const *keys, int nk)
{
	json_t *ci = need(r, "ci95", JSON_OBJECT, where), *vals = need(r, "round_values", JSON_OBJECT, where);
	int rounds = (int)num(r, "rounds");
	for (int k = 0; ci && vals && k < nk; k++) {
		json_t *iv = json_object_get(ci, keys[k]), *v = json_object_get(vals, keys[k]);
		if (rounds > 1 && (json_array_size(iv) != 2 ||
				   json_number_value(json_array_get(iv, 0)) > json_number_value(json_array_get(iv, 1))))
			fail("%s: ci95[%s] is not [lo, hi]", where, keys[k]);
		if ((int)json_array_size(v) != rounds)
			fail("%s: round_values[%s] has %zu values for %d rounds", where, keys[k],
			     json_array_size(v), rounds);
	}
}

static void check_row(json_t *r, int i)
{
	static const char *const lat[] = { "rtt_ns.p50", "rtt_ns.p90", "rtt_ns.p99", "rtt_ns.p999", "rtt_ns.mean" };
	static const char *const tput[] = { "msgs_per_s", "bytes_per_s", "cpu_ns_per_msg.sender",
					    "cpu_ns_per_msg.receiver" };
	char where[96];
	snprintf(where, sizeof(where), "results[%d] (%s %s %s)", i, str(r, "backend"), str(r, "impl"),
		 str(r, "mode"));
	need(r, "backend", JSON_STRING, where);
	need(r, "impl", JSON_STRING, where);
	need(r, "wait", JSON_STRING, where);
	need(r, "size", JSON_INTEGER, where);
	need(r, "count", JSON_INTEGER, where);
	need(r, "errors", JSON_INTEGER, where);
	need(r, "rounds", JSON_INTEGER, where);
	need(r, "stable", JSON_TRUE, where);
	const char *mode = str(r, "mode");
	if (!strcmp(mode, "throughput")) {
		need(r, "msgs_per_s", JSON_REAL, where);
		need(r, "bytes_per_s", JSON_REAL, where);
		json_t *c = need(r, "cpu_ns_per_msg", JSON_OBJECT, where);
		json_t *x = need(r, "ctx_switches", JSON_OBJECT, where);
		if (c && (!json_is_number(json_object_get(c, "sender")) || !json_is_number(json_object_get(c, "receiver"))))
			fail("%s: cpu_ns_per_msg needs sender and receiver", where);
		if (x && (!json_is_integer(json_object_get(x, "sender")) || !json_is_integer(json_object_get(x, "receiver"))))
			fail("%s: ctx_switches needs sender and receiver", where);
		check_ci(r, where, tput, 4);
	} else if (!strcmp(mode, "latency") || !strcmp(mode, "gap")) {
		json_t *t = need(r, "rtt_ns", JSON_OBJECT, where);
		static const char *const f[] = { "min", "p50", "p90", "p99", "p999", "max", "mean" };
		for (int k = 0; t && k < 7; k++)
			if (!json_is_integer(json_object_get(t, f[k])))
				fail("%s: rtt_ns.%s missing", where, f[k]);
		if (t && !(num(t, "min") <= num(t, "p50") && num(t, "p50") <= num(t, "max")))
			fail("%s: rtt_ns not ordered (min <= p50 <= max)", where);
		if (!strcmp(mode, "gap"))
			need(r, "gap_ms", JSON_REAL, where);
		check_ci(r, where, lat, 5);
	} else {
		fail("%s: unknown mode \"%s\"", where, mode);
	}
}

int main(int argc, char **argv)
{
	json_error_t err;
	if (argc < 2) {
		fprintf(stderr, "usage: check_results FILE [checks]\n");
		return 2;
	}
	json_t *doc = json_load_file(argv[1], 0, &err);
	if (!doc) {
		fprintf(stderr, "check_results: %s: %s\n", argv[1], err.text);
		return 1;
	}
	need(doc, "ipckit_version", JSON_STRING, "document");
	json_t *m = need(doc, "machine", JSON_OBJECT, "document");
	json_t *c = need(doc, "config", JSON_OBJECT, "document");
	json_t *res = need(doc, "results", JSON_ARRAY, "document");
	json_t *be = need(doc, "backends", JSON_OBJECT, "document");
	if (m) {
		need(m, "cpu", JSON_STRING, "machine");
		need(m, "cpus", JSON_INTEGER, "machine");
		need(m, "kernel", JSON_STRING, "machine");
		need(m, "compiler", JSON_STRING, "machine");
		need(m, "date", JSON_STRING, "machine");
		if (!json_object_get(m, "pin"))
			fail("machine: \"pin\" missing");
		json_t *n = need(m, "noise", JSON_OBJECT, "machine");
		if (n) {
			need(n, "before", JSON_OBJECT, "machine.noise");
			need(n, "after", JSON_OBJECT, "machine.noise");
			need(n, "warnings", JSON_ARRAY, "machine.noise");
		}
		need(m, "costs", JSON_OBJECT, "machine");
	}
	if (c) {
		static const char *const keys[] = { "count", "warmup", "rounds" };
		for (int k = 0; k < 3; k++)
			need(c, keys[k], JSON_INTEGER, "config");
		need(c, "duration_s", JSON_REAL, "config");
		need(c, "wait", JSON_STRING, "config");
	}
	size_t i;
	json_t *r;
	json_array_foreach(res, i, r)
		check_row(r, (int)i);
	if (!json_array_size(res))
		fail("no rows");

	for (int a = 2; a < argc; a++) {
		const char *o = argv[a], *v = a + 1 < argc ? argv[a + 1] : "";
		if (!strcmp(o, "--rounds")) {
			a++;
			json_array_foreach(res, i, r)
				if ((int)num(r, "rounds") != atoi(v))
					fail("results[%zu]: %d rounds, want %s", i, (int)num(r, "rounds"), v);
			if ((int)num(c, "rounds") != atoi(v))
				fail("config.rounds is not %s", v);
		} else if (!strcmp(o, "--gap")) {
			a++;
			int k = 0;
			json_array_foreach(res, i, r)
				k += !strcmp(str(r, "mode"), "gap") && num(r, "gap_ms") == atof(v) && num(r, "count") > 0;
			if (!k)
				fail("no idle-gap row at %s ms", v);
		} else if (!strcmp(o, "--memcpy")) {
			/* The bound is memcpy on both pinned CPUs at once: a row's sender
			 * and receiver run in parallel, but between them every byte is
			 * written once and read once, one memcpy's worth of traffic. */
			json_t *costs = json_object_get(m, "costs");
			json_t *mc = json_object_get(costs, "memcpy_2cpu_bytes_per_s");
			if (!json_object_size(mc))
				mc = json_object_get(costs, "memcpy_bytes_per_s");
			int zc = 0;
			json_array_foreach(res, i, r) {
				char key[32];
				if (strcmp(str(r, "mode"), "throughput"))
					continue;
				snprintf(key, sizeof(key), "%.0f", num(r, "size"));
				double limit = json_number_value(json_object_get(mc, key));
				if (!(limit > 0))
					fail("no memcpy figure for size %s", key);
				else if (num(r, "bytes_per_s") >= limit)
					fail("results[%zu] (%s %s %s, %s B): %.0f bytes/s, more than memcpy's %.0f", i,
					     str(r, "backend"), str(r, "impl"), str(r, "variant"), key,
					     num(r, "bytes_per_s"), limit);
				zc += !strcmp(str(r, "variant"), "zerocopy");
			}
			const char *name;
			json_t *b;
			bool any = false;
			json_object_foreach(be, name, b) {
				size_t k;
				json_t *cap;
				json_array_foreach(json_object_get(b, "caps"), k, cap)
					any |= !strcmp(json_string_value(cap), "zero_copy");
			}
			if (any && !zc)
				fail("a backend has zero_copy but no zero-copy throughput row was measured");
		} else if (!strcmp(o, "--errors")) {
			double e = 0;
			json_array_foreach(res, i, r)
				e += num(r, "errors");
			if (e == 0)
				fail("no row counted an integrity error");
		} else if (!strcmp(o, "--remote")) {
			if (!json_object_get(m, "remote"))
				fail("machine.remote missing");
			json_array_foreach(res, i, r)
				if (!json_is_true(json_object_get(r, "remote")))
					fail("results[%zu] is not marked remote", i);
		} else if (!strcmp(o, "--threads")) {
			json_array_foreach(res, i, r)
				if (!json_is_true(json_object_get(r, "threads")))
					fail("results[%zu] is not marked threads", i);
		} else if (!strcmp(o, "--min-p50-us") || !strcmp(o, "--lost")) {
			char b2[64];
			double us = 0;
			a++;
			snprintf(b2, sizeof(b2), "%s", v);
			char *eq = strchr(b2, '=');
			if (eq) {
				*eq = 0;
				us = atof(eq + 1);
			}
			int k = 0;
			json_array_foreach(res, i, r) {
				if (strcmp(str(r, "backend"), b2) || strcmp(str(r, "impl"), "ipckit"))
					continue;
				if (!strcmp(o, "--lost")) {
					k += num(r, "lost") > 0;
				} else if (!strcmp(str(r, "mode"), "latency")) {
					k++;
					if (json_number_value(json_object_get(json_object_get(r, "rtt_ns"), "p50")) < us * 1e3)
						fail("%s latency p50 below %g us", b2, us);
				}
			}
			if (!k)
				fail("%s: no ipckit row %s", b2, !strcmp(o, "--lost") ? "lost anything" : "with latency");
		} else {
			fail("unknown check %s", o);
		}
	}
	json_decref(doc);
	if (fails)
		fprintf(stderr, "check_results: %s: %d problem(s)\n", argv[1], fails);
	return fails ? 1 : 0;
}
