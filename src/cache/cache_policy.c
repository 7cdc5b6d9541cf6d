/*
 * cache_policy.c - which slot gives way when an expert needs one.
 *
 * Candidates come in tiers, and a lower tier is always taken first:
 *   1. a FREE slot (no expert lost);
 *   2. a READY slot nobody holds, not asked for by the running layer, not a
 *      prefetched expert whose layer has not run yet;
 *   3. such a prefetched expert (a demand may take it, a prediction not);
 *   4. a READY slot the running layer asked for but does not hold (only an
 *      acquire that would otherwise wait forever takes it).
 * Held, QUEUED and READING slots are never candidates. Within a tier the
 * policy's largest eviction key goes:
 *
 *   LRU      the expert acquired longest ago.
 *   LFU      the expert acquired fewest times in the whole run (counts kept
 *            across evictions, so a popular expert read again keeps its
 *            standing); ties to the least recent.
 *   HISTORY  the expert whose next use is estimated farthest away, in layer
 *            steps (one MoE layer run = one step), Belady's rule with the
 *            future estimated from routing history:
 *              next(l, e) = d(l) + L_moe * (1 - p) / p
 *            d(l): MoE layers still to run before layer l comes again (0 for
 *            the next one, L_moe - 1 for the one just run); p: the chance
 *            that a forward chunk of layer l uses e, its uses decayed by
 *            gamma = 1 - 1/64 per chunk of that layer over the chunks so
 *            decayed, with a prior of top_k / E worth one chunk. Decode
 *            sweeps the layers in order, so an LRU smaller than one token's
 *            experts evicts exactly what the next layers need (the loop
 *            pattern); this keeps the layers coming next and, within a
 *            layer, the experts its tokens keep choosing.
 */
#include "cache/cache.h"

#include <math.h>

#include "model/model.h"

#define HIST_GAMMA (1.0f - 1.0f / 64.0f)
#define HIST_TABLE 2048 /* gamma^k for k below this; past it the weight is ~1e-14 */

static float gamma_table[HIST_TABLE];
static pthread_once_t gamma_once = PTHREAD_ONCE_INIT;

static void gamma_init(void) {
    float g = 1.0f;
    for (int i = 0; i < HIST_TABLE; i++, g *= HIST_GAMMA) gamma_table[i] = g;
}

static float gamma_pow(int32_t k) {
    pthread_once(&gamma_once, gamma_init);
    return k < 0 ? 1.0f : k >= HIST_TABLE ? 0.0f : gamma_table[k];
}

double cache_policy_p(const moe_cache *c, const cache_expert *x) {
    int l = x->layer;
    const moe_layer_config *lc = &c->m->cfg.layer[l];
    float uses = x->hist_c * gamma_pow(c->hist_t[l] - x->hist_t);
    double prior = (double)lc->top_k / (double)lc->n_experts;
    double p = ((double)uses + prior) / ((double)c->hist_n[l] + 1.0);
    return p > 1.0 ? 1.0 : p < 1e-6 ? 1e-6 : p;
}

static double history_key(const moe_cache *c, const cache_expert *x) {
    int l = x->layer, L = c->n_moe, d = 0;
    if (c->cur_layer >= 0 && c->layer_base[c->cur_layer] >= 0)
        d = ((c->layer_moe[l] - c->layer_moe[c->cur_layer] - 1) % L + L) % L;
    double p = cache_policy_p(c, x);
    return (double)d + (double)L * (1.0 - p) / p;
}

static double evict_key(const moe_cache *c, const cache_expert *x) {
    switch (c->policy) {
    case MOE_CACHE_LFU:
        return -(double)x->uses - (double)x->last_use / (double)(c->clock + 1);
    case MOE_CACHE_HISTORY:
        return history_key(c, x);
    case MOE_CACHE_LRU:
    default:
        return -(double)x->last_use;
    }
}

int cache_victim(moe_cache *c, int max_tier) {
    int best = -1, best_tier = 5;
    double best_key = 0;
    for (int i = 0; i < c->n_slots; i++) {
        const cache_slot *s = &c->slots[i];
        if (s->state == SLOT_FREE) return i;
        if (s->state != SLOT_READY || s->held) continue;
        int tier = s->wanted ? 4 : s->for_prediction ? 3 : 2;
        if (tier > max_tier || tier > best_tier) continue;
        double k = evict_key(c, &c->ex[s->expert]);
        if (best < 0 || tier < best_tier || k > best_key) {
            best = i;
            best_tier = tier;
            best_key = k;
        }
    }
    return best;
}

void cache_policy_use(moe_cache *c, cache_expert *x) {
    x->last_use = ++c->clock;
    x->uses++;
    int32_t t = c->hist_t[x->layer];
    x->hist_c = x->hist_c * gamma_pow(t - x->hist_t) + 1.0f;
    x->hist_t = t;
}

void cache_policy_layer(moe_cache *c, int layer) {
    c->cur_layer = layer;
    c->hist_t[layer]++;
    c->hist_n[layer] = c->hist_n[layer] * HIST_GAMMA + 1.0f;
}
