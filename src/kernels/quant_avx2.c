/*
 * quant_avx2.c - the quantized matmul with AVX2 (+FMA, F16C): the same
 * integer-then-scale scheme as quant_avx512.c on 256-bit registers, without
 * VNNI: vpmaddubsw (unsigned weight codes x signed activations, pairs) then
 * vpmaddwd (by 1, or by the sub-block scales) to int32.
 *
 * One register holds one 32-block of Q4_0/Q8_0 or 32 values of a K-quant
 * super-block. Q8_0 weights are signed, so they use the sign trick
 * |w| * (x * sign(w)) (pairs at most 2*128*127, no saturation) instead of a
 * bias; Q4_0 nibbles are w + 8 and the activation's cv removes the bias.
 * MXFP4 is Q4_0 with its nibbles looked up (vpshufb) as kvalues_mxfp4 + 12.
 * Runs only when quant.c has seen the CPU has AVX2, FMA and F16C. The
 * many-row products go to the interleaved kernels (quant_r8_avx2.c,
 * quant_r8k_avx2.c), or to their AVX-VNNI builds when the job has
 * avxvnni (kern_cfg.avxvnni: the CPU has it and MOE_AVXVNNI is not 0).
 */
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#define AI static inline __attribute__((always_inline))

AI float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AI int hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AI uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* ---------------------------------------------------- Q4_0, Q8_0, MXFP4 */

/* Kinds of 32-block weights for tile32. */
enum { K8 = 0, K4 = 1, KMX = 2 };

/* The unsigned weight bytes of an MXFP4 code: kvalues_mxfp4 + MXFP4_BIAS. */
AI __m256i mx_table(void) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mxfp4_biased_table()));
}

AI void tile32(const int NX, const int NR, const int K, float *y, int64_t ys, const uint8_t *xq, size_t xs,
               int64_t nb, const uint8_t *const *w, int rw, size_t pf) {
    const int Q4 = K != K8; /* nibbles, biased, cv applies */
    const size_t bb = K == K4 ? sizeof(block_q4_0) : K == KMX ? sizeof(block_mxfp4) : sizeof(block_q8_0);
    const size_t qo = K == KMX ? 1 : 2; /* offset of the codes in a block */
    const __m256i lut = mx_table();
    const size_t off_dv = (size_t)nb * 32, off_cv = (size_t)nb * 64;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[3][4];
#pragma GCC unroll 3
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) acc[i][r] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[4];
        __m256 dw[4];
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)b * bb;
            if (NX == 1) _mm_prefetch((const char *)blk + pf, _MM_HINT_T0); /* pf on in the same stream */
            if (Q4) {
                __m128i v = _mm_loadu_si128((const __m128i *)(blk + qo));
                wv[r] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
                                         _mm256_set1_epi8(0x0F));
                if (K == KMX) wv[r] = _mm256_shuffle_epi8(lut, wv[r]);
            } else {
                wv[r] = _mm256_loadu_si256((const __m256i *)(blk + 2));
            }
            dw[r] = _mm256_set1_ps(K == KMX ? mxfp4_scale_half(blk[0]) : _cvtsh_ss(rd16(blk)));
        }
#pragma GCC unroll 3
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            __m256i xv = _mm256_load_si256((const __m256i *)(xr + (size_t)b * 32));
            __m256 dv = _mm256_loadu_ps((const float *)(xr + off_dv) + 8 * b);
            __m256i cv = _mm256_loadu_si256((const __m256i *)(xr + off_cv) + b);
#pragma GCC unroll 4
            for (int r = 0; r < NR; r++) {
                __m256i p = Q4 ? _mm256_maddubs_epi16(wv[r], xv)
                               : _mm256_maddubs_epi16(_mm256_abs_epi8(wv[r]), _mm256_sign_epi8(xv, wv[r]));
                __m256i s = _mm256_madd_epi16(p, ones);
                if (Q4) s = _mm256_add_epi32(s, cv);
                acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dv, dw[r]), acc[i][r]);
            }
        }
    }
