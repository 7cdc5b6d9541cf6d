/*
 * quant_iq.c - ggml's grid i-quants (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS,
 * IQ3_S, IQ1_S, IQ1_M): dequantization, bit for bit the format's
 * definition (each value is the product of the same f32 factors in the
 * same order as ggml's dequantize_row_*), and the scalar reference dot
 * product of a weight row with Q8_K activations (quant_impl.h: qx_k).
 *
 * The layouts are in quant.h's table, the grids in quant_iq_grids.c. Fields
 * wider than a byte are read with memcpy: IQ1_M keeps its f16 scale in
 * unaligned nibbles, and a row of any type may start on an odd address.
 *
 * The dot products keep every block's sum an integer: each sub-block
 * scale is an odd integer (2s + 1 or 1 + 2s) times a power of two common to
 * the block, so per block S = sum (2s+1) * (grid . signs . codes) is exact
 * and the result is sum_b (d_b * dx_b) * S_b times that power of two (1/8
 * for IQ2_*, 1/4 for IQ3_XXS, 1 for IQ3_S). IQ1_*'s +-1/8 shift of a group
 * enters as 8 * (grid . codes) +- (sum of the codes), so S_b stays integer
 * and the power is 1/8.
 */
#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_iq.h"

static inline uint16_t rd16(const void *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t rd32(const void *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float sgn(uint8_t signs, int j) { return signs >> j & 1 ? -1.f : 1.f; }

/* ------------------------------------------------------- dequantization */

void dequantize_row_iq2_xxs(const block_iq2_xxs *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = f16_to_f32(rd16(&x[i].d));
        const uint8_t *q = (const uint8_t *)x[i].qs;
        for (int ib = 0; ib < 8; ib++, q += 8) {
            const uint32_t ss = rd32(q + 4);
            const float db = d * (0.5f + (float)(ss >> 28)) * 0.25f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t *g = iq2xxs_grid[q[l]];
                const uint8_t s = iq_ksigns[ss >> 7 * l & 127];
                for (int j = 0; j < 8; j++) y[j] = db * (float)g[j] * sgn(s, j);
            }
        }
    }
}

void dequantize_row_iq2_xs(const block_iq2_xs *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = f16_to_f32(rd16(&x[i].d));
        for (int ib = 0; ib < 8; ib++) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0xf)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint16_t q = rd16(&x[i].qs[4 * ib + l]);
                const uint8_t *g = iq2xs_grid[q & 511];
                const uint8_t s = iq_ksigns[q >> 9];
                for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)g[j] * sgn(s, j);
            }
        }
    }
}

void dequantize_row_iq2_s(const block_iq2_s *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = f16_to_f32(rd16(&x[i].d));
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        for (int ib = 0; ib < 8; ib++, qs += 4, signs += 4) {
            const float db[2] = {d * (0.5f + (float)(x[i].scales[ib] & 0xf)) * 0.25f,
                                 d * (0.5f + (float)(x[i].scales[ib] >> 4)) * 0.25f};
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t *g = iq2s_grid[qs[l] | (x[i].qh[ib] << (8 - 2 * l) & 0x300)];
                for (int j = 0; j < 8; j++) y[j] = db[l / 2] * (float)g[j] * sgn(signs[l], j);
            }
        }
    }
}

void dequantize_row_iq3_xxs(const block_iq3_xxs *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = f16_to_f32(rd16(&x[i].d));
        const uint8_t *qs = x[i].qs, *ss8 = x[i].qs + QK_K / 4;
        for (int ib = 0; ib < 8; ib++, qs += 8) {
            const uint32_t ss = rd32(ss8 + 4 * ib);
            const float db = d * (0.5f + (float)(ss >> 28)) * 0.5f;
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t s = iq_ksigns[ss >> 7 * l & 127];
                const uint8_t *g1 = iq3xxs_grid[qs[2 * l]], *g2 = iq3xxs_grid[qs[2 * l + 1]];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)g1[j] * sgn(s, j);
                    y[j + 4] = db * (float)g2[j] * sgn(s, j + 4);
                }
            }
        }
    }
}

void dequantize_row_iq3_s(const block_iq3_s *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = f16_to_f32(rd16(&x[i].d));
        const uint8_t *qs = x[i].qs, *signs = x[i].signs;
        for (int ib = 0; ib < 8; ib++, qs += 8, signs += 4) {
            const int s = ib % 2 ? x[i].scales[ib / 2] >> 4 : x[i].scales[ib / 2] & 0xf;
            const float db = d * (float)(1 + 2 * s);
            const int qh = x[i].qh[ib];
            for (int l = 0; l < 4; l++, y += 8) {
                const uint8_t *g1 = iq3s_grid[qs[2 * l] | (qh << (8 - 2 * l) & 256)];
                const uint8_t *g2 = iq3s_grid[qs[2 * l + 1] | (qh << (7 - 2 * l) & 256)];
                for (int j = 0; j < 4; j++) {
                    y[j] = db * (float)g1[j] * sgn(signs[l], j);
                    y[j + 4] = db * (float)g2[j] * sgn(signs[l], j + 4);
                }
            }
        }
    }
}

