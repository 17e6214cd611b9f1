/*
 * test_api.c - the backend-independent parts of the API: error strings,
 * the backend list, the version, NULL handles, listeners.
 */
#include "config.h"
#include "util.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Every error the API documents (include/ipckit.h, docs/api.md). */
static const int api_errors[] = {
	EINVAL, EPROTONOSUPPORT, ENAMETOOLONG, EADDRINUSE, ECONNREFUSED, ENOENT, ETIMEDOUT,
	EMSGSIZE, EPIPE, EAGAIN, EPROTO, EBUSY, ENOTSUP, EBADF, EACCES, ENOMEM,
};
#define N_ERRORS (sizeof(api_errors) / sizeof(api_errors[0]))

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(api, .fini = tu_leak_check);

Test(api, strerror_every_error)
{
	const char *seen[N_ERRORS];

	for (size_t i = 0; i < N_ERRORS; i++) {
		const char *s = ipc_strerror(-api_errors[i]);

		cr_assert(s && s[0], "ipc_strerror(-%d) is empty", api_errors[i]);
		cr_expect(strncmp(s, "Unknown", 7) != 0, "ipc_strerror(-%d) = \"%s\"", api_errors[i],
			  s);
		for (size_t j = 0; j < i; j++)
			cr_expect(strcmp(s, seen[j]) != 0, "ipc_strerror(-%d) and (-%d) are both \"%s\"",
				  api_errors[i], api_errors[j], s);
		seen[i] = s;
	}
	cr_assert(ipc_strerror(0) && ipc_strerror(0)[0], "ipc_strerror(0) is empty");
	/* -EINVAL comes from NULL handles and bad values as much as from URLs */
	cr_expect(strstr(ipc_strerror(-EINVAL), "invalid argument") != NULL, "%s",
		  ipc_strerror(-EINVAL));
	/* Values the API never returns still give a string. */
	cr_assert(ipc_strerror(-99999) && ipc_strerror(-99999)[0]);
	cr_assert(ipc_strerror(12345) && ipc_strerror(12345)[0]);
	cr_assert(ipc_strerror(-2147483647 - 1) != NULL);
}

Test(api, backends_list)
{
	/* what this build was configured with (config.h, from meson) */
	static const char *const built[] = {
#define IPC_BACKEND(name) #name,
		IPC_BACKEND_LIST
#undef IPC_BACKEND
	};
	const size_t nbuilt = sizeof(built) / sizeof(built[0]);
	const char *const *b = ipc_backends();
	size_t n = 0;

	cr_assert(b != NULL);
	for (; b[n]; n++) {
		cr_assert(n < 64, "ipc_backends() is not NULL-terminated");
		cr_assert(n < nbuilt && strcmp(b[n], built[n]) == 0, "ipc_backends()[%zu] = %s", n,
			  b[n]);
		for (size_t k = 0; k < n; k++)
			cr_assert(strcmp(b[k], b[n]) != 0, "backend \"%s\" listed twice", b[n]);
		/* every backend is described in the tests' expectation table,
		 * and ipc_backend_info agrees with it */
		ipc_info info;
		T_OK(ipc_backend_info(b[n], &info));
		cr_assert(strcmp(info.backend, b[n]) == 0 && info.url == NULL);
		cr_expect(info.caps == tu_expect(b[n])->caps, "%s: caps %#x, expected %#x", b[n],
			  info.caps, tu_expect(b[n])->caps);
		/* the largest max_msg a channel can have: at least its default */
		cr_expect(info.max_msg >= tu_expect(b[n])->max_msg && info.max_msg > 0,
			  "%s: max_msg %zu", b[n], info.max_msg);
	}
	T_EQ(n, nbuilt);
	cr_assert(ipc_backends() == b, "ipc_backends() is not a stable list");
	ipc_info info;
	T_EQ(ipc_backend_info("nosuch", &info), -EPROTONOSUPPORT);
	T_EQ(ipc_backend_info(NULL, &info), -EINVAL);
	T_EQ(ipc_backend_info("tcp", NULL), -EINVAL);
}

