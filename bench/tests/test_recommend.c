/* test_recommend.c - the recommendation's tie rule and --need ranking on
 * synthetic results. */
#include "../report/report.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static json_t *lat_row(const char *be, const char *wait, double p50, double lo, double hi, int rounds)
{
	json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:b, s:{s:f, s:f, s:f, s:f}, "
			      "s:{s:f, s:f}}",
			      "backend", be, "group", be, "impl", "ipckit", "mode", "latency", "size", 64,
			      "wait", wait, "errors", 0, "rounds", rounds, "stable", hi - lo <= 0.1 * p50,
			      "rtt_ns", "p50", p50, "p90", p50 * 1.2, "p99", p50 * 2, "p999", p50 * 3,
			      "vcsw_per_msg", "pinger", 1.0, "echo", 1.0);
	if (rounds > 1)
		json_object_set_new(r, "ci95", json_pack("{s:[f, f], s:[f, f]}", "rtt_ns.p50", lo, hi,
							 "rtt_ns.p99", 2 * lo, 2 * hi));
	return r;
}

static json_t *tput_row(const char *be, double msgs, double lo, double hi, double cpu)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:i, s:b, s:f, s:f, s:{s:f, s:f}, s:i, "
			 "s:{s:[f, f], s:[f, f], s:[f, f], s:[f, f]}}",
			 "backend", be, "group", be, "impl", "ipckit", "mode", "throughput", "size", 64,
			 "wait", "adaptive", "errors", 0, "rounds", 9, "stable", 1, "msgs_per_s", msgs,
			 "bytes_per_s", msgs * 64, "cpu_ns_per_msg", "sender", cpu, "receiver", cpu, "batch", 1,
			 "ci95", "msgs_per_s", lo, hi, "bytes_per_s", lo * 64, hi * 64,
			 "cpu_ns_per_msg.sender", cpu, cpu, "cpu_ns_per_msg.receiver", cpu, cpu);
}

static json_t *doc_of(json_t *rows)
{
	return json_pack("{s:{s:i, s:{s:f}}, s:{s:{s:[s, s, s, s]}, s:{s:[s, s, s, s]}, s:{s:[s, s, s, s]}}, "
			 "s:o, s:[], s:{}}",
			 "config", "rounds", 9, "ci95", "coverage", 0.961,
			 "backends", "a", "caps", "reliable", "process", "unrelated", "abstract",
			 "b", "caps", "reliable", "process", "unrelated", "abstract",
			 "c", "caps", "reliable", "process", "unrelated", "abstract",
			 "results", rows, "skipped", "machine");
}

static char *recommend_text(json_t *doc)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	recommend(f, doc);
	fclose(f);
	return out;
}

Test(tie_rule, clear_winner)
{
	json_t *rows[2] = { lat_row("a", "adaptive", 10000, 9000, 11000, 9),
			    lat_row("b", "adaptive", 20000, 18000, 22000, 9) };
	struct verdict v;
	decide(rows, 2, "rtt_ns.p50", false, &v);
	cr_assert_eq(v.win, rows[0]);
	cr_assert_eq(v.runner, rows[1]);
	cr_assert(v.clear);
	cr_assert_eq(v.ntie, 0);
	cr_assert_float_eq(v.diff, 1.0, 1e-9);
	json_t *doc = doc_of(json_pack("[o, o]", rows[0], rows[1]));
	char *t = recommend_text(doc);
	cr_assert(strstr(t, "| Lowest small-message latency (RTT p50) | **a ipckit** |"), "%s", t);
	cr_assert(strstr(t, "median of 9 rounds"), "%s", t);
	free(t);
	json_decref(doc);
}

Test(tie_rule, overlapping_intervals_tie_and_say_by_how_much)
{
	json_t *rows[3] = { lat_row("a", "adaptive", 10000, 9000, 12000, 9),
			    lat_row("b", "adaptive", 11000, 10500, 13000, 9),
			    lat_row("c", "adaptive", 30000, 28000, 32000, 9) };
	struct verdict v;
	decide(rows, 3, "rtt_ns.p50", false, &v);
	cr_assert_eq(v.win, rows[0]);
	cr_assert_eq(v.runner, rows[1]);
	cr_assert(!v.clear);
	cr_assert_eq(v.ntie, 1);
	cr_assert_eq(v.tie[0], rows[1]);
	cr_assert_float_eq(v.diff, 0.1, 1e-9);
	json_t *doc = doc_of(json_pack("[o, o, o]", rows[0], rows[1], rows[2]));
	char *t = recommend_text(doc);
	cr_assert(strstr(t, "tie: **a ipckit**, b ipckit |"), "%s", t);
	cr_assert(strstr(t, "(10.0% more); intervals overlap"), "%s", t);
	cr_assert(!strstr(t, "c ipckit |"), "%s", t);
	free(t);
	json_decref(doc);
}

Test(tie_rule, higher_is_better_and_one_round_names_no_clear_winner)
{
	json_t *rows[2] = { tput_row("a", 1e6, 0.9e6, 1.1e6, 100), tput_row("b", 3e6, 2.8e6, 3.2e6, 100) };
	struct verdict v;
	decide(rows, 2, "msgs_per_s", true, &v);
	cr_assert_eq(v.win, rows[1]);
	cr_assert(v.clear);
	json_t *one[2] = { lat_row("a", "adaptive", 10000, 0, 0, 1), lat_row("b", "adaptive", 20000, 0, 0, 1) };
	decide(one, 2, "rtt_ns.p50", false, &v);
	cr_assert_eq(v.win, one[0]);
	cr_assert(!v.clear);
	cr_assert(!v.intervals);
	for (int i = 0; i < 2; i++) {
		json_decref(rows[i]);
		json_decref(one[i]);
	}
}

Test(need, ranks_and_names_what_nothing_met)
{
	json_t *doc = doc_of(json_pack("[o, o, o, o]", lat_row("a", "adaptive", 10000, 9000, 11000, 9),
				       lat_row("b", "adaptive", 40000, 38000, 42000, 9),
				       tput_row("a", 1e5, 0.9e5, 1.1e5, 2000), tput_row("b", 1e6, 0.9e6, 1.1e6, 500)));
	char *out = NULL, err[160];
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	/* a meets p99 (20 us [18-22]) and not the rate; b the rate and not p99;
	 * nothing meets p50<=1us; cpu at 200000/s: a 0.4 CPU, b 0.1 CPU */
	int r = need_report(f, doc, "size=64 rate=200000/s p99<=30us p50<=1us cpu<=0.5", err, sizeof(err));
	fclose(f);
	cr_assert_eq(r, 0, "%s", err);
	cr_assert(strstr(out, "| 1 | "), "%s", out);
	cr_assert(strstr(out, "Needs that no mechanism met"), "%s", out);
	cr_assert(strstr(out, "- `p50<=1us`"), "%s", out);
	cr_assert(!strstr(out, "- `p99<=30us`"), "%s", out);
	cr_assert(strstr(out, "yes: 20.0 us [18.0-22.0]"), "%s", out);
	free(out);
	f = open_memstream(&out, &len);
	cr_assert_eq(need_report(f, doc, "p99<=fast", err, sizeof(err)), -EINVAL);
	cr_assert_eq(need_report(f, doc, "cpu<=0.5", err, sizeof(err)), -EINVAL);   /* needs rate= */
	fclose(f);
	free(out);
	json_decref(doc);
}
