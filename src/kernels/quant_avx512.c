/*
 * quant_avx512.c - the quantized matmul with AVX-512 BW + VNNI: integer dot
 * products of weight blocks with 8-bit activations (vpdpbusd, vpdpwssd),
 * scaled per block in f32. Runs only when quant.c has seen the CPU has
 * AVX-512 F/BW/VL/DQ and VNNI.
 *
 * One register covers 64 values: two 32-blocks of Q4_0/Q8_0/MXFP4, or a
 * quarter of a K-quant super-block. The weights are unpacked to unsigned
 * bytes in the activations' order (nibbles and high bits spread with shifts
 * and masks; MXFP4's nibbles then looked up with vpshufb as
 * kvalues_mxfp4 + 12), then
 *   - Q4_0/Q8_0/MXFP4: vpdpbusd(cv, w + c, x) gives each block's sum in 8 lanes,
 *     the bias c removed exactly by cv (quant_impl.h); converted to f32 and
 *     scaled by dw*dx per block (two scales per register);
 *   - K-quants: vpmaddubsw pairs (at most 2*63*127, no saturation) then
 *     vpdpwssd with the sub-block scales accumulates the whole super-block
 *     in int32, scaled once by d*dx; the mins (Q4_K/Q5_K) and the -32 bias
 *     (Q6_K) go through the activation's sums of 16 (vpmaddwd).
 * Integer sums are exact, so results differ from the scalar reference only
 * in the order of the f32 additions.
 *
 * Tiles: NX rows of x by NR rows of W, each W register reused NX times and
 * each x register NR times. Decode (n = 1) takes 8 (32-blocks) or 4
 * (K-quants) W rows at once, one from each of 8 (4) long runs of rows
 * (gemv_streams), with software prefetch further along each run, so that
 * many memory streams are in flight; prefill takes 4 x 4 or 4 x 2 tiles. A
 * partial group of W rows repeats a row, so every output is computed the
 * same way wherever a thread's range starts (results do not depend on the
 * number of threads). The Q4_0 decode takes four blocks per register instead
 * of two (gemv_q4_0, with AVX512_VBMI byte permutes): its unpacking, not
 * memory, bounded it. Where AMX is on, Q4_0 / Q8_0 (Q4_K) products of
 * several x rows go to quant_amx_avx512.c (quant_amx_k_avx512.c) instead of
 * the tiles here. Without AMX, the products of the 32-block types with a few
 * x rows or more (Q8_0, Q4_1, Q5_0, Q5_1, IQ4_NL: 2; Q4_0, MXFP4: 4) go to
 * quant_r16_avx512.c, whose registers hold 16 W rows, interleaved on the fly
 * (one vpdpbusd per 64 products and one scale per 16 rows and block, no
 * horizontal sums), and Q4_K / Q5_K (Q6_K) products of 2 (5) or more x
 * rows (IQ4_XS: 2, quant_extra_avx512.c) to its twin for the 256-blocks,
 * quant_r16k_avx512.c; avx512_qmm_rows hands Q4_1, Q5_0, Q5_1 and IQ4_NL
 * products of one x row, and the other types, to quant_extra_avx512.c.
 */
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni,avx512vbmi"))), apply_to = function)
#else
#pragma GCC target("avx512vnni,avx512vbmi")
#endif

#define AI static inline __attribute__((always_inline))


/* ------------------------------------------------------------ helpers */

/* {sum(a0), sum(a1), sum(a2), sum(a3)} */
AI __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
    __m256 v = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
    return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

/* y[j] = sum(acc[j]) for j < rw of NR accumulators (NR a multiple of 2). */
AI void put_sums(const int NR, float *y, const __m512 *acc, int rw) {
    if (NR % 4 == 0) {
#pragma GCC unroll 8
        for (int j = 0; j < NR; j += 4) {
            if (j >= rw) break;
            __m128 s = hsum4(acc[j], acc[j + 1], acc[j + 2], acc[j + 3]);
            int m = rw - j < 4 ? rw - j : 4;
            _mm_mask_storeu_ps(y + j, (__mmask8)((1u << m) - 1), s);
        }
    } else {
#pragma GCC unroll 8
        for (int j = 0; j < NR; j++)
            if (j < rw) y[j] = _mm512_reduce_add_ps(acc[j]);
    }
}

AI uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Software prefetch of W into L2, pf bytes ahead of each load: in decode
 * (gemv_streams) the same place one or two rows on in the same stream, in
 * the GEMM tiles the same place PF_GROUPS row groups on. Both are steady
 * distances that never fall off the end of a row. Into L2 rather than L1
 * streamed 3-7% faster (alternating trials in one process, Q4_0 / Q8_0 /
 * Q6_K, 2 threads). */
#define PF_GROUPS 2
AI void prefetch_ahead(const uint8_t *p, size_t pf) { _mm_prefetch((const char *)p + pf, _MM_HINT_T1); }

