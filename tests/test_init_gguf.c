/*
 * test_init_gguf.c - moe_init_gguf (moe_init.h): a random model written
 * straight to GGUF is, byte for byte, moe_init_random's directory loaded
 * and written by moe_quant_write_gguf with the same plan options, whatever
 * the thread count (llama's permuted q/k rows, qwen3_moe's K-quant rules,
 * a float GGUF); its size is the plan's; bad types and models GGUF cannot
 * express are refused with a message. (tests/cli/init_gguf.sh covers every
 * preset through the CLI.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe_init.h"
#include "moe_quant.h"
#include "model/model.h"
#include "model/tensor_map.h"
#include "test.h"

/* A 2-layer model of 8 experts whose rows suit the K-quants (256). */
static void cfg_of(moe_config *c, moe_arch arch) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    snprintf(c->model_type, sizeof c->model_type, "%s",
             arch == MOE_ARCH_MIXTRAL ? "mixtral" : "qwen3_moe");
    c->vocab = 256, c->dim = 256, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 2;
    c->head_dim = 64, c->max_pos = 64, c->rope_theta = 1e4f, c->norm_eps = 1e-5f;
    c->bos_id = c->eos_id = -1;
    c->qk_norm = arch == MOE_ARCH_QWEN3_MOE ? MOE_QKNORM_HEAD : MOE_QKNORM_NONE;
    for (int i = 0; i < 2; i++)
        c->layer[i] = (moe_layer_config){.moe = 1, .n_experts = 8, .top_k = 2, .expert_dim = 256,
                                         .norm_topk = tm_gguf_default_norm_topk(arch),
                                         .routed_scale = 1.0f};
}