#pragma GCC unroll 3
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 4
        for (int r = 0; r < NR; r++)
            if (r < rw) y[i * ys + r] = hsum8(acc[i][r]);
}

/* Decode of 4 W rows: per block, each row's exact integer sum
 * (vpmaddubsw, vpmaddwd, then vphaddd across the 4 rows), and acc_r =
 * fma(float(sum), d_r * dx, acc_r) in block order: the operations
 * quant_r8_avx2.c applies to each output, so a decoded token's products are
 * the same bits as the same token's in a prefill. tile32 keeps 8 lane
 * partials per row and sums them at the end, which differed from the
 * prefill in the last bits; tests/test_gguf_deepseek.c's GLM-4.5 Q8_0 twin
 * amplified that past its 1e-5 check of decode against the full forward.
 * One core, a cold [768][2048] matrix, us, tile32 -> this: Q8_0 72-73 ->
 * 71-72, Q4_0 57-59 -> 65.5, MXFP4 64-65 -> 72-73, so only Q8_0 takes it
 * (the others' decode and prefill may still differ in the last bits, as
 * every type's do on AVX-512). */
AI void gemv32x4(const int K, float *y, const uint8_t *xq, int64_t nb, const uint8_t *const *w, size_t pf) {
    const int Q4 = K != K8;
    const size_t bb = K == K4 ? sizeof(block_q4_0) : K == KMX ? sizeof(block_mxfp4) : sizeof(block_q8_0);
    const size_t qo = K == KMX ? 1 : 2;
    const __m256i lut = mx_table(), ones = _mm256_set1_epi16(1);
    const int8_t *xs = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    const int32_t *cv = qx32_cv(xq, nb);
    __m128 acc = _mm_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m256i xv = _mm256_load_si256((const __m256i *)(xs + 32 * b));
        __m256i s[4];
        float d[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = w[r] + (size_t)b * bb;
            _mm_prefetch((const char *)blk + pf, _MM_HINT_T0);
            __m256i p;
            if (Q4) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(blk + qo));
                __m256i wv = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1),
                                              _mm256_set1_epi8(0x0F));
                if (K == KMX) wv = _mm256_shuffle_epi8(lut, wv);
                p = _mm256_maddubs_epi16(wv, xv);
            } else {
                const __m256i wv = _mm256_loadu_si256((const __m256i *)(blk + 2));
                p = _mm256_maddubs_epi16(_mm256_abs_epi8(wv), _mm256_sign_epi8(xv, wv));
            }
            s[r] = _mm256_madd_epi16(p, ones);
            d[r] = K == KMX ? mxfp4_scale_half(blk[0]) : _cvtsh_ss(rd16(blk));
        }
        /* [sum row 0, row 1, row 2, row 3] */
        const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        if (Q4) t = _mm_add_epi32(t, _mm_set1_epi32(cv[8 * b]));
        const __m128 dd = _mm_mul_ps(_mm_setr_ps(d[0], d[1], d[2], d[3]), _mm_set1_ps(dv[8 * b]));
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(t), dd, acc);
    }
    _mm_storeu_ps(y, acc);
}

/* ------------------------------------------------------------ K-quants */

typedef struct {
    __m256i sc16;    /* Q6_K: the 16 scales as int16 */
    __m256i mins;    /* Q4_K/Q5_K: int16 [m0 m0 m1 m1 ... m7 m7] */
    __m256i lo, hi;  /* Q6_K: scales 0..7 / 8..15 as int16 in both 128-bit halves;
                        Q4_K/Q5_K: lo = scales 0..7 as bytes in both halves */
    float d, dmin;
} ksc;

