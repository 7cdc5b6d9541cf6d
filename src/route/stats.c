/*
 * stats.c - the routing statistics of include/moe_route.h, each defined
 * once: max violation, dead experts, router entropy, mutual information.
 * The training log (train/trainer.c), `moe route` and `moe report` all
 * compute them here, so the same routing gives the same numbers everywhere;
 * docs/ROUTING.md states the definitions.
 */
#include "moe_route.h"

#include <math.h>
#include <stdlib.h>

double moe_route_max_violation(const int64_t *counts, int E) {
    int64_t total = 0, mx = 0;
    for (int e = 0; e < E; e++) {
        total += counts[e];
        if (counts[e] > mx) mx = counts[e];
    }
    if (total <= 0) return 0.0;
    return (double)mx * E / (double)total - 1.0; /* max / (total / E) - 1 */
}

int moe_route_dead(const int64_t *counts, int E) {
    int dead = 0;
    for (int e = 0; e < E; e++) dead += counts[e] == 0;
    return dead;
}

double moe_route_entropy(const float *score, int E) {
    double sum = 0;
    for (int e = 0; e < E; e++) sum += score[e];
    if (!(sum > 0)) return NAN;
    double h = 0;
    for (int e = 0; e < E; e++) {
        double q = score[e] / sum;
        if (q > 0) h -= q * log(q);
    }
    return h > 0 ? h : 0.0;
}

/* Column total c of joint: from colsum when there is one, else summed. */
static double col_total(const int64_t *joint, const double *colsum, int rows, int cols, int c) {
    if (colsum) return colsum[c];
    double pc = 0;
    for (int q = 0; q < rows; q++) pc += (double)joint[(int64_t)q * cols + c];
    return pc;
}

double moe_route_mutual_info(const int64_t *joint, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return 0.0;
    /* column totals once (O(rows*cols)); without memory, summed per cell */
    double *colsum = calloc((size_t)cols, sizeof *colsum);
    double total = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double n = (double)joint[(int64_t)r * cols + c];
            total += n;
            if (colsum) colsum[c] += n;
        }
    double mi = 0;
    /* I = sum_rc p(r,c) log2(p(r,c) / (p(r) p(c))), marginals from the table */
    for (int r = 0; r < rows && total > 0; r++) {
        double pr = 0;
        for (int c = 0; c < cols; c++) pr += (double)joint[(int64_t)r * cols + c];
        if (pr <= 0) continue;
        for (int c = 0; c < cols; c++) {
            double n = (double)joint[(int64_t)r * cols + c];
            if (n <= 0) continue;
            double pc = col_total(joint, colsum, rows, cols, c);
            mi += n / total * log2(n * total / (pr * pc));
        }
    }
    free(colsum);
    return mi > 0 ? mi : 0.0;
}
