/*
 * quant_r16k_avx512.c - the many-row product of Q4_K, Q5_K, Q6_K and IQ4_XS
 * weights with AVX-512 VNNI (no AMX): the 16 int32 lanes of a register are
 * 16 W rows, as quant_r16_avx512.c does for Q8_0 / Q4_0.
 *
 * Per group of 16 W rows and chunk of RK_KC super-blocks, the weights are
 * interleaved once into a buffer that stays in L1 (rk_buf): for each 32-value
 * sub-block s, 8 registers of codes, register k holding values 4k..4k+3 of
 * each of the 16 rows as unsigned bytes (Q4_K: the nibbles 0..15; Q5_K:
 * 0..31 with the fifth bit; IQ4_XS: kvalues_iq4nl + 128, 0..241, looked up
 * with vpshufb), the 16 rows' scales of s in f32 (Q4_K / Q5_K: d * sc_s;
 * IQ4_XS: d * (ls_s - 32), both exact) and, for Q4_K / Q5_K, the mins as
 * int16 pairs [m_2p, m_2p+1] and dmin. The codes are interleaved before the
 * nibbles are split: one 16 x 8 dword transpose (quant_r16.h) of 32 bytes of
 * each row's qs serves two sub-blocks (Q4_K / Q5_K: the low and high
 * nibbles; IQ4_XS: sub-blocks 2g and 2g + 1, 16 bytes each); Q5_K's qh is
 * transposed once per super-block, the first 16 bytes of the blocks (scales)
 * too (r16_head4: 44 -> 37 us of repacking per [768][2048] Q4_K matrix
 * against four gathers). Then for x row i (Q8_K, quant_impl.h) and
 * super-block b:
 *   t_s = vpdpbusd(t_s, W_s,k, broadcast of x codes 32s+4k..+3)   k = 0..7
 *         (IQ4_XS: t_s starts at -128 * sum(x_s), which the activation
 *         row carries as an int32 (quant_impl.h): a broadcast load, so the
 *         bias goes exactly and off the ports of the products. Computed
 *         here, one vpdpwssd on the sums of 16, it cost [768][2048], one
 *         core, cold: 4 rows 85 -> 68 us, 16 rows 194 -> 185, 128 rows
 *         1205 -> 1120)
 *   a   = sum_s float(t_s) * scale_s                  (8 fma, in s order)
 *   a  -= float(sum_s m_s * S_s) * dmin               (Q4_K / Q5_K: 4
 *         vpdpwssd of the pairs with x's sums of 32, S_s, from one vphaddw
 *         of its sums of 16; exact. 8 vpdpwssd on the sums of 16 were 4%
 *         slower: vpdpwssd and the fma share the vpdpbusd ports)
 *   acc_i = fma(a, dx, acc_i)
 * about 9.5 operations on the vpdpbusd ports per 512 products, and acc_i
 * holds 16 outputs, with no horizontal sum. Tiles of up to RK_NX x rows
 * reuse the W registers.
 *
 * For a few rows of x (rk_fuse_max: Q4_K and IQ4_XS up to 12, Q5_K and
 * Q6_K up to 8, as the spread routing of trained models gives each expert
 * at prefill)
 * the buffer costs as much as the products: rk_fused takes the codes from
 * the transposes straight into vpdpbusd, one super-block at a time, with
 * the same operations in the same order (the same bits).
 *
 * While a group is repacked, the same super-blocks of the next group's rows
 * are prefetched into L2 (a steady distance of one group; the row-ahead
 * prefetch of quant_r16_avx512.c left each group's first chunk cold here:
 * repacking a cold [768][2048] Q4_K matrix took 152 us, now 66, 44 hot).
 *
 * Q6_K: codes 0..63 (ql's nibbles with qh's bit pairs, two transposes of
 * qh and four of ql per super-block), scales per 16 values, so t_s is two
 * sums of 4 vpdpbusd, each scaled by d * sc_j and each starting at the
 * -32 * sum of its 16 x codes the activation row carries (quant_impl.h), so
 * the codes count as q - 32 exactly. About 10 operations on the vpdpbusd
 * ports per 512 products; taking the -32 through the sums of 16 as the
 * mins go (8 vpdpwssd of [sc_2p, sc_2p+1] per super-block and row of x,
 * then a conversion and an fma) cost [768][2048], one core, cold: 8 rows
 * 153 -> 140 us, 16 rows 237 -> 218, 128 rows 1358 -> 1239. Its
 * sub-blocks go in the order the transposes give them, 0, 2, 1, 3, 4, 6,
 * 5, 7 (rk_s6), in both paths.
 *
 * Every t_s and the min sum are exact integers, and the f32 operations on
 * them are the same for each output whatever rows share its group (a
 * partial group repeats its last row, the extra lanes are not stored):
 * results do not depend on how threads split the rows. Between chunks the
 * sums wait in y.
 */
