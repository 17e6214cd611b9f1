/*
 * test_mq.c - mq backend specifics: limits read from /proc and refused
 * above, name length, reclaiming the name of a killed server, nothing left
 * in the queue namespace, -EPIPE after SIGKILL while blocked and after a
 * clean close (queued messages first), the receive stash and ipc_fd.
 * Names carry the pid; queues are kept small (RLIMIT_MSGQUEUE is 800 KiB
 * per user by default) and every channel is closed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ipckit.h>
#include <limits.h>
#include <mqueue.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

static const ipc_opts small = { .max_msg = 256, .capacity = 4 };

static size_t read_limit(const char *file)
{
	FILE *f = fopen(file, "r");
	unsigned long long v = 0;
	cr_assert(f, "%s", file);
	cr_assert_eq(fscanf(f, "%llu", &v), 1);
	fclose(f);
	return (size_t)v;
}

static void mkurl(char *url, size_t n, const char *tag)
{
	snprintf(url, n, "mq:///ipckit-test-%s-%d", tag, (int)getpid());
}

/* True when the queue "<url's name><suffix>" exists. */
static bool queue_exists(const char *url, const char *suffix)
{
	char name[NAME_MAX + 2];
	snprintf(name, sizeof name, "%s%s", url + strlen("mq://"), suffix);
	mqd_t q = mq_open(name, O_RDONLY);
	if (q == (mqd_t)-1) {
		cr_assert_eq(errno, ENOENT, "%s: %s", name, strerror(errno));
		return false;
	}
	mq_close(q);
	return true;
}

static bool any_queue(const char *url)
{
	return queue_exists(url, ".s2c") || queue_exists(url, ".c2s");
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(mq, .fini = tu_leak_check);

Test(mq, limits_from_proc, .timeout = 10)
{
	size_t msgsize_max = read_limit("/proc/sys/fs/mqueue/msgsize_max");
	size_t msg_max = read_limit("/proc/sys/fs/mqueue/msg_max");
	ipc_chan *a, *b;
	ipc_info info;
	/* Default max_msg is the kernel's limit (one default pair only). */
	cr_assert_eq(ipc_pair("mq", &a, &b, NULL), 0);
	cr_assert_eq(ipc_info_get(a, &info), 0);
	cr_assert_eq(info.max_msg, msgsize_max);
	cr_assert_eq(info.caps & IPC_CAP_RELIABLE, IPC_CAP_RELIABLE);
	ipc_close(a);
	ipc_close(b);

	/* At the limits: accepted. Above: -EMSGSIZE, never clamped. */
	char url[96];
	mkurl(url, sizeof url, "lim");
	ipc_opts o = { .max_msg = 128, .capacity = msg_max };
	cr_assert_eq(ipc_pair("mq", &a, &b, &o), 0);
	ipc_close(a);
	ipc_close(b);
	o.capacity = msg_max + 1;
	cr_assert_eq(ipc_pair("mq", &a, &b, &o), -EMSGSIZE);
	cr_assert_eq(ipc_open(&a, url, IPC_SERVER, &o), -EMSGSIZE);
	o = (ipc_opts){ .max_msg = msgsize_max + 1, .capacity = 1 };
	cr_assert_eq(ipc_pair("mq", &a, &b, &o), -EMSGSIZE);
	cr_assert_eq(ipc_open(&a, url, IPC_SERVER, &o), -EMSGSIZE);
	cr_assert_eq(ipc_open(&a, url, IPC_CLIENT, &o), -EMSGSIZE);
	cr_assert(!any_queue(url));
}

Test(mq, send_above_max_msg, .timeout = 10)
{
	ipc_chan *a, *b;
	char buf[300] = { 0 };
	cr_assert_eq(ipc_pair("mq", &a, &b, &small), 0);
	cr_assert_eq(ipc_send(a, buf, 257, 0), -EMSGSIZE);
	cr_assert_eq(ipc_send(a, buf, 256, 0), 0);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 0), 256);
	ipc_close(a);
	ipc_close(b);
}

