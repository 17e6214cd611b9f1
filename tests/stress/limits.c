/*
 * limits.c - the named limits. Each case lowers one per-user or
 * per-process limit in a forked child (so nothing else sees it) and checks
 * the exact error:
 *   - mq: with RLIMIT_MSGQUEUE at 819200 bytes, four pairs of 10 x 8 KiB
 *     queues open and the fifth fails with -EMFILE. The child first moves
 *     into its own user and IPC namespaces where it can, so that the
 *     user's other queues (other tests, other programs) are not counted;
 *   - open files: with RLIMIT_NOFILE a few above what is open, opening
 *     channels of every backend ends in -EMFILE (never a crash or another
 *     error), leaves no name behind, and the backend works again once they
 *     are closed;
 *   - locked memory: with RLIMIT_MEMLOCK at 0 every backend still opens
 *     and carries its largest message (no backend locks memory);
 *   - ipckit-bench (argv[1], when given) run under a queue limit and under
 *     an open-file limit too low for it says which limit ran out
 *     (RLIMIT_MSGQUEUE / RLIMIT_NOFILE) and how to raise it (ulimit -q /
 *     ulimit -n).
 */
#include "stress.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Run fn in a child; its exit status 0 passes. */
static bool in_child(const char *what, int (*fn)(void *), void *arg)
{
	char st[64];
	pid_t pid;
	int s;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		abort();
	if (pid == 0) {
		alarm(60);
		_exit(fn(arg));
	}
	s = tu_wait_child(pid, 90000);
	if (s == -1 || !WIFEXITED(s) || WEXITSTATUS(s) != 0) {
		st_fail("%s: %s", what, tu_status_str(s, st, sizeof(st)));
		return false;
	}
	return true;
}

static bool set_limit(int res, rlim_t v)
{
	struct rlimit rl = { v, v };

	return setrlimit(res, &rl) == 0;
}

/* ------------------------------------------------------------ mq */

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	bool ok = f && fputs(text, f) >= 0;

	if (f && fclose(f) != 0)
		ok = false;
	return ok;
}

/*
 * RLIMIT_MSGQUEUE counts the queues of every process of the user, and on
 * current kernels a user namespace's count is also charged to its parent's
 * (other tests and programs of root would count). Started as root, the
 * campaign runs as a user id of its own (main), whose count holds only
 * these queues; elsewhere the child tries its own user and IPC namespaces,
 * else runs as it is. Returns how.
 */
static const char *own_user; /* st_own_user's answer in main */

static const char *isolate(void)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (own_user)
		return "a user id of its own: only these queues count";
	if (unshare(CLONE_NEWUSER | CLONE_NEWIPC) != 0)
		return NULL;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (!write_file("/proc/self/uid_map", map))
		return NULL;
	write_file("/proc/self/setgroups", "deny");
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (!write_file("/proc/self/gid_map", map))
		return NULL;
	return "own user and IPC namespaces: the user's other queues may still count";
}