#include <immintrin.h>
#include <stddef.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC target("avx512vnni")
#endif

#include "kernels/quant_r16.h"

#define AI R16_AI

#define RK_ROWS 16 /* W rows per group: the int32 lanes of a register */
#define RK_KC 4    /* super-blocks per chunk: 23 KiB of interleaved weights (2 and 8: the same speed) */
#define RK_NX 8    /* x rows per tile: 8 W + 8 f32 + 8 f32 registers */

/* 16 W rows, RK_KC super-blocks, interleaved. */
typedef struct {
    __m512i q[RK_KC][8][8]; /* [super-block][s][k]: values 32s+4k..+3 of rows 0..15, unsigned */
    __m512 sc[RK_KC][16];   /* [super-block][s]: the f32 scale of sub-block s (Q6_K: of 16 values) */
    __m512i mn[RK_KC][4];   /* [super-block][p]: int16 [m_2p, m_2p+1] (Q4_K / Q5_K) */
    __m512 dmin[RK_KC];     /* [super-block]: dmin (Q4_K / Q5_K) */
} rk_buf;

AI size_t rk_block_bytes(const int T) {
    return T == QT_Q4_K ? sizeof(block_q4_K) : T == QT_Q5_K ? sizeof(block_q5_K)
                        : T == QT_Q6_K ? sizeof(block_q6_K) : sizeof(block_iq4_xs);
}

/* Byte j of each dword of v (j < 4), as dwords; and bytes 2p, 2p + 1 as
 * the int16 pair [byte 2p, byte 2p + 1]. */
AI __m512i rk_byte(__m512i v, int j) {
    const __m512i base = _mm512_set4_epi32((int)0x8080800C, (int)0x80808008, (int)0x80808004, (int)0x80808000);
    return _mm512_shuffle_epi8(v, _mm512_add_epi32(base, _mm512_set1_epi32(j)));
}
AI __m512i rk_byte_pair(__m512i v, int p) {
    const __m512i base = _mm512_set4_epi32((int)0x800C800C, (int)0x80088008, (int)0x80048004, (int)0x80008000);
    return _mm512_shuffle_epi8(v, _mm512_add_epi32(base, _mm512_set1_epi32(2 * p | (2 * p + 1) << 16)));
}

/* Q6_K's 16 int8 scales, times d. */
AI void rk_scales6(rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    __m512i h[4], e[4]; /* scales 4q..4q+3; bytes 194..209 (d: the high word of e[3]) */
    r16_head4(w, at + offsetof(block_q6_K, scales), h);
    r16_head4(w, at + offsetof(block_q6_K, scales) + 2, e);
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(e[3], 16)));
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            __m512i v = _mm512_srai_epi32(_mm512_slli_epi32(h[q], 24 - 8 * u), 24);
            o->sc[b][4 * q + u] = _mm512_mul_ps(_mm512_cvtepi32_ps(v), d);
        }
    }
}

