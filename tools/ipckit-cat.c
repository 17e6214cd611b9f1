/*
 * ipckit-cat - send, receive and echo messages on any ipckit URL from the
 * command line (like nngcat or socat, one message API over every backend).
 *
 *   ipckit-cat (--server|--client|--listen) URL [--send|--recv|--echo]
 *              [--data TEXT|--file F] [--count N] [--timeout MS]
 *              [--format raw|line|hex]
 *
 * This file holds, in order: the command line, the input (stdin, --data or
 * --file cut into messages by --format), the output, the three actions on
 * one channel, the --listen poll loop, and main. The exit statuses are
 * listed in usage() and in ipckit-cat(1); every path out of main returns
 * one of them with a message on stderr.
 */
#include <ipckit.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum exit_status {
	EX_DONE = 0,    /* everything asked for was done */
	EX_CHANNEL = 1, /* a send or receive failed, or the peer left too early */
	EX_USAGE = 2,   /* bad command line */
	EX_OPEN = 3,    /* the URL could not be opened, listened on or reached */
	EX_TIMEOUT = 4, /* --timeout (or the client's connect wait) expired */
	EX_LOCAL = 5,   /* reading the input or writing the output failed */
};

enum role { ROLE_NONE, ROLE_SERVER, ROLE_CLIENT, ROLE_LISTEN };
enum format { FMT_RAW, FMT_LINE, FMT_HEX };

static struct {
	enum role role;
	const char *url;
	bool send, recv, echo;
	const char *data, *file;
	long count; /* -1: not given */
	int timeout_ms;
	enum format format;
} o = { .count = -1, .timeout_ms = -1, .format = FMT_RAW };

static void usage(FILE *f)
{
	fputs("usage: ipckit-cat (--server|--client|--listen) URL [--send|--recv|--echo]\n"
	      "                  [--data TEXT|--file F] [--count N] [--timeout MS]\n"
	      "                  [--format raw|line|hex]\n"
	      "\n"
	      "  --server URL    open URL as the server end of one channel\n"
	      "  --client URL    open URL as the client end (retries until --timeout, default 5 s)\n"
	      "  --listen URL    accept any number of clients (tcp, unix, shm)\n"
	      "  --send          send the input: --data, --file or stdin (the default\n"
	      "                  when --data or --file is given); with --recv, wait for\n"
	      "                  one reply after each message and print it\n"
	      "  --recv          print received messages (the default otherwise)\n"
	      "  --echo          send every received message back\n"
	      "  --data TEXT     the input is TEXT\n"
	      "  --file F        the input is the contents of F\n"
	      "  --count N       --send: send the input N times; --recv/--echo: stop after\n"
	      "                  N messages; --listen: exit after N clients have left\n"
	      "  --timeout MS    give up on any one wait after MS milliseconds (default: never)\n"
	      "  --format F      raw: input is one message, output written as it is (default);\n"
	      "                  line: one message per input line, a newline after each output;\n"
	      "                  hex: input is one message written in hex, each output one\n"
	      "                  line of hex\n"
	      "\n"
	      "Without --count, --recv and --echo end when the peer closes.\n"
	      "Exit status: 0 done; 1 a send or receive failed, or the peer closed before\n"
	      "--count messages; 2 usage; 3 the URL could not be opened or reached;\n"
	      "4 a timeout expired; 5 reading the input or writing the output failed.\n",
	      f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ipckit-cat: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see ipckit-cat --help)\n", stderr);
	return EX_USAGE;
}

/* Exit status for an ipckit error: timeouts apart. */
static int chan_error(const char *what, int err)
{
	fprintf(stderr, "ipckit-cat: %s: %s\n", what, ipc_strerror(err));
	return err == -ETIMEDOUT ? EX_TIMEOUT : EX_CHANNEL;
}

