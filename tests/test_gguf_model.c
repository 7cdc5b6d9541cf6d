/*
 * test_gguf_model.c - GGUF models (src/model/model_gguf.c) against the same
 * models from safetensors. The .gguf fixtures are made by llama.cpp's own
 * converter from the tests/fixtures/models fixtures (tools/gen_gguf_fixtures.sh):
 * F32 files must give the safetensors logits within 1e-5 relative (the
 * Mixtral one also checks that the converter's q/k row permutation is
 * undone exactly); Q8_0 files within a KL bound (see kl_q8_0 below).
 * Broken files (truncated, unknown architecture, a tensor missing, header
 * fields that claim a huge or invalid model) must fail to load with a message
 * naming the problem, before anything is sized from the header.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "moe.h"
#include "formats/gguf.h"
#include "test.h"
#include "test_util.h"

#define NTOK 12

static const int32_t k_ids[NTOK] = {1, 5, 17, 3, 99, 42, 7, 0, 127, 64, 23, 11};

/* logits [NTOK][V] of the model at path, or NULL (with a failed check). */
static float *run_logits(const char *path, int *V) {
    return test_model_logits(path, k_ids, NTOK, V);
}

static void paths(const char *fixture, const char *gguf, char *st, char *gg, size_t n) {
    snprintf(st, n, "%s/models/%s", test_fixtures(), fixture);
    snprintf(gg, n, "%s/gguf_models/%s", test_fixtures(), gguf);
}

/* max |a-b| / max |b| over all logits. */
static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)a[i] - b[i]) > d) d = fabs((double)a[i] - b[i]);
        if (fabs((double)b[i]) > r) r = fabs((double)b[i]);
    }
    return r > 0 ? d / r : d;
}

static void check_f32_dir(const char *st, const char *gguf) {
    char gg[512];
    snprintf(gg, sizeof gg, "%s/gguf_models/%s", test_fixtures(), gguf);
    int V1 = 0, V2 = 0;
    float *a = run_logits(st, &V1), *b = run_logits(gg, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double r = rel_err(b, a, (size_t)NTOK * V1);
        if (getenv("MOE_TEST_VERBOSE")) fprintf(stderr, "%s: rel err %.3g\n", gguf, r);
        CHECK_MSG(r <= 1e-5, "%s: relative error %.3g > 1e-5", gguf, r);
    }
    /* The configs must agree field for field where GGUF carries them. */
    moe_model *m1 = NULL, *m2 = NULL;
    moe_err err;
    if (!moe_model_load(&m1, st, &err) && !moe_model_load(&m2, gg, &err)) {
        const moe_config *x = moe_model_config(m1), *y = moe_model_config(m2);
        CHECK_EQ_INT(x->arch, y->arch);
        CHECK_EQ_INT(x->vocab, y->vocab);
        CHECK_EQ_INT(x->dim, y->dim);
        CHECK_EQ_INT(x->n_layers, y->n_layers);
        CHECK_EQ_INT(x->n_heads, y->n_heads);
        CHECK_EQ_INT(x->n_kv_heads, y->n_kv_heads);
        CHECK_EQ_INT(x->head_dim, y->head_dim);
        CHECK_EQ_INT(x->qk_norm, y->qk_norm);
        CHECK_EQ_INT(x->qkv_bias, y->qkv_bias);
        CHECK_EQ_INT(x->tied_embeddings, y->tied_embeddings);
        CHECK(x->rope_theta == y->rope_theta && x->norm_eps == y->norm_eps);
        for (int i = 0; i < x->n_layers; i++) {
            const moe_layer_config *p = &x->layer[i], *q = &y->layer[i];
            CHECK(p->moe == q->moe && p->n_experts == q->n_experts && p->top_k == q->top_k &&
                  p->expert_dim == q->expert_dim && p->n_shared == q->n_shared &&
                  p->shared_dim == q->shared_dim && p->shared_gate == q->shared_gate &&
                  p->norm_topk == q->norm_topk);
        }
    }
    moe_model_free(m1);
    moe_model_free(m2);
    free(a);
    free(b);
}

static void check_f32(const char *fixture, const char *gguf) {
    char st[512];
    snprintf(st, sizeof st, "%s/models/%s", test_fixtures(), fixture);
    check_f32_dir(st, gguf);
}

