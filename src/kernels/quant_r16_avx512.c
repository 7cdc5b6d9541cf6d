/*
 * quant_r16_avx512.c - the many-row product of Q8_0 and Q4_0 weights with
 * AVX-512 VNNI (no AMX): the 16 int32 lanes of a register are 16 W rows.
 *
 * quant_avx512.c's tiles give each W row a register of 64 products (two
 * 32-blocks) and scale each block in f32 before a horizontal sum: about 4
 * vector operations per 64 products. Here 16 W rows are interleaved once per
 * chunk of RP_KC blocks into a buffer that stays in L1 (rp_buf): block b's
 * codes as 8 registers, register k holding bytes 4k..4k+3 of each of the 16
 * rows, biased to unsigned (Q8_0: ^ 0x80 = w + 128; Q4_0: the nibbles,
 * w + 8, unpacked to bytes), and the 16 rows' scales in f32. Then for x row
 * i and block b:
 *   t = cv_i,b (the -c * sum(x codes) of quant_impl.h, broadcast)
 *   t = vpdpbusd(t, W_k, broadcast of x codes 4k..4k+3)   k = 0..7
 *   acc_i = fma(float(t), dw * dx_i,b, acc_i)
 * about 10 operations per 512 products, and acc_i is 16 outputs of y, no
 * horizontal sum. Tiles of up to RP_NX x rows reuse the 8 W registers.
 *
 * The interleave is a 16 x 8 transpose of dwords (quant_r16.h, shared with
 * the 256-blocks' quant_r16k_avx512.c). Every output is the integer sum of
 * each block, exactly, times dw * dx, added in block order: the same whatever rows share
 * its group (a partial group repeats its last row, the extra lanes are not
 * stored), so results do not depend on how threads split the rows. Between
 * chunks the sums wait in y.
 */
#include <immintrin.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC target("avx512vnni")
#endif

#include "kernels/quant_r16.h"

#define AI R16_AI

#define RP_ROWS 16 /* W rows per group: the int32 lanes of a register */
#define RP_KC 16   /* blocks per chunk: 9 KiB of interleaved weights */
#define RP_NX 8    /* x rows per tile: 8 W + 8 f32 + 8 int32 registers */

/* 16 W rows, RP_KC blocks, interleaved. */
typedef struct {
    __m512i q[RP_KC][8]; /* [block][k]: bytes 4k..4k+3 of rows 0..15, + 128 */
    __m512 d[RP_KC];     /* [block]: the scales of rows 0..15 */
} rp_buf;

/* The biased codes of the blocks at p and q (Q4_0 if q4, else Q8_0) in
 * the activations' order: [p: 0..31 | q: 0..31]. */
AI __m512i rp_codes(const uint8_t *p, const uint8_t *q, int q4) {
    if (q4) { /* nibbles: values 0..15 low, 16..31 high, + 8 */
        __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + 2)));
        v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(q + 2)));
        v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
        return _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
    }
    return _mm512_xor_si512(r16_load2(p + 2, q + 2), _mm512_set1_epi8((char)0x80));
}

/* Blocks b0 .. b0 + kc of the 16 rows w[] (Q4_0 if q4, else Q8_0) into o;
 * off[] is w[p] - w[0]. The blocks pf bytes on are prefetched into L2: the
 * same blocks of the next group's rows, or in the last group the next
 * chunk. Against the next chunk always (which left each group's first
 * chunk cold), one core, cold [768][2048], us, medians: Q8_0 4 rows 130 ->
 * 100, 8 rows 175 -> 155-176, 16 rows 252 -> 229-233, 64 rows 753-763 ->
 * 729-742; Q4_0 5 rows 137 -> 112, 8 rows 170-179 -> 146-152, 16 rows
 * 251-259 -> 223-233 (minima: Q8_0 4 rows 91-102 -> 95-104, the others
 * within 3% or lower). */
