/*
 * quant_r8k_kern.h - the many-row product of Q4_K, Q5_K, Q6_K, IQ4_XS, Q2_K
 * and Q3_K weights with AVX2 (no VNNI), shared by quant_r8k_avx2.c (weights as
 * stored) and quant_r8k_packed_avx2.c (packed at load): the 8 int32 lanes
 * of a register are 8 W rows, as quant_r16k_avx512.c does with 16 on
 * AVX-512, and with the int16 sums of quant_r8_avx2.c.
 *
 * Per group of 8 W rows and chunk of RK_KC super-blocks, the weights are
 * interleaved once into a buffer that stays in L1 (rk_buf): for each
 * 32-value sub-block s, 8 registers of codes, register k holding values
 * 4k..4k+3 of each of the 8 rows (Q4_K: the nibbles 0..15; Q5_K: 0..31
 * with the fifth bit; IQ4_XS: kvalues_iq4nl, signed), the rows' scales of
 * s as int16 pairs [sc_s, sc_s] (Q4_K / Q5_K: the 6-bit scale; IQ4_XS:
 * ls_s - 32) and d (with AVX-VNNI: d * sc_s in f32 instead), and, for
 * Q4_K / Q5_K, the mins as int16 pairs [m_2p, m_2p+1] and dmin.
 * One 8 x 8 dword transpose of 32 bytes of each row's qs serves two
 * sub-blocks; the first 16 bytes of the blocks (d and the packed scales)
 * are transposed once per super-block. Then for x row i (Q8_K) and
 * super-block b:
 *   t   = sum_s sum_k vpmaddubsw(W_s,k, broadcast of x codes 32s+4k..+3)
 *         times sc_s: in int16 for 8 (Q4_K: pairs up to 2 * 15 * 128) or
 *         4 (Q5_K: 31) registers, then vpmaddwd by [sc_s, sc_s]; IQ4_XS:
 *         the sign trick of quant_r8_avx2.c, vpmaddwd per register (|t|
 *         < 2^31: at most 8 * 32 * 127 * 128 * 63 for Q4_K)
 *   a   = float(t) * d
 *   a  -= float(sum_s m_s * S_s) * dmin               (Q4_K / Q5_K: 4
 *         vpmaddwd of the pairs with x's sums of 32, S_s; exact)
 *   acc_i = fma(a, dx, acc_i)
 * and acc_i holds 8 outputs, with no horizontal sum. Q6_K: codes 0..63
 * (ql's nibbles with qh's bit pairs), int16 sums of 2 registers (pairs up
 * to 2 * 63 * 128), scales per 16 values, so each half of t_s is
 * scaled by its sc_j (int8); the -32 goes through x's sums of 16
 * as the mins do: a -= float(sum_j sc_j * bsum_j) * 32 d (8 vpmaddwd of
 * [sc_2p, sc_2p+1]). Q3_K (codes q + 4, 0..7, signed scales per 16: its
 * -4 as 4 d) and Q2_K (codes 0..3, scales and mins per 16: dmin) take the
 * same path (rk_per16). t and the min sum are exact integers (one f32
 * multiply per super-block in place of an fma per sub-block: 4-14% of
 * the kernel's time at 8-32 rows of x, one core of an AMD Zen 3), and the
 * f32 operations on them are the same for
 * each output whatever rows share its group (a partial group repeats its
 * last row, the extra lanes are not stored): results do not depend on how
 * threads split the rows. Between chunks the sums wait in y.
 *
 * Q4_K and Q5_K without VNNI take two groups at a time (rk_tile2, chunks of
 * one super-block so both buffers stay in L1): each broadcast of x then
 * serves 16 W rows, 0.75 loads per vpmaddubsw where rk_tile's 1.25 made
 * loads its bound. One core of an AMD Zen 3, the tile alone on L1 data, 4
 * rows of x: 235 -> 262 GOP/s (70% -> 78% of the int8 probe).
 *
 * With AVX-VNNI (built as quant_r8k_avxvnni_avx2.c, R8_VNNI defined) the
 * sums are vpdpbusd's, one operation per 32 products with no int16 stage
 * (and no int16 pairs to scale: a = sum_s float(t_s) * d sc_s, in s order);
 * IQ4_XS is stored biased (kvalues_iq4nl + 128) and t_s starts at -128 times
 * the sub-block's x sum (bsums 2s + 2s+1), which takes the bias out exactly.
 *
 * Include only from files built with AVX2, R8_VNNI defined first for the
 * AVX-VNNI builds.
 */
#ifndef MOE_KERNELS_QUANT_R8K_KERN_H
#define MOE_KERNELS_QUANT_R8K_KERN_H

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"
#include "kernels/quant_r8.h"

#ifdef R8_VNNI
#define RK_IQ4_LUT iq4nl_biased_table()
#else
#define RK_IQ4_LUT kvalues_iq4nl
#endif

#define AI static inline __attribute__((always_inline))

