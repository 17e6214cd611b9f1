/*
 * unixdiag.c - questions about the machine's Unix-domain sockets, asked
 * through the kernel's sock_diag netlink interface (NETLINK_SOCK_DIAG,
 * AF_UNIX): is any socket bound to this file (by inode, so every spelling
 * of a path agrees), and which users hold an abstract name.
 *
 * Written by hand: one dump request and a loop over the NLMSG_* and RTA_*
 * macros of the kernel headers; libmnl would save a dozen lines and add a
 * dependency. When the interface is missing (a kernel without unix_diag)
 * the callers fall back to /proc/net/unix, which has paths but neither
 * inodes of the bound files nor owners.
 */
#include "posix/sock.h"
#include "posix/fdio.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct diag_query {
	/* by file */
	bool by_file;
	uint64_t ino;
	unsigned maj, min;
	/* by abstract name */
	const char *name;
	size_t name_len;
	/* results */
	bool found;       /* a socket matched */
	bool found_uid;   /* one of them belongs to uid */
	uid_t uid;
};

/* Does one dumped socket match q? */
static void diag_match(struct diag_query *q, struct unix_diag_msg *m, size_t len)
{
	bool match = false, has_uid = false;
	uid_t uid = 0;
	struct rtattr *a = (struct rtattr *)(m + 1);
	size_t rem = len - NLMSG_ALIGN(sizeof(*m));
	for (; RTA_OK(a, rem); a = RTA_NEXT(a, rem)) {
		if (a->rta_type == UNIX_DIAG_VFS && q->by_file &&
		    RTA_PAYLOAD(a) >= sizeof(struct unix_diag_vfs)) {
			struct unix_diag_vfs v;
			memcpy(&v, RTA_DATA(a), sizeof(v));
			/* udiag_vfs_dev is the kernel's dev_t: major << 20 | minor */
			if (v.udiag_vfs_ino == q->ino && v.udiag_vfs_dev >> 20 == q->maj &&
			    (v.udiag_vfs_dev & 0xfffff) == q->min)
				match = true;
		} else if (a->rta_type == UNIX_DIAG_NAME && !q->by_file) {
			const char *n = RTA_DATA(a);
			size_t nl = RTA_PAYLOAD(a);
			if (nl == q->name_len + 1 && n[0] == 0 && memcmp(n + 1, q->name, q->name_len) == 0)
				match = true;
		} else if (a->rta_type == UNIX_DIAG_UID && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
			uint32_t u;
			memcpy(&u, RTA_DATA(a), sizeof(u));
			uid = (uid_t)u;
			has_uid = true;
		}
	}
	if (!match)
		return;
	q->found = true;
	if (has_uid && uid == q->uid)
		q->found_uid = true;
}

/* Dump every Unix socket and match each against q: 0, or -errno when
 * sock_diag cannot answer. */
static int diag_run(struct diag_query *q)
{
	int fd = ipc__socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd < 0)
		return fd;
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} rq;
	memset(&rq, 0, sizeof(rq));
	rq.nlh.nlmsg_len = sizeof(rq);
	rq.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	rq.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	rq.req.sdiag_family = AF_UNIX;
	rq.req.udiag_states = ~0u;
	rq.req.udiag_show = (q->by_file ? UDIAG_SHOW_VFS : UDIAG_SHOW_NAME) | UDIAG_SHOW_UID;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int r = 0;
	if (sendto(fd, &rq, sizeof(rq), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto out;
	}
	static _Thread_local char buf[32768] __attribute__((aligned(8)));
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0) {
			r = -EIO;
			goto out;
		}
		size_t rem = (size_t)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, rem);
		     h = NLMSG_NEXT(h, rem)) {
			if (h->nlmsg_type == NLMSG_DONE)
				goto out;
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				r = e->error < 0 ? e->error : -EIO;
				goto out;
			}
			if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
			    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
				continue;
			diag_match(q, NLMSG_DATA(h), h->nlmsg_len - NLMSG_HDRLEN);
		}
	}
out:
	close(fd);
	return r;
}

int ipc__unix_bound(dev_t dev, ino_t ino)
{
	struct diag_query q = { .by_file = true, .ino = (uint64_t)ino, .maj = major(dev),
				.min = minor(dev) };
	int r = diag_run(&q);
	return r < 0 ? r : q.found;
}

int ipc__abstract_holders(const char *name, size_t len, uid_t uid)
{
	struct diag_query q = { .name = name, .name_len = len, .uid = uid };
	int r = diag_run(&q);
	if (r < 0)
		return r;
	return !q.found ? 0 : q.found_uid ? 2 : 1;
}
