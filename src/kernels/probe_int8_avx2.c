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

#define PIN(v) __asm__ volatile("" : "+x"(v))
#define STEP(c, a, b) c = _mm256_add_epi16(c, _mm256_maddubs_epi16(a, b))

double probe_int8_avx2(int32_t *sink) {
    /* Operands the compiler must take as new each iteration (an empty asm
     * that "changes" them: no instruction), so nothing can be hoisted or
     * shared, and no other vector operation in the loop: on an AMD Zen 3 the
     * four vector pipes take vpmaddubsw on two and vpaddw on any, so every
     * extra operation takes a slot from the peak. Six accumulators, all in
     * registers (vpaddw's latency is 1): an earlier probe kept one on the
     * stack, and its store-to-load chain held the loop to under half the
     * peak (140 GOP/s a core against 320). */
    __m256i a0 = _mm256_set1_epi8(3), a1 = _mm256_set1_epi8(5);
    __m256i b0 = _mm256_set1_epi8(-1), b1 = _mm256_set1_epi8(-2), b2 = _mm256_set1_epi8(-3);
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2);
    __m256i c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5);
    for (int it = 0; it < I8_ITERS; it++) {
        PIN(a0); PIN(a1); PIN(b0); PIN(b1); PIN(b2);
        STEP(c0, a0, b0); STEP(c1, a0, b1); STEP(c2, a0, b2);
        STEP(c3, a1, b0); STEP(c4, a1, b1); STEP(c5, a1, b2);
    }
    /* the int16 sums wrap (the values do not matter, only that nothing is dropped) */
    __m256i s = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(c0, c1), _mm256_add_epi16(c2, c3)),
                                 _mm256_add_epi16(c4, c5));
    s = _mm256_madd_epi16(s, _mm256_set1_epi16(1));
    int32_t v[8];
    _mm256_storeu_si256((__m256i *)v, s);
    *sink += v[0] + v[7];
    return (double)I8_ITERS * 6 * 32 * 2;
}

/* The AVX-VNNI peak: vpdpbusd on 256 bits (32 u8 x s8 products added into
 * 8 int32 per operation), the step of the AVX-VNNI build of the
 * interleaved kernels. 12 independent accumulators (enough for two ports
 * at a latency of 5), named so that they stay in registers (an array of
 * them was stored to the stack each iteration), operands pinned as above. */
#define VSTEP(c) c = _mm256_dpbusd_avx_epi32(c, a, b)
__attribute__((target("avxvnni"))) double probe_int8_avxvnni(int32_t *sink) {
    __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(-2);
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2);
    __m256i c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5);
    __m256i c6 = _mm256_set1_epi32(6), c7 = _mm256_set1_epi32(7), c8 = _mm256_set1_epi32(8);
    __m256i c9 = _mm256_set1_epi32(9), c10 = _mm256_set1_epi32(10), c11 = _mm256_set1_epi32(11);
    for (int it = 0; it < I8_ITERS; it++) {
        PIN(a); PIN(b);
        VSTEP(c0); VSTEP(c1); VSTEP(c2); VSTEP(c3); VSTEP(c4); VSTEP(c5);
        VSTEP(c6); VSTEP(c7); VSTEP(c8); VSTEP(c9); VSTEP(c10); VSTEP(c11);
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    s = _mm256_add_epi32(s, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
    int32_t v[8];
    _mm256_storeu_si256((__m256i *)v, s);
    *sink += v[0] + v[7];
    return (double)I8_ITERS * 12 * 32 * 2;
}
