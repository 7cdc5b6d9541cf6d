/*
 * test_route_groups.c - the group choices of group-limited routing as the
 * route observer reports them (moe_route_info.group) and as
 * moe_route_data_run counts them: each token keeps exactly topk_group
 * groups, the ones with the best group scores recomputed here from the
 * reported scores and the model's selection bias (sum of the best two per
 * group), and every chosen expert lies in a kept group; layers without
 * groups report none; the per-group counts over a shard add up.
 */
#include "test.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

typedef struct seen {
    const moe_model *m;
    int calls, tokens, grouped;
} seen;

static void on_route(void *user, const moe_route_info *r) {
    seen *s = user;
    const moe_layer_config *lc = &s->m->cfg.layer[r->layer];
    const float *bias = s->m->layers[r->layer].sel_bias;
    s->calls++;
    if (lc->group == MOE_GROUP_NONE) {
        CHECK(r->n_group == 0 && r->group == NULL);
        return;
    }
    s->grouped++;
    int G = r->n_group, n = r->E / G;
    CHECK_EQ_INT(G, lc->n_group);
    for (int t = 0; t < r->T && !test_failed_now; t++) {
        const uint8_t *kept = r->group + (int64_t)t * G;
        double gs[64];
        int nk = 0;
        for (int g = 0; g < G; g++) {
            double a = -INFINITY, b = -INFINITY;
            for (int i = 0; i < n; i++) {
                double v = r->score[(int64_t)t * r->E + g * n + i] + (bias ? bias[g * n + i] : 0);
                if (v > a) b = a, a = v;
                else if (v > b) b = v;
            }
            gs[g] = lc->group == MOE_GROUP_MAX ? a : a + b;
            nk += kept[g];
        }
        CHECK_EQ_INT(nk, lc->topk_group);
        /* every kept group scores at least as well as every dropped one */
        for (int g = 0; g < G; g++)
            for (int h = 0; h < G; h++)
                if (kept[g] && !kept[h])
                    CHECK_MSG(gs[g] >= gs[h], "layer %d token %d: kept group %d (%g) below "
                              "dropped %d (%g)", r->layer, r->t0 + t, g, gs[g], h, gs[h]);
        for (int j = 0; j < r->K; j++)
            CHECK_MSG(kept[r->expert[t * r->K + j] / n], "layer %d token %d: expert %d of a "
                      "dropped group", r->layer, r->t0 + t, r->expert[t * r->K + j]);
        s->tokens++;
    }
}

static void check_trace(const char *variant, int want_grouped_layers) {
    moe_model *m = test_load_variant(variant);
    if (!m) return;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 48, .n_threads = 2, .max_batch = 16};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)((i * 37 + 5) % moe_model_config(m)->vocab);
    seen sn = {m, 0, 0, 0};
    CHECK_MSG(moe_route_trace(s, ids, 40, on_route, &sn, &err) == 0, "%s", err.msg);
    CHECK_MSG(sn.grouped == want_grouped_layers * 3, "%s: %d grouped layer calls", variant,
              sn.grouped); /* 40 tokens in chunks of 16: 3 calls per MoE layer */
    CHECK(sn.tokens == want_grouped_layers * 40);
    moe_session_free(s);
    moe_model_free(m);
}

TEST(route_groups_deepseek_v3) { check_trace("deepseek_v3_base", 2); } /* sum of best two + bias */
TEST(route_groups_deepseek_v2) { check_trace("deepseek_v2_base", 2); } /* best expert */
TEST(route_groups_none) { check_trace("glm4_moe_legacy", 0); }

TEST(route_groups_data_counts) {
    moe_model *m = test_load_variant("deepseek_v3_base");
    if (!m) return;
    char shard[1024];
    snprintf(shard, sizeof shard, "%s/groups.bin", test_tmpdir());
    uint64_t n = 600;
    uint32_t ids[600];
    for (uint64_t i = 0; i < n; i++) ids[i] = (uint32_t)((i * 37 + i / 300 * 11) % 128);
    uint64_t ends[2] = {300, 600};
    test_write_shard(shard, ids, n, 2, 128, ends, 2);
    moe_route_data_opts o = {shard, 0, 64, 0, 2};
    moe_route_data *d = NULL;
    moe_err err = {{0}};
    CHECK_MSG(moe_route_data_run(m, &o, &d, &err) == 0, "%s", err.msg);
    if (d) {
        CHECK_EQ_INT(d->n_layers, 2);
        for (int i = 0; i < d->n_layers; i++) {
            const moe_route_layer *l = &d->layer[i];
            CHECK(l->G == 4 && l->TG == 2 && l->group_counts && l->domain_group_counts);
            int64_t sum = 0, dsum = 0;
            for (int g = 0; g < l->G; g++) sum += l->group_counts[g];
            for (int k = 0; k < d->n_domains * l->G; k++) dsum += l->domain_group_counts[k];
            CHECK_EQ_INT(sum, d->tokens * l->TG);
            CHECK_EQ_INT(dsum, sum);
            CHECK(l->group_mi_bits >= 0 && l->group_mi_bits <= 1.0 + 1e-9); /* log2(min(2, 4)) */
        }
        moe_route_data_free(d);
    }
    moe_model_free(m);
}
