/*
 * quant_pack.c - weights interleaved once, at load, for the 8-row AVX2
 * kernels (quant.h: "Interleaved weights").
 *
 * The 8-row AVX2 kernels (quant_r8_avx2.c) take the products of a few rows
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
 */
#include <stdlib.h>
#include <string.h>

#include "kernels/quant.h"
#include "kernels/quant_impl.h"

int qt_packed_of(int type) { return type == QT_Q8_0 ? QT_Q8_0_R8 : -1; }

int qt_unpacked(int type) { return type == QT_Q8_0_R8 ? QT_Q8_0 : type; }

int qt_is_packed(int type) { return type == QT_Q8_0_R8; }

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
        pack_group_q8_0(at, tmp, rb, (int64_t)(cols / 32));
    }
    free(tmp);
    return 0;
}

void quant_unpack_row(int ptype, const void *W, int64_t row, int64_t cols, void *dst) {
    const size_t rb = quant_row_bytes(ptype, cols);
    const uint8_t *g = (const uint8_t *)W + (size_t)(row / QPACK_ROWS) * QPACK_ROWS * rb;
    const int r = (int)(row % QPACK_ROWS);
    const int64_t nb = cols / 32;
    block_q8_0 *out = dst;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *codes = g + qp8_codes_at(nb, b);
        for (int k = 0; k < 8; k++) memcpy(out[b].qs + 4 * k, codes + k * 32 + r * 4, 4);
        memcpy(&out[b].d, g + qp8_scales_at(nb, b) + r * 2, 2);
    }
}

_Static_assert(QT_Q8_0_R8 == 1032, "dtype.h's DTYPE_PACKED_LIST names QT_Q8_0_R8 by its value");
