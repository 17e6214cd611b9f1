/*
 * test_tcp.c - tcp specifics: IPv6, host names, port 0, TCP_NODELAY.
 */
#include "conn.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* A client process: connect, echo one message, exit 0. */
static pid_t echo_client(const char *url)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		ipc_chan *c = NULL;
		char buf[64];
		ssize_t n;

		alarm(30);
		C_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
		n = ipc_recv(c, buf, sizeof(buf), 10000);
		C_OK(n);
		C_OK(ipc_send(c, buf, (size_t)n, 10000));
		ipc_close(c);
		_exit(0);
	}
	return pid;
}

static int url_port(const char *url)
{
	const char *colon = strrchr(url, ':');

	return colon ? atoi(colon + 1) : -1;
}

/* Open a server on url, check its resolved URL starts with want_prefix
 * and has a real port, then echo through a client on that URL. */
static void server_roundtrip(const char *url, const char *want_prefix)
{
	ipc_chan *s = NULL;
	ipc_info info;
	char resolved[256], buf[16];
	pid_t pid;

	T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
	T_OK(ipc_info_get(s, &info));
	cr_assert(info.url != NULL);
	snprintf(resolved, sizeof(resolved), "%s", info.url);
	cr_expect(strncmp(resolved, want_prefix, strlen(want_prefix)) == 0,
		  "[%s] resolved url %s, expected %s<port>", tu_tag, resolved, want_prefix);
	cr_assert(url_port(resolved) > 0 && url_port(resolved) < 65536,
		  "[%s] resolved url %s has no port", tu_tag, resolved);
	pid = echo_client(resolved);
	T_OK(ipc_send(s, "tcp!", 4, 10000));
	T_EQ(ipc_recv(s, buf, sizeof(buf), 10000), 4);
	cr_expect(memcmp(buf, "tcp!", 4) == 0);
	ipc_close(s);
	peer_reap_ok(pid, "client");
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(tcp, .fini = tu_leak_check);

Test(tcp, port_zero_resolved)
{
	snprintf(tu_tag, sizeof(tu_tag), "tcp/port0");
	server_roundtrip("tcp://127.0.0.1:0", "tcp://127.0.0.1:");
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

Test(tcp, ipv6)
{
	snprintf(tu_tag, sizeof(tu_tag), "tcp/ipv6");
	if (!have_ipv6_loopback())
		cr_skip_test("no IPv6 loopback on this machine");
	server_roundtrip("tcp://[::1]:0", "tcp://[::1]:");
}

Test(tcp, ipv6_fixed_port)
{
	char url[64];
	int port;

	snprintf(tu_tag, sizeof(tu_tag), "tcp/ipv6");
	if (!have_ipv6_loopback())
		cr_skip_test("no IPv6 loopback on this machine");
	port = tu_free_port(SOCK_STREAM);
	cr_assert(port > 0);
	snprintf(url, sizeof(url), "tcp://[::1]:%d", port);
	server_roundtrip(url, url);
}

Test(tcp, host_name)
{
	snprintf(tu_tag, sizeof(tu_tag), "tcp/localhost");
	/* The resolved URL may name the host or its address. */
	server_roundtrip("tcp://localhost:0", "tcp://");
}

Test(tcp, host_name_client)
{
	ipc_chan *s = NULL;
	char url[64], buf[8];
	pid_t pid;

	snprintf(tu_tag, sizeof(tu_tag), "tcp/localhost");
	T_OK(ipc_open(&s, "tcp://127.0.0.1:0", IPC_SERVER, NULL));
	{
		ipc_info info;

		T_OK(ipc_info_get(s, &info));
		snprintf(url, sizeof(url), "tcp://localhost:%d", url_port(info.url));
	}
	pid = echo_client(url);
	T_OK(ipc_send(s, "x", 1, 10000));
	T_EQ(ipc_recv(s, buf, sizeof(buf), 10000), 1);
	ipc_close(s);
	peer_reap_ok(pid, "client");
}

Test(tcp, unresolvable_host)
{
	ipc_chan *c = NULL;
	int rc;

	snprintf(tu_tag, sizeof(tu_tag), "tcp/dns");
	rc = ipc_open(&c, "tcp://no-such-host.invalid:80?connect_timeout_ms=0", IPC_CLIENT, NULL);
	cr_expect(rc < 0, "[%s] open of an unresolvable host = %d", tu_tag, rc);
	cr_expect(rc != -EINVAL && rc != -EPROTONOSUPPORT,
		  "[%s] a well-formed URL whose host does not resolve gave %d %s", tu_tag, rc,
		  tu_err(rc));
	if (rc >= 0)
		ipc_close(c);
}

/* Every connected TCP socket of this process has TCP_NODELAY set. */
static int check_nodelay(void)
{
	int checked = 0;

	for (int fd = 0; fd < 1024; fd++) {
		int proto = 0, acc = 0, nd = 0;
		socklen_t len = sizeof(int);
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != IPPROTO_TCP)
			continue;
		len = sizeof(int);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || acc)
			continue;
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
			continue;
		len = sizeof(int);
		cr_assert(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nd, &len) == 0);
		cr_expect(nd != 0, "[%s] connected TCP socket fd %d lacks TCP_NODELAY", tu_tag, fd);
		checked++;
	}
	return checked;
}

Test(tcp, nodelay_pair)
{
	ipc_chan *a = NULL, *b = NULL;
	char buf[4];

	snprintf(tu_tag, sizeof(tu_tag), "tcp/nodelay");
	T_OK(ipc_pair("tcp", &a, &b, NULL));
	T_OK(ipc_send(a, "n", 1, 5000));
	T_EQ(ipc_recv(b, buf, sizeof(buf), 5000), 1);
	cr_assert(check_nodelay() >= 2, "[%s] found no connected TCP sockets", tu_tag);
	ipc_close(a);
	ipc_close(b);
}

Test(tcp, nodelay_server_client)
{
	ipc_chan *s = NULL, *c = NULL;
	ipc_info info;
	char buf[4];

	snprintf(tu_tag, sizeof(tu_tag), "tcp/nodelay");
	T_OK(ipc_open(&s, "tcp://127.0.0.1:0", IPC_SERVER, NULL));
	T_OK(ipc_info_get(s, &info));
	T_OK(ipc_open(&c, info.url, IPC_CLIENT, NULL));
	/* (the server speaks first: a client's first send waits for the
	 * server's hello, which its first call sends) */
	T_OK(ipc_send(s, "n", 1, 5000));
	T_EQ(ipc_recv(c, buf, sizeof(buf), 5000), 1);
	T_OK(ipc_send(c, "n", 1, 5000));
	T_EQ(ipc_recv(s, buf, sizeof(buf), 5000), 1);
	cr_assert(check_nodelay() >= 2, "[%s] found no connected TCP sockets", tu_tag);
	ipc_close(c);
	ipc_close(s);
}

/* A fixed port is released for a new server once the old one closed. */
Test(tcp, fixed_port_reuse)
{
	ipc_chan *s = NULL;
	char url[64];
	int port = tu_free_port(SOCK_STREAM);

	snprintf(tu_tag, sizeof(tu_tag), "tcp/reuse");
	cr_assert(port > 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	for (int i = 0; i < 3; i++) {
		pid_t pid;
		char buf[4];

		T_OK(ipc_open(&s, url, IPC_SERVER, NULL));
		pid = echo_client(url);
		T_OK(ipc_send(s, "r", 1, 10000));
		T_EQ(ipc_recv(s, buf, sizeof(buf), 10000), 1);
		ipc_close(s);
		peer_reap_ok(pid, "client");
	}
}
