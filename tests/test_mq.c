/*
 * test_mq.c - mq backend specifics: limits read from /proc and refused
 * above, name length, reclaiming the name of a killed server, nothing left
 * in the queue namespace, -EPIPE after SIGKILL while blocked and after a
 * clean close (queued messages first), the receive stash and ipc_fd; one
 * sending and one receiving thread on each end (no loss, duplicate or
 * reorder with full queues); out of descriptors (RLIMIT_NOFILE and the
 * fault hook) and out of memory at every point of open and attach; a lock
 * name squatted by another user; fork-and-close; the peer's max_msg on the
 * first send.
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
#include <pthread.h>
#include <pwd.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "util.h"

/* the fault hooks of the test build (lib/fault.h) */
#define IPC_FAULT_INJECTION 1
#include "fault.h"

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

/* ------------------------------------------------ one sender, one receiver */

#define SOAK_N 20000
#define SOAK_BIG 256 /* = the queues' message size (max_msg) */

/* The length of message seq: 4..200 bytes (the sequence number first). */
static size_t soak_len(uint32_t seq)
{
	return 4 + (size_t)(seq * 37u) % 197;
}

struct soak {
	ipc_chan *c;
	uint32_t out, in;  /* seeds of the two directions */
	size_t cap;        /* receive buffer: < SOAK_BIG uses the stash */
	char err[160];     /* the first failure seen by either thread */
};

static void *soak_send(void *arg)
{
	struct soak *k = arg;
	unsigned char buf[SOAK_BIG];
	for (uint32_t i = 0; i < SOAK_N; i++) {
		size_t len = soak_len(i);
		memcpy(buf, &i, 4);
		tu_fill(buf + 4, len - 4, i * 2 + k->out);
		/* never-block first, as an event loop would: each -EAGAIN is a
		 * full queue, where the sender looks for the peer's marker */
		int r = ipc_send(k->c, buf, len, 0);
		if (r == -EAGAIN)
			r = ipc_send(k->c, buf, len, 30000);
		if (r != 0) {
			snprintf(k->err, sizeof k->err, "send %u: %s", i, tu_err(r));
			return NULL;
		}
	}
	return NULL;
}

static void *soak_recv(void *arg)
{
	struct soak *k = arg;
	unsigned char buf[SOAK_BIG];
	for (uint32_t want = 0; want < SOAK_N; want++) {
		ssize_t n = ipc_recv(k->c, buf, k->cap, 30000);
		if (n == -EMSGSIZE && k->cap < SOAK_BIG)
			n = ipc_recv(k->c, buf, sizeof buf, 30000); /* the kept one */
		uint32_t seq = 0;
		if (n >= 4)
			memcpy(&seq, buf, 4);
		if (n < 4 || seq != want || (size_t)n != soak_len(seq) ||
		    tu_check(buf + 4, (size_t)n - 4, seq * 2 + k->in) >= 0) {
			snprintf(k->err, sizeof k->err, "recv: got %zd bytes, seq %u, expected seq %u%s",
				 n, seq, want, n < 0 ? tu_err(n) : "");
			return NULL;
		}
	}
	return NULL;
}

/* a and b each get a sending and a receiving thread; 20000 messages each
 * way through queues two deep, so both queues are full most of the time
 * and each sender keeps finding its queue full while its receiver reads. */
static void soak(ipc_chan *a, ipc_chan *b, size_t cap)
{
	struct soak k[4] = {
		{ .c = a, .out = 0, .in = 1, .cap = cap }, { .c = a, .out = 0, .in = 1, .cap = cap },
		{ .c = b, .out = 1, .in = 0, .cap = cap }, { .c = b, .out = 1, .in = 0, .cap = cap },
	};
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, i % 2 ? soak_recv : soak_send, &k[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		cr_assert_str_empty(k[i].err, "%s %s: %s", i < 2 ? "a" : "b",
				    i % 2 ? "receiver" : "sender", k[i].err);
	char buf[SOAK_BIG];
	cr_assert_eq(ipc_recv(a, buf, sizeof buf, 0), -EAGAIN); /* no duplicate left */
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 0), -EAGAIN);
}

static void soak_named(const char *tag, size_t cap)
{
	char url[96];
	mkurl(url, sizeof url, tag);
	ipc_opts o = { .max_msg = SOAK_BIG, .capacity = 2 };
	ipc_chan *s, *c;
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &o), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &o), 0);
	soak(s, c, cap);
	ipc_close(c);
	ipc_close(s);
	cr_assert(!any_queue(url));
}

