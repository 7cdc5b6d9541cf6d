/*
 * quant_r8_avx2.c - the many-row product of the 32-block weights (Q8_0,
 * Q4_0, MXFP4, IQ4_NL, Q5_0, Q4_1, Q5_1) with AVX2 (no VNNI): the 8 int32
 * lanes of a register are 8 W rows, as quant_r16_avx512.c does with 16 on
 * AVX-512. quant_avx2.c sends it the products of a few rows of x or more
 * (R8_MIN_N there).
 *
 * quant_avx2.c's tiles give each W row a register of 32 products and scale
 * it per block before a horizontal sum at the end: about 6 operations per
 * 32 products. Here 8 W rows are interleaved once per chunk of R8_KC blocks
 * into a buffer that stays in L1 (r8_buf): block b's codes as 8 registers,
 * register k holding bytes 4k..4k+3 of each of the 8 rows, and the rows'
 * scales (and Q4_1 / Q5_1's mins) in f32. vpmaddubsw multiplies unsigned
 * by signed bytes and adds pairs into int16 with saturation, so:
 *
 * - The nibble types are stored unsigned (Q4_0 / Q5_0: w + 8 / w + 16;
 *   MXFP4: kvalues_mxfp4 + 12; Q4_1 / Q5_1: as stored), at most u = 15,
 *   24 or 31; a pair is at most 2 * 127 * u, so the int16 pairs of
 *   R8_DEPTH(T) registers (8 for u = 15, 4 for 24 and 31) add without
 *   overflow before one vpmaddwd by 1 takes them to int32:
 *     s16  = sum_k vpmaddubsw(W_k, broadcast of x codes 4k..4k+3)
 *     t    = cv + vpmaddwd(s16, 1)      (per R8_DEPTH registers)
 *   about 2.1 operations per 32 products for Q4_0, 2.3 for the others.
 * - Q8_0 and IQ4_NL are stored signed (w; kvalues_iq4nl), as a bias of
 *   128 would overflow the pairs, and take the sign trick of quant_avx2.c:
 *   |w| * (x * sign(w)), a pair at most 2 * 128 * 127 < 32768:
 *     t   += vpmaddwd(vpmaddubsw(|W_k|, vpsignb(x_k, W_k)), 1)
 *   4 operations per 32 products, |W_k| once per tile.
 *
 * With AVX-VNNI (built as quant_r8_avxvnni_avx2.c, R8_VNNI defined) every
 * type is stored biased as quant_r16_avx512.c stores it (Q8_0 ^ 0x80, IQ4_NL
 * kvalues + 128) and t starts at cv, as there:
 *     t = vpdpbusd(t, W_k, broadcast of x codes 4k..4k+3)   k = 0..7
 * one operation per 32 products.
 *
 * Then acc_i = fma(float(t), dw * dx_i, acc_i) (Q4_1 / Q5_1: the min term
 * as quant_r16_avx512.c takes it), 8 outputs of y with no horizontal sum.
 * Every t is the exact integer sum of the block, and the f32 operations on
 * it are the same for each output whatever rows share its group (a partial
 * group repeats its last row and its extra lanes are not stored), so the
 * results do not depend on how threads split the rows. Between chunks the
 * sums wait in y.
 *
 * Q8_0 matrices packed at load (quant_pack.c, Q8_0_R8: each group of 8 rows
 * already in the layout r8_repack writes, its codes signed) skip the
 * interleave: the tiles read the group where it lies (packed_streams),
 * with the same integer sums and f32 operations, so the same bits as the
 * stored matrix from R8_MIN_N rows of x; one row of x (decode) takes
 * packed_gemv, the same operations over R8P_NR groups side by side. One
 * core of an AMD Zen 3, a cold [768][2048] Q8_0 matrix, us, stored ->
 * packed: 2 / 4 / 8 / 32 rows of x 171 / 222 / 334 / 1035 -> 92 / 123 /
 * 278 / 990 (236 / 924 since every count goes by streams; the products
 * alone about 31 us a row); 1 row 65 -> 80 (the stored GEMV reads its rows
 * as streams faster), hence only the routed experts are packed
 * (model/repack.c).
 */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"
#include "kernels/quant_r8.h"

#ifdef R8_VNNI
#define R8_ROWS_FN avxvnni_rows_r8
#else
#define R8_ROWS_FN avx2_rows_r8
#endif

#define AI static inline __attribute__((always_inline))

