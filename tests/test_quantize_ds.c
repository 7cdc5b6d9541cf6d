/*
 * test_quantize_ds.c - writing llama.cpp's deepseek2 and glm4moe GGUF files
 * (src/model/quantize_gguf.c, quantize_hf.c) from the transformers fixtures:
 *   - against llama.cpp's converter (tests/fixtures/gguf_models, made by
 *     tools/gen_gguf_fixtures.sh from the same fixture): the same keys with
 *     the same values both ways (but general.name / size_label, the tokenizer
 *     the fixtures lack, and the keys moe adds on purpose), the same tensors
 *     (names, types, shapes, bytes) both ways; F32, a float conversion, Q8_0
 *     (attn_k_b's rows of 8 fall back to F16 as the converter's do), a glm4moe
 *     GGUF with its MTP layer requantized (the layer dropped, block_count
 *     and nextn_predict_layers adjusted), and q_proj with two-halves RoPE,
 *     where moe reorders the rotary rows the converter leaves as they are;
 *   - the written F32 files compute the HF directory's logits (1e-5), Q8_0
 *     within a KL bound, and describe the same model;
 *   - GGUF -> HF joins attn_k_b / attn_v_b into kv_b_proj: HF -> GGUF -> HF
 *     gives the source's logits bit for bit; llama.cpp's own files too;
 *   - a deepseek2 GGUF requantized to Q4_K (llama-quantize's fallbacks) is
 *     the HF directory quantized so;
 *   - moe_init_gguf of a glm4_moe equals init + convert;
 *   - what these files cannot say is refused by name.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "formats/gguf.h"
#include "moe_init.h"
#include "moe_quant.h"
#include "model/model.h"
#include "model/quantize.h"
#include "model/quantize_impl.h"
#include "test.h"
#include "test_quantize.h"
#include "test_util.h"

#define NTOK 12
static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

static const char *fx(char *buf, size_t n, const char *sub, const char *name) {
    snprintf(buf, n, "%s/%s/%s", test_fixtures(), sub, name);
    return buf;
}

static const char *tmp(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/ds-%s", test_tmpdir(), name);
    return buf;
}

/* ------------------------------------------------ against the converter */

static int same_value(const gguf_kv *x, const gguf_kv *y) {
    if (x->type != y->type || x->n != y->n) return 0;
    if (y->type == GGUF_VT_STR) return !strcmp(x->strs[0], y->strs[0]);
    if (y->type != GGUF_VT_ARR)
        return !memcmp(x->raw, y->raw, (size_t)gguf_vtype_size(y->type));
    if (x->arr_type != y->arr_type) return 0;
    if (y->arr_type == GGUF_VT_STR) {
        for (uint64_t i = 0; i < y->n; i++)
            if (strcmp(x->strs[i], y->strs[i])) return 0;
        return 1;
    }
    return !memcmp(x->raw, y->raw, (size_t)y->n * (size_t)gguf_vtype_size(y->arr_type));
}

/* Keys that may legitimately differ: the name, the tokenizer (the fixtures
 * have none; without a token list moe writes tokenizer.ggml.model "none" and
 * ARCH.vocab_size so that llama.cpp loads the file). */
static int free_key(const char *k) {
    const char *dot = strchr(k, '.');
    return !strcmp(k, "general.name") || !strcmp(k, "general.size_label") ||
           !strncmp(k, "tokenizer.", 10) || (dot && !strcmp(dot, ".vocab_size"));
}

static int in_list(const char *k, const char *const *list) {
    for (; list && *list; list++)
        if (!strcmp(k, *list)) return 1;
    return 0;
}

/* Our file a against the converter's b: keys both ways (ours_only: keys moe
 * writes and the converter does not), tensors both ways; tensors named in
 * reordered have the same type and shape and their rows are b's rows
 * through rope_row (checked by the caller). */