/* The scales (and mins) of super-block b of the 16 rows, at w[r] + at. */
AI void rk_scales(const int T, rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    if (T == QT_Q6_K) {
        rk_scales6(o, b, w, at);
        return;
    }
    __m512i h[4]; /* the first 16 bytes of each block */
    r16_head4(w, at, h);
    const __m512i g0 = h[0]; /* d | dmin or scales_h << 16 */
    const __m512 d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g0));
    if (T == QT_IQ4_XS) {
        const __m512i g1 = h[1]; /* scales_l */
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) { /* ls = scales_l nibble s | bits 2s, 2s+1 of scales_h << 4 */
            __m512i hi = _mm512_and_si512(_mm512_srli_epi32(g0, 12 + 2 * s), _mm512_set1_epi32(0x30));
            __m512i ls = _mm512_ternarylogic_epi32(_mm512_srli_epi32(g1, 4 * s), _mm512_set1_epi32(0x0F), hi, 0xEA);
            ls = _mm512_sub_epi32(ls, _mm512_set1_epi32(32));
            o->sc[b][s] = _mm512_mul_ps(_mm512_cvtepi32_ps(ls), d);
        }
        return;
    }
    /* ggml's 6-bit scales and mins: bytes of u0 = sc0..3 (low 6 bits), of
     * u1 = m0..3; sc4..7 = low nibbles of u2 | top bits of u0 << 4; m4..7
     * = high nibbles of u2 | top bits of u1 << 4 */
    const __m512i u0 = h[1], u1 = h[2], u2 = h[3];
    const __m512i m6 = _mm512_set1_epi8(0x3F), m4 = _mm512_set1_epi8(0x0F), t2 = _mm512_set1_epi8(0x30);
    const __m512i sc_lo = _mm512_and_si512(u0, m6), mn_lo = _mm512_and_si512(u1, m6);
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(u2, m4), _mm512_and_si512(_mm512_srli_epi32(u0, 2), t2));
    const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), m4),
                                          _mm512_and_si512(_mm512_srli_epi32(u1, 2), t2));
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        o->sc[b][s] = _mm512_mul_ps(_mm512_cvtepi32_ps(rk_byte(sc_lo, s)), d);
        o->sc[b][s + 4] = _mm512_mul_ps(_mm512_cvtepi32_ps(rk_byte(sc_hi, s)), d);
    }
    o->mn[b][0] = rk_byte_pair(mn_lo, 0);
    o->mn[b][1] = rk_byte_pair(mn_lo, 1);
    o->mn[b][2] = rk_byte_pair(mn_hi, 0);
    o->mn[b][3] = rk_byte_pair(mn_hi, 1);
    o->dmin[b] = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(g0, 16)));
}

/* Bit j of each byte of h moved to bit 4 (the other bits are garbage). */
AI __m512i rk_bit4(__m512i h, int j) {
    return j < 4 ? _mm512_slli_epi16(h, 4 - j) : j == 4 ? h : _mm512_srli_epi16(h, j - 4);
}

/* Q6_K's qh (half hf: 32 bytes) of the 16 rows' super-block at w[r] + at,
 * transposed; h[k] = bytes 4k..4k+3: bits 2u, 2u+1 of byte l are bits 4-5
 * of value 128hf + 32u + l. */
AI void rk_qh6(const uint8_t *const *w, size_t at, int hf, __m512i *h) {
    __m512i z[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        const size_t a = at + offsetof(block_q6_K, qh) + 32 * hf;
        z[p] = r16_load2(w[p] + a, w[p + 8] + a);
    }
    r16_transpose(z, h);
}

/* Q6_K's ql bytes 64hf + 32e .. + 31, transposed: their low nibbles are the
 * low 4 bits of values 128hf + 32e + l, the high nibbles of 128hf + 64 +
 * 32e + l. */
AI void rk_ql6(const uint8_t *const *w, size_t at, int hf, int e, __m512i *t) {
    __m512i z[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        const size_t a = at + offsetof(block_q6_K, ql) + 64 * hf + 32 * e;
        z[p] = r16_load2(w[p] + a, w[p + 8] + a);
    }
    r16_transpose(z, t);
}

/* The codes 0..63 of sub-block 4hf + e + 2u (u = 0: ql's low nibbles with
 * qh bits 2e, 2e+1; u = 1: the high nibbles with bits 2e + 4, 2e + 5) from
 * h = rk_qh6 and t = rk_ql6. */