Test(mq, threads_full_queues_small_buffer, .timeout = 120)
{
	soak_named("soaks", 64);
}

Test(mq, threads_full_queues_large_buffer, .timeout = 120)
{
	soak_named("soakl", SOAK_BIG);
}

Test(mq, threads_full_queues_pair, .timeout = 120)
{
	ipc_opts o = { .max_msg = SOAK_BIG, .capacity = 2 };
	ipc_chan *a, *b;
	cr_assert_eq(ipc_pair("mq", &a, &b, &o), 0);
	soak(a, b, 64);
	ipc_close(a);
	ipc_close(b);
}

/* ------------------------------------------------- out of descriptors */

/* Descriptors open in this process. */
static int fd_count(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Fill the descriptor table (soft limit lowered to 256 first) and keep
 * `spare` slots free; fills[] gets what to close. Returns their number. */
static int fill_fds(int *fills, int spare)
{
	struct rlimit rl = { 256, 256 };
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		_exit(90);
	int n = 0, fd;
	while ((fd = dup(0)) >= 0)
		fills[n++] = fd;
	for (int i = 0; i < spare && n > 0; i++)
		close(fills[--n]);
	return n;
}

static void unfill_fds(int *fills, int n)
{
	for (int i = 0; i < n; i++)
		close(fills[i]);
}

/* In a forked child (the limit stays there): every /proc read, a server's
 * pidfd at attach and a client's pidfd at open fail with -EMFILE; none
 * looks like a missing backend or a dead peer, and nothing is lost. */
Test(mq, emfile_rlimit, .timeout = 30)
{
	char url[96], url2[96];
	mkurl(url, sizeof url, "emf");
	mkurl(url2, sizeof url2, "emf2");
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		static int fills[300];
		ipc_chan *s, *c, *s2, *a, *b;
		ipc_info info;
		char buf[16];
		alarm(20);
		C_EQ(ipc_open(&s, url, IPC_SERVER, &small), 0);
		C_EQ(ipc_open(&c, url, IPC_CLIENT, &small), 0);
		C_EQ(ipc_open(&s2, url2, IPC_SERVER, &small), 0);

		int n = fill_fds(fills, 0);
		C_EQ(ipc_open(&a, url, IPC_SERVER, &small), -EMFILE); /* reading the limit */
		C_EQ(ipc_backend_info("mq", &info), -EMFILE);
		C_EQ(ipc_pair("mq", &a, &b, &small), -EMFILE);
		/* the server's attach: the client's hello is taken, its pidfd
		 * cannot be made: an error, not a dead peer, and ipc_fd-less
		 * callers can simply call again */
		C_EQ(ipc_recv(s, buf, sizeof buf, 0), -EMFILE);
		C_EQ(ipc_send(s, "x", 1, 0), -EMFILE);
		unfill_fds(fills, n);
		C_EQ(ipc_send(c, "hi", 2, 5000), 0);
		C_EQ(ipc_recv(s, buf, sizeof buf, 5000), 2);
		C_EQ(ipc_send(s, "yo", 2, 5000), 0);
		C_EQ(ipc_recv(c, buf, sizeof buf, 5000), 2);

		/* a client with room for its two queues but not the pidfd */
		n = fill_fds(fills, 2);
		C_EQ(ipc_open(&a, url2, IPC_CLIENT, &small), -EMFILE);
		unfill_fds(fills, n);
		/* the server's hello was put back: a client attaches */
		C_EQ(ipc_open(&a, url2, IPC_CLIENT, &small), 0);
		C_EQ(ipc_send(a, "ok", 2, 5000), 0);
		C_EQ(ipc_recv(s2, buf, sizeof buf, 5000), 2);
		ipc_close(a);
		ipc_close(s2);
		ipc_close(c);
		ipc_close(s);
		_exit(0);
	}
	char st[64];
	int status = tu_wait_child(pid, 25000);
	cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: %s",
		  tu_status_str(status, st, sizeof st));
	cr_assert(!any_queue(url) && !any_queue(url2));
}

/* Fail the nth descriptor request from now on (once). */
static void fd_fault(long nth)
{
	ipc__fault_arm(IPC_FAULT_FD, nth, false);
}

