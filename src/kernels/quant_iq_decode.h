/*
 * quant_iq_decode.h - a block of IQ2_XXS / IQ2_XS / IQ2_S / IQ3_XXS /
 * IQ3_S weights unpacked into one shape the vector kernels share: 256
 * grid magnitudes (bytes), 256 sign bits, an odd integer scale per 16
 * values and one f32 factor, so that
 *   value k = d * sc[k / 16] * g[k] * (sign bit k ? -1 : 1)
 * exactly as dequantize_row_* (quant_iq.c) defines it: d is the block's f16
 * scale times the type's power of two (1/8, 1/4 or 1), exact in f32.
 *
 * A block is unpacked once and then dotted with every row of activations
 * (quant_iq_avx2.c, quant_iq_avx512.c). IQ1_S and IQ1_M take the same
 * shape in those files (eight times each value, 8 g +- 1, as magnitude and
 * sign, with 1/8 in d), built there with vector shuffles.
 */
#ifndef MOE_KERNELS_QUANT_IQ_DECODE_H
#define MOE_KERNELS_QUANT_IQ_DECODE_H

#include <string.h>

#include "base/dtype.h"
#include "kernels/quant_iq.h"

typedef struct {
    uint8_t g[QK_K];      /* grid magnitudes */
    uint8_t sb[QK_K / 8]; /* bit j of byte k: value 8k + j is negated */
    int16_t sc[QK_K / 16];/* odd integer scale of each 16 values */
    float d;              /* f16 d times the type's power of two */
} iq_block;

/* Whether iq_unpack handles `type`. */
static inline int iq_unpacks(int type) {
    return type == QT_IQ2_XXS || type == QT_IQ2_XS || type == QT_IQ2_S || type == QT_IQ3_XXS ||
           type == QT_IQ3_S;
}

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

/* Block `blk` of `type` (iq_unpacks(type)) into o. */
static inline void iq_unpack(int type, const uint8_t *blk, iq_block *o) {
    const float d = f16_to_f32(iq_rd16(blk));
    const uint8_t *q = blk + 2;
    switch (type) {
    case QT_IQ2_XXS: /* per 32: 4 index bytes, u32 of 4 x 7 sign bits and a scale */
        o->d = d * 0.125f;
        for (int ib = 0; ib < 8; ib++, q += 8) {
            const uint32_t ss = iq_rd32(q + 4);
            const uint32_t sg = iq_ksigns4(ss);
            for (int l = 0; l < 4; l++) memcpy(o->g + 32 * ib + 8 * l, iq2xxs_grid[q[l]], 8);
            memcpy(o->sb + 4 * ib, &sg, 4);
            o->sc[2 * ib] = o->sc[2 * ib + 1] = (int16_t)(2 * (ss >> 28) + 1);
        }
        break;
    case QT_IQ2_XS: /* u16 per 8: 9-bit index, 7 sign bits; a nibble scale per 16 */
        o->d = d * 0.125f;
        for (int k = 0; k < 32; k++) {
            const uint16_t v = iq_rd16(q + 2 * k);
            memcpy(o->g + 8 * k, iq2xs_grid[v & 511], 8);
            o->sb[k] = iq_ksigns[v >> 9];
        }
        for (int h = 0; h < 16; h++) o->sc[h] = (int16_t)(2 * (blk[66 + h / 2] >> 4 * (h % 2) & 0xf) + 1);
        break;
    case QT_IQ2_S: { /* qs[32] low index bits, signs[32], qh[8], scales[8] */
        const uint8_t *signs = q + 32, *qh = q + 64, *scales = q + 72;
        o->d = d * 0.125f;
        for (int k = 0; k < 32; k++) {
            memcpy(o->g + 8 * k, iq2s_grid[q[k] | (qh[k / 4] << (8 - 2 * (k % 4)) & 0x300)], 8);
            o->sb[k] = signs[k];
        }
        for (int h = 0; h < 16; h++) o->sc[h] = (int16_t)(2 * (scales[h / 2] >> 4 * (h % 2) & 0xf) + 1);
        break;
    }
    case QT_IQ3_XXS: { /* qs[64] indices of 4, then u32 per 32 as IQ2_XXS */
        const uint8_t *ss8 = q + 64;
        o->d = d * 0.25f;
        for (int ib = 0; ib < 8; ib++) {
            const uint32_t ss = iq_rd32(ss8 + 4 * ib);
            for (int k = 0; k < 8; k++) memcpy(o->g + 32 * ib + 4 * k, iq3xxs_grid[q[8 * ib + k]], 4);
            const uint32_t sg = iq_ksigns4(ss);
            memcpy(o->sb + 4 * ib, &sg, 4);
            o->sc[2 * ib] = o->sc[2 * ib + 1] = (int16_t)(2 * (ss >> 28) + 1);
        }
        break;
    }
    case QT_IQ3_S: { /* qs[64], qh[8], signs[32], scales[4] */
        const uint8_t *qh = q + 64, *signs = q + 72, *scales = q + 104;
        o->d = d;
        for (int k = 0; k < 64; k++) /* the ninth index bit of group k of 4 is bit k % 8 of qh[k / 8] */
            memcpy(o->g + 4 * k, iq3s_grid[q[k] | (qh[k / 8] << (8 - k % 8) & 256)], 4);
        memcpy(o->sb, signs, 32);
        for (int h = 0; h < 16; h++) o->sc[h] = (int16_t)(1 + 2 * (scales[h / 4] >> 4 * (h / 2 % 2) & 0xf));
        break;
    }
    default: break;
    }
}

#endif
