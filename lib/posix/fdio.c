/* fdio.c - descriptor helpers shared by the fd backends (see fdio.h). */
#include "posix/fdio.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FD_OR_ERR(expr) do { \
		if (ipc__fd_fault()) \
			return -EMFILE; \
		int fd_ = (expr); \
		return fd_ < 0 ? -errno : fd_; \
	} while (0)

int ipc__socket(int domain, int type, int protocol)
{
	FD_OR_ERR(socket(domain, type, protocol));
}

int ipc__eventfd(unsigned initval, int flags)
{
	FD_OR_ERR(eventfd(initval, flags));
}

int ipc__epoll(void)
{
	FD_OR_ERR(epoll_create1(EPOLL_CLOEXEC));
}

int ipc__open(const char *path, int flags, unsigned mode)
{
	int fd;
	if (ipc__fd_fault())
		return -EMFILE;
	do
		fd = open(path, flags, (mode_t)mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int ipc__pipe2(int fds[2], int flags)
{
	if (ipc__fd_fault())
		return -EMFILE;
	return pipe2(fds, flags) < 0 ? -errno : 0;
}

int ipc__accept4(int lfd, int flags)
{
	FD_OR_ERR(accept4(lfd, NULL, NULL, flags));
}

int ipc__set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	int nfl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	if (nfl != fl && fcntl(fd, F_SETFL, nfl) < 0)
		return -errno;
	return 0;
}

int ipc__wait_fds(struct pollfd *pfd, int n, ipc_deadline *dl)
{
	for (;;) {
		int ms = ipc__remaining_ms(dl);
		int r = poll(pfd, (nfds_t)n, ms);
		if (r > 0)
			return r;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r == 0 && ipc__expired(dl))
			return ipc__timeout_err(dl);
		/* EINTR, or poll woke early by rounding: go round with the time left */
	}
}

int ipc__wait_fd(int fd, short events, ipc_deadline *dl)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r = ipc__wait_fds(&p, 1, dl);
	return r < 0 ? r : p.revents;
}

void ipc__sleep_ms(int ms, ipc_deadline *dl)
{
	int left = ipc__remaining_ms(dl);
	if (left >= 0 && left < ms)
		ms = left;
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int ipc__retry(int timeout_ms, int (*try)(void *arg), void *arg)
{
	ipc_deadline dl = IPC_DL_INIT(timeout_ms);
	int delay = 1;
	for (;;) {
		int r = try(arg);
		if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN)
			return r;
		if (timeout_ms == 0)
			return r == -EAGAIN ? -ECONNREFUSED : r;
		if (ipc__expired(&dl))
			return -ETIMEDOUT;
		ipc__sleep_ms(delay, &dl);
		if (delay < 50)
			delay *= 2;
	}
}

bool ipc__sigpipe_ignored(void)
{
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) < 0)
		return false;
	return !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN;
}

ssize_t ipc__pipe_writev(int fd, const struct iovec *iov, int n, bool sigpipe_ignored)
{
	ssize_t r;
	if (sigpipe_ignored) {
		do
			r = writev(fd, iov, n);
		while (r < 0 && errno == EINTR);
		return r < 0 ? -errno : r;
	}
	/* Block SIGPIPE in this thread for the write; if the write raised one
	 * (EPIPE) and none was pending before, consume it so it is never
	 * delivered. Costs two extra system calls per write (measured in
	 * docs/backends/pipe.md); ignoring SIGPIPE in the process avoids them. */
	sigset_t pipeset, old;
	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipeset, &old);
	do
		r = writev(fd, iov, n);
	while (r < 0 && errno == EINTR);
	int err = r < 0 ? errno : 0;
	if (err == EPIPE && !sigismember(&old, SIGPIPE)) {
		sigset_t pending;
		if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
			struct timespec zero = { 0, 0 };
			while (sigtimedwait(&pipeset, NULL, &zero) < 0 && errno == EINTR)
				;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r < 0 ? -err : r;
}

static atomic_bool pipe_nowait_read = true, pipe_nowait_write = true;

ssize_t ipc__pipe_read_nowait(int fd, void *buf, size_t n)
{
	struct iovec iov = { buf, n };
	if (atomic_load_explicit(&pipe_nowait_read, memory_order_relaxed)) {
		ssize_t r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
		if (r >= 0 || errno != EOPNOTSUPP)
			return r;
		atomic_store_explicit(&pipe_nowait_read, false, memory_order_relaxed);
	}
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 0) == 0) {
		errno = EAGAIN;
		return -1;
	}
	return read(fd, buf, n);
}

ssize_t ipc__pipe_write_nowait(int fd, const void *buf, size_t n)
{
	struct iovec iov = { (void *)buf, n };
	if (atomic_load_explicit(&pipe_nowait_write, memory_order_relaxed)) {
		ssize_t r = pwritev2(fd, &iov, 1, -1, RWF_NOWAIT);
		if (r >= 0 || errno != EOPNOTSUPP)
			return r;
		atomic_store_explicit(&pipe_nowait_write, false, memory_order_relaxed);
	}
	return write(fd, buf, n);
}

/*
 * Why 128 KiB by default: a 64 KiB message plus its 4-byte frame header
 * does not fit a default (64 KiB) pipe, so the writer stalls mid-message
 * until the reader has emptied the pipe, a wake-up more per message (the
 * 64 KiB round trip measured 2.0x the raw one on fifo and pipe). 128 KiB
 * per direction stays far below the per-user soft limit (64 MiB).
 */
int ipc__pipe_size(int fd, size_t capacity)
{
	if (!capacity) {
		int cur = fcntl(fd, F_GETPIPE_SZ);
		if (cur >= 0 && cur < IPC_PIPE_DEFAULT)
			(void)fcntl(fd, F_SETPIPE_SZ, IPC_PIPE_DEFAULT);
		return 0;
	}
	if (capacity > (size_t)1 << 30)
		return -EMSGSIZE;
	return fcntl(fd, F_SETPIPE_SZ, (int)capacity) < 0 ? -errno : 0;
}

int ipc__check_path(const char *path, size_t extra, size_t max)
{
	if (path[0] != '/')
		return -EINVAL;
	if (strlen(path) + extra > max)
		return -ENAMETOOLONG;
	return 0;
}

void ipc__close_fd(int *fd)
{
	if (*fd >= 0) {
		int e = errno;
		close(*fd);
		errno = e;
		*fd = -1;
	}
}

int ipc__evset(int *epfd, int *evfd, const int *fds, int n)
{
	int ep = ipc__epoll();
	if (ep < 0)
		return ep;
	int ev = ipc__eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev < 0) {
		close(ep);
		return ev;
	}
	struct epoll_event e = { .events = EPOLLIN };
	int r = epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) < 0 ? -errno : 0;
	for (int i = 0; r == 0 && i < n; i++)
		if (fds[i] >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e) < 0 && errno != EEXIST)
			r = -errno;
	if (r < 0) {
		close(ep);
		close(ev);
		return r;
	}
	*epfd = ep;
	*evfd = ev;
	return 0;
}

void ipc__ev_level(int evfd, bool *on, bool want)
{
	if (evfd < 0 || want == *on)
		return;
	uint64_t v = 1;
	if (want) {
		if (write(evfd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			*on = true;
	} else if (read(evfd, &v, sizeof(v)) == (ssize_t)sizeof(v) || errno == EAGAIN) {
		*on = false;
	}
}
