/*
 * lora_apply.c - an adapter applied to a loaded model for inference
 * (moe_lora_apply: the targeted weights replaced by merged f32 copies) and
 * merged into a new model directory (moe_lora_merge). See moe_train.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "moe_train.h"
#include "base/err.h"
#include "base/mapfile.h"
#include "formats/safetensors.h"
#include "train/lora.h"

struct moe_lora {
    lora_adapter a;
    int n;               /* weights replaced */
    float **buf;         /* [n] their merged f32 copies */
    const void **orig;   /* [n] what they pointed at before */
};

void moe_lora_free(moe_lora *l) {
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->buf[i]);
    free(l->buf);
    free(l->orig);
    lora_free(&l->a);
    free(l);
}

int moe_lora_apply(moe_model *m, const char *adapter_dir, moe_lora **out, moe_err *err) {
    *out = NULL;
    moe_lora *l = calloc(1, sizeof *l);
    if (!l) return moe_fail(err, "out of memory");
    if (lora_load(&l->a, m, adapter_dir, err)) {
        free(l);
        return -1;
    }
    lora_adapter *a = &l->a;
    if (m->cache && (a->targets & (LORA_T_EXPERTS)))
        return moe_lora_free(l),
               moe_fail(err, "%s: expert adapters need the experts in memory; they are read "
                        "through an expert memory budget (--mem) here", adapter_dir);
    int total = 0;
    for (int i = 0; i < a->n; i++) total += a->t[i].n_w;
    l->buf = calloc((size_t)total, sizeof *l->buf);
    l->orig = calloc((size_t)total, sizeof *l->orig);
    if (!l->buf || !l->orig) return moe_lora_free(l), moe_fail(err, "out of memory");
    int64_t max_scratch = 0;
    for (int i = 0; i < a->n; i++)
        if (lora_scratch(&a->t[i], a->r) > max_scratch) max_scratch = lora_scratch(&a->t[i], a->r);
    float *scratch = malloc(sizeof(float) * (size_t)max_scratch);
    if (!scratch) return moe_lora_free(l), moe_fail(err, "out of memory");
    for (int i = 0; i < a->n; i++) {
        const lora_target *t = &a->t[i];
        int64_t rows = lora_w_rows(t);
        for (int j = 0; j < t->n_w; j++) {
            mat *w = t->w[j];
            float *b = malloc(sizeof(float) * (size_t)rows * (size_t)t->in);
            if (!b) {
                free(scratch);
                return moe_lora_free(l), moe_fail(err, "out of memory for merged weights");
            }
            for (int64_t o = 0; o < rows; o++) mat_row_f32(b + o * t->in, w, o);
            lora_add_delta_gemm(NULL, a, t, j, b, scratch);
            l->orig[l->n] = w->data;
            l->buf[l->n++] = b;
            w->data = b;
            w->type = DT_F32;
        }
    }
    free(scratch);
    *out = l;
    return 0;
}

static int copy_if_there(const char *from_dir, const char *to_dir, const char *name, moe_err *err) {
    char from[4200], to[4200], *text = NULL;
    size_t len = 0;
    struct stat sb;
    snprintf(from, sizeof from, "%s/%s", from_dir, name);
    if (stat(from, &sb) != 0) return 0;
    if (read_file(from, (size_t)1 << 30, &text, &len, err)) return -1;
    snprintf(to, sizeof to, "%s/%s", to_dir, name);
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f) ok = (fclose(f) == 0) && ok;
    free(text);
    return ok ? 0 : moe_fail(err, "%s: cannot write: %s", to, strerror(errno));
}

int moe_lora_merge(const char *base_dir, const char *adapter_dir, const char *out_dir,
                   moe_err *err) {
    moe_model *m = NULL;
    moe_lora *l = NULL;
    st_write_tensor *w = NULL;
    int rc = -1;
    if (moe_model_load(&m, base_dir, err)) return -1;
    if (m->gguf) {
        moe_fail(err, "%s: merging writes a Hugging Face directory; give the base as one, not a "
                 "GGUF file", base_dir);
        goto done;
    }
    if (moe_lora_apply(m, adapter_dir, &l, err)) goto done;
    const st_store *S = &m->st;
    w = calloc((size_t)S->n_tensors, sizeof *w);
    if (!w) {
        moe_fail(err, "out of memory");
        goto done;
    }
    int matched = 0;
    for (int i = 0; i < S->n_tensors; i++) {
        const st_tensor *t = &S->tensors[i];
        w[i] = (st_write_tensor){t->name, t->type, t->n_dims, {0}, t->data};
        memcpy(w[i].shape, t->shape, sizeof t->shape);
        for (int k = 0; k < l->n; k++)
            if (l->orig[k] == t->data) {
                w[i].type = DT_F32;
                w[i].data = l->buf[k];
                matched++;
                break;
            }
    }
    if (matched != l->n) {
        moe_fail(err, "%s: %d of the %d adapted weights are not tensors of their own in the files",
                 base_dir, l->n - matched, l->n);
        goto done;
    }
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        moe_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", out_dir);
    if (st_write(path, w, S->n_tensors, "{\"format\":\"pt\"}", err)) goto done;
    static const char *files[] = {"config.json", "generation_config.json", "tokenizer.json",
                                  "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (copy_if_there(base_dir, out_dir, files[i], err)) goto done;
    rc = 0;
done:
    free(w);
    moe_model_free(m);
    moe_lora_free(l);
    return rc;
}
