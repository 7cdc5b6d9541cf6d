/*
 * dtype.h - element types of stored tensors and scalar conversions.
 * The conversions here are the reference definitions: every fast path that
 * widens BF16/F16 must agree with them bit for bit.
 */
#ifndef MOE_BASE_DTYPE_H
#define MOE_BASE_DTYPE_H

#include <stdint.h>
#include <string.h>

typedef enum {
    DT_F32 = 0,
    DT_F16,
    DT_BF16,
    DT_COUNT, /* float types end here: loops over DT_COUNT see only F32/F16/BF16 */
    /* Block-quantized types (ggml / GGUF layouts, src/kernels/quant.h): a
     * row of cols values is cols / block_elems blocks of block_bytes. They
     * have no per-element size; use dtype_row_bytes(). */
    DT_Q4_0 = 16,
    DT_Q8_0,
    DT_Q4_K,
    DT_Q5_K,
    DT_Q6_K,
} dtype;

static inline int dtype_is_quant(dtype t) { return t >= DT_Q4_0 && t <= DT_Q6_K; }

/* dtype <-> ggml / GGUF type id (QT_* of kernels/quant.h, gguf_type); -1 /
 * DT_COUNT when there is none. */
static inline int dtype_to_ggml(dtype t) {
    switch (t) {
    case DT_F32: return 0;
    case DT_F16: return 1;
    case DT_BF16: return 30;
    case DT_Q4_0: return 2;
    case DT_Q8_0: return 8;
    case DT_Q4_K: return 12;
    case DT_Q5_K: return 13;
    case DT_Q6_K: return 14;
    default: return -1;
    }
}
static inline dtype dtype_from_ggml(int g) {
    switch (g) {
    case 0: return DT_F32;
    case 1: return DT_F16;
    case 30: return DT_BF16;
    case 2: return DT_Q4_0;
    case 8: return DT_Q8_0;
    case 12: return DT_Q4_K;
    case 13: return DT_Q5_K;
    case 14: return DT_Q6_K;
    default: return DT_COUNT;
    }
}

/* Values per block and bytes per block (1 and the element size for float
 * types); 0 for unknown types. */
static inline int dtype_block_elems(dtype t) {
    switch (t) {
    case DT_F32: case DT_F16: case DT_BF16: return 1;
    case DT_Q4_0: case DT_Q8_0: return 32;
    case DT_Q4_K: case DT_Q5_K: case DT_Q6_K: return 256;
    default: return 0;
    }
}
static inline int dtype_block_bytes(dtype t) {
    switch (t) {
    case DT_F32: return 4;
    case DT_F16: case DT_BF16: return 2;
    case DT_Q4_0: return 18;
    case DT_Q8_0: return 34;
    case DT_Q4_K: return 144;
    case DT_Q5_K: return 176;
    case DT_Q6_K: return 210;
    default: return 0;
    }
}

static inline const char *dtype_name(dtype t) {
    switch (t) {
    case DT_F32: return "f32";
    case DT_F16: return "f16";
    case DT_BF16: return "bf16";
    case DT_Q4_0: return "q4_0";
    case DT_Q8_0: return "q8_0";
    case DT_Q4_K: return "q4_K";
    case DT_Q5_K: return "q5_K";
    case DT_Q6_K: return "q6_K";
    default: return "?";
    }
}

/* Bytes per element of a float type. Quantized types have none: this
 * returns 1 for them (only a rough weight for work estimates); strides must
 * use dtype_row_bytes. */
static inline int dtype_size(dtype t) {
    return t == DT_F32 ? 4 : dtype_is_quant(t) ? 1 : 2;
}

/* Bytes of one row of cols values; 0 when cols is not a positive multiple
 * of the type's block (or the type is unknown). */
static inline int64_t dtype_row_bytes(dtype t, int64_t cols) {
    int be = dtype_block_elems(t);
    if (be <= 0 || cols <= 0 || cols % be) return 0;
    return cols / be * dtype_block_bytes(t);
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* IEEE half -> float, exact (handles subnormals, inf, nan). */
static inline float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            int e = -1;
            do { man <<= 1; e++; } while (!(man & 0x400));
            man &= 0x3ff;
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* float -> IEEE half, round to nearest even. */
static inline uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    if (exp >= 31) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

#endif
