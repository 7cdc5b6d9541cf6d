/*
 * session.c - one sequence's run state: the KV cache and every scratch
 * buffer the forward pass needs, sized once for max_batch tokens so that
 * moe_forward never allocates.
 */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* All float buffers come from one allocation; this walks it. */
typedef struct carver {
    float *base;
    size_t used, cap; /* in floats */
} carver;

static float *carve(carver *c, int64_t n) {
    size_t k = ((size_t)n + 15) & ~(size_t)15; /* keep 64-byte alignment */
    float *p = c->base ? c->base + c->used : NULL;
    c->used += k;
    return p;
}

static void carve_all(moe_session *s, carver *c) {
    const moe_config *cfg = &s->m->cfg;
    int64_t T = s->max_batch, D = cfg->dim, H = cfg->n_heads, G = cfg->n_kv_heads;
    int64_t Dh = cfg->head_dim, L = cfg->n_layers, C = s->n_ctx, S = s->n_seq;
    int64_t Fmax = 1, Emax = 1, Kmax = 1, FEmax = 1;
    for (int i = 0; i < cfg->n_layers; i++) {
        const moe_layer_config *lc = &cfg->layer[i];
        if (lc->moe) {
            Emax = imax(Emax, lc->n_experts);
            Kmax = imax(Kmax, lc->top_k);
            FEmax = imax(FEmax, lc->expert_dim);
            Fmax = imax(Fmax, lc->shared_dim);
        } else {
            Fmax = imax(Fmax, lc->ffn_dim);
        }
    }
    /* Expert choice may give one token to every expert. */
    int64_t P = T * imax(Kmax, Emax);
    s->k_cache = carve(c, L * S * C * G * Dh);
    s->v_cache = carve(c, L * S * C * G * Dh);
    s->x = carve(c, T * D);
    s->xn = carve(c, T * D);
    s->q = carve(c, T * H * Dh);
    s->k = carve(c, T * G * Dh);
    s->v = carve(c, T * G * Dh);
    s->att = carve(c, T * H * Dh);
    s->tmp = carve(c, T * D);
    s->scores = carve(c, (int64_t)s->n_threads * C);
    s->rope_cos = carve(c, T * (Dh / 2));
    s->rope_sin = carve(c, T * (Dh / 2));
    s->h_gate = carve(c, T * Fmax);
    s->h_up = carve(c, T * Fmax);
    s->gate_logit = carve(c, T);
    s->shared_out = carve(c, T * D);
    s->router_logits = carve(c, T * Emax);
    s->noise_raw = carve(c, T * Emax);
    s->noise_eps = carve(c, T * Emax);
    s->sel_weight = carve(c, T * Kmax);
    s->pair_weight = carve(c, P);
    s->xe = carve(c, P * D);
    s->ge = carve(c, P * FEmax);
    s->ue = carve(c, P * FEmax);
    s->ye = carve(c, P * D);
    s->logit_row = carve(c, cfg->vocab);
    s->e_max = (int)Emax;
}