AI ksc k_scales(const int T, const uint8_t *blk) {
    ksc s;
    if (T == QT_Q6_K) {
        const block_q6_K *b = (const block_q6_K *)blk;
        __m128i v = _mm_loadu_si128((const __m128i *)b->scales);
        s.sc16 = _mm256_cvtepi8_epi16(v);
        s.lo = _mm256_permute2x128_si256(s.sc16, s.sc16, 0x00);
        s.hi = _mm256_permute2x128_si256(s.sc16, s.sc16, 0x11);
        s.mins = _mm256_setzero_si256();
        s.d = _cvtsh_ss(rd16(blk + offsetof(block_q6_K, d)));
        s.dmin = 0;
        return s;
    }
    __m128i v = _mm_loadu_si128((const __m128i *)(blk + 4)); /* u0 u1 u2 . (see quant_avx512.c) */
    __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0));
    a = _mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4));
    a = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 0, 0));
    b = _mm_and_si128(_mm_srli_epi32(b, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303));
    v = _mm_or_si128(a, _mm_slli_epi32(b, 4)); /* scales 0..7, mins 8..15 */
    s.lo = _mm256_broadcastsi128_si256(v);
    s.hi = _mm256_setzero_si256();
    const __m128i dup = _mm_setr_epi8(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    s.mins = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, dup));
    s.sc16 = _mm256_setzero_si256();
    s.d = _cvtsh_ss(rd16(blk));
    s.dmin = _cvtsh_ss(rd16(blk + 2));
    return s;
}

/* Codes of values 32e .. 32e+31 of a block (e < 8). */
AI __m256i k_codes(const int T, const uint8_t *blk, int e) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (T == QT_Q4_K || T == QT_Q5_K) {
        const uint8_t *qs = blk + (T == QT_Q4_K ? offsetof(block_q4_K, qs) : offsetof(block_q5_K, qs));
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * (e / 2)));
        v = _mm256_and_si256(e % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
        if (T == QT_Q5_K) {
            __m256i h = _mm256_loadu_si256((const __m256i *)((const block_q5_K *)blk)->qh);
            h = _mm256_and_si256(_mm256_srli_epi16(h, e), _mm256_set1_epi8(1));
            v = _mm256_or_si256(v, _mm256_slli_epi16(h, 4));
        }
        return v;
    }
    /* Q6_K: half e/4; e%4 = 0: ql[l] low, 1: ql[l+32] low, 2: ql[l] high,
     * 3: ql[l+32] high, with bit pair e%4 of qh[l]. */
    const block_q6_K *b = (const block_q6_K *)blk;
    const int h = e / 4, q = e % 4;
    __m256i L = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32 * (q % 2)));
    __m256i H = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
    __m256i lo = _mm256_and_si256(q >= 2 ? _mm256_srli_epi16(L, 4) : L, m4);
    /* bits 2q, 2q+1 of each qh byte to bits 4, 5 (16-bit shifts: the bits
     * that cross from the neighbouring byte are masked off) */
    const __m256i hs = q < 2 ? _mm256_slli_epi16(H, 4 - 2 * q) : q == 2 ? H : _mm256_srli_epi16(H, 2);
    return _mm256_or_si256(lo, _mm256_and_si256(hs, _mm256_set1_epi8(0x30)));
}

/* int16 multipliers of the 16 product pairs of values 32e .. 32e+31, by
 * one byte shuffle of the scales held in registers (Q6_K: words 2e, 2e+1
 * of the 16 scales to the two halves; Q4_K/Q5_K: byte e zero-extended). */
AI __m256i k_scale(const int T, const ksc *s, int e) {
    if (T == QT_Q6_K) {
        const int w0 = (2 * e) % 8, w1 = (2 * e + 1) % 8;
        const __m256i c = _mm256_setr_m128i(_mm_set1_epi16((short)(0x0100 * (2 * w0 + 1) + 2 * w0)),
                                            _mm_set1_epi16((short)(0x0100 * (2 * w1 + 1) + 2 * w1)));
        return _mm256_shuffle_epi8(e < 4 ? s->lo : s->hi, c);
    }
    return _mm256_shuffle_epi8(s->lo, _mm256_set1_epi16((short)(0x8000 | e)));
}

