/*
 * test_quantize.h - helpers of test_quantize.c shared with
 * test_quantize_types.c: small random models whose rows suit every K-quant,
 * and writing them out as GGUF.
 */
#ifndef MOE_TEST_QUANTIZE_H
#define MOE_TEST_QUANTIZE_H

#include "model/model.h"
#include "model/quantize.h"

/* A small random model of arch whose rows suit every K-quant (256 columns),
 * 2 layers of E experts. */
void small_cfg(moe_config *c, moe_arch arch, int E);
/* Write c with weights N(0, std) (F32) to the new directory dir; 0 or -1
 * (check failed). */
int make_random(const char *dir, const moe_config *c, float std);
/* Load src, plan with o, write a GGUF at dst (the plan kept in *keep when
 * given). 0 or -1 (check failed). */
int write_gguf(const char *src, const char *dst, const qz_opts *o, qz_plan *keep);
/* A random model of arch quantized to type: every tensor's bytes are the
 * reference quantization of its source tensor, as one run of values. */
void check_exact(moe_arch arch, int type);

#endif
