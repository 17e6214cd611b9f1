/*
 * test_udp.c - udp backend specifics: port 0, IPv6, host names, the
 * 65507-byte limit, too-small receive buffers, how the server learns its
 * peer (a third party's datagrams queued before the server's first call
 * are dropped, the peer's delivered in order), datagrams above max_msg
 * dropped whatever the buffer, the port held for the channel's lifetime,
 * refused clients, -EPIPE from ICMP port unreachable, and out of
 * descriptors at every point of open and pair.
 * Every test binds port 0 or a port it just found free, so tests can run
 * in parallel.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ipckit.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <unistd.h>
#include "util.h"

/* the fault hooks of the test build (lib/fault.h) */
#define IPC_FAULT_INJECTION 1
#include "fault.h"

#define UDP_MAX 65507

/* A server on url (port 0) and a client on its resolved URL. */
static void open_both(const char *url, ipc_chan **s, ipc_chan **c)
{
	cr_assert_eq(ipc_open(s, url, IPC_SERVER, NULL), 0);
	ipc_info info;
	cr_assert_eq(ipc_info_get(*s, &info), 0);
	cr_assert_eq(ipc_open(c, info.url, IPC_CLIENT, NULL), 0, "client on %s", info.url);
}

static void exchange(ipc_chan *s, ipc_chan *c)
{
	char buf[64];
	cr_assert_eq(ipc_send(c, "ping", 4, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 4);
	cr_assert_eq(memcmp(buf, "ping", 4), 0);
	cr_assert_eq(ipc_send(s, "pong!", 5, 1000), 0);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 5);
	cr_assert_eq(memcmp(buf, "pong!", 5), 0);
}

/* A UDP port on 127.0.0.1 that nothing is bound to right now. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(udp, .fini = tu_leak_check);

Test(udp, port_zero_resolves, .timeout = 10)
{
	ipc_chan *s, *c;
	open_both("udp://127.0.0.1:0", &s, &c);
	ipc_info info;
	cr_assert_eq(ipc_info_get(s, &info), 0);
	int port = 0;
	cr_assert_eq(sscanf(info.url, "udp://127.0.0.1:%d", &port), 1, "%s", info.url);
	cr_assert(port > 0 && port < 65536);
	cr_assert_str_eq(info.backend, "udp");
	cr_assert_eq(info.max_msg, UDP_MAX);
	cr_assert_eq(info.caps & IPC_CAP_RELIABLE, 0);
	cr_assert(info.caps & IPC_CAP_CROSS_HOST);
	cr_assert(info.caps & IPC_CAP_UNRELATED);
	exchange(s, c);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, ipv6_loopback, .timeout = 10)
{
	ipc_chan *s, *c;
	open_both("udp://[::1]:0", &s, &c);
	ipc_info info;
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert(strncmp(info.url, "udp://[::1]:", 12) == 0, "%s", info.url);
	exchange(s, c);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, host_name, .timeout = 10)
{
	ipc_chan *s, *c;
	open_both("udp://localhost:0", &s, &c);
	exchange(s, c);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, max_msg_limit, .timeout = 10)
{
	ipc_chan *s, *c;
	ipc_opts o = { .max_msg = UDP_MAX + 1 };
	cr_assert_eq(ipc_open(&s, "udp://127.0.0.1:0", IPC_SERVER, &o), -EMSGSIZE);
	cr_assert_eq(ipc_open(&s, "udp://127.0.0.1:0?max_msg=65508", IPC_SERVER, NULL), -EMSGSIZE);

	open_both("udp://127.0.0.1:0", &s, &c);
	char *big = malloc(UDP_MAX + 1), *got = malloc(UDP_MAX + 1);
	cr_assert(big && got);
	for (size_t i = 0; i <= UDP_MAX; i++)
		big[i] = (char)(i * 7);
	cr_assert_eq(ipc_send(c, big, UDP_MAX + 1, 1000), -EMSGSIZE);
	cr_assert_eq(ipc_send(c, big, UDP_MAX, 1000), 0);
	cr_assert_eq(ipc_recv(s, got, UDP_MAX + 1, 5000), UDP_MAX);
	cr_assert_eq(memcmp(big, got, UDP_MAX), 0);
	free(big);
	free(got);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, small_buffer_keeps_datagram, .timeout = 10)
{
	ipc_chan *a, *b;
	char buf[256];
	cr_assert_eq(ipc_pair("udp", &a, &b, NULL), 0);
	cr_assert_eq(ipc_send(a, "0123456789abcdef", 16, 1000), 0);
	cr_assert_eq(ipc_send(a, "second", 6, 1000), 0);
	cr_assert_eq(ipc_recv(b, buf, 15, 5000), -EMSGSIZE);
	cr_assert_eq(ipc_recv(b, buf, 4, 0), -EMSGSIZE);
	struct pollfd p = { .fd = ipc_fd(b), .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 0), 1);
	cr_assert_eq(ipc_recv(b, buf, 16, 0), 16);
	cr_assert_eq(memcmp(buf, "0123456789abcdef", 16), 0);
	/* A small cap that fits takes the datagram off the queue. */
	cr_assert_eq(ipc_recv(b, buf, 6, 5000), 6);
	cr_assert_eq(memcmp(buf, "second", 6), 0);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 0), -EAGAIN);
	cr_assert_eq(poll(&p, 1, 0), 0);
	ipc_close(a);
	ipc_close(b);
}