AI void tilek(const int NX, const int NR, const int T, float *y, int64_t ys, const uint8_t *xq, size_t xs,
              int64_t nsb, const uint8_t *const *w, int rw, size_t pf) {
    const size_t bb = T == QT_Q4_K ? sizeof(block_q4_K) : T == QT_Q5_K ? sizeof(block_q5_K) : sizeof(block_q6_K);
    __m256 acc[2][2];
#pragma GCC unroll 2
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
        for (int r = 0; r < NR; r++) acc[i][r] = _mm256_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        ksc sc[2];
        __m256i ai[2][2];
#pragma GCC unroll 2
        for (int r = 0; r < NR; r++) {
            const uint8_t *blk = w[r] + (size_t)s * bb;
            if (NX == 1)
                for (size_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + pf + o, _MM_HINT_T0);
            sc[r] = k_scales(T, blk);
        }
#pragma GCC unroll 2
        for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
            for (int r = 0; r < NR; r++) ai[i][r] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int e = 0; e < 8; e++) {
            __m256i wv[2], sv[2];
#pragma GCC unroll 2
            for (int r = 0; r < NR; r++) {
                wv[r] = k_codes(T, w[r] + (size_t)s * bb, e);
                sv[r] = k_scale(T, &sc[r], e);
            }
#pragma GCC unroll 2
            for (int i = 0; i < NX; i++) {
                const qx_k *xb = (const qx_k *)(xq + (size_t)i * xs) + s;
                __m256i xv = _mm256_load_si256((const __m256i *)(xb->qs + 32 * e));
#pragma GCC unroll 2
                for (int r = 0; r < NR; r++)
                    ai[i][r] = _mm256_add_epi32(ai[i][r], _mm256_madd_epi16(_mm256_maddubs_epi16(wv[r], xv), sv[r]));
            }
        }
#pragma GCC unroll 2
        for (int i = 0; i < NX; i++) {
            const qx_k *xb = (const qx_k *)(xq + (size_t)i * xs) + s;
            __m256i bs = _mm256_load_si256((const __m256i *)xb->bsums);
            const float dx = xb->d;
#pragma GCC unroll 2
            for (int r = 0; r < NR; r++) {
                __m256i t = ai[i][r];
                if (T == QT_Q6_K)
                    t = _mm256_sub_epi32(t, _mm256_slli_epi32(_mm256_madd_epi16(bs, sc[r].sc16), 5));
                acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(sc[r].d * dx), acc[i][r]);
                if (T != QT_Q6_K)
                    acc[i][r] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(bs, sc[r].mins)),
                                                 _mm256_set1_ps(sc[r].dmin * dx), acc[i][r]);
            }
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 2
        for (int r = 0; r < NR; r++)
            if (r < rw) y[i * ys + r] = hsum8(acc[i][r]);
}

/* ------------------------------------------------------------ row loops */

AI void rows_any(const int T, const int NR, const int NXM, const qmm_job *j, int64_t r0, int64_t r1) {
    const int is32 = qt_is32(T);
    const int64_t nblk = is32 ? j->cols / 32 : j->cols / QK_K;
    const size_t pf = (size_t)NR * j->w_row;
    for (int64_t r = r0; r < r1; r += NR) {
        int rw = r1 - r < NR ? (int)(r1 - r) : NR;
        const uint8_t *w[4];
        for (int q = 0; q < NR; q++) w[q] = j->W + (size_t)(r + (q < rw ? q : rw - 1)) * j->w_row;
        for (int64_t i = 0; i < j->n;) {
            int64_t left = j->n - i;
            int nx = left < NXM ? (int)left : NXM;
            float *y = j->y + i * j->rows + r;
            const uint8_t *x = j->xq + (size_t)i * j->xq_row;
#define TILE(NX)                                                                             \
    do {                                                                                     \
        if (is32)                                                                            \
            tile32(NX, NR, T == QT_Q4_0 ? K4 : T == QT_MXFP4 ? KMX : K8, y, j->rows, x,      \
                   j->xq_row, nblk, w, rw, pf);                                              \
        else                                                                                 \
            tilek(NX, NR, T, y, j->rows, x, j->xq_row, nblk, w, rw, pf);                     \
    } while (0)
            switch (nx) {
            case 1: TILE(1); break;
            case 2: if (NXM >= 2) TILE(2); break;
            default: if (NXM >= 3) TILE(3); break;
            }
#undef TILE
            i += nx;
        }
    }
}

