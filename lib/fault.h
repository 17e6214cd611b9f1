/*
 * fault.h - the one choke point for the resources the library asks the
 * system for: memory (ipc__malloc and friends) and descriptors (every call
 * that creates one goes through ipc__fd_fault() first, in lib/posix and
 * the backends). Test builds (-DIPC_FAULT_INJECTION, the static library
 * the tests link) can make the n-th request of a kind fail, with ENOMEM or
 * EMFILE, to prove that every failure path reports the error and leaves
 * the channel usable and nothing leaked. Release builds compile the checks
 * away.
 */
#ifndef IPC_FAULT_H
#define IPC_FAULT_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum ipc_fault_kind { IPC_FAULT_MEM = 0, IPC_FAULT_FD = 1, IPC_FAULT_THREAD = 2, IPC_FAULT_KINDS };

#ifdef IPC_FAULT_INJECTION
/* True when this request must fail (counts every request of the kind). */
bool ipc__fault_hit(enum ipc_fault_kind kind);
/* Tests: fail the nth request of kind from now on (0 = the next one), and
 * every later one too when sticky; nth < 0 disarms. */
void ipc__fault_arm(enum ipc_fault_kind kind, long nth, bool sticky);
/* Tests: how many requests of kind were made since the last arm. */
long ipc__fault_count(enum ipc_fault_kind kind);
/* Tests: how many requests were made to fail since the last arm. */
long ipc__fault_failed(enum ipc_fault_kind kind);
#else
static inline bool ipc__fault_hit(enum ipc_fault_kind kind)
{
	(void)kind;
	return false;
}
#endif

static inline void *ipc__malloc(size_t n)
{
	if (ipc__fault_hit(IPC_FAULT_MEM)) {
		errno = ENOMEM;
		return NULL;
	}
	return malloc(n);
}

static inline void *ipc__calloc(size_t n, size_t size)
{
	if (ipc__fault_hit(IPC_FAULT_MEM)) {
		errno = ENOMEM;
		return NULL;
	}
	return calloc(n, size);
}

static inline void *ipc__realloc(void *p, size_t n)
{
	if (ipc__fault_hit(IPC_FAULT_MEM)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, n);
}

static inline char *ipc__strdup(const char *s)
{
	if (ipc__fault_hit(IPC_FAULT_MEM)) {
		errno = ENOMEM;
		return NULL;
	}
	return strdup(s);
}

/* Before every call that creates a descriptor: true (errno = EMFILE) when
 * an injected fault says it fails. */
static inline bool ipc__fd_fault(void)
{
	if (ipc__fault_hit(IPC_FAULT_FD)) {
		errno = EMFILE;
		return true;
	}
	return false;
}

#endif
