/*
 * attention.c - causal self-attention with RoPE, GQA, optional q/k RMSNorm
 * (per head or over the whole projection), optional q/k/v clipping, sliding
 * window and a KV cache. Reads s->xn [T][D], writes s->tmp [T][D].
 *
 * The scores, softmax and weighted values run per block of up to QBLOCK
 * consecutive tokens of one sequence and one head (kernels/attn.h: two
 * register-tiled GEMMs on AVX-512 for blocks of 4+ queries; decode's single
 * query takes the per-query reference). When the session records (training)
 * the raw projections and the attention output are written straight into
 * the tape and the rotated copies live in the session's buffers.
 *
 * Order of operations (as transformers does it):
 *   q,k,v = proj(xn) (+ bias)
 *   qwen3_moe: q,k = rmsnorm per head;  olmoe: q,k = rmsnorm over all heads
 *   olmoe: q,k,v clamped to [-clip_qkv, clip_qkv]
 *   q,k = rope(q,k, pos);   k,v appended to the cache
 *   out_h = softmax(q_h . K_g^T / sqrt(Dh)) V_g    with g = h / (H/G)
 *   gpt_oss: the head's sink logit joins the softmax's denominator
 *   qwen3_next: q_proj gives [query | gate] per head and the output is scaled
 *   by sigmoid(gate) (attn_out_gate); RoPE turns the first rope_dim dims of
 *   each head (partial rotary); q/k norms are zero-centred (norm_offset,
 *   folded into the weights at load)
 * The window (sliding_window) applies on layers without full_attention;
 * RoPE is the default one or YaRN (rope_kind, over the rotated dims), whose
 * cos and sin carry the attention factor. Latent attention (kv_lora_rank)
 * runs in attention_mla.c with the same RoPE tables.
 */
#include "model/model.h"

#include <math.h>
#include <string.h>

#include "kernels/attn.h"

typedef struct prep_ctx {
    moe_session *s;
    const layer_w *lw;
    int layer;
    const float *q_raw, *k_raw, *v_raw; /* the projections (the tape's, when recording) */
    float *att;                         /* [T][H*Dh] output (the tape's, when recording) */
    int T;
    int fail;                           /* set when a block's scratch could not be had */
} prep_ctx;

/* Queries per attention work item: a block of this many consecutive tokens
 * of one head (cut further where the sequence or position breaks). */
#define QBLOCK ATTN_QUERY_BLOCK

/* YaRN cos/sin of position pos, as transformers' _compute_yarn_parameters
 * and GptOssRotaryEmbedding compute them in float32: inv_freq blends the
 * interpolated (1 / (factor * base^(2i/Dh))) and the extrapolated
 * (1 / base^(2i/Dh)) frequencies with a linear ramp over the correction
 * range [low, high] (from beta_fast, beta_slow and the original context,
 * computed in double; floored/ceiled when truncate); cos and sin are then
 * multiplied by the attention factor. */
static void yarn_table(float *cos_t, float *sin_t, int pos, int Dh, const moe_config *c) {
    const double pi = 3.14159265358979323846, base = c->rope_theta, dim = Dh;
    double low = dim * log(c->rope_orig_max_pos / (c->rope_beta_fast * 2 * pi)) / (2 * log(base));
    double high = dim * log(c->rope_orig_max_pos / (c->rope_beta_slow * 2 * pi)) / (2 * log(base));
    if (c->rope_truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > dim - 1) high = dim - 1;
    if (low == high) high += 0.001;
    float flow = (float)low, span = (float)(high - low), factor = c->rope_factor;
    for (int i = 0; i < Dh / 2; i++) {
        float pf = powf(c->rope_theta, (float)(2 * i) / (float)Dh);
        float extra = 1.0f / pf, inter = 1.0f / (factor * pf);
        float ramp = ((float)i - flow) / span;
        ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
        float ef = 1.0f - ramp;
        float inv = inter * (1.0f - ef) + extra * ef;
        float a = (float)pos * inv;
        cos_t[i] = cosf(a) * c->rope_attn_factor;
        sin_t[i] = sinf(a) * c->rope_attn_factor;
    }
}

