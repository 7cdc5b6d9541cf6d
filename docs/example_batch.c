/*
 * example_batch.c - several prompts decoded together with the batch API:
 * each prompt is a sequence of one session, the prompts are prefilled in
 * one moe_decode call, then every step decodes one token of each unfinished
 * sequence in one call (the MoE layers read each chosen expert once for all
 * of them). Greedy, so each line equals what example.c prints for that
 * prompt alone. docs/LIBRARY.md explains how to build it:
 *
 *   cc example_batch.c -o example_batch $(pkg-config --cflags --libs moe)
 *   ./example_batch MODEL 16 "Once upon a time" "The capital of France is"
 */
#include <moe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEQ 16

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL N PROMPT [PROMPT...]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int n_new = atoi(argv[2]), n_seq = argc - 3;
    if (n_seq > MAX_SEQ || n_new < 1) {
        fprintf(stderr, "at most %d prompts, N >= 1\n", MAX_SEQ);
        return 2;
    }
    int rc = 1;
    moe_err err = {{0}};
    moe_model *model = NULL;
    moe_tokenizer *tok = NULL;
    moe_session *sess = NULL;
    int32_t *ids[MAX_SEQ] = {0}, *token = NULL, *seq = NULL, *pos = NULL;
    int n_ids[MAX_SEQ] = {0}, total = 0, longest = 0;
    float *logits = NULL;

    if (moe_model_load(&model, path, &err) || moe_tokenizer_load(&tok, path, &err)) goto fail;
    int V = moe_model_config(model)->vocab, eos = moe_tokenizer_eos(tok);
    for (int q = 0; q < n_seq; q++) {
        int32_t *p;
        if (moe_tokenize(tok, argv[3 + q], strlen(argv[3 + q]), 1, &p, &n_ids[q], &err)) goto fail;
        ids[q] = realloc(p, (size_t)(n_ids[q] + n_new) * sizeof *p); /* room for the new tokens */
        if (!ids[q] || n_ids[q] == 0) {
            fprintf(stderr, "prompt %d: no tokens (or out of memory)\n", q);
            free(ids[q] ? ids[q] : p);
            ids[q] = NULL;
            goto done;
        }
        total += n_ids[q];
        if (n_ids[q] > longest) longest = n_ids[q];
    }
    /* one KV cache per prompt; a call holds every prompt's tokens */
    moe_session_opts so = {.n_ctx = longest + n_new, .n_seq = n_seq, .max_batch = total};
    token = malloc((size_t)total * sizeof *token);
    seq = malloc((size_t)total * sizeof *seq);
    pos = malloc((size_t)total * sizeof *pos);
    logits = malloc((size_t)n_seq * (size_t)V * sizeof *logits);
    if (!token || !seq || !pos || !logits) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }
    if (moe_session_new(&sess, model, &so, &err)) goto fail;

    /* prefill: all prompts in one call; logits == NULL in the batch asks for
     * the last token of each sequence, one row each, in batch order */
    int n = 0;
    for (int q = 0; q < n_seq; q++)
        for (int i = 0; i < n_ids[q]; i++) token[n] = ids[q][i], seq[n] = q, pos[n] = i, n++;
    moe_batch b = {n, token, seq, pos, NULL};
    if (moe_decode(sess, &b, logits, &err)) goto fail;
    int live[MAX_SEQ]; /* the sequences of the last call, in batch order */
    for (int q = 0; q < n_seq; q++) live[q] = q;
    int n_live = n_seq;

    for (int step = 0; step < n_new && n_live > 0; step++) {
        /* greedy: the argmax of each row, appended to its sequence */
        n = 0;
        for (int r = 0; r < n_live; r++) {
            int q = live[r], best = 0;
            const float *row = logits + (size_t)r * V;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            if (best == eos) continue; /* this sequence ends */
            ids[q][n_ids[q]] = best;
            token[n] = best, seq[n] = q, pos[n] = moe_seq_pos(sess, q), n++;
            n_ids[q]++;
        }
        n_live = 0;
        for (int i = 0; i < n; i++) live[n_live++] = seq[i];
        if (n == 0 || step + 1 == n_new) break;
        moe_batch d = {n, token, seq, pos, NULL}; /* one new token of each live sequence */
        if (moe_decode(sess, &d, logits, &err)) goto fail;
    }
    for (int q = 0; q < n_seq; q++) {
        char *text = NULL;
        size_t len = 0;
        if (moe_detokenize(tok, ids[q], n_ids[q], 1, &text, &len, &err)) goto fail;
        printf("%d: %s\n", q, text);
        free(text);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "error: %s\n", err.msg);
done:
    for (int q = 0; q < n_seq; q++) free(ids[q]);
    free(token);
    free(seq);
    free(pos);
    free(logits);
    moe_session_free(sess);
    moe_tokenizer_free(tok);
    moe_model_free(model);
    return rc;
}
