/*
 * gemm_avx512.c - the AVX-512 micro-kernel and packing of gemm.h. The
 * kernel keeps a 12 x 32 tile of C in 24 zmm accumulators; per k: two B
 * vectors loaded, twelve A values broadcast, 24 FMAs, so the loop is bound
 * by the FMA units rather than by loads. A is read in place with its
 * columns contiguous (sm == 1: packed panels, or A^T) or its rows
 * contiguous (sk == 1: twelve row streams). B is packed here: rows copied
 * with masked vector moves, or (B^T, the forward's W and attention's K, V)
 * transposed 16 x 16 in registers. Called only when the kernel choice is
 * ISA_AVX512.
 */
#include <immintrin.h>

#include "kernels/gemm_impl.h"

#define MR GEMM_MR_AVX512
#define NR GEMM_NR_AVX512
#define AI static inline __attribute__((always_inline))

AI void store_tile(__m512 acc[MR][2], float *c, int64_t ldc, int mr, int nr, int add) {
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
        if (r >= mr) break;
        float *cr = c + r * ldc;
        if (!add) {
            _mm512_mask_storeu_ps(cr, m0, acc[r][0]);
            _mm512_mask_storeu_ps(cr + 16, m1, acc[r][1]);
        } else if (nr == NR) {
            _mm512_storeu_ps(cr, _mm512_add_ps(_mm512_loadu_ps(cr), acc[r][0]));
            _mm512_storeu_ps(cr + 16, _mm512_add_ps(_mm512_loadu_ps(cr + 16), acc[r][1]));
        } else {
            _mm512_mask_storeu_ps(cr, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), acc[r][0]));
            _mm512_mask_storeu_ps(cr + 16, m1,
                                  _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), acc[r][1]));
        }
    }
}

/* ROW: a(r,k) = a[r*sm + k]; otherwise a(r,k) = a[k*sk + r]. */
AI void ukernel(const int ROW, int64_t kc, const float *a, int64_t sm, int64_t sk,
                const float *bp, float *c, int64_t ldc, int mr, int nr, int add) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    const float *ar[MR];
    if (ROW)
        for (int r = 0; r < MR; r++) ar[r] = a + (r < mr ? r : mr - 1) * sm;
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
        for (int r = 0; r < MR; r++) {
            __m512 av = _mm512_set1_ps(ROW ? ar[r][k] : a[r]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
        if (!ROW) a += sk;
        bp += NR;
    }
    store_tile(acc, c, ldc, mr, nr, add);
}

void gemm_ukernel_avx512(int64_t kc, const float *a, int64_t sm, int64_t sk, const float *bp,
                         float *c, int64_t ldc, int mr, int nr, int add) {
    if (sm == 1)
        ukernel(0, kc, a, sm, sk, bp, c, ldc, mr, nr, add);
    else
        ukernel(1, kc, a, sm, sk, bp, c, ldc, mr, nr, add);
}

/* 16 x 16 transpose: dst[k*ds + j] = src[j*ss + k] for j < nj, k < nk
 * (j >= nj written as 0, k >= nk not written, source never read past
 * them). */
AI void transpose16(float *dst, int64_t ds, const float *src, int64_t ss, int nj, int nk) {
    __m512 r[16], t[16];
    __mmask16 km = nk >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nk) - 1);
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) r[j] = j < nj ? _mm512_maskz_loadu_ps(km, src + j * ss) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 16; j += 4) {
        __m512d a = _mm512_castps_pd(t[j]), b = _mm512_castps_pd(t[j + 1]);
        __m512d c = _mm512_castps_pd(t[j + 2]), d = _mm512_castps_pd(t[j + 3]);
        r[j] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        t[c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xdd);
        t[8 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xdd);
    }
    __m512 o[16];
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        o[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
        o[8 + c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
        o[4 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0x88);
        o[12 + c] = _mm512_shuffle_f32x4(t[4 + c], t[12 + c], 0xdd);
    }
#pragma GCC unroll 16
    for (int k = 0; k < 16; k++)
        if (k < nk) _mm512_storeu_ps(dst + k * ds, o[k]);
}

void gemm_pack_bt_avx512(float *dst, const float *b, int64_t bs_n, int64_t kc, int w) {
    for (int j0 = 0; j0 < NR; j0 += 16) {
        int nj = w - j0 < 16 ? (w - j0 > 0 ? w - j0 : 0) : 16;
        for (int64_t k0 = 0; k0 < kc; k0 += 16)
            transpose16(dst + k0 * NR + j0, NR, b + j0 * bs_n + k0, bs_n, nj,
                        kc - k0 < 16 ? (int)(kc - k0) : 16);
    }
}

void gemm_pack_b_avx512(float *dst, const float *b, int64_t bs_k, int64_t kc, int w) {
    __mmask16 m0 = w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (w > 0 ? w : 0)) - 1);
    __mmask16 m1 = w >= 32 ? (__mmask16)0xffff : w > 16 ? (__mmask16)((1u << (w - 16)) - 1) : 0;
    for (int64_t k = 0; k < kc; k++, dst += NR, b += bs_k) {
        _mm512_storeu_ps(dst, _mm512_maskz_loadu_ps(m0, b));
        _mm512_storeu_ps(dst + 16, _mm512_maskz_loadu_ps(m1, b + 16));
    }
}

void gemm_pack_a_avx512(float *dst, const float *a, int64_t as_k, int64_t kc, int mr) {
    __mmask16 m = (__mmask16)((1u << mr) - 1), all = (__mmask16)((1u << MR) - 1);
    for (int64_t k = 0; k < kc; k++, dst += MR, a += as_k)
        _mm512_mask_storeu_ps(dst, all, _mm512_maskz_loadu_ps(m, a));
}
