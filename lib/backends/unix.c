/*
 * unix.c - Unix-domain stream sockets.
 *
 * URL: unix:///abs/path (a socket file, created with `mode`) or
 * unix://@name (Linux abstract namespace: no file; only peers of the same
 * uid are accepted, checked with SO_PEERCRED, and a client checks the
 * server the same way). Paths are limited to 107 bytes (sun_path).
 * Framing, handshake and timeouts come from lib/stream.c. The server
 * listens at open, accepts in its first send/recv, then closes the
 * listening socket and removes the file: the URL is free again. A file
 * left by a dead server is reclaimed (lib/posix/sock.c checks
 * /proc/net/unix that nobody listens on it). Peer death is EOF/ECONNRESET.
 */
#include "backend.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "stream.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct unix_chan {
	struct ipc_stream s; /* must be first */
	int lfd;
	bool abstract;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct unix_listener {
	int lfd;
	bool abstract;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Accept one client that passes the uid check (abstract names). */
static int accept_checked(int lfd, bool abstract, ipc_deadline dl)
{
	for (;;) {
		int fd = ipc__accept(lfd, dl);
		if (fd < 0 || !abstract || ipc__unix_peer_same_uid(fd) == 0)
			return fd;
		close(fd); /* another user: refuse it, keep waiting */
	}
}

static int unix_attach(ipc_chan *c, ipc_deadline dl)
{
	struct unix_chan *u = (struct unix_chan *)c->priv;
	int fd = accept_checked(u->lfd, u->abstract, dl);
	if (fd < 0)
		return fd;
	/* a channel is a pair: release the endpoint */
	ipc__close_fd(&u->lfd);
	ipc__unix_unlink(u->path, u->abstract);
	u->s.rfd = u->s.wfd = fd;
	return 0;
}

static void unix_release(ipc_chan *c)
{
	struct unix_chan *u = (struct unix_chan *)c->priv;
	if (u->lfd >= 0) {
		ipc__close_fd(&u->lfd);
		ipc__unix_unlink(u->path, u->abstract);
	}
}

static int unix_open(ipc_chan *c, const ipc_url *url, int flags)
{
	struct unix_chan *u = (struct unix_chan *)c->priv;
	u->lfd = -1;
	if (strlen(url->path) >= sizeof(u->path))
		return -ENAMETOOLONG;
	strcpy(u->path, url->path);
	u->abstract = url->abstract;
	int fd = -1, r;
	if (flags == IPC_SERVER) {
		if ((u->lfd = ipc__unix_listen(u->path, u->abstract, c->cfg.mode, 1)) < 0)
			return u->lfd;
	} else {
		if ((fd = ipc__unix_connect(u->path, u->abstract, c->cfg.connect_timeout_ms)) < 0)
			return fd;
		if (u->abstract && (r = ipc__unix_peer_same_uid(fd)) < 0)
			goto fail;
	}
	if ((r = ipc__stream_init(c, fd, fd, true)) < 0)
		goto fail;
	u->s.release = unix_release;
	if (flags == IPC_SERVER) {
		u->s.attach = unix_attach;
		u->s.pending_fd = u->lfd;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unix_release(c);
	return r;
}

static int unix_pair(ipc_chan *a, ipc_chan *b)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	struct unix_chan *ua = (struct unix_chan *)a->priv, *ub = (struct unix_chan *)b->priv;
	ua->lfd = ub->lfd = -1;
	int r = ipc__stream_init(a, sv[0], sv[0], true);
	if (r < 0) {
		ipc__stream_close(a); /* closes sv[0] */
		close(sv[1]);
		return r;
	}
	if ((r = ipc__stream_init(b, sv[1], sv[1], true)) < 0) {
		ipc__stream_close(a);
		ipc__stream_close(b);
		return r;
	}
	a->url = ipc__url_format("unix", "pair:%d", sv[0]);
	b->url = ipc__url_format("unix", "pair:%d", sv[1]);
	return 0;
}

static int unix_listen(ipc_listener *l, const ipc_url *url)
{
	struct unix_listener *ul = (struct unix_listener *)l->priv;
	if (strlen(url->path) >= sizeof(ul->path))
		return -ENAMETOOLONG;
	strcpy(ul->path, url->path);
	ul->abstract = url->abstract;
	ul->lfd = ipc__unix_listen(ul->path, ul->abstract, l->cfg.mode, 128);
	return ul->lfd < 0 ? ul->lfd : 0;
}

static int unix_accept(ipc_listener *l, ipc_chan *c, ipc_deadline dl)
{
	struct unix_listener *ul = (struct unix_listener *)l->priv;
	struct unix_chan *u = (struct unix_chan *)c->priv;
	u->lfd = -1;
	int fd = accept_checked(ul->lfd, ul->abstract, dl);
	if (fd < 0)
		return fd;
	int r = ipc__stream_init(c, fd, fd, true);
	if (r < 0)
		close(fd);
	return r;
}

static void unix_listener_close(ipc_listener *l)
{
	struct unix_listener *ul = (struct unix_listener *)l->priv;
	ipc__close_fd(&ul->lfd);
	ipc__unix_unlink(ul->path, ul->abstract);
}

const struct ipc_backend ipc__backend_unix = {
	.scheme = "unix",
	.addr_kind = IPC_ADDR_PATH,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_LISTEN | IPC_CAP_UNRELATED,
	.chan_size = sizeof(struct unix_chan),
	.listener_size = sizeof(struct unix_listener),
	.max_msg_limit = UINT32_MAX,
	.open = unix_open,
	.pair = unix_pair,
	IPC_STREAM_OPS,
	.listen = unix_listen,
	.accept = unix_accept,
	.listener_close = unix_listener_close,
};
