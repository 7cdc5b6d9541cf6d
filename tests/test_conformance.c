/*
 * test_conformance.c - holds libmoe to Hugging Face transformers.
 *
 * tools/gen_model_fixtures.py writes tiny random MoE models into
 * tests/fixtures/models/<variant>/ with transformers' own reference:
 * ref.json (ids, greedy ids, tolerances) and ref_logits.bin (f32 LE:
 * [N][V] logits of one forward over the ids, then [G][V] logits of each
 * greedy step). For every variant, through the public API only:
 *   (a) one forward over all ids: logits within 1e-4 (per row
 *       max|a-b| / max|ref|) of transformers;
 *   (b) the same ids token by token, in uneven chunks, with a small
 *       max_batch, with one thread, and after moe_session_reset: within
 *       1e-5 of (a);
 *   (c) greedy continuation identical to transformers' (and its logits);
 *   (d) an out-of-range id and a full context are errors that say so.
 * Then the bad-input classes: a copy of a fixture with config.json missing,
 * garbled or of unknown model_type, a tensor missing / of the wrong shape /
 * of a wrong dtype, truncated or mangled safetensors, a missing shard:
 * moe_model_load must fail with a message naming what is wrong.
 * MOE_TEST_VERBOSE=1 prints the worst error per variant.
 */
#include "test.h"
#include "moe.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define REF_MAX_IDS 256

/* ------------------------------------------------------------ reference */

typedef struct ref_data {
    char dir[512];
    const char *name;
    int V;                      /* vocab */
    int n_ids;                  /* N */
    int32_t ids[REF_MAX_IDS];   /* [N] */
    int n_prompt;               /* greedy prompt = ids[:n_prompt] */
    int n_gen;                  /* G */
    int32_t gen[REF_MAX_IDS];   /* [G] greedy ids */
    float *full;                /* [N][V] */
    float *greedy;              /* [G][V] */
    double tol_logits;          /* C vs transformers */
    double tol_incr;            /* C incremental vs C full */
} ref_data;

static int verbose(void) { return getenv("MOE_TEST_VERBOSE") != NULL; }

/* Whole file into a malloc'd NUL-terminated buffer; NULL if unreadable. */
static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return NULL; }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static int json_int_array(const cJSON *a, int32_t *out, int max) {
    if (!cJSON_IsArray(a)) return -1;
    int n = cJSON_GetArraySize(a);
    if (n > max) return -1;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e)) return -1;
        out[i] = (int32_t)e->valuedouble;
    }
    return n;
}

/* Read dir/ref.json and dir/ref_logits.bin; failures are test failures. */
static int ref_load(ref_data *r, const char *name) {
    memset(r, 0, sizeof *r);
    r->name = name;
    snprintf(r->dir, sizeof r->dir, "%s/models/%s", test_fixtures(), name);
    char path[600];
    snprintf(path, sizeof path, "%s/ref.json", r->dir);
    char *txt = slurp(path, NULL);
    CHECK_MSG(txt != NULL, "%s: cannot read %s", name, path);
    if (!txt) return -1;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    CHECK_MSG(j != NULL, "%s: bad JSON", path);
    if (!j) return -1;
    int ok = 1;
    r->V = cJSON_GetObjectItem(j, "vocab") ? cJSON_GetObjectItem(j, "vocab")->valueint : 0;
    r->n_ids = json_int_array(cJSON_GetObjectItem(j, "ids"), r->ids, REF_MAX_IDS);
    r->n_gen = json_int_array(cJSON_GetObjectItem(j, "greedy_ids"), r->gen, REF_MAX_IDS);
    const cJSON *np = cJSON_GetObjectItem(j, "greedy_prompt_len");
    r->n_prompt = cJSON_IsNumber(np) ? np->valueint : 0;
    const cJSON *tol = cJSON_GetObjectItem(j, "tolerance");
    const cJSON *tl = cJSON_GetObjectItem(tol, "logits_rel"), *ti = cJSON_GetObjectItem(tol, "incremental_rel");
    r->tol_logits = cJSON_IsNumber(tl) ? tl->valuedouble : 0;
    r->tol_incr = cJSON_IsNumber(ti) ? ti->valuedouble : 0;
    cJSON_Delete(j);
    if (r->V <= 0 || r->n_ids <= 0 || r->n_gen <= 0 || r->n_prompt <= 0 || r->n_prompt > r->n_ids ||
        r->tol_logits <= 0 || r->tol_incr <= 0)
        ok = 0;
    CHECK_MSG(ok, "%s: ref.json lacks vocab/ids/greedy_ids/greedy_prompt_len/tolerance", name);
    if (!ok) return -1;

    snprintf(path, sizeof path, "%s/ref_logits.bin", r->dir);
    size_t len = 0;
    char *bin = slurp(path, &len);
    size_t want = (size_t)(r->n_ids + r->n_gen) * (size_t)r->V * sizeof(float);
    CHECK_MSG(bin && len == want, "%s: %s: %zu bytes, want %zu", name, path, len, want);
    if (!bin || len != want) { free(bin); return -1; }
    r->full = (float *)(void *)bin;  /* malloc'd: aligned for float; x86 LE */
    r->greedy = r->full + (size_t)r->n_ids * r->V;
    return 0;
}

