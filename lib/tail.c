/* tail.c - finish a message cut by its deadline in the background (tail.h). */
#include "tail.h"

#include <signal.h>
#include <string.h>
#include <time.h>

#define TAIL_SLICE_MS 50           /* the flusher looks at stop this often */
#define TAIL_SYNC_MS 1000          /* no thread: finish it ourselves this long */
#define TAIL_STACK (256 * 1024)

int ipc__tail_init(struct ipc_tail *t, ipc_chan *c, ipc_tail_write_fn write,
		   ipc_tail_abort_fn abort)
{
	memset(t, 0, sizeof(*t));
	t->c = c;
	t->write = write;
	t->abort = abort;
	if (pthread_mutex_init(&t->mu, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&t->cv, NULL) != 0) {
		pthread_mutex_destroy(&t->mu);
		return -ENOMEM;
	}
	t->sync_init = true;
	return 0;
}

int ipc__tail_reserve(struct ipc_tail *t, size_t n)
{
	if (n <= t->cap)
		return 0;
	/* (nothing in buf is worth keeping: no tail is pending here) */
	unsigned char *p = ipc__malloc(n);
	if (!p)
		return -ENOMEM;
	free(t->buf);
	t->buf = p;
	t->cap = n;
	return 0;
}

/* Write the pending bytes until done, an error, stop, or (limit_ms > 0)
 * that many milliseconds (-ETIMEDOUT). */
static int tail_flush(struct ipc_tail *t, int limit_ms)
{
	int r = 0;
	ipc_deadline limit = ipc__dl_in(limit_ms > 0 ? limit_ms : 1);
	while (t->off < t->len) {
		if (atomic_load_explicit(&t->stop, memory_order_relaxed))
			return -ECANCELED;
		if (limit_ms > 0 && ipc__expired(&limit))
			return -ETIMEDOUT;
		ipc_deadline slice = ipc__dl_in(TAIL_SLICE_MS);
		size_t done = 0;
		r = t->write(t->c, t->buf + t->off, t->len - t->off, &slice, &done);
		t->off += done;
		if (r == 0 && t->off < t->len)
			r = -EIO; /* (a write function that lies about done) */
		if (r == -ETIMEDOUT || r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
	}
	return 0;
}

static void tail_end(struct ipc_tail *t, int r)
{
	pthread_mutex_lock(&t->mu);
	t->err = r == -ECANCELED ? 0 : r;
	t->off = t->len = 0;
	atomic_store_explicit(&t->active, false, memory_order_release);
	pthread_cond_broadcast(&t->cv);
	pthread_mutex_unlock(&t->mu);
}

static void *tail_main(void *arg)
{
	struct ipc_tail *t = arg;
	tail_end(t, tail_flush(t, 0));
	return NULL;
}

int ipc__tail_wait_slow(struct ipc_tail *t, ipc_deadline *dl)
{
	pthread_mutex_lock(&t->mu);
	int r = 0;
	while (atomic_load_explicit(&t->active, memory_order_relaxed)) {
		if (ipc__dl_nowait(dl)) {
			r = -EAGAIN;
			break;
		}
		if (ipc__dl_forever(dl)) {
			pthread_cond_wait(&t->cv, &t->mu);
			continue;
		}
		int64_t at = ipc__dl_at(dl);
		struct timespec ts = { (time_t)(at / 1000000000), (long)(at % 1000000000) };
		if (pthread_cond_clockwait(&t->cv, &t->mu, CLOCK_MONOTONIC, &ts) == ETIMEDOUT &&
		    atomic_load_explicit(&t->active, memory_order_relaxed)) {
			r = -ETIMEDOUT;
			break;
		}
	}
	if (r == 0)
		r = t->err;
	pthread_mutex_unlock(&t->mu);
	return r;
}

static void tail_join(struct ipc_tail *t)
{
	if (t->joinable) {
		pthread_join(t->th, NULL);
		t->joinable = false;
	}
}

int ipc__tail_start(struct ipc_tail *t, const struct iovec *iov, int n)
{
	size_t len = 0;
	for (int i = 0; i < n; i++) {
		if (iov[i].iov_len > t->cap - len)
			return -EIO; /* the caller did not reserve: a bug */
		memcpy(t->buf + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	tail_join(t); /* the previous flusher has ended (ipc__tail_wait) */
	t->off = 0;
	t->len = len;
	t->err = 0;
	atomic_store_explicit(&t->stop, false, memory_order_relaxed);
	atomic_store_explicit(&t->active, true, memory_order_release);

	/* The flusher takes no signals: they stay with the application's
	 * threads. */
	pthread_attr_t attr;
	sigset_t all, old;
	int e = EAGAIN;
	if (!ipc__fault_hit(IPC_FAULT_THREAD) && pthread_attr_init(&attr) == 0) {
		pthread_attr_setstacksize(&attr, TAIL_STACK);
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		e = pthread_create(&t->th, &attr, tail_main, t);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
	}
	if (e == 0) {
		t->joinable = true;
		t->th_pid = ipc__getpid();
		return 0;
	}
	/* No thread: finish here, for up to TAIL_SYNC_MS past the deadline;
	 * then break the channel off rather than leave a torn message. */
	int r = tail_flush(t, TAIL_SYNC_MS);
	if (r == -ETIMEDOUT) {
		t->abort(t->c);
		r = -EPIPE;
	}
	tail_end(t, r);
	return r;
}

void ipc__tail_fini(struct ipc_tail *t, int linger_ms)
{
	if (!t->sync_init)
		return;
	if (t->joinable && t->th_pid != ipc__getpid()) {
		/* a forked child's copy: the flusher runs in the parent (not
		 * here), and its mutex may have been copied locked */
		free(t->buf);
		t->buf = NULL;
		return;
	}
	if (atomic_load(&t->active)) {
		ipc_deadline dl = ipc__dl_in(linger_ms);
		(void)ipc__tail_wait_slow(t, &dl);
		atomic_store(&t->stop, true);
	}
	tail_join(t);
	pthread_cond_destroy(&t->cv);
	pthread_mutex_destroy(&t->mu);
	t->sync_init = false;
	free(t->buf);
	t->buf = NULL;
	t->cap = 0;
}
