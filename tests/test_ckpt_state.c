/*
 * test_ckpt_state.c - reading a checkpoint's trainer_state.json
 * (ckpt_read_state): a state `moe train` writes is read back; a step that
 * is not a whole number an int64_t holds, a bad rng word or a missing field
 * is refused with the file named (inputs the fuzz target found included).
 * And the config.json a checkpoint carries (ckpt_config_f32): the source's
 * text with its dtype float32, floats kept as written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "train/checkpoint.h"

#define RNG "[\"60c2afb4a09d4ab8\", \"7d7bbf4e2f71807c\", \"e4697a2840604419\", \"041525683877d2d7\"]"

static int read_state(const char *step, const char *rng0, ckpt_state *st, moe_err *err) {
    char path[1024], text[1024];
    snprintf(path, sizeof path, "%s/trainer_state.json", test_tmpdir());
    snprintf(text, sizeof text,
             "{\"step\": %s, \"data_rng\": %s, \"noise_rng\": " RNG ", \"batch\": 2, \"seq\": 16, "
             "\"accum\": 1, \"loss\": 6.2}",
             step, rng0);
    FILE *f = fopen(path, "wb");
    if (!f) return -2;
    fputs(text, f);
    fclose(f);
    memset(st, 0, sizeof *st);
    return ckpt_read_state(test_tmpdir(), st, err);
}

TEST(ckpt_read_state_good_and_bad) {
    ckpt_state st;
    moe_err err = {{0}};
    CHECK_MSG(read_state("12", RNG, &st, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(st.step, 12);
    CHECK_EQ_INT(st.batch, 2);
    CHECK_EQ_INT(st.seq, 16);
    CHECK(st.rng[0] == 0x60c2afb4a09d4ab8ull && st.noise_rng[3] == 0x041525683877d2d7ull);
    CHECK_MSG(read_state("9007199254740992", RNG, &st, &err) == 0, "%s", err.msg);
    CHECK(st.step == 9007199254740992ll);
    const char *bad_steps[] = {"1e300", "-1", "1.5", "9007199254740994", "\"3\"", "null"};
    for (size_t i = 0; i < sizeof bad_steps / sizeof *bad_steps; i++) {
        err.msg[0] = 0;
        CHECK_MSG(read_state(bad_steps[i], RNG, &st, &err) != 0, "step %s accepted", bad_steps[i]);
        /* a number out of range is named as the step; any other type is no state */
        CHECK_STR_CONTAINS(err.msg, "trainer_state.json: ");
        CHECK_MSG(strstr(err.msg, "\"step\"") || strstr(err.msg, "not a valid trainer state"),
                  "step %s: %s", bad_steps[i], err.msg);
    }
    CHECK(read_state("1", "[\"60c2afb4a09d4ab\", \"0\", \"0\", \"0\"]", &st, &err) != 0);
    CHECK(read_state("1", "[\"60c2afb4a09d4abx\", \"7d7bbf4e2f71807c\", \"e4697a2840604419\", "
                          "\"041525683877d2d7\"]",
                     &st, &err) != 0);
    CHECK(read_state("1", "[1, 2, 3, 4]", &st, &err) != 0);
}

static int config_f32(const char *text, char **out, moe_err *err) {
    char path[1024];
    snprintf(path, sizeof path, "%s/config_src.json", test_tmpdir());
    FILE *f = fopen(path, "wb");
    if (!f) return -2;
    fputs(text, f);
    fclose(f);
    return ckpt_config_f32(path, out, err);
}

TEST(ckpt_config_f32_keeps_the_source_text) {
    moe_err err = {{0}};
    char *out = NULL;
    CHECK(config_f32("{\"model_type\": \"gpt_oss\", \"torch_dtype\": \"bfloat16\", "
                     "\"swiglu_limit\": 7.0, \"dtype\" : \"bfloat16\", \"note\": \"dtype\"}",
                     &out, &err) == 0);
    CHECK_MSG(out && !strcmp(out, "{\"model_type\": \"gpt_oss\", \"torch_dtype\": \"float32\", "
                                  "\"swiglu_limit\": 7.0, \"dtype\" : \"float32\", \"note\": \"dtype\"}"),
              "%s", out ? out : "(null)");
    free(out);
    out = NULL;
    CHECK(config_f32("{\"model_type\": \"mixtral\"}", &out, &err) == 0);
    CHECK_MSG(out && strstr(out, "\"torch_dtype\": \"float32\",") && strstr(out, "\"model_type\": \"mixtral\""),
              "%s", out ? out : "(null)");
    free(out);
    out = NULL;
    CHECK(config_f32("{\"quantization_config\": {\"quant_method\": \"mxfp4\"}}", &out, &err) == -1);
    CHECK(strstr(err.msg, "quantization_config") != NULL && out == NULL);
    CHECK(config_f32("{\"torch_dtype\": null}", &out, &err) == -1);
    CHECK(config_f32("[1]", &out, &err) == -1);
}
