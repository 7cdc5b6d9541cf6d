/*
 * kernels_avx2.c - AVX2+FMA+F16C matmul (F32/BF16/F16 weights, f32
 * activations) and vector ops, for CPUs without AVX-512. Same plan as
 * kernels_avx512.c with 8-wide vectors and 16 registers:
 *   - direct (n <= 2): W widened on the fly; n = 1 takes 8 W rows at a time
 *     with software prefetch, n = 2 a 2 x 4 tile;
 *   - panel (n > 2): W widened into a thread-local f32 panel, then a 3 x 4
 *     register tile (12 accumulators).
 * There are no 16-bit masked loads in AVX2, so the last K % 8 elements are
 * summed in scalar code after the vector part.
 */
#include <immintrin.h>

#include "kernels/kernels_impl.h"

#define AI static inline __attribute__((always_inline))

#define DIRECT_MAX_N 2
#define TILE_X 3
#define GR 8 /* decode: W rows per tile */
/* Software prefetch distance along W rows in the decode path, bytes. */
#define PREFETCH_BYTES 1024
#define PANEL_ROWS 64
#define PANEL_K 512

/* The panel of widened W (PANEL_ROWS x PANEL_K floats, 128 KiB) is the
 * calling thread's scratch, from its pool. */
_Static_assert(PANEL_ROWS * PANEL_K <= KERN_PANEL_FLOATS, "panel fits the thread's scratch");

