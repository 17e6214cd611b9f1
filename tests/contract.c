/*
 * contract.c - the promises real applications lean on, checked on every
 * backend they concern (see conn.h for the harness):
 *
 *   cut_*              a send cut by its deadline: 0 means the whole message
 *                      arrives whatever the sender does next (waits for the
 *                      reply, only polls ipc_fd, closes); a timeout means
 *                      nothing of it arrives
 *   threads_*          one sending and one receiving thread per end, full
 *                      queues and small buffers: no loss, duplicate, reorder
 *   fd_*, loop_*       ipc_fd level-triggered from its first call; servers
 *                      and listeners driven by poll alone
 *   fork_*             a forked child's close removes no names
 *   alias_*            another spelling of a live server's path cannot steal it
 *   backlog_*          a full listen backlog never makes a client block past
 *                      connect_timeout_ms
 *   other_user_*       another user can neither deny a free name nor hang us
 *   peer_max_*         every send, the first included, honours the peer's max_msg
 *   fault_*            injected ENOMEM / EMFILE: the exact error, nothing sent
 *                      or leaked, the channel still usable; also while a
 *                      killed server's endpoint is reclaimed
 *   recvv_*            batch receive: boundaries, -EMSGSIZE, EOF, timeouts
 */
#include "conn.h"
#include "fault.h"

#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

TestSuite(contract, .fini = tu_leak_check);

#define CONTRACT_TEST(name, kind, timeout_s) CONF_TEST_KIND(contract, name, kind, timeout_s)

/* ------------------------------------------------------------ cut sends */

/* What the test does after a send that its deadline may have cut. */
enum cut_next { CUT_WAIT_REPLY, CUT_POLL_ONLY, CUT_CLOSE };

/* Large enough that no kernel buffer or ring takes it at once. */
static size_t cut_size(ipc_chan *c)
{
	size_t max = chan_max(c);
	return max < 8 * MIB ? max : 8 * MIB;
}

static uint32_t sum32(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Peer: handshake; wait for 'g' (the test's send has returned); receive
 * everything the test sent and report it: the big message (whole and
 * intact, with its checksum as the reply), then probes. */
static int peer_cut(ipc_chan *c, struct conn *k, void *arg)
{
	enum cut_next next = (enum cut_next)(intptr_t)arg;
	size_t cap = 16 * MIB;
	unsigned char *buf = xmalloc(cap);
	char msg[64];

	C_OK(handshake(c, k->client));
	C_TRUE(tu_put(PEER_OUT(k), 'r'));
	/* 'g': the big send returned 0; 'G': so did the one-byte send after
	 * it; 't': the big send timed out */
	int cmd = tu_get(PEER_IN(k), 20000);
	C_TRUE(cmd == 'g' || cmd == 'G' || cmd == 't');
	if (cmd != 't') {
		/* the send returned 0: the whole message must arrive */
		ssize_t n = ipc_recv(c, buf, cap, 30000);
		C_TRUE(n > 0);
		C_EQ(tu_check(buf, (size_t)n, 77), -1);
		if (cmd == 'G') {
			C_EQ(ipc_recv(c, msg, sizeof(msg), 30000), 1);
			C_EQ(msg[0], 'x');
		}
		snprintf(msg, sizeof(msg), "R%zd:%08x", n, sum32(buf, (size_t)n));
		if (next != CUT_CLOSE)
			C_OK(ipc_send(c, msg, strlen(msg), 20000));
		else
			C_EQ(ipc_recv(c, buf, cap, 20000), -EPIPE);
	}
	/* whatever the test sends next must come next, whole */
	if (next != CUT_CLOSE) {
		ssize_t n = ipc_recv(c, buf, cap, 30000);
		C_EQ(n, 5);
		C_TRUE(memcmp(buf, "probe", 5) == 0);
	}
	free(buf);
	return 0;
}

static void cut_case(const struct cparam *p, enum cut_next next)
{
	struct conn k;
	char reply[64], want[64];

	set_tag(p);
	if (!pexp(p)->cut)
		cr_skip_test("[%s] messages go whole: nothing to cut", tu_tag);
	conn_start(&k, p, NULL, peer_cut, (void *)(intptr_t)next);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 20000) == 'r', "[%s] peer not ready", tu_tag);
	size_t len = cut_size(k.c);
	unsigned char *big = xmalloc(len);
	tu_fill(big, len, 77);
	/* the peer is not reading: a 200 ms deadline cuts this send */
	int rc = ipc_send(k.c, big, len, 200);
	cr_assert(rc == 0 || rc == -ETIMEDOUT, "[%s] cut send: %d %s", tu_tag, rc, tu_err(rc));
	char go = rc == 0 ? 'g' : 't';
	if (rc == 0) {
		/* A second message while the first one's rest may be pending:
		 * timeout 0 may refuse it (-EAGAIN: then it must never arrive),
		 * or send it after the first (the peer then gets it next). */
		int r2 = ipc_send(k.c, "x", 1, 0);
		cr_assert(r2 == 0 || r2 == -EAGAIN, "[%s] send behind a cut one: %d %s", tu_tag, r2,
			  tu_err(r2));
		if (r2 == 0)
			go = 'G';
	}
	snprintf(want, sizeof(want), "R%zu:%08x", len, sum32(big, len));
	cr_assert(tu_put(TEST_OUT(&k), go));
	if (rc == 0) {
		switch (next) {
		case CUT_WAIT_REPLY: {
			/* request/reply: block for the reply at once */
			ssize_t n = ipc_recv(k.c, reply, sizeof(reply) - 1, 30000);
			cr_assert(n > 0, "[%s] no reply after a cut send: %zd %s", tu_tag, n, tu_err(n));
			reply[n] = 0;
			cr_assert(strcmp(reply, want) == 0, "[%s] reply %s, want %s", tu_tag, reply, want);
			break;
		}
		case CUT_POLL_ONLY: {
			/* an event loop: nothing but poll until the reply is there */
			int fd = ipc_fd(k.c);
			T_OK(fd);
			cr_assert(readable(fd, 30000), "[%s] no reply while only polling ipc_fd", tu_tag);
			ssize_t n = ipc_recv(k.c, reply, sizeof(reply) - 1, 0);
			cr_assert(n > 0, "[%s] ipc_fd readable, recv: %zd %s", tu_tag, n, tu_err(n));
			reply[n] = 0;
			cr_assert(strcmp(reply, want) == 0, "[%s] reply %s, want %s", tu_tag, reply, want);
			break;
		}
		case CUT_CLOSE:
			break;
		}
	}
	if (next != CUT_CLOSE)
		T_OK(ipc_send(k.c, "probe", 5, 20000));
	free(big);
	conn_end(&k);
}

