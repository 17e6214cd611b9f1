/*
 * report/need.c - `ipckit-report --need "..."`: rank the mechanisms of a
 * saved run against a user's stated needs, with the evidence for each
 * verdict, the caveats, and the needs that nothing met. Syntax (terms
 * separated by spaces, any order):
 *
 *   size=4K          message size (the nearest measured size at or above it)
 *   rate=50000/s     messages per second one way (k, M suffixes: 50k/s)
 *   bw=100M/s        bytes per second one way (K, M, G: binary units)
 *   p50<=20us        RTT percentile bounds: p50, p90, p99, p999 (ns, us, ms, s;
 *                    a bare number is us)
 *   cpu<=0.5         CPU per side at the stated rate, in CPUs (needs rate=)
 *   gap=10ms         latency terms use the idle-gap rows at that gap
 *   reliable cross-host unrelated processes threads event-loop no-spin
 *                    requirements on the mechanism itself (caps, or measured
 *                    sleeping for event-loop)
 *
 * A bound is met when the whole 95% interval satisfies it, met at the median
 * only ("marginal") when the interval crosses it, and not met otherwise.
 */
#include "report.h"
#include "../fmt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TERMS 16
#define MAX_CAND 64

enum { T_SIZE, T_RATE, T_BW, T_LAT, T_CPU, T_GAP, T_FLAG };
enum { ST_MET = 2, ST_MARGINAL = 1, ST_FAILED = 0, ST_UNKNOWN = -1 };

struct term {
	int type;
	char text[48];      /* as written */
	char key[24];       /* T_LAT: "rtt_ns.p99"; T_FLAG: the flag */
	double value;
};

struct need {
	struct term t[MAX_TERMS];
	int n;
	double size, rate, gap;
};

/* A number with an optional suffix scaled by the table; the rest in *end. */
static int number(const char *s, double *v, char **end)
{
	*v = strtod(s, end);
	return *end == s || !isfinite(*v) || *v < 0 ? -EINVAL : 0;
}

static int parse_term(struct need *nd, const char *w, char *err, size_t cap)
{
	struct term *t = &nd->t[nd->n];
	char *end;
	double v;
	memset(t, 0, sizeof(*t));
	snprintf(t->text, sizeof(t->text), "%s", w);
	if (!strncmp(w, "size=", 5)) {
		if (number(w + 5, &v, &end))
			goto bad;
		double k = 1;
		if (*end == 'K' || *end == 'k')
			k = 1024, end++;
		else if (*end == 'M')
			k = 1048576, end++;
		if (*end == 'B' || (*end == 'i' && end[1] == 'B'))
			end += *end == 'B' ? 1 : 2;
		if (*end)
			goto bad;
		nd->size = v * k;
		t->type = T_SIZE;
	} else if (!strncmp(w, "rate=", 5) || !strncmp(w, "bw=", 3)) {
		bool bw = w[0] == 'b';
		if (number(w + (bw ? 3 : 5), &v, &end))
			goto bad;
		double k = 1;
		if (*end == 'k' || *end == 'K')
			k = bw ? 1024 : 1e3, end++;
		else if (*end == 'M')
			k = bw ? 1048576 : 1e6, end++;
		else if (*end == 'G')
			k = bw ? 1073741824.0 : 1e9, end++;
		if (bw && *end == 'B')
			end++;
		if (!strcmp(end, "/s"))
			end += 2;
		if (*end)
			goto bad;
		t->type = bw ? T_BW : T_RATE;
		t->value = v * k;
		if (!bw)
			nd->rate = t->value;
	} else if (!strncmp(w, "gap=", 4)) {
		if (number(w + 4, &v, &end) || (*end && strcmp(end, "ms")))
			goto bad;
		nd->gap = v;
		t->type = T_GAP;
	} else if (!strncmp(w, "cpu<=", 5)) {
		if (number(w + 5, &v, &end) || *end)
			goto bad;
		t->type = T_CPU;
		t->value = v;
	} else if (w[0] == 'p' && strstr(w, "<=")) {
		const char *q = strstr(w, "<=");
		char pct[8];
		size_t pl = (size_t)(q - w - 1);
		if (pl == 0 || pl >= sizeof(pct))
			goto bad;
		memcpy(pct, w + 1, pl);
		pct[pl] = 0;
		if (strcmp(pct, "50") && strcmp(pct, "90") && strcmp(pct, "99") && strcmp(pct, "999"))
			goto bad;
		if (number(q + 2, &v, &end))
			goto bad;
		double k = 1e3;
		if (!strcmp(end, "ns"))
			k = 1;
		else if (!strcmp(end, "ms"))
			k = 1e6;
		else if (!strcmp(end, "s"))
			k = 1e9;
		else if (*end && strcmp(end, "us"))
			goto bad;
		t->type = T_LAT;
		t->value = v * k;
		snprintf(t->key, sizeof(t->key), "rtt_ns.p%s", pct);
	} else {
		static const char *const flags[] = { "reliable", "cross-host", "unrelated", "processes",
						     "threads", "event-loop", "no-spin" };
		for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
			if (!strcmp(w, flags[i]))
				t->type = T_FLAG;
		if (t->type != T_FLAG)
			goto bad;
		snprintf(t->key, sizeof(t->key), "%s", w);
	}
	nd->n++;
	return 0;
bad:
	snprintf(err, cap, "cannot read '%s' (see docs/benchmarking.md, \"Stating your needs\")", w);
	return -EINVAL;
}