Test(api, version)
{
	char want[32];

	cr_assert(ipc_version() != NULL);
	cr_expect_str_eq(ipc_version(), IPC_VERSION_STRING);
	snprintf(want, sizeof(want), "%d.%d.%d", IPC_VERSION_MAJOR, IPC_VERSION_MINOR,
		 IPC_VERSION_PATCH);
	cr_expect_str_eq(ipc_version(), want);
}

Test(api, null_handles)
{
	char buf[8];
	void *vp = NULL;
	const void *cvp = NULL;
	ipc_info info;
	ipc_msg m = { buf, 1 };
	ipc_chan *c = NULL;

	snprintf(tu_tag, sizeof(tu_tag), "api");
	T_EQ(ipc_close(NULL), 0);
	T_EQ(ipc_listener_close(NULL), 0);
	T_EQ(ipc_send(NULL, buf, 1, 0), -EINVAL);
	T_EQ(ipc_recv(NULL, buf, sizeof(buf), 0), -EINVAL);
	T_EQ(ipc_sendv(NULL, &m, 1, 0), -EINVAL);
	T_EQ(ipc_fd(NULL), -EINVAL);
	T_EQ(ipc_send_reserve(NULL, 1, &vp, 0), -EINVAL);
	T_EQ(ipc_send_commit(NULL, 1), -EINVAL);
	T_EQ(ipc_recv_peek(NULL, &cvp, 0), -EINVAL);
	T_EQ(ipc_recv_release(NULL), -EINVAL);
	T_EQ(ipc_info_get(NULL, &info), -EINVAL);
	T_EQ(ipc_accept(NULL, &c, 0), -EINVAL);
	cr_expect(ipc_listener_url(NULL) == NULL);
	T_EQ(ipc_listen(NULL, "tcp://127.0.0.1:0", NULL), -EINVAL);
	T_EQ(ipc_pair(NULL, &c, &c, NULL), -EINVAL);
	T_EQ(ipc_pair("nosuch", &c, &c, NULL), -EPROTONOSUPPORT);
}

#if IPC_HAVE_UNIX
/* NULL buffers and pointers on a live channel. */
Test(api, null_arguments)
{
	ipc_chan *a = NULL, *b = NULL;
	ipc_msg m = { NULL, 5 };
	char buf[8];

	snprintf(tu_tag, sizeof(tu_tag), "api/unix");
	T_EQ(ipc_pair("unix", NULL, &b, NULL), -EINVAL);
	T_EQ(ipc_pair("unix", &a, NULL, NULL), -EINVAL);
	T_OK(ipc_pair("unix", &a, &b, NULL));
	T_EQ(ipc_send(a, NULL, 5, 0), -EINVAL);
	T_EQ(ipc_recv(a, NULL, 5, 0), -EINVAL);
	T_EQ(ipc_sendv(a, NULL, 1, 0), -EINVAL);
	T_EQ(ipc_sendv(a, &m, 1, 0), -EINVAL);
	T_EQ(ipc_send_reserve(a, 5, NULL, 0), -EINVAL);
	T_EQ(ipc_recv_peek(a, NULL, 0), -EINVAL);
	T_EQ(ipc_info_get(a, NULL), -EINVAL);
	/* Commit and release with nothing reserved or peeked. */
	cr_expect(ipc_send_commit(a, 0) < 0, "commit without a reservation succeeded");
	cr_expect(ipc_recv_release(a) < 0, "release without a peek succeeded");
	/* Nothing of the above reached the peer. */
	T_EQ(ipc_recv(b, buf, sizeof(buf), 0), -EAGAIN);
	/* A zero-length message may come from a NULL pointer. */
	T_OK(ipc_send(a, NULL, 0, 1000));
	T_EQ(ipc_recv(b, buf, sizeof(buf), 1000), 0);
	ipc_close(a);
	ipc_close(b);
}
#endif

