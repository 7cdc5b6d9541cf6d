/*
 * probe_int8_avx512.c - the int8 multiply-accumulate peak of the quantized
 * products' AVX-512 paths (probe.c picks one by the pool's kernel choice):
 *   VNNI  vpdpbusd on 512-bit registers: 64 u8 x s8 products summed into
 *         16 int32 lanes per instruction (what the AVX-512 quantized GEMV
 *         and small GEMM use);
 *   AMX   tdpbusd on 16 x 64-byte tiles: 16 x 16 x 64 products per
 *         instruction (the many-row prefill products on CPUs that have it).
 * Independent accumulators, operands in registers or tiles, no memory
 * traffic in the loop: an upper bound that real products approach.
 * And each path's "block peak": the same products on weights with a scale
 * per 32-block, as the quantized types have, operands in L1.
 * Returns the operations (2 per product) one call performs.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/probe.h"

#define I8_ITERS 4000

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double probe_int8_vnni512(int32_t *sink) {
    __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2);
    __m512i c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5);
    __m512i c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8);
    __m512i c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
    for (int it = 0; it < I8_ITERS; it++) {
        c0 = _mm512_dpbusd_epi32(c0, a, b); c1 = _mm512_dpbusd_epi32(c1, a, b);
        c2 = _mm512_dpbusd_epi32(c2, a, b); c3 = _mm512_dpbusd_epi32(c3, a, b);
        c4 = _mm512_dpbusd_epi32(c4, a, b); c5 = _mm512_dpbusd_epi32(c5, a, b);
        c6 = _mm512_dpbusd_epi32(c6, a, b); c7 = _mm512_dpbusd_epi32(c7, a, b);
        c8 = _mm512_dpbusd_epi32(c8, a, b); c9 = _mm512_dpbusd_epi32(c9, a, b);
        c10 = _mm512_dpbusd_epi32(c10, a, b); c11 = _mm512_dpbusd_epi32(c11, a, b);
    }
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                                 _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7)));
    s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)));
    *sink += _mm512_reduce_add_epi32(s);
    return (double)I8_ITERS * 12 * 64 * 2;
}

/* The VNNI product of weights with a scale per 32-block and W row, as the
 * many-row kernels run it (quant_r16_avx512.c, quant_r16k_avx512.c): 16 W
 * rows' codes of a block in 8 registers, reused by 8 rows of x; per x row
 * and block 8 vpdpbusd (the x codes broadcast from L1), one conversion of
 * the int32 sums and one fused multiply-add by the 16 rows' scales into f32
 * accumulators. That conversion and fma per 32 values is what an exact
 * product of these types cannot leave out, and it bounds them below the
 * vpdpbusd peak. Counts 2 operations per product. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) double probe_int8_vnni512_blocks(int32_t *sink) {
    enum { NB = 16, NX = 8 };
    /* not const: with the memory clobber below no load can be folded away */
    static uint8_t w[NB][8][64] __attribute__((aligned(64)));
    static int8_t x[NX][NB * 32] __attribute__((aligned(64)));
    static float sc[NB][16] __attribute__((aligned(64)));
    __m512 acc[NX];
    for (int i = 0; i < NX; i++) acc[i] = _mm512_setzero_ps();
    const int iters = I8_ITERS / NB;
    for (int it = 0; it < iters; it++) {
        for (int b = 0; b < NB; b++) {
            __m512i wq[8];
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) wq[k] = _mm512_load_si512((const void *)w[b][k]);
            const __m512 s = _mm512_load_ps(sc[b]);
#pragma GCC unroll 8
            for (int i = 0; i < NX; i++) {
                __m512i t = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    int32_t q;
                    memcpy(&q, x[i] + 32 * b + 4 * k, 4);
                    t = _mm512_dpbusd_epi32(t, wq[k], _mm512_set1_epi32(q));
                }
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), s, acc[i]);
            }
        }
        __asm__ volatile("" ::: "memory"); /* one pass over the blocks per iteration */
    }
    __m512 t = acc[0];
    for (int i = 1; i < NX; i++) t = _mm512_add_ps(t, acc[i]);
    *sink += (int32_t)_mm512_reduce_add_ps(t);
    return (double)iters * NB * NX * 16 * 32 * 2;
}

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} probe_amx_cfg;

