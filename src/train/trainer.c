/*
 * trainer.c - moe_train(): the training loop behind `moe train`.
 *
 *   start   OUT/step-00000000 from a config (random weights) or an --init
 *           model (widened to f32), or OUT/latest when resuming
 *   load    that checkpoint; its private mapping is the parameter array
 *   step    accum x (sample B windows of T+1 tokens, forward with the
 *           activation tape, backward; with recompute the tape keeps each
 *           layer's input and the backward re-runs the layer from it),
 *           then AdamW (clipping, warmup +
 *           cosine), then the selection-bias rule for sigmoid routers
 *   log     one JSON line per step (loss parts, lr, tokens/s, per-layer
 *           expert load, max violation, dead experts, selection biases,
 *           dropped pairs, router entropy), a progress callback,
 *           evaluations on val.bin
 *   save    every save_every steps and at the end (checkpoint.c)
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "moe_route.h"
#include "moe_train.h"
#include "base/err.h"
#include "kernels/bigmem.h"
#include "formats/hf_config.h"
#include "kernels/probe.h"
#include "model/model_init.h"
#include "train/backward.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/freeze.h"
#include "train/grow.h"
#include "train/grad_ops.h"
#include "train/lora_train.h"

void moe_train_defaults(moe_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->steps = 1000;
    o->batch = 8;
    o->seq = 128;
    o->accum = 1;
    o->lr = 3e-3;
    o->min_lr = 3e-4;
    o->warmup = 50;
    o->weight_decay = 0.1;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->clip = 1.0;
    o->aux_coef = 0.01f;
    o->z_coef = 0.001f;
    o->kl_coef = 0.0f;
    o->mod_coef = 0.01f;
    o->bias_rate = 0.001f;
    o->seed = 1;
    o->init_std = 0.02f;
    o->eval_every = 100;
    o->eval_batches = 8;
    o->save_every = 0;
    o->keep = 2;
}

typedef struct trainer {
    moe_train_opts o;
    moe_model *m;
    moe_session *s;
    bwd_ws *ws;
    train_params P;
    float *grads, *am, *av;  /* [P.n], [P.n_state], [P.n_state] */
    float *logits;           /* [B*T][V] */
    int32_t *win, *in, *tg;  /* [B][T+1], [B*T], [B*T] */
    data_shard train, val;
    int have_val;
    rng data_rng;
    int64_t step;
    int64_t *load;           /* [L][Emax] pairs routed this step */
    int64_t pairs_wanted, pairs_kept; /* token-choice pairs before/after capacity */
    double *entropy_sum;     /* [L] router entropy summed over this step's tokens */
    int64_t *entropy_n;      /* [L] tokens in it */
    float *score_row;        /* [Emax] one token's router scores */
    FILE *log;
    char dir[4096];          /* checkpoint being trained from */
    char *config;            /* its config.json text, carried into every save */
    unsigned freeze;         /* FREEZE_* groups kept fixed (freeze.h) */
    int added;               /* experts appended to each MoE layer by this run */
    lora_trainer *lora;      /* LoRA run: the adapters and their optimizer, else NULL */
} trainer;

static int join(char *out, size_t n, const char *a, const char *b) {
    return snprintf(out, n, "%s/%s", a, b) < (int)n ? 0 : -1;
}

/* ---------------------------------------------------------------- start */

