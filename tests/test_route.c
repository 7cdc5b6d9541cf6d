/*
 * test_route.c - include/moe_route.h: the routing trace reports every token
 * once per MoE layer (never a dense one), with chunk offsets, the same
 * choices whatever the chunking, counts that agree with the session's own
 * statistics and weights that agree with the scores; the hook is removed
 * afterwards; mutual information of known tables.
 */
#include "test.h"

#include <stdlib.h>

#include "model/model.h"
#include "moe_route.h"

#define N_TOK 21

typedef struct tally {
    const moe_config *c;
    int seen[MOE_MAX_LAYERS][N_TOK]; /* times each (layer, token) was reported */
    int expert[MOE_MAX_LAYERS][N_TOK][8];
    float weight[MOE_MAX_LAYERS][N_TOK][8];
    int64_t count[MOE_MAX_LAYERS][64];
    int bad;                         /* a report that broke a rule */
    int last_layer, last_t0;         /* order: layers ascending within a chunk */
} tally;

static void on_route(void *user, const moe_route_info *r) {
    tally *t = user;
    const moe_layer_config *lc = &t->c->layer[r->layer];
    if (!lc->moe || r->K != lc->top_k || r->E != lc->n_experts || r->K > 8 || r->E > 64 ||
        r->t0 < 0 || r->t0 + r->T > N_TOK)
        t->bad++;
    if (r->t0 == t->last_t0 && r->layer <= t->last_layer) t->bad++;
    if (r->t0 < t->last_t0) t->bad++;
    t->last_t0 = r->t0;
    t->last_layer = r->layer;
    for (int i = 0; i < r->T && !t->bad; i++) {
        int tok = r->t0 + i;
        t->seen[r->layer][tok]++;
        double wsum = 0, smax = 0;
        for (int e = 0; e < r->E; e++)
            if (r->score[(int64_t)i * r->E + e] > smax) smax = r->score[(int64_t)i * r->E + e];
        for (int j = 0; j < r->K; j++) {
            int e = r->expert[i * r->K + j];
            if (e < 0 || e >= r->E) {
                t->bad++;
                return;
            }
            for (int q = 0; q < j; q++)
                if (r->expert[i * r->K + q] == e) t->bad++; /* distinct experts */
            t->expert[r->layer][tok][j] = e;
            t->weight[r->layer][tok][j] = r->weight[i * r->K + j];
            t->count[r->layer][e]++;
            wsum += r->weight[i * r->K + j];
        }
        /* the first choice is the top score; renormalized weights sum to 1 */
        if (r->score[(int64_t)i * r->E + r->expert[i * r->K]] != (float)smax) t->bad++;
        if (lc->norm_topk && fabs(wsum - 1.0) > 1e-5) t->bad++;
    }
}

