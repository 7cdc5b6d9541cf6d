/*
 * quant_r16.h - what the interleaved 16-row VNNI kernels share
 * (quant_r16_avx512.c: Q8_0 / Q4_0; quant_r16k_avx512.c: the 256-blocks):
 * the broadcast vpdpbusd and the 16 x 8 dword transpose that interleaves
 * 16 W rows. Include after the file's target pragma (the functions take
 * its ISA).
 */
#ifndef MOE_KERNELS_QUANT_R16_H
#define MOE_KERNELS_QUANT_R16_H

#include <immintrin.h>
#include <stdint.h>

#define R16_AI static inline __attribute__((always_inline))

/* vpdpbusd(t, w, the 4 bytes at x broadcast), the broadcast folded into the
 * instruction ({1to16}), which compilers do not do for _mm512_set1_epi32. */
R16_AI __m512i dpbusd_bcast(__m512i t, __m512i w, const int8_t *x) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(t) : "v"(w), "m"(*(const int32_t *)x));
    return t;
}

/* The same for vpdpwssd (int16 pairs). */
R16_AI __m512i dpwssd_bcast(__m512i t, __m512i w, const int16_t *x) {
    __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(t) : "v"(w), "m"(*(const int32_t *)x));
    return t;
}

/* z[p] = [row p's 8 dwords | row p + 8's 8 dwords] (p < 8) into o[k] =
 * dword k of rows 0..15 (lane r: row r). Two 8 x 8 transposes at once, one
 * in each 256-bit half: unpacks of 32 and 64 bits, then one two-source
 * qword permute: 24 operations. */
R16_AI void r16_transpose(const __m512i *z, __m512i *o) {
    const __m512i i0 = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i i1 = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    /* per 128-bit lane, dwords c0..c3 of rows p, p+1: [p c0, p+1 c0, p c1, p+1 c1] (lo), c2/c3 (hi) */
    __m512i lo[4], hi[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) {
        lo[p] = _mm512_unpacklo_epi32(z[2 * p], z[2 * p + 1]);
        hi[p] = _mm512_unpackhi_epi32(z[2 * p], z[2 * p + 1]);
    }
    /* c[q][g]: per 128-bit lane, dword q of the lane for rows 4g..4g+3 */
    __m512i c[4][2];
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        c[0][g] = _mm512_unpacklo_epi64(lo[2 * g], lo[2 * g + 1]);
        c[1][g] = _mm512_unpackhi_epi64(lo[2 * g], lo[2 * g + 1]);
        c[2][g] = _mm512_unpacklo_epi64(hi[2 * g], hi[2 * g + 1]);
        c[3][g] = _mm512_unpackhi_epi64(hi[2 * g], hi[2 * g + 1]);
    }
    /* dword k = 4m + q of rows 0..15: lane m of each half of c[q][0] and c[q][1] */
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
        o[q] = _mm512_permutex2var_epi64(c[q][0], i0, c[q][1]);
        o[4 + q] = _mm512_permutex2var_epi64(c[q][0], i1, c[q][1]);
    }
}

/* o[q] = dword q of the 16 bytes at w[r] + at, rows r = 0..15 (lane r):
 * four loads into each register (rows j, j+4, j+8, j+12 in its 128-bit
 * lanes), then a 4 x 4 transpose in each lane. Cheaper than four gathers. */
R16_AI void r16_head4(const uint8_t *const *w, size_t at, __m512i *o) {
    __m512i a[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(w[j] + at)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w[j + 4] + at)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w[j + 8] + at)), 2);
        a[j] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(w[j + 12] + at)), 3);
    }
    const __m512i l0 = _mm512_unpacklo_epi32(a[0], a[1]), h0 = _mm512_unpackhi_epi32(a[0], a[1]);
    const __m512i l1 = _mm512_unpacklo_epi32(a[2], a[3]), h1 = _mm512_unpackhi_epi32(a[2], a[3]);
    o[0] = _mm512_unpacklo_epi64(l0, l1);
    o[1] = _mm512_unpackhi_epi64(l0, l1);
    o[2] = _mm512_unpacklo_epi64(h0, h1);
    o[3] = _mm512_unpackhi_epi64(h0, h1);
}

/* [the 32 bytes at p | the 32 bytes at q] */
R16_AI __m512i r16_load2(const uint8_t *p, const uint8_t *q) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                              _mm256_loadu_si256((const __m256i *)q), 1);
}

#endif