AI void rp_repack(const int q4, rp_buf *o, const uint8_t *const *w, __m512i off, int64_t b0, int kc, size_t pf) {
    const size_t bb = q4 ? sizeof(block_q4_0) : sizeof(block_q8_0);
    for (int b = 0; b < kc; b++) {
        const size_t at = (size_t)(b0 + b) * bb;
        /* z[p]: row p's 8 code dwords | row p + 8's */
        __m512i z[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            _mm_prefetch((const char *)w[p] + at + pf, _MM_HINT_T1);
            _mm_prefetch((const char *)w[p + 8] + at + pf, _MM_HINT_T1);
            z[p] = rp_codes(w[p] + at, w[p + 8] + at, q4);
        }
        r16_transpose(z, o->q[b]);
        /* the f16 scale and the first two codes of each row; keep the scale */
        __m512i s = _mm512_i32gather_epi32(off, (const void *)(w[0] + at), 1);
        o->d[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(s));
    }
}

/* y[i*ys + lane] (lanes in m) for i < NX: x rows at xq (stride xs, nb blocks
 * each) times the chunk o of blocks b0 .. b0 + kc, added to y unless first. */
AI void rp_tile(const int NX, float *y, int64_t ys, __mmask16 m, const uint8_t *xq, size_t xs, int64_t nb,
                const rp_buf *o, int64_t b0, int kc, int first) {
    __m512 acc[RP_NX];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) acc[i] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + i * ys);
    for (int b = 0; b < kc; b++) {
        const int64_t bx = b0 + b;
        __m512i wq[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) wq[k] = _mm512_load_si512((const void *)&o->q[b][k]);
        const __m512 dw = o->d[b];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            const int8_t *qs = qx32_qs(xr) + 32 * bx;
            __m512i t = _mm512_set1_epi32(qx32_cv(xr, nb)[8 * bx]);
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) t = dpbusd_bcast(t, wq[k], qs + 4 * k);
            const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(qx32_dv(xr, nb)[8 * bx]));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), d, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) _mm512_mask_storeu_ps(y + i * ys, m, acc[i]);
}

AI void rows_r16(const int q4, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / 32;
    rp_buf buf __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += RP_ROWS) {
        const int rw = r1 - r < RP_ROWS ? (int)(r1 - r) : RP_ROWS;
        const uint8_t *w[RP_ROWS];
        int32_t off[RP_ROWS];
        for (int p = 0; p < RP_ROWS; p++) {
            w[p] = j->W + (size_t)(r + (p < rw ? p : rw - 1)) * j->w_row;
            off[p] = (int32_t)(w[p] - w[0]);
        }
        const __m512i offv = _mm512_loadu_si512((const void *)off);
        const __mmask16 m = (__mmask16)((1u << rw) - 1);
        for (int64_t b0 = 0; b0 < nb; b0 += RP_KC) {
            const int kc = nb - b0 < RP_KC ? (int)(nb - b0) : RP_KC;
            const size_t pf = r + RP_ROWS < r1 ? RP_ROWS * j->w_row : RP_KC * (q4 ? sizeof(block_q4_0) : sizeof(block_q8_0));
            rp_repack(q4, &buf, w, offv, b0, kc, pf);
            for (int64_t i = 0; i < j->n; i += RP_NX) {
                const int nx = j->n - i < RP_NX ? (int)(j->n - i) : RP_NX;
                float *y = j->y + i * j->rows + r;
                const uint8_t *x = j->xq + (size_t)i * j->xq_row;
                const int first = b0 == 0;
#define RP_TILE(NX) rp_tile(NX, y, j->rows, m, x, j->xq_row, nb, &buf, b0, kc, first)
                switch (nx) {
                case 1: RP_TILE(1); break;
                case 2: RP_TILE(2); break;
                case 3: RP_TILE(3); break;
                case 4: RP_TILE(4); break;
                case 5: RP_TILE(5); break;
                case 6: RP_TILE(6); break;
                case 7: RP_TILE(7); break;
                default: RP_TILE(8); break;
                }
#undef RP_TILE
            }
        }
    }
}

void avx512_rows_r16(const qmm_job *j, int64_t r0, int64_t r1) {
    if (j->type == QT_Q4_0)
        rows_r16(1, j, r0, r1);
    else
        rows_r16(0, j, r0, r1);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
