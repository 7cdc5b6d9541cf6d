/*
 * cmd_tokenizer.c - `moe tokenizer train`: learn a byte-level BPE tokenizer
 * (Qwen2 layout) from text files and write DIR/tokenizer.json and
 * DIR/tokenizer_config.json (moe_tokenizer_train in moe.h).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "file_list.h"

#define MAX_SPECIAL 256

typedef struct train_ui {
    int tty;                          /* 1: redraw one progress line on stderr */
    double last;                      /* seconds of the last line drawn, -1 before */
    moe_tokenizer_train_progress fin; /* the last report (DONE at the end) */
} train_ui;

static void on_progress(void *user, const moe_tokenizer_train_progress *p) {
    train_ui *ui = user;
    ui->fin = *p;
    if (!ui->tty) return;
    if (p->stage == MOE_TRAIN_DONE) {
        if (ui->last >= 0) fprintf(stderr, "\r\033[K");
        return;
    }
    if (ui->last >= 0 && p->seconds - ui->last < 0.2) return;
    ui->last = p->seconds;
    char a[32], b[32];
    if (p->stage == MOE_TRAIN_COUNT)
        fprintf(stderr, "\r\033[Kcounting words: %s of %s, %lld distinct",
                cli_bytes(p->bytes_done, a, sizeof a), cli_bytes(p->bytes_total, b, sizeof b),
                (long long)p->unique_words);
    else
        fprintf(stderr, "\r\033[Klearning merges: %d of %d", p->merges_done, p->merges_target);
    fflush(stderr);
}

static int tokenizer_train(int argc, char **argv) {
    const char *special[MAX_SPECIAL], *unused = NULL;
    int n_special = 0;
    /* --special may repeat: taken out here; the table below only documents it. */
    if (take_repeated("tokenizer train", "--special", &argc, argv, special, &n_special, MAX_SPECIAL))
        return 2;
    int vocab = 0, min_freq = 2, quiet = 0;
    uint64_t max_words = 2000000;
    const char *out = NULL, *bos = NULL, *eos = NULL;
    const arg_opt opts[] = {
        {"--vocab", NULL, ARG_INT, &vocab, 257, 1 << 24, 0, "N",
         "vocabulary size: 256 byte tokens + merges + special tokens (required)"},
        {"--out", "-o", ARG_STR, &out, 0, 0, 0, "DIR", "write DIR/tokenizer.json here (required)"},
        {"--min-freq", NULL, ARG_INT, &min_freq, 1, 1e9, 0, "F",
         "stop when the best pair occurs fewer than F times (default 2)"},
        {"--special", NULL, ARG_STR, &unused, 0, 0, 0, "TOK",
         "a special token, repeatable (default <|endoftext|>)"},
        {"--bos", NULL, ARG_STR, &bos, 0, 0, 0, "TOK", "BOS in tokenizer_config.json (default none)"},
        {"--eos", NULL, ARG_STR, &eos, 0, 0, 0, "TOK", "EOS (default the first special token)"},
        {"--max-words", NULL, ARG_U64, &max_words, 0, 0, 0, "N",
         "distinct words kept while counting (default 2000000)"},
        {"--quiet", "-q", ARG_FLAG, &quiet, 0, 0, 0, NULL, "no progress line on stderr"},
    };
    const arg_cmd c = {
        "tokenizer train", "--vocab N --out DIR [options] FILES...",
        "Train a byte-level BPE tokenizer (Qwen2 layout: NFC, the Qwen2 split regex, ByteLevel)\n"
        "on text files; write DIR/tokenizer.json and DIR/tokenizer_config.json, which moe and\n"
        "Hugging Face tokenizers load with the same ids.",
        "A directory in FILES stands for its files. Ids: the 256 byte tokens, the merges in the\n"
        "order learned, then the special tokens. Each step merges the most frequent pair of\n"
        "symbols; ties go to the pair with the smaller ids, so a text always gives the same\n"
        "tokenizer. Special tokens in the text are cut out before counting. Past --max-words\n"
        "distinct words the rarest are dropped, which bounds memory (~350 bytes a word).",
        opts, (int)(sizeof opts / sizeof opts[0]), 1, argc, "FILES"};
    const char **pos = malloc((size_t)argc * sizeof *pos);
    if (!pos) return 1;
    int np = 0;
    int r = args_parse(&c, argc, argv, pos, &np);
    if (r != ARGS_OK) {
        free(pos);
        return args_exit(r);
    }
    int rc = 0;
    file_list files = {0};
    if (!vocab) {
        cli_error(c.name, "--vocab N is required");
        rc = 2;
    } else if (!out) {
        cli_error(c.name, "--out DIR is required");
        rc = 2;
    }
    for (int i = 0; i < np && rc == 0; i++)
        if (file_list_add(c.name, &files, pos[i])) rc = 2;
    free(pos);
    if (rc == 0 && make_dirs(c.name, out)) rc = 1;
    if (rc) {
        file_list_free(&files);
        return rc;
    }

    train_ui ui = {.tty = !quiet && isatty(2), .last = -1};
    moe_tokenizer_train_opts o = {
        .vocab_size = vocab, .min_freq = min_freq, .special = n_special ? special : NULL,
        .n_special = n_special, .bos_token = bos, .eos_token = eos, .max_words = (int64_t)max_words,
        .progress = on_progress, .user = &ui};
    moe_err err = {{0}};
    int n_files = files.n;
    rc = moe_tokenizer_train(&o, (const char *const *)files.v, files.n, out, &err);
    file_list_free(&files);
    if (rc) {
        if (ui.tty && ui.last >= 0) fprintf(stderr, "\r\033[K");
        cli_error(c.name, "%s", err.msg);
        return 1;
    }
    const moe_tokenizer_train_progress *p = &ui.fin;
    char a[32], w[32], d[32];
    double mb = (double)p->bytes_total / 1e6;
    printf("wrote %s/tokenizer.json: vocab %d (256 bytes + %d merges + %d special)\n", out, p->vocab,
           p->merges_done, p->vocab - 256 - p->merges_done > 0 ? p->vocab - 256 - p->merges_done : 0);
    printf("read %s in %d file%s: %s words, %s distinct%s; %.2f s (%.1f MB/s)\n",
           cli_bytes(p->bytes_total, a, sizeof a), n_files, n_files == 1 ? "" : "s",
           cli_count(p->words, w, sizeof w), cli_count(p->unique_words, d, sizeof d),
           p->pruned_words ? " (rare words dropped to fit --max-words)" : "", p->seconds,
           p->seconds > 0 ? mb / p->seconds : 0.0);
    if (p->merges_done < p->merges_target)
        printf("note: stopped at %d of %d merges: no pair occurs %d times or more\n", p->merges_done,
               p->merges_target, min_freq);
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "train")) return tokenizer_train(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    FILE *f = help ? stdout : stderr;
    if (f == stderr && argc >= 2) fprintf(stderr, "moe tokenizer: unknown subcommand '%s'\n", argv[1]);
    fprintf(f, "usage: moe tokenizer train --vocab N --out DIR [options] FILES...\n\n"
               "Tokenizer tools.\n\nsubcommands:\n"
               "  train        learn a byte-level BPE tokenizer from text files\n"
               "\n'moe tokenizer train --help' describes its options.\n");
    return f == stdout ? 0 : 2;
}
