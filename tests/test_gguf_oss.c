/*
 * test_gguf_oss.c - gpt-oss GGUF files (general.architecture "gpt-oss", the
 * layout llama.cpp's converter writes; src/model/model_gguf.c) against the
 * same models from safetensors, and broken gpt-oss files.
 *
 * The twins tests/fixtures/gguf_models/gpt_oss_{f32,mxfp4}.gguf are made by
 * llama.cpp's own converter (tools/gen_gguf_fixtures.sh) from the
 * gpt_oss_base (float experts) and gpt_oss_mxfp4 (MXFP4 experts, kept MXFP4
 * in the GGUF) fixtures. Two hyperparameters of those fixtures have no GGUF
 * key llama.cpp writes: swiglu_limit (1.0 there; llama.cpp computes with
 * 7.0) and YaRN's truncate (false there; llama.cpp floors and ceils the
 * correction range). The reference is therefore the same safetensors model
 * with config.json saying swiglu_limit 7.0 and truncate true; the logits
 * must then agree within 1e-5 relative (the MXFP4 twin holds the very same
 * MXFP4 blocks, so it is held to the same bound).
 *
 * GGUF -> Hugging Face directory (qz_write_hf, hf_config_write): the f32
 * twin gives the same logits bit for bit; the MXFP4 one's experts come out
 * as exactly their dequantized values; and a model whose SwiGLU limit and
 * YaRN truncation llama.cpp has no key for goes HF -> GGUF -> HF with every
 * config field and logit unchanged (moe's own keys carry them).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moe.h"
#include "formats/gguf.h"
#include "model/model.h"
#include "model/quantize.h"
#include "test.h"
#include "test_util.h"

#define NTOK 12

static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

/* Replace the first `from` in s (of capacity cap) by `to`; 0, or -1 if absent. */
static int replace(char *s, size_t cap, const char *from, const char *to) {
    char *at = strstr(s, from);
    size_t lf = strlen(from), lt = strlen(to), n = strlen(s);
    if (!at || n - lf + lt + 1 > cap) return -1;
    memmove(at + lt, at + lf, n - (size_t)(at - s) - lf + 1);
    memcpy(at, to, lt);
    return 0;
}

