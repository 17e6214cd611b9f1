/*
 * kill.c - the kill campaign. For every reliable backend whose ends live
 * in different processes (udp promises no peer-death signal; inproc ends
 * share one process), STRESS_KILL_RUNS runs (full 1000, short 40) in which
 * a forked victim, the client or the server at random, is SIGKILLed at a
 * random point of one of five phases: during open, the handshake (first
 * send/receive), a send of messages larger than the channel's buffers (cut
 * into fragments), a zero-copy reservation (between ipc_send_reserve and
 * ipc_send_commit), or close. The survivor is this process. Checks, per
 * run:
 *   - every message the survivor receives is whole and correct (a killed
 *     fragmented send or reservation never shows up torn);
 *   - the survivor's receive ends in -EPIPE (then its send too) within
 *     STRESS_KILL_EPIPE_MS of the kill (5000: the promise is one second; the
 *     bound is generous so that a loaded machine does not fail it, and the
 *     largest latency seen is printed), never a hang or a crash; a peer that
 *     died before it attached gives -ETIMEDOUT or a refused connection
 *     instead, which is what the contract says for a peer that never came;
 *   - afterwards the URL can be served again at once (a new server opens
 *     it), and nothing named by the run is left in /tmp, /dev/shm,
 *     /dev/mqueue or the abstract socket namespace (tu_leftovers).
 * Backends run concurrently, STRESS_KILL_WORKERS worker processes each
 * (default 2: most of a run is waiting), every run and the whole campaign
 * bounded in time; the figures are summed per backend.
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { PH_OPEN, PH_HANDSHAKE, PH_FRAG, PH_RESERVE, PH_CLOSE, PH_N };
static const char phase_char[PH_N] = { 'o', 'h', 'f', 'z', 'c' };
static const char *const phase_name[PH_N] = { "open", "handshake", "fragmented send",
					      "zero-copy reservation", "close" };
/* how long after entering the phase the kill may come (microseconds) */
static const int phase_window_us[PH_N] = { 600, 600, 3000, 1500, 150 };

/* A survivor's open or handshake step that still has no answer this long
 * after the kill takes it that the victim died before it attached (an
 * attached peer's death is promised to show within one second). */
#define ATTACH_GRACE_MS 1000
#define STEP_MAX_MS 10000     /* any one survivor step, whatever happens */
#define DRAIN_TIMEOUT_MS 8000 /* one receive while waiting for -EPIPE */

struct run {
	const char *be;
	char url[256];
	bool has_url;
	bool victim_server;
	int phase;
	size_t big;          /* the fragmented phase's message size */
	int nbig;
	size_t zc;           /* the reservation's size */
	struct tu_side side;
	pid_t pid;
	uint64_t rnd;
	_Atomic int64_t killed_at;
};

/* ------------------------------------------------------------ the victim */

static int hello(ipc_chan *c, bool client, int timeout_ms)
{
	char buf[8];
	ssize_t n;
	int r;

	if (client) {
		r = ipc_send(c, "hi", 2, timeout_ms);
		if (r < 0)
			return r;
		n = ipc_recv(c, buf, sizeof(buf), timeout_ms);
		return n < 0 ? (int)n : n == 2 && memcmp(buf, "ok", 2) == 0 ? 0 : -EPROTO;
	}
	n = ipc_recv(c, buf, sizeof(buf), timeout_ms);
	if (n < 0)
		return (int)n;
	if (n != 2 || memcmp(buf, "hi", 2) != 0)
		return -EPROTO;
	return ipc_send(c, "ok", 2, timeout_ms);
}

static void victim(struct run *rn, ipc_chan *c)
{
	ipc_opts o = { .connect_timeout_ms = 5000 };
	int out = rn->side.c2p[1];
	char *buf = malloc(rn->big);
	void *zp;

	alarm(30);
	tu_put(out, 'o');
	if (!c && ipc_open(&c, rn->url, rn->victim_server ? IPC_SERVER : IPC_CLIENT, &o) < 0)
		_exit(0);
	tu_put(out, 'h');
	if (hello(c, !rn->victim_server, 10000) < 0)
		_exit(0);
	tu_put(out, 'f');
	for (int i = 0; i < rn->nbig; i++) {
		st_fill(buf, rn->big, 7, (uint64_t)i);
		if (ipc_send(c, buf, rn->big, 10000) < 0)
			_exit(0);
	}
	tu_put(out, 'z');
	for (int i = 0; i < 2; i++) {
		if (ipc_send_reserve(c, rn->zc, &zp, 10000) < 0)
			_exit(0);
		st_fill(zp, rn->zc, 8, (uint64_t)i);
		tu_sleep_ms(1);
		if (ipc_send_commit(c, rn->zc) < 0)
			_exit(0);
	}
	tu_put(out, 'c');
	ipc_close(c);
	tu_put(out, 'e');
	free(buf);
	_exit(0);
}

