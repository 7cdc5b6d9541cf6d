/*
 * convert.h - what `moe convert` (cmd_convert.c) and `moe quantize`
 * (cmd_quantize.c) share: checking the output path, a progress line, and
 * reporting the file written.
 */
#ifndef MOE_CLI_CONVERT_H
#define MOE_CLI_CONVERT_H

#include <stdint.h>

#include "model/quantize.h"

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

/* Plan and write m as a GGUF at out; prints a one-line summary. The
 * vocabulary: the tokenizer of tok (a directory, or a tokenizer.json in
 * one), else of IN when it is a directory; a GGUF IN keeps its own (one
 * without a vocabulary gets tok's). Then the written file's tokenizer is
 * checked against tokenizer.json's. 0 or 1. */
int convert_write_gguf(const char *cmd, const struct moe_model *m, const qz_plan *plan,
                       const char *in, const char *out, int threads, const char *tok);

#endif
