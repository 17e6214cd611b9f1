/*
 * util.c - shared test helpers (see util.h).
 */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

char tu_tag[64] = "test";

/*
 * RLIMIT_MSGQUEUE counts every queue of the user, in every process: with
 * the default 819200 bytes, five default mq channels at once exhaust it,
 * and test programs (and other work of the same user) run in parallel.
 * The tests are about the library, not this quota, so each test process
 * lifts its own limit as far as it may (without CAP_SYS_RESOURCE only up
 * to the hard limit); the tests of the limit itself set a small one.
 */
__attribute__((constructor)) static void tu_lift_mq_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MSGQUEUE, &rl) != 0)
		return;
	rl.rlim_cur = RLIM_INFINITY;
	rl.rlim_max = RLIM_INFINITY;
	if (setrlimit(RLIMIT_MSGQUEUE, &rl) != 0 && getrlimit(RLIMIT_MSGQUEUE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MSGQUEUE, &rl);
	}
}

static pid_t test_pid;
static unsigned name_seq;

static unsigned name_token;

pid_t tu_test_pid(void)
{
	if (test_pid == 0) {
		struct timespec ts;

		test_pid = getpid();
		/* pids are reused: the token keeps a stale name left by some
		 * dead process with this pid from counting as ours */
		clock_gettime(CLOCK_REALTIME, &ts);
		name_token = ((unsigned)ts.tv_nsec ^ (unsigned)ts.tv_sec * 2654435761u) & 0xffffff;
	}
	return test_pid;
}

void tu_name(char *buf, size_t cap)
{
	/* first, on its own: it sets name_token on the first call (as an
	 * argument beside name_token, the token could be read before it was
	 * set, leaving the first name one that tu_leftovers cannot see) */
	pid_t pid = tu_test_pid();

	snprintf(buf, cap, "ipck-%d%06x-%u", (int)pid, name_token, name_seq++);
}

/*
 * What each backend should do: an independent statement, kept by hand. A
 * backend the library lists and this table does not know fails every
 * test that asks (tu_expect).
 */
#define C_STD (IPC_CAP_RELIABLE | IPC_CAP_UNRELATED | IPC_CAP_PROCESS)
static const struct tu_expect expectations[] = {
	/* name, caps, URL form, default max_msg, cut, backlog, announces_max,
	 * user_quota */
	{ "tcp", C_STD | IPC_CAP_CROSS_HOST | IPC_CAP_LISTEN | IPC_CAP_PAIR, TU_URL_HOSTPORT,
	  (size_t)16 << 20, true, true, true, false },
	{ "udp", IPC_CAP_CROSS_HOST | IPC_CAP_UNRELATED | IPC_CAP_PAIR | IPC_CAP_PROCESS,
	  TU_URL_HOSTPORT, 65507, false, false, false, false },
	{ "unix", C_STD | IPC_CAP_LISTEN | IPC_CAP_PAIR | IPC_CAP_ABSTRACT, TU_URL_PATH,
	  (size_t)16 << 20, true, true, true, false },
	{ "fifo", C_STD, TU_URL_PATH, (size_t)16 << 20, true, false, true, false },
	{ "pipe", IPC_CAP_RELIABLE | IPC_CAP_PAIR | IPC_CAP_PROCESS, TU_URL_NONE,
	  (size_t)16 << 20, true, false, true, false },
	{ "mq", C_STD | IPC_CAP_PAIR, TU_URL_MQNAME, 0, false, false, true, true },
	{ "shm", C_STD | IPC_CAP_ZERO_COPY | IPC_CAP_LISTEN | IPC_CAP_PAIR | IPC_CAP_ABSTRACT,
	  TU_URL_PATH, (size_t)16 << 20, true, true, true, false },
	{ "inproc", IPC_CAP_RELIABLE | IPC_CAP_ZERO_COPY | IPC_CAP_LISTEN | IPC_CAP_PAIR,
	  TU_URL_NAME, (size_t)16 << 20, false, false, true, false },
};

const struct tu_expect *tu_expect(const char *be)
{
	for (size_t i = 0; i < sizeof(expectations) / sizeof(expectations[0]); i++)
		if (strcmp(expectations[i].name, be) == 0)
			return &expectations[i];
	fprintf(stderr, "backend \"%s\" is not in the expectation table (tests/util.c)\n", be);
	abort();
}

