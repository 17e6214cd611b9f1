/*
 * netpeer.c - one end of the network-fault campaign (netfault.sh runs it
 * in two network namespaces):
 *   netpeer recv URL N   serve URL; tcp: expect messages 0..N-1 in order,
 *                        each whole (or -EPIPE after a reset, never a wrong
 *                        byte), then answer "done"; udp: take datagrams
 *                        until N or 3 s of silence, each whole, none twice
 *                        (STRESS_NET_DUP_OK=1 lets duplicates by the
 *                        network pass: counted, not failed)
 *   netpeer send URL N   connect and send messages 0..N-1 (tcp: 16 B to
 *                        64 KiB, then wait for "done"; udp: 16 B to 1400 B,
 *                        one packet each, in bursts of 16)
 * Prints one "netpeer: key=value ..." line that netfault.sh reads; exit 0
 * when every promise held. Bounded: each call has a timeout, the whole run
 * STRESS_NET_MAX_S.
 */
#include "stress.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIR 3

static size_t len_of(bool udp, uint64_t i)
{
	return 16 + st_size(DIR, i, udp ? 1384 : 65520, udp ? 1384 : 65520);
}

static int do_recv(const char *url, uint64_t n, bool udp, int64_t end)
{
	ipc_chan *c;
	char *buf = malloc(65536);
	unsigned char *seen = calloc(n, 1);
	uint64_t got = 0, dups = 0, torn = 0, next = 0;
	const char *how = "complete";
	int r = ipc_open(&c, url, IPC_SERVER, NULL);

	if (r < 0) {
		printf("netpeer: open %s: %s\n", url, tu_err(r));
		return 1;
	}
	while (got < n && tu_now_ms() < end) {
		ssize_t m = ipc_recv(c, buf, 65536, udp && got ? 3000 : 60000);
		uint64_t seq;

		if (m == -ETIMEDOUT && udp) {
			how = "silence";
			break;
		}
		if (m == -EPIPE && !udp) {
			how = "reset (-EPIPE)";
			break;
		}
		if (m < 0) {
			printf("netpeer: recv: %s\n", tu_err(m));
			return 1;
		}
		seq = st_seq_of(buf, m);
		if (seq == ~0ull || (seq >> 48) != DIR || (seq & 0xffffffffffffull) >= n ||
		    st_check(buf, m, len_of(udp, seq & 0xffffffffffffull), DIR, seq & 0xffffffffffffull)) {
			torn++;
			continue;
		}
		seq &= 0xffffffffffffull;
		if (!udp && seq != next) {
			printf("netpeer: tcp: message %llu where %llu was due\n", (unsigned long long)seq,
			       (unsigned long long)next);
			return 1;
		}
		next = seq + 1;
		if (seen[seq]++) {
			dups++;
			continue;
		}
		got++;
	}
	if (!udp && got == n)
		ipc_send(c, "done", 4, 10000);
	printf("netpeer: proto=%s sent=%llu received=%llu lost=%llu duplicates=%llu torn=%llu end=%s\n",
	       udp ? "udp" : "tcp", (unsigned long long)n, (unsigned long long)got,
	       (unsigned long long)(n - got), (unsigned long long)dups, (unsigned long long)torn, how);
	ipc_close(c);
	if (torn || (dups && !getenv("STRESS_NET_DUP_OK")))
		return 1;
	if (!udp && got < n && strcmp(how, "complete") == 0)
		return 1; /* the time bound: neither everything nor a reset */
	return 0;
}

static int do_send(const char *url, uint64_t n, bool udp, int64_t end)
{
	ipc_opts o = { .connect_timeout_ms = 20000 };
	char *buf = malloc(65536);
	uint64_t refused = 0, i;
	ipc_chan *c;
	int r = ipc_open(&c, url, IPC_CLIENT, &o);

	if (r < 0) {
		printf("netpeer: open %s: %s\n", url, tu_err(r));
		return 1;
	}
	for (i = 0; i < n && tu_now_ms() < end; i++) {
		size_t len = len_of(udp, i);

		st_fill(buf, len, DIR, i);
		r = ipc_send(c, buf, len, 60000);
		if (r == -EPIPE && !udp)
			break;
		if (r < 0 && udp) {
			refused++; /* the kernel refused it: never on the wire */
		} else if (r < 0) {
			printf("netpeer: send %llu: %s\n", (unsigned long long)i, tu_err(r));
			return 1;
		}
		if (udp && i % 16 == 15)
			usleep(6000); /* ~11 Mbit/s, above the shaped 8: tail drops */
	}
	if (!udp)
		r = (int)ipc_recv(c, buf, 64, 60000);
	printf("netpeer: sender sent=%llu refused=%llu%s\n", (unsigned long long)i,
	       (unsigned long long)refused, !udp && r != 4 ? " (no done)" : "");
	ipc_close(c);
	return 0;
}

int main(int argc, char **argv)
{
	int64_t end = tu_now_ms() + st_knob("STRESS_NET_MAX_S", 120, 60) * 1000;
	bool udp;

	if (argc != 4) {
		fprintf(stderr, "usage: netpeer recv|send URL N\n");
		return 2;
	}
	udp = strncmp(argv[2], "udp:", 4) == 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "recv") == 0)
		return do_recv(argv[2], strtoull(argv[3], NULL, 10), udp, end);
	return do_send(argv[2], strtoull(argv[3], NULL, 10), udp, end);
}
