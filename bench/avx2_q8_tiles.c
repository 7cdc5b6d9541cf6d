/*
 * avx2_q8_tiles.c - tiles of the signed 8-bit products (Q8_0 blocks of 32,
 * each block's int32 sums scaled in f32 as quant_r8_avx2.c's r8_tile does)
 * with every operand in L1, one core: which register layout could beat the
 * sign trick on a CPU with AVX2 and no VNNI. A chunk of 16 blocks of 8 W
 * rows (one "group") or two; the codes random, the time independent of them.
 *
 *   gcc -O2 -mavx2 -mfma -mf16c bench/avx2_q8_tiles.c -o /tmp/q8_tiles && /tmp/q8_tiles [iters]
 *
 * The tiles:
 *  sign-4x1   r8_tile's: 4 rows of x by one group, int8 codes, per 32
 *             products vpsignb + vpmaddubsw + vpmaddwd + vpaddd (vpabsb
 *             once per W register), x broadcast 4 bytes at a time
 *  sign-3x2   the same, 3 rows of x by two groups sharing each broadcast
 *  i16-3x2    W as int16 (a buffer twice the size, 8 rows x 2 columns a
 *             register), x as int16: vpmaddwd + vpaddd per 16 products,
 *             3 rows of x by two groups
 *  i16-4x1    the same, 4 rows of x by one group
 *  i16cvt-3x2 i16-3x2 with W widened from the int8 layout inside the tile
 *             (vpmovsxbw and two permutes per W register, shared by 3 rows)
 *  i16x8-3x2  i16-3x2 with x kept as int8, each pair widened as it is
 *             broadcast (vpbroadcastw + vpmovsxbw, shared by the 2 groups)
 * GOP/s = 2 x products / time; compare with `moe bench --probe-only
 * --threads 1`'s int8 peak and with bench/avx2_int8_mix.c.
 */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AI static inline __attribute__((always_inline))
#define PIN(x) __asm__("" : "+x"(x))
#define KC 16 /* blocks of 32 a chunk */

static __m256i W8[2][KC][8] __attribute__((aligned(64)));   /* int8: 8 rows x 4 columns a register */
static __m256i W16[2][KC][16] __attribute__((aligned(64))); /* int16: 8 rows x 2 columns a register */
static __m256 D[2][KC];                                     /* the W rows' block scales */
static int8_t X8[4][KC * 32] __attribute__((aligned(64)));
static int16_t X16[4][KC * 32] __attribute__((aligned(64)));
static float DX[4][KC];

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

AI __m256i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* acc[i][g] += float(t[i][g]) * (d_g * dx_i), block b */
#define SCALE(NX, NG)                                                                                            \
    for (int i = 0; i < NX; i++)                                                                                 \
        for (int g = 0; g < NG; g++)                                                                             \
            acc[i][g] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t[i][g]), _mm256_mul_ps(D[g][b], _mm256_set1_ps(DX[i][b])), \
                                        acc[i][g])
#define STORE(NX, NG)                                                                                            \
    for (int i = 0; i < NX; i++)                                                                                 \
        for (int g = 0; g < NG; g++) _mm256_storeu_ps(y + 16 * i + 8 * g, acc[i][g])

/* W rows 0..7, columns 4k..4k+3 of an int8 register as two int16
 * registers: columns 4k, 4k+1 and 4k+2, 4k+3 of rows 0..7 */
AI void widen(const __m256i *q, __m256i *c01, __m256i *c23) {
    const __m256i lo = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)q));
    const __m256i hi = _mm256_cvtepi8_epi16(_mm_load_si128((const __m128i *)q + 1));
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i pl = _mm256_permutevar8x32_epi32(lo, idx), ph = _mm256_permutevar8x32_epi32(hi, idx);
    *c01 = _mm256_permute2x128_si256(pl, ph, 0x20);
    *c23 = _mm256_permute2x128_si256(pl, ph, 0x31);
}

/* The int8 pair of x at p as int16 in every dword. */
AI __m256i bcast2w(const int8_t *p) {
    int16_t v;
    memcpy(&v, p, 2);
    return _mm256_cvtepi8_epi16(_mm_set1_epi16(v));
}

enum { SIGN, I16, I16_CVT, I16_X8 };

/* NX rows of x by NG groups: SIGN, the sign trick on int8 codes; I16,
 * int16 products on W and x widened beforehand; I16_CVT, W widened in the
 * tile; I16_X8, x widened from int8 at each broadcast */
