/*
 * cli.c - the command line of ipckit-bench (stable: docs/benchmarking.md) into a
 * struct config. Strict: a malformed number, an empty list item or an
 * unknown backend is an error (exit status 2), never silently read as
 * something else.
 */
#include "cli.h"
#include "remote.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int bad_value(const char *opt, const char *arg, const char *want)
{
	fprintf(stderr, "ipckit-bench: %s '%s': want %s\n", opt, arg, want);
	return 2;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: ipckit-bench [--backend LIST|all] [--size LIST] [--mode latency|throughput|both]\n"
"                    [--count N] [--duration SEC] [--warmup N] [--wait adaptive|block|spin]\n"
"                    [--pin A,B|none] [--no-baseline] [--no-peers] [--rate MSG_PER_S] [--pairs N]\n"
"                    [--quick] [--json FILE] [--csv FILE] [--report DIR] [--quiet]\n"
"                    [--rounds N] [--gap MS[,MS...]] [--serve URL | --connect URL]\n"
"       ipckit-bench --transfer BYTES [--size SIZE] --backend NAME   (one whole transfer, for hyperfine)\n"
"       ipckit-bench --list | --list-max   (backends; with their largest message)\n"
"LIST is comma-separated; sizes take K/M suffixes (64,4K,64K,1M). Without arguments: every\n"
"backend, both modes, sizes 64,4K,64K,1M, baselines and peers, report in ./ipckit-report/.\n"
"--rounds N: rounds per row (default 9, --quick 3); each figure is the median of the rounds\n"
"with a 95%% interval. --gap MS: one message every MS ms (idle-gap latency; alone it runs only\n"
"those rows, at 64 B unless --size says otherwise). --serve tcp://HOST:PORT runs the echo side\n"
"for --connect tcp://HOST:PORT on another host (backends that cross hosts only).\n"
"Extra: --batch N (messages per ipc_sendv call, default 128; 1 = ipc_send), --threads (both\n"
"ends in two threads of one process), --seed N (turn order), --corrupt (self-test: one\n"
"corrupted byte per row must fail the run).\n");
}

/* A non-negative decimal integer; strtoull would take "-5" as 2^64 - 5. */
static int parse_u64(const char *s, uint64_t *out, char **end)
{
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(p, end, 10);
	if (errno)
		return -errno;
	*out = v;
	return 0;
}

static int parse_count(const char *s, uint64_t *out)
{
	char *end;
	int r = parse_u64(s, out, &end);
	return r ? r : *end ? -EINVAL : 0;
}

/* A size: digits, then optionally K, M or G (KiB, KB, ... too), or B alone. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v;
	int shift = 0;
	if (parse_u64(s, &v, &end))
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; break;
	case 'm': case 'M': shift = 20; break;
	case 'g': case 'G': shift = 30; break;
	default: break;
	}
	if (shift) {
		end++;
		if (*end == 'i' && end[1] == 'B')
			end += 2;
		else if (*end == 'B')
			end++;
		if (v > (UINT64_MAX >> shift))
			return -ERANGE;
		v <<= shift;
	} else if (*end == 'B') {
		end++;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Split a comma-separated list strictly: no empty items. */
static int split_list(const char *opt, const char *arg, char (*items)[64], int max)
{
	int n = 0;
	const char *p = arg;
	for (;;) {
		const char *q = strchr(p, ',');
		size_t len = q ? (size_t)(q - p) : strlen(p);
		if (len == 0) {
			fprintf(stderr, "ipckit-bench: %s '%s': empty item in the list\n", opt, arg);
			return -1;
		}
		if (len >= 64 || n == max) {
			fprintf(stderr, "ipckit-bench: %s '%s': %s\n", opt, arg,
				n == max ? "too many items" : "item too long");
			return -1;
		}
		memcpy(items[n], p, len);
		items[n++][len] = 0;
		if (!q)
			return n;
		p = q + 1;
	}
}

