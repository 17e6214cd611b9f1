/*
 * remote.c - the echo side on another host. `ipckit-bench --serve
 * tcp://HOST:PORT` listens for control connections; `--connect
 * tcp://HOST:PORT` runs the same plan and harness as a local run, with the
 * echo side of every group on the serving host: each group is one session
 * (one control connection) in which the connecting side sends its options
 * and row specs, and the serving side opens the rows' servers on the
 * address the control connection reached it at (port 0: the kernel picks)
 * and answers turns exactly as a local child would (harness.c echo_main).
 *
 * Messages on the control connection are the structs of bench.h in the
 * host's byte order: both sides must run the same ipckit-bench build on the
 * same architecture, which the hello checks (magic, version, struct sizes).
 */
#include "remote.h"
#include "machine.h"
#include "plan.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAGIC "IKBENCH"
#define VERSION 1
enum { HELLO_PROBE = 1, HELLO_SESSION = 2 };

struct hello {
	char magic[8];
	uint32_t version, what, spec_size, opts_size, n;
};

struct reply {
	int32_t status;
	struct remote_info info;
};

int remote_parse_url(const char *url, char *hostport, size_t cap)
{
	if (strncmp(url, "tcp://", 6) || !strchr(url + 6, ':') || strlen(url + 6) >= cap)
		return -EINVAL;
	snprintf(hostport, cap, "%s", url + 6);
	return 0;
}

static int split(const char *hp, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon = strrchr(hp, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	size_t hl = (size_t)(colon - hp);
	if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']')
		hp++, hl -= 2;
	if (hl >= hcap)
		return -EINVAL;
	memcpy(host, hp, hl);
	host[hl] = 0;
	snprintf(port, pcap, "%s", colon + 1);
	return 0;
}

/* Connect, retrying for 10 s while nothing listens yet. */
static int ctl_connect(const char *hp)
{
	char host[128], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	if (split(hp, host, sizeof(host), port, sizeof(port)) || getaddrinfo(host, port, &hints, &res))
		return -EINVAL;
	int r = -ECONNREFUSED, one = 1;
	for (int tries = 0; tries < 100; tries++) {
		int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			r = -errno;
			break;
		}
		if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			freeaddrinfo(res);
			return fd;
		}
		r = -errno;
		close(fd);
		if (r != -ECONNREFUSED && r != -ENETUNREACH && r != -EHOSTUNREACH)
			break;
		struct timespec ts = { 0, 100000000 };
		nanosleep(&ts, NULL);
	}
	freeaddrinfo(res);
	return r;
}

static int say_hello(int fd, uint32_t what, uint32_t n, struct reply *rep)
{
	struct hello h = { .version = VERSION, .what = what, .spec_size = sizeof(struct spec),
			   .opts_size = sizeof(struct bench_opts), .n = n };
	memcpy(h.magic, MAGIC, sizeof(MAGIC));
	int r = ctl_write(fd, &h, sizeof(h));
	if (!r)
		r = ctl_read(fd, rep, sizeof(*rep), 30000);
	return r ? r : rep->status;
}

int remote_probe(const char *hostport, struct remote_info *info)
{
	struct reply rep;
	int fd = ctl_connect(hostport);
	if (fd < 0)
		return fd;
	int r = say_hello(fd, HELLO_PROBE, 0, &rep);
	close(fd);
	if (!r)
		*info = rep.info;
	return r;
}

int remote_session(const char *hostport, const struct chan *chans, int n, const struct bench_opts *o)
{
	struct reply rep;
	int32_t status = 0;
	int fd = ctl_connect(hostport);
	if (fd < 0)
		return fd;
	int r = say_hello(fd, HELLO_SESSION, (uint32_t)n, &rep);
	if (!r)
		r = ctl_write(fd, o, sizeof(*o));
	for (int i = 0; !r && i < n; i++)
		r = ctl_write(fd, &chans[i].s, sizeof(chans[i].s));
	if (!r)
		r = ctl_read(fd, &status, sizeof(status), 60000);
	if (!r)
		r = status;
	if (r) {
		close(fd);
		return r;
	}
	return fd;
}

/* ---- serving side ---- */

static void describe(struct remote_info *info)
{
	struct utsname u;
	char cpu[160];
	machine_cpu_model(cpu, sizeof(cpu));
	if (uname(&u) == 0)
		snprintf(info->machine, sizeof(info->machine), "%s; %s %s %s", cpu, u.sysname, u.release,
			 u.machine);
	else
		snprintf(info->machine, sizeof(info->machine), "%s", cpu);
	info->kinds = 0;
	for (int i = 0; i < kind_count() && i < 32; i++)
		if (kind_by_id(i) && kind_by_id(i)->cross_host)
			info->kinds |= 1u << i;
}

