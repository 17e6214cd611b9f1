/*
 * util.h - helpers shared by the ipckit Criterion tests: unique names,
 * message patterns, bounded child waits, side pipes between a test and
 * its forked peer, leftover checks, and assertion macros that print the
 * error name of a negative return value.
 *
 * Tests run in processes forked by Criterion, several at once: every
 * name a test creates comes from tu_name()/tu_url(), which put the test
 * process's pid in it ("ipck-<pid><token>-<n>").
 */
#ifndef IPCKIT_TEST_UTIL_H
#define IPCKIT_TEST_UTIL_H

#include "ipckit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <pthread.h>

/*
 * The expectation table: what each backend should do (caps, URL form,
 * default max_msg), written down in util.c independently of the library,
 * so that a test compares the library against it and decides what to run
 * from it, never from a backend's name.
 */
enum tu_url_form {
	TU_URL_NONE,     /* no URL of its own (pipe: only inherited fds) */
	TU_URL_HOSTPORT, /* scheme://127.0.0.1:port */
	TU_URL_PATH,     /* scheme:///tmp/name (a file) */
	TU_URL_MQNAME,   /* scheme:///name (no file) */
	TU_URL_NAME,     /* scheme://name (no file, no slash) */
};

struct tu_expect {
	const char *name;
	unsigned caps;          /* exactly what ipc_info must report */
	enum tu_url_form url;
	size_t max_msg;         /* default max_msg; 0: the kernel's mq limit */
	bool cut;               /* a message can be cut by a deadline mid-write */
	bool backlog;           /* clients connect to a listening socket */
	bool announces_max;     /* the peers exchange their max_msg */
	bool user_quota;        /* its channels count against a per-user kernel
	                           quota (RLIMIT_MSGQUEUE) shared by every process */
};

/* The entry for a compiled-in backend (the test fails for one it does not
 * know: a new backend must be described here first). */
const struct tu_expect *tu_expect(const char *be);

/* A label printed by the T_* macros ("tcp/pair", "unix-path/srv"...). */
extern char tu_tag[64];

/* The pid of the test process: set by the first tu_* call that needs it,
 * inherited by forked peers so names agree across the fork. */
pid_t tu_test_pid(void);

/* "ipck-<pid><token>-<n>" with a fresh n on each call (the token, fixed per
 * test process, tells this process's names from a dead one's with the
 * same pid). */
/* A suite's fini: fails the test if LeakSanitizer finds a leak (no-op
 * without -Db_sanitize=address). See sanitize.c. */
void tu_leak_check(void);

void tu_name(char *buf, size_t cap);

/* A fresh server URL in backend be's form (tu_expect(be)->url):
 *   HOSTPORT "<be>://127.0.0.1:0"; PATH "<be>:///tmp/ipck-..." or, with
 *   abstract, "<be>://@ipck-..."; MQNAME "<be>:///ipck-..."; NAME
 *   "<be>://ipck-...". Returns false when the backend has no URL form. */
bool tu_url(char *buf, size_t cap, const char *be, bool abstract);

/* The same with a fixed address a client can be given before its server
 * exists: HOSTPORT forms get a port that was free a moment ago (for both
 * TCP and UDP). */
bool tu_fixed_url(char *buf, size_t cap, const char *be, bool abstract);

/* Two threads open url as IPC_SERVER at the same moment (a barrier);
 * res[i] gets each ipc_open's result and ch[i] its channel. */
void tu_open_race(const char *url, int res[2], ipc_chan *ch[2]);

/* A port on 127.0.0.1 that was free a moment ago (type SOCK_STREAM or
 * SOCK_DGRAM), or -1. */
int tu_free_port(int type);

/* Deterministic message contents: byte i of message (seed) is a function
 * of both, so a shifted, truncated or mixed-up message is detected. */
void tu_fill(void *buf, size_t len, uint32_t seed);
/* Index of the first wrong byte, or -1 when buf matches. */
ssize_t tu_check(const void *buf, size_t len, uint32_t seed);

