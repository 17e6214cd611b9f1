/*
 * test_shm.c - behaviour specific to the shm backend: rendezvous, wake-ups
 * under stress, corrupt rings, peer death in every wait mode, leaks,
 * zero-copy lifetimes, listeners. The conformance suite covers the common
 * contract. Every address carries the pid (Criterion runs tests in
 * parallel processes).
 */
#include <criterion/criterion.h>

#include "ipckit.h"
#include "backends/shm/ring.h"
/* the fault hooks of the internal test library (lib/fault.h) */
#define IPC_FAULT_INJECTION 1
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "util.h"

static const char *wait_names[] = { "adaptive", "block", "spin" };

static char *url_of(char *buf, size_t n, const char *tag, bool abstract, const char *query)
{
	snprintf(buf, n, "shm://%sipck-shm-%d-%s%s%s", abstract ? "@" : "/tmp/", (int)getpid(),
		 tag, query ? "?" : "", query ? query : "");
	return buf;
}

static ipc_opts opts_wait(int wait, size_t capacity)
{
	ipc_opts o = { 0 };
	o.wait = wait;
	o.capacity = capacity;
	return o;
}

static void pair(ipc_chan **a, ipc_chan **b, int wait, size_t capacity)
{
	ipc_opts o = opts_wait(wait, capacity);
	cr_assert_eq(ipc_pair("shm", a, b, &o), 0);
}

/* The header page of the one shm mapping of this process (both ends of a
 * pair map the same memfd, so any of its mappings will do). */
static unsigned char *shm_page(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	cr_assert(f);
	char line[512];
	unsigned char *found = NULL;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long lo, off;
		if (strstr(line, "memfd:ipckit-shm") &&
		    sscanf(line, "%lx-%*x %*s %lx", &lo, &off) == 2 && off == 0)
			found = (unsigned char *)lo;
	}
	fclose(f);
	cr_assert(found, "no ipckit-shm mapping");
	return found;
}

static int count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	cr_assert(f);
	int n = 0, ch;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static int count_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 4096; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 9));
}

/*
 * One thread moves a message larger than the ring: send with timeout 0
 * (what does not fit is finished by the tail's writer thread as space
 * frees), then alternate a receive without waiting and an empty send,
 * which gets -EAGAIN while the rest of the message is pending and goes
 * out once it is gone. Returns the receive's result; *extra counts the
 * empty messages that went out. (The writer thread needs the CPU too:
 * yield; the time bound only guards against a hang.)
 */
static ssize_t pump(ipc_chan *a, ipc_chan *b, void *r, size_t cap, int *extra)
{
	for (int64_t end = tu_now_ms() + 120000; tu_now_ms() < end;) {
		ssize_t n = ipc_recv(b, r, cap, 0);
		if (n != -EAGAIN)
			return n;
		int s = ipc_send(a, "", 0, 0);
		cr_assert(s == 0 || s == -EAGAIN, "send %d", s);
		*extra += s == 0;
		sched_yield();
	}
	cr_assert_fail("no progress");
	return -1;
}

static void drain_empty(ipc_chan *b, int extra)
{
	char c;
	for (int i = 0; i < extra; i++)
		cr_assert_eq(ipc_recv(b, &c, 1, 1000), 0);
}

/* ---- basics through ipc_pair ---- */

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(shm, .fini = tu_leak_check);

Test(shm, pair_sizes_and_boundaries)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_ADAPTIVE, 1 << 20);
	static const size_t sizes[] = { 0, 1, 100, 4000, 65000, 1 << 20, 3 << 20 };
	unsigned char *m = malloc(3 << 20), *r = malloc(3 << 20);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		fill(m, sizes[i], (unsigned)i);
		int extra = 0;
		cr_assert_eq(ipc_send(a, m, sizes[i], 0), 0);
		cr_assert_eq(pump(a, b, r, 3 << 20, &extra), (ssize_t)sizes[i]);
		drain_empty(b, extra);
		cr_assert_eq(memcmp(m, r, sizes[i]), 0, "size %zu", sizes[i]);
	}
	/* back-to-back small messages keep their boundaries, both ways */
	for (int k = 0; k < 100; k++)
		cr_assert_eq(ipc_send(b, m, (size_t)k, 0), 0);
	for (int k = 0; k < 100; k++)
		cr_assert_eq(ipc_recv(a, r, 1000, 0), k);
	cr_assert_eq(ipc_recv(a, r, 1000, 0), -EAGAIN);
	ipc_info info;
	cr_assert_eq(ipc_info_get(a, &info), 0);
	cr_assert_str_eq(info.backend, "shm");
	cr_assert(info.caps & IPC_CAP_ZERO_COPY);
	ipc_close(a);
	ipc_close(b);
	free(m);
	free(r);
}

Test(shm, emsgsize_keeps_message)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 64 << 10);
	unsigned char m[3000], r[3000];
	fill(m, sizeof(m), 3);
	cr_assert_eq(ipc_send(a, m, sizeof(m), 0), 0);
	cr_assert_eq(ipc_recv(b, r, 100, 0), -EMSGSIZE);
	cr_assert_eq(ipc_recv(b, r, sizeof(r), 0), (ssize_t)sizeof(m));
	cr_assert_eq(memcmp(m, r, sizeof(m)), 0);
	/* a fragmented one too (larger than half the ring) */
	size_t big = 200 << 10;
	unsigned char *bm = malloc(big), *br = malloc(big);
	fill(bm, big, 4);
	cr_assert_eq(ipc_send(a, bm, big, 0), 0);
	cr_assert_eq(ipc_recv(b, br, big - 1, 0), -EMSGSIZE);
	int extra = 0;
	cr_assert_eq(pump(a, b, br, big - 1, &extra), -EMSGSIZE);
	cr_assert_eq(pump(a, b, br, big, &extra), (ssize_t)big);
	drain_empty(b, extra);
	cr_assert_eq(memcmp(bm, br, big), 0);
	/* too large for max_msg: refused by the sender */
	ipc_close(a);
	ipc_close(b);
	ipc_opts o = { .max_msg = 1000 };
	cr_assert_eq(ipc_pair("shm", &a, &b, &o), 0);
	cr_assert_eq(ipc_send(a, m, 1001, 0), -EMSGSIZE);
	ipc_close(a);
	ipc_close(b);
	free(bm);
	free(br);
}

Test(shm, timeouts_in_every_mode)
{
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 4096);
		char buf[16];
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), -EAGAIN, "%s", wait_names[w]);
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 30), -ETIMEDOUT, "%s", wait_names[w]);
		const void *p;
		cr_assert_eq(ipc_recv_peek(b, &p, 20), -ETIMEDOUT);
		/* fill the 4 KiB ring, then the sender times out */
		int k = 0;
		while (ipc_send(a, buf, sizeof(buf), 0) == 0)
			k++;
		cr_assert_eq(k, 4096 / 24);
		cr_assert_eq(ipc_send(a, buf, sizeof(buf), 30), -ETIMEDOUT, "%s", wait_names[w]);
		void *wb;
		cr_assert_eq(ipc_send_reserve(a, 16, &wb, 0), -EAGAIN);
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), 16);
		cr_assert_eq(ipc_send(a, buf, sizeof(buf), 30), 0);
		ipc_close(a);
		ipc_close(b);
	}
}

/* Cut in the middle of fragmented messages, in both directions of the
 * cut: the sender's tail pends, the receiver keeps what it has. */
Test(shm, fragments_survive_timeouts)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_SPIN, 64 << 10);
	size_t big = 1 << 20;
	unsigned char *m = malloc(big), *r = malloc(big);
	for (int round = 0; round < 4; round++) {
		fill(m, big, (unsigned)round);
		cr_assert_eq(ipc_send(a, m, big, 0), 0);
		int extra = 0;
		if (round & 1) {
			/* a small buffer half way: the message is kept whole */
			cr_assert_eq(ipc_recv(b, r, big, 0), -EAGAIN);
			cr_assert_eq(pump(a, b, r, big - 1, &extra), -EMSGSIZE);
		}
		cr_assert_eq(pump(a, b, r, big, &extra), (ssize_t)big);
		cr_assert_eq(memcmp(m, r, big), 0, "round %d", round);
		drain_empty(b, extra);
		cr_assert_eq(ipc_recv(b, r, big, 0), -EAGAIN);
	}
	ipc_close(a);
	ipc_close(b);
	free(m);
	free(r);
}

Test(shm, sendv_batch)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_ADAPTIVE, 4096);
	char data[300][8];
	ipc_msg v[300];
	for (int i = 0; i < 300; i++) {
		memcpy(data[i], &i, sizeof(i));
		v[i].data = data[i];
		v[i].len = 1 + (size_t)(i % 8);
	}
	/* 300 records of 16 bytes do not fit 4 KiB: part goes, count says how many */
	int n = ipc_sendv(a, v, 300, 0);
	cr_assert_eq(n, 256);
	for (int i = 0; i < n; i++) {
		char r[8];
		cr_assert_eq(ipc_recv(b, r, sizeof(r), 0), 1 + i % 8);
		cr_assert_eq(memcmp(r, data[i], 1 + (size_t)(i % 8)), 0);
	}
	ipc_close(a);
	ipc_close(b);
}

/* ---- rendezvous across processes ---- */

static void child_echo(const char *u, int count)
{
	ipc_chan *c;
	if (ipc_open(&c, u, IPC_CLIENT, NULL) != 0)
		_exit(2);
	char buf[256];
	for (int i = 0; i < count; i++) {
		ssize_t n = ipc_recv(c, buf, sizeof(buf), 5000);
		if (n < 0 || ipc_send(c, buf, (size_t)n, 5000) != 0)
			_exit(3);
	}
	ipc_close(c);
	_exit(0);
}

static void server_echo_round(bool abstract)
{
	char u[256];
	url_of(u, sizeof(u), abstract ? "rv-abs" : "rv-path", abstract, NULL);
	ipc_chan *s;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	ipc_chan *s2;
	cr_assert_eq(ipc_open(&s2, u, IPC_SERVER, NULL), -EADDRINUSE);
	pid_t pid = fork();
	if (pid == 0)
		child_echo(u, 50);
	char buf[256];
	for (int i = 0; i < 50; i++) {
		snprintf(buf, sizeof(buf), "hello %d", i);
		cr_assert_eq(ipc_send(s, buf, strlen(buf), 5000), 0);
		char r[256];
		cr_assert_eq(ipc_recv(s, r, sizeof(r), 5000), (ssize_t)strlen(buf));
		cr_assert_eq(memcmp(r, buf, strlen(buf)), 0);
	}
	/* attached: the name is released */
	if (!abstract) {
		struct stat st;
		cr_assert_eq(stat(u + 6, &st), -1);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	/* (after the child exits: it inherited the listening socket, which
	 * holds an abstract name until every copy is closed) */
	cr_assert_eq(ipc_open(&s2, u, IPC_SERVER, NULL), 0);
	ipc_close(s2);
	char r[16];
	cr_assert_eq(ipc_recv(s, r, sizeof(r), 1000), -EPIPE);
	cr_assert_eq(ipc_send(s, "x", 1, 1000), -EPIPE);
	ipc_close(s);
}

Test(shm, rendezvous_path)
{
	server_echo_round(false);
}

Test(shm, rendezvous_abstract)
{
	server_echo_round(true);
}

Test(shm, client_open_does_not_wait_for_server_op)
{
	char u[256];
	url_of(u, sizeof(u), "lazy", false, "connect_timeout_ms=0");
	ipc_chan *c;
	cr_assert_eq(ipc_open(&c, u, IPC_CLIENT, NULL), -ENOENT);
	ipc_chan *s;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	/* same thread: the client's open returns although the server has not
	 * accepted, and its first op without waiting says so */
	cr_assert_eq(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
	char buf[8];
	cr_assert_eq(ipc_recv(c, buf, sizeof(buf), 0), -EAGAIN);
	cr_assert_eq(ipc_send(s, "ab", 2, 1000), 0);
	cr_assert_eq(ipc_recv(c, buf, sizeof(buf), 1000), 2);
	ipc_close(c);
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 1000), -EPIPE);
	ipc_close(s);
}

Test(shm, garbage_client_dropped)
{
	char u[256];
	url_of(u, sizeof(u), "garbage", false, NULL);
	ipc_chan *s, *c;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	/* a raw socket that sends junk instead of a hello */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", u + 6);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char junk[64];
	memset(junk, 0xA5, sizeof(junk));
	cr_assert_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	char buf[8];
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 50), -ETIMEDOUT);
	/* it was dropped; the endpoint still waits for a real client */
	cr_assert_leq(read(fd, buf, sizeof(buf)), 0, "closed (EOF or reset)");
	close(fd);
	cr_assert_eq(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 0), -EAGAIN); /* attaches */
	cr_assert_eq(ipc_send(c, "ok", 2, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 1000), 2);
	ipc_close(c);
	ipc_close(s);
}

