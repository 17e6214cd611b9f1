/*
 * test_udp.c - udp backend specifics: port 0, IPv6, host names, the
 * 65507-byte limit, too-small receive buffers, how the server learns its
 * peer, refused clients and -EPIPE from ICMP port unreachable.
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
#include <unistd.h>
#include "util.h"

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
