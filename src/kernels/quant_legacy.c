/*
 * quant_legacy.c - ggml's other 32-value block types: Q4_1, Q5_0, Q5_1.
 * Their dequantization (the format's definition), llama.cpp's reference
 * quantizers, and the scalar reference dot products against the Q8_0-style
 * activations of quant_impl.h.
 *
 * As in quant_ref.c, the float arithmetic follows ggml-quants.c expression
 * for expression (the fixtures of tools/gen_quant_fixtures.py check every
 * bit); float -> integer conversions are clamped first, so NaN/inf input
 * gives a defined block instead of undefined behaviour. Compiled without
 * FMA, as ggml's reference is.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

/* (uint8_t)(int)v for v in [0, hi]: the truncation ggml's casts do on the
 * values its quantizers make; outside (only for NaN/inf input) clamped. */
static inline uint8_t trunc_code(float v, float hi) {
    if (!(v >= 0.0f)) v = 0.0f;
    if (v > hi) v = hi;
    return (uint8_t)(int)v;
}

static inline uint32_t qh_of(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* The five-bit code of element j (0..31) of a Q5_0/Q5_1 block. */
static inline int q5_code(const uint8_t *qs, uint32_t qh, int j) {
    int lo = j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
    return lo | (int)((qh >> j) & 1) << 4;
}

/* ------------------------------------------------------------------ Q4_1 */

void dequantize_row_q4_1(const block_q4_1 *x, float *y, int64_t k) {
    const int qk = 32;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(x[i].d);
        const float m = f16_to_f32(x[i].m);
        for (int j = 0; j < qk / 2; ++j) {
            const int x0 = x[i].qs[j] & 0x0F;
            const int x1 = x[i].qs[j] >> 4;
            y[i * qk + j + 0] = x0 * d + m;
            y[i * qk + j + qk / 2] = x1 * d + m;
        }
    }
}

void quantize_row_q4_1_ref(const float *x, block_q4_1 *y, int64_t k) {
    const int qk = 32;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 4) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(min);
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = (x[i * qk + 0 + j] - min) * id;
            const float x1 = (x[i * qk + qk / 2 + j] - min) * id;
            const uint8_t xi0 = trunc_code(x0 + 0.5f, 15.0f); /* MIN(15, (int8_t)v) */
            const uint8_t xi1 = trunc_code(x1 + 0.5f, 15.0f);
            y[i].qs[j] = xi0;
            y[i].qs[j] |= xi1 << 4;
        }
    }
}

/* Per block (d * dx) * sum(q x) + (m * dx) * sum(x), q the unsigned codes. */
float ref_vec_dot_q4_1(const void *w, const void *xq, int64_t cols) {
    const block_q4_1 *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0, sx = 0;
        for (int j = 0; j < 16; j++) {
            s += (x[b].qs[j] & 0x0F) * q8[b * 32 + j] + (x[b].qs[j] >> 4) * q8[b * 32 + j + 16];
            sx += q8[b * 32 + j] + q8[b * 32 + j + 16];
        }
        sumf += (float)s * (f16_to_f32(x[b].d) * dv[b * 8]) + (float)sx * (f16_to_f32(x[b].m) * dv[b * 8]);
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q5_0 */

void dequantize_row_q5_0(const block_q5_0 *x, float *y, int64_t k) {
    const int qk = 32;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(x[i].d);
        const uint32_t qh = qh_of(x[i].qh);
        for (int j = 0; j < qk / 2; ++j) {
            const int32_t x0 = q5_code(x[i].qs, qh, j) - 16;
            const int32_t x1 = q5_code(x[i].qs, qh, j + 16) - 16;
            y[i * qk + j + 0] = x0 * d;
            y[i * qk + j + qk / 2] = x1 * d;
        }
    }
}

void quantize_row_q5_0_ref(const float *x, block_q5_0 *y, int64_t k) {
    const int qk = 32;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f; /* absolute max */
        float max = 0.0f;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        uint32_t qh = 0;
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = x[i * qk + 0 + j] * id;
            const float x1 = x[i * qk + qk / 2 + j] * id;
            const uint8_t xi0 = trunc_code(x0 + 16.5f, 31.0f); /* MIN(31, (int8_t)v) */
            const uint8_t xi1 = trunc_code(x1 + 16.5f, 31.0f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + qk / 2);
        }
        for (int b = 0; b < 4; b++) y[i].qh[b] = (uint8_t)(qh >> 8 * b);
    }
}

float ref_vec_dot_q5_0(const void *w, const void *xq, int64_t cols) {
    const block_q5_0 *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint32_t qh = qh_of(x[b].qh);
        int s = 0;
        for (int j = 0; j < 32; j++) s += (q5_code(x[b].qs, qh, j) - 16) * q8[b * 32 + j];
        sumf += (float)s * (f16_to_f32(x[b].d) * dv[b * 8]);
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q5_1 */

void dequantize_row_q5_1(const block_q5_1 *x, float *y, int64_t k) {
    const int qk = 32;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(x[i].d);
        const float m = f16_to_f32(x[i].m);
        const uint32_t qh = qh_of(x[i].qh);
        for (int j = 0; j < qk / 2; ++j) {
            const int x0 = q5_code(x[i].qs, qh, j);
            const int x1 = q5_code(x[i].qs, qh, j + 16);
            y[i * qk + j + 0] = x0 * d + m;
            y[i * qk + j + qk / 2] = x1 * d + m;
        }
    }
}

void quantize_row_q5_1_ref(const float *x, block_q5_1 *y, int64_t k) {
    const int qk = 32;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (v < min) min = v;
            if (v > max) max = v;
        }
        const float d = (max - min) / ((1 << 5) - 1);
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f32_to_f16(d);
        y[i].m = f32_to_f16(min);
        uint32_t qh = 0;
        for (int j = 0; j < qk / 2; ++j) {
            const float x0 = (x[i * qk + 0 + j] - min) * id;
            const float x1 = (x[i * qk + qk / 2 + j] - min) * id;
            const uint8_t xi0 = trunc_code(x0 + 0.5f, 255.0f); /* (uint8_t)v */
            const uint8_t xi1 = trunc_code(x1 + 0.5f, 255.0f);
            y[i].qs[j] = (uint8_t)((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
            qh |= ((xi0 & 0x10u) >> 4) << (j + 0);
            qh |= ((xi1 & 0x10u) >> 4) << (j + qk / 2);
        }
        for (int b = 0; b < 4; b++) y[i].qh[b] = (uint8_t)(qh >> 8 * b);
    }
}

float ref_vec_dot_q5_1(const void *w, const void *xq, int64_t cols) {
    const block_q5_1 *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint32_t qh = qh_of(x[b].qh);
        int s = 0, sx = 0;
        for (int j = 0; j < 32; j++) {
            s += q5_code(x[b].qs, qh, j) * q8[b * 32 + j];
            sx += q8[b * 32 + j];
        }
        sumf += (float)s * (f16_to_f32(x[b].d) * dv[b * 8]) + (float)sx * (f16_to_f32(x[b].m) * dv[b * 8]);
    }
    return sumf;
}
