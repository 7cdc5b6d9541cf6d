/*
 * example.c - libmoe from C: load a model, tokenize a prompt, run the
 * forward pass with moe_forward and pick each next token greedily.
 * docs/LIBRARY.md explains how to build it:
 *
 *   cc example.c -o example $(pkg-config --cflags --libs moe)
 *   ./example MODEL_DIR "Once upon a time" 16
 *
 * MODEL_DIR holds config.json, model.safetensors and tokenizer.json (a .gguf
 * file works too). Prints the prompt's ids, the generated ids and the text.
 */
#include <moe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT [N]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *prompt = argv[2];
    int n_new = argc > 3 ? atoi(argv[3]) : 16;

    int rc = 1;
    moe_err err = {{0}}; /* every call that can fail fills this */
    moe_model *model = NULL;
    moe_tokenizer *tok = NULL;
    moe_session *sess = NULL;
    moe_sampler *smp = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    char *text = NULL;
    size_t text_len = 0;
    int n_prompt = 0;

    if (moe_model_load(&model, path, &err) || moe_tokenizer_load(&tok, path, &err)) goto fail;
    const moe_config *cfg = moe_model_config(model);

    /* add_special = 1: the tokenizer's BOS, as transformers adds it */
    if (moe_tokenize(tok, prompt, strlen(prompt), 1, &ids, &n_prompt, &err)) goto fail;
    if (n_prompt == 0) {
        fprintf(stderr, "the prompt has no tokens\n");
        goto done;
    }

    /* one sequence; the KV cache holds the prompt and what is generated */
    moe_session_opts so = {.n_ctx = n_prompt + n_new, .n_threads = 0};
    if (moe_session_new(&sess, model, &so, &err)) goto fail;

    moe_sampler_opts sp = {.temp = 0.0f, .top_k = 0, .top_p = 1.0f, .seed = 0}; /* greedy */
    if (moe_sampler_new(&smp, &sp, cfg->vocab, &err)) goto fail;

    /* room for the prompt and every new token, to decode them at the end */
    int32_t *all = realloc(ids, (size_t)(n_prompt + n_new) * sizeof *all);
    logits = malloc((size_t)cfg->vocab * sizeof *logits);
    if (!all || !logits) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    ids = all;

    printf("prompt ids:");
    for (int i = 0; i < n_prompt; i++) printf(" %d", ids[i]);
    printf("\n");

    /* prefill: the whole prompt at once; logits of its last token only */
    if (moe_forward(sess, ids, n_prompt, logits, 0, &err)) goto fail;
    int n = n_prompt;
    const int eos = moe_tokenizer_eos(tok);
    printf("generated ids:");
    while (n < n_prompt + n_new) {
        int next = moe_sample(smp, logits); /* argmax at temperature 0 */
        if (next == eos) break;
        ids[n++] = next;
        printf(" %d", next);
        /* decode: one token, appended to the KV cache */
        if (n < n_prompt + n_new && moe_forward(sess, &ids[n - 1], 1, logits, 0, &err)) goto fail;
    }
    printf("\n");

    if (moe_detokenize(tok, ids, n, 1, &text, &text_len, &err)) goto fail;
    printf("text: %s\n", text);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "error: %s\n", err.msg);
done:
    free(text);
    free(logits);
    free(ids);
    moe_sampler_free(smp);
    moe_session_free(sess);
    moe_tokenizer_free(tok);
    moe_model_free(model);
    return rc;
}