Test(mq, name_too_long, .timeout = 10)
{
	/* The derived name "<name>.s2c" must fit NAME_MAX after the slash. */
	char url[NAME_MAX + 32], tag[16];
	int len = snprintf(tag, sizeof tag, "%d-", (int)getpid());
	int fill = NAME_MAX - 4 - len;
	ipc_chan *s;
	snprintf(url, sizeof url, "mq:///%s%0*d", tag, fill, 0);
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0, "%s", url);
	ipc_close(s);
	snprintf(url, sizeof url, "mq:///%s%0*d", tag, fill + 1, 0);
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), -ENAMETOOLONG);
	cr_assert_eq(ipc_open(&s, url, IPC_CLIENT, &small), -ENAMETOOLONG);
}

Test(mq, client_adopts_server_max_msg, .timeout = 10)
{
	char url[96];
	mkurl(url, sizeof url, "adopt");
	ipc_chan *s, *c;
	ipc_opts co = { .max_msg = 1000, .capacity = 2 };
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &co), 0);
	ipc_info info;
	cr_assert_eq(ipc_info_get(c, &info), 0);
	cr_assert_eq(info.max_msg, 256);
	ipc_close(c);
	ipc_close(s);
}

/* Fork a server on url that reports readiness on a pipe and then waits. */
static pid_t fork_server(const char *url)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *s;
		close(p[0]);
		char ok = ipc_open(&s, url, IPC_SERVER, &small) == 0 ? 'y' : 'n';
		if (write(p[1], &ok, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	char ok = 0;
	cr_assert_eq(read(p[0], &ok, 1), 1);
	close(p[0]);
	cr_assert_eq(ok, 'y');
	return pid;
}

Test(mq, reclaim_after_killed_server, .timeout = 20)
{
	char url[96], curl[128];
	mkurl(url, sizeof url, "reclaim");
	snprintf(curl, sizeof curl, "%s?connect_timeout_ms=0", url);
	pid_t pid = fork_server(url);
	ipc_chan *s, *c;
	/* Live: never stolen. */
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), -EADDRINUSE);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert(any_queue(url)); /* the dead server's pair is still there */
	/* A client does not attach to a dead server. */
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), -ECONNREFUSED);
	/* A new server reclaims the name at once. */
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), 0);
	char buf[16];
	cr_assert_eq(ipc_send(c, "hi", 2, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
	ipc_close(c);
	ipc_close(s);
	cr_assert(!any_queue(url));
}

Test(mq, nothing_left_behind, .timeout = 20)
{
	char url[96];
	mkurl(url, sizeof url, "left");
	ipc_chan *s, *c;
	char buf[16];

	/* Both attached: the names are gone before either closes. */
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert(queue_exists(url, ".s2c") && queue_exists(url, ".c2s"));
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	cr_assert_eq(ipc_send(s, "a", 1, 5000), 0);
	cr_assert(!any_queue(url));
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 1);
	ipc_close(c);
	ipc_close(s);

	/* A server closed before any client came. */
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	ipc_close(s);
	cr_assert(!any_queue(url));

	/* A server killed after its client attached but before its first op:
	 * the client's close removes the stale pair. */
	pid_t pid = fork_server(url);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert(any_queue(url));
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), -EPIPE);
	ipc_close(c);
	cr_assert(!any_queue(url));
}

/* A child that attaches as client, says "up", then dies by SIGKILL
 * while the parent is blocked in ipc_recv(-1). */
static void epipe_after_kill(const char *query)
{
	char url[96], surl[160];
	mkurl(url, sizeof url, query[0] ? "killb" : "kill");
	snprintf(surl, sizeof surl, "%s%s", url, query);
	ipc_chan *s;
	char buf[16];
	cr_assert_eq(ipc_open(&s, surl, IPC_SERVER, &small), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c;
		if (ipc_open(&c, url, IPC_CLIENT, &small) != 0 || ipc_send(c, "up", 2, 5000) != 0)
			_exit(1);
		usleep(200 * 1000); /* let the parent block */
		raise(SIGKILL);
		_exit(2);
	}
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, -1), -EPIPE);
	cr_assert_eq(ipc_send(s, "x", 1, -1), -EPIPE);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ipc_close(s);
}

Test(mq, epipe_after_sigkill_blocked, .timeout = 10)
{
	epipe_after_kill("");
}

Test(mq, epipe_after_sigkill_blocked_poll_mode, .timeout = 10)
{
	epipe_after_kill("?wait=block");
}