static int parse_need(const char *s, struct need *nd, char *err, size_t cap)
{
	char buf[512], *save = NULL;
	memset(nd, 0, sizeof(*nd));
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *w = strtok_r(buf, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
		if (nd->n == MAX_TERMS) {
			snprintf(err, cap, "too many terms (at most %d)", MAX_TERMS);
			return -EINVAL;
		}
		int r = parse_term(nd, w, err, cap);
		if (r)
			return r;
	}
	for (int i = 0; i < nd->n; i++)
		if (nd->t[i].type == T_CPU && nd->rate <= 0) {
			snprintf(err, cap, "cpu<= needs a rate= term (the CPU it costs depends on the rate)");
			return -EINVAL;
		}
	if (!nd->n) {
		snprintf(err, cap, "no needs given");
		return -EINVAL;
	}
	return 0;
}

/* The measured size to use for mode: the smallest at or above want, else
 * the largest. */
static double size_for(json_t *doc, const char *mode, double gap, double want)
{
	double best = 0, largest = 0;
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r) {
		double s = jnum(r, "size");
		if (strcmp(jstr(r, "mode"), mode) || jnum(r, "gap_ms") != gap)
			continue;
		if (s > largest)
			largest = s;
		if (s >= want && (!best || s < best))
			best = s;
	}
	return best ? best : largest;
}

static json_t *row_of(json_t *doc, json_t *like, const char *mode, double size, double gap,
		      const char *variant)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(doc, "results"), i, r)
		if (!strcmp(jstr(r, "impl"), "ipckit") && !strcmp(jstr(r, "backend"), jstr(like, "backend")) &&
		    !strcmp(jstr(r, "wait"), jstr(like, "wait")) && !strcmp(jstr(r, "variant"), variant) &&
		    !strcmp(jstr(r, "mode"), mode) && jnum(r, "size") == size && jnum(r, "gap_ms") == gap &&
		    jnum(r, "errors") == 0)
			return r;
	return NULL;
}

struct cand {
	char name[96];
	json_t *any;            /* a row of the candidate (for caps) */
	json_t *lat, *tput, *send;
	int st[MAX_TERMS];
	char ev[MAX_TERMS][160];
	int met, marginal, failed, unknown;
	double p50;
};

static bool capb(json_t *doc, json_t *r, const char *c)
{
	return has_cap(doc, jgroup(r), c);
}

/* Upper-bound check of figure key of row r against limit. */
static int bound(json_t *r, const char *key, double limit, bool us, const char *unit, char *ev,
		 size_t cap, bool at_least)
{
	struct ci c;
	char m[32], lo[32], hi[32];
	if (!r) {
		snprintf(ev, cap, "not measured");
		return ST_UNKNOWN;
	}
	jci(r, key, &c);
	if (us)
		snprintf(ev, cap, "%s%s [%s-%s]", fmt_us(c.med, m, sizeof(m)), unit, fmt_us(c.lo, lo, sizeof(lo)),
			 fmt_us(c.hi, hi, sizeof(hi)));
	else
		snprintf(ev, cap, "%.0f%s [%.0f-%.0f]", c.med, unit, c.lo, c.hi);
	if (at_least)
		return c.lo >= limit ? ST_MET : c.med >= limit ? ST_MARGINAL : ST_FAILED;
	return c.hi <= limit ? ST_MET : c.med <= limit ? ST_MARGINAL : ST_FAILED;
}