/* Four accumulators tmm0-3 (C: 16 x 16 int32), A tiles tmm4-5 (16 rows of
 * 64 u8), B tiles tmm6-7 (16 rows of 64 s8, i.e. 64 x 16 in groups of 4):
 * C[i][j] += A[i] . B[j] over 64 products, 16 x 16 x 64 per tdpbusd. */
__attribute__((target("amx-tile,amx-int8"))) double probe_int8_amx(int32_t *sink) {
    static const uint8_t zero[16 * 64];
    int32_t out[16 * 16];
    probe_amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, zero, 64);
    _tile_loadd(5, zero, 64);
    _tile_loadd(6, zero, 64);
    _tile_loadd(7, zero, 64);
    for (int it = 0; it < I8_ITERS; it++) {
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *sink += out[0];
    return (double)I8_ITERS * 4 * 16 * 16 * 64 * 2;
}

/* The AMX product of weights with a scale per 32-block, as prefill runs it
 * on Q8_0/Q4_0/Q4_K-style types (quant_amx_avx512.c): per block, a tdpbssd
 * of K = 32 (16 W rows x 16 x rows), the int32 tile stored, and 16 AVX-512
 * rows of convert, scale by the x block's scales and fused multiply-add by
 * the W row's scale into f32 accumulators. All operands in L1. Its rate is
 * the ceiling of those products on this core: the scaling, not the tile
 * unit, sets it. Counts 2 operations per product. */
__attribute__((target("avx512f,avx512bw,amx-tile,amx-int8"))) double probe_int8_amx_blocks(int32_t *sink) {
    enum { NB = 16 };
    static const int8_t a[16 * 32 * NB], b[NB * 8 * 64];
    static const float dx[16] = {1}, dw[NB][16] = {{1}};
    int32_t cb[2][16][16] __attribute__((aligned(64)));
    probe_amx_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int s = 0; s < 6; s += 3) {
        cfg.rows[s] = 16, cfg.colsb[s] = 64;     /* C: 16 x 16 int32 */
        cfg.rows[s + 1] = 16, cfg.colsb[s + 1] = 32; /* A: 16 rows x 32 codes */
        cfg.rows[s + 2] = 8, cfg.colsb[s + 2] = 64;  /* B: 32 x 16 in groups of 4 */
    }
    _tile_loadconfig(&cfg);
    __m512 acc[16];
    for (int m = 0; m < 16; m++) acc[m] = _mm512_setzero_ps();
    const __m512 vdx = _mm512_loadu_ps(dx);
    const int iters = I8_ITERS / 16;
    for (int it = 0; it < iters; it++) {
        for (int k = 0; k < NB; k += 2) {
            _tile_loadd(1, a + 32 * k, 32 * NB);
            _tile_loadd(2, b + 512 * k, 64);
            _tile_zero(0);
            _tile_dpbssd(0, 1, 2);
            _tile_loadd(4, a + 32 * (k + 1), 32 * NB);
            _tile_loadd(5, b + 512 * (k + 1), 64);
            _tile_zero(3);
            _tile_dpbssd(3, 4, 5);
            _tile_stored(0, cb[0], 64);
            _tile_stored(3, cb[1], 64);
            for (int h = 0; h < 2; h++)
#pragma GCC unroll 16
                for (int m = 0; m < 16; m++) {
                    __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)cb[h][m])), vdx);
                    acc[m] = _mm512_fmadd_ps(s, _mm512_set1_ps(dw[k + h][m]), acc[m]);
                }
        }
    }
    _tile_release();
    __m512 t = acc[0];
    for (int m = 1; m < 16; m++) t = _mm512_add_ps(t, acc[m]);
    *sink += (int32_t)_mm512_reduce_add_ps(t);
    return (double)iters * NB * 16 * 16 * 32 * 2;
}
