/*
 * test_proto.c - the stream wire format against a raw peer.
 *
 * A raw peer is a plain socket (unix path or tcp) speaking the bytes of
 * docs/protocol.md by hand:
 *   hello: "IPCK" u16le version=1, u16le hello length=16, u32le max_msg, u32 0
 *   frame: u32le payload length, then the payload.
 * It checks what ipckit writes, and feeds it garbage, a wrong version,
 * absurd frame lengths, truncated hellos and messages cut by a death.
 */
#include "config.h"
#include "util.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

struct raw {
	ipc_chan *c;            /* ipckit's end */
	int fd;                 /* the raw peer */
	char url[512];
};

static void put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void make_hello(unsigned char h[16], uint16_t version, uint32_t max_msg)
{
	memcpy(h, "IPCK", 4);
	put_le16(h + 4, version);
	put_le16(h + 6, 16);
	put_le32(h + 8, max_msg);
	put_le32(h + 12, 0);
}

static void raw_write(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		cr_assert(n > 0 || errno == EINTR, "[%s] raw write: %s", tu_tag, strerror(errno));
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
	}
}

/* Read exactly len bytes within timeout_ms; false on EOF or timeout. */
static bool raw_read(int fd, void *buf, size_t len, int timeout_ms)
{
	int64_t end = tu_now_ms() + timeout_ms;
	char *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = end - tu_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = read(fd, p, len);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void raw_hello(struct raw *r, uint32_t max_msg)
{
	unsigned char h[16];

	make_hello(h, 1, max_msg);
	raw_write(r->fd, h, sizeof(h));
}

static void raw_frame(struct raw *r, const void *payload, uint32_t len)
{
	unsigned char hdr[4];

	put_le32(hdr, len);
	raw_write(r->fd, hdr, 4);
	if (len)
		raw_write(r->fd, payload, len);
}

/* ipckit server on a unix path or tcp port, raw client connected to it. */
static void setup_server(struct raw *r, bool tcp, const ipc_opts *opts)
{
	char name[64];
	ipc_info info;

	memset(r, 0, sizeof(*r));
	tu_name(name, sizeof(name));
	if (tcp)
		snprintf(r->url, sizeof(r->url), "tcp://127.0.0.1:0");
	else
		snprintf(r->url, sizeof(r->url), "unix:///tmp/%s.sock", name);
	snprintf(tu_tag, sizeof(tu_tag), "proto/%s", tcp ? "tcp" : "unix");
	T_OK(ipc_open(&r->c, r->url, IPC_SERVER, opts));
	T_OK(ipc_info_get(r->c, &info));
	if (tcp) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		const char *colon = strrchr(info.url, ':');

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons((uint16_t)atoi(colon + 1));
		r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s",
			  info.url, strerror(errno));
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/%s.sock", name);
		r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert(connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s",
			  sa.sun_path, strerror(errno));
	}
}

static void teardown(struct raw *r)
{
	char left[300];

	ipc_close(r->c);
	if (r->fd >= 0)
		close(r->fd);
	cr_expect(tu_leftovers(left, sizeof(left)) == 0, "[%s] left %s behind", tu_tag, left);
}

/* Receive on ipckit's end and expect an error within 5 s. */
static void expect_recv_err(struct raw *r, int want)
{
	size_t cap = 2u << 20;  /* above any max_msg used here */
	char *buf = malloc(cap);
	int64_t t0 = tu_now_ms();
	ssize_t n = ipc_recv(r->c, buf, cap, 5000);

	free(buf);
	cr_assert(n == want, "[%s] ipc_recv = %zd %s after %ld ms, expected %d %s", tu_tag, n,
		  tu_err(n), (long)(tu_now_ms() - t0), want, tu_err(want));
}

