/*
 * quant_k23.c - the 2- and 3-bit K-quants Q2_K and Q3_K: dequantization
 * (the format's definition), llama.cpp's reference quantizers, and the
 * scalar reference dot products against the Q8_K activations of
 * quant_impl.h.
 *
 * Both have 16 sub-blocks of 16 values, so a sub-block's activation sum is
 * one of qx_k's bsums: Q2_K's mins and Q3_K's -4 offset of codes without
 * their high bit go through them.
 *
 * As in quant_ref.c, the quantizers follow ggml-quants.c expression for
 * expression (the fixtures of tools/gen_quant_fixtures.py check every bit);
 * compiled without FMA, as ggml's reference is.
 */
#include <math.h>
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#define GROUP_MAX_EPS 1e-15f
#define KMAX(a, b) ((a) > (b) ? (a) : (b))
#define KMIN(a, b) ((a) < (b) ? (a) : (b))

static inline int nearest_int(float fval) {
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/* The 2-bit field of element e (0..255) of a Q2_K/Q3_K block's qs:
 * element 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]. */
static inline int k23_low2(const uint8_t *qs, int e) {
    return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
}

/* Packs 256 codes of 2 bits (L[e] < 4) into qs. */
static void k23_pack2(const uint8_t *L, uint8_t *qs) {
    for (int j = 0; j < QK_K; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

/* ------------------------------------------------------------------ Q2_K */

void dequantize_row_q2_K(const block_q2_K *x, float *y, int64_t k) {
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d = f16_to_f32(x[i].d);
        const float min = f16_to_f32(x[i].dmin);
        for (int e = 0; e < QK_K; e++) {
            const uint8_t sc = x[i].scales[e / 16];
            const float dl = d * (sc & 0xF), ml = min * (sc >> 4);
            y[i * QK_K + e] = dl * k23_low2(x[i].qs, e) - ml;
        }
    }
}

void quantize_row_q2_K_ref(const float *x, block_q2_K *y, int64_t k) {
    const int64_t nb = k / QK_K;
    uint8_t L[QK_K];
    uint8_t Laux[16];
    float weights[16];
    float mins[QK_K / 16];
    float scales[QK_K / 16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0; /* as we are deducting the min, scales are always positive */
        float max_min = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            float scale = scales[j];
            if (scale > max_scale) max_scale = scale;
            float min = mins[j];
            if (min > max_min) max_min = min;
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                int l = nearest_int(iscale * scales[j]);
                y[i].scales[j] = (uint8_t)l;
            }
            y[i].d = f32_to_f16(max_scale / q4scale);
        } else {
            for (int j = 0; j < QK_K / 16; ++j) y[i].scales[j] = 0;
            y[i].d = f32_to_f16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < QK_K / 16; ++j) {
                int l = nearest_int(iscale * mins[j]);
                y[i].scales[j] |= (uint8_t)(l << 4);
            }
            y[i].dmin = f32_to_f16(max_min / q4scale);
        } else {
            y[i].dmin = f32_to_f16(0.f);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = f16_to_f32(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d) continue;
            const float dm = f16_to_f32(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int((x[16 * j + ii] + dm) / d);
                L[16 * j + ii] = (uint8_t)KMAX(0, KMIN(3, l));
            }
        }
        k23_pack2(L, y[i].qs);
    }
}

/* Per block (d * dx) * sum_j sc_j (q_j . x_j) - (dmin * dx) * sum_j m_j sum(x_j). */
float ref_vec_dot_q2_K(const void *w, const void *xq, int64_t cols) {
    const block_q2_K *x = w;
    const qx_k *y = xq;
    const int64_t nb = cols / QK_K;
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        int S = 0, M = 0;
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += k23_low2(x[i].qs, 16 * j + l) * y[i].qs[16 * j + l];
            S += (x[i].scales[j] & 0xF) * s;
            M += (x[i].scales[j] >> 4) * y[i].bsums[j];
        }
        sumf += (f16_to_f32(x[i].d) * y[i].d) * (float)S - (f16_to_f32(x[i].dmin) * y[i].d) * (float)M;
    }
    return sumf;
}

