/*
 * test_qwen3_next.c - what qwen3_next adds beyond the conformance fixtures
 * (tests/test_conformance.c holds qwen3_next_base / _legacy to transformers):
 *   - config.json of Qwen3-Next-80B-A3B and transformers' defaults onto the
 *     feature flags, and every refusal (unknown layer types, sizes that do
 *     not divide, unusable partial rotary, too long a conv kernel);
 *   - the chunked prefill of the Gated DeltaNet layers (one call, calls
 *     shorter than a chunk, calls continuing a state) equal to one token a
 *     call (the recurrent form), logits and states, on every kernel path;
 *     long prompts, a fresh one and a continued one, and a decode step in
 *     one interleaved call equal to each sequence run alone;
 *   - the recurrent state of the Gated DeltaNet layers per sequence:
 *     moe_seq_rm forgets a whole sequence only, moe_seq_cp copies the state,
 *     both held to the same tokens run alone;
 *   - what is not there yet is refused: training and GGUF output
 *     (config.json output: test_qwen3_5_moe.c).
 */
#include "test.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "formats/hf_config.h"
#include "model/model.h"
#include "moe_quant.h"

static moe_config g_cfg;

static int parse(const char *json, moe_err *err) {
    memset(err, 0, sizeof *err);
    return hf_config_parse(&g_cfg, json, strlen(json), "cfg.json", err);
}

static void parse_bad(const char *json, const char *needle, int line) {
    moe_err err;
    int rc = parse(json, &err);
    CHECK_MSG(rc == -1, "line %d: accepted a bad config (wanted \"%s\")", line, needle);
    if (rc == -1)
        CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: \"%s\" does not contain \"%s\"", line,
                  err.msg, needle);
}
#define PARSE_BAD(j, n) parse_bad(j, n, __LINE__)

/* As Qwen/Qwen3-Next-80B-A3B-Instruct's config.json says it. */
static const char *k_80b =
    "{\"architectures\": [\"Qwen3NextForCausalLM\"], \"model_type\": \"qwen3_next\","
    " \"vocab_size\": 151936, \"hidden_size\": 2048, \"intermediate_size\": 5120,"
    " \"num_hidden_layers\": 48, \"num_attention_heads\": 16, \"num_key_value_heads\": 2,"
    " \"head_dim\": 256, \"max_position_embeddings\": 262144, \"rms_norm_eps\": 1e-06,"
    " \"rope_theta\": 10000000, \"partial_rotary_factor\": 0.25, \"rope_scaling\": null,"
    " \"full_attention_interval\": 4, \"linear_conv_kernel_dim\": 4,"
    " \"linear_key_head_dim\": 128, \"linear_value_head_dim\": 128,"
    " \"linear_num_key_heads\": 16, \"linear_num_value_heads\": 32,"
    " \"num_experts\": 512, \"num_experts_per_tok\": 10, \"moe_intermediate_size\": 512,"
    " \"shared_expert_intermediate_size\": 512, \"norm_topk_prob\": true,"
    " \"decoder_sparse_step\": 1, \"mlp_only_layers\": [], \"attention_bias\": false,"
    " \"hidden_act\": \"silu\", \"tie_word_embeddings\": false, \"bos_token_id\": 151643,"
    " \"eos_token_id\": 151645}";

TEST(qwen3_next_config_80b) {
    moe_err err;
    CHECK_MSG(parse(k_80b, &err) == 0, "%s", err.msg);
    const moe_config *c = &g_cfg;
    CHECK(c->arch == MOE_ARCH_QWEN3_NEXT);
    CHECK_EQ_INT(c->n_layers, 48);
    CHECK_EQ_INT(c->head_dim, 256);
    CHECK_EQ_INT(c->rope_dim, 64);
    CHECK(c->norm_offset == 1 && c->attn_out_gate == 1 && c->qk_norm == MOE_QKNORM_HEAD);
    CHECK(c->qkv_bias == 0 && c->o_bias == 0);
    CHECK_EQ_INT(c->lin_k_heads, 16);
    CHECK_EQ_INT(c->lin_v_heads, 32);
    CHECK_EQ_INT(c->lin_k_dim, 128);
    CHECK_EQ_INT(c->lin_v_dim, 128);
    CHECK_EQ_INT(c->lin_conv, 4);
    int n_lin = 0;
    for (int i = 0; i < 48; i++) {
        CHECK_EQ_INT(c->layer[i].linear_attn, (i + 1) % 4 != 0);
        n_lin += c->layer[i].linear_attn;
        CHECK(c->layer[i].moe && c->layer[i].n_experts == 512 && c->layer[i].top_k == 10);
        CHECK(c->layer[i].n_shared == 1 && c->layer[i].shared_gate && c->layer[i].shared_dim == 512);
        CHECK(c->layer[i].norm_topk == 1 && c->layer[i].expert_dim == 512);
    }
    CHECK_EQ_INT(n_lin, 36);
    CHECK(c->rope_theta == 1e7f);
}

