/*
 * harness.c - one group (every row of one size) in a leader and its echo
 * side. The leader (CPU A) pings and sends; the echo side (CPU B) echoes
 * and receives. The echo side of a row is a child process, a thread of the
 * leader (rows with spec.threads: backends without IPC_CAP_PROCESS, or
 * --threads), or a remote host (--connect). Rows are opened one at a time,
 * each confirmed by a hello; right after it the leader reads the tuning of
 * the descriptors the row opened, which the raw rows compared with it copy.
 *
 * Then --rounds rounds: in each, every row takes its turns (latency,
 * throughput, one per idle gap) in an order shuffled per round. The leader
 * announces each turn on the control socket of the row's echo side, runs
 * it (turns.c) and stores the turn's figures as that round's.
 */
#include "remote.h"
#include "turns.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTL_TIMEOUT_MS 120000
#define MAX_FDS 1024

enum { T_PONG = 1, T_SINK = 2, T_DONE = 3 };

struct turn_desc {
	uint32_t what, row, turn, pad;
};

/* ---- descriptors and their tuning ---- */

struct fdset { int n; int fd[MAX_FDS]; };

static void fds_list(struct fdset *s)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	s->n = 0;
	if (!d)
		return;
	while ((de = readdir(d)) && s->n < MAX_FDS)
		if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && atoi(de->d_name) != dirfd(d))
			s->fd[s->n++] = atoi(de->d_name);
	closedir(d);
}

static bool fds_has(const struct fdset *s, int fd)
{
	for (int i = 0; i < s->n; i++)
		if (s->fd[i] == fd)
			return true;
	return false;
}

/* Shared memory mapped from memfds (start addresses and sizes). */
struct maps { int n; uint64_t start[64], len[64]; };

static void maps_list(struct maps *m)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	m->n = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f) && m->n < 64) {
		unsigned long long a, b;
		if (strstr(line, "/memfd:") && sscanf(line, "%llx-%llx", &a, &b) == 2) {
			m->start[m->n] = a;
			m->len[m->n++] = b - a;
		}
	}
	fclose(f);
}

static uint64_t maps_new_bytes(const struct maps *before)
{
	struct maps now;
	uint64_t sum = 0;
	maps_list(&now);
	for (int i = 0; i < now.n; i++) {
		int j;
		for (j = 0; j < before->n && before->start[j] != now.start[i]; j++)
			;
		if (j == before->n)
			sum += now.len[i];
	}
	return sum;
}

/* What the descriptors of a row were given: those it opened (in now, not
 * in before) and those made for it before the fork that are still open. */
static void tuning_probe(const struct fdset *before, const struct fdset *prep, struct tuning *t)
{
	struct fdset now;
	memset(t, 0, sizeof(*t));
	fds_list(&now);
	for (int i = 0; i < now.n; i++) {
		int fd = now.fd[i], v = 0;
		socklen_t l = sizeof(v);
		struct stat st;
		struct mq_attr a;
		if ((fds_has(before, fd) && !fds_has(prep, fd)) || fstat(fd, &st) < 0)
			continue;
		if (S_ISFIFO(st.st_mode)) {
			v = fcntl(fd, F_GETPIPE_SZ);
			if (v > 0 && (uint32_t)v > t->pipe_sz)
				t->pipe_sz = (uint32_t)v;
		} else if (S_ISSOCK(st.st_mode)) {
			if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l) == 0 && (uint32_t)v > t->sndbuf)
				t->sndbuf = (uint32_t)v;
			l = sizeof(v);
			if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &l) == 0 && (uint32_t)v > t->rcvbuf)
				t->rcvbuf = (uint32_t)v;
		} else if (mq_getattr(fd, &a) == 0) {
			t->mq_maxmsg = (uint32_t)a.mq_maxmsg;
			t->mq_msgsize = (uint32_t)a.mq_msgsize;
		}
	}
}

static void size_k(char *buf, size_t cap, uint64_t v)
{
	if (v >= (1u << 20))
		snprintf(buf, cap, v % (1u << 20) ? "%.1fM" : "%.0fM", (double)v / 1048576.0);
	else if (v >= 1024)
		snprintf(buf, cap, v % 1024 ? "%.1fK" : "%.0fK", (double)v / 1024.0);
	else
		snprintf(buf, cap, "%llu", (unsigned long long)v);
}