#if IPC_HAVE_FIFO
Test(api, pair_unsupported)
{
	ipc_chan *a = NULL, *b = NULL;

	snprintf(tu_tag, sizeof(tu_tag), "api/fifo");
	T_EQ(ipc_pair("fifo", &a, &b, NULL), -ENOTSUP);
}
#endif

/* A zero-length message as the first one peeked on a channel: every peek
 * of it gives a pointer, not NULL (found by tests/fuzz/fuzz_chan: the
 * second peek gave NULL before any buffer had been allocated); received
 * into no buffer, it is no memcpy to NULL (found by UBSan in this test:
 * the stream layer copied its 0 bytes to the NULL buffer). */
Test(api, peek_empty_first_message)
{
	for (const char *const *be = ipc_backends(); *be; be++) {
		ipc_chan *a = NULL, *b = NULL;
		const void *msg;

		if (ipc_pair(*be, &a, &b, NULL) != 0)
			continue; /* (no pairs on this backend) */
		snprintf(tu_tag, sizeof(tu_tag), "api/%s", *be);
		T_EQ(ipc_send(a, "", 0, 5000), 0);
		msg = NULL;
		T_EQ(ipc_recv_peek(b, &msg, 5000), 0);
		cr_expect(msg != NULL, "[%s] first peek of an empty message: NULL", *be);
		msg = NULL;
		T_EQ(ipc_recv_peek(b, &msg, 0), 0);
		cr_expect(msg != NULL, "[%s] second peek of an empty message: NULL", *be);
		T_EQ(ipc_recv_release(b), 0);
		/* and ipc_recv of one without a buffer (UBSan: no memcpy to NULL) */
		T_EQ(ipc_send(a, "", 0, 5000), 0);
		T_EQ(ipc_recv(b, NULL, 0, 5000), 0);
		ipc_close(a);
		ipc_close(b);
	}
}

/* ------------------------------------------------------------ listeners */

static void listen_unsupported(const char *url)
{
	ipc_listener *l = NULL;
	char left[300];

	T_EQ(ipc_listen(&l, url, NULL), -ENOTSUP);
	cr_expect(tu_leftovers(left, sizeof(left)) == 0, "%s left %s", url, left);
}

Test(api, listen_not_supported)
{
	char url[256], name[64];

	snprintf(tu_tag, sizeof(tu_tag), "api/listen");
	tu_name(name, sizeof(name));
#if IPC_HAVE_FIFO
	snprintf(url, sizeof(url), "fifo:///tmp/%s", name);
	listen_unsupported(url);
#endif
#if IPC_HAVE_PIPE
	listen_unsupported("pipe://0,1");
#endif
#if IPC_HAVE_MQ
	snprintf(url, sizeof(url), "mq:///%s", name);
	listen_unsupported(url);
#endif
#if IPC_HAVE_UDP
	listen_unsupported("udp://127.0.0.1:0");
#endif
	(void)url;
	(void)listen_unsupported;
}

Test(api, listen_bad_url)
{
	ipc_listener *l = NULL;

	snprintf(tu_tag, sizeof(tu_tag), "api/listen");
	T_EQ(ipc_listen(&l, NULL, NULL), -EINVAL);
	T_EQ(ipc_listen(&l, "nosuch://x", NULL), -EPROTONOSUPPORT);
	T_EQ(ipc_listen(&l, "tcp://127.0.0.1", NULL), IPC_HAVE_TCP ? -EINVAL : -EPROTONOSUPPORT);
}

#define N_CLIENTS 6

/* Client process number i: connect, send "client <i>", expect it back
 * with " ok" appended, exit 0. */