static void ref_free(ref_data *r) { free(r->full); r->full = r->greedy = NULL; }

/* Per row max|a-b| / max|ref|, worst over rows; *worst_row gets the row. */
static double rows_rel_err(const float *a, const float *ref, int rows, int V, int *worst_row) {
    double worst = 0;
    if (worst_row) *worst_row = 0;
    for (int t = 0; t < rows; t++) {
        double num = 0, den = 0;
        for (int v = 0; v < V; v++) {
            double d = fabs((double)a[(size_t)t * V + v] - ref[(size_t)t * V + v]);
            if (!(d <= num)) num = d; /* NaN propagates */
            double m = fabs((double)ref[(size_t)t * V + v]);
            if (m > den) den = m;
        }
        double e = num / (den > 0 ? den : 1);
        if (!(e <= worst)) {
            worst = e;
            if (worst_row) *worst_row = t;
        }
    }
    return worst;
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

/* --------------------------------------------------------- one variant */

static moe_session *session_open(moe_model *m, int n_ctx, int n_threads, int max_batch, const char *name) {
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = n_ctx, .n_threads = n_threads, .max_batch = max_batch};
    int rc = moe_session_new(&s, m, &o, &err);
    CHECK_MSG(rc == 0 && s, "%s: moe_session_new(n_ctx %d, threads %d, max_batch %d): %s", name, n_ctx,
              n_threads, max_batch, err.msg);
    return rc == 0 ? s : NULL;
}

/* Feed ids in the given chunk sizes (cycled) into a fresh session; out [N][V]. */
static int forward_chunked(moe_session *s, const ref_data *r, const int *chunks, int n_chunks, float *out) {
    moe_err err = {{0}};
    moe_session_reset(s);
    int pos = 0;
    for (int c = 0; pos < r->n_ids; c++) {
        int n = chunks[c % n_chunks];
        if (n > r->n_ids - pos) n = r->n_ids - pos;
        if (moe_forward(s, r->ids + pos, n, out + (size_t)pos * r->V, 1, &err) != 0) {
            CHECK_MSG(0, "%s: moe_forward(pos %d, n %d): %s", r->name, pos, n, err.msg);
            return -1;
        }
        pos += n;
        CHECK_MSG(moe_session_pos(s) == pos, "%s: session pos %d after %d tokens", r->name,
                  moe_session_pos(s), pos);
    }
    return 0;
}

static void check_incremental(moe_model *m, moe_session *s, const ref_data *r, const float *full,
                              float *buf, double *worst) {
    static const int one[] = {1};
    static const int uneven[] = {5, 1, 17, 3, 8, 14};
    static const int pairs[] = {2, 7};
    const struct { const char *what; const int *c; int n; } plans[] = {
        {"token by token", one, 1}, {"chunks 5,1,17,3,8,14", uneven, 6}, {"chunks 2,7,...", pairs, 2}};
    int row;
    for (size_t p = 0; p < sizeof plans / sizeof plans[0]; p++) {
        if (forward_chunked(s, r, plans[p].c, plans[p].n, buf) != 0) return;
        double e = rows_rel_err(buf, full, r->n_ids, r->V, &row);
        CHECK_MSG(e <= r->tol_incr, "%s: %s vs full forward: rel err %.3g at position %d (tol %g)", r->name,
                  plans[p].what, e, row, r->tol_incr);
        if (e > *worst || e != e) *worst = e;
    }

    /* Only the last row asked for (all_logits = 0) must equal the last row. */
    moe_err err = {{0}};
    moe_session_reset(s);
    CHECK_EQ_INT(moe_session_pos(s), 0);
    int rc = moe_forward(s, r->ids, r->n_ids, buf, 0, &err);
    CHECK_MSG(rc == 0, "%s: moe_forward(all_logits=0): %s", r->name, err.msg);
    if (rc == 0) {
        double e = rows_rel_err(buf, full + (size_t)(r->n_ids - 1) * r->V, 1, r->V, NULL);
        CHECK_MSG(e <= r->tol_incr, "%s: last-row logits (all_logits=0) rel err %.3g", r->name, e);
    }
    /* NULL logits are allowed: fill the cache, then the next token's logits
     * must match the full forward at that position. */
    moe_session_reset(s);
    rc = moe_forward(s, r->ids, r->n_ids - 1, NULL, 0, &err);
    CHECK_MSG(rc == 0, "%s: moe_forward(logits NULL): %s", r->name, err.msg);
    if (rc == 0 && moe_forward(s, r->ids + r->n_ids - 1, 1, buf, 0, &err) == 0) {
        double e = rows_rel_err(buf, full + (size_t)(r->n_ids - 1) * r->V, 1, r->V, NULL);
        CHECK_MSG(e <= r->tol_incr, "%s: after a NULL-logits prefill: rel err %.3g", r->name, e);
    }

    /* Other session shapes: internal splitting (max_batch 4), one thread. */
    const int shapes[][2] = {{2, 4}, {1, 0}}; /* {threads, max_batch} */
    for (int k = 0; k < 2; k++) {
        moe_session *s2 = session_open(m, 64, shapes[k][0], shapes[k][1], r->name);
        if (!s2) continue;
        static const int all[] = {REF_MAX_IDS};
        if (forward_chunked(s2, r, all, 1, buf) == 0) {
            double e = rows_rel_err(buf, full, r->n_ids, r->V, &row);
            CHECK_MSG(e <= r->tol_incr, "%s: session threads %d max_batch %d vs default: rel err %.3g at %d",
                      r->name, shapes[k][0], shapes[k][1], e, row);
            if (e > *worst || e != e) *worst = e;
        }
        moe_session_free(s2);
    }
}