/* Decode: the rows [r0, r1) cut into NR runs of consecutive rows, group i
 * taking row i of every run (quant_impl.h's qstream_rows), so the hardware
 * prefetcher sees NR long sequential streams, with software prefetch
 * qstream_pf bytes along each, as quant_avx512.c's gemv_streams does. */
AI void gemv_streams(const int T, const int NR, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nblk = qt_is32(T) ? j->cols / 32 : j->cols / QK_K;
    const int64_t per = (r1 - r0 + NR - 1) / NR;
    const size_t pf = qstream_pf(j);
    for (int64_t i = 0; i < per; i++) {
        const uint8_t *w[4];
        int64_t row[4];
        qstream_rows(NR, j, r0, r1, per, i, w, row);
        float t[4];
        if (T == QT_Q8_0 && NR == 4)
            gemv32x4(K8, t, j->xq, nblk, w, pf);
        else if (qt_is32(T))
            tile32(1, NR, T == QT_Q4_0 ? K4 : T == QT_MXFP4 ? KMX : K8, t, 0, j->xq, j->xq_row, nblk, w, NR, pf);
        else
            tilek(1, NR, T, t, 0, j->xq, j->xq_row, nblk, w, NR, pf);
        for (int q = 0; q < NR; q++)
            if (row[q] >= 0) j->y[row[q]] = t[q];
    }
}

/* Decode by gemv_streams (against rows_any's groups of NR1 consecutive
 * rows, one core, a cold [768][2048] matrix, us: Q8_0 122-123 -> 65, Q4_0
 * 57-68 -> 55-56, Q4_K 59-60 -> 51, Q5_K 74-80 -> 65, Q6_K 103 -> 77-78);
 * rows_any takes the products of several x rows below the interleaved
 * kernels' thresholds (avx2_qmm_rows). */
#define ROWS_FN(T, NAME, NR1, NRN, NXM)                                              \
    static void rows_##NAME(const qmm_job *j, int64_t r0, int64_t r1) {               \
        if (j->n == 1)                                                                \
            gemv_streams(T, NR1, j, r0, r1);                                          \
        else                                                                          \
            rows_any(T, NRN, NXM, j, r0, r1);                                         \
    }
ROWS_FN(QT_Q4_0, q4_0, 4, 2, 3)
ROWS_FN(QT_Q8_0, q8_0, 4, 2, 3)
ROWS_FN(QT_Q4_K, q4_K, 2, 2, 2)
ROWS_FN(QT_Q5_K, q5_K, 2, 2, 2)
ROWS_FN(QT_Q6_K, q6_K, 2, 2, 2)
ROWS_FN(QT_MXFP4, mxfp4, 4, 2, 3)