CONTRACT_TEST(cut_then_wait_reply, PK_ALL, 90)
{
	cut_case(p, CUT_WAIT_REPLY);
}

CONTRACT_TEST(cut_then_poll_only, PK_ALL, 90)
{
	cut_case(p, CUT_POLL_ONLY);
}

CONTRACT_TEST(cut_then_close, PK_ALL, 90)
{
	cut_case(p, CUT_CLOSE);
}

/* ----------------------------------------------------- threads, full queues */

/* Each end runs a sending and a receiving thread; the peer end the same,
 * so both directions are full at times; receives first try a buffer too
 * small for most messages (-EMSGSIZE keeps the message), then a big one. */
#define TQ_COUNT 20000
#define TQ_MAX 700

static size_t tq_size(uint32_t i, size_t max)
{
	size_t s = 4 + (i * 131u) % TQ_MAX;
	return s < max ? s : max;
}

struct tq {
	ipc_chan *c;
	uint32_t count;
	size_t max;
	bool reliable;
	uint32_t got, tag;
	char err[200];
};

static void *tq_send(void *arg)
{
	struct tq *t = arg;
	char buf[TQ_MAX + 8];
	for (uint32_t i = 0; i < t->count; i++) {
		size_t len = tq_size(i, t->max);
		memcpy(buf, &i, 4);
		tu_fill(buf + 4, len - 4, i ^ t->tag);
		int rc;
		/* timeout 0 with retries: the queue is often full */
		for (int tries = 0; (rc = ipc_send(t->c, buf, len, 0)) == -EAGAIN && tries < 200000;
		     tries++)
			if (tries % 64 == 63)
				tu_sleep_ms(1);
		if (rc < 0) {
			snprintf(t->err, sizeof(t->err), "send %u: %d %s", i, rc, tu_err(rc));
			return NULL;
		}
	}
	ipc_send(t->c, "END", 3, 20000);
	return NULL;
}

static void *tq_recv(void *arg)
{
	struct tq *t = arg;
	char small[8], buf[TQ_MAX + 8];
	int64_t last = -1;
	for (uint32_t n = 0; n <= t->count; n++) {
		int to = t->reliable ? 30000 : 2000;
		ssize_t len = ipc_recv(t->c, small, sizeof(small), to);
		if (len == -EMSGSIZE) /* (it is queued, whole) */
			len = ipc_recv(t->c, buf, sizeof(buf), 0);
		else if (len >= 0)
			memcpy(buf, small, (size_t)len);
		if (len >= 0 && is_end(buf, len))
			return NULL;
		if (!t->reliable && len == -ETIMEDOUT)
			return NULL;
		if (len < 4) {
			snprintf(t->err, sizeof(t->err), "recv %u: %zd %s", n, len, tu_err(len));
			return NULL;
		}
		uint32_t idx;
		memcpy(&idx, buf, 4);
		if ((t->reliable && idx != n) || (int64_t)idx <= last || idx >= t->count ||
		    (size_t)len != tq_size(idx, t->max) ||
		    tu_check(buf + 4, (size_t)len - 4, idx ^ t->tag) >= 0) {
			snprintf(t->err, sizeof(t->err), "message %u: got number %u, %zd bytes%s", n,
				 idx, len, (int64_t)idx <= last ? " (duplicate or reordered)" : "");
			return NULL;
		}
		last = idx;
		t->got++;
		if (n % 2000 == 1999)
			tu_sleep_ms(20); /* let the queue towards us fill up */
	}
	snprintf(t->err, sizeof(t->err), "no END after %u messages", t->count);
	return NULL;
}

static void tq_run(struct tq *snd, struct tq *rcv)
{
	pthread_t ts, tr;
	if (pthread_create(&tr, NULL, tq_recv, rcv) != 0 ||
	    pthread_create(&ts, NULL, tq_send, snd) != 0)
		abort();
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
}

static int peer_tq(ipc_chan *c, struct conn *k, void *arg)
{
	struct tq snd = { .c = c, .tag = 0x5a5a };
	struct tq rcv = { .c = c, .tag = 0xa5a5 };
	ipc_info info;
	C_OK(handshake(c, k->client));
	C_OK(ipc_info_get(c, &info));
	snd.reliable = rcv.reliable = info.caps & IPC_CAP_RELIABLE;
	snd.count = rcv.count = snd.reliable ? TQ_COUNT : 500;
	snd.max = rcv.max = info.max_msg;
	tq_run(&snd, &rcv);
	if (snd.err[0] || rcv.err[0]) {
		fprintf(stderr, "[%s] peer: %s %s\n", tu_tag, snd.err, rcv.err);
		return 1;
	}
	if (snd.reliable && rcv.got != rcv.count) {
		fprintf(stderr, "[%s] peer got %u of %u\n", tu_tag, rcv.got, rcv.count);
		return 1;
	}
	/* wait for the test to finish before closing */
	tu_get(PEER_IN(k), 30000);
	return 0;
}

CONTRACT_TEST(threads_full_queues, PK_ALL, 120)
{
	struct conn k;
	set_tag(p);
	conn_start(&k, p, NULL, peer_tq, NULL);
	T_OK(handshake(k.c, k.client));
	struct tq snd = { .c = k.c, .tag = 0xa5a5, .reliable = reliable(p->be) };
	struct tq rcv = { .c = k.c, .tag = 0x5a5a, .reliable = snd.reliable };
	snd.count = rcv.count = snd.reliable ? TQ_COUNT : 500;
	snd.max = rcv.max = chan_max(k.c);
	tq_run(&snd, &rcv);
	cr_assert(snd.err[0] == 0 && rcv.err[0] == 0, "[%s] %s %s", tu_tag, snd.err, rcv.err);
	if (snd.reliable)
		T_EQ(rcv.got, rcv.count);
	else
		cr_assert(rcv.got > 0, "[%s] no datagram arrived", tu_tag);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
}

