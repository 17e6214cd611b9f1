/*
 * stream/stream.c - the stream layer's lifecycle and handshake: state set-up
 * (preinit, init, pairs), our hello, the handshake run once under a lock
 * (ipc__stream_ready), ipc_fd, close. The bytes are in docs/protocol.md;
 * sending is in send.c, receiving in recv.c, and stream.h says what the
 * three share.
 *
 * Handshake: each side sends a hello and reads the peer's before its first
 * send (to learn the peer's max_msg; pairs know it already) or receive, in
 * ipc__stream_ready, under a lock shared by a sending and a receiving
 * thread.
 */
#include "stream/stream.h"
#include "posix/fdio.h"
#include "posix/sock.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CLOSE_FLUSH_MS 1000

void ipc__stream_preinit(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	s->rfd = s->wfd = s->pending_fd = -1;
	s->epfd = s->evfd = -1;
	s->rcvtimeo_ms = -1; /* a new socket waits for ever */
}

int ipc__stream_init(ipc_chan *c, int rfd, int wfd, bool is_sock)
{
	struct ipc_stream *s = S(c);
	s->rfd = rfd;
	s->wfd = wfd;
	s->is_sock = is_sock;
	s->sigpipe_ignored = is_sock || ipc__sigpipe_ignored();
	s->spin_ns = ipc__spin_ns(&c->cfg, IPC_KERNEL_SPIN_NS);
	atomic_init(&s->rwf_nowait, !is_sock);
	/* (+ a frame header: recv_direct may keep a header and 64 KiB) */
	if (!(s->rbuf = ipc__malloc(IPC_RBUF_SIZE + IPC_FRAME_HDR)))
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL) != 0)
		return -ENOMEM;
	s->lock_init = true;
	return ipc__tail_init(&s->tail, c, ipc__stream_tail_write, ipc__stream_tail_abort);
}

void ipc__stream_paired(ipc_chan *c)
{
	atomic_store_explicit(&c->peer_max, c->max_msg, memory_order_relaxed);
}

int ipc__stream_hello(ipc_chan *c, ipc_deadline *dl)
{
	struct ipc_stream *s = S(c);
	if (s->hello_sent)
		return 0;
	unsigned char hello[IPC_HELLO_LEN] = { 'I', 'P', 'C', 'K', IPC_PROTO_VERSION, 0,
					       IPC_HELLO_LEN, 0 };
	put_le32(hello + 8, c->max_msg > UINT32_MAX ? UINT32_MAX : (uint32_t)c->max_msg);
	struct iovec iov = { hello, sizeof(hello) };
	size_t done;
	/* (16 bytes into a fresh channel: in practice never cut) */
	int r = ipc__stream_write_msg(s, &iov, 1, sizeof(hello), dl, &done);
	if (r == -EPIPE)
		r = 0; /* peer already gone: receives still drain what it sent */
	if (r == 0)
		s->hello_sent = true;
	return r;
}

/*
 * The handshake, once: attach (server side), send our hello, read the
 * peer's. A send may go as soon as the peer's max_msg is known (send_ok:
 * pairs know it from the start); a receive needs the peer's hello read.
 * The lock is taken within the caller's deadline: a second thread (a
 * sender while a receiver attaches) gives up at its own.
 */
int ipc__stream_ready(ipc_chan *c, ipc_deadline *dl, bool for_send)
{
	struct ipc_stream *s = S(c);
	if (atomic_load_explicit(&s->ready, memory_order_acquire) ||
	    (for_send && atomic_load_explicit(&s->send_ok, memory_order_acquire)))
		return 0;
	int r = ipc__mutex_lock_dl(&s->lock, dl);
	if (r < 0)
		return r;
	if (atomic_load_explicit(&s->ready, memory_order_relaxed))
		goto out;
	if (!s->hello_sent && s->wfd >= 0 && (r = ipc__stream_hello(c, dl)) < 0)
		goto out;
	if (s->attach) {
		if ((r = s->attach(c, dl)) < 0)
			goto out;
		s->attach = NULL;
		s->pending_fd = -1;
		if (s->epfd >= 0) {
			struct epoll_event ev = { .events = EPOLLIN, .data.fd = s->rfd };
			if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->rfd, &ev) < 0 && errno != EEXIST) {
				r = -errno;
				goto out;
			}
		}
	}
	if ((r = ipc__stream_hello(c, dl)) < 0)
		goto out;
	if (atomic_load_explicit(&c->peer_max, memory_order_relaxed))
		atomic_store_explicit(&s->send_ok, true, memory_order_release);
	if (for_send && atomic_load_explicit(&s->send_ok, memory_order_relaxed))
		goto out;
	if (!s->hello_rcvd && (r = ipc__stream_read_hello(c, dl)) < 0)
		goto out;
	atomic_store_explicit(&s->send_ok, true, memory_order_release);
	atomic_store_explicit(&s->ready, true, memory_order_release);
out:
	pthread_mutex_unlock(&s->lock);
	return r;
}

int ipc__stream_fd(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	if (s->epfd >= 0)
		return s->epfd;
	pthread_mutex_lock(&s->lock);
	int watch = atomic_load(&s->ready) || !s->attach ? s->rfd : s->pending_fd;
	int r = s->epfd >= 0 ? 0 : ipc__evset(&s->epfd, &s->evfd, &watch, 1);
	if (r == 0)
		ipc__stream_ev_update(s);
	pthread_mutex_unlock(&s->lock);
	return r < 0 ? r : s->epfd;
}

int ipc__stream_replace_fd(struct ipc_stream *s, int fd, int newfd)
{
	if (s->epfd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, NULL);
	int r = dup3(newfd, fd, O_CLOEXEC) < 0 ? -errno : 0;
	close(newfd);
	if (s->epfd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST && r == 0)
			r = -errno;
	}
	return r;
}

void ipc__stream_close(ipc_chan *c)
{
	struct ipc_stream *s = S(c);
	/* (a forked child's copy does not write the parent's tail) */
	ipc__tail_fini(&s->tail, CLOSE_FLUSH_MS);
	if (s->release)
		s->release(c);
	if (s->wfd != s->rfd)
		ipc__close_fd(&s->wfd);
	ipc__close_fd(&s->rfd);
	s->wfd = -1;
	ipc__close_fd(&s->epfd);
	ipc__close_fd(&s->evfd);
	free(s->rbuf);
	free(s->part);
	s->rbuf = s->part = NULL;
	if (s->lock_init)
		pthread_mutex_destroy(&s->lock);
	s->lock_init = false;
}