/* A client that connects and never says hello is dropped after a second,
 * so a real client behind it gets through (the server used to wait on the
 * silent one forever). */
Test(shm, silent_client_dropped, .timeout = 60)
{
	char u[256], buf[8];
	url_of(u, sizeof(u), "silent", false, NULL);
	ipc_chan *s;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", u + 6);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 0), -EAGAIN); /* takes the silent one */
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c;
		_exit(ipc_open(&c, u, IPC_CLIENT, NULL) == 0 && ipc_send(c, "ok", 2, -1) == 0 &&
		      ipc_recv(c, buf, sizeof(buf), -1) == 1 ? 0 : 1);
	}
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), -1), 2);
	cr_assert_eq(ipc_send(s, "!", 1, -1), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client status %d", st);
	cr_assert_leq(read(fd, buf, sizeof(buf)), 0, "the silent client was closed");
	close(fd);
	ipc_close(s);
}

Test(shm, peer_max_msg_respected)
{
	char us[256], uc[256];
	url_of(us, sizeof(us), "maxmsg", false, "max_msg=64K");
	url_of(uc, sizeof(uc), "maxmsg", false, "max_msg=1000");
	ipc_chan *s, *c;
	cr_assert_eq(ipc_open(&s, us, IPC_SERVER, NULL), 0);
	cr_assert_eq(ipc_open(&c, uc, IPC_CLIENT, NULL), 0);
	static char m[2000];
	cr_assert_eq(ipc_recv(s, m, sizeof(m), 0), -EAGAIN); /* attaches */
	cr_assert_eq(ipc_send(s, m, 1000, 1000), 0);
	cr_assert_eq(ipc_send(s, m, 1001, 1000), -EMSGSIZE, "the client takes at most 1000");
	cr_assert_eq(ipc_send(c, m, 1001, 1000), -EMSGSIZE);
	cr_assert_eq(ipc_recv(c, m, sizeof(m), 1000), 1000);
	ipc_close(c);
	ipc_close(s);
}

static void *recv_forever(void *arg)
{
	static char buf[8];
	return (void *)(intptr_t)ipc_recv(arg, buf, sizeof(buf), -1);
}

/* One thread waits forever for the client to attach; another thread's
 * call on the same channel keeps its own timeout meanwhile. */
Test(shm, attach_respects_each_threads_timeout)
{
	char u[256];
	url_of(u, sizeof(u), "attach2", false, NULL);
	ipc_chan *s, *c;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	pthread_t t;
	pthread_create(&t, NULL, recv_forever, s);
	struct timespec ts = { 0, 50 * 1000000 };
	nanosleep(&ts, NULL);
	cr_assert_eq(ipc_send(s, "x", 1, 0), -EAGAIN);
	cr_assert_eq(ipc_send(s, "x", 1, 30), -ETIMEDOUT);
	cr_assert_eq(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
	cr_assert_eq(ipc_send(c, "hey", 3, 5000), 0);
	void *r;
	pthread_join(t, &r);
	cr_assert_eq((intptr_t)r, 3);
	cr_assert_eq(ipc_send(s, "x", 1, 1000), 0);
	ipc_close(c);
	ipc_close(s);
}

Test(shm, stale_server_reclaimed)
{
	char u[256];
	url_of(u, sizeof(u), "stale", false, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		ipc_chan *s;
		if (ipc_open(&s, u, IPC_SERVER, NULL) != 0)
			_exit(2);
		raise(SIGKILL);
	}
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFSIGNALED(st));
	ipc_chan *s;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	ipc_close(s);
	struct stat sb;
	cr_assert_eq(stat(u + 6, &sb), -1, "server close removes the path");
}

/* ---- ipc_fd ---- */

static int readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, ms);
}

Test(shm, fd_level_triggered)
{
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 64 << 10);
		int fd = ipc_fd(b);
		cr_assert_geq(fd, 0);
		cr_assert_eq(readable(fd, 0), 0);
		for (int i = 0; i < 3; i++)
			cr_assert_eq(ipc_send(a, "abc", 3, 0), 0);
		char buf[8];
		for (int i = 0; i < 3; i++) {
			/* stays readable while messages remain */
			cr_assert_eq(readable(fd, 1000), 1, "%s msg %d", wait_names[w], i);
			cr_assert_eq(readable(fd, 0), 1);
			cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), 3);
		}
		cr_assert_eq(readable(fd, 0), 0);
		/* a blocking receive in between does not lose the level */
		cr_assert_eq(ipc_send(a, "d", 1, 0), 0);
		cr_assert_eq(ipc_send(a, "e", 1, 0), 0);
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), -1), 1);
		cr_assert_eq(readable(fd, 0), 1);
		const void *p;
		cr_assert_eq(ipc_recv_peek(b, &p, 0), 1);
		cr_assert_eq(ipc_recv_release(b), 0);
		cr_assert_eq(readable(fd, 0), 0);
		/* EOF is readable too */
		ipc_close(a);
		cr_assert_eq(readable(fd, 1000), 1);
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), -EPIPE);
		ipc_close(b);
	}
}

Test(shm, fd_before_attach)
{
	char u[256];
	url_of(u, sizeof(u), "fdpre", false, NULL);
	ipc_chan *s, *c;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	int fd = ipc_fd(s);
	cr_assert_geq(fd, 0);
	cr_assert_eq(readable(fd, 0), 0);
	cr_assert_eq(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
	cr_assert_eq(readable(fd, 1000), 1);
	char buf[8];
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 0), -EAGAIN); /* attaches */
	cr_assert_eq(readable(fd, 0), 0);
	cr_assert_eq(ipc_send(c, "hi", 2, 1000), 0);
	cr_assert_eq(readable(fd, 1000), 1);
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 0), 2);
	ipc_close(c);
	ipc_close(s);
}

/* ---- zero-copy ---- */

static bool in_shm_mapping(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool in = false;
	while (!in && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (strstr(line, "memfd:ipckit-shm") && sscanf(line, "%lx-%lx", &lo, &hi) == 2)
			in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
	}
	fclose(f);
	return in;
}

Test(shm, zero_copy_lifetime)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_ADAPTIVE, 16 << 10);
	void *wb;
	cr_assert_eq(ipc_send_reserve(a, 1000, &wb, 0), 0);
	cr_assert(in_shm_mapping(wb), "reserve hands out ring space");
	cr_assert_eq(ipc_send(a, "x", 1, 0), -EBUSY);
	fill(wb, 600, 9);
	/* nothing is visible before commit */
	const void *p;
	cr_assert_eq(ipc_recv_peek(b, &p, 0), -EAGAIN);
	cr_assert_eq(ipc_send_commit(a, 600), 0);
	cr_assert_eq(ipc_recv_peek(b, &p, 0), 600);
	cr_assert(in_shm_mapping(p), "peek reads in place");
	unsigned char ref[600];
	fill(ref, 600, 9);
	cr_assert_eq(memcmp(p, ref, 600), 0);
	/* a peeked message stays put while the writer fills the ring */
	char buf[700];
	cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), -EBUSY);
	int k = 0;
	while (ipc_send(a, buf, 500, 0) == 0)
		k++;
	cr_assert_gt(k, 0);
	const void *p2;
	cr_assert_eq(ipc_recv_peek(b, &p2, 0), 600);
	cr_assert_eq(p2, p);
	cr_assert_eq(memcmp(p, ref, 600), 0);
	cr_assert_eq(ipc_recv_release(b), 0);
	/* the space came back */
	cr_assert_eq(ipc_send(a, buf, 500, 0), 0);
	for (int i = 0; i <= k; i++)
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), 500);
	/* a record that wraps the end of the ring is still contiguous */
	for (int round = 0; round < 40; round++) {
		cr_assert_eq(ipc_send_reserve(a, 3000, &wb, 0), 0);
		fill(wb, 3000, (unsigned)round);
		cr_assert_eq(ipc_send_commit(a, 3000), 0);
		cr_assert_eq(ipc_recv_peek(b, &p, 0), 3000);
		unsigned char r2[3000];
		fill(r2, 3000, (unsigned)round);
		cr_assert_eq(memcmp(p, r2, 3000), 0, "round %d", round);
		cr_assert_eq(ipc_recv_release(b), 0);
	}
	/* larger than the ring: still works, with a copy */
	size_t big = 100 << 10;
	/* commit sends it within the reserve's timeout */
	cr_assert_eq(ipc_send_reserve(a, big, &wb, -1), 0);
	cr_assert(!in_shm_mapping(wb));
	fill(wb, big, 77);
	unsigned char *ref2 = malloc(big);
	fill(ref2, big, 77);
	pid_t pid = fork();
	if (pid == 0) {
		ssize_t n = ipc_recv_peek(b, &p, 5000);
		_exit(n == (ssize_t)big && memcmp(p, ref2, big) == 0 ? 0 : 1);
	}
	cr_assert_eq(ipc_send_commit(a, big), 0);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(ref2);
	ipc_close(a);
	ipc_close(b);
}

/* ---- corrupt rings: -EPROTO, sticky, never out of bounds ---- */

#define CTL0(pg) ((struct ipc_ring_ctl *)(void *)((pg) + 1024))
#define DATA0(pg) ((pg) + 4096)

static void expect_eproto_after(void (*corrupt)(unsigned char *pg), bool peek)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	cr_assert_eq(ipc_send(a, "0123456789abcdef", 16, 0), 0);
	corrupt(shm_page());
	char buf[64];
	const void *p;
	ssize_t r = peek ? ipc_recv_peek(b, &p, 100) : ipc_recv(b, buf, sizeof(buf), 100);
	cr_assert_eq(r, -EPROTO);
	cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), -EPROTO, "sticky");
	cr_assert_eq(ipc_send(b, "x", 1, 0), -EPROTO, "sticky");
	/* the other end sees the channel end */
	cr_assert_eq(ipc_recv(a, buf, sizeof(buf), 1000), -EPIPE);
	ipc_close(a);
	ipc_close(b);
}

static void head_too_far(unsigned char *pg)
{
	atomic_store(&CTL0(pg)->head, 4096 + 64);
}
static void head_behind(unsigned char *pg)
{
	atomic_store(&CTL0(pg)->head, (uint64_t)-8);
}
static void head_misaligned(unsigned char *pg)
{
	atomic_store(&CTL0(pg)->head, 3);
}
static void len_huge(unsigned char *pg)
{
	uint32_t v = 0x7fffffff;
	memcpy(DATA0(pg), &v, 4);
}
static void len_past_head(unsigned char *pg)
{
	uint32_t v[2] = { 100, 100 };
	memcpy(DATA0(pg), v, 8);
}
static void total_too_big(unsigned char *pg)
{
	uint32_t v = 0xfffffff0u;
	memcpy(DATA0(pg) + 4, &v, 4);
}
static void total_below_len(unsigned char *pg)
{
	uint32_t v = 3;
	memcpy(DATA0(pg) + 4, &v, 4);
}
static void stray_continuation(unsigned char *pg)
{
	uint32_t v = IPC_REC_CONT;
	memcpy(DATA0(pg) + 4, &v, 4);
}

Test(shm, corrupt_head_too_far) { expect_eproto_after(head_too_far, false); }
Test(shm, corrupt_head_behind) { expect_eproto_after(head_behind, false); }
Test(shm, corrupt_head_misaligned) { expect_eproto_after(head_misaligned, true); }
Test(shm, corrupt_len_huge) { expect_eproto_after(len_huge, false); }
Test(shm, corrupt_len_past_head) { expect_eproto_after(len_past_head, true); }
Test(shm, corrupt_total_too_big) { expect_eproto_after(total_too_big, false); }
Test(shm, corrupt_total_below_len) { expect_eproto_after(total_below_len, false); }
Test(shm, corrupt_stray_continuation) { expect_eproto_after(stray_continuation, true); }

Test(shm, corrupt_fragment_overruns_message)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	/* a 3000-byte message in a 4 KiB ring: fragments of 1016 bytes */
	unsigned char m[3000];
	fill(m, sizeof(m), 1);
	cr_assert_eq(ipc_send(a, m, sizeof(m), 0), 0);
	unsigned char *pg = shm_page();
	/* second record: claim more than the message has left */
	uint32_t v = 2000;
	memcpy(DATA0(pg) + 1024, &v, 4);
	unsigned char r[3000];
	cr_assert_eq(ipc_recv(b, r, sizeof(r), 100), -EPROTO);
	ipc_close(a);
	ipc_close(b);
}

