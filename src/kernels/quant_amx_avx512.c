/*
 * quant_amx_avx512.c - the many-row products (prefill) of the 32-block
 * weights with one scale per block, Q4_0 / Q8_0 / Q5_0 / IQ4_NL, on AMX-INT8
 * (Sapphire Rapids and later; the 256-block types' are in
 * quant_amx_k_avx512.c and quant_amx_k6_avx512.c). Runs only when quant.c
 * has seen amx_init() succeed; tested against the scalar reference like
 * every other path (tests/test_quant.c).
 *
 * One tdpbssd multiplies a tile of 16 W rows x one 32-block (A: signed
 * bytes, 16 rows of 32) by the same block of 16 rows of x (B: the tile
 * layout of quant_impl.h, 8 rows of 16 x 4 bytes) into 16 x 16 exact int32
 * sums, 8192 multiply-adds in one instruction. The per-block scales are what
 * AMX cannot do: each block's sums go to memory (tilestored) and AVX-512
 * scales them, sum * dx (16 x rows) * dw (one W row), into 16 f32
 * accumulators of 16 x rows each. So the cost is about 3 vector operations
 * per W row and block, whatever the number of x rows up to 16.
 *
 * A comes straight from the GGUF bytes for Q8_0 (the codes of a block in 16
 * rows are 32 bytes at a stride of the row size); the other types' codes,
 * and a last partial group of rows, are first unpacked into a small buffer
 * as the signed values the reference multiplies (Q4_0: nibble - 8; Q5_0:
 * five bits - 16; IQ4_NL: kvalues_iq4nl[nibble]), zero rows below 16. The
 * K dimension goes in chunks of KC blocks, with the accumulators of up to
 * NTS x tiles kept in memory between chunks.
 *
 * Each output is computed the same way wherever a thread's range of rows
 * starts (ranges start on multiples of 16 rows), so results do not depend on
 * the number of threads.
 */
#include <immintrin.h>
#include <stdalign.h>
#include <string.h>

#if defined(__linux__) && defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "base/dtype.h"
#include "kernels/quant_impl.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni,amx-tile,amx-int8"))), apply_to = function)
#else
#pragma GCC target("avx512vnni,amx-tile,amx-int8")
#endif

#include "kernels/amx_tiles.h" /* after the target pragma: its functions use AMX */

#define AI static inline __attribute__((always_inline))

/* ------------------------------------------------------------ set-up */

int amx_init(void) {
#if defined(__linux__) && defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(d & (1u << 24)) || !(d & (1u << 25))) return 0; /* AMX-TILE, AMX-INT8 */
    /* Linux hands out the 8 KiB tile state only on request (ARCH_REQ_XCOMP_PERM,
     * feature 18 = XTILEDATA); the permission is the whole process's. */
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
    return 0;
#endif
}

/* amx_cfg and amx_config: amx_tiles.h (two sets: even and odd blocks) */

/* ------------------------------------------------------------ kernel */

#define KC 16  /* 32-blocks per K chunk: the unpacked A is 16 x 512 bytes */
#define NTS 8  /* x tiles per pass (their accumulators: 8 KiB) */
#define GR AMX_GR

AI uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Codes - 8 of Q4_0 blocks b, b+1 (two = 0: only b) in value order. */
AI __m512i q4_0_pair_signed(const uint8_t *blk, int two) {
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(blk + 2)));
    if (two) v = _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(blk + 20)));
    v = _mm512_mask_srli_epi16(v, 0xFF00FF00u, v, 4);
    return _mm512_sub_epi8(_mm512_and_si512(v, _mm512_set1_epi8(0x0F)), _mm512_set1_epi8(8));
}

/* The values of one Q5_0 or IQ4_NL block in value order, from its 16 bytes
 * of nibbles (element j: low nibble of byte j, j + 16: high). */
