/*
 * quant_amx_k_avx512.c - the many-row products (prefill) of Q4_K and Q5_K
 * weights on AMX-INT8, the K-quant sibling of quant_amx_avx512.c (read that
 * first).
 * Runs only when quant.c has seen amx_init() succeed; tested against the
 * scalar reference like every other path (tests/test_quant.c).
 *
 * A Q4_K block of 256 values has 8 sub-blocks of 32 with 6-bit scales sc_j
 * and mins m_j, w = d sc_j q - dmin m_j with q = 0..15 (Q5_K: 0..31, the
 * fifth bits in qh; the rest alike). The activations are
 * the K-quants' Q8_K (codes c, one scale dx per 256 values), so per block
 *   sum w x = d dx sum_j sc_j (q_j . c_j) - dmin dx sum_j m_j sum(c_j),
 * as the reference computes it. One tdpbssd per sub-block gives q_j . c_j
 * for 16 W rows x 16 x rows (A: the unpacked nibbles, 16 rows of 32; B: the
 * codes in the tile layout of quant_impl.h); AVX-512 then sums sc_j times
 * those (f32, exact below 2^24), and the min term, sum_j m_j sum(c_j), is
 * 4 vpdpwssd on the tile's int16 sub-block sums per W row, exact in int32.
 *
 * The nibbles of a K chunk of KC blocks and 16 W rows are unpacked first
 * (zero rows below 16 for a last partial group); the accumulators of up to
 * NTS x tiles stay in memory between chunks. While block b is scaled, block
 * b + 1's eight products run on the tiles into the other half of cb.
 *
 * Each output is computed the same way wherever a thread's range of rows
 * starts (ranges start on multiples of 16 rows), so results do not depend on
 * the number of threads.
 */
#include <immintrin.h>
#include <stdalign.h>
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

/* ------------------------------------------------------- activations */

/* Bytes of a block in the tile (see quant_impl.h, QT_TILE_BLOCK_K). */
#define TK_BS 4096 /* int16 bs[4][16][2] */
#define TK_D 4352  /* float d[16] */

void amx_qact_tile_k(void *tile, const float *x, int64_t nx, int64_t cols) {
    const int64_t nb = cols / QK_K;
    uint8_t *t = tile;
    memset(t, 0, (size_t)nb * QT_TILE_BLOCK_K);
    alignas(64) qx_k q;
    for (int64_t i = 0; i < nx; i++)
        for (int64_t b = 0; b < nb; b++) {
            avx512_qact_row(&q, x + i * cols + b * QK_K, QT_Q4_K, QK_K);
            uint8_t *blk = t + b * QT_TILE_BLOCK_K;
            for (int j = 0; j < 8; j++)
                for (int k = 0; k < 8; k++) memcpy(blk + 512 * j + 64 * k + 4 * i, q.qs + 32 * j + 4 * k, 4);
            int16_t *bs = (int16_t *)(blk + TK_BS);
            for (int j = 0; j < 8; j++)
                bs[(j / 2) * 32 + 2 * i + j % 2] = (int16_t)(q.bsums[2 * j] + q.bsums[2 * j + 1]);
            memcpy(blk + TK_D + 4 * i, &q.d, 4);
        }
}

/* ------------------------------------------------------------ set-up */

/* amx_cfg and amx_config: amx_tiles.h (two sets: even and odd blocks) */

/* ------------------------------------------------------------ kernel */

#define KC 2   /* 256-blocks per K chunk: the unpacked A is 16 x 512 bytes */
#define NTS 8  /* x tiles per pass (their accumulators: 8 KiB) */
#define GR AMX_GR

/* Per block and W row of a chunk: the scales as f32, the mins as int16
 * pairs (m_2p | m_2p+1 << 16), d and dmin. */
typedef struct {
    alignas(64) float sc[KC][GR][8];
    alignas(16) int32_t mp[KC][GR][4];
    float d[KC][GR], dmin[KC][GR];
} kscales;

AI float h2f(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return _cvtsh_ss(v);
}

/* The 8 scales and 8 mins of a Q4_K block as bytes [sc0..7 | m0..7]
 * (quant_avx512.c's k45_unpack: ggml's kmask shuffle of the three 32-bit
 * words of `scales`, in a vector register). Reads 16 bytes from offset 4. */
