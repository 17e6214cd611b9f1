/*
 * machine.c - the machine under test. Before and after the run: load
 * average, CPU steal time (the hypervisor running other guests on our CPUs),
 * frequency governor and current frequency of the pinned CPUs, their SMT
 * siblings, transparent huge pages, the clock source and the cost of one
 * clock read. Each finding that can make results unreliable becomes a
 * warning in plain words (the table and the report print them). Also what
 * memcpy moves per second at each size and what the integrity check costs
 * per byte, both measured here.
 */
#include "machine.h"
#include "bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int read_line(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	buf[0] = 0;
	if (!f)
		return -1;
	if (!fgets(buf, (int)cap, f))
		buf[0] = 0;
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return buf[0] ? 0 : -1;
}

void machine_cpu_model(char *buf, size_t cap)
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

/* Steal and total ticks of the CPUs in pin (both < 0: the whole machine). */
static void stat_ticks(const int pin[2], uint64_t *steal, uint64_t *total)
{
	FILE *f = fopen("/proc/stat", "r");
	char line[512];
	*steal = *total = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		int cpu = -1, used;
		unsigned long long v[8] = { 0 };
		if (strncmp(line, "cpu", 3))
			break;
		if (line[3] == ' ')
			cpu = -1;
		else if (sscanf(line + 3, "%d", &cpu) != 1)
			continue;
		if (pin[0] >= 0 ? cpu != pin[0] && cpu != pin[1] : cpu != -1)
			continue;
		char *p = strchr(line, ' ');
		if (!p || sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu%n", &v[0], &v[1], &v[2], &v[3],
				 &v[4], &v[5], &v[6], &v[7], &used) < 8)
			continue;
		for (int i = 0; i < 8; i++)
			*total += v[i];
		*steal += v[7];
	}
	fclose(f);
}

/* The cheapest of 20 batches: preemption by other work is not the clock's cost. */
static double clock_cost_ns(void)
{
	double best = 1e9;
	for (int b = 0; b < 20; b++) {
		uint64_t t0 = now_ns(), x = 0;
		for (int i = 0; i < 2000; i++)
			x += now_ns();
		(void)x;
		double per = (double)(now_ns() - t0) / 2000.0;
		if (per < best)
			best = per;
	}
	return best;
}

