/*
 * cmd_quantize.c - `moe quantize IN OUT.gguf --type T`: a quantized GGUF
 * from an HF directory or a GGUF file.
 *   --type q8_0|q4_0|q4_k|q5_k|q6_k|q2_k|q3_k|iq4_xs|...  one type with llama-quantize's rules
 *       (norms, biases, routers F32; output Q6_K; attn_v / ffn_down bumps
 *       of the _M mixtures; --pure: none of that).
 *   --type mixed  per-expert precision: the experts routed most often (on
 *       --calib text, or counts from `moe route` JSON: --route-stats) at
 *       --high (q8_0), the rest at --low (q4_k), the most used first while
 *       the file fits --budget. A layer whose experts differ is written one
 *       tensor per expert (blk.N.ffn_gate.J.weight ...), which moe loads.
 * The rules, the layout and examples: docs/QUANT.md.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "convert.h"
#include "moe_quant.h"

/* -------------------------------------------------------- routing counts */

typedef struct counts {
    double *c; /* [L][S] pairs routed to each expert */
    int L, S;
    double total;
} counts;

static int counts_init(counts *k, const moe_config *cfg) {
    k->L = cfg->n_layers;
    k->S = 0;
    for (int i = 0; i < cfg->n_layers; i++)
        if (cfg->layer[i].moe && cfg->layer[i].n_experts > k->S) k->S = cfg->layer[i].n_experts;
    k->c = calloc((size_t)k->L * (size_t)(k->S ? k->S : 1), sizeof *k->c);
    k->total = 0;
    return k->c ? 0 : -1;
}

/* A MoE layer index of the model, or -1 (printed). */
static int json_layer(const char *path, const moe_config *cfg, const cJSON *l, int *E) {
    const cJSON *li = cJSON_GetObjectItemCaseSensitive(l, "layer");
    if (!cJSON_IsNumber(li) || li->valuedouble < 0 || li->valuedouble >= cfg->n_layers ||
        li->valuedouble != (double)(int)li->valuedouble) {
        cli_error("quantize", "--route-stats %s: a layer entry has no valid \"layer\" (the "
                  "model has %d layers)", path, cfg->n_layers);
        return -1;
    }
    int i = (int)li->valuedouble;
    if (!cfg->layer[i].moe) {
        cli_error("quantize", "--route-stats %s: layer %d is not an MoE layer of this model",
                  path, i);
        return -1;
    }
    *E = cfg->layer[i].n_experts;
    return i;
}