bool tu_url(char *buf, size_t cap, const char *be, bool abstract)
{
	char name[64];

	tu_name(name, sizeof(name));
	switch (tu_expect(be)->url) {
	case TU_URL_NONE:
		return false;
	case TU_URL_HOSTPORT:
		snprintf(buf, cap, "%s://127.0.0.1:0", be);
		return true;
	case TU_URL_MQNAME:
		snprintf(buf, cap, "%s:///%s", be, name);
		return true;
	case TU_URL_NAME:
		snprintf(buf, cap, "%s://%s", be, name);
		return true;
	case TU_URL_PATH:
		break;
	}
	if (abstract)
		snprintf(buf, cap, "%s://@%s", be, name);
	else
		snprintf(buf, cap, "%s:///tmp/%s", be, name);
	return true;
}

static bool port_free(int type, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	bool ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return false;
	ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

bool tu_fixed_url(char *buf, size_t cap, const char *be, bool abstract)
{
	if (tu_expect(be)->url != TU_URL_HOSTPORT)
		return tu_url(buf, cap, be, abstract);
	for (int i = 0; i < 100; i++) {
		int port = tu_free_port(SOCK_STREAM);

		if (port > 0 && port_free(SOCK_DGRAM, port)) {
			snprintf(buf, cap, "%s://127.0.0.1:%d", be, port);
			return true;
		}
	}
	return false;
}

int tu_free_port(int type)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static unsigned char pattern_byte(size_t i, uint32_t seed)
{
	uint32_t x = (uint32_t)i * 2654435761u ^ seed * 40503u ^ (uint32_t)(i >> 11);

	return (unsigned char)(x >> 13 ^ x);
}

void tu_fill(void *buf, size_t len, uint32_t seed)
{
	unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = pattern_byte(i, seed);
}

ssize_t tu_check(const void *buf, size_t len, uint32_t seed)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(i, seed))
			return (ssize_t)i;
	return -1;
}

