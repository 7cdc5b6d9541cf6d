/*
 * quant_iq_avx2.c - the grid i-quants' products on AVX2.
 *
 * Every grid i-quant: each weight block is unpacked once into the shape of
 * quant_iq_decode.h, per 32 values in registers (grid rows, sign bits
 * widened to +1 / -1 bytes, scales; IQ1_S / IQ1_M as 8 g +- 1 with vector
 * shuffles), and dotted with every row of x. Per 32 values: vpsignb applies the weight
 * signs to the activation codes, vpmaddubsw multiplies the grid magnitudes
 * (unsigned) by them into pairs (at most 2 * 62 * 127: no saturation, Q8_K
 * codes are within [-127, 127]), vpmaddwd weighs the pairs by their
 * 16-value scale into int32. The block's integer sum is exact, so each
 * output is the scalar reference's f32 sum, in the same order. Decode
 * (one row of x) skips the unpacked block: iq_chunk's registers go
 * straight into the products.
 */
#include <immintrin.h>

#include "kernels/quant_iq_decode.h"

#define AI static inline __attribute__((always_inline))

/* Sign bits of 32 values -> 32 bytes of +1 / -1. */
static inline __m256i signs32(uint32_t bits) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* lane 0: bytes 0, 1 */
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
    __m256i neg = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_or_si256(neg, _mm256_set1_epi8(1));
}

static inline long long row8(const uint8_t *row) {
    long long v;
    memcpy(&v, row, 8);
    return v;
}
static inline int row4(const uint8_t *row) {
    int v;
    memcpy(&v, row, 4);
    return v;
}

/* What a block's chunks share, made once per block: the pairs' odd scales
 * 2 * nibble + 1 of IQ2_XS / IQ2_S (lo: scales 0..7 in both lanes, hi:
 * 8..15, int16), IQ1_M's four scale words. */
typedef struct {
    __m256i lo, hi;
    uint16_t w[4];
} iq_prep;

/* The block's factor d (its f16 scale times the type's power of two; IQ1_*:
 * 1/8 for their 8 g +- 1) and its shared scales. */
AI float iq_block(const int T, const uint8_t *blk, iq_prep *p) {
    if (T == QT_IQ2_XS || T == QT_IQ2_S) {
        const __m128i v = _mm_loadl_epi64((const __m128i *)(blk + (T == QT_IQ2_XS ? 66 : 74))), m4 = _mm_set1_epi8(0x0F);
        __m128i b = _mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
        b = _mm_add_epi8(_mm_add_epi8(b, b), _mm_set1_epi8(1));
        const __m256i w = _mm256_cvtepu8_epi16(b);
        p->lo = _mm256_permute2x128_si256(w, w, 0x00);
        p->hi = _mm256_permute2x128_si256(w, w, 0x11);
    }
    if (T == QT_IQ1_M) { /* the f16 d in the words' top nibbles */
        memcpy(p->w, blk + 48, 8);
        const uint16_t *w = p->w;
        return _cvtsh_ss((uint16_t)(w[0] >> 12 | (w[1] >> 12) << 4 | (w[2] >> 12) << 8 | (w[3] >> 12) << 12)) * 0.125f;
    }
    return _cvtsh_ss(iq_rd16(blk)) * (T == QT_IQ3_S ? 1.0f : T == QT_IQ3_XXS ? 0.25f : 0.125f);
}

/* [s(2c) x 8 | s(2c+1) x 8] from iq_prep's lo / hi. */
AI __m256i pick_scales(const iq_prep *p, int c) {
    const char a = (char)(4 * (c & 3)), b = (char)(a + 1), e = (char)(a + 2), f = (char)(a + 3);
    const __m256i m = _mm256_setr_epi8(a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, e, f, e, f, e, f, e, f, e, f,
                                       e, f, e, f, e, f);
    return _mm256_shuffle_epi8(c < 4 ? p->lo : p->hi, m);
}

/* iq_ksigns8 of the 4 fields of 7 bits in ss: the 7 stored signs of 8
 * values with their 8th, as multipliers, looked up rather than computed. */
