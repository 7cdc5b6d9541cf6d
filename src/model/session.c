/*
 * session.c - the run state of n_seq sequences: the KV cache (attention
 * layers), the conv and recurrent states (Gated DeltaNet layers) and every
 * scratch buffer the forward pass needs, sized once for max_batch tokens so
 * that moe_forward never allocates.
 */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "kernels/quant.h"
#include "moe_bench.h"

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
    int64_t Dh = cfg->head_dim, C = s->n_ctx, S = s->n_seq;
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
    int64_t La = 0; /* layers with attention: only they have a KV cache */
    for (int i = 0; i < cfg->n_layers; i++) La += !cfg->layer[i].linear_attn;
    s->k_cache = carve(c, La * S * C * kv_k_floats(cfg)); /* first: the start of the allocation */
    s->v_cache = kv_v_floats(cfg) ? carve(c, La * S * C * kv_v_floats(cfg)) : NULL;
    if (cfg->kv_lora_rank) {
        int64_t QA = (int64_t)cfg->kv_lora_rank + cfg->qk_rope_dim;
        s->mla_qa = carve(c, T * imax(1, cfg->q_lora_rank));
        s->mla_kv = carve(c, T * QA);
        s->mla_q = carve(c, T * H * QA);
        s->mla_lat = carve(c, T * H * QA);
        s->mla_row = carve(c, (int64_t)s->n_threads * mla_row_len(cfg));
        int64_t HW = imax(imax(cfg->qk_nope_dim, cfg->kv_lora_rank), cfg->v_head_dim);
        s->mla_hx = carve(c, T * H * HW);
        s->mla_hy = carve(c, T * H * HW);
    }
    int64_t Ll = 0, Hk = cfg->lin_k_heads, Hv = cfg->lin_v_heads, Dk = cfg->lin_k_dim,
            Dv = cfg->lin_v_dim, Cc = 2 * Hk * Dk + Hv * Dv;
    for (int i = 0; i < cfg->n_layers; i++) Ll += cfg->layer[i].linear_attn;
    if (Ll) {
        s->lin_conv_state = carve(c, Ll * S * Cc * (cfg->lin_conv - 1));
        s->lin_state = carve(c, Ll * S * Hv * Dk * Dv);
        s->lin_qkvz = carve(c, T * (2 * Hk * Dk + 2 * Hv * Dv));
        s->lin_ba = carve(c, T * 2 * Hv);
        s->lin_mix = carve(c, T * Cc);
        s->lin_z = carve(c, T * Hv * Dv);
        s->lin_g = carve(c, T * Hv);
        s->lin_beta = carve(c, T * Hv);
        s->lin_out = carve(c, T * Hv * Dv);
    }
    if (cfg->attn_out_gate) {
        s->q_full = carve(c, T * 2 * H * Dh);
        s->q_gate = carve(c, T * H * Dh);
    }
    s->x = carve(c, T * D);
    s->xn = carve(c, T * D);
    s->q = carve(c, T * H * Dh);
    s->k = carve(c, T * G * Dh);
    s->v = carve(c, T * G * Dh);
    s->att = carve(c, T * H * imax(Dh, cfg->v_head_dim)); /* latent attention: [T][H*Dv] */
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

/* The largest quantized-activation scratch any product of the model can
 * ask for with T tokens per chunk: attention's three projections, the
 * experts' gate/up and down as grouped products, the dense and shared
 * FFNs, the head. */
