/*
 * grad_ops.h - the backward pass of every forward op, the training losses
 * and the training-only routers, as pure functions over f32 arrays. The
 * trainer keeps the forward's activations and calls these; nothing here
 * allocates, prints or keeps state.
 *
 * Conventions (all functions):
 *   - every tensor is f32 (weights included: the trainer keeps f32 masters);
 *   - gradients ACCUMULATE (+=) into the output buffers, which the caller
 *     zeroes, unless the function says otherwise (a few elementwise ops
 *     transform a gradient in place, cross_entropy writes its rows);
 *   - shapes in comments: T tokens, D hidden, H query heads, G kv heads,
 *     Dh head dim, E experts, K top-k, F ffn width, V vocab, n rows;
 *   - the math mirrors src/model (forward.c, attention.c, moe_ffn.c) and
 *     src/kernels exactly; each function's comment states its forward.
 *
 * Files: grad_linear.c (on the GEMM of kernels/gemm.h), grad_pointwise.c
 * (+ _avx512: rmsnorm, SwiGLU, RoPE, clamp), grad_attention.c (+ _avx512),
 * grad_router.c (token choice, noisy top-k, expert choice, selection bias;
 * hash routing has no backward and lives with the forward in
 * src/model/router.c), losses.c (cross-entropy, balancing losses). The
 * optimizer is in optim.h (+ optim_avx512.c).
 */
#ifndef MOE_TRAIN_GRAD_OPS_H
#define MOE_TRAIN_GRAD_OPS_H

#include <stdint.h>

#include "moe.h"
#include "base/pool.h"
#include "base/rng.h"

/* ------------------------------------------------------------ linear */

/* Forward y[n][out] = x[n][in] W^T (+ b). Backward:
 *   dx[n][in]   += dy W          (skipped when dx == NULL)
 *   dW[out][in] += dy^T x        (skipped when dW == NULL)
 * dy [n][out], x [n][in], W [out][in] f32 row-major. Threaded over the pool
 * (may be NULL); AVX-512 / AVX2 register-tiled kernels chosen like the
 * forward's (the pool's kernel choice). Deterministic: every output element is
 * summed in the same order whatever the thread count. dx and dW must not
 * overlap the inputs. */
void linear_backward(pool *p, float *dx, float *dW, const float *dy, const float *x,
                     const float *W, int64_t n, int64_t out, int64_t in);
/* The same, single-threaded, plain loops with double accumulation: the
 * reference the fast path is tested against. */
void linear_backward_ref(float *dx, float *dW, const float *dy, const float *x, const float *W,
                         int64_t n, int64_t out, int64_t in);
/* Many independent linear backwards (e.g. one per expert) in one parallel
 * region, so small per-expert problems share the pool. Tasks with n == 0
 * are skipped. Same math and determinism as linear_backward. */
typedef struct lin_bwd_task {
    float *dx;        /* [n][in] or NULL */
    float *dW;        /* [out][in] or NULL */
    const float *dy;  /* [n][out] */
    const float *x;   /* [n][in] */
    const float *W;   /* [out][in] */
    int64_t n, out, in;
} lin_bwd_task;
void linear_backward_grouped(pool *p, const lin_bwd_task *tasks, int n_tasks);
/* The same with every task's dx OVERWRITTEN by dy W instead of accumulated
 * into (so it need not be zeroed first); dW still accumulates. No two
 * tasks may share dx rows. */
void linear_backward_grouped_set(pool *p, const lin_bwd_task *tasks, int n_tasks);
/* Either or both overwritten: dx_set (as _set) and dW_set (dW = dy^T x,
 * for a dW known to be zero before: the first contribution of a step). */
void linear_backward_grouped_mode(pool *p, const lin_bwd_task *tasks, int n_tasks, int dx_set,
                                  int dW_set);
/* Bias: db[out] += sum over the n rows of dy[n][out]. */
void bias_backward(float *db, const float *dy, int64_t n, int64_t out);

/* --------------------------------------------------------- pointwise */

/* One row of RMSNorm, forward y = x * r * w with r = 1/sqrt(mean(x^2)+eps)
 * over n elements (kernels.h rmsnorm). Backward, with a = dy * w:
 *   dx += r * a - x * r^3 * (a . x) / n
 *   dw += dy * x * r                      (skipped when dw == NULL)
 * w == NULL means a weight of ones. Used for the block norms and the final
 * norm (n = D), per-head q/k norm (n = Dh, called per head with the same
 * dw) and whole-projection q/k norm (n = H*Dh or G*Dh). dx must not alias
 * dy or x. */
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w,
                      int n, float eps);