#define RK_ROWS R8_LANES
#define RK_KC 2   /* super-blocks per chunk: 16 KiB of interleaved codes */
#define RK_NX 4   /* x rows per tile */

typedef struct {
    __m256i q[RK_KC][8][8]; /* [super-block][s][k]: values 32s+4k..+3 of rows 0..7 */
#ifdef R8_VNNI
    __m256 sc[RK_KC][16];   /* [super-block][s]: the f32 scale of sub-block s (Q6_K: of 16 values) */
#endif
    __m256i mn[RK_KC][8];   /* [super-block][p]: int16 [m_2p, m_2p+1] (Q4_K / Q5_K: p < 4; Q2_K: of 16 values),
                               Q6_K / Q3_K: [sc_2p, sc_2p+1] */
    __m256 dmin[RK_KC];     /* [super-block]: dmin (Q4_K / Q5_K / Q2_K), 32 d (Q6_K), 4 d (Q3_K) */
#ifndef R8_VNNI
    __m256i sp[RK_KC][16];  /* [super-block][s]: int16 [sc_s, sc_s] (IQ4_XS: ls_s - 32; Q6_K: of 16 values) */
    __m256 d[RK_KC];        /* [super-block]: d */
#endif
} rk_buf;

/* An int32 scale (|v| < 2^15) in each dword of v as the int16 pair [v, v]. */
AI __m256i rk_pair(__m256i v) {
    return _mm256_or_si256(_mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(v, 16));
}

AI size_t rk_block_bytes(const int T) {
    return T == QT_Q4_K ? sizeof(block_q4_K) : T == QT_Q5_K ? sizeof(block_q5_K)
         : T == QT_Q6_K ? sizeof(block_q6_K) : T == QT_Q2_K ? sizeof(block_q2_K)
         : T == QT_Q3_K ? sizeof(block_q3_K) : sizeof(block_iq4_xs);
}

/* The types whose scales are per 16 values (Q6_K's path through the
 * tiles): int16 sums of 2 registers scaled per half sub-block, and a term
 * through x's sums of 16 (mn pairs times dmin): Q6_K's -32 (its scales,
 * 32 d), Q3_K's -4 (its scales, 4 d), Q2_K's mins (dmin). */
AI int rk_per16(const int T) { return T == QT_Q6_K || T == QT_Q2_K || T == QT_Q3_K; }

/* [the 16 bytes at p | the 16 bytes at q] */
AI __m256i rk_load2x16(const uint8_t *p, const uint8_t *q) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)p)),
                                   _mm_loadu_si128((const __m128i *)q), 1);
}

/* h[q] = dword q of the 16 bytes at w[r] + at, rows r = 0..7 (lane r):
 * rows r and r + 4 in one register, then a 4 x 4 transpose per lane. */
AI void rk_head4(const uint8_t *const *w, size_t at, __m256i *h) {
    __m256i a[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) a[p] = rk_load2x16(w[p] + at, w[p + 4] + at);
    const __m256i l0 = _mm256_unpacklo_epi32(a[0], a[1]), h0 = _mm256_unpackhi_epi32(a[0], a[1]);
    const __m256i l1 = _mm256_unpacklo_epi32(a[2], a[3]), h1 = _mm256_unpackhi_epi32(a[2], a[3]);
    h[0] = _mm256_unpacklo_epi64(l0, l1);
    h[1] = _mm256_unpackhi_epi64(l0, l1);
    h[2] = _mm256_unpacklo_epi64(h0, h1);
    h[3] = _mm256_unpackhi_epi64(h0, h1);
}

/* The low 16 bits of each dword of v as f16, to f32. */
AI __m256 rk_f16lo(__m256i v) {
    v = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
    return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* Byte j of each dword of v (j < 4), as dwords; bytes 2p, 2p + 1 as the
 * int16 pair [byte 2p, byte 2p + 1]. */
AI __m256i rk_byte(__m256i v, int j) {
    const __m256i base = _mm256_setr_epi32((int)0x80808000, (int)0x80808004, (int)0x80808008, (int)0x8080800C,
                                           (int)0x80808000, (int)0x80808004, (int)0x80808008, (int)0x8080800C);
    return _mm256_shuffle_epi8(v, _mm256_add_epi32(base, _mm256_set1_epi32(j)));
}
AI __m256i rk_byte_pair(__m256i v, int p) {
    const __m256i base = _mm256_setr_epi32((int)0x80008000, (int)0x80048004, (int)0x80088008, (int)0x800C800C,
                                           (int)0x80008000, (int)0x80048004, (int)0x80088008, (int)0x800C800C);
    return _mm256_shuffle_epi8(v, _mm256_add_epi32(base, _mm256_set1_epi32(2 * p | (2 * p + 1) << 16)));
}

/* Q6_K's 16 int8 scales (times d) and their pairs for the -32 bias, from
 * h[q] (dword q of each row's scales in lane r) and the rows' d. */
AI void rk_scales6_h(rk_buf *o, int b, const __m256i *h, __m256 d) {
    /* per dword: bytes [., 2u, ., 2u + 1] (u = 0, 1), then >> 8 with the sign */
    const __m256i base = _mm256_setr_epi32((int)0x01800080, (int)0x05800480, (int)0x09800880, (int)0x0D800C80,
                                           (int)0x01800080, (int)0x05800480, (int)0x09800880, (int)0x0D800C80);
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            __m256i v = _mm256_srai_epi32(_mm256_slli_epi32(h[q], 24 - 8 * u), 24);
#ifdef R8_VNNI
            o->sc[b][4 * q + u] = _mm256_mul_ps(_mm256_cvtepi32_ps(v), d);
#else
            o->sp[b][4 * q + u] = rk_pair(v);
#endif
        }
#pragma GCC unroll 2
        for (int u = 0; u < 2; u++) {
            __m256i c = _mm256_add_epi32(base, _mm256_set1_epi32(2 * u << 8 | 2 * u << 24));
            o->mn[b][2 * q + u] = _mm256_srai_epi16(_mm256_shuffle_epi8(h[q], c), 8);
        }
    }
    o->dmin[b] = _mm256_mul_ps(d, _mm256_set1_ps(32.0f));
