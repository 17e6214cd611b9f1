/*
 * load.c - the load campaign. For each listener backend that spans
 * processes (tcp, unix, shm): this process listens, STRESS_LOAD_CLIENTS
 * clients (full and short 500, spread over STRESS_LOAD_PROCS client
 * processes that poll their channels' ipc_fd) connect and are all
 * connected at once, then each does request/reply for STRESS_LOAD_SECONDS
 * (full 5, short 1) and all go away. Checks:
 *   - every request reaches the server whole, every reply is the one for
 *     its request and whole (sequence number and checksum over every byte);
 *   - every client saw replies, and every channel ends in -EPIPE at the
 *     server once its client has gone;
 *   - the server's descriptors come back to their count after ipc_listen
 *     once its channels are closed, and to the start count once the
 *     listener is closed; nothing is left named.
 * Memory follows use: it prints the server's resident memory per idle
 * channel (all clients attached, nothing sent) and per busy one (after the
 * request/reply phase), and, for every backend, per connected pair in one
 * process, idle and after it carried messages up to 16 KiB each way
 * (STRESS_LOAD_PAIRS pairs); an idle channel above STRESS_LOAD_IDLE_KB
 * fails (lazily faulted shm rings keep an idle channel small).
 */
#include "stress.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REQ_DIR 0x100
#define REPLY_DIR 0x8000
#define CALL_MS 5000

struct cproc {
	pid_t pid;
	struct tu_side side;
	int first, n;          /* its client ids */
	bool done;
	long requests, bad;
};

static size_t req_len(uint32_t id, uint64_t i)
{
	return 16 + st_size(REQ_DIR + id, i, 4096, 4096);
}

static size_t reply_len(uint32_t id, uint64_t i)
{
	return 16 + (req_len(id, i) * 7) % 1024;
}

/* ------------------------------------------------------------ a client process */

static int client_proc(const char *url, struct cproc *cp, long seconds)
{
	ipc_opts o = { .connect_timeout_ms = 20000 };
	ipc_chan **c = calloc((size_t)cp->n, sizeof(*c));
	uint64_t *next = calloc((size_t)cp->n, sizeof(*next));
	bool *due = calloc((size_t)cp->n, sizeof(*due));
	struct pollfd *pf = calloc((size_t)cp->n, sizeof(*pf));
	char *buf = malloc(8192), out[64];
	int in = cp->side.p2c[0], up = cp->side.c2p[1];
	long requests = 0, bad = 0, outstanding = 0;

	alarm((unsigned)seconds + 120);
	for (int k = 0; k < cp->n; k++) {
		int r = ipc_open(&c[k], url, IPC_CLIENT, &o);

		if (r < 0) {
			fprintf(stderr, "load client %d: open: %s\n", cp->first + k, tu_err(r));
			return 2;
		}
	}
	tu_put(up, 'r');
	if (tu_get(in, 120000) != 'g')
		return 3;
	int64_t end = tu_now_ms() + seconds * 1000;

	for (int k = 0; k < cp->n; k++)
		pf[k].fd = ipc_fd(c[k]);
	for (bool sending = true;;) {
		if (sending && tu_now_ms() >= end)
			sending = false;
		if (!sending && outstanding == 0)
			break;
		for (int k = 0; k < cp->n && sending; k++) {
			uint32_t id = (uint32_t)(cp->first + k);
			size_t len = req_len(id, next[k]);
			int r;

			if (due[k])
				continue;
			st_fill(buf, len, REQ_DIR + id, next[k]);
			r = ipc_send(c[k], buf, len, CALL_MS);
			if (r < 0) {
				fprintf(stderr, "load client %u: send: %s\n", id, tu_err(r));
				return 4;
			}
			due[k] = true;
			outstanding++;
			requests++;
		}
		for (int k = 0; k < cp->n; k++)
			pf[k].events = due[k] ? POLLIN : 0;
		if (poll(pf, (nfds_t)cp->n, 1000) < 0 && errno != EINTR)
			return 5;
		for (int k = 0; k < cp->n; k++) {
			uint32_t id = (uint32_t)(cp->first + k);
			ssize_t r;

			if (!due[k] || !pf[k].revents)
				continue;
			r = ipc_recv(c[k], buf, 8192, 0);
			if (r == -EAGAIN)
				continue;
			if (r < 0) {
				fprintf(stderr, "load client %u: recv: %s\n", id, tu_err(r));
				return 4;
			}
			if (st_check(buf, r, reply_len(id, next[k]), REPLY_DIR + id, next[k]) != 0)
				bad++;
			next[k]++;
			due[k] = false;
			outstanding--;
		}
		if (tu_now_ms() > end + 60000)
			return 6; /* replies never came */
	}
	snprintf(out, sizeof(out), "%ld %ld", requests, bad);
	tu_put_str(up, out);
	if (tu_get(in, 120000) != 'q')
		return 7;
	for (int k = 0; k < cp->n; k++)
		ipc_close(c[k]);
	return 0;
}

