/*
 * test_route_stats.c - the routing statistics of include/moe_route.h against
 * hand-computed cases (the training log and `moe route` / `moe report` all
 * print these functions' values), and moe_route_data_run over a shard of
 * two domains back to back: with the default settings its windows reach
 * both domains, and its tables add up.
 */
#include "test.h"
#include "test_util.h"

#include <math.h>
#include <stdlib.h>

#include "moe_route.h"

TEST(route_stat_max_violation_and_dead) {
    int64_t even[4] = {5, 5, 5, 5};
    CHECK_NEAR(moe_route_max_violation(even, 4), 0.0, 1e-12);
    CHECK_EQ_INT(moe_route_dead(even, 4), 0);
    /* total 8, mean 2, max 5: 5 / 2 - 1 */
    int64_t skew[4] = {5, 3, 0, 0};
    CHECK_NEAR(moe_route_max_violation(skew, 4), 1.5, 1e-12);
    CHECK_EQ_INT(moe_route_dead(skew, 4), 2);
    /* one expert takes all: E - 1 */
    int64_t one[8] = {0, 0, 0, 7, 0, 0, 0, 0};
    CHECK_NEAR(moe_route_max_violation(one, 8), 7.0, 1e-12);
    CHECK_EQ_INT(moe_route_dead(one, 8), 7);
    int64_t none[3] = {0, 0, 0};
    CHECK_NEAR(moe_route_max_violation(none, 3), 0.0, 0);
    CHECK_EQ_INT(moe_route_dead(none, 3), 3);
}

TEST(route_stat_entropy) {
    /* softmax scores {1/2, 1/4, 1/4}: 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2 */
    float p[3] = {0.5f, 0.25f, 0.25f};
    CHECK_NEAR(moe_route_entropy(p, 3), 1.5 * log(2.0), 1e-7);
    /* sigmoid scores are normalized first: {0.8, 0.4, 0.4} is the same distribution */
    float sg[3] = {0.8f, 0.4f, 0.4f};
    CHECK_NEAR(moe_route_entropy(sg, 3), 1.5 * log(2.0), 1e-7);
    float uni[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_NEAR(moe_route_entropy(uni, 8), log(8.0), 1e-7);
    float sure[4] = {0, 1, 0, 0};
    CHECK_NEAR(moe_route_entropy(sure, 4), 0.0, 1e-12);
    float zero[2] = {0, 0};
    CHECK(isnan(moe_route_entropy(zero, 2)));
}

/* A shard of two domains of n_half tokens each, ids by position. */
static void two_domain_shard(char *path, size_t size, uint64_t n_half, uint32_t vocab) {
    snprintf(path, size, "%s/two.bin", test_tmpdir());
    uint64_t n = 2 * n_half;
    uint32_t *ids = malloc(sizeof *ids * n);
    for (uint64_t i = 0; i < n; i++) ids[i] = (uint32_t)((i * 37 + i / n_half * 11) % vocab);
    uint64_t ends[2] = {n_half, n};
    test_write_shard(path, ids, n, 2, vocab, ends, 2);
    free(ids);
}

TEST(route_data_windows_reach_every_domain) {
    char dir[512], shard[1024];
    snprintf(dir, sizeof dir, "%s/models/mixtral_base", test_fixtures());
    moe_err err = {{0}};
    moe_model *m = NULL;
    CHECK_MSG(moe_model_load(&m, dir, &err) == 0, "%s", err.msg);
    if (!m) return;
    /* each domain longer than the default token count: a prefix sees only the first */
    uint64_t half = MOE_ROUTE_DATA_TOKENS + 4000;
    two_domain_shard(shard, sizeof shard, half, 128);
    moe_route_data_opts o = {shard, MOE_ROUTE_DATA_TOKENS, 0, 3, 2};
    moe_route_data *d = NULL;
    CHECK_MSG(moe_route_data_run(m, &o, &d, &err) == 0, "%s", err.msg);
    if (!d) {
        moe_model_free(m);
        return;
    }
    CHECK_EQ_INT(d->tokens, MOE_ROUTE_DATA_TOKENS);
    CHECK_EQ_INT(d->seq, 256); /* min(256, the model's 256 positions) */
    CHECK_EQ_INT(d->windows, MOE_ROUTE_DATA_TOKENS / 256);
    CHECK_EQ_INT(d->n_domains, 2);
    CHECK(!strcmp(d->domain_name[0], "dom0") && !strcmp(d->domain_name[1], "dom1"));
    CHECK_EQ_INT(d->domain_tokens[0] + d->domain_tokens[1], d->tokens);
    /* in proportion to the domains' sizes (equal), within two windows */
    CHECK_MSG(llabs(d->domain_tokens[0] - d->domain_tokens[1]) <= 512, "domain tokens %lld, %lld",
              (long long)d->domain_tokens[0], (long long)d->domain_tokens[1]);
    CHECK_EQ_INT(d->n_layers, 2);
    for (int i = 0; i < d->n_layers; i++) {
        const moe_route_layer *l = &d->layer[i];
        CHECK_EQ_INT(l->pairs, d->tokens * l->K);
        int64_t sum = 0, dsum[2] = {0, 0};
        for (int e = 0; e < l->E; e++) {
            sum += l->counts[e];
            for (int k = 0; k < 2; k++) dsum[k] += l->domain_counts[k * l->E + e];
        }
        CHECK_EQ_INT(sum, l->pairs);
        CHECK_EQ_INT(dsum[0], d->domain_tokens[0] * l->K);
        CHECK_EQ_INT(dsum[1], d->domain_tokens[1] * l->K);
        CHECK_NEAR(l->max_violation, moe_route_max_violation(l->counts, l->E), 0);
        CHECK_EQ_INT(l->dead, moe_route_dead(l->counts, l->E));
        CHECK_NEAR(l->mi_bits, moe_route_mutual_info(l->domain_counts, 2, l->E), 0);
        CHECK(l->entropy >= 0 && l->entropy <= log((double)l->E) + 1e-9);
        for (int e = 0; e < l->E; e++) /* most frequent first */
            for (int b = 1; b < d->top; b++)
                CHECK(l->top_count[e * d->top + b] <= l->top_count[e * d->top + b - 1]);
    }
    moe_route_data_free(d);

    /* 0 = the whole shard, in order, the last window shorter */
    o.max_tokens = 0;
    o.seq = 200;
    o.top = 0;
    CHECK_MSG(moe_route_data_run(m, &o, &d, &err) == 0, "%s", err.msg);
    if (d) {
        CHECK_EQ_INT(d->tokens, 2 * half);
        CHECK_EQ_INT(d->windows, (2 * half + 199) / 200);
        CHECK_EQ_INT(d->domain_tokens[0], half);
        CHECK_EQ_INT(d->domain_tokens[1], half);
        moe_route_data_free(d);
    }
    /* longer than the positions: refused */
    o.seq = 257;
    CHECK(moe_route_data_run(m, &o, &d, &err) == -1 && d == NULL);
    CHECK_STR_CONTAINS(err.msg, "256 positions");
    moe_model_free(m);
}