Test(shm, corrupt_tail_seen_by_writer)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_SPIN, 4096);
	while (ipc_send(a, "0123456789abcdef", 16, 0) == 0)
		;
	unsigned char *pg = shm_page();
	atomic_store(&CTL0(pg)->tail, 1u << 20);
	/* (a message that still fits the space known free would go) */
	cr_assert_eq(ipc_send(a, "0123456789abcdef", 16, 0), -EPROTO);
	cr_assert_eq(ipc_send(a, "x", 1, 0), -EPROTO);
	char buf[32];
	cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 0), 16, "delivered data still readable");
	ipc_close(a);
	ipc_close(b);
}

Test(shm, corrupt_random_bytes)
{
	srand((unsigned)getpid());
	for (int round = 0; round < 300; round++) {
		ipc_chan *a, *b;
		pair(&a, &b, IPC_WAIT_BLOCK, 4096);
		unsigned char m[700];
		for (int i = 0; i < 5; i++)
			ipc_send(a, m, (size_t)(rand() % 700), 0);
		unsigned char *pg = shm_page();
		/* scribble over records and, sometimes, the head */
		for (int i = 0; i < 8; i++)
			DATA0(pg)[rand() % 4096] = (unsigned char)rand();
		if (round % 3 == 0)
			atomic_store(&CTL0(pg)->head, (uint64_t)rand() * 8);
		unsigned char r[8192];
		const void *p;
		for (int i = 0; i < 10; i++) {
			ssize_t n = i & 1 ? ipc_recv(b, r, sizeof(r), 0) : ipc_recv_peek(b, &p, 0);
			if (n >= 0 && (i & 1) == 0) {
				volatile unsigned char sum = 0;
				for (ssize_t j = 0; j < n; j++)
					sum ^= ((const unsigned char *)p)[j];
				(void)sum;
				ipc_recv_release(b);
			}
			cr_assert(n >= 0 || n == -EPROTO || n == -EAGAIN || n == -EMSGSIZE, "%zd", n);
		}
		ipc_close(a);
		ipc_close(b);
	}
}

/* ---- peer death ---- */

struct killer {
	pid_t pid;
	int ms;
};

static void *kill_later(void *arg)
{
	struct killer *k = arg;
	struct timespec ts = { k->ms / 1000, (long)(k->ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
	kill(k->pid, SIGKILL);
	return NULL;
}

static void peer_sigkill(int w, bool sender_blocked)
{
	char u[256], q[64];
	snprintf(q, sizeof(q), "wait=%s&capacity=4K", wait_names[w]);
	url_of(u, sizeof(u), sender_blocked ? "killw" : "killr", false, q);
	ipc_chan *s;
	cr_assert_eq(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	pid_t pid = fork();
	if (pid == 0) {
		ipc_chan *c;
		if (ipc_open(&c, u, IPC_CLIENT, NULL) != 0 || ipc_send(c, "up", 2, 5000) != 0)
			_exit(2);
		for (;;)
			pause();
	}
	char buf[16];
	cr_assert_eq(ipc_recv(s, buf, sizeof(buf), 5000), 2);
	if (sender_blocked) {
		while (ipc_send(s, buf, 16, 0) == 0)
			;
	}
	struct killer k = { pid, 100 };
	pthread_t t;
	pthread_create(&t, NULL, kill_later, &k);
	/* blocked forever: must return */
	if (sender_blocked)
		cr_assert_eq(ipc_send(s, buf, 16, -1), -EPIPE, "%s", wait_names[w]);
	else
		cr_assert_eq(ipc_recv(s, buf, sizeof(buf), -1), -EPIPE, "%s", wait_names[w]);
	pthread_join(t, NULL);
	waitpid(pid, NULL, 0);
	ipc_close(s);
}

Test(shm, sigkill_recv_spin) { peer_sigkill(IPC_WAIT_SPIN, false); }
Test(shm, sigkill_recv_block) { peer_sigkill(IPC_WAIT_BLOCK, false); }
Test(shm, sigkill_recv_adaptive) { peer_sigkill(IPC_WAIT_ADAPTIVE, false); }
Test(shm, sigkill_send_spin) { peer_sigkill(IPC_WAIT_SPIN, true); }
Test(shm, sigkill_send_block) { peer_sigkill(IPC_WAIT_BLOCK, true); }
Test(shm, sigkill_send_adaptive) { peer_sigkill(IPC_WAIT_ADAPTIVE, true); }

/* After fork: the parent's close of its copy of b must not look like the
 * peer's close; the child's real close must be seen by the next send. */
Test(shm, close_after_fork)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_ADAPTIVE, 4096);
	pid_t pid = fork();
	if (pid == 0) {
		ipc_close(a);
		char buf[4];
		if (ipc_recv(b, buf, sizeof(buf), 5000) != 1)
			_exit(1);
		ipc_close(b);
		_exit(0);
	}
	ipc_close(b);
	cr_assert_eq(ipc_send(a, "x", 1, 0), 0, "the child still holds b");
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert_eq(ipc_send(a, "y", 1, 0), -EPIPE);
	ipc_close(a);
}

Test(shm, clean_close_drains_then_epipe)
{
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 4096);
		cr_assert_eq(ipc_send(a, "one", 3, 0), 0);
		cr_assert_eq(ipc_send(a, "two", 3, 0), 0);
		ipc_close(a);
		/* a send notices at once; the receiver still gets what was sent */
		cr_assert_eq(ipc_send(b, "x", 1, 0), -EPIPE);
		char buf[8];
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), -1), 3);
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), -1), 3);
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), -1), -EPIPE);
		cr_assert_eq(ipc_send(b, "x", 1, -1), -EPIPE);
		ipc_close(b);
	}
}

/* ---- wake-up stress ---- */

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* Random short pauses: mostly none, sometimes a yield, rarely a sleep
 * long enough for the other side to go to sleep. */
static void pause_maybe(unsigned *s)
{
	unsigned r = rnd(s) % 4096;
	if (r < 12) {
		struct timespec ts = { 0, (long)(rnd(s) % 100) * 1000 };
		nanosleep(&ts, NULL);
	} else if (r < 60) {
		sched_yield();
	}
}

static void stress(int w, uint64_t count)
{
	ipc_chan *a, *b;
	/* a small ring: the writer sleeps on a full ring as often as the reader
	 * on an empty one */
	pair(&a, &b, w, 4096);
	pid_t pid = fork();
	if (pid == 0) {
		ipc_close(b);
		unsigned seed = 1;
		for (uint64_t i = 0; i < count;) {
			if (rnd(&seed) % 8 == 0) {
				uint64_t v[16];
				ipc_msg m[16];
				size_t n = 1 + rnd(&seed) % 16;
				for (size_t j = 0; j < n; j++) {
					v[j] = i + j;
					m[j].data = &v[j];
					m[j].len = sizeof(v[j]);
				}
				if (n > count - i)
					n = (size_t)(count - i);
				int k = ipc_sendv(a, m, n, -1);
				if (k <= 0)
					_exit(2);
				i += (uint64_t)k;
			} else {
				if (ipc_send(a, &i, sizeof(i), -1) != 0)
					_exit(3);
				i++;
			}
			pause_maybe(&seed);
		}
		/* the acknowledgment comes back the other way */
		uint64_t ack;
		if (ipc_recv(a, &ack, sizeof(ack), -1) != sizeof(ack) || ack != count)
			_exit(4);
		ipc_close(a);
		_exit(0);
	}
	ipc_close(a);
	unsigned seed = 2;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t v;
		ssize_t n = ipc_recv(b, &v, sizeof(v), -1);
		cr_assert_eq(n, (ssize_t)sizeof(v), "%s at %llu: %zd", wait_names[w],
			     (unsigned long long)i, n);
		cr_assert_eq(v, i, "%s: lost or reordered", wait_names[w]);
		pause_maybe(&seed);
	}
	cr_assert_eq(ipc_send(b, &count, sizeof(count), -1), 0);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender status %d", st);
	ipc_close(b);
}

Test(shm, stress_wakeups_adaptive, .timeout = 120) { stress(IPC_WAIT_ADAPTIVE, 2000000); }
Test(shm, stress_wakeups_block, .timeout = 120) { stress(IPC_WAIT_BLOCK, 2000000); }
Test(shm, stress_wakeups_spin, .timeout = 120) { stress(IPC_WAIT_SPIN, 2000000); }

/* One sending and one receiving thread on each end at once, both ways:
 * the wake-ups of one direction must not be eaten by the other. */
struct duplex {
	ipc_chan *c;
	uint64_t count;
	int err;
};

static void *duplex_send(void *arg)
{
	struct duplex *d = arg;
	unsigned seed = 7;
	for (uint64_t i = 0; i < d->count && !d->err; i++) {
		if (ipc_send(d->c, &i, sizeof(i), 10000) != 0)
			d->err = 1;
		pause_maybe(&seed);
	}
	return NULL;
}

static int duplex_recv(ipc_chan *c, uint64_t count)
{
	unsigned seed = 9;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t v;
		if (ipc_recv(c, &v, sizeof(v), 10000) != sizeof(v) || v != i)
			return 1;
		pause_maybe(&seed);
	}
	return 0;
}

static void duplex(int w)
{
	ipc_chan *a, *b;
	pair(&a, &b, w, 4096);
	enum { COUNT = 300000 };
	pid_t pid = fork();
	if (pid == 0) {
		ipc_close(a);
		struct duplex d = { b, COUNT, 0 };
		pthread_t t;
		pthread_create(&t, NULL, duplex_send, &d);
		int r = duplex_recv(b, COUNT);
		pthread_join(t, NULL);
		_exit(r || d.err);
	}
	ipc_close(b);
	struct duplex d = { a, COUNT, 0 };
	pthread_t t;
	pthread_create(&t, NULL, duplex_send, &d);
	cr_assert_eq(duplex_recv(a, COUNT), 0, "%s", wait_names[w]);
	pthread_join(t, NULL);
	cr_assert_eq(d.err, 0);
	int st;
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child %d", wait_names[w], st);
	ipc_close(a);
}

Test(shm, duplex_threads_block, .timeout = 120) { duplex(IPC_WAIT_BLOCK); }
Test(shm, duplex_threads_adaptive, .timeout = 120) { duplex(IPC_WAIT_ADAPTIVE); }

/* ---- leaks ---- */

Test(shm, no_leaks, .timeout = 120)
{
	/* warm up lazy allocations (stdio, epoll, libc caches) */
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_ADAPTIVE, 4096);
	ipc_fd(a);
	ipc_close(a);
	ipc_close(b);
	int fds = count_fds(), maps = count_lines("/proc/self/maps");
	ipc_opts o = opts_wait(IPC_WAIT_ADAPTIVE, 4096);
	for (int i = 0; i < 10000; i++) {
		cr_assert_eq(ipc_pair("shm", &a, &b, &o), 0);
		if (i % 3 == 0)
			cr_assert_eq(ipc_send(a, "x", 1, 0), 0);
		if (i % 5 == 0)
			cr_assert_geq(ipc_fd(b), 0);
		ipc_close(a);
		ipc_close(b);
	}
	char u[256];
	url_of(u, sizeof(u), "leak", false, NULL);
	for (int i = 0; i < 200; i++) {
		ipc_chan *s, *c;
		cr_assert_eq(ipc_open(&s, u, IPC_SERVER, &o), 0);
		cr_assert_eq(ipc_open(&c, u, IPC_CLIENT, &o), 0);
		if (i % 2) {
			cr_assert_eq(ipc_send(s, "x", 1, 1000), 0);
			char buf[4];
			cr_assert_eq(ipc_recv(c, buf, sizeof(buf), 1000), 1);
		}
		ipc_close(c);
		ipc_close(s);
	}
	cr_assert_eq(count_fds(), fds);
	cr_assert_eq(count_lines("/proc/self/maps"), maps);
	struct stat st;
	cr_assert_eq(stat(u + 6, &st), -1);
}

/* ---- listener ---- */