AI void tile(const int MODE, const int NX, const int NG, float *y) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4][2];
    for (int i = 0; i < NX; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int b = 0; b < KC; b++) {
        __m256i t[4][2];
        for (int i = 0; i < NX; i++) t[i][0] = t[i][1] = _mm256_setzero_si256();
        if (MODE == SIGN) {
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                __m256i w[2], a[2];
                for (int g = 0; g < NG; g++) {
                    w[g] = _mm256_load_si256(&W8[g][b][k]);
                    a[g] = _mm256_abs_epi8(w[g]);
                }
#pragma GCC unroll 4
                for (int i = 0; i < NX; i++) {
                    const __m256i xb = bcast4(&X8[i][32 * b + 4 * k]);
#pragma GCC unroll 2
                    for (int g = 0; g < NG; g++) {
                        const __m256i p = _mm256_maddubs_epi16(a[g], _mm256_sign_epi8(xb, w[g]));
                        t[i][g] = _mm256_add_epi32(t[i][g], _mm256_madd_epi16(p, ones));
                        PIN(t[i][g]);
                    }
                }
            }
        } else {
#pragma GCC unroll 8
            for (int k2 = 0; k2 < 8; k2++) {
                __m256i c[2][2];
                for (int g = 0; g < NG; g++) {
                    if (MODE == I16_CVT) {
                        widen(&W8[g][b][k2], &c[g][0], &c[g][1]);
                    } else {
                        c[g][0] = _mm256_load_si256(&W16[g][b][2 * k2]);
                        c[g][1] = _mm256_load_si256(&W16[g][b][2 * k2 + 1]);
                    }
                }
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    const int k = 2 * k2 + h;
                    __m256i w[2];
                    for (int g = 0; g < NG; g++) {
                        w[g] = c[g][h];
                        PIN(w[g]);
                    }
#pragma GCC unroll 4
                    for (int i = 0; i < NX; i++) {
                        const __m256i xb =
                            MODE == I16_X8 ? bcast2w(&X8[i][32 * b + 2 * k]) : bcast4(&X16[i][32 * b + 2 * k]);
#pragma GCC unroll 2
                        for (int g = 0; g < NG; g++) {
                            t[i][g] = _mm256_add_epi32(t[i][g], _mm256_madd_epi16(w[g], xb));
                            PIN(t[i][g]);
                        }
                    }
                }
            }
        }
        SCALE(NX, NG);
    }
    STORE(NX, NG);
}

static __attribute__((noinline)) void sign_4x1(float *y) { tile(SIGN, 4, 1, y); }
static __attribute__((noinline)) void sign_3x2(float *y) { tile(SIGN, 3, 2, y); }
static __attribute__((noinline)) void i16_3x2(float *y) { tile(I16, 3, 2, y); }
static __attribute__((noinline)) void i16_4x1(float *y) { tile(I16, 4, 1, y); }
static __attribute__((noinline)) void i16cvt_3x2(float *y) { tile(I16_CVT, 3, 2, y); }
static __attribute__((noinline)) void i16x8_3x2(float *y) { tile(I16_X8, 3, 2, y); }

int main(int argc, char **argv) {
    const long iters = argc > 1 ? atol(argv[1]) : 100000;
    if (iters < 1) return 1;
    srand(1);
    for (size_t i = 0; i < sizeof W8; i++) ((int8_t *)W8)[i] = (int8_t)(rand() % 255 - 127);
    for (size_t i = 0; i < sizeof W16 / 2; i++) ((int16_t *)W16)[i] = (int16_t)(rand() % 255 - 127);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < KC * 32; j++) X16[i][j] = X8[i][j] = (int8_t)(rand() % 255 - 127);
    for (int b = 0; b < KC; b++) {
        D[0][b] = D[1][b] = _mm256_set1_ps(0.01f);
        for (int i = 0; i < 4; i++) DX[i][b] = 0.02f;
    }
    static const struct {
        const char *name;
        void (*fn)(float *);
        int rows; /* rows of x x rows of W */
    } tiles[] = {{"sign-4x1", sign_4x1, 4 * 8},
                 {"sign-3x2", sign_3x2, 3 * 16},
                 {"i16-3x2", i16_3x2, 3 * 16},
                 {"i16-4x1", i16_4x1, 4 * 8},
                 {"i16cvt-3x2", i16cvt_3x2, 3 * 16},
                 {"i16x8-3x2", i16x8_3x2, 3 * 16}};
    float y[64];
    for (size_t m = 0; m < sizeof tiles / sizeof tiles[0]; m++) {
        double best = 1e9;
        for (int r = 0; r < 5; r++) {
            const double t0 = now();
            for (long it = 0; it < iters; it++) {
                tiles[m].fn(y);
                __asm__ volatile("" ::"r"(y) : "memory");
            }
            const double t = now() - t0;
            if (t < best) best = t;
        }
        const double ops = 2.0 * KC * 32 * tiles[m].rows * (double)iters;
        printf("%-11s %6.1f GOP/s\n", tiles[m].name, ops / best / 1e9);
    }
    return 0;
}
