/*
 * test_session_kernels.c - the kernel path is the session's own: a session
 * asks for one (moe_session_opts.kernels) and runs it whatever other
 * sessions run. Two sessions with different paths, on two threads at the
 * same time, each give bit for bit the logits they give alone; an unknown
 * path, or one the CPU lacks, is an error.
 */
#include "test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "moe_bench.h"

#define N_IDS 12
#define ROUNDS 4
static const int32_t IDS[N_IDS] = {1, 5, 9, 2, 7, 3, 11, 4, 8, 6, 10, 12};

static moe_model *load(const char *rel) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", test_fixtures(), rel);
    moe_err err = {{0}};
    moe_model *m = NULL;
    if (moe_model_load(&m, path, &err)) test_fail_at(__FILE__, __LINE__, "%s: %s", rel, err.msg);
    return m;
}

typedef struct run {
    moe_model *m;
    const char *kernels; /* the session's path */
    float *logits;       /* [ROUNDS][N_IDS][V] */
    int rounds, rc;
    char msg[sizeof(((moe_err *)0)->msg)];
    const char *isa, *qpath; /* what the session reports it runs */
} run;

/* rounds fresh forwards of IDS (every position's logits), each from an
 * empty cache, on a session of r->kernels with two threads. */
static void *run_session(void *arg) {
    run *r = arg;
    int V = moe_model_config(r->m)->vocab;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 32, .n_threads = 2, .kernels = r->kernels};
    r->rc = moe_session_new(&s, r->m, &o, &err);
    if (r->rc == 0) r->isa = moe_session_kernels_isa(s), r->qpath = moe_session_quant_path(s);
    for (int k = 0; r->rc == 0 && k < r->rounds; k++) {
        moe_session_reset(s);
        r->rc = moe_forward(s, IDS, N_IDS, r->logits + (size_t)k * N_IDS * V, 1, &err);
    }
    if (r->rc) snprintf(r->msg, sizeof r->msg, "%s", err.msg);
    moe_session_free(s);
    return NULL;
}

/* differs: the model's logits differ between the two paths somewhere (a
 * quantized model whose rows are one 32-block may not: the many-row
 * AVX-512 product adds each block's exact integer sum times its scales, as
 * the scalar reference does; there the sessions' own report must do). */
static void check_concurrent(const char *rel, int differs) {
    moe_model *m = load(rel);
    if (!m) return;
    int V = moe_model_config(m)->vocab;
    size_t one = (size_t)N_IDS * V;
    /* the scalar reference against the fastest path this CPU has */
    const char *paths[2] = {"scalar", isa_name(kernels_default()->isa)};
    run alone[2], both[2];
    for (int i = 0; i < 2; i++) {
        alone[i] = (run){m, paths[i], malloc(sizeof(float) * one), 1, 0, "", NULL, NULL};
        both[i] = (run){m, paths[i], malloc(sizeof(float) * one * ROUNDS), ROUNDS, 0, "", NULL, NULL};
        run_session(&alone[i]);
        CHECK_MSG(alone[i].rc == 0, "%s %s alone: %s", rel, paths[i], alone[i].msg);
        if (alone[i].rc == 0)
            CHECK_MSG(strcmp(alone[i].isa, paths[i]) == 0, "%s: a session asking for %s runs %s", rel, paths[i],
                      alone[i].isa);
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&th[i], NULL, run_session, &both[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(both[i].rc == 0, "%s %s concurrent: %s", rel, paths[i], both[i].msg);
        for (int k = 0; both[i].rc == 0 && k < ROUNDS; k++)
            CHECK_MSG(memcmp(both[i].logits + k * one, alone[i].logits, sizeof(float) * one) == 0,
                      "%s: %s beside %s, round %d: logits differ from the session alone", rel,
                      paths[i], paths[1 - i], k);
    }
    /* the two paths are really different code (rounding differs somewhere) */
    if (strcmp(paths[0], paths[1]) != 0 && alone[0].rc == 0 && alone[1].rc == 0)
        CHECK_MSG(strcmp(alone[0].qpath, alone[1].qpath) != 0, "%s: %s and %s both run quantized products on %s",
                  rel, paths[0], paths[1], alone[0].qpath);
    if (differs && strcmp(paths[0], paths[1]) != 0)
        CHECK_MSG(memcmp(alone[0].logits, alone[1].logits, sizeof(float) * one) != 0,
                  "%s: %s and %s gave identical logits: the path was not switched", rel, paths[0],
                  paths[1]);
    for (int i = 0; i < 2; i++) free(alone[i].logits), free(both[i].logits);
    moe_model_free(m);
}

TEST(session_kernels_concurrent_f32) { check_concurrent("models/mixtral_base", 1); }
TEST(session_kernels_concurrent_q8_0) { check_concurrent("gguf_models/qwen2_moe_q8_0.gguf", 0); }

TEST(session_kernels_option_checked) {
    moe_model *m = load("models/mixtral_base");
    if (!m) return;
    moe_session *s = NULL;
    moe_err err = {{0}};
    moe_session_opts o = {.n_ctx = 16, .n_threads = 1, .kernels = "avx3"};
    CHECK(moe_session_new(&s, m, &o, &err) == -1 && s == NULL);
    CHECK_MSG(strstr(err.msg, "avx3") && strstr(err.msg, "unknown"), "message: %s", err.msg);
    const kern_cpu *cpu = kernels_cpu();
    static const char *names[] = {"scalar", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        int has = i == 0 || (i == 1 && cpu->avx2) || (i == 2 && cpu->avx512);
        err.msg[0] = 0;
        o.kernels = names[i];
        int rc = moe_session_new(&s, m, &o, &err);
        CHECK_MSG(rc == (has ? 0 : -1), "%s: rc %d (%s)", names[i], rc, err.msg);
        if (!has) CHECK_MSG(strstr(err.msg, "lacks") != NULL, "message: %s", err.msg);
        moe_session_free(s);
        s = NULL;
    }
    moe_model_free(m);
}
