/*
 * fdio.h - descriptor helpers shared by the fd backends: the calls that
 * create descriptors (each through the fault-injection choke point of
 * lib/fault.h, returning the fd or -errno), flags, timed waits with EINTR
 * retried against the remaining time, the connect-retry loop, SIGPIPE-free
 * writes to pipes, path checks.
 */
#ifndef IPC_POSIX_FDIO_H
#define IPC_POSIX_FDIO_H

#include "backend.h"

#include <poll.h>
#include <sys/uio.h>

/* Descriptor-creating calls: the new fd (close-on-exec unless the flags
 * say otherwise for pipe2/socket) or -errno. */
int ipc__socket(int domain, int type, int protocol);
int ipc__pipe2(int fds[2], int flags);
int ipc__eventfd(unsigned initval, int flags);
int ipc__epoll(void);
int ipc__open(const char *path, int flags, unsigned mode);
int ipc__accept4(int lfd, int flags);

int ipc__set_nonblock(int fd, bool on);

/* Wait until fd reports one of events (or POLLERR/POLLHUP/POLLNVAL).
 * Returns the revents (> 0), ipc__timeout_err(dl) when the deadline
 * passes, or -errno. EINTR is retried with the time left. */
int ipc__wait_fd(int fd, short events, ipc_deadline *dl);

/* Same over n descriptors; fills pfd[i].revents; returns how many are
 * ready (> 0) or an error as above. */
int ipc__wait_fds(struct pollfd *pfd, int n, ipc_deadline *dl);

/* Sleep until the deadline or for ms, whichever is first (EINTR retried). */
void ipc__sleep_ms(int ms, ipc_deadline *dl);

/*
 * The connect-retry loop of every client: call try(arg) until it returns
 * something other than -ENOENT, -ECONNREFUSED or -EAGAIN (the server is not
 * there yet, or its backlog is full), sleeping 1, 2, 4 ... 50 ms between
 * tries, for at most timeout_ms (then -ETIMEDOUT). timeout_ms 0 is one try:
 * its error, with -EAGAIN reported as -ECONNREFUSED.
 */
int ipc__retry(int timeout_ms, int (*try)(void *arg), void *arg);

/* writev() to a pipe or FIFO without raising SIGPIPE: when the process
 * ignores SIGPIPE (checked once per call site's cached flag) it is a
 * plain writev; otherwise SIGPIPE is blocked in this thread around the
 * call and a SIGPIPE it generated is consumed. Returns bytes or -errno. */
ssize_t ipc__pipe_writev(int fd, const struct iovec *iov, int n, bool sigpipe_ignored);
/* True when SIGPIPE's disposition is SIG_IGN in this process. */
bool ipc__sigpipe_ignored(void);

/* One read (write) on a pipe that never blocks, whatever the O_NONBLOCK
 * flag of fd's open file description says: another process holding the
 * same description (one passed over SCM_RIGHTS) can change that flag, or
 * take the bytes poll() just reported. preadv2/pwritev2 with RWF_NOWAIT;
 * on a kernel without it for pipes, a poll first (read) or the plain call
 * (write). Bytes, or -1 with errno (EAGAIN when it would block). */
ssize_t ipc__pipe_read_nowait(int fd, void *buf, size_t n);
ssize_t ipc__pipe_write_nowait(int fd, const void *buf, size_t n);

/* Size the pipe (or FIFO) behind fd: to capacity bytes when asked (the
 * kernel rounds up to a power of two pages; -errno when it refuses, e.g.
 * -EPERM above /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE), else
 * to IPC_PIPE_DEFAULT when the kernel allows it, the default size left
 * alone otherwise. */
#define IPC_PIPE_DEFAULT (128 * 1024)
int ipc__pipe_size(int fd, size_t capacity);

/* -ENAMETOOLONG when strlen(path) + extra > max, -EINVAL when not absolute. */
int ipc__check_path(const char *path, size_t extra, size_t max);

/*
 * ipc_fd's building blocks, shared by every backend whose descriptor is an
 * epoll set: ipc__evset makes the set (close-on-exec) watching the fds
 * that are >= 0 for EPOLLIN, plus a fresh nonblocking eventfd that the
 * backend keeps readable exactly while messages wait in user space:
 * 0 with *epfd and *evfd, or -errno with nothing made. ipc__ev_level makes
 * evfd readable exactly when want; *on tracks its state so that a system
 * call is made only on a change (evfd may be -1: no ipc_fd yet).
 */
int ipc__evset(int *epfd, int *evfd, const int *fds, int n);
void ipc__ev_level(int evfd, bool *on, bool want);

/* Close fd if >= 0, preserving errno; sets *fd to -1. */
void ipc__close_fd(int *fd);

#endif
