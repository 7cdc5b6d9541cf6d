/*
 * probe.h - what this machine can do, measured in the same run as a workload
 * so that every speed we report is a ratio to a limit.
 */
#ifndef MOE_KERNELS_PROBE_H
#define MOE_KERNELS_PROBE_H

#include <stddef.h>
#include "base/pool.h"

/* Memory read bandwidth in bytes/s: the pool's threads stream a buffer of
 * `bytes` (much larger than the caches; 0 = 1 GiB) with vector loads, best of
 * `reps` passes. This is the limit for weight-streaming decode. */
double probe_read_bandwidth(pool *p, size_t bytes, int reps);

/* Peak f32 FMA throughput in FLOP/s over the pool's threads (independent
 * accumulator chains in registers, best of `reps`). */
double probe_f32_flops(pool *p, int reps);

/* Monotonic clock in seconds. */
double clock_now(void);

#endif
