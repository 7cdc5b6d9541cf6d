/*
 * quant.h - llama.cpp / GGUF quantized weight types and the matmuls that
 * run on them.
 *
 * Block layouts are ggml's, byte for byte (ggml-common.h), so a GGUF tensor
 * is used in place from the mapped file: a weight matrix W [rows][cols] is
 * rows * (cols / QK) blocks, row-major, no padding between rows.
 *
 *   type  elems bytes  layout (one block)
 *   Q4_0   32    18    f16 d; u8 qs[16]            x = d * (nibble - 8);
 *                      element j in the low nibble of qs[j], j+16 in the high
 *   Q8_0   32    34    f16 d; i8 qs[32]            x = d * q
 *   Q4_K  256   144    f16 d, dmin; u8 scales[12]; u8 qs[128]
 *                      8 sub-blocks of 32: x = d*sc[j]*q - dmin*m[j], with
 *                      6-bit sc/m packed in scales (get_scale_min_k4)
 *   Q5_K  256   176    as Q4_K plus u8 qh[32] (the fifth bit) before qs
 *   Q6_K  256   210    u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
 *                      16 sub-blocks of 16: x = d * scales[j] * (q - 32)
 *   MXFP4  32    17    u8 e; u8 qs[16]             x = 2^(e-128) * kvalues_mxfp4[nibble]
 *                      (OCP Microscaling FP4: E2M1 codes, doubled to integers,
 *                      with an E8M0 scale halved; nibbles as Q4_0)
 *   Q4_1   32    20    f16 d, m; u8 qs[16]         x = d * nibble + m
 *   Q5_0   32    22    f16 d; u8 qh[4]; u8 qs[16]  x = d * (q - 16), q = nibble | bit j of qh << 4
 *   Q5_1   32    24    f16 d, m; u8 qh[4]; qs[16]  x = d * q + m (q as Q5_0)
 *   IQ4_NL 32    18    f16 d; u8 qs[16]            x = d * kvalues_iq4nl[nibble]
 *   Q2_K  256    84    u8 scales[16]; u8 qs[64]; f16 d, dmin
 *                      16 sub-blocks of 16: x = d*(sc&15)*q - dmin*(sc>>4), q 2 bits
 *   Q3_K  256   110    u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d
 *                      16 sub-blocks of 16: x = d*(sc-32)*(q - 4*!hbit), sc 6 bits
 *   IQ4_XS 256  136    f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]
 *                      8 sub-blocks of 32: x = d*(ls-32)*kvalues_iq4nl[nibble]
 *                      (ls 6 bits: low 4 in scales_l, high 2 in scales_h)
 *   (2-bit fields of Q2_K/Q3_K: element 128h + 32s + l of a block is bits
 *   2s..2s+1 of qs[32h + l]; Q3_K's third bit is bit 4h + s of hmask[l].)
 *
 * The grid i-quants (read and run; no quantizer: ggml's need an importance
 * matrix). 256 values in 8 sub-blocks of 32; a group of 8 values (4 for
 * IQ3_*) is a row of a fixed grid (quant_iq.h, generated from the gguf
 * package) picked by an index, with signs; "ks" = 7 sign bits completed to
 * an even number of minus signs (iq_ksigns); s = 4-bit sub-block scale.
 *   IQ2_XXS 256  66    f16 d; u16 qs[32]   per sub-block 8 bytes: 4 u8 grid
 *                      indices (iq2xxs_grid, 256 x 8), then a u32 of 4 ks
 *                      (bits 0-27) and s (28-31): x = d*(0.5+s)/4 * g * sign
 *   IQ2_XS  256  74    f16 d; u16 qs[32]; u8 scales[8]
 *                      qs: 9-bit index (iq2xs_grid, 512 x 8) | ks << 9;
 *                      two s per sub-block (16 values each), low nibble first
 *   IQ2_S   256  82    f16 d; u8 qs[32]; u8 signs[32]; u8 qh[8]; u8 scales[8]
 *                      10-bit index qs | 2 bits of qh (iq2s_grid, 1024 x 8),
 *                      8 stored sign bits per group; scales as IQ2_XS
 *   IQ3_XXS 256  98    f16 d; u8 qs[64]; u32 ss[8]
 *                      u8 indices of 4 values (iq3xxs_grid, 256 x 4); ss as
 *                      IQ2_XXS's u32: x = d*(0.5+s)/2 * g * sign
 *   IQ3_S   256 110    f16 d; u8 qs[64]; u8 qh[8]; u8 signs[32]; u8 scales[4]
 *                      9-bit index qs | 1 bit of qh (iq3s_grid, 512 x 4),
 *                      8 stored sign bits per 8 values; x = d*(1+2s) * g * sign
 *   IQ1_S   256  50    f16 d; u8 qs[32]; u16 qh[8]
 *                      11-bit index qs | 3 bits of qh (iq1s_grid, 2048 x 8 of
 *                      -1, 0, 1); per sub-block qh bits 12-14 a 3-bit s, bit
 *                      15 the sign of delta: x = d*(2s+1) * (g +- 1/8)
 *   IQ1_M   256  56    u8 qs[32]; u8 qh[16]; u8 scales[8]
 *                      indices as IQ1_S (3 bits and a delta sign per group
 *                      in a qh nibble); 3-bit s per 16 values in scales,
 *                      whose top nibbles hold the f16 d
 *
 * dequantize_row_* are the format's definition (ggml's, bit for bit);
 * quantize_row_*_ref are llama.cpp's reference quantizers (what
 * `llama-quantize` writes without an importance matrix; for IQ4_NL that is
 * ggml's quantize_iq4_nl, not its quantize_row_iq4_nl_ref), also bit for bit,
 * checked against ggml's own C and the gguf Python package by
 * tests/test_quant.c and the fixtures of tools/gen_quant_fixtures.py (the
 * i-quants' dequantization: tests/test_quant_iq.c, tools/gen_iq_fixtures.py).
 *
 * The matmuls quantize the activations first, once per row, the way ggml
 * does: per 32-element block to 8 bits with an f16 scale (Q8_0) for Q4_0,
 * Q8_0, MXFP4, Q4_1, Q5_0, Q5_1 and IQ4_NL weights; per 256-element block with an f32 scale and sums of each 16
 * (Q8_K) for the K-quants, IQ4_XS and the grid i-quants. Then every product is an integer dot product of
 * a weight block with an activation block, scaled once per block in f32.
 * The quantized activations live in caller-provided scratch (sizes below);
 * nothing here allocates.
 *
 * MXFP4 is Q4_0 with a table: its codes are looked up (vpshufb) as
 * kvalues_mxfp4 + 12 (unsigned, the activation's bias term removes the 12)
 * and each block's integer sum is scaled by mxfp4_scale_half(e) * dx.
 *
 * Paths, each held to the scalar reference (tests/test_quant.c): scalar,
 * AVX2, AVX-512 VNNI (decode GEMVs and small GEMMs; Q4_1, Q5_0, Q5_1,
 * IQ4_NL, Q2_K, Q3_K and IQ4_XS in quant_extra_kern.h; the prefill of Q8_0,
 * Q4_0, Q4_K, Q5_K, Q6_K and IQ4_XS with 16 W rows interleaved per register,
 * quant_r16_avx512.c and quant_r16k_avx512.c), and AMX-INT8 for the
 * products of Q4_0 / Q8_0 weights with 5 (Q8_0) or 7 (Q4_0) or more rows of
 * x (prefill) on CPUs that have it, when the kernel choice of the pool a
 * call runs on has AMX (kernels.h: kern_cfg). The grid i-quants have AVX2
 * and AVX-512 VNNI paths that give the scalar reference's very bits
 * (quant_iq_avx512.c), and none on AMX.
 */
