/*
 * probe.c - measure this machine's limits (read bandwidth, f32 FMA peak) in
 * the same run as a workload, so speeds can be reported as ratios.
 *
 * The inner loops are compiled per ISA with target attributes and picked by
 * the pool's kernel choice, so a probe uses the same vector width as the
 * kernels.
 */
#include "kernels/probe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "base/numa.h"
#include "kernels/kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PROBE_X86 1
#endif

double clock_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------ bandwidth */

#define BW_CHUNK (1u << 20) /* bytes per pool item */

typedef struct {
    const char *buf;
    size_t bytes;
    isa which;
    float sink[64][16]; /* per thread, so the loads are not dead */
} bw_ctx;

static float bw_sum_scalar(const char *p, size_t n) {
    const uint64_t *q = (const uint64_t *)p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= n / 8; i += 4) {
        a ^= q[i];
        b ^= q[i + 1];
        c ^= q[i + 2];
        d ^= q[i + 3];
    }
    return (float)(a ^ b ^ c ^ d);
}

#ifdef PROBE_X86
/* Each 1 MiB chunk is read as BW_STREAMS interleaved sequential streams,
 * the access pattern of a GEMV over several rows at once (a single stream
 * reaches noticeably less on some machines). */
#define BW_STREAMS 8

__attribute__((target("avx2"))) static float bw_sum_avx2(const char *p, size_t n) {
    __m256 a[BW_STREAMS];
#pragma GCC unroll 8
    for (int s = 0; s < BW_STREAMS; s++) a[s] = _mm256_setzero_ps();
    size_t per = n / BW_STREAMS / 64 * 64;
    for (size_t i = 0; i < per; i += 64)
#pragma GCC unroll 8
        for (int s = 0; s < BW_STREAMS; s++) {
            const float *q = (const float *)(p + (size_t)s * per + i);
            a[s] = _mm256_add_ps(a[s], _mm256_add_ps(_mm256_load_ps(q), _mm256_load_ps(q + 8)));
        }
    float v[8], r = 0;
    for (int s = 0; s < BW_STREAMS; s++) {
        _mm256_storeu_ps(v, a[s]);
        r += v[0];
    }
    return r;
}

__attribute__((target("avx512f"))) static float bw_sum_avx512(const char *p, size_t n) {
    __m512 a[BW_STREAMS];
#pragma GCC unroll 8
    for (int s = 0; s < BW_STREAMS; s++) a[s] = _mm512_setzero_ps();
    size_t per = n / BW_STREAMS / 64 * 64;
    for (size_t i = 0; i < per; i += 64)
#pragma GCC unroll 8
        for (int s = 0; s < BW_STREAMS; s++)
            a[s] = _mm512_add_ps(a[s], _mm512_load_ps((const float *)(p + (size_t)s * per + i)));
    float r = 0;
    for (int s = 0; s < BW_STREAMS; s++) r += _mm512_reduce_add_ps(a[s]);
    return r;
}
#endif

static void bw_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    bw_ctx *c = vc;
    float s = 0;
    for (int64_t i = i0; i < i1; i++) {
        const char *p = c->buf + (size_t)i * BW_CHUNK;
        size_t n = c->bytes - (size_t)i * BW_CHUNK < BW_CHUNK ? c->bytes - (size_t)i * BW_CHUNK : BW_CHUNK;
#ifdef PROBE_X86
        if (c->which == ISA_AVX512)
            s += bw_sum_avx512(p, n);
        else if (c->which == ISA_AVX2)
            s += bw_sum_avx2(p, n);
        else
#endif
            s += bw_sum_scalar(p, n);
    }
    c->sink[tid & 63][0] += s;
}

double probe_read_bandwidth(pool *p, size_t bytes, int reps) {
    if (bytes == 0) bytes = (size_t)1 << 30;
    bytes = (bytes + BW_CHUNK - 1) / BW_CHUNK * BW_CHUNK;
    if (reps < 1) reps = 1;
    /* placed as the weights are (numa.h), so the probe reads what decode reads */
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0.0;
    char *buf = m;
    (void)numa_place_probe(buf, bytes);
    /* Small nonzero floats; writing them faults every page in before timing. */
    for (size_t i = 0; i < bytes; i += 4) {
        float f = 1e-20f;
        memcpy(buf + i, &f, 4);
    }
    bw_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        munmap(buf, bytes);
        return 0.0;
    }
    c->buf = buf;
    c->bytes = bytes;
    c->which = kern_of(p)->isa;
    int64_t items = (int64_t)(bytes / BW_CHUNK);
    pool_for(p, items, 1, bw_chunk, c); /* warm-up: TLB, clocks */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        pool_for(p, items, 1, bw_chunk, c);
        double t = clock_now() - t0;
        if (t < best) best = t;
    }
    free(c);
    munmap(buf, bytes);
    return best > 0 ? (double)bytes / best : 0.0;
}