/* A fresh f32 checkpoint OUT/step-00000000 from a config or an init model. */
static int make_initial(trainer *t, moe_err *err) {
    const moe_train_opts *o = &t->o;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/.tmp-init", o->out_dir);
    ckpt_remove_dir(dir);
    if (mkdir(dir, 0755) != 0) return moe_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    moe_model *src = NULL;
    int rc = -1;
    if (o->upcycle || o->add_experts > 0) { /* grow.h: a dense model upcycled, or experts added */
        grow_opts go = {o->upcycle, o->upcycle_experts, o->top_k, o->init, o->add_experts,
                        o->expert_noise, o->seed, o->init_std};
        if (grow_write(&go, dir, err)) goto done;
        rc = 0;
    } else if (o->init) {
        /* widen whatever the init model stores to f32, tensor by tensor */
        if (moe_model_load(&src, o->init, err) || bwd_check_model(&src->cfg, err) ||
            (o->lora_rank > 0 && lora_check_model(&src->cfg, err)))
            goto done;
        if (src->gguf) { /* its tensors carry llama.cpp's names, not a checkpoint's */
            moe_fail(err, "%s: training starts from a Hugging Face directory, not a GGUF file "
                     "(convert it with 'moe convert' first)", o->init);
            goto done;
        }
        const st_store *S = &src->st;
        for (int i = 0; i < S->n_tensors; i++)
            if ((int)S->tensors[i].type >= DT_COUNT) { /* MXFP4 blocks: no f32 widening here */
                moe_fail(err, "%s: tensor %s: %s; training starts from float weights only",
                         o->init, S->tensors[i].name, S->tensors[i].type == DT_U8 ? "U8"
                         : dtype_name(S->tensors[i].type));
                goto done;
            }
        st_write_tensor *w = calloc((size_t)S->n_tensors, sizeof *w);
        float **bufs = calloc((size_t)S->n_tensors, sizeof *bufs);
        int ok = w && bufs;
        for (int i = 0; ok && i < S->n_tensors; i++) {
            const st_tensor *x = &S->tensors[i];
            bufs[i] = malloc((size_t)x->n_elems * sizeof(float));
            if (!(ok = bufs[i] != NULL)) break;
            mat row = {x->data, x->type, 1, x->n_elems};
            mat_row_f32(bufs[i], &row, 0);
            w[i] = (st_write_tensor){x->name, DT_F32, x->n_dims, {0}, bufs[i]};
            memcpy(w[i].shape, x->shape, sizeof x->shape);
        }
        char path[4200];
        join(path, sizeof path, dir, "model.safetensors");
        if (!ok) moe_fail(err, "out of memory widening %s to f32", o->init);
        else if (!st_write(path, w, S->n_tensors, "{\"format\":\"pt\"}", err)) {
            /* a directory's config.json is carried over, or written from the model's */
            char from[4200];
            struct stat sb;
            join(path, sizeof path, dir, "config.json");
            join(from, sizeof from, o->init, "config.json");
            rc = stat(from, &sb) == 0 && S_ISREG(sb.st_mode)
                     ? ckpt_copy_config_f32(from, path, err)
                     : hf_config_write(&src->cfg, path, "float32", err);
        }
        for (int i = 0; bufs && i < S->n_tensors; i++) free(bufs[i]);
        free(bufs);
        free(w);
        if (rc) goto done;
    } else {
        char *text = NULL;
        size_t len = 0;
        moe_config *cfg = malloc(sizeof *cfg); /* large: not on the stack, not shared */
        if (!cfg) {
            moe_fail(err, "out of memory for the model description");
            goto done;
        }
        int bad = read_file(o->config, 1 << 20, &text, &len, err) ||
                  hf_config_parse(cfg, text, len, o->config, err) || bwd_check_model(cfg, err);
        free(text);
        model_init_opts io = {DT_F32, o->seed, o->init_std, NULL, NULL, NULL, 0, 0};
        if (!bad) bad = model_init_random(cfg, dir, &io, err);
        free(cfg);
        if (bad) goto done;
    }
    /* load it only to write it as a proper checkpoint (state, tokenizer) */
    rc = -1; /* a failure from here on is one (the init branch left rc 0) */
    moe_model *m = NULL;
    if (moe_model_load(&m, dir, err)) goto done;
    if (bwd_check_model(&m->cfg, err)) { /* a grown model: checked as the others were */
        moe_model_free(m);
        goto done;
    }
    train_params P;
    if (train_params_init(&P, m, err)) {
        moe_model_free(m);
        goto done;
    }
    if (freeze_apply(&P, m, t->freeze, t->added, err)) {
        train_params_free(&P);
        moe_model_free(m);
        goto done;
    }
    float *zero = calloc((size_t)P.n_state + 1, sizeof(float));
    char cfg_path[4200], *cfg_text = NULL;
    join(cfg_path, sizeof cfg_path, dir, "config.json");
    if (ckpt_config_f32(cfg_path, &cfg_text, err)) {
        free(zero);
        train_params_free(&P);
        moe_model_free(m);
        goto done;
    }
    ckpt_state st = {0, {0}, {0}, o->batch, o->seq, o->accum, 0, {0}, t->added};
    freeze_format(t->freeze, st.freeze, sizeof st.freeze);
    rng r;
    rng_init(&r, o->seed ^ 0x5eedda7aull);
    rng_save(&r, st.rng);
    rng_init(&r, o->seed ^ 0x6e6f697365ull);
    rng_save(&r, st.noise_rng);
    rc = zero ? ckpt_save(o->out_dir, m, &P, zero, zero, &st, o->tokenizer, cfg_text, t->dir,
                          sizeof t->dir, err)
              : moe_fail(err, "out of memory");
    free(zero);
    free(cfg_text);
    train_params_free(&P);
    moe_model_free(m);
done:
    moe_model_free(src);
    ckpt_remove_dir(dir);
    return rc;
}

