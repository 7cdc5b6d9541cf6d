/*
 * route_counts.c - how many tokens each expert gets in one prefill of
 * random token ids (what `moe bench` feeds), per MoE layer: the experts
 * with 0, 1-3, 4-7, 8-15, 16-31 and 32+ tokens, the most any expert got,
 * and the mean rows of x a pair's product sees (sum of count^2 / pairs).
 * The per-expert batch sets how the prefill products run (docs/PERF.md).
 *
 *   make bench-route && build/route_counts MODEL [tokens (128)] [seed (1)]
 */
#include <stdio.h>
#include <stdlib.h>

#include "moe.h"
#include "moe_route.h"

static void count_layer(void *user, const moe_route_info *r) {
    (void)user;
    int *cnt = calloc((size_t)r->E, sizeof(int));
    if (!cnt) return;
    for (int i = 0; i < r->T * r->K; i++) cnt[r->expert[i]]++;
    int h[6] = {0}, most = 0;
    long long sq = 0;
    for (int e = 0; e < r->E; e++) {
        const int c = cnt[e];
        if (c > most) most = c;
        sq += (long long)c * c;
        h[c == 0 ? 0 : c < 4 ? 1 : c < 8 ? 2 : c < 16 ? 3 : c < 32 ? 4 : 5]++;
    }
    printf("layer %d T %d: experts with 0 / 1-3 / 4-7 / 8-15 / 16-31 / 32+ tokens: %d %d %d %d %d %d; "
           "max %d; pair-weighted mean n %.1f\n",
           r->layer, r->T, h[0], h[1], h[2], h[3], h[4], h[5], most, (double)sq / (r->T * r->K));
    free(cnt);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: route_counts MODEL [tokens (128)] [seed (1)]\n");
        return 2;
    }
    const int T = argc > 2 ? atoi(argv[2]) : 128;
    if (T < 1) {
        fprintf(stderr, "route_counts: tokens must be >= 1\n");
        return 2;
    }
    moe_err err = {{0}};
    moe_model *m = NULL;
    moe_session *s = NULL;
    int32_t *ids = NULL;
    int rc = 1;
    if (moe_model_load(&m, argv[1], &err) || moe_session_new(&s, m, &(moe_session_opts){.n_threads = 2}, &err))
        goto done;
    const int V = moe_model_config(m)->vocab;
    ids = malloc(sizeof(int32_t) * (size_t)T);
    if (!ids) goto done;
    srand(argc > 3 ? (unsigned)atoi(argv[3]) : 1u);
    for (int i = 0; i < T; i++) ids[i] = rand() % V;
    rc = moe_route_trace(s, ids, T, count_layer, NULL, &err) ? 1 : 0;
done:
    if (rc && err.msg[0]) fprintf(stderr, "route_counts: %s\n", err.msg);
    free(ids);
    moe_session_free(s);
    moe_model_free(m);
    return rc;
}