#define R8_ROWS R8_LANES
#define R8_KC 16  /* blocks per chunk: 4 KiB of interleaved codes */
#define R8_NX 4 /* x rows per tile: 3 the same, 6 and 8 slower (16 registers) */
/* W packed at load (Q8_0_R8) by 1 to R8_NX rows of x: the groups in R8P_NR
 * streams, each prefetched R8P_PF bytes ahead (2 and 8 streams, 1, 4 and 8
 * KiB within the noise on an AMD Zen 3). */
#define R8P_NR 4
#define R8P_PF 2048

/* 8 W rows, R8_KC blocks, interleaved. */
typedef struct {
    __m256i q[R8_KC][8]; /* [block][k]: bytes 4k..4k+3 of rows 0..7 */
    __m256 d[R8_KC];     /* [block]: the scales of rows 0..7 */
    __m256 m[R8_KC];     /* [block]: the mins (Q4_1, Q5_1) */
} r8_buf;

AI size_t r8_bsize(const int T) {
    return T == QT_Q8_0 ? sizeof(block_q8_0) : T == QT_Q4_0 ? sizeof(block_q4_0) : T == QT_MXFP4 ? sizeof(block_mxfp4)
         : T == QT_IQ4_NL ? sizeof(block_iq4_nl) : T == QT_Q5_0 ? sizeof(block_q5_0)
         : T == QT_Q4_1 ? sizeof(block_q4_1) : sizeof(block_q5_1);
}
AI size_t r8_off_qs(const int T) {
    return T == QT_Q8_0 ? offsetof(block_q8_0, qs) : T == QT_Q4_0 ? offsetof(block_q4_0, qs)
         : T == QT_MXFP4 ? offsetof(block_mxfp4, qs) : T == QT_IQ4_NL ? offsetof(block_iq4_nl, qs)
         : T == QT_Q5_0 ? offsetof(block_q5_0, qs) : T == QT_Q4_1 ? offsetof(block_q4_1, qs)
                        : offsetof(block_q5_1, qs);
}
AI size_t r8_off_qh(const int T) { return T == QT_Q5_0 ? offsetof(block_q5_0, qh) : offsetof(block_q5_1, qh); }
AI int r8_has_min(const int T) { return T == QT_Q4_1 || T == QT_Q5_1; }
/* Whether the codes are stored signed (the sign trick) or unsigned (biased,
 * every type with VNNI). */
#ifdef R8_VNNI
AI int r8_signed(const int T) { return T < 0; }
#else
AI int r8_signed(const int T) { return T == QT_Q8_0 || T == QT_IQ4_NL; }
#endif
/* Registers of int16 pairs that add without overflow: 2 * 127 * u per pair
 * for codes up to u (15: Q4_0, Q4_1; 24: MXFP4; 31: Q5_0, Q5_1). */
AI int r8_depth(const int T) { return T == QT_Q4_0 || T == QT_Q4_1 ? 8 : 4; }

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

/* The 32 codes of the block at p in the activations' order (the nibble
 * types: low nibbles are values 0..15, high 16..31), stored as above. */
AI __m256i r8_codes(const int T, const uint8_t *p) {
    const size_t oq = r8_off_qs(T);
    if (T == QT_Q8_0) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(p + oq));
        return r8_signed(T) ? v : _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
    }
    const __m128i v = _mm_loadu_si128((const __m128i *)(p + oq));
    __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1);
    c = _mm256_and_si256(c, _mm256_set1_epi8(0x0F));
    if (T == QT_MXFP4)
        return _mm256_shuffle_epi8(
            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)mxfp4_biased_table())), c);
    if (T == QT_IQ4_NL) { /* kvalues_iq4nl + 128, back to signed for the sign trick */
        const __m256i v = _mm256_shuffle_epi8(
            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)iq4nl_biased_table())), c);
        return r8_signed(T) ? _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80)) : v;
    }
    if (T == QT_Q5_0 || T == QT_Q5_1) { /* + 16 where bit j of qh is set */
        const __m256i h = _mm256_set1_epi32((int)rd32(p + r8_off_qh(T)));
        const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                             3, 3, 3, 3, 3, 3, 3, 3);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        const __m256i on = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(h, sel), bit), bit);
        c = _mm256_add_epi8(c, _mm256_and_si256(on, _mm256_set1_epi8(0x10)));
    }
    return c;
}

/* h[0..7] as the words of a register (pinsrw from registers, where a
 * vector load would stall on the 8 narrow stores). */
