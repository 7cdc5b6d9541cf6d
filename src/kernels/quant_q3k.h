/*
 * quant_q3k.h - Q3_K's 16 sub-block scales unpacked with SSE / AVX2
 * operations, shared by quant_extra_kern.h's few-row products (its AVX2 and
 * AVX-512 builds) and quant_extra_gemv_avx2.c's decode. Include only from
 * files built with AVX2.
 */
#ifndef MOE_KERNELS_QUANT_Q3K_H
#define MOE_KERNELS_QUANT_Q3K_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

/* Q3_K's 16 scales (6 bits, less 32) as signed bytes in sub-block order
 * from its 12 bytes of scales: the low nibbles of bytes 0..7 then their
 * high nibbles, each with the bit pair (sc[8 + j % 4] >> 2 * (j / 4)) & 3
 * on top. */
static inline __attribute__((always_inline)) __m128i q3k_scales(const uint8_t *sc) {
    uint64_t lo8;
    uint32_t hi4;
    memcpy(&lo8, sc, 8);
    memcpy(&hi4, sc + 8, 4);
    const __m128i v = _mm_cvtsi64_si128((long long)lo8), m4 = _mm_set1_epi8(0x0F);
    const __m128i low = _mm_unpacklo_epi64(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    __m128i h = _mm_srlv_epi32(_mm_set1_epi32((int)hi4), _mm_setr_epi32(0, 2, 4, 6));
    h = _mm_slli_epi16(_mm_and_si128(h, _mm_set1_epi8(3)), 4);
    return _mm_sub_epi8(_mm_or_si128(low, h), _mm_set1_epi8(32));
}

#endif
