/*
 * conn.h - the harness of the parameterised suites (conformance.c,
 * contract.c) and of the per-backend tests that want the same setup:
 *
 *   - (the expectation table, tu_expect() in util.h, says what each backend
 *     should do; tests decide what to run from it, never from a name);
 *   - test parameters (backend, mode) built at run time from ipc_backends():
 *       pair  ipc_pair(), then fork: the test keeps one end, a child the other;
 *       srv   the test process opens the server URL, a forked child the client;
 *       cli   a forked child opens the server, the test process the client;
 *     backends with @abstract names run srv/cli once with a path and once
 *     with a name;
 *   - a connection with a peer process (conn_start/conn_end), side pipes
 *     between the test and its peer, the echo peer, a handshake;
 *   - endpoint holders and early clients for the lifecycle tests.
 *
 * The peer process never uses Criterion: it checks with C_* (util.h),
 * reports on stderr and exits non-zero; conn_end() turns that into a test
 * failure. Peers carry an alarm() so none outlives a broken test.
 */
#ifndef IPCKIT_TEST_CONN_H
#define IPCKIT_TEST_CONN_H

#include "util.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <pthread.h>
#include <stdbool.h>

#define MIB ((size_t)1 << 20)
#define PEER_ALARM_S 40
#define PEER_WAIT_MS 30000

/* ------------------------------------------------------------ parameters */

enum cmode { M_PAIR, M_SRV, M_CLI };
extern const char *const mode_names[];

struct cparam {
	char be[16];
	int mode;
	bool abstract;
};

enum pkind { PK_ALL, PK_URL, PK_PAIR, PK_PAIR_URL };
/* PK_ALL: every mode; PK_URL: one srv entry per URL form; PK_PAIR: pair
 * only; PK_PAIR_URL: pair and srv entries. */
struct criterion_test_params make_params(int kind);

#define CONF_TEST_KIND(suite, name, kind, timeout_s) \
	ParameterizedTestParameters(suite, name) { return make_params(kind); } \
	ParameterizedTest(struct cparam *p, suite, name, .timeout = (timeout_s))
#define CONF_TEST(name, timeout_s) CONF_TEST_KIND(conf, name, PK_ALL, timeout_s)
#define URL_TEST(name, timeout_s) CONF_TEST_KIND(conf_url, name, PK_URL, timeout_s)

void set_tag(const struct cparam *p);
/* True when the current test's backend keeps both ends in one process
 * (no IPC_CAP_PROCESS): peers are threads, and cases that kill or fork a
 * peer do not apply. */
bool peers_in_threads(void);
#define SKIP_THREAD_PEERS(p, why) do { \
		if (peers_in_threads()) \
			cr_skip_test("[%s] both ends live in one process: %s", tu_tag, why); \
	} while (0)
/* The expectation for p's backend, and shorthands. */
const struct tu_expect *pexp(const struct cparam *p);
bool reliable(const char *be);
bool has_cap(const char *be, unsigned cap);

#define SKIP_UNRELIABLE(p) do { \
		if (!reliable((p)->be)) \
			cr_skip_test("[%s] needs reliable delivery / peer-death signal", tu_tag); \
	} while (0)

/* ------------------------------------------------------------ connection */

struct conn;
/* Runs in the peer process with its end; returns the exit code. */
typedef int (*peer_fn)(ipc_chan *c, struct conn *k, void *arg);

struct conn {
	const struct cparam *p;
	ipc_chan *c;          /* the test process's end */
	pid_t pid;            /* the peer process (0 for a thread), 0 once reaped */
	struct tu_peer peer;  /* the peer, a process or a thread */
	void *start;          /* what it was started with (conn.c) */
	struct tu_side side;  /* parent writes p2c[1], reads c2p[0] */
	char url[512];        /* resolved URL (url modes) */
	bool client;          /* this process holds the client end */
};

/* The side-pipe ends as seen from the peer. */
#define PEER_IN(k) ((k)->side.p2c[0])
#define PEER_OUT(k) ((k)->side.c2p[1])
#define TEST_IN(k) ((k)->side.c2p[0])
#define TEST_OUT(k) ((k)->side.p2c[1])

/* Open the two ends as p->mode says and start fn in the peer process. */
void conn_start(struct conn *k, const struct cparam *p, const ipc_opts *opts, peer_fn fn,
		void *arg);
/* The same with other options for the peer's end (not for pair mode,
 * whose ends are made by one call with opts). */
void conn_start2(struct conn *k, const struct cparam *p, const ipc_opts *opts,
		 const ipc_opts *peer_opts, peer_fn fn, void *arg);
/* Reap the peer (bounded) and require exit status 0 (or the signal). */
void conn_reap(struct conn *k, int expect_signal);
/* Close this end, let the peer finish, and check nothing is left behind. */
void conn_end(struct conn *k);

/* The client end speaks first (a udp server learns its peer from the
 * client's first datagram); pair ends: the peer speaks first. */
int handshake(ipc_chan *c, bool client);
void *xmalloc(size_t n);
bool is_end(const void *buf, ssize_t n);
/* True once the test process has closed its side pipes. */
bool test_gone(struct conn *k);
/* Peer: echo every message until "END" (echoed too), the test's end
 * closing (-EPIPE) or, on unreliable backends, its side pipe closing. */
int peer_echo(ipc_chan *c, struct conn *k, void *arg);
/* Test side of peer_echo's end. */
void echo_finish(struct conn *k);
/* Send len bytes of pattern seed and expect the same message back. */
void echo_check(struct conn *k, size_t len, uint32_t seed, char *sbuf, char *rbuf, size_t rcap);
size_t chan_max(ipc_chan *c);
/* poll(fd) for POLLIN within timeout_ms (asserts fd is open). */
int readable(int fd, int timeout_ms);
size_t read_proc_size(const char *path);

/* Reap a forked peer (bounded) and require exit status 0; who names it in
 * the failure message. */
void peer_reap_ok(pid_t pid, const char *who);

/* A thread that SIGKILLs pid after delay_ms. */
struct killer {
	pthread_t th;
	pid_t pid;
	int delay_ms;
	_Atomic int64_t killed_at;
};
void killer_start(struct killer *kl, pid_t pid, int delay_ms);

/* ---------------------------------------------------- endpoint lifecycle */

/* A peer (process or thread, as the backend allows) holding a server on
 * url: it reports the resolved URL, then waits for a byte: 'a' = wait for a
 * client and handshake, 'q' = close and exit. The test may also SIGKILL a
 * process holder. */
struct holder {
	pid_t pid;            /* 0 for a thread */
	struct tu_peer peer;
	struct tu_side side;
	char url[512];
};
void holder_start(struct holder *h, const char *url);
void holder_stop(struct holder *h, bool kill_it);

/* A client peer started before the test opens its server, so that a
 * process inherits nothing of the server's endpoint (a forked copy of a
 * listening socket would keep the endpoint alive). It waits for the URL on
 * a pipe (client_go), connects within connect_timeout_ms, handshakes, and
 * stays until the server side closes. */
struct early {
	pid_t pid;            /* 0 for a thread */
	struct tu_peer peer;
	int rfd, wfd;
	int timeout_ms;
};
void client_spawn(struct early *e, int connect_timeout_ms);
void client_go(struct early *e, const char *url);
void client_start(struct early *e, const char *url, int connect_timeout_ms);
void client_reap(struct early *e);
void no_leftovers(const char *when);

#endif
