/*
 * ipckit-bench - measure every ipckit backend the same way, next to the
 * raw system calls of each mechanism and, where built, ZeroMQ and nng.
 * See docs/benchmarking.md for the method and DESIGN.md for the stable
 * command line and results.json schema.
 *
 * Process tree: this process plans the groups (mechanism x size) and, for
 * each, forks --pairs leaders; each leader forks its child and runs the
 * group (harness.c), streaming progress and finished rows back through a
 * pipe. A leader that hangs is killed with its child after a generous
 * timeout, and the run goes on with the next group but exits non-zero.
 */
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <glob.h>
#include <math.h>
#include <mqueue.h>
#include <limits.h>
#include <poll.h>
#include <ctype.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHANS 16
#define MAX_BACKENDS 16
#define MAX_SIZES 32
#define MAX_WAITS 3
#define SEND_ROW_MAX 4096 /* sizes that also get a one-ipc_send-per-message throughput row */

enum { REC_PROGRESS = 1, REC_ROW = 2, REC_ERROR = 3 };

static const char *const wait_names[] = { "adaptive", "block", "spin" };

struct backend_info {
	char name[16];
	size_t max_msg;
	unsigned caps;
	bool ok;
	char why[96];
};

static struct {
	struct bench_opts o;
	struct backend_info be[MAX_BACKENDS];
	int nbe;
	size_t sizes[MAX_SIZES];
	int nsizes;
	int waits[MAX_WAITS];
	int nwaits;
	bool baseline, peers, quiet, tty;
	const char *json_path, *csv_path, *report_dir;
	char sizes_str[256], waits_str[64];
	uint64_t transfer;
	/* results */
	struct row *rows;
	int nrows, cap_rows;
	struct skip *skips;
	int nskips, cap_skips;
	int failures;
	int group, ngroups;
	uint64_t t_start;
	int progress_fd;   /* in a leader: the pipe to the main process */
} g = { .baseline = true, .peers = true, .progress_fd = -1 };

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
"       ipckit-bench --transfer BYTES [--size SIZE] --backend NAME   (one whole transfer, for hyperfine)\n"
"       ipckit-bench --list\n"
"LIST is comma-separated; sizes take K/M suffixes (64,4K,64K,1M); --wait also takes a list\n"
"(shm gets one row per wait mode). Without arguments: every backend, both modes, sizes\n"
"64,4K,64K,1M, baselines and peers, report in ./ipckit-report/. Extra: --batch N (messages\n"
"per ipc_sendv call in ipckit throughput rows, default 128, at most 64 KiB;\n"
"1 = ipc_send), --rounds N.\n");
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

/* A whole option value that is a non-negative integer. */
static int parse_count(const char *s, uint64_t *out)
{
	char *end;
	int r = parse_u64(s, out, &end);
	return r ? r : *end ? -EINVAL : 0;
}

/* A size: digits, then optionally K, M or G (KiB, MiB, GiB, KB, ... too),
 * or B alone. */
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

/* Split a comma-separated list strictly: no empty items. Returns the
 * number of items (at most max, each copied into items[i] of cap bytes)
 * or -1 after printing what is wrong. */
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

static int parse_sizes(const char *arg)
{
	char items[MAX_SIZES][64];
	int n = split_list("--size", arg, items, MAX_SIZES);
	if (n < 0)
		return -EINVAL;
	snprintf(g.sizes_str, sizeof(g.sizes_str), "%s", arg);
	g.nsizes = 0;
	for (int i = 0; i < n; i++) {
		uint64_t v;
		if (parse_size(items[i], &v)) {
			fprintf(stderr, "ipckit-bench: --size: bad size '%s' (digits, optionally "
					"followed by K, M or G: 64, 4K, 1M)\n", items[i]);
			return -EINVAL;
		}
		if (v < MSG_HDR || v > ((uint64_t)1 << 30)) {
			fprintf(stderr, "ipckit-bench: size %s: must be 16 B (sequence number and "
					"checksum) to 1 GiB\n", items[i]);
			return -EINVAL;
		}
		g.sizes[g.nsizes++] = (size_t)v;
	}
	return 0;
}

static int parse_waits(const char *arg)
{
	char items[MAX_WAITS][64];
	int n = split_list("--wait", arg, items, MAX_WAITS);
	if (n < 0)
		return -EINVAL;
	snprintf(g.waits_str, sizeof(g.waits_str), "%s", arg);
	g.nwaits = 0;
	for (int i = 0; i < n; i++) {
		int w = -1;
		for (int k = 0; k < 3; k++)
			if (!strcmp(items[i], wait_names[k]))
				w = k;
		if (w < 0) {
			fprintf(stderr, "ipckit-bench: bad --wait '%s' (adaptive, block or spin)\n", items[i]);
			return -EINVAL;
		}
		g.waits[g.nwaits++] = w;
	}
	return 0;
}