/* --------------------------------------------------- Q4_0 / Q8_0 (pairs) */

/* Biased weight bytes of blocks b, b+1 (b1 = 0: only block b, the upper
 * half zero) in the activations' order: [b: 0..31 | b+1: 0..31]. */
AI __m512i w_q4_0_pair(const uint8_t *blk, int two) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 2)));
    if (two) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(blk + 20)));
    v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
}

/* MXFP4: the nibbles as for Q4_0 (codes at +1, blocks 17 bytes apart),
 * looked up as kvalues_mxfp4 + MXFP4_BIAS. */
AI __m512i w_mxfp4_pair(const uint8_t *blk, int two) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 1)));
    if (two) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(blk + 18)));
    v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
    v = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
    const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)mxfp4_biased_table()));
    return _mm512_shuffle_epi8(lut, v);
}

/* [d_b x 8 | d_b+1 x 8]: the two MXFP4 blocks' scales, halved (the codes
 * are doubled). */
AI __m512 w_mxfp4_scale_pair(const uint8_t *blk, int two) {
    __m512 d = _mm512_set1_ps(mxfp4_scale_half(blk[0]));
    if (two) d = _mm512_mask_broadcastss_ps(d, 0xFF00, _mm_set_ss(mxfp4_scale_half(blk[17])));
    return d;
}

AI __m512i w_q8_0_pair(const uint8_t *blk, int two) {
    __m512i v = _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(blk + 2)));
    if (two) v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)(blk + 36)), 1);
    return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
}

/* [d_b x 8 | d_b+1 x 8] widened from the two blocks' f16 scales, which
 * sit bb bytes apart at blk (one load and one word permute; the tail block
 * alone takes the slower broadcasts so as not to read past the row). */
AI __m512 w_scale_pair(const uint8_t *blk, size_t bb, int two) {
    if (!two) return _mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(blk)));
    const short o = (short)(bb / 2);
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, o, o, o, o, o, o, o,
                                         o, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512i v = bb + 2 <= 32 ? _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)blk))
                             : _mm512_loadu_si512((const void *)blk);
    return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(idx, v)));
}

/* Kinds of 32-block weights for tile32. */
enum { K8 = 0, K4 = 1, KMX = 2 };

/* y[i*ys + r] for i < NX, r < rw: x rows at xq (stride xs) against the NR
 * W rows w[] (Q8_0, Q4_0 or MXFP4 as K says), nb blocks each. */
AI void tile32(const int NX, const int NR, const int K, float *y, int64_t ys, const uint8_t *xq,
               size_t xs, int64_t nb, const uint8_t *const *w, int rw, size_t pf) {
    const size_t bb = K == K4 ? sizeof(block_q4_0) : K == KMX ? sizeof(block_mxfp4) : sizeof(block_q8_0);
    const size_t off_dv = (size_t)nb * 32, off_cv = (size_t)nb * 64;
    __m512 acc[4][8];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) acc[i][r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const int two = b + 1 < nb;
        __m512i wv[8];
        __m512 dw[8];
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)b * bb;
            if (NX == 1) {
                prefetch_ahead(blk, pf);
                if (K == K8) prefetch_ahead(blk + 64, pf);
            }
            if (K == KMX) {
                wv[r] = w_mxfp4_pair(blk, two);
                dw[r] = w_mxfp4_scale_pair(blk, two);
            } else {
                wv[r] = K == K4 ? w_q4_0_pair(blk, two) : w_q8_0_pair(blk, two);
                dw[r] = w_scale_pair(blk, bb, two);
            }
        }
        const __mmask64 mx = two ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
        const __mmask16 mv = two ? (__mmask16)0xFFFF : (__mmask16)0x00FF;
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            __m512i xv = _mm512_maskz_loadu_epi8(mx, xr + (size_t)b * 32);
            __m512 dv = _mm512_maskz_loadu_ps(mv, xr + off_dv + (size_t)b * 32);
            __m512i cv = _mm512_maskz_loadu_epi32(mv, xr + off_cv + (size_t)b * 32);
#pragma GCC unroll 8
            for (int r = 0; r < NR; r++) {
                __m512i t = _mm512_dpbusd_epi32(cv, wv[r], xv);
                acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dv, dw[r]), acc[i][r]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) put_sums(NR, y + i * ys, acc[i], rw);
}

/* ------------------------------------------------- Q4_0 GEMV (4 blocks) */

/* Decode (n = 1) of Q4_0 takes four blocks of a W row per register: their
 * 72 bytes ([d | 16 code bytes] x 4) come from one 64-byte load and one
 * 8-byte load (nothing past the row), one vpermt2b gathers the 64 code
 * bytes and one vpermw spreads the four scales, 4 lanes per block (vpdpbusd
 * sums 4 bytes per lane). The activation row is rearranged to match once
 * per 4 blocks for all the rows of a group: the low and high halves of the
 * four blocks' codes, the scales and the bias term (quant_impl.h), 4 lanes
 * per block. A last group of kb < 4 blocks uses masked loads (zero codes
 * and scales beyond it). */
