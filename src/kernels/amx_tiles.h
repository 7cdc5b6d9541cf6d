/*
 * amx_tiles.h - the tile configuration both AMX product files load
 * (quant_amx_avx512.c: Q4_0/Q8_0; quant_amx_k_avx512.c: Q4_K): two sets of
 * three tiles, tmm0/3: C, int32 [16 W rows][16 x rows]; tmm1/4: A, codes
 * [16 W rows][32]; tmm2/5: B, codes [8][16 x rows][4]. Include only from
 * files compiled for amx-tile.
 */
#ifndef MOE_KERNELS_AMX_TILES_H
#define MOE_KERNELS_AMX_TILES_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_cfg;

static inline void amx_config(void) {
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int s = 0; s < 6; s += 3) {
        c.rows[s] = 16, c.colsb[s] = 64;
        c.rows[s + 1] = 16, c.colsb[s + 1] = 32;
        c.rows[s + 2] = 8, c.colsb[s + 2] = 64;
    }
    _tile_loadconfig(&c);
}

#endif