Test(shm, listener_several_clients)
{
	char u[256];
	url_of(u, sizeof(u), "lst", false, NULL);
	ipc_listener *l;
	cr_assert_eq(ipc_listen(&l, u, NULL), 0);
	enum { N = 4 };
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			child_echo(u, 20);
	}
	ipc_chan *c[N];
	for (int i = 0; i < N; i++)
		cr_assert_eq(ipc_accept(l, &c[i], 5000), 0);
	ipc_chan *none;
	cr_assert_eq(ipc_accept(l, &none, 0), -EAGAIN);
	for (int k = 0; k < 20; k++) {
		for (int i = 0; i < N; i++) {
			int v = i * 1000 + k;
			cr_assert_eq(ipc_send(c[i], &v, sizeof(v), 5000), 0);
		}
		for (int i = 0; i < N; i++) {
			int v;
			cr_assert_eq(ipc_recv(c[i], &v, sizeof(v), 5000), (ssize_t)sizeof(v));
			cr_assert_eq(v, i * 1000 + k, "channels are separate");
		}
	}
	for (int i = 0; i < N; i++) {
		int st;
		waitpid(pids[i], &st, 0);
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		ipc_close(c[i]);
	}
	/* every accepted client had its own memfd: none is left mapped */
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	while (fgets(line, sizeof(line), f))
		cr_assert_null(strstr(line, "ipckit-shm"));
	fclose(f);
	ipc_listener_close(l);
	struct stat st;
	cr_assert_eq(stat(u + 6, &st), -1);
}

/* ---- regressions found in review ---- */

/* A zero-length message committed after a reservation larger than the
 * ring (the fragment path) is delivered, not dropped. */
Test(shm, commit_zero_after_large_reserve)
{
	ipc_chan *a, *b;
	void *p = NULL;
	char buf[16];

	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	cr_assert_eq(ipc_send_reserve(a, 8192, &p, 1000), 0);
	cr_assert_eq(ipc_send_commit(a, 0), 0);
	cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 1000), 0);
	ipc_close(a);
	ipc_close(b);
}

/* ipc_sendv stops after a fragmented message whose tail it had to keep
 * (timeout): nothing may be written between its fragments. */
Test(shm, sendv_stops_behind_kept_tail)
{
	ipc_chan *a, *b;
	char *big = malloc(3000), small[10], *buf = malloc(4096);

	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	tu_fill(big, 3000, 7);
	tu_fill(small, sizeof(small), 8);
	memset(buf, 0, 1288);
	cr_assert_eq(ipc_send(a, buf, 1288, 0), 0);
	cr_assert_eq(ipc_send(a, buf, 1288, 0), 0);
	ipc_msg v[2] = { { big, 3000 }, { small, sizeof(small) } };
	int n = ipc_sendv(a, v, 2, 0);
	cr_assert(n == 1 || n == -EAGAIN, "ipc_sendv = %d", n);
	cr_assert_eq(ipc_recv(b, buf, 4096, 1000), 1288);
	cr_assert_eq(ipc_recv(b, buf, 4096, 1000), 1288);
	if (n == 1) {
		/* the kept tail goes out first, with the next send */
		cr_assert_eq(ipc_send(a, small, sizeof(small), 1000), 0);
		cr_assert_eq(ipc_recv(b, buf, 4096, 1000), 3000);
		cr_assert_eq(tu_check(buf, 3000, 7), -1);
	} else {
		cr_assert_eq(ipc_send(a, small, sizeof(small), 1000), 0);
	}
	cr_assert_eq(ipc_recv(b, buf, 4096, 1000), (ssize_t)sizeof(small));
	cr_assert_eq(tu_check(buf, sizeof(small), 8), -1);
	ipc_close(a);
	ipc_close(b);
	free(big);
	free(buf);
}

/* A peer that floods the socket with 'w' doorbells cannot keep a blocked
 * send past its timeout. The flood runs until the send returns: before
 * the fix this test hung until Criterion's timeout. */
static atomic_int flood_stop;
static int flood_fd;

static void *flood_main(void *arg)
{
	char w[4096];
	(void)arg;
	memset(w, 'w', sizeof(w));
	while (!atomic_load(&flood_stop)) {
		send(flood_fd, w, sizeof(w), MSG_DONTWAIT | MSG_NOSIGNAL);
		sched_yield();
	}
	return NULL;
}

static int max_socket_fd(void)
{
	int best = -1;
	for (int fd = 0; fd < 1024; fd++) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			best = fd;
	}
	return best;
}

Test(shm, doorbell_flood_does_not_outlast_timeout, .timeout = 60)
{
	ipc_chan *a, *b;
	char m[56] = { 0 };
	pthread_t t;

	/* b's end of the pair's socket is the newest socket */
	int before = max_socket_fd();
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	flood_fd = max_socket_fd();
	cr_assert(flood_fd > before, "no new socket");
	while (ipc_send(a, m, sizeof(m), 0) == 0)
		;
	atomic_store(&flood_stop, 0);
	cr_assert_eq(pthread_create(&t, NULL, flood_main, NULL), 0);
	int r = ipc_send(a, m, sizeof(m), 100);
	atomic_store(&flood_stop, 1);
	pthread_join(t, NULL);
	cr_assert_eq(r, -ETIMEDOUT);
	ipc_close(a);
	ipc_close(b);
}

/* A writer asleep on a full ring is woken although the reader takes one
 * message and then stops receiving (the reader's wake-up check is
 * fence-less on most receives; the writer looks again 1 ms after it went
 * to sleep). The writer waits forever: a lost wake-up hangs the test. */
static ipc_chan *lw_a, *lw_b;
static atomic_int lw_start, lw_done, lw_rdone, lw_res;
#define LW_ITERS 20000

static void *lw_writer(void *arg)
{
	char m[56] = { 0 };
	(void)arg;
	for (int it = 1; it <= LW_ITERS; it++) {
		while (ipc_send(lw_a, m, sizeof(m), 0) == 0)
			;
		atomic_store(&lw_start, it);
		atomic_store(&lw_res, ipc_send(lw_a, m, sizeof(m), -1));
		atomic_store(&lw_done, it);
		while (atomic_load(&lw_rdone) != it)
			sched_yield();
	}
	return NULL;
}

Test(shm, writer_woken_when_reader_stops, .timeout = 120)
{
	pthread_t t;
	char buf[64];
	unsigned seed = 1;

	pair(&lw_a, &lw_b, IPC_WAIT_BLOCK, 4096);
	cr_assert_eq(pthread_create(&t, NULL, lw_writer, NULL), 0);
	for (int it = 1; it <= LW_ITERS; it++) {
		while (atomic_load(&lw_start) != it)
			sched_yield();
		int d = rand_r(&seed) % 2000;
		for (volatile int i = 0; i < d; i++)
			;
		cr_assert_eq(ipc_recv(lw_b, buf, sizeof(buf), 0), 56);
		/* stop receiving until the writer's send is through */
		while (atomic_load(&lw_done) != it)
			sched_yield(); /* (a yield, not a pause: two CPUs are shared) */
		cr_assert_eq(atomic_load(&lw_res), 0, "iteration %d: %d", it, atomic_load(&lw_res));
		while (ipc_recv(lw_b, buf, sizeof(buf), 0) == 56)
			;
		atomic_store(&lw_rdone, it);
	}
	pthread_join(t, NULL);
	ipc_close(lw_a);
	ipc_close(lw_b);
}

/* ---- lifecycle: failures undone by close (the init op) ---- */

/* Every descriptor and allocation of pair, open and the attach fails in
 * turn: each failure is exactly the injected error and leaves no
 * descriptor and no mapping behind; the n-th try after the last failure
 * point succeeds and the channel works. */
static void fault_sweep(enum ipc_fault_kind kind, int err, bool named)
{
	char u[256];
	url_of(u, sizeof(u), kind == IPC_FAULT_FD ? "flt-fd" : "flt-mem", false, "capacity=4K");
	/* warm up lazy allocations (stdio, libc caches) */
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	ipc_close(a);
	ipc_close(b);
	int fds = count_fds(), maps = count_lines("/proc/self/maps");
	bool done = false;
	for (long n = 0; n < 200 && !done; n++) {
		a = b = NULL;
		ipc__fault_arm(kind, n, false);
		int r;
		if (named) {
			r = ipc_open(&a, u, IPC_SERVER, NULL);
			if (r == 0 && (r = ipc_open(&b, u, IPC_CLIENT, NULL)) < 0)
				ipc_close(a);
			/* the server's first call attaches: a failure there is
			 * reported and the next call retries */
			if (r == 0 && (r = ipc_send(a, "x", 1, 1000)) < 0) {
				cr_assert_eq(r, err, "attach, n=%ld: %d", n, r);
				ipc__fault_arm(kind, -1, false);
				cr_assert_eq(ipc_send(a, "x", 1, 1000), 0, "attach retried, n=%ld", n);
				r = 0;
			}
		} else {
			ipc_opts o = opts_wait(IPC_WAIT_BLOCK, 4096);
			r = ipc_pair("shm", &a, &b, &o);
			if (r == 0)
				r = ipc_send(a, "x", 1, 0);
		}
		long failed = ipc__fault_failed(kind);
		ipc__fault_arm(kind, -1, false);
		/* a success must not have swallowed an injected failure */
		cr_assert(r < 0 || failed == 0, "n=%ld: a failure was ignored", n);
		if (r < 0) {
			cr_assert_eq(r, err, "n=%ld: %d", n, r);
			cr_assert_eq(count_fds(), fds, "n=%ld: descriptors left", n);
			cr_assert_eq(count_lines("/proc/self/maps"), maps, "n=%ld: mappings left", n);
			continue;
		}
		char buf[4];
		cr_assert_eq(ipc_recv(b, buf, sizeof(buf), 1000), 1, "n=%ld", n);
		ipc_close(a);
		ipc_close(b);
		done = n > 0;
	}
	cr_assert(done, "never succeeded");
	cr_assert_eq(count_fds(), fds);
	struct stat st;
	cr_assert_eq(stat(u + 6, &st), -1, "the socket file was removed");
}

Test(shm, lifecycle_fd_faults) { fault_sweep(IPC_FAULT_FD, -EMFILE, false); }
Test(shm, lifecycle_mem_faults) { fault_sweep(IPC_FAULT_MEM, -ENOMEM, false); }
Test(shm, lifecycle_named_fd_faults) { fault_sweep(IPC_FAULT_FD, -EMFILE, true); }
Test(shm, lifecycle_named_mem_faults) { fault_sweep(IPC_FAULT_MEM, -ENOMEM, true); }

/* ---- a fragmented send cut by its deadline (lib/tail.c) ---- */

#define CUT_LEN ((size_t)4 << 20)

/* The busy peer: reads nothing until the sender's deadline has cut its
 * message (go on the side pipe), then takes it whole and replies. */
static void cut_peer(ipc_chan *b, struct tu_side *side)
{
	unsigned char *m = malloc(CUT_LEN);
	C_TRUE(m != NULL);
	C_TRUE(tu_get(side->p2c[0], 30000) == 'g');
	C_EQ(ipc_recv(b, m, CUT_LEN, 30000), (long)CUT_LEN);
	C_EQ(tu_check(m, CUT_LEN, 11), -1);
	C_OK(ipc_send(b, "reply", 5, 30000));
	/* the sender closes after the reply: then EOF */
	C_EQ(ipc_recv(b, m, CUT_LEN, 30000), -EPIPE);
	free(m);
	ipc_close(b);
	_exit(0);
}

/*
 * Request/reply: a 4 MiB request with a 200 ms timeout while the peer is
 * busy returns 0 (a 1 MiB ring takes the first fragments at once, the
 * deadline cuts the rest), then the sender waits for the reply, blocked
 * in ipc_recv(-1) or asleep in poll on ipc_fd. The rest of its request
 * must reach the peer meanwhile: before lib/tail.c it stayed in the
 * sender until its next send and both sides waited (the peer gave up
 * after 30 s).
 */