AI void rk_sub_codes6(const __m512i *t, const __m512i *h, int e, int u, __m512i *wq) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), b45 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) { /* bits 2(e + 2u), +1 of qh to bits 4, 5 */
        const int sh = 2 * (e + 2 * u);
        const __m512i hb = sh < 4 ? _mm512_slli_epi16(h[k], 4 - sh) : sh == 4 ? h[k] : _mm512_srli_epi16(h[k], sh - 4);
        const __m512i lo = u ? _mm512_and_si512(_mm512_srli_epi16(t[k], 4), m4) : _mm512_and_si512(t[k], m4);
        wq[k] = _mm512_ternarylogic_epi32(lo, hb, b45, 0xF8);
    }
}

/* The sub-blocks in the order both Q6_K paths take them: the order rk_ql6
 * yields them (the two of one transpose, then the next). */
AI int rk_s6(int q) { return (q & ~3) | (q & 1) << 1 | (q >> 1 & 1); }

/* Q6_K's codes of super-block b at w[r] + at into the buffer. */
AI void rk_codes6(rk_buf *o, int b, const uint8_t *const *w, size_t at) {
    for (int hf = 0; hf < 2; hf++) {
        __m512i h[8], t[8];
        rk_qh6(w, at, hf, h);
#pragma GCC unroll 2
        for (int e = 0; e < 2; e++) {
            rk_ql6(w, at, hf, e, t);
            rk_sub_codes6(t, h, e, 0, o->q[b][4 * hf + e]);
            rk_sub_codes6(t, h, e, 1, o->q[b][4 * hf + 2 + e]);
        }
    }
}

/* Offset of the codes (qs) in a block of T (Q4_K, Q5_K, IQ4_XS). */
AI size_t rk_qs_off(const int T) {
    return T == QT_Q4_K ? offsetof(block_q4_K, qs) : T == QT_Q5_K ? offsetof(block_q5_K, qs)
                                                                  : offsetof(block_iq4_xs, qs);
}

/* Q5_K's qh of the super-block at w[r] + at, rows 0..15: h[k] = qh bytes
 * 4k..4k+3; bit s of byte l is the fifth bit of value 32s + l. */
AI void rk_qh5(const uint8_t *const *w, size_t at, __m512i *h) {
    __m512i z[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++)
        z[p] = r16_load2(w[p] + at + offsetof(block_q5_K, qh), w[p + 8] + at + offsetof(block_q5_K, qh));
    r16_transpose(z, h);
}

/* qs bytes 32g..32g+31 of the 16 rows' super-block at w[r] + at,
 * transposed: t[k] = bytes 4k..4k+3 of rows 0..15. */
AI void rk_qs32(const int T, const uint8_t *const *w, size_t at, int g, __m512i *t) {
    const size_t a = at + rk_qs_off(T) + 32 * (size_t)g;
    __m512i z[8];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) z[p] = r16_load2(w[p] + a, w[p + 8] + a);
    r16_transpose(z, t);
}

/* The unsigned codes of sub-block 2g + u (u = 0, 1) from t = rk_qs32 of
 * pair g, as wq[k] = values 4k..4k+3 of rows 0..15. IQ4_XS: t[0..3] hold
 * sub-block 2g (low nibbles values 0..15, high 16..31), t[4..7] 2g + 1,
 * looked up as kvalues_iq4nl + 128; Q4_K / Q5_K: the low nibbles are
 * sub-block 2g, the high 2g + 1, and Q5_K adds bit 2g + u of h = rk_qh5
 * as 16. */
AI void rk_sub_codes(const int T, const __m512i *t, const __m512i *h, int g, int u, __m512i *wq) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    if (T == QT_IQ4_XS) {
        const __m512i lut = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)iq4nl_biased_table()));
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            wq[k] = _mm512_shuffle_epi8(lut, _mm512_and_si512(t[4 * u + k], m4));
            wq[k + 4] = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(t[4 * u + k], 4), m4));
        }
        return;
    }
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
        wq[k] = _mm512_and_si512(u ? _mm512_srli_epi16(t[k], 4) : t[k], m4);
        if (T == QT_Q5_K) /* | (bit 2g + u of qh) << 4: A | (B & C) */
            wq[k] = _mm512_ternarylogic_epi32(wq[k], rk_bit4(h[k], 2 * g + u), b4, 0xF8);
    }
}

