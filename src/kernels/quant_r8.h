/*
 * quant_r8.h - what the interleaved 8-row AVX2 kernels share
 * (quant_r8_avx2.c: the 32-block types; quant_r8k_avx2.c: the
 * 256-blocks): the 8 x 8 dword transpose that interleaves 8 W rows, the
 * broadcast of 4 activation bytes, and the loads and stores of a partial
 * group's outputs (rw < 8 lanes, the others neither read nor written).
 * Include only from files built with AVX2.
 */
#ifndef MOE_KERNELS_QUANT_R8_H
#define MOE_KERNELS_QUANT_R8_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* With R8_VNNI (the AVX-VNNI builds, quant_r8*_avxvnni_avx2.c) every function
 * from here to R8_VNNI_END at the end of the file is built for AVX-VNNI too. */
#ifdef R8_VNNI
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avxvnni"))), apply_to = function)
#define R8_VNNI_END _Pragma("clang attribute pop")
#else
#pragma GCC target("avxvnni")
#define R8_VNNI_END
#endif
#endif

#define R8_AI static inline __attribute__((always_inline))
#define R8_LANES 8 /* W rows per group: the int32 lanes of a register */

/* z[p] = row p's 8 dwords into o[k] = dword k of rows 0..7: unpacks of 32
 * and 64 bits, then 128-bit permutes (24 operations). */
R8_AI void r8_transpose(const __m256i *z, __m256i *o) {
    __m256i a[8], b[8];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        a[2 * p] = _mm256_unpacklo_epi32(z[2 * p], z[2 * p + 1]);
        a[2 * p + 1] = _mm256_unpackhi_epi32(z[2 * p], z[2 * p + 1]);
    }
    /* a[2p]: per lane [r2p c0, r2p+1 c0, r2p c1, r2p+1 c1] (rows 2p, 2p+1), a[2p+1]: c2, c3 */
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        b[4 * g + 0] = _mm256_unpacklo_epi64(a[4 * g], a[4 * g + 2]);     /* c0 of rows 4g..4g+3 */
        b[4 * g + 1] = _mm256_unpackhi_epi64(a[4 * g], a[4 * g + 2]);     /* c1 */
        b[4 * g + 2] = _mm256_unpacklo_epi64(a[4 * g + 1], a[4 * g + 3]); /* c2 */
        b[4 * g + 3] = _mm256_unpackhi_epi64(a[4 * g + 1], a[4 * g + 3]); /* c3 */
    }
    /* b[q] (rows 0..3) and b[4 + q] (rows 4..7): lane 0 dword q, lane 1 dword 4 + q */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        o[q] = _mm256_permute2x128_si256(b[q], b[4 + q], 0x20);
        o[4 + q] = _mm256_permute2x128_si256(b[q], b[4 + q], 0x31);
    }
}

/* Keeps v in a register where it stands: GCC reassociates the int32 adds
 * of a block's sums into a tree whose partial sums it spills to the stack
 * (a store and a load per 32 products); pinning each running sum after its
 * add keeps the chains as written. Integer adds, so the sums are the same. */
#define R8_PIN(v) __asm__("" : "+x"(v))

/* The 4 bytes at p in every dword. */
R8_AI __m256i r8_bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* The rw outputs at y (0 in the other lanes). */
R8_AI __m256 r8_load_y(const float *y, int rw) {
    if (rw == R8_LANES) return _mm256_loadu_ps(y);
    float t[R8_LANES] = {0};
    memcpy(t, y, sizeof(float) * (size_t)rw);
    return _mm256_loadu_ps(t);
}

/* The first rw lanes of v to y. */
R8_AI void r8_store_y(float *y, __m256 v, int rw) {
    if (rw == R8_LANES) {
        _mm256_storeu_ps(y, v);
        return;
    }
    float t[R8_LANES];
    _mm256_storeu_ps(t, v);
    memcpy(y, t, sizeof(float) * (size_t)rw);
}

#endif
