/*
 * test_util.c - helpers shared by the test files (test_util.h).
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mapfile.h"
#include "train/data.h"
#include "moe.h"
#include "test.h"

cJSON *test_load_json(const char *path) {
    char *buf;
    size_t len;
    moe_err err;
    if (read_file(path, (size_t)64 << 20, &buf, &len, &err) != 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

float *test_session_logits(moe_model *m, const int32_t *ids, int n, int all) {
    int V = moe_model_config(m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = n < 64 ? 64 : n, .n_threads = 1};
    float *lg = malloc(sizeof(float) * (size_t)(all ? n : 1) * (size_t)V);
    if (!lg || moe_session_new(&s, m, &o, &err) || moe_forward(s, ids, n, lg, all, &err)) {
        test_fail_at(__FILE__, __LINE__, "run alone: %s", err.msg);
        free(lg);
        lg = NULL;
    }
    moe_session_free(s);
    return lg;
}

float *test_model_logits(const char *path, const int32_t *ids, int n, int *V) {
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, path, &err)) {
        test_fail_at(__FILE__, __LINE__, "load %s: %s", path, err.msg);
        return NULL;
    }
    *V = moe_model_config(m)->vocab;
    float *lg = test_session_logits(m, ids, n, 1);
    moe_model_free(m);
    return lg;
}

moe_model *test_load_variant(const char *variant) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", test_fixtures(), variant);
    moe_err err = {{0}};
    moe_model *m = NULL;
    if (moe_model_load(&m, dir, &err)) test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
    return m;
}

double test_rel_err(const float *a, const float *b, int n) {
    double worst = 0, scale = 1e-30;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst) worst = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return worst / scale;
}

void test_write_shard(const char *path, const uint32_t *ids, uint64_t n, int dtype, uint32_t vocab,
                      const uint64_t *ends, int n_dom) {
    size_t off = (DATA_HEADER_BYTES + (size_t)n_dom * DATA_DOMAIN_BYTES + 63) / 64 * 64;
    size_t size = off + (size_t)n * (size_t)dtype;
    unsigned char *b = calloc(1, size);
    memcpy(b, DATA_MAGIC, 8);
    uint32_t h32[] = {1, (uint32_t)dtype};
    memcpy(b + 8, h32, 8);
    memcpy(b + 16, &n, 8);
    memcpy(b + 24, &vocab, 4);
    uint32_t nd = (uint32_t)n_dom;
    memcpy(b + 28, &nd, 4);
    uint64_t o64 = off;
    memcpy(b + 32, &o64, 8);
    uint32_t eos = 0;
    memcpy(b + 40, &eos, 4);
    uint64_t at = 0;
    for (int d = 0; d < n_dom; d++) {
        unsigned char *e = b + DATA_HEADER_BYTES + d * DATA_DOMAIN_BYTES;
        snprintf((char *)e, 32, "dom%d", d);
        memcpy(e + 32, &at, 8);
        memcpy(e + 40, &ends[d], 8);
        at = ends[d];
    }
    for (uint64_t i = 0; i < n; i++) memcpy(b + off + i * (uint64_t)dtype, &ids[i], (size_t)dtype);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, size, f) != size) test_fail_at(__FILE__, __LINE__, "%s: cannot write", path);
    if (f) fclose(f);
    free(b);
}

int test_gguf_rewrite(const char *src, const char *dst, const test_gguf_edit *ed) {
    gguf_file g;
    moe_err err;
    if (gguf_open(&g, src, &err)) return -1;
    gguf_wkv *kv = calloc((size_t)g.n_kv + 1, sizeof *kv);
    gguf_wtensor *t = calloc((size_t)g.n_tensors + 1, sizeof *t);
    int nk = 0, nt = 0;
    for (int i = 0; kv && t && i < g.n_kv; i++) {
        const gguf_kv *k = &g.kvs[i];
        if ((ed->skip_key && !strcmp(k->key, ed->skip_key)) ||
            (ed->over.key && !strcmp(k->key, ed->over.key)))
            continue;
        gguf_wkv w = {.key = k->key, .type = k->type, .arr_type = k->arr_type, .n = k->n};
        if (k->type == GGUF_VT_STR) w.str = k->strs[0], w.lens = k->lens;
        else if (k->type == GGUF_VT_ARR) w.arr = k->raw; /* the fixtures' arrays are scalar */
        else memcpy(&w.v, k->raw, (size_t)gguf_vtype_size(k->type));
        kv[nk++] = w;
    }
    if (kv && ed->over.key) kv[nk++] = ed->over;
    for (int i = 0; kv && t && i < g.n_tensors; i++) {
        const gguf_tensor *s = &g.tensors[i];
        if (ed->skip_tensor && !strcmp(s->name, ed->skip_tensor)) continue;
        t[nt] = (gguf_wtensor){s->name, s->type, s->n_dims, {0}, s->data};
        memcpy(t[nt].ne, s->ne, sizeof s->ne);
        if (ed->shape_tensor && !strcmp(s->name, ed->shape_tensor)) t[nt].ne[0] = ed->ne0;
        nt++;
    }
    int r = kv && t ? gguf_write(dst, kv, nk, t, nt, &err) : -1;
    free(kv);
    free(t);
    gguf_close(&g);
    return r;
}

void test_gguf_expect_fail(const char *src, const char *name, const test_gguf_edit *ed,
                           const char *want) {
    char dst[600];
    snprintf(dst, sizeof dst, "%s/%s.gguf", test_tmpdir(), name);
    CHECK_MSG(test_gguf_rewrite(src, dst, ed) == 0, "%s: rewrite failed", name);
    moe_model *m = NULL;
    moe_err err = {{0}};
    int r = moe_model_load(&m, dst, &err);
    CHECK_MSG(r == -1 && m == NULL, "%s loaded", name);
    CHECK_MSG(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", name, err.msg, want);
    moe_model_free(m);
}

void test_logits_kl(const float *a, const float *b, int T, int V, double *mean, double *max) {
    *mean = *max = 0;
    for (int t = 0; t < T; t++) {
        const float *p = a + (size_t)t * V, *q = b + (size_t)t * V;
        double mp = p[0], mq = q[0], sp = 0, sq = 0, kl = 0;
        for (int v = 1; v < V; v++) mp = fmax(mp, p[v]), mq = fmax(mq, q[v]);
        for (int v = 0; v < V; v++) sp += exp(p[v] - mp), sq += exp(q[v] - mq);
        for (int v = 0; v < V; v++) {
            double lp = p[v] - mp - log(sp), lq = q[v] - mq - log(sq);
            kl += exp(lp) * (lp - lq);
        }
        *mean += kl / T;
        *max = fmax(*max, kl);
    }
}

int test_load_read(moe_model **m, const char *path, const moe_load_opts *o, moe_err *err) {
    const char *was = getenv("MOE_LOAD");
    char *keep = was ? strdup(was) : NULL;
    setenv("MOE_LOAD", "read", 1);
    const int rc = moe_model_load_opts(m, path, o, err);
    if (keep)
        setenv("MOE_LOAD", keep, 1);
    else
        unsetenv("MOE_LOAD");
    free(keep);
    return rc;
}