static pid_t listen_client(const char *url, int i)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c = NULL;
		char msg[32], want[40], buf[64];
		ssize_t n;

		alarm(30);
		snprintf(msg, sizeof(msg), "client %d", i);
		snprintf(want, sizeof(want), "%s ok", msg);
		C_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
		C_OK(ipc_send(c, msg, strlen(msg), 10000));
		n = ipc_recv(c, buf, sizeof(buf), 10000);
		C_EQ(n, (long)strlen(want));
		C_TRUE(memcmp(buf, want, (size_t)n) == 0);
		/* The server closes first: then -EPIPE. */
		C_EQ(ipc_recv(c, buf, sizeof(buf), 10000), -EPIPE);
		ipc_close(c);
		_exit(0);
	}
	return pid;
}

static void listener_many(const char *url_in, bool port_zero)
{
	ipc_listener *l = NULL, *l2 = NULL;
	ipc_chan *chans[N_CLIENTS] = { NULL };
	ipc_chan *c = NULL;
	pid_t pids[N_CLIENTS];
	char url[512], left[300];
	const char *lurl;

	T_OK(ipc_listen(&l, url_in, NULL));
	lurl = ipc_listener_url(l);
	cr_assert(lurl != NULL, "[%s] ipc_listener_url is NULL", tu_tag);
	snprintf(url, sizeof(url), "%s", lurl);
	if (port_zero) {
		const char *colon = strrchr(url, ':');

		cr_assert(colon && atoi(colon + 1) > 0, "[%s] listener url %s has no port", tu_tag,
			  url);
	}
	/* No client yet. */
	T_EQ(ipc_accept(l, &c, 0), -EAGAIN);
	T_EQ(ipc_accept(l, &c, 50), -ETIMEDOUT);
	/* The URL is taken, for listeners and servers alike. */
	T_EQ(ipc_listen(&l2, url, NULL), -EADDRINUSE);
	T_EQ(ipc_open(&c, url, IPC_SERVER, NULL), -EADDRINUSE);

	for (int i = 0; i < N_CLIENTS; i++)
		pids[i] = listen_client(url, i);
	for (int i = 0; i < N_CLIENTS; i++) {
		char buf[64];
		ssize_t n;

		T_OK(ipc_accept(l, &chans[i], 10000));
		n = ipc_recv(chans[i], buf, sizeof(buf) - 4, 10000);
		T_OK(n);
		memcpy(buf + n, " ok", 3);
		T_OK(ipc_send(chans[i], buf, (size_t)n + 3, 10000));
	}
	/* Accepted channels outlive the listener. */
	T_EQ(ipc_listener_close(l), 0);
	/* Accept order need not be fork order: close all, then reap. */
	for (int i = 0; i < N_CLIENTS; i++)
		ipc_close(chans[i]);
	for (int i = 0; i < N_CLIENTS; i++) {
		char st[64];
		int status;

		status = tu_wait_child(pids[i], 20000);
		cr_expect(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
			  "[%s] client %d: %s", tu_tag, i, tu_status_str(status, st, sizeof(st)));
	}
	cr_expect(tu_leftovers(left, sizeof(left)) == 0, "[%s] left %s", tu_tag, left);
	/* Reopen after close. */
	T_OK(ipc_listen(&l2, url, NULL));
	ipc_listener_close(l2);
}

#if IPC_HAVE_TCP
Test(api, listener_tcp, .timeout = 60)
{
	snprintf(tu_tag, sizeof(tu_tag), "api/listen tcp");
	listener_many("tcp://127.0.0.1:0", true);
}
#endif

#if IPC_HAVE_UNIX
Test(api, listener_unix_path, .timeout = 60)
{
	char url[256], name[64];

	snprintf(tu_tag, sizeof(tu_tag), "api/listen unix");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "unix:///tmp/%s.sock", name);
	listener_many(url, false);
}