static void check_greedy(moe_session *s, const ref_data *r, float *row, double *worst) {
    moe_err err = {{0}};
    moe_session_reset(s);
    int rc = moe_forward(s, r->ids, r->n_prompt, row, 0, &err);
    CHECK_MSG(rc == 0, "%s: greedy prompt: %s", r->name, err.msg);
    if (rc != 0) return;
    for (int i = 0; i < r->n_gen; i++) {
        double e = rows_rel_err(row, r->greedy + (size_t)i * r->V, 1, r->V, NULL);
        if (e > *worst || e != e) *worst = e;
        CHECK_MSG(e <= r->tol_logits, "%s: greedy step %d logits rel err %.3g (tol %g)", r->name, i, e,
                  r->tol_logits);
        int tok = argmax(row, r->V);
        if (tok != r->gen[i]) {
            CHECK_MSG(0, "%s: greedy step %d: got id %d, transformers %d (logit %.6g vs %.6g)", r->name, i, tok,
                      r->gen[i], row[tok], row[r->gen[i]]);
            return;
        }
        if (i + 1 < r->n_gen && moe_forward(s, &r->gen[i], 1, row, 0, &err) != 0) {
            CHECK_MSG(0, "%s: greedy step %d: %s", r->name, i, err.msg);
            return;
        }
    }
}

static void check_errors(moe_model *m, moe_session *s, const ref_data *r, float *buf) {
    moe_err err = {{0}};
    char num[32];
    /* id out of range: V and -1, in the middle of a batch */
    int32_t bad[3] = {r->ids[0], r->V, r->ids[1]};
    moe_session_reset(s);
    int rc = moe_forward(s, bad, 3, buf, 1, &err);
    CHECK_MSG(rc == -1, "%s: id %d (vocab %d) accepted", r->name, r->V, r->V);
    snprintf(num, sizeof num, "%d", r->V);
    CHECK_STR_CONTAINS(err.msg, num);
    CHECK_EQ_INT(moe_session_pos(s), 0); /* a refused call leaves the cache alone */
    if (verbose() && !strcmp(r->name, "mixtral_base")) fprintf(stderr, "  bad-id message: %s\n", err.msg);
    bad[1] = -1;
    err.msg[0] = 0;
    rc = moe_forward(s, bad, 3, buf, 1, &err);
    CHECK_MSG(rc == -1, "%s: id -1 accepted", r->name);
    CHECK_STR_CONTAINS(err.msg, "-1");
    CHECK_EQ_INT(moe_session_pos(s), 0);

    /* context overflow: n_ctx 8, 9 tokens at once; then 8 + 1 */
    moe_session *s8 = session_open(m, 8, 1, 0, r->name);
    if (!s8) return;
    CHECK_EQ_INT(moe_session_ctx(s8), 8);
    err.msg[0] = 0;
    rc = moe_forward(s8, r->ids, 9, buf, 1, &err);
    CHECK_MSG(rc == -1, "%s: 9 tokens into n_ctx 8 accepted", r->name);
    CHECK_MSG(strstr(err.msg, "context") || strstr(err.msg, "ctx"), "%s: overflow message \"%s\" does not say context",
              r->name, err.msg);
    CHECK_EQ_INT(moe_session_pos(s8), 0);
    rc = moe_forward(s8, r->ids, 8, buf, 1, &err);
    CHECK_MSG(rc == 0, "%s: 8 tokens into n_ctx 8: %s", r->name, err.msg);
    if (rc == 0) { /* and they are right */
        double e = rows_rel_err(buf, r->full, 8, r->V, NULL);
        CHECK_MSG(e <= r->tol_logits, "%s: n_ctx 8 session: rel err %.3g", r->name, e);
    }
    err.msg[0] = 0;
    rc = moe_forward(s8, r->ids + 8, 1, buf, 1, &err);
    CHECK_MSG(rc == -1, "%s: 9th token into a full n_ctx 8 cache accepted", r->name);
    CHECK_MSG(strstr(err.msg, "context") || strstr(err.msg, "ctx"), "%s: overflow message \"%s\" does not say context",
              r->name, err.msg);
    CHECK_EQ_INT(moe_session_pos(s8), 8);
    if (verbose() && !strcmp(r->name, "mixtral_base")) fprintf(stderr, "  full-context message: %s\n", err.msg);
    moe_session_reset(s8);
    CHECK_EQ_INT(moe_session_pos(s8), 0);
    moe_session_free(s8);
}