AI __m256i q5_iq4_signed(const uint8_t *blk, int type) {
    const int iq = type == QT_IQ4_NL;
    const __m128i q = _mm_loadu_si128((const __m128i *)(blk + (iq ? offsetof(block_iq4_nl, qs) : offsetof(block_q5_0, qs))));
    __m256i v = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
    if (iq) return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kvalues_iq4nl)), v);
    uint32_t qh; /* fifth bit set: the nibble is the value; clear: nibble - 16 */
    memcpy(&qh, blk + offsetof(block_q5_0, qh), 4);
    return _mm256_mask_sub_epi8(v, (__mmask32)~qh, v, _mm256_set1_epi8(16));
}

/* Bytes of one block of a type this file takes. */
AI size_t block_bytes(int type) {
    return type == QT_Q4_0 ? sizeof(block_q4_0) : type == QT_Q8_0 ? sizeof(block_q8_0)
         : type == QT_Q5_0 ? sizeof(block_q5_0) : sizeof(block_iq4_nl);
}

/* The scales of blocks [c0, c0 + kc) of rows g..g+rv as f32 dwf[b][row]
 * (0 for rows >= rv), and, unless A is read in place, the codes as signed
 * bytes a[row][32 b ..] (zero rows >= rv). */
static void prep_chunk(const qmm_job *j, const uint8_t *Wg, int rv, int64_t c0, int kc, int in_place,
                       int8_t *a, float (*dwf)[GR]) {
    const int q4 = j->type == QT_Q4_0;
    const size_t bb = block_bytes(j->type);
    alignas(64) uint16_t dh[KC][GR];
    for (int m = 0; m < GR; m++) {
        int8_t *am = a + m * KC * 32;
        if (m >= rv) {
            for (int b = 0; b < kc; b++) dh[b][m] = 0;
            if (!in_place) memset(am, 0, (size_t)kc * 32);
            continue;
        }
        const uint8_t *row = Wg + (size_t)m * j->w_row + (size_t)c0 * bb;
        for (int b = 0; b < kc; b++) dh[b][m] = rd16(row + (size_t)b * bb);
        if (in_place) continue;
        if (q4) {
            for (int b = 0; b < kc; b += 2) {
                const int two = b + 1 < kc;
                __m512i v = q4_0_pair_signed(row + (size_t)b * bb, two);
                if (two)
                    _mm512_storeu_si512((void *)(am + 32 * b), v);
                else
                    _mm256_storeu_si256((__m256i *)(am + 32 * b), _mm512_castsi512_si256(v));
            }
        } else if (j->type == QT_Q8_0) {
            for (int b = 0; b < kc; b++)
                _mm256_storeu_si256((__m256i *)(am + 32 * b), _mm256_loadu_si256((const __m256i *)(row + (size_t)b * bb + 2)));
        } else {
            for (int b = 0; b < kc; b++)
                _mm256_storeu_si256((__m256i *)(am + 32 * b), q5_iq4_signed(row + (size_t)b * bb, j->type));
        }
    }
    for (int b = 0; b < kc; b++) _mm512_store_ps(dwf[b], _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)dh[b])));
}

/* The sums of one block (A at a, stride as; B at xb) into tile C, on tile
 * set C, A, B (the intrinsics take literal tile numbers); AMX_STORE puts C
 * in memory for the scaling. Two blocks' products go first, then both
 * stores, then both scalings: 5-8% faster on a hot [1024][2048] Q8_0
 * matrix than a pipeline that stores each block between the other's
 * product and scaling. */
#define AMX_PRODUCT(C, A, B, a, as, xb)              \
    do {                                             \
        _tile_loadd(A, (a), (long)(as));             \
        _tile_loadd(B, (xb), 64);                    \
        _tile_zero(C);                               \
        _tile_dpbssd(C, A, B);                       \
    } while (0)
#define AMX_STORE(C, cb) _tile_stored(C, (cb), 64)

/* acc[m] += cb[m] * dx * dw[m] for the 16 W rows. */
AI void scale_block(__m512 *acc, const int32_t (*cb)[16], const uint8_t *xblk, const float *dw) {
    const __m512 dx = _mm512_load_ps((const float *)(xblk + 512));
#pragma GCC unroll 16
    for (int m = 0; m < GR; m++) {
        __m512 s = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512((const void *)cb[m])), dx);
        acc[m] = _mm512_fmadd_ps(s, _mm512_set1_ps(dw[m]), acc[m]);
    }
}