Test(udp, server_learns_peer_from_hello, .timeout = 10)
{
	ipc_chan *s, *c;
	char buf[64];
	cr_assert_eq(ipc_open(&s, "udp://127.0.0.1:0", IPC_SERVER, NULL), 0);
	/* No client yet: the server's send waits for one within its timeout. */
	cr_assert_eq(ipc_send(s, "x", 1, 0), -EAGAIN);
	cr_assert_eq(ipc_send(s, "x", 1, 50), -ETIMEDOUT);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EAGAIN);
	ipc_info info;
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert_eq(ipc_open(&c, info.url, IPC_CLIENT, NULL), 0);
	/* The client has only said hello; the server can now reach it. */
	cr_assert_eq(ipc_send(s, "first", 5, 5000), 0);
	cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 5);
	cr_assert_eq(memcmp(buf, "first", 5), 0);
	/* The hello was swallowed, not delivered. */
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EAGAIN);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, server_recv_learns_peer, .timeout = 10)
{
	ipc_chan *s, *c;
	char buf[64];
	open_both("udp://127.0.0.1:0", &s, &c);
	cr_assert_eq(ipc_send(c, "data", 4, 1000), 0);
	/* The first recv swallows the hello and returns the data. */
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 4);
	cr_assert_eq(memcmp(buf, "data", 4), 0);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, second_server_in_use, .timeout = 10)
{
	ipc_chan *s, *s2;
	cr_assert_eq(ipc_open(&s, "udp://127.0.0.1:0", IPC_SERVER, NULL), 0);
	ipc_info info;
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert_eq(ipc_open(&s2, info.url, IPC_SERVER, NULL), -EADDRINUSE);
	char url[128];
	snprintf(url, sizeof url, "%s", info.url);
	ipc_close(s);
	/* Closed: the port is free again. */
	cr_assert_eq(ipc_open(&s, url, IPC_SERVER, NULL), 0);
	ipc_close(s);
}

/* The connected socket is the endpoint: the port stays bound while the
 * channel is open, attached or not, and is free once it is closed. */
Test(udp, port_kept_while_open, .timeout = 10)
{
	ipc_chan *s, *c, *s2;
	char url[128];
	open_both("udp://127.0.0.1:0", &s, &c);
	exchange(s, c);
	ipc_info info;
	cr_assert_eq(ipc_info_get(s, &info), 0);
	snprintf(url, sizeof url, "%s", info.url);
	cr_assert_eq(ipc_open(&s2, url, IPC_SERVER, NULL), -EADDRINUSE);
	exchange(s, c);
	ipc_close(c);
	cr_assert_eq(ipc_open(&s2, url, IPC_SERVER, NULL), -EADDRINUSE);
	ipc_close(s);
	cr_assert_eq(ipc_open(&s2, url, IPC_SERVER, NULL), 0);
	ipc_close(s2);
}

Test(udp, client_without_server, .timeout = 10)
{
	ipc_chan *c;
	char url[64];
	snprintf(url, sizeof url, "udp://127.0.0.1:%d?connect_timeout_ms=0", free_port());
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, NULL), -ECONNREFUSED);
	snprintf(url, sizeof url, "udp://127.0.0.1:%d?connect_timeout_ms=50", free_port());
	cr_assert_eq(ipc_open(&c, url, IPC_CLIENT, NULL), -ETIMEDOUT);
}

