/*
 * cmd_lora.c - `moe lora merge BASE ADAPTER OUT`: fold a peft LoRA adapter
 * (one `moe train --lora-rank` wrote, or peft) into its base model and
 * write a plain model directory (moe_lora_merge in include/moe_train.h).
 */
#include <string.h>

#include "args.h"
#include "cli.h"
#include "moe_train.h"

int cmd_lora(int argc, char **argv) {
    const arg_opt opts[] = {{NULL, NULL, 0, NULL, 0, 0, 0, NULL, NULL}};
    const arg_cmd c = {
        "lora", "merge BASE ADAPTER OUT",
        "LoRA adapters. `merge` writes BASE with ADAPTER folded in (W + alpha/r B A on\n"
        "every targeted weight) to the directory OUT: model.safetensors (the adapted\n"
        "weights in f32, the others as stored), config.json and the tokenizer files.\n"
        "BASE is a Hugging Face directory; ADAPTER holds adapter_config.json and\n"
        "adapter_model.safetensors (peft's layout).",
        "To run a model with an adapter without writing a merged copy, give it to\n"
        "`moe logits`, `moe generate` or `moe ppl` with --lora ADAPTER.",
        opts, 0, 4, 4, "merge BASE ADAPTER OUT"};
    const char *pos[4];
    int np = 0;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    if (strcmp(pos[0], "merge") != 0) {
        cli_error("lora", "unknown subcommand '%s' (there is: merge)", pos[0]);
        return 2;
    }
    moe_err err = {{0}};
    if (moe_lora_merge(pos[1], pos[2], pos[3], &err)) {
        cli_error("lora", "merge: %s", err.msg);
        return 1;
    }
    printf("merged %s into %s: %s\n", pos[2], pos[1], pos[3]);
    return 0;
}