static void conformance_run(const char *name) {
    ref_data r;
    if (ref_load(&r, name) != 0) return;
    moe_model *m = NULL;
    moe_err err = {{0}};
    int rc = moe_model_load(&m, r.dir, &err);
    CHECK_MSG(rc == 0 && m, "%s: moe_model_load: %s", name, err.msg);
    if (rc != 0 || !m) { ref_free(&r); return; }
    const moe_config *cfg = moe_model_config(m);
    CHECK_EQ_INT(cfg->vocab, r.V);
    if (cfg->vocab != r.V) { moe_model_free(m); ref_free(&r); return; }

    size_t nv = (size_t)r.n_ids * r.V;
    float *full = calloc(nv, sizeof(float)), *buf = calloc(nv, sizeof(float));
    moe_session *s = session_open(m, 64, 2, 0, name);
    double e_full = -1, e_incr = 0, e_greedy = 0;
    int row = 0;
    if (s && full && buf) {
        /* (a) one forward over every id */
        rc = moe_forward(s, r.ids, r.n_ids, full, 1, &err);
        CHECK_MSG(rc == 0, "%s: moe_forward(%d ids): %s", name, r.n_ids, err.msg);
        if (rc == 0) {
            CHECK_EQ_INT(moe_session_pos(s), r.n_ids);
            e_full = rows_rel_err(full, r.full, r.n_ids, r.V, &row);
            CHECK_MSG(e_full <= r.tol_logits, "%s: logits vs transformers: rel err %.3g at position %d (tol %g)",
                      name, e_full, row, r.tol_logits);
            /* (b) incremental == full */
            check_incremental(m, s, &r, full, buf, &e_incr);
        }
        /* (c) greedy */
        check_greedy(s, &r, buf, &e_greedy);
        /* (d) errors */
        check_errors(m, s, &r, buf);
    }
    if (verbose())
        fprintf(stderr, "  %-18s full %.3g (pos %d)  incremental %.3g  greedy-steps %.3g\n", name, e_full, row,
                e_incr, e_greedy);
    moe_session_free(s);
    free(full);
    free(buf);
    moe_model_free(m);
    ref_free(&r);
}

/* Every variant the generator writes; conformance_fixture_list checks this
 * list and tests/fixtures/models/ agree. */
static const char *const k_variants[] = {
    "mixtral_base",   "mixtral_k1",       "mixtral_kall",   "mixtral_tied",    "mixtral_bf16",
    "mixtral_f16",    "mixtral_sharded",  "mixtral_swa",    "qwen2_moe_base",  "qwen2_moe_norm",
    "qwen2_moe_dense", "qwen3_moe_base",  "qwen3_moe_nonorm", "qwen3_moe_dense", "olmoe_base",
    "olmoe_norm",     "gpt_oss_base",     "gpt_oss_legacy", "gpt_oss_mxfp4",   "qwen3_next_base",
    "qwen3_next_legacy", "qwen3_next_bf16", "qwen3_5_moe_vl", "qwen3_5_moe_text",
    "qwen3_5_moe_legacy", "deepseek_v3_base", "deepseek_v3_noq", "deepseek_v2_base",
    "deepseek_v2_bf16", "glm4_moe_base",  "glm4_moe_legacy",
};

#define CONFORMANCE(v) TEST(conformance_##v) { conformance_run(#v); }
CONFORMANCE(mixtral_base)
CONFORMANCE(mixtral_k1)
CONFORMANCE(mixtral_kall)
CONFORMANCE(mixtral_tied)
CONFORMANCE(mixtral_bf16)
CONFORMANCE(mixtral_f16)
CONFORMANCE(mixtral_sharded)
CONFORMANCE(mixtral_swa)
CONFORMANCE(qwen2_moe_base)
CONFORMANCE(qwen2_moe_norm)
CONFORMANCE(qwen2_moe_dense)
CONFORMANCE(qwen3_moe_base)
CONFORMANCE(qwen3_moe_nonorm)
CONFORMANCE(qwen3_moe_dense)
CONFORMANCE(olmoe_base)
CONFORMANCE(olmoe_norm)
CONFORMANCE(gpt_oss_base)
CONFORMANCE(gpt_oss_legacy)
CONFORMANCE(gpt_oss_mxfp4) /* experts MXFP4 in transformers' layout */
CONFORMANCE(qwen3_next_base)
CONFORMANCE(qwen3_next_legacy)
CONFORMANCE(qwen3_next_bf16)
CONFORMANCE(qwen3_5_moe_vl)     /* text_config + vision tower, model.language_model., fused experts */
CONFORMANCE(qwen3_5_moe_text)   /* Qwen3_5MoeForCausalLM's own files */
CONFORMANCE(qwen3_5_moe_legacy) /* BF16, rope_scaling spelling, full_attention_interval */
CONFORMANCE(deepseek_v3_base)   /* latent attention with q rank, YaRN + mscale, groups */
CONFORMANCE(deepseek_v3_noq)    /* q_proj, half-split rotary, no groups, an MTP layer on disk */
CONFORMANCE(deepseek_v2_base)   /* softmax, group_limited_greedy, rope_scaling spelling */
CONFORMANCE(deepseek_v2_bf16)   /* BF16: kv_b_proj rows widened one by one */
CONFORMANCE(glm4_moe_base)      /* partial rotary, q/k/v biases, q/k norm, groups */
CONFORMANCE(glm4_moe_legacy)    /* top-level rope_theta / partial_rotary_factor */