/* Every line of the block of bb bytes at w[p] + at, p < 16, into L2 (Q6_K's
 * 210 bytes may touch 5). */
AI void rk_prefetch(const uint8_t *const *w, size_t at, size_t bb) {
    for (int p = 0; p < RK_ROWS; p++) {
        const uintptr_t a = (uintptr_t)(w[p] + at);
        for (uintptr_t l = a & ~(uintptr_t)63; l < a + bb; l += 64) _mm_prefetch((const char *)l, _MM_HINT_T1);
    }
}

/* Super-blocks b0 .. b0 + kc of the 16 rows w[] into o.
 * The same super-blocks of the next group's rows, pf bytes on (0: none),
 * are prefetched into L2. */
AI void rk_repack(const int T, rk_buf *o, const uint8_t *const *w, int64_t b0, int kc, size_t pf) {
    const size_t bb = rk_block_bytes(T);
    for (int b = 0; b < kc; b++) {
        const size_t at = (size_t)(b0 + b) * bb;
        if (pf) rk_prefetch(w, at + pf, bb);
        if (T == QT_Q6_K) {
            rk_codes6(o, b, w, at);
            rk_scales(T, o, b, w, at);
            continue;
        }
        __m512i h[8];
        if (T == QT_Q5_K) rk_qh5(w, at, h);
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
            __m512i t[8];
            rk_qs32(T, w, at, g, t);
            rk_sub_codes(T, t, h, g, 0, o->q[b][2 * g]);
            rk_sub_codes(T, t, h, g, 1, o->q[b][2 * g + 1]);
        }
        rk_scales(T, o, b, w, at);
    }
}

/* a[i] += float(sum over sub-block s of W codes wq times x_i's codes) *
 * sc for i < NX (Q4_K / Q5_K / IQ4_XS: one scale per sub-block). Two rows
 * of x at a time, their chains of vpdpbusd interleaved: one chain after the
 * other left the ports idle on the chain's latency (one core, hot [768][2048]
 * Q4_K, 64 rows of x: 599 -> 570 us; 32 rows 315 -> 301). */
AI void rk_sub(const int NX, const int T, __m512 *a, const __m512i *wq, __m512 sc, const qx_k *const *x,
               const int32_t *const *cv, int s) {
#pragma GCC unroll 4
    for (int i = 0; i < NX; i += 2) {
        const int two = i + 1 < NX;
        __m512i t0 = _mm512_setzero_si512(), t1 = _mm512_setzero_si512();
        if (T == QT_IQ4_XS) { /* -128 * sum(x_s), from the row (quant_impl.h) */
            t0 = _mm512_set1_epi32(cv[i][s]);
            if (two) t1 = _mm512_set1_epi32(cv[i + 1][s]);
        }
#pragma GCC unroll 8
        for (int k = 0; k < 8; k++) {
            t0 = dpbusd_bcast(t0, wq[k], x[i]->qs + 32 * s + 4 * k);
            if (two) t1 = dpbusd_bcast(t1, wq[k], x[i + 1]->qs + 32 * s + 4 * k);
        }
        a[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t0), sc, a[i]);
        if (two) a[i + 1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t1), sc, a[i + 1]);
    }
}

/* Q4_K / Q5_K: a[i] -= float(sum_s m_s * (bsums 2s + 2s+1)) * dmin for the
 * mins of super-block b in o. */
AI void rk_mins(const int NX, __m512 *a, const rk_buf *o, int b, const qx_k *const *x) {
    __m512i mn[4];
#pragma GCC unroll 4
    for (int p = 0; p < 4; p++) mn[p] = _mm512_load_si512((const void *)&o->mn[b][p]);
    const __m512 dmin = o->dmin[b];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) {
        /* the sums of 32, S_s = bsums 2s + 2s+1 (|S_s| <= 4064), as
         * int16 pairs: [S0 S1 | S2 S3 | . . | S4 S5 | S6 S7 | . .] */
        int16_t sp[16] __attribute__((aligned(32)));
        const __m256i bs = _mm256_load_si256((const __m256i *)x[i]->bsums);
        _mm256_store_si256((__m256i *)sp, _mm256_hadd_epi16(bs, bs));
        __m512i t = _mm512_setzero_si512();
        t = dpwssd_bcast(t, mn[0], sp);
        t = dpwssd_bcast(t, mn[1], sp + 2);
        t = dpwssd_bcast(t, mn[2], sp + 8);
        t = dpwssd_bcast(t, mn[3], sp + 10);
        a[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(t), dmin, a[i]);
    }
}

