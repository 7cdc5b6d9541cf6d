/*
 * kernels_avx512.c - AVX-512 matmul (F32/BF16/F16 weights, f32 activations)
 * and vector ops. Runs only when kernels.c has seen the CPU has AVX-512
 * F/BW/VL/DQ.
 *
 * Weights are widened to f32 exactly (bf16: shift into the high half; f16:
 * vcvtph2ps); every product and sum is f32 FMA. Two paths:
 *   - direct (n <= DIRECT_MAX_N, decode): W widened on the fly, each W
 *     vector loaded once and used for all n rows of x. For n = 1, 8 W rows
 *     at a time with 2 accumulators each (16 FMA chains, 8 memory streams,
 *     software prefetch); for n = 2..5 a tile of n x-rows by 4 W-rows.
 *     Bound by memory bandwidth.
 *   - panel (larger n, prefill; f32 W with n >= 64 goes to gemm.h instead,
 *     see kernels.c): W is widened block by block into an f32
 *     panel [rows][PANEL_K] in thread-local memory, then a 6 x 4
 *     register tile (24 accumulators) runs over it: each loaded W vector feeds
 *     6 FMAs and each x vector 4, so the loop is FMA-bound. K is blocked so a
 *     6-row strip of x stays in L1 and the panel in L2.
 * Tails in K use masked loads (masked-off lanes read as 0 and never fault);
 * a partial group of W rows repeats the last row and drops the extra sums.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/kernels_impl.h"

#define AI static inline __attribute__((always_inline))

#define DIRECT_MAX_N 5 /* n above this uses the panel path (measured crossover) */
#define TILE_X 6       /* x rows per panel tile */
#define GR 8           /* decode: W rows per tile */
#define GU 2           /* decode: accumulators per row */
#define PANEL_FLOATS KERN_PANEL_FLOATS /* per-thread panel of widened W: 256 KiB (L2) */
#define PANEL_K 512    /* K per block (floats) */
/* Software prefetch distance along each W row in the direct path, bytes.
 * The hardware streamer restarts at every 4 KiB page (often every row);
 * this keeps more lines in flight. */
#define PREFETCH_BYTES 1024

/* The panel of widened W (the calling thread's scratch, from its pool) holds
 * PANEL_FLOATS / kb rows of a K block of kb floats (256 rows at K = 256):
 * every x row streamed past a panel is reused by that many W rows, so big-n
 * products (the LM head over a training batch) read x from outside L2 a few
 * times, not once per 64 rows. */

/* ------------------------------------------------------------- loading */

/* 16 consecutive weights of a row from element k, widened to f32. */
AI __m512 w_load(const void *row, int64_t k, dtype t) {
    if (t == DT_F32) return _mm512_loadu_ps((const float *)row + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + k));
    if (t == DT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* The same for the lanes in mask m (others 0, never touched in memory). */
AI __m512 w_load_m(const void *row, int64_t k, dtype t, __mmask16 m) {
    if (t == DT_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k);
    if (t == DT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

AI const void *w_row(const mat *W, int64_t r) {
    return (const char *)W->data + (size_t)r * (size_t)W->cols * (size_t)dtype_size(W->type);
}

/* {sum(a0), sum(a1), sum(a2), sum(a3)} */
AI __m128 hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512d d0 = _mm512_castps_pd(t0), d1 = _mm512_castps_pd(t1);
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
    __m256 v = _mm256_add_ps(_mm512_castps512_ps256(u), _mm512_extractf32x8_ps(u, 1));
    return _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
}

/* Write (or add) the first rw of 4 sums at y. */
AI void y_put(float *y, __m128 s, int rw, int add) {
    __mmask8 m = (__mmask8)((1u << rw) - 1);
    if (add) s = _mm_add_ps(s, _mm_maskz_loadu_ps(m, y));
    _mm_mask_storeu_ps(y, m, s);
}

/* ---------------------------------------------------------- direct path */

/* Prefetch `len` bytes of a W row, PREFETCH_BYTES ahead of `byte`. Past
 * the row's end, the target is the same row of the next tile (`tile` rows
 * further on), so the distance stays steady across tiles. */
AI void w_prefetch(const void *row, int64_t byte, int len, int64_t row_bytes, int tile) {
    int64_t off = byte + PREFETCH_BYTES;
    if (off >= row_bytes) off += (tile - 1) * row_bytes;
    for (int o = 0; o < len; o += 64) _mm_prefetch((const char *)row + off + o, _MM_HINT_T0);
}

/* y[i][0..rw) = x[i] . w[j] for i < RX, j < 4 (rows past rw are repeats). */
AI void direct_tile(const int RX, const dtype t, float *y, int64_t ys, const float *x, int64_t K,
                    const void *const w[4], int rw) {
    const int es = dtype_size(t);
    __m512 acc[DIRECT_MAX_N][4];
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            w_prefetch(w[j], k * es, 16 * es, K * es, 4);
            wv[j] = w_load(w[j], k, t);
        }
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            __m512 xv = _mm512_loadu_ps(x + i * K + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) wv[j] = w_load_m(w[j], k, t, m);
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + i * K + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++)
        y_put(y + i * ys, hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), rw, 0);
}