TEST(conformance_fixture_list) {
    char path[512];
    snprintf(path, sizeof path, "%s/models", test_fixtures());
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "cannot open %s", path);
    if (!d) return;
    int n = 0, nk = (int)(sizeof k_variants / sizeof k_variants[0]);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int known = 0;
        for (int i = 0; i < nk; i++) known |= !strcmp(e->d_name, k_variants[i]);
        CHECK_MSG(known, "fixture %s/%s has no conformance test (add it to k_variants)", path, e->d_name);
        n++;
    }
    closedir(d);
    CHECK_EQ_INT(n, nk);
}

/* ------------------------------------------------------------ bad input */

static int copy_file(const char *src, const char *dst) {
    size_t n = 0;
    char *b = slurp(src, &n);
    if (!b) return -1;
    int rc = write_bytes(dst, b, n);
    free(b);
    return rc;
}

/* Copy the regular files of src into a fresh directory dst. */
static int copy_dir(const char *src, const char *dst) {
    if (mkdir(dst, 0755) != 0 && errno != EEXIST) return -1;
    DIR *d = opendir(src);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) && rc == 0) {
        if (e->d_name[0] == '.') continue;
        char a[1024], b[1024];
        if (snprintf(a, sizeof a, "%s/%s", src, e->d_name) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", dst, e->d_name) >= (int)sizeof b)
            rc = -1;
        else
            rc = copy_file(a, b);
    }
    closedir(d);
    return rc;
}

/* Rewrite a safetensors file with one tensor edited: dropped (new_dtype and
 * shape unused), given a new dtype string, or a new shape (n_dims > 0). The
 * data region is rebuilt contiguous, so the file stays well formed and only
 * the model loader can object. */
int st_rewrite(const char *path, const char *tensor, int drop, const char *new_dtype,
                      const int64_t *shape, int n_dims) {
    size_t len = 0;
    unsigned char *b = (unsigned char *)slurp(path, &len);
    if (!b || len < 8) { free(b); return -1; }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    if (hl > len - 8) { free(b); return -1; }
    cJSON *h = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    if (!h) { free(b); return -1; }
    const unsigned char *data = b + 8 + hl;
    size_t data_len = len - 8 - (size_t)hl;
    cJSON *t = cJSON_GetObjectItemCaseSensitive(h, tensor);
    int rc = -1;
    if (t) {
        if (drop) cJSON_DeleteItemFromObjectCaseSensitive(h, tensor);
        if (!drop && new_dtype) cJSON_ReplaceItemInObjectCaseSensitive(t, "dtype", cJSON_CreateString(new_dtype));
        if (!drop && n_dims > 0) {
            cJSON *sh = cJSON_CreateArray();
            for (int i = 0; i < n_dims; i++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[i]));
            cJSON_ReplaceItemInObjectCaseSensitive(t, "shape", sh);
        }
        /* new data region: tensors in their old order, packed */
        unsigned char *nd = malloc(data_len ? data_len : 1);
        size_t pos = 0;
        rc = nd ? 0 : -1;
        for (cJSON *it = h->child; it && rc == 0; it = it->next) {
            if (!strcmp(it->string, "__metadata__")) continue;
            cJSON *off = cJSON_GetObjectItem(it, "data_offsets");
            size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble;
            size_t e = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
            if (a > e || e > data_len) { rc = -1; break; }
            memcpy(nd + pos, data + a, e - a);
            cJSON *no = cJSON_CreateArray();
            cJSON_AddItemToArray(no, cJSON_CreateNumber((double)pos));
            cJSON_AddItemToArray(no, cJSON_CreateNumber((double)(pos + e - a)));
            cJSON_ReplaceItemInObjectCaseSensitive(it, "data_offsets", no);
            pos += e - a;
        }
        char *js = rc == 0 ? cJSON_PrintUnformatted(h) : NULL;
        FILE *f = js ? fopen(path, "wb") : NULL;
        if (f) {
            size_t jl = strlen(js), pad = (8 - jl % 8) % 8;
            unsigned char le[8];
            for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)(jl + pad) >> (8 * i));
            rc = fwrite(le, 1, 8, f) == 8 && fwrite(js, 1, jl, f) == jl ? 0 : -1;
            for (size_t i = 0; i < pad && rc == 0; i++) rc = fputc(' ', f) == ' ' ? 0 : -1;
            if (rc == 0 && fwrite(nd, 1, pos, f) != pos) rc = -1;
            if (fclose(f) != 0) rc = -1;
        } else {
            rc = -1;
        }
        free(js);
        free(nd);
    }
    cJSON_Delete(h);
    free(b);
    return rc;
}

