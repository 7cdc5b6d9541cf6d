/*
 * quant_amx_k6_avx512.c - the many-row products (prefill) of Q6_K, Q3_K and
 * IQ4_XS weights on AMX-INT8: the 256-blocks whose sub-block scales are signed
 * integers and which have no mins. A sibling of quant_amx_k_avx512.c (Q4_K;
 * read that first): the same activations (Q8_K in the tile layout
 * QT_TILE_BLOCK_K of quant_impl.h), the same groups of 16 W rows, K chunks
 * and x tile passes. Runs only when quant.c has seen amx_init() succeed;
 * tested against the scalar reference (tests/test_quant.c,
 * tests/test_quant_amx_k6.c).
 *
 * Per block, as the reference computes it,
 *   sum w x = (d dx) * S,  S = sum_j sc_j (q_j . c_j)   (an exact int32)
 * with Q6_K: 16 sub-blocks of 16, q = six bits - 32, sc_j int8;
 *      Q3_K: 16 sub-blocks of 16, q = -4..3 (two bits and hmask), sc_j 6 bits - 32;
 *      IQ4_XS: 8 sub-blocks of 32, q = kvalues_iq4nl[nibble], sc_j = ls_j - 32.
 * One tdpbssd gives q_j . c_j for 16 W rows x 16 x rows: K = 32 for IQ4_XS,
 * K = 16 for Q6_K and Q3_K (tiles configured by amx_config_kw: A [16][16], B the
 * first or second half of a 32-sub-block's B, [4][64]). AVX-512 sums
 * sc_j times those in int32 (vpmulld), so S is the reference's integer, and
 * scales it as the reference does: acc += (d dx) * (float)S, block after
 * block from zero. So these products equal the reference bit for bit.
 *
 * The work goes in units of 8 products (an IQ4_XS block, half a Q6_K or
 * Q3_K block); while one unit is scaled the next runs on the tiles into the
 * other half of cb. A 16-sub-block type's first half sum waits in memory for its second.
 *
 * Each output is computed the same way wherever a thread's range of rows
 * starts (ranges start on multiples of 16 rows), so results do not depend on
 * the number of threads.
 */
#include <immintrin.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni,amx-tile,amx-int8"))), apply_to = function)
#else
#pragma GCC target("avx512vnni,amx-tile,amx-int8")
#endif

#include "kernels/amx_tiles.h" /* after the target pragma: its functions use AMX */

#define AI static inline __attribute__((always_inline))

#define TK_D 4352 /* float d[16] in a block of the tile (QT_TILE_BLOCK_K) */
#define KC 2      /* 256-blocks per K chunk: the unpacked A is 16 x 512 bytes */
#define NTS 8     /* x tiles per pass (their accumulators: 8 KiB) */
#define GR AMX_GR

/* Per block and W row of a chunk: the sub-block scales and d. */
typedef struct {
    alignas(64) int32_t sc[KC][GR][16]; /* IQ4_XS: the first 8 */
    float d[KC][GR];
} kscales;

AI float h2f(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return _cvtsh_ss(v);
}

/* The 256 values of a Q6_K block, in order, at out. */
AI void q6k_unpack(const uint8_t *blk, int8_t *out) {
    const __m256i lo = _mm256_set1_epi8(0x0F), b32 = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = blk + offsetof(block_q6_K, ql) + 64 * h, *qh = blk + offsetof(block_q6_K, qh) + 32 * h;
        const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
        const __m256i hb = _mm256_loadu_si256((const __m256i *)qh);
        /* quarter k: low bits from l0 / l1 (low, then high nibbles), high bits 2k, 2k+1 of hb */
        const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, lo),
                                           _mm256_slli_epi16(_mm256_and_si256(hb, _mm256_set1_epi8(0x03)), 4));
        const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, lo),
                                           _mm256_slli_epi16(_mm256_and_si256(hb, _mm256_set1_epi8(0x0C)), 2));
        const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), lo),
                                           _mm256_and_si256(hb, _mm256_set1_epi8(0x30)));
        const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), lo),
                                           _mm256_and_si256(_mm256_srli_epi16(hb, 2), _mm256_set1_epi8(0x30)));
        int8_t *o = out + 128 * h;
        _mm256_store_si256((__m256i *)o, _mm256_sub_epi8(q0, b32));
        _mm256_store_si256((__m256i *)(o + 32), _mm256_sub_epi8(q1, b32));
        _mm256_store_si256((__m256i *)(o + 64), _mm256_sub_epi8(q2, b32));
        _mm256_store_si256((__m256i *)(o + 96), _mm256_sub_epi8(q3, b32));
    }
}

