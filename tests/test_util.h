/*
 * test_util.h - helpers several test files share: a JSON file parsed whole,
 * the logits of a model on a fixed list of ids, a token shard written by hand.
 */
#ifndef MOE_TEST_UTIL_H
#define MOE_TEST_UTIL_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "formats/gguf.h"
#include "moe.h"
#include "moe_cache.h"

/* The file parsed as JSON (up to 64 MiB), or NULL; cJSON_Delete it. */
cJSON *test_load_json(const char *path);

/* logits [n][V] of the model at path run on ids from an empty cache (malloc'd),
 * or NULL after a failed check naming the model and the error. */
float *test_model_logits(const char *path, const int32_t *ids, int n, int *V);

/* The fixture model tests/fixtures/models/VARIANT, or NULL after a failed check. */
moe_model *test_load_variant(const char *variant);
/* ids run alone in a fresh one-thread session of m: logits [n][V] (all), or
 * [V] of the last token; malloc'd, or NULL after a failed check. */
float *test_session_logits(moe_model *m, const int32_t *ids, int n, int all);
/* Largest |a - b| over n values, relative to the largest |b|. */
double test_rel_err(const float *a, const float *b, int n);

/* A token shard (train/data.h format) written by hand at path: ids[n] as
 * dtype (2 or 4) bytes each, domains "dom0", "dom1", ... ending at
 * ends[0..n_dom) (the last end is n); eos id 0. A failed write fails the test. */
void test_write_shard(const char *path, const uint32_t *ids, uint64_t n, int dtype, uint32_t vocab,
                      const uint64_t *ends, int n_dom);

/* test_conformance.c's damaged-copy helpers: */
/* Rewrite a safetensors file with one tensor dropped, given a new dtype
 * string, or a new shape (n_dims > 0); 0 on success. */
int st_rewrite(const char *path, const char *tensor, int drop, const char *new_dtype,
               const int64_t *shape, int n_dims);
/* A fresh copy of fixture VARIANT in the temp dir (a static buffer), or NULL
 * after a failed check. */
const char *fresh_copy(const char *variant, const char *tag);
/* moe_model_load(dir) must fail naming one of the words (NULL-terminated). */
void expect_load_fail(const char *what, const char *dir, const char *const *words);

/* A copy of a GGUF file with one change (test_gguf_rewrite). */
typedef struct test_gguf_edit {
    const char *skip_tensor;   /* left out */
    const char *shape_tensor;  /* given ne[0] = ne0 (the data kept, fewer bytes read) */
    int64_t ne0;
    const char *skip_key;      /* left out */
    gguf_wkv over;             /* replaces (or adds) a key when over.key is set */
} test_gguf_edit;

/* src rewritten at dst with ed applied (the source's arrays must be scalar);
 * 0 on success. */
int test_gguf_rewrite(const char *src, const char *dst, const test_gguf_edit *ed);
/* The copy of src with ed, written as NAME.gguf in the temp dir, must fail
 * to load with a message containing want. */
void test_gguf_expect_fail(const char *src, const char *name, const test_gguf_edit *ed,
                           const char *want);

/* moe_model_load_opts with the weights read into memory (MOE_LOAD=read for
 * the call: a fixture this small is otherwise mapped), the environment as
 * it was afterwards. */
int test_load_read(moe_model **m, const char *path, const moe_load_opts *o, moe_err *err);

/* KL(softmax(a) || softmax(b)) per row of T rows of V logits: its mean and
 * max over the rows, in nats. */
void test_logits_kl(const float *a, const float *b, int T, int V, double *mean, double *max);

#endif