#ifndef MOE_KERNELS_QUANT_H
#define MOE_KERNELS_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"

/* Type codes are ggml's (= GGUF tensor types), so a GGUF reader passes them
 * through. */
enum {
    QT_Q4_0 = 2,
    QT_Q8_0 = 8,
    QT_Q4_K = 12,
    QT_Q5_K = 13,
    QT_Q6_K = 14,
    QT_MXFP4 = 39,
    QT_IQ2_XXS = 16,
    QT_IQ2_XS = 17,
    QT_IQ3_XXS = 18,
    QT_IQ1_S = 19,
    QT_IQ3_S = 21,
    QT_IQ2_S = 22,
    QT_IQ1_M = 29,
    QT_Q4_1 = 3,
    QT_Q5_0 = 6,
    QT_Q5_1 = 7,
    QT_Q2_K = 10,
    QT_Q3_K = 11,
    QT_IQ4_NL = 20,
    QT_IQ4_XS = 23,
    /* In memory only, never in a file (QT_PACKED + the type it packs): weights
     * interleaved at load for the 8-row kernels ("Interleaved weights" below). */
    QT_Q8_0_R8 = 1024 + 8,
    QT_Q4_K_R8 = 1024 + 12,
    QT_Q5_K_R8 = 1024 + 13,
    QT_Q6_K_R8 = 1024 + 14,
    QT_IQ4_XS_R8 = 1024 + 23,
};
#define QT_PACKED 1024