/* The 256 values of an IQ4_XS block, in order, at out, and its 8 scales
 * ls_j - 32, ls_j = bits 4j..4j+3 of scales_l | bits 2j, 2j+1 of scales_h << 4. */
AI void iq4xs_unpack(const uint8_t *blk, int8_t *out, int32_t *sc) {
    const block_iq4_xs *x = (const block_iq4_xs *)blk;
    const __m256i tab = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl));
    const __m256i lo = _mm256_set1_epi8(0x0F);
    for (int ib = 0; ib < 8; ib += 2) { /* sub-blocks ib, ib + 1: nibbles of 16 bytes each */
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 16 * ib));
        const __m256i l = _mm256_and_si256(q, lo), h = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo);
        _mm256_store_si256((__m256i *)(out + 32 * ib), _mm256_shuffle_epi8(tab, _mm256_permute2x128_si256(l, h, 0x20)));
        _mm256_store_si256((__m256i *)(out + 32 * ib + 32), _mm256_shuffle_epi8(tab, _mm256_permute2x128_si256(l, h, 0x31)));
    }
    uint32_t sl;
    memcpy(&sl, x->scales_l, 4);
    const __m256i j = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i l4 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)sl), _mm256_slli_epi32(j, 2)), _mm256_set1_epi32(0xF));
    const __m256i h2 = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(x->scales_h), _mm256_slli_epi32(j, 1)), _mm256_set1_epi32(3));
    _mm256_storeu_si256((__m256i *)sc, _mm256_sub_epi32(_mm256_or_si256(l4, _mm256_slli_epi32(h2, 4)), _mm256_set1_epi32(32)));
}

/* The 256 values of a Q3_K block, in order, at out (element e: bits 2s,
 * 2s+1 of qs[32h + l], less 4 where bit 4h + s of hmask[l] is clear; e =
 * 128h + 32s + l), and its 16 scales less 32 (low 4 bits: a nibble of
 * scales[j % 8], high 2: bits 2(j / 4) of scales[8 + j % 4]). */
AI void q3k_unpack(const uint8_t *blk, int8_t *out, int32_t *sc) {
    const block_q3_K *x = (const block_q3_K *)blk;
    const __m256i h = _mm256_loadu_si256((const __m256i *)x->hmask), three = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int g = 0; g < 8; g++) { /* 32 values each */
        const __m256i q = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * (g / 4)));
        const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q, 2 * (g % 4)), three);
        const __m256i m = _mm256_set1_epi8((char)(1 << g));
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(h, m), m);
        _mm256_store_si256((__m256i *)(out + 32 * g), _mm256_sub_epi8(low, _mm256_andnot_si256(set, four)));
    }
    uint32_t hi4;
    memcpy(&hi4, x->scales + 8, 4); /* (a 16-byte load would pass the block's end) */
    const __m128i v = _mm_insert_epi32(_mm_loadl_epi64((const __m128i *)x->scales), (int)hi4, 2), f = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_unpacklo_epi64(_mm_and_si128(v, f), _mm_and_si128(_mm_srli_epi16(v, 4), f));
    const __m128i hi = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2)), _mm_setr_epi32(0, 2, 4, 6)),
                                     _mm_set1_epi8(3));
    const __m128i s8 = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
    _mm512_storeu_si512((void *)sc, _mm512_cvtepi8_epi32(s8));
}

