/*
 * quant_r16_avx512.c - the many-row product of the 32-block weights (Q8_0,
 * Q4_0, MXFP4, IQ4_NL, Q5_0, Q4_1, Q5_1) with AVX-512 VNNI (no AMX): the
 * 16 int32 lanes of a register are 16 W rows. quant_avx512.c sends it the
 * products of a few rows of x or more (its *_R16_MIN_N).
 *
 * quant_avx512.c's tiles give each W row a register of 64 products (two
 * 32-blocks) and scale each block in f32 before a horizontal sum: about 4
 * vector operations per 64 products. Here 16 W rows are interleaved once per
 * chunk of RP_KC blocks into a buffer that stays in L1 (rp_buf): block b's
 * codes as 8 registers, register k holding bytes 4k..4k+3 of each of the 16
 * rows, biased to unsigned as quant_impl.h describes (Q8_0: ^ 0x80 = w + 128;
 * Q4_0 / Q5_0: the nibbles unpacked to bytes, w + 8, and with the fifth bit
 * w + 16; MXFP4 / IQ4_NL: the nibbles looked up as kvalues + 12 / + 128;
 * Q4_1 / Q5_1: unsigned as stored), and the 16 rows' scales in f32 (MXFP4:
 * mxfp4_scale_half of the E8M0 byte, computed in the register), with
 * Q4_1 / Q5_1's mins. Then for x row i and block b:
 *   t = cv_i,b (the -c * sum(x codes) of quant_impl.h, broadcast)
 *   t = vpdpbusd(t, W_k, broadcast of x codes 4k..4k+3)   k = 0..7
 *   acc_i = fma(float(t), dw * dx_i,b, acc_i)
 * about 10 operations per 512 products, and acc_i is 16 outputs of y, no
 * horizontal sum. Q4_1 / Q5_1 (y = sum_b dx (d sum(q x) + m sum(x)), cv =
 * -sum(x)) start t at 0 and take
 *   acc_i = fma(float(t) * dw - m * float(cv_i,b), dx_i,b, acc_i)
 * one operation more; adding m * (dx * sum(x)) as a second fma instead was
 * 4-8% slower at 64 and 256 rows of x. Tiles of up to RP_NX x rows reuse
 * the 8 W registers.
 *
 * For a few rows of x (rp_fuse_max: Q8_0 up to 12, the other types without
 * a min up to 8, as the spread routing of trained models gives each expert
 * at prefill) storing the buffer and loading it back cost as much as the
 * products: rp_fused takes the codes from the transposes straight into
 * vpdpbusd, block by block, with the same operations in the same order (the
 * same bits).
 *
 * The interleave is a 16 x 8 transpose of dwords (quant_r16.h, shared with
 * the 256-blocks' quant_r16k_avx512.c). While it reads a block of the 16 rows it
 * prefetches the same block of the next 16 rows into L2: against 16
 * blocks on in the same rows (one core, cold [768][2048], us) Q8_0 at 1 / 4
 * / 8 / 64 rows of x 180 / 278 / 346 / 809 -> 107 / 199 / 302 / 747, MXFP4
 * 168 / 191 / 257 / 1119 -> 115 / 152 / 214 / 1085; two groups on was no
 * better, and the prefetches of a chunk issued at once were worse. Every
 * output is the integer sum of each block, exactly, times the scales, added
 * in block order: the same whatever rows share its group (a partial group
 * repeats its last row, the extra lanes are not stored), so results do not
 * depend on how threads split the rows. Between chunks the sums wait in y.
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

#include "kernels/quant_r16.h"

#define AI R16_AI

#define RP_ROWS 16 /* W rows per group: the int32 lanes of a register */
#define RP_KC 16   /* blocks per chunk: 8 KiB of interleaved codes */
#define RP_NX 8    /* x rows per tile: 8 W + 8 f32 + 8 int32 registers */
#define RP_NX2 4   /* x rows per tile of two groups: 16 W + 8 f32 registers */
/* From this many x rows, the types without a min take W rows in pairs of
 * groups (rp_tile2), whose x broadcasts serve twice the products. One core,
 * cold [768][2048], us, single groups -> pairs, the same bits: Q8_0 16 / 32
 * / 64 / 256 rows 229 / 412 / 743 / 3057 -> 228 / 357 / 661 / 2657; Q4_0,
 * MXFP4, IQ4_NL, Q5_0 16 rows 223-234 -> 206-220, 64 rows 710-773 ->
 * 655-665 (AMD Zen 4). */