static unsigned char *read_all(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static int same_file(const char *a, const char *b) {
    long na = 0, nb = 0;
    unsigned char *x = read_all(a, &na), *y = read_all(b, &nb);
    int same = x && y && na == nb && na > 0 && !memcmp(x, y, (size_t)na);
    free(x);
    free(y);
    return same;
}

/* moe_init_random + load + quantize against moe_init_gguf, for `type`
 * (-1: as stored), made with `threads` (and embed_std, 0: std). */
static void check_same_embed(const char *tag, moe_arch arch, moe_init_type dt, int type, int threads,
                             float embed_std) {
    static moe_config c;
    cfg_of(&c, arch);
    char dir[600], a[700], b[700];
    snprintf(dir, sizeof dir, "%s/ig-%s", test_tmpdir(), tag);
    snprintf(a, sizeof a, "%s/quantized.gguf", dir);
    snprintf(b, sizeof b, "%s/direct.gguf", dir);
    mkdir(dir, 0755);
    moe_err err = {{0}};
    moe_init_opts o = {dt, 11, 0.05f, threads, NULL, NULL, 0, embed_std};
    moe_model *m = NULL;
    CHECK_MSG(moe_init_random(&c, dir, &o, &err) == 0, "%s: %s", tag, err.msg);
    CHECK_MSG(moe_model_load(&m, dir, &err) == 0, "%s: %s", tag, err.msg);
    if (!m) return;
    moe_quant_opts qo = {.mode = type < 0                  ? MOE_QUANT_KEEP
                                 : moe_qtype_is_float(type) ? MOE_QUANT_FLOAT
                                                            : MOE_QUANT_TYPE,
                         .type = type};
    moe_quant_plan *p = NULL;
    CHECK_MSG(moe_quant_plan_new(&p, m, &qo, &err) == 0, "%s: %s", tag, err.msg);
    moe_quant_write_opts wo = {threads, "m", NULL, NULL, NULL};
    CHECK_MSG(p && moe_quant_write_gguf(m, p, a, &wo, &err) == 0, "%s: %s", tag, err.msg);
    moe_quant_summary s;
    if (p) moe_quant_plan_summary(p, &s);
    moe_quant_plan_free(p);
    moe_model_free(m);
    moe_init_gguf_opts g = {type, "m"};
    int64_t params = 0;
    int n = 0;
    int64_t bytes = moe_init_gguf_size(&c, &o, &g, &params, &n, &err);
    CHECK_MSG(bytes == s.bytes && params == s.params && n == s.n_tensors,
              "%s: size %lld, %lld params, %d tensors; the plan: %lld, %lld, %d", tag,
              (long long)bytes, (long long)params, n, (long long)s.bytes, (long long)s.params,
              s.n_tensors);
    CHECK_MSG(moe_init_gguf(&c, b, &o, &g, &err) == 0, "%s: %s", tag, err.msg);
    CHECK_MSG(same_file(a, b), "%s: %s and %s differ", tag, a, b);
}

static void check_same(const char *tag, moe_arch arch, moe_init_type dt, int type, int threads) {
    check_same_embed(tag, arch, dt, type, threads, 0.0f);
}

TEST(init_gguf_is_init_then_quantize) {
    check_same("q3-q4k", MOE_ARCH_QWEN3_MOE, MOE_INIT_BF16, MOE_QTYPE_Q4_K, 2);
    check_same("q3-q8-t1", MOE_ARCH_QWEN3_MOE, MOE_INIT_BF16, MOE_QTYPE_Q8_0, 1);
    check_same("q3-q8-t3", MOE_ARCH_QWEN3_MOE, MOE_INIT_BF16, MOE_QTYPE_Q8_0, 3);
    check_same("mix-q6k", MOE_ARCH_MIXTRAL, MOE_INIT_F16, MOE_QTYPE_Q6_K, 2); /* q/k permuted */
    check_same("mix-f32", MOE_ARCH_MIXTRAL, MOE_INIT_BF16, MOE_QTYPE_F32, 2);
    check_same("q3-keep", MOE_ARCH_QWEN3_MOE, MOE_INIT_F32, -1, 2);
    check_same_embed("q3-q8-embed", MOE_ARCH_QWEN3_MOE, MOE_INIT_BF16, MOE_QTYPE_Q8_0, 2, 1.0f);
}

/* embed_std: the token embedding ~ N(0, embed_std), every other matrix
 * ~ N(0, std) as without it, and 0 is std. */
static double embed_rms(float embed_std, const char *tag) {
    static moe_config c;
    cfg_of(&c, MOE_ARCH_QWEN3_MOE);
    char dir[600];
    snprintf(dir, sizeof dir, "%s/ie-%s", test_tmpdir(), tag);
    mkdir(dir, 0755);
    moe_init_opts o = {MOE_INIT_F32, 5, 0.05f, 1, NULL, NULL, 0, embed_std};
    moe_err err = {{0}};
    CHECK_MSG(moe_init_random(&c, dir, &o, &err) == 0, "%s", err.msg);
    moe_model *m = NULL;
    CHECK_MSG(moe_model_load(&m, dir, &err) == 0, "%s", err.msg);
    if (!m) return -1;
    double ss = 0;
    const float *e = m->embed.data;
    const int64_t n = m->embed.rows * m->embed.cols;
    for (int64_t i = 0; i < n; i++) ss += (double)e[i] * e[i];
    /* a matrix that is not the embedding keeps std */
    const float *q = m->layers[0].wq.data;
    double sq = 0;
    const int64_t nq = m->layers[0].wq.rows * m->layers[0].wq.cols;
    for (int64_t i = 0; i < nq; i++) sq += (double)q[i] * q[i];
    CHECK_MSG(fabs(sqrt(sq / (double)nq) - 0.05) < 0.005, "%s: wq rms %g, not 0.05", tag, sqrt(sq / (double)nq));
    moe_model_free(m);
    return sqrt(ss / (double)n);
}

TEST(init_embed_std) {
    const double a = embed_rms(0.0f, "std"), b = embed_rms(1.0f, "one");
    CHECK_MSG(fabs(a - 0.05) < 0.005, "embedding rms %g without embed_std, not 0.05", a);
    CHECK_MSG(fabs(b - 1.0) < 0.05, "embedding rms %g with embed_std 1, not 1", b);
}

TEST(init_gguf_refuses_what_it_cannot_write) {
    static moe_config c;
    cfg_of(&c, MOE_ARCH_QWEN3_MOE);
    moe_init_opts o = {MOE_INIT_BF16, 1, 0.02f, 1, NULL, NULL, 0, 0};
    moe_err err = {{0}};
    char path[600];
    snprintf(path, sizeof path, "%s/ig-bad.gguf", test_tmpdir());
    moe_init_gguf_opts g = {35 /* TQ2_0: not written here */, NULL};
    CHECK(moe_init_gguf_size(&c, &o, &g, NULL, NULL, &err) < 0);
    CHECK_STR_CONTAINS(err.msg, "type 35");
    CHECK(moe_init_gguf(&c, path, &o, &g, &err) != 0);
    /* a dense model: GGUF's MoE architectures need an expert count */
    for (int i = 0; i < c.n_layers; i++) {
        c.layer[i].moe = 0;
        c.layer[i].ffn_dim = 256;
    }
    g.type = MOE_QTYPE_Q8_0;
    CHECK(moe_init_gguf(&c, path, &o, &g, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "ig-bad.gguf");
    CHECK_STR_CONTAINS(err.msg, "no MoE layer");
    struct stat sb;
    CHECK(stat(path, &sb) != 0);
    /* MXFP4 experts are gpt-oss's */
    cfg_of(&c, MOE_ARCH_QWEN3_MOE);
    o.mxfp4_experts = 1;
    CHECK(moe_init_gguf(&c, path, &o, &g, &err) != 0);
    CHECK_STR_CONTAINS(err.msg, "gpt_oss only");
}