/* dir = tests/fixtures/models/FIXTURE with what llama.cpp computes in config.json. */
static int llamacpp_view(const char *fixture, char *dir, size_t n) {
    char src[512], path[700], buf[8192];
    snprintf(src, sizeof src, "%s/models/%s/config.json", test_fixtures(), fixture);
    snprintf(dir, n, "%s/%s_llamacpp", test_tmpdir(), fixture);
    if (mkdir(dir, 0755)) return -1;
    FILE *f = fopen(src, "rb");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[len] = 0;
    if (replace(buf, sizeof buf, "\"swiglu_limit\": 1.0", "\"swiglu_limit\": 7.0") ||
        replace(buf, sizeof buf, "\"truncate\": false", "\"truncate\": true"))
        return -1;
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    if (!f || fputs(buf, f) < 0) {
        if (f) fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(src, sizeof src, "%s/models/%s/model.safetensors", test_fixtures(), fixture);
    char abs[PATH_MAX];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return realpath(src, abs) && symlink(abs, path) == 0 ? 0 : -1;
}

/* Every switch gpt_oss computes with is the same in x and y. */
static void check_same_config(const moe_config *x, const moe_config *y) {
    CHECK_EQ_INT(x->arch, y->arch);
    CHECK(x->vocab == y->vocab && x->dim == y->dim && x->n_layers == y->n_layers &&
          x->n_heads == y->n_heads && x->n_kv_heads == y->n_kv_heads && x->max_pos == y->max_pos);
    CHECK_EQ_INT(x->head_dim, y->head_dim);
    CHECK_EQ_INT(x->qkv_bias, y->qkv_bias);
    CHECK_EQ_INT(x->o_bias, y->o_bias);
    CHECK_EQ_INT(x->attn_sinks, y->attn_sinks);
    CHECK_EQ_INT(x->sliding_window, y->sliding_window);
    CHECK_EQ_INT(x->tied_embeddings, y->tied_embeddings);
    CHECK_EQ_INT(x->rope_kind, y->rope_kind);
    CHECK_EQ_INT(x->rope_orig_max_pos, y->rope_orig_max_pos);
    CHECK_EQ_INT(x->rope_truncate, y->rope_truncate);
    CHECK(x->rope_factor == y->rope_factor && x->rope_beta_fast == y->rope_beta_fast &&
          x->rope_beta_slow == y->rope_beta_slow && x->rope_theta == y->rope_theta &&
          x->norm_eps == y->norm_eps);
    CHECK(x->rope_attn_factor == y->rope_attn_factor);
    for (int i = 0; i < x->n_layers; i++) {
        const moe_layer_config *p = &x->layer[i], *q = &y->layer[i];
        CHECK(p->full_attention == q->full_attention && p->n_experts == q->n_experts &&
              p->top_k == q->top_k && p->expert_dim == q->expert_dim &&
              p->score == q->score && p->norm_topk == q->norm_topk &&
              p->router_bias == q->router_bias && p->expert_bias == q->expert_bias &&
              p->act == q->act && p->act_alpha == q->act_alpha &&
              p->act_limit == q->act_limit);
    }
}

static void check_twin(const char *fixture, const char *gguf) {
    char dir[600], gg[512];
    CHECK(llamacpp_view(fixture, dir, sizeof dir) == 0);
    snprintf(gg, sizeof gg, "%s/gguf_models/%s", test_fixtures(), gguf);
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(dir, k_ids, NTOK, &V1);
    float *b = test_model_logits(gg, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double r = test_rel_err(b, a, NTOK * V1);
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "%s: rel err %.3g\n", gguf, r);
        CHECK_MSG(r <= 1e-5, "%s: relative error %.3g > 1e-5", gguf, r);
    }
    free(a);
    free(b);
    /* every switch gpt_oss computes with, as config.json gives it */
    moe_model *m1 = NULL, *m2 = NULL;
    moe_err err;
    CHECK(moe_model_load(&m1, dir, &err) == 0);
    CHECK_MSG(moe_model_load(&m2, gg, &err) == 0, "%s", err.msg);
    if (m1 && m2) check_same_config(moe_model_config(m1), moe_model_config(m2));
    if (m2 && strstr(gguf, "mxfp4")) {
        moe_model_stats s;
        moe_model_stats_get(m2, &s);
        CHECK_MSG(strstr(s.dtypes, "mxfp4") != NULL, "dtypes %s", s.dtypes);
    }
    moe_model_free(m1);
    moe_model_free(m2);
}

TEST(gguf_gpt_oss_f32) { check_twin("gpt_oss_base", "gpt_oss_f32.gguf"); }
TEST(gguf_gpt_oss_mxfp4) { check_twin("gpt_oss_mxfp4", "gpt_oss_mxfp4.gguf"); }

/* ------------------------------------------------------ GGUF <-> HF */

static moe_model *load(const char *path) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, path, &err)) {
        CHECK_MSG(0, "%s: %s", path, err.msg);
        return NULL;
    }
    return m;
}

/* path written as an HF directory dir (f32); 0 or a failed check. */
static int to_hf(const char *path, const char *dir) {
    moe_model *m = load(path);
    if (!m || mkdir(dir, 0755)) {
        moe_model_free(m);
        CHECK(0);
        return -1;
    }
    moe_err err = {{0}};
    qz_write_opts wo = {0};
    int r = qz_write_hf(m, dir, DT_F32, &wo, &err);
    CHECK_MSG(r == 0, "%s", err.msg);
    moe_model_free(m);
    return r;
}

/* Every expert weight row of a and b dequantizes to the same floats; the
 * biases are equal. */
