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
 * left by a dead server is reclaimed (lib/posix/sock.c: no socket is bound
 * to that inode). Only the process that created the file removes it, and
 * only while it is still the same file. Clients never block in connect():
 * a full backlog is retried until connect_timeout_ms. Peer death is
 * EOF/ECONNRESET.
 */
#include "backend.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "stream/stream.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct unix_chan {
	struct ipc_stream s; /* must be first */
	int lfd;             /* server, until attached */
	struct ipc_file file;
};

struct unix_listener {
	int lfd;
	struct ipc_file file;
};

#define U(c) IPC_PRIV(c, struct unix_chan)
#define UL(l) IPC_PRIV(l, struct unix_listener)

/* Accept one client that passes the uid check (abstract names). */
static int accept_checked(int lfd, bool abstract, ipc_deadline *dl)
{
	for (;;) {
		int fd = ipc__accept(lfd, dl);
		if (fd < 0 || !abstract || ipc__unix_peer_same_uid(fd) == 0)
			return fd;
		close(fd); /* another user: refuse it, keep waiting */
	}
}

static int unix_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct unix_chan *u = U(c);
	int fd = accept_checked(u->lfd, u->file.abstract, dl);
	if (fd < 0)
		return fd;
	/* a channel is a pair: release the endpoint */
	ipc__close_fd(&u->lfd);
	ipc__file_remove(&u->file);
	u->s.rfd = u->s.wfd = fd;
	return 0;
}

static void unix_release(ipc_chan *c)
{
	struct unix_chan *u = U(c);
	ipc__close_fd(&u->lfd);
	if (ipc__owned(c->owner))
		ipc__file_remove(&u->file);
}

static void unix_init(ipc_chan *c)
{
	ipc__stream_preinit(c);
	U(c)->lfd = -1;
	U(c)->s.release = unix_release;
}

static int unix_open(ipc_chan *c, const ipc_url *url, int flags)
{
	struct unix_chan *u = U(c);
	int r;
	if (flags == IPC_SERVER) {
		int lfd = ipc__unix_listen(url->path, url->abstract, c->cfg.mode, 1, &u->file);
		if (lfd < 0)
			return lfd;
		u->lfd = lfd;
		if ((r = ipc__stream_init(c, -1, -1, true)) < 0)
			return r;
		u->s.attach = unix_attach;
		u->s.pending_fd = u->lfd;
		return 0;
	}
	/* everything that can fail goes before connect(): a client that
	 * connects and then gives up would be the server's peer */
	if ((r = ipc__stream_init(c, -1, -1, true)) < 0)
		return r;
	int fd = ipc__unix_connect(url->path, url->abstract, c->cfg.connect_timeout_ms);
	if (fd < 0)
		return fd;
	u->s.rfd = u->s.wfd = fd;
	if (url->abstract && (r = ipc__unix_peer_same_uid(fd)) < 0)
		return r;
	/* say hello at once: the server's first call can then go ahead */
	return ipc__stream_hello(c, IPC_NOWAIT);
}

static int unix_pair(ipc_chan *a, ipc_chan *b)
{
	int sv[2];
	int r = ipc__fd_fault() ? -EMFILE : 0;
	if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		r = -errno;
	if (r < 0)
		return r;
	U(a)->s.rfd = U(a)->s.wfd = sv[0];
	U(b)->s.rfd = U(b)->s.wfd = sv[1];
	if ((r = ipc__stream_init(a, sv[0], sv[0], true)) < 0 ||
	    (r = ipc__stream_init(b, sv[1], sv[1], true)) < 0)
		return r;
	ipc__stream_paired(a);
	ipc__stream_paired(b);
	if (!(a->url = ipc__url_format("unix", "pair:%d", sv[0])) ||
	    !(b->url = ipc__url_format("unix", "pair:%d", sv[1])))
		return -ENOMEM;
	return 0;
}

static int unix_listen(ipc_listener *l, const ipc_url *url)
{
	struct unix_listener *ul = UL(l);
	ul->lfd = ipc__unix_listen(url->path, url->abstract, l->cfg.mode, 128, &ul->file);
	return ul->lfd < 0 ? ul->lfd : 0;
}

static int unix_accept(ipc_listener *l, ipc_chan *c, ipc_deadline *dl)
{
	struct unix_listener *ul = UL(l);
	int fd = accept_checked(ul->lfd, ul->file.abstract, dl);
	if (fd < 0)
		return fd;
	U(c)->s.rfd = U(c)->s.wfd = fd;
	int r = ipc__stream_init(c, fd, fd, true);
	if (r < 0)
		return r;
	/* say hello at once: the client's first send can then go ahead */
	return ipc__stream_hello(c, IPC_NOWAIT);
}

static int unix_listener_fd(ipc_listener *l)
{
	return UL(l)->lfd;
}

static void unix_listener_close(ipc_listener *l)
{
	struct unix_listener *ul = UL(l);
	ipc__close_fd(&ul->lfd);
	if (ipc__owned(l->owner))
		ipc__file_remove(&ul->file);
}

const struct ipc_backend ipc__backend_unix = {
	.scheme = "unix",
	.addr_kind = IPC_ADDR_PATH,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_LISTEN | IPC_CAP_UNRELATED | IPC_CAP_PAIR |
		IPC_CAP_ABSTRACT | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct unix_chan),
	.listener_size = sizeof(struct unix_listener),
	.max_msg_limit = UINT32_MAX,
	.init = unix_init,
	.open = unix_open,
	.pair = unix_pair,
	IPC_STREAM_OPS,
	.listen = unix_listen,
	.accept = unix_accept,
	.listener_fd = unix_listener_fd,
	.listener_close = unix_listener_close,
};
