/*
 * conformance.c - the contract of docs/design.md, checked on every compiled
 * backend: sizes, boundaries, errors, timeouts, ipc_fd, peer close and
 * death, zero-copy, batches, metadata, threads, endpoint lifecycle. The
 * harness (parameters, peer processes, the expectation table) is in
 * conn.c; the contract cases added for the real-application scenarios
 * (timeouts in request/reply, event loops, fork, other users, faults) are
 * in contract.c. Every assertion message starts with "[backend/mode]".
 */
#include "conn.h"

#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ----------------------------------------------------------------- cases */

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(conf, .fini = tu_leak_check);

CONF_TEST(sizes, 60)
{
	static const size_t sizes[] = { 0, 1, 100, 4000, 65000, MIB };
	struct conn k;
	size_t max, cap = MIB + 64;
	char *sbuf = xmalloc(cap), *rbuf = xmalloc(cap);

	set_tag(p);
	conn_start(&k, p, NULL, peer_echo, NULL);
	max = chan_max(k.c);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (sizes[i] <= max)
			echo_check(&k, sizes[i], (uint32_t)i + 1, sbuf, rbuf, cap);
	/* The backend's own limit, when it is below 1 MiB (udp, mq). */
	if (max < MIB)
		echo_check(&k, max, 99, sbuf, rbuf, cap);
	echo_finish(&k);
	conn_end(&k);
	free(sbuf);
	free(rbuf);
}

/* Back-to-back messages of varying sizes (0 included), one at a time and
 * through ipc_sendv batches, keep their boundaries and order. */
#define BB_HDR 4
static size_t bb_size(uint32_t i)
{
	return BB_HDR + (i * 37u) % 300u;
}

static void bb_make(char *buf, uint32_t i)
{
	memcpy(buf, &i, BB_HDR);
	tu_fill(buf + BB_HDR, bb_size(i) - BB_HDR, i);
}

struct bb_arg {
	uint32_t count;
};

static int peer_bb_send(ipc_chan *c, struct conn *k, void *arg)
{
	const struct bb_arg *a = arg;
	char (*bufs)[BB_HDR + 300] = xmalloc(16 * sizeof(*bufs));
	uint32_t i = 0;

	C_OK(handshake(c, k->client));
	/* First half one by one, second half in batches of up to 16. */
	for (; i < a->count / 2; i++) {
		bb_make(bufs[0], i);
		C_OK(ipc_send(c, bufs[0], bb_size(i), -1));
	}
	while (i < a->count) {
		ipc_msg msgs[16];
		size_t n = 0;
		int sent;

		for (; n < 16 && i + n < a->count; n++) {
			bb_make(bufs[n], i + (uint32_t)n);
			msgs[n].data = bufs[n];
			msgs[n].len = bb_size(i + (uint32_t)n);
		}
		sent = ipc_sendv(c, msgs, n, -1);
		C_OK(sent);
		C_TRUE(sent >= 1 && (size_t)sent <= n);
		i += (uint32_t)sent;
	}
	free(bufs);
	/* Stay until the test has read everything. */
	tu_get(PEER_IN(k), 30000);
	return 0;
}

CONF_TEST(boundaries, 60)
{
	bool rel = reliable(p->be);
	struct bb_arg a = { .count = rel ? 2000 : 200 };
	char buf[BB_HDR + 400];
	struct conn k;
	uint32_t got = 0;
	int64_t last = -1;

	set_tag(p);
	conn_start(&k, p, NULL, peer_bb_send, &a);
	T_OK(handshake(k.c, k.client));
	for (uint32_t n = 0; n < a.count; n++) {
		ssize_t len = ipc_recv(k.c, buf, sizeof(buf), rel ? 10000 : 1000);
		uint32_t idx;
		ssize_t bad;

		if (!rel && len == -ETIMEDOUT)
			break;
		cr_assert(len >= BB_HDR, "[%s] message %u: ipc_recv = %zd %s", tu_tag, n, len,
			  tu_err(len));
		memcpy(&idx, buf, BB_HDR);
		if (rel)
			cr_assert(idx == n, "[%s] message %u arrived as number %u (order)", tu_tag, n,
				  idx);
		else
			cr_assert(idx < a.count && (int64_t)idx > last,
				  "[%s] datagram %u after %ld: duplicated or reordered", tu_tag, idx,
				  (long)last);
		cr_assert((size_t)len == bb_size(idx), "[%s] message %u: %zd bytes, sent %zu", tu_tag,
			  idx, len, bb_size(idx));
		bad = tu_check(buf + BB_HDR, (size_t)len - BB_HDR, idx);
		cr_assert(bad < 0, "[%s] message %u differs at byte %zd", tu_tag, idx, bad + BB_HDR);
		last = idx;
		got++;
	}
	cr_assert(got > 0, "[%s] no message arrived", tu_tag);
	if (rel)
		T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EAGAIN);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
}

/* Large and small messages back to back: after a large message the stream
 * backends read the next payload straight into the caller's buffer, and
 * whatever follows it there (small frames) must go back to the read
 * buffer in order; a too-small buffer after a large message keeps it. */
static const size_t mixed_sizes[] = { 65536, 1, 20000, 0, 10, 10, 10, 10, 10, 70000, 3,
				      17000, 16384, 5, 65535, 65537, 2, 20000, 30000 };
#define MIXED_N (sizeof(mixed_sizes) / sizeof(mixed_sizes[0]))