static void cut_request(int w, bool named, bool by_poll)
{
	char u[256], q[32];
	snprintf(q, sizeof(q), "wait=%s", wait_names[w]);
	url_of(u, sizeof(u), "cut", false, q);
	ipc_chan *a, *b = NULL;
	if (named) {
		T_EQ(ipc_open(&a, u, IPC_SERVER, NULL), 0);
	} else {
		ipc_opts o = opts_wait(w, 0);
		T_EQ(ipc_pair("shm", &a, &b, &o), 0);
	}
	struct tu_side side;
	tu_side_init(&side);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		tu_side_child(&side);
		if (named) {
			C_OK(ipc_open(&b, u, IPC_CLIENT, NULL));
			C_OK(ipc_send(b, "up", 2, 30000));
		} else {
			ipc_close(a);
		}
		cut_peer(b, &side);
	}
	tu_side_parent(&side);
	if (!named)
		ipc_close(b);
	char buf[16];
	if (named)
		T_EQ(ipc_recv(a, buf, sizeof(buf), 30000), 2); /* attached */
	unsigned char *m = malloc(CUT_LEN);
	tu_fill(m, CUT_LEN, 11);
	T_EQ(ipc_send(a, m, CUT_LEN, 200), 0);
	free(m); /* (the rest was copied) */
	cr_assert(tu_put(side.p2c[1], 'g'));
	if (by_poll) {
		struct pollfd p = { ipc_fd(a), POLLIN, 0 };
		cr_assert_geq(p.fd, 0);
		T_EQ(poll(&p, 1, 60000), 1);
		T_EQ(ipc_recv(a, buf, sizeof(buf), 0), 5);
	} else {
		T_EQ(ipc_recv(a, buf, sizeof(buf), -1), 5);
	}
	cr_assert_eq(memcmp(buf, "reply", 5), 0);
	ipc_close(a);
	int st = tu_wait_child(pid, 60000);
	char sb[64];
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "peer: %s",
		  tu_status_str(st, sb, sizeof(sb)));
	tu_side_close(&side);
}

Test(shm, cut_request_then_recv_pair, .timeout = 120)
{
	for (int w = 0; w < 3; w++)
		cut_request(w, false, false);
}
Test(shm, cut_request_then_recv_named, .timeout = 120) { cut_request(IPC_WAIT_ADAPTIVE, true, false); }
Test(shm, cut_request_then_poll_pair, .timeout = 120) { cut_request(IPC_WAIT_BLOCK, false, true); }
Test(shm, cut_request_then_poll_named, .timeout = 120) { cut_request(IPC_WAIT_ADAPTIVE, true, true); }

/* Nothing of a message whose send timed out arrives: a full ring, a
 * fragmented send with timeouts 0 and 30 ms, then a small message, which
 * is the next thing the peer receives. */
Test(shm, timed_out_fragmented_send_sends_nothing)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 64 << 10);
	char small[100] = { 0 };
	int k = 0;
	while (ipc_send(a, small, sizeof(small), 0) == 0)
		k++;
	unsigned char *m = malloc(1 << 20);
	tu_fill(m, 1 << 20, 5);
	T_EQ(ipc_send(a, m, 1 << 20, 0), -EAGAIN);
	T_EQ(ipc_send(a, m, 1 << 20, 30), -ETIMEDOUT);
	char buf[128];
	for (int i = 0; i < k; i++)
		T_EQ(ipc_recv(b, buf, sizeof(buf), 0), (long)sizeof(small));
	T_EQ(ipc_send(a, "z", 1, 0), 0);
	T_EQ(ipc_recv(b, buf, sizeof(buf), 0), 1);
	T_EQ(ipc_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	free(m);
	ipc_close(a);
	ipc_close(b);
}

/* ---- out of memory: -ENOMEM sends nothing, the channel stays usable ---- */

#define HEAD0(pg) atomic_load(&CTL0_(pg)->head)
#define CTL0_(pg) ((struct ipc_ring_ctl *)(void *)((pg) + 1024))

/* kind 0: ipc_send; 1: ipc_sendv (a small message, then the large one);
 * 2: ipc_send_reserve larger than the ring + commit. */
static int big_send(ipc_chan *a, const unsigned char *m, size_t len, int kind)
{
	if (kind == 0)
		return ipc_send(a, m, len, 0);
	if (kind == 1) {
		ipc_msg v[2] = { { "s", 1 }, { m, len } };
		int n = ipc_sendv(a, v, 2, 0);
		return n == 2 ? 0 : n;
	}
	void *p;
	int r = ipc_send_reserve(a, len, &p, 0);
	if (r < 0)
		return r;
	memcpy(p, m, len);
	return ipc_send_commit(a, len);
}

static void enomem_sweep(int kind)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 64 << 10);
	size_t len = 1 << 20;
	unsigned char *m = malloc(len), *r = malloc(len);
	tu_fill(m, len, 21);
	unsigned char *pg = shm_page();
	bool sent = false;
	for (long n = 0; n < 100 && !sent; n++) {
		uint64_t head = HEAD0(pg);
		ipc__fault_arm(IPC_FAULT_MEM, n, false);
		int res = big_send(a, m, len, kind);
		ipc__fault_arm(IPC_FAULT_MEM, -1, false);
		if (res == 0) {
			sent = true;
			break;
		}
		/* (sendv: the small message before it went, the large one did not) */
		cr_assert(res == -ENOMEM || (kind == 1 && res == 1), "n=%ld: %d", n, res);
		if (kind == 1)
			T_EQ(ipc_recv(b, r, len, 0), 1);
		else
			cr_assert_eq(HEAD0(pg), head, "n=%ld: something was published", n);
		/* the channel carries the next message intact */
		T_EQ(ipc_send(a, "after", 5, 0), 0);
		T_EQ(ipc_recv(b, r, len, 1000), 5);
		cr_assert_eq(memcmp(r, "after", 5), 0);
		T_EQ(ipc_recv(b, r, len, 0), -EAGAIN);
	}
	cr_assert(sent);
	if (kind == 1)
		T_EQ(ipc_recv(b, r, len, 5000), 1);
	/* the rest of the message comes from the tail's writer */
	T_EQ(ipc_recv(b, r, len, 30000), (long)len);
	T_EQ(tu_check(r, len, 21), -1);
	T_EQ(ipc_send(a, "z", 1, 5000), 0);
	T_EQ(ipc_recv(b, r, len, 5000), 1);
	free(m);
	free(r);
	ipc_close(a);
	ipc_close(b);
}

Test(shm, send_enomem_sends_nothing) { enomem_sweep(0); }
Test(shm, sendv_enomem_sends_nothing) { enomem_sweep(1); }
Test(shm, reserve_enomem_sends_nothing) { enomem_sweep(2); }

/* A fragmented receive that a timeout may cut reserves the memory for
 * the part received so far before it takes the first fragment: -ENOMEM
 * leaves the message queued. (It used to take fragments, be cut, fail to
 * allocate, forget the message and break the channel with -EPROTO.) */
Test(shm, recv_enomem_keeps_message, .timeout = 60)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 64 << 10);
	size_t len = 1 << 20;
	unsigned char *r = malloc(len);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(b);
		unsigned char *m = malloc(len);
		tu_fill(m, len, 31);
		C_OK(ipc_send(a, m, len, -1));
		C_OK(ipc_send(a, "z", 1, -1));
		C_EQ(ipc_recv(a, m, len, 30000), -EPIPE);
		_exit(0);
	}
	ipc_close(a);
	/* wait for the first fragment, then fail every allocation */
	struct pollfd p = { ipc_fd(b), POLLIN, 0 };
	T_EQ(poll(&p, 1, 30000), 1);
	ipc__fault_arm(IPC_FAULT_MEM, 0, true);
	ssize_t n = ipc_recv(b, r, len, 0);
	ipc__fault_arm(IPC_FAULT_MEM, -1, false);
	T_EQ(n, -ENOMEM);
	T_EQ(ipc_recv(b, r, len, 30000), (long)len);
	T_EQ(tu_check(r, len, 31), -1);
	T_EQ(ipc_recv(b, r, len, 30000), 1);
	ipc_close(b);
	int st = tu_wait_child(pid, 30000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(r);
}

/* ---- a client that speaks the protocol by hand (docs/backends/shm.md) ---- */

struct raw_hello {
	char magic[8];
	uint32_t version, size;
	uint64_t max_msg, capacity;
	uint32_t wait, zero;
};
struct raw_welcome {
	char magic[8];
	uint32_t version, size;
	uint64_t max_msg, hdr_size, ring_size[2];
};
_Static_assert(sizeof(struct raw_hello) == 40, "hello layout");
_Static_assert(sizeof(struct raw_welcome) == 48, "welcome layout");

struct raw_client {
	int sock, fds[3]; /* memfd, our doorbell's read end, the server's write end */
	unsigned char *base;
	size_t len;
	struct ipc_ring tx, rx; /* ring 1 (we write), ring 0 (we read) */
};

static int raw_socket_to(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	/* (the path of a URL, without its query) */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%.*s", (int)strcspn(path, "?"), path);
	for (int i = 0; connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0; i++) {
		if (i >= 3000)
			return -1;
		tu_sleep_ms(10);
	}
	return fd;
}

/* Our hello, announcing spin mode (the server never rings our doorbell:
 * we poll the ring). */
static struct raw_hello raw_hello_of(void)
{
	struct raw_hello h = { .magic = "IPCKSHMc", .version = 1, .size = 40,
			       .max_msg = 1 << 20, .wait = IPC_WAIT_SPIN };
	return h;
}

/* Write the hello in random pieces of 1..12 bytes with pauses of up to
 * gap_ms between them. */
static bool raw_dribble(int fd, unsigned *seed, int gap_ms)
{
	struct raw_hello h = raw_hello_of();
	const char *p = (const char *)&h;
	for (size_t off = 0; off < sizeof(h);) {
		size_t k = 1 + rnd(seed) % 12;
		if (k > sizeof(h) - off)
			k = sizeof(h) - off;
		if (write(fd, p + off, k) != (ssize_t)k)
			return false;
		off += k;
		if (gap_ms)
			tu_sleep_ms((int)(rnd(seed) % (unsigned)gap_ms));
	}
	return true;
}

/* Connect, dribble the hello, take the welcome and map the rings. In a
 * forked client: failures exit. */
static void raw_connect(struct raw_client *rc, const char *path, unsigned *seed, int gap_ms)
{
	rc->sock = raw_socket_to(path);
	C_TRUE(rc->sock >= 0);
	C_TRUE(raw_dribble(rc->sock, seed, gap_ms));
	struct raw_welcome w;
	size_t got = 0;
	int nfds = 0;
	while (got < sizeof(w)) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(3 * sizeof(int))];
		} cm;
		struct iovec iov = { (char *)&w + got, sizeof(w) - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
		C_EQ(readable(rc->sock, 30000), 1);
		ssize_t n = recvmsg(rc->sock, &mh, MSG_CMSG_CLOEXEC);
		C_TRUE(n > 0); /* EOF: the server dropped us */
		struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
		if (h && h->cmsg_type == SCM_RIGHTS) {
			C_EQ(h->cmsg_len, CMSG_LEN(3 * sizeof(int)));
			memcpy(rc->fds, CMSG_DATA(h), 3 * sizeof(int));
			nfds = 3;
		}
		got += (size_t)n;
	}
	C_EQ(nfds, 3);
	C_TRUE(memcmp(w.magic, "IPCKSHMs", 8) == 0);
	rc->len = w.hdr_size + w.ring_size[0] + w.ring_size[1];
	rc->base = mmap(NULL, rc->len, PROT_READ | PROT_WRITE, MAP_SHARED, rc->fds[0], 0);
	C_TRUE(rc->base != MAP_FAILED);
	struct ipc_shm_page *pg = (struct ipc_shm_page *)(void *)rc->base;
	/* (mapped once: our few small records never wrap) */
	ipc__ring_init(&rc->rx, &pg->ctl[0], rc->base + w.hdr_size, w.ring_size[0], 1 << 20);
	ipc__ring_init(&rc->tx, &pg->ctl[1], rc->base + w.hdr_size + w.ring_size[0],
		       w.ring_size[1], 0);
}

static void raw_send(struct raw_client *rc, const void *m, uint32_t len)
{
	C_TRUE(ipc__ring_space(&rc->tx, ipc__rec_size(len)) >= (int64_t)ipc__rec_size(len));
	memcpy(ipc__ring_wptr(&rc->tx), m, len);
	ipc__ring_put(&rc->tx, len, len);
	ipc__ring_publish(&rc->tx);
	/* the writer's half of the doorbell protocol, always with the fence */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_exchange(&rc->tx.ctl->rsleep, 0))
		C_EQ(write(rc->fds[2], "d", 1), 1);
}

static ssize_t raw_recv(struct raw_client *rc, void *buf, size_t cap, int timeout_ms)
{
	for (int64_t end = tu_now_ms() + timeout_ms; tu_now_ms() < end;) {
		struct ipc_rec rec;
		int r = ipc__ring_next(&rc->rx, &rec);
		C_TRUE(r >= 0);
		if (r == 0) {
			tu_sleep_ms(1);
			continue;
		}
		C_TRUE(rec.len == rec.total && rec.len <= cap);
		memcpy(buf, rec.data, rec.len);
		ipc__ring_consume(&rc->rx, &rec);
		return rec.len;
	}
	return -ETIMEDOUT;
}