TEST(gguf_mixtral_f32) { check_f32("mixtral_base", "mixtral_f32.gguf"); }
TEST(gguf_qwen2_moe_f32) { check_f32("qwen2_moe_base", "qwen2_moe_f32.gguf"); }
TEST(gguf_qwen3_moe_f32) { check_f32("qwen3_moe_base", "qwen3_moe_f32.gguf"); }
/* llama.cpp's olmoe converter drops clip_qkv (the fixture has 1.5), so the
 * reference is the same safetensors model with clip_qkv null. */
TEST(gguf_olmoe_f32) {
    char src[512], dir[600], path[700];
    snprintf(src, sizeof src, "%s/models/olmoe_base/config.json", test_fixtures());
    snprintf(dir, sizeof dir, "%s/olmoe_noclip", test_tmpdir());
    CHECK(mkdir(dir, 0755) == 0);
    FILE *f = fopen(src, "rb");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    char *c = strstr(buf, "\"clip_qkv\": 1.5");
    CHECK(c != NULL);
    if (!c) return;
    size_t head = (size_t)(c - buf), tail = head + 15; /* past `"clip_qkv": 1.5` */
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    CHECK(f && fwrite(buf, 1, head, f) == head && fputs("\"clip_qkv\": null", f) >= 0 &&
          fwrite(buf + tail, 1, n - tail, f) == n - tail);
    if (f) fclose(f);
    snprintf(src, sizeof src, "%s/models/olmoe_base/model.safetensors", test_fixtures());
    char abs[PATH_MAX];
    CHECK(realpath(src, abs) != NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(symlink(abs, path) == 0);
    check_f32_dir(dir, "olmoe_f32.gguf");
}

/* Mean and max over positions of KL(p_safetensors || p_gguf), in nats. */
static void kl_stats(const float *ref, const float *q, int V, double *mean, double *mx) {
    *mean = *mx = 0;
    for (int t = 0; t < NTOK; t++) {
        const float *a = ref + (size_t)t * V, *b = q + (size_t)t * V;
        double ma = a[0], mb = b[0], sa = 0, sb = 0, kl = 0;
        for (int v = 1; v < V; v++) {
            if (a[v] > ma) ma = a[v];
            if (b[v] > mb) mb = b[v];
        }
        for (int v = 0; v < V; v++) {
            sa += exp(a[v] - ma);
            sb += exp(b[v] - mb);
        }
        for (int v = 0; v < V; v++) {
            double la = a[v] - ma - log(sa), lb = b[v] - mb - log(sb);
            kl += exp(la) * (la - lb);
        }
        *mean += kl / NTOK;
        if (kl > *mx) *mx = kl;
    }
}

/* Q8_0 keeps ~8 bits per weight with one f16 scale per 32: relative weight
 * error <= 1/254 per block (and the activations are quantized to Q8_0 too).
 * The measured KLs on these fixtures are printed; the bound (mean 1e-3, max
 * 5e-3 nats) is a few times above them and still far below what a wrong
 * layout or a mis-mapped tensor gives (O(0.1..1) nats on these models). */
static void check_q8(const char *fixture, const char *gguf) {
    char st[512], gg[512];
    paths(fixture, gguf, st, gg, sizeof st);
    int V1 = 0, V2 = 0;
    float *a = run_logits(st, &V1), *b = run_logits(gg, &V2);
    CHECK(a && b && V1 == V2);
    if (a && b && V1 == V2) {
        double mean, mx;
        kl_stats(a, b, V1, &mean, &mx);
        if (getenv("MOE_TEST_VERBOSE"))
            fprintf(stderr, "%s: KL mean %.3g max %.3g, rel err %.3g\n", gguf, mean, mx,
                    rel_err(b, a, (size_t)NTOK * V1));
        CHECK_MSG(mean <= 1e-3 && mx <= 5e-3, "%s: KL mean %.3g max %.3g", gguf, mean, mx);
    }
    free(a);
    free(b);
}

TEST(gguf_qwen3_moe_q8_0) { check_q8("qwen3_moe_base", "qwen3_moe_q8_0.gguf"); }
TEST(gguf_qwen2_moe_q8_0) { check_q8("qwen2_moe_base", "qwen2_moe_q8_0.gguf"); }

/* ------------------------------------------------------------ bad files */

/* Rewrite src to dst with tensor `skip` left out, general.architecture
 * set to `arch` (NULL: unchanged) and the pairs of over[n_over] replacing
 * (or added to) the file's. Scalar and string keys only (the fixtures have
 * no arrays). */
static int rewrite_kv(const char *src, const char *dst, const char *skip, const char *arch,
                      const gguf_wkv *over, int n_over) {
    gguf_file g;
    moe_err err;
    if (gguf_open(&g, src, &err)) return -1;
    gguf_wkv *kv = calloc((size_t)g.n_kv + (size_t)n_over + 1, sizeof *kv);
    gguf_wtensor *t = calloc((size_t)g.n_tensors + 1, sizeof *t);
    int nk = 0, nt = 0;
    for (int i = 0; i < g.n_kv; i++) {
        const gguf_kv *k = &g.kvs[i];
        gguf_wkv w = {.key = k->key, .type = k->type};
        if (k->type == GGUF_VT_ARR) continue;
        int replaced = 0;
        for (int j = 0; j < n_over; j++) replaced |= strcmp(over[j].key, k->key) == 0;
        if (replaced) continue;
        if (k->type == GGUF_VT_STR) {
            w.str = (arch && strcmp(k->key, "general.architecture") == 0) ? arch : k->strs[0];
        } else {
            memcpy(&w.v, k->raw, (size_t)gguf_vtype_size(k->type));
        }
        kv[nk++] = w;
    }
    for (int j = 0; j < n_over; j++) kv[nk++] = over[j];
    for (int i = 0; i < g.n_tensors; i++) {
        const gguf_tensor *s = &g.tensors[i];
        if (skip && strcmp(s->name, skip) == 0) continue;
        t[nt] = (gguf_wtensor){s->name, s->type, s->n_dims, {0}, s->data};
        memcpy(t[nt].ne, s->ne, sizeof s->ne);
        nt++;
    }
    int r = gguf_write(dst, kv, nk, t, nt, &err);
    free(kv);
    free(t);
    gguf_close(&g);
    return r;
}

static int rewrite(const char *src, const char *dst, const char *skip, const char *arch) {
    return rewrite_kv(src, dst, skip, arch, NULL, 0);
}

static void expect_fail(const char *path, const char *want) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    int r = moe_model_load(&m, path, &err);
    CHECK_MSG(r == -1 && m == NULL, "%s loaded", path);
    CHECK_MSG(strstr(err.msg, want) != NULL, "message \"%s\" lacks \"%s\"", err.msg, want);
    moe_model_free(m);
}