/* The same over rows: x, dy, dx [rows][n], one dw [n] for all rows. */
void rmsnorm_backward_rows(float *dx, float *dw, const float *dy, const float *x, const float *w,
                           int64_t rows, int n, float eps);
/* The same threaded over the pool (may be NULL): dx by rows, then dw by
 * column slices, each column adding its rows in row order, so the result
 * has the bits of rmsnorm_backward_rows for any thread count. r: [rows]
 * doubles of scratch. */
void rmsnorm_backward_rows_pool(pool *p, float *dx, float *dw, const float *dy, const float *x,
                                const float *w, int64_t rows, int n, float eps, double *r);
/* Its AVX-512 row and column passes (grad_pointwise_avx512.c): r of a row,
 * dx += the row's input gradient, dw[i0, i1) += one row's weight gradient. */
double avx512_rms_r(const float *x, int n, float eps);
void avx512_rms_dx(float *dx, const float *dy, const float *x, const float *w, int n, double r);
void avx512_rms_dw(float *dw, const float *dy, const float *x, double r, int64_t i0, int64_t i1);

/* SwiGLU, forward h = silu(g) * u, silu(g) = g * sigmoid(g). Backward:
 *   dg += dh * u * s * (1 + g * (1 - s))   with s = sigmoid(g)
 *   du += dh * silu(g)
 * over n elements (g and u are the forward's inputs, before silu_mul);
 * dg or du may be NULL to skip it. */
void swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                     int64_t n);

/* gpt_oss's clamped SwiGLU (src/model/moe_ffn.c, transformers'
 * GptOssExperts._apply_gate): with g, u the biased pre-activations,
 *   gc = min(g, limit), uc = clamp(u, -limit, limit), s = sigmoid(alpha gc),
 *   h = (uc + 1) * gc * s.
 * Backward as PyTorch's autograd through clamp (the gradient passes where
 * g <= limit, resp. -limit <= u <= limit, boundaries included, NaN blocks):
 *   dg += dh * (uc + 1) * s * (1 + alpha gc (1 - s))   where g <= limit
 *   du += dh * gc * s                                   where |u| <= limit
 * over n elements, in double. */
void oss_glu_backward(float *dg, float *du, const float *dh, const float *g, const float *u,
                      int64_t n, float alpha, float limit);
/* Its AVX-512 twin (grad_pointwise_avx512.c, f32 with a polynomial exp;
 * held to the scalar one by tests). */
void avx512_oss_glu_backward(float *dg, float *du, const float *dh, const float *g,
                             const float *u, int64_t n, float alpha, float limit);

/* RoPE: the forward (kernels.h rope_apply) rotates pairs (i, i + Dh/2) by
 * the angle whose cos/sin [Dh/2] are given; the backward is the inverse
 * rotation of the gradient. IN PLACE: d[Dh] holds dy on entry and dx on
 * return (same cos/sin tables as the forward). */
void rope_backward(float *d, const float *cos_t, const float *sin_t, int head_dim);

/* clip_qkv: forward y = clamp(x, -c, c). Backward as PyTorch's clamp: the
 * gradient passes where -c <= x <= c (boundary included; NaN x blocks it).
 * IN PLACE on d[n] (dy on entry, dx on return). x is the forward's input
 * BEFORE clamping (the output cannot tell x == c from x > c). */
void clamp_backward(float *d, const float *x, int64_t n, float c);

/* --------------------------------------------------------- attention */

/* Floats of scratch attention_backward needs PER THREAD for T tokens (the
 * caller passes pool_size(p) times this; pool_size is 1 for a NULL pool):
 * 2 * min(T, 64) * T (a block of 64 query rows of P and dP), e.g. 2 MiB
 * per thread at T = 4096. */
int64_t attention_backward_scratch(int T);

/* Causal attention of ONE sequence of T tokens at positions 0..T-1, for
 * each query head h with kv head g = h / (H/G):
 *   s_ij = q_i . k_j / sqrt(Dh) for visible j, p_i = softmax(s_i),
 *   out_i = sum_j p_ij v_j
 * Key j is visible to query i iff j <= i and (window <= 0 or i - window < j).
 * q, dq, dout [T][H*Dh]; k, v, dk, dv [T][G*Dh] (q and k after norm, clamp
 * and rope: the tensors the dot products used). Backward with
 * dp_ij = dout_i . v_j and ds_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij'):
 *   dq_i += sum_j ds_ij k_j / sqrt(Dh);  dk_j += sum_i ds_ij q_i / sqrt(Dh);
 *   dv_j += sum_i p_ij dout_i.
 * The probabilities are recomputed, 64 query rows at a time, with the
 * products on linear_backward's GEMM (so they match the forward's to f32
 * rounding, not bit for bit). Threaded over kv heads (each owns its dk/dv
 * rows and its query heads' dq: no races, and the sums are in a fixed
 * order, so the result does not depend on the thread count); with G
 * smaller than the pool some threads idle. scratch: pool_size(p) *
 * attention_backward_scratch(T). H must be a multiple of G (else nothing
 * is done). */
