/*
 * quant_extra_gemv_avx512.c - decode (n = 1) of Q2_K, Q3_K, IQ4_XS, Q4_1,
 * Q5_0, Q5_1 and IQ4_NL weights on 512-bit registers with VNNI, the way
 * quant_avx512.c decodes Q4_K / Q6_K / Q4_0: one register covers 64 values
 * (a quarter super-block, or two 32-blocks), the codes are unpacked to
 * unsigned bytes with broadcast loads, shifts and masks (no sign fix-ups),
 * and NR rows of W go at once as NR long streams (rows r0 + q * per + i)
 * with software prefetch into L2.
 *   - Q2_K: codes 0..3; vpmaddubsw pairs times the per-16 scales
 *     (vpdpwssd) summed over the super-block in int32; the mins through
 *     the activation's sums of 16 (vpmaddwd), scaled by dmin.
 *   - Q3_K: codes q + 4 (0..7, the third bit added under a byte mask), the
 *     same products with the signed per-16 scales; the bias 4 removed
 *     exactly in int32 through the sums of 16.
 *   - IQ4_XS: codes looked up as kvalues_iq4nl + 128 (0..241, too large
 *     for vpmaddubsw pairs), so vpdpbusd per 4 values; each 32-block's sum
 *     is exact in int32 and scaled in f32 by d * dx * (ls - 32); the bias
 *     128 through the sums of 32 codes of x. 128 values per register
 *     (gemv_iq4xs: the low and high nibbles of four sub-blocks), not 64.
 *   - 32-blocks: biased bytes (Q5_0: w + 16; IQ4_NL: kvalues_iq4nl + 128;
 *     Q4_1 / Q5_1 unsigned) by vpdpbusd started from the activation's cv
 *     (which removes the bias, quant_impl.h), scaled per block by d * dx;
 *     Q4_1 / Q5_1 add m * dx * sum(x) from cv (c = 1).
 * Integer sums are exact, so results differ from the scalar reference only
 * in the order of the f32 additions, and a row's result does not depend on
 * its group-mates (results do not depend on how threads split the rows).
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC target("avx512vnni")
#endif

#define AI static inline __attribute__((always_inline))
#define NR 4 /* W rows (streams) per pass */

AI uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
AI uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
AI void pf_l2(const uint8_t *p) { _mm_prefetch((const char *)p, _MM_HINT_T1); }

AI void put4(float *y, const __m512 *acc) {
    for (int r = 0; r < NR; r++) y[r] = _mm512_reduce_add_ps(acc[r]);
}

/* ------------------------------------------------------------ K-blocks */

/* Q2_K / Q3_K take the super-block in four registers k = 0..3, register k
 * holding bits 2k..2k+1 of all 64 bytes of qs: values 32k .. 32k+31 and
 * 128+32k .. 128+32k+31 (one shift and one mask each); x is loaded in the
 * same order once per super-block for all rows (xk_order). */
AI __m512i xk_order(const int8_t *qs, int k) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)(qs + 32 * k))),
                              _mm256_load_si256((const __m256i *)(qs + 128 + 32 * k)), 1);
}

/* Scale of each int16 pair of register k from the 16 per-16 scales (int16
 * lanes 0..15 of sc): sub-blocks 2k, 2k+1, 8+2k, 9+2k, 8 pairs each. */
AI __m512i scale16_k(__m512i sc, int k) {
    const __m512i idx = _mm512_set_epi16(9, 9, 9, 9, 9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1,
                                         0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_epi16(_mm512_add_epi16(idx, _mm512_set1_epi16((short)(2 * k))), sc);
}

/* The 16 6-bit scales of a Q3_K block as bytes (ggml's kmask arrangement
 * in a register); reads the 16 bytes before the block's d. */
AI __m128i q3_scales(const uint8_t *blk) {
    __m128i v = _mm_srli_si128(_mm_loadu_si128((const __m128i *)(blk + offsetof(block_q3_K, scales) - 4)), 4);
    __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 1, 0)); /* u0 u1 u0 u1 */
    a = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 4, 4)), _mm_set1_epi32(0x0f0f0f0f));
    __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2)); /* u2 */
    b = _mm_and_si128(_mm_srlv_epi32(b, _mm_setr_epi32(0, 2, 4, 6)), _mm_set1_epi32(0x03030303));
    return _mm_or_si128(a, _mm_slli_epi32(b, 4));
}

