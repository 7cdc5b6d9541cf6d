/*
 * rng.h - the one deterministic random number generator: xoshiro256** with
 * its 256-bit state spread from a 64-bit seed by splitmix64. Used by the
 * sampler (draws), training (router noise, dropout-free init, data order).
 *
 * The state is plain data (four u64), so a checkpoint saves and restores it
 * exactly (rng_save / rng_restore) and the stream goes on bit for bit.
 * Nothing here allocates or keeps hidden state: rng_normal does not cache
 * the second Box-Muller value, so the state alone fixes every future draw.
 */
#ifndef MOE_BASE_RNG_H
#define MOE_BASE_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4]; /* xoshiro256** state; never all zero after rng_init */
} rng;

/* splitmix64 step: advance *x and return the next mixed value. Also a good
 * 64-bit hash finalizer (e.g. hash routing). */
uint64_t rng_splitmix64(uint64_t *x);

/* Seed from any 64-bit value (0 and 1 are fine): s[i] = splitmix64 stream. */
void rng_init(rng *r, uint64_t seed);
/* Next 64 random bits (xoshiro256**). */
uint64_t rng_next(rng *r);
/* Uniform double in [0, 1) with 53 random bits (one rng_next). */
double rng_uniform01(rng *r);
/* One standard normal value by Box-Muller (two rng_next per value; the
 * cosine branch only, so no value is carried between calls). */
double rng_normal(rng *r);
/* out[i] = mean + std * N(0,1), i < n, in order: Box-Muller pairs (both the
 * cosine and the sine value are used; an odd n drops the last sine). */
void rng_normal_fill(rng *r, float *out, int64_t n, float mean, float std);

/* Checkpointing: the state as four little-endian-agnostic u64 words. */
void rng_save(const rng *r, uint64_t out[4]);
void rng_restore(rng *r, const uint64_t in[4]);

#endif
