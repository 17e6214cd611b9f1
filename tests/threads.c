/*
 * threads.c - the two-thread promises without Criterion, so that the same
 * program runs under ThreadSanitizer (Criterion's runner cannot: its
 * inheritable arena fails to map under TSan, upstream issue #274).
 *
 * For every backend with ipc_pair and reliable delivery, in a forked
 * child and in this process (both ends here, for backends whose ends stay
 * in one process): each end runs one sending and one receiving
 * thread; senders use timeout 0 with retries (queues are full much of the
 * time) and large messages with short timeouts (cut sends finished by the
 * background writer while the other thread receives); receivers first try
 * a buffer too small for most messages. Every message carries its number
 * and a pattern: nothing lost, duplicated, reordered or corrupted.
 * Exit status 0 when every backend passed; 77 (skip) when none ran.
 *
 *   threads [count]      (default 5000 messages each way per backend)
 */
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG (300 * 1024)   /* every 500th message: larger than pipe/socket buffers */

struct side {
	ipc_chan *c;
	uint32_t count, tag;
	size_t max;
	uint32_t got;
	char err[256];
};

static size_t msg_size(uint32_t i, size_t max)
{
	size_t s = i % 500 == 499 ? BIG : 4 + (i * 131u) % 700;
	return s < max ? s : max;
}

static void *sender(void *arg)
{
	struct side *t = arg;
	unsigned char *buf = malloc(BIG + 8);
	for (uint32_t i = 0; buf && i < t->count; i++) {
		size_t len = msg_size(i, t->max);
		memcpy(buf, &i, 4);
		tu_fill(buf + 4, len - 4, i ^ t->tag);
		int rc, tries = 0;
		/* large ones with a short timeout (may be cut and finished in
		 * the background), small ones with 0 */
		int to = len > 1000 ? 20 : 0;
		while ((rc = ipc_send(t->c, buf, len, to)) == -EAGAIN || rc == -ETIMEDOUT) {
			if (++tries > 200000)
				break;
			if (tries % 64 == 0)
				tu_sleep_ms(1);
		}
		if (rc < 0) {
			snprintf(t->err, sizeof(t->err), "send %u (%zu bytes): %d %s", i, len, rc,
				 tu_err(rc));
			break;
		}
	}
	if (!buf)
		snprintf(t->err, sizeof(t->err), "out of memory");
	free(buf);
	return NULL;
}

static void *receiver(void *arg)
{
	struct side *t = arg;
	unsigned char small[16], *buf = malloc(BIG + 8);
	for (uint32_t n = 0; buf && n < t->count; n++) {
		ssize_t len = ipc_recv(t->c, small, sizeof(small), 30000);
		if (len == -EMSGSIZE)
			len = ipc_recv(t->c, buf, BIG + 8, 30000);
		else if (len >= 0)
			memcpy(buf, small, (size_t)len);
		uint32_t idx = 0;
		if (len >= 4)
			memcpy(&idx, buf, 4);
		if (len < 4 || idx != n || (size_t)len != msg_size(n, t->max) ||
		    tu_check(buf + 4, (size_t)len - 4, n ^ t->tag) >= 0) {
			snprintf(t->err, sizeof(t->err), "message %u: %zd %s, number %u", n, len,
				 len < 0 ? tu_err(len) : "", idx);
			break;
		}
		t->got++;
		if (n % 1000 == 999)
			tu_sleep_ms(5); /* let the queue towards us fill */
	}
	free(buf);
	return NULL;
}

/* Run both threads on c; 0 on success, else prints and returns 1. */
static int run_end(const char *be, const char *who, ipc_chan *c, uint32_t count, uint32_t stag,
		   uint32_t rtag)
{
	ipc_info info;
	if (ipc_info_get(c, &info) < 0)
		return 1;
	struct side s = { .c = c, .count = count, .tag = stag, .max = info.max_msg };
	struct side r = { .c = c, .count = count, .tag = rtag, .max = info.max_msg };
	pthread_t ts, tr;
	if (pthread_create(&tr, NULL, receiver, &r) != 0 ||
	    pthread_create(&ts, NULL, sender, &s) != 0) {
		fprintf(stderr, "%s/%s: pthread_create failed\n", be, who);
		return 1;
	}
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	if (s.err[0] || r.err[0] || r.got != count) {
		fprintf(stderr, "%s/%s: %s %s (received %u of %u)\n", be, who, s.err, r.err, r.got,
			count);
		return 1;
	}
	return 0;
}

struct end_arg {
	const char *be;
	ipc_chan *c;
	uint32_t count;
	int rc;
};

static void *end_thread(void *arg)
{
	struct end_arg *e = arg;
	e->rc = run_end(e->be, "second end", e->c, e->count, 2, 1);
	return NULL;
}

static int run_backend(const char *be, uint32_t count, bool process)
{
	ipc_chan *a = NULL, *b = NULL;
	int r = ipc_pair(be, &a, &b, NULL);
	if (r < 0) {
		fprintf(stderr, "%s: ipc_pair: %s\n", be, ipc_strerror(r));
		return 1;
	}
	if (!process) {
		/* both ends here: four threads */
		struct end_arg e = { be, b, count, 1 };
		pthread_t th;
		if (pthread_create(&th, NULL, end_thread, &e) != 0)
			return 1;
		int rc = run_end(be, "first end", a, count, 1, 2);
		pthread_join(th, NULL);
		ipc_close(a);
		ipc_close(b);
		return rc || e.rc;
	}
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		alarm(120);
		ipc_close(a);
		int rc = run_end(be, "child", b, count, 2, 1);
		/* wait for the parent to finish reading before closing */
		char x;
		ipc_recv(b, &x, 1, 30000);
		ipc_close(b);
		_exit(rc);
	}
	ipc_close(b);
	int rc = run_end(be, "parent", a, count, 1, 2);
	ipc_send(a, "q", 1, 5000);
	int st = tu_wait_child(pid, 60000);
	ipc_close(a);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char sb[64];
		fprintf(stderr, "%s: child %s\n", be, tu_status_str(st, sb, sizeof(sb)));
		rc = 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	uint32_t count = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 5000;
	int failed = 0, ran = 0;
	signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
	for (const char *const *b = ipc_backends(); *b; b++) {
		ipc_info info;
		if (ipc_backend_info(*b, &info) < 0 || !(info.caps & IPC_CAP_PAIR) ||
		    !(info.caps & IPC_CAP_RELIABLE))
			continue;
		int rc = run_backend(*b, count, info.caps & IPC_CAP_PROCESS);
		printf("%s %s\n", rc ? "FAIL" : "ok  ", *b);
		failed += rc;
		ran++;
	}
	printf("%d backends, %d failed\n", ran, failed);
	return ran == 0 ? 77 : failed ? 1 : 0;
}