/* Decode (n = 1): GR rows at a time, GU accumulators per row; GR streams in
 * flight keep more of the memory system busy than 4 do. */
AI void gemv_tile(const dtype t, float *y, const float *x, int64_t K, const void *const w[GR],
                  int rw) {
    const int es = dtype_size(t);
    const int64_t row_bytes = K * es;
    __m512 acc[GU][GR];
#pragma GCC unroll 16
    for (int j = 0; j < GR; j++)
#pragma GCC unroll 2
        for (int u = 0; u < GU; u++) acc[u][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 * GU <= K; k += 16 * GU) {
#pragma GCC unroll 16
        for (int j = 0; j < GR; j++) w_prefetch(w[j], k * es, 16 * GU * es, row_bytes, GR);
#pragma GCC unroll 2
        for (int u = 0; u < GU; u++) {
            __m512 xv = _mm512_loadu_ps(x + k + 16 * u);
#pragma GCC unroll 16
            for (int j = 0; j < GR; j++)
                acc[u][j] = _mm512_fmadd_ps(xv, w_load(w[j], k + 16 * u, t), acc[u][j]);
        }
    }
    for (; k < K; k += 16) {
        __mmask16 m = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
#pragma GCC unroll 16
        for (int j = 0; j < GR; j++) acc[0][j] = _mm512_fmadd_ps(xv, w_load_m(w[j], k, t, m), acc[0][j]);
    }
#pragma GCC unroll 2
    for (int u = 1; u < GU; u++)
#pragma GCC unroll 16
        for (int j = 0; j < GR; j++) acc[0][j] = _mm512_add_ps(acc[0][j], acc[u][j]);
#pragma GCC unroll 4
    for (int j = 0; j < GR; j += 4)
        if (j < rw)
            y_put(y + j, hsum4(acc[0][j], acc[0][j + 1], acc[0][j + 2], acc[0][j + 3]),
                  rw - j < 4 ? rw - j : 4, 0);
}

AI void direct_rows(const int RX, const dtype t, float *y, const float *x, const mat *W, int64_t r0,
                    int64_t r1) {
    if (RX == 1) {
        /* Rows past r1 repeat the last one: every row is summed the same
         * way wherever the thread split falls, so results do not depend on
         * the number of threads. */
        for (int64_t r = r0; r < r1; r += GR) {
            int rw = r1 - r < GR ? (int)(r1 - r) : GR;
            const void *w[GR];
            for (int j = 0; j < GR; j++) w[j] = w_row(W, r + (j < rw ? j : rw - 1));
            gemv_tile(t, y + r, x, W->cols, w, rw);
        }
        return;
    }
    for (int64_t r = r0; r < r1; r += 4) {
        int rw = r1 - r < 4 ? (int)(r1 - r) : 4;
        const void *w[4];
        for (int j = 0; j < 4; j++) w[j] = w_row(W, r + (j < rw ? j : rw - 1));
        direct_tile(RX, t, y + r, W->rows, x, W->cols, w, rw);
    }
}