/* W rows g..g+rv (rv <= GR) against all n rows of x. */
static void amx_group(const qmm_job *j, int64_t g, int rv) {
    const size_t bb = block_bytes(j->type);
    const int64_t nb = j->cols / 32, ntile = (j->n + QT_TILE_N - 1) / QT_TILE_N;
    const int in_place = j->type == QT_Q8_0 && rv == GR;
    const uint8_t *Wg = j->W + (size_t)g * j->w_row;
    alignas(64) int8_t a[GR * KC * 32];
    alignas(64) float dwf[KC][GR];
    alignas(64) int32_t cb[2][GR][16];
    alignas(64) float accm[NTS][GR][16];
    /* The weights stream from memory once (an expert's W meets only a few
     * x tiles): the next group's rows, one contiguous run, are fetched into
     * L2 line by line over this group's first pass. */
    const uint8_t *pf = Wg + (size_t)GR * j->w_row;
    const int64_t pf_rows = j->rows - g - GR < GR ? j->rows - g - GR : GR;
    const size_t pf_len = pf_rows > 0 ? (size_t)pf_rows * j->w_row : 0;
    size_t pf_at = 0;
    for (int64_t t0 = 0; t0 < ntile; t0 += NTS) {
        const int nts = ntile - t0 < NTS ? (int)(ntile - t0) : NTS;
        for (int64_t c0 = 0; c0 < nb; c0 += KC) {
            const int kc = nb - c0 < KC ? (int)(nb - c0) : KC;
            prep_chunk(j, Wg, rv, c0, kc, in_place, a, dwf);
            for (int t = 0; t < nts; t++) {
                const uint8_t *xt = j->xq + (size_t)(t0 + t) * j->xq_row + (size_t)c0 * QT_TILE_BLOCK;
                __m512 acc[GR];
#pragma GCC unroll 16
                for (int m = 0; m < GR; m++) acc[m] = c0 ? _mm512_load_ps(accm[t][m]) : _mm512_setzero_ps();
                /* blocks in pairs: both products, both stores, both scalings */
                const uint8_t *ab = in_place ? Wg + (size_t)c0 * bb + 2 : (const uint8_t *)a;
                const size_t as = in_place ? j->w_row : KC * 32, astep = in_place ? bb : 32;
                for (int b = 0; b < kc; b += 2) {
                    const int more = b + 1 < kc;
                    AMX_PRODUCT(0, 1, 2, ab + b * astep, as, xt + (size_t)b * QT_TILE_BLOCK);
                    if (more) AMX_PRODUCT(3, 4, 5, ab + (b + 1) * astep, as, xt + (size_t)(b + 1) * QT_TILE_BLOCK);
                    AMX_STORE(0, cb[0]);
                    if (more) AMX_STORE(3, cb[1]);
                    if (t0 == 0 && t == 0) { /* up to the share of blocks done so far */
                        const size_t want = pf_len * (size_t)(c0 + b + 2) / (size_t)nb;
                        for (; pf_at < want; pf_at += 64) _mm_prefetch((const char *)pf + pf_at, _MM_HINT_T1);
                    }
                    scale_block(acc, (const int32_t(*)[16])cb[0], xt + (size_t)b * QT_TILE_BLOCK, dwf[b]);
                    if (more) scale_block(acc, (const int32_t(*)[16])cb[1], xt + (size_t)(b + 1) * QT_TILE_BLOCK, dwf[b + 1]);
                }
#pragma GCC unroll 16
                for (int m = 0; m < GR; m++) _mm512_store_ps(accm[t][m], acc[m]);
            }
        }
        amx_put_group(j, g, rv, t0, nts, (const float(*)[GR][16])accm);
    }
}

void amx_qmm_rows(const qmm_job *j, int64_t r0, int64_t r1) { amx_rows(j, r0, r1, amx_group); }

#if defined(__clang__)
#pragma clang attribute pop
#endif
