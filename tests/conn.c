/*
 * conn.c - the harness of the parameterised suites (see conn.h).
 */
#include "conn.h"

#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const char *const mode_names[] = { "pair", "srv", "cli" };

/* The test's current parameters (set_tag): whether its peers are
 * processes or threads. */
static const struct cparam *cur;

const struct tu_expect *pexp(const struct cparam *p)
{
	return tu_expect(p->be);
}

bool has_cap(const char *be, unsigned cap)
{
	return (tu_expect(be)->caps & cap) != 0;
}

bool reliable(const char *be)
{
	return has_cap(be, IPC_CAP_RELIABLE);
}

/* ---------------------------------------------------------------- params */

static void free_params(struct criterion_test_params *crp)
{
	cr_free(crp->params);
}

static void add_param(struct cparam *arr, size_t *n, const char *be, int mode, bool abstract)
{
	struct cparam *p = &arr[(*n)++];

	memset(p, 0, sizeof(*p));
	snprintf(p->be, sizeof(p->be), "%s", be);
	p->mode = mode;
	p->abstract = abstract;
}

/* PK_ALL: every mode; PK_URL: one srv entry per URL form; PK_PAIR: pair
 * only; PK_PAIR_URL: pair and srv entries. */
struct criterion_test_params make_params(int kind)
{
	const char *const *bes = ipc_backends();
	bool pair = kind != PK_URL, srv = kind != PK_PAIR, cli = kind == PK_ALL;
	size_t nb = 0, n = 0;
	struct cparam *arr;

	while (bes && bes[nb])
		nb++;
	arr = cr_malloc(sizeof(*arr) * (nb * 5 + 1));
	for (size_t i = 0; i < nb; i++) {
		const char *be = bes[i];
		const struct tu_expect *e = tu_expect(be);
		bool abstract = e->caps & IPC_CAP_ABSTRACT;

		if (pair && (e->caps & IPC_CAP_PAIR))
			add_param(arr, &n, be, M_PAIR, false);
		if (e->url == TU_URL_NONE)
			continue;
		if (srv) {
			add_param(arr, &n, be, M_SRV, false);
			if (abstract)
				add_param(arr, &n, be, M_SRV, true);
		}
		if (cli) {
			add_param(arr, &n, be, M_CLI, false);
			if (abstract)
				add_param(arr, &n, be, M_CLI, true);
		}
	}
	return cr_make_param_array(struct cparam, arr, n, free_params);
}

void set_tag(const struct cparam *p)
{
	cur = p;
	snprintf(tu_tag, sizeof(tu_tag), "%s%s/%s", p->be, p->abstract ? "-abstract" : "",
		 mode_names[p->mode]);
	tu_test_pid();
}

/* ------------------------------------------------------------ connection */

bool peers_in_threads(void)
{
	return cur && !has_cap(cur->be, IPC_CAP_PROCESS);
}

/* After the peer started: keep only this side's ends of the side pipes
 * (a thread peer shares them: nothing to close). */
static void side_mine(struct tu_side *s, bool peer)
{
	if (tu_in_thread_peer() || peers_in_threads())
		return;
	if (peer)
		tu_side_child(s);
	else
		tu_side_parent(s);
}

/* Everything the peer needs to open its end and run; pk is the peer's own
 * view of the connection (the other role; its side-pipe ends). */
struct conn_start_arg {
	struct conn pk;
	const ipc_opts *opts;         /* the peer's end's options */
	peer_fn fn;
	void *arg;
	ipc_chan *mine;       /* pair: the peer's end */
	ipc_chan *other;      /* pair: the test's end (a forked copy is closed) */
	char url[512];
};

static int conn_peer(void *argp)
{
	struct conn_start_arg *a = argp;
	struct conn *k = &a->pk;
	ipc_chan *c = NULL;
	ipc_info info;
	side_mine(&k->side, true);
	switch (k->p->mode) {
	case M_PAIR:
		if (!tu_in_thread_peer())
			ipc_close(a->other);
		c = a->mine;
		break;
	case M_SRV: {
		char url[512];
		C_TRUE(tu_get_str(PEER_IN(k), url, sizeof(url), 10000));
		C_OK(ipc_open(&c, url, IPC_CLIENT, a->opts));
		break;
	}
	case M_CLI:
		C_OK(ipc_open(&c, a->url, IPC_SERVER, a->opts));
		C_OK(ipc_info_get(c, &info));
		C_TRUE(info.url != NULL);
		C_TRUE(tu_put_str(PEER_OUT(k), info.url));
		break;
	}
	int rc = a->fn(c, k, a->arg);
	ipc_close(c);
	return rc;
}