static void no_faults(void)
{
	ipc__fault_arm(IPC_FAULT_FD, -1, false);
	ipc__fault_arm(IPC_FAULT_MEM, -1, false);
}

/* What each_fault runs: a server's open of url, or a pair. */
struct opened {
	const char *url;
	ipc_chan *a, *b;
};

static int open_server(struct opened *o)
{
	return ipc_open(&o->a, o->url, IPC_SERVER, &small);
}

static int open_pair(struct opened *o)
{
	return ipc_pair("mq", &o->a, &o->b, &small);
}

/* Make the 0th, 1st, ... request of kind fail in op until op needs no
 * more: every failure is exactly -EMFILE or -ENOMEM, leaks no descriptor
 * and leaves no queue of url. Returns how many requests op makes. */
static long each_fault(enum ipc_fault_kind kind, int (*op)(struct opened *), struct opened *o,
		       const char *what)
{
	int want = kind == IPC_FAULT_FD ? -EMFILE : -ENOMEM, base = fd_count();
	for (long nth = 0;; nth++) {
		ipc__fault_arm(kind, nth, false);
		o->a = o->b = NULL;
		int r = op(o);
		long failed = ipc__fault_failed(kind);
		no_faults();
		if (!failed) {
			cr_assert_eq(r, 0, "%s: %s", what, tu_err(r));
			ipc_close(o->a);
			ipc_close(o->b);
			return nth;
		}
		cr_assert_eq(r, want, "%s, request %ld: %s", what, nth, tu_err(r));
		cr_assert_eq(fd_count(), base, "%s, request %ld: descriptor leaked", what, nth);
		cr_assert(!o->url || !any_queue(o->url), "%s, request %ld: queue left", what, nth);
	}
}

/* Every descriptor the library creates for a server's open, a client's
 * open (the server's hello is kept), the server's attach, ipc_fd and a
 * pair fails in turn: exact -EMFILE, nothing leaked or left behind, and
 * the same calls then work. */
Test(mq, emfile_each_point, .timeout = 60)
{
	char url[96], buf[16];
	ipc_chan *s, *c;
	int base = fd_count();
	long nth;
	mkurl(url, sizeof url, "emfp");
	struct opened o = { .url = url };
	nth = each_fault(IPC_FAULT_FD, open_server, &o, "server");
	cr_assert(nth >= 4, "only %ld descriptors in a server's open?", nth);

	for (nth = 0;; nth++) {
		cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
		int before = fd_count();
		fd_fault(nth);
		int r = ipc_open(&c, url, IPC_CLIENT, &small);
		long failed = ipc__fault_failed(IPC_FAULT_FD);
		no_faults();
		if (failed) {
			cr_assert_eq(r, -EMFILE, "client, descriptor %ld: %s", nth, tu_err(r));
			cr_assert_eq(fd_count(), before, "client, descriptor %ld: leak", nth);
			cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0, "client after %ld", nth);
		} else {
			cr_assert_eq(r, 0);
		}
		cr_assert_eq(ipc_send(c, "hi", 2, 5000), 0);
		cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
		ipc_close(c);
		ipc_close(s);
		cr_assert(!any_queue(url));
		if (!failed)
			break;
	}

	/* the server's attach (its pidfd) and ipc_fd */
	for (nth = 0;; nth++) {
		cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
		cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
		cr_assert_eq(ipc_send(c, "hi", 2, 5000), 0);
		fd_fault(nth);
		int fd = ipc_fd(s);
		ssize_t r = fd < 0 ? fd : ipc_recv(s, buf, sizeof buf, 0);
		long failed = ipc__fault_failed(IPC_FAULT_FD);
		no_faults();
		if (failed) {
			cr_assert_eq(r, -EMFILE, "attach, descriptor %ld: %s", nth, tu_err(r));
			if (fd >= 0) { /* the attach is pending: ipc_fd says call again */
				struct pollfd p = { .fd = fd, .events = POLLIN };
				cr_assert_eq(poll(&p, 1, 0), 1);
			}
			cr_assert(ipc_fd(s) >= 0);
			r = ipc_recv(s, buf, sizeof buf, 5000);
		}
		cr_assert_eq(r, 2, "attach after descriptor %ld: %s", nth, tu_err(r));
		cr_assert_eq(ipc_send(s, "yo", 2, 5000), 0);
		cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 2);
		ipc_close(c);
		ipc_close(s);
		if (!failed)
			break;
	}
	cr_assert(!any_queue(url));

	o.url = NULL;
	each_fault(IPC_FAULT_FD, open_pair, &o, "pair");
	cr_assert_eq(fd_count(), base);
}