static void same_experts(const moe_model *a, const moe_model *b) {
    const moe_config *c = &a->cfg;
    float *x = malloc(sizeof(float) * 4096), *y = malloc(sizeof(float) * 4096);
    int bad = 0;
    for (int i = 0; x && y && i < c->n_layers; i++)
        for (int j = 0; j < c->layer[i].n_experts; j++) {
            const ffn_w *p = &a->layers[i].experts[j], *q = &b->layers[i].experts[j];
            const mat *mp[3] = {&p->gate, &p->up, &p->down}, *mq[3] = {&q->gate, &q->up, &q->down};
            for (int k = 0; k < 3; k++)
                for (int64_t r = 0; r < mp[k]->rows; r++) {
                    mat_row_f32(x, mp[k], r);
                    mat_row_f32(y, mq[k], r);
                    bad += memcmp(x, y, sizeof(float) * (size_t)mp[k]->cols) != 0;
                }
            int64_t F = c->layer[i].expert_dim, D = c->dim;
            bad += memcmp(p->bg, q->bg, sizeof(float) * (size_t)F) != 0;
            bad += memcmp(p->bu, q->bu, sizeof(float) * (size_t)F) != 0;
            bad += memcmp(p->bd, q->bd, sizeof(float) * (size_t)D) != 0;
        }
    CHECK_MSG(x && y && bad == 0, "%d expert rows or biases differ", bad);
    free(x);
    free(y);
}

static void gguf_to_hf(const char *gguf, int exact_logits) {
    char src[512], dir[600];
    snprintf(src, sizeof src, "%s/gguf_models/%s", test_fixtures(), gguf);
    snprintf(dir, sizeof dir, "%s/hf-%.*s", test_tmpdir(), (int)strlen(gguf) - 5, gguf);
    if (to_hf(src, dir)) return;
    moe_model *a = load(src), *b = load(dir);
    if (a && b) {
        CHECK_EQ_INT(b->cfg.arch, MOE_ARCH_GPT_OSS);
        same_experts(a, b);
        check_same_config(&a->cfg, &b->cfg);
    }
    moe_model_free(a);
    moe_model_free(b);
    if (!exact_logits) return;
    int V1 = 0, V2 = 0;
    float *x = test_model_logits(src, k_ids, NTOK, &V1), *y = test_model_logits(dir, k_ids, NTOK, &V2);
    CHECK(x && y && V1 == V2 && !memcmp(x, y, sizeof(float) * NTOK * (size_t)V1));
    free(x);
    free(y);
}

TEST(gguf_gpt_oss_to_hf_f32) { gguf_to_hf("gpt_oss_f32.gguf", 1); }
TEST(gguf_gpt_oss_to_hf_mxfp4) { gguf_to_hf("gpt_oss_mxfp4.gguf", 0); }

/* HF (swiglu_limit 1.0, truncate false) -> GGUF -> HF: nothing lost. */
TEST(gguf_gpt_oss_hf_round_trip) {
    char src[512], gg[600], dir[600];
    snprintf(src, sizeof src, "%s/models/gpt_oss_base", test_fixtures());
    snprintf(gg, sizeof gg, "%s/oss_rt.gguf", test_tmpdir());
    snprintf(dir, sizeof dir, "%s/oss_rt", test_tmpdir());
    moe_model *m = load(src);
    if (!m) return;
    moe_err err = {{0}};
    qz_plan p;
    qz_opts o = {.mode = QZ_KEEP};
    qz_write_opts wo = {0};
    CHECK_MSG(qz_plan_make(&p, m, &o, &err) == 0 && qz_write_gguf(m, &p, gg, &wo, &err) == 0,
              "%s", err.msg);
    qz_plan_free(&p);
    moe_model_free(m);
    if (to_hf(gg, dir)) return;
    moe_model *a = load(src), *b = load(gg), *c = load(dir);
    if (a && b && c) {
        check_same_config(&a->cfg, &b->cfg);
        check_same_config(&a->cfg, &c->cfg);
        CHECK(a->cfg.rope_truncate == 0 && a->cfg.layer[0].act_limit == 1.0f);
    }
    moe_model_free(a);
    moe_model_free(b);
    moe_model_free(c);
    int V1 = 0, V2 = 0;
    float *x = test_model_logits(src, k_ids, NTOK, &V1), *y = test_model_logits(dir, k_ids, NTOK, &V2);
    CHECK(x && y && V1 == V2 && !memcmp(x, y, sizeof(float) * NTOK * (size_t)V1));
    free(x);
    free(y);
}