static void same_file_as(const char *what, const char *a_path, const char *b_path,
                         const char *const *ours_only, const char *const *reordered) {
    gguf_file a, b;
    moe_err err = {{0}};
    if (gguf_open(&a, a_path, &err)) {
        CHECK_MSG(0, "%s: %s", what, err.msg);
        return;
    }
    if (gguf_open(&b, b_path, &err)) {
        CHECK_MSG(0, "%s: %s", what, err.msg);
        gguf_close(&a);
        return;
    }
    for (int i = 0; i < b.n_kv; i++) {
        const gguf_kv *y = &b.kvs[i], *x = gguf_find_kv(&a, y->key);
        if (free_key(y->key)) continue;
        CHECK_MSG(x != NULL, "%s: key %s missing", what, y->key);
        if (x) CHECK_MSG(same_value(x, y), "%s: key %s differs from the converter's", what, y->key);
    }
    for (int i = 0; i < a.n_kv; i++) {
        const char *k = a.kvs[i].key;
        if (free_key(k) || gguf_find_kv(&b, k)) continue;
        CHECK_MSG(in_list(k, ours_only), "%s: key %s is not in the converter's file", what, k);
    }
    for (const char *const *k = ours_only; k && *k; k++)
        CHECK_MSG(gguf_find_kv(&a, *k) != NULL, "%s: key %s missing", what, *k);
    CHECK_MSG(a.n_tensors == b.n_tensors, "%s: %d tensors, the converter's %d", what,
              a.n_tensors, b.n_tensors);
    for (int i = 0; i < b.n_tensors; i++) {
        const gguf_tensor *y = &b.tensors[i], *x = gguf_find(&a, y->name);
        CHECK_MSG(x != NULL, "%s: tensor %s missing", what, y->name);
        if (!x) continue;
        CHECK_MSG(x->type == y->type && x->n_dims == y->n_dims &&
                      !memcmp(x->ne, y->ne, sizeof x->ne),
                  "%s: %s: type %s vs %s, or the shape differs", what, y->name,
                  gguf_type_name(x->type), gguf_type_name(y->type));
        int reord = 0;
        for (const char *const *r = reordered; r && *r; r++) reord |= strstr(y->name, *r) != NULL;
        if (!reord)
            CHECK_MSG(x->nbytes == y->nbytes && !memcmp(x->data, y->data, x->nbytes),
                      "%s: %s: bytes differ from the converter's", what, y->name);
        else
            CHECK_MSG(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes),
                      "%s: %s: expected reordered rows", what, y->name);
    }
    gguf_close(&a);
    gguf_close(&b);
}

/* Fixture (under models/) written by moe with o, against the converter's ref. */
static void as_converter(const char *fixture, const char *ref, qz_opts o,
                         const char *const *ours_only) {
    char src[512], refp[512], out[600], what[256];
    fx(src, sizeof src, "models", fixture);
    fx(refp, sizeof refp, "gguf_models", ref);
    snprintf(out, sizeof out, "%s/ds-%s-%s", test_tmpdir(), fixture, ref);
    snprintf(what, sizeof what, "%s -> %s", fixture, ref);
    if (write_gguf(src, out, &o, NULL)) return;
    same_file_as(what, out, refp, ours_only, NULL);
}

static const qz_opts k_keep = {.mode = QZ_KEEP};
static const qz_opts k_f32 = {.mode = QZ_FLOAT, .type = GGUF_TYPE_F32};
static const qz_opts k_q8 = {.mode = QZ_QUANT, .type = GGUF_TYPE_Q8_0};

TEST(quantize_ds_as_converter) {
    static const char *const v2_groups[] = {"deepseek2.expert_group_score",
                                            "deepseek2.attention.q_lora_rank", NULL};
    as_converter("deepseek_v3_base", "deepseek_v3_f32.gguf", k_keep, NULL);
    as_converter("deepseek_v3_base", "deepseek_v3_q8_0.gguf", k_q8, NULL);
    as_converter("deepseek_v2_bf16", "deepseek_v2_f32.gguf", k_f32, NULL);
    /* group_limited_greedy: llama.cpp's key and moe's own for how groups score */
    as_converter("deepseek_v2_base", "deepseek_v2_base_f32.gguf", k_keep, v2_groups);
    as_converter("glm4_moe_base", "glm4_moe_nomtp_f32.gguf", k_keep, NULL);
    as_converter("glm4_moe_base", "glm4_moe_nomtp_q8_0.gguf", k_q8, NULL);
}

/* deepseek_v3_noq: q_proj (q_lora_rank null), rope_interleave false. The
 * converter writes neither q_lora_rank (llama.cpp then refuses the file:
 * it requires the key) nor the sigmoid gating (config.json has no
 * scoring_func: llama.cpp would route by softmax), and leaves the rotary rows
 * in the halves' order llama.cpp reads as pairs; moe writes both keys and
 * reorders the rows of attn_q and attn_kv_a_mqa. */
