/*
 * test_quantize_types.c - `moe quantize` to Q2_K, Q3_K (Q3_K_M), IQ4_XS,
 * IQ4_NL, Q4_1, Q5_0 and Q5_1:
 *   - llama-quantize's per-tensor type rules for these file types;
 *   - every tensor exactly the reference quantization of its source;
 *   - each type's file loads, runs, and its logits are within a KL bound of
 *     the F32 model's (about 3 times what was measured);
 *   - a file whose experts mix several of these types (--type mixed) loads
 *     with those types per expert and runs within a KL bound.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "kernels/quant.h"
#include "model/model.h"
#include "model/quantize.h"
#include "test.h"
#include "test_quantize.h"
#include "test_util.h"

#define NTOK 12
static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

/* llama-quantize's Q2_K, Q3_K_M, IQ4_XS / IQ4_NL and Q4_1 / Q5_0 / Q5_1
 * rules (llama-quant.cpp, llama_tensor_get_type_impl) on 16 layers and 64
 * experts. */
TEST(quantize_rules_low_bits) {
    moe_config *c = malloc(sizeof *c);
    small_cfg(c, MOE_ARCH_OLMOE, 64);
    c->n_layers = 16;
    for (int i = 2; i < 16; i++) c->layer[i] = c->layer[0];
    int fb = 0;
#define TY(role, layer, rows, cols, type) \
    qz_tensor_type(c, &(tm_entry){role, layer, -1, 1, rows, cols}, type, 0, &fb)
    /* Q2_K: attn_v Q3_K (Q4_K from 4 query heads per KV head on), every
     * ffn_down Q3_K, attn_output Q3_K, output Q6_K, the rest Q2_K */
    CHECK_EQ_INT(TY(TM_ATTN_V, 5, 128, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q3_K);
    CHECK_EQ_INT(TY(TM_EXP_DOWN, 5, 256, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q3_K);
    CHECK_EQ_INT(TY(TM_SHEXP_DOWN, 0, 256, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q3_K);
    CHECK_EQ_INT(TY(TM_ATTN_O, 3, 256, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q3_K);
    CHECK_EQ_INT(TY(TM_OUTPUT, -1, 512, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q6_K);
    CHECK_EQ_INT(TY(TM_EXP_GATE, 5, 256, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q2_K);
    CHECK_EQ_INT(TY(TM_ATTN_K, 5, 128, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q2_K);
    /* Q3_K_M: the first two attn_v Q5_K, the others Q4_K; ffn_down Q5_K in
     * the first 16th of the layers, else Q4_K; attn_output Q4_K */
    for (int i = 0; i < 16; i++) {
        CHECK_EQ_INT(TY(TM_ATTN_V, i, 128, 256, GGUF_TYPE_Q3_K), i < 2 ? GGUF_TYPE_Q5_K : GGUF_TYPE_Q4_K);
        CHECK_EQ_INT(TY(TM_EXP_DOWN, i, 256, 256, GGUF_TYPE_Q3_K), i < 1 ? GGUF_TYPE_Q5_K : GGUF_TYPE_Q4_K);
        /* IQ4_XS / IQ4_NL: ffn_down Q5_K in the first 8th */
        CHECK_EQ_INT(TY(TM_EXP_DOWN, i, 256, 256, GGUF_TYPE_IQ4_XS), i < 2 ? GGUF_TYPE_Q5_K : GGUF_TYPE_IQ4_XS);
        CHECK_EQ_INT(TY(TM_FFN_DOWN, i, 256, 256, GGUF_TYPE_IQ4_NL), i < 2 ? GGUF_TYPE_Q5_K : GGUF_TYPE_IQ4_NL);
        CHECK_EQ_INT(TY(TM_EXP_DOWN, i, 256, 256, GGUF_TYPE_Q5_0), GGUF_TYPE_Q5_0);
    }
    CHECK_EQ_INT(TY(TM_ATTN_O, 3, 256, 256, GGUF_TYPE_Q3_K), GGUF_TYPE_Q4_K);
    CHECK_EQ_INT(TY(TM_EXP_UP, 3, 256, 256, GGUF_TYPE_Q3_K), GGUF_TYPE_Q3_K);
    CHECK_EQ_INT(TY(TM_ATTN_V, 5, 128, 256, GGUF_TYPE_IQ4_XS), GGUF_TYPE_IQ4_XS);
    CHECK_EQ_INT(TY(TM_ATTN_O, 5, 256, 256, GGUF_TYPE_IQ4_XS), GGUF_TYPE_IQ4_XS);
    CHECK_EQ_INT(TY(TM_OUTPUT, -1, 512, 256, GGUF_TYPE_IQ4_XS), GGUF_TYPE_Q6_K);
    /* the 32-block types: output Q6_K, nothing else changes */
    CHECK_EQ_INT(TY(TM_OUTPUT, -1, 512, 256, GGUF_TYPE_Q4_1), GGUF_TYPE_Q6_K);
    CHECK_EQ_INT(TY(TM_OUTPUT, -1, 512, 96, GGUF_TYPE_Q5_1), GGUF_TYPE_Q8_0); /* Q6_K, fallen back */
    CHECK_EQ_INT(TY(TM_OUTPUT, -1, 512, 96, GGUF_TYPE_Q2_K), GGUF_TYPE_Q8_0); /* 256 does not divide */
    CHECK_EQ_INT(TY(TM_ATTN_V, 0, 128, 256, GGUF_TYPE_Q5_1), GGUF_TYPE_Q5_1);
    /* 4 query heads per KV head */
    c->n_kv_heads = 1;
    CHECK_EQ_INT(TY(TM_ATTN_V, 5, 128, 256, GGUF_TYPE_Q2_K), GGUF_TYPE_Q4_K);
    CHECK_EQ_INT(TY(TM_ATTN_V, 5, 128, 256, GGUF_TYPE_IQ4_XS), GGUF_TYPE_Q5_K);
    CHECK_EQ_INT(TY(TM_ATTN_V, 5, 128, 256, GGUF_TYPE_IQ4_NL), GGUF_TYPE_Q5_K);
    CHECK_EQ_INT(TY(TM_ATTN_V, 5, 128, 256, GGUF_TYPE_Q3_K), GGUF_TYPE_Q4_K);
#undef TY
    free(c);
}


TEST(quantize_exact_q2_k) { check_exact(MOE_ARCH_MIXTRAL, GGUF_TYPE_Q2_K); }
TEST(quantize_exact_q3_k) { check_exact(MOE_ARCH_QWEN3_MOE, GGUF_TYPE_Q3_K); }
TEST(quantize_exact_iq4_xs) { check_exact(MOE_ARCH_OLMOE, GGUF_TYPE_IQ4_XS); }
TEST(quantize_exact_iq4_nl) { check_exact(MOE_ARCH_QWEN2_MOE, GGUF_TYPE_IQ4_NL); }
TEST(quantize_exact_q4_1) { check_exact(MOE_ARCH_MIXTRAL, GGUF_TYPE_Q4_1); }
TEST(quantize_exact_q5_0) { check_exact(MOE_ARCH_OLMOE, GGUF_TYPE_Q5_0); }
TEST(quantize_exact_q5_1) { check_exact(MOE_ARCH_QWEN3_MOE, GGUF_TYPE_Q5_1); }

/* The random model of the KL tests: std 0.02 as transformers initializes
 * (larger weights make these tiny models chaotic: a top-2 choice flips
 * under any perturbation, which measures the routing's margins, not the
 * quantization). */
static int kl_source(char *dir, size_t n, moe_config *c) {
    small_cfg(c, MOE_ARCH_QWEN3_MOE, 8);
    snprintf(dir, n, "%s/kl-src", test_tmpdir());
    return make_random(dir, c, 0.02f);
}

/* KL of the logits of the file at path to those of the model at ref. */
static int kl_of(const char *ref, const char *path, double *mean, double *mx) {
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(ref, k_ids, NTOK, &V1), *b = test_model_logits(path, k_ids, NTOK, &V2);
    int ok = a && b && V1 == V2;
    if (ok) test_logits_kl(a, b, NTOK, V1, mean, mx);
    free(a);
    free(b);
    return ok ? 0 : -1;
}

/* Every 2-D weight at the type (--pure), against F32: the file loads, every
 * expert matrix has the type, and the KL stays under the type's bound. */
TEST(quantize_kl_per_type) {
    static const struct { int type; double mean, max; } k[] = {
        /* measured mean (max): q5_0 1.1e-3 (3.5e-3), q5_1 8.6e-4 (2.0e-3), q4_1 2.9e-3
         * (4.7e-3), iq4_nl 2.9e-3 (4.8e-3), iq4_xs 3.3e-3 (5.3e-3), q3_k 9.5e-3 (1.3e-2),
         * q2_k 2.5e-2 (3.3e-2); all q4_K 2.2e-3 (3.9e-3); bounds about 3 times those */
        {GGUF_TYPE_Q5_0, 3e-3, 1e-2},    {GGUF_TYPE_Q5_1, 3e-3, 1e-2},    {GGUF_TYPE_Q4_1, 9e-3, 1.5e-2},
        {GGUF_TYPE_IQ4_NL, 9e-3, 1.5e-2}, {GGUF_TYPE_IQ4_XS, 1e-2, 1.6e-2}, {GGUF_TYPE_Q3_K, 3e-2, 4e-2},
        {GGUF_TYPE_Q2_K, 7.5e-2, 0.1},
    };
    char dir[600], out[700];
    moe_config *c = malloc(sizeof *c);
    if (kl_source(dir, sizeof dir, c)) return free(c);
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        snprintf(out, sizeof out, "%s/kl-%d.gguf", test_tmpdir(), k[i].type);
        qz_opts o = {.mode = QZ_QUANT, .type = k[i].type, .pure = 1};
        if (write_gguf(dir, out, &o, NULL)) continue;
        moe_model *q = NULL;
        moe_err err = {{0}};
        CHECK_MSG(moe_model_load(&q, out, &err) == 0, "%s: %s", gguf_type_name(k[i].type), err.msg);
        if (q) {
            const ffn_w *f = &q->layers[1].experts[3];
            CHECK(dtype_to_ggml(f->gate.type) == k[i].type && dtype_to_ggml(f->down.type) == k[i].type);
            moe_model_free(q);
        }
        double mean = 0, mx = 0;
        CHECK(kl_of(dir, out, &mean, &mx) == 0);
        if (getenv("MOE_TEST_VERBOSE"))
            fprintf(stderr, "  %s: KL mean %.3g max %.3g\n", gguf_type_name(k[i].type), mean, mx);
        CHECK_MSG(mean <= k[i].mean && mx <= k[i].max, "%s: KL mean %.3g max %.3g", gguf_type_name(k[i].type),
                  mean, mx);
    }
    free(c);
}

/* Experts at IQ4_XS (the most routed) and Q2_K, the other weights by the
 * rules of the high type: one file mixing several of these types per
 * tensor loads with them and runs. */
TEST(quantize_mixed_low_bit_types) {
    char dir[600], out[700];
    moe_config *c = malloc(sizeof *c);
    if (kl_source(dir, sizeof dir, c)) return free(c);
    double *counts = calloc(16, sizeof *counts);
    for (int e = 0; e < 16; e++) counts[e] = (double)((e * 5) % 16);
    qz_opts o = {.mode = QZ_MIXED, .high = GGUF_TYPE_IQ4_XS, .low = GGUF_TYPE_Q2_K, .counts = counts,
                 .stride = 8, .budget = INT64_MAX};
    moe_model *m = NULL;
    moe_err err = {{0}};
    qz_plan p;
    CHECK(moe_model_load(&m, dir, &err) == 0);
    if (m && qz_plan_make(&p, m, &o, &err) == 0) { /* half the experts high */
        o.budget = p.min_bytes + (p.max_bytes - p.min_bytes) / 2;
        qz_plan_free(&p);
    }
    moe_model_free(m);
    snprintf(out, sizeof out, "%s/mixed-low.gguf", test_tmpdir());
    qz_plan kept;
    if (write_gguf(dir, out, &o, &kept) == 0) {
        moe_model *q = NULL;
        CHECK(moe_model_load(&q, out, &err) == 0);
        int seen[2] = {0, 0};
        for (int i = 0; q && i < 2; i++)
            for (int e = 0; e < 8; e++) {
                int want = kept.expert_type[i * 8 + e];
                const ffn_w *f = &q->layers[i].experts[e];
                CHECK(dtype_to_ggml(f->gate.type) == want && dtype_to_ggml(f->down.type) == want);
                seen[want == GGUF_TYPE_IQ4_XS]++;
            }
        CHECK_MSG(seen[0] > 0 && seen[1] > 0, "experts: %d at Q2_K, %d at IQ4_XS", seen[0], seen[1]);
        moe_model_free(q);
        double mean = 0, mx = 0;
        CHECK(kl_of(dir, out, &mean, &mx) == 0);
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "  iq4_xs/q2_K mixed: KL mean %.3g max %.3g\n", mean, mx);
        /* measured: mean 1.6e-3, max 3.3e-3 */
        CHECK_MSG(mean <= 5e-3 && mx <= 1e-2, "mixed: KL mean %.3g max %.3g", mean, mx);
        qz_plan_free(&kept);
    }
    free(counts);
    free(c);
}
