/*
 * cmd_data.c - `moe data`: tokenize text files into DIR/train.bin,
 * DIR/val.bin and DIR/meta.json (moe_data_prepare in src/train/data.h; the
 * shard format is documented there).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "file_list.h"
#include "moe_data.h"

#define MAX_DOMAINS 256

typedef struct data_ui {
    int tty;
    double last;
} data_ui;

static void on_progress(void *user, const moe_data_prep_progress *p) {
    data_ui *ui = user;
    if (!ui->tty) return;
    if (p->done) {
        if (ui->last >= 0) fprintf(stderr, "\r\033[K");
        return;
    }
    if (ui->last >= 0 && p->seconds - ui->last < 0.2) return;
    ui->last = p->seconds;
    char a[32], b[32];
    fprintf(stderr, "\r\033[Ktokenizing: %s of %s, %lld tokens", cli_bytes(p->bytes_done, a, sizeof a),
            cli_bytes(p->bytes_total, b, sizeof b), (long long)(p->tokens[0] + p->tokens[1]));
    fflush(stderr);
}

/* "NAME=F1,F2,..." -> name (a copy) and files (directories expanded). */
static int parse_domain(const char *arg, char **name, file_list *files) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        cli_error("data", "--domain '%s': expected NAME=FILE[,FILE...]", arg);
        return -1;
    }
    *name = strndup(arg, (size_t)(eq - arg));
    char *list = strdup(eq + 1);
    int rc = *name && list ? 0 : -1;
    for (char *save = NULL, *f = list ? strtok_r(list, ",", &save) : NULL; f && rc == 0;
         f = strtok_r(NULL, ",", &save))
        rc = file_list_add("data", files, f);
    free(list);
    return rc;
}