/* From R8_MIN_N rows of x the 32-block types go to the interleaved 8-row
 * kernel (quant_r8_avx2.c), and Q4_K, Q5_K, Q6_K, Q2_K from R8K_MIN_N,
 * IQ4_XS from IQ4XS_R8K_MIN_N, Q3_K from Q3K_R8K_MIN_N to quant_r8k_avx2.c;
 * decode goes to quant_extra_gemv_avx2.c (Q4_0, MXFP4 and the types
 * quant_extra_avx2.c takes) or stays on tile32 / tilek (Q8_0, Q4_K, Q5_K,
 * Q6_K). One core (AMD Zen 4 on its AVX2 path), cold
 * [768][2048], us, these tiles -> interleaved: Q8_0 2 / 8 / 32 rows 294 /
 * 496 / 1599 -> 152 / 308 / 1033; Q4_0 193 / 486 / 1297 -> 167 / 361 /
 * 782; Q5_0 32 rows 1927 -> 722; Q4_1 2567 -> 870; Q4_K 2 / 8 / 32 rows
 * 214 / 373 / 1242 -> 110 / 210 / 641; Q5_K 1394 -> 563 at 32; Q6_K 2 /
 * 8 / 32 rows 370 / 574 / 1643 -> 114 / 223 / 627; IQ4_XS 4 /
 * 5 / 8 / 32 rows 152 / 225-236 / 342-346 / 1251 -> 155-159 / 185-191 /
 * 265 / 890. */
#ifndef R8_MIN_N
#define R8_MIN_N 2
#endif
/* R8K_MIN_N, IQ4XS_R8K_MIN_N, IQ4XS_R8K_MIN_N_VNNI, Q3K_R8K_MIN_N: quant_impl.h */

void avx2_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    if (r1 <= r0 || j->n <= 0) return;
    if (j->n >= R8_MIN_N && (j->avxvnni ? avxvnni_rows_r8(j, r0, r1) : avx2_rows_r8(j, r0, r1))) return;
    const int64_t r8k_min = j->type == QT_IQ4_XS ? (j->avxvnni ? IQ4XS_R8K_MIN_N_VNNI : IQ4XS_R8K_MIN_N)
                          : j->type == QT_Q3_K  ? Q3K_R8K_MIN_N
                                                : R8K_MIN_N;
    if (j->n >= r8k_min && (j->avxvnni ? avxvnni_rows_r8k(j, r0, r1) : avx2_rows_r8k(j, r0, r1)))
        return;
    /* decode of Q4_0, MXFP4 and the types quant_extra_avx2.c takes */
    if (j->n == 1 && avx2_extra_gemv(j, r0, r1)) return;
    switch (j->type) {
    case QT_Q4_0: rows_q4_0(j, r0, r1); break;
    case QT_Q8_0: rows_q8_0(j, r0, r1); break;
    case QT_Q4_K: rows_q4_K(j, r0, r1); break;
    case QT_Q5_K: rows_q5_K(j, r0, r1); break;
    case QT_Q6_K: rows_q6_K(j, r0, r1); break;
    case QT_MXFP4: rows_mxfp4(j, r0, r1); break;
    default: avx2_extra_qmm_rows(j, r0, r1); break;
    }
}

/* ------------------------------------------------- activation quantizers */

/* roundf (ties away from zero), exactly: t - trunc(t) is exact. */
AI __m256 round_away(__m256 t) {
    __m256 r = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(t, r));
    __m256 up = _mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    __m256 one = _mm256_or_ps(_mm256_and_ps(t, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(r, _mm256_and_ps(up, one));
}

/* 32 int32 (q[0..3], each 8) to 32 int8 in order, saturating. */
AI __m256i pack32(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
    __m256i a = _mm256_packs_epi32(q0, q1), b = _mm256_packs_epi32(q2, q3);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The largest of m's 8 lanes. */
AI float hmax8(__m256 m) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

AI float amax32(const float *x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
    for (int k = 8; k < 32; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    return hmax8(m);
}

/* Whether x[0..n) (n a multiple of 8) holds an inf or NaN: such a block is
 * quantized as codes 0 and scale NaN, as the reference does. */
AI int any_nonfinite(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    __m256 bad = _mm256_setzero_ps();
    for (int k = 0; k < n; k += 8)
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), big, _CMP_NLE_UQ));
    return _mm256_movemask_ps(bad) != 0;
}

