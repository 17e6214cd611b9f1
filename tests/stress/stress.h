/*
 * stress.h - what the stress campaigns (tests/stress/) share: their
 * knobs (environment variables with a full and a short default), the
 * process's resident memory and descriptor counts, the deterministic
 * message schedule (sizes and payloads that a receiver can check whole,
 * knowing only the sequence number it expects), one way to get the two
 * connected ends of any backend, and the lines every campaign prints.
 *
 * Names, leftovers, peers and waits come from tests/util.h; payloads of 16
 * bytes and more are bench/msg.c's (sequence number, checksum over every
 * byte), shorter ones tu_fill's pattern.
 */
#ifndef IPCKIT_STRESS_H
#define IPCKIT_STRESS_H

#include "util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_MIB ((size_t)1 << 20)

/* STRESS_SHORT=1 (the stress-short suite) selects every knob's short
 * default; a knob's own variable wins over both. */
bool st_short(void);
/* The knob NAME (e.g. "STRESS_SOAK_MSGS"): its value, else short_v when
 * STRESS_SHORT is set, else full_v. Accepts K and M suffixes. */
long st_knob(const char *name, long full_v, long short_v);
/* STRESS_BACKENDS (comma-separated) when set, else every compiled-in
 * backend; true when be should run. */
bool st_want(const char *be);

/* VmRSS of this process in KiB, and how many descriptors it has open. */
long st_rss_kb(void);
int st_fd_count(void);
/* Raise the soft RLIMIT_NOFILE to want (or the hard limit); the limit now. */
long st_raise_nofile(long want);

/* As root (and unless STRESS_KEEP_UID is set): go on as a user id of its
 * own (61000 + pid % 4000), so that per-user counts, above all the queue
 * memory of RLIMIT_MSGQUEUE that every mq channel of the user shares, hold
 * only this campaign's. Logs and returns a description of what was done,
 * or NULL. */
const char *st_own_user(void);

/* The schedule: the length of message i of stream dir (0 B to max, most
 * small, 1 in 100 up to 64 KiB, 1 in 1000 between 512 KiB and max, every
 * 100000th exactly max), capped at cap. */
size_t st_size(uint32_t dir, uint64_t i, size_t max, size_t cap);
/* Payload of message (dir, i) of len bytes, and its check: 0 when buf
 * holds exactly that message, -1 otherwise (wrong length, sequence or any
 * byte). */
void st_fill(void *buf, size_t len, uint32_t dir, uint64_t i);
int st_check(const void *buf, ssize_t got, size_t len, uint32_t dir, uint64_t i);
/* The sequence number a message of 16 bytes or more carries, or ~0. */
uint64_t st_seq_of(const void *buf, ssize_t got);
uint64_t st_seq(uint32_t dir, uint64_t i);

/* Two connected ends of backend be: ipc_pair where the backend has it,
 * else a server and a client on a fresh URL (the client opened from a
 * thread). 0 or the first error. */
int st_connect(const char *be, const ipc_opts *o, ipc_chan **a, ipc_chan **b);

/* A small random-number generator per caller (xorshift64*). */
uint64_t st_rand(uint64_t *state);

/* "stress-<campaign>: " prefixed lines; st_fail counts a failure. */
void st_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void st_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern const char *st_campaign;
extern int st_failures;
/* The closing line ("N passed, N failed[, N skipped]") and the exit code:
 * 0, 1 on a failure, 77 when everything was skipped. */
int st_finish(int passed, int skipped);

#endif