static int parse_args(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "server", required_argument, NULL, 'S' }, { "client", required_argument, NULL, 'C' },
		{ "listen", required_argument, NULL, 'L' }, { "send", no_argument, NULL, 's' },
		{ "recv", no_argument, NULL, 'r' },         { "echo", no_argument, NULL, 'e' },
		{ "data", required_argument, NULL, 'd' },   { "file", required_argument, NULL, 'f' },
		{ "count", required_argument, NULL, 'n' },  { "timeout", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'F' }, { "help", no_argument, NULL, 'h' },
		{ 0, 0, 0, 0 }
	};
	int ch;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
		char *end;
		long v;

		switch (ch) {
		case 'S': case 'C': case 'L':
			if (o.role != ROLE_NONE)
				return usage_error("give one of --server, --client, --listen");
			o.role = ch == 'S' ? ROLE_SERVER : ch == 'C' ? ROLE_CLIENT : ROLE_LISTEN;
			o.url = optarg;
			break;
		case 's': o.send = true; break;
		case 'r': o.recv = true; break;
		case 'e': o.echo = true; break;
		case 'd': o.data = optarg; break;
		case 'f': o.file = optarg; break;
		case 'n': case 't':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < (ch == 'n' ? 0 : -1) || v > INT_MAX)
				return usage_error("%s '%s': want %s", ch == 'n' ? "--count" : "--timeout",
						   optarg, ch == 'n' ? "a number >= 0" : "milliseconds, or -1");
			if (ch == 'n')
				o.count = v;
			else
				o.timeout_ms = (int)v;
			break;
		case 'F':
			if (!strcmp(optarg, "raw"))
				o.format = FMT_RAW;
			else if (!strcmp(optarg, "line"))
				o.format = FMT_LINE;
			else if (!strcmp(optarg, "hex"))
				o.format = FMT_HEX;
			else
				return usage_error("--format '%s': want raw, line or hex", optarg);
			break;
		case 'h': usage(stdout); exit(EX_DONE);
		default:
			return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (o.role == ROLE_NONE)
		return usage_error("give one of --server URL, --client URL, --listen URL");
	if (o.data && o.file)
		return usage_error("give --data or --file, not both");
	if (o.echo && (o.send || o.recv))
		return usage_error("--echo does not mix with --send or --recv");
	if (!o.send && !o.recv && !o.echo) {
		if (o.data || o.file)
			o.send = true;
		else
			o.recv = true;
	}
	if ((o.data || o.file) && !o.send)
		return usage_error("--data and --file need --send");
	if (o.role == ROLE_LISTEN && o.send && o.recv)
		return usage_error("--listen takes one of --send, --recv, --echo");
	return EX_DONE;
}

/* ---- input: the messages to send ---- */

struct input {
	char *buf; /* the whole input, or NULL while stdin is read line by line */
	size_t len;
	ipc_msg *msgs;
	size_t nmsgs;
};

static int read_all(int fd, const char *name, struct input *in)
{
	size_t cap = 0;

	for (;;) {
		if (in->len == cap) {
			char *b = realloc(in->buf, cap = cap ? cap * 2 : 65536);

			if (!b) {
				fprintf(stderr, "ipckit-cat: %s: out of memory\n", name);
				return EX_LOCAL;
			}
			in->buf = b;
		}
		ssize_t n = read(fd, in->buf + in->len, cap - in->len);

		if (n == 0)
			return EX_DONE;
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "ipckit-cat: reading %s: %s\n", name, strerror(errno));
			return EX_LOCAL;
		}
		if (n > 0)
			in->len += (size_t)n;
	}
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0'
	     : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decode the hex text of in->buf in place (whitespace ignored). */
static int unhex(struct input *in)
{
	size_t w = 0;
	int hi = -1;

	for (size_t i = 0; i < in->len; i++) {
		int c = (unsigned char)in->buf[i], v = hexval(c);

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		if (v < 0) {
			fprintf(stderr, "ipckit-cat: input is not hex (byte %zu is '%c')\n", i, c);
			return EX_LOCAL;
		}
		if (hi < 0) {
			hi = v;
		} else {
			in->buf[w++] = (char)(hi << 4 | v);
			hi = -1;
		}
	}
	if (hi >= 0) {
		fputs("ipckit-cat: input has an odd number of hex digits\n", stderr);
		return EX_LOCAL;
	}
	in->len = w;
	return EX_DONE;
}