static size_t quant_scratch_bound(const moe_model *m, int64_t T) {
    const moe_config *c = &m->cfg;
    size_t best = 64;
    const mat *one[16];
    for (int l = 0; l < c->n_layers; l++) {
        const layer_w *lw = &m->layers[l];
        const moe_layer_config *lc = &c->layer[l];
        int n1 = 0;
        one[n1++] = &lw->wq, one[n1++] = &lw->wk, one[n1++] = &lw->wv, one[n1++] = &lw->wo;
        one[n1++] = lc->moe ? &lw->shared.gate : &lw->dense.gate;
        one[n1++] = lc->moe ? &lw->shared.up : &lw->dense.up;
        one[n1++] = lc->moe ? &lw->shared.down : &lw->dense.down;
        one[n1++] = &lw->lin_qkvz, one[n1++] = &lw->lin_ba, one[n1++] = &lw->lin_out;
        one[n1++] = &lw->lin_qkv, one[n1++] = &lw->lin_z;
        one[n1++] = &lw->wq_a, one[n1++] = &lw->wq_b, one[n1++] = &lw->wkv_a;
        for (int i = 0; i < n1; i++)
            if (one[i]->data && dtype_is_quant(one[i]->type)) {
                size_t b = qmatmul_scratch_bound(dtype_to_ggml(one[i]->type), 3 * T, one[i]->cols, 3);
                if (b > best) best = b;
            }
        if (!lc->moe || !lw->experts) continue;
        int64_t E = lc->n_experts, P = T * (lc->kind == MOE_ROUTE_EXPERT_CHOICE ? E : lc->top_k);
        for (int64_t e = 0; e < E; e++) {
            const mat *w[3] = {&lw->experts[e].gate, &lw->experts[e].up, &lw->experts[e].down};
            for (int i = 0; i < 3; i++)
                for (int a = -1; a < m->n_expert_alt_types; a++) {
                    int t = a < 0 ? dtype_to_ggml(w[i]->type) : m->expert_alt_types[a];
                    /* the matrix's own type may be a packed one, which no id maps back to */
                    const dtype d = a < 0 ? w[i]->type : dtype_from_ggml(t);
                    if (!w[i]->data || !dtype_is_quant(d) || w[i]->cols % dtype_block_elems(d)) continue;
                    size_t b = qmatmul_scratch_bound(t, 2 * P + 2 * T, w[i]->cols, (int)(2 * E)); /* + the shared x (idx) */
                    if (b > best) best = b;
                }
        }
    }
    if (dtype_is_quant(m->lm_head.type)) {
        size_t b = qmatmul_scratch_bound(dtype_to_ggml(m->lm_head.type), T, m->lm_head.cols, 1);
        if (b > best) best = b;
    }
    return best;
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
    if (o.max_batch == 0) o.max_batch = 512;
    for (int i = 0; i < cfg->n_layers; i++) {
        const moe_layer_config *lc = &cfg->layer[i];
        if (!lc->moe) continue;
        if (lc->n_experts > 1024 || lc->top_k > lc->n_experts || lc->top_k < 1)
            return moe_fail(err, "layer %d: %d experts, top-%d: need 1 <= top_k <= experts <= 1024",
                            i, lc->n_experts, lc->top_k);
    }
    if (o.max_batch > (int64_t)o.n_ctx * o.n_seq) o.max_batch = o.n_ctx * o.n_seq;
    const kern_cfg *kern = o.kernels ? kernels_named(o.kernels) : kernels_default();
    if (!kern) {
        int known = 0;
        for (int i = 0; i < ISA_COUNT; i++) known |= strcmp(o.kernels, isa_name((isa)i)) == 0;
        return moe_fail(err, "session: kernels \"%.32s\": %s", o.kernels,
                        known ? "this CPU lacks it" : "unknown (scalar, avx2, avx512)");
    }

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

    int64_t T = s->max_batch, Kmax = 1, P, S = s->n_seq;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layer[i].moe && cfg->layer[i].top_k > Kmax) Kmax = cfg->layer[i].top_k;
    P = T * imax(Kmax, s->e_max);
    s->sel_expert = malloc((size_t)(T * Kmax) * sizeof(int));
    s->g_max = 1;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layer[i].moe && cfg->layer[i].n_group > s->g_max) s->g_max = cfg->layer[i].n_group;
    s->group_kept = calloc((size_t)(T * s->g_max), 1);
    s->expert_count = malloc((size_t)(s->e_max + 1) * sizeof(int));
    s->pair_token = malloc((size_t)P * sizeof(int));
    s->tok_seq = malloc((size_t)T * sizeof(int));
    s->tok_pos = malloc((size_t)T * sizeof(int));
    s->tok_id = malloc((size_t)T * sizeof(int32_t));
    /* two per expert, or one per head (latent attention's absorbed products) */
    s->tasks = malloc((size_t)imax(2 * s->e_max, cfg->n_heads) * sizeof(mm_task));
    s->task_idx = malloc((size_t)imax(2 * s->e_max, cfg->n_heads) * sizeof(mm_idx));
    s->mla_views = malloc((size_t)cfg->n_heads * sizeof(mat));
    s->mla_expand_min = MLA_EXPAND_MIN;
    s->mla_expand_floats = MLA_EXPAND_FLOATS;
    s->counts = calloc((size_t)cfg->n_layers * (size_t)s->e_max, sizeof(int64_t));
    s->seq_pos = calloc((size_t)S, sizeof(int));
    s->seq_next = calloc((size_t)S, sizeof(int));
    s->seq_last = calloc((size_t)S, sizeof(int));
    s->out_rows = malloc((size_t)T * sizeof(int));
    s->lin_slot = malloc((size_t)cfg->n_layers * sizeof(int));
    s->kv_slot = malloc((size_t)cfg->n_layers * sizeof(int));
    s->lin_stale = calloc((size_t)S, 1);
    s->lin_tok = malloc((size_t)T * sizeof(int));
    s->lin_run = malloc((size_t)(T + 1) * sizeof(int));
    s->lin_cnt = malloc((size_t)S * sizeof(int));
    for (int i = 0, nl = 0, na = 0; s->lin_slot && s->kv_slot && i < cfg->n_layers; i++) {
        s->lin_slot[i] = cfg->layer[i].linear_attn ? nl++ : -1;
        s->kv_slot[i] = cfg->layer[i].linear_attn ? -1 : na++;
    }
    s->remote = calloc((size_t)s->e_max, 1);
    s->expert_view = calloc((size_t)s->e_max, sizeof(ffn_w));
    s->in_wave = calloc((size_t)s->e_max, 1);
    s->wave_gather = calloc((size_t)s->e_max, 1);
    s->pred_mark = calloc((size_t)s->e_max, 1);
    s->wave_todo = malloc((size_t)(2 * s->e_max) * sizeof(int));
    s->pred_logits = malloc((size_t)(PREDICT_MAX_T * s->e_max) * sizeof(float));
    s->kv_pos = s->tok_pos; /* a Mixture-of-Depths layer points it elsewhere (mod.c) */
    int mod_fail = mod_session_alloc(s);
    s->pool = pool_create(o.n_threads);
    pool_set_kern(s->pool, kern); /* every kernel this session runs reads it there */
    size_t per_thread = kernels_thread_scratch(ATTN_QUERY_BLOCK, o.n_ctx,
                                               (int)imax(cfg->head_dim, kv_k_floats(cfg)));
    if (linear_attn_thread_scratch(cfg) > per_thread) per_thread = linear_attn_thread_scratch(cfg);
    if (s->pool && pool_reserve(s->pool, per_thread, quant_scratch_bound(m, T))) {
        pool_free(s->pool);
        s->pool = NULL;
    }
    if (!s->sel_expert || !s->group_kept || !s->expert_count || !s->pair_token || !s->tasks || !s->task_idx || !s->mla_views || !s->counts ||
        !s->tok_seq || !s->tok_pos || !s->tok_id || !s->seq_pos || !s->seq_next || !s->seq_last ||
        !s->out_rows || !s->lin_slot || !s->kv_slot || !s->lin_stale || !s->lin_tok || !s->lin_run || !s->lin_cnt || !s->remote ||
        !s->expert_view || !s->in_wave || !s->wave_gather || !s->pred_mark || !s->wave_todo || !s->pred_logits ||
        !s->pool || mod_fail) {
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
    free(s->group_kept);
    free(s->expert_count);
    free(s->pair_token);
    free(s->tok_seq);
    free(s->tok_pos);
    free(s->tok_id);
    free(s->tasks);
    free(s->task_idx);
    free(s->mla_views);
    free(s->mla_x);
    free(s->counts);
    free(s->seq_pos);
    free(s->seq_next);
    free(s->seq_last);
    free(s->out_rows);
    free(s->lin_slot);
    free(s->kv_slot);
    free(s->lin_stale);
    free(s->lin_tok);
    free(s->lin_run);
    free(s->lin_cnt);
    free(s->remote);
    free(s->expert_view);
    free(s->in_wave);
    free(s->wave_gather);
    free(s->pred_mark);
    free(s->wave_todo);
    free(s->pred_logits);
    mod_session_free(s);
    if (s->pool) pool_free(s->pool);
    model_acts_free(s->acts);
    free(s);
}