/* ------------------------------------------------------------ the killer */

static void *killer(void *p)
{
	struct run *rn = p;
	int want = phase_char[rn->phase];

	for (;;) {
		int ch = tu_get(rn->side.c2p[0], 20000);

		if (ch < 0 || ch == want)
			break;
	}
	usleep((useconds_t)(st_rand(&rn->rnd) % (uint64_t)(phase_window_us[rn->phase] + 1)));
	atomic_store(&rn->killed_at, tu_now_ms());
	kill(rn->pid, SIGKILL);
	return NULL;
}

/* ------------------------------------------------------------ the survivor */

struct tally {
	long runs, kills[2][PH_N];   /* [victim is server][phase] */
	long epipe, never_attached, clean;
	int64_t max_epipe_ms;
	long leftovers, reserve_fail;
};

static bool killed(struct run *rn)
{
	return atomic_load(&rn->killed_at) != 0;
}

/* True once a step may give up on the victim (see ATTACH_GRACE_MS). */
static bool given_up(struct run *rn, int64_t end)
{
	int64_t now = tu_now_ms();

	return now >= end || (killed(rn) && now - atomic_load(&rn->killed_at) >= ATTACH_GRACE_MS);
}

/* One handshake step in 50 ms slices (a timed-out send sent nothing, so it
 * may be repeated): its result, or -ETIMEDOUT once given_up. */
static long step(struct run *rn, ipc_chan *c, const char *send, char *buf, size_t cap)
{
	int64_t end = tu_now_ms() + STEP_MAX_MS;

	for (;;) {
		long r = send ? ipc_send(c, send, strlen(send), 50) : ipc_recv(c, buf, cap, 50);

		if (r != -ETIMEDOUT || given_up(rn, end))
			return r;
	}
}

static long survivor_open(struct run *rn, ipc_chan **c, bool server)
{
	ipc_opts o = { .connect_timeout_ms = -1 }; /* one try each */
	int64_t end = tu_now_ms() + STEP_MAX_MS;

	if (server)
		return ipc_open(c, rn->url, IPC_SERVER, NULL);
	for (;;) {
		long r = ipc_open(c, rn->url, IPC_CLIENT, &o);

		if (r == 0 || given_up(rn, end))
			return r;
		tu_sleep_ms(10);
	}
}

