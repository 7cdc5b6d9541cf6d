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
 * (one row of x) skips the unpacked block: each block goes from its bytes
 * straight into the products (fused_block below).
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

/* 2 * nibble + 1 of byte b, low nibble for pairs 0-7, high for 8-15. */
static inline __m256i nibble_scales(uint8_t b) {
    return _mm256_setr_m128i(_mm_set1_epi16((short)(2 * (b & 0xf) + 1)), _mm_set1_epi16((short)(2 * (b >> 4) + 1)));
}

/* An unpacked block as the kernel reads it: per 32-value chunk c the
 * magnitudes, the signs as bytes, and the scale of each of its 16 pairs
 * (pairs 0-7: scale 2c, 8-15: 2c + 1). */
typedef struct {
    __m256i g[8], s[8], sc[8];
} avx2_block;

/* IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S (quant.h's layouts): per 32
 * values the grid rows, the sign bits and the scales, straight into
 * registers; returns d times the type's power of two. */
static inline float unpack(int type, const uint8_t *blk, avx2_block *o) {
    const float d = f16_to_f32(iq_rd16(blk));
    const uint8_t *q = blk + 2;
    switch (type) {
    case QT_IQ2_XXS: /* per 32: 4 index bytes, u32 of 4 x 7 sign bits and the scale */
        for (int c = 0; c < 8; c++, q += 8) {
            const uint32_t ss = iq_rd32(q + 4);
            o->g[c] = _mm256_setr_epi64x(row8(iq2xxs_grid[q[0]]), row8(iq2xxs_grid[q[1]]), row8(iq2xxs_grid[q[2]]),
                                         row8(iq2xxs_grid[q[3]]));
            o->s[c] = signs32(iq_ksigns4(ss));
            o->sc[c] = _mm256_set1_epi16((short)(2 * (ss >> 28) + 1));
        }
        return d * 0.125f;
    case QT_IQ2_XS: /* u16 per 8: 9-bit index, 7 sign bits; scales[8] after them */
        for (int c = 0; c < 8; c++, q += 8) {
            uint16_t v[4];
            memcpy(v, q, 8);
            o->g[c] = _mm256_setr_epi64x(row8(iq2xs_grid[v[0] & 511]), row8(iq2xs_grid[v[1] & 511]),
                                         row8(iq2xs_grid[v[2] & 511]), row8(iq2xs_grid[v[3] & 511]));
            const uint32_t b = (uint32_t)(v[0] >> 9 | (v[1] >> 9) << 8 | (v[2] >> 9) << 16 | (uint32_t)(v[3] >> 9) << 24);
            o->s[c] = signs32((uint32_t)iq_parity_signs(b));
            o->sc[c] = nibble_scales(blk[66 + c]);
        }
        return d * 0.125f;
    case QT_IQ2_S: /* qs[32] low index bits, signs[32], qh[8] (2 bits a group), scales[8] */
        for (int c = 0; c < 8; c++, q += 4) {
            const int h = blk[66 + c];
            o->g[c] = _mm256_setr_epi64x(row8(iq2s_grid[q[0] | (h << 8 & 0x300)]), row8(iq2s_grid[q[1] | (h << 6 & 0x300)]),
                                         row8(iq2s_grid[q[2] | (h << 4 & 0x300)]), row8(iq2s_grid[q[3] | (h << 2 & 0x300)]));
            o->s[c] = signs32(iq_rd32(q + 32));
            o->sc[c] = nibble_scales(blk[74 + c]);
        }
        return d * 0.125f;
    case QT_IQ3_XXS: /* qs[64] indices of 4, then u32 per 32 as IQ2_XXS */
        for (int c = 0; c < 8; c++, q += 8) {
            const uint32_t ss = iq_rd32(blk + 66 + 4 * c);
            o->g[c] = _mm256_setr_epi32(row4(iq3xxs_grid[q[0]]), row4(iq3xxs_grid[q[1]]), row4(iq3xxs_grid[q[2]]),
                                        row4(iq3xxs_grid[q[3]]), row4(iq3xxs_grid[q[4]]), row4(iq3xxs_grid[q[5]]),
                                        row4(iq3xxs_grid[q[6]]), row4(iq3xxs_grid[q[7]]));
            o->s[c] = signs32(iq_ksigns4(ss));
            o->sc[c] = _mm256_set1_epi16((short)(2 * (ss >> 28) + 1));
        }
        return d * 0.25f;
    case QT_IQ3_S: /* qs[64], qh[8] (1 bit a group of 4), signs[32], scales[4] */
        for (int c = 0; c < 8; c++, q += 8) {
            const int h = blk[66 + c];
            o->g[c] = _mm256_setr_epi32(
                row4(iq3s_grid[q[0] | (h << 8 & 256)]), row4(iq3s_grid[q[1] | (h << 7 & 256)]),
                row4(iq3s_grid[q[2] | (h << 6 & 256)]), row4(iq3s_grid[q[3] | (h << 5 & 256)]),
                row4(iq3s_grid[q[4] | (h << 4 & 256)]), row4(iq3s_grid[q[5] | (h << 3 & 256)]),
                row4(iq3s_grid[q[6] | (h << 2 & 256)]), row4(iq3s_grid[q[7] | (h << 1 & 256)]));
            o->s[c] = signs32(iq_rd32(blk + 74 + 4 * c));
            o->sc[c] = _mm256_set1_epi16((short)(1 + 2 * (blk[106 + c / 2] >> 4 * (c % 2) & 0xf)));
        }
        return d;
    default: return 0;
    }
}