#define QK4_0 32
#define QK8_0 32
#define QK_MXFP4 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef struct {
    uint16_t d;            /* f16 delta */
    uint8_t qs[QK4_0 / 2]; /* nibbles */
} block_q4_0;

typedef struct {
    uint16_t d;       /* f16 delta */
    int8_t qs[QK8_0]; /* quants */
} block_q8_0;

typedef struct {
    uint16_t d;                   /* f16 super-block scale of the scales */
    uint16_t dmin;                /* f16 super-block scale of the mins */
    uint8_t scales[K_SCALE_SIZE]; /* 8 scales + 8 mins, 6 bits each */
    uint8_t qs[QK_K / 2];         /* 4-bit quants */
} block_q4_K;

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8]; /* high (fifth) bits */
    uint8_t qs[QK_K / 2]; /* low 4 bits */
} block_q5_K;

typedef struct {
    uint8_t ql[QK_K / 2];      /* low 4 bits */
    uint8_t qh[QK_K / 4];      /* high 2 bits */
    int8_t scales[QK_K / 16];  /* 8-bit sub-block scales */
    uint16_t d;                /* f16 super-block scale */
} block_q6_K;

typedef struct {
    uint8_t e;                /* E8M0 scale: 2^(e-127), see mxfp4_scale_half */
    uint8_t qs[QK_MXFP4 / 2]; /* E2M1 codes: element j low nibble of qs[j], j+16 high */
} block_mxfp4;

/* The grid i-quants (layouts in the table above). */
typedef struct {
    uint16_t d;
    uint16_t qs[QK_K / 8];
} block_iq2_xxs;

typedef struct {
    uint16_t d;
    uint16_t qs[QK_K / 8];
    uint8_t scales[QK_K / 32];
} block_iq2_xs;

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4]; /* 32 bytes of index low bits, then 32 of signs */
    uint8_t qh[QK_K / 32];
    uint8_t scales[QK_K / 32];
} block_iq2_s;

typedef struct {
    uint16_t d;
    uint8_t qs[3 * QK_K / 8]; /* 64 bytes of indices, then 8 u32 of signs and scales */
} block_iq3_xxs;

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 4];
    uint8_t qh[QK_K / 32];
    uint8_t signs[QK_K / 8];
    uint8_t scales[QK_K / 64];
} block_iq3_s;

typedef struct {
    uint16_t d;
    uint8_t qs[QK_K / 8];
    uint16_t qh[QK_K / 32];
} block_iq1_s;

typedef struct {
    uint8_t qs[QK_K / 8];
    uint8_t qh[QK_K / 16];
    uint8_t scales[QK_K / 32]; /* 3-bit scales; the f16 d in the top nibbles */
} block_iq1_m;

_Static_assert(sizeof(block_iq2_xxs) == 66, "block_iq2_xxs size");
_Static_assert(sizeof(block_iq2_xs) == 74, "block_iq2_xs size");
_Static_assert(sizeof(block_iq2_s) == 82, "block_iq2_s size");
_Static_assert(sizeof(block_iq3_xxs) == 98, "block_iq3_xxs size");
_Static_assert(sizeof(block_iq3_s) == 110, "block_iq3_s size");
_Static_assert(sizeof(block_iq1_s) == 50, "block_iq1_s size");
_Static_assert(sizeof(block_iq1_m) == 56, "block_iq1_m size");
/* The 32-blocks of quant_legacy.c and quant_iq4.c. */
typedef struct {
    uint16_t d;        /* f16 delta */
    uint16_t m;        /* f16 min */
    uint8_t qs[32 / 2]; /* nibbles, as Q4_0 */
} block_q4_1;

typedef struct {
    uint16_t d;        /* f16 delta */
    uint8_t qh[4];     /* fifth bits: bit j of the little-endian u32 is element j's */
    uint8_t qs[32 / 2]; /* low 4 bits, as Q4_0 */
} block_q5_0;

typedef struct {
    uint16_t d;        /* f16 delta */
    uint16_t m;        /* f16 min */
    uint8_t qh[4];     /* fifth bits, as Q5_0 */
    uint8_t qs[32 / 2]; /* low 4 bits */
} block_q5_1;