Test(api, listener_unix_abstract, .timeout = 60)
{
	char url[256], name[64];

	snprintf(tu_tag, sizeof(tu_tag), "api/listen unix@");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "unix://@%s", name);
	listener_many(url, false);
}
#endif

#if IPC_HAVE_SHM
Test(api, listener_shm, .timeout = 60)
{
	char url[256], name[64];

	snprintf(tu_tag, sizeof(tu_tag), "api/listen shm");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "shm://@%s", name);
	listener_many(url, false);
}
#endif

#if IPC_HAVE_TCP
/* No SIGPIPE: a send to a closed peer with the default disposition. */
Test(api, no_sigpipe)
{
	ipc_chan *a = NULL, *b = NULL;
	char buf[4096] = { 0 };
	int rc = 0;

	snprintf(tu_tag, sizeof(tu_tag), "api/tcp");
	signal(SIGPIPE, SIG_DFL);
	T_OK(ipc_pair("tcp", &a, &b, NULL));
	ipc_close(b);
	for (int i = 0; i < 50 && rc == 0; i++)
		rc = ipc_send(a, buf, sizeof(buf), 1000);
	T_EQ(rc, -EPIPE);
	ipc_close(a);
}
#endif

#if IPC_HAVE_PIPE
Test(api, no_sigpipe_pipe)
{
	ipc_chan *a = NULL, *b = NULL;
	char buf[4096] = { 0 };
	int rc = 0;

	snprintf(tu_tag, sizeof(tu_tag), "api/pipe");
	signal(SIGPIPE, SIG_DFL);
	T_OK(ipc_pair("pipe", &a, &b, NULL));
	ipc_close(b);
	for (int i = 0; i < 50 && rc == 0; i++)
		rc = ipc_send(a, buf, sizeof(buf), 1000);
	T_EQ(rc, -EPIPE);
	ipc_close(a);
}
#endif

/* While one thread waits (timeout -1) for a server channel's peer to
 * arrive, another thread's send with timeout 0 returns -EAGAIN at once
 * instead of waiting for the first thread's attach. The peer then comes
 * and the waiting receive gets its message. */
static ipc_chan *lk_chan;
static ssize_t lk_got;

static void *lk_receiver(void *arg)
{
	char buf[16];
	(void)arg;
	lk_got = ipc_recv(lk_chan, buf, sizeof(buf), -1);
	return NULL;
}

Test(api, attach_lock_honours_each_threads_timeout, .timeout = 60)
{
	/* every backend whose server attaches a reliable peer from another
	 * process (the expectation table says which) */
	const unsigned want = IPC_CAP_RELIABLE | IPC_CAP_UNRELATED | IPC_CAP_PROCESS;
	for (const char *const *be = ipc_backends(); *be; be++) {
		char url[128], curl[160];
		ipc_chan *c = NULL;
		ipc_info info;
		pthread_t t;

		if ((tu_expect(*be)->caps & want) != want || !tu_url(url, sizeof(url), *be, false))
			continue;
		T_OK(ipc_open(&lk_chan, url, IPC_SERVER, NULL));
		snprintf(tu_tag, sizeof(tu_tag), "%s", *be);
		cr_assert_eq(pthread_create(&t, NULL, lk_receiver, NULL), 0);
		tu_sleep_ms(50); /* (most often the receiver now holds the lock) */
		/* Whether or not the receiver holds the attach lock yet, a
		 * send that may not wait cannot succeed without a peer. */
		T_EQ(ipc_send(lk_chan, "x", 1, 0), -EAGAIN);
		T_OK(ipc_info_get(lk_chan, &info));
		snprintf(curl, sizeof(curl), "%s", info.url);
		T_OK(ipc_open(&c, curl, IPC_CLIENT, NULL));
		T_OK(ipc_send(c, "hello", 5, 10000));
		pthread_join(t, NULL);
		T_EQ(lk_got, 5);
		ipc_close(c);
		ipc_close(lk_chan);
	}
}
