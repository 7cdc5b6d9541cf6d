/*
 * kernels_ref.c - the slow, obvious reference for every kernel: plain f32
 * loops, sums in index order, weights widened with the scalar conversions of
 * base/dtype.h. The fast paths are tested against these, and ISA_SCALAR runs
 * them (threaded by kernels.c).
 *
 * Built with the ISO C default -ffp-contract=off, so a*b+c is two roundings,
 * as in PyTorch's unfused elementwise ops.
 */
#include <math.h>

#include "kernels/kernels_impl.h"

/* Element k of a row of W as f32. */
static inline float ref_elem(const void *row, dtype t, int64_t k) {
    switch (t) {
    case DT_F32: return ((const float *)row)[k];
    case DT_BF16: return bf16_to_f32(((const uint16_t *)row)[k]);
    case DT_F16: return f16_to_f32(((const uint16_t *)row)[k]);
    default: return 0.0f;
    }
}

static inline const void *ref_row(const mat *W, int64_t r) {
    return (const char *)W->data + (size_t)r * (size_t)W->cols * (size_t)dtype_size(W->type);
}

// y [n][W.rows], x [n][W.cols]; rows r0..r1 of y only.
void ref_matmul_rows(float *y, const float *x, const mat *W, int64_t n, int64_t r0, int64_t r1,
                     float *panel) {
    const int64_t K = W->cols, R = W->rows;
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * K;
        for (int64_t r = r0; r < r1; r++) {
            const void *wr = ref_row(W, r);
            float s = 0.0f;
            for (int64_t k = 0; k < K; k++) s += xi[k] * ref_elem(wr, W->type, k);
            y[i * R + r] = s;
        }
    }
}

void matmul_ref(float *y, const float *x, const mat *W, int64_t n) {
    ref_matmul_rows(y, x, W, n, 0, W->rows, NULL);
}

void ref_mat_row_f32(float *dst, const mat *W, int64_t row) {
    const void *wr = ref_row(W, row);
    for (int64_t k = 0; k < W->cols; k++) dst[k] = ref_elem(wr, W->type, k);
}

float ref_dot(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void ref_axpy(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* HF: variance = x.pow(2).mean(-1); x * rsqrt(variance + eps); weight * x.
 * The mean of squares is accumulated in double (closer to the exact value
 * than torch's float32 pairwise sum, never further), then rounded to f32. */
void ref_rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * (double)x[i];
    float var = n > 0 ? (float)(ss / n) : 0.0f;
    float r = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < n; i++) y[i] = (x[i] * r) * w[i];
}

/* exp(x - max) / sum; the sum in double. */
void ref_softmax(float *x, int n) {
    if (n <= 0) return;
    float m = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > m) m = x[i];
    double s = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

/* silu(g) = g / (1 + exp(-g)), as torch computes it. */
void ref_silu_mul(float *g, const float *u, int n) {
    for (int i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* HF NeoX rotation: x*cos + rotate_half(x)*sin, rotate_half = cat(-x2, x1). */
void ref_rope_apply(float *x, const float *cos_t, const float *sin_t, int head_dim) {
    int h = head_dim / 2;
    for (int i = 0; i < h; i++) {
        float x1 = x[i], x2 = x[i + h];
        x[i] = x1 * cos_t[i] - x2 * sin_t[i];
        x[i + h] = x2 * cos_t[i] + x1 * sin_t[i];
    }
}

/* HF: inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all
 * float32; freqs = inv_freq * pos in float32; cos/sin of that. */
void ref_rope_table(float *cos_t, float *sin_t, int pos, int head_dim, float theta) {
    int h = head_dim / 2;
    for (int i = 0; i < h; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        float inv_freq = 1.0f / powf(theta, e);
        float a = (float)pos * inv_freq;
        cos_t[i] = cosf(a);
        sin_t[i] = sinf(a);
    }
}