#define DIRECT_FNS(T, NAME)                                                                    \
    static void direct_##NAME(float *y, const float *x, const mat *W, int64_t n, int64_t r0,  \
                              int64_t r1) {                                                    \
        switch (n) {                                                                           \
        case 1: direct_rows(1, T, y, x, W, r0, r1); break;                                     \
        case 2: direct_rows(2, T, y, x, W, r0, r1); break;                                     \
        case 3: direct_rows(3, T, y, x, W, r0, r1); break;                                     \
        case 4: direct_rows(4, T, y, x, W, r0, r1); break;                                     \
        case 5: direct_rows(5, T, y, x, W, r0, r1); break;                                     \
        }                                                                                      \
    }
DIRECT_FNS(DT_F32, f32)
DIRECT_FNS(DT_BF16, bf16)
DIRECT_FNS(DT_F16, f16)

/* ----------------------------------------------------------- panel path */

/* Sums of RX x-rows (stride xs) against 4 W rows over kl elements, written
 * to y[i*ys + j] for j < rw (added when `add`). With FILL < 0, w[j] are f32
 * panel rows. Otherwise w[j] are rows of W of dtype FILL: they are widened
 * here and also stored to the panel rows dst[j], so the fill overlaps the
 * FMAs of the first x block instead of stalling on memory by itself. */
AI void panel_tile(const int RX, const int FILL, float *y, int64_t ys, const float *x, int64_t xs,
                   const void *const w[4], float *const dst[4], int64_t kl, int rw, int add) {
    __m512 acc[TILE_X][4];
#pragma GCC unroll 8
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= kl; k += 16) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (FILL < 0) {
                wv[j] = _mm512_loadu_ps((const float *)w[j] + k);
            } else {
                wv[j] = w_load(w[j], k, (dtype)FILL);
                _mm512_store_ps(dst[j] + k, wv[j]);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < RX; i++) {
            __m512 xv = _mm512_loadu_ps(x + i * xs + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
    if (k < kl) {
        __mmask16 m = (__mmask16)((1u << (kl - k)) - 1);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            if (FILL < 0) {
                wv[j] = _mm512_maskz_loadu_ps(m, (const float *)w[j] + k);
            } else {
                wv[j] = w_load_m(w[j], k, (dtype)FILL, m);
                _mm512_mask_storeu_ps(dst[j] + k, m, wv[j]);
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < RX; i++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + i * xs + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < RX; i++)
        y_put(y + i * ys, hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]), rw, add);
}

#define TILE_CASES(FILL)                                                                      \
    switch (rx) {                                                                             \
    case 1: panel_tile(1, FILL, y, ys, x, xs, w, dst, kl, rw, add); break;                    \
    case 2: panel_tile(2, FILL, y, ys, x, xs, w, dst, kl, rw, add); break;                    \
    case 3: panel_tile(3, FILL, y, ys, x, xs, w, dst, kl, rw, add); break;                    \
    case 4: panel_tile(4, FILL, y, ys, x, xs, w, dst, kl, rw, add); break;                    \
    case 5: panel_tile(5, FILL, y, ys, x, xs, w, dst, kl, rw, add); break;                    \
    default: panel_tile(6, FILL, y, ys, x, xs, w, dst, kl, rw, add); break;                   \
    }