/* Is this scheme compiled into the library? */
static bool have_backend(const char *name)
{
	for (const char *const *b = ipc_backends(); *b; b++)
		if (!strcmp(*b, name))
			return true;
	return false;
}

static int parse_backends(const char *arg)
{
	char items[MAX_BACKENDS][64];
	g.nbe = 0;
	if (!strcmp(arg, "all")) {
		for (const char *const *b = ipc_backends(); *b && g.nbe < MAX_BACKENDS; b++)
			snprintf(g.be[g.nbe++].name, sizeof(g.be[0].name), "%s", *b);
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
		snprintf(g.be[g.nbe++].name, sizeof(g.be[0].name), "%s", items[i]);
	}
	return 0;
}

/* --pin A,B: exactly two CPU numbers below ncpu. */
static int parse_pin(const char *arg, long ncpu)
{
	char items[3][64];
	int n = split_list("--pin", arg, items, 3);
	if (n < 0)
		return -EINVAL;
	for (int i = 0; i < n && n == 2; i++) {
		uint64_t v;
		if (parse_count(items[i], &v) || v >= (uint64_t)ncpu)
			n = -1;
		else
			g.o.pin[i] = (int)v;
	}
	if (n != 2) {
		fprintf(stderr, "ipckit-bench: --pin '%s': give A,B with two CPU numbers below %ld, "
				"or none\n", arg, ncpu);
		return -EINVAL;
	}
	return 0;
}

/* Learn each backend's max_msg and caps by opening a server (or a pair). */
static void probe_backend(struct backend_info *b)
{
	ipc_chan *c = NULL, *d = NULL;
	ipc_info info;
	char url[256];
	int r;
	if (!strcmp(b->name, "pipe")) {
		r = ipc_pair("pipe", &c, &d, NULL);
	} else {
		if (!strcmp(b->name, "tcp") || !strcmp(b->name, "udp"))
			snprintf(url, sizeof(url), "%s://127.0.0.1:0", b->name);
		else if (!strcmp(b->name, "fifo"))
			snprintf(url, sizeof(url), "fifo:///tmp/ipckit-bench-probe-%d", (int)getpid());
		else if (!strcmp(b->name, "mq"))
			snprintf(url, sizeof(url), "mq:///ipckit-bench-probe-%d", (int)getpid());
		else
			snprintf(url, sizeof(url), "%s://@ipckit-bench-probe-%d", b->name, (int)getpid());
		r = ipc_open(&c, url, IPC_SERVER, NULL);
	}
	if (r >= 0)
		r = ipc_info_get(c, &info);
	if (r >= 0) {
		b->max_msg = info.max_msg;
		b->caps = info.caps;
		b->ok = true;
	} else {
		snprintf(b->why, sizeof(b->why), "cannot open: %s", ipc_strerror(r));
	}
	ipc_close(c);
	ipc_close(d);
}

static json_t *backends_json(void)
{
	static const char *const capn[] = { "reliable", "cross_host", "zero_copy", "listen", "unrelated" };
	json_t *o = json_object();
	for (int i = 0; i < g.nbe; i++) {
		if (!g.be[i].ok)
			continue;
		json_t *caps = json_array();
		for (int k = 0; k < 5; k++)
			if (g.be[i].caps & (1u << k))
				json_array_append_new(caps, json_string(capn[k]));
		json_object_set_new(o, g.be[i].name, json_pack("{s:I, s:o}", "max_msg",
			(json_int_t)g.be[i].max_msg, "caps", caps));
	}
	return o;
}

static void add_skip(const char *be, const char *impl, const char *variant, size_t size, const char *why)
{
	if (g.nskips == g.cap_skips) {
		int n = g.cap_skips ? 2 * g.cap_skips : 32;
		struct skip *s = realloc(g.skips, (size_t)n * sizeof(*s));
		if (!s)
			return;
		g.skips = s;
		g.cap_skips = n;
	}
	struct skip *s = &g.skips[g.nskips++];
	memset(s, 0, sizeof(*s));
	snprintf(s->backend, sizeof(s->backend), "%s", be);
	snprintf(s->impl, sizeof(s->impl), "%s", impl);
	snprintf(s->variant, sizeof(s->variant), "%s", variant);
	s->size = (uint32_t)size;
	snprintf(s->reason, sizeof(s->reason), "%s", why);
}

