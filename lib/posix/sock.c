/* sock.c - socket helpers shared by the socket-based backends (sock.h). */
#include "posix/sock.h"
#include "posix/fdio.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
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

int ipc__canon_path(const char *path, char *out, size_t cap)
{
	size_t n = strlen(path);
	if (n == 0 || n >= PATH_MAX)
		return -ENAMETOOLONG;
	char dir[PATH_MAX], base[PATH_MAX], real[PATH_MAX];
	memcpy(dir, path, n + 1);
	memcpy(base, path, n + 1);
	const char *d = dirname(dir), *b = basename(base);
	if (!realpath(d, real))
		return -errno;
	int k = snprintf(out, cap, "%s%s%s", real, strcmp(real, "/") ? "/" : "", b);
	return k < 0 || (size_t)k >= cap ? -ENAMETOOLONG : 0;
}

/* An error of ours (out of descriptors or memory) rather than an answer:
 * it is returned as itself, never taken for "live" or "dead". */
static bool resource_err(int r)
{
	return r == -EMFILE || r == -ENFILE || r == -ENOMEM;
}

/*
 * Fallback of the stale test when sock_diag is missing: /proc/net/unix
 * lists every Unix socket with the path it was bound with (as written by
 * its binder). Any socket bound under the given or the canonical spelling
 * counts as live (1); when the file cannot be read, the answer is "live":
 * never steal. Out of descriptors or memory: that error.
 */
