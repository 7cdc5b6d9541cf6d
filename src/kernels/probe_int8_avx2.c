/*
 * probe_int8_avx2.c - the int8 multiply-accumulate peaks of the quantized
 * products' AVX2 path (probe.c picks it by the pool's kernel choice):
 * vpmaddubsw (32 u8 x s8 products into 16 int16 pair sums) and vpaddw into
 * int16 accumulators, the sequence the interleaved AVX2 kernels
 * (quant_r8_avx2.c, quant_r8k_avx2.c) run per 32 products of 4- and 5-bit
 * codes (their vpmaddwd to int32 comes once per 4 or 8 such steps; the
 * 8-bit codes take the sign trick, two operations more). Independent
 * accumulators, operands in registers. Returns the operations (2 per
 * product) one call performs.
 */
#include <immintrin.h>
#include <stdint.h>

#include "kernels/probe.h"

#define I8_ITERS 4000

#define STEP(c, b) c = _mm256_add_epi16(c, _mm256_maddubs_epi16(a, b))

double probe_int8_avx2(int32_t *sink) {
    const __m256i one = _mm256_set1_epi16(1);
    /* a new a each iteration and a b per accumulator: nothing can be hoisted or shared */
    __m256i a = _mm256_set1_epi8(3);
    const __m256i b0 = _mm256_set1_epi8(-1), b1 = _mm256_set1_epi8(-2), b2 = _mm256_set1_epi8(-3);
    const __m256i b3 = _mm256_set1_epi8(-4), b4 = _mm256_set1_epi8(-5), b5 = _mm256_set1_epi8(-6);
    const __m256i b6 = _mm256_set1_epi8(-7), b7 = _mm256_set1_epi8(-8);
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2);
    __m256i c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5);
    __m256i c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7);
    for (int it = 0; it < I8_ITERS; it++) {
        a = _mm256_xor_si256(a, _mm256_set1_epi8((char)(it & 1)));
        STEP(c0, b0); STEP(c1, b1); STEP(c2, b2); STEP(c3, b3);
        STEP(c4, b4); STEP(c5, b5); STEP(c6, b6); STEP(c7, b7);
    }
    /* the int16 sums wrap (the values do not matter, only that nothing is dropped) */
    __m256i s = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(c0, c1), _mm256_add_epi16(c2, c3)),
                                 _mm256_add_epi16(_mm256_add_epi16(c4, c5), _mm256_add_epi16(c6, c7)));
    s = _mm256_madd_epi16(s, one);
    int32_t v[8];
    _mm256_storeu_si256((__m256i *)v, s);
    *sink += v[0] + v[7];
    return (double)I8_ITERS * 8 * 32 * 2;
}

/* The AVX-VNNI peak: vpdpbusd on 256 bits (32 u8 x s8 products added into
 * 8 int32 per operation), the step of the AVX-VNNI build of the
 * interleaved kernels. 12 independent accumulators (enough for two ports
 * at a latency of 5), operands in registers. */
__attribute__((target("avxvnni"))) double probe_int8_avxvnni(int32_t *sink) {
    __m256i a = _mm256_set1_epi8(3);
    const __m256i b = _mm256_set1_epi8(-2);
    __m256i c[12];
    for (int q = 0; q < 12; q++) c[q] = _mm256_set1_epi32(q);
    for (int it = 0; it < I8_ITERS; it++) {
        a = _mm256_xor_si256(a, _mm256_set1_epi8((char)(it & 1)));
#pragma GCC unroll 12
        for (int q = 0; q < 12; q++) c[q] = _mm256_dpbusd_avx_epi32(c[q], a, b);
    }
    __m256i s = c[0];
    for (int q = 1; q < 12; q++) s = _mm256_add_epi32(s, c[q]);
    int32_t v[8];
    _mm256_storeu_si256((__m256i *)v, s);
    *sink += v[0] + v[7];
    return (double)I8_ITERS * 12 * 32 * 2;
}
