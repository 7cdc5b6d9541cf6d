/*
 * probe.h - what this machine can do, measured in the same run as a workload
 * so that every speed we report is a ratio to a limit.
 */
#ifndef MOE_KERNELS_PROBE_H
#define MOE_KERNELS_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include "base/pool.h"

/* Memory read bandwidth in bytes/s: the pool's threads stream a buffer of
 * `bytes` (much larger than the caches; 0 = 1 GiB) with vector loads, best of
 * `reps` passes. This is the limit for weight-streaming decode. */
double probe_read_bandwidth(pool *p, size_t bytes, int reps);

/* Peak f32 FMA throughput in FLOP/s over the pool's threads (independent
 * accumulator chains in registers, best of `reps`). */
double probe_f32_flops(pool *p, int reps);

/* Peak int8 multiply-accumulate throughput in operations/s (2 per u8 x s8
 * product) over the pool's threads, on the path the quantized products of
 * kernel choice k take for many rows of x (prefill): AMX-INT8 where k has
 * it, else AVX-512 VNNI, else AVX-VNNI where k's AVX2 path has it, else the
 * AVX2 sequence, else scalar; *path names
 * it. Independent accumulators in registers (or tiles), best of `reps`. */
struct kern_cfg;
double probe_int8_ops(pool *p, const struct kern_cfg *k, int reps, const char **path);
/* Where k's prefill products run on AMX or AVX-512 VNNI: the rate of those
 * products for weights with a scale per 32-block (AMX: tile product of
 * K = 32, tile store, AVX-512 scaling, probe_int8_amx_blocks; VNNI: 8
 * vpdpbusd, a conversion and an fma per block and 16 W rows,
 * probe_int8_vnni512_blocks), in operations/s over the pool's threads,
 * best of `reps`. 0 on the other paths. */
double probe_int8_block_ops(pool *p, const struct kern_cfg *k, int reps);

/* The per-ISA loops (probe_int8_avx512.c, probe_int8_avx2.c): run once,
 * return the operations done. */
double probe_int8_vnni512(int32_t *sink);
double probe_int8_vnni512_blocks(int32_t *sink);
double probe_int8_amx(int32_t *sink);
double probe_int8_amx_blocks(int32_t *sink);
double probe_int8_avx2(int32_t *sink);
double probe_int8_avxvnni(int32_t *sink);

/* Monotonic clock in seconds. */
double clock_now(void);

#endif
