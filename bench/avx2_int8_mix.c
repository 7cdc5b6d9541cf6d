/*
 * avx2_int8_mix.c - how fast the AVX2 instruction mixes of the int8 kernels
 * run on this CPU, with no memory traffic past L1: each loop keeps 4 independent
 * accumulators ("rows of x") and 32 products per accumulator per iteration,
 * operands "changed" every iteration by an empty asm (no instruction), so
 * nothing is hoisted. Prints ns per 32 products and GOP/s on one core.
 *
 *   gcc -O2 -mavx2 bench/avx2_int8_mix.c -o /tmp/avx2_int8_mix && /tmp/avx2_int8_mix
 *
 * The mixes: the probe's (vpmaddubsw + vpaddw, the K-quants' unsigned
 * codes), the sign trick of the signed 8-bit weights (Q8_0, IQ4_XS:
 * vpabsb once per weight register, then vpsignb, vpmaddubsw, vpmaddwd,
 * vpaddd per row of x), the same with the sign applied by vpxor / vpsubb,
 * the probe's pair with x broadcast from memory as the tiles load it, the
 * sign trick's int16 pairs widened without vpmaddwd, and single operations
 * with an add, to tell which share execution pipes.
 */
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PIN(x) __asm__ volatile("" : "+x"(x))
#define N 50000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define SETUP                                                                                                   \
    __m256i w = _mm256_set1_epi8(-3), x0 = _mm256_set1_epi8(5), x1 = _mm256_set1_epi8(6);                         \
    __m256i x2 = _mm256_set1_epi8(7), x3 = _mm256_set1_epi8(8), one = _mm256_set1_epi16(1);                       \
    __m256i t0 = _mm256_setzero_si256(), t1 = t0, t2 = t0, t3 = t0;                                              \
    (void)one;                                                                                                    \
    (void)w
#define PINS PIN(w); PIN(x0); PIN(x1); PIN(x2); PIN(x3)
#define RET return _mm256_add_epi32(_mm256_add_epi32(t0, t1), _mm256_add_epi32(t2, t3))

/* vpmaddubsw + vpaddw: the int8 probe's loop */
__attribute__((noinline)) static __m256i mix_probe(void) {
    SETUP;
    for (long i = 0; i < N; i++) {
        PINS;
        t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(w, x0));
        t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(w, x1));
        t2 = _mm256_add_epi16(t2, _mm256_maddubs_epi16(w, x2));
        t3 = _mm256_add_epi16(t3, _mm256_maddubs_epi16(w, x3));
    }
    RET;
}

/* the sign trick: |w| once, then sign, vpmaddubsw, vpmaddwd, vpaddd per row */
#define SIGNED(t, x) t = _mm256_add_epi32(t, _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sign_epi8(x, w)), one))
__attribute__((noinline)) static __m256i mix_sign(void) {
    SETUP;
    for (long i = 0; i < N; i++) {
        PINS;
        const __m256i a = _mm256_abs_epi8(w);
        SIGNED(t0, x0); SIGNED(t1, x1); SIGNED(t2, x2); SIGNED(t3, x3);
    }
    RET;
}

/* the same with |w| as w & 0x7f (a sign-magnitude layout) */
__attribute__((noinline)) static __m256i mix_sign_and(void) {
    SETUP;
    const __m256i m7 = _mm256_set1_epi8(0x7f);
    for (long i = 0; i < N; i++) {
        PINS;
        const __m256i a = _mm256_and_si256(w, m7);
        SIGNED(t0, x0); SIGNED(t1, x1); SIGNED(t2, x2); SIGNED(t3, x3);
    }
    RET;
}

/* the sign applied as (x ^ m) - m, m = w < 0, instead of vpsignb */
#define XORSUB(t, x) \
    t = _mm256_add_epi32(t, _mm256_madd_epi16(_mm256_maddubs_epi16(a, _mm256_sub_epi8(_mm256_xor_si256(x, m), m)), one))
__attribute__((noinline)) static __m256i mix_xorsub(void) {
    SETUP;
    for (long i = 0; i < N; i++) {
        PINS;
        const __m256i a = _mm256_abs_epi8(w), m = _mm256_cmpgt_epi8(_mm256_setzero_si256(), w);
        XORSUB(t0, x0); XORSUB(t1, x1); XORSUB(t2, x2); XORSUB(t3, x3);
    }
    RET;
}

/* the probe's pair with each row's 4 bytes of x broadcast from memory
 * (vpbroadcastd ymm, m32), as the interleaved tiles take them */
static int8_t xmem[4096] __attribute__((aligned(64)));
#define PINR(p) __asm__ volatile("" : "+r"(p))
static inline __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
__attribute__((noinline)) static __m256i mix_probe_xmem(void) {
    SETUP;
    const int8_t *p = xmem;
    for (long i = 0; i < N; i++) {
        PINS;
        PINR(p);
        t0 = _mm256_add_epi16(t0, _mm256_maddubs_epi16(w, bcast4(p)));
        t1 = _mm256_add_epi16(t1, _mm256_maddubs_epi16(w, bcast4(p + 64)));
        t2 = _mm256_add_epi16(t2, _mm256_maddubs_epi16(w, bcast4(p + 128)));
        t3 = _mm256_add_epi16(t3, _mm256_maddubs_epi16(w, bcast4(p + 192)));
    }
    RET;
}