/* "pipe 128K", "sockbuf 208K/208K", "queue 10x8K", "shm 2M". A channel in
 * shared memory shows only that: its sockets carry the rendezvous. */
static void tuning_str(const struct tuning *t, char *buf, size_t cap)
{
	char a[32], b[32];
	size_t n = 0;
	buf[0] = 0;
	if (t->shm_bytes) {
		size_k(a, sizeof(a), t->shm_bytes);
		snprintf(buf, cap, "shm %s", a);
		return;
	}
	if (t->pipe_sz) {
		size_k(a, sizeof(a), t->pipe_sz);
		n += (size_t)snprintf(buf + n, cap - n, "pipe %s", a);
	}
	if (t->sndbuf && n < cap) {
		size_k(a, sizeof(a), t->sndbuf);
		size_k(b, sizeof(b), t->rcvbuf);
		n += (size_t)snprintf(buf + n, cap - n, "%ssockbuf %s/%s", n ? ", " : "", a, b);
	}
	if (t->mq_maxmsg && n < cap) {
		size_k(a, sizeof(a), t->mq_msgsize);
		snprintf(buf + n, cap - n, "%squeue %ux%s", n ? ", " : "", t->mq_maxmsg, a);
	}
}

/* ---- rows ---- */

static void label_row(struct row *w, const struct chan *c, int mode, double gap_ms,
		      const struct bench_opts *o, bool remote)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->backend, sizeof(w->backend), "%s", c->s.backend);
	snprintf(w->impl, sizeof(w->impl), "%s", c->s.impl);
	snprintf(w->variant, sizeof(w->variant), "%s", c->s.variant);
	snprintf(w->wait, sizeof(w->wait), "%s", c->s.wait);
	snprintf(w->group, sizeof(w->group), "%s", c->s.group);
	snprintf(w->baseline, sizeof(w->baseline), "%s", c->s.baseline);
	w->mode = mode;
	w->size = c->s.size;
	w->pairs = 1;
	w->batch = mode == MODE_THROUGHPUT ? batch_of(c, o) : 1;
	w->threads = c->s.threads;
	w->remote = remote;
	w->lossy = c->s.lossy;
	w->rate = mode == MODE_LATENCY ? o->rate : 0;
	w->gap_ms = gap_ms;
	hist_init(&w->h);
}

struct turn_plan { int chan, row, mode; uint64_t gap_ns; };

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void shuffle(struct turn_plan *t, int n, uint64_t seed, int round)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + (uint64_t)round * 0xbf58476d1ce4e5b9ull + 1;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)(rng_next(&x) % (uint64_t)(i + 1));
		struct turn_plan tmp = t[i];
		t[i] = t[j];
		t[j] = tmp;
	}
}

static uint64_t per_round(uint64_t total, int rounds)
{
	return (total + (uint64_t)rounds - 1) / (uint64_t)rounds;
}

/* Store one turn's outcome as round r of row w. */
static void account(struct row *w, int r, const struct turn_out *t, const hist *th)
{
	w->errors += t->errors + t->echo.errors;
	w->lost += t->lost;
	w->elapsed_s += (double)t->elapsed_ns / 1e9;
	w->ctx[0] += t->nvcsw + t->nivcsw;
	w->ctx[1] += t->echo.nvcsw + t->echo.nivcsw;
	w->vcsw[0] += t->nvcsw;
	w->vcsw[1] += t->echo.nvcsw;
	if (r + 1 > w->rounds)
		w->rounds = r + 1;
	if (w->mode != MODE_THROUGHPUT) {
		w->count += t->count;
		hist_merge(&w->h, th);
		w->fig[r][FIG_P50] = (double)hist_percentile(th, 50);
		w->fig[r][FIG_P90] = (double)hist_percentile(th, 90);
		w->fig[r][FIG_P99] = (double)hist_percentile(th, 99);
		w->fig[r][FIG_P999] = (double)hist_percentile(th, 99.9);
		w->fig[r][FIG_MEAN] = hist_mean(th);
		return;
	}
	w->count += t->count;
	w->sent += t->sent;
	w->fig[r][FIG_MSGS] = t->elapsed_ns ? (double)t->count * 1e9 / (double)t->elapsed_ns : 0;
	w->fig[r][FIG_CPU_S] = t->sent ? (double)t->cpu_ns / (double)t->sent : 0;
	w->fig[r][FIG_CPU_R] = t->echo.received ? (double)t->echo.cpu_ns / (double)t->echo.received : 0;
}