static int peer_mixed(ipc_chan *c, struct conn *k, void *arg)
{
	char *buf = xmalloc(80000);
	size_t max = chan_max(c);

	C_OK(handshake(c, k->client));
	for (uint32_t i = 0; i < MIXED_N; i++) {
		if (mixed_sizes[i] > max)
			continue;
		tu_fill(buf, mixed_sizes[i], i);
		C_OK(ipc_send(c, buf, mixed_sizes[i], -1));
	}
	free(buf);
	tu_get(PEER_IN(k), 30000);
	return 0;
}

CONF_TEST(mixed_sizes, 60)
{
	struct conn k;
	size_t cap = MIB, max;
	char *buf = xmalloc(cap);

	set_tag(p);
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_mixed, NULL);
	T_OK(handshake(k.c, k.client));
	max = chan_max(k.c);
	tu_sleep_ms(100); /* let the small frames pile up behind the large ones */
	for (uint32_t i = 0; i < MIXED_N; i++) {
		size_t want = mixed_sizes[i];
		ssize_t n, bad;

		if (want > max)
			continue;
		if (i == MIXED_N - 1 && want > 25000) {
			/* after a 20000-byte message: too small a buffer keeps it */
			T_EQ(ipc_recv(k.c, buf, 25000, 10000), -EMSGSIZE);
		}
		n = ipc_recv(k.c, buf, cap, 10000);
		cr_assert(n == (ssize_t)want, "[%s] message %u: ipc_recv = %zd %s, sent %zu", tu_tag,
			  i, n, tu_err(n), want);
		bad = tu_check(buf, want, i);
		cr_assert(bad < 0, "[%s] message %u (%zu B) differs at byte %zd", tu_tag, i, want, bad);
	}
	T_EQ(ipc_recv(k.c, buf, cap, 0), -EAGAIN);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
	free(buf);
}

CONF_TEST(emsgsize_send, 30)
{
	ipc_opts o = { .max_msg = 4096 };
	char *sbuf = xmalloc(8192), *rbuf = xmalloc(8192);
	ipc_msg msgs[3];
	struct conn k;
	void *zbuf = NULL;

	set_tag(p);
	conn_start(&k, p, &o, peer_echo, NULL);
	T_EQ(chan_max(k.c), 4096);
	tu_fill(sbuf, 8192, 7);
	T_EQ(ipc_send(k.c, sbuf, 4097, 1000), -EMSGSIZE);
	T_EQ(ipc_send(k.c, sbuf, 8192, 1000), -EMSGSIZE);
	T_EQ(ipc_send_reserve(k.c, 4097, &zbuf, 1000), -EMSGSIZE);
	/* The refused messages left no trace: the next one arrives intact. */
	echo_check(&k, 4096, 8, sbuf, rbuf, 8192);

	/* sendv stops before an oversize message and reports the count. */
	msgs[0] = (ipc_msg){ sbuf, 100 };
	msgs[1] = (ipc_msg){ sbuf, 5000 };
	msgs[2] = (ipc_msg){ sbuf, 200 };
	tu_fill(sbuf, 100, 9);
	T_EQ(ipc_sendv(k.c, msgs, 3, 5000), 1);
	T_EQ(ipc_sendv(k.c, &msgs[1], 2, 5000), -EMSGSIZE);
	T_EQ(ipc_recv(k.c, rbuf, 8192, 10000), 100);
	cr_assert(tu_check(rbuf, 100, 9) < 0, "[%s] sendv message corrupted", tu_tag);
	echo_check(&k, 10, 10, sbuf, rbuf, 8192);
	echo_finish(&k);
	conn_end(&k);
	free(sbuf);
	free(rbuf);
}

CONF_TEST(emsgsize_recv, 30)
{
	char sbuf[200], rbuf[200];
	struct conn k;

	set_tag(p);
	conn_start(&k, p, NULL, peer_echo, NULL);
	tu_fill(sbuf, 100, 3);
	T_OK(ipc_send(k.c, sbuf, 100, 10000));
	/* Blocks until the echo is there, then refuses it and keeps it. */
	T_EQ(ipc_recv(k.c, rbuf, 50, 10000), -EMSGSIZE);
	T_EQ(ipc_recv(k.c, rbuf, 99, 0), -EMSGSIZE);
	T_EQ(ipc_recv(k.c, rbuf, 0, 0), -EMSGSIZE);
	T_EQ(ipc_recv(k.c, rbuf, 100, 0), 100);
	cr_assert(tu_check(rbuf, 100, 3) < 0, "[%s] message kept after -EMSGSIZE is corrupted",
		  tu_tag);

	/* One byte into cap 0, then a zero-length message into cap 0. */
	T_OK(ipc_send(k.c, "x", 1, 10000));
	T_EQ(ipc_recv(k.c, rbuf, 0, 10000), -EMSGSIZE);
	T_EQ(ipc_recv(k.c, rbuf, 1, 0), 1);
	cr_assert(rbuf[0] == 'x');
	T_OK(ipc_send(k.c, sbuf, 0, 10000));
	T_EQ(ipc_recv(k.c, rbuf, 0, 10000), 0);
	echo_finish(&k);
	conn_end(&k);
}

/* Peer: handshake, wait for 'g', send one message, wait for 'q'. */
static int peer_send_on_go(ipc_chan *c, struct conn *k, void *arg)
{
	C_OK(handshake(c, k->client));
	C_EQ(tu_get(PEER_IN(k), 20000), 'g');
	C_OK(ipc_send(c, "late", 4, -1));
	tu_get(PEER_IN(k), 20000);
	return 0;
}