/* Cut in->buf into messages: lines, or one whole message. */
static int split(struct input *in)
{
	size_t cap = 1;

	if (o.format == FMT_LINE)
		for (size_t i = 0; i < in->len; i++)
			cap += in->buf[i] == '\n';
	if (!(in->msgs = calloc(cap, sizeof(*in->msgs)))) {
		fputs("ipckit-cat: out of memory\n", stderr);
		return EX_LOCAL;
	}
	if (o.format != FMT_LINE) {
		in->msgs[in->nmsgs++] = (ipc_msg){ in->buf, in->len };
		return EX_DONE;
	}
	for (size_t start = 0, i = 0; i < in->len; i++) {
		if (in->buf[i] == '\n' || i + 1 == in->len) {
			size_t end = in->buf[i] == '\n' ? i : i + 1;

			in->msgs[in->nmsgs++] = (ipc_msg){ in->buf + start, end - start };
			start = i + 1;
		}
	}
	return EX_DONE;
}

/* Read the whole input unless stdin is to be sent line by line as typed. */
static int load_input(struct input *in)
{
	int r = EX_DONE;

	if (o.data) {
		in->len = strlen(o.data);
		if (!(in->buf = malloc(in->len + 1)))
			return EX_LOCAL;
		memcpy(in->buf, o.data, in->len);
	} else if (o.file) {
		int fd = open(o.file, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			fprintf(stderr, "ipckit-cat: %s: %s\n", o.file, strerror(errno));
			return EX_LOCAL;
		}
		r = read_all(fd, o.file, in);
		close(fd);
	} else if (o.format == FMT_LINE && o.count <= 1 && o.role != ROLE_LISTEN) {
		return EX_DONE; /* streamed by next_line() */
	} else {
		r = read_all(STDIN_FILENO, "stdin", in);
	}
	if (r == EX_DONE && o.format == FMT_HEX)
		r = unhex(in);
	return r == EX_DONE ? split(in) : r;
}

/* The next line of stdin as a message; 1 while there is one, 0 at the end. */
static int next_line(char **line, size_t *cap, ipc_msg *m)
{
	ssize_t n = getline(line, cap, stdin);

	if (n < 0)
		return 0;
	if (n > 0 && (*line)[n - 1] == '\n')
		n--;
	*m = (ipc_msg){ *line, (size_t)n };
	return 1;
}

/* ---- output ---- */

static int print_msg(const void *msg, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = msg;
	bool ok = true;

	if (o.format == FMT_HEX) {
		for (size_t i = 0; i < len && ok; i++)
			ok = putchar(digits[p[i] >> 4]) != EOF && putchar(digits[p[i] & 15]) != EOF;
	} else {
		ok = fwrite(msg, 1, len, stdout) == len;
	}
	if (ok && o.format != FMT_RAW)
		ok = putchar('\n') != EOF;
	if (ok)
		ok = fflush(stdout) == 0;
	if (!ok) {
		fprintf(stderr, "ipckit-cat: writing stdout: %s\n", strerror(errno));
		return EX_LOCAL;
	}
	return EX_DONE;
}

/* ---- actions on one channel ---- */

struct rx {
	char *buf;
	size_t cap;
};

static int rx_init(struct rx *rx, ipc_chan *c)
{
	ipc_info info;

	ipc_info_get(c, &info);
	rx->cap = info.max_msg;
	if (!(rx->buf = malloc(rx->cap ? rx->cap : 1))) {
		fputs("ipckit-cat: out of memory\n", stderr);
		return EX_LOCAL;
	}
	return EX_DONE;
}

/* Send one message; with --recv, wait for the reply and print it. */
static int send_one(ipc_chan *c, const ipc_msg *m, struct rx *rx)
{
	int r = ipc_send(c, m->data, m->len, o.timeout_ms);
	ssize_t n;

	if (r < 0)
		return chan_error("send", r);
	if (!o.recv)
		return EX_DONE;
	if ((n = ipc_recv(c, rx->buf, rx->cap, o.timeout_ms)) < 0)
		return chan_error("waiting for the reply", (int)n);
	return print_msg(rx->buf, (size_t)n);
}