#ifndef R8_VNNI
    o->d[b] = d;
#endif
}

AI void rk_scales6(rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    __m256i h[4], e[4]; /* scales 4q..4q+3; bytes 194..209 (d: the high word of e[3]) */
    rk_head4(w, at + offsetof(block_q6_K, scales), h);
    rk_head4(w, at + offsetof(block_q6_K, scales) + 2, e);
    rk_scales6_h(o, b, h, rk_f16lo(_mm256_srli_epi32(e[3], 16)));
}

/* IQ4_XS's 8 sub-block scales of 8 rows, d * (ls - 32) in f32, from each
 * row's dwords g0 = d | scales_h << 16 and g1 = scales_l. */
AI void rk_scales_iq4(rk_buf *o, int b, __m256i g0, __m256i g1) {
    const __m256 d = rk_f16lo(g0);
#pragma GCC unroll 8
    for (int s = 0; s < 8; s++) { /* ls = scales_l nibble s | bits 2s, 2s+1 of scales_h << 4 */
        __m256i hi = _mm256_and_si256(_mm256_srli_epi32(g0, 12 + 2 * s), _mm256_set1_epi32(0x30));
        __m256i ls = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g1, 4 * s), _mm256_set1_epi32(0x0F)), hi);
        ls = _mm256_sub_epi32(ls, _mm256_set1_epi32(32));
#ifdef R8_VNNI
        o->sc[b][s] = _mm256_mul_ps(_mm256_cvtepi32_ps(ls), d);
#else
        o->sp[b][s] = rk_pair(ls);
#endif
    }
#ifndef R8_VNNI
    o->d[b] = d;
#endif
}

/* Q4_K's / Q5_K's scales and mins of super-block b of 8 rows from their
 * heads' dwords h[q] (dword q of each row's head in lane r). */
AI void rk_scales_k4(rk_buf *o, int b, const __m256i *h) {
    const __m256i g0 = h[0]; /* d | dmin << 16 */
    const __m256 d = rk_f16lo(g0);
    /* ggml's 6-bit scales and mins (get_scale_min_k4): sc0..3 / m0..3 the
     * low 6 bits of the bytes of u0 / u1; sc4..7 = low nibbles of u2 | top
     * bits of u0 << 4; m4..7 = high nibbles of u2 | top bits of u1 << 4 */
    const __m256i u0 = h[1], u1 = h[2], u2 = h[3];
    const __m256i m6 = _mm256_set1_epi8(0x3F), m4 = _mm256_set1_epi8(0x0F), t2 = _mm256_set1_epi8(0x30);
    const __m256i sc_lo = _mm256_and_si256(u0, m6), mn_lo = _mm256_and_si256(u1, m6);
    const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(u2, m4), _mm256_and_si256(_mm256_srli_epi32(u0, 2), t2));
    const __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                                          _mm256_and_si256(_mm256_srli_epi32(u1, 2), t2));
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
#ifdef R8_VNNI
        o->sc[b][s] = _mm256_mul_ps(_mm256_cvtepi32_ps(rk_byte(sc_lo, s)), d);
        o->sc[b][s + 4] = _mm256_mul_ps(_mm256_cvtepi32_ps(rk_byte(sc_hi, s)), d);
#else
        o->sp[b][s] = rk_pair(rk_byte(sc_lo, s));
        o->sp[b][s + 4] = rk_pair(rk_byte(sc_hi, s));
#endif
    }
#ifndef R8_VNNI
    o->d[b] = d;
#endif
    o->mn[b][0] = rk_byte_pair(mn_lo, 0);
    o->mn[b][1] = rk_byte_pair(mn_lo, 1);
    o->mn[b][2] = rk_byte_pair(mn_hi, 0);
    o->mn[b][3] = rk_byte_pair(mn_hi, 1);
    o->dmin[b] = rk_f16lo(_mm256_srli_epi32(g0, 16));
}