static void fail_msg(const struct chan *c, const char *what, int err)
{
	fprintf(stderr, "ipckit-bench: %s %s%s%s %u B %s: %s\n", c->s.backend, c->s.impl,
		c->s.variant[0] ? "/" : "", c->s.variant, (unsigned)c->s.size, what,
		err < 0 ? bench_strerror(c->s.backend, err) : "failed");
}

static int ep_open(struct chan *c, int side, int ctl)
{
	struct ep *e = &c->ep[side];
	e->c = c;
	e->side = side;
	e->ctl = ctl;
	e->st = calloc(1, c->k->ep_size ? c->k->ep_size : 1);
	return e->st ? c->k->open(e) : -ENOMEM;
}

static void ep_close(struct chan *c, int side)
{
	struct ep *e = &c->ep[side];
	if (!e->st)
		return;
	c->k->close(e);
	free(e->st);
	e->st = NULL;
}

/* ---- echo side ---- */

int echo_main(struct chan *chans, int n, const struct bench_opts *o, int ctl, bool threads)
{
	struct bufs b = { 0 };
	int r = pin_cpu(o->pin[1]);
	turns_setup(o);
	if (!r)
		r = bufs_init(&b, chans[0].s.size, o->batch);
	for (int i = 0; !r && i < n; i++) {
		struct chan *c = &chans[i];
		if (c->s.threads != threads)
			continue;
		r = ctl_read(ctl, &c->want, sizeof(c->want), CTL_TIMEOUT_MS);
		if (!r && (r = ep_open(c, 1, ctl)) != 0)
			fail_msg(c, "open (echo side)", r);
		if (!r && (r = pong_turn(&c->ep[1], &b, HELLO_TURN)) != 0)
			fail_msg(c, "first message (echo side)", r);
	}
	while (!r) {
		struct turn_desc t;
		r = ctl_read(ctl, &t, sizeof(t), -1);
		if (r || t.what == T_DONE)
			break;
		if (t.row >= (uint32_t)n || !chans[t.row].ep[1].st) {
			r = -EPROTO;
			break;
		}
		struct ep *e = &chans[t.row].ep[1];
		r = t.what == T_PONG ? pong_turn(e, &b, t.turn) : sink_turn(e, &b, t.turn);
		if (r)
			fail_msg(e->c, t.what == T_PONG ? "echo" : "receive", r);
	}
	for (int i = 0; i < n; i++)
		if (chans[i].s.threads == threads)
			ep_close(&chans[i], 1);
	bufs_free(&b);
	return r;
}

struct echo_thread { struct chan *chans; int n; const struct bench_opts *o; int ctl; int r; };

static void *echo_thread_main(void *arg)
{
	struct echo_thread *t = arg;
	t->r = echo_main(t->chans, t->n, t->o, t->ctl, true);
	close(t->ctl);   /* the leader sees the hang-up */
	return NULL;
}

/* ---- leader ---- */

static struct chan *volatile sig_chans;
static volatile int sig_nchans;
static volatile pid_t sig_child;

void chans_unlink(const struct chan *chans, int n)
{
	for (int i = 0; i < n; i++)
		if (chans[i].k->unlink && chans[i].prep)
			chans[i].k->unlink(&chans[i]);
}

/* SIGTERM (from the main process, when it is interrupted): take the child
 * down, remove the names this group created, exit. Async-signal-safe. */
static void leader_signal(int sig)
{
	if (sig_child > 0)
		kill(sig_child, SIGKILL);
	if (sig_chans)
		chans_unlink(sig_chans, sig_nchans);
	_exit(128 + sig);
}

