/*
 * rows/ipckit.c - ipckit rows through the public API. The URL comes from the
 * address form plan.c chose from the backend's caps: the serving side opens
 * IPC_SERVER and sends the resolved URL (tcp port 0 -> the real port) over
 * ctl; the other side opens IPC_CLIENT. Backends without IPC_CAP_UNRELATED
 * use ipc_pair before the fork. Two kinds: copying (ipc_send / ipc_sendv,
 * ipc_recv / ipc_recvv) and zero-copy (reserve/commit, peek/release), where
 * the harness writes and reads every payload byte in place.
 */
#include "row.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct ik_prep { ipc_chan *pair[2]; };
struct ik_ep { ipc_chan *ic; };

static ipc_chan *ic_of(struct ep *e)
{
	return ((struct ik_ep *)e->st)->ic;
}

static void ik_opts(const struct chan *c, ipc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->wait = c->s.wait_mode;
	o->connect_timeout_ms = 10000;
	if (c->s.max_msg)
		o->max_msg = c->s.max_msg;
	/* A message is reserved in place only where it fits in half the
	 * buffer: zero-copy rows ask for 4x the message size above 1 MiB. */
	if (c->k->reserve && 4 * (uint64_t)c->s.size > ((uint64_t)1 << 20))
		o->capacity = 4 * (size_t)c->s.size;
}

static int ik_prepare(struct chan *c)
{
	struct ik_prep *p = c->prep;
	ipc_opts o;
	if (c->s.form != FORM_PAIR)
		return 0;
	ik_opts(c, &o);
	int r = ipc_pair(c->s.backend, &p->pair[0], &p->pair[1], &o);
	return r < 0 ? r : 0;
}

static void ik_url(const struct chan *c, char *url, size_t cap)
{
	const char *s = c->s.backend;
	int pid = (int)getpid();
	switch (c->s.form) {
	case FORM_INET: {
		char hp[96];
		fmt_hostport(hp, sizeof(hp), c->host, 0);
		snprintf(url, cap, "%s://%s", s, hp);
		break;
	}
	case FORM_ABSTRACT:
		snprintf(url, cap, "%s://@ipckit-bench-%d-%d", s, pid, c->idx);
		break;
	case FORM_PATH_TMP:
		snprintf(url, cap, "%s:///tmp/ipckit-bench-%d-%d", s, pid, c->idx);
		break;
	case FORM_PATH_ROOT:
		snprintf(url, cap, "%s:///ipckit-bench-%d-%d", s, pid, c->idx);
		break;
	default:
		snprintf(url, cap, "%s://ipckit-bench-%d-%d", s, pid, c->idx);
		break;
	}
}

static int ik_open(struct ep *e)
{
	struct chan *c = e->c;
	struct ik_ep *st = e->st;
	struct ik_prep *p = c->prep;
	char url[512] = "";
	ipc_opts o;
	int r;

	ik_opts(c, &o);
	e->spins = c->s.wait_mode == IPC_WAIT_SPIN;
	if (c->s.form == FORM_PAIR) {
		st->ic = p->pair[e->side];
		p->pair[e->side] = NULL;
		if (!c->s.threads) {   /* the other process's end */
			ipc_close(p->pair[!e->side]);
			p->pair[!e->side] = NULL;
		}
		return st->ic ? 0 : -EBADF;
	}
	if (e->side == c->srv_side) {
		ipc_info info;
		ik_url(c, url, sizeof(url));
		r = ipc_open(&st->ic, url, IPC_SERVER, &o);
		if (r >= 0)
			r = ipc_info_get(st->ic, &info);
		if (r >= 0)
			r = ctl_send_str(e->ctl, info.url ? info.url : url);
	} else {
		r = ctl_recv_str(e->ctl, url, sizeof(url));
		if (r >= 0)
			r = ipc_open(&st->ic, url, IPC_CLIENT, &o);
	}
	if (r < 0)
		fprintf(stderr, "ipckit-bench: %s %s: %s\n", c->s.backend,
			*url ? url : "open", bench_strerror(c->s.backend, r));
	return r < 0 ? r : 0;
}

static void ik_close(struct ep *e)
{
	struct ik_ep *st = e->st;
	ipc_close(st->ic);
	st->ic = NULL;
}

static void ik_cleanup(struct chan *c)
{
	struct ik_prep *p = c->prep;
	if (!p)
		return;
	for (int i = 0; i < 2; i++) {
		ipc_close(p->pair[i]);
		p->pair[i] = NULL;
	}
}

static int ik_send(struct ep *e, const void *buf, size_t len)
{
	return ipc_send(ic_of(e), buf, len, -1);
}

static ssize_t ik_recv(struct ep *e, void *buf, size_t cap, int timeout_ms)
{
	return ipc_recv(ic_of(e), buf, cap, timeout_ms);
}

static int ik_sendv(struct ep *e, const ipc_msg *m, size_t n)
{
	while (n) {
		int r = ipc_sendv(ic_of(e), m, n, -1);
		if (r < 0)
			return r;
		if (r == 0)
			return -EIO;
		m += r;
		n -= (size_t)r;
	}
	return 0;
}

static int ik_recvv(struct ep *e, ipc_buf *b, size_t n, int timeout_ms)
{
	return ipc_recvv(ic_of(e), b, n, timeout_ms);
}

static int ik_reserve(struct ep *e, size_t len, void **buf)
{
	return ipc_send_reserve(ic_of(e), len, buf, -1);
}

static int ik_commit(struct ep *e, size_t len)
{
	return ipc_send_commit(ic_of(e), len);
}

static ssize_t ik_peek(struct ep *e, const void **msg, int timeout_ms)
{
	return ipc_recv_peek(ic_of(e), msg, timeout_ms);
}

static int ik_release(struct ep *e)
{
	return ipc_recv_release(ic_of(e));
}

/* Open loop: rows that do not spin sleep in poll on ipc_fd, as an event
 * loop would. */
static int ik_wait(struct ep *e, uint64_t deadline_ns)
{
	int fd = ipc_fd(ic_of(e));
	return fd < 0 ? fd : wait_fd_until(fd, deadline_ns);
}

static size_t ik_limit(const struct chan *c)
{
	ipc_info info;
	return ipc_backend_info(c->s.backend, &info) < 0 ? 0 : info.max_msg;
}

#define IK_COMMON \
	.impl = "ipckit", .prep_size = sizeof(struct ik_prep), .ep_size = sizeof(struct ik_ep), \
	.cross_host = true, .prepare = ik_prepare, .open = ik_open, .close = ik_close, \
	.cleanup = ik_cleanup, .limit = ik_limit, .send = ik_send, .recv = ik_recv, .wait = ik_wait

const struct kind kind_ipckit = { IK_COMMON, .sendv = ik_sendv, .recvv = ik_recvv };

const struct kind kind_ipckit_zc = {
	IK_COMMON, .reserve = ik_reserve, .commit = ik_commit, .peek = ik_peek, .release = ik_release,
};