/* ------------------------------------------------------------ the server */

struct served {
	ipc_chan *c;
	long id;               /* the client id its requests carry; -1 before */
	uint64_t next;         /* the request number expected next */
};

/* Answer everything waiting on one channel; false on a broken promise. */
static bool serve_one(const char *be, struct served *s, char *buf, char *reply, bool *gone)
{
	for (;;) {
		ssize_t r = ipc_recv(s->c, buf, 8192, 0);
		uint64_t seq;
		uint32_t id;

		if (r == -EAGAIN)
			return true;
		if (r == -EPIPE) {
			*gone = true;
			return true;
		}
		if (r < 0) {
			st_fail("%s: server recv: %ld %s", be, (long)r, tu_err(r));
			return false;
		}
		seq = st_seq_of(buf, r);
		id = (uint32_t)(seq >> 48) - REQ_DIR;
		if (seq == ~0ull || (s->id >= 0 && id != (uint32_t)s->id) ||
		    (seq & 0xffffffffffffull) != s->next ||
		    st_check(buf, r, req_len(id, s->next), REQ_DIR + id, s->next) != 0) {
			st_fail("%s: a request arrived torn, out of order or on the wrong channel", be);
			return false;
		}
		s->id = id;
		size_t len = reply_len(id, s->next);

		st_fill(reply, len, REPLY_DIR + id, s->next);
		s->next++;
		int e = ipc_send(s->c, reply, len, CALL_MS);

		if (e < 0) {
			st_fail("%s: server reply: %d %s", be, e, tu_err(e));
			return false;
		}
	}
}