static struct chan *add_chan(struct chan *cs, int *n, const char *be, const char *impl,
			     const char *variant, int kind, int wait)
{
	struct chan *c = &cs[(*n)++];
	memset(c, 0, sizeof(*c));
	snprintf(c->backend, sizeof(c->backend), "%s", be);
	snprintf(c->impl, sizeof(c->impl), "%s", impl);
	snprintf(c->variant, sizeof(c->variant), "%s", variant);
	snprintf(c->wait, sizeof(c->wait), "%s", wait_names[wait]);
	c->kind = kind;
	c->wait_mode = wait;
	return c;
}

/* The channels of one group: ipckit, its raw baselines, the peers. */
static int plan_group(const struct backend_info *b, size_t size, struct chan *cs)
{
	static const struct { const char *be; int kind; const char *variant; } raws[] = {
		{ "tcp", CK_RAW_TCP, "" }, { "udp", CK_RAW_UDP, "" }, { "unix", CK_RAW_UNIX, "" },
		{ "fifo", CK_RAW_FIFO, "" }, { "pipe", CK_RAW_PIPE, "" }, { "mq", CK_RAW_MQ, "" },
		{ "shm", CK_RAW_SPIN, "spin" }, { "shm", CK_RAW_EVENTFD, "eventfd" },
	};
	char why[96];
	int n = 0;
	bool shm = !strcmp(b->name, "shm");

	if (size > b->max_msg) {
		snprintf(why, sizeof(why), "larger than the backend's max_msg (%zu)", b->max_msg);
		add_skip(b->name, "ipckit", "", size, why);
	} else {
		for (int w = 0; w < (shm ? g.nwaits : 1); w++) {
			struct chan *c = add_chan(cs, &n, b->name, "ipckit", "", CK_IPCKIT, g.waits[w]);
			c->lossy = !(b->caps & IPC_CAP_RELIABLE);
		}
		/* Small messages: also a throughput row with one ipc_send per
		 * message, the like-for-like comparison with the raw rows (one
		 * system call per message) and between backends whatever their
		 * batching. */
		if ((g.o.modes & MODE_THROUGHPUT) && g.o.batch > 1 && size <= SEND_ROW_MAX) {
			struct chan *c = add_chan(cs, &n, b->name, "ipckit", "send", CK_IPCKIT, g.waits[0]);
			c->lossy = !(b->caps & IPC_CAP_RELIABLE);
			c->tput_only = true;
			c->batch = 1;
		}
		/* Where the zero-copy calls really are zero-copy, a row for them. */
		if (b->caps & IPC_CAP_ZERO_COPY) {
			struct chan *c = add_chan(cs, &n, b->name, "ipckit", "zerocopy", CK_IPCKIT, g.waits[0]);
			c->zerocopy = true;
			c->lossy = !(b->caps & IPC_CAP_RELIABLE);
		}
	}
	for (size_t i = 0; g.baseline && i < sizeof(raws) / sizeof(raws[0]); i++) {
		if (strcmp(raws[i].be, b->name))
			continue;
		/* Raw rows record "block" (the kernel waits) or "spin". */
		struct chan *c = add_chan(cs, &n, b->name, "raw", raws[i].variant, raws[i].kind,
					  raws[i].kind == CK_RAW_SPIN ? IPC_WAIT_SPIN : IPC_WAIT_BLOCK);
		c->lossy = raws[i].kind == CK_RAW_UDP;
		if (size > chan_raw_limit(c)) {
			snprintf(why, sizeof(why), "larger than the mechanism's limit (%zu)", chan_raw_limit(c));
			add_skip(b->name, "raw", raws[i].variant, size, why);
			n--;
		}
	}
	const char *peer_be = !strcmp(b->name, "unix") ? "ipc" : !strcmp(b->name, "tcp") ? "tcp" : NULL;
	if (g.peers && peer_be) {
#ifdef BENCH_HAVE_ZMQ
		add_chan(cs, &n, peer_be, "zmq", "", CK_ZMQ, IPC_WAIT_BLOCK);
#endif
#ifdef BENCH_HAVE_NNG
		add_chan(cs, &n, peer_be, "nng", "", CK_NNG, IPC_WAIT_BLOCK);
#endif
	}
	for (int i = 0; i < n; i++)
		cs[i].size = size;
	return n;
}

/* ---- leader side: records to the main process ---- */

static void rec_write(int type, const void *p, size_t len)
{
	uint32_t h[2] = { (uint32_t)type, (uint32_t)len };
	if (g.progress_fd < 0)
		return;
	if (ctl_write(g.progress_fd, h, sizeof(h)) == 0)
		ctl_write(g.progress_fd, p, len);
}

static void leader_progress(const char *msg)
{
	rec_write(REC_PROGRESS, msg, strlen(msg));
}