typedef struct {
    uint16_t d;        /* f16 delta */
    uint8_t qs[32 / 2]; /* indices into kvalues_iq4nl, nibbles as Q4_0 */
} block_iq4_nl;

/* The 256-blocks of quant_k23.c and quant_iq4.c. */
typedef struct {
    uint8_t scales[QK_K / 16]; /* per 16 values: scale (low 4 bits), min (high 4 bits) */
    uint8_t qs[QK_K / 4];      /* 2-bit quants */
    uint16_t d;                /* f16 super-block scale of the scales */
    uint16_t dmin;             /* f16 super-block scale of the mins */
} block_q2_K;

typedef struct {
    uint8_t hmask[QK_K / 8]; /* high (third) bits */
    uint8_t qs[QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];      /* 16 scales of 6 bits */
    uint16_t d;              /* f16 super-block scale */
} block_q3_K;

typedef struct {
    uint16_t d;               /* f16 super-block scale */
    uint16_t scales_h;        /* high 2 bits of the 8 sub-block scales */
    uint8_t scales_l[QK_K / 64]; /* low 4 bits of the 8 sub-block scales */
    uint8_t qs[QK_K / 2];     /* indices into kvalues_iq4nl, per 32: as IQ4_NL */
} block_iq4_xs;

_Static_assert(sizeof(block_mxfp4) == 17, "block_mxfp4 size");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");
_Static_assert(sizeof(block_q2_K) == 84, "block_q2_K size");
_Static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");
_Static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs size");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

/* k = number of values, a multiple of the type's block size. */
void dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t k);
void dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t k);
void dequantize_row_q4_K(const block_q4_K *x, float *y, int64_t k);
void dequantize_row_q5_K(const block_q5_K *x, float *y, int64_t k);
void dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t k);
void dequantize_row_mxfp4(const block_mxfp4 *x, float *y, int64_t k);
void dequantize_row_iq2_xxs(const block_iq2_xxs *x, float *y, int64_t k);
void dequantize_row_iq2_xs(const block_iq2_xs *x, float *y, int64_t k);
void dequantize_row_iq2_s(const block_iq2_s *x, float *y, int64_t k);
void dequantize_row_iq3_xxs(const block_iq3_xxs *x, float *y, int64_t k);
void dequantize_row_iq3_s(const block_iq3_s *x, float *y, int64_t k);
void dequantize_row_iq1_s(const block_iq1_s *x, float *y, int64_t k);
void dequantize_row_iq1_m(const block_iq1_m *x, float *y, int64_t k);
void quantize_row_q4_0_ref(const float *x, block_q4_0 *y, int64_t k);
void quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t k);
void quantize_row_q4_K_ref(const float *x, block_q4_K *y, int64_t k);
void quantize_row_q5_K_ref(const float *x, block_q5_K *y, int64_t k);
void quantize_row_q6_K_ref(const float *x, block_q6_K *y, int64_t k);
void quantize_row_mxfp4_ref(const float *x, block_mxfp4 *y, int64_t k);
void dequantize_row_q4_1(const block_q4_1 *x, float *y, int64_t k);
void dequantize_row_q5_0(const block_q5_0 *x, float *y, int64_t k);
void dequantize_row_q5_1(const block_q5_1 *x, float *y, int64_t k);
void dequantize_row_q2_K(const block_q2_K *x, float *y, int64_t k);
void dequantize_row_q3_K(const block_q3_K *x, float *y, int64_t k);
void dequantize_row_iq4_nl(const block_iq4_nl *x, float *y, int64_t k);
void dequantize_row_iq4_xs(const block_iq4_xs *x, float *y, int64_t k);
void quantize_row_q4_1_ref(const float *x, block_q4_1 *y, int64_t k);
void quantize_row_q5_0_ref(const float *x, block_q5_0 *y, int64_t k);
void quantize_row_q5_1_ref(const float *x, block_q5_1 *y, int64_t k);
void quantize_row_q2_K_ref(const float *x, block_q2_K *y, int64_t k);
void quantize_row_q3_K_ref(const float *x, block_q3_K *y, int64_t k);
void quantize_row_iq4_nl_ref(const float *x, block_iq4_nl *y, int64_t k);
void quantize_row_iq4_xs_ref(const float *x, block_iq4_xs *y, int64_t k);