TEST(quantize_ds_two_halves_rope) {
    static const char *const extra[] = {"deepseek2.attention.q_lora_rank",
                                        "deepseek2.expert_gating_func", NULL};
    static const char *const reord[] = {".attn_q.weight", ".attn_kv_a_mqa.weight", NULL};
    char src[512], refp[512], out[600];
    fx(src, sizeof src, "models", "deepseek_v3_noq");
    fx(refp, sizeof refp, "gguf_models", "deepseek_v3_noq_f32.gguf");
    tmp(out, sizeof out, "noq.gguf");
    if (write_gguf(src, out, &k_keep, NULL)) return;
    same_file_as("deepseek_v3_noq", out, refp, extra, reord);
    /* the converter's file requantized gains the key llama.cpp requires */
    char q8[600];
    tmp(q8, sizeof q8, "noq-q8.gguf");
    if (write_gguf(refp, q8, &k_q8, NULL) == 0) {
        gguf_file g;
        moe_err e2 = {{0}};
        int opened = gguf_open(&g, q8, &e2) == 0;
        CHECK_MSG(opened, "%s", e2.msg);
        const gguf_kv *kv = opened ? gguf_find_kv(&g, "deepseek2.attention.q_lora_rank") : NULL;
        uint32_t v = 1;
        if (kv && kv->type == GGUF_VT_U32) memcpy(&v, kv->raw, sizeof v); /* unaligned in the file */
        CHECK(kv && kv->type == GGUF_VT_U32 && v == 0);
        if (opened) gguf_close(&g);
    }
    /* the reordered rows: in each head [nope 8 | rope 8], rope row 2i + j is
     * the halves' row i + 4j; attn_kv_a_mqa: [latent 16 | rope key 8] */
    gguf_file a, b;
    moe_err err = {{0}};
    if (gguf_open(&a, out, &err) || gguf_open(&b, refp, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    const gguf_tensor *x = gguf_find(&a, "blk.1.attn_q.weight"), *y = gguf_find(&b, "blk.1.attn_q.weight");
    const gguf_tensor *xk = gguf_find(&a, "blk.1.attn_kv_a_mqa.weight");
    const gguf_tensor *yk = gguf_find(&b, "blk.1.attn_kv_a_mqa.weight");
    CHECK(x && y && xk && yk && x->type == GGUF_TYPE_F32 && xk->type == GGUF_TYPE_F32);
    if (x && y && xk && yk) {
        int64_t D = x->ne[0], bad = 0;
        const float *xa = x->data, *ya = y->data;
        for (int64_t r = 0; r < x->ne[1]; r++) {
            int64_t h = r / 16, q = r % 16;
            int64_t s = q < 8 ? r : h * 16 + 8 + qz_perm_row(q - 8, 8);
            bad += memcmp(xa + r * D, ya + s * D, sizeof(float) * (size_t)D) != 0;
        }
        const float *xb = xk->data, *yb = yk->data;
        for (int64_t r = 0; r < xk->ne[1]; r++) {
            int64_t s = r < 16 ? r : 16 + qz_perm_row(r - 16, 8);
            bad += memcmp(xb + r * D, yb + s * D, sizeof(float) * (size_t)D) != 0;
        }
        CHECK_MSG(bad == 0, "%lld rows are not the converter's rows reordered", (long long)bad);
    }
    gguf_close(&a);
    gguf_close(&b);
}

/* llama.cpp's glm4moe file with its MTP layer, requantized: the layer goes
 * (moe does not load it), block_count and nextn_predict_layers follow, and
 * the file is the converter's --no-mtp Q8_0 one (the name and size label
 * carried over from the source). */
TEST(quantize_ds_requantize_glm_mtp) {
    char src[512], refp[512], out[600];
    fx(src, sizeof src, "gguf_models", "glm4_moe_f32.gguf");
    fx(refp, sizeof refp, "gguf_models", "glm4_moe_nomtp_q8_0.gguf");
    tmp(out, sizeof out, "glm-mtp-q8.gguf");
    if (write_gguf(src, out, &k_q8, NULL)) return;
    same_file_as("glm4_moe_f32.gguf -> q8_0", out, refp, NULL, NULL);
}

/* ---------------------------------------------------------------- logits */

static double max_rel(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
    }
    return r > 0 ? d / r : d;
}

/* The routing and attention fields a GGUF file carries, as config.json has them. */
static void same_model(const char *what, const moe_config *x, const moe_config *y) {
    CHECK_MSG(x->arch == y->arch && x->n_layers == y->n_layers && x->n_heads == y->n_heads &&
                  x->head_dim == y->head_dim && x->qkv_bias == y->qkv_bias &&
                  x->qk_norm == y->qk_norm && x->rope_dim == y->rope_dim &&
                  x->q_lora_rank == y->q_lora_rank && x->kv_lora_rank == y->kv_lora_rank &&
                  x->qk_nope_dim == y->qk_nope_dim && x->v_head_dim == y->v_head_dim &&
                  x->rope_kind == y->rope_kind && fabsf(x->attn_scale - y->attn_scale) < 1e-6f,
              "%s: the attention read back differs from config.json's", what);
    for (int i = 0; i < x->n_layers; i++) {
        const moe_layer_config *p = &x->layer[i], *q = &y->layer[i];
        CHECK_MSG(p->moe == q->moe && p->n_experts == q->n_experts && p->top_k == q->top_k &&
                      p->expert_dim == q->expert_dim && p->n_shared == q->n_shared &&
                      p->shared_dim == q->shared_dim && p->score == q->score &&
                      p->norm_topk == q->norm_topk && p->routed_scale == q->routed_scale &&
                      p->select_bias == q->select_bias && p->group == q->group &&
                      p->n_group == q->n_group && p->topk_group == q->topk_group &&
                      p->ffn_dim == q->ffn_dim,
                  "%s: layer %d read back differs from config.json's", what, i);
    }
}

/* HF fixture -> GGUF (F32 kept, and Q8_0) -> logits and description. */
static void round_trip(const char *fixture, int q8) {
    char src[512], out[600];
    fx(src, sizeof src, "models", fixture);
    snprintf(out, sizeof out, "%s/ds-rt-%s%s.gguf", test_tmpdir(), fixture, q8 ? "-q8" : "");
    if (write_gguf(src, out, q8 ? &k_q8 : &k_keep, NULL)) return;
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(src, k_ids, NTOK, &V1), *b = test_model_logits(out, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double mean, mx;
        test_logits_kl(a, b, NTOK, V1, &mean, &mx);
        if (q8) CHECK_MSG(mx <= 5e-3, "%s q8_0: KL max %.3g", fixture, mx);
        else CHECK_MSG(max_rel(b, a, (size_t)NTOK * V1) <= 1e-5, "%s: GGUF logits differ by %.3g",
                       fixture, max_rel(b, a, (size_t)NTOK * V1));
    }
    free(a);
    free(b);
    moe_model *m1 = NULL, *m2 = NULL;
    moe_err err = {{0}};
    if (!moe_model_load(&m1, src, &err) && !moe_model_load(&m2, out, &err))
        same_model(fixture, moe_model_config(m2), moe_model_config(m1));
    else
        CHECK_MSG(0, "%s: %s", fixture, err.msg);
    moe_model_free(m1);
    moe_model_free(m2);
}

TEST(quantize_ds_round_trip_f32) {
    static const char *const f[] = {"deepseek_v3_base", "deepseek_v3_noq", "deepseek_v2_base",
                                    "deepseek_v2_bf16", "glm4_moe_base", "glm4_moe_legacy"};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) round_trip(f[i], 0);
}

