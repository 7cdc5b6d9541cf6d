/*
 * fuzz_model_gguf.c - libFuzzer target for loading a model from a GGUF file
 * (src/model/model_gguf.c: architecture metadata, tensor names, shapes and
 * types) and running it: a session and one forward of 3 tokens. The input is
 * the .gguf file; its size bounds the model (the weights are in it), so a
 * run stays fast under -max_len. An accepted model must run: a refused
 * forward is an error only with a message.
 */
#include "fuzz_util.h"
#include "moe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.gguf", data, size);
    moe_model *m = NULL;
    moe_err err = {{0}};
    if (moe_model_load(&m, path, &err) != 0) {
        fuzz_rejected("moe_model_load", err.msg);
        return 0;
    }
    const moe_config *c = moe_model_config(m);
    moe_model_stats st;
    moe_model_stats_get(m, &st);
    moe_session *s = NULL;
    moe_session_opts so = {.n_ctx = 4, .n_threads = 1, .max_batch = 4};
    if (moe_session_new(&s, m, &so, &err) != 0) {
        fuzz_rejected("moe_session_new", err.msg);
    } else {
        int V = c->vocab;
        int32_t ids[3] = {0, V / 2, V - 1};
        float *logits = malloc((size_t)3 * (size_t)(V > 0 ? V : 1) * sizeof *logits);
        if (!logits) fuzz_die("logits", "out of memory");
        if (moe_forward(s, ids, 3, logits, 1, &err) != 0) fuzz_rejected("moe_forward", err.msg);
        else if (moe_session_pos(s) != 3) fuzz_die("moe_forward", "position is not 3 after 3 tokens");
        free(logits);
        moe_session_free(s);
    }
    moe_model_free(m);
    return 0;
}
