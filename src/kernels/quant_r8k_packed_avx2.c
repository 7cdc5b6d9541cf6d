/*
 * quant_r8k_packed_avx2.c - the products of Q4_K, Q5_K, Q6_K and IQ4_XS weights
 * packed at load (quant_pack.c), with AVX2 (quant_r8k_kern.h has the
 * stored kernels these share).
 *
 * IQ4_XS matrices packed at load (quant_pack.c, IQ4_XS_R8: each group's
 * codes already as the dwords the transpose would make) skip the
 * transpose: rows_packed_iq4 fills rk_buf with one and / shift and the
 * table per register and runs rk_tile, or, below the stored path's row
 * threshold, p4_gemv, which does quant_extra_kern.h's few-row arithmetic
 * per row (so the stored matrix's bits on every count of x rows) with the
 * codes unpacked once for the 8 rows. One core of an AMD Zen 3, a cold
 * [768][2048] IQ4_XS matrix, us, stored -> packed: 1 / 2 / 5 / 8 / 32 rows
 * of x 78 / 110 / 207 / 284 / 928 -> 57 / 98 / 172 / 247 / 896 (with the
 * threshold at 5; from 3 now, quant_impl.h: 3 and 4 rows 148 / 174 ->
 * 113 / 138, where p4_gemv by pairs of rows took 150 / 181).
 *
 * Q4_K, Q5_K and Q6_K packed at load (Q4_K_R8, Q5_K_R8, Q6_K_R8: heads, scales and codes
 * as rk_head4 and the transposes leave them) the same way: from R8K_MIN_N
 * rows of x pk_unpack / p6_unpack fill rk_buf (and / shift / or only) for
 * rk_tile; one row of x goes to pk_gemv / p6_gemv, quant_avx2.c's tilek
 * lane arithmetic for the 8 rows at once (its bits). One core, cold
 * matrices, us, stored -> packed: Q4_K [768][2048], 1 / 2 / 4 / 8 / 32
 * rows 55 / 102 / 132 / 203 / 646 -> 56 / 77 / 108 / 182 / 622, [2048][768]
 * 1 row 60 -> 48; Q6_K [2048][768] 71 / 163 / 210 / 286 / 823 -> 74 / 101
 * / 141 / 239 / 800. Q4_K and Q5_K from R8K_MIN_N rows now go two groups
 * at a time through rk_tile2 (quant_r8k_kern.h), one super-block a chunk.
 */
#include "kernels/quant_r8k_kern.h"

/* The one-row kernels' outputs of 8 rows (lane r of acc[k]: lane k of row
 * r's accumulator), its lanes added as quant_avx2.c's hsum8 and
 * quant_extra_kern.h's xk_hsum8 add them: (l0 + l4) + (l2 + l6),
 * (l1 + l5) + (l3 + l7), their sum. */
AI __m256 p_hsum8(const __m256 *acc) {
    const __m256 u0 = _mm256_add_ps(acc[0], acc[4]), u1 = _mm256_add_ps(acc[1], acc[5]);
    const __m256 u2 = _mm256_add_ps(acc[2], acc[6]), u3 = _mm256_add_ps(acc[3], acc[7]);
    return _mm256_add_ps(_mm256_add_ps(u0, u2), _mm256_add_ps(u1, u3));
}

/* The header dwords of a packed IQ4_XS super-block p (quant_pack.c) as
 * rk_head4 gives them for stored rows: g0 = d | scales_h << 16, g1 =
 * scales_l. */
AI void p4_head(const uint8_t *p, __m256i *g0, __m256i *g1) {
    const __m256i d = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + QP4_D)));
    const __m256i sh = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + QP4_SH)));
    *g0 = _mm256_or_si256(d, _mm256_slli_epi32(sh, 16));
    *g1 = _mm256_loadu_si256((const __m256i *)(p + QP4_SL));
}

/* Super-blocks b0 .. b0 + kc of the packed group pg into o, as rk_repack
 * writes the stored rows' (the same bytes: no transpose, one and / shift
 * and the table per register); the chunk after is prefetched into L2. */
