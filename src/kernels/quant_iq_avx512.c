/*
 * quant_iq_avx512.c - the grid i-quants' products on AVX-512 (BW + VNNI).
 *
 * Every grid i-quant: each weight block is unpacked
 * once into registers, per 64 values the grid magnitudes (one gather of 8
 * grid rows of 8 bytes, or 16 of 4), the 64 sign bits as a mask, and the
 * scale of each pair of values; then it is dotted with every row of x. Per
 * 64 values the activation codes are negated where the weight's sign bit is
 * set (one masked subtract), vpmaddubsw multiplies the magnitudes
 * (unsigned) by them into pairs (at most 2 * 62 * 127, no saturation: Q8_K
 * codes are within [-127, 127]), and vpdpwssd weighs the pairs by their
 * 16-value scale into 16 int32 sums. The block's integer sum is exact, and
 * d carries the type's power of two (quant_iq_decode.h), so each output is
 * the scalar reference's f32 sum, in the same order. IQ1_S and IQ1_M (grid
 * values -1, 0, 1 shifted by +-1/8 per group) become magnitudes and signs
 * of 8 g +- 1 (iq1_values) and go through the same kernel.
 */
#include <immintrin.h>

#include "kernels/quant_iq_decode.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni,bmi2"))), apply_to = function)
#else
#pragma GCC target("avx512vnni,bmi2") /* every AVX-512 CPU has BMI2 */
#endif

/* One block, unpacked: per 64-value chunk c the magnitudes, the sign mask
 * and the scale of each of its 32 pairs. */
typedef struct {
    __m512i g[4], sv[4];
    __mmask64 neg[4];
    float d;
} zblock;

/* Pair m of chunk c covers values 64c + 2m, +1: its scale is sc[4c + m / 8]. */
#define PAIRS(c) 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, \
    4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2,   \
    4 * c + 2, 4 * c + 2, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3
static const int16_t k_pair_idx[4][32] = {{PAIRS(0)}, {PAIRS(1)}, {PAIRS(2)}, {PAIRS(3)}};
#undef PAIRS

static inline void pair_scales(__m256i sc16, zblock *z) {
    const __m512i s = _mm512_castsi256_si512(sc16);
    for (int c = 0; c < 4; c++) z->sv[c] = _mm512_permutexvar_epi16(_mm512_loadu_si512(k_pair_idx[c]), s);
}

/* 16 scales 2 * nibble + 1 from 8 bytes (low nibble first): IQ2_XS, IQ2_S. */
static inline __m256i nibble_scales(const uint8_t *p) {
    const __m128i b = _mm_loadl_epi64((const __m128i *)p), m = _mm_set1_epi8(0xf);
    const __m128i n = _mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m));
    const __m256i w = _mm256_cvtepu8_epi16(n);
    return _mm256_add_epi16(_mm256_add_epi16(w, w), _mm256_set1_epi16(1));
}

/* 8 scales 2 * (ss >> 28) + 1 (i32 lanes) each as the scale of 2 groups of 16. */
static inline __m256i dup_scales(__m256i top4) {
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(top4, top4), _mm256_set1_epi32(1));
    return _mm256_or_si256(s, _mm256_slli_epi32(s, 16));
}

/* IQ1_S / IQ1_M: chunk c from its 8 grid rows g (bytes -1, 0, 1) and the
 * groups whose shift is -1/8 (bit k: group k): eight times a value,
 * 8 g +- 1 (odd, |.| <= 9), as magnitude and sign, so that the factor 1/8
 * joins d and the kernel is the one of the other types. */