/* IQ1_S / IQ1_M: chunk c of 4 groups from their grid rows (bytes -1, 0, 1)
 * and, per group, 3 in each byte where its shift is -1/8 (else 0): eight
 * times a value, 8 g +- 1, as magnitude and sign, so the factor 1/8 joins d. */
static inline void iq1_chunk(__m256i *mag, __m256i *sgn, __m256i g, __m256i shift3) {
    const __m256i table = _mm256_setr_epi8(-7, 1, 9, -9, -1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* g + 1 (+ 3) */
                                           -7, 1, 9, -9, -1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i v = _mm256_shuffle_epi8(table, _mm256_add_epi8(_mm256_add_epi8(g, _mm256_set1_epi8(1)), shift3));
    *mag = _mm256_abs_epi8(v);
    *sgn = _mm256_or_si256(_mm256_cmpgt_epi8(_mm256_setzero_si256(), v), _mm256_set1_epi8(1));
}

#define IQ1_ROW(ix) row8((const uint8_t *)iq1s_grid[ix])
#define THREES 0x0303030303030303LL

static inline void unpack_iq1(int type, const uint8_t *blk, avx2_block *o, float *d) {
    if (type == QT_IQ1_S) { /* qs[32], u16 qh[8]: 4 x 3 index bits, scale, delta sign */
        *d = f16_to_f32(iq_rd16(blk)) * 0.125f;
        for (int c = 0; c < 8; c++) {
            const int h = iq_rd16(blk + 34 + 2 * c);
            const uint8_t *q = blk + 2 + 4 * c;
            const __m256i g = _mm256_setr_epi64x(IQ1_ROW(q[0] | (h << 8 & 0x700)), IQ1_ROW(q[1] | (h << 5 & 0x700)),
                                                 IQ1_ROW(q[2] | (h << 2 & 0x700)), IQ1_ROW(q[3] | (h >> 1 & 0x700)));
            iq1_chunk(&o->g[c], &o->s[c], g, _mm256_set1_epi64x(THREES * (h >> 15)));
            o->sc[c] = _mm256_set1_epi16((short)(2 * (h >> 12 & 7) + 1));
        }
        return;
    }
    /* IQ1_M: qs[32], qh[16] (a nibble a group: 3 index bits, delta sign),
     * scales[8]: 3 bits per 16 values (4 to a u16 word) and the f16 d in the
     * words' top nibbles */
    uint16_t w[4];
    memcpy(w, blk + 48, 8);
    *d = f16_to_f32((uint16_t)(w[0] >> 12 | (w[1] >> 12) << 4 | (w[2] >> 12) << 8 | (w[3] >> 12) << 12)) * 0.125f;
    for (int c = 0; c < 8; c++) {
        const int h = iq_rd16(blk + 32 + 2 * c); /* the nibbles of groups 4c .. 4c + 3 */
        const uint8_t *q = blk + 4 * c;
        const __m256i g = _mm256_setr_epi64x(IQ1_ROW(q[0] | (h << 8 & 0x700)), IQ1_ROW(q[1] | (h << 4 & 0x700)),
                                             IQ1_ROW(q[2] | (h & 0x700)), IQ1_ROW(q[3] | (h >> 4 & 0x700)));
        const __m256i sh = _mm256_setr_epi64x(THREES * (h >> 3 & 1), THREES * (h >> 7 & 1), THREES * (h >> 11 & 1),
                                              THREES * (h >> 15 & 1));
        iq1_chunk(&o->g[c], &o->s[c], g, sh);
        const int s0 = w[c / 2] >> (6 * (c % 2)) & 7, s1 = w[c / 2] >> (6 * (c % 2) + 3) & 7;
        o->sc[c] = _mm256_setr_m128i(_mm_set1_epi16((short)(2 * s0 + 1)), _mm_set1_epi16((short)(2 * s1 + 1)));
    }
}
#undef IQ1_ROW
#undef THREES

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

/* ------------------------------------------------------------ decode */

/* Decode (one row of x) takes each block straight from its bytes into the
 * products, without the unpacked block in memory: per 32 values the grid
 * rows, the signs (IQ2_XXS, IQ2_XS, IQ3_XXS: looked up as 8 multipliers
 * per 7 stored bits, iq_ksigns8, instead of computing their parity and
 * widening) and the pairs' scales (IQ2_XS, IQ2_S: made for the
 * whole block once, one in-lane vpshufb per 32 values after). The block's
 * integer sum and the f32 steps are the ones above, so the reference's
 * bits. */

AI int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AI __m256i ks4(uint32_t ss) { /* iq_ksigns8 of the 4 fields of 7 bits in ss */
    return _mm256_setr_epi64x(row8((const uint8_t *)iq_ksigns8[ss & 127]), row8((const uint8_t *)iq_ksigns8[ss >> 7 & 127]),
                              row8((const uint8_t *)iq_ksigns8[ss >> 14 & 127]),
                              row8((const uint8_t *)iq_ksigns8[ss >> 21 & 127]));
}

/* 16 odd scales 2 * nibble + 1 from 8 bytes (pairs 2c, 2c + 1 in byte c):
 * *lo has scales 0..7 in both lanes, *hi scales 8..15, as int16. */
AI void nibble_scales16(const uint8_t *sc8, __m256i *lo, __m256i *hi) {
    const __m128i v = _mm_loadl_epi64((const __m128i *)sc8), m4 = _mm_set1_epi8(0x0F);
    __m128i b = _mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    b = _mm_add_epi8(_mm_add_epi8(b, b), _mm_set1_epi8(1));
    const __m256i w = _mm256_cvtepu8_epi16(b);
    *lo = _mm256_permute2x128_si256(w, w, 0x00);
    *hi = _mm256_permute2x128_si256(w, w, 0x11);
}

/* [s(2c) x 8 | s(2c+1) x 8] from nibble_scales16's registers. */
AI __m256i pick_scales(__m256i lo, __m256i hi, int c) {
    const char a = (char)(4 * (c & 3)), b = (char)(a + 1), e = (char)(a + 2), f = (char)(a + 3);
    const __m256i m = _mm256_setr_epi8(a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, e, f, e, f, e, f, e, f, e, f,
                                       e, f, e, f, e, f);
    return _mm256_shuffle_epi8(c < 4 ? lo : hi, m);
}

AI __m256i dot32(__m256i g, __m256i s, __m256i sc, const int8_t *q8) {
    const __m256i q = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)q8), s);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(g, q), sc);
}