AI void p4_unpack(rk_buf *o, const uint8_t *pg, int64_t b0, int kc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)RK_IQ4_LUT));
    for (int b = 0; b < kc; b++) {
        const uint8_t *p = pg + (size_t)(b0 + b) * QP4_SB;
        for (int l = 0; l < QP4_SB; l += 64) _mm_prefetch((const char *)p + RK_KC * QP4_SB + l, _MM_HINT_T1);
        __m256i g0, g1;
        p4_head(p, &g0, &g1);
        rk_scales_iq4(o, b, g0, g1);
#pragma GCC unroll 8
        for (int sb = 0; sb < 8; sb++)
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + QP4_CODES + 128 * sb + 32 * k));
                o->q[b][sb][k] = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
                o->q[b][sb][k + 4] = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            }
    }
}

/* One row of x (xr, nb super-blocks) by the packed group pg, its outputs
 * (rw stored) at y: the integer sums and f32 steps of quant_extra_kern.h's
 * xk_superblock for each of the 8 rows (lane k of its sums: values 4k ..
 * 4k + 3 of each sub-block, times the sub-block's scale; one f32 fma per
 * super-block; the 8 lanes added as xk_hsum8 adds them, then + 0), so the
 * stored decode's bits, with the codes unpacked once for 8 rows (and NX
 * rows of x, at most 2). */
AI void p4_gemv(const int NX, const uint8_t *pg, const qx_k *const *xr, int64_t nb, float *const *y, int rw) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl));
    __m256 acc[2][8];
#pragma GCC unroll 2
    for (int i = 0; i < NX; i++)
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) acc[i][k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = pg + (size_t)b * QP4_SB;
        for (int l = 0; l < QP4_SB; l += 64) _mm_prefetch((const char *)p + 2048 + l, _MM_HINT_T0);
        const __m256i sh = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + QP4_SH)));
        const __m256i sl = _mm256_loadu_si256((const __m256i *)(p + QP4_SL));
        __m256i t[2][8];
#pragma GCC unroll 2
        for (int i = 0; i < NX; i++)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) t[i][k] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int sb = 0; sb < 8; sb++) {
            const __m256i hi = _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(sh, 2 * sb), _mm256_set1_epi32(3)), 4);
            const __m256i ls = _mm256_sub_epi32(
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(sl, 4 * sb), _mm256_set1_epi32(0x0F)), hi),
                _mm256_set1_epi32(32));
            /* [ls, ls] as int16 pairs */
            const __m256i lp = _mm256_or_si256(_mm256_and_si256(ls, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(ls, 16));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + QP4_CODES + 128 * sb + 32 * k));
                const __m256i w0 = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
                const __m256i w1 = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
#pragma GCC unroll 2
                for (int i = 0; i < NX; i++) {
                    const int8_t *xq = xr[i][b].qs + 32 * sb + 4 * k;
                    const __m256i p0 = _mm256_maddubs_epi16(a0, _mm256_sign_epi8(r8_bcast4(xq), w0));
                    const __m256i p1 = _mm256_maddubs_epi16(a1, _mm256_sign_epi8(r8_bcast4(xq + 16), w1));
                    t[i][k] = _mm256_add_epi32(t[i][k], _mm256_madd_epi16(p0, lp));
                    R8_PIN(t[i][k]);
                    t[i][k + 4] = _mm256_add_epi32(t[i][k + 4], _mm256_madd_epi16(p1, lp));
                    R8_PIN(t[i][k + 4]);
                }
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + QP4_D)));
#pragma GCC unroll 2
        for (int i = 0; i < NX; i++) {
            const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(xr[i][b].d));
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) acc[i][k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[i][k]), dd, acc[i][k]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < NX; i++) r8_store_y(y[i], _mm256_add_ps(p_hsum8(acc[i]), _mm256_setzero_ps()), rw);
}

/* A packed Q4_K / Q5_K super-block's bytes and where its codes start. */
AI size_t pk_sb(const int T) { return T == QT_Q4_K ? QPK_SB : QP5_SB; }
AI size_t pk_codes(const int T) { return T == QT_Q4_K ? QPK_CODES : QP5_CODES; }

/* Super-blocks b0 .. b0 + kc of the packed Q4_K / Q5_K group pg into o, as
 * rk_repack writes the stored rows' (the heads as rk_head4 leaves them, the
 * codes as the transpose does: one and / shift per register, Q5_K's fifth
 * bits or-ed in from the qh registers); the super-block PK_PF_SB on is
 * prefetched into L2. */
