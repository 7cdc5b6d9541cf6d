/*
 * quant_pack.c - weights interleaved once, at load, for the 8-row AVX2
 * kernels (quant.h: "Interleaved weights").
 *
 * The 8-row AVX2 kernels (quant_r8_avx2.c, quant_r8k_avx2.c) take the products of a few rows
 * of x or more by interleaving 8 W rows into an L1 buffer, chunk by chunk,
 * on every call. For an MoE expert that sees 8 tokens of a 128-token prompt
 * that interleave is about a third of the product (one core of an AMD Zen 3,
 * a Q8_0 [768][2048] matrix: about 105 + 28 n us for n rows of x, 105 of it
 * the interleave). A matrix stored interleaved skips it on every call, and
 * decode reads the same layout.
 *
 * Q8_0_R8, per group of 8 rows g (at W + 8 g row_bytes, nb blocks a row),
 * for each block b (where: quant_impl.h's qp8_codes_at, qp8_scales_at; the
 * blocks in pairs, both blocks' scales first, so a group is one stream):
 *   codes  [8][8][4] bytes: dword k, row r, byte c holds value 4k + c of
 *          row r's block b, as stored (signed)
 *   scales [8] f16: row r's d of block b
 * nb * (256 + 16) = 8 * nb * 34 bytes: the group's 8 rows as stored, so a
 * matrix is packed in place and row r0 (a multiple of 8) of the packed
 * matrix starts where it did.
 *
 * Q4_K_R8, per group of 8 rows, super-block b at 1152 b (quant_impl.h's
 * QPK_*): the 16-byte heads (d, dmin, the 12 bytes of scales and mins) as
 * 4 registers, dword r of register q holding dword q of row r's head, then
 * for each 32 bytes g of qs (values 64g .. 64g + 63) and k = 0..7 a
 * register whose dword r is bytes 32g + 4k .. + 3 of row r's qs (low
 * nibbles: values 64g + 4k .., high: 64g + 32 + 4k ..): what quant_r8k_kern.h's
 * transposes make of the stored rows. 8 * 144 bytes: in place. Q5_K_R8
 * (QP5_*): the same with the rows' qh as 8 registers of 4 bytes a row
 * between the heads and the codes (8 * 176 bytes).
 *
 * Q6_K_R8, per group of 8 rows, super-block b at 1680 b (QP6_*): the rows'
 * f16 d (16 bytes), their 16 int8 scales as 4 registers (dword r of
 * register q: scales 4q .. 4q + 3 of row r), then for each half h (128
 * values) the ql registers of bytes 64h + 32e + 4k (e = 0, 1; k = 0..7;
 * dword r: row r's 4 bytes) and the 8 qh registers of bytes 32h + 4k.
 *
 * IQ4_XS_R8, per group of 8 rows, super-block b at 1088 b (quant_impl.h's
 * QP4_*): the rows' f16 d (16 bytes), scales_h (16), scales_l (8 x 4),
 * then for each 32-value sub-block s and k = 0..3 a register whose dword r
 * is bytes 16 s + 4k .. + 3 of row r's qs (low nibbles: values 4k..4k+3 of
 * the sub-block, high: 16 + 4k ..), so one and / shift gives the 8 rows'
 * codes as quant_r8k_kern.h's tiles read them. 8 * 136 bytes: in place,
 * as Q8_0_R8.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/quant_impl.h"

int qt_packed_of(int type) {
    return type == QT_Q8_0 || type == QT_Q4_K || type == QT_Q5_K || type == QT_Q6_K || type == QT_IQ4_XS
               ? QT_PACKED + type
               : -1;
}

int qt_unpacked(int type) { return qt_is_packed(type) ? type - QT_PACKED : type; }

int qt_is_packed(int type) { return type >= QT_PACKED && qt_packed_of(type - QT_PACKED) == type; }

/* Byte offsets in a group of 8 IQ4_XS rows packed: super-block b's header
 * fields and its codes of sub-block s, dword k. */
static size_t p4_at(int64_t b) { return (size_t)b * QP4_SB; }