struct group_run {
	struct chan *chans;
	int n;
	const struct bench_opts *o;
	struct row *rows;
	int nrows;
	int (*row_of)[2 + MAX_GAPS];   /* chan -> row index per mode slot, -1 none */
	struct fdset *prep_fds;        /* per chan: the descriptors its prepare made */
	int ctl, tctl;
	struct bufs b;
	hist *th;
	progress_fn progress;
	bool remote;
};

/* Open every row on the leader's side; fill the rows to be measured. */
static int open_rows(struct group_run *g, int *bad)
{
	const struct bench_opts *o = g->o;
	for (int i = 0; i < g->n; i++) {
		struct chan *c = &g->chans[i];
		int ctl = c->s.threads ? g->tctl : g->ctl, r;
		struct fdset before;
		struct maps mbefore;
		if (g->progress) {
			char msg[96];
			snprintf(msg, sizeof(msg), "%u B: opening %s %s%s%s", c->s.size, c->s.backend,
				 c->s.impl, *c->s.variant ? " " : "", c->s.variant);
			g->progress(i, msg);
		}
		if (c->s.tune_from >= 0 && c->s.tune_from < g->n)
			c->want = g->chans[c->s.tune_from].got;
		fds_list(&before);
		maps_list(&mbefore);
		r = ctl_write(ctl, &c->want, sizeof(c->want));
		if (!r && (r = ep_open(c, 0, ctl)) != 0)
			fail_msg(c, "open", r);
		if (!r && (r = hello_turn(&c->ep[0], &g->b)) != 0)
			fail_msg(c, "first message", r);
		if (r) {
			*bad = i;
			return r;
		}
		tuning_probe(&before, &g->prep_fds[i], &c->got);
		c->got.shm_bytes = maps_new_bytes(&mbefore);
		for (int s = 0; s < 2 + MAX_GAPS; s++)
			g->row_of[i][s] = -1;
		int modes[2] = { MODE_LATENCY, MODE_THROUGHPUT };
		for (int s = 0; s < 2 + o->ngaps; s++) {
			int mode = s < 2 ? modes[s] : MODE_GAP;
			if (!(o->modes & mode) || (mode != MODE_THROUGHPUT && c->s.tput_only))
				continue;
			struct row *w = &g->rows[g->nrows];
			label_row(w, c, mode, s >= 2 ? o->gap_ms[s - 2] : 0, o, g->remote);
			tuning_str(&c->got, w->tuning, sizeof(w->tuning));
			g->row_of[i][s] = g->nrows++;
		}
	}
	return 0;
}

static const char *mode_name(int mode)
{
	return mode == MODE_LATENCY ? "latency" : mode == MODE_THROUGHPUT ? "throughput" : "idle gap";
}