/* Edit config.json: set key to a JSON value (given as text), or delete it. */
static int config_set(const char *dir, const char *key, const char *json_value) {
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *txt = slurp(path, NULL);
    cJSON *c = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!c) return -1;
    cJSON_DeleteItemFromObjectCaseSensitive(c, key);
    if (json_value) cJSON_AddItemToObject(c, key, cJSON_Parse(json_value));
    char *out = cJSON_Print(c);
    int rc = out ? write_bytes(path, out, strlen(out)) : -1;
    free(out);
    cJSON_Delete(c);
    return rc;
}

/* A fresh copy of a fixture under the test's tmpdir. */
const char *fresh_copy(const char *variant, const char *tag) {
    static char dst[700];
    char src[600];
    snprintf(src, sizeof src, "%s/models/%s", test_fixtures(), variant);
    snprintf(dst, sizeof dst, "%s/%s_%s", test_tmpdir(), variant, tag);
    if (copy_dir(src, dst) != 0) {
        CHECK_MSG(0, "cannot copy %s to %s", src, dst);
        return NULL;
    }
    return dst;
}

/* moe_model_load(dir) must fail with a message containing one of the
 * words (NULL-terminated list). */
void expect_load_fail(const char *what, const char *dir, const char *const *words) {
    moe_model *m = NULL;
    moe_err err;
    memset(&err, 0, sizeof err);
    int rc = moe_model_load(&m, dir, &err);
    CHECK_MSG(rc == -1, "%s: moe_model_load succeeded (rc %d)", what, rc);
    if (rc == 0) moe_model_free(m);
    CHECK_MSG(err.msg[0] != 0, "%s: empty error message", what);
    int found = 0;
    for (const char *const *w = words; *w; w++) found |= strstr(err.msg, *w) != NULL;
    CHECK_MSG(found, "%s: message \"%s\" names none of the expected words (first: \"%s\")", what, err.msg, words[0]);
    if (verbose()) fprintf(stderr, "  %-28s -> %s\n", what, err.msg);
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define BASE "mixtral_base"
#define K_PROJ1 "model.layers.1.self_attn.k_proj.weight"

TEST(conformance_bad_config) {
    char p[800];
    const char *d;
    if ((d = fresh_copy(BASE, "noconfig"))) {
        snprintf(p, sizeof p, "%s/config.json", d);
        CHECK(unlink(p) == 0);
        expect_load_fail("config.json missing", d, WORDS("config.json"));
    }
    if ((d = fresh_copy(BASE, "garbled"))) {
        snprintf(p, sizeof p, "%s/config.json", d);
        const char *g = "{\"model_type\": \"mixtral\", \"hidden_size\": 48, \"num_hidden_layers\": ";
        CHECK(write_bytes(p, g, strlen(g)) == 0);
        expect_load_fail("config.json garbled", d, WORDS("config.json"));
    }
    if ((d = fresh_copy(BASE, "notobject"))) {
        snprintf(p, sizeof p, "%s/config.json", d);
        CHECK(write_bytes(p, "[1, 2, 3]", 9) == 0);
        expect_load_fail("config.json not an object", d, WORDS("config.json"));
    }
    if ((d = fresh_copy(BASE, "unknowntype"))) {
        CHECK(config_set(d, "model_type", "\"gpt_bogus_moe\"") == 0);
        expect_load_fail("unknown model_type", d, WORDS("gpt_bogus_moe", "model_type"));
    }
    if ((d = fresh_copy(BASE, "notype"))) {
        CHECK(config_set(d, "model_type", NULL) == 0);
        expect_load_fail("model_type missing", d, WORDS("model_type"));
    }
    if ((d = fresh_copy(BASE, "badheads"))) { /* 6 heads / 4 kv heads: not a multiple */
        CHECK(config_set(d, "num_key_value_heads", "4") == 0);
        expect_load_fail("heads not a multiple of kv heads", d, WORDS("num_key_value_heads", "k_proj", "kv"));
    }
    if ((d = fresh_copy(BASE, "topk"))) { /* more experts per token than experts */
        CHECK(config_set(d, "num_experts_per_tok", "5") == 0);
        expect_load_fail("top_k > n_experts", d, WORDS("num_experts_per_tok", "top_k"));
    }
    if ((d = fresh_copy(BASE, "vocab"))) { /* config vocab disagrees with embed_tokens */
        CHECK(config_set(d, "vocab_size", "130") == 0);
        expect_load_fail("vocab_size vs embed_tokens", d, WORDS("embed_tokens", "vocab", "lm_head"));
    }
    if ((d = fresh_copy(BASE, "layers"))) { /* config says 3 layers, file has 2 */
        CHECK(config_set(d, "num_hidden_layers", "3") == 0);
        expect_load_fail("num_hidden_layers > layers in file", d, WORDS("model.layers.2.", "layers.2"));
    }
    if ((d = fresh_copy(BASE, "experts"))) { /* config says 5 experts, file has 4 */
        CHECK(config_set(d, "num_local_experts", "5") == 0);
        expect_load_fail("num_local_experts > experts in file", d, WORDS("experts.4", "gate.weight", "experts"));
    }
    expect_load_fail("directory missing", "/nonexistent/moe_model_dir", WORDS("/nonexistent/moe_model_dir"));
}

TEST(conformance_bad_tensors) {
    char p[800];
    const char *d;
    if ((d = fresh_copy(BASE, "missing"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, K_PROJ1, 1, NULL, NULL, 0) == 0);
        expect_load_fail("tensor missing", d, WORDS(K_PROJ1));
    }
    if ((d = fresh_copy(BASE, "missing_expert"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, "model.layers.0.block_sparse_moe.experts.3.w3.weight", 1, NULL, NULL, 0) == 0);
        expect_load_fail("expert tensor missing", d, WORDS("model.layers.0.block_sparse_moe.experts.3.w3.weight"));
    }
    if ((d = fresh_copy(BASE, "missing_head"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, "lm_head.weight", 1, NULL, NULL, 0) == 0);
        expect_load_fail("lm_head missing (untied)", d, WORDS("lm_head.weight"));
    }
    if ((d = fresh_copy(BASE, "shape"))) { /* k_proj [16][48] stored as [48][16]: same bytes */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        const int64_t sh[2] = {48, 16};
        CHECK(st_rewrite(p, K_PROJ1, 0, NULL, sh, 2) == 0);
        expect_load_fail("tensor wrong shape", d, WORDS(K_PROJ1));
    }
    if ((d = fresh_copy(BASE, "shape_expert"))) { /* w2 [48][16] as [16][48] */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        const int64_t sh[2] = {16, 48};
        CHECK(st_rewrite(p, "model.layers.1.block_sparse_moe.experts.2.w2.weight", 0, NULL, sh, 2) == 0);
        expect_load_fail("expert tensor wrong shape", d, WORDS("model.layers.1.block_sparse_moe.experts.2.w2.weight"));
    }
    if ((d = fresh_copy(BASE, "shape_norm"))) { /* norm [48] as [6][8] */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        const int64_t sh[2] = {6, 8};
        CHECK(st_rewrite(p, "model.norm.weight", 0, NULL, sh, 2) == 0);
        expect_load_fail("norm wrong rank", d, WORDS("model.norm.weight"));
    }
    if ((d = fresh_copy(BASE, "dtype"))) { /* F32 bytes labelled I32 */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, "model.layers.0.input_layernorm.weight", 0, "I32", NULL, 0) == 0);
        expect_load_fail("tensor of an unsupported dtype", d, WORDS("model.layers.0.input_layernorm.weight", "I32"));
    }
}