AI __m256 w_load(const void *row, int64_t k, dtype t) {
    if (t == DT_F32) return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (t == DT_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

AI float w_elem(const void *row, int64_t k, dtype t) {
    if (t == DT_F32) return ((const float *)row)[k];
    if (t == DT_BF16) return bf16_to_f32(((const uint16_t *)row)[k]);
    return f16_to_f32(((const uint16_t *)row)[k]);
}

AI const void *w_row(const mat *W, int64_t r) {
    return (const char *)W->data + (size_t)r * (size_t)W->cols * (size_t)dtype_size(W->type);
}

/* {sum(a0), sum(a1), sum(a2), sum(a3)} */
AI __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* ---------------------------------------------------------- direct path */

AI void direct_tile(const int RX, const dtype t, float *y, int64_t ys, const float *x, int64_t K,
                    const void *const w[4], int rw) {
    __m256 acc[DIRECT_MAX_N][4];
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) wv[j] = w_load(w[j], k, t);
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) {
            __m256 xv = _mm256_loadu_ps(x + i * K + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++) {
        float v[4];
        _mm_storeu_ps(v, hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
        for (int j = 0; j < rw; j++) {
            for (int64_t kk = k; kk < K; kk++) v[j] += x[i * K + kk] * w_elem(w[j], kk, t);
            y[i * ys + j] = v[j];
        }
    }
}

/* Prefetch `len` bytes of a W row PREFETCH_BYTES ahead of `byte`; past the
 * row's end, in the same row of the next tile (`tile` rows on). */
AI void w_prefetch(const void *row, int64_t byte, int len, int64_t row_bytes, int tile) {
    int64_t off = byte + PREFETCH_BYTES;
    if (off >= row_bytes) off += (tile - 1) * row_bytes;
    for (int o = 0; o < len; o += 64) _mm_prefetch((const char *)row + off + o, _MM_HINT_T0);
}

/* Decode (n = 1): GR rows at a time, one accumulator each (GR FMA chains,
 * GR memory streams). y[0..rw) is written; rows past rw are repeats. */
AI void gemv_tile(const dtype t, float *y, const float *x, int64_t K, const void *const w[GR],
                  int rw) {
    const int es = dtype_size(t);
    __m256 acc[GR];
#pragma GCC unroll 8
    for (int j = 0; j < GR; j++) acc[j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
#pragma GCC unroll 8
        for (int j = 0; j < GR; j++) w_prefetch(w[j], k * es, 16 * es, K * es, GR);
#pragma GCC unroll 2
        for (int u = 0; u < 16; u += 8) {
            __m256 xv = _mm256_loadu_ps(x + k + u);
#pragma GCC unroll 8
            for (int j = 0; j < GR; j++) acc[j] = _mm256_fmadd_ps(xv, w_load(w[j], k + u, t), acc[j]);
        }
    }
    for (; k + 8 <= K; k += 8) {
        __m256 xv = _mm256_loadu_ps(x + k);
#pragma GCC unroll 8
        for (int j = 0; j < GR; j++) acc[j] = _mm256_fmadd_ps(xv, w_load(w[j], k, t), acc[j]);
    }
    float v[GR];
    _mm_storeu_ps(v, hsum4(acc[0], acc[1], acc[2], acc[3]));
    _mm_storeu_ps(v + 4, hsum4(acc[4], acc[5], acc[6], acc[7]));
    for (int j = 0; j < rw; j++) {
        for (int64_t kk = k; kk < K; kk++) v[j] += x[kk] * w_elem(w[j], kk, t);
        y[j] = v[j];
    }
}

AI void direct_rows(const int RX, const dtype t, float *y, const float *x, const mat *W, int64_t r0,
                    int64_t r1) {
    if (RX == 1) {
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
        if (n == 1)                                                                            \
            direct_rows(1, T, y, x, W, r0, r1);                                                \
        else                                                                                   \
            direct_rows(2, T, y, x, W, r0, r1);                                                \
    }
DIRECT_FNS(DT_F32, f32)
DIRECT_FNS(DT_BF16, bf16)
DIRECT_FNS(DT_F16, f16)

/* ----------------------------------------------------------- panel path */

AI void panel_tile(const int RX, float *y, int64_t ys, const float *x, int64_t xs,
                   const float *const w[4], int64_t kl, int rw, int add) {
    __m256 acc[TILE_X][4];
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= kl; k += 8) {
        __m256 xv[TILE_X];
#pragma GCC unroll 4
        for (int i = 0; i < RX; i++) xv[i] = _mm256_loadu_ps(x + i * xs + k);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256 wv = _mm256_loadu_ps(w[j] + k);
#pragma GCC unroll 4
            for (int i = 0; i < RX; i++) acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < RX; i++) {
        float v[4];
        _mm_storeu_ps(v, hsum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
        for (int j = 0; j < rw; j++) {
            for (int64_t kk = k; kk < kl; kk++) v[j] += x[i * xs + kk] * w[j][kk];
            y[i * ys + j] = add ? y[i * ys + j] + v[j] : v[j];
        }
    }
}

static void panel_tile_any(int rx, float *y, int64_t ys, const float *x, int64_t xs,
                           const float *const w[4], int64_t kl, int rw, int add) {
    switch (rx) {
    case 1: panel_tile(1, y, ys, x, xs, w, kl, rw, add); break;
    case 2: panel_tile(2, y, ys, x, xs, w, kl, rw, add); break;
    default: panel_tile(3, y, ys, x, xs, w, kl, rw, add); break;
    }
}

AI void panel_fill(const dtype t, float *panel, const mat *W, int64_t r0, int nr, int64_t k0,
                   int64_t kl) {
    for (int r = 0; r < nr; r++) {
        const void *src = w_row(W, r0 + r);
        float *dst = panel + (size_t)r * PANEL_K;
        int64_t k = 0;
        for (; k + 8 <= kl; k += 8) _mm256_store_ps(dst + k, w_load(src, k0 + k, t));
        for (; k < kl; k++) dst[k] = w_elem(src, k0 + k, t);
    }
}

static void panel_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                       float *panel) {
    const int64_t K = W->cols, R = W->rows;
    const dtype t = W->type;
    for (int64_t k0 = 0; k0 < K || k0 == 0; k0 += PANEL_K) {
        int64_t kl = K - k0 < PANEL_K ? K - k0 : PANEL_K;
        int add = k0 > 0;
        for (int64_t m0 = r0; m0 < r1; m0 += PANEL_ROWS) {
            int nr = r1 - m0 < PANEL_ROWS ? (int)(r1 - m0) : PANEL_ROWS;
            const float *rows[PANEL_ROWS];
            if (t == DT_F32) {
                for (int j = 0; j < nr; j++) rows[j] = (const float *)w_row(W, m0 + j) + k0;
            } else {
                if (t == DT_BF16)
                    panel_fill(DT_BF16, panel, W, m0, nr, k0, kl);
                else
                    panel_fill(DT_F16, panel, W, m0, nr, k0, kl);
                for (int j = 0; j < nr; j++) rows[j] = panel + (size_t)j * PANEL_K;
            }
            /* x blocks of near-equal size (8 = 4 + 4, not 6 + 2): a thin
             * block reuses each W vector for fewer FMAs. */
            int64_t blocks = (n + TILE_X - 1) / TILE_X;
            for (int64_t i = 0, rx; i < n; i += rx, blocks--) {
                rx = (n - i + blocks - 1) / blocks;
                for (int j = 0; j < nr; j += 4) {
                    int rw = nr - j < 4 ? nr - j : 4;
                    const float *w[4];
                    for (int q = 0; q < 4; q++) w[q] = rows[j + (q < rw ? q : rw - 1)];
                    panel_tile_any((int)rx, y + i * R + m0 + j, R, x + i * K + k0, K, w, kl, rw, add);
                }
            }
        }
        if (K == 0) break;
    }
}

void avx2_matmul_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
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

float avx2_dot(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    __m256 s = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

void avx2_axpy(float *y, float a, const float *x, int n) {
    __m256 av = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