/* ---------------------------------------------------------- event loops */

/* Peer: send two messages first, then report 'S'; wait for 'q'. */
static int peer_send_first(ipc_chan *c, struct conn *k, void *arg)
{
	C_OK(ipc_send(c, "first", 5, 20000));
	C_OK(ipc_send(c, "second", 6, 20000));
	C_TRUE(tu_put(PEER_OUT(k), 'S'));
	tu_get(PEER_IN(k), 30000);
	return 0;
}

/* Messages that arrived before ipc_fd was first called make it readable
 * at once (no call at all on the channel before). */
CONTRACT_TEST(fd_before_first_call, PK_ALL, 60)
{
	struct conn k;
	char buf[16];
	set_tag(p);
	conn_start(&k, p, NULL, peer_send_first, NULL);
	/* A client's first send waits for its server's hello, which only the
	 * server's first call sends: a server end learns of the client from
	 * ipc_fd first (the call that follows completes the rendezvous). */
	if (p->mode != M_SRV || !pexp(p)->announces_max) {
		cr_assert(tu_get(TEST_IN(&k), 20000) == 'S', "[%s] peer did not send", tu_tag);
		tu_sleep_ms(50); /* (let the bytes land) */
	}
	int fd = ipc_fd(k.c);
	T_OK(fd);
	cr_assert(readable(fd, 5000), "[%s] ipc_fd not readable for messages sent before "
		  "its first call", tu_tag);
	ssize_t n = -1;
	for (int i = 0; i < 100 && (n = ipc_recv(k.c, buf, sizeof(buf), 0)) == -EAGAIN; i++)
		cr_assert(readable(fd, 5000), "[%s] ipc_fd went quiet before the message", tu_tag);
	T_EQ(n, 5);
	cr_assert(memcmp(buf, "first", 5) == 0);
	cr_assert(readable(fd, 5000), "[%s] ipc_fd not readable for the second message", tu_tag);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), 6);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EAGAIN);
	cr_assert(!readable(fd, 0), "[%s] ipc_fd readable with nothing queued", tu_tag);
	if (p->mode == M_SRV && pexp(p)->announces_max)
		cr_assert(tu_get(TEST_IN(&k), 20000) == 'S', "[%s] peer did not finish", tu_tag);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
}

/* A client peer (process or thread) that sleeps delay_ms, connects,
 * sends "c<id>" and expects "s<id>" back; its status is 0 on success. */
struct loop_arg {
	char url[512];
	int id, delay_ms;
	struct tu_peer peer;
};

static int loop_main(void *argp)
{
	struct loop_arg *a = argp;
	tu_sleep_ms(a->delay_ms);
	ipc_opts o = { .connect_timeout_ms = 20000 };
	ipc_chan *c = NULL;
	char msg[32], want[32], buf[32];
	C_OK(ipc_open(&c, a->url, IPC_CLIENT, &o));
	snprintf(msg, sizeof(msg), "c%d", a->id);
	snprintf(want, sizeof(want), "s%d", a->id);
	C_OK(ipc_send(c, msg, strlen(msg), 20000));
	ssize_t n = ipc_recv(c, buf, sizeof(buf), 20000);
	C_EQ(n, (long)strlen(want));
	C_TRUE(memcmp(buf, want, (size_t)n) == 0);
	ipc_close(c);
	return 0;
}

static void loop_client(struct loop_arg *a, const char *url, int id, int delay_ms)
{
	snprintf(a->url, sizeof(a->url), "%s", url);
	a->id = id;
	a->delay_ms = delay_ms;
	tu_peer_start(&a->peer, peers_in_threads(), loop_main, a);
}

static void loop_reap(struct loop_arg *a)
{
	char st[64];
	int status = tu_peer_wait(&a->peer, PEER_WAIT_MS);
	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "[%s] client %d: %s", tu_tag, a->id, tu_status_str(status, st, sizeof(st)));
}

/* A server driven by poll alone (ipc_fd, ipc_recv with timeout 0) whose
 * client connects late: the rendezvous completes without a blocking call. */
CONTRACT_TEST(loop_server_late_client, PK_URL, 60)
{
	ipc_chan *s = NULL;
	ipc_info info;
	char url[512], buf[32];
	set_tag(p);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s, &info));
	int fd = ipc_fd(s);
	T_OK(fd);
	struct loop_arg la;
	loop_client(&la, info.url, 7, 300);
	ssize_t n = -EAGAIN;
	for (int i = 0; i < 1000 && n == -EAGAIN; i++) {
		cr_assert(readable(fd, 20000), "[%s] event loop: ipc_fd never woke (%d)", tu_tag, i);
		n = ipc_recv(s, buf, sizeof(buf), 0);
	}
	T_EQ(n, 2);
	cr_assert(memcmp(buf, "c7", 2) == 0);
	T_OK(ipc_send(s, "s7", 2, 20000));
	loop_reap(&la);
	ipc_close(s);
	no_leftovers("after the event-loop server closed");
}

/* A listener serving 20 clients that connect at random moments from one
 * poll loop over ipc_listener_fd and the channels' ipc_fd, with
 * ipc_accept and ipc_recv at timeout 0 only: every client is served. */