/* `moe route` JSON: --data (layers[].counts) or --text (tokens[].layers[].experts). */
static int counts_from_json(counts *k, const char *path, const moe_config *cfg) {
    char *text = NULL;
    size_t len = 0;
    moe_err err = {{0}};
    if (cli_read_file(path, (size_t)1 << 31, &text, &len, &err)) {
        cli_error("quantize", "--route-stats: %s", err.msg);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = -1;
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(root, "mode");
    if (!root || !cJSON_IsObject(root) || !cJSON_IsString(mode)) {
        cli_error("quantize", "--route-stats %s: not the JSON of 'moe route' (%s)", path,
                  root ? "no \"mode\"" : "invalid JSON");
        goto done;
    }
    if (!strcmp(mode->valuestring, "data")) {
        const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers"), *l;
        if (!cJSON_IsArray(layers)) {
            cli_error("quantize", "--route-stats %s: no \"layers\" array", path);
            goto done;
        }
        cJSON_ArrayForEach(l, layers) {
            int E, i = json_layer(path, cfg, l, &E);
            if (i < 0) goto done;
            const cJSON *cn = cJSON_GetObjectItemCaseSensitive(l, "counts"), *x;
            if (!cJSON_IsArray(cn) || cJSON_GetArraySize(cn) != E) {
                cli_error("quantize", "--route-stats %s: layer %d: \"counts\" must be an array "
                          "of %d numbers (the layer's experts)", path, i, E);
                goto done;
            }
            int e = 0;
            cJSON_ArrayForEach(x, cn) {
                if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > 1e18) {
                    cli_error("quantize", "--route-stats %s: layer %d: count %d is not a "
                              "non-negative number", path, i, e);
                    goto done;
                }
                k->c[i * k->S + e++] += x->valuedouble;
                k->total += x->valuedouble;
            }
        }
    } else if (!strcmp(mode->valuestring, "text")) {
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, "tokens"), *t;
        if (!cJSON_IsArray(toks)) {
            cli_error("quantize", "--route-stats %s: no \"tokens\" array", path);
            goto done;
        }
        cJSON_ArrayForEach(t, toks) {
            const cJSON *ls = cJSON_GetObjectItemCaseSensitive(t, "layers"), *l;
            if (!cJSON_IsArray(ls)) {
                cli_error("quantize", "--route-stats %s: a token has no \"layers\"", path);
                goto done;
            }
            cJSON_ArrayForEach(l, ls) {
                int E, i = json_layer(path, cfg, l, &E);
                if (i < 0) goto done;
                const cJSON *ex = cJSON_GetObjectItemCaseSensitive(l, "experts"), *x;
                if (!cJSON_IsArray(ex)) {
                    cli_error("quantize", "--route-stats %s: layer %d: no \"experts\"", path, i);
                    goto done;
                }
                cJSON_ArrayForEach(x, ex) {
                    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= E) {
                        cli_error("quantize", "--route-stats %s: layer %d: expert id out of "
                                  "range [0, %d)", path, i, E);
                        goto done;
                    }
                    k->c[i * k->S + (int)x->valuedouble] += 1;
                    k->total += 1;
                }
            }
        }
    } else {
        cli_error("quantize", "--route-stats %s: mode \"%.20s\" is not \"data\" or \"text\"",
                  path, mode->valuestring);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* Route the first max_tokens tokens of a text file through the model, in
 * windows from position 0, adding up the experts chosen. */
static int counts_from_text(counts *k, moe_model *m, const char *file, const char *tok_path,
                            int max_tokens, int threads) {
    char *text = NULL;
    size_t size = 0;
    moe_err err = {{0}};
    /* the tokenizer takes at most 1 GiB of text */
    if (cli_read_file(file, (size_t)1 << 30, &text, &size, &err)) {
        cli_error("quantize", "--calib: %s", err.msg);
        return -1;
    }
    if (size == 0) {
        cli_error("quantize", "--calib %s: the file is empty", file);
        free(text);
        return -1;
    }
    moe_tokenizer *tok = NULL;
    moe_session *s = NULL;
    int32_t *ids = NULL;
    int n = 0, rc = -1;
    if (cli_load_tokenizer("quantize", tok_path, &tok)) goto done;
    if (moe_tokenize(tok, text, size, 1, &ids, &n, &err)) {
        cli_error("quantize", "--calib %s: %s", file, err.msg);
        goto done;
    }
    if (n == 0) {
        cli_error("quantize", "--calib %s: the text gives no tokens", file);
        goto done;
    }
    if (n > max_tokens) n = max_tokens;
    const moe_config *c = moe_model_config(m);
    int win = c->max_pos > 0 && c->max_pos < 512 ? c->max_pos : 512;
    moe_session_opts so = {.n_ctx = win, .n_threads = threads, .max_batch = win};
    if (moe_session_new(&s, m, &so, &err)) {
        cli_error("quantize", "%s", err.msg);
        goto done;
    }
    for (int i = 0; i < n; i += win) {
        int len = n - i < win ? n - i : win;
        moe_session_reset(s);
        if (moe_forward(s, ids + i, len, NULL, 0, &err)) {
            cli_error("quantize", "--calib: %s", err.msg);
            goto done;
        }
        const int64_t *cnt = moe_session_expert_counts(s);
        int stride = moe_session_counts_stride(s);
        for (int l = 0; l < k->L; l++)
            for (int e = 0; e < k->S && e < stride; e++) {
                k->c[l * k->S + e] += (double)cnt[l * stride + e];
                k->total += (double)cnt[l * stride + e];
            }
    }
    rc = 0;
done:
    free(ids);
    moe_session_free(s);
    moe_tokenizer_free(tok);
    free(text);
    return rc;
}

/* ------------------------------------------------------------ the command */

static void print_mixed(const moe_quant_plan *p, const moe_config *c, const moe_quant_opts *o) {
    char b1[32], b2[32], b3[32];
    moe_quant_summary sum;
    moe_quant_plan_summary(p, &sum);
    printf("mixed: %d of %d experts at %s, the rest at %s; %s of tensor data (budget %s, "
           "range %s..",
           sum.n_high, sum.n_experts, moe_qtype_name(o->high), moe_qtype_name(o->low),
           cli_bytes(sum.bytes, b1, sizeof b1), cli_bytes(o->budget, b2, sizeof b2),
           cli_bytes(sum.min_bytes, b3, sizeof b3));
    printf("%s)\n", cli_bytes(sum.max_bytes, b1, sizeof b1));
    for (int i = 0; i < c->n_layers; i++) {
        if (!c->layer[i].moe) continue;
        int hi = 0;
        for (int e = 0; e < c->layer[i].n_experts; e++)
            hi += moe_quant_plan_expert_type(p, i, e) == o->high;
        printf("  layer %d: %d/%d experts at %s%s\n", i, hi, c->layer[i].n_experts,
               moe_qtype_name(o->high),
               moe_quant_plan_layer_split(p, i) ? " (one tensor per expert)" : "");
    }
}

/* The quantized types --type, --experts, --high and --low take. */
#define QTYPES "q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0, iq4_xs, iq4_nl, q3_k, q2_k, mxfp4"

/* A type --high / --low may name: a quantized one. */
static int is_quant_type(int t) { return t >= 0 && !moe_qtype_is_float(t); }

int cmd_quantize(int argc, char **argv) {
    const char *type_s = NULL, *high_s = "q8_0", *low_s = "q4_k", *budget_s = NULL;
    const char *calib = NULL, *stats = NULL, *tok_path = NULL, *experts_s = NULL;
    int threads = 0, force = 0, pure = 0, calib_tokens = 4096;
    const arg_opt opts[] = {
        {"--type", NULL, ARG_STR, &type_s, 0, 0, 0, "T",
         QTYPES " or mixed (required)"},
        {"--experts", NULL, ARG_STR, &experts_s, 0, 0, 0, "T",
         "routed experts at T (a --type but mixed) or 'keep' (as stored) "
         "(default: MXFP4 experts kept, others by --type)"},
        {"--pure", NULL, ARG_FLAG, &pure, 0, 0, 0, NULL,
         "every 2-D weight but the routers at T (no output/attn_v/ffn_down bumps)"},
        {"--high", NULL, ARG_STR, &high_s, 0, 0, 0, "T", "mixed: type of the most used experts (q8_0)"},
        {"--low", NULL, ARG_STR, &low_s, 0, 0, 0, "T", "mixed: type of the other experts (q4_k)"},
        {"--budget", NULL, ARG_STR, &budget_s, 0, 0, 0, "SIZE",
         "mixed: most tensor bytes, e.g. 2.5G, 900M, 3GB, or bits per weight 5.5bpw"},
        {"--calib", NULL, ARG_STR, &calib, 0, 0, 0, "FILE",
         "mixed: count the routing of this text (needs the model's tokenizer)"},
        {"--calib-tokens", NULL, ARG_INT, &calib_tokens, 1, 1 << 30, 0, "N",
         "mixed: route at most N tokens of --calib (4096)"},
        {"--route-stats", NULL, ARG_STR, &stats, 0, 0, 0, "JSON",
         "mixed: routing counts from 'moe route --data' or '--text' JSON"},
        {"--tokenizer", NULL, ARG_STR, &tok_path, 0, 0, 0, "PATH",
         "tokenizer for --calib, and the file's vocabulary when a directory or tokenizer.json "
         "(default: IN's tokenizer.json)"},
        ARG_THREADS(&threads, "-t", "threads (0 = all CPUs)"),
        {"--force", NULL, ARG_FLAG, &force, 0, 0, 0, NULL, "overwrite OUT"},
    };
    const arg_cmd c = {
        "quantize", "IN OUT.gguf --type T|mixed [options]",
        "Write a quantized GGUF file from a Hugging Face directory or a GGUF file.\n"
        "Norms, biases and routers stay F32; other tensors follow llama-quantize's rules\n"
        "for the type (q3_k / q4_k / q5_k are its _M mixtures). --type mixed keeps the experts\n"
        "routed most often (--calib text and/or --route-stats JSON) at --high and the\n"
        "rest at --low, within --budget. --type mxfp4 is llama-quantize's MXFP4_MOE:\n"
        "routed experts MXFP4, other weights Q8_0. MXFP4 experts (gpt-oss) stay MXFP4\n"
        "under any --type unless --experts says otherwise.",
        "Rules, fallbacks for rows the block size does not divide, and the mixed layout:\n"
        "docs/QUANT.md. Examples:\n"
        "  moe quantize olmoe-dir olmoe-q8_0.gguf --type q8_0\n"
        "  moe quantize gpt-oss-20b oss-q8.gguf --type q8_0 --experts q8_0\n"
        "  moe route olmoe-dir --data data --json route.json > /dev/null\n"
        "  moe quantize olmoe-dir olmoe-mix.gguf --type mixed --route-stats route.json --budget 5.5bpw\n"
        "A random model of a real shape straight to a quantized GGUF (the same bytes as\n"
        "'moe init' then 'moe quantize'): moe init --preset NAME --type T OUT.gguf",
        opts, (int)(sizeof opts / sizeof opts[0]), 2, 2, "IN OUT.gguf"};
    const char *pos[2];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    const char *in = pos[0], *out = pos[1];
    if (!type_s) {
        cli_error("quantize", "--type is required (" QTYPES ", mixed)");
        return 2;
    }
    int mixed = !strcmp(type_s, "mixed");
    int type = mixed ? -1 : moe_qtype_from_name(type_s);
    int high = moe_qtype_from_name(high_s), low = moe_qtype_from_name(low_s);
    if (!mixed && !is_quant_type(type)) {
        cli_error("quantize", "--type: '%s' is not one of " QTYPES ", mixed%s",
                  type_s, type >= 0 ? " (for float types use 'moe convert --type')" : "");
        return 2;
    }
    if (!is_quant_type(high) || !is_quant_type(low)) {
        cli_error("quantize", "--%s: '%s' is not one of " QTYPES,
                  !is_quant_type(high) ? "high" : "low", !is_quant_type(high) ? high_s : low_s);
        return 2;
    }
    int experts = 0;
    if (experts_s) {
        int keep = !strcmp(experts_s, "keep");
        experts = keep ? MOE_QUANT_EXPERTS_KEEP : moe_qtype_from_name(experts_s);
        if (!keep && !is_quant_type(experts)) {
            cli_error("quantize", "--experts: '%s' is not one of " QTYPES ", keep", experts_s);
            return 2;
        }
        if (mixed) {
            cli_error("quantize", "--experts does not go with --type mixed (--high / --low)");
            return 2;
        }
    }
    if (!mixed && (budget_s || calib || stats)) {
        cli_error("quantize", "%s goes with --type mixed",
                  budget_s ? "--budget" : calib ? "--calib" : "--route-stats");
        return 2;
    }
    if (mixed && !calib && !stats) {
        cli_error("quantize", "--type mixed needs routing counts: --calib FILE and/or "
                  "--route-stats JSON");
        return 2;
    }
    size_t ol = strlen(out);
    if (ol < 5 || strcmp(out + ol - 5, ".gguf")) {
        cli_error("quantize", "OUT must be a .gguf file name (got '%s')", out);
        return 2;
    }
    int code = convert_check_out_file("quantize", out, force);
    if (code) return code;
    moe_model *m = NULL;
    if (cli_load_model("quantize", in, &m)) return 1;
    const moe_config *cfg = moe_model_config(m);
    code = 1;
    counts k = {0};
    moe_quant_opts qo = {.mode = mixed ? MOE_QUANT_MIXED : MOE_QUANT_TYPE, .type = type,
                         .pure = pure, .high = high, .low = low, .experts = experts};
    moe_quant_plan *plan = NULL;
    moe_quant_summary sum;
    moe_err err = {{0}};
    if (mixed) {
        if (counts_init(&k, cfg)) {
            cli_error("quantize", "out of memory");
            goto done;
        }
        if (stats && counts_from_json(&k, stats, cfg)) goto done;
        if (calib) {
            char tp[4096];
            struct stat sb;
            if (!tok_path) {
                if (stat(in, &sb) == 0 && S_ISDIR(sb.st_mode)) tok_path = in;
                else {
                    snprintf(tp, sizeof tp, "%s", in);
                    char *sl = strrchr(tp, '/');
                    if (sl) *sl = 0;
                    else snprintf(tp, sizeof tp, ".");
                    tok_path = tp;
                }
            }
            if (counts_from_text(&k, m, calib, tok_path, calib_tokens, threads)) goto done;
        }
        if (k.total <= 0) {
            cli_error("quantize", "the routing counts are all zero: nothing to rank experts by");
            goto done;
        }
        qo.counts = k.c;
        qo.stride = k.S;
        /* the size range first, for the budget message and bits-per-weight budgets */
        moe_quant_opts probe = qo;
        probe.budget = INT64_MAX;
        if (moe_quant_plan_new(&plan, m, &probe, &err)) {
            cli_error("quantize", "%s: %s", in, err.msg);
            goto done;
        }
        moe_quant_plan_summary(plan, &sum);
        int64_t params = sum.params, lo = sum.min_bytes, hi = sum.max_bytes;
        moe_quant_plan_free(plan);
        plan = NULL;
        char b1[32], b2[32];
        if (!budget_s) {
            cli_error("quantize", "--type mixed needs --budget SIZE (this model: %s with every "
                      "expert at %s .. %s at %s)", cli_bytes(lo, b1, sizeof b1), low_s,
                      cli_bytes(hi, b2, sizeof b2), high_s);
            code = 2;
            goto done;
        }
        if (moe_quant_parse_budget(budget_s, params, &qo.budget)) {
            cli_error("quantize", "--budget: '%s' is not a size (2.5G, 900M, 3GB, 123456) or "
                      "bits per weight (5.5bpw)", budget_s);
            code = 2;
            goto done;
        }
        if (qo.budget < lo) {
            cli_error("quantize", "--budget %s (%s, %.2f bits/weight) is below the smallest "
                      "mixed file: %s (%.2f bits/weight) with every expert at %s", budget_s,
                      cli_bytes(qo.budget, b1, sizeof b1), 8.0 * (double)qo.budget / (double)params,
                      cli_bytes(lo, b2, sizeof b2), 8.0 * (double)lo / (double)params, low_s);
            goto done;
        }
    }
    if (moe_quant_plan_new(&plan, m, &qo, &err)) {
        cli_error("quantize", "%s: %s", in, err.msg);
        goto done;
    }
    if (mixed) print_mixed(plan, cfg, &qo);
    code = convert_write_gguf("quantize", m, plan, in, out, threads, tok_path);
done:
    moe_quant_plan_free(plan);
    free(k.c);
    moe_model_free(m);
    return code;
}
