/*
 * fifo.c - named pipes (FIFOs), one each way.
 *
 * URL: fifo:///abs/path. The server creates <path>.c2s (client to server)
 * and <path>.s2c with `mode` (default 0600) and returns at once; paths are
 * opened with O_NOFOLLOW and must really be FIFOs. The client opens
 * .s2c for reading, then .c2s for writing, and sends its hello at once; the
 * server's first send/recv sees that hello arrive, opens .s2c for writing
 * and removes both names. Liveness of a server is an flock(LOCK_EX) held
 * on .c2s: a name pair whose lock is free belongs to a dead server and is
 * reclaimed; a locked one gives -EADDRINUSE. A client holds a lock on
 * .s2c so a second client is refused. Peer death: EOF on read, POLLERR on
 * write. Framing from lib/stream.c; writes never raise SIGPIPE. Each side
 * sizes the FIFO it reads to `capacity` (default 128 KiB, ipc__pipe_size).
 */
#include "backend.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "stream.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct fifo_chan {
	struct ipc_stream s; /* must be first */
	bool server;
	int lockfd;          /* server: holds the lock until attached */
	char c2s[PATH_MAX], s2c[PATH_MAX];
};

#define OFLAGS (O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)

/* Open a FIFO by path without following links; -ELOOP for a symlink,
 * -EADDRINUSE for something that is not a FIFO. */
static int open_fifo(const char *path, int how)
{
	int fd = open(path, how | OFLAGS);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		close(fd);
		return -EADDRINUSE;
	}
	return fd;
}

static int make_fifo(const char *path, unsigned mode)
{
	if (mkfifo(path, mode & 0777) == 0)
		return 0;
	return -errno;
}

/* Create both FIFOs, reclaiming a pair left by a dead server. */
static int server_create(struct fifo_chan *f, unsigned mode)
{
	int r = make_fifo(f->c2s, mode);
	if (r == -EEXIST) {
		int fd = open_fifo(f->c2s, O_RDONLY);
		if (fd < 0)
			return fd == -ENXIO ? -EADDRINUSE : fd;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			return -EADDRINUSE; /* a live server holds it */
		}
		close(fd);
		/* stale: its server died; start afresh */
		unlink(f->c2s);
		unlink(f->s2c);
		r = make_fifo(f->c2s, mode);
	}
	if (r < 0)
		return r;
	r = make_fifo(f->s2c, mode);
	if (r == -EEXIST) {
		struct stat st;
		if (lstat(f->s2c, &st) == 0 && S_ISFIFO(st.st_mode)) {
			unlink(f->s2c); /* left over from a dead server */
			r = make_fifo(f->s2c, mode);
		} else {
			r = -EADDRINUSE;
		}
	}
	if (r < 0)
		unlink(f->c2s);
	return r;
}

static int fifo_server_attach(ipc_chan *c, ipc_deadline dl)
{
	struct fifo_chan *f = (struct fifo_chan *)c->priv;
	for (;;) {
		int pr = ipc__wait_fd(f->s.rfd, POLLIN, dl);
		if (pr < 0)
			return pr;
		if (!(pr & POLLIN)) {
			/* a writer came and went without a word: forget it */
			int fd = open_fifo(f->c2s, O_RDONLY);
			if (fd < 0)
				return fd;
			dup2(fd, f->s.rfd);
			close(fd);
			fcntl(f->s.rfd, F_SETFD, FD_CLOEXEC);
			continue;
		}
		int wfd = open_fifo(f->s2c, O_WRONLY);
		if (wfd == -ENXIO) {
			/* Its reader is gone: the client, which opens .s2c
			 * before it says hello, closed or died since. Attach
			 * without a write end: sends give -EPIPE, receives
			 * drain what it sent, then see EOF. */
			atomic_store(&f->s.serr, -EPIPE);
			f->s.hello_sent = true; /* nobody to greet */
			wfd = -1;
		} else if (wfd < 0) {
			return wfd;
		}
		int r = ipc__set_nonblock(f->s.rfd, false);
		if (r < 0) {
			if (wfd >= 0)
				close(wfd);
			return r;
		}
		f->s.wfd = wfd;
		/* a channel is a pair: release the names */
		unlink(f->c2s);
		unlink(f->s2c);
		ipc__close_fd(&f->lockfd);
		return 0;
	}
}

static int fifo_client_attach(ipc_chan *c, ipc_deadline dl)
{
	struct fifo_chan *f = (struct fifo_chan *)c->priv;
	struct pollfd p[2] = { { .fd = f->s.rfd, .events = POLLIN }, { .fd = f->s.wfd } };
	int r = ipc__wait_fds(p, 2, dl);
	if (r < 0)
		return r;
	if (!(p[0].revents & POLLIN))
		return -EPIPE; /* the server went away before it attached */
	return ipc__set_nonblock(f->s.rfd, false);
}