#define LOOP_CLIENTS 20
CONTRACT_TEST(loop_listener, PK_URL, 90)
{
	ipc_listener *l = NULL;
	ipc_chan *ch[LOOP_CLIENTS] = { 0 };
	static struct loop_arg la[LOOP_CLIENTS];
	int served = 0, nch = 0;
	char url[512], buf[32];
	set_tag(p);
	if (!has_cap(p->be, IPC_CAP_LISTEN))
		cr_skip_test("[%s] no listener", tu_tag);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	T_OK(ipc_listen(&l, url, NULL));
	int lfd = ipc_listener_fd(l);
	T_OK(lfd);
	cr_assert(!readable(lfd, 0), "[%s] listener fd readable with no client", tu_tag);
	T_EQ(ipc_accept(l, &ch[0], 0), -EAGAIN);
	srand((unsigned)getpid());
	for (int i = 0; i < LOOP_CLIENTS; i++)
		loop_client(&la[i], ipc_listener_url(l), i, rand() % 500);
	for (int rounds = 0; served < LOOP_CLIENTS && rounds < 100000; rounds++) {
		struct pollfd pf[LOOP_CLIENTS + 1];
		pf[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < LOOP_CLIENTS; i++)
			pf[i + 1] = (struct pollfd){ .fd = i < nch && ch[i] ? ipc_fd(ch[i]) : -1,
						     .events = POLLIN };
		int r = poll(pf, (nfds_t)nch + 1, 20000);
		cr_assert(r > 0, "[%s] loop stalled with %d of %d served", tu_tag, served,
			  LOOP_CLIENTS);
		if (pf[0].revents) {
			ipc_chan *c;
			int a;
			while (nch < LOOP_CLIENTS && (a = ipc_accept(l, &c, 0)) == 0)
				ch[nch++] = c;
			cr_assert(nch == LOOP_CLIENTS || a == -EAGAIN, "[%s] accept: %d %s", tu_tag,
				  a, tu_err(a));
		}
		for (int i = 0; i < nch; i++) {
			if (!ch[i] || !pf[i + 1].revents)
				continue;
			ssize_t n = ipc_recv(ch[i], buf, sizeof(buf) - 1, 0);
			if (n == -EAGAIN)
				continue;
			cr_assert(n > 1 && buf[0] == 'c', "[%s] recv: %zd %s", tu_tag, n, tu_err(n));
			buf[0] = 's';
			T_OK(ipc_send(ch[i], buf, (size_t)n, 20000));
			served++;
			ipc_close(ch[i]); /* (its client leaves now: EOF would wake us) */
			ch[i] = NULL;
		}
	}
	T_EQ(served, LOOP_CLIENTS);
	for (int i = 0; i < LOOP_CLIENTS; i++)
		loop_reap(&la[i]);
	for (int i = 0; i < nch; i++)
		ipc_close(ch[i]);
	ipc_listener_close(l);
	no_leftovers("after the listener closed");
}

/* ---------------------------------------------------------------- fork */

static void fork_and_close(ipc_chan *c, ipc_listener *l)
{
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(c);
		ipc_listener_close(l);
		_exit(0);
	}
	int st = tu_wait_child(pid, 20000);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* A forked child that closes its copy of a server leaves the parent's
 * names alone: a client still finds the server. */
CONTRACT_TEST(fork_close_server, PK_URL, 60)
{
	struct early cl;
	ipc_chan *s = NULL;
	ipc_info info;
	char url[512];
	set_tag(p);
	SKIP_THREAD_PEERS(p, "no other process can hold the endpoint");
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	client_spawn(&cl, 10000);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s, &info));
	fork_and_close(s, NULL);
	client_go(&cl, info.url);
	T_OK(handshake(s, false));
	ipc_close(s);
	client_reap(&cl);
	no_leftovers("after the server closed");
}

CONTRACT_TEST(fork_close_listener, PK_URL, 60)
{
	struct early cl;
	ipc_listener *l = NULL;
	ipc_chan *c = NULL;
	char url[512];
	set_tag(p);
	SKIP_THREAD_PEERS(p, "no other process can hold the endpoint");
	if (!has_cap(p->be, IPC_CAP_LISTEN))
		cr_skip_test("[%s] no listener", tu_tag);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	client_spawn(&cl, 10000);
	T_OK(ipc_listen(&l, url, NULL));
	fork_and_close(NULL, l);
	client_go(&cl, ipc_listener_url(l));
	T_OK(ipc_accept(l, &c, 20000));
	T_OK(handshake(c, false));
	ipc_close(c);
	ipc_listener_close(l);
	client_reap(&cl);
	no_leftovers("after the listener closed");
}

/* ---------------------------------------------------------- path aliases */

/* Another spelling of a live server's path ("//", "/./", a symlinked
 * directory) is the same endpoint: -EADDRINUSE, and the server lives on. */
CONTRACT_TEST(alias_path, PK_URL, 60)
{
	char name[64], dir[128], link[128], url[600], alias[600];
	struct early cl;
	ipc_chan *s = NULL, *s2 = NULL;
	set_tag(p);
	if (pexp(p)->url != TU_URL_PATH || p->abstract)
		cr_skip_test("[%s] not a file path", tu_tag);
	tu_name(name, sizeof(name));
	snprintf(dir, sizeof(dir), "/tmp/%s-d", name);
	snprintf(link, sizeof(link), "/tmp/%s-l", name);
	cr_assert(mkdir(dir, 0700) == 0 && symlink(dir, link) == 0);
	snprintf(url, sizeof(url), "%s://%s/ep", p->be, dir);
	client_spawn(&cl, 10000);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	for (int i = 0; i < 5; i++) {
		switch (i) {
		case 0: snprintf(alias, sizeof(alias), "%s:///tmp//%s-d/ep", p->be, name); break;
		case 1: snprintf(alias, sizeof(alias), "%s:///tmp/./%s-d/ep", p->be, name); break;
		case 2: snprintf(alias, sizeof(alias), "%s:///tmp/%s-l/ep", p->be, name); break;
		case 3: snprintf(alias, sizeof(alias), "%s:///tmp/%s-d/./ep", p->be, name); break;
		default:
			snprintf(alias, sizeof(alias), "%s:///tmp/%s-l/../%s-d/ep", p->be, name, name);
		}
		int rc = ipc_open(&s2, alias, IPC_SERVER, NULL);
		if (rc == 0)
			ipc_close(s2);
		cr_assert(rc == -EADDRINUSE, "[%s] second server via %s: %d %s, expected -EADDRINUSE",
			  tu_tag, alias, rc, tu_err(rc));
	}
	client_go(&cl, url);
	T_OK(handshake(s, false));
	ipc_close(s);
	client_reap(&cl);
	unlink(link);
	cr_assert(rmdir(dir) == 0, "[%s] names left in %s", tu_tag, dir);
	no_leftovers("after the server closed");
}

