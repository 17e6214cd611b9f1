/*
 * fuzz_chan.c - stateful libFuzzer target: a fake peer feeds arbitrary
 * bytes (its hello, then frames) into the receive side of a real channel
 * opened through the public API (pipe://R,W over two pipes), and a script
 * of calls (ipc_recv, ipc_recvv, ipc_recv_peek/release, ipc_send, ipc_fd)
 * runs against it until the channel reports the end.
 *
 * The peer writes everything and closes its end before the first call, so
 * no call ever waits: timeouts 0, -1 and 1000 all return at once. Every
 * result is checked against a model of docs/protocol.md computed from the
 * same bytes: each message must arrive whole, in order and intact; a
 * message larger than the buffer gives -EMSGSIZE and stays; a bad hello
 * or an oversized length gives -EPROTO (for good); a torn frame or EOF
 * gives -EPIPE (for good); nothing else may come back. What the channel
 * writes must be its own valid hello followed by exactly the frames of
 * the sends that returned 0. ipc_fd must poll readable throughout (a
 * receive never blocks here). ASan/UBSan/LSan catch the rest.
 *
 * Input:
 *   byte 0: own max_msg {64, 4096, 100000, default}, bit 2: put a valid
 *           hello in front, bits 3-4: its max_msg {1, 64, 4096, 2^32-1},
 *           bits 5-6: a synthetic frame after it {-, -, 20000, 70000 B}
 *           (reaches the large-message paths with small inputs),
 *           bit 7: IPC_SERVER instead of IPC_CLIENT
 *   byte 1: bits 0-3: k, the number of op bytes; bits 4-5: wait=
 *           {adaptive, block, spin, adaptive}; bit 6: ipc_fd first
 *   k op bytes, run in a cycle: bits 0-2 the call {recv, recvv, peek,
 *           peek+release, release, send, poll ipc_fd, recv NULL/0},
 *           bits 3-4 timeout {0, -1, 1000, 0}, bits 5-7 a size
 *   the rest: the peer's bytes
 */
#include "ipckit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WIRE (60000 + 16 + 4 + 70000)
#define PIPE_SZ (256 * 1024)