/* Only the first of several concurrent pairs reports progress. */
static void no_progress(const char *msg)
{
	(void)msg;
}

/* ---- main side ---- */

static void show_progress(const char *msg)
{
	if (g.quiet)
		return;
	double t = (double)(now_ns() - g.t_start) / 1e9;
	if (g.tty)
		fprintf(stderr, "\r\033[K[%3d/%d %5.1fs] %s", g.group, g.ngroups, t, msg);
	else
		fprintf(stderr, "[%3d/%d %5.1fs] %s\n", g.group, g.ngroups, t, msg);
}

static int add_row(const struct row *w)
{
	if (g.nrows == g.cap_rows) {
		int n = g.cap_rows ? 2 * g.cap_rows : 64;
		struct row *r = realloc(g.rows, (size_t)n * sizeof(*r));
		if (!r)
			return -ENOMEM;
		g.rows = r;
		g.cap_rows = n;
	}
	g.rows[g.nrows++] = *w;
	return 0;
}

/* Fold row src of another concurrent pair into dst. */
static void merge_pair_row(struct row *dst, const struct row *src)
{
	dst->pairs++;
	dst->errors += src->errors;
	dst->lost += src->lost;
	if (dst->mode == MODE_LATENCY) {
		hist_merge(&dst->h, &src->h);
		dst->count = dst->h.count;
		return;
	}
	double a = (double)dst->count, b = (double)src->count;
	for (int k = 0; k < 2; k++) {
		if (a + b > 0)
			dst->cpu_ns[k] = (dst->cpu_ns[k] * a + src->cpu_ns[k] * b) / (a + b);
		dst->ctx[k] += src->ctx[k];
	}
	dst->count += src->count;
	dst->sent += src->sent;
	dst->msgs_per_s += src->msgs_per_s;
	dst->bytes_per_s += src->bytes_per_s;
	if (src->elapsed_s > dst->elapsed_s)
		dst->elapsed_s = src->elapsed_s;
}

/* ---- interruption and leftovers ---- */

/* Leaders of the group being run (their process groups), for the handler. */
static volatile pid_t live_leaders[64];
static volatile sig_atomic_t stop_signal;

/* SIGINT / SIGTERM in the main process: pass SIGTERM on to every leader's
 * process group (a leader and its child); run_planned then waits for them. */
static void main_signal(int sig)
{
	stop_signal = sig;
	for (int p = 0; p < 64; p++)
		if (live_leaders[p] > 0)
			kill(-live_leaders[p], SIGTERM);
}

static void unlink_glob(const char *pattern, bool mq)
{
	glob_t gl;
	if (glob(pattern, GLOB_NOSORT, NULL, &gl) != 0)
		return;
	for (size_t i = 0; i < gl.gl_pathc; i++) {
		if (mq) {
			const char *base = strrchr(gl.gl_pathv[i], '/');
			if (base)
				mq_unlink(base);
		} else {
			unlink(gl.gl_pathv[i]);
		}
	}
	globfree(&gl);
}

/* Remove what a leader that was killed or failed may have left: every name
 * a group creates carries its leader's pid (ipckit fifo and mq servers:
 * ipckit-bench-<pid>-<n>.*; raw FIFOs and ZeroMQ/nng ipc:// sockets:
 * ipckit-bench-<kind>-<pid>-<n>.*). */
static void remove_leftovers(pid_t leader)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "/tmp/ipckit-bench-%d-*", (int)leader);
	unlink_glob(pat, false);
	snprintf(pat, sizeof(pat), "/tmp/ipckit-bench-*-%d-*", (int)leader);
	unlink_glob(pat, false);
	snprintf(pat, sizeof(pat), "/dev/mqueue/ipckit-bench-%d-*", (int)leader);
	unlink_glob(pat, true);
}

/* Wait for a leader (at most timeout_ms, then kill its process group;
 * -1: as long as it takes). */
static int reap_leader(pid_t pid, int timeout_ms, int *st)
{
	if (timeout_ms < 0) {
		while (waitpid(pid, st, 0) < 0)
			if (errno != EINTR || stop_signal)
				return reap_leader(pid, 3000, st);
		return 0;
	}
	for (int t = 0;; t += 10) {
		pid_t w = waitpid(pid, st, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (t >= timeout_ms) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, st, 0) < 0 && errno == EINTR)
				;
			return 0;
		}
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
}