/* ----------------------------------------------------- out of memory */

/* Every allocation of a server's open, a client's open, the attach and a
 * pair fails in turn: exact -ENOMEM, nothing leaked (the suite's leak
 * check, descriptors counted), nothing left in the queue namespace. */
Test(mq, enomem_each_point, .timeout = 60)
{
	char url[96], buf[16];
	ipc_chan *s, *c;
	int base = fd_count();
	long nth;
	mkurl(url, sizeof url, "nomem");
	struct opened o = { .url = url };
	nth = each_fault(IPC_FAULT_MEM, open_server, &o, "server");
	cr_assert(nth >= 3, "only %ld allocations in a server's open?", nth);
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);

	/* s stays open: every client attempt finds the server's hello */
	for (nth = 0;; nth++) {
		ipc__fault_arm(IPC_FAULT_MEM, nth, false);
		int r = ipc_open(&c, url, IPC_CLIENT, &small);
		long failed = ipc__fault_failed(IPC_FAULT_MEM);
		no_faults();
		if (!failed) {
			cr_assert_eq(r, 0);
			break;
		}
		cr_assert_eq(r, -ENOMEM, "client, allocation %ld: %s", nth, tu_err(r));
	}
	cr_assert(nth >= 3, "only %ld allocations in a client's open?", nth);

	/* The attach allocates nothing: the first call just works. */
	ipc__fault_arm(IPC_FAULT_MEM, 0, true);
	cr_assert_eq(ipc_send(c, "hi", 2, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
	cr_assert_eq(ipc_send(s, "yo", 2, 5000), 0);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 2);
	no_faults();
	cr_assert(!any_queue(url));
	ipc_close(c);
	ipc_close(s);

	o.url = NULL;
	each_fault(IPC_FAULT_MEM, open_pair, &o, "pair");
	cr_assert_eq(fd_count(), base);
	cr_assert(!any_queue(url));
}

/* ------------------------------------------- a lock name squatted by nobody */

/* A process running as nobody that binds the abstract name lock of url
 * ("ipckit-mq:/<name>") and holds it until killed. */
static pid_t squat_lock(const char *url)
{
	struct passwd *pw = getpwnam("nobody");
	cr_assert(pw, "no user nobody");
	uid_t uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		alarm(60);
		if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(3);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "ipckit-mq:%s",
				 url + strlen("mq://"));
		int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
		if (fd < 0 ||
		    bind(fd, (struct sockaddr *)&sa,
			 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0)
			_exit(4);
		if (write(p[1], "y", 1) != 1)
			_exit(5);
		for (;;)
			pause();
	}
	close(p[1]);
	char ok = 0;
	cr_assert_eq(read(p[0], &ok, 1), 1, "the squatter could not bind");
	close(p[0]);
	return pid;
}

static void kill_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
}

/* The server's liveness is its flock, not the name lock: with the lock
 * held by another user a server still opens, clients attach, a second
 * server is refused, two racing servers never both win, and a dead
 * server's pair is still reclaimed (and removed by its client's close). */