static void act_row32(void *xq, const float *x, int type, int64_t cols) {
    const int64_t nb = cols / 32;
    int8_t *qs = (int8_t *)xq;
    float *dv = (float *)qx32_dv(xq, nb);
    int32_t *cv = (int32_t *)qx32_cv(xq, nb);
    const int c = qx32_bias(type);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 32 * b;
        if (any_nonfinite(xb, 32)) {
            memset(qs + 32 * b, 0, 32);
            _mm256_storeu_ps(dv + 8 * b, _mm256_set1_ps(NAN));
            _mm256_storeu_si256((__m256i *)(cv + 8 * b), _mm256_setzero_si256());
            continue;
        }
        const float amax = amax32(xb), d = amax / 127;
        const float id = amax >= QACT_TINY ? 1.0f / d : 0.0f;
        const __m256 idv = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = _mm256_cvttps_epi32(round_away(_mm256_mul_ps(_mm256_loadu_ps(xb + 8 * k), idv)));
        _mm256_storeu_si256((__m256i *)(qs + 32 * b), pack32(q[0], q[1], q[2], q[3]));
        const int sum = hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        _mm256_storeu_ps(dv + 8 * b, _mm256_set1_ps(_cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT))));
        _mm256_storeu_si256((__m256i *)(cv + 8 * b), _mm256_setr_epi32(-c * sum, 0, 0, 0, 0, 0, 0, 0));
    }
}

/* The 8 lanes' sums of each of v[0..7], in order (v[j]'s sum in lane j). */
AI __m256i hsum8x8i(const __m256i *v) {
    const __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* Q8_K activations: per 256 values the scale from the first value of
 * largest magnitude, the codes rounded to nearest even, the sums of 16.
 * One pass finds a non-finite value and the largest magnitude; the first
 * value of that magnitude by compare and mask; the 16 sums by one add tree
 * (the scalar search and a horizontal sum per 16 values were 3.5x the
 * time; the reference's bits either way). */
static void act_rowk(void *xq, const float *x, int64_t cols) {
    qx_k *y = (qx_k *)xq;
    const int64_t nb = cols / QK_K;
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(FLT_MAX);
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) {
            const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, big, _CMP_NLE_UQ));
            m = _mm256_max_ps(m, a);
        }
        if (_mm256_movemask_ps(bad)) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = NAN;
            continue;
        }
        const float amax = hmax8(m);
        if (!(amax >= QACT_TINY)) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0;
        const __m256 av = _mm256_set1_ps(amax);
        for (int k = 0; k < QK_K; k += 8) { /* the first value of largest magnitude */
            const int e = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)), av, _CMP_EQ_OQ));
            if (e) {
                max = x[k + __builtin_ctz((unsigned)e)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 is = _mm256_set1_ps(iscale);
        __m256i sums[16];
        for (int k = 0; k < QK_K; k += 32) {
            __m256i q[4];
            for (int u = 0; u < 4; u++)
                q[u] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8 * u), is),
                                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            _mm256_store_si256((__m256i *)(y[i].qs + k), pack32(q[0], q[1], q[2], q[3]));
            sums[k / 16] = _mm256_add_epi32(q[0], q[1]);
            sums[k / 16 + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        /* |sum| <= 16 * 128: int16 exactly; packs interleaves the halves */
        const __m256i b16 = _mm256_packs_epi32(hsum8x8i(sums), hsum8x8i(sums + 8));
        _mm256_storeu_si256((__m256i *)y[i].bsums, _mm256_permute4x64_epi64(b16, 0xD8));
        y[i].d = 1 / iscale;
        memset(y[i].pad, 0, sizeof y[i].pad);
    }
}

void avx2_qact_row(void *xq, const float *x, int type, int64_t cols) {
    if (qt_is32(type))
        act_row32(xq, x, type, cols);
    else
        act_rowk(xq, x, cols);
    if (qx_k_ncv(type)) qx_k_cv_row(xq, type, cols / QK_K);
}