/* ------------------------------------------------------------ bad files */

/* Rewrite src to dst: tensor `name` left out (ne NULL) or given the dims
 * ne[nd] (its bytes reused: no more elements than before) or the type
 * `type` (>= 0); the key `drop` (may be NULL) left out. Arrays are kept. */
static int rewrite(const char *src, const char *dst, const char *name, const int64_t *ne, int nd,
                   int type, const char *drop) {
    gguf_file g;
    moe_err err;
    if (gguf_open(&g, src, &err)) return -1;
    gguf_wkv *kv = calloc((size_t)g.n_kv + 1, sizeof *kv);
    gguf_wtensor *t = calloc((size_t)g.n_tensors + 1, sizeof *t);
    int nk = 0, nt = 0;
    for (int i = 0; i < g.n_kv; i++) {
        const gguf_kv *k = &g.kvs[i];
        if (drop && !strcmp(k->key, drop)) continue;
        gguf_wkv w = {.key = k->key, .type = k->type, .arr_type = k->arr_type, .n = k->n};
        if (k->type == GGUF_VT_STR) {
            w.str = k->strs[0];
            w.lens = k->lens;
        } else if (k->type == GGUF_VT_ARR) {
            if (k->arr_type == GGUF_VT_STR) {
                w.strs = k->strs;
                w.lens = k->lens;
            } else {
                w.arr = k->raw;
            }
        } else {
            memcpy(&w.v, k->raw, (size_t)gguf_vtype_size(k->type));
        }
        kv[nk++] = w;
    }
    for (int i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *s = &g.tensors[i];
        int hit = name && !strcmp(s->name, name);
        if (hit && !ne && type < 0) continue;
        t[nt] = (gguf_wtensor){s->name, s->type, s->n_dims, {0}, s->data};
        memcpy(t[nt].ne, s->ne, sizeof s->ne);
        if (hit && ne) {
            t[nt].n_dims = nd;
            for (int d = 0; d < GGUF_MAX_DIMS; d++) t[nt].ne[d] = d < nd ? ne[d] : 1;
        }
        if (hit && type >= 0) t[nt].type = (gguf_type)type;
        nt++;
    }
    int r = gguf_write(dst, kv, nk, t, nt, &err);
    free(kv);
    free(t);
    gguf_close(&g);
    return r;
}

static void expect_fail(const char *path, const char *want1, const char *want2) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    int r = moe_model_load(&m, path, &err);
    CHECK_MSG(r == -1 && m == NULL, "%s loaded", path);
    CHECK_MSG(strstr(err.msg, want1) && (!want2 || strstr(err.msg, want2)),
              "message \"%s\" lacks \"%s\" / \"%s\"", err.msg, want1, want2 ? want2 : "");
    moe_model_free(m);
}

/* One broken variant of a twin: rewritten to tmp/tag.gguf, must fail naming want1 (and want2). */
static void bad(const char *twin, const char *tag, const char *name, const int64_t *ne, int nd,
                int type, const char *drop, const char *want1, const char *want2) {
    char src[512], dst[600];
    snprintf(src, sizeof src, "%s/gguf_models/%s", test_fixtures(), twin);
    snprintf(dst, sizeof dst, "%s/%s.gguf", test_tmpdir(), tag);
    CHECK(rewrite(src, dst, name, ne, nd, type, drop) == 0);
    expect_fail(dst, want1, want2);
}