/* ------------------------------------------------------ full backlogs */

/* Raw connections to the endpoint of url (a file or abstract Unix socket,
 * or 127.0.0.1:port) until the kernel's queue refuses more; returns how
 * many are held in fds. */
static int fill_backlog(const struct cparam *p, const char *url, int *fds, int max)
{
	int n = 0;
	const char *a = strstr(url, "://") + 3;
	for (; n < max; n++) {
		int fd, r;
		if (pexp(p)->url == TU_URL_HOSTPORT) {
			struct sockaddr_in sa = { .sin_family = AF_INET };
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sa.sin_port = htons((uint16_t)atoi(strrchr(a, ':') + 1));
			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
			if (r < 0 && errno == EINPROGRESS) {
				struct pollfd pf = { .fd = fd, .events = POLLOUT };
				int e = 0;
				socklen_t el = sizeof(e);
				if (poll(&pf, 1, 300) == 1 &&
				    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0)
					r = 0;
			}
		} else {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			socklen_t sl;
			if (a[0] == '@') {
				memcpy(sa.sun_path + 1, a + 1, strlen(a + 1));
				sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a));
			} else {
				snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", a);
				sl = sizeof(sa);
			}
			fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			r = connect(fd, (struct sockaddr *)&sa, sl);
		}
		if (r < 0) {
			close(fd);
			break;
		}
		fds[n] = fd;
	}
	return n;
}

/* A server that does not accept, its backlog full: a client gives up
 * after connect_timeout_ms (-ETIMEDOUT) instead of blocking in connect. */
CONTRACT_TEST(backlog_full, PK_URL, 60)
{
	ipc_chan *s = NULL, *c = NULL;
	ipc_info info;
	char url[512];
	int fds[512];
	set_tag(p);
	if (!pexp(p)->backlog)
		cr_skip_test("[%s] no listen backlog", tu_tag);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s, &info));
	int n = fill_backlog(p, info.url, fds, 512);
	cr_assert(n > 0 && n < 512, "[%s] backlog not filled (%d)", tu_tag, n);
	ipc_opts o = { .connect_timeout_ms = 300 };
	T_EQ(ipc_open(&c, info.url, IPC_CLIENT, &o), -ETIMEDOUT);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	ipc_close(s);
	no_leftovers("after the server closed");
}

/* ----------------------------------------------------------- other users */

static bool become_nobody(void)
{
	struct passwd *pw = getpwnam("nobody");
	uid_t uid = pw ? pw->pw_uid : 65534;
	gid_t gid = pw ? pw->pw_gid : 65534;
	return setgroups(0, NULL) == 0 && setresgid(gid, gid, gid) == 0 &&
	       setresuid(uid, uid, uid) == 0;
}

/* Bind every abstract lock name an ipckit server of url could use, as
 * another user would to deny the name. */
static void squat_locks(const char *url, int *fds, int *n)
{
	const char *a = strstr(url, "://") + 3;
	char canon[4096], dir[4096], path[4096];
	const char *kinds[] = { "unix", "fifo", "mq", "shm" };
	snprintf(path, sizeof(path), "%s", a);
	path[strcspn(path, "?")] = 0;
	/* the library locks the canonical spelling of a path (its directory
	 * resolved), the name of an mq as given: squat both */
	const char *base = strrchr(path, '/');
	snprintf(dir, sizeof(dir), "%.*s", base ? (int)(base - path) : 0, path);
	if (!base || !realpath(dir[0] ? dir : "/", canon) ||
	    strlen(canon) + strlen(base) >= sizeof(canon))
		snprintf(canon, sizeof(canon), "%s", path);
	else
		strcat(canon, base);
	const char *names[2] = { path, canon };
	for (size_t k = 0; k < 4; k++) {
		for (size_t j = 0; j < 2; j++) {
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			int len = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "ipckit-%s:%s",
					   kinds[k], names[j]);
			int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
			if (bind(fd, (struct sockaddr *)&sa,
				 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len)) == 0)
				fds[(*n)++] = fd;
			else
				close(fd);
		}
	}
}

/* Another user binds the library's lock names for a free URL first: the
 * URL can still be served (and a second server of ours still refused). */
CONTRACT_TEST(other_user_squats_locks, PK_URL, 60)
{
	struct tu_side side;
	char url[512];
	ipc_chan *s = NULL, *s2 = NULL;
	struct early cl;
	set_tag(p);
	SKIP_THREAD_PEERS(p, "no other process can hold the endpoint");
	if (geteuid() != 0)
		cr_skip_test("[%s] needs root to run a helper as another user", tu_tag);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	tu_side_init(&side);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int fds[16], n = 0;
		alarm(PEER_ALARM_S);
		tu_side_child(&side);
		C_TRUE(become_nobody());
		squat_locks(url, fds, &n);
		C_TRUE(n > 0);
		C_TRUE(tu_put(side.c2p[1], 'S'));
		tu_get(side.p2c[0], 30000);
		_exit(0);
	}
	tu_side_parent(&side);
	cr_assert(tu_get(side.c2p[0], 10000) == 'S', "[%s] squatter did not start", tu_tag);
	client_spawn(&cl, 10000);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	ipc_info info;
	T_OK(ipc_info_get(s, &info));
	T_EQ(ipc_open(&s2, info.url, IPC_SERVER, NULL), -EADDRINUSE);
	client_go(&cl, info.url);
	T_OK(handshake(s, false));
	ipc_close(s);
	client_reap(&cl);
	tu_put(side.p2c[1], 'q');
	tu_side_close(&side);
	cr_assert(tu_wait_child(pid, 10000) != -1);
	no_leftovers("after the server closed");
}

/* Another user fills an abstract server's backlog (no file permissions
 * protect it): our client still honours its connect_timeout_ms, and the
 * other user's own connection is refused. */