/* Scales 4q .. 4q + 3 (bytes 0..3 of each dword of scq[q], less `bias`) of
 * 8 rows as Q6_K's per-16 scales, and the pairs [sc_2p, sc_2p+1] (Q3_K)
 * or [m_2p, m_2p+1] of mnq (Q2_K: mins) for the term through x's sums of 16. */
AI void rk_scales16(rk_buf *o, int b, const __m256i *scq, const __m256i *mnq, int bias, __m256 d) {
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const __m256i v = _mm256_sub_epi32(rk_byte(scq[q], u), _mm256_set1_epi32(bias));
#ifdef R8_VNNI
            o->sc[b][4 * q + u] = _mm256_mul_ps(_mm256_cvtepi32_ps(v), d);
#else
            o->sp[b][4 * q + u] = rk_pair(v);
#endif
        }
#pragma GCC unroll 2
        for (int u = 0; u < 2; u++)
            o->mn[b][2 * q + u] = _mm256_sub_epi16(rk_byte_pair(mnq[q], u), _mm256_set1_epi16((short)bias));
    }
#ifndef R8_VNNI
    o->d[b] = d;
#endif
}

/* Q2_K: scales (low nibbles) and mins (high) of 16 values, d and dmin. */
AI void rk_scales_q2(rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    __m256i h[4], e[4], sc[4], mn[4];
    rk_head4(w, at + offsetof(block_q2_K, scales), h);
    rk_head4(w, at + offsetof(block_q2_K, d) - 12, e); /* e[3]: d | dmin << 16 */
    const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) sc[q] = _mm256_and_si256(h[q], m4), mn[q] = _mm256_and_si256(_mm256_srli_epi16(h[q], 4), m4);
    rk_scales16(o, b, sc, mn, 0, rk_f16lo(e[3]));
    o->dmin[b] = rk_f16lo(_mm256_srli_epi32(e[3], 16));
}

/* Q3_K: the 16 6-bit scales (ggml's arrangement: low nibbles of bytes 0..7
 * for scales 0..7, their high nibbles for 8..15, bit pairs of bytes 8..11
 * on top), less 32; the bias 4 as 4 d. */
AI void rk_scales_q3(rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    __m256i h[4], e[4], sc[4];
    rk_head4(w, at + offsetof(block_q3_K, scales) - 4, h); /* h[1..3]: scale bytes 0..3, 4..7, 8..11 */
    rk_head4(w, at + offsetof(block_q3_K, d) - 14, e);     /* e[3]: d in its high 16 bits */
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) { /* scales 4q .. 4q + 3 */
        const __m256i low = q < 2 ? _mm256_and_si256(h[1 + q], m4) : _mm256_and_si256(_mm256_srli_epi16(h[q - 1], 4), m4);
        const __m256i high = _mm256_and_si256(_mm256_srli_epi16(h[3], 2 * q), m3);
        sc[q] = _mm256_or_si256(low, _mm256_slli_epi16(high, 4));
    }
    const __m256 d = rk_f16lo(_mm256_srli_epi32(e[3], 16));
    rk_scales16(o, b, sc, sc, 32, d);
    o->dmin[b] = _mm256_mul_ps(d, _mm256_set1_ps(4.0f));
}

/* Q2_K's / Q3_K's codes of super-block b at w[r] + at: value 128n + 32j
 * + l is bits 2j, 2j+1 of qs[32n + l] (sub-block 4n + j), Q3_K's with 4
 * added where bit 4n + j of hmask[l] is set (q + 4, 0..7). */
AI void rk_codes23(const int T, rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    const size_t oq = T == QT_Q2_K ? offsetof(block_q2_K, qs) : offsetof(block_q3_K, qs);
    const __m256i m3 = _mm256_set1_epi8(3), b2 = _mm256_set1_epi8(4);
    __m256i z[8], h[8];
    if (T == QT_Q3_K) {
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) z[p] = _mm256_loadu_si256((const __m256i *)(w[p] + at + offsetof(block_q3_K, hmask)));
        r8_transpose(z, h);
    }
#pragma GCC unroll 2
    for (int n = 0; n < 2; n++) {
        __m256i t[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) z[p] = _mm256_loadu_si256((const __m256i *)(w[p] + at + oq + 32 * n));
        r8_transpose(z, t);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m256i c = _mm256_and_si256(j ? _mm256_srli_epi16(t[k], 2 * j) : t[k], m3);
                if (T == QT_Q3_K) {
                    const int bit = 4 * n + j;
                    const __m256i hb = bit >= 2 ? _mm256_srli_epi16(h[k], bit - 2) : _mm256_slli_epi16(h[k], 2 - bit);
                    c = _mm256_or_si256(c, _mm256_and_si256(hb, b2));
                }
                o->q[b][4 * n + j][k] = c;
            }
    }
}