AI __m256i ks4(uint32_t ss) {
    return _mm256_setr_epi64x(row8((const uint8_t *)iq_ksigns8[ss & 127]), row8((const uint8_t *)iq_ksigns8[ss >> 7 & 127]),
                              row8((const uint8_t *)iq_ksigns8[ss >> 14 & 127]),
                              row8((const uint8_t *)iq_ksigns8[ss >> 21 & 127]));
}

/* IQ1_S / IQ1_M: from their grid rows (bytes -1, 0, 1) and, per group, 3
 * in each byte where its shift is -1/8 (else 0): eight times a value, 8 g
 * +- 1, as magnitude and sign, so the factor 1/8 joins d. */
AI void iq1_values(__m256i *mag, __m256i *sgn, __m256i g, __m256i shift3) {
    const __m256i table = _mm256_setr_epi8(-7, 1, 9, -9, -1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* g + 1 (+ 3) */
                                           -7, 1, 9, -9, -1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i v = _mm256_shuffle_epi8(table, _mm256_add_epi8(_mm256_add_epi8(g, _mm256_set1_epi8(1)), shift3));
    *mag = _mm256_abs_epi8(v);
    *sgn = _mm256_or_si256(_mm256_cmpgt_epi8(_mm256_setzero_si256(), v), _mm256_set1_epi8(1));
}

#define IQ1_ROW(ix) row8((const uint8_t *)iq1s_grid[ix])
#define THREES 0x0303030303030303LL

/* Chunk c (values 32c .. 32c + 31) of a block of any of the seven types
 * (quant.h's layouts): the magnitudes *g, the signs *s as +1 / -1 bytes,
 * and the scale of each of its 16 pairs *sc (pairs 0-7: scale 2c, 8-15:
 * 2c + 1). */
AI void iq_chunk(const int T, const uint8_t *blk, const iq_prep *p, int c, __m256i *g, __m256i *s, __m256i *sc) {
    const uint8_t *q = blk + 2;
    switch (T) {
    case QT_IQ2_XXS: { /* per 32: 4 index bytes, u32 of 4 x 7 sign bits and the scale */
        const uint8_t *e = q + 8 * c;
        const uint32_t ss = iq_rd32(e + 4);
        *g = _mm256_setr_epi64x(row8(iq2xxs_grid[e[0]]), row8(iq2xxs_grid[e[1]]), row8(iq2xxs_grid[e[2]]),
                                row8(iq2xxs_grid[e[3]]));
        *s = ks4(ss);
        *sc = _mm256_set1_epi16((short)(2 * (ss >> 28) + 1));
        return;
    }
    case QT_IQ2_XS: { /* u16 per 8: 9-bit index, 7 sign bits; scales[8] after them */
        uint16_t v[4];
        memcpy(v, q + 8 * c, 8);
        *g = _mm256_setr_epi64x(row8(iq2xs_grid[v[0] & 511]), row8(iq2xs_grid[v[1] & 511]), row8(iq2xs_grid[v[2] & 511]),
                                row8(iq2xs_grid[v[3] & 511]));
        *s = _mm256_setr_epi64x(row8((const uint8_t *)iq_ksigns8[v[0] >> 9]), row8((const uint8_t *)iq_ksigns8[v[1] >> 9]),
                                row8((const uint8_t *)iq_ksigns8[v[2] >> 9]), row8((const uint8_t *)iq_ksigns8[v[3] >> 9]));
        *sc = pick_scales(p, c);
        return;
    }
    case QT_IQ2_S: { /* qs[32] low index bits, signs[32], qh[8] (2 bits a group), scales[8] */
        const uint8_t *e = q + 4 * c;
        const int h = blk[66 + c];
        *g = _mm256_setr_epi64x(row8(iq2s_grid[e[0] | (h << 8 & 0x300)]), row8(iq2s_grid[e[1] | (h << 6 & 0x300)]),
                                row8(iq2s_grid[e[2] | (h << 4 & 0x300)]), row8(iq2s_grid[e[3] | (h << 2 & 0x300)]));
        *s = signs32(iq_rd32(e + 32));
        *sc = pick_scales(p, c);
        return;
    }
    case QT_IQ3_XXS: { /* qs[64] indices of 4, then u32 per 32 as IQ2_XXS */
        const uint8_t *e = q + 8 * c;
        const uint32_t ss = iq_rd32(blk + 66 + 4 * c);
        *g = _mm256_setr_epi32(row4(iq3xxs_grid[e[0]]), row4(iq3xxs_grid[e[1]]), row4(iq3xxs_grid[e[2]]),
                               row4(iq3xxs_grid[e[3]]), row4(iq3xxs_grid[e[4]]), row4(iq3xxs_grid[e[5]]),
                               row4(iq3xxs_grid[e[6]]), row4(iq3xxs_grid[e[7]]));
        *s = ks4(ss);
        *sc = _mm256_set1_epi16((short)(2 * (ss >> 28) + 1));
        return;
    }
    case QT_IQ3_S: { /* qs[64], qh[8] (1 bit a group of 4), signs[32], scales[4] */
        const uint8_t *e = q + 8 * c;
        const int h = blk[66 + c];
        *g = _mm256_setr_epi32(row4(iq3s_grid[e[0] | (h << 8 & 256)]), row4(iq3s_grid[e[1] | (h << 7 & 256)]),
                               row4(iq3s_grid[e[2] | (h << 6 & 256)]), row4(iq3s_grid[e[3] | (h << 5 & 256)]),
                               row4(iq3s_grid[e[4] | (h << 4 & 256)]), row4(iq3s_grid[e[5] | (h << 3 & 256)]),
                               row4(iq3s_grid[e[6] | (h << 2 & 256)]), row4(iq3s_grid[e[7] | (h << 1 & 256)]));
        *s = signs32(iq_rd32(blk + 74 + 4 * c));
        *sc = _mm256_set1_epi16((short)(1 + 2 * (blk[106 + c / 2] >> 4 * (c % 2) & 0xf)));
        return;
    }
    case QT_IQ1_S: { /* qs[32], u16 qh[8]: 4 x 3 index bits, scale, delta sign */
        const int h = iq_rd16(blk + 34 + 2 * c);
        const uint8_t *e = blk + 2 + 4 * c;
        const __m256i r = _mm256_setr_epi64x(IQ1_ROW(e[0] | (h << 8 & 0x700)), IQ1_ROW(e[1] | (h << 5 & 0x700)),
                                             IQ1_ROW(e[2] | (h << 2 & 0x700)), IQ1_ROW(e[3] | (h >> 1 & 0x700)));
        iq1_values(g, s, r, _mm256_set1_epi64x(THREES * (h >> 15)));
        *sc = _mm256_set1_epi16((short)(2 * (h >> 12 & 7) + 1));
        return;
    }
    default: { /* IQ1_M: qs[32], qh[16] (a nibble a group: 3 index bits, delta sign),
                * scales[8]: 3 bits per 16 values (4 to a u16 word, iq_prep's) */
        const int h = iq_rd16(blk + 32 + 2 * c); /* the nibbles of groups 4c .. 4c + 3 */
        const uint8_t *e = blk + 4 * c;
        const __m256i r = _mm256_setr_epi64x(IQ1_ROW(e[0] | (h << 8 & 0x700)), IQ1_ROW(e[1] | (h << 4 & 0x700)),
                                             IQ1_ROW(e[2] | (h & 0x700)), IQ1_ROW(e[3] | (h >> 4 & 0x700)));
        const __m256i sh = _mm256_setr_epi64x(THREES * (h >> 3 & 1), THREES * (h >> 7 & 1), THREES * (h >> 11 & 1),
                                              THREES * (h >> 15 & 1));
        iq1_values(g, s, r, sh);
        const int s0 = p->w[c / 2] >> (6 * (c % 2)) & 7, s1 = p->w[c / 2] >> (6 * (c % 2) + 3) & 7;
        *sc = _mm256_setr_m128i(_mm_set1_epi16((short)(2 * s0 + 1)), _mm_set1_epi16((short)(2 * s1 + 1)));
        return;
    }
    }
}
#undef IQ1_ROW
#undef THREES

/* One chunk's products with 32 codes of x: vpsignb puts the weight signs
 * on x, vpmaddubsw pairs them with the magnitudes, vpmaddwd scales. */
AI __m256i dot32(__m256i g, __m256i s, __m256i sc, const int8_t *q8) {
    const __m256i q = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)q8), s);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(g, q), sc);
}