/* Q6_K: a[i] += the products of sub-block s (codes wq), its two halves
 * of 16 values scaled apart (registers 0..3, 4..7), each sum starting at
 * the row's -32 * sum of those 16 x codes (so the codes count as q - 32):
 * each row of x has two chains of vpdpbusd already, interleaved. */
AI void rk_sub6(const int NX, __m512 *a, const __m512i *wq, const rk_buf *o, int b, const qx_k *const *x,
                const int32_t *const *cv, int s) {
    const __m512 sc0 = o->sc[b][2 * s], sc1 = o->sc[b][2 * s + 1];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) {
        __m512i t0 = _mm512_set1_epi32(cv[i][2 * s]), t1 = _mm512_set1_epi32(cv[i][2 * s + 1]);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            t0 = dpbusd_bcast(t0, wq[k], x[i]->qs + 32 * s + 4 * k);
            t1 = dpbusd_bcast(t1, wq[k + 4], x[i]->qs + 32 * s + 16 + 4 * k);
        }
        a[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t0), sc0, a[i]);
        a[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t1), sc1, a[i]);
    }
}

/* y[i*ys + lane] (lanes in m) for i < NX: x rows at xq (stride xs; IQ4_XS
 * and Q6_K: each row's bias sums xcv bytes on, quant_impl.h) times the
 * chunk o of super-blocks b0 .. b0 + kc, added to y unless first. */
AI void rk_tile(const int NX, const int T, float *y, int64_t ys, __mmask16 m, const uint8_t *xq, size_t xs,
                size_t xcv, const rk_buf *o, int64_t b0, int kc, int first) {
    __m512 acc[RK_NX];
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) acc[i] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + i * ys);
    for (int b = 0; b < kc; b++) {
        const qx_k *x[RK_NX];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) x[i] = (const qx_k *)(xq + (size_t)i * xs) + b0 + b;
        const int32_t *cv[RK_NX];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) cv[i] = (const int32_t *)(xq + (size_t)i * xs + xcv) + (b0 + b) * qx_k_ncv(T);
        __m512 a[RK_NX];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) a[i] = _mm512_setzero_ps();
        for (int s = 0; s < 8; s++) {
            __m512i wq[8];
            const int sq = T == QT_Q6_K ? rk_s6(s) : s;
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) wq[k] = _mm512_load_si512((const void *)&o->q[b][sq][k]);
            if (T == QT_Q6_K) {
                rk_sub6(NX, a, wq, o, b, x, cv, sq);
                continue;
            }
            rk_sub(NX, T, a, wq, o->sc[b][s], x, cv, s);
        }
        if (T == QT_Q4_K || T == QT_Q5_K) rk_mins(NX, a, o, b, x);
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) acc[i] = _mm512_fmadd_ps(a[i], _mm512_set1_ps(x[i]->d), acc[i]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < NX; i++) _mm512_mask_storeu_ps(y + i * ys, m, acc[i]);
}

/* y[i*ys + lane] (lanes in m) for i < NX: x rows at xq (stride xs) times
 * all nb super-blocks of the 16 rows w[], the codes going from the
 * transposes straight into vpdpbusd instead of through the buffer (o holds
 * one super-block's scales and mins). For a few rows of x, repacking cost
 * as much as the products, a third of it storing the buffer and loading it
 * back. The same operations in the same order as rk_repack + rk_tile, so
 * the same bits. */
