/*
 * cmd_ppl.c - `moe ppl MODEL (--text FILE | --ids LIST) [--ref MODEL]`:
 * perplexity of a model on a text and, against a reference model (the F32 or
 * BF16 original of a quantized file), the mean and largest KL divergence of
 * its next-token distributions and how often both pick the same top token.
 * This is the measure of what a quantization costs.
 *
 * The tokens are cut into windows of --ctx; each window starts from an empty
 * cache and every position but the last predicts the next token, so a
 * window of C tokens scores C - 1 positions. A window longer than a model's
 * max_position_embeddings is scored all the same, with a warning. Progress
 * goes to stderr only when it is a terminal. --chunk N feeds each window to
 * the model N tokens per forward call, each call continuing the previous
 * ones' cache (1: token by token, as decoding does); the logits are those of
 * one whole-window call up to floating-point rounding.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "moe_score.h"
#include "moe_train.h"

#define PPL_MAX_TEXT (256u << 20) /* bytes of text read at most */

typedef struct ppl_model {
    moe_model *m;
    moe_lora *lora; /* --lora on MODEL, else NULL */
    moe_session *s;
    float *logits; /* [ctx][V] */
} ppl_model;

static int ppl_open(const char *path, const char *lora_dir, int ctx, int threads,
                    const moe_load_opts *lo, ppl_model *p) {
    moe_err err = {{0}};
    if (cli_load_model_opts("ppl", path, lo, &p->m) || cli_apply_lora("ppl", p->m, lora_dir, &p->lora))
        return -1;
    const int V = moe_model_config(p->m)->vocab;
    moe_session_opts so = {.n_ctx = ctx, .n_threads = threads, .max_batch = ctx < 256 ? ctx : 256};
    if (moe_session_new(&p->s, p->m, &so, &err)) {
        cli_error("ppl", "%s: %s", path, err.msg);
        return -1;
    }
    cli_cache_attach(p->m, p->s);
    p->logits = malloc((size_t)ctx * (size_t)V * sizeof *p->logits);
    if (!p->logits) {
        cli_error("ppl", "out of memory for %d x %d logits", ctx, V);
        return -1;
    }
    return 0;
}

static void ppl_close(ppl_model *p) {
    free(p->logits);
    moe_session_free(p->s);
    moe_model_free(p->m);
    moe_lora_free(p->lora);
}

/* Logits of every position of ids[0..n) into p->logits, from an empty
 * cache, chunk tokens per forward call (0 = all n in one call). */
static int ppl_run(ppl_model *p, const int32_t *ids, int n, int chunk, const char *path) {
    moe_err err = {{0}};
    const size_t V = (size_t)moe_model_config(p->m)->vocab;
    moe_session_reset(p->s);
    if (chunk <= 0 || chunk > n) chunk = n;
    for (int i = 0; i < n; i += chunk) {
        const int len = n - i < chunk ? n - i : chunk;
        if (moe_forward(p->s, ids + i, len, p->logits + (size_t)i * V, 1, &err)) {
            cli_error("ppl", "%s: %s", path, err.msg);
            return -1;
        }
    }
    cli_cache_tokens(p->m, n);
    return 0;
}

/* Token ids of --text (model's tokenizer, no special tokens added) or --ids. */
static int ppl_ids(const char *tok_path, const char *text_path, const char *ids_s, int32_t **ids,
                   int *n) {
    if (ids_s) return cli_parse_ids("ppl", "--ids", ids_s, ids, n);
    moe_err err = {{0}};
    char *text = NULL;
    size_t len = 0;
    if (cli_read_file(text_path, PPL_MAX_TEXT, &text, &len, &err)) {
        cli_error("ppl", "--text: %s", err.msg);
        return -1;
    }
    moe_tokenizer *tok = NULL;
    int rc = -1;
    if (cli_load_tokenizer("ppl", tok_path, &tok)) goto done;
    if (moe_tokenize(tok, text, len, 0, ids, n, &err)) {
        cli_error("ppl", "tokenizing %s: %s", text_path, err.msg);
        goto done;
    }
    rc = 0;
done:
    moe_tokenizer_free(tok);
    free(text);
    return rc;
}