/* ------------------------------------------------------------------ Q3_K */

/* The 6-bit scale (0..63, stored + 32) of sub-block j of a Q3_K block: low
 * 4 bits in a nibble of scales[j % 8], high 2 in scales[8 + j % 4]. */
static inline int q3_scale(const uint8_t *scales, int j) {
    int lo = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
    return lo | ((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4;
}

/* The signed 3-bit code (-4..3) of element e: the low 2 bits, less 4 when
 * its bit in hmask (bit 4h + s of hmask[l], as k23_low2) is clear. */
static inline int q3_code(const block_q3_K *b, int e) {
    int hbit = (b->hmask[e % 32] >> (e / 32)) & 1;
    return k23_low2(b->qs, e) - (hbit ? 0 : 4);
}

void dequantize_row_q3_K(const block_q3_K *x, float *y, int64_t k) {
    const int64_t nb = k / QK_K;
    for (int64_t i = 0; i < nb; i++) {
        const float d_all = f16_to_f32(x[i].d);
        for (int e = 0; e < QK_K; e++) {
            const float dl = d_all * (q3_scale(x[i].scales, e / 16) - 32);
            y[i * QK_K + e] = dl * q3_code(&x[i], e);
        }
    }
}

static float make_q3_quants(int n, int nmax, const float *x, int8_t *L, int do_rmse) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) { /* all zero */
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    if (do_rmse) {
        float sumlx = 0;
        float suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = KMAX(-nmax, KMIN(nmax - 1, l));
            L[i] = (int8_t)l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; ++itry) {
            int n_changed = 0;
            for (int i = 0; i < n; ++i) {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0) {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = KMAX(-nmax, KMIN(nmax - 1, new_l));
                    if (new_l != L[i]) {
                        slx += w * x[i] * new_l;
                        sl2 += w * new_l * new_l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (int8_t)new_l;
                            sumlx = slx;
                            suml2 = sl2;
                            ++n_changed;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
        return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
    }
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = KMAX(-nmax, KMIN(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
    }
    return 1 / iscale;
}

void quantize_row_q3_K_ref(const float *x, block_q3_K *y, int64_t k) {
    const int64_t nb = k / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; i++, x += QK_K) {
        float max_scale = 0;
        float amax = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, 1);
            float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < QK_K / 16; ++j) {
                /* ggml stores nearest_int into an int8_t, then clamps: the value is within [-32, 32] */
                int l = (int8_t)KMAX(-128, KMIN(127, nearest_int(iscale * scales[j])));
                l = KMAX(-32, KMIN(31, l)) + 32;
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = f32_to_f16(1 / iscale);
        } else {
            y[i].d = f32_to_f16(0.f);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            const int sc = q3_scale(y[i].scales, j) - 32;
            float d = f16_to_f32(y[i].d) * sc;
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = KMAX(-4, KMIN(3, l));
                L[16 * j + ii] = (int8_t)(l + 4);
            }
        }
        memset(y[i].hmask, 0, QK_K / 8);
        uint8_t U[QK_K];
        for (int e = 0; e < QK_K; ++e) { /* the high bit of element e: bit e / 32 of hmask[e % 32] */
            int l = L[e];
            if (l > 3) {
                y[i].hmask[e % 32] |= (uint8_t)(1 << (e / 32));
                l -= 4;
            }
            U[e] = (uint8_t)l;
        }
        k23_pack2(U, y[i].qs);
    }
}

/* Per block (d * dx) * sum_j (sc_j - 32) (q_j . x_j), q the signed codes. */
float ref_vec_dot_q3_K(const void *w, const void *xq, int64_t cols) {
    const block_q3_K *x = w;
    const qx_k *y = xq;
    const int64_t nb = cols / QK_K;
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        int S = 0;
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += q3_code(&x[i], 16 * j + l) * y[i].qs[16 * j + l];
            S += (q3_scale(x[i].scales, j) - 32) * s;
        }
        sumf += (f16_to_f32(x[i].d) * y[i].d) * (float)S;
    }
    return sumf;
}
