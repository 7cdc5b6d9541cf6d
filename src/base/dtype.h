/*
 * dtype.h - element types of stored tensors and scalar conversions.
 * The conversions here are the reference definitions: every fast path that
 * widens BF16/F16 must agree with them bit for bit.
 */
#ifndef MOE_BASE_DTYPE_H
#define MOE_BASE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    DT_F32 = 0,
    DT_F16,
    DT_BF16,
    DT_COUNT, /* float types end here: loops over DT_COUNT see only F32/F16/BF16 */
    /* Raw bytes (safetensors "U8": the `_blocks` and `_scales` of transformers'
     * MXFP4 tensors). Not a weight type: no row in the table below. */
    DT_U8 = 15,
    /* Block-quantized types (ggml / GGUF layouts, src/kernels/quant.h): a
     * row of cols values is cols / block_elems blocks of block_bytes. They
     * have no per-element size; use dtype_row_bytes(). */
    DT_Q4_0 = 16,
    DT_Q8_0,
    DT_Q4_K,
    DT_Q5_K,
    DT_Q6_K,
    DT_MXFP4,
    /* ggml's grid i-quants: read and run, not written */
    DT_IQ2_XXS,
    DT_IQ2_XS,
    DT_IQ3_XXS,
    DT_IQ1_S,
    DT_IQ3_S,
    DT_IQ2_S,
    DT_IQ1_M,
    /* legacy, low-bit K and IQ4 types: read, run and written */
    DT_Q4_1,
    DT_Q5_0,
    DT_Q5_1,
    DT_Q2_K,
    DT_Q3_K,
    DT_IQ4_NL,
    DT_IQ4_XS,
    /* Packed at load, in memory only (never read from or written to a file):
     * kernels/quant.h "Interleaved weights". */
    DT_Q8_0_R8,
    DT_Q4_K_R8,
    DT_Q5_K_R8,
    DT_Q6_K_R8,
    DT_IQ4_XS_R8,
} dtype;

/* The one table of stored types: every fact about a type's layout is a row
 * here. kernels/quant.c builds the quantized types' kernels (dequantize,
 * reference quantize, dot product) from the same rows and checks its block
 * structs against them at compile time; formats/gguf.c takes geometry and
 * alignment from it. Adding a type is a row here (and its kernels).
 *   X(TAG, tag, name, ggml/GGUF type id, values per block, bytes per block,
 *     alignment its data needs in memory (the widest field)) */
#define DTYPE_FLOAT_LIST(X)               \
    X(F32, f32, "f32", 0, 1, 4, 4)        \
    X(F16, f16, "f16", 1, 1, 2, 2)        \
    X(BF16, bf16, "bf16", 30, 1, 2, 2)
#define DTYPE_QUANT_LIST(X)               \
    X(Q4_0, q4_0, "q4_0", 2, 32, 18, 2)   \
    X(Q8_0, q8_0, "q8_0", 8, 32, 34, 2)   \
    X(Q4_K, q4_K, "q4_K", 12, 256, 144, 4) \
    X(Q5_K, q5_K, "q5_K", 13, 256, 176, 4) \
    X(Q6_K, q6_K, "q6_K", 14, 256, 210, 2) \
    X(MXFP4, mxfp4, "mxfp4", 39, 32, 17, 1) \
    X(IQ2_XXS, iq2_xxs, "iq2_xxs", 16, 256, 66, 2) \
    X(IQ2_XS, iq2_xs, "iq2_xs", 17, 256, 74, 2) \
    X(IQ3_XXS, iq3_xxs, "iq3_xxs", 18, 256, 98, 2) \
    X(IQ1_S, iq1_s, "iq1_s", 19, 256, 50, 2) \
    X(IQ3_S, iq3_s, "iq3_s", 21, 256, 110, 2) \
    X(IQ2_S, iq2_s, "iq2_s", 22, 256, 82, 2) \
    X(IQ1_M, iq1_m, "iq1_m", 29, 256, 56, 1) \
    X(Q4_1, q4_1, "q4_1", 3, 32, 20, 2)   \
    X(Q5_0, q5_0, "q5_0", 6, 32, 22, 2)   \
    X(Q5_1, q5_1, "q5_1", 7, 32, 24, 2)   \
    X(Q2_K, q2_K, "q2_K", 10, 256, 84, 2) \
    X(Q3_K, q3_K, "q3_K", 11, 256, 110, 2) \
    X(IQ4_NL, iq4_nl, "iq4_nl", 20, 32, 18, 2) \
    X(IQ4_XS, iq4_xs, "iq4_xs", 23, 256, 136, 2)