int cmd_ppl(int argc, char **argv) {
    const char *text_path = NULL, *ids_s = NULL, *ref_path = NULL, *tok_path = NULL;
    int ctx = 512, max_tokens = 0, threads = 0, json = 0, chunk = 0;
    cli_cache cc = CLI_CACHE_INIT;
    const char *lora_dir = NULL;
    const arg_opt opts[] = {
        {"--text", NULL, ARG_STR, &text_path, 0, 0, 0, "FILE", "score this text (the model's tokenizer)"},
        {"--ids", NULL, ARG_STR, &ids_s, 0, 0, 0, "1,2,3", "score these token ids instead"},
        {"--ref", NULL, ARG_STR, &ref_path, 0, 0, 0, "MODEL", "reference model: KL divergence and top-1 agreement"},
        {"--tokenizer", NULL, ARG_STR, &tok_path, 0, 0, 0, "PATH", "tokenizer for --text (default: MODEL's)"},
        {"--ctx", "-c", ARG_INT, &ctx, 2, 1 << 20, 0, "N", "tokens per window (default 512)"},
        {"--chunk", NULL, ARG_INT, &chunk, 1, 1 << 20, 0, "N", "tokens per forward call, 1 = one at a time as in decoding (default: the whole window)"},
        {"--max-tokens", "-n", ARG_INT, &max_tokens, 0, 1 << 30, 0, "N", "score at most the first N tokens (0 = all)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--json", NULL, ARG_FLAG, &json, 0, 0, 0, NULL, "one JSON object instead of text"},
        ARG_CACHE(&cc),
        {"--lora", NULL, ARG_STR, &lora_dir, 0, 0, 0, "DIR",
         "apply a peft LoRA adapter directory to MODEL (not to --ref)"},
    };
    const arg_cmd c = {
        "ppl", "MODEL (--text FILE | --ids LIST) [--ref MODEL] [options]",
        "Perplexity of MODEL on a text; with --ref, the mean KL(ref || MODEL) of the\n"
        "next-token distributions and the top-1 agreement (how a quantized model\n"
        "differs from its original).",
        "The tokens are cut into windows of --ctx tokens; each window starts from an\n"
        "empty cache and scores its positions but the last (C - 1 per window).\n"
        "--chunk N runs a window through the model N tokens per forward call, each\n"
        "call continuing the cache of the ones before (1: token by token, as in\n"
        "decoding); the scores equal the whole-window ones up to rounding.\n"
        "Both models must have the same vocabulary. KL is in nats. A window longer than\n"
        "a model's max_position_embeddings is scored, with a warning: the positions\n"
        "past it were never trained. Progress is shown when stderr is a terminal.\n"
        "--mem gives each model (MODEL and --ref) an expert cache of that size; its\n"
        "statistics go to stderr (and under \"cache\" with --json).",
        opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("ppl", &cc, &lo)) return 2;
    if (!text_path == !ids_s) {
        cli_error("ppl", "give exactly one of --text FILE and --ids LIST");
        return 2;
    }

    int rc = 1, n = 0;
    int32_t *ids = NULL;
    ppl_model mod = {0}, ref = {0};
    moe_score_acc acc = {0};
    if (ppl_ids(tok_path ? tok_path : pos[0], text_path, ids_s, &ids, &n)) goto done;
    if (max_tokens > 0 && n > max_tokens) n = max_tokens;
    if (n < 2) {
        cli_error("ppl", "need at least 2 tokens to score (got %d)", n);
        rc = 2;
        goto done;
    }
    if (ctx > n) ctx = n;
    if (ppl_open(pos[0], lora_dir, ctx, threads, &lo, &mod)) goto done;
    cli_warn_positions("ppl", pos[0], mod.m, ctx);
    const int V = moe_model_config(mod.m)->vocab;
    for (int i = 0; i < n; i++) {
        if (ids[i] >= V) {
            cli_error("ppl", "token id %d at position %d is out of the model's vocabulary [0, %d)",
                      ids[i], i, V);
            rc = 2;
            goto done;
        }
    }
    if (ref_path) {
        if (ppl_open(ref_path, NULL, ctx, threads, &lo, &ref)) goto done;
        cli_warn_positions("ppl", ref_path, ref.m, ctx);
        int rv = moe_model_config(ref.m)->vocab;
        if (rv != V) {
            cli_error("ppl", "vocabularies differ: %s has %d tokens, %s has %d", pos[0], V,
                      ref_path, rv);
            rc = 2;
            goto done;
        }
        acc.cap = n;
        acc.kl = malloc((size_t)n * sizeof *acc.kl);
        if (!acc.kl) {
            cli_error("ppl", "out of memory");
            goto done;
        }
    }

    const int progress = !json && isatty(STDERR_FILENO);
    int windows = 0;
    for (int w = 0; w + 1 < n; w += ctx) {
        int len = n - w < ctx ? n - w : ctx;
        if (len < 2) break;
        if (ppl_run(&mod, ids + w, len, chunk, pos[0])) goto done;
        if (ref_path && ppl_run(&ref, ids + w, len, chunk, ref_path)) goto done;
        for (int i = 0; i + 1 < len; i++)
            moe_score_add(&acc, mod.logits + (size_t)i * V,
                      ref_path ? ref.logits + (size_t)i * V : NULL, V, ids[w + i + 1]);
        windows++;
        if (progress)
            fprintf(stderr, "\rmoe ppl: window %d, %lld positions scored", windows,
                    (long long)acc.n);
    }
    if (progress) fputc('\n', stderr);

    const double nll = acc.nll / (double)acc.n;
    if (json) {
        printf("{\"model\": ");
        cli_json_str(stdout, pos[0]);
        printf(", \"positions\": %lld, \"windows\": %d, \"ctx\": %d, \"chunk\": %d, "
               "\"nll\": %.6f, \"perplexity\": %.6f",
               (long long)acc.n, windows, ctx, chunk > 0 && chunk < ctx ? chunk : ctx, nll, exp(nll));
        if (ref_path) {
            const double rnll = acc.ref_nll / (double)acc.n;
            printf(", \"ref\": ");
            cli_json_str(stdout, ref_path);
            printf(", \"ref_nll\": %.6f, \"ref_perplexity\": %.6f, \"kl_mean\": %.8f, "
                   "\"kl_max\": %.8f, \"kl_p99\": %.8f, \"top1_agreement\": %.6f",
                   rnll, exp(rnll), acc.kl_sum / (double)acc.n, acc.kl_max,
                   moe_score_kl_quantile(&acc, 0.99), (double)acc.top1_same / (double)acc.n);
        }
        if (moe_model_cache(mod.m)) {
            printf(", \"cache\": ");
            cli_cache_json(mod.m, stdout);
            if (ref.m && moe_model_cache(ref.m)) {
                printf(", \"ref_cache\": ");
                cli_cache_json(ref.m, stdout);
            }
        }
        printf("}\n");
    } else {
        printf("positions     %lld (%d window%s of up to %d tokens)\n", (long long)acc.n, windows,
               windows == 1 ? "" : "s", ctx);
        printf("perplexity    %.4f (mean NLL %.5f nats)\n", exp(nll), nll);
        if (ref_path) {
            const double rnll = acc.ref_nll / (double)acc.n;
            printf("reference     %.4f (mean NLL %.5f nats)\n", exp(rnll), rnll);
            printf("KL(ref||model) mean %.3g nats, p99 %.3g, max %.3g\n",
                   acc.kl_sum / (double)acc.n, moe_score_kl_quantile(&acc, 0.99), acc.kl_max);
            printf("top-1 agree   %.2f%% (%lld of %lld)\n",
                   100.0 * (double)acc.top1_same / (double)acc.n, (long long)acc.top1_same,
                   (long long)acc.n);
        }
    }
    cli_cache_line("ppl", mod.m, stderr);
    if (ref.m) cli_cache_line("ppl", ref.m, stderr);
    rc = 0;
done:
    free(acc.kl);
    free(ids);
    ppl_close(&ref);
    ppl_close(&mod);
    return rc;
}