int cmd_data(int argc, char **argv) {
    const char *dom_arg[MAX_DOMAINS], *unused = NULL;
    int n_dom_arg = 0;
    if (take_repeated("data", "--domain", &argc, argv, dom_arg, &n_dom_arg, MAX_DOMAINS)) return 2;
    const char *tok = NULL, *out = NULL, *docs = "blank";
    const char *val_arg = "0.05";
    uint64_t seed = 0;
    int threads = 0, list_docs = 0, quiet = 0;
    const arg_opt opts[] = {
        {"--tokenizer", NULL, ARG_STR, &tok, 0, 0, 0, "PATH", "tokenizer.json or a directory with one (required)"},
        {"--out", "-o", ARG_STR, &out, 0, 0, 0, "DIR", "write DIR/train.bin, val.bin, meta.json (required)"},
        {"--val-frac", NULL, ARG_STR, &val_arg, 0, 0, 0, "F", "share of documents for validation, in [0, 1] (default 0.05)"},
        {"--seed", NULL, ARG_U64, &seed, 0, 0, 0, "S", "seed of the train/val split (default 0)"},
        {"--docs", NULL, ARG_STR, &docs, 0, 0, 0, "MODE",
         "blank: documents are separated by blank lines (default); file: one per file"},
        {"--domain", NULL, ARG_STR, &unused, 0, 0, 0, "NAME=FILES",
         "files of a named domain, comma separated; repeatable"},
        ARG_THREADS(&threads, "-t", "tokenizing threads (default: all CPUs)"),
        {"--list-docs", NULL, ARG_FLAG, &list_docs, 0, 0, 0, NULL,
         "also write DIR/documents.jsonl: each document's file, bytes, split, tokens"},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0, 0, NULL, "no progress line on stderr"},
    };
    const arg_cmd c = {
        "data", "--tokenizer PATH --out DIR [options] [FILES...] [--domain NAME=FILES...]",
        "Tokenize text files into token shards for training: DIR/train.bin and DIR/val.bin\n"
        "(documents followed by EOS, no BOS) and DIR/meta.json (files, token counts, domains\n"
        "with their token ranges, tokenizer, split rule).",
        "FILES without a domain form the domain 'default'; a directory stands for its files.\n"
        "Each document goes to val with probability F, decided by a hash of (seed, domain,\n"
        "file, document index), so the split is the same on every run and machine; if none\n"
        "would, the last document does. Shards hold uint16 ids when the vocabulary has at\n"
        "most 65536 tokens, else uint32, after a 64-byte header (see src/train/data.h).",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, argc, "FILES"};
    const char **pos = malloc((size_t)argc * sizeof *pos);
    if (!pos) return 1;
    int np = 0;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) {
        free(pos);
        return args_exit(r);
    }
    int rc = 0;
    moe_data_docs mode = MOE_DATA_DOCS_BLANK;
    if (!tok) cli_error("data", "--tokenizer PATH is required"), rc = 2;
    else if (!out) cli_error("data", "--out DIR is required"), rc = 2;
    else if (!strcmp(docs, "file")) mode = MOE_DATA_DOCS_FILE;
    else if (strcmp(docs, "blank")) cli_error("data", "--docs: '%s' is not blank or file", docs), rc = 2;
    char *end;
    double val_frac = strtod(val_arg, &end); /* a double: meta.json records it as given */
    if (rc == 0 && (!*val_arg || *end || !(val_frac >= 0 && val_frac <= 1)))
        cli_error("data", "--val-frac: '%s' is not a number in [0, 1]", val_arg), rc = 2;
    if (rc == 0 && np == 0 && n_dom_arg == 0) cli_error("data", "no input files (FILES or --domain NAME=FILES)"), rc = 2;

    int n_dom = 0;
    char *names[MAX_DOMAINS + 1];
    file_list lists[MAX_DOMAINS + 1];
    memset(lists, 0, sizeof lists);
    if (rc == 0 && np > 0) {
        names[n_dom] = strdup("default");
        for (int i = 0; i < np && rc == 0; i++)
            if (file_list_add("data", &lists[n_dom], pos[i])) rc = 2;
        n_dom++;
    }
    for (int i = 0; i < n_dom_arg && rc == 0; i++) {
        names[n_dom] = NULL;
        if (parse_domain(dom_arg[i], &names[n_dom], &lists[n_dom])) rc = 2;
        n_dom++;
    }
    free(pos);
    if (rc == 0 && make_dirs("data", out)) rc = 1;

    moe_data_domain_spec spec[MAX_DOMAINS + 1];
    for (int d = 0; d < n_dom; d++)
        spec[d] = (moe_data_domain_spec){names[d], (const char *const *)lists[d].v, lists[d].n};
    data_ui ui = {!quiet && isatty(2), -1};
    moe_data_prep_opts o = {.tokenizer = tok, .out_dir = out, .domain = spec, .n_domains = n_dom,
                        .val_frac = val_frac, .seed = seed, .docs = mode, .n_threads = threads,
                        .list_docs = list_docs, .progress = on_progress, .user = &ui};
    moe_data_prep_progress p = {0};
    moe_err err = {{0}};
    if (rc == 0 && moe_data_prepare(&o, &p, &err)) {
        if (ui.tty && ui.last >= 0) fprintf(stderr, "\r\033[K");
        cli_error("data", "%s", err.msg);
        rc = 1;
    }
    if (rc == 0) {
        char a[32], t0[32], t1[32];
        int n_files = 0;
        for (int d = 0; d < n_dom; d++) n_files += lists[d].n;
        printf("wrote %s: train.bin %s tokens (%lld documents), val.bin %s tokens (%lld documents)\n",
               out, cli_count(p.tokens[0], t0, sizeof t0), (long long)p.docs[0],
               cli_count(p.tokens[1], t1, sizeof t1), (long long)p.docs[1]);
        double s = p.seconds > 0 ? p.seconds : 1e-9;
        printf("read %s in %d file%s, %d domain%s: %.2f s (%.1f MB/s, %.2f M tokens/s)\n",
               cli_bytes(p.bytes_total, a, sizeof a), n_files, n_files == 1 ? "" : "s", n_dom,
               n_dom == 1 ? "" : "s", p.seconds, (double)p.bytes_total / 1e6 / s,
               (double)(p.tokens[0] + p.tokens[1]) / 1e6 / s);
    }
    for (int d = 0; d < n_dom; d++) {
        free(names[d]);
        file_list_free(&lists[d]);
    }
    return rc;
}