static void proto_hello_bytes(bool tcp)
{
	ipc_opts o = { .max_msg = 12345 };
	unsigned char h[16], f[4 + 5];
	char buf[16];
	struct raw r;

	setup_server(&r, tcp, &o);
	/* Nothing from the peer yet: the server attaches and says hello. */
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 100), -ETIMEDOUT);
	cr_assert(raw_read(r.fd, h, 16, 5000), "[%s] no hello from ipckit", tu_tag);
	cr_assert(memcmp(h, "IPCK", 4) == 0, "[%s] magic %.4s", tu_tag, h);
	cr_expect_eq(h[4] | h[5] << 8, 1, "[%s] version %d", tu_tag, h[4] | h[5] << 8);
	cr_expect_eq(h[6] | h[7] << 8, 16, "[%s] hello length %d", tu_tag, h[6] | h[7] << 8);
	cr_expect_eq(get_le32(h + 8), 12345, "[%s] max_msg %u", tu_tag, get_le32(h + 8));
	cr_expect_eq(get_le32(h + 12), 0, "[%s] reserved word %u", tu_tag, get_le32(h + 12));
	raw_hello(&r, 1 << 20);
	/* One frame each way, byte for byte. */
	T_OK(ipc_send(r.c, "hello", 5, 5000));
	cr_assert(raw_read(r.fd, f, sizeof(f), 5000), "[%s] no frame from ipckit", tu_tag);
	cr_expect_eq(get_le32(f), 5);
	cr_expect(memcmp(f + 4, "hello", 5) == 0);
	T_OK(ipc_send(r.c, "", 0, 5000));
	cr_assert(raw_read(r.fd, f, 4, 5000));
	cr_expect_eq(get_le32(f), 0);
	raw_frame(&r, "world!", 6);
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 5000), 6);
	cr_expect(memcmp(buf, "world!", 6) == 0);
	raw_frame(&r, NULL, 0);
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 5000), 0);
	close(r.fd);
	r.fd = -1;
	expect_recv_err(&r, -EPIPE);
	teardown(&r);
}

/* Leaks fail the test run under -Db_sanitize=address (sanitize.c). */
TestSuite(proto, .fini = tu_leak_check);

Test(proto, hello_bytes_unix) { proto_hello_bytes(false); }
Test(proto, hello_bytes_tcp) { proto_hello_bytes(true); }

static void proto_garbage(bool tcp)
{
	struct raw r;

	setup_server(&r, tcp, NULL);
	raw_write(r.fd, "GARBAGE GARBAGE GARBAGE!", 24);
	expect_recv_err(&r, -EPROTO);
	/* Closed for good. */
	expect_recv_err(&r, -EPROTO);
	teardown(&r);
}

Test(proto, garbage_hello_unix) { proto_garbage(false); }
Test(proto, garbage_hello_tcp) { proto_garbage(true); }

static void proto_wrong_version(bool tcp)
{
	unsigned char h[16];
	struct raw r;

	setup_server(&r, tcp, NULL);
	make_hello(h, 2, 1 << 20);
	raw_write(r.fd, h, 16);
	raw_frame(&r, "x", 1);
	expect_recv_err(&r, -EPROTO);
	teardown(&r);
}

Test(proto, wrong_version_unix) { proto_wrong_version(false); }
Test(proto, wrong_version_tcp) { proto_wrong_version(true); }

Test(proto, wrong_hello_length)
{
	unsigned char h[16];
	struct raw r;

	setup_server(&r, false, NULL);
	make_hello(h, 1, 1 << 20);
	put_le16(h + 6, 8);
	raw_write(r.fd, h, 16);
	expect_recv_err(&r, -EPROTO);
	teardown(&r);
}

/* Half a hello, then death: the peer is gone (or broke the protocol). */
Test(proto, truncated_hello_then_close)
{
	unsigned char h[16];
	struct raw r;
	char buf[8];
	ssize_t n;

	setup_server(&r, false, NULL);
	make_hello(h, 1, 1 << 20);
	raw_write(r.fd, h, 8);
	close(r.fd);
	r.fd = -1;
	/* some hello bytes, then EOF: a broken protocol, not a clean close */
	n = ipc_recv(r.c, buf, sizeof(buf), 5000);
	cr_assert(n == -EPROTO, "[%s] ipc_recv after a truncated hello = %zd %s", tu_tag, n,
		  tu_err(n));
	teardown(&r);
}