static inline void iq1_values(zblock *z, int c, __m512i g, __mmask8 neg_delta) {
    /* index g + 1 (+ 3 for a -1/8 shift) -> 8 g + shift */
    const __m512i table = _mm512_broadcast_i32x4(_mm_setr_epi8(-7, 1, 9, -9, -1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
    const __m512i ix = _mm512_add_epi8(_mm512_add_epi8(g, _mm512_set1_epi8(1)),
                                       _mm512_maskz_mov_epi64(neg_delta, _mm512_set1_epi8(3)));
    const __m512i v = _mm512_shuffle_epi8(table, ix);
    z->neg[c] = _mm512_movepi8_mask(v);
    z->g[c] = _mm512_abs_epi8(v);
}

/* The 64 sign bits of two IQ2_XXS / IQ3_XXS sub-blocks from their u32s
 * (4 x 7 stored bits each, under the scale): the 56 bits spread to 8 bytes,
 * then each byte's parity bit (iq_parity_signs). */
static inline uint64_t ksigns8(uint32_t s0, uint32_t s1) {
    const uint64_t x = (s0 & 0x0fffffffu) | (uint64_t)(s1 & 0x0fffffffu) << 28;
    return iq_parity_signs(_pdep_u64(x, 0x7f7f7f7f7f7f7f7fULL));
}

static inline uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void unpack(int type, const uint8_t *blk, zblock *z) {
    const float d = f16_to_f32(iq_rd16(blk));
    const uint8_t *q = blk + 2;
    z->d = 0;
    switch (type) {
    case QT_IQ2_XXS: { /* per 32: 4 index bytes, then u32 of 4 x 7 sign bits and the scale */
        const __m128i pick = _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, -1, -1, -1, -1, -1, -1, -1, -1);
        z->d = d * 0.125f;
        for (int c = 0; c < 4; c++, q += 16) {
            const __m512i ix = _mm512_cvtepu8_epi64(_mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)q), pick));
            z->g[c] = _mm512_i64gather_epi64(ix, (const void *)iq2xxs_grid, 8);
            z->neg[c] = ksigns8(iq_rd32(q + 4), iq_rd32(q + 12));
        }
        /* the scales: the top 4 bits of each sub-block's 8 bytes */
        pair_scales(dup_scales(_mm512_cvtepi64_epi32(_mm512_srli_epi64(_mm512_loadu_si512(blk + 2), 60))), z);
        break;
    }
    case QT_IQ2_XS: { /* u16 per 8: 9-bit index, 7 sign bits */
        z->d = d * 0.125f;
        for (int c = 0; c < 4; c++, q += 16) {
            const __m128i v = _mm_loadu_si128((const __m128i *)q);
            const __m512i ix = _mm512_cvtepu16_epi64(_mm_and_si128(v, _mm_set1_epi16(511)));
            z->g[c] = _mm512_i64gather_epi64(ix, (const void *)iq2xs_grid, 8);
            const __m128i s7 = _mm_packus_epi16(_mm_srli_epi16(v, 9), _mm_setzero_si128());
            z->neg[c] = iq_parity_signs((uint64_t)_mm_cvtsi128_si64(s7));
        }
        pair_scales(nibble_scales(blk + 66), z);
        break;
    }
    case QT_IQ2_S: { /* qs[32] low index bits, signs[32], qh[8] (2 bits a group), scales[8] */
        const __m512i shift = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
        z->d = d * 0.125f;
        for (int c = 0; c < 4; c++) {
            const __m512i lo = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(q + 8 * c)));
            const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(iq_rd16(q + 64 + 2 * c)), shift),
                                                _mm512_set1_epi64(3));
            z->g[c] = _mm512_i64gather_epi64(_mm512_or_si512(lo, _mm512_slli_epi64(hi, 8)), (const void *)iq2s_grid, 8);
            z->neg[c] = rd64(q + 32 + 8 * c);
        }
        pair_scales(nibble_scales(blk + 74), z);
        break;
    }
    case QT_IQ3_XXS: { /* qs[64] indices of 4, then u32 per 32 as IQ2_XXS */
        z->d = d * 0.25f;
        for (int c = 0; c < 4; c++) {
            const __m512i ix = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 16 * c)));
            z->g[c] = _mm512_i32gather_epi32(ix, (const void *)iq3xxs_grid, 4);
            z->neg[c] = ksigns8(iq_rd32(q + 64 + 8 * c), iq_rd32(q + 68 + 8 * c));
        }
        pair_scales(dup_scales(_mm256_srli_epi32(_mm256_loadu_si256((const __m256i *)(q + 64)), 28)), z);
        break;
    }
    case QT_IQ3_S: { /* qs[64], qh[8] (1 bit a group), signs[32], scales[4] */
        const __m512i shift = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        z->d = d;
        for (int c = 0; c < 4; c++) {
            const __m512i lo = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + 16 * c)));
            const __m512i hi = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(iq_rd16(q + 64 + 2 * c)), shift),
                                                _mm512_set1_epi32(1));
            z->g[c] = _mm512_i32gather_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 8)), (const void *)iq3s_grid, 4);
            z->neg[c] = rd64(q + 72 + 8 * c);
        }
        { /* 8 nibbles (low first), one per 32 values: each the scale of 2 groups of 16 */
            uint32_t b4;
            memcpy(&b4, q + 104, 4);
            const __m128i b = _mm_cvtsi32_si128((int)b4), m = _mm_set1_epi8(0xf);
            __m128i n = _mm_unpacklo_epi8(_mm_and_si128(b, m), _mm_and_si128(_mm_srli_epi16(b, 4), m));
            const __m256i w = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(n, n));
            pair_scales(_mm256_add_epi16(_mm256_add_epi16(w, w), _mm256_set1_epi16(1)), z);
        }
        break;
    }
    case QT_IQ1_S: { /* qs[32] low index bits, u16 qh[8]: 4 x 3 index bits, scale, delta sign */
        const __m512i shift = _mm512_setr_epi64(0, 3, 6, 9, 16, 19, 22, 25);
        z->d = d * 0.125f;
        for (int c = 0; c < 4; c++) {
            const uint32_t h = iq_rd32(q + 32 + 4 * c); /* qh of sub-blocks 2c, 2c + 1 */
            const __m512i lo = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(q + 8 * c)));
            const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(h), shift), _mm512_set1_epi64(7));
            const __m512i g = _mm512_i64gather_epi64(_mm512_or_si512(lo, _mm512_slli_epi64(hi, 8)),
                                                     (const void *)iq1s_grid, 8);
            iq1_values(z, c, g, (__mmask8)((h >> 15 & 1 ? 0x0F : 0) | (h >> 31 ? 0xF0 : 0)));
        }
        /* 2 * (qh >> 12 & 7) + 1 per sub-block, each the scale of 2 groups of 16 */
        const __m128i h8 = _mm_and_si128(_mm_srli_epi16(_mm_loadu_si128((const __m128i *)(q + 32)), 12), _mm_set1_epi16(7));
        const __m128i s8 = _mm_add_epi16(_mm_add_epi16(h8, h8), _mm_set1_epi16(1));
        pair_scales(_mm256_setr_m128i(_mm_unpacklo_epi16(s8, s8), _mm_unpackhi_epi16(s8, s8)), z);
        break;
    }
    case QT_IQ1_M: { /* qs[32], qh[16] (a nibble a group: 3 index bits, delta sign), scales[8] */
        const __m512i shift = _mm512_setr_epi64(0, 4, 8, 12, 16, 20, 24, 28);
        const uint8_t *qh = blk + 32, *sc = blk + 48;
        uint16_t w[4];
        memcpy(w, sc, 8);
        z->d = f16_to_f32((uint16_t)(w[0] >> 12 | (w[1] >> 12) << 4 | (w[2] >> 12) << 8 | (w[3] >> 12) << 12)) * 0.125f;
        for (int c = 0; c < 4; c++) {
            const uint32_t h = iq_rd32(qh + 4 * c); /* the nibbles of groups 8c .. 8c + 7 */
            const __m512i lo = _mm512_cvtepu8_epi64(_mm_loadl_epi64((const __m128i *)(blk + 8 * c)));
            const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(_mm512_set1_epi64(h), shift), _mm512_set1_epi64(7));
            const __m512i g = _mm512_i64gather_epi64(_mm512_or_si512(lo, _mm512_slli_epi64(hi, 8)),
                                                     (const void *)iq1s_grid, 8);
            iq1_values(z, c, g, (__mmask8)_pext_u32(h, 0x88888888u)); /* bit 3 of each nibble */
        }
        /* 16 3-bit scales, 4 to a u16 word (bits 0-11) */
        const __m256i words = _mm256_cvtepu16_epi64(_mm_loadl_epi64((const __m128i *)sc)); /* word i in qword i */
        const __m256i spread = _mm256_shuffle_epi8(words, _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 8, 9, 8, 9, 8, 9, 8, 9,
                                                                           0, 1, 0, 1, 0, 1, 0, 1, 8, 9, 8, 9, 8, 9, 8, 9));
        const __m256i f = _mm256_and_si256(
            _mm256_srlv_epi16(spread, _mm256_setr_epi16(0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9, 0, 3, 6, 9)),
            _mm256_set1_epi16(7));
        pair_scales(_mm256_add_epi16(_mm256_add_epi16(f, f), _mm256_set1_epi16(1)), z);
        break;
    }
    default: break;
    }
}

/* Integer sum of one unpacked block with 256 activation codes. */
static inline int32_t block_sum(const zblock *z, const int8_t *q8) {
    __m512i acc = _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
        const __m512i q = _mm512_loadu_si512(q8 + 64 * c);
        const __m512i qs = _mm512_mask_sub_epi8(q, z->neg[c], _mm512_setzero_si512(), q);
        acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(z->g[c], qs), z->sv[c]);
    }
    return _mm512_reduce_add_epi32(acc);
}

void avx512_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (!qt_is_iq(j->type)) {
        ref_qmm_rows(j, r0, r1);
        return;
    }
    const int64_t nb = j->cols / QK_K;
    const size_t bb = (size_t)dtype_block_bytes(dtype_from_ggml(j->type));
    zblock z;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->w_row;
        for (int64_t k = 0; k < nb; k++) {
            unpack(j->type, w + k * bb, &z);
            for (int64_t i = 0; i < j->n; i++) {
                const qx_k *a = (const qx_k *)(j->xq + (size_t)i * j->xq_row) + k;
                const float v = (z.d * a->d) * (float)block_sum(&z, a->qs);
                float *y = &j->y[i * j->rows + r];
                *y = k ? *y + v : v;
            }
        }
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
