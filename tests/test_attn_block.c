/*
 * test_attn_block.c - attn_block (src/kernels/attn.h), the forward's
 * attention core: the per-query reference against a plain double
 * computation, and every ISA's result (the AVX-512 block kernel where the
 * CPU has it) against the reference: head dims 16..1024 (and 80, 8: not a
 * multiple of 16 / too small for the fast path), query blocks of 1..70 rows
 * (partial row tiles), keys from 1 to 300 (partial 16/64-key blocks),
 * queries after a cached prefix, sliding windows, strided rows as in the
 * KV cache, rows that see nothing, a sink logit (gpt_oss) larger and
 * smaller than the scores, and values narrower than the keys.
 */
#include <stdlib.h>

#include "kernels/attn.h"
#include "kernels/kernels.h"
#include "kern_pool.h"
#include "test.h"

static uint32_t rng_next(uint32_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static float rng_f(uint32_t *s) { return (float)(rng_next(s) >> 8) / 8388608.0f - 1.0f; }

/* The definition in double: o_i = softmax(q_i . k_j * scale) v over the
 * visible j; with a sink, its exp joins the denominator only. */
static void attn_double(double *o, const float *q, int64_t qs, const float *k, const float *v,
                        int64_t kvs, int nq, int nk, int Dh, int Dv, int64_t qpos0, int64_t kpos0,
                        int window, float scale, const float *sink) {
    for (int i = 0; i < nq; i++) {
        double *oi = o + (int64_t)i * Dv, mx = -INFINITY, sum = 0;
        int seen = 0;
        for (int d = 0; d < Dv; d++) oi[d] = 0;
        int64_t p = qpos0 + i;
        for (int j = 0; j < nk; j++) {
            int64_t kp = kpos0 + j;
            if (kp > p || (window > 0 && p - kp >= window)) continue;
            double s = 0;
            for (int d = 0; d < Dh; d++) s += (double)q[i * qs + d] * k[j * kvs + d];
            mx = fmax(mx, s * scale);
            seen = 1;
        }
        if (sink && seen) {
            mx = fmax(mx, *sink);
            sum = exp(*sink - mx);
        }
        for (int j = 0; j < nk; j++) {
            int64_t kp = kpos0 + j;
            if (kp > p || (window > 0 && p - kp >= window)) continue;
            double s = 0;
            for (int d = 0; d < Dh; d++) s += (double)q[i * qs + d] * k[j * kvs + d];
            double e = exp(s * scale - mx);
            sum += e;
            for (int d = 0; d < Dv; d++) oi[d] += e * v[j * kvs + d];
        }
        for (int d = 0; d < Dv && sum > 0; d++) oi[d] /= sum;
    }
}

typedef struct acase {
    int nq, nk, Dh, window;
    int64_t qpos0, kpos0;
    float sink; /* 0: none */
    int Dv;     /* 0: Dh */
} acase;

TEST(attn_block_matches_reference) {
    static const acase cases[] = {
        {1, 1, 64, 0, 0, 0, 0, 0},     {4, 4, 64, 0, 0, 0, 0, 0},      {64, 64, 64, 0, 0, 0, 0, 0},
        {64, 256, 64, 0, 192, 0, 0, 0}, {70, 300, 128, 0, 230, 0, 0, 0}, {13, 29, 16, 0, 16, 0, 0, 0},
        {6, 17, 32, 0, 11, 0, 0, 0},   {7, 100, 256, 0, 93, 0, 0, 0},   {50, 120, 48, 16, 70, 0, 0, 0},
        {33, 60, 64, 8, 100, 73, 0, 0}, {9, 9, 80, 0, 0, 0, 0, 0},      {5, 12, 8, 0, 7, 0, 0, 0},
        {40, 40, 64, 1, 0, 0, 0, 0},   {20, 5, 64, 0, 0, 0, 0, 0}, /* later queries see all 5 keys */
        {10, 10, 64, 0, 0, 3, 0, 0}, /* the first 3 queries see no key */
        {1, 1, 64, 0, 0, 0, 3.0f, 0}, {64, 64, 64, 0, 0, 0, 2.5f, 0}, /* sinks: larger than the scores */
        {70, 300, 128, 0, 230, 0, -1.5f, 0}, {50, 120, 48, 16, 70, 0, 0.75f, 0},
        {33, 60, 64, 8, 100, 73, 9.0f, 0}, {9, 9, 80, 0, 0, 0, -4.0f, 0}, {10, 10, 64, 0, 0, 3, 1.0f, 0},
        /* latent attention: keys of kv_lora_rank + rope dims (512 + 64; 512 + 64 + 16) */
        {64, 200, 576, 0, 136, 0, 0, 0}, {7, 33, 592, 0, 26, 0, 0, 0}, {20, 5, 1024, 0, 0, 0, 0, 0},
        /* several 256-key chunks of P V, with and without a window */
        {64, 700, 576, 0, 636, 0, 0, 0}, {40, 900, 64, 100, 860, 0, 0, 0}, {30, 600, 128, 0, 570, 0, 1.5f, 0},
        /* values narrower than keys: latent attention's heads expanded (192 / 128),
         * the absorbed form's latent (576 / 512), not a multiple of 16 (ref only) */
        {64, 300, 192, 0, 236, 0, 0, 128}, {9, 20, 192, 0, 11, 0, 0, 16}, {64, 700, 576, 0, 636, 0, 0, 512},
        {33, 60, 64, 8, 100, 73, 9.0f, 48}, {12, 12, 32, 0, 0, 0, 0, 20},
    };
    pool *ps[ISA_COUNT];
    for (int s = 0; s < ISA_COUNT; s++) ps[s] = kern_pool(1, (isa)s);
    uint32_t seed = 77;
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int ci = 0; ci < nc; ci++) {
        const acase *a = &cases[ci];
        int Dv = a->Dv ? a->Dv : a->Dh;
        int64_t qs = (int64_t)a->Dh * 3 + 5, kvs = (int64_t)a->Dh * 2 + 3, os = (int64_t)Dv + 7;
        float *q = malloc(sizeof(float) * (size_t)(qs * a->nq));
        float *k = malloc(sizeof(float) * (size_t)(kvs * a->nk));
        float *v = malloc(sizeof(float) * (size_t)(kvs * a->nk));
        float *ref = malloc(sizeof(float) * (size_t)(os * a->nq));
        float *out = malloc(sizeof(float) * (size_t)(os * a->nq));
        double *ex = malloc(sizeof(double) * (size_t)(Dv * a->nq));
        for (int64_t i = 0; i < qs * a->nq; i++) q[i] = rng_f(&seed) * 2;
        for (int64_t i = 0; i < kvs * a->nk; i++) k[i] = rng_f(&seed) * 2, v[i] = rng_f(&seed);
        float scale = 1.0f / sqrtf((float)a->Dh);
        const float *sink = a->sink != 0 ? &a->sink : NULL;
        for (int64_t i = 0; i < os * a->nq; i++) ref[i] = 12345.0f;
        CHECK_EQ_INT(attn_block_ref(ps[ISA_SCALAR], 0, ref, os, q, qs, k, v, kvs, a->nq, a->nk, a->Dh, Dv, a->qpos0,
                                    a->kpos0, a->window, scale, sink), 0);
        attn_double(ex, q, qs, k, v, kvs, a->nq, a->nk, a->Dh, Dv, a->qpos0, a->kpos0, a->window, scale,
                    sink);
        int bad = 0;
        for (int i = 0; i < a->nq; i++)
            for (int d = 0; d < Dv; d++)
                bad += fabs(ref[i * os + d] - ex[i * Dv + d]) > 1e-5;
        CHECK_MSG(bad == 0, "case %d: reference vs double: %d off", ci, bad);
        for (int s = 0; s < ISA_COUNT; s++) {
            if (!ps[s]) continue;
            for (int64_t i = 0; i < os * a->nq; i++) out[i] = 12345.0f;
            CHECK_EQ_INT(attn_block(ps[s], 0, out, os, q, qs, k, v, kvs, a->nq, a->nk, a->Dh, Dv, a->qpos0,
                                    a->kpos0, a->window, scale, sink), 0);
            bad = 0;
            for (int i = 0; i < a->nq; i++) {
                for (int d = 0; d < Dv; d++)
                    bad += !(fabs(out[i * os + d] - ref[i * os + d]) <= 2e-6);
                for (int d = Dv; d < os; d++) bad += out[i * os + d] != 12345.0f; /* untouched */
            }
            CHECK_MSG(bad == 0, "case %d (nq %d nk %d Dh %d Dv %d window %d sink %g) %s: %d off", ci,
                      a->nq, a->nk, a->Dh, Dv, a->window, (double)a->sink, isa_name((isa)s), bad);
        }
        free(q);
        free(k);
        free(v);
        free(ref);
        free(out);
        free(ex);
    }
    for (int s = 0; s < ISA_COUNT; s++) pool_free(ps[s]);
}