TEST(conformance_bad_files) {
    char p[800];
    const char *d;
    size_t len = 0;
    char src[700];
    snprintf(src, sizeof src, "%s/models/%s/model.safetensors", test_fixtures(), BASE);
    char *b = slurp(src, &len);
    CHECK(b != NULL && len > 1000);
    free(b);
    const struct { const char *what; long keep; } cuts[] = {
        {"safetensors truncated to 4 bytes", 4},
        {"safetensors truncated in the header", 200},
        {"safetensors truncated in the data", (long)len - 100},
        {"safetensors empty", 0},
    };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "cut%zu", i);
        if (!(d = fresh_copy(BASE, tag))) continue;
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(truncate(p, cuts[i].keep) == 0);
        expect_load_fail(cuts[i].what, d, WORDS("model.safetensors"));
    }
    if ((d = fresh_copy(BASE, "hugeheader"))) { /* header length 2^62 */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        FILE *f = fopen(p, "r+b");
        CHECK(f != NULL);
        if (f) {
            unsigned char le[8] = {0, 0, 0, 0, 0, 0, 0, 0x40};
            CHECK(fwrite(le, 1, 8, f) == 8);
            fclose(f);
        }
        expect_load_fail("safetensors header length 2^62", d, WORDS("model.safetensors"));
    }
    if ((d = fresh_copy(BASE, "noweights"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(unlink(p) == 0);
        expect_load_fail("no safetensors at all", d, WORDS("safetensors"));
    }
    /* sharded: a shard missing, a shard cut, the index garbled, a tensor
     * the index promises but no shard holds */
    if ((d = fresh_copy("mixtral_sharded", "noshard"))) {
        snprintf(p, sizeof p, "%s/model-00002-of-00003.safetensors", d);
        CHECK(unlink(p) == 0);
        expect_load_fail("shard missing", d, WORDS("model-00002-of-00003.safetensors"));
    }
    if ((d = fresh_copy("mixtral_sharded", "cutshard"))) {
        snprintf(p, sizeof p, "%s/model-00003-of-00003.safetensors", d);
        CHECK(truncate(p, 1000) == 0);
        expect_load_fail("shard truncated", d, WORDS("model-00003-of-00003.safetensors"));
    }
    if ((d = fresh_copy("mixtral_sharded", "badindex"))) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", d);
        CHECK(write_bytes(p, "{\"weight_map\": {", 16) == 0);
        expect_load_fail("index garbled", d, WORDS("model.safetensors.index.json"));
    }
    if ((d = fresh_copy("mixtral_sharded", "lostensor"))) {
        snprintf(p, sizeof p, "%s/model-00001-of-00003.safetensors", d);
        CHECK(st_rewrite(p, "model.embed_tokens.weight", 1, NULL, NULL, 0) == 0);
        expect_load_fail("indexed tensor absent from its shard", d, WORDS("model.embed_tokens.weight"));
    }
}

