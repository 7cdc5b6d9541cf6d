/*
 * cmd_route.c - `moe route MODEL (--text TEXT | --data DIR)`: where the
 * routers send tokens, as JSON on stdout. --text traces one text token by
 * token (experts and weights per MoE layer); --data counts over a token
 * shard (route_data.c). docs/ROUTING.md documents both layouts.
 * --data --table prints text tables instead (route_table.c), and --json
 * FILE keeps the JSON too, so one routing pass feeds both.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "moe_file.h"
#include "args.h"
#include "cli.h"
#include "moe_route.h"
#include "route_data.h"
#include "route_table.h"

/* The trace of --text: one cJSON token object per position, filled layer by
 * layer as the forward reports them. */
typedef struct text_trace {
    cJSON **tok_layers; /* [n] the "layers" array of each token */
} text_trace;

static void on_route_text(void *user, const moe_route_info *r) {
    text_trace *tt = user;
    for (int t = 0; t < r->T; t++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "layer", r->layer);
        cJSON *ex = cJSON_AddArrayToObject(o, "experts");
        cJSON *w = cJSON_AddArrayToObject(o, "weights");
        for (int j = 0; j < r->K; j++) {
            cJSON_AddItemToArray(ex, cJSON_CreateNumber(r->expert[t * r->K + j]));
            cJSON_AddItemToArray(w, cJSON_CreateNumber(route_round6(r->weight[t * r->K + j])));
        }
        if (r->group) { /* group-limited routing: the groups the token kept */
            cJSON *g = cJSON_AddArrayToObject(o, "groups");
            for (int k = 0; g && k < r->n_group; k++)
                if (r->group[t * r->n_group + k]) cJSON_AddItemToArray(g, cJSON_CreateNumber(k));
        }
        cJSON_AddItemToArray(tt->tok_layers[moe_route_token(r, t)], o);
    }
}

static const char *kind_name(moe_route_kind k) {
    return k == MOE_ROUTE_EXPERT_CHOICE ? "expert_choice" : k == MOE_ROUTE_HASH ? "hash" : "token_choice";
}

static int route_text(const char *model_path, const char *text, int no_special, int threads,
                      const moe_load_opts *lo) {
    moe_model *m = NULL;
    moe_tokenizer *tok = NULL;
    moe_session *s = NULL;
    int32_t *ids = NULL;
    int n = 0, code = 1;
    cJSON *root = NULL;
    text_trace tt = {NULL};
    moe_err err = {{0}};
    if (cli_load_model_opts("route", model_path, lo, &m) ||
        cli_load_tokenizer("route", model_path, &tok))
        goto done;
    if (moe_tokenize(tok, text, strlen(text), !no_special, &ids, &n, &err)) {
        cli_error("route", "%s", err.msg);
        goto done;
    }
    if (n == 0) {
        cli_error("route", "--text gives no tokens");
        code = 2;
        goto done;
    }
    const moe_config *c = moe_model_config(m);
    moe_session_opts so = {.n_ctx = n, .n_threads = threads, .max_batch = n < 256 ? n : 256};
    if (c->max_pos > 0 && n > c->max_pos) {
        cli_error("route", "--text is %d tokens, more than the model's %d positions", n, c->max_pos);
        code = 2;
        goto done;
    }
    if (moe_session_new(&s, m, &so, &err)) {
        cli_error("route", "%s", err.msg);
        goto done;
    }
    cli_cache_attach(m, s);
    root = cJSON_CreateObject();
    tt.tok_layers = calloc((size_t)n, sizeof *tt.tok_layers);
    if (!root || !tt.tok_layers) goto oom;
    cJSON_AddStringToObject(root, "mode", "text");
    cJSON_AddStringToObject(root, "model", model_path);
    char *clean = route_utf8_clean(text, strlen(text));
    if (!clean) goto oom;
    cJSON_AddStringToObject(root, "text", clean);
    free(clean);
    cJSON_AddNumberToObject(root, "n_tokens", n);
    cJSON *ml = cJSON_AddArrayToObject(root, "moe_layers");
    for (int l = 0; ml && l < c->n_layers; l++) {
        if (!c->layer[l].moe) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "layer", l);
        cJSON_AddNumberToObject(o, "n_experts", c->layer[l].n_experts);
        cJSON_AddNumberToObject(o, "top_k", c->layer[l].top_k);
        cJSON_AddStringToObject(o, "kind", kind_name(c->layer[l].kind));
        cJSON_AddItemToArray(ml, o);
    }
    cJSON *toks = cJSON_AddArrayToObject(root, "tokens");
    for (int i = 0; toks && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "i", i);
        cJSON_AddNumberToObject(o, "id", ids[i]);
        char *piece = route_token_text(tok, ids[i]);
        if (piece) cJSON_AddStringToObject(o, "text", piece);
        else cJSON_AddNullToObject(o, "text");
        free(piece);
        tt.tok_layers[i] = cJSON_AddArrayToObject(o, "layers");
        cJSON_AddItemToArray(toks, o);
        if (!tt.tok_layers[i]) goto oom;
    }
    if (moe_route_trace(s, ids, n, on_route_text, &tt, &err)) {
        cli_error("route", "%s", err.msg);
        goto done;
    }
    if (route_json_print(stdout, root)) goto oom;
    cli_cache_tokens(m, n);
    cli_cache_line("route", m, stderr);
    code = 0;
    goto done;