AI __m128i r8_h8(const uint16_t *h) {
    return _mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3], (short)h[4], (short)h[5], (short)h[6],
                          (short)h[7]);
}

/* Blocks b0 .. b0 + kc of the 8 rows w[] into o; each block is prefetched
 * pf bytes on (the same block of the next group's rows). */
AI void r8_repack(const int T, r8_buf *o, const uint8_t *const *w, int64_t b0, int kc, size_t pf) {
    const size_t bb = r8_bsize(T);
    for (int b = 0; b < kc; b++) {
        const size_t at = (size_t)(b0 + b) * bb;
        __m256i z[8];
        float d[R8_ROWS];
        uint16_t dh[R8_ROWS] = {0}, mh[R8_ROWS] = {0}; /* the f16 scales, mins of rows 0..7 */
#pragma GCC unroll 8
        for (int p = 0; p < R8_ROWS; p++) {
            const uint8_t *blk = w[p] + at;
            _mm_prefetch((const char *)blk + pf, _MM_HINT_T1);
            z[p] = r8_codes(T, blk);
            if (T == QT_MXFP4) {
                d[p] = mxfp4_scale_half(blk[0]);
                continue;
            }
            dh[p] = rd16(blk);
            if (r8_has_min(T)) mh[p] = rd16(blk + 2);
        }
        r8_transpose(z, o->q[b]);
        o->d[b] = T == QT_MXFP4 ? _mm256_loadu_ps(d) : _mm256_cvtph_ps(r8_h8(dh)); /* exact */
        if (r8_has_min(T)) o->m[b] = _mm256_cvtph_ps(r8_h8(mh));
    }
}

/* y[i*ys + lane] (lanes < rw) for i < NX: x rows at xq (stride xs, nb
 * blocks each) times blocks b0 .. b0 + kc of 8 W rows, added to y unless
 * first. The W rows: with P 0 the chunk o (interleaved by r8_repack); with
 * P 1 the group at pg packed at load (quant_pack.c: Q8_0, its codes signed),
 * each block's next chunk prefetched when pf. */
AI void r8_tile(const int T, const int NX, const int P, float *y, int64_t ys, int rw, const uint8_t *xq, size_t xs,
                int64_t nb, const r8_buf *o, const uint8_t *pg, int64_t b0, int kc, int first, size_t pf) {
#ifndef R8_VNNI
    const __m256i ones = _mm256_set1_epi16(1);
#endif
    __m256 acc[R8_NX];
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) acc[i] = first ? _mm256_setzero_ps() : r8_load_y(y + i * ys, rw);
    for (int b = 0; b < kc; b++) {
        const int64_t bx = b0 + b;
        const __m256i *wq = P ? (const __m256i *)(pg + qp8_codes_at(nb, bx)) : o->q[b];
        if (P && pf) { /* the block pf bytes on: 272 bytes, from 5 lines on */
            const char *a = (const char *)pg + (size_t)bx * 272 + pf;
#pragma GCC unroll 5
            for (int l = 0; l < 5; l++) _mm_prefetch(a + 64 * l, _MM_HINT_T0);
        }
        const int8_t *qs[R8_NX];
        __m256i t[R8_NX];
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            qs[i] = qx32_qs(xr) + 32 * bx;
            t[i] = r8_signed(T) || r8_has_min(T) ? _mm256_setzero_si256() : _mm256_set1_epi32(qx32_cv(xr, nb)[8 * bx]);
        }
#ifdef R8_VNNI
        { /* two chains of 4 per row of x: one of 8 dependent vpdpbusd (latency 5) left the units idle */
            __m256i t1[R8_NX];
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) t1[i] = _mm256_setzero_si256();
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                __m256i w0 = _mm256_loadu_si256(wq + k), w1 = _mm256_loadu_si256(wq + k + 4);
                if (P) { /* packed signed: biased here, as r8_codes stores Q8_0 for VNNI */
                    w0 = _mm256_xor_si256(w0, _mm256_set1_epi8((char)0x80));
                    w1 = _mm256_xor_si256(w1, _mm256_set1_epi8((char)0x80));
                }
#pragma GCC unroll 4
                for (int i = 0; i < NX; i++) {
                    t[i] = _mm256_dpbusd_avx_epi32(t[i], w0, r8_bcast4(qs[i] + 4 * k));
                    t1[i] = _mm256_dpbusd_avx_epi32(t1[i], w1, r8_bcast4(qs[i] + 4 * k + 16));
                }
            }
