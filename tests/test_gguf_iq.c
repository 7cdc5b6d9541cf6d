/*
 * test_gguf_iq.c - a GGUF model whose weights are ggml's grid i-quants
 * (tests/fixtures/gguf_models/qwen3_moe_iq.gguf, tools/gen_iq_model_fixture.py:
 * experts IQ2_XXS / IQ3_XXS / IQ2_XS, attention IQ1_S / IQ2_S / IQ3_S, the
 * head IQ1_M, the embedding IQ2_XXS) loads and runs, and its logits are
 * those of the same model with every weight dequantized to F32 (written by
 * moe_quant_write_gguf, which dequantizes with the code tests/test_quant_iq.c
 * holds to ggml bit for bit): the two runs differ only by the activation
 * quantization of the quantized products (Q8_K, ~8 bits), bounded below in
 * KL and relative error. Every kernel choice gives the same logits.
 */
#include <stdlib.h>
#include <string.h>

#include "moe.h"
#include "moe_quant.h"
#include "formats/gguf.h"
#include "test.h"
#include "test_util.h"

#define NTOK 12
static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

static void iq_path(char *p, size_t n) { snprintf(p, n, "%s/gguf_models/qwen3_moe_iq.gguf", test_fixtures()); }

/* The fixture holds the types it claims (so the test runs what it says). */
TEST(gguf_iq_fixture_types) {
    char path[512];
    iq_path(path, sizeof path);
    static const struct { const char *name; int type; } want[] = {
        {"token_embd.weight", GGUF_TYPE_IQ2_XXS},          {"blk.0.attn_q.weight", GGUF_TYPE_IQ1_S},
        {"blk.0.attn_k.weight", GGUF_TYPE_IQ2_S},          {"blk.0.attn_v.weight", GGUF_TYPE_IQ3_S},
        {"blk.0.ffn_gate_exps.weight", GGUF_TYPE_IQ2_XXS}, {"blk.0.ffn_up_exps.weight", GGUF_TYPE_IQ3_XXS},
        {"blk.0.ffn_down_exps.weight", GGUF_TYPE_IQ2_XS},  {"output.weight", GGUF_TYPE_IQ1_M},
    };
    gguf_file g;
    moe_err err = {{0}};
    CHECK_MSG(gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (err.msg[0]) return;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const gguf_tensor *t = gguf_find(&g, want[i].name);
        CHECK_MSG(t && (int)t->type == want[i].type, "%s: type %d, want %d", want[i].name, t ? (int)t->type : -1,
                  want[i].type);
    }
    gguf_close(&g);
}

/* Mean and max over positions of KL(p_ref || p), in nats. */
static void kl_stats(const float *ref, const float *q, int V, double *mean, double *mx) {
    *mean = *mx = 0;
    for (int t = 0; t < NTOK; t++) {
        const float *a = ref + (size_t)t * V, *b = q + (size_t)t * V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0, kl = 0;
        for (int v = 1; v < V; v++) ma = a[v] > ma ? a[v] : ma, mb = b[v] > mb ? b[v] : mb;
        for (int v = 0; v < V; v++) sa += exp(a[v] - ma), sb += exp(b[v] - mb);
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
        *mean += kl / NTOK;
        if (kl > *mx) *mx = kl;
    }
}

/* Logits of m on k_ids in a one-thread session with kernel choice `kernels`
 * (NULL: the default); NULL where the CPU lacks that choice. */
static float *logits_with(moe_model *m, const char *kernels) {
    int V = moe_model_config(m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 64, .n_threads = 1, .kernels = kernels};
    if (moe_session_new(&s, m, &o, &err)) return NULL;
    float *lg = malloc(sizeof(float) * NTOK * (size_t)V);
    if (moe_forward(s, k_ids, NTOK, lg, 1, &err)) {
        CHECK_MSG(0, "forward (%s): %s", kernels ? kernels : "default", err.msg);
        free(lg);
        lg = NULL;
    }
    moe_session_free(s);
    return lg;
}

TEST(gguf_iq_model_matches_dequantized_f32) {
    char path[512], f32[700];
    iq_path(path, sizeof path);
    snprintf(f32, sizeof f32, "%s/qwen3_moe_iq_f32.gguf", test_tmpdir());
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, path, &err) == 0, "%s", err.msg);
    if (!m) return;
    moe_quant_opts qo = {.mode = MOE_QUANT_FLOAT, .type = MOE_QTYPE_F32};
    moe_quant_plan *p = NULL;
    moe_quant_write_opts wo = {1, NULL, NULL, NULL, NULL};
    CHECK_MSG(moe_quant_plan_new(&p, m, &qo, &err) == 0 && moe_quant_write_gguf(m, p, f32, &wo, &err) == 0, "%s",
              err.msg);
    moe_quant_plan_free(p);
    int V = moe_model_config(m)->vocab, Vf = 0;
    float *q = logits_with(m, NULL), *ref = test_model_logits(f32, k_ids, NTOK, &Vf);
    CHECK(q && ref && V == Vf);
    if (q && ref && V == Vf) {
        double mean, mx, rel = test_rel_err(q, ref, NTOK * V);
        kl_stats(ref, q, V, &mean, &mx);
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "iq vs f32: KL mean %.3g max %.3g, rel err %.3g\n", mean, mx, rel);
        /* measured: KL mean 2.2e-4, max 2.8e-4, rel err 0.024 (random weights: the
         * logits are small against sum |w x|, which scales the activation error);
         * a kernel giving one pair in 16 its neighbour's scale: KL 0.02, rel 0.24 */
        CHECK_MSG(mean <= 1e-3 && mx <= 2e-3 && rel <= 0.08, "KL mean %.3g max %.3g, rel err %.3g", mean, mx, rel);
    }
    /* every kernel choice: the same products up to f32 rounding elsewhere */
    static const char *const kinds[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3 && q; i++) {
        float *k = logits_with(m, kinds[i]);
        if (!k) continue; /* not on this CPU */
        double rel = test_rel_err(k, q, NTOK * V);
        CHECK_MSG(rel <= 1e-4, "%s kernels: rel err %.3g against the default", kinds[i], rel);
        free(k);
    }
    free(q);
    free(ref);
    moe_model_free(m);
}

/* moe_model_stats.dtypes names each type with its count; a file with more
 * types than the field holds (as the mixed i-quant files are) ends in "..."
 * rather than in a cut-off name. */
TEST(gguf_iq_stats_dtypes_whole_items) {
    char path[512];
    iq_path(path, sizeof path);
    moe_model *m = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_model_load(&m, path, &err) == 0, "%s", err.msg);
    if (!m) return;
    moe_model_stats s;
    moe_model_stats_get(m, &s);
    char buf[sizeof s.dtypes + 1];
    snprintf(buf, sizeof buf, "%s", s.dtypes);
    int items = 0, bad = 0;
    for (char *save = NULL, *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save), items++) {
        while (*it == ' ') it++;
        char name[32];
        int count = 0;
        bad += !(strcmp(it, "...") == 0 || (sscanf(it, "%31s (%d)", name, &count) == 2 && count > 0));
    }
    CHECK_MSG(items >= 3 && bad == 0, "dtypes \"%s\": %d of %d items are not \"type (count)\"", s.dtypes, bad, items);
    moe_model_free(m);
}