static void panel_tile_any(int rx, int fill, float *y, int64_t ys, const float *x, int64_t xs,
                           const void *const w[4], float *const dst[4], int64_t kl, int rw,
                           int add) {
    switch (fill) {
    case DT_F32: TILE_CASES(DT_F32) break;
    case DT_BF16: TILE_CASES(DT_BF16) break;
    case DT_F16: TILE_CASES(DT_F16) break;
    default: TILE_CASES(-1) break;
    }
}

/* Every dtype, f32 included, goes through the panel: a contiguous block
 * avoids the cache-set conflicts of rows a power-of-two stride apart. */
static void panel_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                       float *panel) {
    const int64_t K = W->cols, R = W->rows;
    const size_t es = (size_t)dtype_size(W->type);
    /* panel row stride: the K block rounded up to 16 floats (64-byte rows) */
    const int64_t ks = ((K < PANEL_K ? K : PANEL_K) + 15) & ~(int64_t)15;
    const int64_t prows = (PANEL_FLOATS / (ks > 0 ? ks : 16)) & ~(int64_t)3;
    for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += PANEL_K) {
        int64_t kl = K - k0 < PANEL_K ? K - k0 : PANEL_K;
        int add = k0 > 0;
        for (int64_t m0 = r0; m0 < r1; m0 += prows) {
            int nr = r1 - m0 < prows ? (int)(r1 - m0) : (int)prows;
            /* x blocks of near-equal size (8 = 4 + 4, not 6 + 2): a thin
             * block reuses each W vector for fewer FMAs. */
            int64_t blocks = (n + TILE_X - 1) / TILE_X;
            for (int64_t i = 0, rx; i < n; i += rx, blocks--) {
                rx = (n - i + blocks - 1) / blocks;
                int fill = i == 0 ? (int)W->type : -1; /* the first x block fills the panel */
                for (int j = 0; j < nr; j += 4) {
                    int rw = nr - j < 4 ? nr - j : 4;
                    const void *w[4];
                    float *dst[4];
                    for (int q = 0; q < 4; q++) {
                        int jj = j + (q < rw ? q : rw - 1);
                        dst[q] = panel + (size_t)jj * (size_t)ks;
                        w[q] = fill >= 0 ? (const char *)w_row(W, m0 + jj) + (size_t)k0 * es
                                         : (const void *)dst[q];
                    }
                    panel_tile_any((int)rx, fill, y + i * R + m0 + j, R, x + i * K + k0, K, w, dst, kl,
                                   rw, add);
                }
            }
        }
        if (K == 0) break;
    }
}

void avx512_matmul_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                        float *panel) {
    if (r1 <= r0 || n <= 0) return;
    if (n > DIRECT_MAX_N) {
        panel_rows(y, x, W, n, r0, r1, panel);
        return;
    }
    switch (W->type) {
    case DT_F32: direct_f32(y, x, W, n, r0, r1); break;
    case DT_BF16: direct_bf16(y, x, W, n, r0, r1); break;
    case DT_F16: direct_f16(y, x, W, n, r0, r1); break;
    default: break;
    }
}

/* ------------------------------------------------------------ vector ops */

float avx512_dot(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

/* kernels.c's rmsnorm, the same bits: lane k of one register of 8 doubles
 * is its partial sum k (elements i = k mod 8, in order; a float's square is
 * exact in double, so the fma rounds as its add does; the tail's missing
 * lanes add +0), the sums combined in its order, then (x * r) * w in f32. */
void avx512_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    __m512d acc = _mm512_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
        acc = _mm512_fmadd_pd(v, v, acc);
    }
    if (i < n) {
        __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps((__mmask8)((1u << (n - i)) - 1), x + i));
        acc = _mm512_fmadd_pd(v, v, acc);
    }
    double s[8];
    _mm512_storeu_pd(s, acc);
    const double ss = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    const float var = n > 0 ? (float)(ss / n) : 0.0f;
    const __m512 r = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), r), _mm512_loadu_ps(w + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), r), _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

void avx512_axpy(float *y, float a, const float *x, int n) {
    __m512 av = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}
