/*
 * delta_rule.h - the gated delta rule of one value head of one sequence
 * over n tokens: the core of the Gated DeltaNet (src/model/linear_attn.c).
 *
 * Token i (in time order) has rows q_i, k_i [Dk] (already l2-normalized, q
 * scaled by 1/sqrt(Dk)), v_i [Dv], a log-decay g_i <= 0 and beta_i. The
 * state S [Dk][Dv] (row-major) is read and updated in place; o_i [Dv] is
 * written:
 *   S = exp(g_i) S;  S += k_i (beta_i (v_i - S^T k_i))^T;  o_i = S^T q_i
 *
 * delta_rule_recurrent is that loop token by token (transformers'
 * torch_recurrent_gated_delta_rule): the reference, and what a decode step
 * (one token) runs. delta_rule_chunked computes the same in chunks of
 * DELTA_CHUNK tokens as transformers' torch_chunk_gated_delta_rule does,
 * with G_i the cumulative sum of g over the chunk up to i:
 *   A_ij = beta_i (k_i . k_j) exp(G_i - G_j) (j < i), solve (I + A) U = beta v
 *   and (I + A) W = beta exp(G) k by forward substitution (the UT transform),
 *   V' = U - W S,  o_i = exp(G_i) q_i S + sum_{j<=i} (q_i . k_j) exp(G_i - G_j) V'_j,
 *   S = exp(G_last) S + sum_j exp(G_last - G_j) k_j V'_j^T
 * so that almost all of its work is GEMMs (gemm.h's, on the calling thread)
 * and vector ops (kernels.h, vmath.h) of kernel choice k. Both agree to
 * f32 rounding (tests/test_delta_rule.c holds them together on every path).
 */
#ifndef MOE_KERNELS_DELTA_RULE_H
#define MOE_KERNELS_DELTA_RULE_H

#include <stddef.h>
#include <stdint.h>

struct kern_cfg;

#define DELTA_CHUNK 64

/* Where the n tokens' rows are: token i's rows are at r = rows[i] (rows
 * NULL: r = i): q + r*qs, k + r*ks, v + r*vs, o + r*os, g[r*gs], beta[r*gs]. */
typedef struct delta_io {
    const int *rows;
    const float *q, *k, *v; /* [Dk], [Dk], [Dv] per row */
    int64_t qs, ks, vs;
    const float *g, *beta;
    int64_t gs;
    float *o;               /* [Dv] per row, written */
    int64_t os;
    int n, Dk, Dv;
} delta_io;

/* Scratch floats of delta_rule_recurrent and bytes of delta_rule_chunked
 * (64-byte aligned; the chunked form's holds gemm_scratch_bytes() too). */
int64_t delta_rule_recurrent_floats(int Dv);
size_t delta_rule_chunked_bytes(int Dk, int Dv);

void delta_rule_recurrent(const struct kern_cfg *k, float *S, const delta_io *io, float *scratch);
void delta_rule_chunked(const struct kern_cfg *k, float *S, const delta_io *io, void *scratch);

#endif