/* The scales (and mins) of super-block b of the 8 rows, at w[r] + at. */
AI void rk_scales(const int T, rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    if (T == QT_Q6_K) {
        rk_scales6(o, b, w, at);
        return;
    }
    if (T == QT_Q2_K) {
        rk_scales_q2(o, b, w, at);
        return;
    }
    if (T == QT_Q3_K) {
        rk_scales_q3(o, b, w, at);
        return;
    }
    __m256i h[4];
    rk_head4(w, at, h);
    if (T == QT_IQ4_XS) /* h[0]: d | scales_h << 16 */
        rk_scales_iq4(o, b, h[0], h[1]);
    else
        rk_scales_k4(o, b, h);
}

/* Bit j of each byte of h moved to bit 4 (the other bits are garbage). */
AI __m256i rk_bit4(__m256i h, int j) {
    return j < 4 ? _mm256_slli_epi16(h, 4 - j) : j == 4 ? h : _mm256_srli_epi16(h, j - 4);
}

/* Q6_K's codes of one half (128 values) of 8 rows from the transposed
 * registers of its 32 qh bytes (h) and ql bytes 32e .. 32e + 31 (t, e = 0,
 * 1 of the half's 64): bits 2u, 2u+1 of a qh byte are bits 4-5 of value
 * 32u + l (u = 0..3), a ql byte's low nibble the low 4 bits of value 32e +
 * l, its high nibble those of 64 + 32e + l. */
AI void rk_codes6_half(rk_buf *o, int b, int hf, int e, const __m256i *h, const __m256i *t) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b45 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) { /* bits 2u, 2u+1 of qh to bits 4, 5: u = e (low), e + 2 (high) */
        const __m256i hl = e == 0 ? _mm256_slli_epi16(h[k], 4) : _mm256_slli_epi16(h[k], 2);
        const __m256i hh = e == 0 ? h[k] : _mm256_srli_epi16(h[k], 2);
        o->q[b][4 * hf + e][k] = _mm256_or_si256(_mm256_and_si256(t[k], m4), _mm256_and_si256(hl, b45));
        o->q[b][4 * hf + 2 + e][k] =
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(t[k], 4), m4), _mm256_and_si256(hh, b45));
    }
}

/* Q6_K's codes of super-block b at w[r] + at. */
AI void rk_codes6(rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    for (int hf = 0; hf < 2; hf++) {
        __m256i z[8], h[8], t[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++)
            z[p] = _mm256_loadu_si256((const __m256i *)(w[p] + at + offsetof(block_q6_K, qh) + 32 * hf));
        r8_transpose(z, h);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++)
                z[p] = _mm256_loadu_si256((const __m256i *)(w[p] + at + offsetof(block_q6_K, ql) + 64 * hf + 32 * e));
            r8_transpose(z, t);
            rk_codes6_half(o, b, hf, e, h, t);
        }
    }
}

/* Super-blocks b0 .. b0 + kc of the 8 rows w[] into o; the same
 * super-blocks of the next group's rows, pf bytes on (0: none), are
 * prefetched into L2. */
AI void rk_repack(const int T, rk_buf *o, const uint8_t *const *w, int64_t b0, int kc, size_t pf) {
    const size_t bb = rk_block_bytes(T);
    const size_t oq = T == QT_Q4_K ? offsetof(block_q4_K, qs)
                      : T == QT_Q5_K ? offsetof(block_q5_K, qs)
                                     : offsetof(block_iq4_xs, qs);
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)RK_IQ4_LUT));
    for (int b = 0; b < kc; b++) {
        const size_t at = (size_t)(b0 + b) * bb;
        if (pf)
            for (int p = 0; p < RK_ROWS; p++) {
                const uintptr_t a = (uintptr_t)(w[p] + at + pf);
                for (uintptr_t l = a & ~(uintptr_t)63; l < a + bb; l += 64) _mm_prefetch((const char *)l, _MM_HINT_T1);
            }
        if (T == QT_Q6_K) {
            rk_codes6(o, b, w, at);
            rk_scales(T, o, b, w, at);
            continue;
        }
        if (T == QT_Q2_K || T == QT_Q3_K) {
            rk_codes23(T, o, b, w, at);
            rk_scales(T, o, b, w, at);
            continue;
        }
        __m256i z[8], h[8];
        if (T == QT_Q5_K) { /* h[k]: qh bytes 4k..4k+3 of rows 0..7; bit s of byte l: value 32s + l */
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) z[p] = _mm256_loadu_si256((const __m256i *)(w[p] + at + offsetof(block_q5_K, qh)));
            r8_transpose(z, h);
        }
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) { /* qs bytes 32g..32g+31 of each row */
            __m256i t[8];
#pragma GCC unroll 8
            for (int p = 0; p < 8; p++) z[p] = _mm256_loadu_si256((const __m256i *)(w[p] + at + oq + 32 * g));
            r8_transpose(z, t);
            if (T == QT_IQ4_XS) { /* t[0..3]: sub-block 2g (low nibbles: values 0..15), t[4..7]: 2g + 1 */
#pragma GCC unroll 2
                for (int u = 0; u < 2; u++)
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        const __m256i v = t[4 * u + k];
                        o->q[b][2 * g + u][k] = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
                        o->q[b][2 * g + u][k + 4] =
                            _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                    }
            } else { /* low nibbles: sub-block 2g, high: 2g + 1 */
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    __m256i lo = _mm256_and_si256(t[k], m4);
                    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(t[k], 4), m4);
                    if (T == QT_Q5_K) {
                        lo = _mm256_or_si256(lo, _mm256_and_si256(rk_bit4(h[k], 2 * g), b4));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(rk_bit4(h[k], 2 * g + 1), b4));
                    }
                    o->q[b][2 * g][k] = lo;
                    o->q[b][2 * g + 1][k] = hi;
                }
            }
        }
        rk_scales(T, o, b, w, at);
    }
}

