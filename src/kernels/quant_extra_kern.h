/*
 * quant_extra_kern.h - the vector kernels of Q4_1, Q5_0, Q5_1, IQ4_NL,
 * Q2_K, Q3_K and IQ4_XS weights, written once on 256-bit registers and
 * included by quant_extra_avx2.c and quant_extra_avx512.c, which define
 * DOT32_I32(w, x): the 8 int32 partial sums of 32 signed weight bytes
 * times 32 signed activation bytes (AVX2: vpmaddubsw + vpmaddwd; AVX-512:
 * vpdpbusd), and EXTRA_PREFIX, the name prefix of the entry point.
 *
 * Each weight block is unpacked to signed bytes in the activations' order
 * (element j of a 32-block at byte j): nibbles split with shifts and masks,
 * fifth bits (Q5_0/Q5_1) spread from the 32-bit qh with a byte shuffle,
 * IQ4 indices looked up in kvalues_iq4nl with vpshufb, 2-bit fields of
 * Q2_K/Q3_K shifted out of qs, Q3_K's third bit from hmask. Products are
 * taken as |w| * sign(x, w) (unsigned times signed, the vpmaddubsw /
 * vpdpbusd operand order): at most 2 * 127 * 127 per pair, no saturation.
 *   - 32-blocks: the block's integer sum scaled by d * dx (Q4_1 / Q5_1 add
 *     m * dx * sum(x), the sum carried by the activation's cv, c = 1);
 *   - Q2_K / Q3_K: unsigned codes (Q3_K stored q + 4, 0..7, its bias taken
 *     out through the activation's sums of 16), pairs (vpmaddubsw) times
 *     the 16-value scales (vpmaddwd, the scales unpacked with vector
 *     operations once per super-block) summed over the super-block in
 *     int32, scaled once by d * dx; Q2_K's mins through the sums of 16;
 *   - IQ4_XS: the same with one 6-bit scale per 32 values.
 * Integer sums are exact, so results differ from the scalar reference
 * only in the order of the f32 additions. Each output is one W row against
 * one x row computed the same way however rows are split among threads;
 * x rows go in groups of up to XT so an unpacked block serves several.
 * Decode (one x row) is not here: quant_extra_gemv_avx2.c and
 * quant_extra_gemv_avx512.c stream several W rows at once with the codes
 * unpacked straight into registers (these kernels were bound by their
 * instructions per byte there). On AVX2 these serve only IQ4_XS with 2
 * rows of x (the 32-block types go to quant_r8_avx2.c from 2 rows, Q2_K
 * from 2, IQ4_XS and Q3_K from 3 to quant_r8k_avx2.c); on AVX-512 the
 * few-row products of Q2_K, Q3_K and IQ4_XS (the 32-block types' go to
 * quant_r16_avx512.c).
 */
#ifndef MOE_KERNELS_QUANT_EXTRA_KERN_H
#define MOE_KERNELS_QUANT_EXTRA_KERN_H

#include <immintrin.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"
#include "kernels/quant_q3k.h"

#define AI static inline __attribute__((always_inline))
#define XT 4 /* x rows per pass over a W row */
/* Keeps a running int32 sum in its register: unpinned, GCC reassociates a
 * super-block's 8 adds into a tree whose partial sums it spills (integer
 * adds: the same sums either way). */
#define XK_PIN(v) __asm__("" : "+x"(v))

AI float xk_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* f16 -> f32 with F16C: exact, as dtype.h's f16_to_f32. */
AI float xk_f16(uint16_t h) { return _cvtsh_ss(h); }

AI __m256i xk_dot(__m256i w, __m256i x) { return DOT32_I32(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w)); }

/* 16 bytes of nibbles: low nibbles to bytes 0..15, high to 16..31. */
AI __m256i xk_nibbles(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m128i m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m), _mm_and_si128(q, m));
}

/* 0x10 in byte j where bit j of the little-endian qh is set. */
AI __m256i xk_fifth(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3,
                                          3, 3, 3, 3, 3, 3, 3);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit), _mm256_set1_epi8(0x10));
}

AI __m256i xk_iq4_table(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl));
}

/* ------------------------------------------------------------ 32-blocks */

/* Signed weights of 32-block b of a row, its scale d and min m (0: none). */
AI __m256i xk_unpack32(const int T, const uint8_t *row, int64_t b, float *d, float *m) {
    if (T == QT_Q4_1) {
        const block_q4_1 *x = (const block_q4_1 *)row + b;
        *d = xk_f16(x->d), *m = xk_f16(x->m);
        return xk_nibbles(x->qs);
    }
    if (T == QT_Q5_0) {
        const block_q5_0 *x = (const block_q5_0 *)row + b;
        *d = xk_f16(x->d), *m = 0;
        return _mm256_sub_epi8(_mm256_or_si256(xk_nibbles(x->qs), xk_fifth(x->qh)), _mm256_set1_epi8(16));
    }
    if (T == QT_Q5_1) {
        const block_q5_1 *x = (const block_q5_1 *)row + b;
        *d = xk_f16(x->d), *m = xk_f16(x->m);
        return _mm256_or_si256(xk_nibbles(x->qs), xk_fifth(x->qh));
    }
    const block_iq4_nl *x = (const block_iq4_nl *)row + b;
    *d = xk_f16(x->d), *m = 0;
    return _mm256_shuffle_epi8(xk_iq4_table(), xk_nibbles(x->qs));
}