#define RP_PAIR_MIN_N 16

/* 16 W rows, RP_KC blocks, interleaved. */
typedef struct {
    __m512i q[RP_KC][8]; /* [block][k]: bytes 4k..4k+3 of rows 0..15, biased */
    __m512 d[RP_KC];     /* [block]: the scales of rows 0..15 */
    __m512 m[RP_KC];     /* [block]: the mins of rows 0..15 (Q4_1, Q5_1) */
} rp_buf;

AI uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Per type: bytes of a block, offset of its codes, of Q5_0 / Q5_1's qh. */
AI size_t rp_bsize(const int T) {
    return T == QT_Q8_0 ? sizeof(block_q8_0) : T == QT_Q4_0 ? sizeof(block_q4_0) : T == QT_MXFP4 ? sizeof(block_mxfp4)
         : T == QT_IQ4_NL ? sizeof(block_iq4_nl) : T == QT_Q5_0 ? sizeof(block_q5_0)
         : T == QT_Q4_1 ? sizeof(block_q4_1) : sizeof(block_q5_1);
}
AI size_t rp_off_qs(const int T) {
    return T == QT_Q8_0 ? offsetof(block_q8_0, qs) : T == QT_Q4_0 ? offsetof(block_q4_0, qs)
         : T == QT_MXFP4 ? offsetof(block_mxfp4, qs) : T == QT_IQ4_NL ? offsetof(block_iq4_nl, qs)
         : T == QT_Q5_0 ? offsetof(block_q5_0, qs) : T == QT_Q4_1 ? offsetof(block_q4_1, qs)
                        : offsetof(block_q5_1, qs);
}
AI size_t rp_off_qh(const int T) { return T == QT_Q5_0 ? offsetof(block_q5_0, qh) : offsetof(block_q5_1, qh); }
/* Whether type T has a min per block (y += m * dx * sum(x)). */
AI int rp_has_min(const int T) { return T == QT_Q4_1 || T == QT_Q5_1; }

/* The biased codes of the blocks at p and q in the activations' order:
 * [p: 0..31 | q: 0..31]. Q8_0 ^ 0x80 = w + 128; the nibble types split
 * low (values 0..15) and high (16..31) nibbles, then MXFP4 / IQ4_NL look
 * them up (kvalues + 12 / + 128) and Q5_0 / Q5_1 add the fifth bit (16)
 * under a byte mask from qh; Q4_0 / Q5_0 are then w + 8 / w + 16 and
 * Q4_1 / Q5_1 unsigned as stored. */
AI __m512i rp_codes(const int T, const uint8_t *p, const uint8_t *q) {
    const size_t oq = rp_off_qs(T);
    if (T == QT_Q8_0) {
        __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + oq))),
                                       _mm256_loadu_si256((const __m256i *)(q + oq)), 1);
        return _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
    }
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + oq)));
    v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(q + oq)));
    v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
    v = _mm512_and_si512(v, _mm512_set1_epi8(0x0F));
    if (T == QT_MXFP4 || T == QT_IQ4_NL) {
        const uint8_t *tab = T == QT_MXFP4 ? mxfp4_biased_table() : iq4nl_biased_table();
        return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)tab)), v);
    }
    if (T == QT_Q5_0 || T == QT_Q5_1) {
        const uint64_t h = rd32(p + rp_off_qh(T)) | (uint64_t)rd32(q + rp_off_qh(T)) << 32;
        v = _mm512_mask_add_epi8(v, _cvtu64_mask64(h), v, _mm512_set1_epi8(0x10));
    }
    return v;
}

