/*
 * supervise.c - the main process's side of a run. For each group it forks
 * --pairs leaders (each forks its echo side, harness.c) and reads what they
 * stream back through a pipe: progress, finished rows, the error that
 * stopped them and the row to blame. A leader that makes no progress for too
 * long is killed with its child. A row that fails is dropped (it appears
 * under "Not measured" with its cause) and the group runs again without it,
 * so one broken mechanism does not take the others of its size down.
 * Ctrl-C / SIGTERM: the leaders get SIGTERM, clean up and exit; the names a
 * killed leader left are removed here.
 */
#include "supervise.h"
#include "fmt.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAIRS 64

enum { REC_PROGRESS = 1, REC_ROW = 2, REC_ERROR = 3 };

struct rec_error { int32_t err, bad_row; };

static volatile pid_t live_leaders[MAX_PAIRS];
static volatile sig_atomic_t stop_signal;
static int progress_fd = -1;   /* in a leader: the pipe to the main process */

static void main_signal(int sig)
{
	stop_signal = sig;
	for (int p = 0; p < MAX_PAIRS; p++)
		if (live_leaders[p] > 0)
			kill(-live_leaders[p], SIGTERM);
}

void sup_signals(void)
{
	struct sigaction sa = { .sa_handler = main_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int sup_stopped(void)
{
	return stop_signal;
}

/* ---- leader side ---- */

static void rec_write(int type, const void *p, size_t len)
{
	uint32_t h[2] = { (uint32_t)type, (uint32_t)len };
	if (progress_fd >= 0 && ctl_write(progress_fd, h, sizeof(h)) == 0)
		ctl_write(progress_fd, p, len);
}

static void leader_progress(int chan, const char *msg)
{
	char buf[260];
	int32_t c = chan;
	size_t n = strlen(msg) > 250 ? 250 : strlen(msg);
	memcpy(buf, &c, 4);
	memcpy(buf + 4, msg, n);
	rec_write(REC_PROGRESS, buf, 4 + n);
}

/* The other concurrent pairs report their row only (for the blame). */
static void quiet_progress(int chan, const char *msg)
{
	(void)msg;
	int32_t c = chan;
	rec_write(REC_PROGRESS, &c, 4);
}

static _Noreturn void leader_main(struct sup *s, struct chan *cs, int n, int fd, bool first)
{
	int max = (2 + s->o->ngaps) * n, bad = -1;
	struct row *rows = calloc((size_t)max, sizeof(*rows));
	progress_fd = fd;
	int k = rows ? run_group(cs, n, s->o, rows, max, first ? leader_progress : quiet_progress,
				 s->remote, &bad) : -ENOMEM;
	for (int i = 0; i < k; i++)
		rec_write(REC_ROW, &rows[i], sizeof(rows[i]));
	if (k < 0) {
		struct rec_error e = { k, bad };
		rec_write(REC_ERROR, &e, sizeof(e));
	}
	_exit(k < 0 ? 1 : 0);
}

/* ---- main side ---- */

static void show_progress(struct sup *s, const char *msg)
{
	if (s->quiet)
		return;
	double t = (double)(now_ns() - s->t_start) / 1e9;
	if (s->tty)
		fprintf(stderr, "\r\033[K[%d/%d %5.1fs] %s", s->group, s->ngroups, t, msg);
	else
		fprintf(stderr, "[%d/%d %5.1fs] %s\n", s->group, s->ngroups, t, msg);
}

static int add_row(struct results *res, const struct row *w)
{
	if (res->n == res->cap) {
		int n = res->cap ? 2 * res->cap : 64;
		struct row *r = realloc(res->rows, (size_t)n * sizeof(*r));
		if (!r)
			return -ENOMEM;
		res->rows = r;
		res->cap = n;
	}
	res->rows[res->n++] = *w;
	return 0;
}

/* Fold row src of another concurrent pair into dst: histograms merge,
 * per-round throughputs add up, per-round latencies average. */
static void merge_pair_row(struct row *dst, const struct row *src, int pairs_so_far)
{
	dst->errors += src->errors;
	dst->lost += src->lost;
	dst->count += src->count;
	dst->sent += src->sent;
	for (int k = 0; k < 2; k++) {
		dst->ctx[k] += src->ctx[k];
		dst->vcsw[k] += src->vcsw[k];
	}
	if (src->elapsed_s > dst->elapsed_s)
		dst->elapsed_s = src->elapsed_s;
	for (int r = 0; r < dst->rounds && r < src->rounds; r++)
		for (int f = 0; f < MAX_FIGS; f++) {
			if (dst->mode == MODE_THROUGHPUT && f == FIG_MSGS)
				dst->fig[r][f] += src->fig[r][f];
			else
				dst->fig[r][f] = (dst->fig[r][f] * pairs_so_far + src->fig[r][f]) /
						 (pairs_so_far + 1);
		}
	if (dst->mode != MODE_THROUGHPUT)
		hist_merge(&dst->h, &src->h);
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
 * a group creates carries its leader's pid (ipckit servers on path URLs:
 * ipckit-bench-<pid>-<n>*; raw FIFOs, queues and peer sockets:
 * ipckit-bench-<kind>-<pid>-<n>.*), in /tmp, /dev/mqueue or /. */
static void remove_leftovers(pid_t leader)
{
	char pat[128];
	int pid = (int)leader;
	snprintf(pat, sizeof(pat), "/tmp/ipckit-bench-%d-*", pid);
	unlink_glob(pat, false);
	snprintf(pat, sizeof(pat), "/tmp/ipckit-bench-*-%d-*", pid);
	unlink_glob(pat, false);
	snprintf(pat, sizeof(pat), "/ipckit-bench-%d-*", pid);
	unlink_glob(pat, false);
	snprintf(pat, sizeof(pat), "/dev/mqueue/ipckit-bench-%d-*", pid);
	unlink_glob(pat, true);
	snprintf(pat, sizeof(pat), "/dev/mqueue/ipckit-bench-raw-%d-*", pid);
	unlink_glob(pat, true);
}

/* Wait for a leader (at most timeout_ms, then kill its process group;
 * -1: as long as it takes). */
static void reap_leader(pid_t pid, int timeout_ms, int *st)
{
	if (timeout_ms < 0) {
		while (waitpid(pid, st, 0) < 0)
			if (errno != EINTR || stop_signal) {
				reap_leader(pid, 3000, st);
				return;
			}
		return;
	}
	for (int t = 0;; t += 10) {
		pid_t w = waitpid(pid, st, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			return;
		if (t >= timeout_ms) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, st, 0) < 0 && errno == EINTR)
				;
			return;
		}
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
}

/* How long a leader may stay silent: a turn's length and then some. */
static int idle_limit_ms(const struct bench_opts *o)
{
	double turn = (o->lat_cap > o->duration ? o->lat_cap : o->duration) / o->rounds;
	double gap = o->ngaps ? (double)o->gap_count / o->rounds * o->gap_ms[o->ngaps - 1] / 1e3 : 0;
	double s = 60 + 10 * (turn + gap) + (o->count_set ? 600 : 0);
	return (int)(s * 1000);
}

struct leaders {
	int np, fds[MAX_PAIRS], errs[MAX_PAIRS], bad[MAX_PAIRS], cur[MAX_PAIRS];
	pid_t pids[MAX_PAIRS];
	struct row *got[MAX_PAIRS];
	int ngot[MAX_PAIRS], maxrows;
};

/* One record from leader p; false when its pipe is done. */
static bool read_record(struct sup *s, struct leaders *L, int p)
{
	uint32_t h[2];
	int e = ctl_read(L->fds[p], h, sizeof(h), 5000);
	if (e == 0 && h[0] == REC_PROGRESS && h[1] >= 4 && h[1] < 260) {
		char msg[260];
		e = ctl_read(L->fds[p], msg, h[1], 5000);
		msg[h[1]] = 0;
		if (!e) {
			memcpy(&L->cur[p], msg, 4);
			if (h[1] > 4 && p == 0)
				show_progress(s, msg + 4);
		}
	} else if (e == 0 && h[0] == REC_ROW && h[1] == sizeof(struct row) && L->ngot[p] < L->maxrows) {
		e = ctl_read(L->fds[p], &L->got[p][L->ngot[p]], sizeof(struct row), 5000);
		if (!e)
			L->ngot[p]++;
	} else if (e == 0 && h[0] == REC_ERROR && h[1] == sizeof(struct rec_error)) {
		struct rec_error re;
		e = ctl_read(L->fds[p], &re, sizeof(re), 5000);
		if (!e) {
			L->errs[p] = re.err;
			L->bad[p] = re.bad_row;
		}
	} else if (e == 0) {
		e = -EPROTO;
	}
	return e == 0;
}

/* Run the group once; *bad: the row to blame for a failure, or -1. */
static int run_once(struct sup *s, struct chan *cs, int n, struct results *res, int *bad)
{
	struct leaders L = { .np = s->o->pairs, .maxrows = (2 + s->o->ngaps) * n };
	int alive = 0, r = 0, limit = idle_limit_ms(s->o);
	sigset_t block, oldmask;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	*bad = -1;
	for (int p = 0; p < L.np; p++) {
		int pp[2];
		L.bad[p] = L.cur[p] = -1;
		L.got[p] = calloc((size_t)L.maxrows, sizeof(struct row));
		if (!L.got[p] || pipe2(pp, O_CLOEXEC) < 0) {
			L.np = p;
			r = -ENOMEM;
			break;
		}
		fflush(NULL);
		/* No signal between the fork and the leader's pid being known
		 * (here) or its own handlers being set (there). */
		sigprocmask(SIG_BLOCK, &block, &oldmask);
		L.pids[p] = fork();
		if (L.pids[p] < 0) {
			r = -errno;
			sigprocmask(SIG_SETMASK, &oldmask, NULL);
			close(pp[0]);
			close(pp[1]);
			free(L.got[p]);
			L.np = p;
			break;
		}
		if (L.pids[p] == 0) {
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			sigprocmask(SIG_SETMASK, &oldmask, NULL);
			close(pp[0]);
			setpgid(0, 0);
			leader_main(s, cs, n, pp[1], p == 0);
		}
		setpgid(L.pids[p], L.pids[p]);
		live_leaders[p] = L.pids[p];
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		if (stop_signal)
			kill(-L.pids[p], SIGTERM);
		close(pp[1]);
		L.fds[p] = pp[0];
		alive++;
	}
	/* Read every leader's records until all hang up or one is silent too long. */
	while (alive > 0) {
		struct pollfd pf[MAX_PAIRS];
		for (int p = 0; p < L.np; p++)
			pf[p] = (struct pollfd){ .fd = L.fds[p], .events = POLLIN };
		int k = poll(pf, (nfds_t)L.np, limit);
		if (stop_signal) {
			r = -EINTR;
			break;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "\nipckit-bench: %u B: no progress for %d s; killed\n", cs[0].s.size,
				limit / 1000);
			for (int p = 0; p < L.np; p++)
				if (L.fds[p] >= 0)
					kill(-L.pids[p], SIGKILL);
			r = -ETIMEDOUT;
			*bad = L.cur[0];
			break;
		}
		for (int p = 0; p < L.np; p++) {
			if (L.fds[p] < 0 || !(pf[p].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (!read_record(s, &L, p)) {
				close(L.fds[p]);
				L.fds[p] = -1;
				alive--;
			}
		}
	}
	if (stop_signal)   /* again, for a leader forked meanwhile */
		for (int p = 0; p < L.np; p++)
			kill(-L.pids[p], SIGTERM);
	for (int p = 0; p < L.np; p++) {
		int st = 0;
		if (L.fds[p] >= 0)
			close(L.fds[p]);
		reap_leader(L.pids[p], stop_signal ? 3000 : -1, &st);
		live_leaders[p] = 0;
		bool failed = !WIFEXITED(st) || WEXITSTATUS(st);
		if (failed && !r) {
			r = L.errs[p] < 0 ? L.errs[p] : WIFSIGNALED(st) ? -ECANCELED : -EIO;
			*bad = L.errs[p] < 0 ? L.bad[p] : L.cur[p];
		}
		/* A killed leader may leave its child: take the group down,
		 * and whatever names it had not removed yet. */
		kill(-L.pids[p], SIGKILL);
		if (r || failed)
			remove_leftovers(L.pids[p]);
	}
	for (int p = 1; !r && p < L.np; p++)
		if (L.ngot[p] != L.ngot[0])
			r = -EPROTO;
	for (int i = 0; !r && i < L.ngot[0]; i++) {
		struct row w = L.got[0][i];
		for (int p = 1; p < L.np; p++)
			merge_pair_row(&w, &L.got[p][i], p);
		w.pairs = L.np;
		if (add_row(res, &w))
			r = -ENOMEM;
	}
	for (int p = 0; p < L.np; p++)
		free(L.got[p]);
	return r;
}

int sup_run_group(struct sup *s, struct plan *p, struct chan *cs, int n, struct results *res)
{
	for (int attempt = 0;; attempt++) {
		int bad = -1, r = run_once(s, cs, n, res, &bad);
		if (!r || stop_signal)
			return r;
		s->failures++;
		if (bad < 0 || bad >= n || n <= 1 || attempt >= 3)
			return r;
		struct chan *c = &cs[bad];
		char why[96], sz[32];
		snprintf(why, sizeof(why), "failed: %s", ipc_strerror(r));
		plan_skip(p, c->s.backend, c->s.impl, c->s.variant, c->s.size, why);
		fprintf(stderr, "%sipckit-bench: %s %s%s%s %s failed (%s); running the rest of its size "
				"again without it\n", s->tty ? "\n" : "", c->s.backend, c->s.impl,
			*c->s.variant ? " " : "", c->s.variant,
			fmt_size(c->s.size, SZ_LONG, sz, sizeof(sz)), bench_strerror(c->s.backend, r));
		memmove(c, c + 1, (size_t)(n - bad - 1) * sizeof(*c));
		n--;
		for (int i = 0; i < n; i++)
			if (cs[i].s.tune_from == bad)
				cs[i].s.tune_from = -1;
			else if (cs[i].s.tune_from > bad)
				cs[i].s.tune_from--;
	}
}
