/*
 * test_quant_amx_k.c - the activations of Q4_K products on AMX: the tile
 * layout (quant_impl.h, QT_TILE_BLOCK_K) holds the row layout's Q8_K
 * codes, the sums of each 32 codes and the scale, padding rows zero. The
 * products themselves are held to the reference in test_quant.c.
 */
#include "test.h"
#include "kernels/kernels.h"
#include "kernels/quant.h"
#include "kernels/quant_impl.h"
#include "kern_pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float next_val(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f - 0.5f;
}

TEST(quant_amx_k_tile_activations) {
    if (!kernels_cfg(ISA_AVX512, 0, 0)) SKIP("no AVX-512");
    pool *scalar = kern_pool(1, ISA_SCALAR);
    uint32_t seed = 73;
    const int64_t K = 768, nb = K / QK_K, N = 3;
    float *x = malloc(sizeof(float) * (size_t)(N * K));
    for (int64_t i = 0; i < N * K; i++) x[i] = 4.0f * next_val(&seed);
    for (int k = 0; k < QK_K; k++) x[K + k] = 0;                  /* a zero block */
    for (int k = 0; k < 32; k++) x[2 * K + QK_K + k] = 127.0f;    /* sums of 32 of the largest magnitude */
    x[2 * K + 2 * QK_K + 5] = -50.0f;                              /* a negative extreme */
    size_t rs = qact_size(QT_Q4_K, N, K);
    unsigned char *rw = malloc(rs);
    qact_quantize(scalar, rw, x, QT_Q4_K, N, K);
    const qx_k *r0 = (const qx_k *)(((uintptr_t)rw + 63) & ~(uintptr_t)63);
    for (int64_t nx = 1; nx <= N; nx++) {
        size_t ts = qtile_stride_of(QT_Q4_K, K);
        unsigned char *a = aligned_alloc(64, ts);
        memset(a, 0x5A, ts);
        amx_qact_tile_k(a, x, nx, K);
        int bad = 0;
        for (int64_t j = 0; j < QT_TILE_N; j++)
            for (int64_t bl = 0; bl < nb; bl++) {
                const unsigned char *blk = a + bl * QT_TILE_BLOCK_K;
                const qx_k *q = j < nx ? &r0[j * nb + bl] : NULL;
                float d, dr = q ? q->d : 0.0f;
                memcpy(&d, blk + 4352 + 4 * j, 4);
                bad += memcmp(&d, &dr, 4) != 0;
                for (int sb = 0; sb < 8; sb++) {
                    int16_t bs;
                    memcpy(&bs, blk + 4096 + 2 * ((sb / 2) * 32 + 2 * j + sb % 2), 2);
                    bad += bs != (q ? q->bsums[2 * sb] + q->bsums[2 * sb + 1] : 0);
                    for (int e = 0; e < 32; e++) {
                        int8_t c = (int8_t)blk[512 * sb + (e / 4) * 64 + j * 4 + e % 4];
                        bad += c != (q ? q->qs[32 * sb + e] : 0);
                    }
                }
            }
        CHECK_MSG(bad == 0, "nx=%lld: %d Q4_K tile values differ from the row layout", (long long)nx, bad);
        free(a);
    }
    free(rw);
    free(x);
    pool_free(scalar);
}