/* Trace N_TOK tokens with chunks of max_batch; 0 on success. */
static int trace(moe_model *m, int max_batch, tally *t) {
    moe_err err = {{0}};
    moe_session *s = NULL;
    moe_session_opts o = {.n_ctx = 64, .n_threads = 2, .max_batch = max_batch};
    if (moe_session_new(&s, m, &o, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s", err.msg);
        return -1;
    }
    int V = moe_model_config(m)->vocab;
    int32_t ids[N_TOK];
    for (int i = 0; i < N_TOK; i++) ids[i] = (int32_t)((i * 53 + 7) % V);
    memset(t, 0, sizeof *t);
    t->c = moe_model_config(m);
    t->last_layer = -1;
    int rc = moe_route_trace(s, ids, N_TOK, on_route, t, &err);
    CHECK_MSG(rc == 0, "trace: %s", err.msg);
    CHECK(s->route_fn == NULL && s->route_user == NULL); /* removed afterwards */
    CHECK_EQ_INT(moe_session_pos(s), N_TOK);
    /* the session's own counts agree with what was reported */
    const int64_t *cnt = moe_session_expert_counts(s);
    int S = moe_session_counts_stride(s);
    for (int l = 0; l < t->c->n_layers; l++)
        for (int e = 0; e < t->c->layer[l].n_experts && t->c->layer[l].moe; e++)
            CHECK_EQ_INT(cnt[l * S + e], t->count[l][e]);
    moe_session_free(s);
    return rc;
}

static void check_model(const char *variant) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", test_fixtures(), variant);
    moe_err err = {{0}};
    moe_model *m = NULL;
    if (moe_model_load(&m, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
        return;
    }
    tally *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    CHECK(trace(m, 64, a) == 0);
    CHECK(trace(m, 5, b) == 0); /* five chunks: 5, 5, 5, 5, 1 */
    CHECK_EQ_INT(a->bad, 0);
    CHECK_EQ_INT(b->bad, 0);
    const moe_config *c = moe_model_config(m);
    int moe_layers = 0;
    for (int l = 0; l < c->n_layers; l++) {
        moe_layers += c->layer[l].moe;
        for (int i = 0; i < N_TOK; i++) {
            CHECK_EQ_INT(a->seen[l][i], c->layer[l].moe ? 1 : 0);
            CHECK_EQ_INT(b->seen[l][i], c->layer[l].moe ? 1 : 0);
            for (int j = 0; j < c->layer[l].top_k && c->layer[l].moe; j++) {
                CHECK_EQ_INT(a->expert[l][i][j], b->expert[l][i][j]);
                CHECK_NEAR(a->weight[l][i][j], b->weight[l][i][j], 1e-4);
            }
        }
    }
    CHECK(moe_layers > 0);
    free(a);
    free(b);
    moe_model_free(m);
}

TEST(route_trace_mixtral) { check_model("mixtral_base"); }
TEST(route_trace_qwen2_moe_dense_layers) { check_model("qwen2_moe_dense"); }
TEST(route_trace_olmoe) { check_model("olmoe_base"); }

TEST(route_trace_errors) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/mixtral_base", test_fixtures());
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_session *s = NULL;
    CHECK(moe_model_load(&m, dir, &err) == 0);
    moe_session_opts o = {.n_ctx = 8, .n_threads = 1};
    CHECK(moe_session_new(&s, m, &o, &err) == 0);
    tally *t = calloc(1, sizeof *t);
    int32_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    CHECK(moe_route_trace(s, ids, 0, on_route, t, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "no tokens");
    CHECK(moe_route_trace(s, ids, 3, NULL, t, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "no callback");
    /* past the context: the forward's error, and the hook is still removed */
    CHECK(moe_route_trace(s, ids, 10, on_route, t, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "exceed the context");
    CHECK(s->route_fn == NULL);
    CHECK_EQ_INT(moe_session_pos(s), 0); /* refused before any chunk ran */
    ids[0] = 1 << 30;
    CHECK(moe_route_trace(s, ids, 2, on_route, t, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "outside the vocabulary");
    free(t);
    moe_session_free(s);
    moe_model_free(m);
}

TEST(route_mutual_info) {
    /* independent: every row the same distribution */
    int64_t indep[2 * 3] = {1, 2, 3, 10, 20, 30};
    CHECK_NEAR(moe_route_mutual_info(indep, 2, 3), 0.0, 1e-12);
    /* each domain to its own expert: log2(3) */
    int64_t diag[3 * 3] = {5, 0, 0, 0, 7, 0, 0, 0, 9};
    int64_t eq[3 * 3] = {4, 0, 0, 0, 4, 0, 0, 0, 4};
    CHECK(moe_route_mutual_info(diag, 3, 3) < log2(3.0));
    CHECK_NEAR(moe_route_mutual_info(eq, 3, 3), log2(3.0), 1e-12);
    /* two domains split evenly over four experts, disjoint: 1 bit */
    int64_t split[2 * 4] = {3, 3, 0, 0, 0, 0, 3, 3};
    CHECK_NEAR(moe_route_mutual_info(split, 2, 4), 1.0, 1e-12);
    /* one row, an empty table, no rows: 0 */
    int64_t one[4] = {1, 2, 3, 4}, zero[4] = {0, 0, 0, 0};
    CHECK_NEAR(moe_route_mutual_info(one, 1, 4), 0.0, 1e-12);
    CHECK_NEAR(moe_route_mutual_info(zero, 2, 2), 0.0, 1e-12);
    CHECK_NEAR(moe_route_mutual_info(one, 0, 4), 0.0, 1e-12);
    /* a hand-computed 2x2: p = [[.4, .1], [.1, .4]] */
    int64_t hand[4] = {4, 1, 1, 4};
    double want = 2 * 0.4 * log2(0.4 / 0.25) + 2 * 0.1 * log2(0.1 / 0.25);
    CHECK_NEAR(moe_route_mutual_info(hand, 2, 2), want, 1e-12);
}