int64_t tu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int tu_wait_child(pid_t pid, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (r < 0 && errno != EINTR)
			return -1;
		if (tu_now_ms() >= end)
			break;
		tu_sleep_ms(5);
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

const char *tu_status_str(int status, char *buf, size_t cap)
{
	if (status == -1)
		snprintf(buf, cap, "timed out (killed)");
	else if (WIFEXITED(status))
		snprintf(buf, cap, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, cap, "status 0x%x", status);
	return buf;
}

void tu_side_init(struct tu_side *s)
{
	if (pipe2(s->p2c, O_CLOEXEC) < 0 || pipe2(s->c2p, O_CLOEXEC) < 0) {
		perror("pipe2");
		abort();
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void tu_side_parent(struct tu_side *s)
{
	close_fd(&s->p2c[0]);
	close_fd(&s->c2p[1]);
}

void tu_side_child(struct tu_side *s)
{
	close_fd(&s->p2c[1]);
	close_fd(&s->c2p[0]);
}

void tu_side_close(struct tu_side *s)
{
	close_fd(&s->p2c[0]);
	close_fd(&s->p2c[1]);
	close_fd(&s->c2p[0]);
	close_fd(&s->c2p[1]);
}

static bool write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

bool tu_put(int fd, char ch)
{
	return write_all(fd, &ch, 1);
}

bool tu_put_str(int fd, const char *str)
{
	uint32_t len = (uint32_t)strlen(str);

	return write_all(fd, &len, sizeof(len)) && write_all(fd, str, len);
}

static bool read_all(int fd, void *buf, size_t len, int64_t end)
{
	char *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = end - tu_now_ms();
		ssize_t n;

		if (left <= 0)
			return false;
		if (poll(&pfd, 1, (int)left) <= 0)
			continue;
		n = read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

int tu_get(int fd, int timeout_ms)
{
	unsigned char ch;

	if (!read_all(fd, &ch, 1, tu_now_ms() + timeout_ms))
		return -1;
	return ch;
}

bool tu_get_str(int fd, char *buf, size_t cap, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	uint32_t len;

	if (!read_all(fd, &len, sizeof(len), end) || len >= cap)
		return false;
	if (!read_all(fd, buf, len, end))
		return false;
	buf[len] = '\0';
	return true;
}

static int scan_dir(const char *dir, const char *prefix, char *buf, size_t cap, int found)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return found;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (found++ == 0)
			snprintf(buf, cap, "%s/%s", dir, e->d_name);
	}
	closedir(d);
	return found;
}

/* Listening abstract sockets named @prefix... in /proc/net/unix (an
 * accepted connection shows its listener's name too, so only sockets
 * with __SO_ACCEPTCON, flag 0x10000, hold the name). */
static int scan_abstract(const char *prefix, char *buf, size_t cap, int found)
{
	FILE *f = fopen("/proc/net/unix", "r");
	char line[512];

	if (!f)
		return found;
	while (fgets(line, sizeof(line), f)) {
		unsigned long flags;
		char path[256] = "";

		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %255s", &flags, path) < 1)
			continue;
		if (!(flags & 0x10000) || path[0] != '@' || strncmp(path + 1, prefix, strlen(prefix)) != 0)
			continue;
		if (found++ == 0)
			snprintf(buf, cap, "abstract %s", path);
	}
	fclose(f);
	return found;
}

int tu_leftovers(char *buf, size_t cap)
{
	char prefix[32];
	int found = 0;

	snprintf(prefix, sizeof(prefix), "ipck-%d%06x-", (int)tu_test_pid(), name_token);
	if (cap > 0)
		buf[0] = '\0';
	found = scan_dir("/tmp", prefix, buf, cap, found);
	found = scan_dir("/dev/mqueue", prefix, buf, cap, found);
	found = scan_dir("/dev/shm", prefix, buf, cap, found);
	found = scan_abstract(prefix, buf, cap, found);
	return found;
}

static const char *errno_name(int e)
{
	switch (e) {
	case EINVAL: return "EINVAL";
	case EPIPE: return "EPIPE";
	case EAGAIN: return "EAGAIN";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EMSGSIZE: return "EMSGSIZE";
	case EPROTO: return "EPROTO";
	case EADDRINUSE: return "EADDRINUSE";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENOENT: return "ENOENT";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOTSUP: return "ENOTSUP";
	case EBUSY: return "EBUSY";
	case EBADF: return "EBADF";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOMEM: return "ENOMEM";
	case ECONNRESET: return "ECONNRESET";
	case EEXIST: return "EEXIST";
	case ELOOP: return "ELOOP";
	default: return NULL;
	}
}

const char *tu_err(long r)
{
	/* Several calls may feed one printf: rotate through buffers. */
	static __thread char bufs[8][96];
	static __thread unsigned next;
	char *buf = bufs[next++ % 8];
	const char *name;

	if (r >= 0)
		return "";
	name = errno_name((int)-r);
	if (name)
		snprintf(buf, sizeof(bufs[0]), "(-%s: %s)", name, strerror((int)-r));
	else if (r >= -4095)
		snprintf(buf, sizeof(bufs[0]), "(%s)", strerror((int)-r));
	else
		snprintf(buf, sizeof(bufs[0]), "(not an errno)");
	return buf;
}

static _Thread_local bool in_thread_peer;

bool tu_in_thread_peer(void)
{
	return in_thread_peer;
}

void tu_child_fail(const char *file, int line, const char *what, long got, long want)
{
	char gbuf[96];

	snprintf(gbuf, sizeof(gbuf), "%s", tu_err(got));
	fprintf(stderr, "[%s] peer %s %d: %s:%d: %s = %ld %s, expected %ld %s\n", tu_tag,
		in_thread_peer ? "thread of" : "process", (int)getpid(), file, line, what, got,
		gbuf, want, tu_err(want));
	if (in_thread_peer)
		pthread_exit((void *)(intptr_t)2);
	_exit(2);
}

static void *peer_thread(void *arg)
{
	struct tu_peer *p = arg;

	in_thread_peer = true;
	return (void *)(intptr_t)p->fn(p->arg);
}

void tu_peer_start(struct tu_peer *p, bool thread, int (*fn)(void *), void *arg)
{
	memset(p, 0, sizeof(*p));
	p->thread = thread;
	p->fn = fn;
	p->arg = arg;
	if (thread) {
		if (pthread_create(&p->th, NULL, peer_thread, p) != 0)
			abort();
		return;
	}
	p->pid = fork();
	if (p->pid < 0)
		abort();
	if (p->pid == 0) {
		alarm(40); /* no peer outlives a broken test */
		_exit(fn(arg));
	}
}

int tu_peer_wait(struct tu_peer *p, int timeout_ms)
{
	if (!p->thread)
		return p->pid > 0 ? tu_wait_child(p->pid, timeout_ms) : 0;
	if (p->joined)
		return 0;
	struct timespec ts;
	void *rv = NULL;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(p->th, &rv, &ts) != 0)
		return -1;
	p->joined = true;
	return ((int)(intptr_t)rv & 0xff) << 8; /* as WIFEXITED with that status */
}

struct race_arg {
	const char *url;
	pthread_barrier_t *bar;
	int *res;
	ipc_chan **ch;
};

static void *race_open(void *p)
{
	struct race_arg *a = p;
	pthread_barrier_wait(a->bar);
	*a->res = ipc_open(a->ch, a->url, IPC_SERVER, NULL);
	return NULL;
}

void tu_open_race(const char *url, int res[2], ipc_chan *ch[2])
{
	pthread_barrier_t bar;
	pthread_t t[2];
	struct race_arg a[2];

	pthread_barrier_init(&bar, NULL, 2);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct race_arg){ url, &bar, &res[i], &ch[i] };
		pthread_create(&t[i], NULL, race_open, &a[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&bar);
}
