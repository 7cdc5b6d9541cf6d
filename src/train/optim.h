/*
 * optim.h - the optimizer: AdamW (decoupled weight decay, bias correction,
 * PyTorch's update order) over one flat f32 parameter array, global
 * gradient-norm clipping, a NaN/Inf guard, and the learning-rate schedule
 * (linear warmup, then cosine decay to a floor). Deterministic: the same
 * inputs give the same bits whatever the thread count.
 *
 * The trainer owns the arrays (params, grads, m, v: [n] each, one
 * allocation per family) and checkpoints m, v and the step with them.
 */
#ifndef MOE_TRAIN_OPTIM_H
#define MOE_TRAIN_OPTIM_H

#include <stdint.h>

#include "moe.h"
#include "base/pool.h"

/* One named tensor inside the flat arrays. Tensors are listed in ascending
 * offset order and do not overlap; elements outside every tensor are
 * neither updated nor counted in the norm. The moments m and v may be
 * packed: element i of a tensor has its moments at m[i - state_gap], so
 * that parameters outside every tensor (frozen ones, train/freeze.h) need
 * no optimizer state; state_gap 0 (the default) indexes m and v as params.
 * The moment ranges must not overlap either. */
typedef struct optim_tensor {
    const char *name; /* for messages; may be NULL */
    int64_t offset;   /* first element in params/grads */
    int64_t size;     /* elements */
    int decay;        /* 1: weight decay applies (matrices); 0: norms, biases */
    int64_t state_gap;/* its moments start at m + offset - state_gap (>= 0, ascending) */
} optim_tensor;

typedef struct adamw_opts {
    /* doubles, as PyTorch's Python floats: 1 - 0.999 must be 0.001, not
     * 1 - 0.999f */
    double beta1, beta2;  /* e.g. 0.9, 0.95 */
    double eps;           /* e.g. 1e-8 */
    double weight_decay;  /* decoupled: p *= 1 - lr * weight_decay (decay tensors only) */
    double clip_norm;     /* > 0: gradients scaled by min(1, clip / (norm + 1e-6)) as
                             torch.nn.utils.clip_grad_norm_; 0 = off */
} adamw_opts;

/* One AdamW step t (1-based: the first update is t = 1) at learning rate lr:
 *   g  = grad * clip_coef
 *   p  = p * (1 - lr * wd)                    (decay tensors)
 *   m  = m + (1 - b1) (g - m)                 (= b1 m + (1 - b1) g)
 *   v  = b2 v + (1 - b2) g^2
 *   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * *grad_norm (may be NULL) gets the global L2 norm of the gradients BEFORE
 * clipping. Returns -1 without touching params, m or v if a gradient is NaN
 * or Inf (the message names the first such tensor by index and name, and
 * the element), or if the tensor list is malformed. */
int adamw_step(pool *p, float *params, const float *grads, float *m, float *v, int64_t n,
               const optim_tensor *tensors, int n_tensors, int64_t t, double lr,
               const adamw_opts *o, double *grad_norm, moe_err *err);

/* The same, and on success every gradient in [0, n) is set to 0 (fused
 * into the update's pass over them, so the next step's accumulation needs
 * no separate clearing); on failure grads are left as they were. */
int adamw_step_clear(pool *p, float *params, float *grads, float *m, float *v, int64_t n,
                     const optim_tensor *tensors, int n_tensors, int64_t t, double lr,
                     const adamw_opts *o, double *grad_norm, moe_err *err);

/* AVX-512 inner loops (optim_avx512.c), bit-identical to optim.c's scalar
 * ones: the sum of squares of g[n] in double (4 x 8 lanes, then in lane
 * order: a fixed order, not the scalar one), and the update of one range
 * (clearing g when clear). */
double avx512_sumsq(const float *g, int64_t n);
void avx512_adam(float *p, float *m, float *v, float *g, int64_t n, int clear, float coef,
                 float decay_mul, float b2, float omb1, float omb2, float eps, float step_size,
                 float bc2_sqrt);

/* Global L2 norm of the gradients of the listed tensors (double sums in a
 * fixed order). Non-finite if any gradient is. */
double grad_global_norm(pool *p, const float *grads, int64_t n, const optim_tensor *tensors,
                        int n_tensors);

/* Learning rate at 0-based step s:
 *   s < warmup:            peak * (s + 1) / warmup
 *   warmup <= s < total:   min + (peak - min) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2
 *   s >= total:            min
 * so the peak is reached at s = warmup - 1 .. warmup and min at s = total. */
typedef struct lr_schedule {
    double peak_lr, min_lr;
    int64_t warmup_steps, total_steps;
} lr_schedule;
double lr_at(const lr_schedule *s, int64_t step);

#endif
