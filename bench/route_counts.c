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
static void obs(void *u, const moe_route_info *r) {
    int *cnt = calloc(r->E, sizeof(int));
    for (int i = 0; i < r->T * r->K; i++) cnt[r->expert[i]]++;
    int h[6] = {0}; /* 0, 1-3, 4-7, 8-15, 16-31, 32+ */
    int mx = 0; long long sq = 0;
    for (int e = 0; e < r->E; e++) { int c = cnt[e]; if (c > mx) mx = c; sq += (long long)c * c;
        h[c == 0 ? 0 : c < 4 ? 1 : c < 8 ? 2 : c < 16 ? 3 : c < 32 ? 4 : 5]++; }
    /* token-weighted mean n: sum c^2 / sum c */
    printf("layer %d T %d: experts with 0 / 1-3 / 4-7 / 8-15 / 16-31 / 32+ tokens: %d %d %d %d %d %d; max %d; pair-weighted mean n %.1f\n",
           r->layer, r->T, h[0], h[1], h[2], h[3], h[4], h[5], mx, (double)sq / (r->T * r->K));
    free(cnt);
}
int main(int argc, char **argv) {
    moe_err err; moe_model *m; moe_session *s;
    if (argc < 2) { fprintf(stderr, "usage: route_counts MODEL [tokens] [seed]\n"); return 2; }
    if (moe_model_load(&m, argv[1], &err)) { printf("%s\n", err.msg); return 1; }
    moe_session_opts o = {0}; o.n_threads = 2;
    if (moe_session_new(&s, m, &o, &err)) { printf("%s\n", err.msg); return 1; }
    if (argc < 2) { fprintf(stderr, "usage: route_counts MODEL [tokens] [seed]\n"); return 2; }
    const int T = argc > 2 ? atoi(argv[2]) : 128, V = moe_model_config(m)->vocab;
    if (T < 1 || V < 1) { fprintf(stderr, "route_counts: tokens must be >= 1\n"); return 2; }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)T);
    srand(argc > 3 ? (unsigned)atoi(argv[3]) : 1u);
    for (int i = 0; i < T; i++) ids[i] = rand() % V;
    if (moe_route_trace(s, ids, T, obs, NULL, &err)) { printf("%s\n", err.msg); return 1; }
    return 0;
}