static void judge(json_t *doc, const struct need *nd, struct cand *c)
{
	for (int i = 0; i < nd->n; i++) {
		const struct term *t = &nd->t[i];
		char *ev = c->ev[i];
		size_t cap = sizeof(c->ev[i]);
		int st = ST_MET;
		json_t *info = json_object_get(json_object_get(doc, "backends"), jgroup(c->any));
		switch (t->type) {
		case T_SIZE:
			if (jnum(info, "max_msg") > 0 && nd->size > jnum(info, "max_msg")) {
				snprintf(ev, cap, "cannot carry it (max %.0f B)", jnum(info, "max_msg"));
				st = ST_FAILED;
			} else {
				char a[32];
				snprintf(ev, cap, "measured at %s",
					 fmt_size(c->lat ? jnum(c->lat, "size") : c->tput ? jnum(c->tput, "size") : 0,
						  SZ_LONG, a, sizeof(a)));
			}
			break;
		case T_GAP:
			snprintf(ev, cap, c->lat ? "idle-gap rows at %g ms" : "no idle-gap rows at %g ms", nd->gap);
			st = c->lat ? ST_MET : ST_UNKNOWN;
			break;
		case T_RATE:
			st = bound(c->tput, "msgs_per_s", t->value, false, " msg/s", ev, cap, true);
			if (c->tput && jnum(c->tput, "batch") > 1) {
				size_t l = strlen(ev);
				snprintf(ev + l, cap - l, " with ipc_sendv batches of %.0f", jnum(c->tput, "batch"));
				if (c->send) {
					l = strlen(ev);
					snprintf(ev + l, cap - l, " (one ipc_send each: %.0f)", jnum(c->send, "msgs_per_s"));
				}
			}
			break;
		case T_BW:
			st = bound(c->tput, "bytes_per_s", t->value, false, " B/s", ev, cap, true);
			break;
		case T_LAT:
			st = bound(c->lat, t->key, t->value, true, " us", ev, cap, false);
			break;
		case T_CPU: {
			if (!c->tput) {
				snprintf(ev, cap, "not measured");
				st = ST_UNKNOWN;
				break;
			}
			if (!strcmp(jstr(c->tput, "wait"), "spin")) {
				snprintf(ev, cap, "wait=spin: a whole CPU per side while waiting");
				st = ST_FAILED;
				break;
			}
			struct ci s, r;
			jci(c->tput, "cpu_ns_per_msg.sender", &s);
			jci(c->tput, "cpu_ns_per_msg.receiver", &r);
			double med = fmax(s.med, r.med) * nd->rate / 1e9, hi = fmax(s.hi, r.hi) * nd->rate / 1e9;
			snprintf(ev, cap, "%.3g CPU per side at %.0f msg/s (from %.0f ns/msg)", med, nd->rate,
				 fmax(s.med, r.med));
			st = hi <= t->value ? ST_MET : med <= t->value ? ST_MARGINAL : ST_FAILED;
			break;
		}
		case T_FLAG:
			if (!strcmp(t->key, "reliable"))
				st = capb(doc, c->any, "reliable");
			else if (!strcmp(t->key, "cross-host"))
				st = capb(doc, c->any, "cross_host");
			else if (!strcmp(t->key, "unrelated"))
				st = capb(doc, c->any, "unrelated") && capb(doc, c->any, "process");
			else if (!strcmp(t->key, "processes"))
				st = capb(doc, c->any, "process") && !json_is_true(json_object_get(c->any, "threads"));
			else if (!strcmp(t->key, "threads"))
				st = true;
			else if (!strcmp(t->key, "no-spin"))
				st = strcmp(jstr(c->any, "wait"), "spin") != 0;
			else   /* event-loop: measured sleeping for each message */
				st = c->lat ? jnum2(c->lat, "vcsw_per_msg", "echo") >= 0.5 : ST_UNKNOWN;
			st = st == 1 ? ST_MET : st;
			ev[0] = 0;
			break;
		}
		c->st[i] = st;
		c->met += st == ST_MET;
		c->marginal += st == ST_MARGINAL;
		c->failed += st == ST_FAILED;
		c->unknown += st == ST_UNKNOWN;
	}
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (x->failed != y->failed)
		return x->failed - y->failed;
	if (x->unknown != y->unknown)
		return x->unknown - y->unknown;
	if (x->met != y->met)
		return y->met - x->met;
	if (x->marginal != y->marginal)
		return y->marginal - x->marginal;
	return x->p50 < y->p50 ? -1 : x->p50 > y->p50;
}

