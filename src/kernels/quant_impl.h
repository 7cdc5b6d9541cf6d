/*
 * quant_impl.h - what each ISA file of the quantized matmul (quant_dot_ref.c,
 * quant_avx2.c, quant_r8_avx2.c, quant_r8k_avx2.c, quant_avx512.c,
 * quant_r16_avx512.c, quant_r16k_avx512.c,
 * quant_amx_avx512.c, quant_amx_k_avx512.c)
 * provides to the dispatcher in quant.c, and the layouts of the quantized
 * activations they share. Internal to src/kernels/; the contract is quant.h.
 *
 * On AVX-512 without AMX, avx512_qmm_rows (quant_avx512.c) sends a product
 * by its type and number of x rows n: decode (n = 1) to the streaming GEMVs
 * (quant_avx512.c, quant_extra_gemv_avx512.c); the 32-block types from a
 * few rows (2 or 4, quant_avx512.c's *_R16_MIN_N) to quant_r16_avx512.c,
 * 16 W rows per register, and below that to quant_avx512.c's tiles
 * (gemm_streams); the K-quants to those tiles, Q2_K / Q3_K / IQ4_XS to
 * quant_extra_avx512.c. With AMX, quant.c sends the products of the
 * types qt_amx names from QAMX_MIN_N_* rows to quant_amx*.c instead.
 * On AVX2, avx2_qmm_rows (quant_avx2.c) sends the products of a few rows
 * of x or more to the 8-row interleaved kernels, quant_r8_avx2.c (the
 * 32-block types) and quant_r8k_avx2.c (Q4_K, Q5_K, Q6_K, IQ4_XS).
 *
 * Quantized activations ("xq"), one row per row of x, rows 64-byte aligned:
 *
 * For the 32-block weights (Q4_0, Q8_0, MXFP4, Q4_1, Q5_0, Q5_1, IQ4_NL),
 * nb = cols / 32 blocks, row = 96 * nb bytes:
 *   int8_t  qs[nb][32]   Q8_0 codes, roundf(x / d) with d = amax / 127
 *                        (quantize_row_q8_0_ref)
 *   float   dv[nb][8]    the scale as stored by Q8_0 (rounded to f16),
 *                        widened, repeated 8 times
 *   int32_t cv[nb][8]    lane 0: -c * (sum of the block's codes), others 0
 * The fast paths multiply unsigned weight bytes by signed activation bytes
 * (vpdpbusd / vpmaddubsw), so a weight is stored biased: a Q4_0 nibble is
 * w + 8, a Q8_0 byte flipped by ^ 0x80 is w + 128, an MXFP4 code is looked
 * up as kvalues_mxfp4 + 12; sum((w + c) x) - c sum(x) = sum(w x), and cv
 * carries -c sum(x) (c = 8, 128 or 12; the other types: qx32_bias) into the integer sum,
 * exactly. The broadcast dv/cv let a 512-bit register cover two blocks
 * without a shuffle. The scalar path reads qs and dv[.][0] only.
 *
 * For the K-quants and IQ4_XS, one qx_k per 256 values (Q8_K, quantize_row_q8_K_ref):
 * codes nearest_int(-127 / max * x) where max is the value of largest
 * magnitude, the sums of each 16 codes (the K-quants' mins and Q6_K's bias
 * are applied through them), and d = max / -127 in f32.
 */
#ifndef MOE_KERNELS_QUANT_IMPL_H
#define MOE_KERNELS_QUANT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/quant.h"

typedef struct {
    int8_t qs[QK_K];          /* codes */
    int16_t bsums[QK_K / 16]; /* sum of each 16 codes */
    float d;                  /* scale */
    uint8_t pad[28];          /* to 320 bytes, a multiple of 64 */
} qx_k;
_Static_assert(sizeof(qx_k) == 320, "qx_k size");

/* IQ4_XS's and Q6_K's activation rows carry after their nb qx_k blocks
 * (row bytes rounded up to 64) the -c * sum of each group of g codes of
 * every block as int32: IQ4_XS (whose values the AVX-512 kernels take as
 * kvalues + 128) c = 128, g = 32; Q6_K (codes 0..63 for q - 32) c = 32, g
 * = 16. The many-row kernels (quant_r16k_avx512.c) start each integer sum
 * from it, a load, where computing it from the sums of 16 took one
 * operation per sum beside the products. Every act function writes them
 * (qx_k_cv_row); the other kernels read the qx_k blocks only. */