/* The integer sum of one block against 256 codes q8; *d as unpack's. */
AI int32_t fused_block(const int T, const uint8_t *blk, const int8_t *q8, float *d) {
    __m256i acc = _mm256_setzero_si256();
    if (T == QT_IQ1_S || T == QT_IQ1_M) {
        __m256i mag, sgn;
        if (T == QT_IQ1_S) {
            *d = _cvtsh_ss(iq_rd16(blk)) * 0.125f;
#pragma GCC unroll 8
            for (int c = 0; c < 8; c++) {
                const int h = iq_rd16(blk + 34 + 2 * c);
                const uint8_t *q = blk + 2 + 4 * c;
                const __m256i g = _mm256_setr_epi64x(row8((const uint8_t *)iq1s_grid[q[0] | (h << 8 & 0x700)]),
                                                     row8((const uint8_t *)iq1s_grid[q[1] | (h << 5 & 0x700)]),
                                                     row8((const uint8_t *)iq1s_grid[q[2] | (h << 2 & 0x700)]),
                                                     row8((const uint8_t *)iq1s_grid[q[3] | (h >> 1 & 0x700)]));
                iq1_chunk(&mag, &sgn, g, _mm256_set1_epi64x(0x0303030303030303LL * (h >> 15)));
                acc = _mm256_add_epi32(acc, dot32(mag, sgn, _mm256_set1_epi16((short)(2 * (h >> 12 & 7) + 1)), q8 + 32 * c));
            }
            return hsum8i(acc);
        }
        uint16_t w[4];
        memcpy(w, blk + 48, 8);
        *d = _cvtsh_ss((uint16_t)(w[0] >> 12 | (w[1] >> 12) << 4 | (w[2] >> 12) << 8 | (w[3] >> 12) << 12)) * 0.125f;
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            const int h = iq_rd16(blk + 32 + 2 * c);
            const uint8_t *q = blk + 4 * c;
            const __m256i g = _mm256_setr_epi64x(row8((const uint8_t *)iq1s_grid[q[0] | (h << 8 & 0x700)]),
                                                 row8((const uint8_t *)iq1s_grid[q[1] | (h << 4 & 0x700)]),
                                                 row8((const uint8_t *)iq1s_grid[q[2] | (h & 0x700)]),
                                                 row8((const uint8_t *)iq1s_grid[q[3] | (h >> 4 & 0x700)]));
            const long long t = 0x0303030303030303LL;
            const __m256i sh = _mm256_setr_epi64x(t * (h >> 3 & 1), t * (h >> 7 & 1), t * (h >> 11 & 1), t * (h >> 15 & 1));
            iq1_chunk(&mag, &sgn, g, sh);
            const int s0 = w[c / 2] >> (6 * (c % 2)) & 7, s1 = w[c / 2] >> (6 * (c % 2) + 3) & 7;
            const __m256i sc = _mm256_setr_m128i(_mm_set1_epi16((short)(2 * s0 + 1)), _mm_set1_epi16((short)(2 * s1 + 1)));
            acc = _mm256_add_epi32(acc, dot32(mag, sgn, sc, q8 + 32 * c));
        }
        return hsum8i(acc);
    }
    const uint8_t *q = blk + 2;
    __m256i slo = _mm256_setzero_si256(), shi = _mm256_setzero_si256();
    if (T == QT_IQ2_XS) nibble_scales16(blk + 66, &slo, &shi);
    if (T == QT_IQ2_S) nibble_scales16(blk + 74, &slo, &shi);