/* The peer connects and closes before any hello byte: it closed, it did
 * not break the protocol: -EPIPE for receives and sends, on every stream
 * backend (docs/protocol.md). */
static void proto_eof_before_hello(bool tcp)
{
	struct raw r;
	char buf[8];

	setup_server(&r, tcp, NULL);
	close(r.fd);
	r.fd = -1;
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 5000), -EPIPE);
	T_EQ(ipc_send(r.c, "x", 1, 5000), -EPIPE);
	teardown(&r);
}

Test(proto, eof_before_hello_unix) { proto_eof_before_hello(false); }
Test(proto, eof_before_hello_tcp) { proto_eof_before_hello(true); }

/* The same over adopted pipes (pipe://R,W): the writer goes at once. */
Test(proto, eof_before_hello_pipe)
{
	int to_us[2], from_us[2];
	char url[64], buf[8];
	ipc_chan *c = NULL;

	snprintf(tu_tag, sizeof(tu_tag), "proto/pipe");
	cr_assert(pipe2(to_us, O_CLOEXEC) == 0 && pipe2(from_us, O_CLOEXEC) == 0);
	snprintf(url, sizeof(url), "pipe://%d,%d", to_us[0], from_us[1]);
	T_OK(ipc_open(&c, url, IPC_CLIENT, NULL));
	close(to_us[1]);
	close(from_us[0]);
	T_EQ(ipc_recv(c, buf, sizeof(buf), 5000), -EPIPE);
	T_EQ(ipc_send(c, "x", 1, 5000), -EPIPE);
	ipc_close(c);
}

/* A raw client that connects late and says everything slowly: the hello,
 * then a frame, one byte at a time with pauses; it expects "pong" back. */
struct dribbler {
	bool tcp;
	int port;
	char path[108];
	pthread_t th;
	bool ok;
};

static void *dribbler_main(void *arg)
{
	struct dribbler *d = arg;
	unsigned char out[16 + 4 + 4], in[8];
	int fd;

	tu_sleep_ms(200);
	if (d->tcp) {
		struct sockaddr_in sa = { .sin_family = AF_INET };
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons((uint16_t)d->port);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return NULL;
	} else {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			return NULL;
	}
	make_hello(out, 1, 1 << 20);
	put_le32(out + 16, 4);
	memcpy(out + 20, "ping", 4);
	for (size_t i = 0; i < sizeof(out); i++) {
		if (send(fd, out + i, 1, MSG_NOSIGNAL) != 1)
			goto out;
		tu_sleep_ms(20);
	}
	/* ipckit's hello, then the reply frame */
	if (raw_read(fd, in, 8, 20000) && raw_read(fd, in, 8, 20000) && raw_read(fd, in, 8, 20000))
		d->ok = get_le32(in) == 4 && memcmp(in + 4, "pong", 4) == 0;
out:
	close(fd);
	return NULL;
}

/* Drive a server (or a listener) with poll on ipc_fd / ipc_listener_fd and
 * receives and accepts with timeout 0 only, while the client dribbles:
 * it is served, and ipc_fd is not stuck readable in between (a loop that
 * spun on it would take far more rounds than the client has bytes). */
