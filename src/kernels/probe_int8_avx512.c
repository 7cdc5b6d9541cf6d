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