/*
 * A peer of the test: a forked process, or, for backends whose ends must
 * stay in one process (no IPC_CAP_PROCESS: inproc), a thread. fn's return
 * value is its exit status; a failed C_* check in a thread peer ends that
 * thread with status 2, as it ends a process peer.
 */
struct tu_peer {
	bool thread;
	pid_t pid;          /* process peers */
	pthread_t th;       /* thread peers */
	bool joined;
	int (*fn)(void *);
	void *arg;
};
void tu_peer_start(struct tu_peer *p, bool thread, int (*fn)(void *), void *arg);
/* A wait status (a thread's result as an exit status), or -1 when it did
 * not end within timeout_ms (a process is then killed; a thread cannot be). */
int tu_peer_wait(struct tu_peer *p, int timeout_ms);
/* True in a thread peer (side pipes are shared with the test then). */
bool tu_in_thread_peer(void);

/* Wait for a child at most timeout_ms; SIGKILL and reap it after that.
 * Returns the wait status, or -1 when it had to be killed. */
int tu_wait_child(pid_t pid, int timeout_ms);
/* Describe a wait status ("exit 0", "signal 9", "timed out"). */
const char *tu_status_str(int status, char *buf, size_t cap);

/* Side channel between a test and its peer process (plain pipes). */
struct tu_side {
	int p2c[2];
	int c2p[2];
};
void tu_side_init(struct tu_side *s);
/* After fork: keep only this side's ends. */
void tu_side_parent(struct tu_side *s);
void tu_side_child(struct tu_side *s);
void tu_side_close(struct tu_side *s);
/* Write one byte / a length-prefixed string to fd; false on error. */
bool tu_put(int fd, char ch);
bool tu_put_str(int fd, const char *str);
/* Read one byte within timeout_ms: the byte (0..255), or -1. */
int tu_get(int fd, int timeout_ms);
bool tu_get_str(int fd, char *buf, size_t cap, int timeout_ms);

/* Names left in /tmp, /dev/mqueue or the abstract socket namespace that
 * start with "ipck-<test pid>-": how many, and the first in buf. */
int tu_leftovers(char *buf, size_t cap);

/* Monotonic milliseconds. */
int64_t tu_now_ms(void);
void tu_sleep_ms(int ms);

/* "-EPIPE (Broken pipe)"-style text for a return value. */
const char *tu_err(long r);

/* In a forked peer: report a failed check on stderr and _exit(code). */
__attribute__((noreturn)) void tu_child_fail(const char *file, int line, const char *what,
					     long got, long want);

/* Assertions for the test process (Criterion). */
#define T_OK(expr) do { \
		long t_r_ = (long)(expr); \
		cr_assert(t_r_ >= 0, "[%s] %s = %ld %s", tu_tag, #expr, t_r_, tu_err(t_r_)); \
	} while (0)
#define T_EQ(expr, want) do { \
		long t_r_ = (long)(expr), t_w_ = (long)(want); \
		cr_assert(t_r_ == t_w_, "[%s] %s = %ld %s, expected %ld %s", tu_tag, #expr, \
			  t_r_, tu_err(t_r_), t_w_, tu_err(t_w_)); \
	} while (0)
#define T_TRUE(cond, ...) cr_assert(cond, __VA_ARGS__)

/* The same for a forked peer (never cr_assert there). */
#define C_OK(expr) do { \
		long c_r_ = (long)(expr); \
		if (c_r_ < 0) \
			tu_child_fail(__FILE__, __LINE__, #expr, c_r_, 0); \
	} while (0)
#define C_EQ(expr, want) do { \
		long c_r_ = (long)(expr), c_w_ = (long)(want); \
		if (c_r_ != c_w_) \
			tu_child_fail(__FILE__, __LINE__, #expr, c_r_, c_w_); \
	} while (0)
#define C_TRUE(cond) do { \
		if (!(cond)) \
			tu_child_fail(__FILE__, __LINE__, #cond, 0, 1); \
	} while (0)

#endif