void attention_backward(pool *p, float *dq, float *dk, float *dv, const float *dout,
                        const float *q, const float *k, const float *v, int T, int H, int G,
                        int Dh, int window, float *scratch);
/* The same with gpt_oss's per-head sink logits z [H] (sinks; NULL: none):
 * p_i = exp(s_i) / (sum_j exp(s_ij) + exp(z_h)), the sink's share
 * p_sink = exp(z_h) / (same) dropped (kernels/attn.h). dq, dk, dv as above
 * and dsinks [H] += sum over the rows of head h of -p_sink * sum_j p_ij dp_ij
 * (dsinks may be NULL to skip it). */
void attention_backward_sinks(pool *p, float *dq, float *dk, float *dv, float *dsinks,
                              const float *dout, const float *q, const float *k, const float *v,
                              const float *sinks, int T, int H, int G, int Dh, int window,
                              float *scratch);

/* The general form: q and k heads of Dk dims, v and output heads of Dv
 * (latent attention's q/k heads are nope + rope dims, its values
 * v_head_dim), softmax scale `scale` instead of 1/sqrt(Dh) (0 keeps
 * 1/sqrt(Dk)). q, dq [T][H*Dk]; k, dk [T][G*Dk]; v, dv [T][G*Dv]; dout
 * [T][H*Dv]. Otherwise as attention_backward_sinks. */
typedef struct attn_bwd_dims {
    int T, H, G;  /* tokens, query heads, kv heads (H a multiple of G) */
    int Dk, Dv;   /* q/k head width, v and output head width */
    int window;   /* sliding window (<= 0: none) */
    float scale;  /* softmax scale; 0: 1/sqrt(Dk) */
} attn_bwd_dims;
void attention_backward_dims(pool *p, float *dq, float *dk, float *dv, float *dsinks,
                             const float *dout, const float *q, const float *k, const float *v,
                             const float *sinks, const attn_bwd_dims *d, float *scratch);

/* ---------------------------------------------------- token-choice router */

/* Forward for one token (src/model/router.c route_rows): scores p = softmax(logits)
 * or sigmoid(logits) [E]; idx [K] the chosen experts (top-k of p, maybe
 * plus a selection bias: the bias gets no gradient, idx is fixed here);
 * w_j = p[idx_j], divided by sum_j p[idx_j] when norm_topk (and that sum
 * is > 0), times routed_scale (0 means 1, as the forward treats it).
 * Backward: dlogits [E] += d(sum_j dweights_j w_j)/dlogits.
 * With softmax and norm_topk the weights are a softmax over the chosen
 * logits only, so the other experts get exactly 0; MOE_SCORE_TOPK_SOFTMAX
 * (gpt_oss: top-k of the logits, softmax over those) is that case. */
void router_backward(float *dlogits, const float *dweights, const float *logits, const int *idx,
                     int E, int K, moe_score score, int norm_topk, float routed_scale);
/* The forward weights of the same definition (double internally), for the
 * trainer and tests: w [K] written. */
void router_weights(float *w, const float *logits, const int *idx, int E, int K, moe_score score,
                    int norm_topk, float routed_scale);

/* ------------------------------------------------- noisy top-k (Shazeer 2017) */

/* Training-only noise on router logits:
 *   noisy = clean + eps * softplus(raw),  eps ~ N(0, 1)
 * with clean = x W_g^T and raw = x W_noise^T [T][E] (the caller's matmuls).
 * eps [T][E] is drawn here from r (stored: the backward needs it); noisy
 * [T][E] written (may alias clean). Then route on noisy: top-k, and the
 * weights are a softmax over the k chosen noisy logits (Shazeer's
 * softmax(KeepTopK(H, k)) = router_weights with softmax + norm_topk), so
 * only the chosen path carries gradient. */
void noisy_logits_forward(float *noisy, float *eps, const float *clean, const float *raw, int T,
                          int E, rng *r);
/* Backward from dnoisy [T][E] (router_backward's dlogits):
 *   dclean += dnoisy;   draw += dnoisy * eps * sigmoid(raw)
 * then linear_backward(dclean -> W_g) and (draw -> W_noise) with x. */
