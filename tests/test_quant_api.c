/*
 * test_quant_api.c - include/moe_quant.h and moe_gguf.h, the interface
 * `moe convert` / `moe quantize` use, against the internals they wrap: the
 * opaque plan describes exactly the qz_plan it holds (sizes, each tensor's
 * name and type, per-expert types, split layers), the float type of a
 * model's weights, the choice of a GGUF's vocabulary, and bad arguments.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe_gguf.h"
#include "moe_init.h"
#include "moe_quant.h"
#include "model/quantize.h"
#include "model/tensor_map.h"
#include "test.h"

/* A 2-layer qwen3_moe of 8 experts, random, in dir with weights of `type`. */
static moe_model *small_model(const char *name, moe_init_type type) {
    moe_config *c = calloc(1, sizeof *c);
    c->arch = MOE_ARCH_QWEN3_MOE;
    snprintf(c->model_type, sizeof c->model_type, "qwen3_moe");
    c->vocab = 256, c->dim = 64, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 2;
    c->head_dim = 16, c->max_pos = 64, c->rope_theta = 1e4f, c->norm_eps = 1e-5f;
    c->bos_id = c->eos_id = -1, c->qk_norm = MOE_QKNORM_HEAD;
    for (int i = 0; i < 2; i++)
        c->layer[i] = (moe_layer_config){.moe = 1, .n_experts = 8, .top_k = 2, .expert_dim = 256,
                                         .norm_topk = 1, .routed_scale = 1.0f};
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s", test_tmpdir(), name);
    mkdir(dir, 0755);
    moe_err err = {{0}};
    moe_init_opts o = {type, 7, 0.02f, 1, NULL, NULL, 0, 0};
    moe_model *m = NULL;
    CHECK_MSG(moe_init_random(c, dir, &o, &err) == 0, "%s", err.msg);
    CHECK_MSG(moe_model_load(&m, dir, &err) == 0, "%s", err.msg);
    free(c);
    return m;
}

TEST(quant_api_plan_describes_its_plan) {
    moe_model *m = small_model("qapi", MOE_INIT_F32);
    if (!m) return;
    double k[16];
    for (int i = 0; i < 16; i++) k[i] = (double)((i * 5) % 16);
    moe_quant_opts o = {.mode = MOE_QUANT_MIXED, .high = MOE_QTYPE_Q8_0, .low = MOE_QTYPE_Q4_K,
                        .counts = k, .stride = 8, .budget = INT64_MAX};
    moe_quant_plan *p = NULL;
    moe_quant_summary s;
    moe_err err = {{0}};
    CHECK_MSG(moe_quant_plan_new(&p, m, &o, &err) == 0, "%s", err.msg);
    moe_quant_plan_summary(p, &s);
    moe_quant_plan_free(p);
    /* half-way between every expert low and every expert high: some of each */
    o.budget = (s.min_bytes + s.max_bytes) / 2;
    CHECK(moe_quant_plan_new(&p, m, &o, &err) == 0);
    qz_opts qo = {QZ_MIXED, -1, 0, o.high, o.low, k, 8, o.budget, 0};
    qz_plan q;
    CHECK(qz_plan_make(&q, m, &qo, &err) == 0);
    moe_quant_plan_summary(p, &s);
    CHECK_EQ_INT(s.n_tensors, q.n);
    CHECK(s.bytes == q.bytes && s.params == q.params && s.bytes <= o.budget);
    CHECK(s.min_bytes == q.min_bytes && s.max_bytes == q.max_bytes);
    CHECK_EQ_INT(s.n_high, q.n_high);
    CHECK(s.n_high > 0 && s.n_high < s.n_experts && s.n_experts == 16);
    CHECK_MSG(strstr(s.types, "Q8_0 (") && strstr(s.types, "Q4_K (") && strstr(s.types, "F32 ("),
              "types: %s", s.types);
    int64_t bytes = 0;
    for (int i = 0; i < s.n_tensors; i++) {
        moe_quant_tensor t;
        char name[96];
        CHECK(moe_quant_plan_tensor(p, i, &t) == 0);
        tm_gguf_name(name, sizeof name, &q.t[i]);
        CHECK_MSG(!strcmp(t.name, name) && t.type == q.type[i], "tensor %d: %s %d vs %s %d", i,
                  t.name, t.type, name, q.type[i]);
        bytes += t.bytes;
    }
    CHECK_MSG(bytes == s.bytes, "tensor bytes add up to %lld, the plan says %lld",
              (long long)bytes, (long long)s.bytes);
    moe_quant_tensor t;
    CHECK(moe_quant_plan_tensor(p, s.n_tensors, &t) == -1 && moe_quant_plan_tensor(p, -1, &t) == -1);
    for (int l = 0; l < 2; l++) {
        CHECK_EQ_INT(moe_quant_plan_layer_split(p, l), q.split[l]);
        for (int e = 0; e < 8; e++)
            CHECK_EQ_INT(moe_quant_plan_expert_type(p, l, e), q.expert_type[l * 8 + e]);
    }
    CHECK_EQ_INT(moe_quant_plan_expert_type(p, 0, 8), -1);
    qz_plan_free(&q);
    moe_quant_plan_free(p);
    /* one type: no per-expert types, the range is the plan's own size */
    o = (moe_quant_opts){.mode = MOE_QUANT_TYPE, .type = MOE_QTYPE_Q8_0};
    CHECK(moe_quant_plan_new(&p, m, &o, &err) == 0);
    moe_quant_plan_summary(p, &s);
    CHECK(s.min_bytes == s.bytes && s.max_bytes == s.bytes);
    CHECK_EQ_INT(moe_quant_plan_expert_type(p, 0, 0), -1);
    moe_quant_plan_free(p);
    o.mode = (moe_quant_mode)9;
    CHECK(moe_quant_plan_new(&p, m, &o, &err) == -1 && p == NULL);
    CHECK_MSG(strstr(err.msg, "mode 9"), "%s", err.msg);
    moe_model_free(m);
}