TEST(quantize_ds_round_trip_q8_0) {
    round_trip("deepseek_v3_base", 1);
    round_trip("deepseek_v2_base", 1);
    round_trip("glm4_moe_base", 1);
}

/* ------------------------------------------------------------ GGUF -> HF */

/* GGUF at path -> HF directory of `type` -> logits against ref's (bitwise
 * when tol is 0). */
static void to_hf(const char *what, const char *gguf, const char *ref, int type, double tol) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/ds-hf-%s", test_tmpdir(), what);
    CHECK(mkdir(dir, 0755) == 0);
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, gguf, &err)) {
        CHECK_MSG(0, "%s: %s", what, err.msg);
        return;
    }
    qz_write_opts wo = {0};
    CHECK_MSG(qz_write_hf(m, dir, type, &wo, &err) == 0, "%s: %s", what, err.msg);
    moe_model_free(m);
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(ref, k_ids, NTOK, &V1), *b = test_model_logits(dir, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2 && tol == 0)
        CHECK_MSG(!memcmp(a, b, sizeof(float) * NTOK * (size_t)V1), "%s -> HF: logits differ (%.3g)",
                  what, max_rel(b, a, (size_t)NTOK * V1));
    else if (a && b && V1 == V2)
        CHECK_MSG(max_rel(b, a, (size_t)NTOK * V1) <= tol, "%s -> HF: logits differ by %.3g", what,
                  max_rel(b, a, (size_t)NTOK * V1));
    free(a);
    free(b);
}