/* Run one group with --pairs leaders; add its rows. 0 or -errno. */
static int run_planned(struct chan *cs, int n)
{
	int np = g.o.pairs, fds[64], alive = 0, r = 0, errs[64] = { 0 };
	pid_t pids[64];
	struct row *got[64] = { 0 };
	int ngot[64] = { 0 };
	sigset_t block, oldmask;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	double per = (g.o.lat_cap > 0 ? g.o.lat_cap : 60) + (g.o.count_set ? 60 : g.o.duration);
	int timeout_ms = (int)((30 + 4 * per * n) * 1000);
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (int p = 0; p < np; p++) {
		int pp[2];
		if (pipe2(pp, O_CLOEXEC) < 0)
			return -errno;
		fflush(NULL);
		/* No signal between the fork and the leader's pid being known
		 * (parent) or its own handlers being set (leader). */
		sigprocmask(SIG_BLOCK, &block, &oldmask);
		pids[p] = fork();
		if (pids[p] < 0) {
			int e = -errno;
			sigprocmask(SIG_SETMASK, &oldmask, NULL);
			close(pp[0]);
			close(pp[1]);
			np = p;
			r = e;
			break;
		}
		if (pids[p] == 0) {
			static struct row rows[2 * MAX_CHANS];
			/* run_group sets the leader's own handlers (SIGTERM:
			 * kill the child, remove names, exit). */
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			sigprocmask(SIG_SETMASK, &oldmask, NULL);
			close(pp[0]);
			setpgid(0, 0);
			g.progress_fd = pp[1];
			int k = run_group(cs, n, &g.o, rows, 2 * MAX_CHANS,
					  p == 0 ? leader_progress : no_progress);
			for (int i = 0; i < k; i++)
				rec_write(REC_ROW, &rows[i], sizeof(rows[i]));
			if (k < 0)
				rec_write(REC_ERROR, &k, sizeof(k));
			_exit(k < 0 ? 1 : 0);
		}
		setpgid(pids[p], pids[p]);
		live_leaders[p] = pids[p];
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		if (stop_signal)
			kill(-pids[p], SIGTERM);
		close(pp[1]);
		fds[p] = pp[0];
		got[p] = calloc(2 * MAX_CHANS, sizeof(struct row));
		if (!got[p])
			r = -ENOMEM;
		alive++;
	}
	/* Read every leader's records until all hang up or time runs out. */
	while (alive > 0) {
		struct pollfd pf[64];
		for (int p = 0; p < np; p++)
			pf[p] = (struct pollfd){ .fd = fds[p], .events = POLLIN };
		uint64_t now = now_ns();
		int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000u);
		int k = poll(pf, (nfds_t)np, left);
		if (stop_signal) {
			r = -EINTR;
			break;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "\nipckit-bench: %s %zu B: no progress for too long; killed\n",
				cs[0].backend, cs[0].size);
			for (int p = 0; p < np; p++)
				if (fds[p] >= 0)
					kill(-pids[p], SIGKILL);
			r = -ETIMEDOUT;
			break;
		}
		for (int p = 0; p < np; p++) {
			if (fds[p] < 0 || !(pf[p].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			uint32_t h[2];
			int e = ctl_read(fds[p], h, sizeof(h), 5000);
			if (e == 0 && h[0] == REC_PROGRESS && h[1] < 256) {
				char msg[256];
				e = ctl_read(fds[p], msg, h[1], 5000);
				msg[h[1]] = 0;
				if (!e && p == 0)
					show_progress(msg);
			} else if (e == 0 && h[0] == REC_ROW && h[1] == sizeof(struct row) &&
				   ngot[p] < 2 * MAX_CHANS && got[p]) {
				e = ctl_read(fds[p], &got[p][ngot[p]], sizeof(struct row), 5000);
				if (!e)
					ngot[p]++;
			} else if (e == 0 && h[0] == REC_ERROR && h[1] == sizeof(int)) {
				e = ctl_read(fds[p], &errs[p], sizeof(int), 5000);
			} else if (e == 0) {
				e = -EPROTO;
			}
			if (e) {
				close(fds[p]);
				fds[p] = -1;
				alive--;
			}
		}
	}
	if (stop_signal) {
		/* Interrupted: the handler sent SIGTERM to every leader (again
		 * here for one forked meanwhile); they clean up and exit. */
		for (int p = 0; p < np; p++)
			kill(-pids[p], SIGTERM);
	}
	for (int p = 0; p < np; p++) {
		int st = 0;
		if (fds[p] >= 0)
			close(fds[p]);
		reap_leader(pids[p], stop_signal ? 3000 : -1, &st);
		live_leaders[p] = 0;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			if (!r && errs[p] < 0) {
				r = errs[p];
			} else if (!r) {
				fprintf(stderr, "%sipckit-bench: %s %zu B: leader %s %d\n", g.tty ? "\n" : "",
					cs[0].backend, cs[0].size,
					WIFSIGNALED(st) ? "killed by signal" : "exited with status",
					WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				r = WIFSIGNALED(st) ? -ECANCELED : -EIO;
			}
		}
		/* A killed leader may leave its child: take the group down,
		 * and whatever names it had not removed yet. */
		kill(-pids[p], SIGKILL);
		if (r || !WIFEXITED(st) || WEXITSTATUS(st))
			remove_leftovers(pids[p]);
	}
	if (!r) {
		for (int p = 1; p < np; p++)
			if (ngot[p] != ngot[0])
				r = -EPROTO;
	}
	if (!r) {
		for (int i = 0; i < ngot[0]; i++) {
			struct row w = got[0][i];
			for (int p = 1; p < np; p++)
				merge_pair_row(&w, &got[p][i]);
			w.pairs = np;
			if (add_row(&w))
				r = -ENOMEM;
		}
	}
	for (int p = 0; p < 64 && p < g.o.pairs; p++)
		free(got[p]);
	return r;
}

