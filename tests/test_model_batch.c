/*
 * test_model_batch.c - several sequences in one forward call (the path
 * training and batched evaluation use) give each sequence the logits it gets
 * alone: attention never crosses sequences, the MoE dispatch mixes their
 * tokens freely.
 */
#include "test.h"

#include <stdlib.h>

#include "model/model.h"

static void check_batch(const char *variant) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/%s", test_fixtures(), variant);
    moe_err err = {{0}};
    moe_model *m = NULL;
    if (moe_model_load(&m, dir, &err)) {
        test_fail_at(__FILE__, __LINE__, "%s: %s", variant, err.msg);
        return;
    }
    const int B = 3, T = 20;
    int V = moe_model_config(m)->vocab;
    int32_t ids[3 * 20];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    moe_session *sb = NULL, *s1 = NULL;
    moe_session_opts ob = {.n_ctx = T, .n_threads = 2, .max_batch = B * T, .n_seq = B};
    moe_session_opts o1 = {.n_ctx = T, .n_threads = 1};
    CHECK(moe_session_new(&sb, m, &ob, &err) == 0);
    CHECK(moe_session_new(&s1, m, &o1, &err) == 0);
    float *lb = malloc(sizeof(float) * (size_t)(B * T * V));
    float *l1 = malloc(sizeof(float) * (size_t)(T * V));
    CHECK(model_forward_seqs(sb, ids, B, T, lb, &err) == 0);
    for (int b = 0; b < B; b++) {
        moe_session_reset(s1);
        CHECK(moe_forward(s1, ids + b * T, T, l1, 1, &err) == 0);
        double worst = 0, scale = 1e-30;
        for (int i = 0; i < T * V; i++) {
            double d = fabs((double)lb[(size_t)b * T * V + i] - l1[i]);
            if (d > worst) worst = d;
            if (fabs(l1[i]) > scale) scale = fabs(l1[i]);
        }
        CHECK_MSG(worst / scale <= 1e-5, "%s seq %d: batched vs alone rel err %g", variant, b,
                  worst / scale);
    }
    /* a batch that does not fit is refused */
    CHECK(model_forward_seqs(sb, ids, B + 1, T, lb, &err) == -1);
    CHECK_STR_CONTAINS(err.msg, "does not fit");
    free(lb);
    free(l1);
    moe_session_free(sb);
    moe_session_free(s1);
    moe_model_free(m);
}

TEST(model_batch_mixtral_swa) { check_batch("mixtral_swa"); }
TEST(model_batch_qwen2_moe_dense) { check_batch("qwen2_moe_dense"); }
TEST(model_batch_olmoe_base) { check_batch("olmoe_base"); }