static void clamp_vec(float *x, int64_t n, float c) {
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < -c ? -c : x[i] > c ? c : x[i];
}

static void add_bias(float *x, const float *b, int64_t n) {
    if (b)
        for (int64_t i = 0; i < n; i++) x[i] += b[i];
}

/* Per token: bias, q/k norm, clip, rope, store k and v in the cache. */
static void prep_rows(void *ctx, int64_t t0, int64_t t1, int tid) {
    prep_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = p->lw;
    int64_t H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim, half = Dh / 2;
    int rd = c->rope_dim ? c->rope_dim : (int)Dh;
    for (int64_t t = t0; t < t1; t++) {
        float *q = s->q + t * H * Dh, *k = s->k + t * G * Dh, *v = s->v + t * G * Dh;
        if (c->attn_out_gate) { /* per head [query Dh | gate Dh] */
            const float *qf = s->q_full + t * 2 * H * Dh;
            for (int64_t h = 0; h < H; h++) {
                memcpy(q + h * Dh, qf + 2 * h * Dh, sizeof(float) * (size_t)Dh);
                memcpy(s->q_gate + t * H * Dh + h * Dh, qf + 2 * h * Dh + Dh,
                       sizeof(float) * (size_t)Dh);
            }
        } else if (p->q_raw != s->q) { /* recording: the raw projections stay in the tape */
            memcpy(q, p->q_raw + t * H * Dh, sizeof(float) * (size_t)(H * Dh));
            memcpy(k, p->k_raw + t * G * Dh, sizeof(float) * (size_t)(G * Dh));
            memcpy(v, p->v_raw + t * G * Dh, sizeof(float) * (size_t)(G * Dh));
        }
        add_bias(q, lw->bq, H * Dh);
        add_bias(k, lw->bk, G * Dh);
        add_bias(v, lw->bv, G * Dh);
        if (c->qk_norm == MOE_QKNORM_HEAD) {
            for (int64_t h = 0; h < H; h++) rmsnorm(q + h * Dh, q + h * Dh, lw->q_norm, (int)Dh, c->norm_eps);
            for (int64_t g = 0; g < G; g++) rmsnorm(k + g * Dh, k + g * Dh, lw->k_norm, (int)Dh, c->norm_eps);
        } else if (c->qk_norm == MOE_QKNORM_FULL) {
            rmsnorm(q, q, lw->q_norm, (int)(H * Dh), c->norm_eps);
            rmsnorm(k, k, lw->k_norm, (int)(G * Dh), c->norm_eps);
        }
        if (c->clip_qkv > 0) {
            clamp_vec(q, H * Dh, c->clip_qkv);
            clamp_vec(k, G * Dh, c->clip_qkv);
            clamp_vec(v, G * Dh, c->clip_qkv);
        }
        const float *cs = s->rope_cos + t * half, *sn = s->rope_sin + t * half;
        for (int64_t h = 0; h < H; h++) rope_apply(q + h * Dh, cs, sn, rd);
        for (int64_t g = 0; g < G; g++) rope_apply(k + g * Dh, cs, sn, rd);
        int64_t KD = G * Dh;
        int64_t at = ((int64_t)s->kv_slot[p->layer] * s->n_seq + s->tok_seq[t]) * s->n_ctx + s->kv_pos[t];
        float *kc = s->k_cache + at * KD;
        float *vc = s->v_cache + at * KD;
        for (int64_t i = 0; i < KD; i++) {
            kc[i] = k[i];
            vc[i] = v[i];
        }
    }
}

/* One item: QBLOCK consecutive tokens x one query head, split into runs of
 * one sequence at consecutive positions; each run attends to the cached
 * keys of its sequence (this chunk's already stored by prep_rows). A
 * token's cache row is s->kv_pos: its position, or in a Mixture-of-Depths
 * layer its index among the tokens the layer took (mod.c). */