typedef struct {
    __m512i lo, hi, cv; /* codes of values 0..15 / 16..31 of 4 blocks; bias term */
    __m512 dx;          /* scales, 4 lanes per block */
} x4_t;

AI x4_t x4_load(const uint8_t *xq, int64_t nb, int64_t b, int kb) {
    const int8_t *qs = qx32_qs(xq) + 32 * b;
    const float *dv = qx32_dv(xq, nb) + 8 * b;
    const int32_t *cv = qx32_cv(xq, nb) + 8 * b;
    const __mmask64 mq0 = kb >= 2 ? ~(__mmask64)0 : (__mmask64)0xFFFFFFFFu;
    const __mmask64 mq1 = kb >= 4 ? ~(__mmask64)0 : kb == 3 ? (__mmask64)0xFFFFFFFFu : 0;
    const __mmask16 md0 = kb >= 2 ? 0xFFFF : 0x00FF, md1 = kb >= 4 ? 0xFFFF : kb == 3 ? 0x00FF : 0;
    __m512i q0 = _mm512_maskz_loadu_epi8(mq0, qs), q1 = _mm512_maskz_loadu_epi8(mq1, qs + 64);
    /* byte 16k + i of the result <- byte 32k + i (lo) or 32k + 16 + i (hi) */
    const __m512i ilo = _mm512_set_epi8(111, 110, 109, 108, 107, 106, 105, 104, 103, 102, 101, 100, 99, 98, 97, 96,
                                        79, 78, 77, 76, 75, 74, 73, 72, 71, 70, 69, 68, 67, 66, 65, 64,
                                        47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32,
                                        15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i ihi = _mm512_add_epi8(ilo, _mm512_set1_epi8(16));
    x4_t x;
    x.lo = _mm512_permutex2var_epi8(q0, ilo, q1);
    x.hi = _mm512_permutex2var_epi8(q0, ihi, q1);
    /* lane 4k + l <- lane 8k of the two blocks' 8 repeated scales; the bias
     * term only in lane 4k (lanes 8k + 1.. of cv are 0) */
    const __m512i id = _mm512_set_epi32(24, 24, 24, 24, 16, 16, 16, 16, 8, 8, 8, 8, 0, 0, 0, 0);
    const __m512i ic = _mm512_set_epi32(25, 25, 25, 24, 17, 17, 17, 16, 9, 9, 9, 8, 1, 1, 1, 0);
    x.dx = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(md0, dv), id, _mm512_maskz_loadu_ps(md1, dv + 16));
    x.cv = _mm512_permutex2var_epi32(_mm512_maskz_loadu_epi32(md0, cv), ic, _mm512_maskz_loadu_epi32(md1, cv + 16));
    return x;
}

/* y[r] = x . W row r for the NR rows w[] (rw of them real), nb blocks. */
AI void gemv_q4_0(const int NR, float *y, const uint8_t *xq, int64_t nb, const uint8_t *const *w, int rw,
                  size_t pf) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    /* code byte 16k + i <- byte 18k + 2 + i of the 72; scale word 4k + l <- word 9k */
    const __m512i iw = _mm512_add_epi8(
        _mm512_set_epi8(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4,
                        3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
                        7, 6, 5, 4, 3, 2, 1, 0),
        _mm512_set_epi8(56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 56, 38, 38, 38, 38, 38, 38, 38, 38,
                        38, 38, 38, 38, 38, 38, 38, 38, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
                        2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2));
    const __m512i is = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 27, 27, 27, 27, 18, 18, 18,
                                        18, 9, 9, 9, 9, 0, 0, 0, 0);
    __m512 acc[8];
#pragma GCC unroll 8
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b += 4) {
        const int kb = nb - b < 4 ? (int)(nb - b) : 4;
        const x4_t x = x4_load(xq, nb, b, kb);
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)b * sizeof(block_q4_0);
            prefetch_ahead(blk, pf);
            prefetch_ahead(blk + 64, pf);
            __m512i L0, L1;
            if (kb == 4) {
                L0 = _mm512_loadu_si512((const void *)blk);
                L1 = _mm512_castsi128_si512(_mm_loadl_epi64((const __m128i *)(blk + 64)));
            } else {
                L0 = _mm512_maskz_loadu_epi8(((__mmask64)1 << (18 * kb)) - 1, blk);
                L1 = _mm512_setzero_si512();
            }
            __m512i v = _mm512_permutex2var_epi8(L0, iw, L1);
            __m512i t = _mm512_dpbusd_epi32(x.cv, _mm512_and_si512(v, m4), x.lo);
            t = _mm512_dpbusd_epi32(t, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4), x.hi);
            __m512 dw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(is, L0)));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dw, x.dx), acc[r]);
        }
    }
    put_sums(NR, y, acc, rw);
}

