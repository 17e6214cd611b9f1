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
 * .s2c so a second client is refused. Creation and reclaim run under a
 * name lock on the canonical path (every spelling of the path agrees), and
 * the names are removed only by the process that made them, only while
 * they are still the FIFOs it made. Peer death: EOF on read, POLLERR on
 * write. Framing from lib/stream.c; writes never raise SIGPIPE. Each side
 * sizes the FIFO it reads to `capacity` (default 128 KiB, ipc__pipe_size).
 */
#include "backend.h"
#include "posix/fdio.h"
#include "posix/sock.h"
#include "stream/stream.h"

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
	bool made;           /* server: the FIFOs below are ours to remove */
	int lockfd;          /* server: holds the lock until attached */
	dev_t dev[2];        /* the FIFOs we made: c2s, s2c */
	ino_t ino[2];
	char c2s[PATH_MAX], s2c[PATH_MAX];
};

#define F(c) IPC_PRIV(c, struct fifo_chan)

#define OFLAGS (O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)

/* Open a FIFO by path without following links; -ELOOP for a symlink,
 * -EADDRINUSE for something that is not a FIFO. */
static int open_fifo(const char *path, int how)
{
	int fd = ipc__open(path, how | OFLAGS, 0);
	if (fd < 0)
		return fd;
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
	if (r < 0) {
		unlink(f->c2s);
		return r;
	}
	struct stat st[2];
	if (lstat(f->c2s, &st[0]) < 0 || lstat(f->s2c, &st[1]) < 0) {
		r = -errno;
		unlink(f->c2s);
		unlink(f->s2c);
		return r;
	}
	for (int i = 0; i < 2; i++) {
		f->dev[i] = st[i].st_dev;
		f->ino[i] = st[i].st_ino;
	}
	f->made = true;
	return 0;
}

/* Remove both names if they are still the FIFOs we made. */
static void fifo_remove(struct fifo_chan *f)
{
	if (!f->made)
		return;
	ipc__unlink_same(f->c2s, f->dev[0], f->ino[0]);
	ipc__unlink_same(f->s2c, f->dev[1], f->ino[1]);
	f->made = false;
}

static int fifo_server_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct fifo_chan *f = F(c);
	for (;;) {
		int pr = ipc__wait_fd(f->s.rfd, POLLIN, dl);
		if (pr < 0)
			return pr;
		if (!(pr & POLLIN)) {
			/* a writer came and went without a word: forget it
			 * (a fresh read end; ipc_fd's set follows it) */
			int fd = open_fifo(f->c2s, O_RDONLY);
			if (fd < 0)
				return fd;
			int r = ipc__stream_replace_fd(&f->s, f->s.rfd, fd);
			if (r < 0)
				return r;
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
		fifo_remove(f);
		ipc__close_fd(&f->lockfd);
		return 0;
	}
}

static int fifo_client_attach(ipc_chan *c, ipc_deadline *dl)
{
	struct fifo_chan *f = F(c);
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
	struct fifo_chan *f = F(c);
	/* never attached: the names are still ours (not a forked copy's) */
	if (ipc__owned(c->owner))
		fifo_remove(f);
	ipc__close_fd(&f->lockfd);
}

static void fifo_init(ipc_chan *c)
{
	ipc__stream_preinit(c);
	F(c)->lockfd = -1;
	F(c)->s.release = fifo_release;
}

/* One client attempt: both ends open and .s2c locked, or an error
 * (-ENOENT / -ECONNREFUSED: no server there yet). */
static int client_try(void *arg)
{
	struct fifo_chan *f = arg;
	int r = open_fifo(f->s2c, O_RDONLY);
	if (r < 0)
		return r;
	int rfd = r;
	if (flock(rfd, LOCK_EX | LOCK_NB) < 0) {
		r = -ECONNREFUSED; /* another client has it */
	} else if ((r = open_fifo(f->c2s, O_WRONLY)) >= 0) {
		f->s.rfd = rfd;
		f->s.wfd = r;
		return 0;
	}
	close(rfd);
	return r == -ENXIO ? -ECONNREFUSED : r; /* no reader: no live server */
}

static int fifo_open_server(ipc_chan *c, const ipc_url *u)
{
	struct fifo_chan *f = F(c);
	/* Create (or reclaim) and lock the names under a name lock, so that
	 * a second server reclaiming at the same time cannot unlink the pair
	 * we just made and make its own. */
	char canon[PATH_MAX];
	int nlock = -1, r = ipc__canon_path(u->path, canon, sizeof(canon));
	if (r < 0 || (r = ipc__name_lock("fifo", canon, &nlock)) < 0)
		return r;
	f->server = true;
	if ((r = server_create(f, c->cfg.mode)) < 0)
		goto out;
	if ((r = open_fifo(f->c2s, O_RDONLY)) < 0)
		goto out;
	f->s.rfd = r;
	if ((r = open_fifo(f->c2s, O_RDONLY)) < 0)
		goto out;
	f->lockfd = r;
	if (flock(f->lockfd, LOCK_EX | LOCK_NB) < 0) {
		r = -EADDRINUSE; /* another server raced us to the names */
		f->made = false;  /* they are its names now: leave them */
		goto out;
	}
	/* exact mode, whatever the umask */
	int sfd = open_fifo(f->s2c, O_RDONLY);
	if (sfd < 0) {
		r = sfd;
		goto out;
	}
	r = fchmod(sfd, c->cfg.mode & 0777) < 0 || fchmod(f->s.rfd, c->cfg.mode & 0777) < 0
		    ? -errno : 0;
	close(sfd);
out:
	if (nlock >= 0)
		close(nlock);
	return r;
}

static int fifo_open(ipc_chan *c, const ipc_url *u, int flags)
{
	struct fifo_chan *f = F(c);
	int r = ipc__check_path(u->path, 4, PATH_MAX - 1);
	if (r < 0)
		return r;
	snprintf(f->c2s, sizeof(f->c2s), "%s.c2s", u->path);
	snprintf(f->s2c, sizeof(f->s2c), "%s.s2c", u->path);
	/* (everything that can fail goes before the client opens the
	 * FIFOs: see unix.c) */
	if ((r = ipc__stream_init(c, -1, -1, false)) < 0)
		return r;
	if (flags == IPC_SERVER)
		r = fifo_open_server(c, u);
	else
		r = ipc__retry(c->cfg.connect_timeout_ms, client_try, f);
	if (r < 0)
		return r;
	/* each side sizes the FIFO it reads */
	int rfd = f->s.rfd;
	if ((r = ipc__pipe_size(rfd, c->cfg.capacity)) < 0)
		return r;
	f->s.pending_fd = rfd;
	if (flags == IPC_SERVER) {
		f->s.attach = fifo_server_attach;
		return 0;
	}
	f->s.attach = fifo_client_attach;
	/* say hello now: the server waits for it to appear */
	return ipc__stream_hello(c, IPC_NOWAIT);
}

const struct ipc_backend ipc__backend_fifo = {
	.scheme = "fifo",
	.addr_kind = IPC_ADDR_FSPATH,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_UNRELATED | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct fifo_chan),
	.max_msg_limit = UINT32_MAX,
	.init = fifo_init,
	.open = fifo_open,
	.pair = NULL,
	IPC_STREAM_OPS,
};
