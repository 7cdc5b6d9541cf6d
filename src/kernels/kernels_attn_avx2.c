/*
 * kernels_attn_avx2.c - attn_block's AVX2 path (attn.h): a block of queries
 * of one head as two register-tiled GEMMs, kernels_attn_avx512.c's scheme
 * on 256-bit registers (16 of them). Runs only when the kernel choice is
 * ISA_AVX2, without a sink logit; Dh and Dv multiples of 16, at most 1024.
 *
 *   Kt [Dh][nkp]  the visible keys transposed (8 x 8 in-register
 *                 transposes), so a score tile is an outer product
 *   S  [nq][nkp]  scores of TR query rows x 16 keys per tile (8 ymm
 *                 accumulators; per d: 2 key vectors, TR broadcasts), four
 *                 such tiles per 64-key block
 *   softmax of each row over its visible keys (kernels.h softmax on the
 *   AVX2 kernel choice, the reference's own call), zeros elsewhere in the
 *   block's key range
 *   O = P V       TR rows x 16 of Dv (8 accumulators), keys in ascending
 *                 order; the 16 columns of a chunk of PV_KEYS value rows
 *                 copied first into 16 KiB on the stack, read by every
 *                 row tile from L1 (in place, rows kvs floats apart, they
 *                 fell on a few L1 sets: one core of an AMD Zen 3, 64
 *                 queries x 1024 keys, Dh = Dv = 128, 61 -> 72 GFLOP/s)
 * The scores differ from attn_block_ref's by the order of the Dh products
 * (f32 rounding); the softmax and the sums over j are the same operations.
 * Rows of a tile past nq repeat the last row and are not stored.
 */
#include <immintrin.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"

#define AI static inline __attribute__((always_inline))
#define TR 4        /* query rows per tile */
#define PV_KEYS 256 /* value rows per chunk of O = P V */

static int64_t round64(int64_t n) { return (n + 63) & ~(int64_t)63; }

/* dst[d][j] = src[j*ss + d] for j < 8, d < 8 (row stride ds); source rows
 * j >= nj read as 0. */
AI void transpose8(float *dst, int64_t ds, const float *src, int64_t ss, int nj) {
    __m256 r[8], t[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) r[j] = j < nj ? _mm256_loadu_ps(src + j * ss) : _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
    }
    /* t[2p]: per lane [r2p c0, r2p+1 c0, r2p c1, r2p+1 c1], t[2p+1]: c2, c3 */
#pragma GCC unroll 2
    for (int g = 0; g < 2; g++) {
        const __m256d a = _mm256_castps_pd(t[4 * g]), b = _mm256_castps_pd(t[4 * g + 1]);
        const __m256d c = _mm256_castps_pd(t[4 * g + 2]), d = _mm256_castps_pd(t[4 * g + 3]);
        r[4 * g + 0] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c)); /* column 0 (4) of rows 4g..4g+3 */
        r[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c)); /* column 1 (5) */
        r[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d)); /* column 2 (6) */
        r[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d)); /* column 3 (7) */
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        _mm256_storeu_ps(dst + c * ds, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
        _mm256_storeu_ps(dst + (4 + c) * ds, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
    }
}

