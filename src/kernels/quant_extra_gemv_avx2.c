/*
 * quant_extra_gemv_avx2.c - decode (n = 1) on AVX2 of Q2_K, Q3_K, IQ4_XS
 * and the 32-block types but Q8_0 (Q4_0, MXFP4, Q4_1, Q5_0, Q5_1, IQ4_NL):
 * NR rows of W at once as NR long streams (rows r0 + q * per + i,
 * quant_impl.h's qstream_rows) with software prefetch, the codes unpacked
 * straight into the registers the products take, and no per-32 work that a
 * super-block or a pair of blocks could do once:
 *   - Q2_K / Q3_K: values 128n + 32j + l are bits 2j..2j+1 of qs[32n + l]
 *     (one shift, one mask; Q3_K adds 4 where hmask's bit 4n + j is set:
 *     codes q + 4, 0..7); vpmaddubsw pairs them with x, vpmaddwd weighs the
 *     pairs by their 16-value scales, which come from one register of the
 *     16 scales made per super-block and one in-lane vpshufb per 32 values
 *     (the kernel before took a shuffle and a lane-crossing widening per
 *     32); int32 sums over the super-block, scaled once by d * dx. Q2_K's
 *     mins and Q3_K's bias 4 go through x's sums of 16 (vpmaddwd).
 *   - IQ4_XS: the 32 bytes of qs of sub-blocks 2p, 2p+1 give, by their low
 *     and high nibbles, values 0..15 and 16..31 of both (lane 0: 2p, lane
 *     1: 2p + 1), looked up in kvalues_iq4nl and in its magnitudes (two
 *     vpshufb) and taken by the sign trick (vpsignb, vpmaddubsw: at most
 *     2 * 127 * 127 a pair); x is rearranged to match once per super-block
 *     for all NR rows. The 8 scales ls - 32 are made once per super-block,
 *     one vpshufb per 64 values gives a pair's.
 *   - 32-blocks by pairs: the codes of blocks b, b + 1 in one register
 *     (lane 0: b, lane 1: b + 1), their low and high nibbles the values
 *     0..15 and 16..31 of both, x rearranged to match once for the NR rows;
 *     unsigned codes (at most 31) take one vpmaddubsw each and one int16
 *     add, their bias removed through the activation's cv; IQ4_NL by the
 *     sign trick; one fma per pair with [d dx] of each block.
 * Integer sums are exact, so results differ from the scalar reference only
 * in the order of the f32 additions, and a row's result does not depend on
 * its group-mates (nor on how threads split the rows). Each K-block output
 * takes the f32 steps of quant_extra_kern.h's few-row kernels (the same int32
 * lane sums, one fma per super-block, Q2_K's mins in a scalar, the lanes
 * added as xk_hsum8): IQ4_XS decode gives the bits those give a row among
 * 2 (on AVX2 they take IQ4_XS's products of 2 rows of x; Q2_K's and Q3_K's
 * of several go to the interleaved kernel, quant_r8k_avx2.c, whose bits
 * differ in the last place), and IQ4_XS packed at load
 * (quant_r8k_packed_avx2.c's p4_gemv) the stored matrix's.
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "kernels/quant_impl.h"
#include "kernels/quant_q3k.h"

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
AI float f16s(const uint8_t *p) { return _cvtsh_ss(rd16(p)); }

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The vpshufb control that makes [s(2j) x 8 | s(2j+1) x 8] of a register
 * holding 8 int16 scales s(0..7) in both lanes: low lane bytes 4j, 4j + 1,
 * high lane bytes 4j + 2, 4j + 3, each pair repeated 8 times. */
AI __m256i scale_pick(int j) {
    const char a = (char)(4 * j), b = (char)(4 * j + 1), c = (char)(4 * j + 2), d = (char)(4 * j + 3);
    return _mm256_setr_epi8(a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, c, d, c, d, c, d, c, d, c, d, c, d, c,
                            d, c, d);
}

/* ------------------------------------------------------------ Q2_K, Q3_K */

/* 4 in byte l where bit b of byte l of hm is set (b < 8). */
AI __m256i q3_high(__m256i hm, int b) {
    const __m256i s = b >= 2 ? _mm256_srli_epi16(hm, b - 2) : _mm256_slli_epi16(hm, 2 - b);
    return _mm256_and_si256(s, _mm256_set1_epi8(4));
}