/* Send the input `times` times. */
static int do_send(ipc_chan *c, const struct input *in, struct rx *rx, long times)
{
	int r = EX_DONE;

	if (!in->msgs) { /* stdin, line by line */
		char *line = NULL;
		size_t cap = 0;
		ipc_msg m;

		while (r == EX_DONE && times > 0 && next_line(&line, &cap, &m))
			r = send_one(c, &m, rx);
		if (r == EX_DONE && ferror(stdin)) {
			fprintf(stderr, "ipckit-cat: reading stdin: %s\n", strerror(errno));
			r = EX_LOCAL;
		}
		free(line);
		return r;
	}
	for (long t = 0; t < times && r == EX_DONE; t++)
		for (size_t i = 0; i < in->nmsgs && r == EX_DONE; i++)
			r = send_one(c, &in->msgs[i], rx);
	return r;
}

/* --recv or --echo: until --count messages, or the peer closes. */
static int do_recv(ipc_chan *c, struct rx *rx)
{
	for (long got = 0; o.count < 0 || got < o.count; got++) {
		ssize_t n = ipc_recv(c, rx->buf, rx->cap, o.timeout_ms);
		int r;

		if (n == -EPIPE && o.count < 0)
			return EX_DONE;
		if (n == -EPIPE) {
			fprintf(stderr, "ipckit-cat: the peer closed after %ld of %ld messages\n", got,
				o.count);
			return EX_CHANNEL;
		}
		if (n < 0)
			return chan_error("receive", (int)n);
		if (o.echo)
			r = (r = ipc_send(c, rx->buf, (size_t)n, o.timeout_ms)) < 0 ? chan_error("echo", r)
										    : EX_DONE;
		else
			r = print_msg(rx->buf, (size_t)n);
		if (r != EX_DONE)
			return r;
	}
	return EX_DONE;
}

static int run_channel(ipc_chan *c, const struct input *in)
{
	struct rx rx;
	int r = rx_init(&rx, c);

	if (r == EX_DONE)
		r = o.send ? do_send(c, in, &rx, o.count < 0 ? 1 : o.count) : do_recv(c, &rx);
	free(rx.buf);
	return r;
}

/* ---- --listen: many clients from one poll loop ---- */

enum { MAX_CLIENTS = 256 };

/* Serve what client c has for us without blocking; EX_DONE while it stays. */
static int serve_ready(ipc_chan *c, struct rx *rx, bool *gone)
{
	for (;;) {
		ssize_t n = ipc_recv(c, rx->buf, rx->cap, 0);
		int r;

		if (n == -EAGAIN)
			return EX_DONE;
		if (n == -EPIPE) {
			*gone = true;
			return EX_DONE;
		}
		if (n < 0) {
			*gone = true;
			return chan_error("receive", (int)n);
		}
		if (o.echo) {
			if ((r = ipc_send(c, rx->buf, (size_t)n, o.timeout_ms)) < 0) {
				*gone = true;
				return chan_error("echo", r);
			}
		} else if ((r = print_msg(rx->buf, (size_t)n)) != EX_DONE) {
			return r; /* stdout is gone: stop everything */
		}
	}
}