AI __m128i k4_unpack(const uint8_t *blk) {
    __m128i v = _mm_loadu_si128((const __m128i *)(blk + 4));   /* u0 u1 u2 . */
    __m128i a = _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)); /* u0 u2 u1 u2 */
    a = _mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4));
    a = _mm_and_si128(a, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    __m128i b = _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 0, 0)); /* lanes 1, 3: u0, u1 */
    b = _mm_and_si128(_mm_srli_epi32(b, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303));
    return _mm_or_si128(a, _mm_slli_epi32(b, 4));
}

/* Rows g..g+rv of blocks [c0, c0 + kc): codes a[row][256 b + 32 j + l]
 * (Q5_K: with the fifth bit, 0..31; zero rows >= rv) and their scales
 * (zero for rows >= rv). */
static void prep_chunk(const qmm_job *j, const uint8_t *Wg, int rv, int64_t c0, int kc, uint8_t *a, kscales *s) {
    const int q5 = j->type == QT_Q5_K;
    const size_t bb = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i s16 = _mm256_set1_epi8(16);
    for (int m = 0; m < GR; m++) {
        uint8_t *am = a + m * KC * QK_K;
        if (m >= rv) {
            memset(am, 0, (size_t)kc * QK_K);
            for (int b = 0; b < kc; b++) {
                memset(s->sc[b][m], 0, sizeof s->sc[b][m]);
                memset(s->mp[b][m], 0, sizeof s->mp[b][m]);
                s->d[b][m] = s->dmin[b][m] = 0;
            }
            continue;
        }
        const uint8_t *row = Wg + (size_t)m * j->w_row + (size_t)c0 * bb;
        for (int b = 0; b < kc; b++) {
            const uint8_t *blk = row + (size_t)b * bb;
            const uint8_t *qs = blk + (q5 ? offsetof(block_q5_K, qs) : offsetof(block_q4_K, qs));
            s->d[b][m] = h2f(blk);
            s->dmin[b][m] = h2f(blk + 2);
            const __m128i v = k4_unpack(blk);
            _mm256_store_ps(s->sc[b][m], _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)));
            _mm_storeu_si128((__m128i *)s->mp[b][m], _mm_cvtepu8_epi16(_mm_srli_si128(v, 8)));
            const __m256i lo = _mm256_set1_epi8(0x0F);
            for (int p = 0; p < 4; p++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * p));
                __m256i q0 = _mm256_and_si256(v, lo), q1 = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo);
                if (q5) { /* + 16 where bit 2p (2p + 1) of qh[l] is set */
                    const __m256i h = _mm256_loadu_si256((const __m256i *)(blk + offsetof(block_q5_K, qh)));
                    const __m256i m0 = _mm256_set1_epi8((char)(1 << 2 * p)), m1 = _mm256_set1_epi8((char)(2 << 2 * p));
                    q0 = _mm256_or_si256(q0, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, m0), m0), s16));
                    q1 = _mm256_or_si256(q1, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(h, m1), m1), s16));
                }
                _mm256_store_si256((__m256i *)(am + QK_K * b + 64 * p), q0);
                _mm256_store_si256((__m256i *)(am + QK_K * b + 64 * p + 32), q1);
            }
        }
    }
}

/* The eight sub-block products of one block (A at a, stride KC * 256; B
 * at xb) into cb[8][16][16], alternating the two tile sets. */
AI void amx_block(const uint8_t *a, const uint8_t *xb, int32_t (*cb)[GR][16]) {
#pragma GCC unroll 4
    for (int k = 0; k < 8; k += 2) {
        _tile_loadd(1, a + 32 * k, KC * QK_K);
        _tile_loadd(2, xb + 512 * k, 64);
        _tile_zero(0);
        _tile_dpbssd(0, 1, 2);
        _tile_loadd(4, a + 32 * (k + 1), KC * QK_K);
        _tile_loadd(5, xb + 512 * (k + 1), 64);
        _tile_zero(3);
        _tile_dpbssd(3, 4, 5);
        _tile_stored(0, cb[k], 64);
        _tile_stored(3, cb[k + 1], 64);
    }
}