/* ------------------------------------------------------------ FLOP peak */

#define FLOP_ITERS 20000 /* per item; ~0.1-0.5 ms */

typedef struct {
    isa which;
    float sink[64];
} fl_ctx;

/* FMAs per iteration * lanes * 2 = FLOPs per iteration */
static double fl_run_scalar(float *sink) {
    float a[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float b = 0.9999999f, c = 1e-7f;
    for (int it = 0; it < FLOP_ITERS; it++)
        for (int j = 0; j < 8; j++) a[j] = a[j] * b + c;
    *sink += a[0] + a[7];
    return (double)FLOP_ITERS * 8 * 2;
}

#ifdef PROBE_X86
__attribute__((target("avx2,fma"))) static double fl_run_avx2(float *sink) {
    __m256 b = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
    /* Distinct starting values, or the compiler merges identical chains. */
    __m256 a0 = _mm256_set1_ps(1), a1 = _mm256_set1_ps(2), a2 = _mm256_set1_ps(3);
    __m256 a3 = _mm256_set1_ps(4), a4 = _mm256_set1_ps(5), a5 = _mm256_set1_ps(6);
    __m256 a6 = _mm256_set1_ps(7), a7 = _mm256_set1_ps(8), a8 = _mm256_set1_ps(9);
    __m256 a9 = _mm256_set1_ps(10), a10 = _mm256_set1_ps(11), a11 = _mm256_set1_ps(12);
    for (int it = 0; it < FLOP_ITERS; it++) {
        a0 = _mm256_fmadd_ps(a0, b, c); a1 = _mm256_fmadd_ps(a1, b, c);
        a2 = _mm256_fmadd_ps(a2, b, c); a3 = _mm256_fmadd_ps(a3, b, c);
        a4 = _mm256_fmadd_ps(a4, b, c); a5 = _mm256_fmadd_ps(a5, b, c);
        a6 = _mm256_fmadd_ps(a6, b, c); a7 = _mm256_fmadd_ps(a7, b, c);
        a8 = _mm256_fmadd_ps(a8, b, c); a9 = _mm256_fmadd_ps(a9, b, c);
        a10 = _mm256_fmadd_ps(a10, b, c); a11 = _mm256_fmadd_ps(a11, b, c);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    *sink += v[0];
    return (double)FLOP_ITERS * 12 * 8 * 2;
}

__attribute__((target("avx512f"))) static double fl_run_avx512(float *sink) {
    __m512 b = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
    /* Distinct starting values, or the compiler merges identical chains. */
    __m512 a0 = _mm512_set1_ps(1), a1 = _mm512_set1_ps(2), a2 = _mm512_set1_ps(3);
    __m512 a3 = _mm512_set1_ps(4), a4 = _mm512_set1_ps(5), a5 = _mm512_set1_ps(6);
    __m512 a6 = _mm512_set1_ps(7), a7 = _mm512_set1_ps(8), a8 = _mm512_set1_ps(9);
    __m512 a9 = _mm512_set1_ps(10), a10 = _mm512_set1_ps(11), a11 = _mm512_set1_ps(12);
    __m512 a12 = _mm512_set1_ps(13), a13 = _mm512_set1_ps(14), a14 = _mm512_set1_ps(15);
    __m512 a15 = _mm512_set1_ps(16);
    for (int it = 0; it < FLOP_ITERS; it++) {
        a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c);
        a2 = _mm512_fmadd_ps(a2, b, c); a3 = _mm512_fmadd_ps(a3, b, c);
        a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c);
        a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c);
        a8 = _mm512_fmadd_ps(a8, b, c); a9 = _mm512_fmadd_ps(a9, b, c);
        a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c);
        a12 = _mm512_fmadd_ps(a12, b, c); a13 = _mm512_fmadd_ps(a13, b, c);
        a14 = _mm512_fmadd_ps(a14, b, c); a15 = _mm512_fmadd_ps(a15, b, c);
    }
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15))));
    *sink += _mm512_reduce_add_ps(s);
    return (double)FLOP_ITERS * 16 * 16 * 2;
}
#endif

static double fl_item(fl_ctx *c, int tid) {
    float *sink = &c->sink[tid & 63];
#ifdef PROBE_X86
    if (c->which == ISA_AVX512) return fl_run_avx512(sink);
    if (c->which == ISA_AVX2) return fl_run_avx2(sink);
#endif
    return fl_run_scalar(sink);
}