/* ------------------------------------------------------------ K-quants */

/* The 8 scales and 8 mins of a Q4_K/Q5_K block as bytes [sc0..7 | m0..7]:
 * ggml's kmask shuffle of the three 32-bit words of `scales`, in a vector
 * register (a scalar version stored to memory and reloaded stalls on store
 * forwarding). Reads 16 bytes from scales (the last 4 are qh/qs). */
AI __m128i k45_unpack(const uint8_t *blk) {
    __m128i v = _mm_loadu_si128((const __m128i *)(blk + 4));   /* u0 u1 u2 . */
    __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)); /* u0 u2 u1 u2 */
    a = _mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4));
    a = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 0, 0)); /* lanes 1, 3: u0, u1 */
    b = _mm_and_si128(_mm_srli_epi32(b, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303));
    return _mm_or_si128(a, _mm_slli_epi32(b, 4));
}

/* Per W row and super-block: the sub-block scales as int16 (sc: 8 for
 * Q4_K/Q5_K, 16 for Q6_K), Q4_K/Q5_K's mins duplicated per 16 values, and
 * the f16 scales widened. */
typedef struct {
    __m512i sc;   /* int16 scales in the low lanes */
    __m256i mins; /* int16 [m0 m0 m1 m1 ... m7 m7] (Q4_K/Q5_K) */
    float d, dmin;
} ksc;

AI ksc k45_scales(const uint8_t *blk) {
    __m128i v = k45_unpack(blk); /* bytes 0..7: scales, 8..15: mins */
    ksc s;
    s.sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(v));
    const __m128i dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    s.mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, dup));
    s.d = _cvtsh_ss(rd16(blk));
    s.dmin = _cvtsh_ss(rd16(blk + 2));
    return s;
}

AI ksc k6_scales(const uint8_t *blk) {
    const block_q6_K *b = (const block_q6_K *)blk;
    ksc s;
    s.sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales)));
    s.mins = _mm256_setzero_si256();
    s.d = _cvtsh_ss(rd16(blk + offsetof(block_q6_K, d)));
    s.dmin = 0;
    return s;
}

/* Scale of each int16 product pair of quarter c (64 values) of a block. */
AI __m512i k_scale_quarter(const int T, __m512i sc, int c) {
    __m512i idx;
    if (T == QT_Q6_K) /* 4 sub-blocks of 16: 8 pairs each */
        idx = _mm512_add_epi16(_mm512_set1_epi16((short)(4 * c)),
                               _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21,
                                                                  20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10,
                                                                  9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                 3));
    else /* 2 sub-blocks of 32: 16 pairs each */
        idx = _mm512_mask_set1_epi16(_mm512_set1_epi16((short)(2 * c)), 0xFFFF0000u, (short)(2 * c + 1));
    return _mm512_permutexvar_epi16(idx, sc);
}

/* Unsigned codes of quarter c (values 64c .. 64c+63) of a weight block. */
AI __m512i k_codes_quarter(const int T, const uint8_t *blk, int c) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    if (T == QT_Q4_K || T == QT_Q5_K) {
        const uint8_t *qs = blk + (T == QT_Q4_K ? offsetof(block_q4_K, qs) : offsetof(block_q5_K, qs));
        __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * c)));
        v = _mm512_and_si512(_mm512_mask_srli_epi16(v, 0xFFFF0000u, v, 4), m4);
        if (T == QT_Q5_K) {
            const block_q5_K *b = (const block_q5_K *)blk;
            __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b->qh));
            __m512i bit = _mm512_mask_set1_epi8(_mm512_set1_epi8((char)(1 << (2 * c))),
                                                0xFFFFFFFF00000000ull, (char)(1 << (2 * c + 1)));
            __mmask64 hi = _mm512_test_epi8_mask(h, bit);
            v = _mm512_mask_add_epi8(v, hi, v, _mm512_set1_epi8(16));
        }
        return v;
    }
    /* Q6_K: half c/2 of the block; quarter c%2 takes the low (0) or high
     * (1) nibbles of ql and bit pairs 0,1 / 2,3 (low) or 4,5 / 6,7 (high). */
    const block_q6_K *b = (const block_q6_K *)blk;
    const int h = c / 2;
    __m512i L = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
    __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
    __m512i lo, hb;
    if (c % 2 == 0) {
        lo = _mm512_and_si512(L, m4);
        hb = _mm512_mask_slli_epi16(_mm512_slli_epi16(H, 4), 0xFFFF0000u, H, 2);
    } else {
        lo = _mm512_and_si512(_mm512_srli_epi16(L, 4), m4);
        hb = _mm512_mask_srli_epi16(H, 0xFFFF0000u, H, 2);
    }
    return _mm512_or_si512(lo, _mm512_and_si512(hb, _mm512_set1_epi8(0x30)));
}