AI void gemv_k(const int T, float *y, const uint8_t *xq, int64_t nsb, const uint8_t *const *w, size_t pf) {
    const size_t bb = T == QT_Q2_K ? sizeof(block_q2_K) : sizeof(block_q3_K);
    __m512 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        const qx_k *xb = (const qx_k *)xq + s;
        const __m256i bs = _mm256_load_si256((const __m256i *)xb->bsums);
        const float dx = xb->d;
        __m512i xv[4];
        for (int c = 0; c < 4; c++) xv[c] = xk_order(xb->qs, c);
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)s * bb;
            for (size_t o = 0; o < bb; o += 64) pf_l2(blk + o + pf);
            __m512i ai = _mm512_setzero_si512();
            __m256i sc16, mins = _mm256_setzero_si256();
            const __m512i q = _mm512_loadu_si512((const void *)(blk + (T == QT_Q2_K ? offsetof(block_q2_K, qs)
                                                                                    : offsetof(block_q3_K, qs))));
            __m512i hm = _mm512_setzero_si512();
            if (T == QT_Q2_K) {
                __m256i sm = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)blk));
                sc16 = _mm256_and_si256(sm, _mm256_set1_epi16(0xF));
                mins = _mm256_srli_epi16(sm, 4);
            } else {
                sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(q3_scales(blk)), _mm256_set1_epi16(32));
                hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk));
            }
            const __m512i sc = _mm512_castsi256_si512(sc16);
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m512i u = _mm512_and_si512(k ? _mm512_srli_epi16(q, 2 * k) : q, _mm512_set1_epi8(3));
                if (T == QT_Q3_K) { /* hmask bit k (values 32k + l) and 4 + k (128 + 32k + l) of byte l */
                    const __m512i bit = _mm512_mask_set1_epi8(_mm512_set1_epi8((char)(1 << k)),
                                                              0xFFFFFFFF00000000ull, (char)(1 << (4 + k)));
                    u = _mm512_mask_add_epi8(u, _mm512_test_epi8_mask(hm, bit), u, _mm512_set1_epi8(4));
                }
                ai = _mm512_dpwssd_epi32(ai, _mm512_maddubs_epi16(u, xv[k]), scale16_k(sc, k));
            }
            if (T == QT_Q3_K) { /* sum((u - 4) s x) = sum(u s x) - 4 sum(s * bsum) */
                __m256i b4 = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 2);
                ai = _mm512_sub_epi32(ai, _mm512_zextsi256_si512(b4));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(_cvtsh_ss(rd16(blk + offsetof(block_q3_K, d))) * dx), acc[r]);
            } else {
                const block_q2_K *b = (const block_q2_K *)blk;
                __m256i mn = _mm256_madd_epi16(bs, mins);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ai), _mm512_set1_ps(_cvtsh_ss(b->d) * dx), acc[r]);
                acc[r] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(mn)),
                                          _mm512_set1_ps(_cvtsh_ss(b->dmin) * dx), acc[r]);
            }
        }
    }
    put4(y, acc);
}

/* IQ4_XS, 128 values per register: the 64 bytes of qs of four sub-blocks
 * give their low nibbles (values 0..15 of each) and their high nibbles
 * (16..31), both looked up, in one vpdpbusd each into the same sums, with x
 * rearranged to match once per super-block for all NR rows (two 128-bit
 * lane shuffles per half); each group of 4 int32 lanes is one sub-block's
 * exact sum, scaled in f32 once per 128 values. About 10 vector operations
 * per 128 weights where the 64-value form (gemv_k) took 18: one core, W in
 * L3, [768][2048] 54 -> 33 us, cold 57 -> 38-40 us (AMD Zen 4). */