void moe_session_reset(moe_session *s) {
    memset(s->seq_pos, 0, (size_t)s->n_seq * sizeof(int));
    memset(s->lin_stale, 0, (size_t)s->n_seq);
    memset(s->counts, 0, (size_t)s->m->cfg.n_layers * (size_t)s->e_max * sizeof(int64_t));
}

int moe_session_pos(const moe_session *s) { return s->seq_pos[0]; }
int moe_session_ctx(const moe_session *s) { return s->n_ctx; }
int moe_session_n_seq(const moe_session *s) { return s->n_seq; }
const int64_t *moe_session_expert_counts(const moe_session *s) { return s->counts; }
int moe_session_counts_stride(const moe_session *s) { return s->e_max; }

void moe_session_set_mode(moe_session *s, moe_mode mode) { s->mode = mode; }
moe_mode moe_session_mode(const moe_session *s) { return s->mode; }

/* ------------------------------------------------------------ sequences */

int moe_seq_pos(const moe_session *s, int seq) {
    return seq >= 0 && seq < s->n_seq ? s->seq_pos[seq] : -1;
}

int moe_seq_rm(moe_session *s, int seq, int p0, int p1, moe_err *err) {
    if (seq >= s->n_seq)
        return moe_fail(err, "seq_rm: sequence %d out of range (the session holds %d)", seq, s->n_seq);
    if (p0 < 0) p0 = 0;
    int first = seq < 0 ? 0 : seq, end = seq < 0 ? s->n_seq : seq + 1;
    for (int q = first; q < end; q++) {
        int n = s->seq_pos[q];
        if (p1 >= 0 && p1 < n && p0 < p1)
            return moe_fail(err, "seq_rm: positions [%d, %d) of sequence %d lie before its end "
                                 "(%d): only a range that reaches the end can be forgotten",
                            p0, p1, q, n);
        /* a recurrent state holds the whole prefix: it can be forgotten
         * whole (its next token at position 0 starts afresh), not cut */
        if (s->lin_state && p0 > 0 && p0 < n)
            return moe_fail(err, "seq_rm: sequence %d: positions from %d on cannot be forgotten: "
                                 "the model's linear-attention layers keep a recurrent state "
                                 "that cannot forget a range (forget the whole sequence, p0 = 0)",
                            q, p0);
    }
    for (int q = first; q < end; q++)
        if (p0 < s->seq_pos[q]) s->seq_pos[q] = p0;
    return 0;
}