/* The 8 IQ4_XS rows at src into one group at dst (or back with unpack). */
static void pack_group_iq4_xs(uint8_t *dst, const uint8_t *src, size_t row_bytes, int64_t nb) {
    for (int r = 0; r < QPACK_ROWS; r++) {
        const block_iq4_xs *row = (const block_iq4_xs *)(src + (size_t)r * row_bytes);
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *g = dst + p4_at(b);
            memcpy(g + QP4_D + 2 * r, &row[b].d, 2);
            memcpy(g + QP4_SH + 2 * r, &row[b].scales_h, 2);
            memcpy(g + QP4_SL + 4 * r, row[b].scales_l, 4);
            for (int s = 0; s < 8; s++)
                for (int k = 0; k < 4; k++) memcpy(g + QP4_CODES + s * 128 + k * 32 + 4 * r, row[b].qs + 16 * s + 4 * k, 4);
        }
    }
}

/* n bytes between a group (at) and a row's block (raw), either way. */
static void mv(uint8_t *at, uint8_t *raw, size_t n, int to_group) {
    if (to_group) memcpy(at, raw, n);
    else memcpy(raw, at, n);
}

/* Row r's super-block of a Q4_K group g (blk) to or from its packed place
 * (to_group: into g). */
static void move_q4_k(uint8_t *g, int r, block_q4_K *blk, int to_group) {
    for (int q = 0; q < 4; q++) mv(g + QPK_HEAD + 32 * q + 4 * r, (uint8_t *)blk + 4 * q, 4, to_group);
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 8; k++) mv(g + QPK_CODES + 256 * c + 32 * k + 4 * r, blk->qs + 32 * c + 4 * k, 4, to_group);
}

/* The same for Q5_K. */
static void move_q5_k(uint8_t *g, int r, block_q5_K *blk, int to_group) {
    for (int q = 0; q < 4; q++) mv(g + QPK_HEAD + 32 * q + 4 * r, (uint8_t *)blk + 4 * q, 4, to_group);
    for (int k = 0; k < 8; k++) mv(g + QP5_QH + 32 * k + 4 * r, blk->qh + 4 * k, 4, to_group);
    for (int c = 0; c < 4; c++)
        for (int k = 0; k < 8; k++) mv(g + QP5_CODES + 256 * c + 32 * k + 4 * r, blk->qs + 32 * c + 4 * k, 4, to_group);
}

/* The same for Q6_K. */
static void move_q6_k(uint8_t *g, int r, block_q6_K *blk, int to_group) {
    mv(g + QP6_D + 2 * r, (uint8_t *)&blk->d, 2, to_group);
    for (int q = 0; q < 4; q++) mv(g + QP6_SC + 32 * q + 4 * r, (uint8_t *)blk->scales + 4 * q, 4, to_group);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 8; k++) {
            for (int e = 0; e < 2; e++)
                mv(g + QP6_QL + 256 * (2 * h + e) + 32 * k + 4 * r, blk->ql + 64 * h + 32 * e + 4 * k, 4, to_group);
            mv(g + QP6_QH + 256 * h + 32 * k + 4 * r, blk->qh + 32 * h + 4 * k, 4, to_group);
        }
}

static void pack_group_k(int type, uint8_t *dst, uint8_t *src, size_t row_bytes, int64_t nb) {
    for (int r = 0; r < QPACK_ROWS; r++) {
        uint8_t *row = src + (size_t)r * row_bytes;
        for (int64_t b = 0; b < nb; b++)
            if (type == QT_Q4_K)
                move_q4_k(dst + (size_t)b * QPK_SB, r, (block_q4_K *)row + b, 1);
            else if (type == QT_Q5_K)
                move_q5_k(dst + (size_t)b * QP5_SB, r, (block_q5_K *)row + b, 1);
            else
                move_q6_k(dst + (size_t)b * QP6_SB, r, (block_q6_K *)row + b, 1);
    }
}

/* The 8 rows at src (row_bytes apart) into one group at dst. */
static void pack_group_q8_0(uint8_t *dst, const uint8_t *src, size_t row_bytes, int64_t nb) {
    for (int r = 0; r < QPACK_ROWS; r++) {
        const block_q8_0 *row = (const block_q8_0 *)(src + (size_t)r * row_bytes);
        for (int64_t b = 0; b < nb; b++) {
            uint8_t *codes = dst + qp8_codes_at(nb, b);
            for (int k = 0; k < 8; k++) memcpy(codes + k * 32 + r * 4, row[b].qs + 4 * k, 4);
            memcpy(dst + qp8_scales_at(nb, b) + r * 2, &row[b].d, 2);
        }
    }
}