/* The address this connection reached us at: where our servers bind. */
static void local_host(int fd, char *host, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, (socklen_t)cap, NULL, 0, NI_NUMERICHOST))
		snprintf(host, cap, "0.0.0.0");
	/* an IPv4 client on a dual-stack socket */
	if (!strncmp(host, "::ffff:", 7))
		memmove(host, host + 7, strlen(host + 7) + 1);
}

static int session(int fd, const struct bench_opts *mine)
{
	struct hello h;
	struct reply rep = { 0 };
	struct bench_opts o;
	struct chan *chans = NULL;
	int32_t status = 0;
	int r = ctl_read(fd, &h, sizeof(h), 30000), n = 0;
	if (r)
		return r;
	describe(&rep.info);
	if (memcmp(h.magic, MAGIC, sizeof(MAGIC)) || h.version != VERSION ||
	    h.spec_size != sizeof(struct spec) || h.opts_size != sizeof(struct bench_opts) ||
	    h.n > MAX_CHANS)
		rep.status = -EPROTO;
	r = ctl_write(fd, &rep, sizeof(rep));
	if (r || rep.status || h.what != HELLO_SESSION)
		return r ? r : rep.status;
	n = (int)h.n;
	chans = calloc((size_t)n, sizeof(*chans));
	r = chans ? ctl_read(fd, &o, sizeof(o), 30000) : -ENOMEM;
	o.pin[0] = mine->pin[0];   /* this host's CPUs, not the other's */
	o.pin[1] = mine->pin[1];
	o.threads = false;
	char host[64];
	local_host(fd, host, sizeof(host));
	for (int i = 0; !r && i < n; i++) {
		struct chan *c = &chans[i];
		r = ctl_read(fd, &c->s, sizeof(c->s), 30000);
		c->k = r ? NULL : kind_by_id(c->s.kind);
		if (!r && (!c->k || !c->k->cross_host))
			r = -EPROTONOSUPPORT;
		c->idx = i;
		c->srv_side = 1;
		c->s.threads = false;
		snprintf(c->host, sizeof(c->host), "%s", host);
		if (!r && c->k->prep_size && !(c->prep = calloc(1, c->k->prep_size)))
			r = -ENOMEM;
		if (!r && c->k->prepare)
			r = c->k->prepare(c);
	}
	status = r;
	int w = ctl_write(fd, &status, sizeof(status));
	if (!r && !w)
		r = echo_main(chans, n, &o, fd, false);
	for (int i = 0; chans && i < n; i++) {
		if (chans[i].k && chans[i].prep && chans[i].k->unlink)
			chans[i].k->unlink(&chans[i]);
		if (chans[i].k && chans[i].prep && chans[i].k->cleanup)
			chans[i].k->cleanup(&chans[i]);
		free(chans[i].prep);
	}
	free(chans);
	return r ? r : w;
}

static volatile sig_atomic_t serve_stop;

static void serve_signal(int sig)
{
	serve_stop = sig;
}

int remote_serve(const char *hostport, const struct bench_opts *o)
{
	char host[128], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *res;
	struct sigaction sa = { .sa_handler = serve_signal };
	int one = 1;
	if (split(hostport, host, sizeof(host), port, sizeof(port)) ||
	    getaddrinfo(*host ? host : NULL, port, &hints, &res)) {
		fprintf(stderr, "ipckit-bench: --serve %s: cannot resolve\n", hostport);
		return 2;
	}
	int l = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l, res->ai_addr, res->ai_addrlen) < 0 || listen(l, 16) < 0) {
		fprintf(stderr, "ipckit-bench: --serve %s: %s\n", hostport, strerror(errno));
		freeaddrinfo(res);
		return 1;
	}
	freeaddrinfo(res);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	fprintf(stderr, "ipckit-bench: serving on %s (Ctrl-C to stop)\n", hostport);
	while (!serve_stop) {
		int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pid_t pid = fork();
		if (pid == 0) {
			close(l);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			int r = session(fd, o);
			if (r && r != -EPIPE)
				fprintf(stderr, "ipckit-bench: session: %s\n", ipc_strerror(r));
			_exit(r ? 1 : 0);
		}
		close(fd);
	}
	close(l);
	return 128 + serve_stop;
}
