/*
 * cmd_generate.c - `moe generate MODEL -p TEXT`: tokenize (special tokens as
 * the tokenizer adds them), prefill, then sample and stream the text as it
 * is produced, stopping at EOS or after -n tokens. Speeds go to stderr. A
 * --ctx past the model's positions (max_position_embeddings) is warned about.
 * The text is streamed as stream.c does it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "args.h"
#include "moe_train.h"
#include "cli.h"

#include "stream.h"

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL;
    int n_new = 128, top_k = 40, threads = 0, n_ctx = 0;
    float temp = 0.8f, top_p = 0.95f;
    /* from the clock unless --seed is given; printed at the end to repeat a run */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t seed = (uint64_t)now.tv_sec * 1000000007ull ^ (uint64_t)now.tv_nsec;
    cli_cache cc = CLI_CACHE_INIT;
    const char *lora_dir = NULL;
    const arg_opt opts[] = {
        {"--prompt", "-p", ARG_STR, &prompt, 0, 0, 0, "TEXT", "the prompt (required)"},
        {"--max-tokens", "-n", ARG_INT, &n_new, 0, 1 << 24, 0, "N", "generate at most N tokens (128)"},
        {"--temp", NULL, ARG_FLOAT, &temp, 0, 1e6, 0, "T", "temperature, 0 = greedy (0.8)"},
        {"--top-k", NULL, ARG_INT, &top_k, 0, 1 << 30, 0, "K", "keep the K most likely, 0 = off (40)"},
        {"--top-p", NULL, ARG_FLOAT, &top_p, 0, 1, 1, "P", "nucleus mass in (0, 1], 1 = off (0.95)"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "random seed (default: from the clock)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--ctx", "-c", ARG_INT, &n_ctx, 0, 1 << 24, 0, "N",
         "context positions (0 = the model's, at most 4096)"},
        ARG_CACHE(&cc),
        {"--lora", NULL, ARG_STR, &lora_dir, 0, 0, 0, "DIR",
         "apply a peft LoRA adapter directory (merged into the weights at load)"},
    };
    const arg_cmd c = {"generate", "MODEL -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P] "
                       "[--seed S] [--threads N] [--ctx N]",
                       "Generate text after a prompt, streamed to stdout as it is produced.\n"
                       "Stops at the end-of-sequence token or after N tokens; prefill and decode\n"
                       "speeds are printed to stderr at the end.",
                       "Sampling applies temperature, then top-k, then top-p, as transformers does.\n"
                       "A --ctx longer than the model's max_position_embeddings runs, with a warning:\n"
                       "the positions past it were never trained and usually predict worse.",
                       opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("generate", &cc, &lo)) return 2;
    if (!prompt) {
        cli_error("generate", "-p TEXT is required");
        return 2;
    }
    int rc = 1;
    moe_tokenizer *tok = NULL;
    moe_model *m = NULL;
    moe_lora *lora = NULL;
    moe_session *s = NULL;
    moe_sampler *smp = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    streamer st = {0};
    moe_err err = {{0}};
    int n_prompt = 0;

    if (cli_load_tokenizer("generate", pos[0], &tok)) goto done;
    if (moe_tokenize(tok, prompt, strlen(prompt), 1, &ids, &n_prompt, &err)) {
        cli_error("generate", "tokenizing the prompt: %s", err.msg);
        goto done;
    }
    if (n_prompt == 0) {
        cli_error("generate", "the prompt is empty after tokenization (and the tokenizer adds no BOS)");
        rc = 2;
        goto done;
    }
    if (cli_load_model_opts("generate", pos[0], &lo, &m) ||
        cli_apply_lora("generate", m, lora_dir, &lora))
        goto done;
    const moe_config *cfg = moe_model_config(m);
    moe_sampler_opts so = {.temp = temp, .top_k = top_k, .top_p = top_p, .seed = seed};
    if (moe_sampler_new(&smp, &so, cfg->vocab, &err)) {
        cli_error("generate", "%s", err.msg);
        rc = 2;
        goto done;
    }
    moe_session_opts sopt = {.n_ctx = n_ctx, .n_threads = threads};
    if (moe_session_new(&s, m, &sopt, &err)) {
        cli_error("generate", "%s", err.msg);
        goto done;
    }
    cli_cache_attach(m, s);
    const int ctx = moe_session_ctx(s);
    cli_warn_positions("generate", pos[0], m, ctx);
    if (n_prompt >= ctx) {
        cli_error("generate", "the prompt has %d tokens and the context holds %d (raise --ctx)",
                  n_prompt, ctx);
        rc = 2;
        goto done;
    }
    for (int i = 0; i < n_prompt; i++) {
        if (ids[i] >= cfg->vocab) {
            cli_error("generate", "the tokenizer produced id %d but the model's vocabulary is %d",
                      ids[i], cfg->vocab);
            goto done;
        }
    }
    logits = malloc((size_t)cfg->vocab * sizeof *logits);
    st.tok = tok;
    st.tok_vocab = moe_tokenizer_vocab(tok);
    st.n_ctx_ids = n_prompt < CONTEXT_TOKENS ? n_prompt : CONTEXT_TOKENS;
    st.ids = malloc((size_t)(st.n_ctx_ids + n_new + 1) * sizeof *st.ids);
    if (!logits || !st.ids) {
        cli_error("generate", "out of memory");
        goto done;
    }
    memcpy(st.ids, ids + n_prompt - st.n_ctx_ids, (size_t)st.n_ctx_ids * sizeof *st.ids);
    st.n_ids = st.n_ctx_ids;
    if (moe_detokenize(tok, st.ids, st.n_ids, 1, &st.prefix, &st.prefix_len, &err)) {
        cli_error("generate", "decoding the prompt: %s", err.msg);
        goto done;
    }

    const int eos_tok = moe_tokenizer_eos(tok), eos_cfg = cfg->eos_id;
    double t0 = cli_now();
    if (moe_forward(s, ids, n_prompt, logits, 0, &err)) {
        cli_error("generate", "prefill: %s", err.msg);
        goto done;
    }
    double t_prefill = cli_now() - t0, t_decode = 0;
    int n_gen = 0, n_decode = 0, stop_eos = 0, stop_ctx = 0;
    while (n_gen < n_new) {
        int t = moe_sample(smp, logits);
        if (t == eos_tok || t == eos_cfg) {
            stop_eos = 1;
            break;
        }
        n_gen++;
        /* ids the tokenizer does not know (padding rows of the embedding)
         * are fed to the model but have no text */
        if (t < st.tok_vocab) {
            st.ids[st.n_ids++] = t;
            if (stream_emit(&st, 0, &err)) {
                cli_error("generate", "decoding: %s", err.msg);
                goto done;
            }
        }
        if (n_gen == n_new) break;
        if (moe_session_pos(s) >= ctx) {
            stop_ctx = 1;
            break;
        }
        int32_t in = t;
        double t1 = cli_now();
        if (moe_forward(s, &in, 1, logits, 0, &err)) {
            cli_error("generate", "decode: %s", err.msg);
            goto done;
        }
        t_decode += cli_now() - t1;
        n_decode++;
    }
    if (stream_emit(&st, 1, &err)) {
        cli_error("generate", "decoding: %s", err.msg);
        goto done;
    }
    printf("\n");
    fflush(stdout);
    fprintf(stderr,
            "\nprompt %d tokens, prefill %.2f tok/s (%.3f s) | generated %d tokens, decode %.2f "
            "tok/s | %s | seed %llu\n",
            n_prompt, t_prefill > 0 ? n_prompt / t_prefill : 0.0, t_prefill, n_gen,
            t_decode > 0 ? n_decode / t_decode : 0.0,
            stop_eos ? "stopped at EOS" : stop_ctx ? "context full" : "length limit",
            (unsigned long long)seed);
    cli_cache_tokens(m, n_prompt + n_decode);
    cli_cache_line("generate", m, stderr);
    rc = 0;
done:
    free(st.ids);
    free(st.prefix);
    free(logits);
    free(ids);
    moe_sampler_free(smp);
    moe_session_free(s);
    moe_model_free(m);
    moe_lora_free(lora);
    moe_tokenizer_free(tok);
    return rc;
}