#pragma GCC unroll 8
    for (int c = 0; c < 8; c++) {
        __m256i g, sg, sc;
        if (T == QT_IQ2_XXS) {
            const uint8_t *p = q + 8 * c;
            const uint32_t ss = iq_rd32(p + 4);
            g = _mm256_setr_epi64x(row8(iq2xxs_grid[p[0]]), row8(iq2xxs_grid[p[1]]), row8(iq2xxs_grid[p[2]]),
                                   row8(iq2xxs_grid[p[3]]));
            sg = ks4(ss);
            sc = _mm256_set1_epi16((short)(2 * (ss >> 28) + 1));
        } else if (T == QT_IQ2_XS) {
            uint16_t v[4];
            memcpy(v, q + 8 * c, 8);
            g = _mm256_setr_epi64x(row8(iq2xs_grid[v[0] & 511]), row8(iq2xs_grid[v[1] & 511]),
                                   row8(iq2xs_grid[v[2] & 511]), row8(iq2xs_grid[v[3] & 511]));
            sg = _mm256_setr_epi64x(row8((const uint8_t *)iq_ksigns8[v[0] >> 9]), row8((const uint8_t *)iq_ksigns8[v[1] >> 9]),
                                    row8((const uint8_t *)iq_ksigns8[v[2] >> 9]), row8((const uint8_t *)iq_ksigns8[v[3] >> 9]));
            sc = pick_scales(slo, shi, c);
        } else if (T == QT_IQ2_S) {
            const uint8_t *p = q + 4 * c;
            const int h = blk[66 + c];
            g = _mm256_setr_epi64x(row8(iq2s_grid[p[0] | (h << 8 & 0x300)]), row8(iq2s_grid[p[1] | (h << 6 & 0x300)]),
                                   row8(iq2s_grid[p[2] | (h << 4 & 0x300)]), row8(iq2s_grid[p[3] | (h << 2 & 0x300)]));
            sg = signs32(iq_rd32(p + 32));
            sc = pick_scales(slo, shi, c);
        } else if (T == QT_IQ3_XXS) {
            const uint8_t *p = q + 8 * c;
            const uint32_t ss = iq_rd32(blk + 66 + 4 * c);
            g = _mm256_setr_epi32(row4(iq3xxs_grid[p[0]]), row4(iq3xxs_grid[p[1]]), row4(iq3xxs_grid[p[2]]),
                                  row4(iq3xxs_grid[p[3]]), row4(iq3xxs_grid[p[4]]), row4(iq3xxs_grid[p[5]]),
                                  row4(iq3xxs_grid[p[6]]), row4(iq3xxs_grid[p[7]]));
            sg = ks4(ss);
            sc = _mm256_set1_epi16((short)(2 * (ss >> 28) + 1));
        } else { /* IQ3_S */
            const uint8_t *p = q + 8 * c;
            const int h = blk[66 + c];
            g = _mm256_setr_epi32(row4(iq3s_grid[p[0] | (h << 8 & 256)]), row4(iq3s_grid[p[1] | (h << 7 & 256)]),
                                  row4(iq3s_grid[p[2] | (h << 6 & 256)]), row4(iq3s_grid[p[3] | (h << 5 & 256)]),
                                  row4(iq3s_grid[p[4] | (h << 4 & 256)]), row4(iq3s_grid[p[5] | (h << 3 & 256)]),
                                  row4(iq3s_grid[p[6] | (h << 2 & 256)]), row4(iq3s_grid[p[7] | (h << 1 & 256)]));
            sg = signs32(iq_rd32(blk + 74 + 4 * c));
            sc = _mm256_set1_epi16((short)(1 + 2 * (blk[106 + c / 2] >> 4 * (c % 2) & 0xf)));
        }
        acc = _mm256_add_epi32(acc, dot32(g, sg, sc, q8 + 32 * c));
    }
    *d = _cvtsh_ss(iq_rd16(blk)) * (T == QT_IQ3_S ? 1.0f : T == QT_IQ3_XXS ? 0.25f : 0.125f);
    return hsum8i(acc);
}