/* Rows g..g+rv of blocks [c0, c0 + kc): values a[row][256 b + e] (zero rows
 * >= rv) and their scales (zero for rows >= rv). */
static void prep_chunk(const qmm_job *j, const uint8_t *Wg, int rv, int64_t c0, int kc, int8_t *a, kscales *s) {
    const size_t bb = j->type == QT_Q6_K ? sizeof(block_q6_K) : j->type == QT_Q3_K ? sizeof(block_q3_K) : sizeof(block_iq4_xs);
    for (int m = 0; m < GR; m++) {
        int8_t *am = a + m * KC * QK_K;
        if (m >= rv) {
            memset(am, 0, (size_t)kc * QK_K);
            for (int b = 0; b < kc; b++) {
                memset(s->sc[b][m], 0, sizeof s->sc[b][m]);
                s->d[b][m] = 0;
            }
            continue;
        }
        const uint8_t *row = Wg + (size_t)m * j->w_row + (size_t)c0 * bb;
        for (int b = 0; b < kc; b++) {
            const uint8_t *blk = row + (size_t)b * bb;
            if (j->type == QT_Q6_K) {
                s->d[b][m] = h2f(blk + offsetof(block_q6_K, d));
                _mm512_store_si512((void *)s->sc[b][m],
                                   _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + offsetof(block_q6_K, scales)))));
                q6k_unpack(blk, am + QK_K * b);
            } else if (j->type == QT_Q3_K) {
                s->d[b][m] = h2f(blk + offsetof(block_q3_K, d));
                q3k_unpack(blk, am + QK_K * b, s->sc[b][m]);
            } else {
                s->d[b][m] = h2f(blk);
                iq4xs_unpack(blk, am + QK_K * b, s->sc[b][m]);
            }
        }
    }
}

/* The eight products of one unit (A at a, stride KC * 256, products kw
 * bytes apart; B at xb, products 16 kw bytes apart) into cb[8][16][16],
 * alternating the two tile sets. */
AI void amx_unit(const int8_t *a, const uint8_t *xb, int kw, int32_t (*cb)[GR][16]) {
#pragma GCC unroll 4
    for (int k = 0; k < 8; k += 2) {
        _tile_loadd(1, a + kw * k, KC * QK_K);
        _tile_loadd(2, xb + 16 * kw * k, 64);
        _tile_zero(0);
        _tile_dpbssd(0, 1, 2);
        _tile_loadd(4, a + kw * (k + 1), KC * QK_K);
        _tile_loadd(5, xb + 16 * kw * (k + 1), 64);
        _tile_zero(3);
        _tile_dpbssd(3, 4, 5);
        _tile_stored(0, cb[k], 64);
        _tile_stored(3, cb[k + 1], 64);
    }
}

/* Unit p (0, or 1 for a Q6_K / Q3_K block's second half) of block b: S += sum_k
 * sc[8p + k] cb[k] for the 16 W rows; the first half of such a block
 * (last = 0) leaves S in part, the last unit of a block adds (d dx) * S to
 * acc. */
AI void scale_unit(__m512 *acc, int32_t (*part)[16], const int32_t (*cb)[GR][16], const uint8_t *xblk,
                   const kscales *s, int b, int p, int last) {
    const __m512 dx = _mm512_load_ps((const float *)(xblk + TK_D));
#pragma GCC unroll 16
    for (int m = 0; m < GR; m++) {
        const int32_t *sc = s->sc[b][m] + 8 * p;
        __m512i S = _mm512_mullo_epi32(_mm512_load_si512((const void *)cb[0][m]), _mm512_set1_epi32(sc[0]));
#pragma GCC unroll 8
        for (int k = 1; k < 8; k++)
            S = _mm512_add_epi32(S, _mm512_mullo_epi32(_mm512_load_si512((const void *)cb[k][m]), _mm512_set1_epi32(sc[k])));
        if (p) S = _mm512_add_epi32(S, _mm512_load_si512((const void *)part[m]));
        if (!last) {
            _mm512_store_si512((void *)part[m], S);
            continue;
        }
        const __m512 dd = _mm512_mul_ps(_mm512_set1_ps(s->d[b][m]), dx);
        acc[m] = _mm512_add_ps(acc[m], _mm512_mul_ps(dd, _mm512_cvtepi32_ps(S)));
    }
}