#define PK_PF_SB 12 /* with a group's weights from memory (one core of an AMD Zen 3, 64 cold [768][2048]
                     * Q4_K matrices, us, 2 -> 12 super-blocks ahead: 2 / 8 / 16 / 32 rows of x 85.7 / 174.5 /
                     * 286 / 512 -> 66.6 / 158 / 265 / 498; Q5_K 4 / 8 rows 121 / 193 -> 110 / 178) */
AI void pk_unpack(const int T, rk_buf *o, const uint8_t *pg, int64_t b0, int kc) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    const size_t sb = pk_sb(T), cd = pk_codes(T);
    for (int b = 0; b < kc; b++) {
        const uint8_t *p = pg + (size_t)(b0 + b) * sb;
        for (size_t l = 0; l < sb; l += 64) _mm_prefetch((const char *)p + PK_PF_SB * sb + l, _MM_HINT_T1);
        __m256i h[8];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) h[q] = _mm256_loadu_si256((const __m256i *)(p + QPK_HEAD + 32 * q));
        rk_scales_k4(o, b, h);
        if (T == QT_Q5_K)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) h[k] = _mm256_loadu_si256((const __m256i *)(p + QP5_QH + 32 * k));
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + cd + 256 * c + 32 * k));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                if (T == QT_Q5_K) {
                    lo = _mm256_or_si256(lo, _mm256_and_si256(rk_bit4(h[k], 2 * c), b4));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(rk_bit4(h[k], 2 * c + 1), b4));
                }
                o->q[b][2 * c][k] = lo;
                o->q[b][2 * c + 1][k] = hi;
            }
    }
}

/* One row of x (xr, nb super-blocks) by the packed Q4_K / Q5_K group pg, its
 * outputs (rw stored) at y, with quant_avx2.c's tilek arithmetic for each
 * of the 8 rows: lane k of its integer sum is sum_e sc_e * (values 32e + 4k
 * .. + 3 times x), lane p of the mins m_p * (bsums 2p + 2p+1); per
 * super-block fma(sum, d dx), then fnmadd(mins, dmin dx); the 8 lanes
 * added as hsum8 adds them. So the stored decode's bits, with each row's
 * scales unpacked once for 8 rows and no horizontal sum per row. */
AI void pk_gemv(const int T, const uint8_t *pg, const qx_k *xr, int64_t nb, float *y, int rw) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    const size_t sb = pk_sb(T), cd = pk_codes(T);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = pg + (size_t)b * sb;
        for (size_t l = 0; l < sb; l += 64) _mm_prefetch((const char *)p + 2 * sb + l, _MM_HINT_T0);
        const __m256i g0 = _mm256_loadu_si256((const __m256i *)(p + QPK_HEAD));
        const __m256i u0 = _mm256_loadu_si256((const __m256i *)(p + QPK_HEAD + 32));
        const __m256i u1 = _mm256_loadu_si256((const __m256i *)(p + QPK_HEAD + 64));
        const __m256i u2 = _mm256_loadu_si256((const __m256i *)(p + QPK_HEAD + 96));
        const __m256i m6 = _mm256_set1_epi8(0x3F), t2 = _mm256_set1_epi8(0x30);
        const __m256i sc_lo = _mm256_and_si256(u0, m6), mn_lo = _mm256_and_si256(u1, m6);
        const __m256i sc_hi = _mm256_or_si256(_mm256_and_si256(u2, m4), _mm256_and_si256(_mm256_srli_epi32(u0, 2), t2));
        const __m256i mn_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                                              _mm256_and_si256(_mm256_srli_epi32(u1, 2), t2));
        /* [sc_e, sc_e] as int16 pairs, e = 0..7 */
        __m256i sp[8];