static int run_rounds(struct group_run *g, int *bad)
{
	const struct bench_opts *o = g->o;
	struct turn_plan *plan = calloc((size_t)g->nrows + 1, sizeof(*plan));
	uint32_t turn_id = 1;
	uint64_t last_progress = 0;
	int np = 0, r = 0;
	if (!plan)
		return -ENOMEM;
	for (int i = 0; i < g->n; i++)
		for (int s = 0; s < 2 + MAX_GAPS; s++)
			if (g->row_of[i][s] >= 0)
				plan[np++] = (struct turn_plan){
					.chan = i, .row = g->row_of[i][s],
					.mode = g->rows[g->row_of[i][s]].mode,
					.gap_ns = s >= 2 ? (uint64_t)(o->gap_ms[s - 2] * 1e6) : 0 };
	uint64_t lat_n = per_round(o->count, o->rounds), gap_n = per_round(o->gap_count, o->rounds);
	uint64_t lat_budget = o->lat_cap > 0 ? (uint64_t)(o->lat_cap * 1e9 / o->rounds) : 0;
	uint64_t tput_limit = o->count_set ? per_round(o->count, o->rounds) : UINT64_MAX;
	uint64_t tput_dur = o->count_set ? UINT64_MAX : (uint64_t)(o->duration * 1e9 / o->rounds);
	for (int k = 0; k < o->rounds && !r; k++) {
		shuffle(plan, np, o->seed, k);
		for (int t = 0; t < np && !r; t++) {
			struct chan *c = &g->chans[plan[t].chan];
			struct row *w = &g->rows[plan[t].row];
			struct turn_out out;
			int ctl = c->s.threads ? g->tctl : g->ctl;
			struct turn_desc d = { .what = plan[t].mode == MODE_THROUGHPUT ? T_SINK : T_PONG,
					       .row = (uint32_t)plan[t].chan, .turn = turn_id++ };
			if (g->progress && now_ns() - last_progress > 100000000u) {
				char msg[160];
				snprintf(msg, sizeof(msg), "%u B, round %d/%d: %s %s%s%s %s", c->s.size, k + 1,
					 o->rounds, c->s.backend, c->s.impl, *c->s.variant ? " " : "",
					 c->s.variant, mode_name(plan[t].mode));
				g->progress(plan[t].chan, msg);
				last_progress = now_ns();
			}
			r = ctl_write(ctl, &d, sizeof(d));
			if (!r && plan[t].mode == MODE_THROUGHPUT) {
				r = tput_turn(&c->ep[0], &g->b, d.turn, tput_limit, tput_dur, &out);
			} else if (!r) {
				/* The first latency turn of a row has the warm-up (at
				 * most a tenth of the row's time cap); later turns
				 * warm up with a few pings after the other rows ran. */
				bool first = plan[t].mode == MODE_LATENCY && w->rounds == 0;
				uint64_t wu = plan[t].mode != MODE_LATENCY ? 0 : first ? o->warmup : 8;
				uint64_t wb = first && o->lat_cap > 0 ? (uint64_t)(o->lat_cap * 1e8) : 0;
				hist_init(g->th);
				r = lat_turn(&c->ep[0], &g->b, d.turn, plan[t].mode == MODE_GAP ? gap_n : lat_n,
					     plan[t].mode == MODE_GAP ? 0 : lat_budget, wu, wb, plan[t].gap_ns,
					     g->th, &out);
			}
			if (r) {
				fail_msg(c, mode_name(plan[t].mode), r);
				*bad = plan[t].chan;
			} else {
				account(w, k, &out, g->th);
			}
		}
	}
	free(plan);
	return r;
}

static int done_all(struct group_run *g)
{
	struct turn_desc d = { .what = T_DONE };
	int r = g->ctl >= 0 ? ctl_write(g->ctl, &d, sizeof(d)) : 0;
	if (g->tctl >= 0) {
		int r2 = ctl_write(g->tctl, &d, sizeof(d));
		r = r ? r : r2;
	}
	return r;
}

static int reap_child(pid_t pid, bool failed, const struct chan *c0)
{
	int status, r = 0;
	if (failed)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!failed && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		/* The child's exit status is its errno. */
		r = WIFEXITED(status) ? -WEXITSTATUS(status) : -EINTR;
		if (WIFEXITED(status))
			fprintf(stderr, "ipckit-bench: %u B: echo process failed: %s\n", c0->s.size,
				ipc_strerror(r));
		else
			fprintf(stderr, "ipckit-bench: %u B: echo process killed by signal %d\n",
				c0->s.size, WTERMSIG(status));
	}
	return r;
}

