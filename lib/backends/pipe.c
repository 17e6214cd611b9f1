/*
 * pipe.c - anonymous pipes, one each way.
 *
 * URL: only ipc_pair("pipe"), or pipe://R,W to adopt two inherited
 * descriptors (a read end and a write end) after exec; ipc_info.url of a
 * pair end names its descriptors in that form. The pair's descriptors are
 * close-on-exec: clear FD_CLOEXEC (or dup2) on the end you hand to a
 * program you exec. After fork, each process closes the end it does not
 * use, or EOF (peer death) is never seen. Framing from lib/stream.c; the
 * write end is nonblocking and SIGPIPE is never raised (lib/posix/fdio.c).
 * The pipe size is `capacity` (F_SETPIPE_SZ), by default 128 KiB where the
 * kernel allows (see ipc__pipe_size).
 */
#include "backend.h"
#include "posix/fdio.h"
#include "stream/stream.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

struct pipe_chan {
	struct ipc_stream s; /* must be first */
};

#define P(c) IPC_PRIV(c, struct pipe_chan)

static void pipe_init(ipc_chan *c)
{
	ipc__stream_preinit(c);
}

/* Take rfd/wfd for channel c. On failure the descriptors are left alone
 * (they stay the caller's). */
static int adopt(ipc_chan *c, int rfd, int wfd)
{
	int r;
	if ((r = ipc__pipe_size(wfd, c->cfg.capacity)) < 0)
		return r;
	if ((r = ipc__set_nonblock(rfd, false)) < 0 || (r = ipc__set_nonblock(wfd, true)) < 0)
		return r;
	if ((r = ipc__stream_init(c, rfd, wfd, false)) < 0)
		P(c)->s.rfd = P(c)->s.wfd = -1;
	return r;
}

static int check_end(int fd, int accmode)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -EBADF;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return -EINVAL;
	if ((fl & O_ACCMODE) != accmode && (fl & O_ACCMODE) != O_RDWR)
		return -EBADF;
	return 0;
}

static int pipe_open(ipc_chan *c, const ipc_url *u, int flags)
{
	int r;
	if (u->rfd == u->wfd)
		return -EINVAL;
	if ((r = check_end(u->rfd, O_RDONLY)) < 0 || (r = check_end(u->wfd, O_WRONLY)) < 0)
		return r;
	return adopt(c, u->rfd, u->wfd);
}

static int pipe_pair(ipc_chan *a, ipc_chan *b)
{
	int p1[2], p2[2];
	int r = ipc__pipe2(p1, O_CLOEXEC);
	if (r < 0)
		return r;
	if ((r = ipc__pipe2(p2, O_CLOEXEC)) < 0) {
		close(p1[0]);
		close(p1[1]);
		return r;
	}
	/* a reads p1 and writes p2; b reads p2 and writes p1; from here on
	 * close() releases them */
	P(a)->s.rfd = p1[0];
	P(a)->s.wfd = p2[1];
	P(b)->s.rfd = p2[0];
	P(b)->s.wfd = p1[1];
	if ((r = adopt(a, p1[0], p2[1])) < 0) {
		P(a)->s.rfd = p1[0];
		P(a)->s.wfd = p2[1];
		return r;
	}
	if ((r = adopt(b, p2[0], p1[1])) < 0) {
		P(b)->s.rfd = p2[0];
		P(b)->s.wfd = p1[1];
		return r;
	}
	ipc__stream_paired(a);
	ipc__stream_paired(b);
	if (!(a->url = ipc__url_format("pipe", "%d,%d", p1[0], p2[1])) ||
	    !(b->url = ipc__url_format("pipe", "%d,%d", p2[0], p1[1])))
		return -ENOMEM;
	return 0;
}

const struct ipc_backend ipc__backend_pipe = {
	.scheme = "pipe",
	.addr_kind = IPC_ADDR_FDS,
	.caps = IPC_CAP_RELIABLE | IPC_CAP_PAIR | IPC_CAP_PROCESS,
	.chan_size = sizeof(struct pipe_chan),
	.max_msg_limit = UINT32_MAX,
	.init = pipe_init,
	.open = pipe_open,
	.pair = pipe_pair,
	IPC_STREAM_OPS,
};