static void expect_timeout(ipc_chan *c, int timeout_ms)
{
	char buf[16];
	const void *msg = NULL;
	int64_t t0 = tu_now_ms(), dt;

	T_EQ(ipc_recv(c, buf, sizeof(buf), timeout_ms), -ETIMEDOUT);
	dt = tu_now_ms() - t0;
	cr_assert(dt >= timeout_ms - 1 && dt < 5000, "[%s] ipc_recv(timeout %d) returned after %ld ms",
		  tu_tag, timeout_ms, (long)dt);
	T_EQ(ipc_recv_peek(c, &msg, timeout_ms), -ETIMEDOUT);
}

CONF_TEST(timeouts, 30)
{
	struct conn k;
	char buf[16];
	const void *msg = NULL;

	set_tag(p);
	conn_start(&k, p, NULL, peer_send_on_go, NULL);
	T_OK(handshake(k.c, k.client));
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EAGAIN);
	T_EQ(ipc_recv_peek(k.c, &msg, 0), -EAGAIN);
	expect_timeout(k.c, 100);
	tu_put(TEST_OUT(&k), 'g');
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 10000), 4);
	cr_assert(memcmp(buf, "late", 4) == 0);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EAGAIN);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
}

/* EINTR is retried with the remaining time: a signal every 10 ms (no
 * SA_RESTART) neither cuts a timed wait short nor ends a blocking one. */
static volatile sig_atomic_t ticks;

static void on_tick(int sig)
{
	(void)sig;
	ticks++;
}

CONF_TEST(eintr, 30)
{
	struct sigaction sa = { .sa_handler = on_tick };
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } }, off = { { 0, 0 }, { 0, 0 } };
	struct conn k;
	char buf[16];
	int64_t t0, dt;
	ssize_t n;

	set_tag(p);
	conn_start(&k, p, NULL, peer_send_on_go, NULL);
	T_OK(handshake(k.c, k.client));
	sigemptyset(&sa.sa_mask);
	cr_assert(sigaction(SIGALRM, &sa, NULL) == 0);
	cr_assert(setitimer(ITIMER_REAL, &it, NULL) == 0);
	t0 = tu_now_ms();
	n = ipc_recv(k.c, buf, sizeof(buf), 300);
	dt = tu_now_ms() - t0;
	T_EQ(n, -ETIMEDOUT);
	cr_assert(dt >= 299 && dt < 5000, "[%s] ipc_recv(300) under signals returned after %ld ms",
		  tu_tag, (long)dt);
	/* (a liveness check, not a count: on a loaded machine the 10 ms
	 * timer's signals coalesce while the process waits for a CPU) */
	cr_assert(ticks > 0, "[%s] the timer did not fire", tu_tag);
	tu_put(TEST_OUT(&k), 'g');
	n = ipc_recv(k.c, buf, sizeof(buf), -1);
	setitimer(ITIMER_REAL, &off, NULL);
	T_EQ(n, 4);
	tu_put(TEST_OUT(&k), 'q');
	conn_end(&k);
}

/* Peer: handshake, wait for 'g', then drain numbered 1000-byte messages
 * until "END" and report how many came, intact and in order. */
#define FULL_MSG 1000
static int peer_drain(ipc_chan *c, struct conn *k, void *arg)
{
	char buf[FULL_MSG + 8], num[32];
	uint32_t got = 0;

	C_OK(handshake(c, k->client));
	/* Tell the test we are done reading: a receive still in progress
	 * would read ahead (64 KiB) and free room while the test fills. */
	C_TRUE(tu_put(PEER_OUT(k), 'r'));
	if (tu_get(PEER_IN(k), 20000) != 'g')
		return 0;       /* the test failed before letting us read */
	for (;;) {
		ssize_t n = ipc_recv(c, buf, sizeof(buf), 20000);
		uint32_t idx;

		C_OK(n);
		if (is_end(buf, n))
			break;
		C_EQ(n, FULL_MSG);
		memcpy(&idx, buf, 4);
		C_EQ(idx, got);
		C_EQ(tu_check(buf + 4, FULL_MSG - 4, idx), -1);
		got++;
	}
	snprintf(num, sizeof(num), "%u", got);
	C_TRUE(tu_put_str(PEER_OUT(k), num));
	return 0;
}

/* Fill the channel with timeout 0 until -EAGAIN; returns the count sent. */
static uint32_t fill_channel(ipc_chan *c)
{
	char buf[FULL_MSG];
	uint32_t i;
	int rc = 0;

	for (i = 0; i < 200000; i++) {
		memcpy(buf, &i, 4);
		tu_fill(buf + 4, FULL_MSG - 4, i);
		rc = ipc_send(c, buf, FULL_MSG, 0);
		if (rc < 0)
			break;
	}
	T_EQ(rc, -EAGAIN);
	return i;
}

