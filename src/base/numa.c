/*
 * numa.c - interleaving the large read-mostly regions over the NUMA nodes
 * (numa.h says why and when).
 */
#include "base/numa.h"

#include <errno.h>
#include <linux/mempolicy.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/err.h"

/* Bits of the node masks passed to the kernel: more than any kernel's
 * MAX_NUMNODES (1024), as get_mempolicy asks for at least its node count. */
#define NUMA_BITS 4096
#define NUMA_WORDS (NUMA_BITS / (8 * sizeof(unsigned long)))

static atomic_int_fast64_t interleaved;
static atomic_int last_refusal; /* errno of the last refused mbind, 0 if none */

int numa_mode(moe_err *err) {
    const char *v = getenv("MOE_NUMA");
    if (!v || !*v || !strcmp(v, "auto")) return NUMA_AUTO;
    if (!strcmp(v, "interleave")) return NUMA_INTERLEAVE;
    if (!strcmp(v, "off")) return NUMA_OFF;
    moe_fail(err, "MOE_NUMA=%.40s: expected auto, interleave or off", v);
    return -1;
}

/* The nodes the process may allocate on, into mask; their count, or 0 when
 * the kernel will not say. */
static int allowed(unsigned long *mask) {
    memset(mask, 0, NUMA_WORDS * sizeof *mask);
    if (syscall(SYS_get_mempolicy, NULL, mask, (unsigned long)NUMA_BITS, NULL, (unsigned long)MPOL_F_MEMS_ALLOWED))
        return 0;
    int n = 0;
    for (size_t i = 0; i < NUMA_WORDS; i++) n += __builtin_popcountl(mask[i]);
    return n;
}

int numa_nodes(void) {
    unsigned long mask[NUMA_WORDS];
    int n = allowed(mask);
    return n > 0 ? n : 1;
}

/* Whether the process runs with the default policy (none set by numactl
 * or set_mempolicy); 0 when the kernel will not say. */
static int default_policy(void) {
    int mode = -1;
    if (syscall(SYS_get_mempolicy, &mode, NULL, 0UL, NULL, 0UL)) return 0;
    return (mode & ~(MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES)) == MPOL_DEFAULT;
}

static int place(void *p, size_t len, int count, moe_err *err) {
    const int mode = numa_mode(err);
    if (mode < 0) return -1;
    if (mode == NUMA_OFF || !p || !len) return 0;
    unsigned long mask[NUMA_WORDS];
    const int n = allowed(mask);
    if (n == 0) { /* the kernel would not say which nodes: nothing can be placed */
        if (mode == NUMA_INTERLEAVE) atomic_store(&last_refusal, errno ? errno : ENOSYS);
        return 0;
    }
    if (mode == NUMA_AUTO && (n < 2 || !default_policy())) return 0;
    if (syscall(SYS_mbind, p, (unsigned long)len, (int)MPOL_INTERLEAVE, mask, (unsigned long)NUMA_BITS + 1, 0U)) {
        atomic_store(&last_refusal, errno ? errno : EINVAL);
        return 0;
    }
    if (count) atomic_fetch_add(&interleaved, (int_fast64_t)len);
    return 1;
}

int numa_place(void *p, size_t len, moe_err *err) { return place(p, len, 1, err); }

int numa_place_probe(void *p, size_t len) { return place(p, len, 0, NULL); }

int64_t numa_interleaved_bytes(void) { return (int64_t)atomic_load(&interleaved); }

const char *numa_last_refusal(void) {
    const int e = atomic_load(&last_refusal);
    return e ? strerror(e) : NULL;
}