/* x's sums of 32, S_s = bsums 2s + 2s+1 (|S_s| <= 4064), as the int16 pairs
 * [S_2p, S_2p+1] the mins' vpmaddwd take (sp[2p], sp[2p+1]). */
AI void rk_sums32(const qx_k *x, int16_t *sp) {
    const __m128i b0v = _mm_loadu_si128((const __m128i *)x->bsums);
    const __m128i b1v = _mm_loadu_si128((const __m128i *)(x->bsums + 8));
    _mm_storeu_si128((__m128i *)sp, _mm_hadd_epi16(b0v, b1v));
}

/* sum_p mn[p] * (the int16 pair s[2p], s[2p+1]) for p < P: a super-block's
 * mins (P = 4, s: rk_sums32's sums of 32) or Q6_K's -32 terms (P = 8, s:
 * the bsums), exact in int32. */
AI __m256i rk_mins(const int P, const __m256i *mn, const int16_t *s) {
    __m256i t = _mm256_madd_epi16(mn[0], r8_bcast4((const int8_t *)s));
#pragma GCC unroll 7
    for (int p = 1; p < P; p++) t = _mm256_add_epi32(t, _mm256_madd_epi16(mn[p], r8_bcast4((const int8_t *)(s + 2 * p))));
    return t;
}

/* y[i*ys + lane] (lanes < rw) for i < NX: x rows at xq (stride xs) times
 * the chunk o of super-blocks b0 .. b0 + kc, added to y unless first. */
AI void rk_tile(const int NX, const int T, float *y, int64_t ys, int rw, const uint8_t *xq, size_t xs,
                const rk_buf *o, int64_t b0, int kc, int first) {
    __m256 acc[RK_NX];
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) acc[i] = first ? _mm256_setzero_ps() : r8_load_y(y + i * ys, rw);
    for (int b = 0; b < kc; b++) {
        const qx_k *x[RK_NX];
        __m256 a[RK_NX];
#ifndef R8_VNNI
        __m256i ts[RK_NX]; /* sum_s t_s * sc_s, exact */
#endif
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            x[i] = (const qx_k *)(xq + (size_t)i * xs) + b0 + b;
            a[i] = _mm256_setzero_ps();
#ifndef R8_VNNI
            ts[i] = _mm256_setzero_si256();
#endif
        }
        for (int s = 0; s < 8; s++) {
#ifdef R8_VNNI
            __m256i t[RK_NX];
#endif
            if (rk_per16(T)) { /* scales per 16 values: registers 0..3, 4..7, int16 sums of 2 */
#pragma GCC unroll 2
                for (int hv = 0; hv < 2; hv++) {
#ifdef R8_VNNI
                    const __m256 sch = o->sc[b][2 * s + hv];
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) t[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
                    for (int k = 4 * hv; k < 4 * hv + 4; k++) {
                        const __m256i wv = _mm256_load_si256(&o->q[b][s][k]);
#pragma GCC unroll 4
                        for (int i = 0; i < NX; i++)
                            t[i] = _mm256_dpbusd_avx_epi32(t[i], wv, r8_bcast4(x[i]->qs + 32 * s + 4 * k));
                    }
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) a[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[i]), sch, a[i]);
#else
#pragma GCC unroll 2
                    for (int k0 = 4 * hv; k0 < 4 * hv + 4; k0 += 2) {
                        const __m256i w0 = _mm256_load_si256(&o->q[b][s][k0]), w1 = _mm256_load_si256(&o->q[b][s][k0 + 1]);
#pragma GCC unroll 4
                        for (int i = 0; i < NX; i++) {
                            const int8_t *xs8 = x[i]->qs + 32 * s + 4 * k0;
                            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, r8_bcast4(xs8)),
                                                               _mm256_maddubs_epi16(w1, r8_bcast4(xs8 + 4)));
                            ts[i] = _mm256_add_epi32(ts[i], _mm256_madd_epi16(p, o->sp[b][2 * s + hv]));
                            R8_PIN(ts[i]);
                        }
                    }
#endif
                }
                continue;
            }