Test(udp, second_client_refused, .timeout = 10)
{
	ipc_chan *s, *c, *c2;
	open_both("udp://127.0.0.1:0", &s, &c);
	exchange(s, c); /* the server is now connected to c */
	ipc_info info;
	cr_assert_eq(ipc_info_get(s, &info), 0);
	char url[160];
	snprintf(url, sizeof url, "%s?connect_timeout_ms=0", info.url);
	cr_assert_eq(ipc_open(&c2, url, IPC_CLIENT, NULL), -ECONNREFUSED);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, epipe_after_peer_closed, .timeout = 10)
{
	ipc_chan *s, *c;
	char buf[64];
	open_both("udp://127.0.0.1:0", &s, &c);
	exchange(s, c);
	cr_assert_eq(ipc_send(c, "last", 4, 1000), 0);
	ipc_close(c);
	/* The send reaches a closed port; the ICMP answer makes the channel
	 * report -EPIPE, after the datagram already queued. */
	int r = ipc_send(s, "x", 1, 1000);
	cr_assert(r == 0 || r == -EPIPE, "%d", r);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 1000), 4);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 1000), -EPIPE);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, -1), -EPIPE);
	struct pollfd p = { .fd = ipc_fd(s), .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 0), 1); /* readable: recv does not block */
	cr_assert_eq(ipc_send(s, "x", 1, 1000), -EPIPE);
	ipc_close(s);
}

Test(udp, sendv_batch, .timeout = 10)
{
	ipc_chan *a, *b;
	char buf[64];
	cr_assert_eq(ipc_pair("udp", &a, &b, NULL), 0);
	ipc_msg m[3] = { { "one", 3 }, { "", 0 }, { "three", 5 } };
	cr_assert_eq(ipc_sendv(a, m, 3, 1000), 3);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 5000), 3);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 5000), 0);
	cr_assert_eq(ipc_recv(b, buf, sizeof buf, 5000), 5);
	cr_assert_eq(memcmp(buf, "three", 5), 0);
	ipc_close(a);
	ipc_close(b);
}

