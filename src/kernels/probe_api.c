/*
 * probe_api.c - include/moe_bench.h: the probes of probe.c on a thread
 * pool of their own, and the names of the kernels picked at run time.
 */
#include "moe_bench.h"

#include <stdlib.h>

#include "base/err.h"
#include "base/numa.h"
#include "base/pool.h"
#include "kernels/kernels.h"
#include "kernels/probe.h"
#include "kernels/quant.h"

struct moe_probe {
    pool *pool; /* the threads that stream and compute */
};

int moe_probe_new(moe_probe **out, int n_threads, moe_err *err) {
    *out = malloc(sizeof **out);
    if (*out && ((*out)->pool = pool_create(n_threads))) return 0;
    free(*out);
    *out = NULL;
    return moe_fail(err, "cannot start %d threads (out of memory?)", n_threads);
}

void moe_probe_free(moe_probe *p) {
    if (!p) return;
    pool_free(p->pool);
    free(p);
}

int moe_probe_threads(const moe_probe *p) { return pool_size(p->pool); }

double moe_probe_read_bandwidth(moe_probe *p, size_t bytes, int reps) {
    return probe_read_bandwidth(p->pool, bytes, reps);
}

double moe_probe_f32_flops(moe_probe *p, int reps) { return probe_f32_flops(p->pool, reps); }

double moe_probe_int8_ops(moe_probe *p, const char *kernels, int reps, const char **path) {
    const kern_cfg *k = kernels ? kernels_named(kernels) : kernels_default();
    if (!k) {
        if (path) *path = "none";
        return 0.0;
    }
    return probe_int8_ops(p->pool, k, reps, path);
}

double moe_probe_int8_block_ops(moe_probe *p, const char *kernels, int reps) {
    const kern_cfg *k = kernels ? kernels_named(kernels) : kernels_default();
    return k ? probe_int8_block_ops(p->pool, k, reps) : 0.0;
}

const char *moe_kernels_isa(void) { return isa_name(kernels_default()->isa); }

const char *moe_quant_path(void) { return quant_path_name(kernels_default()); }

int moe_quant_amx(void) { return kernels_default()->amx; }

void moe_numa_get(moe_numa_info *out) {
    out->nodes = numa_nodes();
    out->interleaved_bytes = numa_interleaved_bytes();
    out->refused = numa_last_refusal();
}