AI void gemv_iq(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / QK_K;
    const size_t bb = (size_t)dtype_block_bytes(dtype_from_ggml(T));
    const qx_k *a = (const qx_k *)j->xq;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->w_row;
        float y = 0;
        for (int64_t k = 0; k < nb; k++) {
            _mm_prefetch((const char *)w + (k + 4) * bb, _MM_HINT_T0);
            float d;
            const int32_t sum = fused_block(T, w + k * bb, a[k].qs, &d);
            const float s = (d * a[k].d) * (float)sum;
            y = k ? y + s : s;
        }
        j->y[r] = y;
    }
}

#define IQ_GEMV(T, NAME) \
    static void gemv_##NAME(const qmm_job *j, int64_t r0, int64_t r1) { gemv_iq(T, j, r0, r1); }
IQ_GEMV(QT_IQ2_XXS, iq2_xxs)
IQ_GEMV(QT_IQ2_XS, iq2_xs)
IQ_GEMV(QT_IQ2_S, iq2_s)
IQ_GEMV(QT_IQ3_XXS, iq3_xxs)
IQ_GEMV(QT_IQ3_S, iq3_s)
IQ_GEMV(QT_IQ1_S, iq1_s)
IQ_GEMV(QT_IQ1_M, iq1_m)

/* 1 if done (one row of x, a grid type). */
static int iq_gemv(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n != 1) return 0;
    switch (j->type) {
    case QT_IQ2_XXS: gemv_iq2_xxs(j, r0, r1); return 1;
    case QT_IQ2_XS: gemv_iq2_xs(j, r0, r1); return 1;
    case QT_IQ2_S: gemv_iq2_s(j, r0, r1); return 1;
    case QT_IQ3_XXS: gemv_iq3_xxs(j, r0, r1); return 1;
    case QT_IQ3_S: gemv_iq3_s(j, r0, r1); return 1;
    case QT_IQ1_S: gemv_iq1_s(j, r0, r1); return 1;
    case QT_IQ1_M: gemv_iq1_m(j, r0, r1); return 1;
    default: return 0;
    }
}

void avx2_iq_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (!qt_is_iq(j->type)) {
        ref_qmm_rows(j, r0, r1);
        return;
    }
    if (iq_gemv(j, r0, r1)) return;
    const int iq1 = j->type == QT_IQ1_S || j->type == QT_IQ1_M;
    const int64_t nb = j->cols / QK_K;
    const size_t bb = (size_t)dtype_block_bytes(dtype_from_ggml(j->type));
    avx2_block v;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = j->W + (size_t)r * j->w_row;
        for (int64_t k = 0; k < nb; k++) {
            float d;
            if (iq1)
                unpack_iq1(j->type, w + k * bb, &v, &d);
            else
                d = unpack(j->type, w + k * bb, &v);
            for (int64_t i = 0; i < j->n; i++) {
                const qx_k *a = (const qx_k *)(j->xq + (size_t)i * j->xq_row) + k;
                const float s = (d * a->d) * (float)block_sum(&v, a->qs);
                float *y = &j->y[i * j->rows + r];
                *y = k ? *y + s : s;
            }
        }
    }
}