Test(mq, lock_squatted_by_other_user, .timeout = 60)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to run a helper as nobody");
	char url[96], curl[128], buf[16];
	mkurl(url, sizeof url, "squat");
	snprintf(curl, sizeof curl, "%s?connect_timeout_ms=0", url);
	pid_t squatter = squat_lock(url);
	ipc_chan *s, *s2, *c, *ch[2];
	int res[2];

	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&s2, url, IPC_SERVER, &small), -EADDRINUSE);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	cr_assert_eq(ipc_send(c, "ping", 4, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 4);
	cr_assert_eq(ipc_send(s, "pong", 4, 5000), 0);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 4);
	cr_assert(!any_queue(url));
	ipc_close(c);
	ipc_close(s);

	for (int i = 0; i < 20; i++) {
		tu_open_race(url, res, ch);
		cr_assert((res[0] == 0) != (res[1] == 0), "race %d: %d %d", i, res[0], res[1]);
		cr_assert(res[0] == 0 || res[0] == -EADDRINUSE, "race %d: %s", i, tu_err(res[0]));
		cr_assert(res[1] == 0 || res[1] == -EADDRINUSE, "race %d: %s", i, tu_err(res[1]));
		ipc_close(res[0] == 0 ? ch[0] : ch[1]);
		cr_assert(!any_queue(url));
	}

	/* a dead server: reclaimed at once, and raced for by two */
	pid_t pid = fork_server(url);
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), -EADDRINUSE);
	kill_reap(pid);
	cr_assert(any_queue(url));
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), -ECONNREFUSED);
	tu_open_race(url, res, ch);
	cr_assert((res[0] == 0) != (res[1] == 0), "reclaim race: %d %d", res[0], res[1]);
	s = res[0] == 0 ? ch[0] : ch[1];
	cr_assert_eq(ipc_open(&c, curl, IPC_CLIENT, &small), 0);
	cr_assert_eq(ipc_send(c, "hi", 2, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 2);
	ipc_close(c);
	ipc_close(s);
	cr_assert(!any_queue(url));

	/* a server killed after its client attached: the client removes it */
	pid = fork_server(url);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	kill_reap(pid);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), -EPIPE);
	ipc_close(c);
	cr_assert(!any_queue(url));
	kill_reap(squatter);
}

/* ------------------------------------------------------------ fork */

/* A forked child's close of its copies sends no marker and removes no
 * name: the parent's channels go on, attached or not. */
Test(mq, fork_child_close_is_silent, .timeout = 30)
{
	char url[96], url2[96], buf[16];
	mkurl(url, sizeof url, "forka");
	mkurl(url2, sizeof url2, "forku");
	ipc_chan *s, *c, *w, *w2, *c2;
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &small), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &small), 0);
	cr_assert_eq(ipc_send(s, "a", 1, 5000), 0); /* attached */
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 1);
	cr_assert_eq(ipc_open(&w, url2, IPC_SERVER, &small), 0); /* not attached */
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(c);
		ipc_close(s);
		ipc_close(w);
		_exit(0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* no end-of-stream marker arrived either way */
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EAGAIN);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 0), -EAGAIN);
	cr_assert_eq(ipc_send(c, "b", 1, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 1);
	/* the waiting server still owns its names and its flock */
	cr_assert(queue_exists(url2, ".s2c") && queue_exists(url2, ".c2s"));
	cr_assert_eq(ipc_open(&w2, url2, IPC_SERVER, &small), -EADDRINUSE);
	cr_assert_eq(ipc_open(&c2, url2, IPC_CLIENT, &small), 0);
	cr_assert_eq(ipc_send(c2, "c", 1, 5000), 0);
	cr_assert_eq(ipc_recv(w, buf, sizeof buf, 5000), 1);
	ipc_close(c2);
	ipc_close(w);
	ipc_close(c);
	ipc_close(s);
	cr_assert(!any_queue(url) && !any_queue(url2));
}

/* ------------------------------------------------- the peer's max_msg */

/* Both ends know the other's max_msg before their first send: the
 * server's first call (a send) learns it at attach, the client at open. */
Test(mq, first_send_honours_peer_max, .timeout = 10)
{
	char url[96], buf[1000] = { 0 };
	ipc_chan *s, *c;
	ipc_info info;
	ipc_opts so = { .max_msg = 1000, .capacity = 2 }, co = { .max_msg = 100, .capacity = 2 };

	mkurl(url, sizeof url, "first");
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &so), 0);
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert_eq(info.max_msg, 1000); /* the client is not known yet */
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &co), 0);
	cr_assert_eq(ipc_info_get(c, &info), 0);
	cr_assert_eq(info.max_msg, 100);
	cr_assert_eq(ipc_send(s, buf, 101, 5000), -EMSGSIZE);
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert_eq(info.max_msg, 100);
	cr_assert_eq(ipc_send(s, buf, 100, 5000), 0);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 100);
	ipc_close(c);
	ipc_close(s);

	/* the other way: a client's first send above the server's limit */
	so.max_msg = 100;
	co.max_msg = 1000;
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, &so), 0);
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, &co), 0);
	cr_assert_eq(ipc_info_get(c, &info), 0);
	cr_assert_eq(info.max_msg, 100);
	cr_assert_eq(ipc_send(c, buf, 101, 5000), -EMSGSIZE);
	cr_assert_eq(ipc_send(c, buf, 100, 5000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 100);
	ipc_close(c);
	ipc_close(s);
	cr_assert(!any_queue(url));
}