/* W rows g..g+rv (rv <= GR) against all n rows of x. */
static void amx_group_k6(const qmm_job *j, int64_t g, int rv) {
    const int k16 = j->type != QT_IQ4_XS; /* sub-blocks of 16 */
    const int upb = k16 ? 2 : 1, kw = k16 ? 16 : 32; /* units per block, K of a product */
    const int64_t nb = j->cols / QK_K, ntile = (j->n + QT_TILE_N - 1) / QT_TILE_N;
    const uint8_t *Wg = j->W + (size_t)g * j->w_row;
    alignas(64) int8_t a[GR * KC * QK_K];
    alignas(64) int32_t cb[2][8][GR][16];
    alignas(64) int32_t part[GR][16] = {{0}}; /* (written before it is read) */
    alignas(64) float accm[NTS][GR][16];
    kscales s;
    /* the next group's rows fetched into L2 over this group's first pass */
    const uint8_t *pf = Wg + (size_t)GR * j->w_row;
    const int64_t pf_rows = j->rows - g - GR < GR ? j->rows - g - GR : GR;
    const size_t pf_len = pf_rows > 0 ? (size_t)pf_rows * j->w_row : 0;
    size_t pf_at = 0;
    for (int64_t t0 = 0; t0 < ntile; t0 += NTS) {
        const int nts = ntile - t0 < NTS ? (int)(ntile - t0) : NTS;
        for (int64_t c0 = 0; c0 < nb; c0 += KC) {
            const int kc = nb - c0 < KC ? (int)(nb - c0) : KC;
            const int nu = kc * upb;
            prep_chunk(j, Wg, rv, c0, kc, a, &s);
            for (int t = 0; t < nts; t++) {
                const uint8_t *xt = j->xq + (size_t)(t0 + t) * j->xq_row + (size_t)c0 * QT_TILE_BLOCK_K;
                __m512 acc[GR];
#pragma GCC unroll 16
                for (int m = 0; m < GR; m++) acc[m] = c0 ? _mm512_load_ps(accm[t][m]) : _mm512_setzero_ps();
                amx_unit(a, xt, kw, cb[0]);
                for (int u = 0; u < nu; u++) {
                    const int b = u / upb, p = u % upb;
                    if (u + 1 < nu) {
                        const int b1 = (u + 1) / upb, p1 = (u + 1) % upb;
                        amx_unit(a + 8 * kw * (u + 1), xt + (size_t)b1 * QT_TILE_BLOCK_K + 128 * kw * p1, kw,
                                 cb[(u + 1) & 1]);
                    }
                    if (t0 == 0 && t == 0) {
                        const size_t want = pf_len * (size_t)(c0 * upb + u + 1) / (size_t)(nb * upb);
                        for (; pf_at < want; pf_at += 64) _mm_prefetch((const char *)pf + pf_at, _MM_HINT_T1);
                    }
                    const uint8_t *xblk = xt + (size_t)b * QT_TILE_BLOCK_K;
                    if (p + 1 < upb)
                        scale_unit(acc, part, (const int32_t(*)[GR][16])cb[u & 1], xblk, &s, b, p, 0);
                    else
                        scale_unit(acc, part, (const int32_t(*)[GR][16])cb[u & 1], xblk, &s, b, p, 1);
                }
#pragma GCC unroll 16
                for (int m = 0; m < GR; m++) _mm512_store_ps(accm[t][m], acc[m]);
            }
        }
        amx_put_group(j, g, rv, t0, nts, (const float(*)[GR][16])accm);
    }
}

void amx_k6_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    amx_rows_kw(j, r0, r1, amx_group_k6, j->type == QT_IQ4_XS ? 32 : 16);
}

#if defined(__clang__)
#pragma clang attribute pop
#endif
