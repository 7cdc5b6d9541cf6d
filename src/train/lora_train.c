/*
 * lora_train.c - see lora_train.h.
 */
#include "train/lora_train.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "formats/safetensors.h"

struct lora_trainer {
    lora_adapter a;
    float *g, *m, *v;        /* [a.n_params] gradients and AdamW moments */
    optim_tensor *ot;        /* [2 a.n] every A and B, ascending offsets */
    float *scratch;          /* [2 * max rows * r] for the GEMM paths */
    pool *pool;              /* the session's, set by each step (NULL before) */
    int fd;                  /* the base checkpoint's file: W0 */
    const unsigned char *map;/* where that file's bytes start in memory */
    char path[4096];
};

lora_adapter *lora_trainer_adapter(lora_trainer *lt) { return &lt->a; }

/* W = W0 (from the file) + delta, for every weight of every target. */
static int merge(lora_trainer *lt, moe_err *err) {
    for (int i = 0; i < lt->a.n; i++) {
        const lora_target *t = &lt->a.t[i];
        size_t bytes = (size_t)lora_w_rows(t) * (size_t)t->in * sizeof(float);
        for (int j = 0; j < t->n_w; j++) {
            float *W = (float *)t->w[j]->data;
            off_t at = (off_t)((const unsigned char *)W - lt->map);
            size_t done = 0;
            while (done < bytes) {
                ssize_t k = pread(lt->fd, (char *)W + done, bytes - done, at + (off_t)done);
                if (k <= 0)
                    return moe_fail(err, "%s: cannot read the base weights back: %s", lt->path,
                                    k < 0 ? strerror(errno) : "end of file");
                done += (size_t)k;
            }
            lora_add_delta_gemm(lt->pool, &lt->a, t, j, W, lt->scratch);
        }
    }
    return 0;
}

int lora_trainer_new(lora_trainer **out, moe_model *m, const char *st_path, int r, double alpha,
                     const char *targets, uint64_t seed, const char *base, moe_err *err) {
    *out = NULL;
    unsigned bits;
    if (lora_parse_targets(targets, &bits, err)) return -1;
    lora_trainer *lt = calloc(1, sizeof *lt);
    if (!lt) return moe_fail(err, "out of memory");
    lt->fd = -1;
    if (lora_plan(&lt->a, m, r, alpha, 0, bits, err)) goto fail;
    if (m->st.n_files != 1) {
        moe_fail(err, "LoRA training needs the base weights in one file");
        goto fail;
    }
    for (int i = 0; i < lt->a.n; i++)
        for (int j = 0; j < lt->a.t[i].n_w; j++)
            if (lt->a.t[i].w[j]->type != DT_F32) {
                moe_fail(err, "LoRA training needs f32 base weights (layer %d)", lt->a.t[i].layer);
                goto fail;
            }
    snprintf(lt->a.base, sizeof lt->a.base, "%s", base ? base : "");
    snprintf(lt->path, sizeof lt->path, "%s", st_path);
    lt->map = m->st.files[0].data;
    lt->fd = open(st_path, O_RDONLY | O_CLOEXEC);
    if (lt->fd < 0) {
        moe_fail(err, "%s: cannot open: %s", st_path, strerror(errno));
        goto fail;
    }
    int64_t n = lt->a.n_params;
    lt->g = calloc((size_t)n, sizeof(float));
    lt->m = calloc((size_t)n, sizeof(float));
    lt->v = calloc((size_t)n, sizeof(float));
    lt->ot = calloc((size_t)(2 * lt->a.n), sizeof *lt->ot);
    int64_t max_scratch = 0;
    for (int i = 0; i < lt->a.n; i++)
        if (lora_scratch(&lt->a.t[i], r) > max_scratch) max_scratch = lora_scratch(&lt->a.t[i], r);
    lt->scratch = calloc((size_t)max_scratch, sizeof(float));
    if (!lt->g || !lt->m || !lt->v || !lt->ot || !lt->scratch) {
        moe_fail(err, "out of memory for the LoRA optimizer");
        goto fail;
    }
    for (int i = 0; i < lt->a.n; i++) {
        const lora_target *t = &lt->a.t[i];
        int64_t Er = (int64_t)t->E * r;
        /* weight decay on both factors, as on every matrix of the full run */
        lt->ot[2 * i] = (optim_tensor){t->name_a, t->a_off, Er * t->in, 1, 0};
        lt->ot[2 * i + 1] = (optim_tensor){t->name_b, t->b_off, t->out * Er, 1, 0};
    }
    lora_init_weights(&lt->a, seed);
    if (merge(lt, err)) goto fail;
    *out = lt;
    return 0;
fail:
    lora_trainer_free(lt);
    return -1;
}

