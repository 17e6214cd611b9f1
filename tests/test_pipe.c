/*
 * test_pipe.c - pipe specifics: pipe://R,W adopts inherited descriptors,
 * after exec (of tests/pipe_peer.c) and after a plain fork; bad
 * descriptors are refused without side effects.
 */
#include "conn.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef PIPE_PEER
#error "PIPE_PEER (path of ipckit-test-pipe-peer) is set by tests/meson.build"
#endif

static bool fd_open(int fd)
{
	return fcntl(fd, F_GETFD) >= 0;
}

/* Echo a few messages of several sizes through c (peer echoes). */
static void echo_some(ipc_chan *c)
{
	static const size_t sizes[] = { 0, 1, 100, 65000, 1 << 20 };
	char *sbuf = malloc(1 << 20), *rbuf = malloc(1 << 20);

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ssize_t n;

		tu_fill(sbuf, sizes[i], (uint32_t)i);
		T_OK(ipc_send(c, sbuf, sizes[i], 10000));
		n = ipc_recv(c, rbuf, 1 << 20, 10000);
		T_EQ(n, (long)sizes[i]);
		cr_assert(tu_check(rbuf, sizes[i], (uint32_t)i) < 0, "[%s] %zu bytes corrupted", tu_tag,
			  sizes[i]);
	}
	T_OK(ipc_send(c, "END", 3, 10000));
	T_EQ(ipc_recv(c, rbuf, 16, 10000), 3);
	free(sbuf);
	free(rbuf);
}

/* Two pipes; the child gets c2p[1] and p2c[0] without CLOEXEC. */
static void make_pipes(int p2c[2], int c2p[2])
{
	cr_assert(pipe2(p2c, O_CLOEXEC) == 0);
	cr_assert(pipe2(c2p, O_CLOEXEC) == 0);
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(pipe, .fini = tu_leak_check);

Test(pipe, adopt_after_exec, .timeout = 60)
{
	int p2c[2], c2p[2];
	char url[64];
	ipc_chan *c = NULL;
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "pipe/exec");
	make_pipes(p2c, c2p);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		char curl[64];

		/* Inheritable copies at fresh numbers. */
		int r = dup(p2c[0]), w = dup(c2p[1]);

		snprintf(curl, sizeof(curl), "pipe://%d,%d", r, w);
		execl(PIPE_PEER, PIPE_PEER, curl, (char *)NULL);
		perror("execl " PIPE_PEER);
		_exit(127);
	}
	close(p2c[0]);
	close(c2p[1]);
	snprintf(url, sizeof(url), "pipe://%d,%d", c2p[0], p2c[1]);
	T_OK(ipc_open(&c, url, IPC_SERVER, NULL));
	{
		ipc_info info;

		T_OK(ipc_info_get(c, &info));
		cr_expect_str_eq(info.backend, "pipe");
	}
	echo_some(c);
	ipc_close(c);
	/* Adopted descriptors belong to the channel: closed with it. */
	cr_expect(!fd_open(c2p[0]) && !fd_open(p2c[1]),
		  "[%s] adopted descriptors still open after ipc_close", tu_tag);
	peer_reap_ok(pid, "peer");
}

Test(pipe, adopt_after_fork, .timeout = 60)
{
	int p2c[2], c2p[2];
	char url[64];
	ipc_chan *c = NULL;
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "pipe/fork");
	make_pipes(p2c, c2p);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *cc = NULL;
		char curl[64], *buf = malloc(1 << 20);

		alarm(30);
		close(p2c[1]);
		close(c2p[0]);
		snprintf(curl, sizeof(curl), "pipe://%d,%d", p2c[0], c2p[1]);
		C_OK(ipc_open(&cc, curl, IPC_CLIENT, NULL));
		for (;;) {
			ssize_t n = ipc_recv(cc, buf, 1 << 20, 20000);

			C_OK(n);
			C_OK(ipc_send(cc, buf, (size_t)n, 20000));
			if (n == 3 && memcmp(buf, "END", 3) == 0)
				break;
		}
		/* Then the test closes: -EPIPE. */
		C_EQ(ipc_recv(cc, buf, 16, 20000), -EPIPE);
		ipc_close(cc);
		_exit(0);
	}
	close(p2c[0]);
	close(c2p[1]);
	snprintf(url, sizeof(url), "pipe://%d,%d", c2p[0], p2c[1]);
	T_OK(ipc_open(&c, url, IPC_SERVER, NULL));
	echo_some(c);
	ipc_close(c);
	peer_reap_ok(pid, "peer");
}