/* The scales (and Q4_1 / Q5_1's mins) of 16 rows from the first 4 bytes of
 * each row's block (one gather at w0 + off[p]): an f16 d in bytes 0..1 and
 * m in 2..3, or MXFP4's E8M0 byte e as mxfp4_scale_half(e): (e - 1) << 23,
 * and the subnormals 0x00200000 << e for e < 2. */
AI void rp_scales(const int T, const uint8_t *w0, __m512i off, __m512 *d, __m512 *m) {
    const __m512i s = _mm512_i32gather_epi32(off, (const void *)w0, 1);
    if (T == QT_MXFP4) {
        const __m512i e = _mm512_and_si512(s, _mm512_set1_epi32(0xFF));
        __m512i v = _mm512_slli_epi32(_mm512_sub_epi32(e, _mm512_set1_epi32(1)), 23);
        v = _mm512_mask_sllv_epi32(v, _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2)),
                                   _mm512_set1_epi32(0x00200000), e);
        *d = _mm512_castsi512_ps(v);
        return;
    }
    *d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(s));
    if (rp_has_min(T)) *m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(s, 16)));
}

/* Blocks b0 .. b0 + kc of the 16 rows w[] of type T into o; off[] is
 * w[p] - w[0]. Each block is prefetched into L2 pf bytes on (the same block
 * of the next group's rows). */
AI void rp_repack(const int T, rp_buf *o, const uint8_t *const *w, __m512i off, int64_t b0, int kc, size_t pf) {
    const size_t bb = rp_bsize(T);
    for (int b = 0; b < kc; b++) {
        const size_t at = (size_t)(b0 + b) * bb;
        /* z[p]: row p's 8 code dwords | row p + 8's */
        __m512i z[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            _mm_prefetch((const char *)w[p] + at + pf, _MM_HINT_T1);
            _mm_prefetch((const char *)w[p + 8] + at + pf, _MM_HINT_T1);
            z[p] = rp_codes(T, w[p] + at, w[p + 8] + at);
        }
        r16_transpose(z, o->q[b]);
        rp_scales(T, w[0] + at, off, &o->d[b], &o->m[b]);
    }
}

/* y[i*ys + lane] (lanes in m) for i < NX: x rows at xq (stride xs, nb blocks
 * each) times the chunk o of blocks b0 .. b0 + kc of type T, added to y
 * unless first. */
AI void rp_tile(const int T, const int NX, float *y, int64_t ys, __mmask16 m, const uint8_t *xq, size_t xs,
                int64_t nb, const rp_buf *o, int64_t b0, int kc, int first) {
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
            const int32_t cv = qx32_cv(xr, nb)[8 * bx];
            const float dx = qx32_dv(xr, nb)[8 * bx];
            if (rp_has_min(T)) { /* (d * sum(q x) + m * sum(x)) * dx, cv = -sum(x) */
                __m512i t = _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) t = dpbusd_bcast(t, wq[k], qs + 4 * k);
                __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(t), dw);
                u = _mm512_fnmadd_ps(o->m[b], _mm512_set1_ps((float)cv), u);
                acc[i] = _mm512_fmadd_ps(u, _mm512_set1_ps(dx), acc[i]);
            } else {
                __m512i t = _mm512_set1_epi32(cv);
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) t = dpbusd_bcast(t, wq[k], qs + 4 * k);
                const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(dx));
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), d, acc[i]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) _mm512_mask_storeu_ps(y + i * ys, m, acc[i]);
}