static bool load_backend(const char *be, long nclients, long nprocs, long seconds, long idle_kb)
{
	struct served *sv = calloc((size_t)nclients, sizeof(*sv));
	struct cproc *cp = calloc((size_t)nprocs, sizeof(*cp));
	struct pollfd *pf = calloc((size_t)(nclients + nprocs), sizeof(*pf));
	char url[256], rurl[256], *buf = malloc(8192), *reply = malloc(8192);
	long fd0, fdl, rss0, rss_idle, rss_busy = -1, accepted = 0, gone = 0, done = 0;
	long requests = 0, bad = 0;
	ipc_listener *l;
	bool ok = true;
	int64_t t0, deadline;
	int r;

	tu_url(url, sizeof(url), be, false);
	fd0 = st_fd_count();
	r = ipc_listen(&l, url, NULL);
	if (r < 0) {
		st_fail("%s: ipc_listen: %d %s", be, r, tu_err(r));
		return false;
	}
	snprintf(rurl, sizeof(rurl), "%s", ipc_listener_url(l));
	fdl = st_fd_count();
	rss0 = st_rss_kb();
	fflush(stdout);
	for (long p = 0; p < nprocs; p++) {
		cp[p].first = (int)(nclients * p / nprocs);
		cp[p].n = (int)(nclients * (p + 1) / nprocs) - cp[p].first;
		tu_side_init(&cp[p].side);
		cp[p].pid = fork();
		if (cp[p].pid < 0)
			abort();
		if (cp[p].pid == 0) {
			ipc_listener_close(l); /* the inherited copy: descriptors only */
			tu_side_child(&cp[p].side);
			_exit(client_proc(rurl, &cp[p], seconds));
		}
		tu_side_parent(&cp[p].side);
	}
	t0 = tu_now_ms();
	deadline = t0 + 120000;
	while (accepted < nclients && tu_now_ms() < deadline) {
		r = ipc_accept(l, &sv[accepted].c, 1000);
		if (r == 0) {
			sv[accepted++].id = -1;
		} else if (r != -ETIMEDOUT && r != -EAGAIN) {
			st_fail("%s: ipc_accept: %d %s", be, r, tu_err(r));
			ok = false;
			break;
		}
	}
	for (long p = 0; p < nprocs && ok; p++)
		if (tu_get(cp[p].side.c2p[0], 60000) != 'r') {
			st_fail("%s: client process %ld did not connect its clients", be, p);
			ok = false;
		}
	if (ok && accepted < nclients) {
		st_fail("%s: only %ld of %ld clients accepted", be, accepted, nclients);
		ok = false;
	}
	rss_idle = st_rss_kb();
	for (long p = 0; p < nprocs; p++)
		tu_put(cp[p].side.p2c[1], ok ? 'g' : 'x');
	deadline = tu_now_ms() + (seconds + 120) * 1000;
	while (ok && gone < accepted && tu_now_ms() < deadline) {
		for (long k = 0; k < accepted; k++)
			pf[k] = (struct pollfd){ .fd = sv[k].c ? ipc_fd(sv[k].c) : -1, .events = POLLIN };
		for (long p = 0; p < nprocs; p++)
			pf[accepted + p] = (struct pollfd){ .fd = cp[p].done ? -1 : cp[p].side.c2p[0],
							    .events = POLLIN };
		if (poll(pf, (nfds_t)(accepted + nprocs), 1000) < 0 && errno != EINTR)
			break;
		for (long k = 0; k < accepted && ok; k++) {
			bool bye = false;

			if (!pf[k].revents)
				continue;
			ok = serve_one(be, &sv[k], buf, reply, &bye);
			if (bye) {
				ipc_close(sv[k].c);
				sv[k].c = NULL;
				gone++;
			}
		}
		for (long p = 0; p < nprocs; p++) {
			char msg[64];

			if (cp[p].done || !pf[accepted + p].revents)
				continue;
			cp[p].done = true;
			if (!tu_get_str(cp[p].side.c2p[0], msg, sizeof(msg), 5000) ||
			    sscanf(msg, "%ld %ld", &cp[p].requests, &cp[p].bad) != 2) {
				st_fail("%s: client process %ld failed", be, p);
				ok = false;
				continue;
			}
			requests += cp[p].requests;
			bad += cp[p].bad;
			if (++done == nprocs) {
				rss_busy = st_rss_kb();
				for (long q = 0; q < nprocs; q++)
					tu_put(cp[q].side.p2c[1], 'q');
			}
		}
	}
	double secs = (double)(tu_now_ms() - t0) / 1000.0;

	for (long k = 0; k < accepted; k++)
		if (sv[k].c) {
			ipc_close(sv[k].c);
			if (ok)
				st_fail("%s: channel %ld never saw its client go (-EPIPE)", be, k);
			ok = false;
		}
	for (long p = 0; p < nprocs; p++) {
		char st[64];
		int s = tu_wait_child(cp[p].pid, 30000);

		if (s == -1 || !WIFEXITED(s) || WEXITSTATUS(s) != 0) {
			st_fail("%s: client process %ld ended with %s", be, p, tu_status_str(s, st, sizeof(st)));
			ok = false;
		}
		tu_side_close(&cp[p].side);
	}
	long fd_after = st_fd_count();

	ipc_listener_close(l);
	long fd_end = st_fd_count();
	char left[300];

	st_log("%s: %ld clients at once from %ld processes, %ld request/replies in %.1f s, %ld bad; "
	       "server RSS per idle channel %.1f KiB, per busy channel %.1f KiB; descriptors %ld at "
	       "start, %ld listening, %ld after the clients left, %ld after the listener closed",
	       be, accepted, nprocs, requests, secs, bad, (double)(rss_idle - rss0) / (double)nclients,
	       (double)(rss_busy - rss0) / (double)nclients, fd0, fdl, fd_after, fd_end);
	if (bad) {
		st_fail("%s: %ld replies were wrong", be, bad);
		ok = false;
	}
	if (ok && requests < nclients) {
		st_fail("%s: only %ld request/replies for %ld clients", be, requests, nclients);
		ok = false;
	}
	if (fd_after != fdl || fd_end != fd0) {
		st_fail("%s: descriptors not back to their count", be);
		ok = false;
	}
	if ((rss_idle - rss0) / nclients > idle_kb) {
		st_fail("%s: %ld KiB per idle channel (bound STRESS_LOAD_IDLE_KB=%ld)", be,
			(rss_idle - rss0) / nclients, idle_kb);
		ok = false;
	}
	if (tu_leftovers(left, sizeof(left)) > 0) {
		st_fail("%s: left behind: %s", be, left);
		ok = false;
	}
	free(sv);
	free(cp);
	free(pf);
	free(buf);
	free(reply);
	return ok;
}

/* ------------------------------------------------------------ memory per pair */