AI void tilek(const int NX, const int NR, const int T, float *y, int64_t ys, const uint8_t *xq, size_t xs,
              int64_t nsb, const uint8_t *const *w, int rw, size_t pf) {
    const size_t bb = T == QT_Q4_K ? sizeof(block_q4_K) : T == QT_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
    __m512 acc[4][4];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) acc[i][r] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        ksc sc[4];
        __m512i ai[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)s * bb;
            if (NX == 1)
                for (size_t o = 0; o < bb; o += 64) prefetch_ahead(blk + o, pf);
            sc[r] = T == QT_Q6_K ? k6_scales(blk) : k45_scales(blk);
        }
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++)
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) ai[i][r] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i wv[4], sv[4];
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                wv[r] = k_codes_quarter(T, w[r] + (size_t)s * bb, c);
                sv[r] = k_scale_quarter(T, sc[r].sc, c);
            }
#pragma GCC unroll 8
            for (int i = 0; i < NX; i++) {
                const qx_k *xb = (const qx_k *)(xq + (size_t)i * xs) + s;
                __m512i xv = _mm512_load_si512((const void *)(xb->qs + 64 * c));
#pragma GCC unroll 4
                for (int r = 0; r < NR; r++)
                    ai[i][r] = _mm512_dpwssd_epi32(ai[i][r], _mm512_maddubs_epi16(wv[r], xv), sv[r]);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) {
            const qx_k *xb = (const qx_k *)(xq + (size_t)i * xs) + s;
            __m256i bs = _mm256_load_si256((const __m256i *)xb->bsums);
            const float dx = xb->d;
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                __m512i t = ai[i][r];
                if (T == QT_Q6_K) { /* sum((q - 32) x) = sum(q x) - 32 sum(x) */
                    __m256i b32 = _mm256_slli_epi32(_mm256_madd_epi16(bs, _mm512_castsi512_si256(sc[r].sc)), 5);
                    t = _mm512_sub_epi32(t, _mm512_zextsi256_si512(b32));
                }
                acc[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_set1_ps(sc[r].d * dx), acc[i][r]);
                if (T != QT_Q6_K) {
                    __m256i mn = _mm256_madd_epi16(bs, sc[r].mins);
                    acc[i][r] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(mn)),
                                                 _mm512_set1_ps(sc[r].dmin * dx), acc[i][r]);
                }
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) put_sums(NR, y + i * ys, acc[i], rw);
}

/* ------------------------------------------------------------ row loops */

/* Tile shapes, x rows by W rows: decode 1 x 8 (32-blocks) and 1 x 4
 * (K-quants, whose per-row state is larger); prefill 4 x 4 and 4 x 2, the
 * most accumulators that stay in the 32 registers. */
#define GEMV_NR32 8
#define GEMV_NRK 4
#define GEMM_NX32 4 /* at most 4: gemm_streams has tiles of 1 to 4 x rows */
#define GEMM_NR32 4
#define GEMM_NXK 4
#define GEMM_NRK 2
/* Decode (n = 1) of rows [r0, r1) as NR long streams: the range is cut
 * into NR runs of consecutive rows (each run contiguous in memory) and group
 * i takes row i of every run, so the hardware prefetcher sees NR sequential
 * streams of many KiB, as in the bandwidth probe, instead of NR rows of
 * about 2 KiB that end together. Against groups of NR consecutive rows it
 * streamed 7-30% faster (Q8_0 / Q4_0 / Q6_K, expert, down-projection and
 * LM-head shapes, alternating trials in one process, 2 threads). A run
 * shorter than the others repeats a row of the first run (not stored).
 * Each row's sum does not depend on its group-mates, so results do not
 * depend on how threads split the rows. */
AI void gemv_streams(const int T, const int NR, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nblk = qt_is32(T) ? j->cols / 32 : j->cols / QK_K;
    const int64_t per = (r1 - r0 + NR - 1) / NR;
    const size_t pf = qstream_pf(j);
    for (int64_t i = 0; i < per; i++) {
        const uint8_t *w[8];
        int64_t row[8];
        qstream_rows(NR, j, r0, r1, per, i, w, row);
        float t[8];
        if (T == QT_Q4_0)
            gemv_q4_0(NR, t, j->xq, nblk, w, NR, pf);
        else if (T == QT_Q8_0)
            tile32(1, NR, K8, t, 0, j->xq, j->xq_row, nblk, w, NR, pf);
        else if (T == QT_MXFP4)
            tile32(1, NR, KMX, t, 0, j->xq, j->xq_row, nblk, w, NR, pf);
        else
            tilek(1, NR, T, t, 0, j->xq, j->xq_row, nblk, w, NR, pf);
        for (int q = 0; q < NR; q++)
            if (row[q] >= 0) j->y[row[q]] = t[q];
    }
}