TEST(qwen3_next_config_defaults_and_layer_types) {
    moe_err err;
    CHECK_MSG(parse("{\"model_type\": \"qwen3_next\"}", &err) == 0, "%s", err.msg);
    /* Qwen3NextConfig's defaults */
    CHECK_EQ_INT(g_cfg.n_layers, 48);
    CHECK_EQ_INT(g_cfg.head_dim, 256);
    CHECK_EQ_INT(g_cfg.rope_dim, 64);
    CHECK_EQ_INT(g_cfg.lin_v_heads, 32);
    CHECK_EQ_INT(g_cfg.layer[0].top_k, 10);
    CHECK_EQ_INT(g_cfg.layer[0].norm_topk, 1);
    CHECK_EQ_INT(g_cfg.layer[3].linear_attn, 0);
    CHECK_EQ_INT(g_cfg.layer[4].linear_attn, 1);
    /* layer_types wins; mlp_only_layers and decoder_sparse_step as qwen2_moe */
    CHECK_MSG(parse("{\"model_type\": \"qwen3_next\", \"num_hidden_layers\": 3, \"head_dim\": 16,"
                    " \"layer_types\": [\"full_attention\", \"linear_attention\", \"full_attention\"],"
                    " \"mlp_only_layers\": [1], \"rope_parameters\": {\"rope_type\": \"default\","
                    " \"rope_theta\": 100.0, \"partial_rotary_factor\": 0.5}}", &err) == 0,
              "%s", err.msg);
    CHECK(!g_cfg.layer[0].linear_attn && g_cfg.layer[1].linear_attn && !g_cfg.layer[2].linear_attn);
    CHECK(g_cfg.layer[0].moe && !g_cfg.layer[1].moe && g_cfg.layer[2].moe);
    CHECK_EQ_INT(g_cfg.rope_dim, 8);
}

TEST(qwen3_next_config_refusals) {
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"num_hidden_layers\": 2, \"layer_types\":"
              " [\"linear_attention\", \"sliding_attention\"]}", "layer_types[1]");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"num_hidden_layers\": 2, \"layer_types\":"
              " [\"linear_attention\", \"sliding_attention\"]}", "sliding_attention");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"num_hidden_layers\": 2, \"layer_types\":"
              " [\"linear_attention\"]}", "1 entries for 2 layers");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"linear_num_key_heads\": 3}",
              "not a multiple of linear_num_key_heads 3");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"linear_num_value_heads\": 0}",
              "linear_num_value_heads");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"head_dim\": 16, \"partial_rotary_factor\": 0.1}",
              "partial_rotary_factor");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"partial_rotary_factor\": 1.5}",
              "partial_rotary_factor");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"linear_conv_kernel_dim\": 65}", "conv kernel 65");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"full_attention_interval\": 0}",
              "full_attention_interval");
    PARSE_BAD("{\"model_type\": \"qwen3_next\", \"layer_types\": \"full_attention\"}",
              "layer_types");
}

/* ------------------------------------------------------ recurrent state */

static int feed(moe_session *s, int q, const int32_t *ids, int n, float *last, moe_err *err) {
    int32_t seq[64], pos[64];
    int p0 = moe_seq_pos(s, q);
    for (int i = 0; i < n; i++) seq[i] = q, pos[i] = p0 + i;
    moe_batch b = {n, ids, seq, pos, NULL};
    return moe_decode(s, &b, last, err);
}

static int32_t tok(int seq, int i, int V) { return (int32_t)((seq * 131 + i * 37 + 5) % V); }