/* The same for two groups at once (32 W rows, all in range), x rows in
 * tiles of up to RP_NX2: each x row's cv and dx are broadcast once for 16
 * vpdpbusd instead of 8. Not for the types with a min (rp_has_min). */
AI void rp_tile2(const int T, const int NX, float *y, int64_t ys, const uint8_t *xq, size_t xs, int64_t nb,
                 const rp_buf *o, const rp_buf *o2, int64_t b0, int kc, int first) {
    __m512 acc[RP_NX2], acc2[RP_NX2];
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) {
        acc[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + i * ys);
        acc2[i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + i * ys + RP_ROWS);
    }
    for (int b = 0; b < kc; b++) {
        const int64_t bx = b0 + b;
        __m512i wq[8], wq2[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            wq[k] = _mm512_load_si512((const void *)&o->q[b][k]);
            wq2[k] = _mm512_load_si512((const void *)&o2->q[b][k]);
        }
        const __m512 dw = o->d[b], dw2 = o2->d[b];
#pragma GCC unroll 4
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            const int8_t *qs = qx32_qs(xr) + 32 * bx;
            __m512i t = _mm512_set1_epi32(qx32_cv(xr, nb)[8 * bx]), t2 = t;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                t = dpbusd_bcast(t, wq[k], qs + 4 * k);
                t2 = dpbusd_bcast(t2, wq2[k], qs + 4 * k);
            }
            const __m512 dx = _mm512_set1_ps(qx32_dv(xr, nb)[8 * bx]);
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(dw, dx), acc[i]);
            acc2[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t2), _mm512_mul_ps(dw2, dx), acc2[i]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NX; i++) {
        _mm512_storeu_ps(y + i * ys, acc[i]);
        _mm512_storeu_ps(y + i * ys + RP_ROWS, acc2[i]);
    }
}

/* The 16 W rows from r (rows past r1 repeat the last) into w[], their
 * offsets from w[0] into *offv; returns how many are in range. */
AI int rp_group(const qmm_job *j, int64_t r, int64_t r1, const uint8_t **w, __m512i *offv) {
    const int rw = r1 - r < RP_ROWS ? (int)(r1 - r) : RP_ROWS;
    int32_t off[RP_ROWS];
    for (int p = 0; p < RP_ROWS; p++) {
        w[p] = j->W + (size_t)(r + (p < rw ? p : rw - 1)) * j->w_row;
        off[p] = (int32_t)(w[p] - w[0]);
    }
    *offv = _mm512_loadu_si512((const void *)off);
    return rw;
}

/* y[i*ys + lane] (lanes in m) for i < NX: x rows at xq (stride xs, nb blocks
 * each) times all nb blocks of the 16 rows w[] of type T (no min), the codes
 * going from the transposes straight into vpdpbusd instead of through the
 * buffer; the same operations in the same order as rp_repack + rp_tile, so
 * the same bits. Each block is prefetched into L2 pf bytes on (0: none). */
AI void rp_fused(const int T, const int NX, float *y, int64_t ys, __mmask16 m, const uint8_t *xq, size_t xs,
                 int64_t nb, const uint8_t *const *w, __m512i off, size_t pf) {
    const size_t bb = rp_bsize(T);
    __m512 acc[RP_NX];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const size_t at = (size_t)b * bb;
        __m512i z[8], wq[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++) {
            if (pf) {
                _mm_prefetch((const char *)w[p] + at + pf, _MM_HINT_T1);
                _mm_prefetch((const char *)w[p + 8] + at + pf, _MM_HINT_T1);
            }
            z[p] = rp_codes(T, w[p] + at, w[p + 8] + at);
        }
        r16_transpose(z, wq);
        __m512 dw, unused;
        rp_scales(T, w[0] + at, off, &dw, &unused);
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) {
            const uint8_t *xr = xq + (size_t)i * xs;
            const int8_t *qs = qx32_qs(xr) + 32 * b;
            __m512i t = _mm512_set1_epi32(qx32_cv(xr, nb)[8 * b]);
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) t = dpbusd_bcast(t, wq[k], qs + 4 * k);
            const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(qx32_dv(xr, nb)[8 * b]));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), d, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) _mm512_mask_storeu_ps(y + i * ys, m, acc[i]);
}