static void raw_close(struct raw_client *rc)
{
	munmap(rc->base, rc->len);
	for (int i = 0; i < 3; i++)
		close(rc->fds[i]);
	close(rc->sock);
}

/* A forked client: starts at a random moment, then either a real one
 * (ipc_open) or one that says hello slowly by hand; sends "ping <i>",
 * expects "pong <i>". */
static void slow_client(const char *u, int i, int start_ms, bool raw_only)
{
	unsigned seed = (unsigned)getpid() * 2654435761u;
	tu_sleep_ms((int)(rnd(&seed) % (unsigned)start_ms));
	char m[32], r[32];
	int n = snprintf(m, sizeof(m), "ping %d", i);
	if (!raw_only && i % 2) {
		ipc_chan *c;
		C_OK(ipc_open(&c, u, IPC_CLIENT, NULL));
		C_OK(ipc_send(c, m, (size_t)n, 30000));
		C_EQ(ipc_recv(c, r, sizeof(r), 30000), n);
		ipc_close(c);
	} else {
		struct raw_client rc;
		raw_connect(&rc, u + 6, &seed, 25);
		raw_send(&rc, m, (uint32_t)n);
		C_EQ(raw_recv(&rc, r, sizeof(r), 30000), n);
		raw_close(&rc);
	}
	m[1] = 'o';
	C_TRUE(memcmp(r, m, (size_t)n) == 0);
	_exit(0);
}

/* The server side of slow_client: "ping <i>" -> "pong <i>". */
static void pong(ipc_chan *c, char *buf, ssize_t n)
{
	cr_assert(n >= 6 && memcmp(buf, "ping ", 5) == 0, "got %zd", n);
	buf[1] = 'o';
	T_EQ(ipc_send(c, buf, (size_t)n, 30000), 0);
}

static int reap_all(pid_t *pids, int n)
{
	int bad = 0;
	for (int i = 0; i < n; i++) {
		int st = tu_wait_child(pids[i], 60000);
		bad += !(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	return bad;
}

/* ---- rendezvous driven by an event loop ---- */

/*
 * A server channel driven only by an event loop (poll on ipc_fd, ipc_recv
 * with timeout 0) whose client connects at a random moment and says hello
 * slowly: each step of the rendezvous wakes the loop, and the loop is
 * never woken for nothing for long. (Before: once the connection was
 * accepted with its hello incomplete, nothing woke the loop again.)
 */
Test(shm, event_loop_server_slow_hello, .timeout = 180)
{
	for (int round = 0; round < 10; round++) {
		char u[256];
		url_of(u, sizeof(u), "evsrv", false, "capacity=4K");
		ipc_chan *s;
		T_EQ(ipc_open(&s, u, IPC_SERVER, NULL), 0);
		int fd = ipc_fd(s);
		cr_assert_geq(fd, 0);
		T_EQ(readable(fd, 0), 0);
		pid_t pid = fork();
		cr_assert(pid >= 0);
		if (pid == 0)
			slow_client(u, round, 200, round % 3 != 2);
		char buf[32];
		ssize_t n = -EAGAIN;
		for (int it = 0; n == -EAGAIN; it++) {
			cr_assert_lt(it, 2000, "round %d: woken without progress", round);
			cr_assert_eq(readable(fd, 30000), 1, "round %d: the loop stalled", round);
			n = ipc_recv(s, buf, sizeof(buf), 0);
		}
		pong(s, buf, n);
		T_EQ(reap_all(&pid, 1), 0);
		T_EQ(readable(fd, 5000), 1); /* EOF */
		T_EQ(ipc_recv(s, buf, sizeof(buf), 0), -EPIPE);
		ipc_close(s);
	}
}

/* An event loop over ipc_listener_fd and the accepted channels' ipc_fd
 * only (accept and recv with timeout 0), serving 20 clients that connect
 * at random moments, half of them saying hello slowly. */
Test(shm, listener_event_loop_slow_clients, .timeout = 180)
{
	enum { N = 20 };
	char u[256];
	url_of(u, sizeof(u), "evlst", false, "capacity=4K");
	ipc_listener *l;
	T_EQ(ipc_listen(&l, u, NULL), 0);
	int lfd = ipc_listener_fd(l);
	cr_assert_geq(lfd, 0);
	T_EQ(readable(lfd, 0), 0);
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0)
			slow_client(u, i, 500, false);
	}
	struct pollfd pfd[1 + N];
	ipc_chan *ch[N];
	int nch = 0, served = 0, closed = 0;
	pfd[0] = (struct pollfd){ lfd, POLLIN, 0 };
	for (int it = 0; closed < N; it++) {
		cr_assert_lt(it, 20000, "woken without progress");
		int r = poll(pfd, (nfds_t)(1 + nch), 30000);
		cr_assert_gt(r, 0, "the loop stalled: %d accepted, %d served", nch, served);
		if (pfd[0].revents) {
			r = ipc_accept(l, &ch[nch], 0);
			if (r == 0) {
				pfd[1 + nch] = (struct pollfd){ ipc_fd(ch[nch]), POLLIN, 0 };
				cr_assert_geq(pfd[1 + nch].fd, 0);
				nch++;
			} else {
				T_EQ(r, -EAGAIN);
			}
		}
		for (int i = 0; i < nch; i++) {
			if (pfd[1 + i].fd < 0 || !pfd[1 + i].revents)
				continue;
			char buf[32];
			ssize_t n = ipc_recv(ch[i], buf, sizeof(buf), 0);
			if (n == -EAGAIN)
				continue;
			if (n == -EPIPE) {
				pfd[1 + i].fd = -1;
				closed++;
				continue;
			}
			pong(ch[i], buf, n);
			served++;
		}
	}
	T_EQ(served, N);
	T_EQ(reap_all(pids, N), 0);
	for (int i = 0; i < nch; i++)
		ipc_close(ch[i]);
	T_EQ(readable(lfd, 0), 0);
	ipc_listener_close(l);
}

/* An ipc_accept(l, &c, 0) loop never drops a client whose hello has not
 * arrived yet: 40 clients connect at random moments and say hello slowly
 * (11 of 40 were dropped before: the half-read hello was thrown away). */
Test(shm, accept_nowait_keeps_slow_clients, .timeout = 180)
{
	enum { N = 40 };
	char u[256];
	url_of(u, sizeof(u), "acc0", false, "capacity=4K");
	ipc_listener *l;
	T_EQ(ipc_listen(&l, u, NULL), 0);
	pid_t pids[N];
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		cr_assert(pids[i] >= 0);
		if (pids[i] == 0)
			slow_client(u, i, 1000, false);
	}
	ipc_chan *ch[N];
	int got = 0;
	for (int it = 0; got < N; it++) {
		int r = ipc_accept(l, &ch[got], 0);
		if (r == 0) {
			got++;
			continue;
		}
		T_EQ(r, -EAGAIN);
		/* every 100th time: is anyone still waiting to be accepted? */
		if (it % 100 == 99) {
			int alive = 0;
			for (int i = 0; i < N; i++)
				alive += kill(pids[i], 0) == 0 && waitpid(pids[i], NULL, WNOHANG) == 0;
			cr_assert_gt(alive, 0, "clients gone, %d of %d accepted", got, N);
		}
		tu_sleep_ms(1);
	}
	for (int i = 0; i < N; i++) {
		char buf[32];
		ssize_t n = ipc_recv(ch[i], buf, sizeof(buf), 30000);
		pong(ch[i], buf, n);
	}
	T_EQ(reap_all(pids, N), 0);
	ipc_chan *none;
	T_EQ(ipc_accept(l, &none, 0), -EAGAIN);
	for (int i = 0; i < N; i++)
		ipc_close(ch[i]);
	ipc_listener_close(l);
}

/* ipc_listener_fd is readable exactly while ipc_accept would not block,
 * step by step with hand-made clients in this process. */
Test(shm, listener_fd_level)
{
	char u[256];
	url_of(u, sizeof(u), "lfdl", false, "capacity=4K");
	ipc_listener *l;
	T_EQ(ipc_listen(&l, u, NULL), 0);
	int lfd = ipc_listener_fd(l);
	cr_assert_geq(lfd, 0);
	T_EQ(ipc_listener_fd(l), lfd);
	ipc_chan *c;
	T_EQ(readable(lfd, 0), 0);
	/* connected, silent: readable until accept takes it in, then not */
	int s1 = raw_socket_to(u + 6);
	cr_assert_geq(s1, 0);
	T_EQ(readable(lfd, 1000), 1);
	T_EQ(ipc_accept(l, &c, 0), -EAGAIN);
	T_EQ(readable(lfd, 0), 0);
	/* half a hello: readable (bytes), then not */
	struct raw_hello h = raw_hello_of();
	T_EQ(write(s1, &h, 20), 20);
	T_EQ(readable(lfd, 1000), 1);
	T_EQ(ipc_accept(l, &c, 0), -EAGAIN);
	T_EQ(readable(lfd, 0), 0);
	/* two complete hellos taken in one call: one served, the other
	 * still makes the descriptor readable */
	int s2 = raw_socket_to(u + 6);
	T_EQ(write(s2, &h, sizeof(h)), (ssize_t)sizeof(h));
	T_EQ(write(s1, (char *)&h + 20, sizeof(h) - 20), (ssize_t)sizeof(h) - 20);
	tu_sleep_ms(50); /* (both in; a slow machine only makes it two calls) */
	T_EQ(ipc_accept(l, &c, 1000), 0);
	ipc_close(c);
	T_EQ(readable(lfd, 1000), 1);
	T_EQ(ipc_accept(l, &c, 0), 0);
	ipc_close(c);
	T_EQ(readable(lfd, 0), 0);
	T_EQ(ipc_accept(l, &c, 0), -EAGAIN);
	close(s1);
	close(s2);
	/* a client that hangs up before its hello is complete: readable, then
	 * dropped */
	int s3 = raw_socket_to(u + 6);
	T_EQ(write(s3, &h, 8), 8);
	close(s3);
	T_EQ(readable(lfd, 1000), 1);
	T_EQ(ipc_accept(l, &c, 0), -EAGAIN);
	T_EQ(readable(lfd, 0), 0);
	ipc_listener_close(l);
}

/* ---- ipc_fd: level-triggered from its first call ---- */

/* A message queued before ipc_fd's first call makes it readable at once
 * (poll said 0 while ipc_recv(..., 0) returned the message). */
Test(shm, fd_first_call_sees_queued_message)
{
	char buf[8];
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 4096);
		T_EQ(ipc_send(a, "abc", 3, 0), 0);
		T_EQ(ipc_send(a, "de", 2, 0), 0);
		int fd = ipc_fd(b);
		cr_assert_geq(fd, 0);
		cr_assert_eq(readable(fd, 0), 1, "%s", wait_names[w]);
		T_EQ(ipc_recv(b, buf, sizeof(buf), 0), 3);
		cr_assert_eq(readable(fd, 0), 1, "%s", wait_names[w]);
		T_EQ(ipc_recv(b, buf, sizeof(buf), 0), 2);
		cr_assert_eq(readable(fd, 0), 0, "%s", wait_names[w]);
		ipc_close(a);
		ipc_close(b);
	}
	/* named: on a server that attached before, and on a client that has
	 * not even read the welcome yet */
	char u[256];
	url_of(u, sizeof(u), "fdq", false, NULL);
	ipc_chan *s, *c;
	T_EQ(ipc_open(&s, u, IPC_SERVER, NULL), 0);
	T_EQ(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
	T_EQ(ipc_send(s, "srv", 3, 5000), 0); /* attaches */
	int cfd = ipc_fd(c);
	T_EQ(readable(cfd, 5000), 1);
	T_EQ(ipc_recv(c, buf, sizeof(buf), 0), 3);
	T_EQ(readable(cfd, 0), 0);
	T_EQ(ipc_send(c, "cli", 3, 5000), 0);
	int sfd = ipc_fd(s);
	T_EQ(readable(sfd, 0), 1);
	T_EQ(ipc_recv(s, buf, sizeof(buf), 0), 3);
	T_EQ(readable(sfd, 0), 0);
	ipc_close(c);
	ipc_close(s);
}

/* A receiver that slept without fd mode may find its message before the
 * writer's doorbell byte arrives; the byte is then nobody's wake-up, and
 * ipc_fd's first call must not be readable for it. The window is a race,
 * so many short bursts: a sender thread writes messages while this thread
 * receives them asleep (wait=block), then ipc_fd must say "nothing". */
struct burst {
	ipc_chan *c;
	int n;
	int rc;
};