static int open_data(trainer *t, moe_err *err) {
    char path[4200];
    join(path, sizeof path, t->o.data_dir, "train.bin");
    if (data_open(&t->train, path, err)) return -1;
    join(path, sizeof path, t->o.data_dir, "val.bin");
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (data_open(&t->val, path, err)) return -1;
        t->have_val = data_n_tokens(&t->val) > (uint64_t)t->o.seq + 1;
    }
    /* every id of both shards now, not at the first evaluation */
    if (data_check_vocab(&t->train, t->m->cfg.vocab, err)) return -1;
    if (t->val.map.data && data_check_vocab(&t->val, t->m->cfg.vocab, err)) return -1;
    if (data_n_tokens(&t->train) < (uint64_t)t->o.seq + 1)
        return moe_fail(err, "%s/train.bin: %llu tokens, fewer than one window of %d", t->o.data_dir,
                        (unsigned long long)data_n_tokens(&t->train), t->o.seq + 1);
    return 0;
}

static int check_opts(const moe_train_opts *o, moe_err *err) {
    if (!o->out_dir || !o->data_dir) return moe_fail(err, "train: an output and a data directory are needed");
    if (!o->resume && !o->init && !o->config && !o->upcycle)
        return moe_fail(err, "train: give a config.json for a fresh model or a model to start from");
    if (o->upcycle && (o->init || o->config || o->upcycle_experts < 1 || o->add_experts))
        return moe_fail(err, "train: upcycling needs E >= 1 experts and no other start (init, "
                             "config, experts to add)");
    if (o->resume && (o->upcycle || o->add_experts))
        return moe_fail(err, "train: a resumed run goes on from its checkpoint: upcycling and "
                             "adding experts only start a run");
    if (o->add_experts < 0 || (o->add_experts > 0 && !o->init) || o->top_k < 0 ||
        !(o->expert_noise >= 0))
        return moe_fail(err, "train: experts are added to an init model (N >= 0); top-k and the "
                             "expert noise must be >= 0");
    if (o->steps < 1 || o->batch < 1 || o->seq < 2 || o->accum < 1 || o->keep < 1)
        return moe_fail(err, "train: steps, batch, accum and keep must be >= 1 and seq >= 2");
    if ((int64_t)o->batch * o->seq > (1 << 22))
        return moe_fail(err, "train: batch x seq = %lld tokens per micro-batch is too many",
                        (long long)o->batch * o->seq);
    if (!(o->lr > 0) || o->min_lr < 0 || o->warmup < 0 || o->weight_decay < 0 || o->clip < 0 ||
        !(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        return moe_fail(err, "train: learning rate, betas, eps, weight decay or clip out of range");
    if (o->aux_coef < 0 || o->z_coef < 0 || o->kl_coef < 0 || o->bias_rate < 0 || !(o->mod_coef >= 0))
        return moe_fail(err, "train: loss coefficients and the bias rate must be >= 0");
    if (o->lora_rank < 0 || o->lora_alpha < 0)
        return moe_fail(err, "train: the LoRA rank and alpha must be >= 0");
    if (o->lora_rank > 0 && !o->init && !o->resume)
        return moe_fail(err, "train: LoRA adapts a model: give it with --init");
    if (o->lora_rank > 0 && (o->freeze || o->upcycle || o->add_experts))
        return moe_fail(err, "train: LoRA trains adapters on a frozen base: not with freeze, "
                             "upcycle or add_experts");
    unsigned bits;
    if (o->lora_rank > 0 && o->lora_targets && lora_parse_targets(o->lora_targets, &bits, err))
        return -1;
    return 0;
}

/* LoRA: adapters on the loaded base (model_dir), its path recorded for
 * peft; resuming, the adapters and their moments of t->dir. */
static int lora_setup(trainer *t, const char *model_dir, moe_err *err) {
    const moe_train_opts *o = &t->o;
    char st_path[4200], base[4096];
    join(st_path, sizeof st_path, model_dir, "model.safetensors");
    if (!o->init || !realpath(o->init, base)) snprintf(base, sizeof base, "%s", o->init ? o->init : "");
    return lora_trainer_new(&t->lora, t->m, st_path, o->lora_rank,
                            o->lora_alpha > 0 ? o->lora_alpha : 2.0 * o->lora_rank,
                            o->lora_targets ? o->lora_targets : "attn,experts", o->seed, base, err) ||
           (o->resume && lora_trainer_resume(t->lora, t->m, t->dir, err));
}

/* A LoRA run keeps its f32 base as OUT/base (the step-0 checkpoint renamed,
 * out of the pruning's way); its checkpoints hold only the adapters. */
static int lora_keep_base(trainer *t, moe_err *err) {
    char base[sizeof t->dir], latest[sizeof t->dir];
    if (join(base, sizeof base, t->o.out_dir, "base") ||
        join(latest, sizeof latest, t->o.out_dir, "latest"))
        return moe_fail(err, "%s: path too long", t->o.out_dir);
    ckpt_remove_dir(base); /* one from a run stopped before its first checkpoint */
    if (rename(t->dir, base) != 0)
        return moe_fail(err, "%s: cannot rename to %s: %s", t->dir, base, strerror(errno));
    unlink(latest);
    memcpy(t->dir, base, sizeof base);
    return 0;
}

/* Where the weights to load are: t->dir, or OUT/base in a LoRA run. */
static int model_dir_of(trainer *t, char *out, size_t n, moe_err *err) {
    char probe[4200];
    struct stat sb;
    join(probe, sizeof probe, t->dir, "adapter_config.json");
    int adapter = stat(probe, &sb) == 0;
    if (adapter && t->o.lora_rank == 0)
        return moe_fail(err, "%s holds a LoRA adapter: resume with the run's --lora-rank", t->dir);
    if (t->o.resume && !adapter && t->o.lora_rank > 0)
        return moe_fail(err, "%s holds no LoRA adapter: resume without --lora-rank", t->dir);
    if (t->o.lora_rank == 0) return snprintf(out, n, "%s", t->dir) < (int)n ? 0 : -1;
    if (join(out, n, t->o.out_dir, "base")) return moe_fail(err, "%s: path too long", t->o.out_dir);
    return 0;
}

static int setup(trainer *t, moe_err *err) {
    const moe_train_opts *o = &t->o;
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        return moe_fail(err, "%s: cannot create: %s", o->out_dir, strerror(errno));
    ckpt_state st;
    char latest[4200];
    join(latest, sizeof latest, o->out_dir, "latest");
    unsigned want = 0;
    if (freeze_parse(o->freeze, &want, err)) return -1;
    t->freeze = want;
    t->added = o->resume ? 0 : o->add_experts;
    if (o->resume) {
        if (!realpath(latest, t->dir))
            return moe_fail(err, "%s: no checkpoint to resume from", latest);
    } else {
        struct stat sb;
        if (lstat(latest, &sb) == 0)
            return moe_fail(err, "%s already holds a run (use --resume, or another --out)", o->out_dir);
        if (make_initial(t, err) || (o->lora_rank > 0 && lora_keep_base(t, err))) return -1;
    }
    char model_dir[sizeof t->dir];
    if (model_dir_of(t, model_dir, sizeof model_dir, err)) return -1;
    if (ckpt_read_state(t->dir, &st, err)) return -1;
    if (o->resume && (st.batch != o->batch || st.seq != o->seq || st.accum != o->accum))
        return moe_fail(err, "%s: was trained with batch %d, seq %d, accum %d; resume with the same",
                        t->dir, st.batch, st.seq, st.accum);
    if (o->resume) { /* the run's own frozen groups, unless asked for the same again */
        unsigned had = 0;
        if (freeze_parse(st.freeze, &had, err)) return moe_fail_prefix(err, "%s", t->dir);
        if (o->freeze && want != had)
            return moe_fail(err, "%s: was trained with --freeze '%s'; resume with the same (or none)",
                            t->dir, st.freeze);
        t->freeze = had;
        t->added = st.added_experts;
    }
    t->step = st.step;
    rng_restore(&t->data_rng, st.rng);

    char cfg_path[4200];
    join(cfg_path, sizeof cfg_path, model_dir, "config.json");
    if (ckpt_config_f32(cfg_path, &t->config, err)) return -1;
    if (moe_model_load(&t->m, model_dir, err) || train_params_init(&t->P, t->m, err) ||
        freeze_apply(&t->P, t->m, t->freeze, t->added, err))
        return -1;
    if (o->lora_rank > 0 && lora_setup(t, model_dir, err)) return -1;
    int N = o->batch * o->seq;
    moe_session_opts so = {.n_ctx = o->seq, .n_threads = o->n_threads, .max_batch = N,
                           .n_seq = o->batch};
    if (moe_session_new(&t->s, t->m, &so, err) ||
        model_acts_enable_keep(t->s, N, o->recompute, err) ||
        bwd_ws_new(&t->ws, t->s, N, err))
        return -1;
    moe_session_set_mode(t->s, MOE_MODE_TRAIN);
    rng_restore(&t->s->noise_rng, st.noise_rng);
    int64_t V = t->m->cfg.vocab;
    t->grads = big_calloc((size_t)t->P.n * sizeof(float));
    size_t n_moments = t->lora ? 1 : (size_t)t->P.n_state; /* LoRA: the adapters' own;
                                                               else the trained tensors' */
    t->am = big_calloc(n_moments * sizeof(float));
    t->av = big_calloc(n_moments * sizeof(float));
    t->logits = big_calloc((size_t)N * (size_t)V * sizeof(float));
    t->win = malloc((size_t)o->batch * (size_t)(o->seq + 1) * sizeof(int32_t));
    t->in = malloc((size_t)N * sizeof(int32_t));
    t->tg = malloc((size_t)N * sizeof(int32_t));
    t->load = calloc((size_t)t->m->cfg.n_layers * (size_t)t->s->e_max, sizeof(int64_t));
    t->entropy_sum = calloc((size_t)t->m->cfg.n_layers, sizeof *t->entropy_sum);
    t->entropy_n = calloc((size_t)t->m->cfg.n_layers, sizeof *t->entropy_n);
    t->score_row = malloc(sizeof *t->score_row * (size_t)(t->s->e_max > 0 ? t->s->e_max : 1));
    if (!t->grads || !t->am || !t->av || !t->logits || !t->win || !t->in || !t->tg || !t->load ||
        !t->entropy_sum || !t->entropy_n || !t->score_row)
        return moe_fail(err, "out of memory for the trainer's buffers");
    if (t->step > 0 && !t->lora && ckpt_load_optimizer(t->dir, &t->P, t->am, t->av, err)) return -1;
    if (open_data(t, err)) return -1;
    char log_path[4200];
    if (o->log_path) snprintf(log_path, sizeof log_path, "%s", o->log_path);
    else join(log_path, sizeof log_path, o->out_dir, "log.jsonl");
    t->log = fopen(log_path, "a");
    if (!t->log) return moe_fail(err, "%s: cannot open the log: %s", log_path, strerror(errno));
    return 0;
}

static void teardown(trainer *t) {
    if (t->log) fclose(t->log);
    data_close(&t->train);
    if (t->have_val || t->val.map.data) data_close(&t->val);
    free(t->grads);
    free(t->am);
    free(t->av);
    free(t->logits);
    free(t->win);
    free(t->in);
    free(t->tg);
    free(t->load);
    free(t->entropy_sum);
    free(t->entropy_n);
    free(t->score_row);
    lora_trainer_free(t->lora);
    bwd_ws_free(t->ws);
    moe_session_free(t->s);
    train_params_free(&t->P);
    moe_model_free(t->m);
    free(t->config);
}

/* ----------------------------------------------------------- statistics */

/* Loads, kept pairs and router entropy of the last recorded forward. */
static void gather_stats(trainer *t) {
    const moe_config *c = &t->m->cfg;
    const train_acts *A = t->s->acts;
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        if (!lc->moe) continue;
        const layer_acts *a = &A->layer[l];
        /* a Mixture-of-Depths layer's router saw only the rows it took */
        int N = lc->mod ? a->mod_n : A->last_tokens;
        int E = lc->n_experts;
        for (int e = 0; e < E; e++)
            t->load[(int64_t)l * t->s->e_max + e] += a->expert_start[e + 1] - a->expert_start[e];
        if (lc->kind == MOE_ROUTE_TOKEN_CHOICE) {
            t->pairs_wanted += (int64_t)N * lc->top_k;
            t->pairs_kept += a->n_pairs;
        }
        if (lc->kind == MOE_ROUTE_HASH) continue;
        float *p = t->score_row;
        for (int n = 0; n < N; n++) {
            /* the router's scores (softmax or sigmoid of the logits, as moe_route_trace
             * reports them), then the one entropy definition of moe_route.h */
            const float *z = a->router_logits + (int64_t)n * E;
            if (lc->score == MOE_SCORE_SIGMOID) {
                for (int e = 0; e < E; e++) p[e] = 1.0f / (1.0f + expf(-z[e]));
            } else {
                float mx = z[0];
                for (int e = 1; e < E; e++) mx = fmaxf(mx, z[e]);
                for (int e = 0; e < E; e++) p[e] = expf(z[e] - mx);
            }
            double h = moe_route_entropy(p, E);
            if (isnan(h)) continue;
            t->entropy_sum[l] += h;
            t->entropy_n[l]++;
        }
    }
}

/* One line of the log; step_s: the step's wall seconds (evaluation and
 * checkpoint included), so that their sum is the run's training time. */
static void write_log(trainer *t, const moe_train_progress *p, double step_s) {
    const moe_config *c = &t->m->cfg;
    FILE *f = t->log;
    fprintf(f, "{\"step\":%lld,\"loss\":%.9g,\"ce\":%.9g,\"aux_loss\":%.9g,\"z_loss\":%.9g,"
               "\"kl_loss\":%.9g,\"lr\":%.9g,\"grad_norm\":%.9g,\"tokens_per_s\":%.1f,"
               "\"tokens\":%lld,\"step_s\":%.4f",
            (long long)p->step, p->loss, p->ce, p->aux, p->z, p->kl, p->lr, p->grad_norm,
            p->tokens_per_s, (long long)p->step * t->o.batch * t->o.seq * t->o.accum, step_s);
    double dropped = t->pairs_wanted ? 1.0 - (double)t->pairs_kept / t->pairs_wanted : 0.0;
    double ent_sum = 0;
    int64_t ent_n = 0;
    for (int l = 0; l < c->n_layers; l++) {
        ent_sum += t->entropy_sum[l];
        ent_n += t->entropy_n[l];
    }
    fprintf(f, ",\"dropped_frac\":%.6f,\"router_entropy\":%.6f,\"layers\":[", dropped,
            ent_n ? ent_sum / (double)ent_n : 0.0);
    int first = 1;
    for (int l = 0; l < c->n_layers; l++) {
        const moe_layer_config *lc = &c->layer[l];
        if (!lc->moe) continue;
        const int64_t *ld = t->load + (int64_t)l * t->s->e_max;
        int E = lc->n_experts;
        fprintf(f, "%s{\"layer\":%d,\"max_violation\":%.6f,\"dead\":%d", first ? "" : ",", l,
                moe_route_max_violation(ld, E), moe_route_dead(ld, E));
        if (t->entropy_n[l])
            fprintf(f, ",\"router_entropy\":%.6f", t->entropy_sum[l] / (double)t->entropy_n[l]);
        fprintf(f, ",\"load\":[");
        for (int e = 0; e < lc->n_experts; e++) fprintf(f, "%s%lld", e ? "," : "", (long long)ld[e]);
        fprintf(f, "]");
        const float *sb = t->m->layers[l].sel_bias; /* after this step's balancing move */
        if (sb) {
            fprintf(f, ",\"sel_bias\":[");
            for (int e = 0; e < E; e++) fprintf(f, "%s%.6g", e ? "," : "", (double)sb[e]);
            fprintf(f, "]");
        }
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "]");
    if (c->mod_capacity > 0)
        fprintf(f, ",\"mod_bce\":%.9g,\"mod_acc\":%.6f,\"mod_frac\":%.6f", p->mod_bce, p->mod_acc,
                p->mod_frac);
    if (p->is_eval) fprintf(f, ",\"val_loss\":%.9g,\"val_ppl\":%.6g", p->val_loss, exp(p->val_loss));
    if (p->is_eval && c->mod_capacity > 0) fprintf(f, ",\"val_loss_topc\":%.9g", p->val_loss_topc);
    fprintf(f, "}\n");
    fflush(f);
}

/* -------------------------------------------------------------- the loop */

/* Validation loss in evaluation mode: dropless and noise-free routing, the
 * noise generator left where training had it, the tape untouched. */
static int evaluate_windows(trainer *t, double *val_loss, moe_err *err) {
    int B = t->o.batch, T = t->o.seq, N = B * T;
    uint64_t windows = data_n_windows(&t->val, T);
    int64_t want = (int64_t)t->o.eval_batches * B;
    if ((uint64_t)want > windows) want = (int64_t)windows;
    double sum = 0;
    int64_t count = 0;
    for (int64_t w0 = 0; w0 < want; w0 += B) {
        int nb = (int)(want - w0 < B ? want - w0 : B);
        for (int b = 0; b < nb; b++) {
            /* spread over the whole shard, not its first (domain's) windows */
            uint64_t k = data_spread_window(&t->val, T, (uint64_t)(w0 + b), (uint64_t)want);
            if (data_window(&t->val, k, T, t->win, err)) return -1;
            memcpy(t->in + b * T, t->win, sizeof(int32_t) * (size_t)T);
            memcpy(t->tg + b * T, t->win + 1, sizeof(int32_t) * (size_t)T);
        }
        if (model_forward_seqs(t->s, t->in, nb, T, t->logits, err)) return -1;
        double s = 0;
        int64_t c = 0;
        if (cross_entropy_pool(t->s->pool, NULL, t->logits, t->tg, (int64_t)nb * T, t->m->cfg.vocab, 1.0f,
                               &s, &c, err))
            return -1;
        sum += s;
        count += c;
    }
    (void)N;
    *val_loss = count ? sum / count : NAN;
    return 0;
}

/* The validation loss as inference runs the model; with Mixture-of-Depths
 * layers also with training's top-C choice (val_topc, else NAN). */
static int evaluate(trainer *t, double *val_loss, double *val_topc, moe_err *err) {
    moe_session_set_mode(t->s, MOE_MODE_EVAL);
    int rc = evaluate_windows(t, val_loss, err);
    *val_topc = NAN;
    if (!rc && t->m->cfg.mod_capacity > 0) {
        t->s->mod_topc = 1;
        rc = evaluate_windows(t, val_topc, err);
        t->s->mod_topc = 0;
    }
    moe_session_set_mode(t->s, MOE_MODE_TRAIN);
    return rc;
}

static int train_step(trainer *t, moe_train_progress *p, moe_err *err) {
    const moe_train_opts *o = &t->o;
    int B = o->batch, T = o->seq, N = B * T;
    const moe_config *c = &t->m->cfg;
    /* t->grads is all zero here: calloc'ed, then cleared by each update */
    memset(t->load, 0, (size_t)c->n_layers * (size_t)t->s->e_max * sizeof(int64_t));
    t->pairs_wanted = t->pairs_kept = 0;
    memset(t->entropy_sum, 0, sizeof *t->entropy_sum * (size_t)c->n_layers);
    memset(t->entropy_n, 0, sizeof *t->entropy_n * (size_t)c->n_layers);
    loss_coefs coefs = {o->aux_coef, o->z_coef, o->kl_coef, o->mod_coef};
    double ce = 0, aux = 0, z = 0, kl = 0, mbce = 0, macc = 0, mfrac = 0;
    double t0 = clock_now();
    for (int a = 0; a < o->accum; a++) {
        if (data_random_batch(&t->train, &t->data_rng, B, T, t->win, NULL, err)) return -1;
        for (int b = 0; b < B; b++) {
            memcpy(t->in + b * T, t->win + b * (T + 1), sizeof(int32_t) * (size_t)T);
            memcpy(t->tg + b * T, t->win + b * (T + 1) + 1, sizeof(int32_t) * (size_t)T);
        }
        if (model_forward_seqs(t->s, t->in, B, T, t->logits, err)) return -1;
        loss_parts lp;
        bwd_ws_set_grads_zero(t->ws, a == 0); /* the grads are all zero before the first */
        if (model_backward(t->s, t->ws, &(train_grads){t->P.base, t->grads, t->P.n}, t->tg, B, T,
                           t->logits, 1.0f / ((float)N * o->accum), &coefs, 1.0f / o->accum, &lp, err))
            return -1;
        ce += lp.ce_sum / (double)lp.ce_count / o->accum;
        aux += lp.aux / o->accum;
        z += lp.z / o->accum;
        kl += lp.kl / o->accum;
        mbce += lp.mod_bce / o->accum;
        macc += lp.mod_acc / o->accum;
        mfrac += lp.mod_frac / o->accum;
        gather_stats(t);
    }
    double loss = ce + o->aux_coef * aux + o->z_coef * z + o->kl_coef * kl + o->mod_coef * mbce;
    if (!isfinite(loss))
        return moe_fail(err, "step %lld: the loss is %g (ce %g, aux %g, z %g): stopped before the "
                             "update; lower the learning rate or check the data",
                        (long long)t->step + 1, loss, ce, aux, z);
    lr_schedule sch = {o->lr, o->min_lr, o->warmup, o->steps};
    double lr = lr_at(&sch, t->step), gn = 0;
    adamw_opts ao = {o->beta1, o->beta2, o->eps, o->weight_decay, o->clip};
    if (t->lora) { /* the base frozen: only the adapters move */
        train_grads G = {t->P.base, t->grads, t->P.n};
        if (lora_trainer_step(t->lora, t->s->pool, &G, t->step + 1, lr, &ao, &gn, err))
            return moe_fail_prefix(err, "step %lld: stopped before the update", (long long)t->step + 1);
    } else {
        if (adamw_step_clear(t->s->pool, t->P.base, t->grads, t->am, t->av, t->P.n, t->P.tensors,
                             t->P.n_tensors, t->step + 1, lr, &ao, &gn, err))
            return moe_fail_prefix(err, "step %lld: stopped before the update", (long long)t->step + 1);
        train_params_sync(&t->P, t->m); /* fused expert tensors: the forward's copies */
        if (t->P.n_bias && o->bias_rate > 0 && !(t->freeze & (FREEZE_ROUTER | FREEZE_OLD_ROUTER)))
            train_bias_update(t->s, o->bias_rate);
    }
    t->step++;
    double dt = clock_now() - t0;
    *p = (moe_train_progress){t->step, o->steps, loss, ce, aux, z, kl, lr, gn,
                              (double)N * o->accum / (dt > 0 ? dt : 1e-9), 0, 0, NAN, NULL,
                              mbce, macc, mfrac, NAN};
    return 0;
}

static int save(trainer *t, double loss, char *saved, size_t n, moe_err *err) {
    ckpt_state st = {t->step, {0}, {0}, t->o.batch, t->o.seq, t->o.accum, loss, {0}, t->added};
    freeze_format(t->freeze, st.freeze, sizeof st.freeze);
    rng_save(&t->data_rng, st.rng);
    rng_save(&t->s->noise_rng, st.noise_rng);
    if (t->lora ? ckpt_save_with(t->o.out_dir, &st, t->o.tokenizer, lora_trainer_write, t->lora,
                                 saved, n, err)
                : ckpt_save(t->o.out_dir, t->m, &t->P, t->am, t->av, &st, t->o.tokenizer, t->config,
                            saved, n, err))
        return -1;
    ckpt_prune(t->o.out_dir, t->o.keep, t->step);
    return 0;
}

int moe_train(const moe_train_opts *opts, moe_err *err) {
    if (check_opts(opts, err)) return -1;
    trainer *t = calloc(1, sizeof *t);
    if (!t) return moe_fail(err, "out of memory");
    t->o = *opts;
    int rc = -1;
    if (setup(t, err)) goto done;
    const moe_train_opts *o = &t->o;
    double ema = 0, loss = NAN;
    int64_t done_here = 0;
    char saved[4300];
    while (t->step < o->steps) {
        double t0 = clock_now();
        moe_train_progress p;
        if (train_step(t, &p, err)) goto done;
        loss = p.loss;
        done_here++;
        int last = t->step == o->steps || (o->stop_after > 0 && done_here >= o->stop_after);
        if (t->have_val && ((o->eval_every > 0 && t->step % o->eval_every == 0) || t->step == o->steps)) {
            if (evaluate(t, &p.val_loss, &p.val_loss_topc, err)) goto done;
            p.is_eval = 1;
        }
        if ((o->save_every > 0 && t->step % o->save_every == 0) || last) {
            if (save(t, loss, saved, sizeof saved, err)) goto done;
            p.saved = saved;
        }
        double dt = clock_now() - t0;
        ema = ema > 0 ? 0.9 * ema + 0.1 * dt : dt;
        p.eta_s = ema * (double)(o->steps - t->step);
        write_log(t, &p, dt);
        if (o->progress) o->progress(o->user, &p);
        if (last) break;
    }
    rc = 0;
done:
    teardown(t);
    free(t);
    return rc;
}