static bool mem_pairs(const char *be, int n, long idle_kb)
{
	ipc_chan **a = calloc((size_t)n, sizeof(*a)), **b = calloc((size_t)n, sizeof(*b));
	char *buf = malloc(16384), *rbuf = malloc(16384);
	long rss0 = st_rss_kb(), rss1, rss2;
	bool ok = true;
	int opened = 0;

	for (; opened < n; opened++) {
		int r = st_connect(be, NULL, &a[opened], &b[opened]);

		if (r == -EMFILE && opened > 0 && tu_expect(be)->user_quota) {
			/* RLIMIT_MSGQUEUE counts every queue of this user */
			st_log("%s: the per-user queue memory (RLIMIT_MSGQUEUE) ran out after %d pairs",
			       be, opened);
			break;
		}
		if (r < 0) {
			st_fail("%s: pair %d: %d %s", be, opened, r, tu_err(r));
			ok = false;
			break;
		}
		if (ipc_send(a[opened], "i", 1, CALL_MS) < 0 || ipc_recv(b[opened], rbuf, 16384, CALL_MS) < 0 ||
		    ipc_send(b[opened], "i", 1, CALL_MS) < 0 || ipc_recv(a[opened], rbuf, 16384, CALL_MS) < 0) {
			st_fail("%s: pair %d: first exchange failed", be, opened);
			ok = false;
		}
	}
	rss1 = st_rss_kb();
	for (int k = 0; k < opened && ok; k++) {
		ipc_info info;

		ipc_info_get(a[k], &info);
		for (uint64_t i = 0; i < 256 && ok; i++) {
			for (int d = 0; d < 2 && ok; d++) {
				size_t len = st_size((uint32_t)d + 1, i, 16384, info.max_msg < 16384 ? info.max_msg : 16384);
				ssize_t r;

				st_fill(buf, len, (uint32_t)d + 1, i);
				if (ipc_send(d ? b[k] : a[k], buf, len, CALL_MS) < 0)
					ok = false;
				r = ipc_recv(d ? a[k] : b[k], rbuf, 16384, CALL_MS);
				/* udp may lose a datagram: only reliable backends must deliver */
				if (r < 0 && (tu_expect(be)->caps & IPC_CAP_RELIABLE))
					ok = false;
				if (r >= 0 && st_check(rbuf, r, len, (uint32_t)d + 1, i) != 0)
					ok = false;
			}
		}
		if (!ok)
			st_fail("%s: pair %d: busy exchange failed", be, k);
	}
	rss2 = st_rss_kb();
	for (int k = 0; k < opened; k++) {
		ipc_close(a[k]);
		ipc_close(b[k]);
	}
	st_log("%s: %d pairs (both ends in this process): RSS per idle pair %.1f KiB, per busy pair "
	       "%.1f KiB", be, opened, (double)(rss1 - rss0) / opened, (double)(rss2 - rss0) / opened);
	if (ok && opened && (rss1 - rss0) / opened > idle_kb) {
		st_fail("%s: %ld KiB per idle pair (bound STRESS_LOAD_IDLE_KB=%ld)", be,
			(rss1 - rss0) / opened, idle_kb);
		ok = false;
	}
	free(a);
	free(b);
	free(buf);
	free(rbuf);
	return ok;
}

int main(void)
{
	const char *const *bes = ipc_backends();
	long nclients = st_knob("STRESS_LOAD_CLIENTS", 500, 500);
	long nprocs = st_knob("STRESS_LOAD_PROCS", 5, 5);
	long seconds = st_knob("STRESS_LOAD_SECONDS", 5, 1);
	long npairs = st_knob("STRESS_LOAD_PAIRS", 20, 20);
	long idle_kb = st_knob("STRESS_LOAD_IDLE_KB", 256, 256);
	long lim = st_raise_nofile(nclients * 6 + 200);
	int passed = 0, skipped = 0;

	st_campaign = "load";
	st_own_user();
	signal(SIGPIPE, SIG_IGN);
	st_log("%ld clients from %ld processes for %ld s per listener backend; open-file limit %ld",
	       nclients, nprocs, seconds, lim);
	for (size_t k = 0; bes[k]; k++) {
		unsigned caps = tu_expect(bes[k])->caps;

		if (!st_want(bes[k]))
			continue;
		/* mq: two pairs, so that other queues of the user (the kill
		 * campaign's, other tests') still fit in RLIMIT_MSGQUEUE */
		if (mem_pairs(bes[k], tu_expect(bes[k])->user_quota ? 2 : (int)npairs, idle_kb))
			passed++;
		if (!(caps & IPC_CAP_LISTEN) || !(caps & IPC_CAP_PROCESS))
			continue;
		if (load_backend(bes[k], nclients, nprocs, seconds, idle_kb))
			passed++;
	}
	return st_finish(passed, skipped);
}
