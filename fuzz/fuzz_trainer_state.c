/*
 * fuzz_trainer_state.c - libFuzzer target for a checkpoint's
 * trainer_state.json (ckpt_read_state, src/train/checkpoint.c): step, the
 * two rng states, batch, seq, accum. The input is the file; it is accepted
 * or refused with a message.
 */
#include "fuzz_util.h"
#include "train/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("trainer_state.json", data, size);
    ckpt_state st;
    moe_err err = {{0}};
    memset(&st, 0, sizeof st);
    if (ckpt_read_state(fuzz_dir(), &st, &err) != 0) fuzz_rejected("ckpt_read_state", err.msg);
    else if (st.step < 0) fuzz_die("ckpt_read_state", "a negative step accepted");
    return 0;
}
