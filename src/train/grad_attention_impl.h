/*
 * grad_attention_impl.h - the per-row step of attention_backward, portable
 * (grad_attention.c) and AVX-512 (grad_attention_avx512.c). Internal to
 * src/train/.
 *
 * On entry p[n] holds one query row's raw scores q.k over its visible keys
 * and dp[n] its dout.v; on return p = softmax(p * scale) and
 * dp = p * (dp - sum(p * dp)) * scale. With a sink (non-NULL) the
 * softmax's denominator also holds exp(*sink) (unscaled, its share dropped)
 * and the return is the row's sink gradient -p_sink * sum(p * dp); 0
 * without one.
 */
#ifndef MOE_TRAIN_GRAD_ATTENTION_IMPL_H
#define MOE_TRAIN_GRAD_ATTENTION_IMPL_H

#include <stdint.h>

double att_row_avx512(float *p, float *dp, int64_t n, float scale, const float *sink);

#endif
