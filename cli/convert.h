/*
 * convert.h - what `moe convert` (cmd_convert.c) and `moe quantize`
 * (cmd_quantize.c) share: checking the output path, a progress line, and
 * reporting the file written.
 */
#ifndef MOE_CLI_CONVERT_H
#define MOE_CLI_CONVERT_H

#include <stdint.h>

#include "moe_quant.h"

/* OUT (a .gguf file) must not exist unless force, and its directory must
 * exist. 0, or the exit code after printing why. */
int convert_check_out_file(const char *cmd, const char *out, int force);

/* OUT (an HF directory): created if missing; refused if it holds a model
 * (config.json or model.safetensors) unless force. 0 or an exit code. */
int convert_prepare_out_dir(const char *cmd, const char *out, int force);

/* The progress callback (prints "\rmoe CMD: NN%" on a terminal). */
typedef struct convert_progress {
    const char *cmd;
    int show, last;
} convert_progress;
void convert_show_progress(void *user, int64_t done, int64_t total);

/* Write m as a GGUF at out with plan's types; prints a one-line summary.
 * The vocabulary is moe_gguf_vocab_for's (moe_gguf.h) for in and tok; the
 * written file's tokenizer is then checked against tokenizer.json's. 0 or 1. */
int convert_write_gguf(const char *cmd, const moe_model *m, const moe_quant_plan *plan,
                       const char *in, const char *out, int threads, const char *tok);

#endif