AI int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* An unpacked block as the few-row path reads it, per chunk c. */
typedef struct {
    __m256i g[8], s[8], sc[8];
} avx2_block;

/* The integer sum of one block against 256 codes of x, straight from the
 * block's bytes. */
AI int32_t block_dot(const int T, const uint8_t *blk, const iq_prep *p, const int8_t *q8) {
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        __m256i g, s, sc;
        iq_chunk(T, blk, p, c, &g, &s, &sc);
        acc = _mm256_add_epi32(acc, dot32(g, s, sc, q8 + 32 * c));
    }
    return hsum8i(acc);
}

/* The rows [r0, r1) of a job of type T: one row of x takes each block from
 * its bytes straight into the products (the unpacked block kept in memory
 * cost more than it saved); several rows unpack it once into an
 * avx2_block and dot it with each. Either way each block's integer sum
 * and f32 steps are the scalar reference's. */
AI void rows_iq(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / QK_K;
    const size_t bb = (size_t)dtype_block_bytes(dtype_from_ggml(T));
    if (j->n == 1) {
        const qx_k *a = (const qx_k *)j->xq;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *w = j->W + (size_t)r * j->w_row;
            float y = 0;
            for (int64_t k = 0; k < nb; k++) {
                const uint8_t *blk = w + k * bb;
                _mm_prefetch((const char *)blk + 4 * bb, _MM_HINT_T0);
                iq_prep p;
                const float d = iq_block(T, blk, &p);
                const float v = (d * a[k].d) * (float)block_dot(T, blk, &p, a[k].qs);
                y = k ? y + v : v;
            }
            j->y[r] = y;
        }
        return;
    }
    avx2_block o;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->w_row;
        for (int64_t k = 0; k < nb; k++) {
            const uint8_t *blk = w + k * bb;
            iq_prep p;
            const float d = iq_block(T, blk, &p);
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) iq_chunk(T, blk, &p, c, &o.g[c], &o.s[c], &o.sc[c]);
            for (int64_t i = 0; i < j->n; i++) {
                const qx_k *a = (const qx_k *)(j->xq + (size_t)i * j->xq_row) + k;
                __m256i acc = _mm256_setzero_si256();
                for (int c = 0; c < 8; c++) acc = _mm256_add_epi32(acc, dot32(o.g[c], o.s[c], o.sc[c], a->qs + 32 * c));
                const float v = (d * a->d) * (float)hsum8i(acc);
                float *y = &j->y[i * j->rows + r];
                *y = k ? *y + v : v;
            }
        }
    }
}