TEST(quant_api_types_and_float_type) {
    CHECK_EQ_INT(moe_qtype_from_name("Q4_k"), MOE_QTYPE_Q4_K);
    CHECK_EQ_INT(moe_qtype_from_name("bf16"), MOE_QTYPE_BF16);
    CHECK_EQ_INT(moe_qtype_from_name("q3_k"), MOE_QTYPE_Q3_K);
    CHECK_EQ_INT(moe_qtype_from_name("IQ4_XS"), MOE_QTYPE_IQ4_XS);
    CHECK_EQ_INT(moe_qtype_from_name("tq2_0"), -1);
    CHECK(!strcmp(moe_qtype_name(MOE_QTYPE_Q2_K), "Q2_K"));
    CHECK(!strcmp(moe_qtype_name(MOE_QTYPE_Q6_K), "Q6_K") && moe_qtype_name(-1) == NULL);
    CHECK(moe_qtype_is_float(MOE_QTYPE_F16) && !moe_qtype_is_float(MOE_QTYPE_Q8_0));
    int64_t b = 0;
    CHECK(moe_quant_parse_budget("4bpw", 1000, &b) == 0 && b == 500);
    CHECK(moe_quant_parse_budget("lots", 1000, &b) == -1);
    moe_model *m = small_model("qapi_bf16", MOE_INIT_BF16);
    if (!m) return;
    CHECK_EQ_INT(moe_model_float_type(m), MOE_QTYPE_BF16);
    moe_err err = {{0}};
    moe_quant_write_opts wo = {1, NULL, NULL, NULL, NULL};
    CHECK(moe_quant_write_hf(m, test_tmpdir(), MOE_QTYPE_Q8_0, &wo, &err) == -1);
    CHECK_MSG(strstr(err.msg, "f32, f16 or bf16"), "%s", err.msg);
    moe_model_free(m);
}

TEST(gguf_api_vocab_choice) {
    moe_model *m = small_model("qapi_vocab", MOE_INIT_F32);
    if (!m) return;
    char dir[600], gguf[700];
    snprintf(dir, sizeof dir, "%s/qapi_vocab", test_tmpdir());
    snprintf(gguf, sizeof gguf, "%s/qapi_vocab.gguf", test_tmpdir());
    moe_gguf_vocab *v = NULL;
    moe_err err = {{0}};
    /* a directory without tokenizer.json: a vocabulary that writes nothing */
    CHECK_MSG(moe_gguf_vocab_for(&v, m, dir, NULL, &err) == 0, "%s", err.msg);
    CHECK(v && !moe_gguf_vocab_writes(v));
    moe_gguf_vocab_info vi;
    moe_gguf_vocab_info_get(v, &vi);
    CHECK_MSG(!strcmp(vi.dir, dir) && vi.n_tokens == 0, "dir %s, %d tokens", vi.dir, vi.n_tokens);
    moe_gguf_vocab_free(v);
    /* a GGUF source (here without a vocabulary) and no --tokenizer: nothing to take */
    moe_quant_opts o = {.mode = MOE_QUANT_KEEP};
    moe_quant_plan *p = NULL;
    CHECK(moe_quant_plan_new(&p, m, &o, &err) == 0);
    moe_quant_write_opts wo = {1, "qapi", NULL, NULL, NULL};
    CHECK_MSG(moe_quant_write_gguf(m, p, gguf, &wo, &err) == 0, "%s", err.msg);
    moe_quant_plan_free(p);
    CHECK(moe_gguf_vocab_for(&v, m, gguf, NULL, &err) == 0 && v == NULL);
    CHECK(!moe_gguf_vocab_writes(NULL));
    moe_model_free(m);
}