#define CHECK(x) \
	do { \
		if (!(x)) { \
			fprintf(stderr, "fuzz_chan.c:%d: check failed: %s\n", __LINE__, #x); \
			abort(); \
		} \
	} while (0)

static const size_t own_max[] = { 64, 4096, 100000, 16u << 20 };
static const uint32_t peer_max[] = { 1, 64, 4096, UINT32_MAX };
static const size_t big_len[] = { 0, 0, 20000, 70000 };
static const size_t sizes[] = { 0, 1, 7, 64, 4096, 20000, 70000, 131072 };
static const int timeouts[] = { 0, -1, 1000, 0 };
static const char *const waits[] = { "adaptive", "block", "spin", "adaptive" };

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* ---- the model: what the peer's bytes mean (docs/protocol.md) ---- */

struct model {
	const unsigned char *w;
	size_t wlen;
	size_t pos;      /* the next frame's offset */
	int hello;       /* 0 ok, or the error the hello gives */
	uint32_t pmax;   /* the peer's max_msg, valid hello only */
	size_t own;      /* our max_msg */
};

/* The next event: 1 with *off and *len for a whole message; otherwise the end:
 * -EPIPE (clean or torn; its *len is a torn frame's announced length, or 0)
 * or -EPROTO. */
static int model_next(const struct model *m, size_t *off, size_t *len)
{
	*len = 0;
	if (m->hello)
		return m->hello;
	size_t left = m->wlen - m->pos;
	if (left < 4)
		return -EPIPE;
	uint32_t l = le32(m->w + m->pos);
	if (l > m->own)
		return -EPROTO;
	*len = l;
	if (left - 4 < l)
		return -EPIPE;
	*off = m->pos + 4;
	return 1;
}

static void model_init(struct model *m, const unsigned char *w, size_t wlen, size_t own)
{
	static const unsigned char want[8] = { 'I', 'P', 'C', 'K', 1, 0, 16, 0 };
	memset(m, 0, sizeof(*m));
	m->w = w;
	m->wlen = wlen;
	m->own = own;
	size_t cmp = wlen < 8 ? wlen : 8;
	if (memcmp(w, want, cmp) != 0)
		m->hello = -EPROTO;
	else if (wlen < 16)
		m->hello = wlen ? -EPROTO : -EPIPE;
	else if (le32(w + 8) == 0 || le32(w + 12) != 0)
		m->hello = -EPROTO;
	else {
		m->pmax = le32(w + 8);
		m->pos = 16;
	}
}

/* The event after the message a peek holds (if any), as for a send: the
 * error the channel may already have met. */
static int next_end(const struct model *m, bool peeked)
{
	struct model t = *m;
	size_t off, len;
	int ev = model_next(&t, &off, &len);
	if (ev == 1 && peeked) {
		t.pos = off + len;
		ev = model_next(&t, &off, &len);
	}
	return ev;
}

/* A receive of the next message into cap bytes returned r (and data). */
static void check_recv(struct model *m, ssize_t r, const void *data, size_t cap)
{
	size_t off = 0, len;
	int ev = model_next(m, &off, &len);
	if (ev == 1) {
		if (len > cap) {
			CHECK(r == -EMSGSIZE);
			return;
		}
		CHECK(r == (ssize_t)len);
		CHECK(len == 0 || memcmp(data, m->w + off, len) == 0);
		m->pos = off + len;
		return;
	}
	/* a torn frame too large for the buffer may be refused for its size
	 * before the EOF inside it is seen (it is no message: either is right) */
	if (ev == -EPIPE && r == -EMSGSIZE && len > cap)
		return;
	CHECK(r == ev);
}

/* ---- what the channel writes: its hello, then our sends' frames ---- */

struct out {
	int fd;
	unsigned char *exp; /* frames of the sends that returned 0 */
	size_t exp_len, exp_cap;
	unsigned char hello[16];
	size_t hello_got;
	size_t matched; /* bytes of exp seen */
	size_t own;
};

static void out_expect(struct out *o, const unsigned char *p, size_t n)
{
	if (o->exp_len + n > o->exp_cap) {
		o->exp_cap = (o->exp_len + n) * 2;
		o->exp = realloc(o->exp, o->exp_cap);
		CHECK(o->exp);
	}
	memcpy(o->exp + o->exp_len, p, n);
	o->exp_len += n;
}

/* Read what the channel wrote so far and compare. */
static void out_drain(struct out *o)
{
	unsigned char buf[16384];
	for (;;) {
		ssize_t n = read(o->fd, buf, sizeof(buf));
		if (n <= 0) {
			CHECK(n == 0 || errno == EAGAIN);
			return;
		}
		size_t i = 0;
		while (i < (size_t)n && o->hello_got < 16)
			o->hello[o->hello_got++] = buf[i++];
		if (o->hello_got == 16 && i > 0) {
			CHECK(memcmp(o->hello, "IPCK\1\0\20\0", 8) == 0);
			CHECK(le32(o->hello + 8) == (o->own > UINT32_MAX ? UINT32_MAX : o->own));
			CHECK(le32(o->hello + 12) == 0);
		}
		size_t rest = (size_t)n - i;
		if (rest == 0)
			continue; /* (exp may still be NULL) */
		CHECK(o->matched + rest <= o->exp_len);
		CHECK(memcmp(buf + i, o->exp + o->matched, rest) == 0);
		o->matched += rest;
	}
}

/* ---- the target ---- */

static unsigned char *sized(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	CHECK(p);
	return p;
}

static void poll_readable(ipc_chan *c)
{
	int fd = ipc_fd(c);
	CHECK(fd >= 0);
	struct pollfd p = { .fd = fd, .events = POLLIN };
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLIN));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t cfg = data[0], cfg2 = data[1];
	size_t nops = cfg2 & 15;
	if (size < 2 + nops)
		return 0;
	const uint8_t *ops = data + 2;
	const uint8_t *peer = data + 2 + nops;
	size_t plen = size - 2 - nops;
	if (plen > 60000)
		return 0;
	if (nops == 0) {
		static const uint8_t dflt = 0x80; /* recv, timeout 0, cap 4096 */
		ops = &dflt;
		nops = 1;
	}

	/* the peer's bytes: [hello] [synthetic frame] input */
	size_t own = own_max[cfg & 3];
	unsigned char *w = sized(MAX_WIRE);
	size_t wlen = 0;
	if (cfg & 4) {
		memcpy(w, "IPCK\1\0\20\0", 8);
		put32(w + 8, peer_max[(cfg >> 3) & 3]);
		put32(w + 12, 0);
		wlen = 16;
	}
	size_t big = big_len[(cfg >> 5) & 3];
	if (big) {
		put32(w + wlen, (uint32_t)big);
		for (size_t i = 0; i < big; i++)
			w[wlen + 4 + i] = (unsigned char)(i * 7 + (i >> 8));
		wlen += 4 + big;
	}
	memcpy(w + wlen, peer, plen);
	wlen += plen;

	int in[2], outp[2];
	CHECK(pipe2(in, O_CLOEXEC) == 0);
	CHECK(pipe2(outp, O_CLOEXEC) == 0);
	if (fcntl(in[1], F_SETPIPE_SZ, PIPE_SZ) < PIPE_SZ && wlen > 65536) {
		/* (an unprivileged limit below 256 KiB: too large to write ahead) */
		close(in[0]);
		close(in[1]);
		close(outp[0]);
		close(outp[1]);
		free(w);
		return 0;
	}
	CHECK(write(in[1], w, wlen) == (ssize_t)wlen);
	close(in[1]); /* the peer is done: EOF after its bytes */
	CHECK(fcntl(outp[0], F_SETFL, O_NONBLOCK) == 0);

	char url[128];
	snprintf(url, sizeof(url), "pipe://%d,%d?max_msg=%zu&wait=%s", in[0], outp[1], own,
		 waits[(cfg2 >> 4) & 3]);
	ipc_chan *c = NULL;
	int r = ipc_open(&c, url, cfg & 0x80 ? IPC_SERVER : IPC_CLIENT, NULL);
	CHECK(r == 0 && c);
	if (cfg2 & 0x40)
		poll_readable(c);

	struct model m;
	model_init(&m, w, wlen, own);
	struct out o = { .fd = outp[0], .own = own };
	bool peeked = false;  /* a message is held by ipc_recv_peek */
	int ended = 0;        /* the terminal error a receive returned */
	int after_end = 0;    /* receives since */
	/* Each message takes at least 4 bytes; the script stops once two of
	 * its cycles took nothing (it only sends, or only peeks, or every
	 * buffer is too small). */
	size_t limit = (nops + 1) * (wlen / 4 + 8), last = 0, state = m.pos * 2;
	for (size_t it = 0; it < limit && after_end < 4 && it - last <= 2 * nops + 2; it++) {
		if (m.pos * 2 + peeked != state) {
			state = m.pos * 2 + peeked;
			last = it;
		}
		uint8_t op = ops[it % nops];
		int tmo = timeouts[(op >> 3) & 3];
		size_t sz = sizes[op >> 5];
		switch (op & 7) {
		case 0: /* ipc_recv */
		case 7: { /* ipc_recv with a NULL buffer */
			unsigned char *buf = (op & 7) == 7 ? NULL : sized(sz);
			size_t cap = (op & 7) == 7 ? 0 : sz;
			ssize_t n = ipc_recv(c, buf, cap, tmo);
			if (peeked)
				CHECK(n == -EBUSY);
			else
				check_recv(&m, n, buf, cap);
			if (n == -EPIPE || n == -EPROTO) {
				CHECK(!ended || n == ended);
				ended = (int)n;
			}
			free(buf);
			break;
		}
		case 1: { /* ipc_recvv into 1..4 buffers */
			size_t nb = 1 + (it & 3);
			ipc_buf bufs[4];
			for (size_t i = 0; i < nb; i++) {
				size_t cap = sizes[((op >> 5) + i) & 7];
				bufs[i] = (ipc_buf){ sized(cap), cap, (size_t)-1 };
			}
			int k = ipc_recvv(c, bufs, nb, tmo);
			if (peeked) {
				CHECK(k == -EBUSY);
			} else if (k > 0) {
				CHECK((size_t)k <= nb);
				for (int i = 0; i < k; i++) {
					CHECK(bufs[i].len <= bufs[i].cap);
					check_recv(&m, (ssize_t)bufs[i].len, bufs[i].data, bufs[i].cap);
				}
			} else {
				CHECK(k != 0);
				check_recv(&m, k, NULL, bufs[0].cap);
			}
			if (k == -EPIPE || k == -EPROTO) {
				CHECK(!ended || k == ended);
				ended = k;
			}
			for (size_t i = 0; i < nb; i++)
				free(bufs[i].data);
			break;
		}
		case 2: /* ipc_recv_peek */
		case 3: { /* ipc_recv_peek, then ipc_recv_release */
			const void *msg = NULL;
			ssize_t n = ipc_recv_peek(c, &msg, tmo);
			if (n >= 0) {
				CHECK(msg);
				size_t off, len;
				CHECK(model_next(&m, &off, &len) == 1);
				CHECK((size_t)n == len);
				CHECK(len == 0 || memcmp(msg, m.w + off, len) == 0);
				peeked = true;
				if ((op & 7) == 3) {
					CHECK(ipc_recv_release(c) == 0);
					peeked = false;
					m.pos = off + len;
				}
			} else {
				CHECK(!peeked);
				/* any size fits a peek */
				check_recv(&m, n, NULL, SIZE_MAX);
				if (n == -EPIPE || n == -EPROTO) {
					CHECK(!ended || n == ended);
					ended = (int)n;
				}
			}
			break;
		}
		case 4: { /* ipc_recv_release */
			r = ipc_recv_release(c);
			if (peeked) {
				size_t off, len;
				CHECK(r == 0);
				CHECK(model_next(&m, &off, &len) == 1);
				m.pos = off + len;
				peeked = false;
			} else {
				CHECK(r == -EINVAL);
			}
			break;
		}
		case 5: { /* ipc_send (small: the pipe never fills, nothing is cut) */
			size_t len = sz > 20000 ? 20000 : sz;
			unsigned char *msg = sized(len);
			for (size_t i = 0; i < len; i++)
				msg[i] = (unsigned char)(it + i);
			r = ipc_send(c, msg, len, tmo);
			if (r == 0) {
				unsigned char hdr[4];
				CHECK(m.hello == 0 && len <= own && len <= m.pmax);
				put32(hdr, (uint32_t)len);
				out_expect(&o, hdr, 4);
				out_expect(&o, msg, len);
			} else if (r == -EMSGSIZE) {
				CHECK(len > own || (m.hello == 0 && len > m.pmax));
			} else if (r == -EPROTO) {
				/* the receive side met the bad hello or length (a
				 * batch may have read ahead of what it returned) */
				CHECK(next_end(&m, peeked) == -EPROTO);
			} else {
				CHECK(r == -EPIPE);
			}
			free(msg);
			break;
		}
		case 6: { /* ipc_fd: a receive would not block */
			poll_readable(c);
			ipc_info info;
			CHECK(ipc_info_get(c, &info) == 0);
			CHECK(info.max_msg <= own);
			break;
		}
		}
		if (ended && (op & 7) != 5 && (op & 7) != 6)
			after_end++;
		out_drain(&o);
	}
	ipc_close(c);
	out_drain(&o);
	/* every send that returned 0 went out whole */
	CHECK(o.matched == o.exp_len);
	CHECK(o.exp_len == 0 || o.hello_got == 16);
	close(outp[0]);
	free(o.exp);
	free(w);
	return 0;
}