void lora_trainer_free(lora_trainer *lt) {
    if (!lt) return;
    if (lt->fd >= 0) close(lt->fd);
    lora_free(&lt->a);
    free(lt->g);
    free(lt->m);
    free(lt->v);
    free(lt->ot);
    free(lt->scratch);
    free(lt);
}

void lora_trainer_grads(lora_trainer *lt, const train_grads *G, float *g) {
    memset(g, 0, sizeof(float) * (size_t)lt->a.n_params);
    for (int i = 0; i < lt->a.n; i++) {
        const lora_target *t = &lt->a.t[i];
        for (int j = 0; j < t->n_w; j++)
            lora_add_grads_gemm(lt->pool, &lt->a, t, j, grad_of(G, t->w[j]->data), g, lt->scratch);
    }
}

int lora_trainer_step(lora_trainer *lt, pool *p, const train_grads *G, int64_t step, double lr,
                      const adamw_opts *o, double *grad_norm, moe_err *err) {
    lt->pool = p;
    lora_trainer_grads(lt, G, lt->g);
    if (adamw_step(p, lt->a.p, lt->g, lt->m, lt->v, lt->a.n_params, lt->ot, 2 * lt->a.n, step, lr,
                   o, grad_norm, err))
        return -1;
    memset(G->g, 0, sizeof(float) * (size_t)G->n);
    return merge(lt, err);
}

int lora_trainer_write(void *ctx, const char *dir, moe_err *err) {
    lora_trainer *lt = ctx;
    if (lora_save(&lt->a, dir, err)) return -1;
    int n = lt->a.n * 2;
    st_write_tensor *w = calloc((size_t)(2 * n), sizeof *w);
    char(*names)[224] = calloc((size_t)(2 * n), sizeof *names);
    int rc = -1;
    if (w && names) {
        for (int i = 0; i < n; i++)
            for (int mv = 0; mv < 2; mv++) {
                int k = 2 * i + mv;
                snprintf(names[k], sizeof names[k], "%c.%s", mv ? 'v' : 'm', lt->ot[i].name);
                w[k] = (st_write_tensor){names[k], DT_F32, 1, {lt->ot[i].size},
                                         (mv ? lt->v : lt->m) + lt->ot[i].offset};
            }
        char path[4200];
        snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
        rc = st_write(path, w, 2 * n, NULL, err);
    } else {
        moe_fail(err, "out of memory");
    }
    free(w);
    free(names);
    return rc;
}

int lora_trainer_resume(lora_trainer *lt, moe_model *m, const char *dir, moe_err *err) {
    lora_adapter saved;
    if (lora_load(&saved, m, dir, err)) return -1;
    int same = saved.r == lt->a.r && saved.alpha == lt->a.alpha && saved.targets == lt->a.targets &&
               !saved.rslora && saved.n_params == lt->a.n_params;
    if (same) memcpy(lt->a.p, saved.p, sizeof(float) * (size_t)saved.n_params);
    int r = saved.r;
    double alpha = saved.alpha;
    lora_free(&saved);
    if (!same)
        return moe_fail(err, "%s: the run's adapter has r = %d, alpha = %g and other targets; resume "
                        "with its --lora-rank, --lora-alpha and --lora-targets", dir, r, alpha);
    char path[4200], name[240];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    st_store o;
    if (st_open_file(&o, path, err)) return -1;
    int rc = 0;
    for (int i = 0; i < 2 * lt->a.n && !rc; i++) {
        const optim_tensor *t = &lt->ot[i];
        for (int mv = 0; mv < 2 && !rc; mv++) {
            snprintf(name, sizeof name, "%c.%s", mv ? 'v' : 'm', t->name);
            const st_tensor *x = st_find(&o, name);
            if (!x || x->type != DT_F32 || x->n_elems != t->size)
                rc = moe_fail(err, "%s: %s is missing or of the wrong size", path, name);
            else
                memcpy((mv ? lt->v : lt->m) + t->offset, x->data, sizeof(float) * (size_t)t->size);
        }
    }
    st_close(&o);
    return rc ? -1 : merge(lt, err);
}