TEST(gguf_gpt_oss_bad_files) {
    const char *f = "gpt_oss_f32.gguf", *q = "gpt_oss_mxfp4.gguf";
    /* sinks: missing, too short, 2-D */
    bad(f, "oss_nosinks", "blk.2.attn_sinks.weight", NULL, 0, -1, NULL,
        "blk.2.attn_sinks.weight is missing", NULL);
    bad(f, "oss_sinks3", "blk.1.attn_sinks.weight", (int64_t[]){3}, 1, -1, NULL,
        "blk.1.attn_sinks.weight has shape [3], expected [4]", NULL);
    bad(f, "oss_sinks22", "blk.1.attn_sinks.weight", (int64_t[]){2, 2}, 2, -1, NULL,
        "blk.1.attn_sinks.weight has shape", NULL);
    /* expert biases: missing, one expert short, flattened, F for D */
    bad(f, "oss_nogb", "blk.0.ffn_gate_exps.bias", NULL, 0, -1, NULL,
        "blk.0.ffn_gate_exps.bias is missing", NULL);
    bad(f, "oss_ub5", "blk.3.ffn_up_exps.bias", (int64_t[]){16, 5}, 2, -1, NULL,
        "blk.3.ffn_up_exps.bias has shape [5, 16], expected [6, 16]", NULL);
    bad(f, "oss_db1d", "blk.0.ffn_down_exps.bias", (int64_t[]){32 * 6}, 1, -1, NULL,
        "blk.0.ffn_down_exps.bias has shape [192], expected [6, 32]", NULL);
    bad(f, "oss_dbF", "blk.1.ffn_down_exps.bias", (int64_t[]){16, 6}, 2, -1, NULL,
        "blk.1.ffn_down_exps.bias has shape [6, 16], expected [6, 32]", NULL);
    bad(f, "oss_norb", "blk.0.ffn_gate_inp.bias", NULL, 0, -1, NULL,
        "blk.0.ffn_gate_inp.bias is missing", NULL);
    bad(f, "oss_nopost", "blk.3.post_attention_norm.weight", NULL, 0, -1, NULL,
        "blk.3.post_attention_norm.weight is missing", NULL);
    /* MXFP4 experts: missing, one expert short, rows not whole blocks */
    bad(q, "oss_nogate", "blk.1.ffn_gate_exps.weight", NULL, 0, -1, NULL,
        "blk.1.ffn_gate_exps.weight is missing", NULL);
    bad(q, "oss_up3", "blk.0.ffn_up_exps.weight", (int64_t[]){32, 32, 3}, 3, -1, NULL,
        "blk.0.ffn_up_exps.weight has shape [3, 32, 32], expected [4, 32, 32]", NULL);
    bad(q, "oss_down_f32", "blk.0.ffn_down_exps.weight", (int64_t[]){8, 32, 4}, 3, 0, NULL,
        "blk.0.ffn_down_exps.weight has shape [4, 32, 8], expected [4, 32, 32]", NULL);
    /* keys llama.cpp requires */
    bad(f, "oss_noswa", NULL, NULL, 0, -1, "gpt-oss.attention.sliding_window",
        "gpt-oss.attention.sliding_window is missing", NULL);
    bad(f, "oss_noeff", NULL, NULL, 0, -1, "gpt-oss.expert_feed_forward_length",
        "gpt-oss.expert_feed_forward_length is missing", NULL);
    bad(f, "oss_noeps", NULL, NULL, 0, -1, "gpt-oss.attention.layer_norm_rms_epsilon",
        "gpt-oss.attention.layer_norm_rms_epsilon is missing", NULL);
}

/* ------------------------------------------------------------ quantize */

/* src written by the plan of o to tmp/tag.gguf, opened as g; 0 or a failed check. */
static int quantize_to(const char *src, const char *tag, const qz_opts *o, gguf_file *g) {
    char out[600];
    snprintf(out, sizeof out, "%s/%s.gguf", test_tmpdir(), tag);
    moe_model *m = load(src);
    if (!m) return -1;
    moe_err err = {{0}};
    qz_plan p;
    qz_write_opts wo = {0};
    int r = qz_plan_make(&p, m, o, &err);
    if (!r) {
        r = qz_write_gguf(m, &p, out, &wo, &err);
        qz_plan_free(&p);
    }
    moe_model_free(m);
    CHECK_MSG(r == 0, "%s: %s", tag, err.msg);
    if (r) return -1;
    r = gguf_open(g, out, &err);
    CHECK_MSG(r == 0, "%s", err.msg);
    return r;
}

