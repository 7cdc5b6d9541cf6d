/*
 * quant_iq_avx2.c - the grid i-quants' products on AVX2.
 *
 * IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S: each weight block is unpacked
 * once (quant_iq_decode.h), its sign bits widened to +1 / -1 bytes, and
 * dotted with every row of x. Per 32 values: vpsignb applies the weight
 * signs to the activation codes, vpmaddubsw multiplies the grid magnitudes
 * (unsigned) by them into pairs (at most 2 * 62 * 127: no saturation, Q8_K
 * codes are within [-127, 127]), vpmaddwd weighs the pairs by their
 * 16-value scale into int32. The block's integer sum is exact, so each
 * output is the scalar reference's f32 sum, in the same order. IQ1_S and
 * IQ1_M run on the scalar reference.
 */
#include <immintrin.h>

#include "kernels/quant_iq_decode.h"

/* Sign bits of 32 values (4 bytes) -> 32 bytes of +1 / -1. */
static inline __m256i signs32(const uint8_t *sb) {
    uint32_t bits;
    memcpy(&bits, sb, 4);
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* lane 0: bytes 0, 1 */
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    __m256i neg = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_or_si256(neg, _mm256_set1_epi8(1));
}

/* An unpacked block as the kernel reads it: per 32-value chunk c the
 * magnitudes, the signs as bytes, and the scale of each of its 16 pairs
 * (pairs 0-7: scale 2c, 8-15: 2c + 1). */
typedef struct {
    __m256i g[8], s[8], sc[8];
} avx2_block;

static inline void widen(const iq_block *b, avx2_block *o) {
    for (int c = 0; c < 8; c++) {
        o->g[c] = _mm256_loadu_si256((const __m256i *)(b->g + 32 * c));
        o->s[c] = signs32(b->sb + 4 * c);
        o->sc[c] = _mm256_setr_m128i(_mm_set1_epi16(b->sc[2 * c]), _mm_set1_epi16(b->sc[2 * c + 1]));
    }
}

static inline int32_t block_sum(const avx2_block *b, const int8_t *q8) {
    __m256i acc = _mm256_setzero_si256();
    for (int c = 0; c < 8; c++) {
        const __m256i q = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + 32 * c)), b->s[c]);
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(b->g[c], q), b->sc[c]));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

void avx2_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (!iq_unpacks(j->type)) {
        ref_qmm_rows(j, r0, r1);
        return;
    }
    const int64_t nb = j->cols / QK_K;
    const size_t bb = (size_t)dtype_block_bytes(dtype_from_ggml(j->type));
    iq_block b;
    avx2_block v;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->w_row;
        for (int64_t k = 0; k < nb; k++) {
            iq_unpack(j->type, w + k * bb, &b);
            widen(&b, &v);
            for (int64_t i = 0; i < j->n; i++) {
                const qx_k *a = (const qx_k *)(j->xq + (size_t)i * j->xq_row) + k;
                const float s = (b.d * a->d) * (float)block_sum(&v, a->qs);
                float *y = &j->y[i * j->rows + r];
                *y = k ? *y + s : s;
            }
        }
    }
}