#define IQ1_DELTA 0.125f

void dequantize_row_iq1_s(const block_iq1_s *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = f16_to_f32(rd16(&x[i].d));
        const uint8_t *qs = x[i].qs;
        for (int ib = 0; ib < 8; ib++, qs += 4) {
            const uint16_t qh = rd16(&x[i].qh[ib]);
            const float dl = d * (float)(2 * (qh >> 12 & 7) + 1);
            const float delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
            for (int l = 0; l < 4; l++, y += 8) {
                const int8_t *g = iq1s_grid[qs[l] | (qh >> 3 * l & 7) << 8];
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)g[j] + delta);
            }
        }
    }
}

/* IQ1_M's f16 d: the top nibble of each of its 4 u16 scale words. */
static inline float iq1m_d(const uint8_t *scales) {
    uint16_t h = 0;
    for (int w = 0; w < 4; w++) h |= (uint16_t)((rd16(scales + 2 * w) >> 12) << 4 * w);
    return f16_to_f32(h);
}

/* 3-bit scale of 16-value half h of sub-block ib. */
static inline int iq1m_scale(const uint8_t *scales, int ib, int h) {
    return rd16(scales + 2 * (ib / 2)) >> (6 * (ib % 2) + 3 * h) & 7;
}

void dequantize_row_iq1_m(const block_iq1_m *x, float *y, int64_t k) {
    for (int64_t i = 0; i < k / QK_K; i++) {
        const float d = iq1m_d(x[i].scales);
        const uint8_t *qs = x[i].qs, *qh = x[i].qh;
        for (int ib = 0; ib < 8; ib++, qs += 4, qh += 2) {
            for (int l = 0; l < 4; l++, y += 8) {
                const float dl = d * (float)(2 * iq1m_scale(x[i].scales, ib, l / 2) + 1);
                const int nib = qh[l / 2] >> 4 * (l % 2) & 0xf; /* 3 index bits, delta sign */
                const int8_t *g = iq1s_grid[qs[l] | (nib & 7) << 8];
                const float delta = nib & 8 ? -IQ1_DELTA : IQ1_DELTA;
                for (int j = 0; j < 8; j++) y[j] = dl * ((float)g[j] + delta);
            }
        }
    }
}

/* --------------------------------------------------------- dot products */

/* sum_j g[j] * sign_j * q[j] over n values, signs as bits. */
static inline int dot_signed(const uint8_t *g, uint8_t signs, const int8_t *q, int n, int sign0) {
    int s = 0;
    for (int j = 0; j < n; j++) s += (signs >> (sign0 + j) & 1 ? -g[j] : g[j]) * q[j];
    return s;
}

float ref_vec_dot_iq2_xxs(const void *w, const void *xq, int64_t cols) {
    const block_iq2_xxs *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const uint8_t *q = (const uint8_t *)x[i].qs;
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++, q += 8) {
            const uint32_t ss = rd32(q + 4);
            int s = 0;
            for (int l = 0; l < 4; l++, q8 += 8) s += dot_signed(iq2xxs_grid[q[l]], iq_ksigns[ss >> 7 * l & 127], q8, 8, 0);
            S += (int)(2 * (ss >> 28) + 1) * s;
        }
        sumf += (f16_to_f32(rd16(&x[i].d)) * y[i].d) * (float)S;
    }
    return 0.125f * sumf;
}

float ref_vec_dot_iq2_xs(const void *w, const void *xq, int64_t cols) {
    const block_iq2_xs *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++)
            for (int h = 0; h < 2; h++) {
                int s = 0;
                for (int l = 2 * h; l < 2 * h + 2; l++, q8 += 8) {
                    const uint16_t q = rd16(&x[i].qs[4 * ib + l]);
                    s += dot_signed(iq2xs_grid[q & 511], iq_ksigns[q >> 9], q8, 8, 0);
                }
                S += (2 * (x[i].scales[ib] >> 4 * h & 0xf) + 1) * s;
            }
        sumf += (f16_to_f32(rd16(&x[i].d)) * y[i].d) * (float)S;
    }
    return 0.125f * sumf;
}

