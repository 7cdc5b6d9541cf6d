/*
 * test_ckpt_state.c - reading a checkpoint's trainer_state.json
 * (ckpt_read_state): a state `moe train` writes is read back; a step that
 * is not a whole number an int64_t holds, a bad rng word or a missing field
 * is refused with the file named (inputs the fuzz target found included).
 */
#include <stdio.h>
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