/* y[i][r] for x rows i in [0, nx) of the group starting at xq. */
AI void xk_row32(const int T, const qmm_job *j, const uint8_t *w, const uint8_t *xq, int nx, float *y) {
    const int64_t nb = j->cols / 32;
    __m256 acc[XT];
    float accm[XT];
    for (int i = 0; i < XT; i++) acc[i] = _mm256_setzero_ps(), accm[i] = 0;
    for (int64_t b = 0; b < nb; b++) {
        float d, m;
        const __m256i wv = xk_unpack32(T, w, b, &d, &m);
        for (int i = 0; i < nx; i++) {
            const uint8_t *xr = xq + (size_t)i * j->xq_row;
            const __m256i xv = _mm256_loadu_si256((const __m256i *)(qx32_qs(xr) + 32 * b));
            const float dx = qx32_dv(xr, nb)[8 * b];
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(xk_dot(wv, xv)), _mm256_set1_ps(d * dx), acc[i]);
            if (T == QT_Q4_1 || T == QT_Q5_1) /* cv = -sum(x) (c = 1) */
                accm[i] += (float)-qx32_cv(xr, nb)[8 * b] * (m * dx);
        }
    }
    for (int i = 0; i < nx; i++) y[(size_t)i * j->rows] = xk_hsum8(acc[i]) + accm[i];
}

/* ------------------------------------------------------------- K-blocks */

/* The int16 multipliers of the product pairs of values 32e .. 32e+31 from
 * 16 per-16 scales (bytes of s): pairs 0..7 scale 2e, 8..15 scale 2e+1. */
AI __m256i xk_sc16(__m128i s, int e) {
    const long long b = 0x0101010101010101LL;
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s, _mm_set_epi64x(b * (2 * e + 1), b * (2 * e))));
}

/* 4 in byte j where bit e of byte j of hm is set (e < 8). */
AI __m256i xk_q3_high(__m256i hm, int e) {
    const __m256i s = e >= 2 ? _mm256_srli_epi16(hm, e - 2) : _mm256_slli_epi16(hm, 2 - e);
    return _mm256_and_si256(s, _mm256_set1_epi8(4));
}

/* One super-block s of W row w against NX x rows xb[i]: adds each scaled
 * sum to acc[i] (vector) and its min term to accm[i]. The codes and
 * scales are unpacked once for the NX rows; each row's integer sums and
 * f32 operations are the same whatever NX, so decode and prefill give the
 * same bits.
 *   - Q2_K: codes 0..3 by vpmaddubsw, pairs times the per-16 scales
 *     (vpmaddwd) summed in int32; the mins through x's sums of 16.
 *   - Q3_K: codes q + 4 (0..7: the 2-bit field with 4 where hmask's bit
 *     is set), the same products with the signed scales, and the bias
 *     4 * sum_j sc_j * bsum_j taken out in int32.
 *   - IQ4_XS: kvalues_iq4nl by the sign trick, one scale per 32 values. */
AI void xk_superblock(const int T, const int NX, const uint8_t *w, int64_t s, const qx_k *const *xb, __m256 *acc,
                      float *accm) {
    __m256i isum[XT];
    for (int i = 0; i < NX; i++) isum[i] = _mm256_setzero_si256();
    if (T == QT_Q2_K || T == QT_Q3_K) {
        const block_q2_K *x2 = (const block_q2_K *)w + s;
        const block_q3_K *x3 = (const block_q3_K *)w + s;
        const __m128i sc = T == QT_Q2_K ? _mm_and_si128(_mm_loadu_si128((const __m128i *)x2->scales), _mm_set1_epi8(0x0F))
                                        : q3k_scales(x3->scales);
        const uint8_t *qs = T == QT_Q2_K ? x2->qs : x3->qs;
        const __m256i hm = T == QT_Q3_K ? _mm256_loadu_si256((const __m256i *)x3->hmask) : _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int e = 0; e < 8; e++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * (e / 4)));
            __m256i wv = _mm256_and_si256(_mm256_srli_epi16(q, 2 * (e % 4)), _mm256_set1_epi8(3));
            if (T == QT_Q3_K) wv = _mm256_or_si256(wv, xk_q3_high(hm, e));
            const __m256i sv = xk_sc16(sc, e);
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) {
                const __m256i xv = _mm256_load_si256((const __m256i *)(xb[i]->qs + 32 * e));
                isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), sv));
                XK_PIN(isum[i]);
            }
        }
        if (T == QT_Q2_K) {
            const __m256i mins = _mm256_srli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)x2->scales)), 4);
            const float d = xk_f16(x2->d), dmin = xk_f16(x2->dmin);
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) {
                __m256i mm = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)xb[i]->bsums));
                __m128i m4 = _mm_add_epi32(_mm256_castsi256_si128(mm), _mm256_extracti128_si256(mm, 1));
                m4 = _mm_add_epi32(m4, _mm_shuffle_epi32(m4, 0x4E));
                m4 = _mm_add_epi32(m4, _mm_shuffle_epi32(m4, 0xB1));
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(d * xb[i]->d), acc[i]);
                accm[i] -= (float)_mm_cvtsi128_si32(m4) * (dmin * xb[i]->d);
            }
        } else {
            const __m256i s16 = _mm256_cvtepi8_epi16(sc);
            const float d = xk_f16(x3->d);
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) {
                const __m256i bias = _mm256_madd_epi16(s16, _mm256_loadu_si256((const __m256i *)xb[i]->bsums));
                const __m256i t = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(bias, 2));
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(d * xb[i]->d), acc[i]);
            }
        }
        return;
    }
    const block_iq4_xs *x = (const block_iq4_xs *)w + s;
    const __m256i tab = xk_iq4_table();
