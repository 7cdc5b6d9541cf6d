/*
 * llamacpp_tokenize.c - llama.cpp's token ids for texts, with the
 * vocabulary of a GGUF file (loaded vocab-only). Used by
 * tools/check_gguf_vocab.py to check that the vocabularies `moe convert`
 * writes tokenize in llama.cpp as in HF `tokenizers`. Not part of the
 * build: it links a llama.cpp build (see that script).
 *   llamacpp_tokenize MODEL.gguf TEXTS.txt ADD_SPECIAL
 * TEXTS.txt holds texts separated by "\n__ggml_vocab_test__\n" (llama.cpp's
 * test-tokenizer layout); one line of comma-separated ids per text is
 * printed. Special tokens in the text are parsed as special tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

#define SEP "\n__ggml_vocab_test__\n"

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL.gguf TEXTS.txt ADD_SPECIAL\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) return 1;
    buf[n] = 0;
    fclose(f);
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "llama.cpp cannot load %s\n", argv[1]);
        return 1;
    }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int add_special = atoi(argv[3]);
    int cap = 1 << 16;
    llama_token *ids = malloc(sizeof *ids * (size_t)cap);
    for (char *p = buf; p;) {
        char *e = strstr(p, SEP);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int k = llama_tokenize(vocab, p, (int32_t)len, ids, cap, add_special != 0, true);
        if (k < 0) k = 0;
        for (int i = 0; i < k; i++) printf(i ? ",%d" : "%d", ids[i]);
        printf("\n");
        p = e ? e + strlen(SEP) : NULL;
    }
    free(ids);
    free(buf);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