static void proto_event_loop_slow_hello(bool tcp, bool listener)
{
	char name[64], url[128], buf[16];
	struct dribbler d = { .tcp = tcp };
	ipc_listener *l = NULL;
	ipc_chan *c = NULL;
	ipc_info info;
	int rounds = 0;
	ssize_t n = -EAGAIN;

	tu_name(name, sizeof(name));
	snprintf(tu_tag, sizeof(tu_tag), "proto/%s%s", tcp ? "tcp" : "unix",
		 listener ? "/listener" : "");
	if (tcp)
		snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
	else
		snprintf(url, sizeof(url), "unix:///tmp/%s.sock", name);
	snprintf(d.path, sizeof(d.path), "/tmp/%s.sock", name);
	if (listener) {
		T_OK(ipc_listen(&l, url, NULL));
		snprintf(url, sizeof(url), "%s", ipc_listener_url(l));
	} else {
		T_OK(ipc_open(&c, url, IPC_SERVER, NULL));
		T_OK(ipc_info_get(c, &info));
		snprintf(url, sizeof(url), "%s", info.url);
	}
	if (tcp)
		d.port = atoi(strrchr(url, ':') + 1);
	cr_assert(pthread_create(&d.th, NULL, dribbler_main, &d) == 0);
	while (n == -EAGAIN) {
		cr_assert(++rounds < 2000, "[%s] the loop spins: ipc_fd stays readable", tu_tag);
		struct pollfd pf = { .fd = c ? ipc_fd(c) : ipc_listener_fd(l), .events = POLLIN };
		cr_assert(pf.fd >= 0);
		cr_assert(poll(&pf, 1, 20000) == 1, "[%s] the loop was never woken (%d rounds)",
			  tu_tag, rounds);
		if (!c) {
			int a = ipc_accept(l, &c, 0);
			cr_assert(a == 0 || a == -EAGAIN, "[%s] accept: %d %s", tu_tag, a, tu_err(a));
			continue;
		}
		n = ipc_recv(c, buf, sizeof(buf), 0);
	}
	T_EQ(n, 4);
	cr_assert(memcmp(buf, "ping", 4) == 0);
	T_OK(ipc_send(c, "pong", 4, 5000));
	pthread_join(d.th, NULL);
	cr_assert(d.ok, "[%s] the client got no pong", tu_tag);
	ipc_close(c);
	ipc_listener_close(l);
}

Test(proto, event_loop_slow_hello_unix) { proto_event_loop_slow_hello(false, false); }
Test(proto, event_loop_slow_hello_tcp) { proto_event_loop_slow_hello(true, false); }
Test(proto, event_loop_slow_hello_unix_listener) { proto_event_loop_slow_hello(false, true); }
Test(proto, event_loop_slow_hello_tcp_listener) { proto_event_loop_slow_hello(true, true); }

#if IPC_HAVE_FIFO
/* fifo has no connection: its client is the hello that arrives. A writer
 * that opens the server's FIFOs and goes before any hello byte is no
 * client (the server keeps waiting, a timeout); one that goes after some
 * of its bytes broke the protocol, as on the other stream backends. */
Test(proto, eof_before_hello_fifo, .timeout = 30)
{
	char name[64], url[160], c2s[160], s2c[160], buf[8];
	unsigned char h[16];
	ipc_chan *c = NULL;

	snprintf(tu_tag, sizeof(tu_tag), "proto/fifo");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s", name);
	snprintf(c2s, sizeof(c2s), "/tmp/%s.c2s", name);
	snprintf(s2c, sizeof(s2c), "/tmp/%s.s2c", name);
	T_OK(ipc_open(&c, url, IPC_SERVER, NULL));
	for (int some = 0; some < 2; some++) {
		int r = open(s2c, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		int w = open(c2s, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		cr_assert(r >= 0 && w >= 0, "[%s] the server's FIFOs", tu_tag);
		if (some) {
			make_hello(h, 1, 1 << 20);
			cr_assert_eq(write(w, h, 8), 8);
		}
		close(w);
		close(r);
		ssize_t n = ipc_recv(c, buf, sizeof(buf), 300);
		cr_assert(n == (some ? -EPROTO : -ETIMEDOUT), "[%s] %s bytes of a hello, then "
			  "gone: recv %zd %s", tu_tag, some ? "some" : "no", n, tu_err(n));
	}
	ipc_close(c);
}
#endif

/* The hello's last four bytes are reserved and must be zero. */
Test(proto, hello_reserved_nonzero)
{
	unsigned char h[16];
	struct raw r;
	char buf[8];

	setup_server(&r, false, NULL);
	make_hello(h, 1, 1 << 20);
	put_le32(h + 12, 1);
	raw_write(r.fd, h, sizeof(h));
	raw_frame(&r, "hi", 2);
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 5000), -EPROTO);
	T_EQ(ipc_send(r.c, "x", 1, 5000), -EPROTO);
	teardown(&r);
}