TEST(qwen3_next_seq_rm_whole_sequence_only) {
    moe_model *m = test_load_variant("qwen3_next_base");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t a[10], b[5];
    for (int i = 0; i < 10; i++) a[i] = tok(0, i, V);
    for (int i = 0; i < 5; i++) b[i] = tok(3, i, V);
    float *ref_b = test_session_logits(m, b, 5, 0), *lg = malloc(sizeof(float) * (size_t)V);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 2, .n_seq = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    if (!s) return;
    /* the KV cache holds the 2 attention layers only: 2 x 2 sequences x 16 x (2 x 16) */
    CHECK_EQ_INT((int)(s->v_cache - s->k_cache), 2 * 2 * 16 * 32);
    CHECK(feed(s, 1, a, 10, lg, &err) == 0);
    CHECK(feed(s, 0, a, 3, lg, &err) == 0);
    /* a suffix cannot be cut from a recurrent state */
    CHECK(moe_seq_rm(s, 1, 6, -1, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "recurrent state");
    CHECK_STR_CONTAINS(err.msg, "p0 = 0");
    CHECK_EQ_INT(moe_seq_pos(s, 1), 10);
    CHECK(moe_seq_rm(s, -1, 2, -1, &err) == -1); /* every sequence: none changed */
    CHECK_EQ_INT(moe_seq_pos(s, 0), 3);
    CHECK_EQ_INT(moe_seq_pos(s, 1), 10);
    /* nothing past the end to forget: allowed, nothing changes */
    CHECK(moe_seq_rm(s, 1, 10, -1, &err) == 0);
    CHECK_EQ_INT(moe_seq_pos(s, 1), 10);
    /* the whole sequence: its next tokens start from a zero state */
    CHECK(moe_seq_rm(s, 1, 0, -1, &err) == 0);
    CHECK_EQ_INT(moe_seq_pos(s, 1), 0);
    CHECK_EQ_INT(moe_seq_pos(s, 0), 3);
    CHECK(feed(s, 1, b, 5, lg, &err) == 0);
    if (ref_b && !test_failed_now)
        CHECK_MSG(test_rel_err(lg, ref_b, V) <= 1e-5, "after forgetting: rel err %g", test_rel_err(lg, ref_b, V));
    free(ref_b);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

TEST(qwen3_next_seq_cp_copies_the_state) {
    moe_model *m = test_load_variant("qwen3_next_base");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t full[2][12], other[6];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 12; i++) full[k][i] = i < 8 ? tok(0, i, V) : tok(k + 1, i, V);
    for (int i = 0; i < 6; i++) other[i] = tok(5, i, V);
    float *ref0 = test_session_logits(m, full[0], 12, 0), *ref1 = test_session_logits(m, full[1], 12, 0);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 2, .n_seq = 3};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    float *lg = malloc(sizeof(float) * 2 * (size_t)V);
    CHECK(feed(s, 2, other, 6, lg, &err) == 0); /* state the copy must replace */
    CHECK(feed(s, 0, full[0], 8, lg, &err) == 0);
    CHECK(moe_seq_cp(s, 0, 2, &err) == 0);
    CHECK_EQ_INT(moe_seq_pos(s, 2), 8);
    int32_t token[8], seq[8], pos[8];
    for (int i = 0; i < 4; i++) {
        token[2 * i] = full[0][8 + i], seq[2 * i] = 0, pos[2 * i] = 8 + i;
        token[2 * i + 1] = full[1][8 + i], seq[2 * i + 1] = 2, pos[2 * i + 1] = 8 + i;
    }
    moe_batch b = {8, token, seq, pos, NULL};
    CHECK(moe_decode(s, &b, lg, &err) == 0);
    if (ref0 && ref1 && !test_failed_now) {
        CHECK_MSG(test_rel_err(lg, ref0, V) <= 1e-5, "continuation 0: %g", test_rel_err(lg, ref0, V));
        CHECK_MSG(test_rel_err(lg + V, ref1, V) <= 1e-5, "continuation 1: %g", test_rel_err(lg + V, ref1, V));
    }
    free(ref0);
    free(ref1);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

/* A failing hook after the linear-attention layers ran: the call fails, the
 * sequence can only start afresh, and then it is right again. */
static int fail_dispatch(void *user, moe_dispatch_info *d, moe_err *err) {
    int *calls = user;
    if ((*calls)++ == 0) return moe_fail(err, "dispatch: link down");
    return 0;
}

TEST(qwen3_next_failed_call_needs_a_fresh_start) {
    moe_model *m = test_load_variant("qwen3_next_base");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t a[8];
    for (int i = 0; i < 8; i++) a[i] = tok(1, i, V);
    float *ref = test_session_logits(m, a, 8, 0), *lg = malloc(sizeof(float) * (size_t)V);
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 2, .n_seq = 2};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    if (!s) return;
    CHECK(feed(s, 0, a, 4, lg, &err) == 0);
    int calls = 0;
    moe_session_set_dispatch(s, fail_dispatch, &calls);
    CHECK(feed(s, 0, a + 4, 4, lg, &err) == -1); /* layer 0's DeltaNet already ran */
    CHECK_STR_CONTAINS(err.msg, "link down");
    CHECK_EQ_INT(moe_seq_pos(s, 0), 4);
    CHECK(feed(s, 0, a + 4, 4, lg, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "moe_seq_rm");
    CHECK(moe_forward(s, a + 4, 4, lg, 0, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "p0 = 0");
    CHECK(feed(s, 1, a, 8, lg, &err) == 0); /* other sequences are untouched */
    if (ref && !test_failed_now) CHECK(test_rel_err(lg, ref, V) <= 1e-5);
    CHECK(moe_seq_rm(s, 0, 0, -1, &err) == 0);
    CHECK(feed(s, 0, a, 8, lg, &err) == 0);
    if (ref && !test_failed_now) CHECK(test_rel_err(lg, ref, V) <= 1e-5);
    free(ref);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

/* -------------------------------------- chunked prefill vs token steps */

#define LONG 200

/* ids fed one token a call (every DeltaNet step in the recurrent form):
 * logits [n][V], and the session left open in *out for its states. */
static float *step_logits(moe_model *m, const int32_t *ids, int n, moe_session **out) {
    int V = moe_model_config(m)->vocab;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 256, .n_threads = 2, .kernels = "scalar"};
    float *lg = malloc(sizeof(float) * (size_t)n * (size_t)V);
    *out = NULL;
    if (moe_session_new(out, m, &o, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        free(lg);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (moe_forward(*out, ids + i, 1, lg + (size_t)i * V, 0, &err)) {
            test_fail_at(__FILE__, __LINE__, "step %d: %s", i, err.msg);
            break;
        }
    return lg;
}

/* max |a - b| / max |b| over n floats */
static double state_err(const float *a, const float *b, size_t n) {
    double e = 0, m = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        e = d > e ? d : e;
        m = fabs(b[i]) > m ? fabs(b[i]) : m;
    }
    return e / m;
}

/* The prompt in calls of the sizes in `cuts` (0-terminated; the last runs
 * to LONG) on a session of kernel path isa: every position's logits and
 * the final conv and recurrent states equal those of one token a call (a
 * later layer's states see its inputs' f32 differences too). */
static void check_cuts(moe_model *m, const char *variant, const char *isa, const int32_t *ids,
                       const float *ref, const moe_session *ref_s, const int *cuts) {
    int V = moe_model_config(m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 256, .n_threads = 2, .kernels = isa};
    if (moe_session_new(&s, m, &o, &err)) return; /* a path the CPU lacks */
    float *lg = malloc(sizeof(float) * (size_t)LONG * (size_t)V);
    for (int done = 0, c = 0; done < LONG; c++) {
        int n = cuts[c] ? cuts[c] : LONG - done;
        CHECK_MSG(moe_forward(s, ids + done, n, lg + (size_t)done * V, 1, &err) == 0, "%s", err.msg);
        done += n;
    }
    for (int i = 0; i < LONG && !test_failed_now; i++) {
        double e = test_rel_err(lg + (size_t)i * V, ref + (size_t)i * V, V);
        CHECK_MSG(e <= 1e-5, "%s %s cuts %d,%d,...: position %d: rel err %g", variant, isa, cuts[0],
                  cuts[1], i, e);
    }
    const moe_config *c = moe_model_config(m);
    int Ll = 0;
    for (int l = 0; l < c->n_layers; l++) Ll += c->layer[l].linear_attn;
    size_t Cc = 2 * (size_t)c->lin_k_heads * c->lin_k_dim + (size_t)c->lin_v_heads * c->lin_v_dim;
    size_t ns = (size_t)Ll * c->lin_v_heads * c->lin_k_dim * c->lin_v_dim;
    size_t nc = (size_t)Ll * Cc * (c->lin_conv - 1);
    double es = state_err(s->lin_state, ref_s->lin_state, ns);
    double ec = state_err(s->lin_conv_state, ref_s->lin_conv_state, nc);
    CHECK_MSG(es <= 1e-5 && ec <= 1e-5, "%s %s: recurrent state err %g, conv state err %g", variant,
              isa, es, ec);
    free(lg);
    moe_session_free(s);
}

static void check_chunked_prefill(const char *variant) {
    moe_model *m = test_load_variant(variant);
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    int32_t ids[LONG];
    for (int i = 0; i < LONG; i++) ids[i] = tok(7, i * i, V);
    moe_session *ref_s = NULL;
    float *ref = step_logits(m, ids, LONG, &ref_s);
    /* one call over several chunks with a ragged end; fewer tokens than a
     * chunk, then prompts that continue the state (64 + 36, 64 exactly) */
    static const int cuts[][5] = {{0}, {40, 100, 0}, {64, 64, 1, 0}, {3, 1, 130, 2, 0}};
    static const char *isas[] = {"scalar", "avx2", "avx512"};
    for (int k = 0; ref && ref_s && k < 4; k++)
        for (int i = 0; i < 3; i++) check_cuts(m, variant, isas[i], ids, ref, ref_s, cuts[k]);
    free(ref);
    moe_session_free(ref_s);
    moe_model_free(m);
}

TEST(qwen3_next_chunked_prefill_equals_token_steps) { check_chunked_prefill("qwen3_next_base"); }
TEST(qwen3_next_chunked_prefill_equals_token_steps_legacy) { check_chunked_prefill("qwen3_next_legacy"); }

/* One call mixing a decode step, a long fresh prompt and a long prompt that
 * continues a sequence, interleaved, every row asked for: each sequence's
 * logits equal it run alone. max_batch 96 splits the call, and so each
 * prompt, across forward chunks too. */
static void check_mixed_long(int max_batch) {
    moe_model *m = test_load_variant("qwen3_next_base");
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    enum { NQ = 3 };
    static const int before[NQ] = {100, 0, 30}, now[NQ] = {1, 150, 70};
    int32_t all[NQ][200];
    float *ref[NQ];
    for (int q = 0; q < NQ; q++) {
        for (int i = 0; i < before[q] + now[q]; i++) all[q][i] = tok(q + 2, i * 3 + i / 7, V);
        ref[q] = test_session_logits(m, all[q], before[q] + now[q], 1);
    }
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 256, .n_threads = 2, .max_batch = max_batch, .n_seq = NQ};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    float *lg = malloc(sizeof(float) * 256 * (size_t)V);
    static int32_t token[256], seq[256], pos[256];
    int8_t want[256];
    /* the earlier prompts, each its own call on its own sequence */
    for (int q = 0; q < NQ && s; q++) {
        int n = 0;
        for (int i = 0; i < before[q]; i++) token[n] = all[q][i], seq[n] = q, pos[n] = i, n++;
        moe_batch b = {n, token, seq, pos, NULL};
        if (n) CHECK_MSG(moe_decode(s, &b, lg, &err) == 0, "%s", err.msg);
    }
    int n = 0, next[NQ];
    for (int q = 0; q < NQ; q++) next[q] = before[q];
    for (int more = 1; more;) {
        more = 0;
        for (int q = 0; q < NQ; q++)
            if (next[q] < before[q] + now[q]) {
                token[n] = all[q][next[q]], seq[n] = q, pos[n] = next[q]++, want[n] = 1, n++;
                more = 1;
            }
    }
    moe_batch b = {n, token, seq, pos, want};
    if (s) CHECK_MSG(moe_decode(s, &b, lg, &err) == 0, "%s", err.msg);
    for (int i = 0; s && i < n && !test_failed_now; i++) {
        double e = test_rel_err(lg + (size_t)i * V, ref[seq[i]] + (size_t)pos[i] * V, V);
        CHECK_MSG(e <= 1e-5, "batch %d: token %d (seq %d pos %d): rel err %g", max_batch, i, seq[i],
                  pos[i], e);
    }
    for (int q = 0; q < NQ; q++) free(ref[q]);
    free(lg);
    moe_session_free(s);
    moe_model_free(m);
}

TEST(qwen3_next_mixed_batch_long_prompts) {
    check_mixed_long(256);
    check_mixed_long(96);
}

/* ------------------------------------------------------ not there yet */

TEST(qwen3_next_refuses_training) {
    moe_model *m = test_load_variant("qwen3_next_base");
    if (!m) return;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 1};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    if (s) {
        CHECK(model_acts_enable(s, 8, &err) == -1);
        CHECK_STR_CONTAINS(err.msg, "not trainable");
    }
    moe_session_free(s);
    moe_model_free(m); /* GGUF output: test_quantize.c; config.json: qwen3_next_written_back */
}