void conn_start(struct conn *k, const struct cparam *p, const ipc_opts *opts, peer_fn fn,
		void *arg)
{
	conn_start2(k, p, opts, opts, fn, arg);
}

/* Open the two ends as p->mode says and start fn in the peer (a process,
 * or a thread for a backend whose ends stay in one process). */
void conn_start2(struct conn *k, const struct cparam *p, const ipc_opts *opts,
		 const ipc_opts *peer_opts, peer_fn fn, void *arg)
{
	ipc_chan *a = NULL, *b = NULL;
	ipc_info info;
	struct conn_start_arg *sa;

	memset(k, 0, sizeof(*k));
	k->p = p;
	tu_side_init(&k->side);
	sa = xmalloc(sizeof(*sa));
	memset(sa, 0, sizeof(*sa));
	*sa = (struct conn_start_arg){ .opts = peer_opts, .fn = fn, .arg = arg };
	k->start = sa;
	if (p->mode != M_PAIR)
		cr_assert(tu_url(sa->url, sizeof(sa->url), p->be, p->abstract), "[%s] no URL form",
			  tu_tag);
	k->client = p->mode == M_CLI;
	sa->pk = *k;
	sa->pk.client = !k->client;
	if (p->mode == M_PAIR) {
		T_OK(ipc_pair(p->be, &a, &b, opts));
		sa->mine = b;
		sa->other = a;
	}
	/* (srv: the peer starts before the server opens, so that a forked
	 * peer inherits nothing of the server's endpoint) */
	tu_peer_start(&k->peer, peers_in_threads(), conn_peer, sa);
	k->pid = k->peer.pid;
	side_mine(&k->side, false);

	switch (p->mode) {
	case M_PAIR:
		if (!k->peer.thread)
			ipc_close(b);
		k->c = a;
		return;
	case M_SRV:
		T_OK(ipc_open(&k->c, sa->url, IPC_SERVER, opts));
		T_OK(ipc_info_get(k->c, &info));
		cr_assert(info.url != NULL, "[%s] ipc_info.url is NULL", tu_tag);
		snprintf(k->url, sizeof(k->url), "%s", info.url);
		cr_assert(tu_put_str(TEST_OUT(k), k->url));
		return;
	case M_CLI:
		if (!tu_get_str(TEST_IN(k), k->url, sizeof(k->url), 10000)) {
			char st[64];
			int status = tu_peer_wait(&k->peer, 5000);

			k->pid = 0;
			cr_assert_fail("[%s] the peer did not open the server %s (%s)", tu_tag,
				       sa->url, tu_status_str(status, st, sizeof(st)));
		}
		T_OK(ipc_open(&k->c, k->url, IPC_CLIENT, opts));
		return;
	}
}

/* Reap the peer (bounded) and require exit status 0 (or the signal). */
void conn_reap(struct conn *k, int expect_signal)
{
	char st[64];
	int status;

	if (!k->start)
		return;
	status = tu_peer_wait(&k->peer, PEER_WAIT_MS);
	k->pid = 0;
	free(k->start);
	k->start = NULL;
	if (expect_signal)
		cr_assert(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == expect_signal,
			  "[%s] peer: %s, expected signal %d", tu_tag,
			  tu_status_str(status, st, sizeof(st)), expect_signal);
	else
		cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "[%s] peer failed: %s (its stderr says why)", tu_tag,
			  tu_status_str(status, st, sizeof(st)));
}

/* Close the test's ends of a side pipe pair; with a thread peer the
 * peer's ends are closed only once it has ended. */
static void side_close_mine(struct tu_side *s, bool thread)
{
	if (!thread) {
		tu_side_close(s);
		return;
	}
	close(s->p2c[1]);
	close(s->c2p[0]);
	s->p2c[1] = s->c2p[0] = -1;
}

/* Close this end, let the peer finish, and check nothing is left behind. */
void conn_end(struct conn *k)
{
	char left[300];
	int n;
	bool thread = k->peer.thread;

	ipc_close(k->c);
	k->c = NULL;
	side_close_mine(&k->side, thread);
	conn_reap(k, 0);
	if (thread)
		tu_side_close(&k->side);
	n = tu_leftovers(left, sizeof(left));
	cr_assert(n == 0, "[%s] %d name(s) left behind after both ends closed, e.g. %s", tu_tag, n,
		  left);
}