/* The packed forms (their ids are kernels/quant.h's QT_*_R8, no file's): the
 * same bytes per row as the type they pack, rows interleaved in groups of 8. */
#define DTYPE_PACKED_LIST(X)              \
    X(Q8_0_R8, q8_0_r8, "q8_0_r8", 1032, 32, 34, 2)     \
    X(Q4_K_R8, q4_k_r8, "q4_k_r8", 1036, 256, 144, 4)   \
    X(Q5_K_R8, q5_k_r8, "q5_k_r8", 1037, 256, 176, 4)   \
    X(Q6_K_R8, q6_k_r8, "q6_k_r8", 1038, 256, 210, 2)   \
    X(IQ4_XS_R8, iq4_xs_r8, "iq4_xs_r8", 1047, 256, 136, 2)

typedef struct dtype_traits {
    dtype type;
    const char *name;  /* "q4_K", as ggml names it in lower case */
    int ggml;          /* ggml / GGUF tensor type id */
    int block_elems;   /* values per block (1 for float types) */
    int block_bytes;   /* bytes per block (the element size for float types) */
    int align;         /* alignment of the data in memory */
    int is_quant;      /* block-quantized */
} dtype_traits;

/* The row of t, or NULL for an unknown type. */
static inline const dtype_traits *dtype_traits_of(dtype t) {
    static const dtype_traits k[] = {
#define DTYPE_ROW_F(U, l, nm, g, be, bb, al) {DT_##U, nm, g, be, bb, al, 0},
#define DTYPE_ROW_Q(U, l, nm, g, be, bb, al) {DT_##U, nm, g, be, bb, al, 1},
        DTYPE_FLOAT_LIST(DTYPE_ROW_F) DTYPE_QUANT_LIST(DTYPE_ROW_Q) DTYPE_PACKED_LIST(DTYPE_ROW_Q)
#undef DTYPE_ROW_F
#undef DTYPE_ROW_Q
    };
    int i = (int)t < DT_COUNT ? (int)t : (int)t - DT_Q4_0 + DT_COUNT;
    if ((int)t < 0 || i < 0 || i >= (int)(sizeof k / sizeof k[0]) || k[i].type != t) return NULL;
    return &k[i];
}

static inline int dtype_is_quant(dtype t) {
    const dtype_traits *d = dtype_traits_of(t);
    return d && d->is_quant;
}

/* dtype <-> ggml / GGUF type id; -1 / DT_COUNT when there is none. A packed
 * type maps to its kernels/quant.h id, and no id maps back to it (no file
 * holds one). */
static inline int dtype_to_ggml(dtype t) {
    const dtype_traits *d = dtype_traits_of(t);
    return d ? d->ggml : -1;
}
static inline dtype dtype_from_ggml(int g) {
    static const dtype all[] = {
#define DTYPE_TAG(U, l, nm, gg, be, bb, al) DT_##U,
        DTYPE_FLOAT_LIST(DTYPE_TAG) DTYPE_QUANT_LIST(DTYPE_TAG)
#undef DTYPE_TAG
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (dtype_traits_of(all[i])->ggml == g) return all[i];
    return DT_COUNT;
}

/* Values per block and bytes per block (1 and the element size for float
 * types); 0 for unknown types. */
static inline int dtype_block_elems(dtype t) {
    const dtype_traits *d = dtype_traits_of(t);
    return d ? d->block_elems : 0;
}
static inline int dtype_block_bytes(dtype t) {
    const dtype_traits *d = dtype_traits_of(t);
    return d ? d->block_bytes : 0;
}

static inline const char *dtype_name(dtype t) {
    const dtype_traits *d = dtype_traits_of(t);
    return d ? d->name : "?";
}

/* Bytes per element of a float type (and of DT_U8). Quantized types have none: this
 * returns 1 for them (only a rough weight for work estimates); strides must
 * use dtype_row_bytes. */
static inline int dtype_size(dtype t) {
    return t == DT_F32 ? 4 : dtype_is_quant(t) || t == DT_U8 ? 1 : 2;
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