#pragma GCC unroll 4
            for (int i = 0; i < NX; i++) t[i] = _mm256_add_epi32(t[i], t1[i]);
        }
#else
        if (r8_signed(T)) {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const __m256i w = _mm256_loadu_si256(wq + k), a = _mm256_abs_epi8(w);
#pragma GCC unroll 4
                for (int i = 0; i < NX; i++) {
                    const __m256i p = _mm256_maddubs_epi16(a, _mm256_sign_epi8(r8_bcast4(qs[i] + 4 * k), w));
                    t[i] = _mm256_add_epi32(t[i], _mm256_madd_epi16(p, ones));
                    R8_PIN(t[i]);
                }
            }
        } else {
            const int D = r8_depth(T);
            for (int k0 = 0; k0 < 8; k0 += D) {
                __m256i s[R8_NX];
#pragma GCC unroll 8
                for (int k = k0; k < k0 + D; k++) {
                    const __m256i w = _mm256_loadu_si256(wq + k);
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) {
                        const __m256i p = _mm256_maddubs_epi16(w, r8_bcast4(qs[i] + 4 * k));
                        s[i] = k == k0 ? p : _mm256_add_epi16(s[i], p);
                        R8_PIN(s[i]);
                    }
                }
#pragma GCC unroll 4
                for (int i = 0; i < NX; i++) {
                    t[i] = _mm256_add_epi32(t[i], _mm256_madd_epi16(s[i], ones));
                    R8_PIN(t[i]);
                }
            }
        }
#endif
        const __m256 dw =
            P ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(pg + qp8_scales_at(nb, bx)))) : o->d[b];
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            const float dx = qx32_dv(xr, nb)[8 * bx];
            if (r8_has_min(T)) { /* (d * sum(q x) + m * sum(x)) * dx, cv = -sum(x) */
                __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(t[i]), dw);
                u = _mm256_fnmadd_ps(o->m[b], _mm256_set1_ps((float)qx32_cv(xr, nb)[8 * bx]), u);
                acc[i] = _mm256_fmadd_ps(u, _mm256_set1_ps(dx), acc[i]);
            } else {
                acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[i]), _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc[i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) r8_store_y(y + i * ys, acc[i], rw);
}

/* W rows in runs of R8_G groups of 8 share each pass over x: the tiles of
 * a chunk run over every group's buffer before the next x rows, so x (96
 * bytes a block a row, from L2 when n is large) is read once per 8 * R8_G W
 * rows, not once per 8. */
#ifndef R8_G
#define R8_G 4
#endif

AI void rows_r8(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / 32;
    r8_buf buf[R8_G] __attribute__((aligned(32)));
    const size_t pf = (size_t)R8_G * R8_ROWS * j->w_row; /* the same group of the next run */
    for (int64_t rg = r0; rg < r1; rg += R8_G * R8_ROWS) {
        const int ng = (int)((r1 - rg < R8_G * R8_ROWS ? r1 - rg : R8_G * R8_ROWS) + R8_ROWS - 1) / R8_ROWS;
        const uint8_t *w[R8_G][R8_ROWS];
        int rw[R8_G];
        for (int g = 0; g < ng; g++) {
            const int64_t r = rg + g * R8_ROWS;
            rw[g] = r1 - r < R8_ROWS ? (int)(r1 - r) : R8_ROWS;
            for (int p = 0; p < R8_ROWS; p++) w[g][p] = j->W + (size_t)(r + (p < rw[g] ? p : rw[g] - 1)) * j->w_row;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += R8_KC) {
            const int kc = nb - b0 < R8_KC ? (int)(nb - b0) : R8_KC;
            for (int g = 0; g < ng; g++) r8_repack(T, &buf[g], w[g], b0, kc, pf);
            for (int64_t i = 0; i < j->n; i += R8_NX) {
                const int nx = j->n - i < R8_NX ? (int)(j->n - i) : R8_NX;
                const uint8_t *x = j->xq + (size_t)i * j->xq_row;
                const int first = b0 == 0;
                for (int g = 0; g < ng; g++) {
                    float *y = j->y + i * j->rows + rg + g * R8_ROWS;
#define R8_TILE(NX) r8_tile(T, NX, 0, y, j->rows, rw[g], x, j->xq_row, nb, &buf[g], NULL, b0, kc, first, 0)
                    switch (nx) {
                    case 1: R8_TILE(1); break;
                    case 2: R8_TILE(2); break;
                    case 3: R8_TILE(3); break;
                    default: R8_TILE(4); break;
                    }
#undef R8_TILE
                }
            }
        }
    }
}