void peer_reap_ok(pid_t pid, const char *who)
{
	char st[64];
	int status = tu_wait_child(pid, PEER_WAIT_MS);

	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "[%s] %s: %s",
		  tu_tag, who, tu_status_str(status, st, sizeof(st)));
}

/* The client end speaks first (a udp server learns its peer from the
 * client's first datagram); pair ends: the peer speaks first. */
int handshake(ipc_chan *c, bool client)
{
	char b = 0;
	ssize_t n;
	int rc;

	if (client) {
		rc = ipc_send(c, "h", 1, 10000);
		if (rc < 0)
			return rc;
		n = ipc_recv(c, &b, 1, 10000);
		return n < 0 ? (int)n : (n == 1 && b == 'H') ? 0 : -EBADMSG;
	}
	n = ipc_recv(c, &b, 1, 10000);
	if (n < 0)
		return (int)n;
	if (n != 1 || b != 'h')
		return -EBADMSG;
	return ipc_send(c, "H", 1, 10000);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

bool is_end(const void *buf, ssize_t n)
{
	return n == 3 && memcmp(buf, "END", 3) == 0;
}

/* True once the test process has closed its side pipes. */
bool test_gone(struct conn *k)
{
	struct pollfd pfd = { .fd = PEER_IN(k), .events = POLLIN };
	char b;

	return poll(&pfd, 1, 0) == 1 && read(PEER_IN(k), &b, 1) == 0;
}

/* Peer: echo every message until "END" (echoed too), the test's end
 * closing (-EPIPE) or, on unreliable backends, its side pipe closing. */
int peer_echo(ipc_chan *c, struct conn *k, void *arg)
{
	size_t cap = 2 * MIB;
	char *buf = xmalloc(cap);

	for (int i = 0; i < 1000000; i++) {
		ssize_t n = ipc_recv(c, buf, cap, 100);

		if (n == -ETIMEDOUT) {
			if (test_gone(k))
				break;
			continue;
		}
		if (n == -EPIPE)
			break;
		C_OK(n);
		C_OK(ipc_send(c, buf, (size_t)n, -1));
		if (is_end(buf, n))
			break;
	}
	free(buf);
	return 0;
}

/* Test side of peer_echo's end. */
void echo_finish(struct conn *k)
{
	char b[8];

	T_OK(ipc_send(k->c, "END", 3, 10000));
	T_EQ(ipc_recv(k->c, b, sizeof(b), 10000), 3);
	cr_assert(memcmp(b, "END", 3) == 0, "[%s] END echo corrupted", tu_tag);
}

/* Send len bytes of pattern seed and expect the same message back. */
void echo_check(struct conn *k, size_t len, uint32_t seed, char *sbuf, char *rbuf, size_t rcap)
{
	ssize_t n, bad;

	tu_fill(sbuf, len, seed);
	T_OK(ipc_send(k->c, sbuf, len, 30000));
	n = ipc_recv(k->c, rbuf, rcap, 30000);
	cr_assert(n == (ssize_t)len, "[%s] echo of %zu bytes: ipc_recv = %zd %s", tu_tag, len, n,
		  tu_err(n));
	bad = tu_check(rbuf, len, seed);
	cr_assert(bad < 0, "[%s] echo of %zu bytes differs at byte %zd", tu_tag, len, bad);
}

size_t chan_max(ipc_chan *c)
{
	ipc_info info;

	T_OK(ipc_info_get(c, &info));
	return info.max_msg;
}


int readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int n = poll(&pfd, 1, timeout_ms);

	cr_assert(n >= 0, "poll: %s", strerror(errno));
	cr_assert(!(pfd.revents & POLLNVAL), "[%s] ipc_fd is not an open descriptor", tu_tag);
	return n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}


static void *killer_main(void *arg)
{
	struct killer *kl = arg;

	tu_sleep_ms(kl->delay_ms);
	kl->killed_at = tu_now_ms();
	kill(kl->pid, SIGKILL);
	return NULL;
}

void killer_start(struct killer *kl, pid_t pid, int delay_ms)
{
	kl->pid = pid;
	kl->delay_ms = delay_ms;
	kl->killed_at = 0;
	cr_assert(pthread_create(&kl->th, NULL, killer_main, kl) == 0);
}


size_t read_proc_size(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long v = 0;

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	return v;
}