int run_group(struct chan *chans, int n, const struct bench_opts *o, struct row *rows,
	      int max_rows, progress_fn progress, const char *remote, int *bad_row)
{
	struct sigaction sa = { .sa_handler = leader_signal }, old_term, old_int;
	sigset_t block, oldmask;
	int sv[2] = { -1, -1 }, tv[2] = { -1, -1 }, r = 0;
	pid_t pid = -1;
	pthread_t th;
	bool have_thread = false, any_threads = false;
	struct echo_thread et;
	struct group_run g = { .chans = chans, .n = n, .o = o, .rows = rows, .ctl = -1, .tctl = -1,
			       .progress = progress, .remote = remote != NULL };

	*bad_row = -1;
	if (n <= 0 || (2 + o->ngaps) * n > max_rows)
		return -EINVAL;
	turns_setup(o);
	g.row_of = calloc((size_t)n, sizeof(*g.row_of));
	g.prep_fds = calloc((size_t)n, sizeof(*g.prep_fds));
	g.th = malloc(sizeof(*g.th));
	if (!g.row_of || !g.th || !g.prep_fds) {
		r = -ENOMEM;
		goto out;
	}
	sig_chans = chans;
	sig_nchans = n;
	sig_child = -1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGINT, &sa, &old_int);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	for (int i = 0; i < n && !r; i++) {
		struct chan *c = &chans[i];
		c->idx = i;
		c->srv_side = remote ? 1 : 0;
		any_threads |= c->s.threads;
		if (!c->host[0])
			snprintf(c->host, sizeof(c->host), "127.0.0.1");
		c->prep = c->k->prep_size ? calloc(1, c->k->prep_size) : NULL;
		if (c->k->prep_size && !c->prep)
			r = -ENOMEM;
		else if (c->k->prepare) {
			struct fdset *before = malloc(sizeof(*before)), *p = &g.prep_fds[i];
			if (!before) {
				r = -ENOMEM;
				break;
			}
			fds_list(before);
			if ((r = c->k->prepare(c)) != 0)
				fail_msg(c, "prepare", r), *bad_row = i;
			fds_list(p);
			int k = 0;
			for (int j = 0; j < p->n; j++)
				if (!fds_has(before, p->fd[j]))
					p->fd[k++] = p->fd[j];
			p->n = k;
			free(before);
		}
	}
	if (r)
		goto out;
	if (remote) {
		r = remote_session(remote, chans, n, o);
		if (r < 0)
			goto out;
		g.ctl = r;
		r = 0;
	} else {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
			r = -errno;
			goto out;
		}
		fflush(NULL);
		/* The child dies of SIGTERM (it shares the leader's process
		 * group); the leader's handler must know its pid first. */
		sigprocmask(SIG_BLOCK, &block, &oldmask);
		pid = fork();
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			sigprocmask(SIG_SETMASK, &oldmask, NULL);
			close(sv[0]);
			int e = echo_main(chans, n, o, sv[1], false);
			_exit(e < 0 ? (-e > 255 ? 255 : -e) : 0);
		}
		if (pid > 0)
			sig_child = pid;
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		if (pid < 0) {
			r = -errno;
			goto out;
		}
		close(sv[1]);
		sv[1] = -1;
		g.ctl = sv[0];
	}
	if (any_threads) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tv) < 0) {
			r = -errno;
			goto out;
		}
		et = (struct echo_thread){ .chans = chans, .n = n, .o = o, .ctl = tv[1] };
		if (pthread_create(&th, NULL, echo_thread_main, &et)) {
			r = -EAGAIN;
			goto out;
		}
		have_thread = true;
		tv[1] = -1;   /* the thread closes it */
		g.tctl = tv[0];
	}
	r = pin_cpu(o->pin[0]);
	if (!r)
		r = bufs_init(&g.b, chans[0].s.size, o->batch);
	if (!r)
		r = open_rows(&g, bad_row);
	if (!r)
		r = run_rounds(&g, bad_row);
	if (!r)
		r = done_all(&g);
out:
	for (int i = 0; i < n; i++)
		ep_close(&chans[i], 0);
	if (g.ctl >= 0)
		close(g.ctl);
	if (have_thread) {
		if (g.tctl >= 0)
			close(g.tctl);
		g.tctl = -1;
		pthread_join(th, NULL);
		if (!r && et.r)
			r = et.r;
	}
	if (g.tctl >= 0)
		close(g.tctl);
	if (pid > 0) {
		int e = reap_child(pid, r != 0, &chans[0]);
		r = r ? r : e;
	}
	sig_child = -1;
	for (int i = 0; i < n; i++) {
		if (chans[i].k->unlink && chans[i].prep)
			chans[i].k->unlink(&chans[i]);
		if (chans[i].k->cleanup && chans[i].prep)
			chans[i].k->cleanup(&chans[i]);
		free(chans[i].prep);
		chans[i].prep = NULL;
	}
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGINT, &old_int, NULL);
	sig_chans = NULL;
	bufs_free(&g.b);
	free(g.row_of);
	free(g.prep_fds);
	free(g.th);
	return r ? r : g.nrows;
}