CONF_TEST(send_full, 60)
{
	struct conn k;
	char buf[FULL_MSG], num[32];
	uint32_t sent;
	int rc = 0, tries;

	set_tag(p);
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_drain, NULL);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 20000) == 'r', "[%s] the peer did not finish its handshake", tu_tag);
	sent = fill_channel(k.c);
	cr_assert(sent > 0, "[%s] not even one message fit", tu_tag);
	/* The kernel may free a little room now and then (a send that gets
	 * some bytes out hands the rest to the background writer and
	 * succeeds; TCP grows its buffers by a few hundred KiB this way):
	 * retry, counting what was accepted, until a send times out. */
	for (tries = 0; tries < 2000; tries++) {
		memcpy(buf, &sent, 4);
		tu_fill(buf + 4, FULL_MSG - 4, sent);
		rc = ipc_send(k.c, buf, FULL_MSG, 100);
		if (rc < 0)
			break;
		sent++;
	}
	T_EQ(rc, -ETIMEDOUT);
	for (tries = 0; tries < 1000; tries++) {
		char b2[FULL_MSG];
		ipc_msg msgs[2] = { { buf, FULL_MSG }, { b2, FULL_MSG } };

		memcpy(buf, &sent, 4);
		tu_fill(buf + 4, FULL_MSG - 4, sent);
		memcpy(b2, &(uint32_t){ sent + 1 }, 4);
		tu_fill(b2 + 4, FULL_MSG - 4, sent + 1);
		rc = ipc_sendv(k.c, msgs, 2, 0);
		if (rc < 0)
			break;
		cr_assert(rc <= 2, "[%s] ipc_sendv of 2 returned %d", tu_tag, rc);
		sent += (uint32_t)rc;
	}
	T_EQ(rc, -EAGAIN);
	tu_put(TEST_OUT(&k), 'g');
	T_OK(ipc_send(k.c, "END", 3, 20000));
	cr_assert(tu_get_str(TEST_IN(&k), num, sizeof(num), 20000),
		  "[%s] the peer did not finish draining", tu_tag);
	cr_assert(strtoul(num, NULL, 10) == sent,
		  "[%s] %u messages were sent successfully, the peer received %s "
		  "(a message refused with -EAGAIN/-ETIMEDOUT was delivered, or one was lost)",
		  tu_tag, sent, num);
	conn_end(&k);
}

/* Peer for fd_level: 3 messages, 'S'; on 'M' one more; on 'C' close. */
static int peer_fd(ipc_chan *c, struct conn *k, void *arg)
{
	char buf[64];

	C_OK(handshake(c, k->client));
	for (uint32_t i = 0; i < 3; i++) {
		tu_fill(buf, 10 * (i + 1), i);
		C_OK(ipc_send(c, buf, 10 * (i + 1), -1));
	}
	C_TRUE(tu_put(PEER_OUT(k), 'S'));
	C_EQ(tu_get(PEER_IN(k), 20000), 'M');
	C_OK(ipc_send(c, "more", 4, -1));
	tu_get(PEER_IN(k), 20000);      /* 'C' or EOF */
	return 0;
}

CONF_TEST(fd_level, 30)
{
	struct conn k;
	char buf[64];
	int fd;

	set_tag(p);
	conn_start(&k, p, NULL, peer_fd, NULL);
	fd = ipc_fd(k.c);
	T_OK(fd);
	T_EQ(ipc_fd(k.c), fd);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 20000) == 'S', "[%s] peer did not send", tu_tag);
	cr_assert(readable(fd, 5000), "[%s] ipc_fd not readable with 3 messages queued", tu_tag);
	for (uint32_t i = 0; i < 3; i++) {
		ssize_t n;

		cr_assert(readable(fd, 0), "[%s] ipc_fd not readable with %u message(s) still queued "
			  "(not level-triggered)", tu_tag, 3 - i);
		n = ipc_recv(k.c, buf, sizeof(buf), 0);
		T_EQ(n, 10 * (i + 1));
		cr_assert(tu_check(buf, (size_t)n, i) < 0, "[%s] message %u corrupted", tu_tag, i);
	}
	cr_assert(!readable(fd, 0), "[%s] ipc_fd readable after every message was received", tu_tag);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EAGAIN);
	cr_assert(!readable(fd, 0), "[%s] ipc_fd readable after -EAGAIN", tu_tag);

	tu_put(TEST_OUT(&k), 'M');
	cr_assert(readable(fd, 5000), "[%s] ipc_fd not readable when a new message came", tu_tag);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), 4);
	cr_assert(!readable(fd, 0), "[%s] ipc_fd readable after the last message", tu_tag);

	if (reliable(p->be)) {
		/* EOF also makes it readable, and stays so. */
		tu_put(TEST_OUT(&k), 'C');
		cr_assert(readable(fd, 5000), "[%s] ipc_fd not readable after the peer closed", tu_tag);
		T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EPIPE);
		cr_assert(readable(fd, 0), "[%s] ipc_fd not readable at EOF after -EPIPE", tu_tag);
		T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EPIPE);
	}
	conn_end(&k);
}

/* Peer: handshake, send 5 messages, close, exit. */
static int peer_send5_close(ipc_chan *c, struct conn *k, void *arg)
{
	char buf[600];

	C_OK(handshake(c, k->client));
	for (uint32_t i = 0; i < 5; i++) {
		tu_fill(buf, 100 * (i + 1), i + 50);
		C_OK(ipc_send(c, buf, 100 * (i + 1), -1));
	}
	return 0;       /* peer_run closes the channel */
}

CONF_TEST(close_drains, 30)
{
	struct conn k;
	char buf[600];

	set_tag(p);
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_send5_close, NULL);
	T_OK(handshake(k.c, k.client));
	conn_reap(&k, 0);       /* the peer has closed and exited */
	for (uint32_t i = 0; i < 5; i++) {
		ssize_t n = ipc_recv(k.c, buf, sizeof(buf), 5000);

		cr_assert(n == (ssize_t)(100 * (i + 1)),
			  "[%s] queued message %u after the peer closed: ipc_recv = %zd %s", tu_tag, i,
			  n, tu_err(n));
		cr_assert(tu_check(buf, (size_t)n, i + 50) < 0, "[%s] message %u corrupted", tu_tag, i);
	}
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 5000), -EPIPE);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EPIPE);
	/* The peer is known to be gone: sending fails too. */
	T_EQ(ipc_send(k.c, "x", 1, 1000), -EPIPE);
	conn_end(&k);
}