#define IQ_ROWS(T, NAME) \
    static void rows_##NAME(const qmm_job *j, int64_t r0, int64_t r1) { rows_iq(T, j, r0, r1); }
IQ_ROWS(QT_IQ2_XXS, iq2_xxs)
IQ_ROWS(QT_IQ2_XS, iq2_xs)
IQ_ROWS(QT_IQ2_S, iq2_s)
IQ_ROWS(QT_IQ3_XXS, iq3_xxs)
IQ_ROWS(QT_IQ3_S, iq3_s)
IQ_ROWS(QT_IQ1_S, iq1_s)
IQ_ROWS(QT_IQ1_M, iq1_m)

void avx2_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_IQ2_XXS: rows_iq2_xxs(j, r0, r1); break;
    case QT_IQ2_XS: rows_iq2_xs(j, r0, r1); break;
    case QT_IQ2_S: rows_iq2_s(j, r0, r1); break;
    case QT_IQ3_XXS: rows_iq3_xxs(j, r0, r1); break;
    case QT_IQ3_S: rows_iq3_s(j, r0, r1); break;
    case QT_IQ1_S: rows_iq1_s(j, r0, r1); break;
    case QT_IQ1_M: rows_iq1_m(j, r0, r1); break;
    default: ref_qmm_rows(j, r0, r1); break;
    }
}