static int parse_sizes(struct config *g, const char *arg)
{
	char items[MAX_SIZES][64];
	int n = split_list("--size", arg, items, MAX_SIZES);
	if (n < 0)
		return -EINVAL;
	snprintf(g->sizes_str, sizeof(g->sizes_str), "%s", arg);
	for (int i = 0; i < n; i++) {
		uint64_t v;
		if (parse_size(items[i], &v)) {
			fprintf(stderr, "ipckit-bench: --size: bad size '%s' (digits, optionally followed by "
					"K, M or G: 64, 4K, 1M)\n", items[i]);
			return -EINVAL;
		}
		if (v < MSG_HDR || v > ((uint64_t)1 << 30)) {
			fprintf(stderr, "ipckit-bench: size %s: must be 16 B (sequence number and checksum) "
					"to 1 GiB\n", items[i]);
			return -EINVAL;
		}
		g->sizes[i] = (size_t)v;
	}
	g->nsizes = n;
	return 0;
}

static int parse_waits(struct config *g, const char *arg)
{
	char items[3][64];
	int n = split_list("--wait", arg, items, 3);
	if (n < 0)
		return -EINVAL;
	snprintf(g->waits_str, sizeof(g->waits_str), "%s", arg);
	for (int i = 0; i < n; i++) {
		int w = -1;
		for (int k = 0; k < 3; k++)
			if (!strcmp(items[i], wait_names[k]))
				w = k;
		if (w < 0) {
			fprintf(stderr, "ipckit-bench: bad --wait '%s' (adaptive, block or spin)\n", items[i]);
			return -EINVAL;
		}
		g->plan.waits[i] = w;
	}
	g->plan.nwaits = n;
	return 0;
}

static int parse_gaps(struct config *g, const char *arg)
{
	char items[MAX_GAPS][64];
	int n = split_list("--gap", arg, items, MAX_GAPS);
	for (int i = 0; i < n; i++) {
		char *end;
		double v = strtod(items[i], &end);
		if (end == items[i] || *end || !(v > 0) || v > 60000)
			return bad_value("--gap", items[i], "milliseconds, above 0 and at most 60000");
		g->o.gap_ms[i] = v;
	}
	g->o.ngaps = n < 0 ? 0 : n;
	return n < 0 ? 2 : 0;
}

static bool have_backend(const char *name)
{
	for (const char *const *b = ipc_backends(); *b; b++)
		if (!strcmp(*b, name))
			return true;
	return false;
}

static int parse_backends(struct config *g, const char *arg)
{
	char items[MAX_BACKENDS][64];
	struct plan *p = &g->plan;
	p->nbe = 0;
	if (!strcmp(arg, "all")) {
		g->backends_all = true;
		for (const char *const *b = ipc_backends(); *b && p->nbe < MAX_BACKENDS; b++)
			snprintf(p->be[p->nbe++].name, sizeof(p->be[0].name), "%s", *b);
		return 0;
	}
	int n = split_list("--backend", arg, items, MAX_BACKENDS);
	if (n < 0)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		if (!have_backend(items[i])) {
			fprintf(stderr, "ipckit-bench: backend '%s' is not compiled in (have:", items[i]);
			for (const char *const *b = ipc_backends(); *b; b++)
				fprintf(stderr, " %s", *b);
			fprintf(stderr, ")\n");
			return -EINVAL;
		}
		snprintf(p->be[p->nbe++].name, sizeof(p->be[0].name), "%s", items[i]);
	}
	return 0;
}

/* --pin A,B: two CPU numbers below ncpu, or none; default: the first two
 * CPUs this process may run on (none when there is only one). */
static int parse_pin(struct config *g, const char *arg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char items[3][64];
	g->o.pin[0] = g->o.pin[1] = -1;
	if (!arg) {
		cpu_set_t set;
		int k = 0;
		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
				if (CPU_ISSET(c, &set))
					g->o.pin[k++] = c;
		if (k < 2)
			g->o.pin[0] = g->o.pin[1] = -1;
		return 0;
	}
	if (!strcmp(arg, "none"))
		return 0;
	int n = split_list("--pin", arg, items, 3);
	for (int i = 0; i < n && n == 2; i++) {
		uint64_t v;
		if (parse_count(items[i], &v) || v >= (uint64_t)ncpu)
			n = -1;
		else
			g->o.pin[i] = (int)v;
	}
	if (n != 2) {
		fprintf(stderr, "ipckit-bench: --pin '%s': give A,B with two CPU numbers below %ld, or none\n",
			arg, ncpu);
		return -EINVAL;
	}
	return 0;
}