static int peer_close_at_once(ipc_chan *c, struct conn *k, void *arg)
{
	C_OK(handshake(c, k->client));
	return 0;
}

CONF_TEST(send_after_peer_close, 30)
{
	struct conn k;
	char buf[100] = { 0 };
	int rc = 0, i;

	set_tag(p);
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_close_at_once, NULL);
	T_OK(handshake(k.c, k.client));
	conn_reap(&k, 0);
	/* Nobody reads: sends must end in -EPIPE, never block or SIGPIPE. */
	for (i = 0; i < 100; i++) {
		rc = ipc_send(k.c, buf, sizeof(buf), 1000);
		if (rc != 0)
			break;
		tu_sleep_ms(10);
	}
	cr_assert(rc == -EPIPE, "[%s] ipc_send after the peer closed = %d %s after %d sends", tu_tag,
		  rc, tu_err(rc), i + 1);
	T_EQ(ipc_send(k.c, buf, sizeof(buf), 1000), -EPIPE);
	conn_end(&k);
}

/* Peer: handshake, then sleep until killed. */
static int peer_sleep(ipc_chan *c, struct conn *k, void *arg)
{
	C_OK(handshake(c, k->client));
	C_TRUE(tu_put(PEER_OUT(k), 'R'));
	for (int i = 0; i < 60; i++)
		tu_sleep_ms(1000);
	return 3;
}

CONF_TEST(peer_killed_recv, 30)
{
	struct killer kl;
	struct conn k;
	char buf[16];
	ssize_t n;
	int64_t dt;

	set_tag(p);
	SKIP_THREAD_PEERS(p, "a thread cannot be killed alone");
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_sleep, NULL);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 10000) == 'R');
	killer_start(&kl, k.pid, 200);
	n = ipc_recv(k.c, buf, sizeof(buf), -1);
	dt = tu_now_ms() - kl.killed_at;
	pthread_join(kl.th, NULL);
	T_EQ(n, -EPIPE);
	cr_assert(dt < 5000, "[%s] SIGKILLed peer noticed after %ld ms", tu_tag, (long)dt);
	if (dt > 1000)
		cr_log_warn("[%s] SIGKILLed peer noticed after %ld ms (contract: 1 s)", tu_tag,
			    (long)dt);
	conn_reap(&k, SIGKILL);
	T_EQ(ipc_send(k.c, "x", 1, 1000), -EPIPE);
	conn_end(&k);
}

CONF_TEST(peer_killed_send, 60)
{
	struct killer kl;
	struct conn k;
	char buf[FULL_MSG] = { 0 };
	int rc;
	int64_t dt;

	set_tag(p);
	SKIP_THREAD_PEERS(p, "a thread cannot be killed alone");
	SKIP_UNRELIABLE(p);
	conn_start(&k, p, NULL, peer_sleep, NULL);
	T_OK(handshake(k.c, k.client));
	cr_assert(tu_get(TEST_IN(&k), 10000) == 'R');
	fill_channel(k.c);
	killer_start(&kl, k.pid, 200);
	/* The kernel may still free a little room after the fill (TCP acks,
	 * buffer autotuning): sends that fit succeed; the first one that
	 * blocks must end with -EPIPE once the peer is killed. */
	for (int i = 0; i < 100000; i++) {
		rc = ipc_send(k.c, buf, sizeof(buf), -1);
		if (rc < 0)
			break;
	}
	dt = tu_now_ms() - kl.killed_at;
	pthread_join(kl.th, NULL);
	T_EQ(rc, -EPIPE);
	cr_assert(dt < 5000, "[%s] SIGKILLed peer noticed by a blocked send after %ld ms", tu_tag,
		  (long)dt);
	conn_reap(&k, SIGKILL);
	conn_end(&k);
}

CONF_TEST(zero_copy, 30)
{
	struct conn k;
	void *sb = NULL;
	const void *msg = NULL;
	char buf[64];
	size_t max, big;
	ssize_t n;

	set_tag(p);
	conn_start(&k, p, NULL, peer_echo, NULL);
	max = chan_max(k.c);

	/* Reserve 100, commit 60: the peer gets exactly 60 bytes. */
	T_OK(ipc_send_reserve(k.c, 100, &sb, 10000));
	cr_assert(sb != NULL, "[%s] ipc_send_reserve gave no buffer", tu_tag);
	tu_fill(sb, 60, 21);
	T_EQ(ipc_send(k.c, "x", 1, 0), -EBUSY);
	T_EQ(ipc_send_commit(k.c, 60), 0);

	/* Peek twice gives the same message; recv meanwhile is -EBUSY. */
	n = ipc_recv_peek(k.c, &msg, 10000);
	T_EQ(n, 60);
	cr_assert(msg && tu_check(msg, 60, 21) < 0, "[%s] peeked message corrupted", tu_tag);
	T_EQ(ipc_recv_peek(k.c, &msg, 0), 60);
	cr_assert(msg && tu_check(msg, 60, 21) < 0, "[%s] second peek differs", tu_tag);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EBUSY);
	T_EQ(ipc_recv_release(k.c), 0);
	T_EQ(ipc_recv(k.c, buf, sizeof(buf), 0), -EAGAIN);

	/* Two messages queued, peeked one after the other. */
	tu_fill(buf, 10, 22);
	T_OK(ipc_send(k.c, buf, 10, 10000));
	tu_fill(buf, 20, 23);
	T_OK(ipc_send(k.c, buf, 20, 10000));
	T_EQ(ipc_recv_peek(k.c, &msg, 10000), 10);
	cr_assert(tu_check(msg, 10, 22) < 0, "[%s] first peek corrupted", tu_tag);
	T_EQ(ipc_recv_release(k.c), 0);
	T_EQ(ipc_recv_peek(k.c, &msg, 10000), 20);
	cr_assert(tu_check(msg, 20, 23) < 0, "[%s] second message corrupted", tu_tag);
	T_EQ(ipc_recv_release(k.c), 0);

	/* A large one, up to the backend's limit. */
	big = max < 65000 ? max : 65000;
	T_OK(ipc_send_reserve(k.c, big, &sb, 10000));
	tu_fill(sb, big, 24);
	T_EQ(ipc_send_commit(k.c, big), 0);
	T_EQ(ipc_recv_peek(k.c, &msg, 10000), (long)big);
	cr_assert(tu_check(msg, big, 24) < 0, "[%s] large peeked message corrupted", tu_tag);
	T_EQ(ipc_recv_release(k.c), 0);
	echo_finish(&k);
	conn_end(&k);
}

