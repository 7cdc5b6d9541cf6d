/*
 * rng.c - xoshiro256** seeded by splitmix64, uniform and normal draws.
 * The exact streams are part of the contract: the sampler's outputs for a
 * seed and a training run's noise/init for a seed must not change.
 */
#include "base/rng.h"

#include <math.h>

uint64_t rng_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_init(rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rng_uniform01(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Box-Muller needs u1 in (0, 1] so that log(u1) is finite. */
static inline double open01(rng *r) { return 1.0 - rng_uniform01(r); }

double rng_normal(rng *r) {
    double u1 = open01(r), u2 = rng_uniform01(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void rng_normal_fill(rng *r, float *out, int64_t n, float mean, float std) {
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = open01(r), u2 = rng_uniform01(r);
        double rad = sqrt(-2.0 * log(u1)), a = 2.0 * M_PI * u2;
        out[i] = (float)(mean + std * rad * cos(a));
        if (i + 1 < n) out[i + 1] = (float)(mean + std * rad * sin(a));
    }
}

void rng_save(const rng *r, uint64_t out[4]) {
    for (int i = 0; i < 4; i++) out[i] = r->s[i];
}

void rng_restore(rng *r, const uint64_t in[4]) {
    for (int i = 0; i < 4; i++) r->s[i] = in[i];
}