#ifdef R8_VNNI
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) /* IQ4_XS: - 128 * the x sum of sub-block s */
                t[i] = T == QT_IQ4_XS ? _mm256_set1_epi32(-128 * (x[i]->bsums[2 * s] + x[i]->bsums[2 * s + 1]))
                                      : _mm256_setzero_si256();
            /* two chains of 4 per row of x (values 0..15 and 16..31): one
             * of 8 dependent vpdpbusd (latency 5) left the units idle */
            __m256i t1[RK_NX];
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) t1[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i w0 = _mm256_load_si256(&o->q[b][s][k]), w1 = _mm256_load_si256(&o->q[b][s][k + 4]);
#pragma GCC unroll 4
                for (int i = 0; i < NX; i++) {
                    t[i] = _mm256_dpbusd_avx_epi32(t[i], w0, r8_bcast4(x[i]->qs + 32 * s + 4 * k));
                    t1[i] = _mm256_dpbusd_avx_epi32(t1[i], w1, r8_bcast4(x[i]->qs + 32 * s + 4 * k + 16));
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) t[i] = _mm256_add_epi32(t[i], t1[i]);
            const __m256 sc = o->sc[b][s];
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) a[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[i]), sc, a[i]);
#else
            const __m256i sps = o->sp[b][s];
            if (T == QT_IQ4_XS) {
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) {
                    const __m256i wv = _mm256_load_si256(&o->q[b][s][k]), av = _mm256_abs_epi8(wv);
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) {
                        const __m256i p =
                            _mm256_maddubs_epi16(av, _mm256_sign_epi8(r8_bcast4(x[i]->qs + 32 * s + 4 * k), wv));
                        ts[i] = _mm256_add_epi32(ts[i], _mm256_madd_epi16(p, sps));
                        R8_PIN(ts[i]);
                    }
                }
            } else {
                const int D = T == QT_Q4_K ? 8 : 4; /* registers of int16 pairs that add without overflow */
                for (int k0 = 0; k0 < 8; k0 += D) {
                    __m256i s16[RK_NX];
#pragma GCC unroll 8
                    for (int k = k0; k < k0 + D; k++) {
                        const __m256i wv = _mm256_load_si256(&o->q[b][s][k]);
#pragma GCC unroll 4
                        for (int i = 0; i < NX; i++) {
                            const __m256i p = _mm256_maddubs_epi16(wv, r8_bcast4(x[i]->qs + 32 * s + 4 * k));
                            s16[i] = k == k0 ? p : _mm256_add_epi16(s16[i], p);
                            R8_PIN(s16[i]);
                        }
                    }
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) {
                        ts[i] = _mm256_add_epi32(ts[i], _mm256_madd_epi16(s16[i], sps));
                        R8_PIN(ts[i]);
                    }
                }
            }
#endif
        }
#ifndef R8_VNNI
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) a[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(ts[i]), o->d[b]);
#endif
        if (rk_per16(T)) { /* Q6_K's -32 (Q3_K's -4): sum_j sc_j * bsums j, times 32 d (4 d); Q2_K's mins */
            const __m256 d32 = o->dmin[b];
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) {
                const __m256i t = rk_mins(8, o->mn[b], x[i]->bsums);
                a[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(t), d32, a[i]);
            }
        } else if (T != QT_IQ4_XS) { /* the mins: sum_s m_s * (bsums 2s + 2s+1) */
            const __m256 dmin = o->dmin[b];
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) {
                int16_t sp[8];
                rk_sums32(x[i], sp);
                const __m256i t = rk_mins(4, o->mn[b], sp);
                a[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(t), dmin, a[i]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) acc[i] = _mm256_fmadd_ps(a[i], _mm256_set1_ps(x[i]->d), acc[i]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) r8_store_y(y + i * ys, acc[i], rw);
}

/* Every x row of the job by the chunk buf (super-blocks b0 .. b0 + kc of
 * rows r .. r + rw), RK_NX rows of x at a time. */
AI void rk_tiles(const int T, const qmm_job *j, int64_t r, int rw, const rk_buf *buf, int64_t b0, int kc) {
    for (int64_t i = 0; i < j->n; i += RK_NX) {
        const int nx = j->n - i < RK_NX ? (int)(j->n - i) : RK_NX;
        float *y = j->y + i * j->rows + r;
        const uint8_t *x = j->xq + (size_t)i * j->xq_row;
        const int first = b0 == 0;
#define RK_TILE(NX) rk_tile(NX, T, y, j->rows, rw, x, j->xq_row, buf, b0, kc, first)
        switch (nx) {
        case 1: RK_TILE(1); break;
        case 2: RK_TILE(2); break;
        case 3: RK_TILE(3); break;
        default: RK_TILE(4); break;
        }
#undef RK_TILE
    }
}

#ifndef R8_VNNI
#define RK2_NX 4 /* x rows per two-group tile */