AI void gemv_k23(const int T, float *y, const uint8_t *xq, int64_t nsb, const uint8_t *const *w, size_t pf) {
    const size_t bb = T == QT_Q2_K ? sizeof(block_q2_K) : sizeof(block_q3_K);
    const size_t oqs = T == QT_Q2_K ? offsetof(block_q2_K, qs) : offsetof(block_q3_K, qs);
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[NR];
    float accm[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps(), accm[r] = 0;
    for (int64_t s = 0; s < nsb; s++) {
        const qx_k *xb = (const qx_k *)xq + s;
        const __m256i bs = _mm256_load_si256((const __m256i *)xb->bsums);
        const float dx = xb->d;
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)s * bb;
            _mm_prefetch((const char *)blk + pf, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + pf + 64, _MM_HINT_T0);
            __m256i sc16, mins = _mm256_setzero_si256(), hm = _mm256_setzero_si256();
            if (T == QT_Q2_K) {
                const __m128i sm = _mm_loadu_si128((const __m128i *)(blk + offsetof(block_q2_K, scales)));
                sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sm, _mm_set1_epi8(0x0F)));
                mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm_set1_epi8(0x0F)));
            } else {
                sc16 = _mm256_cvtepi8_epi16(q3k_scales(blk + offsetof(block_q3_K, scales)));
                hm = _mm256_loadu_si256((const __m256i *)(blk + offsetof(block_q3_K, hmask)));
            }
            __m256i isum = _mm256_setzero_si256();
#pragma GCC unroll 2
            for (int n = 0; n < 2; n++) {
                /* both lanes: the scales of sub-blocks 8n .. 8n + 7 */
                const __m256i S = n ? _mm256_permute2x128_si256(sc16, sc16, 0x11)
                                    : _mm256_permute2x128_si256(sc16, sc16, 0x00);
                const __m256i q = _mm256_loadu_si256((const __m256i *)(blk + oqs + 32 * n));
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    __m256i u = _mm256_and_si256(j ? _mm256_srli_epi16(q, 2 * j) : q, m3);
                    if (T == QT_Q3_K) u = _mm256_or_si256(u, q3_high(hm, 4 * n + j));
                    const __m256i xv = _mm256_load_si256((const __m256i *)(xb->qs + 128 * n + 32 * j));
                    const __m256i p = _mm256_maddubs_epi16(u, xv);
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(S, scale_pick(j))));
                }
            }
            if (T == QT_Q2_K) {
                const block_q2_K *b = (const block_q2_K *)blk;
                const __m256i mm = _mm256_madd_epi16(mins, bs);
                __m128i m4 = _mm_add_epi32(_mm256_castsi256_si128(mm), _mm256_extracti128_si256(mm, 1));
                m4 = _mm_add_epi32(m4, _mm_shuffle_epi32(m4, 0x4E));
                m4 = _mm_add_epi32(m4, _mm_shuffle_epi32(m4, 0xB1));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(_cvtsh_ss(b->d) * dx), acc[r]);
                accm[r] -= (float)_mm_cvtsi128_si32(m4) * (_cvtsh_ss(b->dmin) * dx);
            } else { /* sum((u - 4) s x) = sum(u s x) - 4 sum(s * bsum) */
                isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(_mm256_madd_epi16(sc16, bs), 2));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum),
                                         _mm256_set1_ps(f16s(blk + offsetof(block_q3_K, d)) * dx), acc[r]);
            }
        }
    }
    for (int r = 0; r < NR; r++) y[r] = hsum8(acc[r]) + accm[r];
}

/* ------------------------------------------------------------- IQ4_XS */

