/*
 * stress.c - shared parts of the stress campaigns (see stress.h).
 */
#include "stress.h"

#include "bench.h" /* msg_fill, msg_check, MSG_HDR: bench/msg.c */

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

const char *st_campaign = "stress";
int st_failures;

bool st_short(void)
{
	const char *v = getenv("STRESS_SHORT");

	return v && *v && strcmp(v, "0") != 0;
}

long st_knob(const char *name, long full_v, long short_v)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return st_short() ? short_v : full_v;
	n = strtol(v, &end, 10);
	if (*end == 'K' || *end == 'k')
		n <<= 10;
	else if (*end == 'M' || *end == 'm')
		n <<= 20;
	return n;
}

bool st_want(const char *be)
{
	const char *v = getenv("STRESS_BACKENDS");
	size_t n = strlen(be);

	if (!v || !*v)
		return true;
	for (const char *p = v; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && strncmp(p, be, n) == 0)
			return true;
		p += len + (comma != NULL);
	}
	return false;
}

long st_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int st_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

long st_raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= want ? (rlim_t)want
											: rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? want : (long)rl.rlim_cur;
}

const char *st_own_user(void)
{
	static char what[96];
	uid_t own = 61000 + (uid_t)(getpid() % 4000);

	if (getuid() != 0 || getenv("STRESS_KEEP_UID"))
		return NULL;
	if (setgroups(0, NULL) != 0 || setgid(own) != 0 || setuid(own) != 0)
		return NULL;
	prctl(PR_SET_DUMPABLE, 1); /* /proc/self stays this process's */
	snprintf(what, sizeof(what), "running as uid %u: the user's queue quota holds only these queues",
		 (unsigned)own);
	st_log("%s", what);
	return what;
}

uint64_t st_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

size_t st_size(uint32_t dir, uint64_t i, size_t max, size_t cap)
{
	uint64_t state = i * 0x9e3779b97f4a7c15ull + dir + 1, h;
	unsigned r;

	st_rand(&state); /* two rounds: neighbouring i end up far apart */
	h = st_rand(&state);
	r = (unsigned)(h % 1000);
	size_t len;

	h >>= 16;
	if (i % 100000 == 7)
		len = max;
	else if (r == 0)
		len = max / 2 + (size_t)(h % (max / 2 + 1));
	else if (r < 10)
		len = (size_t)(h % (64 * 1024 + 1));
	else
		len = (size_t)(h % 1025);
	return len < cap ? len : cap;
}

uint64_t st_seq(uint32_t dir, uint64_t i)
{
	return (uint64_t)dir << 48 | i;
}

void st_fill(void *buf, size_t len, uint32_t dir, uint64_t i)
{
	if (len >= MSG_HDR)
		msg_fill(buf, len, st_seq(dir, i));
	else
		tu_fill(buf, len, (uint32_t)st_seq(dir, i));
}

int st_check(const void *buf, ssize_t got, size_t len, uint32_t dir, uint64_t i)
{
	uint64_t seq;

	if (got < 0 || (size_t)got != len)
		return -1;
	if (len < MSG_HDR)
		return tu_check(buf, len, (uint32_t)st_seq(dir, i)) < 0 ? 0 : -1;
	if (msg_check(buf, got, len, &seq) != 0 || seq != st_seq(dir, i))
		return -1;
	return 0;
}

uint64_t st_seq_of(const void *buf, ssize_t got)
{
	uint64_t seq;

	if (got < MSG_HDR || msg_check(buf, got, (size_t)got, &seq) != 0)
		return ~0ull;
	return seq;
}

struct client_open {
	const char *url;
	const ipc_opts *o;
	ipc_chan *c;
	int r;
	_Atomic bool done;
};

static void *client_thread(void *p)
{
	struct client_open *a = p;

	a->r = ipc_open(&a->c, a->url, IPC_CLIENT, a->o);
	atomic_store(&a->done, true);
	return NULL;
}

int st_connect(const char *be, const ipc_opts *o, ipc_chan **a, ipc_chan **b)
{
	struct client_open co = { .o = o };
	ipc_info info;
	char url[256];
	pthread_t th;
	int r;

	*a = *b = NULL;
	if ((tu_expect(be)->caps & IPC_CAP_PAIR))
		return ipc_pair(be, a, b, o);
	if (!tu_url(url, sizeof(url), be, false))
		return -ENOTSUP;
	r = ipc_open(a, url, IPC_SERVER, o);
	if (r < 0)
		return r;
	ipc_info_get(*a, &info);
	co.url = info.url;
	if (pthread_create(&th, NULL, client_thread, &co) != 0) {
		ipc_close(*a);
		*a = NULL;
		return -EAGAIN;
	}
	/* the server's first call completes the rendezvous (in slices, so that
	 * a client that failed does not leave it waiting) */
	for (int64_t end = tu_now_ms() + 10000;;) {
		r = ipc_send(*a, "", 0, 50);
		if (r != -ETIMEDOUT || tu_now_ms() >= end ||
		    (atomic_load(&co.done) && co.r < 0))
			break;
	}
	pthread_join(th, NULL);
	if (r == 0 && co.r == 0) {
		char x;

		r = (int)ipc_recv(co.c, &x, 1, 10000);
	}
	if (r < 0 || co.r < 0) {
		ipc_close(*a);
		ipc_close(co.c);
		*a = NULL;
		return r < 0 ? r : co.r;
	}
	*b = co.c;
	return 0;
}

static void vlog(const char *tag, const char *fmt, va_list ap)
{
	char line[1024];

	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stdout, "%s%s: %s\n", tag, st_campaign, line);
	fflush(stdout);
}

void st_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog("", fmt, ap);
	va_end(ap);
}

void st_fail(const char *fmt, ...)
{
	va_list ap;

	st_failures++;
	va_start(ap, fmt);
	vlog("FAIL ", fmt, ap);
	va_end(ap);
}

int st_finish(int passed, int skipped)
{
	printf("%s: %d passed, %d failed, %d skipped\n", st_campaign, passed, st_failures, skipped);
	fflush(stdout);
	if (st_failures)
		return 1;
	return passed == 0 && skipped > 0 ? 77 : 0;
}