float ref_vec_dot_iq2_s(const void *w, const void *xq, int64_t cols) {
    const block_iq2_s *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const uint8_t *qs = x[i].qs, *signs = x[i].qs + QK_K / 8;
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++, qs += 4, signs += 4)
            for (int h = 0; h < 2; h++) {
                int s = 0;
                for (int l = 2 * h; l < 2 * h + 2; l++, q8 += 8)
                    s += dot_signed(iq2s_grid[qs[l] | (x[i].qh[ib] << (8 - 2 * l) & 0x300)], signs[l], q8, 8, 0);
                S += (2 * (x[i].scales[ib] >> 4 * h & 0xf) + 1) * s;
            }
        sumf += (f16_to_f32(rd16(&x[i].d)) * y[i].d) * (float)S;
    }
    return 0.125f * sumf;
}

float ref_vec_dot_iq3_xxs(const void *w, const void *xq, int64_t cols) {
    const block_iq3_xxs *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const uint8_t *qs = x[i].qs, *ss8 = x[i].qs + QK_K / 4;
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++, qs += 8) {
            const uint32_t ss = rd32(ss8 + 4 * ib);
            int s = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                const uint8_t sg = iq_ksigns[ss >> 7 * l & 127];
                s += dot_signed(iq3xxs_grid[qs[2 * l]], sg, q8, 4, 0);
                s += dot_signed(iq3xxs_grid[qs[2 * l + 1]], sg, q8 + 4, 4, 4);
            }
            S += (int)(2 * (ss >> 28) + 1) * s;
        }
        sumf += (f16_to_f32(rd16(&x[i].d)) * y[i].d) * (float)S;
    }
    return 0.25f * sumf;
}

float ref_vec_dot_iq3_s(const void *w, const void *xq, int64_t cols) {
    const block_iq3_s *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const uint8_t *qs = x[i].qs, *signs = x[i].signs;
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++, qs += 8, signs += 4) {
            const int sc = ib % 2 ? x[i].scales[ib / 2] >> 4 : x[i].scales[ib / 2] & 0xf;
            const int qh = x[i].qh[ib];
            int s = 0;
            for (int l = 0; l < 4; l++, q8 += 8) {
                s += dot_signed(iq3s_grid[qs[2 * l] | (qh << (8 - 2 * l) & 256)], signs[l], q8, 4, 0);
                s += dot_signed(iq3s_grid[qs[2 * l + 1] | (qh << (7 - 2 * l) & 256)], signs[l], q8 + 4, 4, 4);
            }
            S += (1 + 2 * sc) * s;
        }
        sumf += (f16_to_f32(rd16(&x[i].d)) * y[i].d) * (float)S;
    }
    return sumf;
}

/* 8 * (g . q) + (sum of q) * (+1 or -1): eight times a group's dot with its
 * +-1/8 shift, an integer. */
static inline int iq1_group(const int8_t *g, const int8_t *q, int neg) {
    int s = 0, t = 0;
    for (int j = 0; j < 8; j++) s += g[j] * q[j], t += q[j];
    return 8 * s + (neg ? -t : t);
}

float ref_vec_dot_iq1_s(const void *w, const void *xq, int64_t cols) {
    const block_iq1_s *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const uint8_t *qs = x[i].qs;
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++, qs += 4) {
            const uint16_t qh = rd16(&x[i].qh[ib]);
            int s = 0;
            for (int l = 0; l < 4; l++, q8 += 8) s += iq1_group(iq1s_grid[qs[l] | (qh >> 3 * l & 7) << 8], q8, qh >> 15);
            S += (2 * (qh >> 12 & 7) + 1) * s;
        }
        sumf += (f16_to_f32(rd16(&x[i].d)) * y[i].d) * (float)S;
    }
    return 0.125f * sumf;
}

float ref_vec_dot_iq1_m(const void *w, const void *xq, int64_t cols) {
    const block_iq1_m *x = w;
    const qx_k *y = xq;
    float sumf = 0;
    for (int64_t i = 0; i < cols / QK_K; i++) {
        const uint8_t *qs = x[i].qs, *qh = x[i].qh;
        const int8_t *q8 = y[i].qs;
        int S = 0;
        for (int ib = 0; ib < 8; ib++, qs += 4, qh += 2)
            for (int l = 0; l < 4; l++, q8 += 8) {
                const int nib = qh[l / 2] >> 4 * (l % 2) & 0xf;
                S += (2 * iq1m_scale(x[i].scales, ib, l / 2) + 1) * iq1_group(iq1s_grid[qs[l] | (nib & 7) << 8], q8, nib & 8);
            }
        sumf += (iq1m_d(x[i].scales) * y[i].d) * (float)S;
    }
    return 0.125f * sumf;
}
