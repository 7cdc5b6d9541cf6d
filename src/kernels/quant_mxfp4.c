/*
 * quant_mxfp4.c - MXFP4 (OCP Microscaling FP4, the type gpt-oss ships its
 * expert weights in): the block format's definition (dequantize), llama.cpp's
 * reference quantizer, and the conversion from Hugging Face's layout.
 *
 * A block is 32 values: one E8M0 byte e (a power of two, 2^(e-127)) and 32
 * E2M1 codes (1 sign, 2 exponent, 1 mantissa bit: 0, 0.5, 1, 1.5, 2, 3, 4,
 * 6 and their negatives). ggml stores the same bits and computes with the
 * E2M1 values doubled (kvalues_mxfp4, integers) times half the scale
 * (mxfp4_scale_half), which is exact: every value is a small integer times
 * a power of two.
 *
 * The dequantizer and quantizer are ports of ggml-quants.c, expression for
 * expression (see quant_ref.c); this file is compiled without FMA, as
 * ggml's reference is. The one difference: ggml converts the exponent to
 * uint8_t without a range check, which is undefined for a block whose
 * largest magnitude is below 2^-125 (or inf); here it is clamped to 0..255.
 */
#include <math.h>

#include "kernels/quant.h"

const int8_t kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

void dequantize_row_mxfp4(const block_mxfp4 *x, float *y, int64_t k) {
    const int qk = QK_MXFP4;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        const float d = mxfp4_scale_half(x[i].e);
        for (int j = 0; j < qk / 2; ++j) {
            const int8_t x0 = kvalues_mxfp4[x[i].qs[j] & 0x0F];
            const int8_t x1 = kvalues_mxfp4[x[i].qs[j] >> 4];
            y[i * qk + j + 0] = x0 * d;
            y[i * qk + j + qk / 2] = x1 * d;
        }
    }
}

/* The code whose value (times e) is nearest x; the first of equals. */
static inline int best_index_mxfp4(float x, float e) {
    int best_index = 0;
    float best_err = fabsf(kvalues_mxfp4[0] * e - x);
    for (int i = 1; i < 16; i++) {
        float err = fabsf(kvalues_mxfp4[i] * e - x);
        if (err < best_err) {
            best_index = i;
            best_err = err;
        }
    }
    return best_index;
}

/* ggml's (uint8_t)(floorf(log2f(amax)) - 2 + 127), clamped (see above). */
static inline uint8_t mxfp4_exponent(float amax) {
    const float v = floorf(log2f(amax)) - 2 + 127;
    if (!(v >= 0.0f)) return 0;
    if (v > 255.0f) return 255;
    return (uint8_t)v;
}

void quantize_row_mxfp4_ref(const float *x, block_mxfp4 *y, int64_t k) {
    const int qk = QK_MXFP4;
    const int64_t nb = k / qk;
    for (int64_t i = 0; i < nb; i++) {
        float amax = 0.0f; /* absolute max */
        for (int j = 0; j < qk; j++) {
            const float v = x[i * qk + j];
            if (amax < fabsf(v)) amax = fabsf(v);
        }
        const uint8_t e = amax > 0.0f ? mxfp4_exponent(amax) : 0;
        const float d = mxfp4_scale_half(e);
        y[i].e = e;
        for (int j = 0; j < qk / 2; ++j) {
            const uint8_t x0 = (uint8_t)best_index_mxfp4(x[i * qk + 0 + j], d);
            const uint8_t x1 = (uint8_t)best_index_mxfp4(x[i * qk + qk / 2 + j], d);
            y[i].qs[j] = (uint8_t)(x0 | x1 << 4);
        }
    }
}

void mxfp4_from_hf(const uint8_t *blocks, const uint8_t *scales, block_mxfp4 *dst, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; b++) {
        const uint8_t *src = blocks + b * 16; /* element 2i: src[i] & 15, 2i+1: src[i] >> 4 */
        block_mxfp4 *o = &dst[b];
        o->e = scales[b];
        for (int j = 0; j < 16; j++) {
            const int lo = j, hi = j + 16; /* the elements of ggml's byte j */
            const int c_lo = src[lo / 2] >> (4 * (lo % 2)) & 0x0F;
            const int c_hi = src[hi / 2] >> (4 * (hi % 2)) & 0x0F;
            o->qs[j] = (uint8_t)(c_lo | c_hi << 4);
        }
    }
}

void mxfp4_to_hf(const block_mxfp4 *src, uint8_t *blocks, uint8_t *scales, int64_t n_blocks) {
    for (int64_t b = 0; b < n_blocks; b++) {
        if (scales) scales[b] = src[b].e;
        if (!blocks) continue;
        uint8_t *o = blocks + b * 16;
        for (int i = 0; i < 16; i++) { /* HF byte i: elements 2i (low), 2i+1 (high) */
            const int a = 2 * i, c = 2 * i + 1;
            const int ca = src[b].qs[a % 16] >> (4 * (a / 16)) & 0x0F;
            const int cc = src[b].qs[c % 16] >> (4 * (c / 16)) & 0x0F;
            o[i] = (uint8_t)(ca | cc << 4);
        }
    }
}