static void fifo_release(ipc_chan *c)
{
	struct fifo_chan *f = (struct fifo_chan *)c->priv;
	if (f->server && f->lockfd >= 0) {
		/* never attached: the names are still ours */
		unlink(f->c2s);
		unlink(f->s2c);
		ipc__close_fd(&f->lockfd);
	}
}

static int client_connect(struct fifo_chan *f, int timeout_ms, int *rfd, int *wfd)
{
	ipc_deadline dl = timeout_ms == 0 ? IPC_NOWAIT : ipc__deadline(timeout_ms);
	int delay = 1, r;
	for (;;) {
		r = open_fifo(f->s2c, O_RDONLY);
		if (r >= 0) {
			*rfd = r;
			if (flock(*rfd, LOCK_EX | LOCK_NB) < 0) {
				r = -ECONNREFUSED; /* another client has it */
			} else if ((r = open_fifo(f->c2s, O_WRONLY)) >= 0) {
				*wfd = r;
				return 0;
			}
			close(*rfd);
			if (r == -ENXIO)
				r = -ECONNREFUSED; /* no reader: no live server */
		}
		if (r != -ENOENT && r != -ECONNREFUSED)
			return r;
		if (dl == IPC_NOWAIT)
			return r;
		if (ipc__expired(dl))
			return -ETIMEDOUT;
		ipc__sleep_ms(delay, dl);
		if (delay < 50)
			delay *= 2;
	}
}

static int fifo_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct fifo_chan *f = (struct fifo_chan *)c->priv;
	f->lockfd = -1;
	int r = ipc__check_path(u->path, 4, PATH_MAX - 1);
	if (r < 0)
		return r;
	snprintf(f->c2s, sizeof(f->c2s), "%s.c2s", u->path);
	snprintf(f->s2c, sizeof(f->s2c), "%s.s2c", u->path);
	int rfd = -1, wfd = -1;
	int nlock = -1;
	if (flags == IPC_SERVER) {
		/* Create (or reclaim) and lock the names under a name lock, so
		 * that a second server reclaiming at the same time cannot
		 * unlink the pair we just made and make its own. */
		if ((nlock = ipc__name_lock("fifo", u->path)) < 0)
			return nlock;
		f->server = true;
		if ((r = server_create(f, c->cfg.mode)) < 0) {
			close(nlock);
			return r;
		}
		if ((rfd = open_fifo(f->c2s, O_RDONLY)) < 0 ||
		    (f->lockfd = open_fifo(f->c2s, O_RDONLY)) < 0) {
			r = rfd < 0 ? rfd : f->lockfd;
			goto fail;
		}
		if (flock(f->lockfd, LOCK_EX | LOCK_NB) < 0) {
			r = -EADDRINUSE; /* another server raced us to the names */
			f->server = false; /* they are its names now: leave them */
			goto fail;
		}
		/* exact mode, whatever the umask */
		int sfd = open_fifo(f->s2c, O_RDONLY);
		if (sfd < 0 || fchmod(sfd, c->cfg.mode & 0777) < 0 ||
		    fchmod(rfd, c->cfg.mode & 0777) < 0) {
			r = sfd < 0 ? sfd : -errno;
			if (sfd >= 0)
				close(sfd);
			goto fail;
		}
		close(sfd);
		ipc__close_fd(&nlock);
	} else if ((r = client_connect(f, c->cfg.connect_timeout_ms, &rfd, &wfd)) < 0) {
		return r;
	}
	/* each side sizes the FIFO it reads */
	if ((r = ipc__pipe_size(rfd, c->cfg.capacity)) < 0 ||
	    (r = ipc__stream_init(c, rfd, wfd, false)) < 0)
		goto fail;
	f->s.release = fifo_release;
	f->s.pending_fd = rfd;
	if (flags == IPC_SERVER) {
		f->s.attach = fifo_server_attach;
		return 0;
	}
	f->s.attach = fifo_client_attach;
	/* say hello now: the server waits for it to appear */
	if ((r = ipc__stream_hello(c, IPC_NOWAIT)) < 0) {
		ipc__stream_close(c);
		return r;
	}
	return 0;
fail:
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	if (f->server) {
		unlink(f->c2s);
		unlink(f->s2c);
	}
	ipc__close_fd(&f->lockfd);
	if (nlock >= 0)
		close(nlock);
	return r;
}

const struct ipc_backend ipc__backend_fifo = {
	.scheme = "fifo",
	.addr_kind = IPC_ADDR_FSPATH,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_UNRELATED,
	.chan_size = sizeof(struct fifo_chan),
	.max_msg_limit = UINT32_MAX,
	.open = fifo_open,
	.pair = NULL,
	IPC_STREAM_OPS,
};