AI void gemv_iq4xs(float *y, const uint8_t *xq, int64_t nsb, const uint8_t *const *w, size_t pf) {
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl));
    const __m256i atab = _mm256_abs_epi8(tab), m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    __m256i xa[8]; /* pair p: xa[2p] values 0..15 of sub-blocks 2p | 2p+1, xa[2p+1] values 16..31 */
    for (int64_t s = 0; s < nsb; s++) {
        const qx_k *xb = (const qx_k *)xq + s;
        const float dx = xb->d;
        for (int p = 0; p < 4; p++) {
            const __m256i a = _mm256_load_si256((const __m256i *)(xb->qs + 64 * p));
            const __m256i b = _mm256_load_si256((const __m256i *)(xb->qs + 64 * p + 32));
            xa[2 * p] = _mm256_permute2x128_si256(a, b, 0x20);
            xa[2 * p + 1] = _mm256_permute2x128_si256(a, b, 0x31);
        }
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const block_iq4_xs *b = (const block_iq4_xs *)(w[r] + (size_t)s * sizeof(block_iq4_xs));
            _mm_prefetch((const char *)b + pf, _MM_HINT_T0);
            _mm_prefetch((const char *)b + pf + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)b + pf + 128, _MM_HINT_T0);
            /* ls - 32 of sub-blocks 0, 2, 4, 6 in the low lane's int32s, 1, 3, 5, 7 in the high */
            const __m256i sl = _mm256_srlv_epi32(_mm256_set1_epi32((int)rd32(b->scales_l)),
                                                 _mm256_setr_epi32(0, 8, 16, 24, 4, 12, 20, 28));
            const __m256i sh = _mm256_srlv_epi32(_mm256_set1_epi32((int)b->scales_h),
                                                 _mm256_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14));
            const __m256i ls = _mm256_sub_epi32(_mm256_or_si256(_mm256_and_si256(sl, _mm256_set1_epi32(0xF)),
                                                                _mm256_slli_epi32(_mm256_and_si256(sh, _mm256_set1_epi32(3)), 4)),
                                                _mm256_set1_epi32(32));
            __m256i slo = _mm256_setzero_si256(), shi = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int p = 0; p < 4; p++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * p));
                const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                /* [ls(2p) x 8 | ls(2p+1) x 8] as int16: int32 element p of each lane */
                const char c0 = (char)(4 * p), c1 = (char)(4 * p + 1);
                const __m256i sv = _mm256_shuffle_epi8(ls, _mm256_setr_epi8(c0, c1, c0, c1, c0, c1, c0, c1, c0, c1, c0, c1,
                                                                            c0, c1, c0, c1, c0, c1, c0, c1, c0, c1, c0, c1,
                                                                            c0, c1, c0, c1, c0, c1, c0, c1));
                const __m256i pl = _mm256_maddubs_epi16(_mm256_shuffle_epi8(atab, lo),
                                                        _mm256_sign_epi8(xa[2 * p], _mm256_shuffle_epi8(tab, lo)));
                const __m256i ph = _mm256_maddubs_epi16(_mm256_shuffle_epi8(atab, hi),
                                                        _mm256_sign_epi8(xa[2 * p + 1], _mm256_shuffle_epi8(tab, hi)));
                slo = _mm256_add_epi32(slo, _mm256_madd_epi16(pl, sv));
                shi = _mm256_add_epi32(shi, _mm256_madd_epi16(ph, sv));
            }
            /* int32 lane k of the stored kernels' sums: values 4k .. 4k + 3
             * of every sub-block (k < 4), 16 + 4(k - 4) .. (k >= 4) */
            const __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(slo, shi, 0x20),
                                                  _mm256_permute2x128_si256(slo, shi, 0x31));
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(_cvtsh_ss(b->d) * dx), acc[r]);
        }
    }
    for (int r = 0; r < NR; r++) y[r] = hsum8(acc[r]) + 0.0f;
}

/* ------------------------------------------------------------ 32-blocks */

/* [h(a) x 4 | h(b) x 4] as f32 from the f16s at a and b (b NULL: zeros). */
AI __m256 f16_pair(const uint8_t *a, const uint8_t *b) {
    const __m128i lo = _mm_set1_epi16((short)rd16(a));
    const __m128i hi = b ? _mm_set1_epi16((short)rd16(b)) : _mm_setzero_si128();
    return _mm256_cvtph_ps(_mm_unpacklo_epi64(lo, hi));
}