#pragma GCC unroll 4
        for (int e = 0; e < 4; e++) {
            const __m256i c = _mm256_add_epi32(_mm256_setr_epi32((int)0x80008000, (int)0x80048004, (int)0x80088008,
                                                                 (int)0x800C800C, (int)0x80008000, (int)0x80048004,
                                                                 (int)0x80088008, (int)0x800C800C),
                                               _mm256_set1_epi32(e | e << 16));
            sp[e] = _mm256_shuffle_epi8(sc_lo, c);
            sp[e + 4] = _mm256_shuffle_epi8(sc_hi, c);
        }
        __m256i t[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) t[k] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + cd + 256 * c + 32 * k));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                if (T == QT_Q5_K) { /* bit e of each qh byte: the fifth bit of values 32e + l */
                    const __m256i h = _mm256_loadu_si256((const __m256i *)(p + QP5_QH + 32 * k));
                    lo = _mm256_or_si256(lo, _mm256_and_si256(rk_bit4(h, 2 * c), b4));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(rk_bit4(h, 2 * c + 1), b4));
                }
                const int8_t *xq = xr[b].qs + 64 * c + 4 * k;
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, r8_bcast4(xq)), sp[2 * c]);
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, r8_bcast4(xq + 32)), sp[2 * c + 1]);
                t[k] = _mm256_add_epi32(t[k], _mm256_add_epi32(p0, p1));
                R8_PIN(t[k]);
            }
        const float dx = xr[b].d;
        const __m256 dd = _mm256_mul_ps(rk_f16lo(g0), _mm256_set1_ps(dx));
        const __m256 dm = _mm256_mul_ps(rk_f16lo(_mm256_srli_epi32(g0, 16)), _mm256_set1_ps(dx));
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            /* m_k (a byte of mn_lo / mn_hi, as a dword) times S_k = bsums 2k + 2k+1 */
            const __m256i mk = rk_byte(k < 4 ? mn_lo : mn_hi, k % 4);
            const int sk = xr[b].bsums[2 * k] + xr[b].bsums[2 * k + 1];
            const __m256i mins = _mm256_madd_epi16(mk, _mm256_set1_epi32(sk & 0xFFFF));
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[k]), dd, acc[k]);
            acc[k] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(mins), dm, acc[k]);
        }
    }
    r8_store_y(y, p_hsum8(acc), rw);
}

/* Super-blocks b0 .. b0 + kc of the packed Q6_K group pg into o, as
 * rk_repack writes the stored rows' (no transpose). */
AI void p6_unpack(rk_buf *o, const uint8_t *pg, int64_t b0, int kc) {
    for (int b = 0; b < kc; b++) {
        const uint8_t *p = pg + (size_t)(b0 + b) * QP6_SB;
        for (int l = 0; l < QP6_SB; l += 64) _mm_prefetch((const char *)p + RK_KC * QP6_SB + l, _MM_HINT_T1);
        __m256i h[8], t[8];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) h[q] = _mm256_loadu_si256((const __m256i *)(p + QP6_SC + 32 * q));
        rk_scales6_h(o, b, h, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + QP6_D))));
        for (int hf = 0; hf < 2; hf++) {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) h[k] = _mm256_loadu_si256((const __m256i *)(p + QP6_QH + 256 * hf + 32 * k));
#pragma GCC unroll 2
            for (int e = 0; e < 2; e++) {
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++)
                    t[k] = _mm256_loadu_si256((const __m256i *)(p + QP6_QL + 256 * (2 * hf + e) + 32 * k));
                rk_codes6_half(o, b, hf, e, h, t);
            }
        }
    }
}

/* One row of x (xr, nb super-blocks) by the packed Q6_K group pg, its
 * outputs (rw stored) at y, with quant_avx2.c's tilek arithmetic for each
 * of the 8 rows: lane k of its integer sum is sum_e sc_j * (values 32e + 4k
 * .. + 3 times x), j = 2e + (k >= 4), less 32 times lane k of the -32's
 * sum, sc_2k bsums_2k + sc_2k+1 bsums_2k+1; per super-block fma(sum, d dx);
 * the 8 lanes added as hsum8 adds them. */
AI void p6_gemv(const uint8_t *pg, const qx_k *xr, int64_t nb, float *y, int rw) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b45 = _mm256_set1_epi8(0x30);
    __m256 acc[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) acc[k] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *p = pg + (size_t)b * QP6_SB;
        for (int l = 0; l < QP6_SB; l += 64) _mm_prefetch((const char *)p + 2 * QP6_SB + l, _MM_HINT_T0);
        /* [sc_j, sc_j] as int16 pairs (j = 4q + u): byte u of dword q to both high bytes, >> 8 */
        __m256i sp[16], bp[8];
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const __m256i h = _mm256_loadu_si256((const __m256i *)(p + QP6_SC + 32 * q));
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++) {
                const __m256i c = _mm256_add_epi32(
                    _mm256_setr_epi32(0x00800080, 0x04800480, 0x08800880, 0x0C800C80, 0x00800080, 0x04800480,
                                      0x08800880, 0x0C800C80),
                    _mm256_set1_epi32(u << 8 | u << 24));
                sp[4 * q + u] = _mm256_srai_epi16(_mm256_shuffle_epi8(h, c), 8);
            }