oom:
    cli_error("route", "out of memory");
done:
    free(tt.tok_layers);
    cJSON_Delete(root);
    free(ids);
    moe_session_free(s);
    moe_tokenizer_free(tok);
    moe_model_free(m);
    return code;
}

/* --json FILE: the JSON written to a temporary file beside FILE, then
 * renamed (moe_file.h), so FILE is never half written and a planted
 * symlink is never followed. 0, or 1 (printed). */
static int write_json(const char *path, const cJSON *root) {
    moe_file_out *fo = NULL;
    FILE *f = NULL;
    moe_err err = {{0}};
    int bad = moe_file_out_open(&fo, path, &f, &err) != 0;
    if (!bad && (route_json_print(f, root) != 0 || ferror(f) != 0)) {
        bad = 1;
        snprintf(err.msg, sizeof err.msg, "write error");
        moe_file_out_abort(fo);
    } else if (!bad) {
        bad = moe_file_out_commit(fo, &err) != 0;
    }
    if (bad) cli_error("route", "--json %s: cannot write it (%s)", path, err.msg);
    return bad;
}

int cmd_route(int argc, char **argv) {
    const char *text = NULL, *data = NULL, *split = "val", *tokenizer = NULL, *json_out = NULL;
    int max_tokens = MOE_ROUTE_DATA_TOKENS, seq = 0, top = 10, threads = 0, no_special = 0, table = 0;
    cli_cache cc = CLI_CACHE_INIT;
    const arg_opt opts[] = {
        {"--text", NULL, ARG_STR, &text, 0, 0, 0, "TEXT", "trace the routing of TEXT token by token"},
        {"--data", NULL, ARG_STR, &data, 0, 0, 0, "DIR",
         "count the routing over a 'moe data' directory's shard"},
        {"--split", NULL, ARG_STR, &split, 0, 0, 0, "NAME", "--data shard: val or train (val)"},
        {"--max-tokens", NULL, ARG_INT, &max_tokens, 0, 1 << 30, 0, "N",
         "--data: route N tokens, in windows spread over the whole shard; 0 = all (65536)"},
        {"--seq", NULL, ARG_INT, &seq, 0, 1 << 20, 0, "T",
         "--data: window length; 0 = min(256, the model's positions) (0)"},
        {"--top", NULL, ARG_INT, &top, 0, 1000, 0, "N", "--data: tokens listed per expert (10)"},
        {"--tokenizer", NULL, ARG_STR, &tokenizer, 0, 0, 0, "PATH",
         "--data: decode token texts with this tokenizer (default: the model's, if any)"},
        {"--table", NULL, ARG_FLAG, &table, 0, 0, 0, NULL,
         "--data: print text tables (load, domain x expert, MI, top tokens) instead of JSON"},
        {"--json", NULL, ARG_STR, &json_out, 0, 0, 0, "FILE", "--data: also write the JSON to FILE"},
        {"--no-special", NULL, ARG_FLAG, &no_special, 0, 0, 0, NULL,
         "--text: do not add special tokens (BOS) when tokenizing"},
        ARG_THREADS(&threads, "-t", "threads, 0 = online CPUs (0)"),
        ARG_CACHE(&cc),
    };
    const arg_cmd c = {
        "route", "MODEL (--text TEXT | --data DIR [--split val|train] [--max-tokens N]) [options]",
        "Show where the routers send tokens, as JSON on stdout.\n"
        "--text: per token its id, its text and, per MoE layer, the experts chosen and their\n"
        "weights. --data: over windows spread across the shard, per MoE layer the pairs per\n"
        "expert, load, max violation, dead experts, router entropy, a domain x expert table\n"
        "with its mutual information I(domain; expert) in bits, and each expert's top tokens.",
        "The JSON layouts are documented in docs/ROUTING.md. `moe report RUN --route-data DIR`\n"
        "draws the --data statistics; save them as RUN/route.json to have every report use them.",
        opts, (int)(sizeof opts / sizeof opts[0]), 1, 1, "MODEL"};
    const char *pos[1];
    int np;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) return args_exit(r);
    moe_load_opts lo;
    if (cli_cache_parse("route", &cc, &lo)) return 2;
    if (!text == !data) {
        cli_error("route", text ? "--text and --data exclude each other"
                                : "one of --text TEXT or --data DIR is required");
        return 2;
    }
    if (strcmp(split, "val") && strcmp(split, "train")) {
        cli_error("route", "--split: '%s' is not val or train", split);
        return 2;
    }
    if (text && (table || json_out)) {
        cli_error("route", "%s goes with --data, not --text", table ? "--table" : "--json");
        return 2;
    }
    if (text) return route_text(pos[0], text, no_special, threads, &lo);

    route_data_opts o = {pos[0], data, split, tokenizer, max_tokens, seq, top, threads, &lo};
    int code;
    cJSON *root = route_data_run("route", &o, &code);
    if (!root) return code;
    code = json_out ? write_json(json_out, root) : 0;
    if (code == 0 && table) {
        if (route_table_print(stdout, root, top < 8 ? top : 8)) {
            cli_error("route", "routing statistics incomplete: no tables");
            code = 1;
        }
    } else if (code == 0 && route_json_print(stdout, root)) {
        cli_error("route", "out of memory");
        code = 1;
    }
    cJSON_Delete(root);
    return code;
}
