/*
 * grad_linear.c - backward of y = x W^T: dx += dy W and dW += dy^T x.
 *
 * Both products are one shape of GEMM (kernels/gemm.h), C[M][N] += sum_k
 * A(m,k) B(k,n) with A and B given by strides:
 *   dx:  C = dx [n][in],   A(m,k) = dy[m][k]   (M = n,   K = out), B = W [out][in]
 *   dW:  C = dW [out][in], A(m,k) = dy[k][m]   (M = out, K = n),   B = x [n][in]
 * gemm.c tiles C over the pool, packs B and runs the ISA's register-tile
 * micro-kernel; every element of C sums its k's in ascending order
 * whichever thread runs its tile, so results do not depend on the thread
 * count. linear_backward_grouped_set / _mode overwrite dx and/or dW (the
 * first K block is stored, not added), so callers need not zero them.
 */
#include "kernels/gemm.h"
#include "train/grad_ops.h"

#define GROUP_MAX 256 /* tasks per gemm_run (2 products each) */

/* ------------------------------------------------------------ reference */

void linear_backward_ref(float *dx, float *dW, const float *dy, const float *x, const float *W,
                         int64_t n, int64_t out, int64_t in) {
    if (dx)
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < in; k++) {
                double s = 0;
                for (int64_t o = 0; o < out; o++) s += (double)dy[i * out + o] * W[o * in + k];
                dx[i * in + k] += (float)s;
            }
    if (dW)
        for (int64_t o = 0; o < out; o++)
            for (int64_t k = 0; k < in; k++) {
                double s = 0;
                for (int64_t i = 0; i < n; i++) s += (double)dy[i * out + o] * x[i * in + k];
                dW[o * in + k] += (float)s;
            }
}

void bias_backward(float *db, const float *dy, int64_t n, int64_t out) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < out; o++) db[o] += dy[i * out + o];
}

/* ------------------------------------------------------------- public */

void linear_backward_grouped_mode(pool *p, const lin_bwd_task *tasks, int n_tasks, int dx_set,
                                  int dW_set) {
    gemm_op ops[2 * GROUP_MAX];
    for (int t0 = 0; t0 < n_tasks; t0 += GROUP_MAX) {
        int m = n_tasks - t0 < GROUP_MAX ? n_tasks - t0 : GROUP_MAX, n = 0;
        for (int i = 0; i < m; i++) {
            const lin_bwd_task *t = &tasks[t0 + i];
            if (t->dx)
                ops[n++] = (gemm_op){t->dx, t->in, t->dy, t->out, 1, t->W, t->in, 1,
                                     t->n, t->in, t->out, dx_set, NULL, 0};
            if (t->dW)
                ops[n++] = (gemm_op){t->dW, t->in, t->dy, 1, t->out, t->x, t->in, 1,
                                     t->out, t->in, t->n, dW_set, NULL, 0};
        }
        gemm_run(p, ops, n);
    }
}

void linear_backward_grouped(pool *p, const lin_bwd_task *tasks, int n_tasks) {
    linear_backward_grouped_mode(p, tasks, n_tasks, 0, 0);
}

void linear_backward_grouped_set(pool *p, const lin_bwd_task *tasks, int n_tasks) {
    linear_backward_grouped_mode(p, tasks, n_tasks, 1, 0);
}

void linear_backward(pool *p, float *dx, float *dW, const float *dy, const float *x,
                     const float *W, int64_t n, int64_t out, int64_t in) {
    lin_bwd_task t = {dx, dW, dy, x, W, n, out, in};
    linear_backward_grouped(p, &t, 1);
}
