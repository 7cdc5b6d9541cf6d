/*
 * quant_dot_ref.c - the scalar reference of the quantized matmul:
 * activation quantization (ggml's Q8_0 and Q8_K reference quantizers, into
 * the layout of quant_impl.h) and the dot product of each weight type with
 * it, in plain integer loops.
 *
 * What every path must reproduce exactly: the activation bytes, and each
 * block's integer sum. How the per-block integer sums are scaled and added
 * in f32 is fixed here (one f32 sum in block order); the fast paths keep
 * several partial sums, so they agree to rounding, not bit for bit.
 */
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

/* ------------------------------------------------- activation quantizers */

static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* roundf(v) into int8 (v is within [-127, 127] for finite x). */
static inline int8_t round_i8(float v) {
    float r = roundf(v);
    if (!(r >= -128.0f)) r = r != r ? 0.0f : -128.0f;
    if (r > 127.0f) r = 127.0f;
    return (int8_t)(int)r;
}

/* A block of activations with an inf or NaN is quantized as codes 0 and
 * scale NaN (on every ISA), so every output it feeds is NaN: converting NaN
 * or an overflowing value to an integer code would be undefined. */
static int all_finite(const float *x, int n) {
    for (int j = 0; j < n; j++)
        if (!isfinite(x[j])) return 0;
    return 1;
}

/* One 32-block as Q8_0: codes q, the scale rounded to f16 (widened);
 * returns the sum of the codes. */
static int ref_q8_block(const float *xb, int8_t *q, float *ds) {
    if (!all_finite(xb, 32)) { /* see all_finite */
        memset(q, 0, 32);
        *ds = NAN;
        return 0;
    }
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(xb[j]) ? amax : fabsf(xb[j]);
    const float d = amax / 127;
    const float id = amax >= QACT_TINY ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        q[j] = round_i8(xb[j] * id);
        sum += q[j];
    }
    *ds = f16_to_f32(f32_to_f16(d));
    return sum;
}

static void ref_qact_row32(void *xq, const float *x, int type, int64_t cols) {
    const int64_t nb = cols / 32;
    int8_t *qs = (int8_t *)xq;
    float *dv = (float *)qx32_dv(xq, nb);
    int32_t *cv = (int32_t *)qx32_cv(xq, nb);
    const int c = qx32_bias(type);
    for (int64_t b = 0; b < nb; b++) {
        float ds;
        const int sum = ref_q8_block(x + b * 32, qs + b * 32, &ds);
        for (int l = 0; l < 8; l++) {
            dv[b * 8 + l] = ds;
            cv[b * 8 + l] = l == 0 ? -c * sum : 0;
        }
    }
}

void ref_qact_tile(void *tile, const float *x, int64_t nx, int64_t cols) {
    const int64_t nb = cols / 32;
    memset(tile, 0, qtile_stride(cols));
    for (int64_t j = 0; j < nx; j++)
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *blk = (uint8_t *)tile + b * QT_TILE_BLOCK;
            int8_t q[32];
            float ds;
            ref_q8_block(x + j * cols + b * 32, q, &ds);
            for (int e = 0; e < 32; e++) blk[(e / 4) * 64 + j * 4 + e % 4] = (uint8_t)q[e];
            memcpy(blk + 512 + j * 4, &ds, 4);
        }
}

static void ref_qact_rowk(void *xq, const float *x, int64_t cols) {
    qx_k *y = (qx_k *)xq;
    const int64_t nb = cols / QK_K;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        memset(&y[i], 0, sizeof y[i]);
        if (!all_finite(x, QK_K)) { /* see all_finite */
            y[i].d = NAN;
            continue;
        }
        float max = 0;
        float amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (!(amax >= QACT_TINY)) continue; /* d = 0, codes and sums 0 */
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) {
            int v = nearest_int(iscale * x[j]);
            v = v > 127 ? 127 : v < -128 ? -128 : v;
            y[i].qs[j] = (int8_t)v;
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1 / iscale;
    }
}

void ref_qact_row(void *xq, const float *x, int type, int64_t cols) {
    if (qt_is32(type))
        ref_qact_row32(xq, x, type, cols);
    else
        ref_qact_rowk(xq, x, cols);
    if (qx_k_ncv(type)) qx_k_cv_row(xq, type, cols / QK_K);
}

/* ---------------------------------------------------------- dot products */

float ref_vec_dot_q4_0(const void *w, const void *xq, int64_t cols) {
    const block_q4_0 *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += ((x[b].qs[j] & 0x0F) - 8) * q8[b * 32 + j];
            s += ((x[b].qs[j] >> 4) - 8) * q8[b * 32 + j + 16];
        }
        sumf += (float)s * (f16_to_f32(x[b].d) * dv[b * 8]);
    }
    return sumf;
}

