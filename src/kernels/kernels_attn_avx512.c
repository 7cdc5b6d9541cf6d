/*
 * kernels_attn_avx512.c - attn_block's AVX-512 path (attn.h): a block of
 * queries of one head as two register-tiled GEMMs. Runs only when the
 * kernel choice is ISA_AVX512; Dh is a multiple of 16, at most 1024
 * (latent attention's keys are kv_lora_rank + rope dims, 576 in DeepSeek's).
 *
 *   Kt [Dh][nkp]  the visible keys transposed (16 x 16 in-register
 *                 transposes), so a score tile is an outer product
 *   S  [nq][nkp]  scores of TR query rows x 64 keys per tile (24 zmm
 *                 accumulators; per d: 4 key vectors, TR broadcasts)
 *   softmax of each row over its visible keys (the same vmath calls as
 *   kernels.h softmax; a sink logit joins the max and the sum), zeros
 *   elsewhere in the tile's key range
 *   O = P V       TR rows x up to 64 of Dv (24 accumulators), value rows
 *                 read in place, keys in ascending order
 * Rows of a tile past nq repeat the last row and are not stored.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/attn.h"
#include "kernels/vmath.h"

#define AI static inline __attribute__((always_inline))
#define TR 6 /* query rows per tile */
#define PV_KEYS 256 /* value rows per chunk of O = P V */

static int64_t round64(int64_t n) { return (n + 63) & ~(int64_t)63; }

/* dst[d][j] = src[j*ss + d] for j < 16, d < 16 (row stride ds); source rows
 * j >= nj read as 0. */
AI void transpose16(float *dst, int64_t ds, const float *src, int64_t ss, int nj) {
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) r[j] = j < nj ? _mm512_loadu_ps(src + j * ss) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 16; j += 4) {
        __m512d a = _mm512_castps_pd(t[j]), b = _mm512_castps_pd(t[j + 1]);
        __m512d c = _mm512_castps_pd(t[j + 2]), d = _mm512_castps_pd(t[j + 3]);
        r[j] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));     /* column 4L   */
        r[j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c)); /* column 4L+1 */
        r[j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d)); /* column 4L+2 */
        r[j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d)); /* column 4L+3 */
    }
    /* r[4g + c] holds, in 128-bit lane L, column 4L + c of rows 4g..4g+3 */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);      /* cols c, 8+c; rows 0-7 */
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);  /* cols 4+c, 12+c */
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        _mm512_storeu_ps(dst + c * ds, _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88));
        _mm512_storeu_ps(dst + (8 + c) * ds, _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd));
        _mm512_storeu_ps(dst + (4 + c) * ds, _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88));
        _mm512_storeu_ps(dst + (12 + c) * ds, _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd));
    }
}

/* S[r][jb .. jb+64) = scale * q_r . Kt[.][jb ..] for the tile's rows. */
AI void score_tile(float *S, int64_t nkp, const float *q, int64_t qs, const float *Kt, int Dh,
                   int64_t jb, int rn, float scale) {
    __m512 acc[TR][4];
    const float *qr[TR];
#pragma GCC unroll 6
    for (int r = 0; r < TR; r++) {
        qr[r] = q + (r < rn ? r : rn - 1) * qs;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (int d = 0; d < Dh; d++) {
        const float *kt = Kt + d * nkp + jb;
        __m512 kv[4];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) kv[c] = _mm512_loadu_ps(kt + 16 * c);
#pragma GCC unroll 6
        for (int r = 0; r < TR; r++) {
            __m512 qb = _mm512_set1_ps(qr[r][d]);
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) acc[r][c] = _mm512_fmadd_ps(qb, kv[c], acc[r][c]);
        }
    }
    __m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 6
    for (int r = 0; r < TR; r++) {
        if (r >= rn) break;
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) _mm512_storeu_ps(S + r * nkp + jb + 16 * c, _mm512_mul_ps(acc[r][c], sv));
    }
}

/* o[r][d0 .. d0+16*NV) = sum over j in [jl, jh) of P[r][j] v[j][d0 ..], added
 * in ascending j to what o holds when `more` (a previous range of keys), to 0
 * otherwise: the same chain of fused multiply-adds either way. */
AI void pv_tile(const int NV, float *o, int64_t os, const float *P, int64_t nkp, const float *v,
                int64_t kvs, int64_t jl, int64_t jh, int d0, int rn, int more) {
    __m512 acc[TR][4];
    const float *pr[TR];
#pragma GCC unroll 6
    for (int r = 0; r < TR; r++) {
        pr[r] = P + (r < rn ? r : rn - 1) * nkp;
        const float *orow = o + (r < rn ? r : rn - 1) * os + d0;
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) acc[r][c] = more ? _mm512_loadu_ps(orow + 16 * c) : _mm512_setzero_ps();
    }
    for (int64_t j = jl; j < jh; j++) {
        const float *vj = v + j * kvs + d0;
        __m512 vv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) vv[c] = _mm512_loadu_ps(vj + 16 * c);