AI void rk_fused(const int NX, const int T, float *y, int64_t ys, __mmask16 m, const uint8_t *xq, size_t xs,
                 rk_buf *o, const uint8_t *const *w, int64_t nb, size_t pf) {
    const size_t xcv = (size_t)nb * sizeof(qx_k);
    const size_t bb = rk_block_bytes(T);
    for (int64_t b = 0; b < nb; b++) {
        const size_t at = (size_t)b * bb;
        if (pf) rk_prefetch(w, at + pf, bb);
        rk_scales(T, o, 0, w, at);
        const qx_k *x[RK_NX];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) x[i] = (const qx_k *)(xq + (size_t)i * xs) + b;
        const int32_t *cv[RK_NX];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) cv[i] = (const int32_t *)(xq + (size_t)i * xs + xcv) + b * qx_k_ncv(T);
        __m512 a[RK_NX];
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) a[i] = _mm512_setzero_ps();
        __m512i h[8];
        if (T == QT_Q6_K) {
#pragma GCC unroll 1
            for (int hf = 0; hf < 2; hf++) {
                rk_qh6(w, at, hf, h);
#pragma GCC unroll 1
                for (int e = 0; e < 2; e++) {
                    __m512i t[8];
                    rk_ql6(w, at, hf, e, t);
#pragma GCC unroll 2
                    for (int u = 0; u < 2; u++) {
                        __m512i wq[8];
                        rk_sub_codes6(t, h, e, u, wq);
                        rk_sub6(NX, a, wq, o, 0, x, cv, 4 * hf + e + 2 * u);
                    }
                }
            }
        } else {
            if (T == QT_Q5_K) rk_qh5(w, at, h);
#pragma GCC unroll 1
            for (int g = 0; g < 4; g++) {
                __m512i t[8];
                rk_qs32(T, w, at, g, t);
#pragma GCC unroll 2
                for (int u = 0; u < 2; u++) {
                    __m512i wq[8];
                    rk_sub_codes(T, t, h, g, u, wq);
                    rk_sub(NX, T, a, wq, o->sc[0][2 * g + u], x, cv, 2 * g + u);
                }
            }
            if (T != QT_IQ4_XS) rk_mins(NX, a, o, 0, x);
        }
#pragma GCC unroll 8
        for (int i = 0; i < NX; i++) {
            const __m512 acc = b == 0 ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + i * ys);
            _mm512_mask_storeu_ps(y + i * ys, m, _mm512_fmadd_ps(a[i], _mm512_set1_ps(x[i]->d), acc));
        }
    }
}

/* One function per type, out of line: inlined into rows_r16k beside the
 * tiles, the accumulators spilled (IQ4_XS 8 rows of x: 108 -> 165 us a
 * cold [768][2048] matrix). */
