/*
 * url.c - URL and option parsing: "scheme://address?key=value&...".
 * Written by hand because the grammar is small and fixed and no Debian
 * library parses these address forms (host:port, [v6]:port, @abstract,
 * R,W descriptor pairs) together; tests/fuzz/fuzz_url.c fuzzes it.
 */
#include "backend.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ipc__cfg_init(ipc_cfg *cfg, const ipc_opts *o)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_msg = IPC_DEFAULT_MAX_MSG;
	cfg->wait = IPC_WAIT_ADAPTIVE;
	cfg->connect_timeout_ms = IPC_DEFAULT_CONNECT_TIMEOUT_MS;
	cfg->mode = IPC_DEFAULT_MODE;
	if (!o)
		return 0;
	if (o->wait < IPC_WAIT_ADAPTIVE || o->wait > IPC_WAIT_SPIN || o->mode > 0777 ||
	    o->spin_us < 0)
		return -EINVAL;
	if (o->spin_us) {
		cfg->spin_us = o->spin_us;
		cfg->set |= IPC_SET_SPIN;
	}
	if (o->max_msg) {
		cfg->max_msg = o->max_msg;
		cfg->set |= IPC_SET_MAX_MSG;
	}
	if (o->capacity) {
		cfg->capacity = o->capacity;
		cfg->set |= IPC_SET_CAPACITY;
	}
	if (o->wait) {
		cfg->wait = o->wait;
		cfg->set |= IPC_SET_WAIT;
	}
	if (o->connect_timeout_ms) {
		/* 0 is the default; a negative value asks for a single try */
		cfg->connect_timeout_ms = o->connect_timeout_ms < 0 ? 0 : o->connect_timeout_ms;
		cfg->set |= IPC_SET_CONNECT_TIMEOUT;
	}
	if (o->mode) {
		cfg->mode = o->mode;
		cfg->set |= IPC_SET_MODE;
	}
	return 0;
}

/* A size: decimal digits with an optional K, M or G (powers of 1024). */
static int parse_size(const char *s, size_t n, size_t *out)
{
	if (n == 0 || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	unsigned long long v = 0;
	size_t i = 0;
	for (; i < n && isdigit((unsigned char)s[i]); i++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	unsigned shift = 0;
	if (i < n) {
		switch (s[i++]) {
		case 'K': case 'k': shift = 10; break;
		case 'M': case 'm': shift = 20; break;
		case 'G': case 'g': shift = 30; break;
		default: return -EINVAL;
		}
	}
	if (i != n || v > (SIZE_MAX >> shift))
		return -EINVAL;
	*out = (size_t)(v << shift);
	return 0;
}

static int parse_uint(const char *s, size_t n, int base, unsigned long max, unsigned long *out)
{
	if (n == 0 || n > 20)
		return -EINVAL;
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned d;
		if (s[i] >= '0' && s[i] <= '9')
			d = (unsigned)(s[i] - '0');
		else
			return -EINVAL;
		if (d >= (unsigned)base || v > (max - d) / (unsigned)base)
			return -EINVAL;
		v = v * (unsigned)base + d;
	}
	*out = v;
	return 0;
}

static int query_apply(ipc_cfg *cfg, const char *q)
{
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', n);
		if (!eq)
			return -EINVAL;
		size_t kn = (size_t)(eq - q);
		const char *v = eq + 1;
		size_t vn = n - kn - 1;
		unsigned long ul;
		size_t sz;
#define KEY(k) (kn == sizeof(k) - 1 && memcmp(q, k, kn) == 0)
		if (KEY("max_msg")) {
			if (parse_size(v, vn, &sz) < 0 || sz == 0)
				return -EINVAL;
			cfg->max_msg = sz;
			cfg->set |= IPC_SET_MAX_MSG;
		} else if (KEY("capacity")) {
			if (parse_size(v, vn, &sz) < 0 || sz == 0)
				return -EINVAL;
			cfg->capacity = sz;
			cfg->set |= IPC_SET_CAPACITY;
		} else if (KEY("wait")) {
			if (vn == 8 && !memcmp(v, "adaptive", 8))
				cfg->wait = IPC_WAIT_ADAPTIVE;
			else if (vn == 5 && !memcmp(v, "block", 5))
				cfg->wait = IPC_WAIT_BLOCK;
			else if (vn == 4 && !memcmp(v, "spin", 4))
				cfg->wait = IPC_WAIT_SPIN;
			else
				return -EINVAL;
			cfg->set |= IPC_SET_WAIT;
		} else if (KEY("connect_timeout_ms")) {
			if (parse_uint(v, vn, 10, INT_MAX, &ul) < 0)
				return -EINVAL;
			cfg->connect_timeout_ms = (int)ul;
			cfg->set |= IPC_SET_CONNECT_TIMEOUT;
		} else if (KEY("spin_us")) {
			if (parse_uint(v, vn, 10, INT_MAX, &ul) < 0)
				return -EINVAL;
			cfg->spin_us = (int)ul;
			cfg->set |= IPC_SET_SPIN;
		} else if (KEY("mode")) {
			if (parse_uint(v, vn, 8, 0777, &ul) < 0)
				return -EINVAL;
			cfg->mode = (unsigned)ul;
			cfg->set |= IPC_SET_MODE;
		} else {
			return -EINVAL;
		}
#undef KEY
		if (!amp)
			break;
		q = amp + 1;
		if (!*q)
			return -EINVAL; /* trailing '&' */
	}
	return 0;
}