static int parse_int(const char *opt, const char *arg, int lo, int hi, int *out)
{
	uint64_t v;
	if (parse_count(arg, &v) || v < (uint64_t)lo || v > (uint64_t)hi) {
		char want[64];
		snprintf(want, sizeof(want), "an integer from %d to %d", lo, hi);
		return bad_value(opt, arg, want);
	}
	*out = (int)v;
	return 0;
}

int cli_parse(int argc, char **argv, struct config *g)
{
	enum { O_NOBASE = 256, O_NOPEERS, O_QUICK, O_BATCH, O_ROUNDS, O_TRANSFER, O_LIST, O_GAP, O_SERVE,
	       O_CONNECT, O_THREADS, O_SEED, O_CORRUPT, O_LIST_MAX };
	static const struct option lo[] = {
		{ "backend", 1, 0, 'b' }, { "size", 1, 0, 's' }, { "mode", 1, 0, 'm' },
		{ "count", 1, 0, 'n' }, { "duration", 1, 0, 'd' }, { "warmup", 1, 0, 'w' },
		{ "wait", 1, 0, 'W' }, { "pin", 1, 0, 'p' }, { "no-baseline", 0, 0, O_NOBASE },
		{ "no-peers", 0, 0, O_NOPEERS }, { "rate", 1, 0, 'r' }, { "pairs", 1, 0, 'P' },
		{ "quick", 0, 0, O_QUICK }, { "json", 1, 0, 'j' }, { "csv", 1, 0, 'c' },
		{ "report", 1, 0, 'R' }, { "quiet", 0, 0, 'q' }, { "batch", 1, 0, O_BATCH },
		{ "rounds", 1, 0, O_ROUNDS }, { "transfer", 1, 0, O_TRANSFER }, { "list", 0, 0, O_LIST },
		{ "gap", 1, 0, O_GAP }, { "serve", 1, 0, O_SERVE }, { "connect", 1, 0, O_CONNECT },
		{ "threads", 0, 0, O_THREADS }, { "seed", 1, 0, O_SEED }, { "corrupt", 0, 0, O_CORRUPT },
		{ "list-max", 0, 0, O_LIST_MAX },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	const char *backends = "all", *sizes = NULL, *waits = NULL, *pin = NULL, *url;
	bool quick = false, dur_set = false, warm_set = false, mode_set = false, rounds_set = false;
	int opt, r;
	char *end;

	memset(g, 0, sizeof(*g));
	g->plan.baseline = g->plan.peers = true;
	g->o = (struct bench_opts){ .modes = MODE_LATENCY | MODE_THROUGHPUT, .count = 20000,
				    .warmup = 2000, .duration = 0.5, .lat_cap = 0.5, .rounds = 9,
				    .batch = 128, .pairs = 1, .gap_count = 100,
				    .seed = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16 };
	while ((opt = getopt_long(argc, argv, "b:s:m:n:d:w:W:p:r:P:j:c:R:qh", lo, NULL)) != -1) {
		switch (opt) {
		case 'b': backends = optarg; break;
		case 's': sizes = optarg; break;
		case 'm':
			mode_set = true;
			if (!strcmp(optarg, "latency"))
				g->o.modes = MODE_LATENCY;
			else if (!strcmp(optarg, "throughput"))
				g->o.modes = MODE_THROUGHPUT;
			else if (!strcmp(optarg, "both"))
				g->o.modes = MODE_LATENCY | MODE_THROUGHPUT;
			else
				return bad_value("--mode", optarg, "latency, throughput or both");
			break;
		case 'n':
			if (parse_count(optarg, &g->o.count) || !g->o.count)
				return bad_value("--count", optarg, "a positive integer");
			g->o.count_set = true;
			break;
		case 'd':
			g->o.duration = strtod(optarg, &end);
			if (end == optarg || *end || !(g->o.duration > 0) || g->o.duration > 3600)
				return bad_value("--duration", optarg, "seconds, above 0 and at most 3600");
			dur_set = true;
			break;
		case 'w':
			if (parse_count(optarg, &g->o.warmup))
				return bad_value("--warmup", optarg, "a non-negative integer");
			warm_set = true;
			break;
		case 'W': waits = optarg; break;
		case 'p': pin = optarg; break;
		case 'r':
			g->o.rate = strtod(optarg, &end);
			if (end == optarg || *end || !isfinite(g->o.rate) || g->o.rate < 1 || g->o.rate > 1e9)
				return bad_value("--rate", optarg, "messages per second from 1 to 1e9");
			break;
		case 'P':
			if ((r = parse_int("--pairs", optarg, 1, 64, &g->o.pairs)) != 0)
				return r;
			break;
		case 'j': g->json_path = optarg; break;
		case 'c': g->csv_path = optarg; break;
		case 'R': g->report_dir = optarg; break;
		case 'q': g->quiet = true; break;
		case O_NOBASE: g->plan.baseline = false; break;
		case O_NOPEERS: g->plan.peers = false; break;
		case O_QUICK: quick = true; break;
		case O_BATCH:
			if ((r = parse_int("--batch", optarg, 1, 256, &g->o.batch)) != 0)
				return r;
			break;
		case O_ROUNDS:
			if ((r = parse_int("--rounds", optarg, 1, MAX_ROUNDS, &g->o.rounds)) != 0)
				return r;
			rounds_set = true;
			break;
		case O_TRANSFER:
			if (parse_size(optarg, &g->transfer) || !g->transfer)
				return bad_value("--transfer", optarg, "a positive byte count (K, M, G suffixes)");
			break;
		case O_LIST:
			for (const char *const *b = ipc_backends(); *b; b++)
				printf("%s\n", *b);
			return 0;
		case O_LIST_MAX:   /* name and largest message, for scripts */
			for (const char *const *b = ipc_backends(); *b; b++) {
				ipc_info info;
				if (ipc_backend_info(*b, &info) == 0)
					printf("%s %zu\n", *b, info.max_msg);
			}
			return 0;
		case O_GAP:
			if ((r = parse_gaps(g, optarg)) != 0)
				return r;
			break;
		case O_SERVE:
		case O_CONNECT:
			url = optarg;
			if (remote_parse_url(url, opt == O_SERVE ? g->serve : g->connect, sizeof(g->serve)))
				return bad_value(opt == O_SERVE ? "--serve" : "--connect", url, "tcp://HOST:PORT");
			if (opt == O_CONNECT)
				g->connect_url = url;
			break;
		case O_THREADS: g->o.threads = true; break;
		case O_SEED:
			if (parse_count(optarg, &g->o.seed))
				return bad_value("--seed", optarg, "a non-negative integer");
			break;
		case O_CORRUPT: g->o.corrupt = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (g->serve[0] && g->connect[0]) {
		fprintf(stderr, "ipckit-bench: --serve and --connect exclude each other\n");
		return 2;
	}
	if (argc == 1)
		g->report_dir = "ipckit-report";
	if (quick) {
		g->o.count = g->o.count_set ? g->o.count : 2000;
		g->o.warmup = warm_set ? g->o.warmup : 200;
		g->o.duration = dur_set ? g->o.duration : 0.1;
		g->o.lat_cap = 0.15;
		g->o.rounds = rounds_set ? g->o.rounds : 3;
		g->o.gap_count = 20;
		if (!sizes)
			sizes = "64";
	}
	if (g->o.ngaps) {
		/* --gap alone: only the idle-gap rows, at the smallest size */
		g->o.modes = mode_set ? g->o.modes | MODE_GAP : MODE_GAP;
		if (!sizes)
			sizes = "64";
	}
	if (g->o.count_set)
		g->o.gap_count = g->o.count;
	if (dur_set)
		g->o.lat_cap = g->o.duration;
	if (g->o.count_set)
		g->o.lat_cap = 0;   /* exactly --count samples, however long */
	if (g->transfer) {
		g->o.rounds = 1;
		g->o.modes = MODE_THROUGHPUT;
		g->o.count_set = true;
		g->plan.baseline = g->plan.peers = false;
	}
	g->plan.waits_given = waits != NULL;
	if (parse_sizes(g, sizes ? sizes : g->transfer ? "64K" : "64,4K,64K,1M") ||
	    parse_waits(g, waits ? waits : argc == 1 ? "adaptive,spin,block" : "adaptive") ||
	    parse_backends(g, backends) || parse_pin(g, pin))
		return 2;
	if (g->transfer) {
		if (g->plan.nbe != 1) {
			fprintf(stderr, "ipckit-bench: --transfer needs exactly one --backend\n");
			return 2;
		}
		g->o.count = (g->transfer + g->sizes[0] - 1) / g->sizes[0];
		g->o.batch = g->o.batch > 1 ? g->o.batch : 1;
	}
	return -1;
}
