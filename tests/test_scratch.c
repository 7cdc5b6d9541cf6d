/*
 * test_scratch.c - a session reserves, at creation, the scratch every
 * product of a full batch asks for: nothing is allocated (and faulted in)
 * per call. The experts packed at load were once left out of that bound,
 * and a 512-token prefill then allocated ~50 MB per MoE layer.
 */
#include "test.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "model/model.h"
#include "moe_cache.h"

/* A prefill of max_batch tokens, then a decode step, on path loaded with
 * repack (1: packed experts, -1: as stored); the pool's scratch misses
 * after them. */
static int64_t misses_after_batch(const char *path, int repack, int64_t mem, int64_t *packed) {
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_load_opts o = {.repack = repack, .mem = mem, .prefetch = mem ? 1 : 0};
    int64_t misses = -1;
    /* packing needs the file read */
    int rc = test_load_read(&m, path, &o, &err);
    if (rc) {
        CHECK_MSG(0, "%s: %s", path, err.msg);
        return -1;
    }
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    *packed = st.packed;
    const int T = 48, V = moe_model_config(m)->vocab;
    moe_session_opts so = {.n_ctx = 64, .n_threads = 2, .max_batch = T};
    int32_t ids[48];
    for (int i = 0; i < T; i++) ids[i] = (int32_t)((i * 37 + 5) % V);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!logits || moe_session_new(&s, m, &so, &err)) {
        CHECK_MSG(0, "session: %s", err.msg);
        goto done;
    }
    if (moe_model_cache(m)) moe_cache_attach(moe_model_cache(m), s);
    if (moe_forward(s, ids, T, logits, 0, &err) || moe_forward(s, ids, 1, logits, 0, &err)) {
        CHECK_MSG(0, "forward: %s", err.msg);
        goto done;
    }
    misses = pool_scratch_misses(s->pool);
done:
    moe_session_free(s);
    moe_model_free(m);
    free(logits);
    return misses;
}

static void fixture(char *path, size_t n, const char *name) {
    snprintf(path, n, "%s/gguf_models/%s", test_fixtures(), name);
}

TEST(scratch_reserved_for_packed_experts) {
    /* routed experts of Q8_0 with a shared expert (qwen2_moe), latent
     * attention (deepseek_v3), dense layers first (glm4_moe) */
    static const char *const names[] = {"qwen3_moe_q8_0.gguf", "qwen2_moe_q8_0.gguf", "deepseek_v3_q8_0.gguf",
                                        "glm4_moe_nomtp_q8_0.gguf"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[512];
        fixture(path, sizeof path, names[i]);
        int64_t packed = 0;
        CHECK_EQ_INT(misses_after_batch(path, 1, 0, &packed), 0);
        CHECK_MSG(packed > 0, "%s: no matrix packed", names[i]);
        CHECK_EQ_INT(misses_after_batch(path, -1, 0, &packed), 0);
        CHECK_EQ_INT(packed, 0);
    }
}

/* The experts read into a cache's slots instead (moe_load_opts.mem). */
TEST(scratch_reserved_with_expert_cache) {
    char path[512];
    fixture(path, sizeof path, "qwen3_moe_q8_0.gguf");
    int64_t packed = 0;
    CHECK_EQ_INT(misses_after_batch(path, -1, (int64_t)1 << 30, &packed), 0);
}