Test(mq, epipe_after_sigkill_blocked_send, .timeout = 10)
{
	/* The peer never reads: the queue fills and the blocked send ends. */
	ipc_chan *a, *b;
	ipc_opts o = { .max_msg = 64, .capacity = 2 };
	cr_assert_eq(ipc_pair("mq", &a, &b, &o), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(a);
		usleep(200 * 1000);
		raise(SIGKILL);
		_exit(2);
	}
	ipc_close(b);
	int r = 0;
	for (int i = 0; i < 10 && r == 0; i++)
		r = ipc_send(a, "x", 1, -1);
	cr_assert_eq(r, -EPIPE);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	ipc_close(a);
}

Test(mq, epipe_after_clean_close_queued_first, .timeout = 10)
{
	char url[96];
	mkurl(url, sizeof url, "clean");
	ipc_chan *s, *c;
	char buf[16];
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	/* Attach first: the client's hello would take one of the 4 slots. */
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EAGAIN);
	cr_assert_eq(ipc_send(c, "1", 1, 1000), 0);
	cr_assert_eq(ipc_send(c, "22", 2, 1000), 0);
	cr_assert_eq(ipc_send(c, "", 0, 1000), 0);
	ipc_close(c);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 1);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, -1), -EPIPE);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EPIPE);
	cr_assert_eq(ipc_send(s, "x", 1, 0), -EPIPE);
	ipc_close(s);
}

Test(mq, send_sees_clean_close_when_full, .timeout = 10)
{
	/* The closer stays alive and never read: once the queue is full the
	 * sender finds the end-of-stream marker and stops. */
	char url[96];
	mkurl(url, sizeof url, "full");
	ipc_opts o = { .max_msg = 64, .capacity = 2 };
	ipc_chan *s, *c;
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &o), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &o), 0);
	cr_assert_eq(ipc_send(c, "x", 1, 1000), 0);
	char buf[64];
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 1);
	ipc_close(c);
	int r = 0, i;
	for (i = 0; i < 10 && r == 0; i++)
		r = ipc_send(s, "y", 1, 0);
	cr_assert_eq(r, -EPIPE);
	cr_assert_eq(i, 3); /* two fit, the third found the marker */
	ipc_close(s);
}

Test(mq, pair_fork_peer_exit, .timeout = 10)
{
	ipc_chan *a, *b;
	char buf[16];
	cr_assert_eq(ipc_pair("mq", &a, &b, &small), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(a);
		int r = ipc_send(b, "bye", 3, 1000);
		_exit(r == 0 ? 0 : 1);
	}
	ipc_close(b);
	cr_assert_eq(ipc_recv(a, buf, sizeof buf, 5000), 3);
	cr_assert_eq(ipc_recv(a, buf, sizeof buf, -1), -EPIPE);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ipc_close(a);
}

Test(mq, small_buffer_stash_and_fd, .timeout = 10)
{
	ipc_chan *a, *b;
	char buf[256];
	cr_assert_eq(ipc_pair("mq", &a, &b, &small), 0);
	int fd = ipc_fd(b);
	cr_assert(fd >= 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 0), 0);
	cr_assert_eq(ipc_send(a, "0123456789", 10, 0), 0);
	cr_assert_eq(ipc_send(a, "abc", 3, 0), 0);
	cr_assert_eq(poll(&p, 1, 0), 1);
	/* Smaller than the message: kept (in the stash), fd stays readable. */
	cr_assert_eq(ipc_recv(b, buf, 9, 0), -EMSGSIZE);
	cr_assert_eq(ipc_recv(b, buf, 9, 0), -EMSGSIZE);
	cr_assert_eq(poll(&p, 1, 0), 1);
	cr_assert_eq(ipc_recv(b, buf, 10, 0), 10);
	cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
	/* A small buffer that fits. */
	cr_assert_eq(ipc_recv(b, buf, 3, 0), 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0);
	cr_assert_eq(poll(&p, 1, 0), 0);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 0), -EAGAIN);
	/* Peer closed: readable, and recv does not block. */
	ipc_close(a);
	cr_assert_eq(poll(&p, 1, 5000), 1);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 0), -EPIPE);
	cr_assert_eq(poll(&p, 1, 0), 1);
	ipc_close(b);
}

Test(mq, fd_readable_after_eos, .timeout = 10)
{
	char url[96];
	mkurl(url, sizeof url, "eos");
	ipc_chan *s, *c;
	char buf[16];
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	cr_assert_eq(ipc_send(s, "x", 1, 5000), 0);
	struct pollfd p = { .fd = ipc_fd(c), .events = POLLIN };
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 0), 1);
	cr_assert_eq(poll(&p, 1, 0), 0);
	ipc_close(s); /* the server process lives on: only the marker tells */
	cr_assert_eq(poll(&p, 1, 5000), 1);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 0), -EPIPE);
	cr_assert_eq(poll(&p, 1, 0), 1);
	ipc_close(c);
}