static int is_expert_name(const char *n) { return strstr(n, "_exps.weight") != NULL; }

/* Every routed expert tensor of g has type `want` (-1: the same type and bytes as in ref). */
static void experts_are(const gguf_file *g, const gguf_file *ref, int want) {
    int n = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        const gguf_tensor *t = &g->tensors[i];
        if (!is_expert_name(t->name)) continue;
        n++;
        const gguf_tensor *r = gguf_find(ref, t->name);
        if (want >= 0) {
            CHECK_MSG((int)t->type == want, "%s: type %d, want %d", t->name, t->type, want);
        } else {
            CHECK_MSG(r && t->type == r->type && t->nbytes == r->nbytes &&
                          !memcmp(t->data, r->data, t->nbytes),
                      "%s: not kept as it was", t->name);
        }
    }
    CHECK(n > 0);
}

TEST(gguf_gpt_oss_quantize_experts) {
    char src[512], ref[512];
    snprintf(src, sizeof src, "%s/gguf_models/gpt_oss_mxfp4.gguf", test_fixtures());
    gguf_file s, g;
    moe_err err;
    if (gguf_open(&s, src, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    /* default: MXFP4 experts kept bit for bit, the other matrices Q8_0 */
    qz_opts o = {.mode = QZ_QUANT, .type = GGUF_TYPE_Q8_0};
    if (!quantize_to(src, "oss_q8_keep", &o, &g)) {
        experts_are(&g, &s, -1);
        const gguf_tensor *q = gguf_find(&g, "blk.0.attn_q.weight");
        CHECK(q && q->type == GGUF_TYPE_Q8_0);
        gguf_close(&g);
    }
    /* requantized: Q8_0 / Q4_K experts (rows of 32: Q4_K falls back to Q8_0) */
    o.experts = GGUF_TYPE_Q8_0;
    if (!quantize_to(src, "oss_q8_all", &o, &g)) {
        experts_are(&g, &s, GGUF_TYPE_Q8_0);
        gguf_close(&g);
    }
    /* the requantized model still computes the same model, within Q8_0's error */
    char out[600];
    snprintf(out, sizeof out, "%s/oss_q8_all.gguf", test_tmpdir());
    int V1 = 0, V2 = 0;
    float *a = test_model_logits(src, k_ids, NTOK, &V1), *b = test_model_logits(out, k_ids, NTOK, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double r = test_rel_err(b, a, NTOK * V1);
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "q8_0 experts: rel err %.3g\n", r);
        CHECK_MSG(r < 0.05, "rel err %.3g", r);
    }
    free(a);
    free(b);
    /* float experts to MXFP4 (--type mxfp4, llama-quantize's MXFP4_MOE): the
     * dequantized MXFP4 experts of the twin, as f32 in an HF directory, come
     * back as the very same MXFP4 blocks; other matrices Q8_0 */
    snprintf(ref, sizeof ref, "%s/oss_float_experts", test_tmpdir());
    if (!to_hf(src, ref)) {
        qz_opts x = {.mode = QZ_QUANT, .type = GGUF_TYPE_MXFP4};
        if (!quantize_to(ref, "oss_to_mxfp4", &x, &g)) {
            experts_are(&g, &s, -1);
            const gguf_tensor *q = gguf_find(&g, "output.weight");
            CHECK(q && q->type == GGUF_TYPE_Q8_0);
            const gguf_kv *ft = gguf_find_kv(&g, "general.file_type");
            uint32_t ftype = 0;
            if (ft && ft->type == GGUF_VT_U32) memcpy(&ftype, ft->raw, sizeof ftype);
            CHECK(ftype == 38); /* MOSTLY_MXFP4_MOE */
            gguf_close(&g);
        }
    }
    gguf_close(&s);
}
