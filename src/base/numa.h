/*
 * numa.h - where the large read-mostly regions go on a machine with several
 * NUMA nodes: the weights read into memory at load, the resident part of a
 * model with an expert cache, the cache's slots and fallback copy, and the
 * bandwidth probe's buffer (so the probe measures what decode reads from).
 *
 * One thread reads a weight file into memory, so by the kernel's
 * first-touch rule every page would land on that thread's node, and the
 * other nodes' cores would stream the weights across the interconnect from
 * one memory controller: decode, which reads every active weight once a
 * token, would get one node's bandwidth however many the machine has. The
 * pages are interleaved over the nodes the process may allocate on
 * (mbind MPOL_INTERLEAVE, before they are touched), so every controller
 * serves every thread. The pool hands out chunks of work dynamically
 * (pool.c), so no thread owns fixed rows whose pages could be put on its
 * own node; interleaving is the placement that holds whichever chunk a
 * thread claims.
 *
 * MOE_NUMA in the environment: "auto" (or unset) interleaves when the
 * process may allocate on two nodes or more and has no memory policy of
 * its own (so `numactl --interleave` or `--membind` is left to rule);
 * "interleave" always (one node included: the placement is then a no-op
 * the tests can still see); "off" never. Direct system calls (get_mempolicy,
 * mbind), not libnuma: two calls. Where they are refused (a seccomp filter,
 * a kernel without NUMA), nothing is placed and the reason is kept.
 */
#ifndef MOE_BASE_NUMA_H
#define MOE_BASE_NUMA_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

enum { NUMA_AUTO, NUMA_INTERLEAVE, NUMA_OFF };

/* The mode MOE_NUMA names; -1 with *err filled for any other value. */
int numa_mode(moe_err *err);

/* Nodes the process may allocate memory on (1 where that cannot be told). */
int numa_nodes(void);

/* Place [p, p + len) (page aligned, not yet touched) as the mode says:
 * 1 interleaved, 0 left to the kernel's default, -1 with *err filled for a
 * bad MOE_NUMA. A refused mbind is not an error (0; numa_last_refusal). */
int numa_place(void *p, size_t len, moe_err *err);

/* The same for a probe's buffer, not counted below (MOE_NUMA's value as
 * numa_place reads it; a bad one fails the load, not the probe). */
int numa_place_probe(void *p, size_t len);

/* Bytes numa_place interleaved in this process so far. */
int64_t numa_interleaved_bytes(void);

/* strerror of the last refused mbind, or NULL. */
const char *numa_last_refusal(void);

#endif