static int mq_case(void *unused)
{
	ipc_opts o = { .max_msg = 8192, .capacity = 10 };
	ipc_chan *a[5] = { 0 }, *b[5] = { 0 };
	const char *how;
	int r = 0, k;

	if (!set_limit(RLIMIT_MSGQUEUE, 819200)) {
		st_fail("mq: cannot set RLIMIT_MSGQUEUE: %s", strerror(errno));
		return 1;
	}
	how = isolate();
	for (k = 0; k < 5; k++) {
		r = ipc_pair("mq", &a[k], &b[k], &o);
		if (r < 0)
			break;
	}
	st_log("mq: RLIMIT_MSGQUEUE 819200 bytes, queues of 10 x 8 KiB: %d pairs opened, the next: %d %s "
	       "(%s)", k, r, tu_err(r), how ? how : "the user's other queues count too");
	for (int i = 0; i < k; i++) {
		ipc_close(a[i]);
		ipc_close(b[i]);
	}
	if (k == 5 || r != -EMFILE || (how && strstr(how, "only") && k != 4)) {
		st_fail("mq: expected four pairs, then -EMFILE for the fifth");
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ open files */

static int nofile_case(void *arg)
{
	const char *be = arg;
	ipc_chan *a[64] = { 0 }, *b[64] = { 0 };
	int k, r = 0, fds = st_fd_count();

	if (!set_limit(RLIMIT_NOFILE, (rlim_t)fds + 12)) {
		st_fail("%s: cannot set RLIMIT_NOFILE", be);
		return 1;
	}
	for (k = 0; k < 64; k++) {
		r = st_connect(be, NULL, &a[k], &b[k]);
		if (r < 0)
			break;
	}
	for (int i = 0; i < k; i++) {
		ipc_close(a[i]);
		ipc_close(b[i]);
	}
	if (k == 64 && r == 0) {
		st_log("%s: 64 connections under RLIMIT_NOFILE %d: it needs no descriptors", be, fds + 12);
		return 0;
	}
	st_log("%s: RLIMIT_NOFILE %d: %d connections opened, the next: %d %s", be, fds + 12, k, r,
	       tu_err(r));
	if (r != -EMFILE) {
		st_fail("%s: expected -EMFILE once the descriptors ran out", be);
		return 1;
	}
	r = st_connect(be, NULL, &a[0], &b[0]);
	if (r < 0) {
		st_fail("%s: no connection after the others closed: %d %s", be, r, tu_err(r));
		return 1;
	}
	ipc_close(a[0]);
	ipc_close(b[0]);
	/* the failed opens left nothing named behind */
	char left[300];

	if (tu_leftovers(left, sizeof(left)) > 0) {
		st_fail("%s: left behind after -EMFILE: %s", be, left);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------ locked memory */

struct send_arg {
	ipc_chan *c;
	const void *buf;
	size_t len;
	int r;
};

static void *send_thread(void *p)
{
	struct send_arg *s = p;

	s->r = ipc_send(s->c, s->buf, s->len, 10000);
	return NULL;
}

static int memlock_case(void *arg)
{
	const char *be = arg;
	ipc_chan *a, *b;
	ipc_info ia;
	char *buf, *rbuf;
	size_t len;
	ssize_t n;
	int r;

	if (!set_limit(RLIMIT_MEMLOCK, 0)) {
		st_fail("%s: cannot set RLIMIT_MEMLOCK", be);
		return 1;
	}
	r = st_connect(be, NULL, &a, &b);
	if (r < 0) {
		st_fail("%s: RLIMIT_MEMLOCK 0: open: %d %s", be, r, tu_err(r));
		return 1;
	}
	ipc_info_get(a, &ia);
	len = ia.max_msg < ST_MIB ? ia.max_msg : ST_MIB;
	if (!(tu_expect(be)->caps & IPC_CAP_RELIABLE) && len > 1024)
		len = 1024; /* a datagram that may be dropped: keep it small */
	buf = malloc(len);
	rbuf = malloc(len);
	st_fill(buf, len, 1, 0);
	/* sent from a thread: a message larger than the buffers needs a reader */
	struct send_arg sa = { a, buf, len, 0 };
	pthread_t th;

	pthread_create(&th, NULL, send_thread, &sa);
	n = ipc_recv(b, rbuf, len, 10000);
	pthread_join(th, NULL);
	if (sa.r < 0)
		n = sa.r;
	ipc_close(a);
	ipc_close(b);
	if (st_check(rbuf, n, len, 1, 0) != 0) {
		st_fail("%s: RLIMIT_MEMLOCK 0: a %zu-byte message: %ld %s", be, len, (long)n, tu_err(n));
		return 1;
	}
	free(buf);
	free(rbuf);
	return 0;
}

/* ------------------------------------------------------------ the bench's messages */

struct bench_case {
	const char *bench, *backend, *limit, *hint;
	int res;
	rlim_t value;
};

static int bench_case(void *arg)
{
	const struct bench_case *bc = arg;
	char out[8192], json[128];
	int p[2];
	ssize_t got = 0, n;
	pid_t pid;

	snprintf(json, sizeof(json), "/tmp/ipck-limits-%d.json", (int)getpid());
	if (pipe(p) < 0)
		return 1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		dup2(p[1], 1);
		set_limit(bc->res, bc->value);
		execl(bc->bench, bc->bench, "--backend", bc->backend, "--size", "64", "--quick",
		      "--no-baseline", "--no-peers", "--pin", "none", "--rounds", "1", "--quiet", "--json",
		      json, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while (got < (ssize_t)sizeof(out) - 1 && (n = read(p[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = '\0';
	close(p[0]);
	tu_wait_child(pid, 60000);
	unlink(json);
	if (!strstr(out, bc->limit) || !strstr(out, bc->hint)) {
		st_fail("ipckit-bench under %s: its message does not name the limit and \"%s\":\n%s",
			bc->limit, bc->hint, out);
		return 1;
	}
	st_log("ipckit-bench --backend %s under %s=%llu says: %s", bc->backend, bc->limit,
	       (unsigned long long)bc->value, strstr(out, "ipckit-bench:") ? strstr(out, "ipckit-bench:") : out);
	return 0;
}

int main(int argc, char **argv)
{
	const char *const *bes = ipc_backends();
	int passed = 0, skipped = 0;

	st_campaign = "limits";
	own_user = st_own_user(); /* every case: the user's queue quota is the campaign's */
	if (st_want("mq")) {
		if (in_child("mq: RLIMIT_MSGQUEUE", mq_case, NULL))
			passed++;
	}
	for (size_t k = 0; bes[k]; k++) {
		if (!st_want(bes[k]))
			continue;
		if (in_child(bes[k], nofile_case, (void *)bes[k]))
			passed++;
		if (in_child(bes[k], memlock_case, (void *)bes[k]))
			passed++;
	}
	if (argc > 1 && access(argv[1], X_OK) == 0) {
		struct bench_case q = { argv[1], "mq", "RLIMIT_MSGQUEUE", "ulimit -q", RLIMIT_MSGQUEUE, 8192 };
		struct bench_case f = { argv[1], "shm", "RLIMIT_NOFILE", "ulimit -n", RLIMIT_NOFILE, 10 };

		passed += in_child("ipckit-bench, queue limit", bench_case, &q);
		passed += in_child("ipckit-bench, open-file limit", bench_case, &f);
	} else {
		st_log("ipckit-bench not built: its messages not checked");
		skipped++;
	}
	return st_finish(passed, skipped);
}