CONTRACT_TEST(other_user_abstract, PK_URL, 60)
{
	ipc_chan *s = NULL, *c = NULL;
	ipc_info info;
	char url[512];
	struct tu_side side;
	set_tag(p);
	SKIP_THREAD_PEERS(p, "no other process can hold the endpoint");
	if (!p->abstract)
		cr_skip_test("[%s] not an abstract name", tu_tag);
	if (geteuid() != 0)
		cr_skip_test("[%s] needs root to run a helper as another user", tu_tag);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s, &info));
	tu_side_init(&side);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int fds[512];
		alarm(PEER_ALARM_S);
		tu_side_child(&side);
		C_TRUE(become_nobody());
		/* its own client is refused: the server is another user's */
		ipc_opts o1 = { .connect_timeout_ms = 200 };
		ipc_chan *x = NULL;
		int rc = ipc_open(&x, info.url, IPC_CLIENT, &o1);
		C_TRUE(rc == -EACCES || rc == -ETIMEDOUT);
		C_TRUE(fill_backlog(p, info.url, fds, 512) > 0);
		C_TRUE(tu_put(side.c2p[1], 'F'));
		tu_get(side.p2c[0], 30000);
		_exit(0);
	}
	tu_side_parent(&side);
	cr_assert(tu_get(side.c2p[0], 20000) == 'F', "[%s] helper did not fill the backlog", tu_tag);
	ipc_opts o = { .connect_timeout_ms = 300 };
	T_EQ(ipc_open(&c, info.url, IPC_CLIENT, &o), -ETIMEDOUT);
	tu_put(side.p2c[1], 'q');
	tu_side_close(&side);
	cr_assert(tu_wait_child(pid, 10000) != -1);
	ipc_close(s);
	no_leftovers("after the server closed");
}

/* ----------------------------------------------------- the peer's max_msg */

/* The end in the child process opens with max_msg=1000; the test's end
 * (default limit) must refuse a larger message from its first send on. */
static int peer_small_max(ipc_chan *c, struct conn *k, void *arg)
{
	char buf[2048];
	ssize_t n = ipc_recv(c, buf, sizeof(buf), 20000);
	C_EQ(n, 1000);
	C_EQ(tu_check(buf, 1000, 5), -1);
	C_OK(ipc_send(c, "ok", 2, 20000));
	tu_get(PEER_IN(k), 30000);
	return 0;
}

CONTRACT_TEST(peer_max_first_send, PK_ALL, 60)
{
	struct conn k;
	char buf[2000];
	ipc_info info;
	set_tag(p);
	if (p->mode == M_PAIR)
		cr_skip_test("[%s] both ends of a pair share one max_msg", tu_tag);
	if (!pexp(p)->announces_max)
		cr_skip_test("[%s] the peers announce no max_msg", tu_tag);
	/* the test's end has the default limit, the peer's 1000 bytes */
	ipc_opts small = { .max_msg = 1000 };
	conn_start2(&k, p, NULL, &small, peer_small_max, NULL);
	tu_fill(buf, sizeof(buf), 5);
	T_EQ(ipc_send(k.c, buf, 2000, 20000), -EMSGSIZE);
	T_OK(ipc_info_get(k.c, &info));
	T_EQ(info.max_msg, 1000);
	T_EQ(ipc_send(k.c, buf, 1001, 20000), -EMSGSIZE);
	T_OK(ipc_send(k.c, buf, 1000, 20000));
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 20000), 2);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
}

/* ------------------------------------------------------ injected faults */

/*
 * Run op with the n-th request of kind failing, for n = 0, 1, 2, ... until
 * op no longer hits a fault. Every failing run must return exactly want
 * (-ENOMEM or -EMFILE); a run may also succeed despite a fault it could
 * work around. check() then proves the state is sound (it runs with
 * faults off). Returns how many runs failed.
 */
struct fault_op {
	const struct cparam *p;
	const char *what;
	char url[512];
	ipc_chan *a, *b;        /* the ends under test */
	ipc_listener *l;
	size_t big;             /* op_big_send's size (0: 1 MiB) */
	int sent;               /* op_big_send: messages sent, not yet drained */
	int (*op)(struct fault_op *f);
	void (*undo)(struct fault_op *f);  /* after a successful op */
	bool sticky;            /* every request from the n-th on fails (as a
				   real EMFILE does), not the n-th alone */
};

static int fault_loop(struct fault_op *f, enum ipc_fault_kind kind, int want)
{
	int failures = 0;
	for (long n = 0; n < 10000; n++) {
		ipc__fault_arm(kind, n, f->sticky);
		int r = f->op(f);
		long hit = ipc__fault_failed(kind);
		ipc__fault_arm(kind, -1, false);
		if (hit == 0) {
			cr_assert(r >= 0, "[%s] %s without a fault: %d %s", tu_tag, f->what, r,
				  tu_err(r));
			f->undo(f);
			return failures;
		}
		if (r >= 0) {
			f->undo(f); /* it worked around the failure: fine */
			continue;
		}
		cr_assert(r == want, "[%s] %s with request %ld failing: %d %s, expected %d %s",
			  tu_tag, f->what, n, r, tu_err(r), want, tu_err(want));
		failures++;
	}
	cr_assert_fail("[%s] %s: no end to the faults", tu_tag, f->what);
	return failures;
}

/* The two ends exchange a message each way. */
static void fault_check_pair(ipc_chan *a, ipc_chan *b)
{
	char buf[16];
	T_OK(ipc_send(a, "ping", 4, 5000));
	T_EQ(ipc_recv(b, buf, sizeof(buf), 5000), 4);
	T_OK(ipc_send(b, "pong", 4, 5000));
	T_EQ(ipc_recv(a, buf, sizeof(buf), 5000), 4);
}

static int op_pair(struct fault_op *f)
{
	return ipc_pair(f->p->be, &f->a, &f->b, NULL);
}

static void undo_pair(struct fault_op *f)
{
	fault_check_pair(f->a, f->b);
	ipc_close(f->a);
	ipc_close(f->b);
	f->a = f->b = NULL;
}

static int op_server(struct fault_op *f)
{
	return ipc_open(&f->a, f->url, IPC_SERVER, NULL);
}

static void undo_close_a(struct fault_op *f)
{
	ipc_close(f->a);
	f->a = NULL;
}

static int op_client(struct fault_op *f)
{
	return ipc_open(&f->b, f->url, IPC_CLIENT, NULL);
}