/* A peer holding a server on url: it reports the resolved URL, then waits
 * for a byte: 'a' = wait for a client and handshake, 'q' = close and exit.
 * The test may also SIGKILL it (process peers only). */
static int holder_main(void *arg)
{
	struct holder *h = arg;
	ipc_chan *c = NULL;
	ipc_info info;

	side_mine(&h->side, true);
	C_OK(ipc_open(&c, h->url, IPC_SERVER, NULL));
	C_OK(ipc_info_get(c, &info));
	C_TRUE(tu_put_str(h->side.c2p[1], info.url));
	for (;;) {
		int cmd = tu_get(h->side.p2c[0], 30000);

		if (cmd != 'a')
			break;
		C_OK(handshake(c, false));
		C_TRUE(tu_put(h->side.c2p[1], 'A'));
	}
	ipc_close(c);
	return 0;
}

void holder_start(struct holder *h, const char *url)
{
	memset(h, 0, sizeof(*h));
	tu_side_init(&h->side);
	snprintf(h->url, sizeof(h->url), "%s", url);
	tu_peer_start(&h->peer, peers_in_threads(), holder_main, h);
	h->pid = h->peer.pid;
	side_mine(&h->side, false);
	char got[512];
	cr_assert(tu_get_str(h->side.c2p[0], got, sizeof(got), 10000),
		  "[%s] holder could not open %s", tu_tag, url);
	snprintf(h->url, sizeof(h->url), "%s", got);
}

void holder_stop(struct holder *h, bool kill_it)
{
	char st[64];
	int status;

	cr_assert(!kill_it || !h->peer.thread, "[%s] a thread cannot be killed", tu_tag);
	if (kill_it)
		kill(h->pid, SIGKILL);
	else
		tu_put(h->side.p2c[1], 'q');
	status = tu_peer_wait(&h->peer, PEER_WAIT_MS);
	tu_side_close(&h->side);
	if (!kill_it)
		cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "[%s] holder: %s", tu_tag, tu_status_str(status, st, sizeof(st)));
}

/* A client peer started before the test opens its server, so that (as a
 * process) it inherits nothing of the server's endpoint (a forked copy of
 * a listening socket would keep the endpoint alive). It waits for the URL
 * on a pipe (client_go), connects within connect_timeout_ms, handshakes,
 * and stays until the server side closes. */
static int early_main(void *arg)
{
	struct early *e = arg;
	ipc_opts o = { .connect_timeout_ms = e->timeout_ms };
	ipc_chan *c = NULL;
	char url[512];

	if (!tu_in_thread_peer())
		close(e->wfd);
	C_TRUE(tu_get_str(e->rfd, url, sizeof(url), 20000));
	C_OK(ipc_open(&c, url, IPC_CLIENT, &o));
	C_OK(handshake(c, true));
	for (int i = 0; i < 100; i++) {
		char b;
		ssize_t n = ipc_recv(c, &b, 1, 100);

		if (n != -ETIMEDOUT)
			break;
	}
	ipc_close(c);
	return 0;
}

void client_spawn(struct early *e, int connect_timeout_ms)
{
	int p[2];

	memset(e, 0, sizeof(*e));
	cr_assert(pipe2(p, O_CLOEXEC) == 0);
	e->rfd = p[0];
	e->wfd = p[1];
	e->timeout_ms = connect_timeout_ms;
	tu_peer_start(&e->peer, peers_in_threads(), early_main, e);
	e->pid = e->peer.pid;
	if (!e->peer.thread) {
		close(e->rfd);
		e->rfd = -1;
	}
}

void client_go(struct early *e, const char *url)
{
	cr_assert(tu_put_str(e->wfd, url));
	close(e->wfd);
	e->wfd = -1;
}

void client_start(struct early *e, const char *url, int connect_timeout_ms)
{
	client_spawn(e, connect_timeout_ms);
	client_go(e, url);
}

void client_reap(struct early *e)
{
	char st[64];
	int status = tu_peer_wait(&e->peer, PEER_WAIT_MS);

	if (e->rfd >= 0)
		close(e->rfd);
	e->rfd = -1;
	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "[%s] client peer: %s", tu_tag, tu_status_str(status, st, sizeof(st)));
}

void no_leftovers(const char *when)
{
	char left[300];
	int n = tu_leftovers(left, sizeof(left));

	cr_assert(n == 0, "[%s] %d name(s) left %s, e.g. %s", tu_tag, n, when, left);
}