/* Offsets in a 32-block: of the codes, of qh; its size. */
AI size_t off_qs(const int T) {
    return T == QT_Q4_0 ? offsetof(block_q4_0, qs) : T == QT_MXFP4 ? offsetof(block_mxfp4, qs)
         : T == QT_Q4_1 ? offsetof(block_q4_1, qs) : T == QT_Q5_0 ? offsetof(block_q5_0, qs)
         : T == QT_Q5_1 ? offsetof(block_q5_1, qs) : offsetof(block_iq4_nl, qs);
}
AI size_t off_qh(const int T) { return T == QT_Q5_0 ? offsetof(block_q5_0, qh) : offsetof(block_q5_1, qh); }
AI size_t bsize32(const int T) {
    return T == QT_Q4_0 ? sizeof(block_q4_0) : T == QT_MXFP4 ? sizeof(block_mxfp4)
         : T == QT_Q4_1 ? sizeof(block_q4_1) : T == QT_Q5_0 ? sizeof(block_q5_0)
         : T == QT_Q5_1 ? sizeof(block_q5_1) : sizeof(block_iq4_nl);
}

/* The scales of blocks b, b + 1 (blk1 NULL: block b only) as [d x 4 | d' x 4]. */
AI __m256 scale_pair(const int T, const uint8_t *blk, const uint8_t *blk1) {
    if (T == QT_MXFP4)
        return _mm256_setr_m128(_mm_set1_ps(mxfp4_scale_half(blk[0])),
                                blk1 ? _mm_set1_ps(mxfp4_scale_half(blk1[0])) : _mm_setzero_ps());
    return f16_pair(blk, blk1);
}

/* 0x10 in the bytes of the codes registers whose fifth bit is set: lo
 * takes bits 0..15 of each block's qh, hi bits 16..31 (lane 0: block b,
 * lane 1: b + 1). */
AI void fifth_pair(uint64_t h, __m256i *lo, __m256i *hi) {
    const __m256i hv = _mm256_set1_epi64x((long long)h);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL), x10 = _mm256_set1_epi8(0x10);
    const __m256i sl = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5,
                                        5, 5, 5, 5, 5, 5);
    const __m256i sh = _mm256_add_epi8(sl, _mm256_set1_epi8(2));
    const __m256i fl = _mm256_and_si256(_mm256_shuffle_epi8(hv, sl), bit);
    const __m256i fh = _mm256_and_si256(_mm256_shuffle_epi8(hv, sh), bit);
    *lo = _mm256_or_si256(*lo, _mm256_and_si256(_mm256_cmpeq_epi8(fl, bit), x10));
    *hi = _mm256_or_si256(*hi, _mm256_and_si256(_mm256_cmpeq_epi8(fh, bit), x10));
}

/* Blocks b and b + 1 (two = 0: block b only) of the NR rows into acc: the
 * codes of both from one register, low nibbles (values 0..15) and high
 * (16..31) with lane 0 block b, lane 1 block b + 1, x rearranged to match
 * once for the NR rows; int32 lanes 0..3 sum block b, 4..7 block b + 1,
 * scaled by [d dx] of each. The bias of Q4_0 (w + 8), Q5_0 (w + 16) and
 * MXFP4 (kvalues_mxfp4 + 12, looked up) through cv, Q4_1 / Q5_1's m dx
 * sum(x) from cv (c = 1: -sum(x)); IQ4_NL by the sign trick. */