static void undo_client(struct fault_op *f)
{
	/* the server's first call attaches; then both directions work */
	char buf[16];
	T_OK(ipc_send(f->a, "s", 1, 5000));
	T_EQ(ipc_recv(f->b, buf, sizeof(buf), 5000), 1);
	fault_check_pair(f->b, f->a);
	ipc_close(f->b);
	f->b = NULL;
}

/* The server's first call: the rendezvous. */
static int op_attach(struct fault_op *f)
{
	return ipc_send(f->a, "s", 1, 2000);
}

static void undo_attach(struct fault_op *f)
{
	char buf[16];
	T_EQ(ipc_recv(f->b, buf, sizeof(buf), 5000), 1);
	fault_check_pair(f->a, f->b);
}

static int op_fd(struct fault_op *f)
{
	return ipc_fd(f->a);
}

static void undo_fd(struct fault_op *f)
{
	T_OK(ipc_send(f->b, "q", 1, 5000));
	cr_assert(readable(ipc_fd(f->a), 5000), "[%s] ipc_fd after faults", tu_tag);
	char buf[4];
	T_EQ(ipc_recv(f->a, buf, sizeof(buf), 5000), 1);
}

static int op_big_send(struct fault_op *f)
{
	size_t want = f->big ? f->big : MIB;
	size_t len = chan_max(f->a) < want ? chan_max(f->a) : want;
	unsigned char *m = xmalloc(len);
	tu_fill(m, len, 9);
	int r = ipc_send(f->a, m, len, 50);
	free(m);
	if (r == 0)
		f->sent++;
	return r == -ETIMEDOUT ? 0 : r;
}

static void undo_big_send(struct fault_op *f)
{
	/* what was sent arrives whole (a cut one's rest is still being
	 * written); nothing else does; then the channel works */
	size_t cap = 9 * MIB;
	unsigned char *m = xmalloc(cap);
	for (; f->sent > 0; f->sent--) {
		ssize_t n = ipc_recv(f->b, m, cap, 30000);
		cr_assert(n > 0, "[%s] after a faulted big send: %zd %s", tu_tag, n, tu_err(n));
		cr_assert(tu_check(m, (size_t)n, 9) < 0, "[%s] big message corrupted", tu_tag);
	}
	T_EQ(ipc_recv(f->b, m, cap, 0), -EAGAIN);
	free(m);
	fault_check_pair(f->a, f->b);
}

static int op_listen(struct fault_op *f)
{
	return ipc_listen(&f->l, f->url, NULL);
}

static void undo_listen(struct fault_op *f)
{
	ipc_listener_close(f->l);
	f->l = NULL;
}

static void fault_case(const struct cparam *p, enum ipc_fault_kind kind, int want)
{
	struct fault_op f = { .p = p };
	set_tag(p);
	if (p->mode == M_PAIR) {
		f.what = "ipc_pair";
		f.op = op_pair;
		f.undo = undo_pair;
		fault_loop(&f, kind, want);
		T_OK(ipc_pair(p->be, &f.a, &f.b, NULL));
	} else {
		if (p->mode == M_CLI)
			cr_skip_test("[%s] (srv covers both ends in one process)", tu_tag);
		cr_assert(tu_url(f.url, sizeof(f.url), p->be, p->abstract));
		f.what = "ipc_open(server)";
		f.op = op_server;
		f.undo = undo_close_a;
		fault_loop(&f, kind, want);
		if (has_cap(p->be, IPC_CAP_LISTEN)) {
			f.what = "ipc_listen";
			f.op = op_listen;
			f.undo = undo_listen;
			fault_loop(&f, kind, want);
		}
		T_OK(ipc_open(&f.a, f.url, IPC_SERVER, NULL));
		ipc_info info;
		T_OK(ipc_info_get(f.a, &info));
		snprintf(f.url, sizeof(f.url), "%s", info.url);
		f.what = "ipc_open(client)";
		f.op = op_client;
		f.undo = undo_client;
		fault_loop(&f, kind, want);
		ipc_close(f.a);
		T_OK(ipc_open(&f.a, f.url, IPC_SERVER, NULL));
		T_OK(ipc_open(&f.b, f.url, IPC_CLIENT, NULL));
		f.what = "first call (rendezvous)";
		f.op = op_attach;
		f.undo = undo_attach;
		fault_loop(&f, kind, want);
	}
	f.what = "ipc_fd";
	f.op = op_fd;
	f.undo = undo_fd;
	fault_loop(&f, kind, want);
	if (reliable(p->be)) {
		f.what = "a send its deadline cuts";
		f.op = op_big_send;
		f.undo = undo_big_send;
		fault_loop(&f, kind, want);
	}
	ipc_close(f.a);
	ipc_close(f.b);
	no_leftovers("after the faulted channels closed");
}

CONTRACT_TEST(fault_enomem, PK_ALL, 120)
{
	fault_case(p, IPC_FAULT_MEM, -ENOMEM);
}

CONTRACT_TEST(fault_emfile, PK_ALL, 120)
{
	fault_case(p, IPC_FAULT_FD, -EMFILE);
}

/* Reclaiming the endpoint of a server that was killed asks the system
 * whether anything still holds the name (sock_diag, /proc, locks); out of
 * descriptors there, the answer is -EMFILE, never a live server
 * (-EADDRINUSE) nor a dead one (a live server stolen). */
CONTRACT_TEST(fault_emfile_reclaim, PK_URL, 60)
{
	struct holder h;
	struct fault_op f = { .p = p, .what = "ipc_open(server) over a killed server's endpoint",
			      .op = op_server, .undo = undo_close_a, .sticky = true };
	set_tag(p);
	SKIP_THREAD_PEERS(p, "a thread cannot be killed alone");
	cr_assert(tu_url(f.url, sizeof(f.url), p->be, p->abstract));
	holder_start(&h, f.url);
	holder_stop(&h, true);
	snprintf(f.url, sizeof(f.url), "%s", h.url);
	fault_loop(&f, IPC_FAULT_FD, -EMFILE);
	no_leftovers("after the reclaiming server closed");
}

/* Peer for the no-thread cases: after 'g', wait delay ms (arg), then
 * take whole big messages until "END"; report how many came intact. */
