/* ctl.c - the control socket between a leader and its echo side, the clock,
 * CPU pinning and resource usage. */
#include "bench.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define CTL_TIMEOUT_MS 120000

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Pins the calling thread (sched_setaffinity with pid 0). */
int pin_cpu(int cpu)
{
	cpu_set_t set;
	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

void usage_now(bool thread, struct usage *u)
{
	struct rusage ru;
	getrusage(thread ? RUSAGE_THREAD : RUSAGE_SELF, &ru);
	u->cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
		    ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
	u->nvcsw = (uint64_t)ru.ru_nvcsw;
	u->nivcsw = (uint64_t)ru.ru_nivcsw;
}

int ctl_write(int fd, const void *p, size_t n)
{
	const char *b = p;
	while (n) {
		ssize_t r = write(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

int ctl_read(int fd, void *p, size_t n, int timeout_ms)
{
	char *b = p;
	while (n) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		ssize_t r = read(fd, b, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

int ctl_send_str(int fd, const char *s)
{
	uint32_t n = (uint32_t)strlen(s);
	int r = ctl_write(fd, &n, sizeof(n));
	return r ? r : ctl_write(fd, s, n);
}

int ctl_recv_str(int fd, char *s, size_t cap)
{
	uint32_t n;
	int r = ctl_read(fd, &n, sizeof(n), CTL_TIMEOUT_MS);
	if (r)
		return r;
	if (n >= cap)
		return -ENAMETOOLONG;
	r = ctl_read(fd, s, n, CTL_TIMEOUT_MS);
	s[r ? 0 : n] = 0;
	return r;
}

bool ctl_peer_gone(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR));
}

int fd_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r = poll(&pfd, 1, 0);
	return r < 0 ? -errno : r > 0;
}

int wait_fd_until(int fd, uint64_t deadline_ns)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t now = now_ns(), left = 100000000u;
	if (deadline_ns) {
		if (deadline_ns <= now)
			return 0;
		if (deadline_ns - now < left)
			left = deadline_ns - now;
	}
	struct timespec ts = { .tv_sec = (time_t)(left / 1000000000u),
			       .tv_nsec = (long)(left % 1000000000u) };
	if (ppoll(&pfd, 1, &ts, NULL) < 0 && errno != EINTR)
		return -errno;
	return 0;
}