float ref_vec_dot_q8_0(const void *w, const void *xq, int64_t cols) {
    const block_q8_0 *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 32; j++) s += x[b].qs[j] * q8[b * 32 + j];
        sumf += (float)s * (f16_to_f32(x[b].d) * dv[b * 8]);
    }
    return sumf;
}

/* Doubled E2M1 values times half the E8M0 scale, as ggml's
 * ggml_vec_dot_mxfp4_q8_0 (the integer sum is exact; so is the product of
 * the two scales unless it leaves f32's normal range). */
float ref_vec_dot_mxfp4(const void *w, const void *xq, int64_t cols) {
    const block_mxfp4 *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += kvalues_mxfp4[x[b].qs[j] & 0x0F] * q8[b * 32 + j];
            s += kvalues_mxfp4[x[b].qs[j] >> 4] * q8[b * 32 + j + 16];
        }
        sumf += (float)s * (mxfp4_scale_half(x[b].e) * dv[b * 8]);
    }
    return sumf;
}

/* The 8 6-bit scales and mins of a Q4_K/Q5_K block. */
static void k4_scales(const uint8_t *q, int sc[8], int m[8]) {
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
}

/* Q4_K and Q5_K (qh == NULL for Q4_K): per block
 * d*dx * sum_j sc_j (q_j . x_j) - dmin*dx * sum_j m_j sum(x_j). */
static float vec_dot_k45(const uint8_t *blk, size_t bytes, int has_qh, const void *xq, int64_t cols) {
    const qx_k *y = xq;
    const int64_t nb = cols / QK_K;
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++, blk += bytes) {
        const uint16_t d16 = (uint16_t)(blk[0] | blk[1] << 8), m16 = (uint16_t)(blk[2] | blk[3] << 8);
        const uint8_t *scales = blk + 4;
        const uint8_t *qh = has_qh ? blk + 16 : NULL;
        const uint8_t *qs = blk + 16 + (has_qh ? 32 : 0);
        int sc[8], m[8];
        k4_scales(scales, sc, m);
        int S = 0, M = 0;
        for (int j = 0; j < 8; j++) {
            int s = 0;
            for (int l = 0; l < 32; l++) {
                int q = j % 2 == 0 ? qs[32 * (j / 2) + l] & 0xF : qs[32 * (j / 2) + l] >> 4;
                if (qh && (qh[l] >> j & 1)) q += 16;
                s += q * y[i].qs[32 * j + l];
            }
            S += sc[j] * s;
            M += m[j] * (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]);
        }
        sumf += (f16_to_f32(d16) * y[i].d) * (float)S - (f16_to_f32(m16) * y[i].d) * (float)M;
    }
    return sumf;
}

float ref_vec_dot_q4_K(const void *w, const void *xq, int64_t cols) {
    return vec_dot_k45(w, sizeof(block_q4_K), 0, xq, cols);
}

float ref_vec_dot_q5_K(const void *w, const void *xq, int64_t cols) {
    return vec_dot_k45(w, sizeof(block_q5_K), 1, xq, cols);
}

float ref_vec_dot_q6_K(const void *w, const void *xq, int64_t cols) {
    const block_q6_K *x = w;
    const qx_k *y = xq;
    const int64_t nb = cols / QK_K;
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        int S = 0;
        for (int j = 0; j < 16; j++) { /* 16 values each */
            int s = 0;
            for (int l = 0; l < 16; l++) {
                int e = 16 * j + l;            /* element in the block */
                int h = e / 128, r = e % 128;  /* half, position in it */
                int quarter = r / 32, p = r % 32;
                const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
                /* quarter 0: ql[p] low, 1: ql[p+32] low, 2: ql[p] high, 3: ql[p+32] high */
                int lowbits = quarter == 0 ? ql[p] & 0xF
                            : quarter == 1 ? ql[p + 32] & 0xF
                            : quarter == 2 ? ql[p] >> 4
                                           : ql[p + 32] >> 4;
                int highbits = (qh[p] >> (2 * quarter)) & 3;
                s += ((lowbits | highbits << 4) - 32) * y[i].qs[e];
            }
            S += x[i].scales[j] * s;
        }
        sumf += (f16_to_f32(x[i].d) * y[i].d) * (float)S;
    }
    return sumf;
}

/* --------------------------------------------------------- row kernel */

void ref_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) {
    qvec_dot_fn dot = quant_traits(j->type)->vec_dot;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < j->n; i++)
            j->y[i * j->rows + r] = dot(j->W + (size_t)r * j->w_row, j->xq + (size_t)i * j->xq_row, j->cols);
}