int moe_seq_cp(moe_session *s, int src, int dst, moe_err *err) {
    if (src < 0 || src >= s->n_seq || dst < 0 || dst >= s->n_seq)
        return moe_fail(err, "seq_cp: sequences %d -> %d out of range (the session holds %d)", src,
                        dst, s->n_seq);
    if (src == dst) return 0;
    const moe_config *c = &s->m->cfg;
    size_t KD = (size_t)kv_k_floats(c), VD = (size_t)kv_v_floats(c), n = (size_t)s->seq_pos[src];
    for (int l = 0; l < c->n_layers; l++) {
        int kv = s->kv_slot[l];
        if (kv >= 0) {
            size_t from = ((size_t)kv * (size_t)s->n_seq + (size_t)src) * (size_t)s->n_ctx;
            size_t to = ((size_t)kv * (size_t)s->n_seq + (size_t)dst) * (size_t)s->n_ctx;
            memcpy(s->k_cache + to * KD, s->k_cache + from * KD, n * KD * sizeof(float));
            if (VD) memcpy(s->v_cache + to * VD, s->v_cache + from * VD, n * VD * sizeof(float));
        }
        int slot = s->lin_slot[l];
        if (slot < 0) continue; /* a Gated DeltaNet layer: its conv and recurrent states */
        size_t Hk = (size_t)c->lin_k_heads, Hv = (size_t)c->lin_v_heads, Dk = (size_t)c->lin_k_dim,
               Dv = (size_t)c->lin_v_dim, S = (size_t)s->n_seq;
        size_t cs = (2 * Hk * Dk + Hv * Dv) * (size_t)(c->lin_conv - 1), rs = Hv * Dk * Dv;
        memcpy(s->lin_conv_state + ((size_t)slot * S + (size_t)dst) * cs,
               s->lin_conv_state + ((size_t)slot * S + (size_t)src) * cs, cs * sizeof(float));
        memcpy(s->lin_state + ((size_t)slot * S + (size_t)dst) * rs,
               s->lin_state + ((size_t)slot * S + (size_t)src) * rs, rs * sizeof(float));
    }
    mod_seq_cp(s, src, dst);
    s->seq_pos[dst] = s->seq_pos[src];
    s->lin_stale[dst] = s->lin_stale[src];
    return 0;
}

/* ---------------------------------------------------------------- hooks */

void moe_session_set_route_observer(moe_session *s, moe_route_fn fn, void *user) {
    s->route_fn = fn;
    s->route_user = user;
}

void moe_session_set_expert_provider(moe_session *s, const moe_expert_provider *p) {
    s->provider = p && p->acquire ? *p : (moe_expert_provider){0};
}

void moe_session_set_dispatch(moe_session *s, moe_dispatch_fn fn, void *user) {
    s->dispatch_fn = fn;
    s->dispatch_user = user;
}

/* ------------------------------------------------- what the session runs */

const char *moe_session_kernels_isa(const moe_session *s) { return isa_name(kern_of(s->pool)->isa); }
const char *moe_session_quant_path(const moe_session *s) { return quant_path_name(kern_of(s->pool)); }
int moe_session_quant_amx(const moe_session *s) { return kern_of(s->pool)->amx; }