/* Rows of x in tiles of up to NXM by NR W rows, the W rows taken as in
 * gemv_streams, one from each of NR long runs, so the weights stream as in
 * decode. Against groups of NR consecutive rows (as before), one core, a
 * cold [768][2048] matrix, us: Q8_0 at 2 / 5 / 8 / 16 rows of x 272 / 218 /
 * 376 / 633 -> 132 / 185 / 258 / 493; Q4_K 154 / 163 / 310 / 480 -> 113 /
 * 159 / 248 / 430; the same at 256 rows. Each W row's sums go to their own
 * place in y. */
AI void gemm_streams(const int T, const int NR, const int NXM, const qmm_job *j, int64_t r0, int64_t r1) {
    const int is32 = qt_is32(T);
    const int64_t nblk = is32 ? j->cols / 32 : j->cols / QK_K;
    const int64_t per = (r1 - r0 + NR - 1) / NR;
    const size_t pf = qstream_pf(j);
    for (int64_t i = 0; i < per; i++) {
        const uint8_t *w[8];
        int64_t row[8];
        qstream_rows(NR, j, r0, r1, per, i, w, row);
        for (int64_t x0 = 0; x0 < j->n;) {
            const int64_t left = j->n - x0;
            const int nx = left < NXM ? (int)left : NXM;
            const uint8_t *xq = j->xq + (size_t)x0 * j->xq_row;
            float t[4 * 8];
#define STILE(NX)                                                                                   \
    do {                                                                                            \
        if (is32)                                                                                   \
            tile32(NX, NR, T == QT_Q4_0 ? K4 : T == QT_MXFP4 ? KMX : K8, t, NR, xq, j->xq_row,      \
                   nblk, w, NR, pf);                                                                \
        else                                                                                        \
            tilek(NX, NR, T, t, NR, xq, j->xq_row, nblk, w, NR, pf);                                \
    } while (0)
            switch (nx) {
            case 1: STILE(1); break;
            case 2: if (NXM >= 2) STILE(2); break;
            case 3: if (NXM >= 3) STILE(3); break;
            default: if (NXM >= 4) STILE(4); break;
            }
#undef STILE
            for (int x = 0; x < nx; x++)
                for (int q = 0; q < NR; q++)
                    if (row[q] >= 0) j->y[(x0 + x) * j->rows + row[q]] = t[x * NR + q];
            x0 += nx;
        }
    }
}

/* From *_R16_MIN_N rows of x the interleaved 16-row kernel
 * (quant_r16_avx512.c) takes the 32-block types. The thresholds: one core,
 * a cold [768][2048] matrix (an expert's), us, median of alternating trials
 * on a loaded machine (absolute times ran 1.3-1.6x those of a quiet one),
 * the path below the threshold -> r16; decode (one row) stays on the
 * streaming GEMVs, which r16 reached at 0.6-0.97x. */

/* Q4_0: 2-3 rows of x by gemm_streams (2 rows 79-103 -> 90-129, 3 rows
 * 98-109 -> 107-133), from Q4_R16_MIN_N rows r16 (4 rows 113-137 ->
 * 103-131); decode by gemv_q4_0 where the kernel choice allows AVX512_VBMI
 * (vpermt2b, which some VNNI CPUs lack: Cascade Lake), else by the 2-block
 * tile. */
#define Q4_R16_MIN_N 4
static void rows_q4_0(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n >= Q4_R16_MIN_N)
        avx512_rows_r16(j, r0, r1);
    else if (j->n != 1)
        gemm_streams(QT_Q4_0, GEMM_NR32, GEMM_NX32, j, r0, r1);
    else if (j->vbmi)
        gemv_streams(QT_Q4_0, GEMV_NR32, j, r0, r1);
    else
        gemm_streams(QT_Q4_0, GEMV_NR32, 1, j, r0, r1);
}
/* Q8_0: decode by gemv_streams, from Q8_R16_MIN_N rows of x r16 (2 rows
 * 109-150 -> 95-140, 3 rows 129-156 -> 109-132). */
#define Q8_R16_MIN_N 2
static void rows_q8_0(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n == 1)
        gemv_streams(QT_Q8_0, GEMV_NR32, j, r0, r1);
    else if (j->n >= Q8_R16_MIN_N)
        avx512_rows_r16(j, r0, r1);
    else
        gemm_streams(QT_Q8_0, GEMM_NR32, GEMM_NX32, j, r0, r1);
}
/* Q4_K / Q5_K: decode by gemv_streams, from 2 rows of x by the
 * interleaved 16-row kernel (quant_r16k_avx512.c), whose fused path for a
 * few rows beat gemm_streams from 2 rows: one core, cold, us, [768][2048]
 * Q4_K 2 rows 59 -> 50, 3 rows 82 -> 56; [2048][768] 2 rows 67 -> 54-58, 3
 * rows 91 -> 69-75; Q5_K [768][2048] 2 rows 68 -> 63-65, 3 rows 90 -> 74,
 * [2048][768] 2 rows 77-80 -> 73-79, 3 rows 100-104 -> 88-91. (Against the
 * buffered kernel before the fused path: Q4_K 3 rows 81 -> 87-90, 8 rows
 * 216 -> 120, 64 rows 1622 -> 626; Q5_K 8 rows 238 -> 125.) */