/* gpt_oss: malformed configs and tensors are refused with the field or the
 * tensor named; the released spelling (top-level rope_scaling) reads as the
 * transformers 5 one. */
TEST(conformance_gpt_oss_bad) {
    const char *G = "gpt_oss_base", *d;
    char p[800];
    if ((d = fresh_copy(G, "oss_lt"))) {
        CHECK(config_set(d, "layer_types", "[\"sliding_attention\",\"chunked_attention\","
                                           "\"sliding_attention\",\"full_attention\"]") == 0);
        expect_load_fail("unknown layer type", d, WORDS("layer_types[1]", "chunked_attention"));
    }
    if ((d = fresh_copy(G, "oss_ltn"))) {
        CHECK(config_set(d, "layer_types", "[\"sliding_attention\"]") == 0);
        expect_load_fail("layer_types of the wrong length", d, WORDS("layer_types", "1 entries"));
    }
    if ((d = fresh_copy(G, "oss_win"))) {
        CHECK(config_set(d, "sliding_window", "0") == 0);
        expect_load_fail("window 0 with sliding layers", d, WORDS("sliding_window"));
    }
    if ((d = fresh_copy(G, "oss_winnull"))) {
        CHECK(config_set(d, "sliding_window", "null") == 0);
        expect_load_fail("null window with sliding layers", d, WORDS("sliding_window"));
    }
    if ((d = fresh_copy(G, "oss_hd"))) {
        CHECK(config_set(d, "head_dim", "15") == 0);
        expect_load_fail("odd head_dim", d, WORDS("head_dim"));
    }
    if ((d = fresh_copy(G, "oss_limit"))) {
        CHECK(config_set(d, "swiglu_limit", "0.0") == 0);
        expect_load_fail("swiglu_limit 0", d, WORDS("swiglu_limit"));
    }
    if ((d = fresh_copy(G, "oss_yarn"))) {
        CHECK(config_set(d, "rope_parameters", "{\"rope_type\": \"yarn\", \"rope_theta\": 100.0}") == 0);
        expect_load_fail("YaRN without a factor", d, WORDS("rope_parameters.factor"));
    }
    if ((d = fresh_copy(G, "oss_rope"))) {
        CHECK(config_set(d, "rope_parameters", "{\"rope_type\": \"longrope\", \"rope_theta\": 1.0}") == 0);
        expect_load_fail("unsupported rope type", d, WORDS("longrope"));
    }
    if ((d = fresh_copy(G, "oss_sinks"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, "model.layers.2.self_attn.sinks", 1, NULL, NULL, 0) == 0);
        expect_load_fail("sinks missing", d, WORDS("model.layers.2.self_attn.sinks"));
    }
    if ((d = fresh_copy(G, "oss_sinks_shape"))) { /* [4] as [2][2] */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        const int64_t sh[2] = {2, 2};
        CHECK(st_rewrite(p, "model.layers.1.self_attn.sinks", 0, NULL, sh, 2) == 0);
        expect_load_fail("sinks mis-shaped", d, WORDS("model.layers.1.self_attn.sinks"));
    }
    if ((d = fresh_copy(G, "oss_gu_shape"))) { /* [6][32][32] as [6][64][16]: same bytes */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        const int64_t sh[3] = {6, 64, 16};
        CHECK(st_rewrite(p, "model.layers.0.mlp.experts.gate_up_proj", 0, NULL, sh, 3) == 0);
        expect_load_fail("gate_up_proj mis-shaped", d, WORDS("model.layers.0.mlp.experts.gate_up_proj"));
    }
    if ((d = fresh_copy(G, "oss_down_shape"))) { /* [6][16][32] stored as [6][32][16] */
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        const int64_t sh[3] = {6, 32, 16};
        CHECK(st_rewrite(p, "model.layers.3.mlp.experts.down_proj", 0, NULL, sh, 3) == 0);
        expect_load_fail("down_proj transposed", d, WORDS("model.layers.3.mlp.experts.down_proj"));
    }
    if ((d = fresh_copy(G, "oss_bias"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, "model.layers.1.mlp.experts.down_proj_bias", 1, NULL, NULL, 0) == 0);
        expect_load_fail("expert bias missing", d, WORDS("model.layers.1.mlp.experts.down_proj_bias"));
    }
    if ((d = fresh_copy(G, "oss_rbias"))) {
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        CHECK(st_rewrite(p, "model.layers.0.mlp.router.bias", 1, NULL, NULL, 0) == 0);
        expect_load_fail("router bias missing", d, WORDS("model.layers.0.mlp.router.bias"));
    }
}
