/*
 * kernels_impl.h - what each ISA file (kernels_ref.c, kernels_avx2.c,
 * kernels_avx512.c) provides to the dispatcher in kernels.c. Internal to
 * src/kernels/; the public contract is kernels.h.
 */
#ifndef MOE_KERNELS_IMPL_H
#define MOE_KERNELS_IMPL_H

#include <stdint.h>
#include "kernels/kernels.h"

/* y[i][r] = sum_k x[i][k] * W[r][k] for i < n and r0 <= r < r1. y keeps its
 * full row stride W->rows. Single-threaded; the dispatcher splits rows.
 * panel: the calling thread's scratch of KERN_PANEL_FLOATS floats (64-byte
 * aligned), where the fast paths widen blocks of W. */
#define KERN_PANEL_FLOATS (64 * 1024)
typedef void (*matmul_rows_fn)(float *y, const float *x, const mat *W, int64_t n, int64_t r0,
                               int64_t r1, float *panel);
typedef float (*dot_fn)(const float *a, const float *b, int n);
typedef void (*axpy_fn)(float *y, float a, const float *x, int n);

typedef struct kern_table {
    matmul_rows_fn matmul_rows;
    dot_fn dot;
    axpy_fn axpy;
} kern_table;

/* Reference (kernels_ref.c): plain loops, summation in index order. */
void ref_matmul_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                        float *panel);
float ref_dot(const float *a, const float *b, int n);
void ref_axpy(float *y, float a, const float *x, int n);
void ref_mat_row_f32(float *dst, const mat *W, int64_t row);
void ref_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* kernels.c's rmsnorm on any CPU: eight double partial sums (i mod 8). */
void scalar_rmsnorm8(float *y, const float *x, const float *w, int n, float eps);
void ref_softmax(float *x, int n);
void ref_silu_mul(float *g, const float *u, int n);
void ref_rope_apply(float *x, const float *cos_t, const float *sin_t, int head_dim);
void ref_rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta);

/* AVX2 (kernels_avx2.c) and AVX-512 (kernels_avx512.c); call only when the
 * CPU has the ISA. */
void avx2_matmul_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                        float *panel);
float avx2_dot(const float *a, const float *b, int n);
void avx2_axpy(float *y, float a, const float *x, int n);
void avx512_matmul_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                        float *panel);
float avx512_dot(const float *a, const float *b, int n);
void avx512_axpy(float *y, float a, const float *x, int n);
void avx512_rmsnorm(float *y, const float *x, const float *w, int n, float eps);

#endif
