/*
 * attn.h - causal softmax attention of a block of queries of one head
 * against keys and values in memory (the KV cache): the core of the
 * forward's attention (src/model/attention.c).
 *
 * Query i (i < nq) has position qpos0 + i and row q + i*qs [Dh]; key and
 * value j (j < nk) have position kpos0 + j and rows k + j*kvs [Dh], v + j*kvs
 * [Dv] (latent attention's expanded heads have Dv < Dh). Query i sees key j iff kpos0 + j <= qpos0 + i and (window <= 0 or
 * qpos0 + i - (kpos0 + j) < window). Output row o + i*os [Dv] (written):
 *   s_j = (q_i . k_j) * scale over the visible j, p = softmax(s) (kernels.h
 *   softmax), o_i = sum_j p_j v_j in ascending j (0 if nothing is visible).
 * With a sink (sink != NULL, gpt_oss's learned per-head logit) the softmax
 * runs over the visible s_j and *sink together and the sink's share is
 * dropped: p_j = exp(s_j - m) / (sum_j exp(s_j - m) + exp(*sink - m)),
 * m = max(max_j s_j, *sink) (transformers: cat, softmax, drop the last).
 *
 * attn_block_ref is that loop per query with the vector kernels (dot,
 * softmax, axpy). The AVX-512 path (Dh and Dv multiples of 16 up to 1024,
 * nq >= 4; the AVX2 path the same without a sink)
 * runs the block as two register-tiled GEMMs: scores against the keys
 * transposed in 16 x 16 blocks, then P V with the value rows read in place;
 * its scores differ from the reference's by the order of the Dh products
 * (f32 rounding), the softmax and the sums over j are the same operations.
 * Scratch is thread tid's region of the pool (attn_scratch_bytes; a pool
 * that reserved less, or a NULL pool, gets a block for the call). Returns -1
 * when that allocation fails (nothing written), else 0.
 */
#ifndef MOE_KERNELS_ATTN_H
#define MOE_KERNELS_ATTN_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"

/* Keys query i sees: [*lo, *hi), hi >= lo (the block kernels' shared
 * helper; key j is at position kpos0 + j). */
static inline void attn_visible(int64_t i, int nk, int64_t qpos0, int64_t kpos0, int window, int64_t *lo,
                                int64_t *hi) {
    int64_t p = qpos0 + i - kpos0;
    *hi = p + 1 < nk ? p + 1 : nk;
    *lo = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
    if (*hi < *lo) *hi = *lo;
}

/* Scratch bytes one block of up to nq queries over nk keys needs. */
size_t attn_scratch_bytes(int nq, int nk, int Dh);

int attn_block(pool *p, int tid, float *o, int64_t os, const float *q, int64_t qs, const float *k,
               const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv, int64_t qpos0,
               int64_t kpos0, int window, float scale, const float *sink);
int attn_block_ref(pool *p, int tid, float *o, int64_t os, const float *q, int64_t qs,
                   const float *k, const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv,
                   int64_t qpos0, int64_t kpos0, int window, float scale, const float *sink);

/* The block kernels' scratch in floats: keys transposed and scores,
 * (Dh + nq) rows of attn_row_stride(nk). */
int64_t attn_block_scratch(int nq, int nk, int Dh);

/* Floats from one row of the transposed keys (and of the scores) to the
 * next: nk rounded up to 64 keys, and 16 more, so that the Dh rows a score
 * tile reads (16 keys of each) do not all fall in one L1 set when nk is a
 * multiple of 1024 (one core of an AMD Zen 3, AVX2, 64 queries x 1024 keys,
 * Dh 128: 41 -> 61 GFLOP/s). */
static inline int64_t attn_row_stride(int64_t nk) { return ((nk + 63) & ~(int64_t)63) + 16; }

/* AVX-512 (kernels_attn_avx512.c): Dh and Dv % 16 == 0, at most 1024; scratch
 * of attn_block_scratch(nq, nk, Dh) floats. */
void avx512_attn_block(float *o, int64_t os, const float *q, int64_t qs, const float *k,
                       const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv, int64_t qpos0,
                       int64_t kpos0, int window, float scale, const float *sink,
                       float *scratch);
/* AVX2 (kernels_attn_avx2.c): the same without a sink; its softmax is
 * kernels.h softmax on kc. */
struct kern_cfg;
void avx2_attn_block(const struct kern_cfg *kc, float *o, int64_t os, const float *q, int64_t qs,
                     const float *k, const float *v, int64_t kvs, int nq, int nk, int Dh, int Dv,
                     int64_t qpos0, int64_t kpos0, int window, float scale, float *scratch);

#endif