TEST(gguf_model_bad_files) {
    char src[512], dst[600];
    snprintf(src, sizeof src, "%s/gguf_models/qwen3_moe_f32.gguf", test_fixtures());

    snprintf(dst, sizeof dst, "%s/noexp.gguf", test_tmpdir());
    CHECK(rewrite(src, dst, "blk.1.ffn_down_exps.weight", NULL) == 0);
    expect_fail(dst, "blk.1.ffn_down_exps.weight is missing");

    snprintf(dst, sizeof dst, "%s/gpt2.gguf", test_tmpdir());
    CHECK(rewrite(src, dst, NULL, "gpt2") == 0);
    expect_fail(dst, "\"gpt2\" is not supported");

    snprintf(dst, sizeof dst, "%s/dense.gguf", test_tmpdir());
    CHECK(rewrite(src, dst, NULL, "llama") == 0); /* llama without llama.expert_count */
    expect_fail(dst, "expert_count");

    /* Truncated: the first half of the file. */
    FILE *f = fopen(src, "rb");
    CHECK(f != NULL);
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    CHECK(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    snprintf(dst, sizeof dst, "%s/trunc.gguf", test_tmpdir());
    f = fopen(dst, "wb");
    CHECK(f && fwrite(buf, 1, (size_t)n / 2, f) == (size_t)n / 2);
    if (f) fclose(f);
    free(buf);
    expect_fail(dst, "trunc.gguf");
}

/* --------------------------------------- header claims, checked first */

/* moe_model_load(path) in a child whose address space is capped at what it
 * has plus 2 GiB: a loader that sizes tables from the header before checking
 * it fails there with "out of memory" (or dies) instead of naming the
 * problem. Returns the child's error message in msg; 0 if the load failed
 * cleanly. */
static int load_capped(const char *path, char *msg, size_t n) {
    int fd[2];
    msg[0] = 0;
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f && fscanf(f, "%ld", &pages) != 1) pages = 0;
        if (f) fclose(f);
        struct rlimit rl;
        rl.rlim_cur = rl.rlim_max =
            (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)2 << 30);
        if (pages > 0) setrlimit(RLIMIT_AS, &rl);
        moe_model *m = NULL;
        moe_err err = {{0}};
        int r = moe_model_load(&m, path, &err);
        ssize_t w = write(fd[1], err.msg, strlen(err.msg));
        (void)w;
        _exit(r == -1 && m == NULL ? 0 : 1);
    }
    close(fd[1]);
    size_t got = 0;
    ssize_t k;
    while (got + 1 < n && (k = read(fd[0], msg + got, n - 1 - got)) > 0) got += (size_t)k;
    msg[got] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void expect_capped_fail(const char *path, const char *want) {
    char msg[512];
    CHECK_MSG(load_capped(path, msg, sizeof msg) == 0, "%s: loaded, or the loader died (\"%s\")",
              path, msg);
    CHECK_MSG(strstr(msg, want) != NULL, "message \"%s\" lacks \"%s\"", msg, want);
    CHECK_MSG(strstr(msg, "out of memory") == NULL, "%s: %s", path, msg);
}