/* Block sums of one row of x (codes xs, cv) with a packed block's 8 code
 * registers wq: the exact int32 sums of rows 0..7, as r8_tile makes them. */
AI __m256i pk_dot1(const __m256i *wq, const int8_t *xs, int32_t cv) {
#ifdef R8_VNNI
    __m256i t0 = _mm256_set1_epi32(cv), t1 = _mm256_setzero_si256();
    const __m256i bias = _mm256_set1_epi8((char)0x80);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        t0 = _mm256_dpbusd_avx_epi32(t0, _mm256_xor_si256(_mm256_loadu_si256(wq + k), bias), r8_bcast4(xs + 4 * k));
        t1 = _mm256_dpbusd_avx_epi32(t1, _mm256_xor_si256(_mm256_loadu_si256(wq + k + 4), bias),
                                     r8_bcast4(xs + 4 * k + 16));
    }
#else
    (void)cv;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i t0 = _mm256_setzero_si256(), t1 = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int k = 0; k < 8; k += 2) {
        const __m256i w0 = _mm256_loadu_si256(wq + k), w1 = _mm256_loadu_si256(wq + k + 1);
        const __m256i p0 = _mm256_maddubs_epi16(_mm256_abs_epi8(w0), _mm256_sign_epi8(r8_bcast4(xs + 4 * k), w0));
        const __m256i p1 =
            _mm256_maddubs_epi16(_mm256_abs_epi8(w1), _mm256_sign_epi8(r8_bcast4(xs + 4 * k + 4), w1));
        t0 = _mm256_add_epi32(t0, _mm256_madd_epi16(p0, ones));
        R8_PIN(t0);
        t1 = _mm256_add_epi32(t1, _mm256_madd_epi16(p1, ones));
        R8_PIN(t1);
    }
#endif
    return _mm256_add_epi32(t0, t1);
}

/* One row of x by NG packed groups pg[] side by side, block by block (so
 * the hardware prefetcher sees NG streams advancing together, as
 * quant_avx2.c's gemv_streams reads its rows): each group's 8 outputs (rw[g]
 * stored) at y[g]; the blocks walked in pairs by pointer, each pair
 * prefetched pf bytes on; the same bits as r8_tile (one accumulator a
 * group, blocks in order). */
AI void packed_gemv(const int NG, const qmm_job *j, float *const *y, const uint8_t *const *pg, const int *rw,
                    size_t pf) {
    const int64_t nb = j->cols / 32;
    const int8_t *xs = qx32_qs(j->xq);
    const float *dv = qx32_dv(j->xq, nb);
    const int32_t *cv = qx32_cv(j->xq, nb);
    __m256 acc[R8P_NR];
    const uint8_t *pp[R8P_NR];
#pragma GCC unroll 4
    for (int g = 0; g < NG; g++) {
        acc[g] = _mm256_setzero_ps();
        pp[g] = pg[g];
    }
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m256 dx0 = _mm256_set1_ps(dv[8 * b]), dx1 = _mm256_set1_ps(dv[8 * b + 8]);
#pragma GCC unroll 4
        for (int g = 0; g < NG; g++) {
            const uint8_t *p = pp[g];
#pragma GCC unroll 9
            for (int l = 0; l < 9; l++) _mm_prefetch((const char *)p + pf + 64 * l, _MM_HINT_T0);
            const __m256i t0 = pk_dot1((const __m256i *)(p + 32), xs + 32 * b, cv[8 * b]);
            const __m256i t1 = pk_dot1((const __m256i *)(p + 288), xs + 32 * b + 32, cv[8 * b + 8]);
            const __m256 d0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
            const __m256 d1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16)));
            acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t0), _mm256_mul_ps(d0, dx0), acc[g]);
            acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t1), _mm256_mul_ps(d1, dx1), acc[g]);
            pp[g] = p + 544;
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < NG; g++) {
        if (b < nb) { /* the odd last block: [scales (16) | codes] */
            const __m256i t = pk_dot1((const __m256i *)(pp[g] + 16), xs + 32 * b, cv[8 * b]);
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)pp[g]));
            acc[g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_mul_ps(d, _mm256_set1_ps(dv[8 * b])), acc[g]);
        }
        r8_store_y(y[g], acc[g], rw[g]);
    }
}