static void *burst_send(void *arg)
{
	struct burst *b = arg;
	for (int i = 0; i < b->n && b->rc == 0; i++) {
		b->rc = ipc_send(b->c, &i, sizeof(i), 5000);
		sched_yield();
	}
	return NULL;
}

Test(shm, fd_first_call_ignores_late_doorbells)
{
	int stale = 0;
	for (int round = 0; round < 300; round++) {
		ipc_chan *a, *b;
		pair(&a, &b, 1, 4096);
		struct burst bu = { a, 20, 0 };
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, burst_send, &bu), 0);
		for (int i = 0; i < bu.n; i++) {
			int v = -1;
			T_EQ(ipc_recv(b, &v, sizeof(v), 5000), (ssize_t)sizeof(v));
			cr_assert_eq(v, i);
		}
		pthread_join(t, NULL);
		T_EQ(bu.rc, 0);
		int fd = ipc_fd(b);
		cr_assert_geq(fd, 0);
		stale += readable(fd, 0);
		T_EQ(ipc_recv(b, NULL, 0, 0), -EAGAIN);
		ipc_close(a);
		ipc_close(b);
	}
	cr_assert_eq(stale, 0, "ipc_fd readable with nothing waiting in %d of 300 rounds", stale);
}

/* ---- a hostile server: what arrives over SCM_RIGHTS is checked ---- */

enum bad_kind {
	BAD_NONE,           /* a correct welcome: the control */
	BAD_ZERO_BELL,      /* /dev/zero as our doorbell: always readable */
	BAD_SOCKET_BELL,    /* a socket as our doorbell */
	BAD_WRITE_END,      /* a pipe's write end where our read end belongs */
	BAD_READ_END,       /* a pipe's read end where the server's write end belongs */
	BAD_NULL_BELL,      /* /dev/null as the server's doorbell */
	BAD_SMALL_MEMFD,    /* a memfd smaller than announced */
	BAD_UNSEALED_MEMFD, /* a memfd the server could shrink under us */
	BAD_WSEALED_MEMFD,  /* a memfd sealed against writes */
	BAD_KINDS,
	/* correct descriptors, then the server makes our doorbell write end
	 * blocking again (O_NONBLOCK is shared with the description it
	 * kept), fills that pipe and asks for a wake-up; and it steals the
	 * doorbells it rings for us between our poll and our read */
	BAD_BLOCKING_BELLS = BAD_KINDS,
};

struct fake_server {
	int lfd;
	enum bad_kind kind;
	int result; /* 0: the client hung up after the welcome */
	_Atomic int go, armed; /* BAD_BLOCKING_BELLS: the client attached; the trap is set */
};

/* BAD_BLOCKING_BELLS: once the client attached, make its sends and
 * receives block in the doorbell pipes if the library let them. */
static void fake_server_trap(struct fake_server *fs, int memfd, int our_bell_w, int their_bell_r,
			     int their_bell_w, uint64_t size)
{
	while (!atomic_load(&fs->go))
		tu_sleep_ms(1);
	struct ipc_shm_page *pg = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (pg == MAP_FAILED)
		return;
	/* its doorbell full, and a blocking write end */
	char junk[4096];
	memset(junk, 'd', sizeof(junk));
	fcntl(our_bell_w, F_SETFL, O_NONBLOCK);
	while (write(our_bell_w, junk, sizeof(junk)) > 0)
		;
	fcntl(our_bell_w, F_SETFL, 0);
	/* we (the reader of ring 1) sleep: every send rings */
	atomic_store(&pg->ctl[1].rwait, IPC_RWAIT_FENCE);
	atomic_store(&pg->ctl[1].rsleep, 1);
	/* its own doorbell: blocking, rung and drained at once by us */
	fcntl(their_bell_r, F_SETFL, 0);
	atomic_store(&fs->armed, 1);
	while (atomic_load(&fs->go) == 1) {
		char b[64];
		(void)!write(their_bell_w, "d", 1);
		fcntl(their_bell_r, F_SETFL, O_NONBLOCK);
		(void)!read(their_bell_r, b, sizeof(b));
		fcntl(their_bell_r, F_SETFL, 0);
	}
	munmap(pg, size);
}

static void *fake_server_main(void *arg)
{
	struct fake_server *fs = arg;
	fs->result = 1;
	int conn = accept(fs->lfd, NULL, NULL);
	struct raw_hello h;
	if (conn < 0 || recv(conn, &h, sizeof(h), MSG_WAITALL) != (ssize_t)sizeof(h))
		return NULL;
	uint64_t ring = 4096, hdr = 4096, size = hdr + 2 * ring;
	int memfd = memfd_create("fake-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int p0[2], p1[2], sv[2];
	if (memfd < 0 || pipe2(p0, O_CLOEXEC) < 0 || pipe2(p1, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
	    ftruncate(memfd, (off_t)(fs->kind == BAD_SMALL_MEMFD ? size - 4096 : size)) < 0)
		return NULL;
	int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	if (fs->kind == BAD_WSEALED_MEMFD)
		seals |= F_SEAL_WRITE;
	if (fs->kind != BAD_UNSEALED_MEMFD && fcntl(memfd, F_ADD_SEALS, seals) < 0)
		return NULL;
	int fds[3] = { memfd, p0[0], p1[1] };
	switch (fs->kind) {
	case BAD_ZERO_BELL: fds[1] = open("/dev/zero", O_RDONLY | O_CLOEXEC); break;
	case BAD_SOCKET_BELL: fds[1] = sv[0]; break;
	case BAD_WRITE_END: fds[1] = p0[1]; break;
	case BAD_READ_END: fds[2] = p1[0]; break;
	case BAD_NULL_BELL: fds[2] = open("/dev/null", O_WRONLY | O_CLOEXEC); break;
	default: break;
	}
	struct raw_welcome w = { .magic = "IPCKSHMs", .version = 1, .size = 48,
				 .max_msg = 1 << 20, .hdr_size = hdr, .ring_size = { ring, ring } };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(fds))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &w, sizeof(w) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *ch = CMSG_FIRSTHDR(&mh);
	ch->cmsg_level = SOL_SOCKET;
	ch->cmsg_type = SCM_RIGHTS;
	ch->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(ch), fds, sizeof(fds));
	if (sendmsg(conn, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(w))
		return NULL;
	if (fs->kind == BAD_BLOCKING_BELLS)
		fake_server_trap(fs, memfd, p1[1], p0[0], p0[1], size);
	/* the client must close the channel: we see it hang up */
	char b;
	if (readable(conn, 10000) == 1 && recv(conn, &b, 1, 0) <= 0)
		fs->result = 0;
	if (fds[1] != p0[0])
		close(fds[1]);
	if (fds[2] != p1[1] && fds[2] != p1[0])
		close(fds[2]);
	close(memfd);
	close(p0[0]);
	close(p0[1]);
	close(p1[0]);
	close(p1[1]);
	close(sv[0]);
	close(sv[1]);
	close(conn);
	return NULL;
}

Test(shm, hostile_server_descriptors, .timeout = 120)
{
	static const char *const names[] = { "none", "zero-bell", "socket-bell", "write-end",
					     "read-end", "null-bell", "small-memfd",
					     "unsealed-memfd", "wsealed-memfd" };
	for (int kind = 0; kind < BAD_KINDS; kind++) {
		char u[256], buf[16];
		snprintf(u, sizeof(u), "shm:///tmp/ipck-shm-%d-fake%d", (int)getpid(), kind);
		unlink(u + 6);
		struct fake_server fs = { .kind = (enum bad_kind)kind };
		fs.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", u + 6);
		cr_assert_eq(bind(fs.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		cr_assert_eq(listen(fs.lfd, 1), 0);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, fake_server_main, &fs), 0);
		ipc_chan *c;
		T_EQ(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
		if (kind == BAD_NONE) {
			/* the control: attached, nothing to read */
			cr_assert_eq(ipc_recv(c, buf, sizeof(buf), 100), -ETIMEDOUT);
			ipc_close(c);
		} else {
			cr_assert_eq(ipc_recv(c, buf, sizeof(buf), 3000), -EPROTO, "%s", names[kind]);
			/* sticky, also for a receive that would wait forever */
			cr_assert_eq(ipc_recv(c, buf, sizeof(buf), -1), -EPROTO, "%s", names[kind]);
			cr_assert_eq(ipc_send(c, "x", 1, -1), -EPROTO, "%s", names[kind]);
			int fd = ipc_fd(c);
			cr_assert(fd >= 0 && readable(fd, 0) == 1, "%s: ipc_fd", names[kind]);
		}
		pthread_join(t, NULL);
		cr_assert_eq(fs.result, 0, "%s: the channel was not closed", names[kind]);
		if (kind != BAD_NONE)
			ipc_close(c);
		close(fs.lfd);
		unlink(u + 6);
	}
}

/* A send or receive that must not block (timeout 0, or a short one) stays
 * so against a server that plays with the doorbell pipes it made: their
 * O_NONBLOCK flags live in descriptions it shares, and it can read from
 * ours. */
struct nb_call {
	ipc_chan *c;
	int send_rc;
	ssize_t recv_rc[3];
	_Atomic int done;
};

static void *nb_calls(void *arg)
{
	struct nb_call *k = arg;
	char buf[16];
	k->send_rc = ipc_send(k->c, "x", 1, 0);
	k->recv_rc[0] = ipc_recv(k->c, buf, sizeof(buf), 0);
	k->recv_rc[1] = ipc_recv(k->c, buf, sizeof(buf), 200);
	int fd = ipc_fd(k->c);
	k->recv_rc[2] = fd < 0 ? fd : ipc_recv(k->c, buf, sizeof(buf), 200);
	atomic_store(&k->done, 1);
	return NULL;
}

Test(shm, hostile_server_doorbell_flags, .timeout = 60)
{
	for (int mode = 0; mode < 3; mode++) {
		char u[256], buf[16];
		snprintf(u, sizeof(u), "shm:///tmp/ipck-shm-%d-bells?wait=%s", (int)getpid(),
			 wait_names[mode]);
		const char *path = u + 6;
		char p[128];
		snprintf(p, sizeof(p), "%.*s", (int)strcspn(path, "?"), path);
		unlink(p);
		struct fake_server fs = { .kind = BAD_BLOCKING_BELLS };
		fs.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
		cr_assert_eq(bind(fs.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		cr_assert_eq(listen(fs.lfd, 1), 0);
		pthread_t t, tc;
		cr_assert_eq(pthread_create(&t, NULL, fake_server_main, &fs), 0);
		ipc_chan *c;
		T_EQ(ipc_open(&c, u, IPC_CLIENT, NULL), 0);
		/* attached, nothing to read */
		T_EQ(ipc_recv(c, buf, sizeof(buf), 100), -ETIMEDOUT);
		atomic_store(&fs.go, 1);
		for (int i = 0; i < 10000 && !atomic_load(&fs.armed); i++)
			tu_sleep_ms(1);
		cr_assert(atomic_load(&fs.armed), "%s: the fake server did not start", wait_names[mode]);
		struct nb_call k = { .c = c };
		cr_assert_eq(pthread_create(&tc, NULL, nb_calls, &k), 0);
		/* (a liveness bound, not a timing threshold: the calls take
		 * 0.4 s when they keep their timeouts, for ever when not) */
		for (int i = 0; i < 20000 && !atomic_load(&k.done); i++)
			tu_sleep_ms(1);
		cr_assert(atomic_load(&k.done), "%s: a call that must not block blocked in a "
			  "doorbell pipe", wait_names[mode]);
		pthread_join(tc, NULL);
		T_EQ(k.send_rc, 0);
		for (int i = 0; i < 3; i++)
			cr_assert(k.recv_rc[i] == -EAGAIN || k.recv_rc[i] == -ETIMEDOUT,
				  "%s: recv %d: %zd", wait_names[mode], i, k.recv_rc[i]);
		atomic_store(&fs.go, 2);
		ipc_close(c);
		pthread_join(t, NULL);
		cr_assert_eq(fs.result, 0, "%s: the channel was not closed", wait_names[mode]);
		close(fs.lfd);
		unlink(p);
	}
}

/* ---- fork: only the creator removes names ---- */

/* A child that closes its inherited copy of a server channel or a
 * listener closes descriptors only: the parent's name stays and a client
 * still gets through. (Passes since the names are noted as struct
 * ipc_file and removed only by ipc__owned(); kept as a guard.) */
Test(shm, fork_child_close_keeps_names, .timeout = 60)
{
	char us[256], ul[256], buf[8];
	url_of(us, sizeof(us), "fksrv", false, NULL);
	url_of(ul, sizeof(ul), "fklst", false, NULL);
	ipc_chan *s, *c, *a;
	ipc_listener *l;
	T_EQ(ipc_open(&s, us, IPC_SERVER, NULL), 0);
	T_EQ(ipc_listen(&l, ul, NULL), 0);
	cr_assert_geq(ipc_fd(s), 0);
	cr_assert_geq(ipc_listener_fd(l), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_close(s);
		ipc_listener_close(l);
		_exit(0);
	}
	int st = tu_wait_child(pid, 30000);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	struct stat sb;
	T_EQ(stat(us + 6, &sb), 0);
	T_EQ(stat(ul + 6, &sb), 0);
	/* and both still work, their ipc_fd sets too */
	T_EQ(ipc_open(&c, us, IPC_CLIENT, NULL), 0);
	T_EQ(readable(ipc_fd(s), 5000), 1);
	T_EQ(ipc_recv(s, buf, sizeof(buf), 0), -EAGAIN); /* attaches */
	T_EQ(ipc_send(c, "hi", 2, 5000), 0);
	T_EQ(ipc_recv(s, buf, sizeof(buf), 5000), 2);
	ipc_close(c);
	ipc_close(s);
	T_EQ(ipc_open(&c, ul, IPC_CLIENT, NULL), 0);
	T_EQ(readable(ipc_listener_fd(l), 5000), 1);
	T_EQ(ipc_accept(l, &a, 5000), 0);
	T_EQ(ipc_send(c, "hi", 2, 5000), 0);
	T_EQ(ipc_recv(a, buf, sizeof(buf), 5000), 2);
	ipc_close(c);
	ipc_close(a);
	ipc_listener_close(l);
	T_EQ(stat(us + 6, &sb), -1);
	T_EQ(stat(ul + 6, &sb), -1);
}

/* ---- ipc_recvv: a batch with one tail update ---- */

#define TAIL0(pg) atomic_load(&CTL0_(pg)->tail)

struct rbufs {
	ipc_buf b[64];
	unsigned char mem[64][1024];
};

static void rbufs_init(struct rbufs *r, size_t cap)
{
	for (int i = 0; i < 64; i++)
		r->b[i] = (ipc_buf){ r->mem[i], cap, 0 };
}

/* Sizes 0 to 1000 keep their boundaries and bytes through batches, across
 * the ring's wrap; each batch takes everything waiting, up to n. */
Test(shm, recvv_boundaries)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	static struct rbufs r;
	static const size_t sizes[] = { 0, 1, 7, 8, 9, 100, 1000, 0, 500 };
	enum { K = sizeof(sizes) / sizeof(sizes[0]) };
	unsigned char m[1000];
	unsigned char *pg = shm_page();
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < K; i++) {
			tu_fill(m, sizes[i], (uint32_t)(round * K + i));
			T_EQ(ipc_send(a, m, sizes[i], 0), 0);
		}
		rbufs_init(&r, 1024);
		/* n smaller than what waits: n; then the rest */
		T_EQ(ipc_recvv(b, r.b, 4, 0), 4);
		T_EQ(ipc_recvv(b, r.b + 4, 64, 0), K - 4);
		for (int i = 0; i < K; i++) {
			cr_assert_eq(r.b[i].len, sizes[i], "round %d msg %d", round, i);
			T_EQ(tu_check(r.mem[i], sizes[i], (uint32_t)(round * K + i)), -1);
		}
		/* everything was handed back to the writer */
		cr_assert_eq(TAIL0(pg), HEAD0(pg));
		T_EQ(ipc_recvv(b, r.b, 64, 0), -EAGAIN);
	}
	/* n = 1 is a receive */
	T_EQ(ipc_send(a, "xy", 2, 0), 0);
	rbufs_init(&r, 1024);
	T_EQ(ipc_recvv(b, r.b, 1, 0), 1);
	T_EQ(r.b[0].len, 2);
	ipc_close(a);
	ipc_close(b);
}

/* A message larger than its buffer stops the batch and stays queued;
 * -EMSGSIZE only when it is the first. */
Test(shm, recvv_emsgsize_mid_batch)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	static struct rbufs r;
	unsigned char m[500];
	tu_fill(m, sizeof(m), 3);
	T_EQ(ipc_send(a, "a", 1, 0), 0);
	T_EQ(ipc_send(a, "bb", 2, 0), 0);
	T_EQ(ipc_send(a, m, 500, 0), 0);
	T_EQ(ipc_send(a, "c", 1, 0), 0);
	rbufs_init(&r, 100);
	T_EQ(ipc_recvv(b, r.b, 8, 0), 2);
	T_EQ(r.b[0].len, 1);
	T_EQ(r.b[1].len, 2);
	T_EQ(ipc_recvv(b, r.b, 8, 0), -EMSGSIZE);
	T_EQ(ipc_recvv(b, r.b, 8, 1000), -EMSGSIZE);
	/* a large enough first buffer takes it, and the batch goes on */
	r.b[0].cap = 500;
	T_EQ(ipc_recvv(b, r.b, 8, 0), 2);
	T_EQ(r.b[0].len, 500);
	T_EQ(tu_check(r.mem[0], 500, 3), -1);
	T_EQ(r.b[1].len, 1);
	/* the same in the middle of a batch: the buffers after a small one */
	T_EQ(ipc_send(a, "d", 1, 0), 0);
	T_EQ(ipc_send(a, m, 500, 0), 0);
	rbufs_init(&r, 1024);
	r.b[1].cap = 499;
	T_EQ(ipc_recvv(b, r.b, 8, 0), 1);
	T_EQ(ipc_recv(b, r.mem[0], 1024, 0), 500);
	ipc_close(a);
	ipc_close(b);
}