static long survivor_hello(struct run *rn, ipc_chan *c, bool server)
{
	char buf[8];
	long r;

	if (!server) {
		r = step(rn, c, "hi", NULL, 0);
		if (r < 0)
			return r;
		r = step(rn, c, NULL, buf, sizeof(buf));
		return r < 0 ? r : r == 2 && memcmp(buf, "ok", 2) == 0 ? 0 : -EPROTO;
	}
	r = step(rn, c, NULL, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (r != 2 || memcmp(buf, "hi", 2) != 0)
		return -EPROTO;
	return step(rn, c, "ok", NULL, 0);
}

/* The survivor's part of one run; false (with a failure logged) when the
 * library broke a promise. */
static bool survive(struct run *rn, ipc_chan *c, struct tally *t, long epipe_ms)
{
	bool server = !rn->victim_server;
	size_t cap = rn->big > rn->zc ? rn->big : rn->zc;
	char *buf = malloc(cap);
	int64_t end;
	long r = 0;
	bool ok = false;

	if (!c) {
		r = survivor_open(rn, &c, server);
		if (r < 0) {
			/* only a client can fail here, and only when the server died */
			if (!server && killed(rn) && rn->phase <= PH_HANDSHAKE &&
			    (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -ENOENT || r == -EPIPE)) {
				t->never_attached++;
				ok = true;
			} else {
				st_fail("%s: survivor open: %ld %s", rn->be, r, tu_err(r));
			}
			goto out;
		}
	}
	r = survivor_hello(rn, c, server);
	if (r == -ETIMEDOUT && killed(rn) && rn->phase <= PH_HANDSHAKE) {
		t->never_attached++; /* the peer died before it attached */
		ok = true;
		goto out;
	}
	if (r < 0 && r != -EPIPE) {
		st_fail("%s: survivor handshake: %ld %s (victim %s, phase %s)", rn->be, r, tu_err(r),
			server ? "client" : "server", phase_name[rn->phase]);
		goto out;
	}
	/* drain whatever arrives: each message whole, then -EPIPE */
	while (r >= 0) {
		r = ipc_recv(c, buf, cap, DRAIN_TIMEOUT_MS);
		if (r >= 0) {
			uint64_t seq = st_seq_of(buf, r);

			if (seq == ~0ull) {
				st_fail("%s: a torn or corrupted message of %ld bytes reached the survivor",
					rn->be, r);
				goto out;
			}
		}
	}
	end = tu_now_ms();
	if (r != -EPIPE) {
		st_fail("%s: survivor waited for the dead peer and got %ld %s (victim %s, phase %s)",
			rn->be, r, tu_err(r), server ? "client" : "server", phase_name[rn->phase]);
		goto out;
	}
	if (!killed(rn)) {
		/* the victim finished before the killer struck: a clean close */
		t->clean++;
		ok = true;
		goto out;
	}
	int64_t lat = end - atomic_load(&rn->killed_at);

	if (lat > t->max_epipe_ms)
		t->max_epipe_ms = lat;
	if (lat > epipe_ms) {
		st_fail("%s: -EPIPE came %lld ms after the kill (bound %ld)", rn->be, (long long)lat,
			epipe_ms);
		goto out;
	}
	r = ipc_send(c, "x", 1, 1000);
	if (r != -EPIPE) {
		st_fail("%s: send after the peer died: %ld %s, expected -EPIPE", rn->be, r, tu_err(r));
		goto out;
	}
	t->epipe++;
	ok = true;
out:
	ipc_close(c);
	free(buf);
	return ok;
}

static bool one_run(const char *be, uint64_t *rnd, struct tally *t, long epipe_ms)
{
	static struct run rn; /* the killer thread reads it */
	ipc_chan *pa = NULL, *pb = NULL;
	pthread_t kt;
	char status[64];
	bool ok;
	int st;

	memset(&rn, 0, sizeof(rn));
	rn.be = be;
	rn.rnd = st_rand(rnd) | 1;
	rn.has_url = tu_expect(be)->url != TU_URL_NONE;
	{
		/* phase and victim from separate high bits of one draw (the low
		 * bits of successive draws are correlated: every close-phase run
		 * of a worker had the same victim) */
		uint64_t h = st_rand(rnd);

		rn.phase = rn.has_url ? (int)((h >> 32) % PH_N) : 1 + (int)((h >> 32) % (PH_N - 1));
		rn.victim_server = (h >> 63) & 1;
	}
	{
		ipc_info bi;

		ipc_backend_info(be, &bi);
		rn.big = bi.max_msg < 4 * ST_MIB ? bi.max_msg : 4 * ST_MIB;
		rn.nbig = rn.big >= ST_MIB ? 3 : 24;
		rn.zc = rn.big < 65536 ? rn.big : 65536;
	}
	if (rn.has_url) {
		if (!tu_fixed_url(rn.url, sizeof(rn.url), be, false)) {
			st_fail("%s: no URL", be);
			return false;
		}
	} else {
		int r = ipc_pair(be, &pa, &pb, NULL);

		if (r < 0) {
			st_fail("%s: ipc_pair: %d %s", be, r, tu_err(r));
			return false;
		}
	}
	tu_side_init(&rn.side);
	fflush(stdout);
	rn.pid = fork();
	if (rn.pid < 0)
		abort();
	if (rn.pid == 0) {
		tu_side_child(&rn.side);
		ipc_close(pa);
		victim(&rn, pb);
	}
	tu_side_parent(&rn.side);
	ipc_close(pb);
	pthread_create(&kt, NULL, killer, &rn);
	ok = survive(&rn, pa, t, epipe_ms);
	pthread_join(kt, NULL);
	st = tu_wait_child(rn.pid, 10000);
	if (st == -1 || !(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0))) {
		st_fail("%s: victim ended with %s", be, tu_status_str(st, status, sizeof(status)));
		ok = false;
	}
	if (WIFSIGNALED(st))
		t->kills[rn.victim_server][rn.phase]++;
	tu_side_close(&rn.side);
	t->runs++;
	if (rn.has_url) {
		ipc_chan *s;
		int r = ipc_open(&s, rn.url, IPC_SERVER, NULL);

		if (r < 0) {
			st_fail("%s: serving %s again after the run: %d %s", be, rn.url, r, tu_err(r));
			t->reserve_fail++;
			ok = false;
		}
		ipc_close(s);
	}
	char left[300];
	int n = tu_leftovers(left, sizeof(left));

	if (n > 0) {
		st_fail("%s: %d names left after a run (victim %s, phase %s), e.g. %s", be, n,
			rn.victim_server ? "server" : "client", phase_name[rn.phase], left);
		t->leftovers += n;
		ok = false;
	}
	return ok;
}