int need_report(FILE *f, json_t *doc, const char *need, char *err, size_t cap)
{
	static struct cand c[MAX_CAND];
	static const char *const stn[] = { "no", "marginal", "yes" };
	struct need nd;
	int n = 0, r = parse_need(need, &nd, err, cap);
	size_t i;
	json_t *row;
	if (r)
		return r;
	const char *lmode = nd.gap > 0 ? "gap" : "latency";
	double ls = size_for(doc, lmode, nd.gap, nd.size), ts = size_for(doc, "throughput", 0, nd.size);
	/* Candidates: every ipckit configuration (backend, wait, zero-copy or not). */
	json_array_foreach(json_object_get(doc, "results"), i, row) {
		char nm[96];
		if (strcmp(jstr(row, "impl"), "ipckit") || !strcmp(jstr(row, "variant"), "send") ||
		    !strcmp(jstr(row, "mode"), "gap") || n == MAX_CAND)
			continue;
		series_name(row, nm, sizeof(nm));
		int k;
		for (k = 0; k < n && strcmp(c[k].name, nm); k++)
			;
		if (k < n)
			continue;
		memset(&c[n], 0, sizeof(c[n]));
		snprintf(c[n].name, sizeof(c[n].name), "%s", nm);
		c[n].any = row;
		c[n].lat = row_of(doc, row, lmode, ls, nd.gap, jstr(row, "variant"));
		c[n].tput = row_of(doc, row, "throughput", ts, 0, jstr(row, "variant"));
		c[n].send = *jstr(row, "variant") ? NULL : row_of(doc, row, "throughput", ts, 0, "send");
		c[n].p50 = c[n].lat ? jfig(c[n].lat, "rtt_ns.p50") : INFINITY;
		judge(doc, &nd, &c[n]);
		n++;
	}
	qsort(c, (size_t)n, sizeof(c[0]), cmp_cand);
	fprintf(f, "## Your needs: `%s`\n\n", need);
	trust_line(f, doc);
	fprintf(f, "Mechanisms ranked by how many needs they meet (a bound is met when the whole 95%% "
		   "interval satisfies it; \"marginal\": only the median does).\n\n| Rank | Mechanism |");
	for (int t = 0; t < nd.n; t++)
		fprintf(f, " `%s` |", nd.t[t].text);
	fprintf(f, " Caveats |\n|---|---|");
	for (int t = 0; t < nd.n; t++)
		fprintf(f, "---|");
	fprintf(f, "---|\n");
	for (int k = 0; k < n; k++) {
		char cav[400];
		caveats(doc, c[k].lat ? c[k].lat : c[k].any, cav, sizeof(cav));
		fprintf(f, "| %d | %s%s%s |", k + 1, c[k].failed || c[k].unknown ? "" : "**", c[k].name,
			c[k].failed || c[k].unknown ? "" : "**");
		for (int t = 0; t < nd.n; t++)
			fprintf(f, " %s%s%s |", c[k].st[t] == ST_UNKNOWN ? "?" : stn[c[k].st[t]],
				*c[k].ev[t] ? ": " : "", c[k].ev[t]);
		fprintf(f, " %s |\n", cav);
	}
	fprintf(f, "\n");
	int none = 0;
	for (int t = 0; t < nd.n; t++) {
		bool met = false;
		for (int k = 0; k < n; k++)
			met |= c[k].st[t] >= ST_MARGINAL;
		if (!met) {
			if (!none++)
				fprintf(f, "**Needs that no mechanism met in this run:**\n\n");
			fprintf(f, "- `%s`\n", nd.t[t].text);
		}
	}
	if (!none)
		fprintf(f, "Every need was met by at least one mechanism%s.\n",
			n && !c[0].failed && !c[0].unknown ? "" : " (but no single one met them all)");
	fprintf(f, "\nCaveats of the method: rates and CPU costs come from saturated one-way streams "
		   "(at a lower rate a message may cost more, since each one may wake a sleeping receiver); "
		   "latency is %s; sizes are the nearest measured at or above the one asked for.\n\n",
		nd.gap > 0 ? "the idle-gap round trip" :
		jnum(json_object_get(doc, "config"), "rate") > 0 ? "open loop at the run's --rate" :
		"a closed-loop ping-pong of one message at a time");
	return 0;
}
