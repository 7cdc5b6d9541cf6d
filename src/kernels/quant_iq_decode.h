/*
 * quant_iq_decode.h - what the vector kernels of the grid i-quants
 * (quant_iq_avx2.c, quant_iq_avx512.c) share: the one shape they unpack a
 * block of any of the seven types into, and the scalar helpers for it.
 *
 * The shape: 256 magnitudes g (bytes), 256 sign bits, an odd integer scale
 * per 16 values and one f32 factor d, so that
 *   value k = d * sc[k / 16] * g[k] * (sign bit k ? -1 : 1)
 * exactly as dequantize_row_* (quant_iq.c) defines it: d is the block's f16
 * scale times the type's power of two (1/8, 1/4 or 1), exact in f32. The
 * IQ2_* and IQ3_* magnitudes are their grid rows; IQ1_S and IQ1_M (grid
 * values -1, 0, 1 shifted by +-1/8 per group) give eight times each value,
 * 8 g +- 1, with 1/8 in d. A block is unpacked once and then dotted with
 * every row of activations.
 */
#ifndef MOE_KERNELS_QUANT_IQ_DECODE_H
#define MOE_KERNELS_QUANT_IQ_DECODE_H

#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_iq.h"

static inline uint16_t iq_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t iq_rd32(const uint8_t *p) {
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Bytes of 7 stored sign bits each -> with their 8th bit (iq_ksigns: set
 * when the 7 have an odd count), computed rather than looked up: the xor
 * folds leave each byte's parity in its bit 0. */
static inline uint64_t iq_parity_signs(uint64_t b) {
    uint64_t p = b ^ b >> 4;
    p ^= p >> 2;
    p ^= p >> 1;
    return b | (p & 0x0101010101010101ULL) << 7;
}

/* The 4 sign bytes of IQ2_XXS / IQ3_XXS's u32 (4 x 7 bits, then the scale). */
static inline uint32_t iq_ksigns4(uint32_t ss) {
    const uint32_t b = (ss & 0x7f) | (ss << 1 & 0x7f00) | (ss << 2 & 0x7f0000) | (ss << 3 & 0x7f000000);
    return (uint32_t)iq_parity_signs(b);
}

#endif