/* One function per type, out of line (inlined beside the buffered tiles,
 * the 256-block kernels' fused loop spilled its accumulators). */
#define RP_FUSED_FN(NAME, T)                                                                                 \
    static __attribute__((noinline)) void NAME(int nx, float *y, int64_t ys, __mmask16 m, const uint8_t *xq,  \
                                               size_t xs, int64_t nb, const uint8_t *const *w, __m512i off,   \
                                               size_t pf) {                                                   \
        switch (nx) {                                                                                         \
        case 1: rp_fused(T, 1, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        case 2: rp_fused(T, 2, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        case 3: rp_fused(T, 3, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        case 4: rp_fused(T, 4, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        case 5: rp_fused(T, 5, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        case 6: rp_fused(T, 6, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        case 7: rp_fused(T, 7, y, ys, m, xq, xs, nb, w, off, pf); break;                                      \
        default: rp_fused(T, 8, y, ys, m, xq, xs, nb, w, off, pf); break;                                     \
        }                                                                                                     \
    }
RP_FUSED_FN(rp_fused_q8_0, QT_Q8_0)
RP_FUSED_FN(rp_fused_q4_0, QT_Q4_0)
RP_FUSED_FN(rp_fused_mxfp4, QT_MXFP4)
RP_FUSED_FN(rp_fused_iq4_nl, QT_IQ4_NL)
RP_FUSED_FN(rp_fused_q5_0, QT_Q5_0)
#undef RP_FUSED_FN

/* The most rows of x rp_fused takes (in equal tiles of up to RP_NX). One
 * core, cold [768][2048], us, buffer -> fused: Q8_0 2 / 4 / 8 / 12 rows 87 /
 * 107 / 153 / 190 -> 65 / 81 / 124 / 180, [2048][768] 4 / 8 / 12 rows 104 /
 * 141 / 185 -> 86 / 116 / 185; the nibble types (Q4_0, MXFP4, IQ4_NL, Q5_0)
 * 8 rows 143-156 -> 125-135 but 12 rows 180-195 -> 192-210 (the lookups
 * done twice). Q4_1 / Q5_1 (a min per block) keep the buffer. */
AI int rp_fuse_max(const int T) { return rp_has_min(T) ? 0 : T == QT_Q8_0 ? 12 : RP_NX; }

AI void rows_r16(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / 32;
    rp_buf buf __attribute__((aligned(64)));
    int64_t r = r0;
    if (!rp_has_min(T) && j->n >= RP_PAIR_MIN_N) {
        rp_buf buf2 __attribute__((aligned(64)));
        const size_t pf2 = (size_t)2 * RP_ROWS * j->w_row;
        for (; r + 2 * RP_ROWS <= r1; r += 2 * RP_ROWS) {
            const uint8_t *w[RP_ROWS], *w2[RP_ROWS];
            __m512i offv, offv2;
            rp_group(j, r, r1, w, &offv);
            rp_group(j, r + RP_ROWS, r1, w2, &offv2);
            for (int64_t b0 = 0; b0 < nb; b0 += RP_KC) {
                const int kc = nb - b0 < RP_KC ? (int)(nb - b0) : RP_KC;
                rp_repack(T, &buf, w, offv, b0, kc, pf2);
                rp_repack(T, &buf2, w2, offv2, b0, kc, pf2);
                for (int64_t i = 0; i < j->n; i += RP_NX2) {
                    const int nx = j->n - i < RP_NX2 ? (int)(j->n - i) : RP_NX2;
                    float *y = j->y + i * j->rows + r;
                    const uint8_t *x = j->xq + (size_t)i * j->xq_row;
                    const int first = b0 == 0;
#define RP_TILE2(NX) rp_tile2(T, NX, y, j->rows, x, j->xq_row, nb, &buf, &buf2, b0, kc, first)
                    switch (nx) {
                    case 1: RP_TILE2(1); break;
                    case 2: RP_TILE2(2); break;
                    case 3: RP_TILE2(3); break;
                    default: RP_TILE2(4); break;
                    }
#undef RP_TILE2
                }
            }
        }
    }
    const size_t pf = (size_t)RP_ROWS * j->w_row;
    for (; r < r1; r += RP_ROWS) {
        const uint8_t *w[RP_ROWS];
        __m512i offv;
        const int rw = rp_group(j, r, r1, w, &offv);
        const __mmask16 m = (__mmask16)((1u << rw) - 1);
        if (j->n <= rp_fuse_max(T)) { /* tiles of equal size, the next group prefetched in the first */
            const int nt = (int)((j->n + RP_NX - 1) / RP_NX);
            for (int t = 0; t < nt; t++) {
                const int64_t i0 = j->n * t / nt, i1 = j->n * (t + 1) / nt;
                float *y = j->y + i0 * j->rows + r;
                const uint8_t *x = j->xq + (size_t)i0 * j->xq_row;
                const int nx = (int)(i1 - i0);
                const size_t fpf = t == 0 && r + RP_ROWS < r1 ? pf : 0;
#define RP_FUSED(NAME) NAME(nx, y, j->rows, m, x, j->xq_row, nb, w, offv, fpf)
                if (T == QT_Q8_0) RP_FUSED(rp_fused_q8_0);
                else if (T == QT_Q4_0) RP_FUSED(rp_fused_q4_0);
                else if (T == QT_MXFP4) RP_FUSED(rp_fused_mxfp4);
                else if (T == QT_IQ4_NL) RP_FUSED(rp_fused_iq4_nl);
                else RP_FUSED(rp_fused_q5_0);
#undef RP_FUSED
            }
            continue;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += RP_KC) {
            const int kc = nb - b0 < RP_KC ? (int)(nb - b0) : RP_KC;
            rp_repack(T, &buf, w, offv, b0, kc, pf);
            for (int64_t i = 0; i < j->n; i += RP_NX) {
                const int nx = j->n - i < RP_NX ? (int)(j->n - i) : RP_NX;
                float *y = j->y + i * j->rows + r;
                const uint8_t *x = j->xq + (size_t)i * j->xq_row;
                const int first = b0 == 0;
#define RP_TILE(NX) rp_tile(T, NX, y, j->rows, m, x, j->xq_row, nb, &buf, b0, kc, first)
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

#define RP_FN(T, NAME) \
    static void r16_##NAME(const qmm_job *j, int64_t r0, int64_t r1) { rows_r16(T, j, r0, r1); }
RP_FN(QT_Q8_0, q8_0)
RP_FN(QT_Q4_0, q4_0)
RP_FN(QT_MXFP4, mxfp4)
RP_FN(QT_IQ4_NL, iq4_nl)
RP_FN(QT_Q5_0, q5_0)
RP_FN(QT_Q4_1, q4_1)
RP_FN(QT_Q5_1, q5_1)

int avx512_rows_r16(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_Q8_0: r16_q8_0(j, r0, r1); return 1;
    case QT_Q4_0: r16_q4_0(j, r0, r1); return 1;
    case QT_MXFP4: r16_mxfp4(j, r0, r1); return 1;
    case QT_IQ4_NL: r16_iq4_nl(j, r0, r1); return 1;
    case QT_Q5_0: r16_q5_0(j, r0, r1); return 1;
    case QT_Q4_1: r16_q4_1(j, r0, r1); return 1;
    case QT_Q5_1: r16_q5_1(j, r0, r1); return 1;
    default: return 0;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
