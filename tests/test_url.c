/*
 * test_url.c - bad URLs and options get exact errors, good ones parse.
 *
 * Errors are checked through the public ipc_open(), as a server and as a
 * one-try client; a refused URL must create nothing. Successful parses
 * are checked field by field through ipc__url_parse (lib/backend.h).
 */
#include "backend.h"
#include "util.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static void open_fails(const char *url, int want)
{
	ipc_chan *c = NULL;
	char left[300];
	int rc;

	snprintf(tu_tag, sizeof(tu_tag), "url");
	rc = ipc_open(&c, url, IPC_SERVER, NULL);
	cr_expect(rc == want, "server \"%.120s\": %d %s, expected %d %s", url, rc, tu_err(rc), want,
		  tu_err(want));
	if (rc >= 0)
		ipc_close(c);
	c = NULL;
	rc = ipc_open(&c, url, IPC_CLIENT, NULL);
	cr_expect(rc == want, "client \"%.120s\": %d %s, expected %d %s", url, rc, tu_err(rc), want,
		  tu_err(want));
	if (rc >= 0)
		ipc_close(c);
	cr_expect(tu_leftovers(left, sizeof(left)) == 0, "\"%.120s\" left %s behind", url, left);
}

/* A long string of n repetitions of ch. */
static char *rep(char ch, size_t n)
{
	char *s = malloc(n + 1);

	cr_assert(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(url, .fini = tu_leak_check);

Test(url, unknown_scheme)
{
	open_fails("nosuch://x", -EPROTONOSUPPORT);
	open_fails("zmq://127.0.0.1:5", -EPROTONOSUPPORT);
	open_fails("tcpx://127.0.0.1:5", -EPROTONOSUPPORT);
}

Test(url, malformed)
{
	open_fails("", -EINVAL);
	open_fails("tcp", -EINVAL);
	open_fails("tcp:", -EINVAL);
	open_fails("tcp:/127.0.0.1:5000", -EINVAL);
	open_fails("tcp//127.0.0.1:5000", -EINVAL);
	open_fails("?max_msg=1", -EINVAL);
	open_fails("\x01\x02\x03garbage", -EINVAL);
}

#if IPC_HAVE_TCP
Test(url, tcp_bad_hostport)
{
	open_fails("tcp://", -EINVAL);
	open_fails("tcp://127.0.0.1", -EINVAL);
	open_fails("tcp://127.0.0.1:", -EINVAL);
	open_fails("tcp://127.0.0.1:65536", -EINVAL);
	open_fails("tcp://127.0.0.1:70000", -EINVAL);
	open_fails("tcp://127.0.0.1:-1", -EINVAL);
	open_fails("tcp://127.0.0.1:99999999999999999999", -EINVAL);
	open_fails("tcp://127.0.0.1:12ab", -EINVAL);
	open_fails("tcp://127.0.0.1: 80", -EINVAL);
	open_fails("tcp://127.0.0.1:5000/path", -EINVAL);
	open_fails("tcp://127.0.0.1:5000x", -EINVAL);
	/* brackets */
	open_fails("tcp://[::1:5000", -EINVAL);
	open_fails("tcp://::1]:5000", -EINVAL);
	open_fails("tcp://[::1]5000", -EINVAL);
	open_fails("tcp://[::1]:", -EINVAL);
	open_fails("tcp://[]:5000", -EINVAL);
	open_fails("tcp://[::1]:5000]", -EINVAL);
}
#endif

#if IPC_HAVE_UDP
Test(url, udp_bad_hostport)
{
	open_fails("udp://", -EINVAL);
	open_fails("udp://127.0.0.1", -EINVAL);
	open_fails("udp://127.0.0.1:65536", -EINVAL);
	open_fails("udp://[::1:5000", -EINVAL);
}
#endif

#if IPC_HAVE_UNIX
Test(url, unix_paths)
{
	struct sockaddr_un sa;
	char *name, *url;
	size_t max = sizeof(sa.sun_path);

	open_fails("unix://", -EINVAL);
	open_fails("unix://relative/path", -EINVAL);
	open_fails("unix://./x", -EINVAL);
	open_fails("unix://@", -EINVAL);

	/* "/tmp/" + name + NUL must fit in sun_path. */
	name = rep('n', max);
	cr_assert(asprintf(&url, "unix:///tmp/%s", name) > 0);
	open_fails(url, -ENAMETOOLONG);
	free(url);
	/* Abstract: '\0' + name must fit. */
	cr_assert(asprintf(&url, "unix://@%s", name) > 0);
	open_fails(url, -ENAMETOOLONG);
	free(url);
	free(name);
}
#endif

#if IPC_HAVE_SHM
Test(url, shm_paths)
{
	char *name = rep('s', 200), *url;

	open_fails("shm://", -EINVAL);
	open_fails("shm://rel", -EINVAL);
	cr_assert(asprintf(&url, "shm:///tmp/%s", name) > 0);
	open_fails(url, -ENAMETOOLONG);
	free(url);
	free(name);
}
#endif

#if IPC_HAVE_FIFO
Test(url, fifo_paths)
{
	char *name = rep('f', PATH_MAX + 10), *url;

	open_fails("fifo://", -EINVAL);
	open_fails("fifo://relative", -EINVAL);
	open_fails("fifo://@abstract", -EINVAL);
	cr_assert(asprintf(&url, "fifo:///tmp/%s", name) > 0);
	open_fails(url, -ENAMETOOLONG);
	free(url);
	/* Exactly PATH_MAX - 1 characters cannot leave room for the names
	 * derived from it. */
	name[PATH_MAX - 1 - strlen("/tmp/")] = '\0';
	cr_assert(asprintf(&url, "fifo:///tmp/%s", name) > 0);
	open_fails(url, -ENAMETOOLONG);
	free(url);
	free(name);
}
#endif

#if IPC_HAVE_MQ
Test(url, mq_names)
{
	char *name = rep('m', 300), *url;

	open_fails("mq://", -EINVAL);
	open_fails("mq:///", -EINVAL);
	open_fails("mq://noslash", -EINVAL);
	open_fails("mq:///a/b", -EINVAL);
	open_fails("mq:///a/", -EINVAL);
	open_fails("mq://@abstract", -EINVAL);
	cr_assert(asprintf(&url, "mq:///%s", name) > 0);
	open_fails(url, -ENAMETOOLONG);
	free(url);
	free(name);
}
#endif

#if IPC_HAVE_PIPE
Test(url, pipe_fds)
{
	open_fails("pipe://", -EINVAL);
	open_fails("pipe://3", -EINVAL);
	open_fails("pipe://3,", -EINVAL);
	open_fails("pipe://,4", -EINVAL);
	open_fails("pipe://a,b", -EINVAL);
	open_fails("pipe://-1,4", -EINVAL);
	open_fails("pipe://3,4,5", -EINVAL);
	open_fails("pipe://3,4x", -EINVAL);
	open_fails("pipe://99999999999,4", -EINVAL);
	/* Well-formed but not open. */
	open_fails("pipe://1000,1001", -EBADF);
}
#endif

static const char *any_url(void)
{
#if IPC_HAVE_TCP
	return "tcp://127.0.0.1:0";
#elif IPC_HAVE_UNIX
	return "unix://@ipck-url-test";
#else
	return NULL;
#endif
}

static void query_fails(const char *query, int want)
{
	char url[512];
	const char *base = any_url();

	if (!base)
		cr_skip_test("no tcp or unix backend");
	snprintf(url, sizeof(url), "%s?%s", base, query);
	open_fails(url, want);
}

Test(url, bad_query)
{
	query_fails("nokey=1", -EINVAL);
	query_fails("max_msg", -EINVAL);
	query_fails("max_msg=", -EINVAL);
	query_fails("max_msg=abc", -EINVAL);
	query_fails("max_msg=1X", -EINVAL);
	query_fails("max_msg=-1", -EINVAL);
	query_fails("max_msg=1KB", -EINVAL);
	query_fails("max_msg=99999999999999999999", -EINVAL);
	query_fails("max_msg=99999999999G", -EINVAL);
	query_fails("capacity=x", -EINVAL);
	query_fails("wait=fast", -EINVAL);
	query_fails("wait=", -EINVAL);
	query_fails("connect_timeout_ms=-5", -EINVAL);
	query_fails("connect_timeout_ms=1s", -EINVAL);
	query_fails("mode=999", -EINVAL);
	query_fails("mode=01777", -EINVAL);
	query_fails("mode=rw", -EINVAL);
	query_fails("max_msg=1&", -EINVAL);
	query_fails("&max_msg=1", -EINVAL);
	query_fails("max_msg=1&&capacity=2", -EINVAL);
	query_fails("=5", -EINVAL);
}

Test(url, roles_and_null)
{
	const char *url = any_url();
	ipc_chan *c = NULL;

	if (!url)
		cr_skip_test("no tcp or unix backend");
	snprintf(tu_tag, sizeof(tu_tag), "url");
	T_EQ(ipc_open(&c, url, 0, NULL), -EINVAL);
	T_EQ(ipc_open(&c, url, IPC_SERVER | IPC_CLIENT, NULL), -EINVAL);
	T_EQ(ipc_open(&c, url, 4, NULL), -EINVAL);
	T_EQ(ipc_open(&c, url, -1, NULL), -EINVAL);
	T_EQ(ipc_open(NULL, url, IPC_SERVER, NULL), -EINVAL);
	T_EQ(ipc_open(&c, NULL, IPC_SERVER, NULL), -EINVAL);
	T_EQ(ipc_open(&c, NULL, IPC_CLIENT, NULL), -EINVAL);
}

/* -------------------------------------------------------- good parses */

static const struct ipc_backend *parse_ok(ipc_url *u, const char *url)
{
	const struct ipc_backend *be = NULL;
	int rc;

	memset(u, 0, sizeof(*u));
	rc = ipc__url_parse(u, url, NULL, &be);
	cr_assert(rc == 0, "ipc__url_parse(\"%s\") = %d %s", url, rc, tu_err(rc));
	cr_assert(be != NULL, "no backend for %s", url);
	return be;
}

static void parse_fails(const char *url, int want)
{
	const struct ipc_backend *be = NULL;
	ipc_url *u = calloc(1, sizeof(*u));
	int rc;

	cr_assert(u);
	rc = ipc__url_parse(u, url, NULL, &be);
	cr_expect(rc == want, "ipc__url_parse(\"%s\") = %d %s, expected %d %s", url, rc, tu_err(rc),
		  want, tu_err(want));
	free(u);
}

#if IPC_HAVE_TCP
/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(url_parse, .fini = tu_leak_check);

Test(url_parse, hostport)
{
	ipc_url *u = calloc(1, sizeof(*u));
	const struct ipc_backend *be;

	be = parse_ok(u, "tcp://127.0.0.1:5000");
	cr_expect_str_eq(be->scheme, "tcp");
	cr_expect_str_eq(u->scheme, "tcp");
	cr_expect_str_eq(u->host, "127.0.0.1");
	cr_expect_eq(u->port, 5000);
	parse_ok(u, "tcp://[::1]:0");
	cr_expect_str_eq(u->host, "::1");
	cr_expect_eq(u->port, 0);
	parse_ok(u, "tcp://localhost:65535");
	cr_expect_str_eq(u->host, "localhost");
	cr_expect_eq(u->port, 65535);
	parse_fails("tcp://127.0.0.1:65536", -EINVAL);
	parse_fails("tcp://[::1]x:5", -EINVAL);
	free(u);
}

Test(url_parse, query_sizes)
{
	ipc_url *u = calloc(1, sizeof(*u));

	parse_ok(u, "tcp://127.0.0.1:1?max_msg=4K");
	cr_expect_eq(u->cfg.max_msg, 4096);
	cr_expect(u->cfg.set & IPC_SET_MAX_MSG);
	parse_ok(u, "tcp://127.0.0.1:1?max_msg=3M&capacity=2G");
	cr_expect_eq(u->cfg.max_msg, (size_t)3 << 20);
	cr_expect_eq(u->cfg.capacity, (size_t)2 << 30);
	cr_expect(u->cfg.set & IPC_SET_CAPACITY);
	parse_ok(u, "tcp://127.0.0.1:1?max_msg=12345");
	cr_expect_eq(u->cfg.max_msg, 12345);
	parse_ok(u, "tcp://127.0.0.1:1?wait=spin&connect_timeout_ms=250&mode=0640");
	cr_expect_eq(u->cfg.wait, IPC_WAIT_SPIN);
	cr_expect_eq(u->cfg.connect_timeout_ms, 250);
	cr_expect_eq(u->cfg.mode, 0640);
	cr_expect_eq(u->cfg.set & (IPC_SET_WAIT | IPC_SET_CONNECT_TIMEOUT | IPC_SET_MODE),
		     IPC_SET_WAIT | IPC_SET_CONNECT_TIMEOUT | IPC_SET_MODE);
	parse_ok(u, "tcp://127.0.0.1:1?wait=block");
	cr_expect_eq(u->cfg.wait, IPC_WAIT_BLOCK);
	parse_ok(u, "tcp://127.0.0.1:1?wait=adaptive");
	cr_expect_eq(u->cfg.wait, IPC_WAIT_ADAPTIVE);
	free(u);
}

/* The query overrides ipc_opts, through the public API. */
Test(url_parse, query_overrides_opts)
{
	ipc_opts o = { .max_msg = 100 };
	ipc_chan *c = NULL;
	ipc_info info;

	snprintf(tu_tag, sizeof(tu_tag), "url");
	T_OK(ipc_open(&c, "tcp://127.0.0.1:0?max_msg=2K", IPC_SERVER, &o));
	T_OK(ipc_info_get(c, &info));
	cr_expect_eq(info.max_msg, 2048);
	ipc_close(c);
	T_OK(ipc_open(&c, "tcp://127.0.0.1:0", IPC_SERVER, &o));
	T_OK(ipc_info_get(c, &info));
	cr_expect_eq(info.max_msg, 100);
	ipc_close(c);
}
#endif

#if IPC_HAVE_UNIX
Test(url_parse, paths)
{
	ipc_url *u = calloc(1, sizeof(*u));

	parse_ok(u, "unix:///tmp/x.sock");
	cr_expect_str_eq(u->path, "/tmp/x.sock");
	cr_expect(!u->abstract);
	parse_ok(u, "unix://@name");
	cr_expect_str_eq(u->path, "name");
	cr_expect(u->abstract);
	free(u);
}
#endif

#if IPC_HAVE_MQ
Test(url_parse, mq_name)
{
	ipc_url *u = calloc(1, sizeof(*u));

	parse_ok(u, "mq:///queue");
	cr_expect(strcmp(u->path, "/queue") == 0 || strcmp(u->path, "queue") == 0,
		  "mq path = %s", u->path);
	parse_fails("mq:///a/b", -EINVAL);
	free(u);
}
#endif

#if IPC_HAVE_PIPE
Test(url_parse, fds)
{
	ipc_url *u = calloc(1, sizeof(*u));

	parse_ok(u, "pipe://5,6");
	cr_expect_eq(u->rfd, 5);
	cr_expect_eq(u->wfd, 6);
	parse_fails("pipe://5", -EINVAL);
	free(u);
}
#endif

Test(url_parse, unknown)
{
	parse_fails("nosuch://x", -EPROTONOSUPPORT);
	parse_fails("garbage", -EINVAL);
}