CONF_TEST(sendv, 30)
{
	static const size_t lens[] = { 0, 1, 2, 100, 3, 4000, 0, 7 };
	enum { N = sizeof(lens) / sizeof(lens[0]) };
	char bufs[N][4000], rbuf[4096];
	ipc_msg msgs[N];
	struct conn k;

	set_tag(p);
	conn_start(&k, p, NULL, peer_echo, NULL);
	for (size_t i = 0; i < N; i++) {
		tu_fill(bufs[i], lens[i], (uint32_t)i + 30);
		msgs[i] = (ipc_msg){ bufs[i], lens[i] };
	}
	T_EQ(ipc_sendv(k.c, msgs, N, 10000), N);
	for (size_t i = 0; i < N; i++) {
		ssize_t n = ipc_recv(k.c, rbuf, sizeof(rbuf), 10000);

		cr_assert(n == (ssize_t)lens[i], "[%s] sendv message %zu: ipc_recv = %zd %s, sent %zu",
			  tu_tag, i, n, tu_err(n), lens[i]);
		cr_assert(tu_check(rbuf, lens[i], (uint32_t)i + 30) < 0, "[%s] message %zu corrupted",
			  tu_tag, i);
	}
	echo_finish(&k);
	conn_end(&k);
}

static void check_info(const struct cparam *p, ipc_chan *c, bool is_child)
{
	ipc_info info;
	unsigned want = 0;
	size_t want_max = (size_t)16 << 20;
	char prefix[32];

	memset(&info, 0xa5, sizeof(info));
	if (is_child) {
		C_OK(ipc_info_get(c, &info));
		C_TRUE(info.backend && strcmp(info.backend, p->be) == 0);
		return;
	}
	T_OK(ipc_info_get(c, &info));
	T_EQ(ipc_info_get(c, NULL), -EINVAL);
	T_EQ(ipc_info_get(NULL, &info), -EINVAL);
	cr_assert(info.backend && strcmp(info.backend, p->be) == 0, "[%s] info.backend = %s", tu_tag,
		  info.backend ? info.backend : "(null)");

	snprintf(prefix, sizeof(prefix), "%s://", p->be);
	if (p->mode == M_PAIR)
		cr_assert(info.url == NULL || strncmp(info.url, prefix, strlen(prefix)) == 0,
			  "[%s] info.url = %s", tu_tag, info.url);
	else
		cr_assert(info.url && strncmp(info.url, prefix, strlen(prefix)) == 0,
			  "[%s] info.url = %s", tu_tag, info.url ? info.url : "(null)");
	if (p->mode != M_PAIR && pexp(p)->url == TU_URL_HOSTPORT) {
		const char *colon = strrchr(info.url, ':');

		cr_assert(colon && atoi(colon + 1) > 0 && atoi(colon + 1) < 65536,
			  "[%s] info.url %s has no real port", tu_tag, info.url);
	}

	want_max = pexp(p)->max_msg ? pexp(p)->max_msg
				    : read_proc_size("/proc/sys/fs/mqueue/msgsize_max");
	cr_assert(info.max_msg == want_max, "[%s] info.max_msg = %zu, expected %zu", tu_tag,
		  info.max_msg, want_max);

	want = pexp(p)->caps;
	cr_assert(info.caps == want, "[%s] info.caps = %#x, expected %#x", tu_tag, info.caps, want);
}

static int peer_info(ipc_chan *c, struct conn *k, void *arg)
{
	check_info(k->p, c, true);
	return peer_echo(c, k, arg);
}

CONF_TEST(info, 30)
{
	struct conn k;

	set_tag(p);
	conn_start(&k, p, NULL, peer_info, NULL);
	check_info(p, k.c, false);
	echo_finish(&k);
	check_info(p, k.c, false);
	conn_end(&k);
}

/* One sending thread and one receiving thread on the same channel. */
struct thr {
	ipc_chan *c;
	uint32_t count;
	bool reliable;
	uint32_t got;
	char err[200];
};

static size_t thr_size(uint32_t i)
{
	return 4 + (i * 13u) % 500u;
}

static void *thr_send(void *arg)
{
	struct thr *t = arg;
	char buf[600];

	for (uint32_t i = 0; i < t->count; i++) {
		int rc;

		memcpy(buf, &i, 4);
		tu_fill(buf + 4, thr_size(i) - 4, i);
		rc = ipc_send(t->c, buf, thr_size(i), 20000);
		if (rc < 0) {
			snprintf(t->err, sizeof(t->err), "send %u: %d %s", i, rc, tu_err(rc));
			return NULL;
		}
	}
	ipc_send(t->c, "END", 3, 20000);
	return NULL;
}