AI void step_32(const int T, const int two, __m256 *acc, const uint8_t *xq, int64_t nb, int64_t b,
                const uint8_t *const *w, size_t pf) {
    const size_t bb = bsize32(T), oq = off_qs(T);
    const int has_m = T == QT_Q4_1 || T == QT_Q5_1;
    const int8_t *xs = qx32_qs(xq) + 32 * b;
    const float *dv = qx32_dv(xq, nb) + 8 * b;
    const int32_t *cv = qx32_cv(xq, nb) + 8 * b;
    const __m256i xa = _mm256_loadu_si256((const __m256i *)xs);
    const __m256i xb = two ? _mm256_loadu_si256((const __m256i *)(xs + 32)) : _mm256_setzero_si256();
    const __m256i xlo = _mm256_permute2x128_si256(xa, xb, 0x20), xhi = _mm256_permute2x128_si256(xa, xb, 0x31);
    const __m128 dx0 = _mm_loadu_ps(dv);
    const __m256 dxp = _mm256_insertf128_ps(_mm256_castps128_ps256(dx0), two ? _mm_loadu_ps(dv + 8) : _mm_setzero_ps(), 1);
    const __m128i cv0 = _mm_loadu_si128((const __m128i *)cv);
    const __m256i cvp = _mm256_inserti128_si256(_mm256_castsi128_si256(cv0),
                                                two ? _mm_loadu_si128((const __m128i *)(cv + 8)) : _mm_setzero_si128(), 1);
    const __m256 cvf = has_m ? _mm256_mul_ps(_mm256_cvtepi32_ps(cvp), dxp) : _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
#pragma GCC unroll 4
    for (int r = 0; r < NR; r++) {
        const uint8_t *blk = w[r] + (size_t)b * bb, *blk1 = two ? blk + bb : NULL;
        _mm_prefetch((const char *)blk + pf, _MM_HINT_T0);
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + oq));
        const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q0),
                                                  two ? _mm_loadu_si128((const __m128i *)(blk1 + oq)) : q0, 1);
        __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), isum;
        if (T == QT_IQ4_NL) {
            const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl));
            const __m256i atab = _mm256_abs_epi8(tab);
            const __m256i pl = _mm256_maddubs_epi16(_mm256_shuffle_epi8(atab, lo),
                                                    _mm256_sign_epi8(xlo, _mm256_shuffle_epi8(tab, lo)));
            const __m256i ph = _mm256_maddubs_epi16(_mm256_shuffle_epi8(atab, hi),
                                                    _mm256_sign_epi8(xhi, _mm256_shuffle_epi8(tab, hi)));
            isum = _mm256_add_epi32(_mm256_madd_epi16(pl, ones), _mm256_madd_epi16(ph, ones));
        } else {
            if (T == QT_MXFP4) {
                const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mxfp4_biased_table()));
                lo = _mm256_shuffle_epi8(lut, lo), hi = _mm256_shuffle_epi8(lut, hi);
            }
            if (T == QT_Q5_0 || T == QT_Q5_1) {
                uint64_t h = rd32(blk + off_qh(T));
                if (two) h |= (uint64_t)rd32(blk1 + off_qh(T)) << 32;
                fifth_pair(h, &lo, &hi);
            }
            /* codes <= 31: each pair <= 2 * 31 * 127, two pairs fit int16 */
            isum = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi)), ones);
            if (T == QT_Q4_0 || T == QT_Q5_0 || T == QT_MXFP4) isum = _mm256_add_epi32(isum, cvp); /* - c sum(x) */
        }
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(scale_pair(T, blk, blk1), dxp), acc[r]);
        if (has_m) acc[r] = _mm256_fnmadd_ps(cvf, f16_pair(blk + 2, blk1 ? blk1 + 2 : NULL), acc[r]);
    }
}

AI void gemv_32(const int T, float *y, const uint8_t *xq, int64_t nb, const uint8_t *const *w, size_t pf) {
    __m256 acc[NR];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) step_32(T, 1, acc, xq, nb, b, w, pf);
    if (b < nb) step_32(T, 0, acc, xq, nb, b, w, pf);
    for (int r = 0; r < NR; r++) y[r] = hsum8(acc[r]);
}

/* ------------------------------------------------------------ streams */

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
            gemv_k23(T, t, j->xq, nblk, w, pf);
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
GEMV_FN(QT_Q4_0, q4_0)
GEMV_FN(QT_MXFP4, mxfp4)

int avx2_extra_gemv(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_Q2_K: gemv_q2_K(j, r0, r1); return 1;
    case QT_Q3_K: gemv_q3_K(j, r0, r1); return 1;
    case QT_IQ4_XS: gemv_iq4_xs(j, r0, r1); return 1;
    case QT_Q4_1: gemv_q4_1(j, r0, r1); return 1;
    case QT_Q5_0: gemv_q5_0(j, r0, r1); return 1;
    case QT_Q5_1: gemv_q5_1(j, r0, r1); return 1;
    case QT_IQ4_NL: gemv_iq4_nl(j, r0, r1); return 1;
    case QT_Q4_0: gemv_q4_0(j, r0, r1); return 1;
    case QT_MXFP4: gemv_mxfp4(j, r0, r1); return 1;
    default: return 0;
    }
}