static void fl_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    for (int64_t i = i0; i < i1; i++) fl_item(vc, tid);
}

double probe_f32_flops(pool *p, int reps) {
    if (reps < 1) reps = 1;
    fl_ctx c;
    memset(&c, 0, sizeof c);
    c.which = kern_of(p)->isa;
    double per_item = fl_item(&c, 0);
    int64_t items = 16 * (int64_t)pool_size(p);
    pool_for(p, items, 1, fl_chunk, &c); /* warm-up: AVX-512 clocks settle */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        pool_for(p, items, 1, fl_chunk, &c);
        double t = clock_now() - t0;
        if (t < best) best = t;
    }
    return best > 0 ? per_item * (double)items / best : 0.0;
}

/* ------------------------------------------------------------ int8 peak */

typedef enum { I8_SCALAR, I8_AVX2, I8_AVXVNNI, I8_VNNI512, I8_AMX, I8_AMX_BLOCKS, I8_VNNI512_BLOCKS } i8_path;

typedef struct {
    i8_path which;
    int32_t sink[64];
} i8_ctx;

static double i8_run_scalar(int32_t *sink) {
    int32_t acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    volatile int8_t vb = -2;
    uint8_t a = 3;
    int8_t b = vb;
    for (int it = 0; it < 20000; it++) {
        a ^= (uint8_t)(it & 1);
        for (int j = 0; j < 8; j++) acc[j] += (int32_t)a * (int32_t)(int8_t)(b - j);
    }
    *sink += acc[0] + acc[7];
    return 20000.0 * 8 * 2;
}

static double i8_item(i8_ctx *c, int tid) {
    int32_t *sink = &c->sink[tid & 63];
#ifdef PROBE_X86
    if (c->which == I8_AMX) return probe_int8_amx(sink);
    if (c->which == I8_AMX_BLOCKS) return probe_int8_amx_blocks(sink);
    if (c->which == I8_VNNI512) return probe_int8_vnni512(sink);
    if (c->which == I8_VNNI512_BLOCKS) return probe_int8_vnni512_blocks(sink);
    if (c->which == I8_AVX2) return probe_int8_avx2(sink);
    if (c->which == I8_AVXVNNI) return probe_int8_avxvnni(sink);
#endif
    return i8_run_scalar(sink);
}

static void i8_chunk(void *vc, int64_t i0, int64_t i1, int tid) {
    for (int64_t i = i0; i < i1; i++) i8_item(vc, tid);
}

/* The best rate of c's loop over the pool's threads. */
static double i8_rate(pool *p, i8_ctx *c, int reps) {
    if (reps < 1) reps = 1;
    double per_item = i8_item(c, 0);
    int64_t items = 16 * (int64_t)pool_size(p);
    pool_for(p, items, 1, i8_chunk, c); /* warm-up: clocks settle */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = clock_now();
        pool_for(p, items, 1, i8_chunk, c);
        double t = clock_now() - t0;
        if (t < best) best = t;
    }
    return best > 0 ? per_item * (double)items / best : 0.0;
}

double probe_int8_ops(pool *p, const kern_cfg *k, int reps, const char **path) {
    if (!k) k = kern_of(p);
    i8_ctx c;
    memset(&c, 0, sizeof c);
    const kern_cpu *cpu = kernels_cpu();
    c.which = k->amx                                   ? I8_AMX
              : k->isa == ISA_AVX512 && cpu->vnni      ? I8_VNNI512
              : k->isa == ISA_AVX2 && k->avxvnni       ? I8_AVXVNNI
              : k->isa >= ISA_AVX2                     ? I8_AVX2
                                                       : I8_SCALAR;
    if (path)
        *path = c.which == I8_AMX       ? "amx-int8"
                : c.which == I8_VNNI512 ? "avx512-vnni"
                : c.which == I8_AVX2    ? "avx2"
                : c.which == I8_AVXVNNI ? "avx-vnni"
                                        : "scalar";
    return i8_rate(p, &c, reps);
}

double probe_int8_block_ops(pool *p, const kern_cfg *k, int reps) {
    if (!k) k = kern_of(p);
    i8_ctx c;
    memset(&c, 0, sizeof c);
    if (k->amx)
        c.which = I8_AMX_BLOCKS;
    else if (k->isa == ISA_AVX512 && kernels_cpu()->vnni)
        c.which = I8_VNNI512_BLOCKS;
    else
        return 0.0;
    return i8_rate(p, &c, reps);
}