static inline int qx_k_ncv(int type) { return type == QT_IQ4_XS ? 8 : type == QT_Q6_K ? 16 : 0; }
static inline void qx_k_cv_row(void *row, int type, int64_t nb) {
    const qx_k *x = (const qx_k *)row;
    int32_t *cv = (int32_t *)((uint8_t *)row + (size_t)nb * sizeof(qx_k));
    const int n = qx_k_ncv(type), per = 16 / n; /* sums of 16 in each: 2 (IQ4_XS) or 1 */
    const int c = type == QT_IQ4_XS ? 128 : 32;
    for (int64_t i = 0; i < nb; i++)
        for (int v = 0; v < n; v++) {
            int32_t s = 0;
            for (int u = 0; u < per; u++) s += x[i].bsums[v * per + u];
            cv[i * n + v] = -c * s;
        }
}

#define QX32_ROW_BYTES(nb) ((size_t)(nb) * 96)

/* Pointers into one Q8_0-style activation row of nb blocks. */
static inline const int8_t *qx32_qs(const void *row) { return (const int8_t *)row; }
static inline const float *qx32_dv(const void *row, int64_t nb) {
    return (const float *)((const char *)row + (size_t)nb * 32);
}
static inline const int32_t *qx32_cv(const void *row, int64_t nb) {
    return (const int32_t *)((const char *)row + (size_t)nb * 64);
}

/* Whether weights of `type` take the 32-block (Q8_0-style) activations. */
static inline int qt_is32(int type) {
    return type == QT_Q4_0 || type == QT_Q8_0 || type == QT_MXFP4 ||
           type == QT_Q4_1 || type == QT_Q5_0 || type == QT_Q5_1 || type == QT_IQ4_NL;
}

/* Bias c of the weight bytes for a 32-block type (see above). */
#define MXFP4_BIAS 12
/* Of Q4_1 / Q5_0 / Q5_1 / IQ4_NL: Q5_0's five bits are stored as w + 16;
 * IQ4_NL's values are looked up as kvalues_iq4nl + 128 (0..241); Q4_1 and
 * Q5_1 codes are unsigned already and have no bias: their c = 1 makes cv
 * carry -sum(x) for their min term (m * dx * sum(x)). */
#define IQ4NL_BIAS 128
static inline int qx32_bias_more(int type) {
    return type == QT_Q5_0 ? 16 : type == QT_IQ4_NL ? IQ4NL_BIAS : 1;
}
static inline int qx32_bias(int type) {
    switch (type) {
    case QT_Q4_0: return 8;
    case QT_MXFP4: return MXFP4_BIAS;
    case QT_Q8_0: return 128;
    default: return qx32_bias_more(type);
    }
}
/* kvalues_mxfp4 + MXFP4_BIAS as 16 bytes: the fast paths' table for
 * vpshufb (values 0..24). */
static inline const uint8_t *mxfp4_biased_table(void) {
    static const uint8_t t[16] = {12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0};
    return t;
}
/* kvalues_iq4nl + IQ4NL_BIAS as 16 bytes (values 1..241), the same for
 * IQ4_NL and IQ4_XS. */
static inline const uint8_t *iq4nl_biased_table(void) {
    static const uint8_t t[16] = {1, 24, 45, 63, 79, 93, 106, 118, 129, 141, 153, 166, 181, 197, 217, 241};
    return t;
}

/* Bytes of one activation row (a multiple of 64 is not promised for the
 * 32-block types; rows are padded to 64 by qact_row_stride). */
size_t qact_row_stride(int type, int64_t cols);

/* AMX tile layout of the activations, for Q4_0 / Q8_0 / Q5_0 / IQ4_NL weights (Q4_K, Q5_K,
 * Q6_K, Q3_K, IQ4_XS: below) when the
 * product runs on AMX (quant.c: qtiles_use). The rows of x go in tiles of
 * QT_TILE_N (the last one zero-padded); per tile and 32-block b, 576 bytes:
 *   int8_t codes[8][16][4]  codes[k][j][e]: code of value 4k+e of row j, so
 *                           the 8 x 64 bytes are tdpbssd's B operand
 *   float  d[16]            row j's scale as in the row layout (0: padding)
 * The codes and scales are the row layout's, rearranged; there is no bias
 * term (tdpbssd multiplies signed by signed). A tile is 576 * nb bytes, a
 * multiple of 64. */
/* Activation blocks whose largest magnitude is below QACT_TINY quantize to
 * zero on every path: their reciprocal scale (127 / amax) would overflow
 * to inf and the codes with it; values that small add nothing a float sum
 * of real activations could hold. */
#define QACT_TINY 1e-30f