static int parse_hostport(ipc_url *u, const char *a)
{
	const char *colon;
	size_t hn;
	const char *h;
	if (a[0] == '[') {
		const char *rb = strchr(a, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = a + 1;
		hn = (size_t)(rb - h);
		for (size_t i = 0; i < hn; i++)
			if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.' && h[i] != '%')
				return -EINVAL;
		if (hn < 2)
			return -EINVAL;
		colon = rb + 1;
	} else {
		colon = strrchr(a, ':');
		if (!colon)
			return -EINVAL;
		h = a;
		hn = (size_t)(colon - a);
		for (size_t i = 0; i < hn; i++)
			if (!isalnum((unsigned char)h[i]) && h[i] != '.' && h[i] != '-' && h[i] != '_')
				return -EINVAL;
	}
	if (hn == 0 || hn >= sizeof(u->host))
		return -EINVAL;
	memcpy(u->host, h, hn);
	u->host[hn] = 0;
	unsigned long port;
	const char *p = colon + 1;
	if (parse_uint(p, strlen(p), 10, 65535, &port) < 0)
		return -EINVAL;
	u->port = (int)port;
	return 0;
}

static int parse_fds(ipc_url *u, const char *a)
{
	const char *comma = strchr(a, ',');
	unsigned long r, w;
	if (!comma || parse_uint(a, (size_t)(comma - a), 10, INT_MAX, &r) < 0 ||
	    parse_uint(comma + 1, strlen(comma + 1), 10, INT_MAX, &w) < 0)
		return -EINVAL;
	u->rfd = (int)r;
	u->wfd = (int)w;
	return 0;
}

int ipc__url_parse(ipc_url *u, const char *url, const ipc_opts *opts,
		   const struct ipc_backend **bep)
{
	memset(u, 0, sizeof(*u));
	u->rfd = u->wfd = -1;
	if (!url)
		return -EINVAL;
	const char *sep = strstr(url, "://");
	if (!sep || sep == url || (size_t)(sep - url) >= sizeof(u->scheme))
		return -EINVAL;
	for (const char *p = url; p < sep; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p))
			return -EINVAL;
	memcpy(u->scheme, url, (size_t)(sep - url));
	const struct ipc_backend *be = ipc__backend_find(u->scheme, (size_t)(sep - url));
	if (!be)
		return -EPROTONOSUPPORT;

	const char *a = sep + 3;
	const char *q = strchr(a, '?');
	size_t an = q ? (size_t)(q - a) : strlen(a);
	if (an == 0)
		return -EINVAL;
	if (an >= sizeof(u->addr))
		return be->addr_kind == IPC_ADDR_HOSTPORT || be->addr_kind == IPC_ADDR_FDS
			       ? -EINVAL : -ENAMETOOLONG;
	memcpy(u->addr, a, an);
	u->addr[an] = 0;

	int r = ipc__cfg_init(&u->cfg, opts);
	if (r < 0)
		return r;
	if (q && (r = query_apply(&u->cfg, q + 1)) < 0)
		return r;
	if (q && !q[1])
		return -EINVAL; /* a bare '?' */

	switch (be->addr_kind) {
	case IPC_ADDR_HOSTPORT:
		r = parse_hostport(u, u->addr);
		break;
	case IPC_ADDR_PATH:
		if (u->addr[0] == '@') {
			if (!u->addr[1])
				return -EINVAL;
			u->abstract = true;
			strcpy(u->path, u->addr + 1);
			break;
		}
		/* fall through */
	case IPC_ADDR_FSPATH:
		if (u->addr[0] != '/')
			return -EINVAL;
		strcpy(u->path, u->addr);
		break;
	case IPC_ADDR_MQNAME:
		if (u->addr[0] != '/' || !u->addr[1] || strchr(u->addr + 1, '/'))
			return -EINVAL;
		strcpy(u->path, u->addr);
		break;
	case IPC_ADDR_FDS:
		r = parse_fds(u, u->addr);
		break;
	case IPC_ADDR_NAME:
		if (strchr(u->addr, '/'))
			return -EINVAL;
		if (strlen(u->addr) > 255)
			return -ENAMETOOLONG;
		strcpy(u->path, u->addr);
		break;
	case IPC_ADDR_NONE:
	default:
		r = -EINVAL;
		break;
	}
	if (r < 0)
		return r;
	*bep = be;
	return 0;
}

char *ipc__url_format(const char *scheme, const char *fmt, ...)
{
	char addr[4200];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(addr, sizeof(addr), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(addr))
		return NULL;
	char *out;
	if (ipc__fault_hit(IPC_FAULT_MEM) || asprintf(&out, "%s://%s", scheme, addr) < 0)
		return NULL;
	return out;
}