/* As rk_tile for Q4_K / Q5_K, with two groups of 8 W rows (o[0]: rows r ..
 * r + 8, o[1]: r + 8 .. r + 8 + rw1) sharing each broadcast of x: per
 * vpmaddubsw 1/2 + 1/NX loads (0.75) in place of rk_tile's 1 + 1/4, whose
 * broadcasts made loads its bound (two vpmaddubsw a cycle want 2.5 loads).
 * 8 int16 and 8 int32 sums at NX = 4: GCC keeps 4 of the int32 ones on the
 * stack, a load and store per sub-block. Q6_K stays with rk_tile: its
 * vpmaddwd every second vpmaddubsw binds the multiply pipes first (two
 * groups were 1-7% slower). Each output's operations are rk_tile's, in its
 * order: the same bits. */
AI void rk_tile2(const int NX, const int T, float *y, int64_t ys, int rw1, const uint8_t *xq, size_t xs,
                 const rk_buf *const *o, int64_t b0, int kc, int first) {
    __m256 acc[2][RK2_NX];
#pragma GCC unroll 4
    for (int g = 0; g < 2; g++)
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++)
            acc[g][i] = first ? _mm256_setzero_ps() : r8_load_y(y + i * ys + RK_ROWS * g, g ? rw1 : RK_ROWS);
    const int D = T == QT_Q4_K ? 8 : 4;
    for (int b = 0; b < kc; b++) {
        const qx_k *x[RK2_NX];
        __m256i ts[2][RK2_NX];
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            x[i] = (const qx_k *)(xq + (size_t)i * xs) + b0 + b;
            ts[0][i] = ts[1][i] = _mm256_setzero_si256();
        }
        for (int s = 0; s < 8; s++)
            for (int k0 = 0; k0 < 8; k0 += D) {
                __m256i s16[2][RK2_NX];
#pragma GCC unroll 8
                for (int k = k0; k < k0 + D; k++) {
                    __m256i w0 = _mm256_load_si256(&o[0]->q[b][s][k]), w1 = _mm256_load_si256(&o[1]->q[b][s][k]);
                    R8_PIN(w0); /* one load each (GCC would load them again for each x row) */
                    R8_PIN(w1);
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) {
                        const __m256i xb = r8_bcast4(x[i]->qs + 32 * s + 4 * k);
                        const __m256i p0 = _mm256_maddubs_epi16(w0, xb), p1 = _mm256_maddubs_epi16(w1, xb);
                        s16[0][i] = k == k0 ? p0 : _mm256_add_epi16(s16[0][i], p0);
                        s16[1][i] = k == k0 ? p1 : _mm256_add_epi16(s16[1][i], p1);
                        R8_PIN(s16[0][i]);
                        R8_PIN(s16[1][i]);
                    }
                }
#pragma GCC unroll 4
                for (int g = 0; g < 2; g++)
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) {
                        ts[g][i] = _mm256_add_epi32(ts[g][i], _mm256_madd_epi16(s16[g][i], o[g]->sp[b][s]));
                        R8_PIN(ts[g][i]);
                    }
            }
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            int16_t sp[8];
            rk_sums32(x[i], sp);
#pragma GCC unroll 4
            for (int g = 0; g < 2; g++) {
                __m256 a = _mm256_mul_ps(_mm256_cvtepi32_ps(ts[g][i]), o[g]->d[b]);
                const __m256i t = rk_mins(4, o[g]->mn[b], sp);
                a = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(t), o[g]->dmin[b], a);
                acc[g][i] = _mm256_fmadd_ps(a, _mm256_set1_ps(x[i]->d), acc[g][i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < 2; g++)
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) r8_store_y(y + i * ys + RK_ROWS * g, acc[g][i], g ? rw1 : RK_ROWS);
}

/* Every x row of the job by the chunks o[0], o[1] (super-blocks b0 .. b0 +
 * kc of rows r .. r + 8 + rw1), RK2_NX rows of x at a time (5 as 3 and 2). */
AI void rk_tiles2(const int T, const qmm_job *j, int64_t r, int rw1, const rk_buf *const *o, int64_t b0, int kc) {
    for (int64_t i = 0, nx; i < j->n; i += nx) {
        float *y = j->y + i * j->rows + r;
        const uint8_t *x = j->xq + (size_t)i * j->xq_row;
        /* 5 rows as 3 + 2 (8% faster than 4 + 1 on a Zen 3; 9 and 13 rows
         * were 2% slower ending in 3 + 2) */
        nx = j->n == 5 && i == 0 ? 3 : j->n - i < RK2_NX ? j->n - i : RK2_NX;
        if (nx == 4)
            rk_tile2(4, T, y, j->rows, rw1, x, j->xq_row, o, b0, kc, b0 == 0);
        else if (nx == 3)
            rk_tile2(3, T, y, j->rows, rw1, x, j->xq_row, o, b0, kc, b0 == 0);
        else if (nx == 2)
            rk_tile2(2, T, y, j->rows, rw1, x, j->xq_row, o, b0, kc, b0 == 0);
        else
            rk_tile2(1, T, y, j->rows, rw1, x, j->xq_row, o, b0, kc, b0 == 0);
    }
}
#endif

#endif