/* Half a hello, a pause, the rest: a timeout in between loses nothing. */
Test(proto, truncated_hello_then_rest)
{
	unsigned char h[16];
	struct raw r;
	char buf[8];

	setup_server(&r, false, NULL);
	make_hello(h, 1, 1 << 20);
	raw_write(r.fd, h, 7);
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 100), -ETIMEDOUT);
	raw_write(r.fd, h + 7, 9);
	raw_frame(&r, "abc", 3);
	T_EQ(ipc_recv(r.c, buf, sizeof(buf), 5000), 3);
	cr_expect(memcmp(buf, "abc", 3) == 0);
	teardown(&r);
}

/* Bytes held by the allocator in mmap'd chunks (large allocations). */
static size_t mmapped_bytes(void)
{
	return mallinfo2().hblkhd;
}

static void proto_frame_too_large(bool tcp, uint32_t announce)
{
	ipc_opts o = { .max_msg = 1 << 20 };
	unsigned char hdr[4];
	size_t before;
	struct raw r;
	int64_t t0;

	setup_server(&r, tcp, &o);
	raw_hello(&r, 0xffffffffu);
	before = mmapped_bytes();
	put_le32(hdr, announce);
	raw_write(r.fd, hdr, 4);
	/* Some payload follows, but far less than announced. */
	raw_write(r.fd, "0123456789", 10);
	t0 = tu_now_ms();
	expect_recv_err(&r, -EPROTO);
	cr_expect(tu_now_ms() - t0 < 5000, "[%s] -EPROTO took %ld ms", tu_tag,
		  (long)(tu_now_ms() - t0));
	if (!UNDER_ASAN)
		cr_expect(mmapped_bytes() <= before + (2u << 20),
			  "[%s] %zu bytes mapped after announcing %u bytes", tu_tag,
			  mmapped_bytes() - before, announce);
	expect_recv_err(&r, -EPROTO);
	teardown(&r);
}

Test(proto, frame_4g_unix) { proto_frame_too_large(false, 0xffffffffu); }
Test(proto, frame_4g_tcp) { proto_frame_too_large(true, 0xffffffffu); }
Test(proto, frame_max_plus_one) { proto_frame_too_large(false, (1u << 20) + 1); }
Test(proto, frame_2g) { proto_frame_too_large(true, 0x80000000u); }

Test(proto, frame_at_max)
{
	ipc_opts o = { .max_msg = 1000 };
	char *buf = malloc(2000);
	struct raw r;

	setup_server(&r, false, &o);
	raw_hello(&r, 1000);
	tu_fill(buf, 1000, 5);
	raw_frame(&r, buf, 1000);
	memset(buf, 0, 1000);
	T_EQ(ipc_recv(r.c, buf, 2000, 5000), 1000);
	cr_expect(tu_check(buf, 1000, 5) < 0);
	raw_frame(&r, buf, 1001);
	expect_recv_err(&r, -EPROTO);
	teardown(&r);
	free(buf);
}

/* Header and half the payload, then the peer dies. */
static void proto_dies_mid_message(bool tcp, uint32_t len)
{
	unsigned char hdr[4];
	char *payload = calloc(1, len);
	struct raw r;

	setup_server(&r, tcp, NULL);
	raw_hello(&r, 1 << 20);
	put_le32(hdr, len);
	raw_write(r.fd, hdr, 4);
	raw_write(r.fd, payload, len / 2);
	close(r.fd);
	r.fd = -1;
	expect_recv_err(&r, -EPIPE);
	expect_recv_err(&r, -EPIPE);
	teardown(&r);
	free(payload);
}