static void rows_q4_K(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n == 1)
        gemv_streams(QT_Q4_K, GEMV_NRK, j, r0, r1);
    else
        avx512_rows_r16k(j, r0, r1);
}
static void rows_q5_K(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n == 1)
        gemv_streams(QT_Q5_K, GEMV_NRK, j, r0, r1);
    else
        avx512_rows_r16k(j, r0, r1);
}
/* Q6_K: the same from Q6_R16_MIN_N rows (its scales per 16 values cost the
 * interleaved kernel 2 of every 10 operations on the vpdpbusd ports). One
 * core, cold [768][2048], us: 4 rows 103 -> 111-113, 5 rows 147 -> 121, 8
 * rows 251-258 -> 158-162, 16 rows 453 -> 241, 64 rows 1575 -> 707, 256
 * rows 6238 -> 2788. */
#define Q6_R16_MIN_N 5
static void rows_q6_K(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n == 1)
        gemv_streams(QT_Q6_K, GEMV_NRK, j, r0, r1);
    else if (j->n >= Q6_R16_MIN_N)
        avx512_rows_r16k(j, r0, r1);
    else
        gemm_streams(QT_Q6_K, GEMM_NRK, GEMM_NXK, j, r0, r1);
}

/* MXFP4 (gpt-oss's experts): decode by gemv_streams, 2-3 rows of x by
 * gemm_streams (2 rows 86-123 -> 95-138, 3 rows 103-128 -> 108-138), from
 * MXFP4_R16_MIN_N rows r16 (4 rows 120-144 -> 105-132; 8 / 16 / 64 / 256
 * rows 325 / 636 / 2632 / 11967 -> 204 / 315 / 1058 / 4683). */
#define MXFP4_R16_MIN_N 4
static void rows_mxfp4(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->n == 1)
        gemv_streams(QT_MXFP4, GEMV_NR32, j, r0, r1);
    else if (j->n >= MXFP4_R16_MIN_N)
        avx512_rows_r16(j, r0, r1);
    else
        gemm_streams(QT_MXFP4, GEMM_NR32, GEMM_NX32, j, r0, r1);
}

/* Q4_1, Q5_0, Q5_1, IQ4_NL: decode by quant_extra_gemv_avx512.c, from
 * EXTRA32_R16_MIN_N rows of x r16 instead of quant_extra_avx512.c's 256-bit
 * kernels: 2 rows IQ4_NL 283 -> 137, Q5_0 288 -> 148, Q4_1 283 -> 139,
 * Q5_1 299 -> 150; 64 rows 4911 / 5049 / 7667 / 7597 -> 1107 / 1068 /
 * 1171 / 1217. */
#define EXTRA32_R16_MIN_N 2

void avx512_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (r1 <= r0 || j->n <= 0) return;
    switch (j->type) {
    case QT_Q4_0: rows_q4_0(j, r0, r1); break;
    case QT_Q8_0: rows_q8_0(j, r0, r1); break;
    case QT_Q4_K: rows_q4_K(j, r0, r1); break;
    case QT_Q5_K: rows_q5_K(j, r0, r1); break;
    case QT_Q6_K: rows_q6_K(j, r0, r1); break;
    case QT_MXFP4: rows_mxfp4(j, r0, r1); break;
    case QT_Q4_1:
    case QT_Q5_0:
    case QT_Q5_1:
    case QT_IQ4_NL:
        if (j->n >= EXTRA32_R16_MIN_N)
            avx512_rows_r16(j, r0, r1);
        else
            avx512_extra_qmm_rows(j, r0, r1);
        break;
    default: avx512_extra_qmm_rows(j, r0, r1); break;
    }
}

/* ------------------------------------------------- activation quantizers */

/* roundf (ties away from zero), exactly: t - trunc(t) is exact. */
AI __m512 round_away(__m512 t) {
    __m512 r = _mm512_roundscale_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_abs_ps(_mm512_sub_ps(t, r));
    __mmask16 up = _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    __m512 one = _mm512_or_ps(_mm512_and_ps(t, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_mask_add_ps(r, up, r, one);
}

/* Whether x[0..n) (n a multiple of 16) holds an inf or NaN: such a block is
 * quantized as codes 0 and scale NaN, as the reference does (converting NaN
 * gives INT_MIN codes whose sums overflow). */
AI int any_nonfinite(const float *x, int n) {
    __mmask16 bad = 0;
    for (int k = 0; k < n; k += 16)
        bad |= _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + k)), _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ);
    return bad != 0;
}