static int listen_loop(ipc_listener *l, const struct input *in)
{
	ipc_chan *cl[MAX_CLIENTS];
	struct rx rx[MAX_CLIENTS];
	struct pollfd pfd[MAX_CLIENTS + 1];
	int ncl = 0, lfd = ipc_listener_fd(l), status = EX_DONE;
	long left = 0;

	if (lfd < 0) {
		fprintf(stderr, "ipckit-cat: --listen %s: no listener descriptor to poll: %s\n", o.url,
			ipc_strerror(lfd));
		return EX_OPEN;
	}
	while (o.count < 0 || left < o.count) {
		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < ncl; i++)
			pfd[i + 1] = (struct pollfd){ .fd = ipc_fd(cl[i]), .events = POLLIN };
		int n = poll(pfd, (nfds_t)ncl + 1, o.timeout_ms);

		if (n == 0) {
			fprintf(stderr, "ipckit-cat: --listen: nothing happened within %d ms\n",
				o.timeout_ms);
			status = EX_TIMEOUT;
			break;
		}
		if (n < 0)
			continue; /* EINTR */
		for (int i = ncl - 1; i >= 0; i--) {
			bool gone = false;
			int r;

			if (!pfd[i + 1].revents)
				continue;
			if ((r = serve_ready(cl[i], &rx[i], &gone)) == EX_LOCAL)
				goto out;
			if (r != EX_DONE)
				status = r; /* one client's failure: remembered, others go on */
			if (gone) {
				ipc_close(cl[i]);
				free(rx[i].buf);
				cl[i] = cl[--ncl];
				rx[i] = rx[ncl];
				left++;
			}
		}
		if (!pfd[0].revents)
			continue;
		ipc_chan *c;
		int r;

		while ((r = ipc_accept(l, &c, 0)) == 0) {
			struct rx one;

			if (ncl == MAX_CLIENTS || rx_init(&one, c) != EX_DONE) {
				fprintf(stderr, "ipckit-cat: --listen: refusing a client (%d open)\n", ncl);
				ipc_close(c);
				continue;
			}
			if (o.send) { /* give it the input, then let it go */
				if ((r = do_send(c, in, &one, 1)) != EX_DONE)
					status = r;
				ipc_close(c);
				free(one.buf);
				left++;
				continue;
			}
			cl[ncl] = c;
			rx[ncl++] = one;
		}
		if (r != -EAGAIN)
			status = chan_error("accept", r);
	}
out:
	for (int i = 0; i < ncl; i++) {
		ipc_close(cl[i]);
		free(rx[i].buf);
	}
	return status;
}

/* ---- main ---- */

/* A server on tcp port 0 says which port it got (on stderr: stdout is data). */
static void announce(const char *asked, const char *got)
{
	if (got && strcmp(asked, got) != 0)
		fprintf(stderr, "ipckit-cat: serving %s\n", got);
}

int main(int argc, char **argv)
{
	struct input in = { 0 };
	int r = parse_args(argc, argv);

	if (r != EX_DONE)
		return r;
	/* A closed stdout is reported (status 5), not fatal. Set before any
	 * channel is opened, and never changed: pipe and fifo channels sample
	 * the disposition when they open. */
	signal(SIGPIPE, SIG_IGN);
	if (o.send && (r = load_input(&in)) != EX_DONE)
		goto out;
	if (o.role == ROLE_LISTEN) {
		ipc_listener *l;

		if ((r = ipc_listen(&l, o.url, NULL)) < 0) {
			fprintf(stderr, "ipckit-cat: cannot listen on %s: %s\n", o.url, ipc_strerror(r));
			r = EX_OPEN;
			goto out;
		}
		announce(o.url, ipc_listener_url(l));
		r = listen_loop(l, &in);
		ipc_listener_close(l);
	} else {
		ipc_opts opts = { .connect_timeout_ms = o.timeout_ms };
		ipc_chan *c;

		/* --timeout 0 is one try; without --timeout the library's 5 s. */
		if (o.timeout_ms == 0)
			opts.connect_timeout_ms = -1;
		else if (o.timeout_ms < 0)
			opts.connect_timeout_ms = 0;
		if ((r = ipc_open(&c, o.url, o.role == ROLE_SERVER ? IPC_SERVER : IPC_CLIENT,
				  &opts)) < 0) {
			fprintf(stderr, "ipckit-cat: cannot open %s: %s\n", o.url, ipc_strerror(r));
			r = r == -ETIMEDOUT ? EX_TIMEOUT : EX_OPEN;
			goto out;
		}
		if (o.role == ROLE_SERVER) {
			ipc_info info;

			ipc_info_get(c, &info);
			announce(o.url, info.url);
		}
		r = run_channel(c, &in);
		ipc_close(c);
	}
out:
	free(in.buf);
	free(in.msgs);
	return r;
}