#pragma GCC unroll 2
            for (int u = 0; u < 2; u++) { /* [sc_2p, sc_2p+1], p = 2q + u */
                const __m256i c = _mm256_add_epi32(
                    _mm256_setr_epi32((int)0x01800080, (int)0x05800480, (int)0x09800880, (int)0x0D800C80,
                                      (int)0x01800080, (int)0x05800480, (int)0x09800880, (int)0x0D800C80),
                    _mm256_set1_epi32(2 * u << 8 | 2 * u << 24));
                bp[2 * q + u] = _mm256_srai_epi16(_mm256_shuffle_epi8(h, c), 8);
            }
        }
        __m256i t[8];
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) t[k] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int hf = 0; hf < 2; hf++)
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const __m256i H = _mm256_loadu_si256((const __m256i *)(p + QP6_QH + 256 * hf + 32 * k));
#pragma GCC unroll 2
                for (int e = 0; e < 2; e++) {
                    const __m256i L = _mm256_loadu_si256((const __m256i *)(p + QP6_QL + 256 * (2 * hf + e) + 32 * k));
                    const __m256i hl = e == 0 ? _mm256_slli_epi16(H, 4) : _mm256_slli_epi16(H, 2);
                    const __m256i hh = e == 0 ? H : _mm256_srli_epi16(H, 2);
                    const __m256i c0 = _mm256_or_si256(_mm256_and_si256(L, m4), _mm256_and_si256(hl, b45));
                    const __m256i c1 =
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L, 4), m4), _mm256_and_si256(hh, b45));
                    const int g0 = 4 * hf + e, g1 = 4 * hf + 2 + e; /* their 32-value groups */
                    const int8_t *xq = xr[b].qs + 4 * k;
                    const __m256i p0 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(c0, r8_bcast4(xq + 32 * g0)), sp[2 * g0 + (k >= 4)]);
                    const __m256i p1 =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(c1, r8_bcast4(xq + 32 * g1)), sp[2 * g1 + (k >= 4)]);
                    t[k] = _mm256_add_epi32(t[k], _mm256_add_epi32(p0, p1));
                    R8_PIN(t[k]);
                }
            }
        const __m256 dd =
            _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + QP6_D))), _mm256_set1_ps(xr[b].d));
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            const int32_t bs2 = (uint16_t)xr[b].bsums[2 * k] | (int32_t)((uint32_t)(uint16_t)xr[b].bsums[2 * k + 1] << 16);
            const __m256i bias = _mm256_madd_epi16(bp[k], _mm256_set1_epi32(bs2));
            const __m256i v = _mm256_sub_epi32(t[k], _mm256_slli_epi32(bias, 5));
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(v), dd, acc[k]);
        }
    }
    r8_store_y(y, p_hsum8(acc), rw);
}

/* Q4_K, Q5_K and Q6_K packed at load: from R8K_MIN_N rows of x the chunks
 * unpacked into rk_buf and rk_tile, as rows_r8k; one row by pk_gemv /
 * p6_gemv. */