static void attend(void *ctx, int64_t i0, int64_t i1, int tid) {
    prep_ctx *p = ctx;
    moe_session *s = p->s;
    const moe_config *c = &s->m->cfg;
    int64_t H = c->n_heads, G = c->n_kv_heads, Dh = c->head_dim, KD = G * Dh, HD = H * Dh;
    float scale = c->attn_scale > 0 ? c->attn_scale : 1.0f / sqrtf((float)Dh);
    int window = c->layer[p->layer].full_attention ? 0 : c->sliding_window;
    const float *sinks = s->m->layers[p->layer].sinks;
    for (int64_t i = i0; i < i1; i++) {
        int64_t h = i % H, g = h / (H / G);
        int64_t t0 = i / H * QBLOCK, t1 = t0 + QBLOCK < p->T ? t0 + QBLOCK : p->T;
        for (int64_t a = t0, b; a < t1; a = b) {
            for (b = a + 1; b < t1 && s->tok_seq[b] == s->tok_seq[a] &&
                            s->kv_pos[b] == s->kv_pos[a] + (b - a);
                 b++) {
            }
            int64_t pos = s->kv_pos[a], last = pos + (b - a - 1);
            int64_t lo = 0;
            if (window > 0 && pos - window + 1 > 0) lo = pos - window + 1;
            int64_t seq0 = ((int64_t)s->kv_slot[p->layer] * s->n_seq + s->tok_seq[a]) * s->n_ctx;
            const float *K = s->k_cache + (seq0 + lo) * KD + g * Dh;
            const float *V = s->v_cache + (seq0 + lo) * KD + g * Dh;
            if (attn_block(s->pool, tid, p->att + a * HD + h * Dh, HD, s->q + a * HD + h * Dh, HD, K, V, KD,
                           (int)(b - a), (int)(last - lo + 1), (int)Dh, (int)Dh, pos, lo,
                           window, scale, sinks ? sinks + h : NULL))
                p->fail = 1;
        }
    }
}

void rope_tables(moe_session *s, int T) {
    const moe_config *c = &s->m->cfg;
    int64_t half = c->head_dim / 2;
    int rd = c->rope_dim ? c->rope_dim : c->head_dim;
    for (int i = 0; i < T; i++) {
        if (c->rope_kind == MOE_ROPE_YARN)
            yarn_table(s->rope_cos + i * half, s->rope_sin + i * half, s->tok_pos[i], rd, c);
        else
            rope_table(s->rope_cos + i * half, s->rope_sin + i * half, s->tok_pos[i], rd,
                       c->rope_theta);
    }
}

void attention_block(moe_session *s, int layer, int T) {
    const moe_config *c = &s->m->cfg;
    const layer_w *lw = &s->m->layers[layer];
    int64_t H = c->n_heads, Dh = c->head_dim, D = c->dim;
    /* recording: the projections and the attention output are written
     * straight into the tape (nothing copied afterwards) */
    train_acts *A = session_tape(s);
    layer_acts *a = A ? &A->layer[layer] : NULL;
    float *q = a ? a->q : s->q, *k = a ? a->k : s->k, *v = a ? a->v : s->v;
    float *att = a ? a->att : s->att;

    if (c->kv_lora_rank) { /* latent attention: attention_mla.c */
        mla_attention_block(s, layer, T);
        return;
    }
    mm_task t[3] = {{&lw->wq, s->xn, c->attn_out_gate ? s->q_full : q, T},
                    {&lw->wk, s->xn, k, T}, {&lw->wv, s->xn, v, T}};
    matmul_grouped(s->pool, t, 3);
    prep_ctx p = {s, lw, layer, q, k, v, att, T, 0};
    pool_for(s->pool, T, 1, prep_rows, &p);
    pool_for(s->pool, (T + QBLOCK - 1) / QBLOCK * H, 1, attend, &p);
    if (p.fail) /* no scratch for a block: visible, never silently wrong */
        for (int64_t i = 0; i < (int64_t)T * H * Dh; i++) att[i] = __builtin_nanf("");
    if (c->attn_out_gate)
        for (int64_t i = 0; i < (int64_t)T * H * Dh; i++)
            att[i] *= 1.0f / (1.0f + expf(-s->q_gate[i]));
    matmul(s->pool, s->tmp, att, &lw->wo, T);
    if (lw->bo)
        for (int i = 0; i < T; i++) add_bias(s->tmp + (int64_t)i * D, lw->bo, D);
}