/* IQ4_NL / IQ4_XS (quant_iq4.c): the 16 non-linear levels a 4-bit index
 * selects, ggml's kvalues_iq4nl: x = d * kvalues_iq4nl[index]. */
extern const int8_t kvalues_iq4nl[16];

/* MXFP4 (quant_mxfp4.c). The E2M1 code c (sign bit 3, exponent bits 2..1,
 * mantissa bit 0) is the value kvalues_mxfp4[c] / 2:
 *   codes 0..7  ->  0, 0.5, 1, 1.5, 2, 3, 4, 6;  8..15 the same negated.
 * ggml keeps the doubled values (integers, for integer dot products) and
 * halves the scale instead: x = kvalues_mxfp4[c] * mxfp4_scale_half(e). */
extern const int8_t kvalues_mxfp4[16];
/* 2^(e-128) exactly, as ggml's ggml_e8m0_to_fp32_half: e = 0 and 1 are the
 * subnormals 2^-128 and 2^-127, and 255 (E8M0's NaN) is 2^127, not NaN. */
static inline float mxfp4_scale_half(uint8_t e) {
    union { uint32_t u; float f; } v;
    v.u = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    return v.f;
}
/* Hugging Face's MXFP4 layout (gpt-oss: `*_blocks` uint8 [.., rows, nb, 16],
 * `*_scales` uint8 [.., rows, nb]) to n_blocks GGUF blocks, in the same
 * block order. The code and scale conventions agree (transformers: value =
 * FP4_VALUES[c] * 2^(scale - 127), FP4_VALUES the E2M1 table above, so e is
 * the scale byte); the nibble order differs: HF packs elements 2i (low) and
 * 2i+1 (high) into byte i, ggml elements i (low) and i+16 (high). */
void mxfp4_from_hf(const uint8_t *blocks, const uint8_t *scales, block_mxfp4 *dst, int64_t n_blocks);
/* The inverse: ggml blocks to HF's blocks [n][16] and scales [n] (either may be NULL). */
void mxfp4_to_hf(const block_mxfp4 *src, uint8_t *blocks, uint8_t *scales, int64_t n_blocks);

/* ------------------------------------------------------------ traits */

/* A row of W (cols values) against a row of quantized activations made by
 * qact_quantize for this type: the scalar reference dot product. */
typedef float (*qvec_dot_fn)(const void *w_row, const void *xq_row, int64_t cols);

typedef struct qtype_traits {
    const char *name;        /* "q4_K", as ggml names it */
    int type;                /* QT_* */
    int block_elems;         /* values per block: 32 or 256 */
    int block_bytes;         /* bytes per block */
    void (*dequantize)(const void *src, float *dst, int64_t k);
    void (*quantize)(const float *src, void *dst, int64_t k); /* the reference; NULL for
                                                                  the i-quants (read only) */
    qvec_dot_fn vec_dot;     /* scalar reference; the matmuls use faster paths */
} qtype_traits;

/* Traits of a type, or NULL if `type` is not one of QT_*. */
const qtype_traits *quant_traits(int type);
/* Bytes of one row of `cols` values, or 0 if the type is unknown or cols is
 * not a positive multiple of its block size (the check a loader makes). */
size_t quant_row_bytes(int type, int64_t cols);

/* ------------------------------------------------------------ matmuls
 *
 * Shapes: x [n][cols] f32, W [rows][cols] of `type` (rows of blocks),
 * y [n][rows] = x W^T. cols must be a positive multiple of the block size
 * (quant_row_bytes != 0). A block of x (32 or 256 values) holding an inf or
 * NaN is quantized as codes 0 with scale NaN on every path, so the outputs
 * it feeds are NaN, never undefined behaviour; W may be any bytes (inf/NaN
 * scales give inf/NaN results, never a fault). */

/* Scratch bytes for n rows of quantized activations (includes the slack to
 * align it to 64 bytes, so any pointer will do). */
size_t qact_size(int type, int64_t n, int64_t cols);
/* Quantize x [n][cols] for weights of `type` into xq (qact_size bytes).
 * Threads over rows when n is large. The result is the same bytes on every
 * ISA. */
void qact_quantize(pool *p, void *xq, const float *x, int type, int64_t n, int64_t cols);
/* y [n][rows] = x W^T with x already quantized by qact_quantize (so one
 * quantization can serve several matrices with the same input). Threaded
 * over rows of W. */
void qmatmul_q(pool *p, float *y, const void *xq, const void *W, int type, int64_t n, int64_t rows,
               int64_t cols);

