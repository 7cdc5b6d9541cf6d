/*
 * moe_bench.h - what this machine can do, measured in the same run as a
 * workload so that every speed reported is a ratio to a limit (`moe bench`,
 * docs/PERF.md), and which kernels run the model here.
 *
 * Same conventions as moe.h: 0 on success, -1 with *err filled on error.
 */
#ifndef MOE_BENCH_H
#define MOE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "moe.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The threads the probes run on. */
typedef struct moe_probe moe_probe;

/* n_threads 0 = online CPUs. */
int moe_probe_new(moe_probe **out, int n_threads, moe_err *err);
void moe_probe_free(moe_probe *p);
int moe_probe_threads(const moe_probe *p);

/* Memory read bandwidth in bytes/s: the threads stream a buffer of `bytes`
 * (much larger than the caches; 0 = 1 GiB) with vector loads, best of
 * `reps` passes. The limit for weight-streaming decode. */
double moe_probe_read_bandwidth(moe_probe *p, size_t bytes, int reps);

/* Peak f32 FMA throughput in FLOP/s over the threads (independent
 * accumulator chains in registers, best of `reps`). */
double moe_probe_f32_flops(moe_probe *p, int reps);

/* Peak int8 multiply-accumulate throughput in operations/s (2 per u8 x s8
 * product) over the threads, on the path the quantized products take for
 * prefill with the kernel choice `kernels` (as moe_session_opts.kernels;
 * NULL: the default): AMX-INT8 where that choice has it, else AVX-512
 * VNNI, else AVX2, else scalar; *path (if not NULL) names it. Best of
 * `reps`; 0 for a kernel name this CPU cannot run. */
double moe_probe_int8_ops(moe_probe *p, const char *kernels, int reps, const char **path);
/* Where that path is AMX or AVX-512 VNNI: the rate its products reach on
 * weights with a scale per 32-block of K (Q8_0, Q4_0, Q4_K, ... as prefill
 * runs them: AMX, a tile product per block, its sums stored and scaled by
 * AVX-512 into f32; VNNI, 8 vpdpbusd per block and 16 W rows, the int32
 * sums converted and scaled into f32 by one fma), operands in L1; the
 * scaling bounds it below the int8 peak. Operations/s, best of `reps`; 0
 * on the AVX2 and scalar paths. */
double moe_probe_int8_block_ops(moe_probe *p, const char *kernels, int reps);

/* The instruction set the float kernels use here ("avx512", "avx2", ...). */
const char *moe_kernels_isa(void);
/* The path quantized matrix products take here, and whether prefill of
 * Q4_0 / Q8_0 / Q4_K uses AMX-INT8 (1) or not (0). */
const char *moe_quant_path(void);
int moe_quant_amx(void);
/* The same for what a session runs (its moe_session_opts.kernels, or the
 * process default). */
const char *moe_session_kernels_isa(const moe_session *s);
const char *moe_session_quant_path(const moe_session *s);
int moe_session_quant_amx(const moe_session *s);

/* NUMA placement (docs/DESIGN.md, MOE_NUMA): on a machine with several
 * nodes the weights read at load, an expert cache's slots and the
 * bandwidth probe's buffer are interleaved over the nodes the process may
 * allocate on. */
typedef struct moe_numa_info {
    int nodes;                 /* nodes the process may allocate on (1 if unknown) */
    int64_t interleaved_bytes; /* bytes of weights and expert slots interleaved so far */
    const char *refused;       /* why the kernel last refused to place memory, or NULL */
} moe_numa_info;
void moe_numa_get(moe_numa_info *out);

#ifdef __cplusplus
}
#endif
#endif