Test(mq, second_client_not_attached, .timeout = 10)
{
	char url[96], curl[128];
	mkurl(url, sizeof url, "two");
	snprintf(curl, sizeof curl, "%s?connect_timeout_ms=0", url);
	ipc_chan *s, *c, *c2;
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), 0);
	/* The server's hello is taken: a second client finds no server. */
	cr_assert_eq(ipc_open(&c2, curl, IPC_CLIENT, &small), -ECONNREFUSED);
	ipc_close(c);
	ipc_close(s);
	cr_assert_eq(ipc_open(&c2, curl, IPC_CLIENT, &small), -ENOENT);
}

Test(mq, client_without_server, .timeout = 10)
{
	char url[96], curl[160];
	mkurl(url, sizeof url, "none");
	ipc_chan *c;
	snprintf(curl, sizeof curl, "%s?connect_timeout_ms=0", url);
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), -ENOENT);
	snprintf(curl, sizeof curl, "%s?connect_timeout_ms=50", url);
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), -ETIMEDOUT);
}

Test(mq, client_waits_for_late_server, .timeout = 10)
{
	char url[96], curl[160];
	mkurl(url, sizeof url, "late");
	snprintf(curl, sizeof curl, "%s?connect_timeout_ms=5000", url);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c;
		char buf[16];
		if (ipc_open(&c, curl, IPC_CLIENT, &small) != 0)
			_exit(1);
		ssize_t n = ipc_recv(c, buf, sizeof buf, 5000);
		int ok = n == 5 && memcmp(buf, "hello", 5) == 0 && ipc_send(c, "ok", 2, 5000) == 0;
		ipc_close(c);
		_exit(ok ? 0 : 2);
	}
	usleep(100 * 1000);
	ipc_chan *s;
	char buf[16];
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_send(s, "hello", 5, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), -EPIPE);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ipc_close(s);
	cr_assert(!any_queue(url));
}

Test(mq, server_waits_for_client_within_timeout, .timeout = 10)
{
	char url[96];
	mkurl(url, sizeof url, "wait");
	ipc_chan *s;
	char buf[16];
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_send(s, "x", 1, 0), -EAGAIN);
	cr_assert_eq(ipc_send(s, "x", 1, 50), -ETIMEDOUT);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EAGAIN);
	ipc_close(s);
	cr_assert(!any_queue(url));
}

/* The server learns the client's max_msg from its hello and refuses a
 * larger message with -EMSGSIZE (the client could never receive it). */
Test(mq, server_respects_client_max_msg, .timeout = 10)
{
	char url[96], buf[1000] = { 0 };
	ipc_chan *s, *c;
	ipc_opts so = { .max_msg = 1000, .capacity = 2 }, co = { .max_msg = 100, .capacity = 2 };

	mkurl(url, sizeof url, "peermax");
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &so), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &co), 0);
	cr_assert_eq(ipc_send(c, "hi", 2, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 1000), 2);
	cr_assert_eq(ipc_send(s, buf, 1000, 1000), -EMSGSIZE);
	cr_assert_eq(ipc_send(s, buf, 100, 1000), 0);
	cr_assert_eq(ipc_recv(c, buf, 100, 1000), 100);
	ipc_close(c);
	ipc_close(s);
}

/* A client that sends and exits before the server's first call: its
 * messages are delivered, then -EPIPE (they used to be dropped). */
Test(mq, client_gone_before_attach_drained, .timeout = 20)
{
	char url[96], buf[64];
	ipc_chan *s;

	mkurl(url, sizeof url, "gone");
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c;
		int ok = ipc_open(&c, url, IPC_CLIENT, &small) == 0;
		for (int i = 0; ok && i < 3; i++)
			ok = ipc_send(c, "hello", 5, 1000) == 0;
		_exit(ok ? 0 : 1); /* without ipc_close: a crash */
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 5, "message %d", i);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), -EPIPE);
	cr_assert_eq(ipc_send(s, "x", 1, 1000), -EPIPE);
	ipc_close(s);
	cr_assert(!any_queue(url), "queues left behind");
}
