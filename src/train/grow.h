/*
 * grow.h - the starting models of `moe train --upcycle` and `--add-experts`
 * (docs/TRAINING.md, "Upcycling and adding experts"): an f32 Hugging Face
 * directory (config.json + model.safetensors) the trainer then starts from
 * as it starts from --init.
 *
 * Upcycling (Sparse Upcycling, Komatsuzaki et al. 2022): a dense model
 * (every layer a dense FFN, or a Mixtral-layout model with one expert)
 * becomes a Mixtral-layout MoE with the same dimensions and E experts of
 * the dense FFN's width, k per token, top-k weights renormalized. Every
 * expert of layer l is a copy of layer l's dense FFN (times 1 + noise x
 * N(0, 1) per element when noise > 0); attention, embeddings and norms are
 * copied. The router is new: N(0, init_std), as a fresh model's (seeded by
 * seed and the tensor's name). Not zero: with identical experts a zero
 * router scores every expert the same, so every token takes the same k
 * (the top-k tie), the other experts get no gradient, and the loss gives
 * the router none either (identical experts make every score's gradient
 * equal); only the balancing loss could break the tie. A small random
 * router spreads the tokens from the first step, and the experts drift
 * apart on the tokens each sees. With noise 0 the upcycled model computes
 * the dense model's function (every expert equal, weights summing to 1).
 *
 * Adding experts: a model's MoE layers get n_add experts more, appended
 * after the E_old there are (the config's expert count becomes E_old +
 * n_add; every other key is kept as written). New expert E_old + i is a
 * copy of old expert i mod E_old (times 1 + noise x N(0, 1) when noise >
 * 0); its router row (and router bias, noise row, selection bias) is zero,
 * so its score starts where an expert with no preference would be; the old
 * experts and router rows, and everything else, are copied.
 *
 * The noise is drawn from its own stream: seed ^ GROW_NOISE_SEED, tensor
 * after tensor in file order.
 */
#ifndef MOE_TRAIN_GROW_H
#define MOE_TRAIN_GROW_H

#include <stdint.h>

#include "moe.h"

#define GROW_NOISE_SEED 0x7570637963ull /* "upcyc" */

typedef struct grow_opts {
    const char *upcycle;  /* dense model directory, or NULL */
    int experts;          /* upcycle: E (>= 1) */
    int top_k;            /* upcycle: k; 0 = the dense config's num_experts_per_tok
                             when it has one (and <= E), else min(2, E) */
    const char *init;     /* add_experts: the MoE model directory */
    int add_experts;      /* experts appended to each MoE layer (> 0 with init) */
    float noise;          /* multiplicative noise on copied experts, 0 = exact copies */
    uint64_t seed;        /* the router's init and the noise */
    float init_std;       /* the router's std (upcycle) */
} grow_opts;

/* dir (existing, empty) receives config.json and model.safetensors (f32). */
int grow_write(const grow_opts *o, const char *dir, moe_err *err);

#endif