static int worker(const char *be, int w, long runs, long max_s, long epipe_ms)
{
	uint64_t rnd = (uint64_t)st_knob("STRESS_SEED", 1, 1) * 0x9e3779b97f4a7c15ull ^
		       (uint64_t)be[0] << 32 ^ (uint64_t)be[1] << 40 ^ (uint64_t)w;
	struct tally t = { 0 };
	int64_t t0 = tu_now_ms(), deadline = t0 + max_s * 1000;
	long bad = 0, i;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < runs && tu_now_ms() < deadline && bad < 5; i++)
		if (!one_run(be, &rnd, &t, epipe_ms))
			bad++;
	long k = 0, ks = 0;

	for (int s = 0; s < 2; s++)
		for (int p = 0; p < PH_N; p++) {
			k += t.kills[s][p];
			ks += s ? t.kills[s][p] : 0;
		}
	st_log("%s (worker %d): %ld runs in %.1f s, %ld kills (%ld of the server, %ld of the client; by phase: "
	       "open %ld, handshake %ld, fragmented send %ld, reservation %ld, close %ld), "
	       "%ld saw -EPIPE (slowest %lld ms after the kill), %ld peers died before attaching, "
	       "%ld closed before the kill, %ld names left over, %ld URLs not servable again",
	       be, w, t.runs, (double)(tu_now_ms() - t0) / 1000.0, k, ks, k - ks,
	       t.kills[0][0] + t.kills[1][0], t.kills[0][1] + t.kills[1][1],
	       t.kills[0][2] + t.kills[1][2], t.kills[0][3] + t.kills[1][3],
	       t.kills[0][4] + t.kills[1][4], t.epipe, (long long)t.max_epipe_ms, t.never_attached,
	       t.clean, t.leftovers, t.reserve_fail);
	if (i < runs && bad < 5) {
		st_fail("%s: only %ld of %ld runs within the time bound (STRESS_KILL_MAX_S=%ld)", be, i,
			runs, max_s);
	}
	return st_failures ? 1 : 0;
}

int main(void)
{
	const char *const *bes = ipc_backends();
	long runs = st_knob("STRESS_KILL_RUNS", 1000, 40);
	long max_s = st_knob("STRESS_KILL_MAX_S", 480, 60);
	long epipe_ms = st_knob("STRESS_KILL_EPIPE_MS", 5000, 5000);
	long nw = st_knob("STRESS_KILL_WORKERS", 2, 2);
	pid_t pids[64];
	const char *names[64];
	int n = 0, passed = 0, skipped = 0;

	st_campaign = "kill";
	st_own_user();
	st_log("%ld runs per backend over %ld workers, kills at random points, bound %ld s", runs, nw,
	       max_s);
	for (size_t k = 0; bes[k] && n + nw <= 64; k++) {
		unsigned caps = tu_expect(bes[k])->caps;

		if (!st_want(bes[k]))
			continue;
		if (!(caps & IPC_CAP_RELIABLE) || !(caps & IPC_CAP_PROCESS)) {
			st_log("%s: skipped (%s)", bes[k], !(caps & IPC_CAP_RELIABLE)
				? "no peer-death promise: datagrams" : "both ends live in one process");
			skipped++;
			continue;
		}
		for (int w = 0; w < nw; w++) {
			fflush(stdout);
			names[n] = bes[k];
			pids[n] = fork();
			if (pids[n] < 0)
				abort();
			if (pids[n] == 0)
				_exit(worker(bes[k], w, runs / nw + (w < runs % nw), max_s, epipe_ms));
			n++;
		}
	}
	bool be_ok = true;

	for (int i = 0; i < n; i++) {
		char status[64];
		int st = tu_wait_child(pids[i], (int)(max_s + 60) * 1000);

		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			st_fail("%s: worker ended with %s", names[i], tu_status_str(st, status, sizeof(status)));
			be_ok = false;
		}
		if (i + 1 == n || names[i + 1] != names[i]) { /* a backend's last worker */
			passed += be_ok;
			be_ok = true;
		}
	}
	return st_finish(passed, skipped);
}
