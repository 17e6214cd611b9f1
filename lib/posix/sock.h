/*
 * sock.h - Unix-domain and inet socket helpers shared by the unix, tcp
 * and shm backends: addresses, listening with stale-endpoint reclaim,
 * connecting with retry, peer credential checks.
 */
#ifndef IPC_POSIX_SOCK_H
#define IPC_POSIX_SOCK_H

#include "backend.h"

#include <sys/socket.h>
#include <sys/un.h>

/* Build a sockaddr_un for /path or an abstract name (abstract=true, name
 * without '@'). -ENAMETOOLONG when it does not fit. */
int ipc__unix_addr(struct sockaddr_un *sa, socklen_t *len, const char *path, bool abstract);

/* A listening SOCK_STREAM Unix socket (CLOEXEC, NONBLOCK). A path left by
 * a dead server is reclaimed; a live one gives -EADDRINUSE. The socket
 * file gets mode. Returns the fd or -errno. */
int ipc__unix_listen(const char *path, bool abstract, unsigned mode, int backlog);

/* Connect a SOCK_STREAM Unix socket, retrying ENOENT/ECONNREFUSED/EAGAIN
 * until timeout_ms passes (-ETIMEDOUT); timeout_ms 0 means one try
 * (-ENOENT or -ECONNREFUSED). Returns the fd (blocking, CLOEXEC). */
int ipc__unix_connect(const char *path, bool abstract, int timeout_ms);

/* A name lock: bind the abstract Unix socket "ipckit-<kind>:<name>"
 * ("ipckit-<kind>#<64-bit FNV-1a hash of name>" when that is too long).
 * Returns its fd (the lock lasts until it is closed, or the process dies),
 * -EADDRINUSE while another process or channel holds it, or -errno. */
int ipc__name_lock(const char *kind, const char *name);

/* Remove the socket file of a path endpoint (no-op for abstract). */
void ipc__unix_unlink(const char *path, bool abstract);

/* 0 when the peer of a connected Unix socket has our uid, else -EACCES. */
int ipc__unix_peer_same_uid(int fd);

/* Accept one connection on a nonblocking listening socket within the deadline;
 * returns the fd (blocking, CLOEXEC) or -errno. */
int ipc__accept(int lfd, ipc_deadline dl);

#endif