AI void gemv_iq4xs(float *y, const uint8_t *xq, int64_t nsb, const uint8_t *const *w, size_t pf) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_biased_table()));
    const __m512i i0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(4));
    __m512 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        const qx_k *xb = (const qx_k *)xq + s;
        const __m256i bs = _mm256_load_si256((const __m256i *)xb->bsums);
        const float dx = xb->d;
        __m512i xl[2], xh[2];
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const __m512i a = _mm512_load_si512((const void *)(xb->qs + 128 * h));
            const __m512i b = _mm512_load_si512((const void *)(xb->qs + 128 * h + 64));
            xl[h] = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* values 0..15 of sub-blocks 4h..4h+3 */
            xh[h] = _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 1, 3, 1)); /* values 16..31 */
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)s * sizeof(block_iq4_xs);
            for (size_t o = 0; o < sizeof(block_iq4_xs); o += 64) pf_l2(blk + o + pf);
            const block_iq4_xs *b = (const block_iq4_xs *)blk;
            /* the 8 scales ls - 32 as f32 times d * dx */
            __m256i sl = _mm256_srlv_epi32(_mm256_set1_epi32((int)rd32(b->scales_l)),
                                           _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
            __m256i sh = _mm256_srlv_epi32(_mm256_set1_epi32((int)b->scales_h),
                                           _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
            __m256i ls = _mm256_or_si256(_mm256_and_si256(sl, _mm256_set1_epi32(0xF)),
                                         _mm256_slli_epi32(_mm256_and_si256(sh, _mm256_set1_epi32(3)), 4));
            const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))),
                                           _mm256_set1_ps(_cvtsh_ss(b->d) * dx));
            const __m512 f5 = _mm512_castps256_ps512(f);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m512i v = _mm512_loadu_si512((const void *)(b->qs + 64 * h));
                const __m512i lo = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
                const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
                __m512i t = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_shuffle_epi8(lut, lo), xl[h]);
                t = _mm512_dpbusd_epi32(t, _mm512_shuffle_epi8(lut, hi), xh[h]);
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_permutexvar_ps(h ? i1 : i0, f5), acc[r]);
            }
            /* - 128 * sum over the 32-blocks of f * (their sum of x codes) */
            __m256 s32 = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, _mm256_set1_epi16(1)));
            acc[r] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(s32),
                                      _mm512_zextps256_ps512(_mm256_mul_ps(f, _mm256_set1_ps(128.0f))), acc[r]);
        }
    }
    put4(y, acc);
}

/* ------------------------------------------------------------ 32-blocks */

/* Offsets in a 32-block: of the codes, of qh (0: none), of m (0: none). */
AI size_t off_qs(const int T) {
    return T == QT_Q4_1 ? offsetof(block_q4_1, qs) : T == QT_Q5_0 ? offsetof(block_q5_0, qs)
         : T == QT_Q5_1 ? offsetof(block_q5_1, qs) : offsetof(block_iq4_nl, qs);
}
AI size_t off_qh(const int T) { return T == QT_Q5_0 ? offsetof(block_q5_0, qh) : offsetof(block_q5_1, qh); }
AI size_t bsize32(const int T) {
    return T == QT_Q4_1 ? sizeof(block_q4_1) : T == QT_Q5_0 ? sizeof(block_q5_0)
         : T == QT_Q5_1 ? sizeof(block_q5_1) : sizeof(block_iq4_nl);
}

/* Biased codes of blocks b, b+1 (two = 0: block b only) in the
 * activations' order. */
AI __m512i codes_pair(const int T, const uint8_t *blk, int two, __m512i lut) {
    const size_t bb = bsize32(T), oq = off_qs(T);
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + oq)));
    if (two) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(blk + bb + oq)));
    v = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4), _mm512_set1_epi8(0x0F));
    if (T == QT_IQ4_NL) return _mm512_shuffle_epi8(lut, v);
    if (T == QT_Q5_0 || T == QT_Q5_1) {
        uint64_t h = rd32(blk + off_qh(T));
        if (two) h |= (uint64_t)rd32(blk + bb + off_qh(T)) << 32;
        v = _mm512_mask_add_epi8(v, _cvtu64_mask64(h), v, _mm512_set1_epi8(0x10));
    }
    return v;
}

/* *d = [d_b x 8 | d_b+1 x 8] and (Q4_1 / Q5_1) *m the same of the mins,
 * from the two blocks bb bytes apart at blk (two = 0: block b's x 16):
 * one 32-byte load, one word permute. */
AI void f16_pairs(const int T, const uint8_t *blk, size_t bb, int two, __m512 *d, __m512 *m) {
    const int has_m = T == QT_Q4_1 || T == QT_Q5_1;
    if (!two) {
        *d = _mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(blk)));
        if (has_m) *m = _mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(blk + 2)));
        return;
    }
    const short o = (short)(bb / 2), p = (short)(bb / 2 + 1);
    const __m512i idx = _mm512_set_epi16(p, p, p, p, p, p, p, p, 1, 1, 1, 1, 1, 1, 1, 1, o, o, o, o, o, o, o, o,
                                         0, 0, 0, 0, 0, 0, 0, 0);
    __m512i v = _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)blk)));
    *d = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
    if (has_m) *m = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
}

