/*
 * test_mla_prefill.c - latent attention's expanded form for long prompts
 * (src/model/attention_mla_prefill.c) against the absorbed form
 * (attention_mla.c, held to transformers by the conformance fixtures): the
 * same prompt through two sessions, one with the expanded form from 16
 * tokens on, one never; a first chunk, then a second one after it in the
 * cache; logits within 1e-4 relative, on safetensors models with and
 * without q_lora (kv_b_proj) and on llama.cpp's GGUF files (attn_k_b
 * transposed for the call, attn_v_b), with all heads in one group and with
 * groups of one and of three heads.
 */
#include <limits.h>
#include <stdlib.h>

#include "model/model.h"
#include "moe.h"
#include "test.h"
#include "test_util.h"

#define N1 40
#define N2 150

static float *run(moe_model *m, const int32_t *ids, int expand_min, int64_t floats, int *expanded) {
    int V = moe_model_config(m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 256, .n_threads = 2, .max_batch = 256};
    float *lg = malloc(sizeof(float) * (size_t)(N1 + N2) * (size_t)V);
    if (!lg || moe_session_new(&s, m, &o, &err)) {
        CHECK_MSG(0, "session: %s", err.msg);
        free(lg);
        return NULL;
    }
    s->mla_expand_min = expand_min;
    if (floats) s->mla_expand_floats = floats;
    if (moe_forward(s, ids, N1, lg, 1, &err) ||
        moe_forward(s, ids + N1, N2, lg + (size_t)N1 * V, 1, &err)) {
        CHECK_MSG(0, "forward: %s", err.msg);
        free(lg);
        lg = NULL;
    }
    *expanded = s->mla_x_n > 0;
    moe_session_free(s);
    return lg;
}

static void check(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", test_fixtures(), rel);
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, path, &err)) {
        CHECK_MSG(0, "%s: %s", rel, err.msg);
        return;
    }
    const moe_config *c = moe_model_config(m);
    int V = c->vocab;
    int32_t ids[N1 + N2];
    uint32_t x = 12345;
    for (int i = 0; i < N1 + N2; i++) x = x * 1103515245u + 12345u, ids[i] = (int32_t)((x >> 8) % (uint32_t)V);
    int e0 = 0, e1 = 0, e2 = 0, e3 = 0;
    float *a = run(m, ids, INT_MAX, 0, &e0);
    float *b = run(m, ids, 16, 0, &e1);
    /* per head: L (Dn + Dv + Dh + Dv) floats; groups of 1 and of 3 heads */
    int64_t per_head = (int64_t)(N1 + N2) * (c->qk_nope_dim + 2 * c->v_head_dim + c->head_dim);
    float *g1 = run(m, ids, 16, per_head, &e2);
    float *g3 = run(m, ids, 16, 3 * per_head + 1, &e3);
    CHECK_MSG(!e0 && e1 && e2 && e3, "%s: expanded form ran: %d %d %d %d", rel, e0, e1, e2, e3);
    size_t n = (size_t)(N1 + N2) * V;
    if (a && b && g1 && g3) {
        double r1 = test_rel_err(b, a, n), r2 = test_rel_err(g1, a, n), r3 = test_rel_err(g3, a, n);
        if (getenv("MOE_TEST_VERBOSE"))
            fprintf(stderr, "%s: expanded vs absorbed %.3g, groups of 1 %.3g, of 3 %.3g\n", rel, r1, r2, r3);
        CHECK_MSG(r1 <= 1e-4 && r2 <= 1e-4 && r3 <= 1e-4, "%s: expanded vs absorbed %.3g, %.3g, %.3g",
                  rel, r1, r2, r3);
    }
    free(a);
    free(b);
    free(g1);
    free(g3);
    moe_model_free(m);
}

TEST(mla_prefill_expanded_deepseek_v3) { check("models/deepseek_v3_base"); }
TEST(mla_prefill_expanded_deepseek_v2_no_q_lora) { check("models/deepseek_v2_base"); }
TEST(mla_prefill_expanded_gguf) { check("gguf_models/deepseek_v2_f32.gguf"); }
TEST(mla_prefill_expanded_gguf_no_q_lora) { check("gguf_models/deepseek_v2_base_f32.gguf"); }
