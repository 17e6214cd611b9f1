/*
 * fdio.h - descriptor helpers shared by the fd backends: flags, timed
 * waits with EINTR retried against the remaining time, SIGPIPE-free
 * writes to pipes, path checks.
 */
#ifndef IPC_POSIX_FDIO_H
#define IPC_POSIX_FDIO_H

#include "backend.h"

#include <poll.h>
#include <sys/uio.h>

int ipc__set_nonblock(int fd, bool on);

/* Wait until fd reports one of events (or POLLERR/POLLHUP/POLLNVAL).
 * Returns the revents (> 0), ipc__timeout_err(dl) when the deadline
 * passes, or -errno. EINTR is retried with the time left. */
int ipc__wait_fd(int fd, short events, ipc_deadline dl);

/* Same over n descriptors; fills pfd[i].revents; returns how many are
 * ready (> 0) or an error as above. */
int ipc__wait_fds(struct pollfd *pfd, int n, ipc_deadline dl);

/* Sleep until the deadline or for ms, whichever is first (EINTR retried). */
void ipc__sleep_ms(int ms, ipc_deadline dl);

/* writev() to a pipe or FIFO without raising SIGPIPE: when the process
 * ignores SIGPIPE (checked once per call site's cached flag) it is a
 * plain writev; otherwise SIGPIPE is blocked in this thread around the
 * call and a SIGPIPE it generated is consumed. Returns bytes or -errno. */
ssize_t ipc__pipe_writev(int fd, const struct iovec *iov, int n, bool sigpipe_ignored);
/* True when SIGPIPE's disposition is SIG_IGN in this process. */
bool ipc__sigpipe_ignored(void);

/* Size the pipe (or FIFO) behind fd: to capacity bytes when asked (the
 * kernel rounds up to a power of two pages; -errno when it refuses, e.g.
 * -EPERM above /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE), else
 * to IPC_PIPE_DEFAULT when the kernel allows it, the default size left
 * alone otherwise. */
#define IPC_PIPE_DEFAULT (128 * 1024)
int ipc__pipe_size(int fd, size_t capacity);

/* -ENAMETOOLONG when strlen(path) + extra > max, -EINVAL when not absolute. */
int ipc__check_path(const char *path, size_t extra, size_t max);

/* Close fd if >= 0, preserving errno; sets *fd to -1. */
void ipc__close_fd(int *fd);

#endif