#define QT_TILE_N 16
#define QT_TILE_BLOCK 576
static inline size_t qtile_stride(int64_t cols) { return (size_t)(cols / 32) * QT_TILE_BLOCK; }

/* For Q4_K, Q5_K, Q6_K, Q3_K and IQ4_XS weights on AMX the tile holds Q8_K activations (the row
 * layout's codes, sums and scale, quantize_row_q8_K_ref); per tile and
 * 256-block b, 4416 bytes:
 *   int8_t  codes[8][8][16][4]  codes[s][k][j][e]: code of value 32s+4k+e
 *                               of row j: one B operand per sub-block s
 *   int16_t bs[4][16][2]        bs[p][j][h]: sum of the 32 codes of
 *                               sub-block 2p+h of row j (vpdpwssd pairs)
 *   float   d[16]               row j's scale (0: padding)
 * A tile is 4416 * (cols / 256) bytes, a multiple of 64. */
#define QT_TILE_BLOCK_K 4416
/* Whether products of `type` weights may run on AMX, and the bytes of one
 * x tile of theirs. */
/* Whether `type`'s x tiles are in the K layout (else the 32-block one). */
static inline int qt_tile_k(int type) {
    return type == QT_Q4_K || type == QT_Q5_K || type == QT_Q6_K || type == QT_Q3_K || type == QT_IQ4_XS;
}
static inline int qt_amx(int type) {
    return qt_tile_k(type) || type == QT_Q4_0 || type == QT_Q8_0 || type == QT_Q5_0 || type == QT_IQ4_NL;
}
static inline size_t qtile_stride_of(int type, int64_t cols) {
    return qt_tile_k(type) ? (size_t)(cols / QK_K) * QT_TILE_BLOCK_K : qtile_stride(cols);
}

/* One matmul, or the rows [r0, r1) of one: y[i][r] = x_i . W_r for i < n. */
typedef struct qmm_job {
    float *y;          /* [n][rows] */
    const uint8_t *xq; /* n activation rows xq_row bytes apart, or (tiles)
                          ceil(n / QT_TILE_N) tiles xq_row bytes apart */
    const uint8_t *W;  /* rows of w_row bytes */
    int type;
    int64_t n, rows, cols;
    size_t xq_row, w_row;
    int tiles;         /* x in the AMX tile layout */
    int vbmi;          /* the AVX-512 Q4_0 GEMV may use AVX512_VBMI (kern_cfg) */
    int avxvnni;       /* the AVX2 products may use AVX-VNNI (kern_cfg) */
    int packed;        /* W is type's packed form (quant_pack.c; rows a multiple
                          of QPACK_ROWS, r0 of every call too) */
} qmm_job;

/* The W row streams of the AVX-512 products (quant_avx512.c's
 * gemv_streams, gemm_streams; quant_extra_gemv_avx512.c):  the prefetch distance, about 2 KiB ahead in
 * each stream (one row of 2048 Q8_0 columns, two of Q4_0), and step i's
 * W rows, row i of each of nr runs of per rows from r0 (row[q] = -1 and
 * the first run's row in w[q] where run q is shorter). */
static inline size_t qstream_pf(const qmm_job *j) {
    const int64_t ahead = (2048 + (int64_t)j->w_row - 1) / (int64_t)j->w_row;
    return (size_t)(ahead < 1 ? 1 : ahead > 4 ? 4 : ahead) * j->w_row;
}

static inline void qstream_rows(const int nr, const qmm_job *j, int64_t r0, int64_t r1, int64_t per, int64_t i,
                                const uint8_t **w, int64_t *row) {
    for (int q = 0; q < nr; q++) {
        int64_t r = r0 + q * per + i;
        row[q] = r < r1 ? r : -1;
        w[q] = j->W + (size_t)(r < r1 ? r : r0 + i) * j->w_row;
    }
}

typedef void (*qmm_rows_fn)(const qmm_job *j, int64_t r0, int64_t r1);
/* Quantize one row x[cols] for weights of `type` into xq (64-aligned). */
typedef void (*qact_row_fn)(void *xq, const float *x, int type, int64_t cols);