/* HF -> our GGUF -> HF: kv_b_proj joined again is the source's, so the
 * logits are the source's bit for bit (noq: its rotary rows stay in
 * llama.cpp's pair order, rope_interleave true: the same sums reordered) */
TEST(quantize_ds_gguf_to_hf) {
    static const struct { const char *fixture; int type; double tol; } k[] = {
        {"deepseek_v3_base", DT_F32, 0}, {"deepseek_v2_base", DT_F32, 0},
        {"deepseek_v2_bf16", DT_BF16, 0}, {"glm4_moe_base", DT_F32, 0},
        {"deepseek_v3_noq", DT_F32, 1e-5},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char src[512], g[600];
        fx(src, sizeof src, "models", k[i].fixture);
        snprintf(g, sizeof g, "%s/ds-tohf-%s.gguf", test_tmpdir(), k[i].fixture);
        if (write_gguf(src, g, &k_keep, NULL)) continue;
        to_hf(k[i].fixture, g, src, k[i].type, k[i].tol);
    }
    /* llama.cpp's own files */
    char g[512], ref[512];
    to_hf("lcp-v3", fx(g, sizeof g, "gguf_models", "deepseek_v3_f32.gguf"),
          fx(ref, sizeof ref, "models", "deepseek_v3_base"), DT_F32, 1e-5);
    to_hf("lcp-v2", fx(g, sizeof g, "gguf_models", "deepseek_v2_f32.gguf"),
          fx(ref, sizeof ref, "models", "deepseek_v2_bf16"), DT_F32, 1e-5);
    to_hf("lcp-glm", fx(g, sizeof g, "gguf_models", "glm4_moe_f32.gguf"),
          fx(ref, sizeof ref, "models", "glm4_moe_base"), DT_F32, 0);
}

/* ------------------------------------------------------ GGUF -> Q4_K GGUF */

/* llama.cpp's deepseek2 file to Q4_K: llama-quantize's rules (rows of 32 to
 * Q5_0, of 8 and 16 to F16, the routers and vectors F32), and it runs. */