void noisy_logits_backward(float *dclean, float *draw, const float *dnoisy, const float *eps,
                           const float *raw, int T, int E);

/* ---------------------------------------------------- expert choice (Zhou 2022) */

/* Capacity C = int(capacity_factor * T * K / E) (truncated, as the forward
 * in src/model/router.c and docs/TRAINING.md), at most T; 0 when T or E is
 * not positive (and a capacity_factor <= 0 gives 0: nothing is routed). */
int expert_choice_capacity(int T, int K, int E, float capacity_factor);
/* Forward: scores s = softmax(logits[t]) [T][E] (written; may alias
 * logits); each expert e takes the C tokens with the highest s[t][e]
 * (ties: the earlier token), listed in token order as the forward lists
 * pairs: tok [E][C], weight [E][C] = s[tok][e].
 * NOT CAUSAL: a token's routing depends on the other tokens of the batch,
 * later ones included, so it suits training and encoders, not
 * autoregressive decoding. A token may get 0 or several experts.
 * Returns -1 (nothing written) unless T, E >= 1 and 0 <= C <= T. */
int expert_choice_route(int *tok, float *weight, float *scores, const float *logits, int T, int E,
                        int C);
/* Backward: dlogits [T][E] += d(sum dweight[e][c] * weight[e][c])/dlogits,
 * with the chosen (tok) fixed. scores [T][E] from the forward; work [T][E]
 * scratch (overwritten). */
void expert_choice_backward(float *dlogits, const float *dweight, const int *tok,
                            const float *scores, int T, int E, int C, float *work);

/* ---------------------------------------------------- selection bias (DeepSeek-V3) */

/* The auxiliary-loss-free balancing of a sigmoid router's selection bias,
 * after each optimizer step (no gradient; docs/TRAINING.md):
 *   bias[e] += rate * sign(n_pairs / E - load[e]),  sign(0) = 0
 * load [E]: pairs routed to expert e in that step's forward; n_pairs = N*K. */
void selection_bias_update(float *bias, const int64_t *load, int E, int64_t n_pairs, float rate);

/* ------------------------------------------------------------- losses */

/* Tokens with a target >= 0 among targets [n]. */
int64_t cross_entropy_count(const int32_t *targets, int64_t n);
/* Cross-entropy of rows logits [n][V] against targets [n] (target < 0:
 * ignored). *loss_sum = sum over counted rows of logsumexp(row) - row[target]
 * (double, max-subtracted); *count = rows counted. If dlogits != NULL its
 * rows are WRITTEN (not accumulated): (softmax(row) - onehot) * grad_scale,
 * zero for ignored rows; dlogits may alias logits (in place). For the mean
 * over all micro-batches pass grad_scale = 1 / total count
 * (cross_entropy_count over all of them) and divide the summed losses by it.
 * Returns -1 (err filled, nothing written) if a target is >= V. */
int cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int64_t n, int V,
                  float grad_scale, double *loss_sum, int64_t *count, moe_err *err);
/* The same, threaded over rows on the pool (may be NULL); the result has
 * the same bits for any thread count (cross_entropy is this with NULL). */
int cross_entropy_pool(pool *p, float *dlogits, const float *logits, const int32_t *targets,
                       int64_t n, int V, float grad_scale, double *loss_sum, int64_t *count,
                       moe_err *err);

/* Balancing losses of one MoE layer over its T tokens, formulas at the top
 * of losses.c (as docs/TRAINING.md defines them, times the coefficient
 * given). Each returns the loss value and, if dlogits != NULL, accumulates
 * its gradient w.r.t. the router logits [T][E]. "score" (router
 * probabilities p_t) is softmax(logits_t), or sigmoid(logits_t) per expert
 * for a sigmoid router (not normalized). */

/* Switch/GShard: alpha * E * sum_e f_e P_e, f_e = count_e / (T*K) (count_e:
 * tokens whose idx [T][K] contains e; constant), P_e = mean_t p_t[e].
 * work: [E] doubles. */
double aux_loss(float *dlogits, const float *logits, const int *idx, int T, int E, int K,
                moe_score score, float alpha, double *work);
/* ST-MoE router z-loss: beta * mean_t (logsumexp_e logits[t][e])^2. */
double z_loss(float *dlogits, const float *logits, int T, int E, float beta);
/* KL(U || P): gamma * sum_e (1/E) log((1/E) / P_e), P_e = mean_t p_t[e].
 * work: [2E] doubles. */
double kl_uniform_loss(float *dlogits, const float *logits, int T, int E, moe_score score,
                       float gamma, double *work);

#endif