static int peer_late_reader(ipc_chan *c, struct conn *k, void *arg)
{
	size_t cap = 9 * MIB;
	unsigned char *m = xmalloc(cap);
	int got = 0;
	C_OK(handshake(c, k->client));
	C_TRUE(tu_put(PEER_OUT(k), 'r'));
	C_EQ(tu_get(PEER_IN(k), 20000), 'g');
	tu_sleep_ms((int)(intptr_t)arg);
	for (;;) {
		ssize_t n = ipc_recv(c, m, cap, 20000);
		if (n == -EPIPE)
			break;
		C_TRUE(n > 0);
		if (is_end(m, n))
			break;
		C_EQ(tu_check(m, (size_t)n, 9), -1);
		got++;
	}
	free(m);
	C_TRUE(tu_put(PEER_OUT(k), (char)('0' + got)));
	return 0;
}

/* No thread for a cut send's rest (the process is at its thread limit):
 * the send finishes it itself while the peer takes it. */
CONTRACT_TEST(fault_no_thread, PK_PAIR, 60)
{
	struct conn k;
	set_tag(p);
	if (!pexp(p)->cut)
		cr_skip_test("[%s] messages go whole", tu_tag);
	conn_start(&k, p, NULL, peer_late_reader, (void *)(intptr_t)300);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 20000) == 'r');
	tu_put(TEST_OUT(&k), 'g');
	struct fault_op f = { .p = p, .a = k.c };
	ipc__fault_arm(IPC_FAULT_THREAD, 0, true);
	T_OK(op_big_send(&f));
	ipc__fault_arm(IPC_FAULT_THREAD, -1, false);
	T_OK(ipc_send(k.c, "END", 3, 20000));
	T_EQ(tu_get(TEST_IN(&k), 30000), '1');
	conn_end(&k);
}

/* ... and when the peer does not take it within a second, the channel is
 * broken off: the peer sees the end go mid-message, never a torn one. */
CONTRACT_TEST(fault_no_thread_peer_stuck, PK_PAIR, 60)
{
	struct conn k;
	set_tag(p);
	if (!pexp(p)->cut)
		cr_skip_test("[%s] messages go whole", tu_tag);
	conn_start(&k, p, NULL, peer_late_reader, (void *)(intptr_t)3000);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 20000) == 'r');
	tu_put(TEST_OUT(&k), 'g');
	struct fault_op f = { .p = p, .a = k.c, .big = 8 * MIB };
	ipc__fault_arm(IPC_FAULT_THREAD, 0, true);
	int rc = op_big_send(&f);
	ipc__fault_arm(IPC_FAULT_THREAD, -1, false);
	T_EQ(rc, -EPIPE);
	T_EQ(ipc_send(k.c, "END", 3, 1000), -EPIPE);
	T_EQ(tu_get(TEST_IN(&k), 30000), '0');
	conn_end(&k);
}

/* -------------------------------------------------------------- recvv */

/* Peer: sends sizes 10, 20, 3000, 30, then waits for 'e' and closes. */
static int peer_batch(ipc_chan *c, struct conn *k, void *arg)
{
	static const size_t sizes[] = { 10, 20, 3000, 30 };
	char buf[3000];
	C_OK(handshake(c, k->client));
	C_EQ(tu_get(PEER_IN(k), 20000), 'g');
	for (uint32_t i = 0; i < 4; i++) {
		tu_fill(buf, sizes[i], i + 40);
		C_OK(ipc_send(c, buf, sizes[i], 20000));
	}
	C_TRUE(tu_put(PEER_OUT(k), 'S'));
	C_EQ(tu_get(PEER_IN(k), 20000), 'e');
	return 0;
}

CONTRACT_TEST(recvv_batches, PK_ALL, 60)
{
	struct conn k;
	char b[5][4000];
	ipc_buf bufs[5];
	set_tag(p);
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_batch, NULL);
	T_OK(handshake(k.c, k.client));
	for (int i = 0; i < 5; i++)
		bufs[i] = (ipc_buf){ .data = b[i], .cap = 100 };
	T_EQ(ipc_recvv(k.c, bufs, 5, 0), -EAGAIN);
	T_EQ(ipc_recvv(k.c, bufs, 5, 100), -ETIMEDOUT);
	T_EQ(ipc_recvv(k.c, bufs, 0, 0), 0);
	T_EQ(ipc_recvv(k.c, NULL, 1, 0), -EINVAL);
	tu_put(TEST_OUT(&k), 'g');
	cr_assert(tu_get(TEST_IN(&k), 20000) == 'S');
	tu_sleep_ms(100); /* (let every message land) */
	/* the 3000-byte message does not fit a 100-byte buffer: the batch
	 * stops before it, and it stays queued */
	int n = ipc_recvv(k.c, bufs, 5, 5000);
	cr_assert(n >= 1 && n <= 2, "[%s] first batch: %d %s", tu_tag, n, tu_err(n));
	int got = n;
	if (got == 1) {
		n = ipc_recvv(k.c, bufs + 1, 4, 5000);
		T_EQ(n, 1);
		got = 2;
	}
	T_EQ(bufs[0].len, 10);
	T_EQ(bufs[1].len, 20);
	cr_assert(tu_check(b[0], 10, 40) < 0 && tu_check(b[1], 20, 41) < 0);
	T_EQ(ipc_recvv(k.c, bufs, 5, 5000), -EMSGSIZE);
	for (int i = 0; i < 5; i++)
		bufs[i].cap = sizeof(b[i]);
	n = ipc_recvv(k.c, bufs, 5, 5000);
	cr_assert(n >= 1 && n <= 2, "[%s] second batch: %d %s", tu_tag, n, tu_err(n));
	T_EQ(bufs[0].len, 3000);
	cr_assert(tu_check(b[0], 3000, 42) < 0);
	if (n == 1)
		T_EQ(ipc_recvv(k.c, bufs + 1, 4, 5000), 1);
	T_EQ(bufs[1].len, 30);
	cr_assert(tu_check(b[1], 30, 43) < 0);
	/* the peer closes: EOF after what was delivered */
	tu_put(TEST_OUT(&k), 'e');
	T_EQ(ipc_recvv(k.c, bufs, 5, 20000), -EPIPE);
	conn_end(&k);
}
