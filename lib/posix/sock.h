/*
 * sock.h - Unix-domain and inet socket helpers shared by the unix, tcp,
 * udp, shm and mq backends: addresses, listening with stale-endpoint
 * reclaim, connecting with retry, name locks, peer credentials, and the
 * endpoint names that only their creating process removes.
 */
#ifndef IPC_POSIX_SOCK_H
#define IPC_POSIX_SOCK_H

#include "backend.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

/* Build a sockaddr_un for /path or an abstract name (abstract=true, name
 * without '@'). -ENAMETOOLONG when it does not fit. */
int ipc__unix_addr(struct sockaddr_un *sa, socklen_t *len, const char *path, bool abstract);

struct ipc_file;
/* A listening SOCK_STREAM Unix socket (CLOEXEC, NONBLOCK). A path left by
 * a dead server is reclaimed: the file itself is compared (by inode), so
 * no other spelling of a live server's path ("//", "/./", a symlinked
 * directory) can steal it, and only a socket file no socket is bound to is
 * stale. A live one gives -EADDRINUSE. The socket file gets mode and is
 * noted in *f (for ipc__file_remove). Returns the fd or -errno. */
int ipc__unix_listen(const char *path, bool abstract, unsigned mode, int backlog,
		     struct ipc_file *f);

/* Connect a SOCK_STREAM Unix socket without ever blocking in connect()
 * (a full backlog is retried like a missing server) until timeout_ms
 * passes (-ETIMEDOUT); 0 means one try (-ENOENT or -ECONNREFUSED).
 * Returns the fd (blocking, CLOEXEC). */
int ipc__unix_connect(const char *path, bool abstract, int timeout_ms);

/*
 * A name lock for the create-or-reclaim step of a named endpoint: the
 * abstract Unix socket "ipckit-<kind>:<name>" ("ipckit-<kind>#<hash>" when
 * too long). Returns 0 with *fd the lock (held until closed or the process
 * dies), -EADDRINUSE while a process of this user holds it, or -errno.
 * Abstract names have no permissions, so another user can bind ours; a
 * lock held only by other users is treated as not held (0 with *fd = -1):
 * the endpoint's own checks (an atomic create, the stale test) still keep
 * it safe, and nobody can deny a free name by squatting its lock.
 */
int ipc__name_lock(const char *kind, const char *name, int *fd);

/* The canonical form of an absolute path for locks and comparisons: the
 * real path of its directory, then its last component. -errno when the
 * directory cannot be resolved. */
int ipc__canon_path(const char *path, char *out, size_t cap);

/*
 * A file an endpoint created (a socket file, a FIFO): which one it is, so
 * that it is removed only while it is still ours. After fork() or a race
 * with a reclaiming server, the path may name another endpoint's file by
 * the time we close; and only the creating process removes names at all
 * (ipc__owned).
 */
struct ipc_file {
	char path[108];   /* sun_path size; FIFOs use their own buffers */
	bool abstract;    /* no file (abstract socket name) */
	bool made;        /* we created it and have not removed it */
	dev_t dev;
	ino_t ino;
};
/* Note the file at path as ours (after bind or mkfifo). 0 or -errno. */
int ipc__file_made(struct ipc_file *f, const char *path, bool abstract);
/* Remove it if it is still the file we made (same inode). */
void ipc__file_remove(struct ipc_file *f);
/* Remove path if it is the file (dev, ino). */
void ipc__unlink_same(const char *path, dev_t dev, ino_t ino);

/* 0 when the peer of a connected Unix socket has our uid, else -EACCES. */
int ipc__unix_peer_same_uid(int fd);

/* Accept one connection on a nonblocking listening socket within the deadline;
 * returns the fd (blocking, CLOEXEC) or -errno. */
int ipc__accept(int lfd, ipc_deadline *dl);

/*
 * Sockets wait in recv itself, with SO_RCVTIMEO as the time left: one
 * system call for a receive that waits, where a non-blocking try, a poll
 * and a second try cost three (and on a VM a process woken in poll wakes
 * measurably later than one woken in recv). *cur caches what is set
 * (-1: none, the kernel's default); the option is only set when the time
 * changes, so a caller that always passes one timeout pays for it once (a
 * call's deadline is anchored when it first waits: its first wait is its
 * whole timeout). ms is ipc__remaining_ms(): -1 forever, > 0 a bound.
 */
int ipc__sock_rcvtimeo(int fd, int *cur, int ms);

/* lib/posix/unixdiag.c: 1 when some Unix socket is bound to the file
 * (dev, ino), 0 when none is, -errno when the kernel cannot tell. */
int ipc__unix_bound(dev_t dev, ino_t ino);
/* 0 when no socket holds the abstract name (len bytes, no leading NUL),
 * 1 when only other users' sockets do, 2 when one of uid's does; -errno
 * when the kernel cannot tell. */
int ipc__abstract_holders(const char *name, size_t len, uid_t uid);

/* host:port of u resolved for socktype (SOCK_STREAM, SOCK_DGRAM); passive
 * for a server. -EADDRNOTAVAIL for an unknown host, -ENOMEM, -errno. */
int ipc__resolve(const ipc_url *u, int socktype, bool passive, struct addrinfo **res);
/* The resolved URL "<scheme>://host:port" of a bound inet socket (port 0
 * becomes the real port); NULL on ENOMEM. */
char *ipc__inet_url(const char *scheme, int fd, const char *host);

#endif