static void *thr_recv(void *arg)
{
	struct thr *t = arg;
	char buf[600];
	int64_t last = -1;

	for (uint32_t n = 0; n <= t->count; n++) {
		ssize_t len = ipc_recv(t->c, buf, sizeof(buf), t->reliable ? 20000 : 2000);
		uint32_t idx;

		if (len >= 0 && is_end(buf, len))
			return NULL;
		if (!t->reliable && len == -ETIMEDOUT)
			return NULL;
		if (len < 4) {
			snprintf(t->err, sizeof(t->err), "recv %u: %zd %s", n, len, tu_err(len));
			return NULL;
		}
		memcpy(&idx, buf, 4);
		if ((t->reliable && idx != n) || (int64_t)idx <= last || idx >= t->count ||
		    (size_t)len != thr_size(idx) || tu_check(buf + 4, (size_t)len - 4, idx) >= 0) {
			snprintf(t->err, sizeof(t->err), "message %u: got number %u, %zd bytes", n,
				 idx, len);
			return NULL;
		}
		last = idx;
		t->got++;
	}
	snprintf(t->err, sizeof(t->err), "no END after %u messages", t->count);
	return NULL;
}

CONF_TEST(threads, 60)
{
	struct thr t = { 0 };
	pthread_t ts, tr;
	struct conn k;

	set_tag(p);
	conn_start(&k, p, NULL, peer_echo, NULL);
	t.c = k.c;
	t.reliable = reliable(p->be);
	t.count = t.reliable ? 3000 : 200;
	cr_assert(pthread_create(&tr, NULL, thr_recv, &t) == 0);
	cr_assert(pthread_create(&ts, NULL, thr_send, &t) == 0);
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	cr_assert(t.err[0] == '\0', "[%s] %s", tu_tag, t.err);
	if (t.reliable)
		T_EQ(t.got, t.count);
	else
		cr_assert(t.got > 0, "[%s] no datagram came back", tu_tag);
	conn_end(&k);
}

/* A max_msg above what the mechanism can carry is refused, not clamped. */
CONF_TEST_KIND(conf, max_msg_above_limit, PK_PAIR_URL, 30)
{
	ipc_chan *a = NULL, *b = NULL;
	ipc_opts o = { 0 };
	char url[512];
	size_t max;

	set_tag(p);
	if (p->mode == M_PAIR) {
		T_OK(ipc_pair(p->be, &a, &b, NULL));
		max = chan_max(a);
		ipc_close(a);
		ipc_close(b);
	} else {
		cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
		T_OK(ipc_open(&a, url, IPC_SERVER, NULL));
		max = chan_max(a);
		ipc_close(a);
	}
	if (max >= ((size_t)16 << 20))
		cr_skip_test("[%s] no limit below the 16 MiB default", tu_tag);
	o.max_msg = max + 1;
	a = b = NULL;
	if (p->mode == M_PAIR) {
		T_EQ(ipc_pair(p->be, &a, &b, &o), -EMSGSIZE);
	} else {
		cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
		T_EQ(ipc_open(&a, url, IPC_SERVER, &o), -EMSGSIZE);
	}
	o.max_msg = max;
	if (p->mode == M_PAIR) {
		T_OK(ipc_pair(p->be, &a, &b, &o));
		ipc_close(a);
		ipc_close(b);
	} else {
		T_OK(ipc_open(&a, url, IPC_SERVER, &o));
		ipc_close(a);
	}
	T_EQ(tu_leftovers(url, sizeof(url)), 0);
}

/* ---------------------------------------------------- endpoint lifecycle */

URL_TEST(addrinuse, 30)
{
	ipc_chan *s1 = NULL, *s2 = NULL;
	ipc_info info;
	char url[512], resolved[512];

	struct early cl;

	set_tag(p);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	client_spawn(&cl, 5000);
	T_OK(ipc_open(&s1, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s1, &info));
	snprintf(resolved, sizeof(resolved), "%s", info.url);
	T_EQ(ipc_open(&s2, resolved, IPC_SERVER, NULL), -EADDRINUSE);
	T_EQ(ipc_open(&s2, resolved, IPC_SERVER, NULL), -EADDRINUSE);
	/* Refused attempts did not disturb the live server. */
	client_go(&cl, resolved);
	T_OK(handshake(s1, false));
	ipc_close(s1);
	client_reap(&cl);
	no_leftovers("after the server closed");
	/* Reopen after close. */
	T_OK(ipc_open(&s2, resolved, IPC_SERVER, NULL));
	ipc_close(s2);
	no_leftovers("after the reopened server closed");
}

URL_TEST(addrinuse_other_process, 30)
{
	struct holder h;
	ipc_chan *s = NULL;
	char url[512];

	set_tag(p);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	holder_start(&h, url);
	T_EQ(ipc_open(&s, h.url, IPC_SERVER, NULL), -EADDRINUSE);
	holder_stop(&h, false);
	no_leftovers("after the server process closed");
	T_OK(ipc_open(&s, h.url, IPC_SERVER, NULL));
	ipc_close(s);
	no_leftovers("after the second server closed");
}

/* A server killed before any client came: its URL is reclaimed at once. */
URL_TEST(reopen_after_kill, 30)
{
	struct holder h;
	struct early cl;
	ipc_chan *s = NULL;
	char url[512];

	set_tag(p);
	SKIP_THREAD_PEERS(p, "a thread cannot be killed alone");
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	holder_start(&h, url);
	holder_stop(&h, true);
	client_spawn(&cl, 5000);
	T_OK(ipc_open(&s, h.url, IPC_SERVER, NULL));
	client_go(&cl, h.url);
	T_OK(handshake(s, false));
	ipc_close(s);
	client_reap(&cl);
	no_leftovers("after the reclaiming server closed");
}

