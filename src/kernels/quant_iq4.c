/*
 * quant_iq4.c - ggml's non-linear 4-bit types IQ4_NL (32-value blocks, one
 * f16 scale) and IQ4_XS (256-value blocks, a 6-bit scale per 32): each
 * 4-bit index selects one of 16 levels of kvalues_iq4nl. Dequantization,
 * the quantizers llama-quantize runs without an importance matrix (ggml's
 * quantize_iq4_nl and quantize_iq4_xs: 15 scales tried per 32 values;
 * ggml's quantize_row_iq4_nl_ref tries one and is not what llama-quantize
 * writes),
 * and the scalar reference dot products: IQ4_NL against the Q8_0-style
 * activations, IQ4_XS against Q8_K (quant_impl.h).
 *
 * The quantizer follows ggml-quants.c's quantize_row_iq4_nl_impl
 * expression for expression (the fixtures of tools/gen_quant_fixtures.py
 * check every bit). Compiled without FMA, as ggml's reference is.
 */
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

#define GROUP_MAX_EPS 1e-15f

static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* The index of the level nearest x (ties to the lower level), by bisection
 * over the sorted table. NaN lands on some index, never out of range. */
static inline int best_index_iq4(float x) {
    const int8_t *val = kvalues_iq4nl;
    if (x <= val[0]) return 0;
    if (x >= val[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

/* ------------------------------------------------------- dequantization */

void dequantize_row_iq4_nl(const block_iq4_nl *x, float *y, int64_t k) {
    const int64_t nb = k / 32;
    for (int64_t i = 0; i < nb; i++, y += 32) {
        const float d = f16_to_f32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j + 0] = d * kvalues_iq4nl[x[i].qs[j] & 0xf];
            y[j + 16] = d * kvalues_iq4nl[x[i].qs[j] >> 4];
        }
    }
}

/* The 6-bit scale of sub-block ib of an IQ4_XS block. */
static inline int iq4xs_scale(const block_iq4_xs *b, int ib) {
    return ((b->scales_l[ib / 2] >> 4 * (ib % 2)) & 0xf) | (((b->scales_h >> 2 * ib) & 3) << 4);
}

void dequantize_row_iq4_xs(const block_iq4_xs *x, float *y, int64_t k) {
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *qs = x[i].qs;
        const float d = f16_to_f32(x[i].d);
        for (int ib = 0; ib < QK_K / 32; ++ib, y += 32, qs += 16) {
            const float dl = d * (iq4xs_scale(&x[i], ib) - 32);
            for (int j = 0; j < 16; ++j) {
                y[j + 0] = dl * kvalues_iq4nl[qs[j] & 0xf];
                y[j + 16] = dl * kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* -------------------------------------------------------- quantization */

/* One super-block of n values in sub-blocks of 32 (n = 32: IQ4_NL, one
 * scale stored as f16; n = 256: IQ4_XS, 6-bit scales under an f16 d),
 * weights x^2, searching 2 * ntry + 1 scales per sub-block besides the
 * first guess. L holds the indices. */
static void iq4_quantize_block(int n, const float *x, uint16_t *dh, uint8_t *q4, uint16_t *scales_h,
                               uint8_t *scales_l, uint8_t *L, int ntry) {
    float scales[QK_K / 32];
    float weight[32];
    memset(q4, 0, (size_t)n / 2);
    dh[0] = f32_to_f16(0.f);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < n / 32; ++ib) {
        const float *xb = x + ib * 32;
        uint8_t *Lb = L + ib * 32;
        for (int j = 0; j < 32; ++j) weight[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (amax < GROUP_MAX_EPS) { /* Lb is set below (id = 0: the level nearest 0) */
            scales[ib] = 0;
            continue;
        }
        float d = ntry > 0 ? -max / kvalues_iq4nl[0] : max / kvalues_iq4nl[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            float al = id * xb[j];
            int l = best_index_iq4(al);
            Lb[j] = (uint8_t)l;
            float q = kvalues_iq4nl[l];
            float w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; ++itry) {
            id = (itry + kvalues_iq4nl[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                float al = id * xb[j];
                int l = best_index_iq4(al);
                float q = kvalues_iq4nl[l];
                float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        float abs_d = fabsf(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }
    if (n > 32) {
        *scales_h = 0;
        float d = -max_scale / 32;
        dh[0] = f32_to_f16(d);
        float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < n / 32; ++ib) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : l > 31 ? 31 : l;
            float dl = d * l;
            float idl = dl ? 1 / dl : 0.f;
            uint8_t *Lb = L + ib * 32;
            const float *xb = x + ib * 32;
            for (int j = 0; j < 32; ++j) Lb[j] = (uint8_t)best_index_iq4(idl * xb[j]);
            l += 32;
            uint8_t l_l = (uint8_t)(l & 0xf);
            uint8_t l_h = (uint8_t)(l >> 4);
            if (ib % 2 == 0)
                scales_l[ib / 2] = l_l;
            else
                scales_l[ib / 2] |= (uint8_t)(l_l << 4);
            *scales_h |= (uint16_t)(l_h << 2 * (ib % 8));
        }
    } else {
        dh[0] = f32_to_f16(scales[0]);
        if (ntry > 0) {
            float id = scales[0] ? 1 / scales[0] : 0;
            for (int j = 0; j < n; ++j) L[j] = (uint8_t)best_index_iq4(id * x[j]);
        }
    }
    for (int i = 0; i < n / 32; ++i)
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

void quantize_row_iq4_nl_ref(const float *x, block_iq4_nl *y, int64_t k) {
    uint8_t L[32];
    for (int64_t i = 0; i < k / 32; i++)
        iq4_quantize_block(32, x + 32 * i, &y[i].d, y[i].qs, NULL, NULL, L, 7);
}

void quantize_row_iq4_xs_ref(const float *x, block_iq4_xs *y, int64_t k) {
    uint8_t L[QK_K];
    for (int64_t i = 0; i < k / QK_K; i++)
        iq4_quantize_block(QK_K, x + QK_K * i, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l, L, 7);
}

/* --------------------------------------------------------- dot products */

float ref_vec_dot_iq4_nl(const void *w, const void *xq, int64_t cols) {
    const block_iq4_nl *x = w;
    const int64_t nb = cols / 32;
    const int8_t *q8 = qx32_qs(xq);
    const float *dv = qx32_dv(xq, nb);
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int s = 0;
        for (int j = 0; j < 16; j++) {
            s += kvalues_iq4nl[x[b].qs[j] & 0x0F] * q8[b * 32 + j];
            s += kvalues_iq4nl[x[b].qs[j] >> 4] * q8[b * 32 + j + 16];
        }
        sumf += (float)s * (f16_to_f32(x[b].d) * dv[b * 8]);
    }
    return sumf;
}

/* Per block (d * dx) * sum_ib (ls_ib - 32) * (levels_ib . x_ib). */
float ref_vec_dot_iq4_xs(const void *w, const void *xq, int64_t cols) {
    const block_iq4_xs *x = w;
    const qx_k *y = xq;
    const int64_t nb = cols / QK_K;
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        int S = 0;
        for (int ib = 0; ib < QK_K / 32; ib++) {
            const uint8_t *qs = x[i].qs + 16 * ib;
            const int8_t *q8 = y[i].qs + 32 * ib;
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += kvalues_iq4nl[qs[j] & 0x0F] * q8[j] + kvalues_iq4nl[qs[j] >> 4] * q8[j + 16];
            S += (iq4xs_scale(&x[i], ib) - 32) * s;
        }
        sumf += (f16_to_f32(x[i].d) * y[i].d) * (float)S;
    }
    return sumf;
}