static void take_snap(const struct machine *m, struct snap *s)
{
	char buf[256], path[128];
	double l[1] = { -1 };
	getloadavg(l, 1);
	s->load1 = l[0];
	stat_ticks(m->pin, &s->steal, &s->total);
	for (int i = 0; i < 2; i++) {
		int cpu = m->pin[i] >= 0 ? m->pin[i] : i;
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor", cpu);
		if (read_line(path, s->governor[i], sizeof(s->governor[i])))
			snprintf(s->governor[i], sizeof(s->governor[i]), "not exposed");
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_cur_freq", cpu);
		s->freq_khz[i] = read_line(path, buf, sizeof(buf)) ? 0 : atol(buf);
	}
	if (read_line("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf)) == 0) {
		char *a = strchr(buf, '['), *b = a ? strchr(a, ']') : NULL;
		if (a && b)
			*b = 0;
		snprintf(s->thp, sizeof(s->thp), "%s", a && b ? a + 1 : buf);
	} else {
		snprintf(s->thp, sizeof(s->thp), "not exposed");
	}
	if (read_line("/sys/devices/system/clocksource/clocksource0/current_clocksource", s->clocksource,
		      sizeof(s->clocksource)))
		snprintf(s->clocksource, sizeof(s->clocksource), "unknown");
	s->clock_ns = clock_cost_ns();
}

static double steal_pct(const struct snap *a, const struct snap *b)
{
	uint64_t dt = b->total - a->total;
	return dt ? 100.0 * (double)(b->steal - a->steal) / (double)dt : 0;
}

void machine_begin(struct machine *m, const int pin[2])
{
	char path[128];
	struct snap s0;
	memset(m, 0, sizeof(*m));
	m->pin[0] = pin[0];
	m->pin[1] = pin[1];
	m->cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	for (int i = 0; i < 2 && pin[0] >= 0; i++) {
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", pin[i]);
		if (read_line(path, m->siblings[i], sizeof(m->siblings[i])))
			snprintf(m->siblings[i], sizeof(m->siblings[i]), "unknown");
	}
	take_snap(m, &s0);
	/* A quarter of a second of steal time before anything runs. */
	struct timespec ts = { 0, 250000000 };
	nanosleep(&ts, NULL);
	take_snap(m, &m->before);
	m->before.steal_pct = steal_pct(&s0, &m->before);
}

void machine_end(struct machine *m)
{
	take_snap(m, &m->after);
	m->after.steal_pct = steal_pct(&m->before, &m->after);
}

/* Is CPU b listed in a sibling list like "0-1" or "0,2"? */
static bool in_list(const char *list, int b)
{
	const char *p = list;
	while (*p) {
		char *end;
		long lo = strtol(p, &end, 10), hi = lo;
		if (end == p)
			return false;
		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		if (b >= lo && b <= hi)
			return true;
		p = *end == ',' ? end + 1 : end;
		if (*end != ',')
			break;
	}
	return false;
}

static json_t *snap_json(const struct snap *s)
{
	return json_pack("{s:f, s:f, s:[s, s], s:[I, I], s:s, s:s, s:f}", "load_avg_1min", s->load1,
			 "steal_pct", s->steal_pct, "governor", s->governor[0], s->governor[1], "freq_khz",
			 (json_int_t)s->freq_khz[0], (json_int_t)s->freq_khz[1], "thp", s->thp,
			 "clocksource", s->clocksource, "clock_read_ns", s->clock_ns);
}

static void warn(json_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void warn(json_t *w, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(w, json_string(buf));
}

json_t *machine_noise_json(const struct machine *m)
{
	const struct snap *b = &m->before, *a = &m->after;
	json_t *w = json_array();
	if (m->cpus < 2)
		warn(w, "This machine has one CPU: both ends of every row share it, so each round trip "
			"includes a switch between them; results say little about a machine with two.");
	if (m->pin[0] < 0)
		warn(w, "The two processes were not pinned to CPUs, so the scheduler may move them "
			"between rounds: expect more spread.");
	if (b->load1 > 0.5 * m->cpus)
		warn(w, "Other programs were busy before the run (load average %.2f on %d CPUs): numbers "
			"can be slower and noisier than this machine can do.", b->load1, m->cpus);
	/* The run itself adds about 2 (two busy processes). */
	if (a->load1 > 2.0 + 0.5 * m->cpus)
		warn(w, "The machine was busier than the benchmark alone by the end (load average %.2f on "
			"%d CPUs): other work competed for the CPUs.", a->load1, m->cpus);
	double st = b->steal_pct > a->steal_pct ? b->steal_pct : a->steal_pct;
	if (st >= 2.0)
		warn(w, "The hypervisor took %.1f%% of these CPUs' time for other virtual machines (steal "
			"time, %.1f%% before the run, %.1f%% during it): absolute numbers are inflated and "
			"noisy; compare rows of this run with each other rather than with another machine.",
		     st, b->steal_pct, a->steal_pct);
	for (int i = 0; i < 2; i++) {
		const char *g = b->governor[i];
		if (strcmp(g, "not exposed") && strcmp(g, "performance")) {
			warn(w, "The CPU frequency governor is '%s': the CPUs change speed with load, so "
				"rounds can differ for that reason alone ('performance' keeps them steady).", g);
			break;
		}
	}
	for (int i = 0; i < 2; i++) {
		long f0 = b->freq_khz[i], f1 = a->freq_khz[i];
		if (f0 > 0 && f1 > 0 && (f1 > f0 * 11 / 10 || f1 < f0 * 9 / 10)) {
			warn(w, "CPU %d ran at %.2f GHz before the run and %.2f GHz after it: its frequency "
				"changed while measuring.", m->pin[i] >= 0 ? m->pin[i] : i, f0 / 1e6, f1 / 1e6);
			break;
		}
	}
	if (m->pin[0] >= 0 && m->pin[0] != m->pin[1] && in_list(m->siblings[0], m->pin[1]))
		warn(w, "CPUs %d and %d are two hardware threads of one core (SMT siblings %s): they share "
			"its execution units and caches, which a real pair of processes on two cores does "
			"not; choose --pin on different cores.", m->pin[0], m->pin[1], m->siblings[0]);
	if (b->clock_ns > 100)
		warn(w, "Reading the clock costs %.0f ns here (clock source '%s'): every latency sample "
			"pays two reads, which inflates small round trips.", b->clock_ns, b->clocksource);
	json_t *sib = json_array();
	for (int i = 0; i < 2 && m->pin[0] >= 0; i++)
		json_array_append_new(sib, json_string(m->siblings[i]));
	return json_pack("{s:o, s:o, s:o, s:o}", "before", snap_json(b), "after", snap_json(a),
			 "smt_siblings", sib, "warnings", w);
}

/* Bytes per second that f moves over len-byte messages, for ~20 ms. */
static double rate_of(void (*f)(unsigned char *, unsigned char *, size_t, uint64_t), unsigned char *a,
		      unsigned char *b, size_t len)
{
	uint64_t t0 = now_ns(), t, n = 0;
	do {
		for (int i = 0; i < 16; i++)
			f(a, b, len, n++);
		t = now_ns();
	} while (t - t0 < 20000000u);
	return (double)n * (double)len * 1e9 / (double)(t - t0);
}

static void do_memcpy(unsigned char *a, unsigned char *b, size_t len, uint64_t i)
{
	memcpy(i & 1 ? a : b, i & 1 ? b : a, len);
	__asm__ __volatile__("" ::: "memory");
}

static void do_fill(unsigned char *a, unsigned char *b, size_t len, uint64_t i)
{
	(void)b;
	msg_fill(a, len, i);
	__asm__ __volatile__("" ::: "memory");
}

static void do_check(unsigned char *a, unsigned char *b, size_t len, uint64_t i)
{
	uint64_t s;
	(void)b;
	(void)i;
	if (msg_check(a, (ssize_t)len, len, &s) != 0)
		abort();   /* the buffer was filled by msg_fill */
}

/* One CPU's share of the two-CPU memcpy figure: its own pair of buffers,
 * copied back and forth on its own CPU while the other CPU does the same. */
struct copier {
	int cpu;
	size_t len;
	unsigned char *a, *b;
	double rate;
	pthread_barrier_t *start;
};

static void *copier_main(void *arg)
{
	struct copier *c = arg;
	if (c->cpu >= 0)
		pin_cpu(c->cpu);
	pthread_barrier_wait(c->start);
	c->rate = rate_of(do_memcpy, c->a, c->b, c->len);
	return NULL;
}

/* Bytes per second that memcpy moves on both pinned CPUs at once, summed:
 * the most that two CPUs can move, since a zero-copy row's producer writes
 * each byte once on one CPU and its consumer reads it once on the other,
 * the same memory traffic as one memcpy of it split over two CPUs.
 * 0 when a thread or buffer cannot be had. */
static double memcpy_two_cpus(const int pin[2], size_t len, unsigned char *a, unsigned char *b)
{
	struct copier c[2];
	pthread_t t;
	pthread_barrier_t start;
	unsigned char *a1 = aligned_alloc(64, len), *b1 = aligned_alloc(64, len);
	double rate = 0;
	if (a1 && b1 && pthread_barrier_init(&start, NULL, 2) == 0) {
		memset(a1, 3, len);
		memset(b1, 4, len);
		c[0] = (struct copier){pin[0], len, a, b, 0, &start};
		c[1] = (struct copier){pin[1], len, a1, b1, 0, &start};
		if (pthread_create(&t, NULL, copier_main, &c[1]) == 0) {
			copier_main(&c[0]);
			pthread_join(t, NULL);
			rate = c[0].rate + c[1].rate;
		}
		pthread_barrier_destroy(&start);
	}
	free(a1);
	free(b1);
	return rate;
}

json_t *machine_costs_json(const size_t *sizes, int n, const int pin[2])
{
	cpu_set_t old;
	bool restore = sched_getaffinity(0, sizeof(old), &old) == 0;
	size_t big = 65536;
	for (int i = 0; i < n; i++)
		if (sizes[i] > big)
			big = sizes[i];
	unsigned char *a = aligned_alloc(64, big), *b = aligned_alloc(64, big);
	json_t *mc = json_object(), *mc2 = json_object();
	if (!a || !b) {
		free(a);
		free(b);
		return json_pack("{s:s, s:o, s:o}", "checksum", msg_checksum_name, "memcpy_bytes_per_s", mc,
				 "memcpy_2cpu_bytes_per_s", mc2);
	}
	memset(a, 1, big);
	memset(b, 2, big);
	for (int i = 0; i < n; i++) {
		char key[32];
		snprintf(key, sizeof(key), "%zu", sizes[i]);
		double two = memcpy_two_cpus(pin, sizes[i], a, b);
		if (pin[0] >= 0)
			pin_cpu(pin[0]);
		json_object_set_new(mc, key, json_real(rate_of(do_memcpy, a, b, sizes[i])));
		if (two > 0)
			json_object_set_new(mc2, key, json_real(two));
	}
	double fill = rate_of(do_fill, a, b, 65536);
	msg_fill(a, 65536, 7);
	double check = rate_of(do_check, a, b, 65536);
	if (restore)
		sched_setaffinity(0, sizeof(old), &old);
	free(a);
	free(b);
	return json_pack("{s:s, s:f, s:f, s:o, s:o}", "checksum", msg_checksum_name, "fill_ns_per_byte",
			 1e9 / fill, "check_ns_per_byte", 1e9 / check, "memcpy_bytes_per_s", mc,
			 "memcpy_2cpu_bytes_per_s", mc2);
}