int moe_session_new(moe_session **out, moe_model *m, const moe_session_opts *opts,
                    moe_err *err) {
    *out = NULL;
    const moe_config *cfg = &m->cfg;
    moe_session_opts o = opts ? *opts : (moe_session_opts){0};
    if (o.n_ctx < 0 || o.n_threads < 0 || o.max_batch < 0 || o.n_seq < 0)
        return moe_fail(err, "session: negative option (n_ctx %d, threads %d, batch %d, seqs %d)",
                        o.n_ctx, o.n_threads, o.max_batch, o.n_seq);
    if (o.n_seq == 0) o.n_seq = 1;
    if (o.n_seq > 4096) return moe_fail(err, "session: %d sequences is too many", o.n_seq);
    if (o.n_ctx == 0) o.n_ctx = cfg->max_pos > 0 && cfg->max_pos < 4096 ? cfg->max_pos : 4096;
    if (o.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.n_threads = n < 1 ? 1 : n > MOE_MAX_THREADS ? MOE_MAX_THREADS : (int)n;
    }
    if (o.n_threads > MOE_MAX_THREADS)
        return moe_fail(err, "session: %d threads is too many (at most %d)", o.n_threads,
                        MOE_MAX_THREADS);
    if (o.max_batch == 0) o.max_batch = 256;
    for (int i = 0; i < cfg->n_layers; i++) {
        const moe_layer_config *lc = &cfg->layer[i];
        if (!lc->moe) continue;
        if (lc->n_experts > 1024 || lc->top_k > lc->n_experts || lc->top_k < 1)
            return moe_fail(err, "layer %d: %d experts, top-%d: need 1 <= top_k <= experts <= 1024",
                            i, lc->n_experts, lc->top_k);
    }
    if (o.max_batch > (int64_t)o.n_ctx * o.n_seq) o.max_batch = o.n_ctx * o.n_seq;

    moe_session *s = calloc(1, sizeof *s);
    if (!s) return moe_fail(err, "session: out of memory");
    s->m = m;
    s->n_ctx = o.n_ctx;
    s->n_seq = o.n_seq;
    s->max_batch = o.max_batch;
    s->n_threads = o.n_threads;
    rng_init(&s->noise_rng, 0x6e6f697365ull);

    carver c = {0};
    carve_all(s, &c); /* measure */
    size_t bytes = c.used * sizeof(float);
    c.base = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!c.base) {
        free(s);
        return moe_fail(err, "session: cannot allocate %.1f MiB for the KV cache and scratch "
                             "(n_ctx %d, batch %d): lower --ctx",
                        bytes / 1048576.0, o.n_ctx, o.max_batch);
    }
    c.used = 0;
    carve_all(s, &c);

    int64_t T = s->max_batch, Kmax = 1, P;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layer[i].moe && cfg->layer[i].top_k > Kmax) Kmax = cfg->layer[i].top_k;
    P = T * imax(Kmax, s->e_max);
    s->sel_expert = malloc((size_t)(T * Kmax) * sizeof(int));
    s->expert_count = malloc((size_t)(s->e_max + 1) * sizeof(int));
    s->pair_token = malloc((size_t)P * sizeof(int));
    s->tok_seq = malloc((size_t)T * sizeof(int));
    s->tok_pos = malloc((size_t)T * sizeof(int));
    s->tok_id = malloc((size_t)T * sizeof(int32_t));
    s->tasks = malloc((size_t)(2 * s->e_max) * sizeof(mm_task));
    s->counts = calloc((size_t)cfg->n_layers * (size_t)s->e_max, sizeof(int64_t));
    s->pool = pool_create(o.n_threads);
    if (!s->sel_expert || !s->expert_count || !s->pair_token || !s->tasks || !s->counts ||
        !s->tok_seq || !s->tok_pos || !s->tok_id || !s->pool) {
        free(c.base);
        s->k_cache = NULL;
        moe_session_free(s);
        return moe_fail(err, "session: out of memory (or cannot start %d threads)", o.n_threads);
    }
    *out = s;
    return 0;
}

void moe_session_free(moe_session *s) {
    if (!s) return;
    free(s->k_cache); /* the start of the one float allocation */
    free(s->sel_expert);
    free(s->expert_count);
    free(s->pair_token);
    free(s->tok_seq);
    free(s->tok_pos);
    free(s->tok_id);
    free(s->tasks);
    free(s->counts);
    if (s->pool) pool_free(s->pool);
    model_acts_free(s->acts);
    free(s);
}

void moe_session_reset(moe_session *s) {
    s->pos = 0;
    memset(s->counts, 0, (size_t)s->m->cfg.n_layers * (size_t)s->e_max * sizeof(int64_t));
}

int moe_session_pos(const moe_session *s) { return s->pos; }
int moe_session_ctx(const moe_session *s) { return s->n_ctx; }
const int64_t *moe_session_expert_counts(const moe_session *s) { return s->counts; }
int moe_session_counts_stride(const moe_session *s) { return s->e_max; }