/* S[r][jb .. jb+16) = scale * q_r . Kt[.][jb ..] for the tile's rows. */
AI void score_tile(float *S, int64_t nkp, const float *q, int64_t qs, const float *Kt, int Dh, int64_t jb, int rn,
                   float scale) {
    __m256 acc[TR][2];
    const float *qr[TR];
#pragma GCC unroll 4
    for (int r = 0; r < TR; r++) {
        qr[r] = q + (r < rn ? r : rn - 1) * qs;
        acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    }
    for (int d = 0; d < Dh; d++) {
        const float *kt = Kt + d * nkp + jb;
        const __m256 k0 = _mm256_loadu_ps(kt), k1 = _mm256_loadu_ps(kt + 8);
#pragma GCC unroll 4
        for (int r = 0; r < TR; r++) {
            const __m256 qb = _mm256_broadcast_ss(qr[r] + d);
            acc[r][0] = _mm256_fmadd_ps(qb, k0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(qb, k1, acc[r][1]);
        }
    }
    const __m256 sv = _mm256_set1_ps(scale);
#pragma GCC unroll 4
    for (int r = 0; r < TR; r++) {
        if (r >= rn) break;
        _mm256_storeu_ps(S + r * nkp + jb, _mm256_mul_ps(acc[r][0], sv));
        _mm256_storeu_ps(S + r * nkp + jb + 8, _mm256_mul_ps(acc[r][1], sv));
    }
}

/* o[r][d0 .. d0+16) = sum over j in [jl, jh) of P[r][j] v[j][d0 ..], added
 * in ascending j to what o holds when `more` (a previous range of keys), to 0
 * otherwise: the same chain of fused multiply-adds either way. vb holds
 * those 16 columns of value rows jv, jv + 1, ... (16 floats each). */
AI void pv_tile(float *o, int64_t os, const float *P, int64_t nkp, const float *vb, int64_t jv, int64_t jl,
                int64_t jh, int d0, int rn, int more) {
    __m256 acc[TR][2];
    const float *pr[TR];
#pragma GCC unroll 4
    for (int r = 0; r < TR; r++) {
        pr[r] = P + (r < rn ? r : rn - 1) * nkp;
        const float *orow = o + (r < rn ? r : rn - 1) * os + d0;
        acc[r][0] = more ? _mm256_loadu_ps(orow) : _mm256_setzero_ps();
        acc[r][1] = more ? _mm256_loadu_ps(orow + 8) : _mm256_setzero_ps();
    }
    for (int64_t j = jl; j < jh; j++) {
        const float *vj = vb + (j - jv) * 16;
        const __m256 v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8);
#pragma GCC unroll 4
        for (int r = 0; r < TR; r++) {
            const __m256 pb = _mm256_broadcast_ss(pr[r] + j);
            acc[r][0] = _mm256_fmadd_ps(pb, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(pb, v1, acc[r][1]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < TR; r++) {
        if (r >= rn) break;
        _mm256_storeu_ps(o + r * os + d0, acc[r][0]);
        _mm256_storeu_ps(o + r * os + d0 + 8, acc[r][1]);
    }
}

static void zero(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) p[i] = 0.0f;
}

void avx2_attn_block(const kern_cfg *kc, float *o, int64_t os, const float *q, int64_t qs, const float *k,
                     const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv, int64_t qpos0, int64_t kpos0,
                     int window, float scale, float *scratch) {
    const int64_t nkp = attn_row_stride(nk);
    float *Kt = scratch, *S = scratch + (int64_t)Dh * nkp;
    int64_t lo0, hi0, loN, hiN;
    attn_visible(0, nk, qpos0, kpos0, window, &lo0, &hi0);
    attn_visible(nq - 1, nk, qpos0, kpos0, window, &loN, &hiN);
    /* the keys any query sees, transposed (whole 64-key blocks, zero-padded) */
    const int64_t kt0 = lo0 & ~(int64_t)63, kt1 = round64(hiN);
    for (int64_t j = kt0; j < kt1; j += 8) {
        const int nj = nk - j < 8 ? (int)(nk - j) : 8;
        for (int d = 0; d < Dh; d += 8) transpose8(Kt + d * nkp + j, nkp, k + j * kvs + d, kvs, nj < 0 ? 0 : nj);
    }
    /* scores: 16-key tiles outside, row tiles inside, so a tile of Kt (Dh x
     * 16 floats) is read from cache by every row tile of the block */
    for (int64_t jb = kt0; jb < kt1; jb += 16)
        for (int i0 = 0; i0 < nq; i0 += TR) {
            const int rn = nq - i0 < TR ? nq - i0 : TR;
            int64_t jl, jh, lo, hi;
            attn_visible(i0, nk, qpos0, kpos0, window, &jl, &hi);
            attn_visible(i0 + rn - 1, nk, qpos0, kpos0, window, &lo, &jh);
            if (jb >= (jl & ~(int64_t)63) && jb < round64(jh))
                score_tile(S + (int64_t)i0 * nkp, nkp, q + (int64_t)i0 * qs, qs, Kt, Dh, jb, rn, scale);
        }
    for (int i0 = 0; i0 < nq; i0 += TR) {
        const int rn = nq - i0 < TR ? nq - i0 : TR;
        int64_t jl, jh, lo, hi;
        attn_visible(i0, nk, qpos0, kpos0, window, &jl, &hi);
        attn_visible(i0 + rn - 1, nk, qpos0, kpos0, window, &lo, &jh);
        float *St = S + (int64_t)i0 * nkp;
        for (int r = 0; r < rn; r++) {
            float *s = St + r * nkp;
            attn_visible(i0 + r, nk, qpos0, kpos0, window, &lo, &hi);
            if (hi > lo) softmax(kc, s + lo, (int)(hi - lo));
            if (jl < lo) zero(s + jl, (lo < jh ? lo : jh) - jl);
            if (hi < jh) zero(s + (hi > jl ? hi : jl), jh - (hi > jl ? hi : jl));
        }
    }
    /* O = P V: per 16 output dims, chunks of PV_KEYS keys outside and row
     * tiles inside; each row tile's sum runs over its keys in ascending
     * order, carried in o from chunk to chunk */
    float vb[PV_KEYS * 16] __attribute__((aligned(64)));
    for (int d0 = 0; d0 < Dv; d0 += 16)
        for (int64_t jc = kt0; jc < kt1 || jc == kt0; jc += PV_KEYS) {
            const int64_t je = jc + PV_KEYS < nk ? jc + PV_KEYS : nk;
            for (int64_t j = jc; j < je; j++) {
                _mm256_store_ps(vb + (j - jc) * 16, _mm256_loadu_ps(v + j * kvs + d0));
                _mm256_store_ps(vb + (j - jc) * 16 + 8, _mm256_loadu_ps(v + j * kvs + d0 + 8));
            }
            for (int i0 = 0; i0 < nq; i0 += TR) {
                const int rn = nq - i0 < TR ? nq - i0 : TR;
                int64_t jl, jh, lo, hi;
                attn_visible(i0, nk, qpos0, kpos0, window, &jl, &hi);
                attn_visible(i0 + rn - 1, nk, qpos0, kpos0, window, &lo, &jh);
                int64_t a = jl > jc ? jl : jc, b = jh < jc + PV_KEYS ? jh : jc + PV_KEYS;
                const int first = jl >= jh ? jc == kt0 : (jl >= jc && jl < jc + PV_KEYS);
                if (b <= a && !first) continue; /* no key of this chunk */
                if (b < a) b = a;
                pv_tile(o + (int64_t)i0 * os, os, S + (int64_t)i0 * nkp, nkp, vb, jc, a, b, d0, rn, !first);
            }
        }
}