static int unix_path_bound_proc(const char *path, const char *canon)
{
	int fd = ipc__open("/proc/net/unix", O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return resource_err(fd) ? fd : 1;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	char line[4096 + 128];
	bool live = false;
	if (!fgets(line, sizeof(line), f)) { /* header */
		fclose(f);
		return 1;
	}
	while (!live && fgets(line, sizeof(line), f)) {
		int off = -1;
		/* Num RefCount Protocol Flags Type St Inode Path */
		if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %n", &off) < 0 || off < 0)
			continue;
		char *p = line + off;
		p[strcspn(p, "\n")] = 0;
		if (strcmp(p, path) == 0 || strcmp(p, canon) == 0)
			live = true;
	}
	fclose(f);
	return live;
}

/* Is the socket file at path held by any socket? (by inode; see above)
 * 1 or 0, or -EMFILE/-ENFILE/-ENOMEM when we could not ask. */
static int unix_path_live(const char *path, const char *canon, const struct stat *st)
{
	int r = ipc__unix_bound(st->st_dev, st->st_ino);
	if (r >= 0)
		return r > 0;
	if (resource_err(r))
		return r;
	return unix_path_bound_proc(path, canon);
}

int ipc__name_lock(const char *kind, const char *name, int *fdp)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t max = sizeof sa.sun_path - 1, len;
	*fdp = -1;
	if (strlen(kind) + strlen(name) + 8 <= max) {
		len = (size_t)snprintf(sa.sun_path + 1, max, "ipckit-%s:%s", kind, name);
	} else {
		uint64_t h = 1469598103934665603ull; /* FNV-1a */
		for (const char *p = name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		len = (size_t)snprintf(sa.sun_path + 1, max, "ipckit-%s#%016llx", kind,
				       (unsigned long long)h);
	}
	socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
	for (int tries = 0;; tries++) {
		int fd = ipc__socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return fd;
		if (bind(fd, (struct sockaddr *)&sa, sl) == 0) {
			*fdp = fd;
			return 0;
		}
		int e = errno;
		close(fd);
		if (e != EADDRINUSE)
			return -e;
		/* Held: by one of ours (respect it), or squatted by another user? */
		int h = ipc__abstract_holders(sa.sun_path + 1, len, geteuid());
		if (h == 1)
			return 0; /* only other users hold it: not our lock */
		if (resource_err(h))
			return h;
		if (h != 0 || tries == 2)
			return -EADDRINUSE;
		/* (its holder let go between our bind and the look: try again) */
	}
}

int ipc__unix_listen(const char *path, bool abstract, unsigned mode, int backlog,
		     struct ipc_file *f)
{
	struct sockaddr_un sa;
	socklen_t len;
	int r = ipc__unix_addr(&sa, &len, path, abstract);
	if (r < 0)
		return r;
	/* Path sockets: bind, reclaim and listen under a name lock on the
	 * canonical path, so that two servers reclaiming (or one creating
	 * while another reclaims), whatever spelling they use, cannot both
	 * succeed: without it a second server could take the first one's
	 * freshly bound socket, not listening yet, for stale. */
	int lock = -1;
	char canon[PATH_MAX];
	if (!abstract) {
		if ((r = ipc__canon_path(path, canon, sizeof(canon))) < 0)
			return r;
		if ((r = ipc__name_lock("unix", canon, &lock)) < 0)
			return r;
	}
	/* nonblocking: ipc__accept polls with the caller's deadline */
	int fd = ipc__socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = fd;
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
				int live;
				if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
					r = -EADDRINUSE; /* something else lives there */
				} else if (lstat(path, &st) == 0 &&
					   (live = unix_path_live(path, canon, &st)) <= 0) {
					/* stale: its server died; reclaim it (or we
					 * could not ask: that error) */
					if (live < 0) {
						r = live;
					} else {
						unlink(path);
						r = bind(fd, (struct sockaddr *)&sa, len) < 0 ? -errno : 0;
					}
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
	if ((r = ipc__file_made(f, path, abstract)) < 0) {
		if (!abstract)
			unlink(path);
		goto fail;
	}
	if (listen(fd, backlog) < 0) {
		r = -errno;
		ipc__file_remove(f);
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

struct unix_try {
	struct sockaddr_un sa;
	socklen_t len;
	int fd;
};

/* One nonblocking connect: a Unix socket's connect completes at once or
 * fails with EAGAIN (backlog full), ECONNREFUSED or ENOENT. */
static int unix_try(void *arg)
{
	struct unix_try *t = arg;
	int fd = ipc__socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	int r;
	do
		r = connect(fd, (struct sockaddr *)&t->sa, t->len);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		r = errno == EINPROGRESS ? -EAGAIN : -errno;
		close(fd);
		return r;
	}
	if ((r = ipc__set_nonblock(fd, false)) < 0) {
		close(fd);
		return r;
	}
	t->fd = fd;
	return 0;
}

int ipc__unix_connect(const char *path, bool abstract, int timeout_ms)
{
	struct unix_try t = { .fd = -1 };
	int r = ipc__unix_addr(&t.sa, &t.len, path, abstract);
	if (r < 0)
		return r;
	r = ipc__retry(timeout_ms, unix_try, &t);
	return r < 0 ? r : t.fd;
}

int ipc__file_made(struct ipc_file *f, const char *path, bool abstract)
{
	f->abstract = abstract;
	f->made = false;
	if (strlen(path) >= sizeof(f->path))
		return -ENAMETOOLONG;
	strcpy(f->path, path);
	if (abstract)
		return 0;
	struct stat st;
	if (lstat(path, &st) < 0)
		return -errno;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->made = true;
	return 0;
}

void ipc__unlink_same(const char *path, dev_t dev, ino_t ino)
{
	struct stat st;
	if (lstat(path, &st) == 0 && st.st_dev == dev && st.st_ino == ino)
		unlink(path);
}

void ipc__file_remove(struct ipc_file *f)
{
	if (f->made && !f->abstract)
		ipc__unlink_same(f->path, f->dev, f->ino);
	f->made = false;
}

int ipc__unix_peer_same_uid(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -errno;
	return cr.uid == geteuid() ? 0 : -EACCES;
}

int ipc__accept(int lfd, ipc_deadline *dl)
{
	for (;;) {
		/* lfd is nonblocking; the accepted socket is blocking */
		int fd = ipc__accept4(lfd, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (fd == -EINTR || fd == -ECONNABORTED)
			continue;
		if (fd != -EAGAIN && fd != -EWOULDBLOCK)
			return fd;
		int r = ipc__wait_fd(lfd, POLLIN, dl);
		if (r < 0)
			return r;
	}
}

int ipc__resolve(const ipc_url *u, int socktype, bool passive, struct addrinfo **res)
{
	char port[8];
	snprintf(port, sizeof(port), "%d", u->port);
	struct addrinfo hints = { .ai_socktype = socktype,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	int r = getaddrinfo(u->host[0] ? u->host : NULL, port, &hints, res);
	if (r == 0)
		return 0;
	if (r == EAI_SYSTEM)
		return -errno;
	if (r == EAI_MEMORY)
		return -ENOMEM;
	return -EADDRNOTAVAIL; /* unknown host */
}

char *ipc__inet_url(const char *scheme, int fd, const char *host)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	bool v6 = strchr(host, ':') != NULL;
	return ipc__url_format(scheme, v6 ? "[%s]:%d" : "%s:%d", host, port);
}

int ipc__sock_rcvtimeo(int fd, int *cur, int ms)
{
	if (*cur == ms)
		return 0;
	struct timeval tv = { 0, 0 };
	if (ms > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	*cur = ms;
	return 0;
}