/* Both steps: scratch must hold qmatmul_scratch_size(type, n, cols) bytes. */
size_t qmatmul_scratch_size(int type, int64_t n, int64_t cols);
void qmatmul(pool *p, float *y, const float *x, const void *W, int type, int64_t n, int64_t rows,
             int64_t cols, void *scratch);

/* Grouped: many independent y_g = x_g W_g^T (per-expert problems) in one
 * parallel region for the products (the quantization of every x_g is one
 * region before it).
 *
 * A task with idx takes its rows from a shared x: row i is x + idx[i] *
 * cols, x holding x_rows rows (an MoE layer's tokens, each routed to
 * several experts). Each row of such an x is then quantized once per type
 * for all the tasks that read it, and every task copies the rows it needs;
 * the same bytes as quantizing the gathered rows. Only where
 * qmatmul_idx_ok says so (not in AMX's tile layout). */
typedef struct qmm_task {
    const void *W;       /* [rows][cols] of type */
    int type;            /* QT_* */
    int64_t rows, cols;
    const float *x;      /* [n][cols], or with idx [x_rows][cols] */
    float *y;            /* [n][rows] */
    int64_t n;           /* rows of x; 0 = skipped */
    const int *idx;      /* [n] rows of x, or NULL: rows 0..n-1 */
    int64_t x_rows;      /* with idx: the rows of x */
} qmm_task;
/* Whether a task of n rows of x for weights of type may have idx on pool p. */
int qmatmul_idx_ok(pool *p, int type, int64_t n);
size_t qmatmul_grouped_scratch_size(const qmm_task *tasks, int n_tasks);
/* An upper bound of both for any call of at most n_tasks products of type
 * with cols inputs whose rows of x add up to at most rows_total (what a
 * session reserves for its model). */
size_t qmatmul_scratch_bound(int type, int64_t rows_total, int64_t cols, int n_tasks);
void qmatmul_grouped(pool *p, const qmm_task *tasks, int n_tasks, void *scratch);

/* Interleaved weights: a matrix of a type that has a packed form (Q8_0:
 * QT_Q8_0_R8; Q4_K, Q5_K, Q6_K: QT_Q4_K_R8 ...; IQ4_XS: QT_IQ4_XS_R8) rewritten in place, groups of QPACK_ROWS rows interleaved as
 * the AVX2 kernels (and their AVX-VNNI builds) read them (quant_pack.c has
 * the layout), so no product interleaves them again. The same bytes a row,
 * and row r0 a multiple of QPACK_ROWS starts where it did. Every function
 * above takes a packed type as its own: the activations are the unpacked
 * type's; the AVX2 path reads the layout directly, the others unpack one row
 * at a time (correct, slow: pack for the path that runs). */
#define QPACK_ROWS 8
/* The packed form of type, or -1 when it has none. */
int qt_packed_of(int type);
/* The type a packed type packs (type itself when it is not packed). */
int qt_unpacked(int type);
int qt_is_packed(int type);
/* Rewrite W [rows][cols] of type in its packed form, in place; -1 when the
 * type has none, rows is not a positive multiple of QPACK_ROWS, cols is not
 * a multiple of the block, or a group's temporary copy cannot be had. */
int quant_pack(int type, void *W, int64_t rows, int64_t cols);
/* Row `row` of a packed matrix W in the unpacked type's layout into dst
 * (quant_row_bytes bytes). */
void quant_unpack_row(int ptype, const void *W, int64_t row, int64_t cols, void *dst);

/* Products of Q4_0 / Q8_0 weights with several rows of x (prefill) run on
 * AMX-INT8 where the CPU and OS have it (Intel Sapphire Rapids and later)
 * and the pool's kernel choice has it (kern_cfg.amx; MOE_AMX=0 in the
 * environment leaves it out of the default). Activations quantized by
 * qact_quantize must go to qmatmul_q on a pool with the same choice (the
 * layout depends on it). */
struct kern_cfg;
/* The name of the vector path the quantized products of choice k use
 * ("avx512-vnni", "avx2", "scalar"). */
const char *quant_path_name(const struct kern_cfg *k);

/* The single-threaded scalar reference of qmatmul (tests): the same
 * quantized activations, reference dot products. scratch as for qmatmul. */
void qmatmul_ref(float *y, const float *x, const void *W, int type, int64_t n, int64_t rows,
                 int64_t cols, void *scratch);

#endif