#pragma GCC unroll 8
    for (int e = 0; e < 8; e++) {
        const __m256i wv = _mm256_shuffle_epi8(tab, xk_nibbles(x->qs + 16 * e)), av = _mm256_abs_epi8(wv);
        const int ls = (((x->scales_l[e / 2] >> 4 * (e % 2)) & 0xf) | (((x->scales_h >> 2 * e) & 3) << 4)) - 32;
        const __m256i sv = _mm256_set1_epi16((short)ls);
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            const __m256i xv = _mm256_load_si256((const __m256i *)(xb[i]->qs + 32 * e));
            isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(av, _mm256_sign_epi8(xv, wv)), sv));
            XK_PIN(isum[i]);
        }
    }
    const float d = xk_f16(x->d);
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++)
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(d * xb[i]->d), acc[i]);
}

AI void xk_rowk_n(const int T, const int NX, const qmm_job *j, const uint8_t *w, const uint8_t *xq, float *y) {
    const int64_t nb = j->cols / QK_K;
    __m256 acc[XT];
    float accm[XT];
    for (int i = 0; i < NX; i++) acc[i] = _mm256_setzero_ps(), accm[i] = 0;
    for (int64_t s = 0; s < nb; s++) {
        const qx_k *xb[XT];
        for (int i = 0; i < NX; i++) xb[i] = (const qx_k *)(xq + (size_t)i * j->xq_row) + s;
        xk_superblock(T, NX, w, s, xb, acc, accm);
    }
    for (int i = 0; i < NX; i++) y[(size_t)i * j->rows] = xk_hsum8(acc[i]) + accm[i];
}

AI void xk_rowk(const int T, const qmm_job *j, const uint8_t *w, const uint8_t *xq, int nx, float *y) {
    switch (nx) {
    case 1: xk_rowk_n(T, 1, j, w, xq, y); break;
    case 2: xk_rowk_n(T, 2, j, w, xq, y); break;
    case 3: xk_rowk_n(T, 3, j, w, xq, y); break;
    default: xk_rowk_n(T, XT, j, w, xq, y); break;
    }
}

/* ------------------------------------------------------------ row loops */

#define XK_ROWS_FN(T, NAME, ROW)                                                                 \
    static void rows_##NAME(const qmm_job *j, int64_t r0, int64_t r1) {                          \
        for (int64_t r = r0; r < r1; r++) {                                                      \
            const uint8_t *w = j->W + (size_t)r * j->w_row;                                      \
            for (int64_t i = 0; i < j->n; i += XT) {                                             \
                int nx = j->n - i < XT ? (int)(j->n - i) : XT;                                   \
                ROW(T, j, w, j->xq + (size_t)i * j->xq_row, nx, j->y + i * j->rows + r);         \
            }                                                                                    \
        }                                                                                        \
    }
XK_ROWS_FN(QT_Q4_1, q4_1, xk_row32)
XK_ROWS_FN(QT_Q5_0, q5_0, xk_row32)
XK_ROWS_FN(QT_Q5_1, q5_1, xk_row32)
XK_ROWS_FN(QT_IQ4_NL, iq4_nl, xk_row32)
XK_ROWS_FN(QT_Q2_K, q2_K, xk_rowk)
XK_ROWS_FN(QT_Q3_K, q3_K, xk_rowk)
XK_ROWS_FN(QT_IQ4_XS, iq4_xs, xk_rowk)

static void xk_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (r1 <= r0 || j->n <= 0) return;
    switch (j->type) {
    case QT_Q4_1: rows_q4_1(j, r0, r1); break;
    case QT_Q5_0: rows_q5_0(j, r0, r1); break;
    case QT_Q5_1: rows_q5_1(j, r0, r1); break;
    case QT_IQ4_NL: rows_iq4_nl(j, r0, r1); break;
    case QT_Q2_K: rows_q2_K(j, r0, r1); break;
    case QT_Q3_K: rows_q3_K(j, r0, r1); break;
    case QT_IQ4_XS: rows_iq4_xs(j, r0, r1); break;
    default: ref_qmm_rows(j, r0, r1); break;
    }
}

#endif