/* A small file of header fields (arch qwen3moe unless llama) and one tiny
 * token_embd [4][32]. */
static void write_claims(const char *path, const char *arch, uint32_t layers, uint32_t dim,
                         uint32_t heads, uint32_t head_dim) {
    char k[8][64];
    const char *suf[8] = {"block_count", "embedding_length", "attention.head_count",
                          "attention.head_count_kv", "attention.key_length",
                          "feed_forward_length", "expert_count", "expert_used_count"};
    uint32_t v[8] = {layers, dim, heads, heads, head_dim, 16, 8, 2};
    gguf_wkv kv[9];
    kv[0] = gguf_wstr("general.architecture", arch);
    for (int i = 0; i < 8; i++) {
        snprintf(k[i], sizeof k[i], "%s.%s", arch, suf[i]);
        kv[i + 1] = gguf_wu32(k[i], v[i]);
    }
    static float emb[4 * 32];
    gguf_wtensor t = {"token_embd.weight", GGUF_TYPE_F32, 2, {32, 4, 1, 1}, emb};
    moe_err err;
    CHECK_MSG(gguf_write(path, kv, 9, &t, 1, &err) == 0, "%s", err.msg);
}

TEST(gguf_model_header_checked_before_allocating) {
    char p[600];
    /* 256 layers of 4096 heads of 65536: the tables would take terabytes */
    snprintf(p, sizeof p, "%s/claims_huge.gguf", test_tmpdir());
    write_claims(p, "llama", 256, 1 << 20, 4096, 65536);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && sb.st_size < 1024);
    expect_capped_fail(p, "num_attention_heads x head_dim too large");
    /* a valid but large config (gigabytes of tables) whose first tensor is
     * too small: the shape error, nothing sized from the header first */
    snprintf(p, sizeof p, "%s/claims_big.gguf", test_tmpdir());
    write_claims(p, "qwen3moe", 128, 1 << 20, 4096, 256);
    expect_capped_fail(p, "tensor token_embd.weight has shape [4, 32], expected [4, 1048576]");
}

TEST(gguf_model_config_validated) {
    char src[512], dst[600];
    snprintf(src, sizeof src, "%s/gguf_models/qwen3_moe_f32.gguf", test_fixtures());
    snprintf(dst, sizeof dst, "%s/hd15.gguf", test_tmpdir());
    gguf_wkv hd = gguf_wu32("qwen3moe.attention.key_length", 15);
    CHECK(rewrite_kv(src, dst, NULL, NULL, &hd, 1) == 0);
    expect_capped_fail(dst, "head_dim 15 is odd");
    snprintf(dst, sizeof dst, "%s/eps.gguf", test_tmpdir());
    gguf_wkv eps = gguf_wf32("qwen3moe.attention.layer_norm_rms_epsilon", 1e20f);
    CHECK(rewrite_kv(src, dst, NULL, NULL, &eps, 1) == 0);
    expect_capped_fail(dst, "rms_norm_eps 1e+20 out of range");
    /* the same rewrite without a change loads (the child reports success) */
    snprintf(dst, sizeof dst, "%s/ok.gguf", test_tmpdir());
    CHECK(rewrite_kv(src, dst, NULL, NULL, NULL, 0) == 0);
    char msg[512];
    CHECK_MSG(load_capped(dst, msg, sizeof msg) != 0, "the unchanged copy failed: %s", msg);
}