/* A socket on 127.0.0.1 that sends to the server of url. */
static int third_party(const char *url)
{
	int port = 0;
	cr_assert_eq(sscanf(url, "udp://127.0.0.1:%d", &port), 1, "%s", url);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	cr_assert(fd >= 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

/* Datagrams that reach the server after the client's hello and before its
 * first call: the client's are delivered in order (also while they wait
 * in memory: ipc_fd says so), a third party's never; after the first call
 * the kernel filters by the connected address. With a large and a small
 * buffer, and with a send as the server's first call. */
static void third_party_case(size_t cap, bool send_first)
{
	ipc_chan *s, *c;
	char buf[64];
	ipc_info info;
	cr_assert_eq(ipc_open(&s, "udp://127.0.0.1:0", IPC_SERVER, NULL), 0);
	int fd = ipc_fd(s);
	cr_assert(fd >= 0);
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert_eq(ipc_open(&c, info.url, IPC_CLIENT, NULL), 0);
	int x = third_party(info.url);
	cr_assert_eq(send(x, "intruder", 8, 0), 8);
	cr_assert_eq(ipc_send(c, "d1", 2, 1000), 0);
	cr_assert_eq(send(x, "x2", 2, 0), 2);
	cr_assert_eq(send(x, "", 0, 0), 0);
	cr_assert_eq(ipc_send(c, "d2", 2, 1000), 0);
	cr_assert_eq(ipc_send(c, "", 0, 1000), 0);
	cr_assert_eq(send(x, "x3", 2, 0), 2);
	if (send_first) {
		cr_assert_eq(ipc_send(s, "hi", 2, 5000), 0);
		cr_assert_eq(ipc_recv(c, buf, sizeof buf, 5000), 2);
	}
	cr_assert_eq(ipc_recv(s, buf, cap, 5000), 2);
	cr_assert_eq(memcmp(buf, "d1", 2), 0);
	cr_assert(readable(fd), "two datagrams of the client wait in memory");
	cr_assert_eq(ipc_recv(s, buf, 1, 0), -EMSGSIZE); /* kept, first in line */
	cr_assert_eq(ipc_recv(s, buf, cap, 0), 2);
	cr_assert_eq(memcmp(buf, "d2", 2), 0);
	cr_assert_eq(ipc_recv(s, buf, cap, 0), 0);
	cr_assert(!readable(fd));
	cr_assert_eq(ipc_recv(s, buf, cap, 0), -EAGAIN);
	/* and from now on the kernel drops what the third party sends */
	cr_assert_eq(send(x, "x4", 2, 0), 2);
	cr_assert_eq(ipc_send(c, "d3", 2, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, cap, 5000), 2);
	cr_assert_eq(memcmp(buf, "d3", 2), 0);
	cr_assert_eq(ipc_recv(s, buf, cap, 0), -EAGAIN);
	close(x);
	ipc_close(c);
	ipc_close(s);
}

Test(udp, third_party_dropped_large_buffer, .timeout = 10)
{
	third_party_case(UDP_MAX, false);
}

Test(udp, third_party_dropped_small_buffer, .timeout = 10)
{
	third_party_case(sizeof "intruder", false);
}

Test(udp, third_party_dropped_send_first, .timeout = 10)
{
	third_party_case(UDP_MAX, true);
}

/* A datagram longer than this end's max_msg (from a peer with a larger
 * one) is dropped, whatever cap is: queued before the server's first
 * call, received with cap >= max_msg, or peeked with a smaller cap. */
Test(udp, above_max_msg_dropped, .timeout = 10)
{
	ipc_chan *s, *c;
	char big[200] = { 0 }, buf[UDP_MAX];
	ipc_info info;
	cr_assert_eq(ipc_open(&s, "udp://127.0.0.1:0?max_msg=100", IPC_SERVER, NULL), 0);
	cr_assert_eq(ipc_info_get(s, &info), 0);
	cr_assert_eq(ipc_open(&c, info.url, IPC_CLIENT, NULL), 0);
	cr_assert_eq(ipc_send(c, big, 101, 1000), 0); /* the client's limit is 65507 */
	cr_assert_eq(ipc_send(c, "ok1", 3, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 3); /* swept */
	cr_assert_eq(ipc_send(c, big, sizeof big, 1000), 0);
	cr_assert_eq(ipc_send(c, "ok2", 3, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 5000), 3); /* cap >= max_msg */
	cr_assert_eq(memcmp(buf, "ok2", 3), 0);
	cr_assert_eq(ipc_send(c, big, sizeof big, 1000), 0);
	cr_assert_eq(ipc_send(c, "ok3", 3, 1000), 0);
	cr_assert_eq(ipc_recv(s, buf, 50, 5000), 3); /* peeked */
	cr_assert_eq(memcmp(buf, "ok3", 3), 0);
	cr_assert_eq(ipc_recv(s, buf, sizeof buf, 0), -EAGAIN);
	ipc_close(c);
	ipc_close(s);
}

/* Descriptors open in this process. */
static int fd_count(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

/* Every descriptor of a server's open, a client's open, a pair and ipc_fd
 * fails in turn: exact -EMFILE, nothing leaked, and then it works. */
Test(udp, emfile_each_point, .timeout = 30)
{
	int base = fd_count();
	ipc_chan *s, *c, *a, *b;
	ipc_info info;
	for (long nth = 0;; nth++) {
		ipc__fault_arm(IPC_FAULT_FD, nth, false);
		int r = ipc_open(&s, "udp://127.0.0.1:0", IPC_SERVER, NULL);
		long failed = ipc__fault_failed(IPC_FAULT_FD);
		ipc__fault_arm(IPC_FAULT_FD, -1, false);
		if (!failed) {
			cr_assert_eq(r, 0);
			cr_assert(nth >= 1, "a server's socket never failed");
			break;
		}
		cr_assert_eq(r, -EMFILE, "server, descriptor %ld: %s", nth, tu_err(r));
		cr_assert_eq(fd_count(), base, "server, descriptor %ld: leak", nth);
	}
	cr_assert_eq(ipc_info_get(s, &info), 0);
	for (long nth = 0;; nth++) {
		int before = fd_count();
		ipc__fault_arm(IPC_FAULT_FD, nth, false);
		int r = ipc_open(&c, info.url, IPC_CLIENT, NULL);
		long failed = ipc__fault_failed(IPC_FAULT_FD);
		ipc__fault_arm(IPC_FAULT_FD, -1, false);
		if (!failed) {
			cr_assert_eq(r, 0);
			break;
		}
		cr_assert_eq(r, -EMFILE, "client, descriptor %ld: %s", nth, tu_err(r));
		cr_assert_eq(fd_count(), before, "client, descriptor %ld: leak", nth);
	}
	exchange(s, c);
	ipc_close(c);
	ipc_close(s);
	for (long nth = 0;; nth++) {
		ipc__fault_arm(IPC_FAULT_FD, nth, false);
		int r = ipc_pair("udp", &a, &b, NULL);
		long failed = ipc__fault_failed(IPC_FAULT_FD);
		ipc__fault_arm(IPC_FAULT_FD, -1, false);
		if (!failed) {
			cr_assert_eq(r, 0);
			break;
		}
		cr_assert_eq(r, -EMFILE, "pair, descriptor %ld: %s", nth, tu_err(r));
		cr_assert_eq(fd_count(), base, "pair, descriptor %ld: leak", nth);
	}
	for (long nth = 0;; nth++) {
		ipc__fault_arm(IPC_FAULT_FD, nth, false);
		int fd = ipc_fd(a);
		long failed = ipc__fault_failed(IPC_FAULT_FD);
		ipc__fault_arm(IPC_FAULT_FD, -1, false);
		if (!failed) {
			cr_assert(fd >= 0);
			break;
		}
		cr_assert_eq(fd, -EMFILE, "ipc_fd, descriptor %ld: %s", nth, tu_err(fd));
	}
	exchange(a, b);
	ipc_close(a);
	ipc_close(b);
	cr_assert_eq(fd_count(), base);
}
