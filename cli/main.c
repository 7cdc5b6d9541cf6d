/*
 * main.c - `moe`: dispatch the first argument to a command (cmd_*.c).
 */
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"info", cmd_info, "describe a model: architecture, experts, parameters, dtypes, memory"},
    {"logits", cmd_logits, "raw float32 logits for a list of token ids"},
    {"generate", cmd_generate, "generate text from a prompt"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"detokenize", cmd_detokenize, "print the text of a list of token ids"},
    {"chat", cmd_chat, "chat with a model in the terminal (its chat template, streamed replies)"},
    {"template", cmd_template, "print the prompt a conversation becomes under the model's chat template"},
    {"bench", cmd_bench, "prefill and decode speed against this machine's limits"},
    {"init", cmd_init, "write a random-weight model shaped like a real one"},
    {"tokenizer", cmd_tokenizer, "train a byte-level BPE tokenizer on text files"},
    {"data", cmd_data, "tokenize text files into train/val token shards"},
    {"train", cmd_train, "train an MoE model on token shards (checkpoints, resume)"},
    {"lora", cmd_lora, "fold a LoRA adapter (peft layout) into its base model"},
    {"route", cmd_route, "where the routers send tokens: a text traced, or counts over a shard"},
    {"ppl", cmd_ppl, "perplexity on a text; KL and top-1 agreement against a reference model"},
    {"report", cmd_report, "one HTML page of a training run: losses, expert load, routing"},
    {"convert", cmd_convert, "convert between a Hugging Face directory and a GGUF file"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server with continuous batching"},
    {"quantize", cmd_quantize, "write a quantized GGUF (q8_0 .. q4_k, mxfp4, or per-expert mixed)"},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

static void usage(FILE *f) {
    fprintf(f,
            "usage: moe COMMAND [options]\n\n"
            "Run, train, quantize and inspect Mixture-of-Experts language models (mixtral,\n"
            "qwen2_moe, qwen3_moe, olmoe, gpt_oss; qwen3_next and qwen3_5_moe all but train)\n"
            "from Hugging Face safetensors directories or GGUF files.\n"
            "\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nMODEL is a directory with config.json, *.safetensors and (for text)\n"
            "tokenizer.json, or a .gguf file. A model larger than memory runs with\n"
            "--mem SIZE (logits, generate, serve, bench, ppl, route): its routed experts are\n"
            "read from the file on demand into SIZE bytes (docs/CACHE.md); --mem-fallback TYPE\n"
            "keeps a TYPE copy of every expert inside SIZE, used instead of waiting for a read\n"
            "(off by default; changes the logits).\n"
            "'moe COMMAND --help' describes a command; 'moe --version'.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *a = argv[1];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(a, "--version") || !strcmp(a, "-V") || !strcmp(a, "version")) {
        printf("moe %s\n", MOE_VERSION);
        return 0;
    }
    if (!strcmp(a, "help")) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        for (int i = 0; i < N_COMMANDS; i++) {
            if (!strcmp(argv[2], commands[i].name)) {
                char *av[] = {argv[2], "--help", NULL};
                return commands[i].run(2, av);
            }
        }
        fprintf(stderr, "moe: unknown command '%s' (run 'moe --help' for the list)\n", argv[2]);
        return 2;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(a, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    if (a[0] == '-')
        fprintf(stderr, "moe: unknown option '%s' (run 'moe --help')\n", a);
    else
        fprintf(stderr, "moe: unknown command '%s' (run 'moe --help' for the list)\n", a);
    return 2;
}