#pragma GCC unroll 6
        for (int r = 0; r < TR; r++) {
            __m512 pb = _mm512_set1_ps(pr[r][j]);
#pragma GCC unroll 4
            for (int c = 0; c < NV; c++) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < TR; r++) {
        if (r >= rn) break;
#pragma GCC unroll 4
        for (int c = 0; c < NV; c++) _mm512_storeu_ps(o + r * os + d0 + 16 * c, acc[r][c]);
    }
}

static void zero(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) p[i] = 0.0f;
}

void avx512_attn_block(float *o, int64_t os, const float *q, int64_t qs, const float *k,
                       const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv,
                       int64_t qpos0, int64_t kpos0, int window, float scale, const float *sink,
                       float *scratch) {
    const int64_t nkp = attn_row_stride(nk);
    float *Kt = scratch, *S = scratch + (int64_t)Dh * nkp;
    int64_t lo0, hi0, loN, hiN;
    attn_visible(0, nk, qpos0, kpos0, window, &lo0, &hi0);
    attn_visible(nq - 1, nk, qpos0, kpos0, window, &loN, &hiN);
    /* the keys any query sees, transposed (whole 64-key blocks, zero-padded) */
    int64_t kt0 = lo0 & ~(int64_t)63, kt1 = round64(hiN);
    for (int64_t j = kt0; j < kt1; j += 16) {
        int nj = nk - j < 16 ? (int)(nk - j) : 16;
        for (int d = 0; d < Dh; d += 16) transpose16(Kt + d * nkp + j, nkp, k + j * kvs + d, kvs, nj < 0 ? 0 : nj);
    }
    /* scores: key tile outside, row tiles inside, so a 64-key tile of Kt
     * (Dh x 64 floats) is read from cache by every row tile of the block */
    for (int64_t jb = kt0; jb < kt1; jb += 64)
        for (int i0 = 0; i0 < nq; i0 += TR) {
            int rn = nq - i0 < TR ? nq - i0 : TR;
            int64_t jl, jh, lo, hi;
            attn_visible(i0, nk, qpos0, kpos0, window, &jl, &hi);
            attn_visible(i0 + rn - 1, nk, qpos0, kpos0, window, &lo, &jh);
            if (jb >= (jl & ~(int64_t)63) && jb < jh)
                score_tile(S + (int64_t)i0 * nkp, nkp, q + (int64_t)i0 * qs, qs, Kt, Dh, jb, rn, scale);
        }
    for (int i0 = 0; i0 < nq; i0 += TR) {
        int rn = nq - i0 < TR ? nq - i0 : TR;
        int64_t jl, jh, lo, hi;
        attn_visible(i0, nk, qpos0, kpos0, window, &jl, &hi);
        attn_visible(i0 + rn - 1, nk, qpos0, kpos0, window, &lo, &jh);
        float *St = S + (int64_t)i0 * nkp;
        for (int r = 0; r < rn; r++) {
            float *s = St + r * nkp;
            attn_visible(i0 + r, nk, qpos0, kpos0, window, &lo, &hi);
            if (hi > lo) {
                float m = avx512_vmax(s + lo, hi - lo);
                if (sink && *sink > m) m = *sink;
                float sum = avx512_vexp_sum(s + lo, s + lo, m, hi - lo);
                if (sink) sum += expf(*sink - m);
                avx512_vscale(s + lo, 1.0f / sum, hi - lo);
            }
            if (jl < lo) zero(s + jl, (lo < jh ? lo : jh) - jl);
            if (hi < jh) zero(s + (hi > jl ? hi : jl), jh - (hi > jl ? hi : jl));
        }
    }
    /* O = P V: per 64 output dims, chunks of PV_KEYS keys outside and row
     * tiles inside (a chunk of value rows stays in cache for every row tile);
     * each row tile's sum runs over its keys in ascending order, carried in o
     * from chunk to chunk */
    for (int d0 = 0; d0 < Dv; d0 += 64) {
        int nv = (Dv - d0) / 16 < 4 ? (Dv - d0) / 16 : 4;
        for (int64_t jc = kt0; jc < kt1 || jc == kt0; jc += PV_KEYS)
            for (int i0 = 0; i0 < nq; i0 += TR) {
                int rn = nq - i0 < TR ? nq - i0 : TR;
                int64_t jl, jh, lo, hi;
                attn_visible(i0, nk, qpos0, kpos0, window, &jl, &hi);
                attn_visible(i0 + rn - 1, nk, qpos0, kpos0, window, &lo, &jh);
                int64_t a = jl > jc ? jl : jc, b = jh < jc + PV_KEYS ? jh : jc + PV_KEYS;
                int first = jl >= jh ? jc == kt0 : (jl >= jc && jl < jc + PV_KEYS);
                if (b <= a && !first) continue; /* no key of this chunk */
                if (b < a) b = a;
                const float *St = S + (int64_t)i0 * nkp;
                float *ot = o + (int64_t)i0 * os;
                switch (nv) {
                case 1: pv_tile(1, ot, os, St, nkp, v, kvs, a, b, d0, rn, !first); break;
                case 2: pv_tile(2, ot, os, St, nkp, v, kvs, a, b, d0, rn, !first); break;
                case 3: pv_tile(3, ot, os, St, nkp, v, kvs, a, b, d0, rn, !first); break;
                default: pv_tile(4, ot, os, St, nkp, v, kvs, a, b, d0, rn, !first); break;
                }
            }
    }
}