TEST(quantize_ds_requantize_q4_k) {
    char src[512], out[600];
    fx(src, sizeof src, "gguf_models", "deepseek_v3_f32.gguf");
    tmp(out, sizeof out, "v3-q4k.gguf");
    qz_opts o = {.mode = QZ_QUANT, .type = GGUF_TYPE_Q4_K};
    qz_plan p;
    if (write_gguf(src, out, &o, &p)) return;
    qz_plan_free(&p);
    gguf_file g;
    moe_err err = {{0}};
    if (gguf_open(&g, out, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    static const struct { const char *name; int type; } want[] = {
        {"blk.1.attn_k_b.weight", GGUF_TYPE_F16},      {"blk.1.attn_v_b.weight", GGUF_TYPE_F16},
        {"blk.1.attn_kv_a_mqa.weight", GGUF_TYPE_Q5_0}, {"blk.1.attn_q_b.weight", GGUF_TYPE_F16},
        {"blk.1.ffn_gate_exps.weight", GGUF_TYPE_Q5_0}, {"blk.1.ffn_down_exps.weight", GGUF_TYPE_F16},
        {"blk.1.ffn_gate_inp.weight", GGUF_TYPE_F32},   {"blk.1.exp_probs_b.bias", GGUF_TYPE_F32},
        {"output.weight", GGUF_TYPE_Q8_0},              {"blk.0.ffn_down.weight", GGUF_TYPE_F16},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const gguf_tensor *t = gguf_find(&g, want[i].name);
        CHECK_MSG(t && (int)t->type == want[i].type, "%s: %s, want %s", want[i].name,
                  t ? gguf_type_name(t->type) : "missing", gguf_type_name(want[i].type));
    }
    gguf_close(&g);
    /* the same file as the HF directory quantized (its keys as the converter's) */
    char hf[512], hq[600];
    tmp(hq, sizeof hq, "v3-hf-q4k.gguf");
    if (write_gguf(fx(hf, sizeof hf, "models", "deepseek_v3_base"), hq, &o, NULL)) return;
    same_file_as("deepseek_v3_f32.gguf -> q4_k", out, hq, NULL, NULL);
    /* quantization noise only (rows of 32: Q5_0; Q4_0 gives a KL max of 2.7 here) */
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(src, k_ids, NTOK, &V1), *b = test_model_logits(out, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double mean, mx;
        test_logits_kl(a, b, NTOK, V1, &mean, &mx);
        CHECK_MSG(mean <= 0.1 && mx <= 0.5, "Q4_K: KL mean %.3g, max %.3g", mean, mx);
    }
    free(a);
    free(b);
}

/* ------------------------------------------------------ moe_init_gguf */

/* glm4_moe_base's shape, random weights straight to GGUF = init + convert */
TEST(quantize_ds_init_gguf_glm) {
    char src[512], dir[600], a[700], b[700];
    fx(src, sizeof src, "models", "glm4_moe_base");
    static moe_config c;
    moe_err err = {{0}};
    CHECK_MSG(moe_config_load(&c, src, &err) == 0, "%s", err.msg);
    tmp(dir, sizeof dir, "init-glm");
    snprintf(a, sizeof a, "%s/converted.gguf", dir);
    snprintf(b, sizeof b, "%s/direct.gguf", dir);
    moe_init_opts o = {MOE_INIT_F32, 3, 0.05f, 2, NULL, NULL, 0, 0};
    mkdir(dir, 0755);
    CHECK_MSG(moe_init_random(&c, dir, &o, &err) == 0, "%s", err.msg);
    CHECK(write_gguf(dir, a, &k_q8, NULL) == 0);
    moe_init_gguf_opts g = {MOE_QTYPE_Q8_0, NULL};
    CHECK_MSG(moe_init_gguf(&c, b, &o, &g, &err) == 0, "%s", err.msg);
    gguf_file x, y;
    if (gguf_open(&x, a, &err) || gguf_open(&y, b, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    CHECK(x.n_tensors == y.n_tensors && x.n_tensors > 0);
    for (int i = 0; i < x.n_tensors && i < y.n_tensors; i++)
        CHECK_MSG(!strcmp(x.tensors[i].name, y.tensors[i].name) &&
                      x.tensors[i].nbytes == y.tensors[i].nbytes &&
                      !memcmp(x.tensors[i].data, y.tensors[i].data, x.tensors[i].nbytes),
                  "%s differs", x.tensors[i].name);
    gguf_close(&x);
    gguf_close(&y);
}

/* ------------------------------------------------------------- refusals */

static void refused(const char *fixture, void (*edit)(moe_config *), const char *words) {
    char src[512];
    static moe_config c;
    moe_err err = {{0}};
    CHECK_MSG(moe_config_load(&c, fx(src, sizeof src, "models", fixture), &err) == 0, "%s",
              err.msg);
    edit(&c);
    qz_plan p;
    CHECK_MSG(qz_plan_make_cfg(&p, &c, GGUF_TYPE_F32, GGUF_TYPE_F32, &k_keep, &err) != 0,
              "%s: not refused (%s)", fixture, words);
    CHECK_STR_CONTAINS(err.msg, words);
}

static void dense_last(moe_config *c) {
    c->layer[c->n_layers - 1] = (moe_layer_config){.moe = 0, .ffn_dim = 40, .routed_scale = 1};
}
static void no_bias(moe_config *c) {
    for (int i = 0; i < c->n_layers; i++) c->layer[i].select_bias = 0;
}
static void shared_gate(moe_config *c) { c->layer[1].shared_gate = 1; }
static void yarn_cos(moe_config *c) { c->rope_attn_factor = 1.25f; }
static void two_scales(moe_config *c) { c->layer[2].routed_scale = 3.0f; }

TEST(quantize_ds_refuses) {
    refused("glm4_moe_base", dense_last, "dense after MoE layers");
    refused("glm4_moe_base", no_bias, "exp_probs_b");
    refused("deepseek_v3_base", shared_gate, "a gate on the shared expert");
    refused("deepseek_v3_base", yarn_cos, "YaRN with cos/sin scaled by 1.25");
    refused("deepseek_v2_base", two_scales, "differ from the first MoE layer's");
}