/* The rows of x of the job by W packed at load: the groups of [r0, r1) in
 * R8P_NR runs, step i taking group i of each run whole, so the hardware
 * prefetcher sees R8P_NR long streams, with software prefetch R8P_PF bytes
 * along each (as quant_avx2.c's gemv_streams). A
 * group (8 rows, 17 KiB at 2048 columns) is read from memory by its first
 * tile of x rows and from L1 / L2 by the rest. This beat chunks of R8_KC
 * blocks over R8_G groups at every count of x rows (one core of an AMD Zen
 * 3, a cold [768][2048] matrix, us, chunks -> streams: 6 / 8 / 16 / 32 /
 * 128 rows 238 / 292 / 526 / 1003 / 3948 -> 204 / 236 / 463 / 924 / 3886). */
static void packed_streams(const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / 32, ng = (r1 - r0 + R8_ROWS - 1) / R8_ROWS, per = (ng + R8P_NR - 1) / R8P_NR;
    const size_t gbytes = (size_t)QPACK_ROWS * j->w_row;
    for (int64_t i = 0; i < per; i++) {
        if (j->n == 1) {
            float *y[R8P_NR];
            const uint8_t *pg[R8P_NR];
            int rw[R8P_NR], m = 0;
            for (int q = 0; q < R8P_NR; q++) {
                const int64_t g = q * per + i, r = r0 + g * R8_ROWS;
                if (g >= ng) break;
                rw[m] = r1 - r < R8_ROWS ? (int)(r1 - r) : R8_ROWS;
                y[m] = j->y + r;
                pg[m++] = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
            }
            switch (m) {
            case R8P_NR: packed_gemv(R8P_NR, j, y, pg, rw, R8P_PF); break;
            default:
                for (int q = 0; q < m; q++) packed_gemv(1, j, y + q, pg + q, rw + q, R8P_PF);
                break;
            }
            continue;
        }
        for (int q = 0; q < R8P_NR; q++) {
            const int64_t g = q * per + i, r = r0 + g * R8_ROWS;
            if (g >= ng) break;
            const int rw = r1 - r < R8_ROWS ? (int)(r1 - r) : R8_ROWS;
            const uint8_t *pg = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
            for (int64_t x0 = 0; x0 < j->n; x0 += R8_NX) {
                const int nx = j->n - x0 < R8_NX ? (int)(j->n - x0) : R8_NX;
                const uint8_t *x = j->xq + (size_t)x0 * j->xq_row;
                float *y = j->y + x0 * j->rows + r;
                const size_t pf = x0 == 0 ? R8P_PF : 0;
#define R8_TILE(NX) r8_tile(QT_Q8_0, NX, 1, y, j->rows, rw, x, j->xq_row, nb, NULL, pg, 0, (int)nb, 1, pf)
                switch (nx) {
                case 1: R8_TILE(1); break;
                case 2: R8_TILE(2); break;
                case 3: R8_TILE(3); break;
                default: R8_TILE(4); break;
                }
#undef R8_TILE
            }
        }
    }
}

#ifdef R8_VNNI
void avxvnni_rows_packed(const qmm_job *j, int64_t r0, int64_t r1) { packed_streams(j, r0, r1); }
#else
void avx2_rows_packed(const qmm_job *j, int64_t r0, int64_t r1) { packed_streams(j, r0, r1); }
#endif

#define R8_FN(T, NAME) \
    static void r8_##NAME(const qmm_job *j, int64_t r0, int64_t r1) { rows_r8(T, j, r0, r1); }
R8_FN(QT_Q8_0, q8_0)
R8_FN(QT_Q4_0, q4_0)
R8_FN(QT_MXFP4, mxfp4)
R8_FN(QT_IQ4_NL, iq4_nl)
R8_FN(QT_Q5_0, q5_0)
R8_FN(QT_Q4_1, q4_1)
R8_FN(QT_Q5_1, q5_1)

int R8_ROWS_FN(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_Q8_0: r8_q8_0(j, r0, r1); return 1;
    case QT_Q4_0: r8_q4_0(j, r0, r1); return 1;
    case QT_MXFP4: r8_mxfp4(j, r0, r1); return 1;
    case QT_IQ4_NL: r8_iq4_nl(j, r0, r1); return 1;
    case QT_Q5_0: r8_q5_0(j, r0, r1); return 1;
    case QT_Q4_1: r8_q4_1(j, r0, r1); return 1;
    case QT_Q5_1: r8_q5_1(j, r0, r1); return 1;
    default: return 0;
    }
}

#ifdef R8_VNNI
R8_VNNI_END
#endif