/* Fragmented messages: received whole when first, ending the batch when
 * not. */
Test(shm, recvv_fragmented)
{
	ipc_chan *a, *b;
	pair(&a, &b, IPC_WAIT_BLOCK, 4096);
	static unsigned char big[3000], out[4][3000];
	tu_fill(big, sizeof(big), 9);
	ipc_buf v[4];
	for (int i = 0; i < 4; i++)
		v[i] = (ipc_buf){ out[i], sizeof(out[i]), 0 };
	/* (3000 bytes are three fragments of a 4 KiB ring; two small records
	 * fit behind them) */
	T_EQ(ipc_send(a, big, sizeof(big), 0), 0);
	T_EQ(ipc_send(a, "s1", 2, 0), 0);
	T_EQ(ipc_send(a, "s2", 2, 0), 0);
	T_EQ(ipc_recvv(b, v, 4, 0), 3);
	T_EQ(v[0].len, 3000);
	T_EQ(tu_check(out[0], 3000, 9), -1);
	T_EQ(v[1].len, 2);
	T_EQ(v[2].len, 2);
	cr_assert_eq(memcmp(out[2], "s2", 2), 0);
	T_EQ(ipc_send(a, "s3", 2, 0), 0);
	T_EQ(ipc_send(a, big, sizeof(big), 0), 0);
	T_EQ(ipc_recvv(b, v, 4, 0), 1);
	T_EQ(v[0].len, 2);
	T_EQ(ipc_recvv(b, v, 4, 0), 1);
	T_EQ(v[0].len, 3000);
	ipc_close(a);
	ipc_close(b);
}

/* Messages, then the peer's close: the batch returns the messages, the
 * next call -EPIPE; an empty ring times out in every wait mode. */
Test(shm, recvv_eof_and_timeouts)
{
	static struct rbufs r;
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 4096);
		rbufs_init(&r, 1024);
		cr_assert_eq(ipc_recvv(b, r.b, 8, 0), -EAGAIN, "%s", wait_names[w]);
		cr_assert_eq(ipc_recvv(b, r.b, 8, 30), -ETIMEDOUT, "%s", wait_names[w]);
		T_EQ(ipc_send(a, "one", 3, 0), 0);
		T_EQ(ipc_send(a, "two", 3, 0), 0);
		ipc_close(a);
		cr_assert_eq(ipc_recvv(b, r.b, 8, -1), 2, "%s", wait_names[w]);
		cr_assert_eq(memcmp(r.mem[1], "two", 3), 0);
		cr_assert_eq(ipc_recvv(b, r.b, 8, -1), -EPIPE, "%s", wait_names[w]);
		cr_assert_eq(ipc_recvv(b, r.b, 8, 0), -EPIPE, "%s", wait_names[w]);
		ipc_close(b);
	}
}

/* The first message waits within the timeout; ipc_fd keeps its level
 * through batches; a writer asleep on a full ring is woken by a batch. */
static void *send_later(void *arg)
{
	tu_sleep_ms(50);
	return (void *)(intptr_t)ipc_send(arg, "late", 4, 5000);
}

static void *send_blocked(void *arg)
{
	return (void *)(intptr_t)ipc_send(arg, "0123456789abcdef", 16, -1);
}

Test(shm, recvv_waits_wakes_and_keeps_fd_level, .timeout = 60)
{
	static struct rbufs r;
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 4096);
		pthread_t t;
		rbufs_init(&r, 1024);
		cr_assert_eq(pthread_create(&t, NULL, send_later, a), 0);
		cr_assert_eq(ipc_recvv(b, r.b, 8, 10000), 1, "%s", wait_names[w]);
		void *res;
		pthread_join(t, &res);
		T_EQ((intptr_t)res, 0);
		/* fd level */
		int fd = ipc_fd(b);
		for (int i = 0; i < 5; i++)
			T_EQ(ipc_send(a, "m", 1, 0), 0);
		T_EQ(readable(fd, 0), 1);
		T_EQ(ipc_recvv(b, r.b, 3, 0), 3);
		T_EQ(readable(fd, 0), 1);
		T_EQ(ipc_recvv(b, r.b, 8, 0), 2);
		T_EQ(readable(fd, 0), 0);
		/* a full ring, a writer asleep on it, one batch frees it */
		int k = 0;
		while (ipc_send(a, "0123456789abcdef", 16, 0) == 0)
			k++;
		cr_assert_eq(pthread_create(&t, NULL, send_blocked, a), 0);
		tu_sleep_ms(20); /* (it may or may not sleep by now: both are fine) */
		int got = 0;
		while (got < k + 1) {
			int n = ipc_recvv(b, r.b, 64, 10000);
			cr_assert_gt(n, 0, "%s: %d", wait_names[w], n);
			got += n;
		}
		pthread_join(t, &res);
		T_EQ((intptr_t)res, 0);
		ipc_close(a);
		ipc_close(b);
	}
}

/* ipc_fd's first call from a third thread while one thread sends and
 * another receives: the stream is intact and the level right afterwards.
 * (The first call used to compute the level from the receiver's private
 * state: ThreadSanitizer saw the races, in a driver outside Criterion,
 * which cannot start under TSan.) */
struct fdm { ipc_chan *c; int err; };

static void *fdm_send(void *arg)
{
	struct fdm *f = arg;
	for (uint64_t i = 0; i < 100000 && !f->err; i++)
		f->err = ipc_send(f->c, &i, sizeof(i), 10000) != 0;
	return NULL;
}

static void *fdm_recv(void *arg)
{
	struct fdm *f = arg;
	for (uint64_t i = 0; i < 100000 && !f->err; i++) {
		uint64_t v;
		f->err = ipc_recv(f->c, &v, sizeof(v), 10000) != sizeof(v) || v != i;
	}
	return NULL;
}

Test(shm, fd_first_call_from_another_thread, .timeout = 120)
{
	for (int w = 0; w < 3; w++) {
		ipc_chan *a, *b;
		pair(&a, &b, w, 4096);
		struct fdm fs = { a, 0 }, fr = { b, 0 };
		pthread_t ts, tr;
		cr_assert_eq(pthread_create(&tr, NULL, fdm_recv, &fr), 0);
		cr_assert_eq(pthread_create(&ts, NULL, fdm_send, &fs), 0);
		tu_sleep_ms(5);
		int fd = ipc_fd(b);
		cr_assert_geq(fd, 0);
		pthread_join(ts, NULL);
		pthread_join(tr, NULL);
		cr_assert(!fs.err && !fr.err, "%s: stream broken", wait_names[w]);
		/* (a receive that raced the first call may leave one wake-up for
		 * nothing: the next receive corrects it) */
		char buf[8];
		T_EQ(ipc_recv(b, buf, sizeof(buf), 0), -EAGAIN);
		cr_assert_eq(readable(fd, 0), 0, "%s", wait_names[w]);
		T_EQ(ipc_send(a, "x", 1, 0), 0);
		cr_assert_eq(readable(fd, 5000), 1, "%s", wait_names[w]);
		ipc_close(a);
		ipc_close(b);
	}
}