/* the sign trick with the int16 pairs widened without vpmaddwd (which
 * shares the multiplier's pipes): the low halves sign-extended by shifts
 * (t += (p << 16) >> 16, h += p >> 16), or biased so that the dword sum
 * carries them (t += p ^ 0x8000, h += p >> 16; the sum is t - 65535 h -
 * 32768 n, exact modulo 2^32). Two rows of x, so the accumulators fit the
 * 16 registers. */
#define SHW(t, h, x)                                                                         \
    {                                                                                        \
        const __m256i p_ = _mm256_maddubs_epi16(a, _mm256_sign_epi8(x, w));                  \
        t = _mm256_add_epi32(t, _mm256_srai_epi32(_mm256_slli_epi32(p_, 16), 16));           \
        h = _mm256_add_epi32(h, _mm256_srai_epi32(p_, 16));                                  \
    }
#define XW(t, h, x)                                                                          \
    {                                                                                        \
        const __m256i p_ = _mm256_maddubs_epi16(a, _mm256_sign_epi8(x, w));                  \
        t = _mm256_add_epi32(t, _mm256_xor_si256(p_, bias));                                 \
        h = _mm256_add_epi32(h, _mm256_srai_epi32(p_, 16));                                  \
    }
__attribute__((noinline)) static __m256i mix_sign_shifts(void) {
    SETUP;
    __m256i h0 = t0, h1 = t0;
    for (long i = 0; i < N; i++) {
        PINS;
        const __m256i a = _mm256_abs_epi8(w);
        SHW(t0, h0, x0); SHW(t1, h1, x1); SHW(t0, h0, x2); SHW(t1, h1, x3);
    }
    t0 = _mm256_add_epi32(t0, h0), t1 = _mm256_add_epi32(t1, h1);
    RET;
}
__attribute__((noinline)) static __m256i mix_sign_bias(void) {
    SETUP;
    const __m256i bias = _mm256_set1_epi32(0x8000);
    __m256i h0 = t0, h1 = t0;
    for (long i = 0; i < N; i++) {
        PINS;
        const __m256i a = _mm256_abs_epi8(w);
        XW(t0, h0, x0); XW(t1, h1, x1); XW(t0, h0, x2); XW(t1, h1, x3);
    }
    t0 = _mm256_add_epi32(t0, h0), t1 = _mm256_add_epi32(t1, h1);
    RET;
}

/* one operation and an add, per row */
#define ONE_OP(NAME, EXPR, ADD)                                                             \
    __attribute__((noinline)) static __m256i NAME(void) {                                   \
        SETUP;                                                                              \
        for (long i = 0; i < N; i++) {                                                      \
            PINS;                                                                           \
            t0 = ADD(t0, EXPR(x0)); t1 = ADD(t1, EXPR(x1));                                 \
            t2 = ADD(t2, EXPR(x2)); t3 = ADD(t3, EXPR(x3));                                 \
        }                                                                                   \
        RET;                                                                                \
    }
#define E_MADD(x) _mm256_madd_epi16(x, one)
#define E_SIGN(x) _mm256_sign_epi8(x, w)
#define E_ABS(x) _mm256_abs_epi8(x)
#define E_ABS_MADD(x) _mm256_madd_epi16(_mm256_abs_epi8(x), one)
#define E_AND_MADD(x) _mm256_madd_epi16(_mm256_and_si256(x, w), one)
ONE_OP(op_madd, E_MADD, _mm256_add_epi32)
ONE_OP(op_sign, E_SIGN, _mm256_add_epi16)
ONE_OP(op_abs, E_ABS, _mm256_add_epi16)
ONE_OP(op_abs_madd, E_ABS_MADD, _mm256_add_epi32)
ONE_OP(op_and_madd, E_AND_MADD, _mm256_add_epi32)

int main(void) {
    static const struct {
        const char *name;
        __m256i (*fn)(void);
    } mixes[] = {
        {"vpmaddubsw + vpaddw (the probe)", mix_probe},
        {"the same, x by vpbroadcastd m32", mix_probe_xmem},
        {"sign trick (vpabsb / 4 rows)", mix_sign},
        {"sign trick, |w| by vpand", mix_sign_and},
        {"sign by vpxor + vpsubb", mix_xorsub},
        {"sign trick, widened by shifts", mix_sign_shifts},
        {"sign trick, widened by a bias", mix_sign_bias},
        {"vpmaddwd + vpaddd", op_madd},
        {"vpsignb + vpaddw", op_sign},
        {"vpabsb + vpaddw", op_abs},
        {"vpabsb + vpmaddwd + vpaddd", op_abs_madd},
        {"vpand + vpmaddwd + vpaddd", op_and_madd},
    };
    int sink = 0;
    for (int round = 0; round < 2; round++)
        for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
            const double t = now();
            const __m256i r = mixes[m].fn();
            const double s = now() - t;
            sink += _mm256_extract_epi32(r, 0);
            printf("%-34s %.3f ns per 32 products, %6.1f GOP/s\n", mixes[m].name, 1e9 * s / (4.0 * N),
                   4.0 * N * 64 / s / 1e9);
        }
    return sink == 0x7fffffff;
}