/* A failed adopt has no side effects: the descriptors stay open. */
static void adopt_fails(const char *url, int want, int keep1, int keep2)
{
	ipc_chan *c = NULL;

	T_EQ(ipc_open(&c, url, IPC_SERVER, NULL), want);
	if (keep1 >= 0)
		cr_expect(fd_open(keep1), "[%s] %s closed fd %d on failure", tu_tag, url, keep1);
	if (keep2 >= 0)
		cr_expect(fd_open(keep2), "[%s] %s closed fd %d on failure", tu_tag, url, keep2);
}

Test(pipe, bad_fds)
{
	int p[2], q[2], file;
	char url[64];

	snprintf(tu_tag, sizeof(tu_tag), "pipe/badfd");
	cr_assert(pipe2(p, O_CLOEXEC) == 0);
	cr_assert(pipe2(q, O_CLOEXEC) == 0);
	/* Not open at all. */
	adopt_fails("pipe://1000,1001", -EBADF, -1, -1);
	snprintf(url, sizeof(url), "pipe://%d,1001", p[0]);
	adopt_fails(url, -EBADF, p[0], -1);
	snprintf(url, sizeof(url), "pipe://1000,%d", q[1]);
	adopt_fails(url, -EBADF, q[1], -1);
	/* Wrong directions: a write end to read from, a read end to write to. */
	snprintf(url, sizeof(url), "pipe://%d,%d", q[1], p[0]);
	adopt_fails(url, -EBADF, q[1], p[0]);
	/* Not a pipe. */
	file = open("/dev/null", O_RDWR | O_CLOEXEC);
	cr_assert(file >= 0);
	snprintf(url, sizeof(url), "pipe://%d,%d", file, q[1]);
	adopt_fails(url, -EINVAL, file, q[1]);
	/* The same descriptor twice. */
	snprintf(url, sizeof(url), "pipe://%d,%d", p[0], p[0]);
	adopt_fails(url, -EINVAL, p[0], -1);
	close(file);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}

/* ipc_pair("pipe") then fork, with the peer dying: noticed. */
Test(pipe, pair_peer_killed, .timeout = 30)
{
	ipc_chan *a = NULL, *b = NULL;
	char buf[8];
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "pipe/pair");
	T_OK(ipc_pair("pipe", &a, &b, NULL));
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(a);
		C_OK(ipc_send(b, "r", 1, 5000));
		pause();
		_exit(0);
	}
	ipc_close(b);
	T_EQ(ipc_recv(a, buf, sizeof(buf), 10000), 1);
	kill(pid, SIGKILL);
	T_EQ(ipc_recv(a, buf, sizeof(buf), 10000), -EPIPE);
	T_EQ(ipc_send(a, "x", 1, 1000), -EPIPE);
	tu_wait_child(pid, 5000);
	ipc_close(a);
}

/* Adopt a fresh pair of pipes with query q; the pipe size of the write end
 * the channel took (0 and -err when ipc_open failed; the caller's
 * descriptors must then still be open). All descriptors are closed. */
static int adopted_pipe_size(const char *q, int *err)
{
	int p[2], w[2], size = 0;
	char url[96];
	ipc_chan *c = NULL;

	make_pipes(p, w);
	snprintf(url, sizeof(url), "pipe://%d,%d%s", p[0], w[1], q);
	*err = ipc_open(&c, url, IPC_CLIENT, NULL);
	if (*err == 0) {
		size = fcntl(w[1], F_GETPIPE_SZ);
		ipc_close(c); /* closes p[0] and w[1] */
	} else {
		cr_assert(fd_open(p[0]) && fd_open(w[1]), "a refused adoption closed the caller's fds");
		close(p[0]);
		close(w[1]);
	}
	close(p[1]);
	close(w[0]);
	return size;
}

/* Pipe size: 128 KiB by default (a 64 KiB message and its header fit one
 * write), exactly `capacity` (rounded to pages) when asked, and a refusal
 * of an absurd capacity leaves the caller's descriptors open. */
Test(pipe, capacity)
{
	int err;

	snprintf(tu_tag, sizeof(tu_tag), "pipe/capacity");
	T_EQ(adopted_pipe_size("", &err), 128 * 1024);
	T_OK(err);
	T_EQ(adopted_pipe_size("?capacity=16K", &err), 16 * 1024);
	T_OK(err);
	T_EQ(adopted_pipe_size("?capacity=2G", &err), 0);
	T_EQ(err, -EMSGSIZE);
}