/* acc[m] += (d_m dx) S - (dmin_m dx) M for the 16 W rows, S = sum_j sc_j
 * cb[j][m] and M = sum_j m_j sum(c_j), as the reference. */
AI void scale_block(__m512 *acc, const int32_t (*cb)[GR][16], const uint8_t *xblk, const kscales *s, int b) {
    const __m512 dx = _mm512_load_ps((const float *)(xblk + TK_D));
    const __m512i bs0 = _mm512_load_si512((const void *)(xblk + TK_BS));
    const __m512i bs1 = _mm512_load_si512((const void *)(xblk + TK_BS + 64));
    const __m512i bs2 = _mm512_load_si512((const void *)(xblk + TK_BS + 128));
    const __m512i bs3 = _mm512_load_si512((const void *)(xblk + TK_BS + 192));
#pragma GCC unroll 16
    for (int m = 0; m < GR; m++) {
        const float *sc = s->sc[b][m];
        __m512 S = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)cb[0][m])), _mm512_set1_ps(sc[0]));
#pragma GCC unroll 8
        for (int k = 1; k < 8; k++)
            S = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)cb[k][m])), _mm512_set1_ps(sc[k]), S);
        const int32_t *mp = s->mp[b][m];
        __m512i M = _mm512_madd_epi16(bs0, _mm512_set1_epi32(mp[0]));
        M = _mm512_dpwssd_epi32(M, bs1, _mm512_set1_epi32(mp[1]));
        M = _mm512_dpwssd_epi32(M, bs2, _mm512_set1_epi32(mp[2]));
        M = _mm512_dpwssd_epi32(M, bs3, _mm512_set1_epi32(mp[3]));
        const __m512 t = _mm512_sub_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(s->d[b][m]), dx), S),
                                       _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(s->dmin[b][m]), dx),
                                                     _mm512_cvtepi32_ps(M)));
        acc[m] = _mm512_add_ps(acc[m], t);
    }
}

/* W rows g..g+rv (rv <= GR) against all n rows of x. */
static void amx_group_k(const qmm_job *j, int64_t g, int rv) {
    const int64_t nb = j->cols / QK_K, ntile = (j->n + QT_TILE_N - 1) / QT_TILE_N;
    const uint8_t *Wg = j->W + (size_t)g * j->w_row;
    alignas(64) uint8_t a[GR * KC * QK_K];
    alignas(64) int32_t cb[2][8][GR][16];
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
            prep_chunk(j, Wg, rv, c0, kc, a, &s);
            for (int t = 0; t < nts; t++) {
                const uint8_t *xt = j->xq + (size_t)(t0 + t) * j->xq_row + (size_t)c0 * QT_TILE_BLOCK_K;
                __m512 acc[GR];
#pragma GCC unroll 16
                for (int m = 0; m < GR; m++) acc[m] = c0 ? _mm512_load_ps(accm[t][m]) : _mm512_setzero_ps();
                amx_block(a, xt, cb[0]);
                for (int b = 0; b < kc; b++) {
                    if (b + 1 < kc) amx_block(a + QK_K * (b + 1), xt + (size_t)(b + 1) * QT_TILE_BLOCK_K, cb[(b + 1) & 1]);
                    if (t0 == 0 && t == 0) {
                        const size_t want = pf_len * (size_t)(c0 + b + 1) / (size_t)nb;
                        for (; pf_at < want; pf_at += 64) _mm_prefetch((const char *)pf + pf_at, _MM_HINT_T1);
                    }
                    scale_block(acc, (const int32_t(*)[GR][16])cb[b & 1], xt + (size_t)b * QT_TILE_BLOCK_K, &s, b);
                }
#pragma GCC unroll 16
                for (int m = 0; m < GR; m++) _mm512_store_ps(accm[t][m], acc[m]);
            }
        }
        amx_put_group(j, g, rv, t0, nts, (const float(*)[GR][16])accm);
    }
}

void amx_k_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) { amx_rows(j, r0, r1, amx_group_k); }

#if defined(__clang__)
#pragma clang attribute pop
#endif
