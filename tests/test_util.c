/*
 * test_util.c - helpers shared by the test files (test_util.h).
 */
#include "test_util.h"

#include <stdlib.h>

#include "base/mapfile.h"
#include "moe.h"
#include "test.h"

cJSON *test_load_json(const char *path) {
    char *buf;
    size_t len;
    moe_err err;
    if (read_file(path, (size_t)64 << 20, &buf, &len, &err) != 0) return NULL;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    return j;
}

float *test_model_logits(const char *path, const int32_t *ids, int n, int *V) {
    moe_model *m = NULL;
    moe_session *s = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, path, &err)) {
        test_fail_at(__FILE__, __LINE__, "load %s: %s", path, err.msg);
        return NULL;
    }
    *V = moe_model_config(m)->vocab;
    moe_session_opts o = {.n_ctx = n < 64 ? 64 : n, .n_threads = 2};
    float *lg = malloc(sizeof(float) * (size_t)n * (size_t)*V);
    if (!lg || moe_session_new(&s, m, &o, &err) || moe_forward(s, ids, n, lg, 1, &err)) {
        test_fail_at(__FILE__, __LINE__, "run %s: %s", path, err.msg);
        free(lg);
        lg = NULL;
    }
    moe_session_free(s);
    moe_model_free(m);
    return lg;
}