int quant_pack(int type, void *W, int64_t rows, int64_t cols) {
    const size_t rb = quant_row_bytes(type, cols);
    if (qt_packed_of(type) < 0 || !rb || rows <= 0 || rows % QPACK_ROWS) return -1;
    const size_t gb = rb * QPACK_ROWS;
    uint8_t *tmp = malloc(gb);
    if (!tmp) return -1;
    for (int64_t g = 0; g < rows / QPACK_ROWS; g++) {
        uint8_t *at = (uint8_t *)W + (size_t)g * gb;
        memcpy(tmp, at, gb);
        if (type == QT_IQ4_XS)
            pack_group_iq4_xs(at, tmp, rb, (int64_t)(cols / QK_K));
        else if (type == QT_Q4_K || type == QT_Q5_K || type == QT_Q6_K)
            pack_group_k(type, at, tmp, rb, (int64_t)(cols / QK_K));
        else
            pack_group_q8_0(at, tmp, rb, (int64_t)(cols / 32));
    }
    free(tmp);
    return 0;
}

void quant_unpack_row(int ptype, const void *W, int64_t row, int64_t cols, void *dst) {
    const size_t rb = quant_row_bytes(ptype, cols);
    const uint8_t *g = (const uint8_t *)W + (size_t)(row / QPACK_ROWS) * QPACK_ROWS * rb;
    const int r = (int)(row % QPACK_ROWS);
    if (ptype == QT_IQ4_XS_R8) {
        block_iq4_xs *o4 = dst;
        for (int64_t b = 0; b < cols / QK_K; b++) {
            const uint8_t *p = g + p4_at(b);
            memcpy(&o4[b].d, p + QP4_D + 2 * r, 2);
            memcpy(&o4[b].scales_h, p + QP4_SH + 2 * r, 2);
            memcpy(o4[b].scales_l, p + QP4_SL + 4 * r, 4);
            for (int s = 0; s < 8; s++)
                for (int k = 0; k < 4; k++) memcpy(o4[b].qs + 16 * s + 4 * k, p + QP4_CODES + s * 128 + k * 32 + 4 * r, 4);
        }
        return;
    }
    if (ptype == QT_Q4_K_R8 || ptype == QT_Q5_K_R8 || ptype == QT_Q6_K_R8) {
        for (int64_t b = 0; b < cols / QK_K; b++)
            if (ptype == QT_Q4_K_R8)
                move_q4_k((uint8_t *)g + (size_t)b * QPK_SB, r, (block_q4_K *)dst + b, 0);
            else if (ptype == QT_Q5_K_R8)
                move_q5_k((uint8_t *)g + (size_t)b * QP5_SB, r, (block_q5_K *)dst + b, 0);
            else
                move_q6_k((uint8_t *)g + (size_t)b * QP6_SB, r, (block_q6_K *)dst + b, 0);
        return;
    }
    const int64_t nb = cols / 32;
    block_q8_0 *out = dst;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = g + qp8_codes_at(nb, b);
        for (int k = 0; k < 8; k++) memcpy(out[b].qs + 4 * k, codes + k * 32 + r * 4, 4);
        memcpy(&out[b].d, g + qp8_scales_at(nb, b) + r * 2, 2);
    }
}

_Static_assert(QT_Q8_0_R8 == 1032 && QT_Q4_K_R8 == 1036 && QT_Q5_K_R8 == 1037 && QT_Q6_K_R8 == 1038 && QT_IQ4_XS_R8 == 1047, "dtype.h's DTYPE_PACKED_LIST names the packed types by their values");
_Static_assert(QP4_CODES + 8 * 128 == 8 * sizeof(block_iq4_xs), "an IQ4_XS_R8 super-block is its 8 rows' bytes");
_Static_assert(QPK_CODES + 4 * 256 == QPK_SB && QPK_SB == 8 * sizeof(block_q4_K), "a Q4_K_R8 super-block is its 8 rows' bytes");
_Static_assert(QP6_QH + 2 * 256 == QP6_SB && QP6_SB == 8 * sizeof(block_q6_K), "a Q6_K_R8 super-block is its 8 rows' bytes");
_Static_assert(QP5_CODES + 4 * 256 == QP5_SB && QP5_SB == 8 * sizeof(block_q5_K), "a Q5_K_R8 super-block is its 8 rows' bytes");