/* Scalar reference (quant_dot_ref.c). */
void ref_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
void ref_qact_row(void *xq, const float *x, int type, int64_t cols);
float ref_vec_dot_q4_0(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q8_0(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q4_K(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q5_K(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q6_K(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_mxfp4(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q4_1(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q5_0(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q5_1(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq4_nl(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q2_K(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_q3_K(const void *w, const void *xq, int64_t cols);
float ref_vec_dot_iq4_xs(const void *w, const void *xq, int64_t cols);

/* ggml's make_qkx2_quants (quant_ref.c), the scale-and-min search of the
 * Q4_K/Q5_K/Q2_K reference quantizers: codes 0..nmax of x[n] in L, returns
 * the scale and -min in *the_min. */
float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                       uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad);

/* AVX2 (quant_avx2.c) and AVX-512 VNNI (quant_avx512.c); call only when
 * the CPU has the ISA (quant.c checks). */
void avx2_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
void avx2_qact_row(void *xq, const float *x, int type, int64_t cols);
void avx512_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
void avx512_qact_row(void *xq, const float *x, int type, int64_t cols);
/* Products of many x rows with 16 W rows interleaved per register
 * (quant_r16_avx512.c), for the 32-block types Q8_0, Q4_0, MXFP4, IQ4_NL,
 * Q5_0, Q4_1 and Q5_1: returns 0 for a type it does not take. */
int avx512_rows_r16(const qmm_job *j, int64_t r0, int64_t r1);
/* Q8_0_R8 (quant_pack.c): offsets in a group of nb blocks of block b's 8
 * f16 scales and its 256 bytes of codes. Blocks go in pairs of 544 bytes,
 * [the two blocks' scales (32) | b's codes | b + 1's codes], so a group is
 * one stream and, from a 32-byte aligned group, every code register is
 * aligned; an odd last block is [scales (16) | codes]. */
static inline size_t qp8_scales_at(int64_t nb, int64_t b) {
    const size_t base = (size_t)(b / 2) * 544;
    return (b | 1) < nb ? base + (size_t)(b & 1) * 16 : base;
}
/* IQ4_XS_R8 (quant_pack.c): a super-block of a group takes QP4_SB bytes:
 * the rows' f16 d at QP4_D, scales_h at QP4_SH, scales_l at QP4_SL (4 bytes
 * a row), and sub-block s's 4 code registers from QP4_CODES + 128 s. */
#define QP4_SB 1088
#define QP4_D 0
#define QP4_SH 16
#define QP4_SL 32
#define QP4_CODES 64
/* Q4_K_R8 (quant_pack.c): a super-block of a group takes QPK_SB bytes: the
 * rows' heads as 4 registers from QPK_HEAD, then the codes of qs bytes
 * 32c .. 32c + 31, register k, at QPK_CODES + 256 c + 32 k. */
#define QPK_SB 1152
#define QPK_HEAD 0
#define QPK_CODES 128
/* Q5_K_R8: as Q4_K_R8 with the qh bytes 4k .. 4k + 3 of the rows as
 * register k at QP5_QH + 32 k before the codes. */
#define QP5_SB 1408
#define QP5_QH 128
#define QP5_CODES 384
/* Q6_K_R8: a super-block takes QP6_SB bytes: the rows' f16 d at QP6_D, their
 * scales as 4 registers from QP6_SC, ql bytes 64h + 32e + 4k of the rows at
 * QP6_QL + 256 (2h + e) + 32 k, qh bytes 32h + 4k at QP6_QH + 256 h + 32 k. */
#define QP6_SB 1680
#define QP6_D 0
#define QP6_SC 16
#define QP6_QL 144
#define QP6_QH 1168
static inline size_t qp8_codes_at(int64_t nb, int64_t b) {
    const size_t base = (size_t)(b / 2) * 544;
    return (b | 1) < nb ? base + 32 + (size_t)(b & 1) * 256 : base + 16;
}
/* The same for Q4_K, Q5_K, Q6_K and IQ4_XS (quant_r16k_avx512.c). */
void avx512_rows_r16k(const qmm_job *j, int64_t r0, int64_t r1);
/* Products of many x rows with 8 W rows interleaved per register on AVX2
 * (quant_r8_avx2.c), the same types: returns 0 for a type it does not take. */
int avx2_rows_r8(const qmm_job *j, int64_t r0, int64_t r1);
/* The same for Q4_K, Q5_K, Q6_K and IQ4_XS (quant_r8k_avx2.c). */
int avx2_rows_r8k(const qmm_job *j, int64_t r0, int64_t r1);
/* Both with AVX-VNNI's vpdpbusd for the int8 sums (quant_r8_avxvnni_avx2.c,
 * quant_r8k_avxvnni_avx2.c: the same sources built with R8_VNNI). */
int avxvnni_rows_r8(const qmm_job *j, int64_t r0, int64_t r1);
int avxvnni_rows_r8k(const qmm_job *j, int64_t r0, int64_t r1);
/* IQ4_XS takes the interleaved kernel (quant_r8k_avx2.c) from this many
 * rows of x, fewer going to quant_extra_avx2.c (the AVX2 path,
 * quant_avx2.c). Stored and packed at load must take the same arithmetic
 * at each count (packed keeps the stored bits), and at 3 and 4 rows the
 * two differ: one core of an AMD Zen 3, cold [768][2048], 3 / 4 rows of x,
 * few-row kernels -> tile, stored 136 / 164 -> 148 / 174 us, packed 150 /
 * 181 -> 113 / 138; so from 3, for the packed default (at 2 rows the
 * few-row kernels win both ways: stored 110 -> 171, packed 98 -> 123). With AVX-VNNI IQ4_XS takes no sign trick and the
 * interleaved kernel wins from 2 rows (one core, cold [768][2048], 2 / 3 /
 * 4 rows of x 136-140 / 158-248 / 204-206 -> 77-79 / 90-146 / 99-100 us,
 * Intel Emerald Rapids); one row is even. */
#define IQ4XS_R8K_MIN_N 3
#define IQ4XS_R8K_MIN_N_VNNI 2
/* Q4_K, Q5_K, Q6_K and Q2_K take it from this many rows (AVX-VNNI or not). */
#ifndef R8K_MIN_N
#define R8K_MIN_N 2
#endif
/* Q3_K from 3: one core of an AMD Zen 3, [768][2048] mostly in L3, the
 * few-row kernels -> the interleaved one, 2 / 3 / 4 / 8 / 32 rows of x:
 * 88 / 107 / 128 / 254 / 1032 -> 95 / 107 / 122 / 194 / 641 us (Q2_K
 * 80 / 106 / 132 / 262 / 1074 -> 78 / 89 / 105 / 176 / 623). */
#define Q3K_R8K_MIN_N 3
/* A packed W (j->packed, quant_pack.c) read in its layout, any n; r0 and r1
 * multiples of QPACK_ROWS (or r1 the last row): Q8_0_R8 (quant_r8_avx2.c),
 * Q4_K_R8, Q5_K_R8, Q6_K_R8 and IQ4_XS_R8 (quant_r8k_packed_avx2.c, by
 * j->type). */
void avx2_rows_packed(const qmm_job *j, int64_t r0, int64_t r1);
void avxvnni_rows_packed(const qmm_job *j, int64_t r0, int64_t r1);
void avx2_rows_packed_k(const qmm_job *j, int64_t r0, int64_t r1);
void avxvnni_rows_packed_k(const qmm_job *j, int64_t r0, int64_t r1);
/* The types avx2_qmm_rows / avx512_qmm_rows hand on (quant_extra_avx2.c,
 * quant_extra_avx512.c): Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, IQ4_XS
 * (avx512_qmm_rows: Q4_1 ... IQ4_NL only with one x row, the others going
 * to avx512_rows_r16). */
void avx2_extra_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
void avx512_extra_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
/* Decode (n = 1) of those types on 512-bit registers
 * (quant_extra_gemv_avx512.c): returns 0 for a type it does not take. */
int avx512_extra_gemv(const qmm_job *j, int64_t r0, int64_t r1);
/* Decode (n = 1) on AVX2 of Q4_0, MXFP4, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K,
 * Q3_K and IQ4_XS (quant_extra_gemv_avx2.c): 1 if the type is one of them
 * (and done), 0 otherwise. */
int avx2_extra_gemv(const qmm_job *j, int64_t r0, int64_t r1);

/* The AMX tile layout: rows x[0..nx) (nx <= QT_TILE_N, [nx][cols]) into one
 * tile; the same bytes from the scalar reference and AVX-512. */
void ref_qact_tile(void *tile, const float *x, int64_t nx, int64_t cols);
void avx512_qact_tile(void *tile, const float *x, int64_t nx, int64_t cols);
/* AMX (quant_amx_avx512.c): amx_init asks the OS for the tile state (once:
 * kernels.c's CPU detection) and returns whether AMX-INT8 can run; amx_qmm_rows takes a tiles job of Q4_0,
 * Q8_0, Q5_0 or IQ4_NL weights (call only when amx_init returned 1). */
int amx_init(void);
void amx_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
/* Q4_K and Q5_K on AMX (quant_amx_k_avx512.c): x rows [0..nx) (nx <= QT_TILE_N)
 * into one tile of the K layout, and the product of a tiles job. */
void amx_qact_tile_k(void *tile, const float *x, int64_t nx, int64_t cols);
void amx_k_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);
/* Q6_K, Q3_K and IQ4_XS on AMX (quant_amx_k6_avx512.c): the product of a tiles
 * job, x in the K layout (amx_qact_tile_k). */
void amx_k6_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1);

#endif