Test(proto, dies_mid_message_unix) { proto_dies_mid_message(false, 100); }
Test(proto, dies_mid_message_tcp) { proto_dies_mid_message(true, 100); }
Test(proto, dies_mid_large_message) { proto_dies_mid_message(false, 200000); }

/* Dies inside a frame header. */
Test(proto, dies_mid_header)
{
	struct raw r;

	setup_server(&r, false, NULL);
	raw_hello(&r, 1 << 20);
	raw_write(r.fd, "\x05\x00", 2);
	close(r.fd);
	r.fd = -1;
	expect_recv_err(&r, -EPIPE);
	teardown(&r);
}

/* A message that arrives in parts across a timeout is received whole. */
struct writer {
	pthread_t th;
	int fd;
	const char *p;
	size_t len;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (w->len > 0) {
		ssize_t n = send(w->fd, w->p, w->len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		w->p += n;
		w->len -= (size_t)n;
	}
	return NULL;
}

static void proto_partial(uint32_t len, size_t first)
{
	unsigned char hdr[4];
	char *payload = malloc(len), *buf = malloc(len);
	struct writer w;
	struct raw r;

	setup_server(&r, false, NULL);
	raw_hello(&r, 1 << 24);
	tu_fill(payload, len, len);
	put_le32(hdr, len);
	raw_write(r.fd, hdr, 4);
	raw_write(r.fd, payload, first);        /* small enough for the socket buffer */
	T_EQ(ipc_recv(r.c, buf, len, 100), -ETIMEDOUT);
	T_EQ(ipc_recv(r.c, buf, len, 0), -EAGAIN);
	/* The rest may exceed the socket buffer: write it from a thread. */
	w = (struct writer){ .fd = r.fd, .p = payload + first, .len = len - first };
	cr_assert(pthread_create(&w.th, NULL, writer_main, &w) == 0);
	T_EQ(ipc_recv(r.c, buf, len, 5000), len);
	pthread_join(w.th, NULL);
	cr_expect(tu_check(buf, len, len) < 0, "[%s] message cut by a timeout is corrupted", tu_tag);
	teardown(&r);
	free(payload);
	free(buf);
}

Test(proto, partial_small) { proto_partial(100, 50); }
Test(proto, partial_large) { proto_partial(500000, 50000); }

/* A too-small buffer while the message is only partly there: -EMSGSIZE
 * waits for the whole message (then a larger buffer gets it at once). */
Test(proto, partial_emsgsize)
{
	unsigned char hdr[4];
	char payload[100], buf[100];
	struct raw r;

	setup_server(&r, false, NULL);
	raw_hello(&r, 1 << 20);
	tu_fill(payload, 100, 77);
	put_le32(hdr, 100);
	raw_write(r.fd, hdr, 4);
	raw_write(r.fd, payload, 10);
	T_EQ(ipc_recv(r.c, buf, 50, 100), -ETIMEDOUT);
	raw_write(r.fd, payload + 10, 90);
	T_EQ(ipc_recv(r.c, buf, 50, 5000), -EMSGSIZE);
	T_EQ(ipc_recv(r.c, buf, 100, 0), 100);
	cr_expect(tu_check(buf, 100, 77) < 0);
	teardown(&r);
}

/* The same with timeout 0: -EAGAIN until it is all there. */
Test(proto, partial_emsgsize_nowait)
{
	unsigned char hdr[4];
	char payload[100], buf[100];
	struct raw r;

	setup_server(&r, false, NULL);
	raw_hello(&r, 1 << 20);
	tu_fill(payload, 100, 78);
	put_le32(hdr, 100);
	raw_write(r.fd, hdr, 4);
	raw_write(r.fd, payload, 10);
	T_EQ(ipc_recv(r.c, buf, 50, 0), -EAGAIN);
	raw_write(r.fd, payload + 10, 90);
	T_EQ(ipc_recv(r.c, buf, 50, 5000), -EMSGSIZE);
	T_EQ(ipc_recv(r.c, buf, 100, 0), 100);
	cr_expect(tu_check(buf, 100, 78) < 0);
	teardown(&r);
}

/* Many frames in one write, then frames dribbled a byte at a time. */
Test(proto, frames_coalesced_and_split)
{
	unsigned char *blob = malloc(200 * 70), *p = blob;
	char buf[128];
	struct raw r;

	setup_server(&r, false, NULL);
	raw_hello(&r, 1 << 20);
	for (uint32_t i = 0; i < 200; i++) {
		uint32_t len = i % 61;

		put_le32(p, len);
		tu_fill(p + 4, len, i);
		p += 4 + len;
	}
	raw_write(r.fd, blob, (size_t)(p - blob));
	for (uint32_t i = 0; i < 200; i++) {
		ssize_t n = ipc_recv(r.c, buf, sizeof(buf), 5000);

		cr_assert(n == (ssize_t)(i % 61), "[%s] frame %u: %zd %s", tu_tag, i, n, tu_err(n));
		cr_assert(tu_check(buf, (size_t)n, i) < 0, "[%s] frame %u corrupted", tu_tag, i);
	}
	/* Byte by byte: each frame completes exactly with its last byte
	 * (a unix socket queues the byte before send returns). */
	p = blob;
	put_le32(p, 9);
	memcpy(p + 4, "dribbling", 9);
	put_le32(p + 13, 0);
	put_le32(p + 17, 2);
	memcpy(p + 21, "ok", 2);
	for (int i = 0; i < 23; i++) {
		long want = i == 12 ? 9 : i == 16 ? 0 : i == 22 ? 2 : -EAGAIN;
		ssize_t n;

		raw_write(r.fd, p + i, 1);
		n = ipc_recv(r.c, buf, sizeof(buf), 0);
		cr_assert(n == want, "[%s] after byte %d: ipc_recv = %zd %s, expected %ld %s", tu_tag,
			  i, n, tu_err(n), want, tu_err(want));
	}
	cr_expect(memcmp(buf, "ok", 2) == 0);
	teardown(&r);
	free(blob);
}

/* ------------------------------------------ ipckit client, raw server */

struct raw_srv {
	int lfd;
	char path[108];
	pthread_t th;
	const void *script;     /* bytes sent after accept */
	size_t script_len;
	int cfd;
};

static void *raw_srv_main(void *arg)
{
	struct raw_srv *s = arg;

	s->cfd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (s->cfd >= 0 && s->script_len)
		send(s->cfd, s->script, s->script_len, MSG_NOSIGNAL);
	return NULL;
}

static void raw_srv_start(struct raw_srv *s, const void *script, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char name[64];

	memset(s, 0, sizeof(*s));
	tu_name(name, sizeof(name));
	snprintf(s->path, sizeof(s->path), "/tmp/%s.sock", name);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s->path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	cr_assert(listen(s->lfd, 4) == 0);
	s->script = script;
	s->script_len = len;
	s->cfd = -1;
	cr_assert(pthread_create(&s->th, NULL, raw_srv_main, s) == 0);
}

static void raw_srv_stop(struct raw_srv *s)
{
	pthread_join(s->th, NULL);
	if (s->cfd >= 0)
		close(s->cfd);
	close(s->lfd);
	unlink(s->path);
}

/* The first failing call of open + recv must fail with want. */
static void client_expect(struct raw_srv *s, int want)
{
	ipc_opts o = { .connect_timeout_ms = 2000 };
	ipc_chan *c = NULL;
	char url[160], buf[16];
	long rc;

	snprintf(url, sizeof(url), "unix://%s", s->path);
	rc = ipc_open(&c, url, IPC_CLIENT, &o);
	if (rc == 0)
		rc = ipc_recv(c, buf, sizeof(buf), 5000);
	cr_expect(rc == want, "[%s] client against a raw server: %ld %s, expected %d %s", tu_tag, rc,
		  tu_err(rc), want, tu_err(want));
	ipc_close(c);
}

Test(proto, client_garbage_hello)
{
	struct raw_srv s;

	snprintf(tu_tag, sizeof(tu_tag), "proto/unix client");
	raw_srv_start(&s, "NOT AN IPCK HELLO", 17);
	client_expect(&s, -EPROTO);
	raw_srv_stop(&s);
}

Test(proto, client_frame_too_large)
{
	unsigned char script[20];
	struct raw_srv s;

	snprintf(tu_tag, sizeof(tu_tag), "proto/unix client");
	make_hello(script, 1, 1 << 20);
	put_le32(script + 16, 0xfffffff0u);
	raw_srv_start(&s, script, sizeof(script));
	client_expect(&s, -EPROTO);
	raw_srv_stop(&s);
}

Test(proto, client_sends_hello)
{
	ipc_opts o = { .connect_timeout_ms = 2000, .max_msg = 4242 };
	unsigned char script[16], h[16];
	struct raw_srv s;
	ipc_chan *c = NULL;
	char url[160];

	snprintf(tu_tag, sizeof(tu_tag), "proto/unix client");
	make_hello(script, 1, 1 << 20);
	raw_srv_start(&s, script, sizeof(script));
	snprintf(url, sizeof(url), "unix://%s", s.path);
	T_OK(ipc_open(&c, url, IPC_CLIENT, &o));
	T_OK(ipc_send(c, "q", 1, 5000));
	pthread_join(s.th, NULL);
	s.th = pthread_self();
	cr_assert(s.cfd >= 0);
	cr_assert(raw_read(s.cfd, h, 16, 5000), "no hello from the ipckit client");
	cr_expect(memcmp(h, "IPCK", 4) == 0);
	cr_expect_eq(get_le32(h + 8), 4242);
	ipc_close(c);
	close(s.cfd);
	close(s.lfd);
	unlink(s.path);
}

#if IPC_HAVE_FIFO
/* A process writing garbage into the FIFOs of a fifo server. The names
 * are whatever the server created next to its path. */
Test(proto, fifo_garbage, .timeout = 30)
{
	char name[64], url[160], path[160], buf[16];
	ipc_chan *c = NULL;
	int fds[8], nfd = 0;
	ssize_t n;
	struct dirent *e;
	DIR *d;

	snprintf(tu_tag, sizeof(tu_tag), "proto/fifo");
	tu_name(name, sizeof(name));
	snprintf(url, sizeof(url), "fifo:///tmp/%s", name);
	T_OK(ipc_open(&c, url, IPC_SERVER, NULL));
	/* Open every FIFO the server made for writing (non-blocking: the
	 * server has the reading ends it needs open, or will) and write
	 * garbage into those it reads. */
	d = opendir("/tmp");
	cr_assert(d);
	while ((e = readdir(d)) != NULL && nfd < 8) {
		struct stat st;
		int fd;

		if (strncmp(e->d_name, name, strlen(name)) != 0)
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", e->d_name);
		if (lstat(path, &st) < 0 || !S_ISFIFO(st.st_mode))
			continue;
		fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		fds[nfd++] = fd;
	}
	closedir(d);
	cr_assert(nfd > 0, "[%s] found no FIFO next to /tmp/%s", tu_tag, name);
	for (int i = 0; i < nfd; i++)
		(void)!write(fds[i], "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", 32);
	n = ipc_recv(c, buf, sizeof(buf), 3000);
	cr_expect(n == -EPROTO, "[%s] ipc_recv with garbage in the FIFOs = %zd %s", tu_tag, n,
		  tu_err(n));
	ipc_close(c);
	for (int i = 0; i < nfd; i++)
		close(fds[i]);
	T_EQ(tu_leftovers(path, sizeof(path)), 0);
}
#endif