#define RK_FUSED_FN(NAME, T)                                                                               \
    static __attribute__((noinline)) void NAME(int nx, float *y, int64_t ys, __mmask16 m, const uint8_t *xq, \
                                               size_t xs, rk_buf *o, const uint8_t *const *w, int64_t nb,    \
                                               size_t pf) {                                                  \
        switch (nx) {                                                                                        \
        case 1: rk_fused(1, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        case 2: rk_fused(2, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        case 3: rk_fused(3, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        case 4: rk_fused(4, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        case 5: rk_fused(5, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        case 6: rk_fused(6, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        case 7: rk_fused(7, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                       \
        default: rk_fused(8, T, y, ys, m, xq, xs, o, w, nb, pf); break;                                      \
        }                                                                                                    \
    }
RK_FUSED_FN(rk_fused_q4_K, QT_Q4_K)
RK_FUSED_FN(rk_fused_q5_K, QT_Q5_K)
RK_FUSED_FN(rk_fused_iq4_xs, QT_IQ4_XS)
RK_FUSED_FN(rk_fused_q6_K, QT_Q6_K)
#undef RK_FUSED_FN

/* The most rows of x rk_fused takes (in two equal tiles above RK_NX): one
 * core, cold [768][2048], us, buffer -> fused: Q4_K 4 rows 93 -> 69, 8 rows
 * 122 -> 105, 12 rows 166 -> 157, 16 rows 193 -> 190; IQ4_XS 4 rows 92 ->
 * 71, 8 rows 127 -> 108, 12 rows 169 -> 158, 16 rows 202 -> 199; [2048][768]
 * (the down product) Q4_K 8 rows 130 -> 108, 12 rows 175 -> 163, 16 rows
 * 201 -> 207, IQ4_XS 16 rows 224 -> 244; Q5_K 8 rows 130 -> 123, 12 rows
 * 179 -> 185 in one run, 174 -> 161 in the next (its qh bits keep 8 more
 * registers live); Q6_K (its codes from two transposes, two scales per
 * sub-block) 5 rows 126 -> 117, 8 rows 156-162 -> 148, 12 rows 195-206 ->
 * 229 (two tiles of 6). */
AI int rk_fuse_max(const int T) { return T == QT_Q4_K || T == QT_IQ4_XS ? 12 : RK_NX; }

AI void rows_r16k(const int T, const qmm_job *j, int64_t r0, int64_t r1) {
    const int64_t nb = j->cols / QK_K;
    const size_t xcv = (size_t)nb * sizeof(qx_k); /* IQ4_XS, Q6_K: where a row's sums (quant_impl.h) start */
    rk_buf buf __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += RK_ROWS) {
        const int rw = r1 - r < RK_ROWS ? (int)(r1 - r) : RK_ROWS;
        const uint8_t *w[RK_ROWS];
        for (int p = 0; p < RK_ROWS; p++) {
            w[p] = j->W + (size_t)(r + (p < rw ? p : rw - 1)) * j->w_row;
        }
        const __mmask16 m = (__mmask16)((1u << rw) - 1);
        const size_t pf = r + RK_ROWS < r1 ? RK_ROWS * j->w_row : 0;
        if (j->n <= rk_fuse_max(T)) { /* tiles of equal size, the next group prefetched in the first */
            const int nt = (int)((j->n + RK_NX - 1) / RK_NX);
            for (int t = 0; t < nt; t++) {
                const int64_t i0 = j->n * t / nt, i1 = j->n * (t + 1) / nt;
                float *y = j->y + i0 * j->rows + r;
                const uint8_t *x = j->xq + (size_t)i0 * j->xq_row;
                const int nx = (int)(i1 - i0);
                const size_t fpf = t == 0 ? pf : 0;
                if (T == QT_Q4_K) rk_fused_q4_K(nx, y, j->rows, m, x, j->xq_row, &buf, w, nb, fpf);
                else if (T == QT_Q5_K) rk_fused_q5_K(nx, y, j->rows, m, x, j->xq_row, &buf, w, nb, fpf);
                else if (T == QT_Q6_K) rk_fused_q6_K(nx, y, j->rows, m, x, j->xq_row, &buf, w, nb, fpf);
                else rk_fused_iq4_xs(nx, y, j->rows, m, x, j->xq_row, &buf, w, nb, fpf);
            }
            continue;
        }
        for (int64_t b0 = 0; b0 < nb; b0 += RK_KC) {
            const int kc = nb - b0 < RK_KC ? (int)(nb - b0) : RK_KC;
            rk_repack(T, &buf, w, b0, kc, pf);
            for (int64_t i = 0; i < j->n; i += RK_NX) {
                const int nx = j->n - i < RK_NX ? (int)(j->n - i) : RK_NX;
                float *y = j->y + i * j->rows + r;
                const uint8_t *x = j->xq + (size_t)i * j->xq_row;
                const int first = b0 == 0;
#define RK_TILE(NX) rk_tile(NX, T, y, j->rows, m, x, j->xq_row, xcv, &buf, b0, kc, first)
                switch (nx) {
                case 1: RK_TILE(1); break;
                case 2: RK_TILE(2); break;
                case 3: RK_TILE(3); break;
                case 4: RK_TILE(4); break;
                case 5: RK_TILE(5); break;
                case 6: RK_TILE(6); break;
                case 7: RK_TILE(7); break;
                default: RK_TILE(8); break;
                }
#undef RK_TILE
            }
        }
    }
}

void avx512_rows_r16k(const qmm_job *j, int64_t r0, int64_t r1) {
    switch (j->type) {
    case QT_Q4_K: rows_r16k(QT_Q4_K, j, r0, r1); break;
    case QT_Q5_K: rows_r16k(QT_Q5_K, j, r0, r1); break;
    case QT_Q6_K: rows_r16k(QT_Q6_K, j, r0, r1); break;
    case QT_IQ4_XS: rows_r16k(QT_IQ4_XS, j, r0, r1); break;
    default: break;
    }
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