/* Once a client has attached, the endpoint is released: the names are
 * gone and a new server can open the same URL while the pair lives on. */
URL_TEST(released_after_attach, 30)
{
	ipc_chan *s1 = NULL, *s2 = NULL;
	ipc_info info;
	char url[512], resolved[512], b;
	struct early c1, c2;

	set_tag(p);
	if (!reliable(p->be))
		cr_skip_test("[%s] the server socket is the channel", tu_tag);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	client_spawn(&c1, 5000);
	client_spawn(&c2, 5000);
	T_OK(ipc_open(&s1, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s1, &info));
	snprintf(resolved, sizeof(resolved), "%s", info.url);
	client_go(&c1, resolved);
	T_OK(handshake(s1, false));
	no_leftovers("while the attached pair is open");
	T_OK(ipc_open(&s2, resolved, IPC_SERVER, NULL));
	client_go(&c2, resolved);
	T_OK(handshake(s2, false));
	/* The first pair still works and is not confused with the second. */
	T_EQ(ipc_recv(s1, &b, 1, 0), -EAGAIN);
	ipc_close(s2);
	ipc_close(s1);
	client_reap(&c1);
	client_reap(&c2);
	no_leftovers("after both pairs closed");
}

/* A server with no client yet: receives time out, ipc_fd is quiet, and
 * the first client is then served normally. */
URL_TEST(server_before_client, 30)
{
	struct early cl;
	ipc_chan *s = NULL;
	ipc_info info;
	char url[512], buf[16];
	int64_t t0, dt;
	int fd;

	set_tag(p);
	cr_assert(tu_url(url, sizeof(url), p->be, p->abstract));
	client_spawn(&cl, 5000);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_EQ(ipc_recv(s, buf, sizeof(buf), 0), -EAGAIN);
	t0 = tu_now_ms();
	T_EQ(ipc_recv(s, buf, sizeof(buf), 100), -ETIMEDOUT);
	dt = tu_now_ms() - t0;
	cr_assert(dt >= 99 && dt < 5000, "[%s] recv(100) with no client returned after %ld ms",
		  tu_tag, (long)dt);
	fd = ipc_fd(s);
	T_OK(fd);
	cr_assert(!readable(fd, 0), "[%s] ipc_fd readable with no client", tu_tag);
	T_OK(ipc_info_get(s, &info));
	client_go(&cl, info.url);
	/* The client's first message makes the (same) descriptor readable. */
	cr_assert(readable(fd, 10000), "[%s] ipc_fd not readable after the client spoke", tu_tag);
	T_OK(handshake(s, false));
	ipc_close(s);
	client_reap(&cl);
	no_leftovers("after the pair closed");
}

URL_TEST(client_no_server, 30)
{
	ipc_opts o = { .connect_timeout_ms = 200 };
	ipc_chan *c = NULL;
	char url[512], once[600];
	int rc;
	int64_t t0, dt;

	set_tag(p);
	cr_assert(tu_fixed_url(url, sizeof(url), p->be, p->abstract));
	/* One try: connect_timeout_ms=0 in the query (in ipc_opts, 0 means
	 * the default). */
	snprintf(once, sizeof(once), "%s?connect_timeout_ms=0", url);
	rc = ipc_open(&c, once, IPC_CLIENT, NULL);
	cr_assert(rc == -ECONNREFUSED || rc == -ENOENT,
		  "[%s] client, no server, one try: %d %s, expected -ECONNREFUSED or -ENOENT", tu_tag,
		  rc, tu_err(rc));
	t0 = tu_now_ms();
	T_EQ(ipc_open(&c, url, IPC_CLIENT, &o), -ETIMEDOUT);
	dt = tu_now_ms() - t0;
	cr_assert(dt >= 199 && dt < 5000, "[%s] connect_timeout_ms 200 gave up after %ld ms", tu_tag,
		  (long)dt);
	no_leftovers("after failed client opens");
}

/* A client started before its server waits for it. */
URL_TEST(client_first, 30)
{
	ipc_chan *s = NULL;
	char url[512];
	struct early cl;

	set_tag(p);
	cr_assert(tu_fixed_url(url, sizeof(url), p->be, p->abstract));
	client_start(&cl, url, 10000);
	tu_sleep_ms(300);
	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_OK(handshake(s, false));
	ipc_close(s);
	client_reap(&cl);
	no_leftovers("after the pair closed");
}

/* Both ends in one process, no fork. */
CONF_TEST_KIND(conf_pair, in_process, PK_PAIR, 30)
{
	ipc_chan *a = NULL, *b = NULL;
	char buf[16];

	set_tag(p);
	T_OK(ipc_pair(p->be, &a, &b, NULL));
	T_OK(ipc_send(a, "ping", 4, 5000));
	T_EQ(ipc_recv(b, buf, sizeof(buf), 5000), 4);
	cr_assert(memcmp(buf, "ping", 4) == 0);
	T_OK(ipc_send(b, "pong!", 5, 5000));
	T_EQ(ipc_recv(a, buf, sizeof(buf), 5000), 5);
	cr_assert(memcmp(buf, "pong!", 5) == 0);
	T_EQ(ipc_recv(a, buf, sizeof(buf), 0), -EAGAIN);
	T_EQ(ipc_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	ipc_close(b);
	if (reliable(p->be))
		T_EQ(ipc_recv(a, buf, sizeof(buf), 5000), -EPIPE);
	ipc_close(a);
	no_leftovers("after the pair closed");
}