/* Blocks b, b+1 (two = 0: block b only) of the NR rows into acc. */
AI void step_32(const int T, const int two, __m512 *acc, const uint8_t *xq, int64_t nb, int64_t b,
                const uint8_t *const *w, size_t pf, __m512i lut) {
    const size_t bb = bsize32(T);
    const int has_m = T == QT_Q4_1 || T == QT_Q5_1;
    const __mmask64 mx = two ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
    const __mmask16 mv = two ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
    const __m512i xv = _mm512_maskz_loadu_epi8(mx, xq + (size_t)b * 32);
    const __m512 dv = _mm512_maskz_loadu_ps(mv, xq + (size_t)nb * 32 + (size_t)b * 32);
    const __m512i cv = _mm512_maskz_loadu_epi32(mv, xq + (size_t)nb * 64 + (size_t)b * 32);
    const __m512 cvf = has_m ? _mm512_mul_ps(_mm512_cvtepi32_ps(cv), dv) : _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        const uint8_t *blk = w[r] + (size_t)b * bb;
        pf_l2(blk + pf);
        __m512i t = _mm512_dpbusd_epi32(has_m ? _mm512_setzero_si512() : cv, codes_pair(T, blk, two, lut), xv);
        __m512 dw, mw = _mm512_setzero_ps();
        f16_pairs(T, blk, bb, two, &dw, &mw);
        acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dv, dw), acc[r]);
        if (has_m) /* + m * dx * sum(x), cv = -sum(x) */
            acc[r] = _mm512_fnmadd_ps(cvf, mw, acc[r]);
    }
}

AI void gemv_32(const int T, float *y, const uint8_t *xq, int64_t nb, const uint8_t *const *w, size_t pf) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_biased_table()));
    __m512 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) step_32(T, 1, acc, xq, nb, b, w, pf, lut);
    if (b < nb) step_32(T, 0, acc, xq, nb, b, w, pf, lut);
    put4(y, acc);
}

/* ------------------------------------------------------------ streams */

/* Rows [r0, r1) as NR runs of consecutive rows, group i taking row i of
 * each run (quant_avx512.c's gemv_streams); a run shorter than the others
 * repeats a row of the first (not stored). */
AI void streams(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int is32 = qt_is32(T);
    const int64_t nblk = is32 ? j->cols / 32 : j->cols / QK_K;
    const int64_t per = (r1 - r0 + NR - 1) / NR;
    const size_t pf = qstream_pf(j);
    for (int64_t i = 0; i < per; i++) {
        const uint8_t *w[NR];
        int64_t row[NR];
        qstream_rows(NR, j, r0, r1, per, i, w, row);
        float t[NR];
        if (is32)
            gemv_32(T, t, j->xq, nblk, w, pf);
        else if (T == QT_IQ4_XS)
            gemv_iq4xs(t, j->xq, nblk, w, pf);
        else
            gemv_k(T, t, j->xq, nblk, w, pf);
        for (int q = 0; q < NR; q++)
            if (row[q] >= 0) j->y[row[q]] = t[q];
    }
}

#define GEMV_FN(T, NAME) \
    static void gemv_##NAME(const qmm_job *j, int64_t r0, int64_t r1) { streams(T, j, r0, r1); }
GEMV_FN(QT_Q2_K, q2_K)
GEMV_FN(QT_Q3_K, q3_K)
GEMV_FN(QT_IQ4_XS, iq4_xs)
GEMV_FN(QT_Q4_1, q4_1)
GEMV_FN(QT_Q5_0, q5_0)
GEMV_FN(QT_Q5_1, q5_1)
GEMV_FN(QT_IQ4_NL, iq4_nl)

int avx512_extra_gemv(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_Q2_K: gemv_q2_K(j, r0, r1); return 1;
    case QT_Q3_K: gemv_q3_K(j, r0, r1); return 1;
    case QT_IQ4_XS: gemv_iq4_xs(j, r0, r1); return 1;
    case QT_Q4_1: gemv_q4_1(j, r0, r1); return 1;
    case QT_Q5_0: gemv_q5_0(j, r0, r1); return 1;
    case QT_Q5_1: gemv_q5_1(j, r0, r1); return 1;
    case QT_IQ4_NL: gemv_iq4_nl(j, r0, r1); return 1;
    default: return 0;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
