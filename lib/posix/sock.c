/* sock.c - socket helpers shared by the unix, tcp and shm backends. */
#include "posix/sock.h"
#include "posix/fdio.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ipc__unix_addr(struct sockaddr_un *sa, socklen_t *len, const char *path, bool abstract)
{
	size_t n = strlen(path);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (abstract) {
		if (n == 0)
			return -EINVAL;
		if (n + 1 > sizeof(sa->sun_path))
			return -ENAMETOOLONG;
		memcpy(sa->sun_path + 1, path, n);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	} else {
		if (n + 1 > sizeof(sa->sun_path))
			return -ENAMETOOLONG;
		memcpy(sa->sun_path, path, n + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

/*
 * Is a socket listening on this path? /proc/net/unix lists every Unix
 * socket with its flags (__SO_ACCEPTCON = 0x10000 for listeners) and
 * path. Reading it avoids connecting to a live server, which would hand
 * that server a bogus client.
 */
static bool unix_path_listening(const char *path)
{
	FILE *f = fopen("/proc/net/unix", "re");
	if (!f)
		return true; /* cannot tell: never steal */
	char line[4096 + 128];
	bool live = false;
	size_t plen = strlen(path);
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return true;
	}
	while (!live && fgets(line, sizeof(line), f)) {
		unsigned long flags = 0;
		int off = -1;
		/* Num RefCount Protocol Flags Type St Inode Path */
		if (sscanf(line, "%*s %*s %*s %lx %*s %*s %*s %n", &flags, &off) < 1 || off < 0)
			continue;
		char *p = line + off;
		size_t n = strcspn(p, "\n");
		if (n == plen && memcmp(p, path, plen) == 0 && (flags & 0x10000))
			live = true;
	}
	fclose(f);
	return live;
}

int ipc__name_lock(const char *kind, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t max = sizeof sa.sun_path - 1, len;
	if (strlen(kind) + strlen(name) + 8 <= max) {
		len = (size_t)snprintf(sa.sun_path + 1, max, "ipckit-%s:%s", kind, name);
	} else {
		uint64_t h = 1469598103934665603ull; /* FNV-1a */
		for (const char *p = name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		len = (size_t)snprintf(sa.sun_path + 1, max, "ipckit-%s#%016llx", kind,
				       (unsigned long long)h);
	}
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

int ipc__unix_listen(const char *path, bool abstract, unsigned mode, int backlog)
{
	struct sockaddr_un sa;
	socklen_t len;
	int r = ipc__unix_addr(&sa, &len, path, abstract);
	if (r < 0)
		return r;
	/* Path sockets: bind, reclaim and listen under a name lock, so that
	 * two servers reclaiming (or one creating while another reclaims)
	 * cannot both succeed: without it a second server could take the
	 * first one's freshly bound socket, not listening yet, for stale. */
	int lock = -1;
	if (!abstract && (lock = ipc__name_lock("unix", path)) < 0)
		return lock;
	/* nonblocking: ipc__accept polls with the caller's deadline */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (!abstract) {
		/* bind() creates the file with 0777 & ~umask, and the umask is
		 * process-wide, so chmod after bind: nobody can connect before
		 * listen() anyway. */
		if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
			r = -errno;
			if (r == -EADDRINUSE) {
				struct stat st;
				if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
					r = -EADDRINUSE; /* something else lives there */
				} else if (!unix_path_listening(path)) {
					/* stale: its server died; reclaim it */
					unlink(path);
					r = bind(fd, (struct sockaddr *)&sa, len) < 0 ? -errno : 0;
				}
			}
			if (r < 0)
				goto fail;
		}
		if (chmod(path, mode & 0777) < 0) {
			r = -errno;
			unlink(path);
			goto fail;
		}
	} else if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
		r = -errno;
		goto fail;
	}
	if (listen(fd, backlog) < 0) {
		r = -errno;
		if (!abstract)
			unlink(path);
		goto fail;
	}
	r = fd;
	goto out;
fail:
	close(fd);
out:
	if (lock >= 0)
		close(lock);
	return r;
}

int ipc__unix_connect(const char *path, bool abstract, int timeout_ms)
{
	struct sockaddr_un sa;
	socklen_t len;
	int r = ipc__unix_addr(&sa, &len, path, abstract);
	if (r < 0)
		return r;
	ipc_deadline dl = timeout_ms == 0 ? IPC_NOWAIT : ipc__deadline(timeout_ms);
	int delay = 1;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		do
			r = connect(fd, (struct sockaddr *)&sa, len);
		while (r < 0 && errno == EINTR);
		if (r == 0)
			return fd;
		r = -errno;
		close(fd);
		if (r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN)
			return r;
		if (dl == IPC_NOWAIT)
			return r == -EAGAIN ? -ECONNREFUSED : r;
		if (ipc__expired(dl))
			return -ETIMEDOUT;
		ipc__sleep_ms(delay, dl);
		if (delay < 50)
			delay *= 2;
	}
}

void ipc__unix_unlink(const char *path, bool abstract)
{
	if (!abstract && path && path[0])
		unlink(path);
}

int ipc__unix_peer_same_uid(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	return cr.uid == geteuid() ? 0 : -EACCES;
}

int ipc__accept(int lfd, ipc_deadline dl)
{
	for (;;) {
		/* lfd is nonblocking; the accepted socket is blocking */
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		int e = errno;
		if (e == EINTR || e == ECONNABORTED)
			continue;
		if (e != EAGAIN && e != EWOULDBLOCK)
			return -e;
		int r = ipc__wait_fd(lfd, POLLIN, dl);
		if (r < 0)
			return r;
	}
}