static int mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int do_transfer(void)
{
	struct chan c;
	static struct row rows[2];
	struct backend_info *b = &g.be[0];
	int n = 0;
	if (g.nbe != 1) {
		fprintf(stderr, "ipckit-bench: --transfer needs exactly one --backend\n");
		return 2;
	}
	probe_backend(b);
	if (!b->ok || g.sizes[0] > b->max_msg) {
		fprintf(stderr, "ipckit-bench: %s: %s\n", b->name,
			b->ok ? "--size is larger than the backend's max_msg" : b->why);
		return 2;
	}
	add_chan(&c, &n, b->name, "ipckit", "", CK_IPCKIT, g.waits[0]);
	c.size = g.sizes[0];
	c.lossy = !(b->caps & IPC_CAP_RELIABLE);
	g.o.modes = MODE_THROUGHPUT;
	g.o.count_set = true;
	g.o.count = (g.transfer + c.size - 1) / c.size;
	uint64_t t0 = now_ns();
	int k = run_group(&c, 1, &g.o, rows, 2, leader_progress);
	double s = (double)(now_ns() - t0) / 1e9;
	if (k != 1 || rows[0].errors) {
		fprintf(stderr, "ipckit-bench: transfer over %s failed\n", b->name);
		return 1;
	}
	if (!g.quiet)
		printf("%s: %.1f MiB in %zu B messages in %.3f s: %.1f MiB/s%s\n", b->name,
		       (double)rows[0].count * (double)c.size / 1048576.0, c.size, s,
		       rows[0].bytes_per_s / 1048576.0, rows[0].lost ? " (udp: some lost)" : "");
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_NOBASE = 256, O_NOPEERS, O_QUICK, O_BATCH, O_ROUNDS, O_TRANSFER, O_LIST };
	static const struct option lo[] = {
		{ "backend", 1, 0, 'b' }, { "size", 1, 0, 's' }, { "mode", 1, 0, 'm' },
		{ "count", 1, 0, 'n' }, { "duration", 1, 0, 'd' }, { "warmup", 1, 0, 'w' },
		{ "wait", 1, 0, 'W' }, { "pin", 1, 0, 'p' }, { "no-baseline", 0, 0, O_NOBASE },
		{ "no-peers", 0, 0, O_NOPEERS }, { "rate", 1, 0, 'r' }, { "pairs", 1, 0, 'P' },
		{ "quick", 0, 0, O_QUICK }, { "json", 1, 0, 'j' }, { "csv", 1, 0, 'c' },
		{ "report", 1, 0, 'R' }, { "quiet", 0, 0, 'q' }, { "batch", 1, 0, O_BATCH },
		{ "rounds", 1, 0, O_ROUNDS }, { "transfer", 1, 0, O_TRANSFER }, { "list", 0, 0, O_LIST },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	const char *backends = "all", *sizes = NULL, *waits = NULL, *pin = NULL;
	bool quick = false, dur_set = false, warm_set = false;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int opt;
	char *end;

	g.o = (struct bench_opts){ .modes = MODE_LATENCY | MODE_THROUGHPUT, .count = 20000,
				   .warmup = 2000, .duration = 0.5, .lat_cap = 0.5, .rounds = 200,
				   .batch = 128, .pairs = 1, .pin = { 0, 1 } };
	while ((opt = getopt_long(argc, argv, "b:s:m:n:d:w:W:p:r:P:j:c:R:qh", lo, NULL)) != -1) {
		switch (opt) {
		case 'b': backends = optarg; break;
		case 's': sizes = optarg; break;
		case 'm':
			if (!strcmp(optarg, "latency"))
				g.o.modes = MODE_LATENCY;
			else if (!strcmp(optarg, "throughput"))
				g.o.modes = MODE_THROUGHPUT;
			else if (!strcmp(optarg, "both"))
				g.o.modes = MODE_LATENCY | MODE_THROUGHPUT;
			else
				goto bad;
			break;
		case 'n':
			if (parse_count(optarg, &g.o.count) || !g.o.count)
				return bad_value("--count", optarg, "a positive integer");
			g.o.count_set = true;
			break;
		case 'd':
			g.o.duration = strtod(optarg, &end);
			if (end == optarg || *end || !(g.o.duration > 0) || g.o.duration > 3600)
				return bad_value("--duration", optarg, "seconds, above 0 and at most 3600");
			dur_set = true;
			break;
		case 'w':
			if (parse_count(optarg, &g.o.warmup))
				return bad_value("--warmup", optarg, "a non-negative integer");
			warm_set = true;
			break;
		case 'W': waits = optarg; break;
		case 'p': pin = optarg; break;
		case 'r':
			g.o.rate = strtod(optarg, &end);
			if (end == optarg || *end || !isfinite(g.o.rate) || g.o.rate < 1 || g.o.rate > 1e9)
				return bad_value("--rate", optarg, "messages per second from 1 to 1e9");
			break;
		case 'P':
			g.o.pairs = (int)strtol(optarg, &end, 10);
			if (*end || g.o.pairs < 1 || g.o.pairs > 64)
				goto bad;
			break;
		case 'j': g.json_path = optarg; break;
		case 'c': g.csv_path = optarg; break;
		case 'R': g.report_dir = optarg; break;
		case 'q': g.quiet = true; break;
		case O_NOBASE: g.baseline = false; break;
		case O_NOPEERS: g.peers = false; break;
		case O_QUICK: quick = true; break;
		case O_BATCH:
			g.o.batch = (int)strtol(optarg, &end, 10);
			if (*end || g.o.batch < 1 || g.o.batch > 256)
				goto bad;
			break;
		case O_ROUNDS:
			g.o.rounds = (int)strtol(optarg, &end, 10);
			if (*end || g.o.rounds < 1 || g.o.rounds > 1000)
				goto bad;
			break;
		case O_TRANSFER:
			if (parse_size(optarg, &g.transfer) || !g.transfer)
				return bad_value("--transfer", optarg, "a positive byte count (K, M, G suffixes)");
			break;
		case O_LIST:
			for (const char *const *b = ipc_backends(); *b; b++)
				printf("%s\n", *b);
			return 0;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (optind < argc)
		goto bad;
	if (argc == 1)
		g.report_dir = "ipckit-report";
	if (quick) {
		g.o.count = g.o.count_set ? g.o.count : 2000;
		g.o.warmup = warm_set ? g.o.warmup : 200;
		g.o.duration = dur_set ? g.o.duration : 0.1;
		g.o.lat_cap = 0.15;
		g.o.rounds = 20;
		if (!sizes)
			sizes = "64";
	}
	if (dur_set)
		g.o.lat_cap = g.o.duration;
	if (g.o.count_set)
		g.o.lat_cap = 0;   /* exactly --count samples, however long */
	if (parse_sizes(sizes ? sizes : g.transfer ? "64K" : "64,4K,64K,1M") ||
	    parse_waits(waits ? waits : (argc == 1 ? "adaptive,spin,block" : "adaptive")) ||
	    parse_backends(backends))
		return 2;
	if (pin && !strcmp(pin, "none")) {
		g.o.pin[0] = g.o.pin[1] = -1;
	} else if (pin) {
		if (parse_pin(pin, ncpu))
			return 2;
	} else {
		/* The first two CPUs this process may run on (a container or
		 * taskset may exclude 0 and 1); none when there is only one. */
		cpu_set_t set;
		int k = 0;
		g.o.pin[0] = g.o.pin[1] = -1;
		if (sched_getaffinity(0, sizeof(set), &set) == 0)
			for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
				if (CPU_ISSET(c, &set))
					g.o.pin[k++] = c;
		if (k < 2)
			g.o.pin[0] = g.o.pin[1] = -1;
	}
	signal(SIGPIPE, SIG_IGN);   /* raw baselines write to pipes and sockets */
	if (g.transfer)
		return do_transfer();   /* run_group's own handlers: SIGINT cleans up */

	/* Ctrl-C reaches only this process (leaders have their own process
	 * groups): pass it on to them, wait, then exit 130 (143: SIGTERM). */
	struct sigaction sa = { .sa_handler = main_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	g.tty = isatty(2);
	g.t_start = now_ns();
	double load0 = -1, load1 = -1;
	getloadavg(&load0, 1);
	for (int i = 0; i < g.nbe; i++) {
		probe_backend(&g.be[i]);
		if (!g.be[i].ok)
			for (int s = 0; s < g.nsizes; s++)
				add_skip(g.be[i].name, "ipckit", "", g.sizes[s], g.be[i].why);
	}
	g.ngroups = 0;
	for (int i = 0; i < g.nbe; i++)
		g.ngroups += g.be[i].ok ? g.nsizes : 0;
	for (int i = 0; i < g.nbe; i++) {
		if (!g.be[i].ok)
			continue;
		for (int s = 0; s < g.nsizes && !stop_signal; s++) {
			struct chan cs[MAX_CHANS];
			int n = plan_group(&g.be[i], g.sizes[s], cs);
			g.group++;
			if (n == 0)
				continue;
			int r = run_planned(cs, n);
			if (stop_signal)
				break;
			if (r) {
				g.failures++;
				fprintf(stderr, "%sipckit-bench: %s %zu B failed: %s\n", g.tty ? "\n" : "",
					g.be[i].name, g.sizes[s], ipc_strerror(r));
			}
		}
	}
	if (g.tty && !g.quiet)
		fprintf(stderr, "\r\033[K");
	if (stop_signal) {
		fprintf(stderr, "ipckit-bench: interrupted (%s); nothing written\n",
			stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
		return 128 + stop_signal;
	}

	getloadavg(&load1, 1);
	struct run_info ri = { .load = { load0, load1 }, .o = &g.o, .waits = g.waits_str, .sizes = g.sizes_str,
			       .total_s = (double)(now_ns() - g.t_start) / 1e9,
			       .failures = g.failures, .backends = backends_json() };
	json_t *doc = results_json(g.rows, g.nrows, g.skips, g.nskips, &ri);
	int rc = g.failures ? 1 : 0;
	if (!doc) {
		fprintf(stderr, "ipckit-bench: cannot build the results document\n");
		return 1;
	}
	/* A backend named in --backend that gave no ipckit row fails the run
	 * (with "all", the default, it is only listed under "Not measured"). */
	for (int i = 0; strcmp(backends, "all") && i < g.nbe; i++) {
		int k = 0;
		for (int j = 0; j < g.nrows; j++)
			k += !strcmp(g.rows[j].backend, g.be[i].name) && !strcmp(g.rows[j].impl, "ipckit");
		if (k == 0) {
			fprintf(stderr, "ipckit-bench: %s was named in --backend but nothing was measured: %s\n",
				g.be[i].name, !g.be[i].ok ? g.be[i].why :
				"every size failed or was skipped (see above and \"Not measured\")");
			rc = 1;
		}
	}
	for (int i = 0; i < g.nrows; i++)
		if (g.rows[i].errors) {
			fprintf(stderr, "ipckit-bench: %s %s %u B: %llu integrity errors\n", g.rows[i].backend,
				g.rows[i].impl, g.rows[i].size, (unsigned long long)g.rows[i].errors);
			rc = 1;
		}
	if (!g.quiet)
		print_table(doc, stdout);
	if (g.json_path && json_dump_file(doc, g.json_path, JSON_INDENT(1)) < 0) {
		fprintf(stderr, "ipckit-bench: cannot write %s\n", g.json_path);
		rc = 1;
	}
	if (g.csv_path && write_csv(doc, g.csv_path) < 0) {
		fprintf(stderr, "ipckit-bench: cannot write %s\n", g.csv_path);
		rc = 1;
	}
	if (g.report_dir) {
		char p[PATH_MAX], hf[PATH_MAX];
		const char *name = "this machine";
		int e = mkdir_p(g.report_dir);
		snprintf(p, sizeof(p), "%s/results.json", g.report_dir);
		if (!e && json_dump_file(doc, p, JSON_INDENT(1)) < 0)
			e = -EIO;
		snprintf(p, sizeof(p), "%s/results.csv", g.report_dir);
		if (!e)
			e = write_csv(doc, p);
		snprintf(hf, sizeof(hf), "%s/hyperfine.md", g.report_dir);
		if (!e)
			e = write_report(&doc, &name, 1, g.report_dir, access(hf, R_OK) == 0 ? hf : NULL);
		if (e) {
			fprintf(stderr, "ipckit-bench: cannot write the report in %s: %s\n", g.report_dir,
				strerror(-e));
			rc = 1;
		} else if (!g.quiet) {
			printf("\nReport: %s/report.md (%.0f s in all)\n", g.report_dir, ri.total_s);
		}
	}
	if (!g.quiet)
		printf("Total time: %.1f s%s\n", ri.total_s, rc ? "  (FAILED: see the messages above)" : "");
	json_decref(doc);
	free(g.rows);
	free(g.skips);
	return stop_signal ? 128 + stop_signal : rc;
bad:
	usage(stderr);
	return 2;
}