static void act_row32(void *xq, const float *x, int type, int64_t cols) {
    const int64_t nb = cols / 32;
    int8_t *qs = (int8_t *)xq;
    float *dv = (float *)qx32_dv(xq, nb);
    int32_t *cv = (int32_t *)qx32_cv(xq, nb);
    const int c = qx32_bias(type);
    for (int64_t b = 0; b < nb; b++) {
        if (any_nonfinite(x + 32 * b, 32)) {
            memset(qs + 32 * b, 0, 32);
            _mm256_storeu_ps(dv + 8 * b, _mm256_set1_ps(NAN));
            _mm256_storeu_si256((__m256i *)(cv + 8 * b), _mm256_setzero_si256());
            continue;
        }
        __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax / 127;
        const float id = amax >= QACT_TINY ? 1.0f / d : 0.0f;
        const __m512 idv = _mm512_set1_ps(id);
        __m512i q0 = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(v0, idv)));
        __m512i q1 = _mm512_cvttps_epi32(round_away(_mm512_mul_ps(v1, idv)));
        _mm_storeu_si128((__m128i *)(qs + 32 * b), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qs + 32 * b + 16), _mm512_cvtsepi32_epi8(q1));
        const int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        _mm256_storeu_ps(dv + 8 * b, _mm256_set1_ps(_cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT))));
        _mm256_storeu_si256((__m256i *)(cv + 8 * b), _mm256_setr_epi32(-c * sum, 0, 0, 0, 0, 0, 0, 0));
    }
}

void avx512_qact_tile(void *tile, const float *x, int64_t nx, int64_t cols) {
    const int64_t nb = cols / 32;
    uint8_t *t = (uint8_t *)tile;
    for (int64_t b = 0; b < nb; b++) /* padding rows stay zero */
        for (int k = 0; k < 9; k++) _mm512_store_si512((void *)(t + b * QT_TILE_BLOCK + 64 * k), _mm512_setzero_si512());
    for (int64_t j = 0; j < nx; j++)
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = x + j * cols + 32 * b;
            uint8_t *blk = t + b * QT_TILE_BLOCK;
            if (any_nonfinite(xb, 32)) { /* codes stay 0 */
                const float nan = NAN;
                memcpy(blk + 512 + 4 * j, &nan, 4);
                continue;
            }
            __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
            const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
            const float d = amax / 127;
            const float id = amax >= QACT_TINY ? 1.0f / d : 0.0f;
            const __m512 idv = _mm512_set1_ps(id);
            /* codes of values 0..15 and 16..31: dwords k = 0..3 and 4..7 */
            __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(round_away(_mm512_mul_ps(v0, idv))));
            __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_cvttps_epi32(round_away(_mm512_mul_ps(v1, idv))));
            uint8_t *o = blk + 4 * j;
            _mm_storeu_si32(o + 0 * 64, q0);
            _mm_storeu_si32(o + 1 * 64, _mm_srli_si128(q0, 4));
            _mm_storeu_si32(o + 2 * 64, _mm_srli_si128(q0, 8));
            _mm_storeu_si32(o + 3 * 64, _mm_srli_si128(q0, 12));
            _mm_storeu_si32(o + 4 * 64, q1);
            _mm_storeu_si32(o + 5 * 64, _mm_srli_si128(q1, 4));
            _mm_storeu_si32(o + 6 * 64, _mm_srli_si128(q1, 8));
            _mm_storeu_si32(o + 7 * 64, _mm_srli_si128(q1, 12));
            const float ds = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
            memcpy(blk + 512 + 4 * j, &ds, 4);
        }
}

static void act_rowk(void *xq, const float *x, int64_t cols) {
    qx_k *y = (qx_k *)xq;
    const int64_t nb = cols / QK_K;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        memset(&y[i], 0, sizeof y[i]);
        if (any_nonfinite(x, QK_K)) {
            y[i].d = NAN;
            continue;
        }
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)));
        const float amax = _mm512_reduce_max_ps(m);
        if (!(amax >= QACT_TINY)) continue;
        float max = 0;
        for (int k = 0; k < 16; k++) { /* the first value of largest magnitude, as the reference */
            __mmask16 e = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * k)), _mm512_set1_ps(amax),
                                             _CMP_EQ_OQ);
            if (e) {
                max = x[16 * k + __builtin_ctz(e)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 is = _mm512_set1_ps(iscale);
        for (int k = 0; k < 16; k++) {
            __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), is),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_store_si128((__m128i *)(y[i].qs + 16 * k), _mm512_cvtsepi32_epi8(q));
            y[i].bsums[k] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1 / iscale;
    }
}

void avx512_qact_row(void *xq, const float *x, int type, int64_t cols) {
    if (qt_is32(type))
        act_row32(xq, x, type, cols);
    else
        act_rowk(xq, x, cols);
    if (qx_k_ncv(type)) qx_k_cv_row(xq, type, cols / QK_K);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
