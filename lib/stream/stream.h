/*
 * stream/stream.h - the framing layer shared by the stream backends (tcp,
 * unix, fifo, pipe): stream.c (lifecycle, handshake, ipc_fd), send.c,
 * recv.c. docs/protocol.md specifies the bytes:
 *   hello: "IPCK" u16 version=1, u16 hello length=16, u32 max_msg, u32 0
 *   frame: u32 little-endian payload length, then the payload.
 *
 * A stream backend's private state starts with a struct ipc_stream; its
 * vtable uses the ipc__stream_* ops below for send/sendv/recv/fd/close
 * and gives its own open/pair/listen/accept. A server whose peer has not
 * attached yet sets s->attach: the first send/recv calls it to produce
 * rfd/wfd. The handshake (attach, our hello, the peer's hello) runs once,
 * under a lock, in whichever thread needs it first: a send needs the
 * peer's max_msg (pairs know it from the start), a receive the peer's
 * hello. A message cut by a send's deadline is finished by lib/tail.c.
 */
#ifndef IPC_STREAM_STREAM_H
#define IPC_STREAM_STREAM_H

#include "backend.h"
#include "tail.h"

#include <sys/uio.h>

#include <pthread.h>
#include <stdatomic.h>

#define IPC_HELLO_MAGIC "IPCK"
#define IPC_PROTO_VERSION 1
#define IPC_HELLO_LEN 16
#define IPC_FRAME_HDR 4
#define IPC_RBUF_SIZE (64 * 1024)
/* After a message of at least this size, receives read the next payload
 * straight into the caller's buffer (see recv_direct in stream.c). */
#define IPC_BIG_MSG (16 * 1024)

struct ipc_stream {
	int rfd, wfd;            /* equal for sockets; -1 until attached */
	bool is_sock;            /* send with MSG_NOSIGNAL; MSG_DONTWAIT per call */
	int rcvtimeo_ms;         /* sockets: SO_RCVTIMEO as last set (-1: none) */
	int spin_ns;             /* wait: -1 spin only, > 0 spin first, 0 sleep at once */
	atomic_bool rwf_nowait;  /* pipes: preadv2(RWF_NOWAIT) works */
	bool sigpipe_ignored;    /* pipes: cached SIGPIPE disposition */
	/* Server awaiting its peer: produce rfd/wfd within dl (0 or -errno). */
	int (*attach)(ipc_chan *c, ipc_deadline *dl);
	int pending_fd;          /* readable when the peer arrives (ipc_fd before
	                            attach), owned by the backend, or -1 */
	/* Backend cleanup at close (unlink names, close listen fds), or NULL. */
	void (*release)(ipc_chan *c);
	atomic_bool ready;       /* handshake complete (both hellos) */
	atomic_bool send_ok;     /* attached, our hello out, peer_max known */
	bool hello_sent;
	pthread_mutex_t lock;    /* serialises the handshake */
	bool lock_init;
	/* receive side */
	bool hello_rcvd;
	unsigned char *rbuf;
	size_t rpos, rlen;       /* unread bytes are rbuf[rpos .. rlen) */
	bool eof;                /* read() returned 0 or the peer is gone */
	atomic_bool peer_gone;   /* eof, visible to the sending thread */
	int rerr;                /* sticky receive error (-EPROTO) */
	bool big;                /* the last message was >= IPC_BIG_MSG bytes */
	unsigned char *part;     /* a message interrupted by a timeout */
	size_t part_len, part_got;
	/* send side */
	struct ipc_tail tail;    /* the rest of a message cut by a deadline */
	atomic_int serr;         /* sticky send error (-EPIPE; -EPROTO set by the receiver) */
	/* ipc_fd: epoll set of rfd and evfd, evfd signalled while whole
	 * messages wait in rbuf. -1 until ipc_fd is first called. */
	int epfd, evfd;
	bool ev_set;
};

/* The backends' init op: descriptors -1, nothing allocated. */
void ipc__stream_preinit(ipc_chan *c);

/* Initialise s (rfd/wfd may be -1 with attach set). Returns 0 or -ENOMEM;
 * on failure the descriptors stay the caller's (close() releases them).
 * rfd and wfd must be blocking descriptors; sockets: is_sock. */
int ipc__stream_init(ipc_chan *c, int rfd, int wfd, bool is_sock);

/* Both ends of a pair know each other's max_msg from the start: sends
 * need not wait for the peer's hello. */
void ipc__stream_paired(ipc_chan *c);

/* Send our hello now (clients and accepted channels do it at once, so
 * the peer can go ahead without waiting for our first call); later calls
 * skip it. 0 or -errno. */
int ipc__stream_hello(ipc_chan *c, ipc_deadline *dl);

int ipc__stream_send(ipc_chan *c, const void *msg, size_t len, ipc_deadline *dl);
int ipc__stream_sendv(ipc_chan *c, const ipc_msg *msgs, size_t n, ipc_deadline *dl);
ssize_t ipc__stream_recv(ipc_chan *c, void *buf, size_t cap, ipc_deadline *dl);
int ipc__stream_recvv(ipc_chan *c, ipc_buf *bufs, size_t n, ipc_deadline *dl);
int ipc__stream_fd(ipc_chan *c);
void ipc__stream_close(ipc_chan *c);

/* A backend's attach (s->lock held) puts another file behind descriptor
 * fd (rfd or pending_fd): newfd is moved there (dup2, close-on-exec) and
 * ipc_fd's epoll set follows, which otherwise would lose fd as dup2 closes
 * the old file. 0 or -errno (then fd is unchanged, newfd closed). */
int ipc__stream_replace_fd(struct ipc_stream *s, int fd, int newfd);

/* (each backend's init calls ipc__stream_preinit, then sets its own
 * fields and release hook) */
#define IPC_STREAM_OPS \
	.send = ipc__stream_send, .sendv = ipc__stream_sendv, \
	.recv = ipc__stream_recv, .recvv = ipc__stream_recvv, .fd = ipc__stream_fd, \
	.close = ipc__stream_close

/* ---- shared by the three files of the layer (not for backends) ---- */

static inline struct ipc_stream *ipc__stream_s(ipc_chan *c)
{
	return IPC_PRIV(c, struct ipc_stream);
}
#define S(c) ipc__stream_s(c)

static inline uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* stream.c: the handshake, once (a send needs the peer's max_msg, a
 * receive its hello). */
int ipc__stream_ready(ipc_chan *c, ipc_deadline *dl, bool for_send);
/* send.c: write whole frames as one message (a cut one's rest to the
 * tail); lib/tail.c's writer and abort. */
int ipc__stream_write_msg(struct ipc_stream *s, struct iovec *iov, int n, size_t total,
			  ipc_deadline *dl, size_t *written);
int ipc__stream_tail_write(ipc_chan *c, const unsigned char *p, size_t n, ipc_deadline *dl,
			   size_t *done);
void ipc__stream_tail_abort(ipc_chan *c);
/* recv.c: read the peer's hello; keep ipc_fd's eventfd level. */
int ipc__stream_read_hello(ipc_chan *c, ipc_deadline *dl);
void ipc__stream_ev_update(struct ipc_stream *s);

#endif