AI void rows_packed_kq(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / QK_K;
    const size_t gbytes = (size_t)QPACK_ROWS * j->w_row;
    if (j->n < R8K_MIN_N) {
        for (int64_t r = r0; r < r1; r += RK_ROWS) {
            const int rw = r1 - r < RK_ROWS ? (int)(r1 - r) : RK_ROWS;
            const uint8_t *pg = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
            for (int64_t i = 0; i < j->n; i++)
                if (T != QT_Q6_K)
                    pk_gemv(T, pg, (const qx_k *)(j->xq + (size_t)i * j->xq_row), nb, j->y + i * j->rows + r, rw);
                else
                    p6_gemv(pg, (const qx_k *)(j->xq + (size_t)i * j->xq_row), nb, j->y + i * j->rows + r, rw);
        }
        return;
    }
    rk_buf buf __attribute__((aligned(32)));
    int64_t r = r0;
#ifndef R8_VNNI
    if (T != QT_Q6_K) {
        /* two groups a chunk of one super-block (16 KiB of codes, as one
         * group's two) for rk_tile2 */
        rk_buf buf1 __attribute__((aligned(32)));
        const rk_buf *o[2] = {&buf, &buf1};
        for (; r1 - r > RK_ROWS; r += 2 * RK_ROWS) {
            const int rw1 = r1 - r - RK_ROWS < RK_ROWS ? (int)(r1 - r - RK_ROWS) : RK_ROWS;
            const uint8_t *pg = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
            for (int64_t b0 = 0; b0 < nb; b0++) {
                pk_unpack(T, &buf, pg, b0, 1);
                pk_unpack(T, &buf1, pg + gbytes, b0, 1);
                rk_tiles2(T, j, r, rw1, o, b0, 1);
            }
        }
    }
#endif
    for (; r < r1; r += RK_ROWS) {
        const int rw = r1 - r < RK_ROWS ? (int)(r1 - r) : RK_ROWS;
        const uint8_t *pg = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
        for (int64_t b0 = 0; b0 < nb; b0 += RK_KC) {
            const int kc = nb - b0 < RK_KC ? (int)(nb - b0) : RK_KC;
            if (T != QT_Q6_K)
                pk_unpack(T, &buf, pg, b0, kc);
            else
                p6_unpack(&buf, pg, b0, kc);
            rk_tiles(T, j, r, rw, &buf, b0, kc);
        }
    }
}

/* IQ4_XS packed at load: from the stored path's threshold of rows of x
 * (IQ4XS_R8K_MIN_N) the chunks unpacked into rk_buf and rk_tile, as
 * rows_r8k; below it p4_gemv row by row. Either way the bits of the stored
 * matrix on this path. */
static void rows_packed_iq4(const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / QK_K;
    const size_t gbytes = (size_t)QPACK_ROWS * j->w_row;
#ifdef R8_VNNI
    const int64_t min_n = IQ4XS_R8K_MIN_N_VNNI;
#else
    const int64_t min_n = IQ4XS_R8K_MIN_N;
#endif
    if (j->n < min_n) {
        for (int64_t r = r0; r < r1; r += RK_ROWS) {
            const int rw = r1 - r < RK_ROWS ? (int)(r1 - r) : RK_ROWS;
            const uint8_t *pg = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
            for (int64_t i = 0; i < j->n; i += 2) { /* 2 rows of x share each unpack */
                const qx_k *xr[2] = {(const qx_k *)(j->xq + (size_t)i * j->xq_row),
                                     (const qx_k *)(j->xq + (size_t)(i + 1) * j->xq_row)};
                float *y[2] = {j->y + i * j->rows + r, j->y + (i + 1) * j->rows + r};
                if (i + 1 < j->n)
                    p4_gemv(2, pg, xr, nb, y, rw);
                else
                    p4_gemv(1, pg, xr, nb, y, rw);
            }
        }
        return;
    }
    rk_buf buf __attribute__((aligned(32)));
    for (int64_t r = r0; r < r1; r += RK_ROWS) {
        const int rw = r1 - r < RK_ROWS ? (int)(r1 - r) : RK_ROWS;
        const uint8_t *pg = j->W + (size_t)(r / QPACK_ROWS) * gbytes;
        for (int64_t b0 = 0; b0 < nb; b0 += RK_KC) {
            const int kc = nb - b0 < RK_KC ? (int)(nb - b0) : RK_KC;
            p4_unpack(&buf, pg, b0, kc);
            rk_tiles(QT_IQ4_XS, j, r, rw, &buf, b0, kc);
        }
    }
}

#ifdef R8_VNNI
void avxvnni_rows_packed_k(const qmm_job *j, int64_t r0, int64_t r1)
#else
void avx2_rows_packed_k(const qmm_job *j, int64_t r0, int64_t r1)
#endif
{
    if (j->type == QT_Q4_K)
        rows_packed_kq(QT_Q4_K, j, r0, r1);
    else if (j->type == QT_Q5_K)
        rows_packed_kq(QT_Q5_K, j, r0, r1);
    else if (j->type == QT_Q6_K)
        rows_packed_kq(QT_Q6_K, j, r0, r1);
    else
        rows_packed_iq4(j, r0, r1);
}

#ifdef R8_VNNI
R8_VNNI_END
#endif
